package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/cycle"
	"github.com/chainsync/chainsync/internal/jobargs"
)

const (
	// recordsComponent labels the Jobs `records` runs, apart from the operator's cycle Jobs
	// (which carry syncv1alpha1.PolicyLabel; these must not, or the operator would take them for
	// cycles).
	componentLabel   = "app.kubernetes.io/component"
	recordsComponent = "records-reader"
	// userLabel names the SyncUser whose records the Job reads.
	userLabel = "sync.chainsync.dev/records-of"

	// readerUID is the user the cycle pods run as (controllers' cycleUID, distroless' nonroot),
	// so the reader can read the files they wrote.
	readerUID = 65532
	// keepFinished is how long a Job the plugin could not delete (the person pressed Ctrl-C, the
	// connection broke) stays before Kubernetes removes it.
	keepFinished = 300
)

// LogReader fetches the output of a Job's pod once it has finished. On a cluster it is
// PodLogs; tests read the local executor's output files.
type LogReader interface {
	JobLogs(ctx context.Context, job *batchv1.Job) (string, error)
}

// PodLogs reads the logs of a Job's newest pod through the API server (pods/log).
type PodLogs struct {
	Pods corev1client.PodsGetter
}

// JobLogs implements LogReader.
func (p PodLogs) JobLogs(ctx context.Context, job *batchv1.Job) (string, error) {
	pods, err := p.Pods.Pods(job.Namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + job.Name})
	if err != nil {
		return "", fmt.Errorf("listing the pods of Job %s: %w", job.Name, err)
	}
	if len(pods.Items) == 0 {
		return "", fmt.Errorf("Job %s has no pod left to read the logs of", job.Name)
	}
	newest := slices.MaxFunc(pods.Items, func(a, b corev1.Pod) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	raw, err := p.Pods.Pods(job.Namespace).GetLogs(newest.Name, &corev1.PodLogOptions{Container: "records"}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the logs of pod %s: %w", newest.Name, err)
	}
	return string(raw), nil
}

// RecordsOptions configure Records.
type RecordsOptions struct {
	Client    client.Client
	Namespace string
	Logs      LogReader
	// Image is the chainsync image to run; empty takes the image of the namespace's newest
	// cycle Job, which is the operator's (its --cycle-image).
	Image string
	// Output is `records show`'s format: table or json.
	Output string
	// Timeout bounds the wait for the Job, which is also its active deadline.
	Timeout time.Duration
	// Keep leaves the Job in place (for `kubectl describe`); it is removed keepFinished seconds
	// after it finished all the same.
	Keep bool
	// Out receives the records; Err says what the plugin does.
	Out, Err io.Writer
	// Poll is how often the Job is read while it runs; a second when zero.
	Poll time.Duration
}

// Records runs `chainsync records show` for a user in a short-lived Job that mounts the store of
// the user's policy read-only, prints its output, and deletes the Job.
func Records(ctx context.Context, name string, opts RecordsOptions) error {
	c := opts.Client
	var user syncv1alpha1.SyncUser
	if err := c.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: name}, &user); err != nil {
		return (&Requests{Namespace: opts.Namespace}).notFound(Ref{KindSyncUser, name}, err)
	}
	policyName, err := userPolicy(ctx, c, &user)
	if err != nil {
		return err
	}
	var policy syncv1alpha1.SyncPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: policyName}, &policy); err != nil {
		return (&Requests{Namespace: opts.Namespace}).notFound(Ref{KindSyncPolicy, policyName}, err)
	}
	image, pull := opts.Image, corev1.PullPolicy("")
	if image == "" {
		if image, pull, err = cycleImage(ctx, c, opts.Namespace); err != nil {
			return err
		}
	}
	timeout := cmpOr(opts.Timeout, 2*time.Minute)
	job := RecordsJob(&policy, &user, image, pull, cmpOr(opts.Output, "table"), timeout)
	if err := c.Create(ctx, job); err != nil {
		return fmt.Errorf("creating the Job that reads %s's records: %w", name, err)
	}
	fmt.Fprintf(opts.Err, "job/%s created: reads the records of %s in the store of SyncPolicy %s (claim %s)\n",
		job.Name, cycle.RecordsIdentity(&user), policy.Name, policy.Spec.Store.ClaimName)
	if !opts.Keep {
		defer func() {
			// Also after a Ctrl-C: a context of its own.
			delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := c.Delete(delCtx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				fmt.Fprintf(opts.Err, "Warning: job/%s not deleted (%v); Kubernetes removes it %ds after it finished\n", job.Name, err, keepFinished)
				return
			}
			fmt.Fprintf(opts.Err, "job/%s deleted\n", job.Name)
		}()
	}

	finished, failure, err := waitForJob(ctx, c, job, timeout, cmpOr(opts.Poll, time.Second))
	if err != nil {
		return err
	}
	if !finished {
		return fmt.Errorf("job/%s did not finish within %s: `kubectl describe job %s` (and its pod) says why, for example an image that cannot be pulled or a claim mounted elsewhere",
			job.Name, timeout, job.Name)
	}
	logs, lerr := opts.Logs.JobLogs(ctx, job)
	if failure != "" {
		if lerr == nil {
			fmt.Fprint(opts.Err, logs)
		}
		return fmt.Errorf("job/%s failed: %s", job.Name, failure)
	}
	if lerr != nil {
		return lerr
	}
	_, err = io.WriteString(opts.Out, logs)
	return err
}

