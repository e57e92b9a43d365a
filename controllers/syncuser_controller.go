package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// RecordsFinalizer holds a deleted SyncUser until its records are retained or deleted as its
// spec.recordsOnDelete says.
const RecordsFinalizer = "sync.chainsync.dev/records"

// SyncUserReconciler places users on their policy or chain step, moves them along chains after
// an empty cycle, and keeps their conditions current. Cycles themselves are launched by the
// SyncPolicyReconciler and write status.lastCycle.
type SyncUserReconciler struct {
	client.Client
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// Jobs builds the Job that deletes a user's records.
	Jobs CycleJobBuilder
	// Users holds the users by chain and by policy.
	Users *userIndex

	// startedAt and seen make each cycle result count once in the metrics, and each move and
	// completion make one event: what happened before this process started was counted and
	// announced by its predecessor.
	startedAt time.Time
	seen      sync.Map // user (namespace and name) -> seenUser
}

// Reconcile handles one SyncUser.
func (r *SyncUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	user := &syncv1alpha1.SyncUser{}
	if err := r.Get(ctx, req.NamespacedName, user); err != nil {
		if apierrors.IsNotFound(err) {
			r.seen.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !user.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, user)
	}
	if err := r.keepFinalizer(ctx, user); err != nil {
		return ctrl.Result{}, err
	}

	base := user.DeepCopy()
	defer func() {
		if reconciled(retErr) {
			user.Status.ObservedGeneration = user.Generation
		}
		// Cycle Jobs write users' status too: a patch computed from an older read must not undo theirs.
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, user, base, func(u *syncv1alpha1.SyncUser) any { return u.Status },
			client.MergeFromWithOptimisticLock{}))
	}()

	chain, err := r.chainOf(ctx, user)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.countCycle(user)
	now := r.Clock.Now()
	current, move, problem := userstatus.Settle(user, chain, now)
	var policy *syncv1alpha1.SyncPolicy
	var failed *userstatus.JobFailure
	var failedEnds []time.Time
	if problem == nil {
		if move.Placed {
			log.Info("Placed user", "policy", current.Policy, "step", current.Step)
		}
		if move.Left != "" {
			log.Info("Moved user along its chain", "from", move.Left, "to", current.Step)
		}
		if policy, err = r.policyNamed(ctx, user.Namespace, current.Policy); err != nil {
			return ctrl.Result{}, err
		}
		if policy != nil {
			if failed, failedEnds, err = r.failedCycleJobs(ctx, user); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	userstatus.Observe(user, current, problem, policy, failed, failedEnds, now)
	r.announce(user)
	if failed != nil && !strings.HasPrefix(readyMessage(base), failed.Prefix()) {
		r.Recorder.Eventf(user, nil, corev1.EventTypeWarning, syncv1alpha1.SyncUserJobFailedReason, "Cycle", "%s", failed.String())
	}
	return ctrl.Result{}, nil // A problem is terminal until the chain or the spec changes; both are watched.
}

// keepFinalizer puts the records finalizer on a user whose records are to be deleted with it,
// before the user is synced, so they are never orphaned; and takes it off a user whose records
// stay (Retain, the default): deleting such a user has nothing to wait for, and thousands of
// users need not each cost a write to add a finalizer that does nothing.
func (r *SyncUserReconciler) keepFinalizer(ctx context.Context, user *syncv1alpha1.SyncUser) error {
	base := user.DeepCopy()
	var changed bool
	if user.Spec.RecordsOnDelete == syncv1alpha1.DeleteRecords {
		changed = controllerutil.AddFinalizer(user, RecordsFinalizer)
	} else {
		changed = controllerutil.RemoveFinalizer(user, RecordsFinalizer)
	}
	if !changed {
		return nil
	}
	if err := r.patchFinalizers(ctx, user, base); err != nil {
		return fmt.Errorf("updating the finalizers of SyncUser %s: %w", klog.KObj(user), err)
	}
	return nil
}

// patchFinalizers writes the user's finalizers as changed from base, and only them: the cached
// user the operator holds lacks what it does not read (manager.stripUser), so a whole update
// would drop it. The patch holds only if the user is as read, so no one's finalizer is lost.
func (r *SyncUserReconciler) patchFinalizers(ctx context.Context, user, base *syncv1alpha1.SyncUser) error {
	return r.Patch(ctx, user, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// policyNamed reads a policy from the cache; nil when it does not exist.
func (r *SyncUserReconciler) policyNamed(ctx context.Context, namespace, name string) (*syncv1alpha1.SyncPolicy, error) {
	policy := &syncv1alpha1.SyncPolicy{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, policy)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting SyncPolicy %s: %w", name, err)
	}
	return policy, nil
}

// sinceStart says whether t, as the API stores times (whole seconds), is not before this process
// started: what happened earlier was counted and announced by its predecessor.
func (r *SyncUserReconciler) sinceStart(t time.Time) bool {
	return !t.Before(r.startedAt.Truncate(time.Second))
}

// seenUser is what this process has counted and announced of one user.
type seenUser struct {
	cycle     string    // the last cycle result counted in the metrics
	moved     time.Time // when the last move along the chain that was announced happened
	completed time.Time // when the completion that was announced happened
}

// announce records an event for each move along the chain and each completion of the chain
// that this process has not announced yet, whoever wrote it into the status: a cycle Job writes
// the move its empty cycle causes with the cycle's result, so the operator learns of it here.
// What happened before this process started was announced by its predecessor.
func (r *SyncUserReconciler) announce(user *syncv1alpha1.SyncUser) {
	key := client.ObjectKeyFromObject(user)
	prev, _ := r.seen.Load(key)
	was, _ := prev.(seenUser)
	now := was
	st := &user.Status
	if n := len(st.History); n >= 2 && st.LastCycle != nil && st.LastCycle.CompletionTime != nil {
		from, to := st.History[n-2], st.History[n-1]
		// A move by an empty cycle enters the next step when that cycle completed.
		if entered := to.EnteredTime; entered != nil && entered.Equal(st.LastCycle.CompletionTime) &&
			st.LastCycle.Policy == from.Policy && r.sinceStart(entered.Time) && !entered.Time.Equal(was.moved) {
			r.Recorder.Eventf(user, nil, corev1.EventTypeNormal, syncv1alpha1.SyncUserChainAdvancedReason, "Advance",
				"Cycle on step %s came back empty: moved to step %s (policy %s)", from.Step, to.Step, to.Policy)
			now.moved = entered.Time
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, syncv1alpha1.CompletedCondition); c != nil && c.Status == metav1.ConditionTrue &&
		r.sinceStart(c.LastTransitionTime.Time) && !c.LastTransitionTime.Time.Equal(was.completed) {
		r.Recorder.Eventf(user, nil, corev1.EventTypeNormal, syncv1alpha1.SyncUserChainCompletedReason, "Complete",
			"Synced clean on the last step (policy %s)", st.Policy)
		now.completed = c.LastTransitionTime.Time
	}
	if now != was {
		r.seen.Store(key, now)
	}
}

// failedCycleJobs returns the latest cycle Job of the user's policy that failed without a result
// for the user since its last cycle there (nil if none), and when each failed Job holding the user
// ended, for the retry backoff.
func (r *SyncUserReconciler) failedCycleJobs(ctx context.Context, user *syncv1alpha1.SyncUser) (*userstatus.JobFailure, []time.Time, error) {
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(user.Namespace), client.MatchingFields{jobUserIndex: user.Name},
		client.UnsafeDisableDeepCopy); err != nil { // Read only.
		return nil, nil, fmt.Errorf("listing the cycle Jobs of %s: %w", klog.KObj(user), err)
	}
	st := &user.Status
	var since time.Time
	if n := len(st.History); n > 0 && st.History[n-1].EnteredTime != nil {
		since = st.History[n-1].EnteredTime.Time
	}
	if c := userstatus.CycleOnCurrentStep(st); c != nil && c.CompletionTime.After(since) {
		since = c.CompletionTime.Time
	}
	var ends []time.Time
	var latest *batchv1.Job
	for i := range jobs.Items {
		job := &jobs.Items[i]
		if job.Labels[syncv1alpha1.PolicyLabel] != st.Policy || jobOutcome(job) != jobFailed {
			continue
		}
		ended := jobEnded(job).Time
		ends = append(ends, ended)
		gotResult := st.LastCycle != nil && st.LastCycle.Job == job.Name
		if ended.After(since) && !gotResult && (latest == nil || ended.After(jobEnded(latest).Time)) {
			latest = job
		}
	}
	if latest == nil {
		return nil, ends, nil
	}
	f := &userstatus.JobFailure{Job: latest.Name, Reason: "Failed", Message: "the Job failed"}
	for _, c := range latest.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			f.Reason, f.Message = c.Reason, c.Message
		}
	}
	if pod := latest.Annotations[podMessageAnnotation]; pod != "" {
		f.Message += "; " + pod
	}
	return f, ends, nil
}

