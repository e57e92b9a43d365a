// Package userstatus decides what a SyncUser's status says: where the user is (its policy, or
// its chain step, moved along after an empty cycle), when its next cycle is due, and its
// conditions. The operator and the cycle Jobs both decide it here, from the same inputs, so a
// Job can write a user's whole new status with the cycle's result in one request, and the
// operator, reading it back, finds nothing to change.
package userstatus

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
)

// MaxHistory bounds SyncUser status.history, so a user on a long chain cannot grow its object
// without limit.
const MaxHistory = 20

// Placement is where a user belongs now: the chain step (if any) and its policy.
type Placement struct {
	Chain     string
	Step      string
	StepIndex int
	Policy    string
	LastStep  bool
}

// Problem is why a user cannot be placed; it becomes Stalled=True.
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Message }

// Place decides where a user belongs from its spec, its current status and its chain (nil
// for a user placed on a policy). A user keeps its current step while that step is still in the
// chain; a new user, or one whose step was removed, starts at chainRef.startAt or the first step.
func Place(user *syncv1alpha1.SyncUser, chain *syncv1alpha1.OnboardingChain) (Placement, *Problem) {
	if ref := user.Spec.PolicyRef; ref != nil {
		return Placement{Policy: ref.Name, LastStep: true}, nil
	}
	ref := user.Spec.ChainRef
	if chain == nil {
		return Placement{}, &Problem{syncv1alpha1.SyncUserPolicyNotFoundReason,
			fmt.Sprintf("OnboardingChain %q not found", ref.Name)}
	}
	steps := chain.Spec.Steps
	at := func(i int) Placement {
		return Placement{Chain: chain.Name, Step: steps[i].Name, StepIndex: i, Policy: steps[i].Policy, LastStep: i == len(steps)-1}
	}
	if user.Status.Chain == chain.Name {
		for i, s := range steps {
			if s.Name == user.Status.Step {
				return at(i), nil
			}
		}
	}
	if ref.StartAt == "" {
		return at(0), nil
	}
	for i, s := range steps {
		if s.Name == ref.StartAt {
			return at(i), nil
		}
	}
	return Placement{}, &Problem{syncv1alpha1.SyncUserPolicyNotFoundReason,
		fmt.Sprintf("OnboardingChain %q has no step %q (chainRef.startAt)", chain.Name, ref.StartAt)}
}

// Move is what Settle changed in where a user is.
type Move struct {
	// Placed is true when the user was put on a policy or step it was not on: it is new, or its
	// spec or its chain changed.
	Placed bool
	// Left is the step an empty cycle moved the user on from, "" when it did not move.
	Left string
}

// Settle places the user from its spec and its chain (nil for a user on a policy, or when the
// chain does not exist), and moves it along the chain when its last cycle on its step came back
// empty. It is where both the operator and a cycle Job decide where a user is: the Job writes
// the move with the cycle's result, so the operator, deciding the same from what it reads, has
// nothing left to write.
func Settle(user *syncv1alpha1.SyncUser, chain *syncv1alpha1.OnboardingChain, now time.Time) (Placement, Move, *Problem) {
	current, problem := Place(user, chain)
	if problem != nil {
		return current, Move{}, problem
	}
	var m Move
	if MoveTo(&user.Status, current, metav1.NewTime(now)) {
		meta.RemoveStatusCondition(&user.Status.Conditions, syncv1alpha1.CompletedCondition)
		m.Placed = true
	}
	if m.Left = AdvanceAlongChain(&user.Status, chain, current); m.Left != "" {
		current, _ = Place(user, chain)
	}
	return current, m, nil
}

// Observe sets what the user's status says of its current step: when its next cycle is due, and
// its conditions. problem is Settle's; policy is the current step's SyncPolicy (nil when it does
// not exist); failed is the latest cycle Job that failed without a result for the user since its
// last cycle (nil if none), and failedEnds when each failed Job holding the user ended.
func Observe(user *syncv1alpha1.SyncUser, current Placement, problem *Problem, policy *syncv1alpha1.SyncPolicy,
	failed *JobFailure, failedEnds []time.Time, now time.Time) {
	if problem == nil && policy != nil {
		user.Status.NextSyncTime = NextSyncTime(policy, user, failedEnds, now)
		if failed != nil && user.Status.NextSyncTime != nil {
			failed.RetryAt = user.Status.NextSyncTime.Time
		}
	}
	SetConditions(user, current, problem, policy, failed)
}

// CycleOnCurrentStep returns the user's last cycle when it ran on the user's current policy after
// the user entered the current step; a cycle from an earlier step never counts twice.
func CycleOnCurrentStep(status *syncv1alpha1.SyncUserStatus) *syncv1alpha1.CycleResult {
	c := status.LastCycle
	if c == nil || c.Policy != status.Policy || c.CompletionTime == nil {
		return nil
	}
	if n := len(status.History); n > 0 {
		if entered := status.History[n-1].EnteredTime; entered != nil && c.StartTime != nil && c.StartTime.Before(entered) {
			return nil
		}
	}
	return c
}

