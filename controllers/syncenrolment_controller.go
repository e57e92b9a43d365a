package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/kstatus"
	"github.com/chainsync/chainsync/internal/members"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// SyncEnrolmentReconciler makes one SyncUser per member of an enrolment, from its list, its
// selector and its source, and suspends or deletes them, under a threshold, when members leave.
type SyncEnrolmentReconciler struct {
	client.Client
	// APIReader reads the source's Jobs uncached before launching one, as for cycle Jobs.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	Jobs      CycleJobBuilder
}

// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncenrolments,verbs=get;list;watch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncenrolments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncenrolments/finalizers,verbs=update
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncusers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// Reconcile handles one SyncEnrolment.
func (r *SyncEnrolmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	enrolment := &syncv1alpha1.SyncEnrolment{}
	if err := r.Get(ctx, req.NamespacedName, enrolment); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !enrolment.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // Its users, Jobs and ConfigMap are owned by it and go with it.
	}
	base := enrolment.DeepCopy()
	defer func() {
		if reconciled(retErr) {
			enrolment.Status.ObservedGeneration = enrolment.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, enrolment, base, func(e *syncv1alpha1.SyncEnrolment) any { return e.Status }))
	}()
	if enrolment.Spec.Suspend {
		markNotReady(&enrolment.Status.Conditions, enrolment.Generation, syncv1alpha1.SuspendedReason, "spec.suspend is true: no user is created, changed or removed")
		return ctrl.Result{}, nil
	}

	now := r.Clock.Now()
	src, err := r.reconcileSource(ctx, enrolment, now)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the source: %w", err)
	}
	var users syncv1alpha1.SyncUserList
	if err := r.List(ctx, &users, client.InNamespace(enrolment.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing users: %w", err)
	}
	var owned, others []syncv1alpha1.SyncUser
	for _, u := range users.Items {
		if metav1.IsControlledBy(&u, enrolment) {
			owned = append(owned, u)
		} else {
			others = append(others, u)
		}
	}
	found, err := gatherMembers(enrolment, others, src.read)
	if err != nil {
		kstatus.MarkStalled(&enrolment.Status.Conditions, enrolment.Generation, syncv1alpha1.InvalidSpecReason, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	complete := map[string]bool{listOrigin: true, selectorOrigin: true, sourceOrigin: src.complete}
	plan := planEnrolment(enrolment, found, owned, others, complete, now)
	if err := r.apply(ctx, enrolment, plan, owned); err != nil {
		return ctrl.Result{}, err
	}
	setEnrolmentStatus(enrolment, plan, src.reason, src.problem)
	if !src.next.IsZero() {
		result.RequeueAfter = max(src.next.Sub(now), time.Second)
	}
	return result, nil
}

// sourceState is what the reconcile knows of spec.source.
type sourceState struct {
	// read is the last read's members; nil without a source or before its first read.
	read *members.List
	// complete says whether read is every member of the source as the spec now says it.
	complete bool
	// reason and problem say why not, for the conditions.
	reason, problem string
	// next is when to look again.
	next time.Time
}

// reconcileSource reads the source's last members and launches a Job to read it again when due.
func (r *SyncEnrolmentReconciler) reconcileSource(ctx context.Context, enrolment *syncv1alpha1.SyncEnrolment, now time.Time) (sourceState, error) {
	src := enrolment.Spec.Source
	st := &enrolment.Status
	if src == nil {
		st.SourceJob, st.SourceReadTime, st.NextSourceReadTime = "", nil, nil
		return sourceState{}, nil
	}
	var state sourceState
	var cm corev1.ConfigMap
	err := r.Get(ctx, client.ObjectKey{Namespace: enrolment.Namespace, Name: members.ConfigMapName(enrolment.Name)}, &cm)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return state, err
	case !metav1.IsControlledBy(&cm, enrolment):
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentSourceFailedReason,
			fmt.Sprintf("ConfigMap %s is not this enrolment's: delete or rename it", cm.Name)
		return state, nil
	default:
		read, err := members.Decode(cm.BinaryData[members.DataKey])
		if err != nil {
			state.reason, state.problem = syncv1alpha1.SyncEnrolmentSourceFailedReason, fmt.Sprintf("ConfigMap %s: %v", cm.Name, err)
			break
		}
		state.read = &read
		st.SourceReadTime = &metav1.Time{Time: read.ReadTime}
	}
	hash := sourceHash(src)
	fresh := state.read != nil && state.read.SourceHash == hash
	state.complete = fresh && state.read.Unreadable == 0

	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(enrolment.Namespace),
		client.MatchingLabels{syncv1alpha1.EnrolmentLabel: enrolment.Name}); err != nil {
		return state, err
	}
	failedSince, running, lastFailure := sourceJobs(jobs.Items, enrolment, state.read)
	due := sourceReadDue(enrolment, state.read, hash, failedSince, now)
	st.NextSourceReadTime = &metav1.Time{Time: due.at.Truncate(time.Second)}

	policy := &syncv1alpha1.SyncPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: enrolment.Namespace, Name: src.PolicyRef.Name}, policy); apierrors.IsNotFound(err) {
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentPolicyNotFoundReason,
			fmt.Sprintf("spec.source.policyRef: SyncPolicy %q not found", src.PolicyRef.Name)
		return state, nil
	} else if err != nil {
		return state, err
	}
	// The policy's Secrets, claims and service account are checked by its own reconcile: a Job
	// of an unchecked policy could mount a Secret that never consented.
	if ready := meta.FindStatusCondition(policy.Status.Conditions, syncv1alpha1.ReadyCondition); policy.Status.ObservedGeneration != policy.Generation ||
		ready == nil || (ready.Status != metav1.ConditionTrue && ready.Reason != syncv1alpha1.SuspendedReason) {
		msg := fmt.Sprintf("waiting for SyncPolicy %s to be Ready before reading its endpoint", policy.Name)
		if ready != nil && ready.Message != "" {
			msg += ": " + ready.Message
		}
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentSourceFailedReason, msg
		return state, nil
	}

	switch {
	case running != "":
		st.SourceJob = running
	case !due.at.After(now):
		name, err := r.launchRead(ctx, enrolment, policy, hash, due.key)
		if err != nil {
			return state, err
		}
		st.SourceJob = name
		if due.request != "" {
			st.LastHandledRequestedAt = due.request
		}
	default:
		state.next = due.at
	}
	switch {
	case lastFailure != "":
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentSourceFailedReason,
			"the last read of the source failed; the members of the read before stand: "+lastFailure
	case state.read == nil:
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentReadingReason, "reading the source for the first time"
	case !fresh:
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentReadingReason, "spec.source changed: reading it again; nobody is removed until then"
	case state.read.Unreadable > 0:
		state.reason, state.problem = syncv1alpha1.SyncEnrolmentSourceFailedReason,
			fmt.Sprintf("%d rows of the source could not be read; nobody is removed until a read has none", state.read.Unreadable)
	}
	if state.next.IsZero() && running == "" {
		state.next = now.Add(time.Minute) // A launched read: its Job's end wakes this anyway.
	}
	return state, nil
}

