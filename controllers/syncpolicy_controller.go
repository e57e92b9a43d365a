package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	cyclerun "github.com/chainsync/chainsync/internal/cycle"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// SyncPolicyReconciler launches the cycles of a policy's users as Jobs, on schedule, at once for
// new users and on request, and reports the policy's users and Jobs in its status.
type SyncPolicyReconciler struct {
	client.Client
	// APIReader reads Jobs uncached just before launching, so a Job created a moment ago and not
	// yet in the cache cannot lead to a user being cycled twice.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	Jobs      CycleJobBuilder
	// Users holds the users by policy.
	Users *userIndex
	// secretKeys remembers the key names (never the values) of the Secrets policies name.
	secretKeys secretKeyCache
}

// Reconcile handles one SyncPolicy.
func (r *SyncPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	policy := &syncv1alpha1.SyncPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !policy.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // Its Jobs are owned by it and go with it.
	}

	base := policy.DeepCopy()
	defer func() {
		if reconciled(retErr) {
			policy.Status.ObservedGeneration = policy.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, policy, base, func(p *syncv1alpha1.SyncPolicy) any { return p.Status }))
	}()

	sched, err := userstatus.ParseSchedule(policy.Spec)
	if err != nil {
		setPolicyStalled(policy, syncv1alpha1.InvalidSpecReason, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	// What admission cannot check (a where clause's grammar, a delimiter, a file name) is
	// refused here, before any cycle runs, with the field at fault.
	if err := cyclerun.ValidateSpec(policy); err != nil {
		setPolicyStalled(policy, syncv1alpha1.InvalidSpecReason, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if problem, err := r.checkReferences(ctx, policy); err != nil {
		return ctrl.Result{}, fmt.Errorf("checking references: %w", err)
	} else if problem != nil {
		setPolicyStalled(policy, problem.reason, problem.message)
		return ctrl.Result{}, nil // The Secrets and claims are watched: fixed, they requeue this policy.
	}

	users, err := r.Users.users(usersByPolicy, policy.Namespace, policy.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(policy.Namespace), client.MatchingFields{jobOwnerIndex: policy.Name},
		client.UnsafeDisableDeepCopy); err != nil { // Read only; copied before a change.
		return ctrl.Result{}, fmt.Errorf("listing cycle Jobs: %w", err)
	}
	world := observeJobs(jobs.Items)
	if err := r.keepPodMessages(ctx, jobs.Items); err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the pods of failed cycle Jobs: %w", err)
	}
	if err := r.pruneJobHistory(ctx, policy, jobs.Items); err != nil {
		return ctrl.Result{}, fmt.Errorf("removing old cycle Jobs: %w", err)
	}

	now := r.Clock.Now()
	policyRequest := ""
	if v := policy.Annotations[syncv1alpha1.RequestedAtAnnotation]; v != "" && v != policy.Status.LastHandledRequestedAt {
		policyRequest = v
	}
	plan := planCycles(sched, policy, users, world, policyRequest, now)

	var rejected *jobRejectedError
	if !policy.Spec.Suspend && len(plan.due) > 0 {
		launched, err := r.launch(ctx, policy, plan.due)
		if errors.As(err, &rejected) {
			// Retrying at once would be refused again: wait for the spec to change, or back off.
			r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, syncv1alpha1.SyncPolicyJobRejectedReason, "Launch", "%s", rejected.Error())
			plan.due = nil
		} else if err != nil {
			return ctrl.Result{}, err
		}
		world.active = append(world.active, launched...)
		for _, d := range plan.due {
			world.running[d.user] = true
		}
		if len(launched) > 0 {
			policy.Status.LastCycleTime = &metav1.Time{Time: now}
		}
	}
	if policyRequest != "" && !policy.Spec.Suspend {
		policy.Status.LastHandledRequestedAt = policyRequest
	}

	summary := summarizeUsers(users, world)
	policy.Status.Users = summary.counts
	policy.Status.RejectedRows = summary.rejectedRows
	policy.Status.ActiveJobs = world.active
	policy.Status.NextCycleTime = nil
	if !plan.next.IsZero() && !policy.Spec.Suspend {
		policy.Status.NextCycleTime = &metav1.Time{Time: plan.next.Truncate(time.Second)}
		result.RequeueAfter = plan.next.Sub(now)
	}
	if rejected != nil {
		retry := jobRejectedRetryDelay(policy, now)
		setPolicyStalled(policy, syncv1alpha1.SyncPolicyJobRejectedReason, rejected.Error())
		return ctrl.Result{RequeueAfter: retry}, nil
	}
	setPolicyReady(policy, summary.waiting)
	return result, nil
}

// jobRejectedError is the API server refusing a cycle Job for what it is (invalid, forbidden by
// a quota or an admission policy): only a person can change that.
type jobRejectedError struct {
	job string
	err error
}

func (e *jobRejectedError) Error() string {
	return fmt.Sprintf("The API server refused cycle Job %s: %v", e.job, e.err)
}

func (e *jobRejectedError) Unwrap() error { return e.err }

// jobRejectedRetryDelay doubles the wait between attempts while the policy stays rejected, from
// 10 seconds up to 10 minutes: the time since it was first rejected, no less and no more.
func jobRejectedRetryDelay(policy *syncv1alpha1.SyncPolicy, now time.Time) time.Duration {
	const first, most = 10 * time.Second, 10 * time.Minute
	c := meta.FindStatusCondition(policy.Status.Conditions, syncv1alpha1.StalledCondition)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != syncv1alpha1.SyncPolicyJobRejectedReason {
		return first
	}
	return min(most, max(first, now.Sub(c.LastTransitionTime.Time)))
}

// launch creates the Jobs for the due users, leaving out any user that a Job the cache has not
// seen yet already runs, and returns the names of the Jobs it created.
func (r *SyncPolicyReconciler) launch(ctx context.Context, policy *syncv1alpha1.SyncPolicy, due []userCycle) ([]string, error) {
	var live batchv1.JobList
	if err := r.APIReader.List(ctx, &live, client.InNamespace(policy.Namespace),
		client.MatchingLabels{syncv1alpha1.PolicyLabel: policy.Name}); err != nil {
		return nil, fmt.Errorf("listing cycle Jobs: %w", err)
	}
	running := observeJobs(live.Items).running
	due = slices.DeleteFunc(slices.Clone(due), func(d userCycle) bool { return running[d.user] })

	var created []string
	for _, batch := range batchCycles(due, int(policy.Spec.JobTemplate.UsersPerJob)) {
		keys := make([]string, 0, len(batch))
		users := make([]string, 0, len(batch))
		for _, d := range batch {
			keys = append(keys, d.user+"@"+d.due.Key)
			users = append(users, d.user)
		}
		job := r.Jobs.CycleJob(policy, cycleJobName(policy.Name, keys), users)
		if err := r.Create(ctx, job); err != nil {
			if apierrors.IsAlreadyExists(err) {
				continue // Launched by an earlier reconcile of the same world.
			}
			if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
				return created, &jobRejectedError{job: job.Name, err: err}
			}
			return created, fmt.Errorf("creating cycle Job %s: %w", job.Name, err)
		}
		cyclesLaunched.WithLabelValues(policy.Namespace, policy.Name).Add(float64(len(users)))
		ctrl.LoggerFrom(ctx).V(1).Info("Launched cycle Job", "job", klog.KObj(job), "users", len(users))
		r.Recorder.Eventf(policy, job, corev1.EventTypeNormal, "CycleLaunched", "Launch", "Job %s cycles %d users", job.Name, len(users))
		created = append(created, job.Name)
	}
	return created, nil
}