// CycleClean is true for a cycle that ran and had no item errors.
func CycleClean(c *syncv1alpha1.CycleResult) bool {
	return c != nil && c.Failure == "" && c.Items.Errors == 0
}

// CycleCompletesStep is true for a cycle that lets a user leave its step: an empty cycle (no
// errors, skipped items, creations or deletions) that really wrote (a dry run proves nothing).
func CycleCompletesStep(c *syncv1alpha1.CycleResult) bool {
	return CycleClean(c) && c.Empty && !c.DryRun
}

// MoveTo records in status that the user is now on p, closing the history entry of the step it
// leaves, and reports whether anything changed.
func MoveTo(status *syncv1alpha1.SyncUserStatus, p Placement, now metav1.Time) bool {
	if status.Chain == p.Chain && status.Step == p.Step && status.Policy == p.Policy && len(status.History) > 0 {
		status.StepIndex = int32(p.StepIndex)
		return false
	}
	if n := len(status.History); n > 0 && status.History[n-1].CompletedTime == nil {
		status.History[n-1].CompletedTime = &now
	}
	status.Chain, status.Step, status.StepIndex, status.Policy = p.Chain, p.Step, int32(p.StepIndex), p.Policy
	status.History = append(status.History, syncv1alpha1.StepHistoryEntry{Step: p.Step, Policy: p.Policy, EnteredTime: &now})
	if len(status.History) > MaxHistory {
		status.History = status.History[len(status.History)-MaxHistory:]
	}
	return true
}

// AdvanceAlongChain moves the user to the next step when its cycle on the current step came back
// empty, and returns the step it left ("" when it did not move). A user on the last step stays.
func AdvanceAlongChain(status *syncv1alpha1.SyncUserStatus, chain *syncv1alpha1.OnboardingChain, current Placement) (left string) {
	if chain == nil || current.LastStep {
		return ""
	}
	c := CycleOnCurrentStep(status)
	if !CycleCompletesStep(c) {
		return ""
	}
	next := chain.Spec.Steps[current.StepIndex+1]
	completed := *c.CompletionTime
	if n := len(status.History); n > 0 {
		status.History[n-1].CompletedTime = &completed
	}
	MoveTo(status, Placement{Chain: chain.Name, Step: next.Name, StepIndex: current.StepIndex + 1,
		Policy: next.Policy, LastStep: current.StepIndex+2 == len(chain.Spec.Steps)}, completed)
	return current.Step
}

// SetConditions computes the user's conditions from its status: Synced from the last cycle on
// the current step, Completed once it synced clean on its last step, Stalled for what needs a
// person, Reconciling while it waits for a cycle, and Ready as the summary.
// policy is the SyncPolicy of the current step, nil when it does not exist; failedJob is the
// latest cycle Job that failed without a result for the user since its last cycle, if any.
func SetConditions(user *syncv1alpha1.SyncUser, current Placement, problem *Problem, policy *syncv1alpha1.SyncPolicy, failedJob *JobFailure) {
	st := &user.Status
	gen := user.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	where := DescribePlacement(st)

	if problem == nil && policy == nil {
		problem = &Problem{syncv1alpha1.SyncUserPolicyNotFoundReason, fmt.Sprintf("SyncPolicy %q not found", current.Policy)}
	}
	if problem != nil {
		kstatus.MarkStalled(&st.Conditions, gen, problem.Reason, problem.Message)
		return
	}

	c := CycleOnCurrentStep(st)
	switch {
	case c == nil:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.SyncedCondition)
	case CycleClean(c):
		set(syncv1alpha1.SyncedCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserSyncedReason, CycleSummary(c))
	default:
		set(syncv1alpha1.SyncedCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserCycleFailedReason, CycleSummary(c))
	}

	// Once completed, a user stays completed on its last step; later cycles only change Synced.
	completed := current.LastStep && (CycleCompletesStep(c) || meta.IsStatusConditionTrue(st.Conditions, syncv1alpha1.CompletedCondition))
	if completed {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserChainCompletedReason, "Synced clean on the last step, "+where)
	} else {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionFalse, syncv1alpha1.ProgressingReason, "Not yet synced clean on the last step")
	}

	stall := PolicyStalled(policy)
	if stall == nil {
		stall = NeedsAPerson(c, policy)
	}
	switch {
	case stall != nil:
		kstatus.MarkStalled(&st.Conditions, gen, stall.Reason, stall.Message)
	case failedJob != nil:
		// Retried with backoff by the policy: not Stalled, but not waiting quietly either.
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		set(syncv1alpha1.ReadyCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserJobFailedReason, failedJob.String())
	case c == nil:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		msg := "Waiting for the first cycle " + where
		set(syncv1alpha1.ReconcilingCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserWaitingForCycleReason, msg)
		set(syncv1alpha1.ReadyCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserWaitingForCycleReason, msg)
	case !CycleClean(c):
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		set(syncv1alpha1.ReadyCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserCycleFailedReason, CycleSummary(c))
	default:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		msg := "Synced " + where
		if completed {
			msg = "Completed, synced " + where
		}
		set(syncv1alpha1.ReadyCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserSyncedReason, msg)
	}
}