// sourceHash names spec.source as it is: a read made for another is stale.
func sourceHash(src *syncv1alpha1.EnrolmentSource) string {
	b, _ := json.Marshal(src)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// sourceJobs reads the enrolment's read Jobs: the failures after the last read (when they
// ended), the one running, and what the latest failure said.
func sourceJobs(jobs []batchv1.Job, enrolment *syncv1alpha1.SyncEnrolment, read *members.List) (failedSince []time.Time, running, lastFailure string) {
	var lastRead time.Time
	if read != nil {
		lastRead = read.ReadTime
	}
	var latest time.Time
	for i := range jobs {
		job := &jobs[i]
		if !metav1.IsControlledBy(job, enrolment) {
			continue
		}
		switch jobOutcome(job) {
		case jobRunning:
			running = job.Name
		case jobFailed:
			ended := jobEnded(job).Time
			if !ended.After(lastRead) {
				continue
			}
			failedSince = append(failedSince, ended)
			if ended.After(latest) || lastFailure == "" {
				latest = ended
				lastFailure = jobFailureMessage(job)
			}
		}
	}
	return failedSince, running, lastFailure
}

// jobFailureMessage is what a failed Job says of itself: its pod's message when kept, else
// its Failed condition.
func jobFailureMessage(job *batchv1.Job) string {
	if m := job.Annotations[podMessageAnnotation]; m != "" {
		return "Job " + job.Name + ": " + m
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return shortenTo(fmt.Sprintf("Job %s: %s: %s", job.Name, c.Reason, c.Message), 1024)
		}
	}
	return "Job " + job.Name + " failed"
}