// keepPodMessages copies, once per failed Job, what its last failed pod said onto the Job, where
// its users' conditions read it. A Job whose pods are gone (or never were objects, as with the
// local executor, which puts the pod's words in the Job's condition) is marked checked with "".
func (r *SyncPolicyReconciler) keepPodMessages(ctx context.Context, jobs []batchv1.Job) error {
	for i := range jobs {
		job := &jobs[i]
		if jobOutcome(job) != jobFailed {
			continue
		}
		if _, checked := job.Annotations[podMessageAnnotation]; checked {
			continue
		}
		var pods corev1.PodList
		if err := r.APIReader.List(ctx, &pods, client.InNamespace(job.Namespace),
			client.MatchingLabels{batchv1.JobNameLabel: job.Name}); err != nil {
			return err
		}
		base := job
		job = job.DeepCopy() // Listed from the cache without a copy.
		if job.Annotations == nil {
			job.Annotations = map[string]string{}
		}
		job.Annotations[podMessageAnnotation] = lastPodMessage(pods.Items)
		if err := r.Patch(ctx, job, client.MergeFrom(base)); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// lastPodMessage is the termination message of the pod that failed last, bounded.
func lastPodMessage(pods []corev1.Pod) string {
	var msg string
	var at time.Time
	for i := range pods {
		for _, cs := range pods[i].Status.ContainerStatuses {
			term := cs.State.Terminated
			if term == nil || term.ExitCode == 0 || term.FinishedAt.Time.Before(at) {
				continue
			}
			at = term.FinishedAt.Time
			msg = fmt.Sprintf("pod %s exited %d", pods[i].Name, term.ExitCode)
			if term.Reason != "" {
				msg += " (" + term.Reason + ")"
			}
			if m := strings.TrimSpace(term.Message); m != "" {
				msg += ": " + m
			}
		}
	}
	const most = 1024
	if len(msg) > most {
		msg = "..." + msg[len(msg)-most:]
	}
	return msg
}

// pruneJobHistory deletes finished cycle Jobs beyond the policy's history limits, oldest first.
func (r *SyncPolicyReconciler) pruneJobHistory(ctx context.Context, policy *syncv1alpha1.SyncPolicy, jobs []batchv1.Job) error {
	var succeeded, failed []*batchv1.Job
	for i := range jobs {
		switch jobOutcome(&jobs[i]) {
		case jobSucceeded:
			succeeded = append(succeeded, &jobs[i])
		case jobFailed:
			failed = append(failed, &jobs[i])
		}
	}
	limit := func(p *int32, def int) int {
		if p == nil {
			return def
		}
		return int(*p)
	}
	for _, group := range []struct {
		jobs  []*batchv1.Job
		limit int
	}{{succeeded, limit(policy.Spec.JobTemplate.SuccessfulJobsHistoryLimit, 3)}, {failed, limit(policy.Spec.JobTemplate.FailedJobsHistoryLimit, 3)}} {
		sort.Slice(group.jobs, func(i, j int) bool { return jobEnded(group.jobs[i]).Time.Before(jobEnded(group.jobs[j]).Time) })
		for _, job := range group.jobs[:max(0, len(group.jobs)-group.limit)] {
			if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return nil
}

// SetupWithManager watches policies, their Jobs, their users, and the Secrets and claims they name.
func (r *SyncPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1alpha1.SyncPolicy{}).
		Owns(&batchv1.Job{}).
		Watches(&syncv1alpha1.SyncUser{}, enqueueCoalesced(policyOfUser, userEventWindow)).
		// Metadata only: the manager never keeps the cluster's Secrets (their values) in memory.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newPolicyList, policySecretIndex))).
		WatchesMetadata(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newPolicyList, policyServiceAccountIndex))).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newPolicyList, policyClaimIndex))).
		Named("syncpolicy").
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

func policyOfUser(_ context.Context, obj client.Object) []reconcile.Request {
	user := obj.(*syncv1alpha1.SyncUser)
	if user.Status.Policy == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: user.Namespace, Name: user.Status.Policy}}}
}

func newPolicyList() client.ObjectList { return &syncv1alpha1.SyncPolicyList{} }