// PolicyStalled passes on to the user what stops its policy from launching cycles (a Secret not
// allowed, a Job the API server refuses): the user cannot sync until a person fixes the policy.
func PolicyStalled(policy *syncv1alpha1.SyncPolicy) *Problem {
	cond := meta.FindStatusCondition(policy.Status.Conditions, syncv1alpha1.StalledCondition)
	if cond == nil || cond.Status != metav1.ConditionTrue {
		return nil
	}
	return &Problem{cond.Reason, fmt.Sprintf("SyncPolicy %s is stalled: %s", policy.Name, cond.Message)}
}

// JobFailure is a cycle Job that ended Failed without a result for the user.
type JobFailure struct {
	Job, Reason, Message string
	RetryAt              time.Time
}

// Prefix names the Job, so a message about the same failure is recognised after its retry time moves.
func (f *JobFailure) Prefix() string { return fmt.Sprintf("Cycle Job %s failed", f.Job) }

func (f *JobFailure) String() string {
	msg := fmt.Sprintf("%s (%s): %s", f.Prefix(), f.Reason, f.Message)
	if !f.RetryAt.IsZero() {
		msg += "; retried at " + f.RetryAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// NeedsAPerson says what, in the last cycle on the current step, no later cycle can settle by
// itself, with the count and what resolves it: kstatus then reads Failed instead of waiting for
// ever. Held-back deletes come first, as they name the cycle to approve.
func NeedsAPerson(c *syncv1alpha1.CycleResult, policy *syncv1alpha1.SyncPolicy) *Problem {
	if c == nil {
		return nil
	}
	i := c.Items
	switch {
	case c.PendingDeletes > 0:
		return &Problem{syncv1alpha1.SyncUserDeleteThresholdExceededReason,
			fmt.Sprintf("Cycle %s holds back %d deletes over the policy's threshold; approve with the annotation %s=%s",
				c.ID, c.PendingDeletes, syncv1alpha1.ApproveDeletesAnnotation, c.PendingDeletesCycle)}
	case c.FailureReason == syncv1alpha1.SyncUserDestinationClaimedReason:
		return &Problem{syncv1alpha1.SyncUserDestinationClaimedReason, c.Failure}
	case c.FailureReason == syncv1alpha1.CycleRecordsCorruptReason:
		return &Problem{syncv1alpha1.SyncUserRecordsCorruptReason,
			fmt.Sprintf("The records of this user cannot be read (%s); inspect them with `chainsync records show`, then rebuild them by matchOn with the annotation %s=%s",
				c.Failure, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitClear)}
	case c.FailureReason == syncv1alpha1.CycleInvalidSpecReason:
		return &Problem{syncv1alpha1.InvalidSpecReason,
			fmt.Sprintf("SyncPolicy %s cannot work as written: %s; fix the policy", policy.Name, c.Failure)}
	case i.GivenUp > 0:
		return &Problem{syncv1alpha1.SyncUserItemsGivenUpReason,
			fmt.Sprintf("%d items failed on every attempt and are no longer tried (status.lastCycle.itemReports, `chainsync records show`); fix them, then retry with the annotation %s=%s",
				i.GivenUp, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitResync)}
	case i.Conflicts > 0 && policy.Spec.ConflictResolution == syncv1alpha1.Manual:
		return &Problem{syncv1alpha1.SyncUserConflictsPendingReason,
			fmt.Sprintf("%d items changed on both sides wait for a person (conflictResolution Manual; status.lastCycle.itemReports, `chainsync records show`); make both sides agree and the next cycle links them",
				i.Conflicts)}
	case i.Quarantined > 0:
		return &Problem{syncv1alpha1.SyncUserItemsQuarantinedReason,
			fmt.Sprintf("%d items matched more than one item by matchOn at the first cycle and were left alone (status.lastCycle.itemReports, `chainsync records show`); remove the duplicates, then relink with the annotation %s=%s",
				i.Quarantined, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitClear)}
	}
	return nil
}

func DescribePlacement(st *syncv1alpha1.SyncUserStatus) string {
	if st.Step == "" {
		return fmt.Sprintf("on policy %s", st.Policy)
	}
	return fmt.Sprintf("on step %s (policy %s)", st.Step, st.Policy)
}

// CycleSummary is one line a person reads in `kubectl get su`.
func CycleSummary(c *syncv1alpha1.CycleResult) string {
	if c.Failure != "" {
		return fmt.Sprintf("Cycle %s failed: %s", c.ID, c.Failure)
	}
	i := c.Items
	s := fmt.Sprintf("Cycle %s: %d created, %d updated, %d deleted, %d skipped, %d errors, %d conflicts, %d quarantined",
		c.ID, i.Created, i.Updated, i.Deleted, i.Skipped, i.Errors, i.Conflicts, i.Quarantined)
	if c.DryRun {
		s += " (dry run)"
	}
	return s
}