func readyMessage(u *syncv1alpha1.SyncUser) string {
	if c := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition); c != nil {
		return c.Message
	}
	return ""
}

// countCycle adds the user's latest cycle result to the metrics, once.
func (r *SyncUserReconciler) countCycle(user *syncv1alpha1.SyncUser) {
	c := user.Status.LastCycle
	if c == nil || c.CompletionTime == nil || !r.sinceStart(c.CompletionTime.Time) {
		return
	}
	key := client.ObjectKeyFromObject(user)
	prev, _ := r.seen.Load(key)
	seen, _ := prev.(seenUser)
	if seen.cycle == c.ID {
		return
	}
	seen.cycle = c.ID
	r.seen.Store(key, seen)
	result := "changed"
	switch {
	case c.Failure != "":
		result = "failed"
	case c.Items.Errors > 0:
		result = "item_errors"
	case c.Empty:
		result = "empty"
	}
	cyclesFinished.WithLabelValues(user.Namespace, c.Policy, result).Inc()
	itemsApplied.WithLabelValues(user.Namespace, c.Policy, "create").Add(float64(c.Items.Created))
	itemsApplied.WithLabelValues(user.Namespace, c.Policy, "update").Add(float64(c.Items.Updated))
	itemsApplied.WithLabelValues(user.Namespace, c.Policy, "delete").Add(float64(c.Items.Deleted))
	if c.StartTime != nil {
		cycleDuration.WithLabelValues(user.Namespace, c.Policy).Observe(c.CompletionTime.Sub(c.StartTime.Time).Seconds())
	}
}