// sourceRead is when the source is read next, and a key naming that read.
type sourceRead struct {
	at      time.Time
	key     string
	request string
}

// sourceReadDue: at once for a requested read, a first read or a changed source; else an
// interval after the last read; later after failures, backing off as cycles do.
func sourceReadDue(enrolment *syncv1alpha1.SyncEnrolment, read *members.List, hash string, failedSince []time.Time, now time.Time) sourceRead {
	interval := 10 * time.Minute
	if d, err := time.ParseDuration(enrolment.Spec.Source.Interval); err == nil && d > 0 {
		interval = d
	}
	var due sourceRead
	var lastRead time.Time
	switch req := enrolment.Annotations[syncv1alpha1.RequestedAtAnnotation]; {
	case req != "" && req != enrolment.Status.LastHandledRequestedAt:
		due = sourceRead{at: now, key: "requested:" + req, request: req}
	case read == nil || read.SourceHash != hash:
		due = sourceRead{at: now, key: "spec:" + hash + ":" + fmt.Sprint(enrolment.Generation)}
	default:
		lastRead = read.ReadTime
		at := lastRead.Add(interval)
		due = sourceRead{at: at, key: "at:" + fmt.Sprint(at.Unix())}
	}
	if retry := userstatus.RetryAfterFailedJobs(failedSince, lastRead); retry.After(due.at) {
		due = sourceRead{at: retry, key: "retry:" + fmt.Sprint(retry.Unix())}
	}
	return due
}

// launchRead creates the Job reading the source, from the source policy's template.
func (r *SyncEnrolmentReconciler) launchRead(ctx context.Context, enrolment *syncv1alpha1.SyncEnrolment,
	policy *syncv1alpha1.SyncPolicy, hash, key string) (string, error) {
	sum := sha256.Sum256([]byte(key))
	name := truncate(enrolment.Name, 40) + "-members-" + hex.EncodeToString(sum[:])[:8]
	var live batchv1.JobList
	if err := r.APIReader.List(ctx, &live, client.InNamespace(enrolment.Namespace),
		client.MatchingLabels{syncv1alpha1.EnrolmentLabel: enrolment.Name}); err != nil {
		return "", fmt.Errorf("listing the source's Jobs: %w", err)
	}
	for _, j := range live.Items {
		if jobOutcome(&j) == jobRunning || j.Name == name {
			return j.Name, nil // Launched already, by a reconcile the cache has not caught up with.
		}
	}
	job := r.Jobs.ReadMembersJob(policy, enrolment, jobargs.ReadMembers{
		Namespace: enrolment.Namespace, Enrolment: enrolment.Name, Job: name, SourceHash: hash,
		Volumes: VolumesRoot, Secrets: SecretsRoot, AllowedDestinations: checkedDestinations(policy),
	})
	if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating Job %s: %w", name, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Launched the source's read", "job", klog.KObj(job))
	return name, nil
}