func cmpOr[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

// userPolicy is the policy whose store holds the user's records: the one it is on now, else
// the one it will be placed on.
func userPolicy(ctx context.Context, c client.Reader, u *syncv1alpha1.SyncUser) (string, error) {
	switch {
	case u.Status.Policy != "":
		return u.Status.Policy, nil
	case u.Spec.PolicyRef != nil:
		return u.Spec.PolicyRef.Name, nil
	}
	var chain syncv1alpha1.OnboardingChain
	if err := c.Get(ctx, client.ObjectKey{Namespace: u.Namespace, Name: u.Spec.ChainRef.Name}, &chain); err != nil {
		return "", fmt.Errorf("syncuser/%s is on no policy yet, and its OnboardingChain %s cannot be read: %w", u.Name, u.Spec.ChainRef.Name, err)
	}
	// A chain's steps share one store (the operator refuses mixed ones), so any step's will do.
	return chain.Spec.Steps[0].Policy, nil
}

// cycleImage is the image (and pull policy) of the namespace's newest cycle Job: the image the
// operator runs cycles with.
func cycleImage(ctx context.Context, c client.Reader, namespace string) (string, corev1.PullPolicy, error) {
	var jobs batchv1.JobList
	if err := c.List(ctx, &jobs, client.InNamespace(namespace), client.HasLabels{syncv1alpha1.PolicyLabel}); err != nil {
		return "", "", fmt.Errorf("listing cycle Jobs to find the chainsync image: %w", err)
	}
	if len(jobs.Items) == 0 {
		return "", "", fmt.Errorf("no cycle Job in namespace %s to take the chainsync image from: pass --image (the operator's --cycle-image)", namespace)
	}
	newest := slices.MaxFunc(jobs.Items, func(a, b batchv1.Job) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	ctr := newest.Spec.Template.Spec.Containers[0]
	return ctr.Image, ctr.ImagePullPolicy, nil
}

// RecordsJob is the Job that prints a user's records: the cycle pods' image, store mount and
// non-root user, but the claim mounted read-only, no API credentials, no Secrets, and nothing
// the records reader could write to.
func RecordsJob(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser, image string, pull corev1.PullPolicy,
	output string, timeout time.Duration) *batchv1.Job {
	claim := policy.Spec.Store.ClaimName
	store := jobargs.ClaimPath(jobargs.VolumesRoot, claim, policy.Spec.Store.SubPath)
	labels := map[string]string{
		"app.kubernetes.io/managed-by": "chainsync",
		componentLabel:                 recordsComponent,
	}
	if len(user.Name) <= 63 {
		labels[userLabel] = user.Name
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: truncate(user.Name, 45) + "-records-",
			Namespace:    user.Namespace,
			Labels:       labels,
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   ptr.To(int64(max(timeout, time.Second) / time.Second)),
			TTLSecondsAfterFinished: ptr.To[int32](keepFinished),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					// The cycles' account, as an admission policy (PSA, SCC) may allow no other,
					// but without its token: reading the store needs no API access.
					ServiceAccountName:           policy.Spec.JobTemplate.ServiceAccountName,
					AutomountServiceAccountToken: ptr.To(false),
					// No fsGroup: the kubelet would change the group of every file of the store
					// as it mounts it. The files belong to the cycles' user, which this pod is.
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](readerUID),
						RunAsGroup:     ptr.To[int64](readerUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "records",
						Image:           image,
						ImagePullPolicy: pull,
						Command:         []string{"/chainsync"},
						Args: []string{"records", "--store=" + store, "--output=" + output,
							"show", "--", cycle.RecordsIdentity(user)},
						Resources:                policy.Spec.JobTemplate.Resources,
						VolumeMounts:             []corev1.VolumeMount{{Name: "store", MountPath: jobargs.ClaimPath(jobargs.VolumesRoot, claim, ""), ReadOnly: true}},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{{Name: "store", VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true}}}},
				},
			},
		},
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

// waitForJob waits until the Job finished: failure is its Failed condition's words, "" when it
// succeeded; finished is false when timeout passed first.
func waitForJob(ctx context.Context, c client.Reader, job *batchv1.Job, timeout, poll time.Duration) (finished bool, failure string, err error) {
	err = wait.PollUntilContextTimeout(ctx, poll, timeout, true, func(ctx context.Context) (bool, error) {
		var j batchv1.Job
		if err := c.Get(ctx, client.ObjectKeyFromObject(job), &j); err != nil {
			return false, fmt.Errorf("reading job/%s: %w", job.Name, err)
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				failure = cmpOr(cond.Message, cond.Reason)
				return true, nil
			}
		}
		return false, nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		return false, "", nil
	}
	return err == nil, failure, err
}