func (r *SyncUserReconciler) chainOf(ctx context.Context, user *syncv1alpha1.SyncUser) (*syncv1alpha1.OnboardingChain, error) {
	if user.Spec.ChainRef == nil {
		return nil, nil
	}
	chain := &syncv1alpha1.OnboardingChain{}
	err := r.Get(ctx, client.ObjectKey{Namespace: user.Namespace, Name: user.Spec.ChainRef.Name}, chain)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting OnboardingChain %s: %w", user.Spec.ChainRef.Name, err)
	}
	return chain, nil
}

// reconcileDelete lets a deleted user go once its records are dealt with: kept (Retain), or
// deleted by a records Job on the user's policy's store (Delete).
func (r *SyncUserReconciler) reconcileDelete(ctx context.Context, user *syncv1alpha1.SyncUser) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(user, RecordsFinalizer) {
		return ctrl.Result{}, nil
	}
	if user.Spec.RecordsOnDelete == syncv1alpha1.DeleteRecords && user.Status.Policy != "" {
		done, err := r.deleteRecords(ctx, user)
		if err != nil || !done {
			return ctrl.Result{}, err
		}
	}
	base := user.DeepCopy()
	controllerutil.RemoveFinalizer(user, RecordsFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.patchFinalizers(ctx, user, base))
}