// apply makes the users as the plan says, and records what it did in one event. Changes are
// merge patches of what the plan changed, without the resourceVersion: cycles write the users'
// status all the time, and an update would keep losing to them.
func (r *SyncEnrolmentReconciler) apply(ctx context.Context, enrolment *syncv1alpha1.SyncEnrolment, plan enrolmentPlan,
	owned []syncv1alpha1.SyncUser) error {
	was := make(map[string]*syncv1alpha1.SyncUser, len(owned))
	for i := range owned {
		was[owned[i].Name] = &owned[i]
	}
	patch := func(u *syncv1alpha1.SyncUser) error {
		base := was[u.Name]
		return r.Patch(ctx, u, client.MergeFrom(base))
	}
	var created, changed, suspended, deleted int
	for _, u := range plan.apply {
		if u.ResourceVersion == "" {
			if err := r.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating SyncUser %s: %w", u.Name, err)
			}
			created++
			continue
		}
		if err := patch(u); err != nil {
			return fmt.Errorf("updating SyncUser %s: %w", u.Name, err)
		}
		changed++
	}
	for _, u := range plan.remove {
		if enrolment.Spec.Removals.Action == syncv1alpha1.DeleteRemoved {
			if err := r.Delete(ctx, u, client.Preconditions{UID: &u.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting SyncUser %s: %w", u.Name, err)
			}
			deleted++
			continue
		}
		if err := patch(u); err != nil {
			return fmt.Errorf("suspending SyncUser %s: %w", u.Name, err)
		}
		suspended++
	}
	if created+changed+suspended+deleted > 0 {
		var parts []string
		for _, p := range []struct {
			n    int
			what string
		}{{created, "created"}, {changed, "updated"}, {suspended, "suspended (their members left)"}, {deleted, "deleted (their members left)"}} {
			if p.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
			}
		}
		r.Recorder.Eventf(enrolment, nil, corev1.EventTypeNormal, "UsersEnrolled", "Enrol", "SyncUsers %s", strings.Join(parts, ", "))
	}
	return nil
}

// markNotReady says Ready=False for a reason that is neither in progress nor failed (suspended).
func markNotReady(conds *[]metav1.Condition, generation int64, reason, message string) {
	meta.RemoveStatusCondition(conds, syncv1alpha1.StalledCondition)
	meta.RemoveStatusCondition(conds, syncv1alpha1.ReconcilingCondition)
	meta.SetStatusCondition(conds, metav1.Condition{Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionFalse,
		Reason: reason, Message: message, ObservedGeneration: generation})
}

const enrolmentSourcePolicyIndex = ".spec.source.policyRef"

// SetupWithManager watches enrolments, the users they make or select, their read Jobs and
// ConfigMaps, and the policies their sources read.
func (r *SyncEnrolmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &syncv1alpha1.SyncEnrolment{}, enrolmentSourcePolicyIndex,
		func(o client.Object) []string {
			if src := o.(*syncv1alpha1.SyncEnrolment).Spec.Source; src != nil {
				return []string{src.PolicyRef.Name}
			}
			return nil
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1alpha1.SyncEnrolment{}).
		Owns(&batchv1.Job{}).
		Owns(&corev1.ConfigMap{}).
		// Users change status all the time; an enrolment reads only their labels and spec.
		Watches(&syncv1alpha1.SyncUser{}, handler.EnqueueRequestsFromMapFunc(r.enrolmentsOfUser),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&syncv1alpha1.SyncPolicy{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newEnrolmentList, enrolmentSourcePolicyIndex))).
		Named("syncenrolment").
		Complete(r)
}

// enrolmentsOfUser are the enrolment that made the user, and those of its namespace that select
// users or might place the same identity (every enrolment there: they are few).
func (r *SyncEnrolmentReconciler) enrolmentsOfUser(ctx context.Context, obj client.Object) []reconcile.Request {
	var list syncv1alpha1.SyncEnrolmentList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing enrolments", "user", klog.KObj(obj))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, e := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&e)})
	}
	return reqs
}

func newEnrolmentList() client.ObjectList { return &syncv1alpha1.SyncEnrolmentList{} }
