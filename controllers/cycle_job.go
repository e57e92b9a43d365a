package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
)

const (
	// VolumesRoot is where a cycle pod mounts each PersistentVolumeClaim it needs, one directory
	// per claim name; endpoint paths and the record store are resolved under it.
	VolumesRoot = jobargs.VolumesRoot

	// ManagedByLabel marks the Jobs chainsync launches.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "chainsync"

	// SecretsRoot is where a cycle pod finds the keys of the Secrets its policy names, as files
	// <SecretsRoot>/<secret>/<key>: mounted by the kubelet, so the pod's service account needs no
	// permission on Secrets at all.
	SecretsRoot = jobargs.SecretsRoot

	// jobUsersAnnotation on a cycle Job lists the SyncUsers it cycles, comma-separated (names
	// cannot hold a comma), for the operator: which users a Job runs is read here, never from
	// the container's arguments, which are the pod's input.
	//
	// Annotations hold 256 KiB in all. The worst case, 10,000 users (usersPerJob's maximum) of
	// 253-character names, is 2.5 MB: more than an annotation holds, but also more than etcd
	// stores for any object (1.5 MiB), so the users as arguments alone could not hold it either.
	// What fits here is usersPerJob x (name length + 1) up to about 255 KiB: 10,000 users of up
	// to 25 characters, or 1,000 of any length. Past it the API server refuses the Job as
	// invalid, the policy stalls with JobRejected quoting the limit, and a lower usersPerJob
	// fixes it. A ConfigMap per Job would hold more, at the price of a second object to create,
	// watch and index for every Job; an environment variable would not reach the pod past
	// 128 KiB (Linux's limit on one exec string).
	jobUsersAnnotation = "sync.chainsync.dev/users"

	// forgetUserAnnotation on a records-deletion Job names the SyncUser it works for.
	forgetUserAnnotation = "sync.chainsync.dev/forget-user"

	// podMessageAnnotation on a failed cycle Job keeps what its last failed pod said when it
	// ended (its termination message, or its log's last lines): the Job's own condition says
	// only "backoff limit", and the pod may be gone by the time a person looks.
	podMessageAnnotation = "sync.chainsync.dev/pod-message"

	// cycleUID is the non-root user cycle pods run as (distroless' nonroot).
	cycleUID = 65532
)

// CycleJobBuilder turns a policy and a batch of its users into the Job that cycles them.
type CycleJobBuilder struct {
	// Image is the chainsync image; its binary runs `chainsync cycle`.
	Image string
	// PullPolicy of the image; empty lets the cluster decide.
	PullPolicy corev1.PullPolicy
}

// cycleJobName derives a Job name from the policy and the keys of the cycles it runs, so the
// same batch always gets the same name. Job names end up in a label, hence at most 63 characters.
func cycleJobName(policy string, keys []string) string {
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	return truncate(policy, 46) + "-" + hex.EncodeToString(h.Sum(nil))[:10]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimRight(s[:n], "-.")
}

// CycleJob returns the Job that cycles users (SyncUser names) on policy, owned by the policy. The
// users are spread over up to jobTemplate.parallelism pods of an Indexed Job; pod i takes users
// i, i+n, i+2n...
func (b CycleJobBuilder) CycleJob(policy *syncv1alpha1.SyncPolicy, name string, users []string) *batchv1.Job {
	tmpl := policy.Spec.JobTemplate
	pods := max(1, min(int32(len(users)), tmpl.Parallelism))
	args := jobargs.Cycle{
		Namespace:   policy.Namespace,
		Policy:      policy.Name,
		Job:         name,
		Store:       storePath(policy),
		Volumes:     VolumesRoot,
		Secrets:     SecretsRoot,
		Concurrency: int(max(1, tmpl.Concurrency)),
		Shards:      int(pods),
		// The destinations the operator checked against the Secrets' consent: the cycle refuses
		// any other, should the policy change between this check and the cycle reading it.
		AllowedDestinations: checkedDestinations(policy),
		Users:               users,
	}
	job := b.job(policy, name, args.Args())
	job.Annotations = map[string]string{jobUsersAnnotation: strings.Join(users, ",")}
	job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(policy, syncv1alpha1.GroupVersion.WithKind("SyncPolicy"))}
	b.mountSecrets(policy, job)
	job.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	job.Spec.Completions = ptr.To(pods)
	job.Spec.Parallelism = ptr.To(pods)
	return job
}

// ForgetJob returns the Job that deletes a user's records from its policy's store, owned by the
// user: the user is deleted once the Job succeeded (its finalizer holds it until then), and the
// garbage collector then takes the Job with it.
//
// The owner reference does not block the owner's deletion: the Job is created while the user is
// already being deleted, and a foreground deletion would otherwise delete the Job it waits for.
func (b CycleJobBuilder) ForgetJob(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser) *batchv1.Job {
	name := truncate(user.Name, 45) + "-forget-" + string(user.UID)[:min(8, len(user.UID))]
	args := jobargs.ForgetRecords{
		Namespace: policy.Namespace,
		Job:       name,
		Store:     storePath(policy),
		Users:     []string{user.Name},
	}
	job := b.job(policy, name, args.Args())
	job.Annotations = map[string]string{forgetUserAnnotation: user.Name}
	owner := metav1.NewControllerRef(user, syncv1alpha1.GroupVersion.WithKind("SyncUser"))
	owner.BlockOwnerDeletion = ptr.To(false)
	job.OwnerReferences = []metav1.OwnerReference{*owner}
	return job
}