// deleteRecords runs (once) the Job that deletes the user's records and reports whether it is
// done. The Job is the user's (ForgetJob): the finalizer holds the user until it succeeded, and
// the garbage collector then deletes it with the user. Without its policy there is no store to
// reach: the records are then left in place, and an event says so.
func (r *SyncUserReconciler) deleteRecords(ctx context.Context, user *syncv1alpha1.SyncUser) (bool, error) {
	policy := &syncv1alpha1.SyncPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: user.Namespace, Name: user.Status.Policy}, policy); err != nil {
		if apierrors.IsNotFound(err) {
			r.Recorder.Eventf(user, nil, corev1.EventTypeWarning, syncv1alpha1.SyncUserPolicyNotFoundReason, "DeleteRecords",
				"Records left in place: SyncPolicy %s, which names the record store, no longer exists", user.Status.Policy)
			return true, nil
		}
		return false, err
	}
	job := r.Jobs.ForgetJob(policy, user)
	existing := &batchv1.Job{}
	err := r.Get(ctx, client.ObjectKeyFromObject(job), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("creating Job %s to delete the records of %s: %w", job.Name, klog.KObj(user), err)
		}
		return false, nil
	case err != nil:
		return false, err
	}
	switch jobOutcome(existing) {
	case jobSucceeded:
		return true, nil
	case jobFailed:
		r.Recorder.Eventf(user, nil, corev1.EventTypeWarning, "DeleteRecordsFailed", "DeleteRecords",
			"Job %s could not delete the records; delete the Job to retry, or remove the finalizer %s to leave them", existing.Name, RecordsFinalizer)
	}
	return false, nil
}

// SetupWithManager watches SyncUsers, their chains and policies, and the Jobs that delete records.
func (r *SyncUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1alpha1.SyncUser{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, lastCycleChanged(), deletionStarted()))).
		// Placement reads a chain's steps, never its status: a chain's status, patched as its users
		// move, would otherwise wake every user of the chain each time (#13's profile: 40% of the
		// operator's CPU at 3,000 users).
		Watches(&syncv1alpha1.OnboardingChain{}, handler.EnqueueRequestsFromMapFunc(r.Users.enqueue(usersByChain)),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&syncv1alpha1.SyncPolicy{}, handler.EnqueueRequestsFromMapFunc(r.Users.enqueue(usersByPolicy)),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, policyStallChanged()))).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(usersOfJob), builder.WithPredicates(jobFinished())).
		Named("syncuser").
		// Users are many and independent: placing a burst of them one at a time would take
		// minutes of API round trips.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Complete(r)
}

// usersOfJob maps a finished Job to the users it held: a failed cycle Job shows on them, and a
// records Job lets its deleted user go.
func usersOfJob(_ context.Context, obj client.Object) []reconcile.Request {
	job := obj.(*batchv1.Job)
	names := jobUsers(job)
	if user := forgetJobUser(job); user != "" {
		names = append(names, user)
	}
	var reqs []reconcile.Request
	for _, name := range names {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}})
	}
	return reqs
}

// jobFinished passes a Job's creation, deletion, the update that finishes it, and the one that
// adds its failed pod's words; a running Job's progress concerns no user.
func jobFinished() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*batchv1.Job), e.ObjectNew.(*batchv1.Job)
		return jobOutcome(o) != jobOutcome(n) || o.Annotations[podMessageAnnotation] != n.Annotations[podMessageAnnotation]
	}}
}

// policyStallChanged passes the status updates that users mirror: the policy stalling, or
// recovering. Its counts change on every cycle and concern no user.
func policyStallChanged() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o := meta.FindStatusCondition(e.ObjectOld.(*syncv1alpha1.SyncPolicy).Status.Conditions, syncv1alpha1.StalledCondition)
		n := meta.FindStatusCondition(e.ObjectNew.(*syncv1alpha1.SyncPolicy).Status.Conditions, syncv1alpha1.StalledCondition)
		if o == nil || n == nil {
			return (o == nil) != (n == nil)
		}
		return o.Status != n.Status || o.Reason != n.Reason || o.Message != n.Message
	}}
}

// lastCycleChanged passes the status updates that matter to placement: a new cycle result.
func lastCycleChanged() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*syncv1alpha1.SyncUser), e.ObjectNew.(*syncv1alpha1.SyncUser)
		return !equality.Semantic.DeepEqual(o.Status.LastCycle, n.Status.LastCycle)
	}}
}

// deletionStarted passes the update that sets a deletion timestamp, which need not change the
// generation.
func deletionStarted() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}
