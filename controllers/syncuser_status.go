package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// maxHistory bounds SyncUser status.history, so a user on a long chain cannot grow its object
// without limit.
const maxHistory = 20

// placement is where a user belongs now: the chain step (if any) and its policy.
type placement struct {
	chain     string
	step      string
	stepIndex int
	policy    string
	lastStep  bool
}

// placementProblem is why a user cannot be placed; it becomes Stalled=True.
type placementProblem struct {
	reason  string
	message string
}

func (p *placementProblem) Error() string { return p.message }

// placeUser decides where a user belongs from its spec, its current status and its chain (nil
// for a user placed on a policy). A user keeps its current step while that step is still in the
// chain; a new user, or one whose step was removed, starts at chainRef.startAt or the first step.
func placeUser(user *syncv1alpha1.SyncUser, chain *syncv1alpha1.OnboardingChain) (placement, *placementProblem) {
	if ref := user.Spec.PolicyRef; ref != nil {
		return placement{policy: ref.Name, lastStep: true}, nil
	}
	ref := user.Spec.ChainRef
	if chain == nil {
		return placement{}, &placementProblem{syncv1alpha1.SyncUserPolicyNotFoundReason,
			fmt.Sprintf("OnboardingChain %q not found", ref.Name)}
	}
	steps := chain.Spec.Steps
	at := func(i int) placement {
		return placement{chain: chain.Name, step: steps[i].Name, stepIndex: i, policy: steps[i].Policy, lastStep: i == len(steps)-1}
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
	return placement{}, &placementProblem{syncv1alpha1.SyncUserPolicyNotFoundReason,
		fmt.Sprintf("OnboardingChain %q has no step %q (chainRef.startAt)", chain.Name, ref.StartAt)}
}

// cycleOnCurrentStep returns the user's last cycle when it ran on the user's current policy after
// the user entered the current step; a cycle from an earlier step never counts twice.
func cycleOnCurrentStep(status *syncv1alpha1.SyncUserStatus) *syncv1alpha1.CycleResult {
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

// cycleClean is true for a cycle that ran and had no item errors.
func cycleClean(c *syncv1alpha1.CycleResult) bool {
	return c != nil && c.Failure == "" && c.Items.Errors == 0
}

// cycleCompletesStep is true for a cycle that lets a user leave its step: an empty cycle (no
// errors, skipped items, creations or deletions) that really wrote (a dry run proves nothing).
func cycleCompletesStep(c *syncv1alpha1.CycleResult) bool {
	return cycleClean(c) && c.Empty && !c.DryRun
}

// moveTo records in status that the user is now on p, closing the history entry of the step it
// leaves, and reports whether anything changed.
func moveTo(status *syncv1alpha1.SyncUserStatus, p placement, now metav1.Time) bool {
	if status.Chain == p.chain && status.Step == p.step && status.Policy == p.policy && len(status.History) > 0 {
		status.StepIndex = int32(p.stepIndex)
		return false
	}
	if n := len(status.History); n > 0 && status.History[n-1].CompletedTime == nil {
		status.History[n-1].CompletedTime = &now
	}
	status.Chain, status.Step, status.StepIndex, status.Policy = p.chain, p.step, int32(p.stepIndex), p.policy
	status.History = append(status.History, syncv1alpha1.StepHistoryEntry{Step: p.step, Policy: p.policy, EnteredTime: &now})
	if len(status.History) > maxHistory {
		status.History = status.History[len(status.History)-maxHistory:]
	}
	return true
}

// advanceAlongChain moves the user to the next step when its cycle on the current step came back
// empty, and returns the step it left ("" when it did not move). A user on the last step stays.
func advanceAlongChain(status *syncv1alpha1.SyncUserStatus, chain *syncv1alpha1.OnboardingChain, current placement) (left string) {
	if chain == nil || current.lastStep {
		return ""
	}
	c := cycleOnCurrentStep(status)
	if !cycleCompletesStep(c) {
		return ""
	}
	next := chain.Spec.Steps[current.stepIndex+1]
	completed := *c.CompletionTime
	if n := len(status.History); n > 0 {
		status.History[n-1].CompletedTime = &completed
	}
	moveTo(status, placement{chain: chain.Name, step: next.Name, stepIndex: current.stepIndex + 1,
		policy: next.Policy, lastStep: current.stepIndex+2 == len(chain.Spec.Steps)}, completed)
	return current.step
}

// setUserConditions computes the user's conditions from its status: Synced from the last cycle on
// the current step, Completed once it synced clean on its last step, Stalled for what needs a
// person, Reconciling while it waits for a cycle, and Ready as the summary.
// policy is the SyncPolicy of the current step, nil when it does not exist; failedJob is the
// latest cycle Job that failed without a result for the user since its last cycle, if any.
func setUserConditions(user *syncv1alpha1.SyncUser, current placement, problem *placementProblem, policy *syncv1alpha1.SyncPolicy, failedJob *jobFailure) {
	st := &user.Status
	gen := user.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	where := describePlacement(st)

	if problem == nil && policy == nil {
		problem = &placementProblem{syncv1alpha1.SyncUserPolicyNotFoundReason, fmt.Sprintf("SyncPolicy %q not found", current.policy)}
	}
	if problem != nil {
		markStalled(&st.Conditions, gen, problem.reason, problem.message)
		return
	}

	c := cycleOnCurrentStep(st)
	switch {
	case c == nil:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.SyncedCondition)
	case cycleClean(c):
		set(syncv1alpha1.SyncedCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserSyncedReason, cycleSummary(c))
	default:
		set(syncv1alpha1.SyncedCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserCycleFailedReason, cycleSummary(c))
	}

	// Once completed, a user stays completed on its last step; later cycles only change Synced.
	completed := current.lastStep && (cycleCompletesStep(c) || meta.IsStatusConditionTrue(st.Conditions, syncv1alpha1.CompletedCondition))
	if completed {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionTrue, syncv1alpha1.SyncUserChainCompletedReason, "Synced clean on the last step, "+where)
	} else {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionFalse, syncv1alpha1.ProgressingReason, "Not yet synced clean on the last step")
	}

	stall := policyStalled(policy)
	if stall == nil {
		stall = needsAPerson(c, policy)
	}
	switch {
	case stall != nil:
		markStalled(&st.Conditions, gen, stall.reason, stall.message)
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
	case !cycleClean(c):
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		set(syncv1alpha1.ReadyCondition, metav1.ConditionFalse, syncv1alpha1.SyncUserCycleFailedReason, cycleSummary(c))
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

// policyStalled passes on to the user what stops its policy from launching cycles (a Secret not
// allowed, a Job the API server refuses): the user cannot sync until a person fixes the policy.
func policyStalled(policy *syncv1alpha1.SyncPolicy) *placementProblem {
	cond := meta.FindStatusCondition(policy.Status.Conditions, syncv1alpha1.StalledCondition)
	if cond == nil || cond.Status != metav1.ConditionTrue {
		return nil
	}
	return &placementProblem{cond.Reason, fmt.Sprintf("SyncPolicy %s is stalled: %s", policy.Name, cond.Message)}
}

// jobFailure is a cycle Job that ended Failed without a result for the user.
type jobFailure struct {
	job, reason, message string
	retryAt              time.Time
}

// prefix names the Job, so a message about the same failure is recognised after its retry time moves.
func (f *jobFailure) prefix() string { return fmt.Sprintf("Cycle Job %s failed", f.job) }

func (f *jobFailure) String() string {
	msg := fmt.Sprintf("%s (%s): %s", f.prefix(), f.reason, f.message)
	if !f.retryAt.IsZero() {
		msg += "; retried at " + f.retryAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// needsAPerson says what, in the last cycle on the current step, no later cycle can settle by
// itself, with the count and what resolves it: kstatus then reads Failed instead of waiting for
// ever. Held-back deletes come first, as they name the cycle to approve.
func needsAPerson(c *syncv1alpha1.CycleResult, policy *syncv1alpha1.SyncPolicy) *placementProblem {
	if c == nil {
		return nil
	}
	i := c.Items
	switch {
	case c.PendingDeletes > 0:
		return &placementProblem{syncv1alpha1.SyncUserDeleteThresholdExceededReason,
			fmt.Sprintf("Cycle %s holds back %d deletes over the policy's threshold; approve with the annotation %s=%s",
				c.ID, c.PendingDeletes, syncv1alpha1.ApproveDeletesAnnotation, c.PendingDeletesCycle)}
	case c.FailureReason == syncv1alpha1.SyncUserDestinationClaimedReason:
		return &placementProblem{syncv1alpha1.SyncUserDestinationClaimedReason, c.Failure}
	case c.FailureReason == syncv1alpha1.CycleRecordsCorruptReason:
		return &placementProblem{syncv1alpha1.SyncUserRecordsCorruptReason,
			fmt.Sprintf("The records of this user cannot be read (%s); inspect them with `chainsync records show`, then rebuild them by matchOn with the annotation %s=%s",
				c.Failure, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitClear)}
	case c.FailureReason == syncv1alpha1.CycleInvalidSpecReason:
		return &placementProblem{syncv1alpha1.InvalidSpecReason,
			fmt.Sprintf("SyncPolicy %s cannot work as written: %s; fix the policy", policy.Name, c.Failure)}
	case i.GivenUp > 0:
		return &placementProblem{syncv1alpha1.SyncUserItemsGivenUpReason,
			fmt.Sprintf("%d items failed on every attempt and are no longer tried (status.lastCycle.itemReports, `chainsync records show`); fix them, then retry with the annotation %s=%s",
				i.GivenUp, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitResync)}
	case i.Conflicts > 0 && policy.Spec.ConflictResolution == syncv1alpha1.Manual:
		return &placementProblem{syncv1alpha1.SyncUserConflictsPendingReason,
			fmt.Sprintf("%d items changed on both sides wait for a person (conflictResolution Manual; status.lastCycle.itemReports, `chainsync records show`); make both sides agree and the next cycle links them",
				i.Conflicts)}
	case i.Quarantined > 0:
		return &placementProblem{syncv1alpha1.SyncUserItemsQuarantinedReason,
			fmt.Sprintf("%d items matched more than one item by matchOn at the first cycle and were left alone (status.lastCycle.itemReports, `chainsync records show`); remove the duplicates, then relink with the annotation %s=%s",
				i.Quarantined, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitClear)}
	}
	return nil
}

func describePlacement(st *syncv1alpha1.SyncUserStatus) string {
	if st.Step == "" {
		return fmt.Sprintf("on policy %s", st.Policy)
	}
	return fmt.Sprintf("on step %s (policy %s)", st.Step, st.Policy)
}

// cycleSummary is one line a person reads in `kubectl get su`.
func cycleSummary(c *syncv1alpha1.CycleResult) string {
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