// ReadMembersJob returns the Job that reads an enrolment's source through one endpoint of
// policy, owned by the enrolment: the policy's claims, Secrets, service account and limits, as
// its cycles have them.
func (b CycleJobBuilder) ReadMembersJob(policy *syncv1alpha1.SyncPolicy, enrolment *syncv1alpha1.SyncEnrolment, args jobargs.ReadMembers) *batchv1.Job {
	job := b.job(policy, args.Job, args.Args())
	job.Labels[syncv1alpha1.EnrolmentLabel] = enrolment.Name
	job.Spec.Template.Labels[syncv1alpha1.EnrolmentLabel] = enrolment.Name
	job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(enrolment, syncv1alpha1.GroupVersion.WithKind("SyncEnrolment"))}
	// Its failures are counted by the enrolment, which backs off; the pod is not retried at once.
	job.Spec.BackoffLimit = ptr.To[int32](0)
	b.mountSecrets(policy, job)
	return job
}

func (b CycleJobBuilder) job(policy *syncv1alpha1.SyncPolicy, name string, args []string) *batchv1.Job {
	tmpl := policy.Spec.JobTemplate
	labels := map[string]string{ManagedByLabel: managedBy, syncv1alpha1.PolicyLabel: policy.Name}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for i, claim := range policy.Claims() {
		vol := "claim-" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: jobargs.ClaimPath(VolumesRoot, claim, "")})
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: policy.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            tmpl.BackoffLimit,
			ActiveDeadlineSeconds:   tmpl.ActiveDeadlineSeconds,
			TTLSecondsAfterFinished: tmpl.TTLSecondsAfterFinished,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           tmpl.ServiceAccountName,
					AutomountServiceAccountToken: ptr.To(true),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](cycleUID),
						RunAsGroup:     ptr.To[int64](cycleUID),
						FSGroup:        ptr.To[int64](cycleUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "cycle",
						Image:           b.Image,
						ImagePullPolicy: b.PullPolicy,
						Command:         []string{"/usr/local/bin/chainsync"}, // The image's entrypoint.
						Args:            args,
						Env:             []corev1.EnvVar{{Name: "TMPDIR", Value: "/tmp"}},
						Resources:       tmpl.Resources,
						VolumeMounts:    mounts,
						// A pod that fails says why in its status, where `kubectl describe` shows it.
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// mountSecrets mounts the policy's Secrets in the Job's pod.
func (b CycleJobBuilder) mountSecrets(policy *syncv1alpha1.SyncPolicy, job *batchv1.Job) {
	pod := &job.Spec.Template.Spec
	for i, secret := range secretVolumes(policy) {
		vol := "secret-" + strconv.Itoa(i)
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{Secret: secret}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: vol, MountPath: jobargs.SecretPath(SecretsRoot, secret.SecretName, ""), ReadOnly: true})
	}
}

// secretVolumes mounts only the keys the policy names, each Secret once, readable by the cycle's
// user alone.
func secretVolumes(policy *syncv1alpha1.SyncPolicy) []*corev1.SecretVolumeSource {
	var out []*corev1.SecretVolumeSource
	byName := map[string]*corev1.SecretVolumeSource{}
	for _, ref := range policy.SecretKeys() {
		src, ok := byName[ref.Name]
		if !ok {
			src = &corev1.SecretVolumeSource{SecretName: ref.Name, DefaultMode: ptr.To[int32](0o400)}
			byName[ref.Name] = src
			out = append(out, src)
		}
		if !slices.ContainsFunc(src.Items, func(k corev1.KeyToPath) bool { return k.Key == ref.Key }) {
			src.Items = append(src.Items, corev1.KeyToPath{Key: ref.Key, Path: ref.Key})
		}
	}
	return out
}

// checkedDestinations lists, once each, where the policy's endpoints send Secret values.
func checkedDestinations(policy *syncv1alpha1.SyncPolicy) []string {
	var dests []string
	for _, use := range policy.SecretUses() {
		dests = append(dests, use.Destination)
	}
	slices.Sort(dests)
	return slices.Compact(dests)
}

// storePath is where a cycle pod finds the policy's record store.
func storePath(policy *syncv1alpha1.SyncPolicy) string {
	return jobargs.ClaimPath(VolumesRoot, policy.Spec.Store.ClaimName, policy.Spec.Store.SubPath)
}

// jobUsers returns the SyncUser names a cycle Job runs; none for any other Job.
func jobUsers(job *batchv1.Job) []string {
	if users := job.Annotations[jobUsersAnnotation]; users != "" {
		return strings.Split(users, ",")
	}
	return nil
}

// forgetJobUser returns the SyncUser whose records a records-deletion Job deletes; "" for any
// other Job.
func forgetJobUser(job *batchv1.Job) string {
	return job.Annotations[forgetUserAnnotation]
}

type outcome int

const (
	jobRunning outcome = iota
	jobSucceeded
	jobFailed
)

func jobOutcome(job *batchv1.Job) outcome {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return jobSucceeded
		case batchv1.JobFailed:
			return jobFailed
		}
	}
	return jobRunning
}

// jobEnded is when a finished Job ended (its completion time, or the Failed condition's time).
func jobEnded(job *batchv1.Job) metav1.Time {
	if job.Status.CompletionTime != nil {
		return *job.Status.CompletionTime
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime
		}
	}
	return job.CreationTimestamp
}
