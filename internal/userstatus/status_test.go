package userstatus

import (
	"cmp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
)

func chainUser(startAt string) *syncv1alpha1.SyncUser {
	return &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Generation: 1},
		Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "ada@example.com"},
			ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding", StartAt: startAt},
		},
	}
}

func TestPlaceUser(t *testing.T) {
	chain := fx.ThreeSteps()
	cases := []struct {
		name        string
		user        *syncv1alpha1.SyncUser
		chain       *syncv1alpha1.OnboardingChain
		wantPolicy  string
		wantStep    string
		wantLast    bool
		wantProblem string
	}{
		{"new user starts at the first step", chainUser(""), chain, "p-import", "import", false, ""},
		{"startAt bypasses earlier steps", chainUser("verify"), chain, "p-verify", "verify", false, ""},
		{"startAt on the last step", chainUser("bau"), chain, "p-bau", "bau", true, ""},
		{"unknown startAt", chainUser("nope"), chain, "", "", false, `OnboardingChain "onboarding" has no step "nope"`},
		{"missing chain", chainUser(""), nil, "", "", false, `OnboardingChain "onboarding" not found`},
		{"a placed user keeps its step, whatever startAt says now", func() *syncv1alpha1.SyncUser {
			u := chainUser("import")
			u.Status.Chain, u.Status.Step = "onboarding", "bau"
			return u
		}(), chain, "p-bau", "bau", true, ""},
		{"a user whose step was removed starts over", func() *syncv1alpha1.SyncUser {
			u := chainUser("")
			u.Status.Chain, u.Status.Step = "onboarding", "removed"
			return u
		}(), chain, "p-import", "import", false, ""},
		{"a user moved to another chain is placed anew", func() *syncv1alpha1.SyncUser {
			u := chainUser("")
			u.Status.Chain, u.Status.Step = "other", "bau"
			return u
		}(), chain, "p-import", "import", false, ""},
		{"policyRef is a one-step placement", &syncv1alpha1.SyncUser{Spec: syncv1alpha1.SyncUserSpec{
			PolicyRef: &syncv1alpha1.PolicyReference{Name: "crm"}}}, nil, "crm", "", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p, problem := Place(tc.user, tc.chain)
			if tc.wantProblem != "" {
				g.Expect(problem).NotTo(BeNil())
				g.Expect(problem.Message).To(ContainSubstring(tc.wantProblem))
				g.Expect(problem.Reason).To(Equal(syncv1alpha1.SyncUserPolicyNotFoundReason))
				return
			}
			g.Expect(problem).To(BeNil())
			g.Expect(p.Policy).To(Equal(tc.wantPolicy))
			g.Expect(p.Step).To(Equal(tc.wantStep))
			g.Expect(p.LastStep).To(Equal(tc.wantLast))
		})
	}
}

func TestAdvanceAlongChain(t *testing.T) {
	chain := fx.ThreeSteps()
	placed := func(step int) (*syncv1alpha1.SyncUser, Placement) {
		u := chainUser("")
		p := Placement{Chain: "onboarding", Step: chain.Spec.Steps[step].Name, StepIndex: step,
			Policy: chain.Spec.Steps[step].Policy, LastStep: step == 2}
		MoveTo(&u.Status, p, *fx.At(0))
		return u, p
	}
	cases := []struct {
		name     string
		step     int
		last     *syncv1alpha1.CycleResult
		wantStep string
	}{
		{"an empty cycle moves the user on", 0, fx.Cycle("p-import", 1, 2), "verify"},
		{"a cycle that created items does not", 0, fx.Cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Items.Created = false, 3
		}), "import"},
		{"a failed cycle does not", 0, fx.Cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure = false, "connection refused"
		}), "import"},
		{"a dry run proves nothing", 0, fx.Cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) { c.DryRun = true }), "import"},
		{"a cycle of another policy does not count", 0, fx.Cycle("p-verify", 1, 2), "import"},
		{"a cycle from before the user entered the step does not count", 0, fx.Cycle("p-import", -5, -4), "import"},
		{"still running", 0, fx.Cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) { c.CompletionTime = nil }), "import"},
		{"the last step keeps the user", 2, fx.Cycle("p-bau", 1, 2), "bau"},
		{"no cycle yet", 1, nil, "verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u, p := placed(tc.step)
			u.Status.LastCycle = tc.last
			left := AdvanceAlongChain(&u.Status, chain, p)
			g.Expect(u.Status.Step).To(Equal(tc.wantStep))
			if tc.wantStep == chain.Spec.Steps[tc.step].Name {
				g.Expect(left).To(BeEmpty())
				g.Expect(u.Status.History).To(HaveLen(1))
				return
			}
			g.Expect(left).To(Equal(chain.Spec.Steps[tc.step].Name))
			g.Expect(u.Status.Policy).To(Equal(chain.Spec.Steps[tc.step+1].Policy))
			g.Expect(u.Status.History).To(HaveLen(2))
			g.Expect(u.Status.History[0].CompletedTime).To(Equal(tc.last.CompletionTime), "the step left is closed when its cycle ended")
			g.Expect(u.Status.History[1].EnteredTime).To(Equal(tc.last.CompletionTime))
			// The cycle that moved the user never counts on the new step.
			g.Expect(CycleOnCurrentStep(&u.Status)).To(BeNil())
		})
	}
}

func TestHistoryIsBounded(t *testing.T) {
	g := NewWithT(t)
	var st syncv1alpha1.SyncUserStatus
	for i := range 50 {
		MoveTo(&st, Placement{Policy: "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, *fx.At(i))
	}
	g.Expect(st.History).To(HaveLen(MaxHistory))
	g.Expect(st.History[MaxHistory-1].Policy).To(Equal(st.Policy), "the newest entry is kept")
	g.Expect(st.History[0].EnteredTime).To(Equal(fx.At(50 - MaxHistory)))
}

func TestUserConditions(t *testing.T) {
	type want struct {
		ready, synced, completed string
		stalled, reconciling     string // reason when present, "" when absent
		readyMessage             string
	}
	cases := []struct {
		name    string
		last    *syncv1alpha1.CycleResult
		lastStp bool
		problem *Problem
		found   bool
		want    want
		rule    syncv1alpha1.ConflictResolution
	}{
		{"waiting for the first cycle", nil, false, nil, true,
			want{ready: "False", synced: "", completed: "False", reconciling: syncv1alpha1.SyncUserWaitingForCycleReason, readyMessage: "Waiting for the first cycle"}, ""},
		{"synced with changes mid-chain", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Created = false, 4 }), false, nil, true,
			want{ready: "True", synced: "True", completed: "False", readyMessage: "Synced on step"}, ""},
		{"empty cycle on the last step completes", fx.Cycle("p", 1, 2), true, nil, true,
			want{ready: "True", synced: "True", completed: "True", readyMessage: "Completed"}, ""},
		{"endpoint down", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, "dial tcp: connection refused", "EndpointUnavailable"
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", readyMessage: "connection refused"}, ""},
		{"item errors", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Errors = false, 2 }), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", readyMessage: "2 errors"}, ""},
		{"deletes held back", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.PendingDeletes, c.PendingDeletesCycle = false, 40, "p-123"
		}), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserDeleteThresholdExceededReason,
				readyMessage: "sync.chainsync.dev/approve-deletes=p-123"}, ""},
		{"destination claimed", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, `policy "b" cannot sync ada into "crm": claimed by "a"`, syncv1alpha1.SyncUserDestinationClaimedReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserDestinationClaimedReason, readyMessage: "claimed"}, ""},
		{"records corrupt", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, "records.db: checksum mismatch", syncv1alpha1.CycleRecordsCorruptReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserRecordsCorruptReason,
				readyMessage: "sync.chainsync.dev/reinit=clear"}, ""},
		{"policy wrong, found by the cycle", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, `table "peple" does not exist`, syncv1alpha1.CycleInvalidSpecReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.InvalidSpecReason,
				readyMessage: `SyncPolicy p cannot work as written: table "peple" does not exist`}, ""},
		{"items given up", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Errors, c.Items.GivenUp = false, 3, 2 }), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserItemsGivenUpReason,
				readyMessage: "2 items failed on every attempt"}, ""},
		{"conflicts left for a person", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Conflicts, c.Items.Skipped = false, 4, 4 }), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserConflictsPendingReason,
				readyMessage: "4 items changed on both sides"}, syncv1alpha1.Manual},
		{"conflicts settled by the rule", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Items.Conflicts, c.Items.Updated = 4, 4 }), false, nil, true,
			want{ready: "True", synced: "True", completed: "False", readyMessage: "Synced"}, syncv1alpha1.SourceWins},
		{"items quarantined", fx.Cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Quarantined, c.Items.Skipped = false, 1, 1 }), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserItemsQuarantinedReason,
				readyMessage: "1 items matched more than one item"}, ""},
		{"policy missing", nil, false, nil, false,
			want{ready: "False", stalled: syncv1alpha1.SyncUserPolicyNotFoundReason, readyMessage: `SyncPolicy "p" not found`}, ""},
		{"chain missing", nil, false, &Problem{syncv1alpha1.SyncUserPolicyNotFoundReason, "OnboardingChain \"x\" not found"}, false,
			want{ready: "False", stalled: syncv1alpha1.SyncUserPolicyNotFoundReason, readyMessage: "OnboardingChain"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u := chainUser("")
			p := Placement{Chain: "onboarding", Step: "s", Policy: "p", LastStep: tc.lastStp}
			MoveTo(&u.Status, p, *fx.At(0))
			u.Status.LastCycle = tc.last
			var policy *syncv1alpha1.SyncPolicy
			if tc.found {
				policy = &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
				policy.Spec.ConflictResolution = cmp.Or(tc.rule, syncv1alpha1.SourceWins)
			}
			SetConditions(u, p, tc.problem, policy, nil)

			conds := u.Status.Conditions
			status := func(t string) string {
				if c := meta.FindStatusCondition(conds, t); c != nil {
					return string(c.Status)
				}
				return ""
			}
			reason := func(t string) string {
				if c := meta.FindStatusCondition(conds, t); c != nil {
					g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s exists only while true", t)
					return c.Reason
				}
				return ""
			}
			g.Expect(status(syncv1alpha1.ReadyCondition)).To(Equal(tc.want.ready))
			g.Expect(meta.FindStatusCondition(conds, syncv1alpha1.ReadyCondition).Message).To(ContainSubstring(tc.want.readyMessage))
			if tc.problem == nil && tc.found {
				g.Expect(status(syncv1alpha1.SyncedCondition)).To(Equal(tc.want.synced))
				g.Expect(status(syncv1alpha1.CompletedCondition)).To(Equal(tc.want.completed))
			}
			g.Expect(reason(syncv1alpha1.StalledCondition)).To(Equal(tc.want.stalled))
			g.Expect(reason(syncv1alpha1.ReconcilingCondition)).To(Equal(tc.want.reconciling))
			for _, c := range conds {
				g.Expect(c.ObservedGeneration).To(Equal(u.Generation))
			}
		})
	}
}

func TestCompletedStaysOnTheLastStep(t *testing.T) {
	g := NewWithT(t)
	u := chainUser("")
	p := Placement{Chain: "onboarding", Step: "bau", Policy: "p", LastStep: true}
	MoveTo(&u.Status, p, *fx.At(0))
	u.Status.LastCycle = fx.Cycle("p", 1, 2)
	SetConditions(u, p, nil, &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, nil)
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition)).To(BeTrue())

	// Business as usual: later cycles bring changes, the user stays completed and synced.
	u.Status.LastCycle = fx.Cycle("p", 10, 11, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Created = false, 1 })
	SetConditions(u, p, nil, &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, nil)
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
}

func TestUserShowsWhatKeepsItsCyclesFromRunning(t *testing.T) {
	p := Placement{Policy: "p", LastStep: true}
	newUser := func() *syncv1alpha1.SyncUser {
		u := chainUser("")
		MoveTo(&u.Status, p, *fx.At(0))
		return u
	}

	t.Run("a failed Job: Ready=False JobFailed with the Job's words and the retry, not Stalled", func(t *testing.T) {
		g := NewWithT(t)
		u := newUser()
		policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
		SetConditions(u, p, nil, policy, &JobFailure{Job: "p-1a2b", Reason: "BackoffLimitExceeded",
			Message: "Job has reached the specified backoff limit: exit code 1: syncusers.sync.chainsync.dev is forbidden", RetryAt: fx.At(4).Time})
		ready := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(syncv1alpha1.SyncUserJobFailedReason))
		g.Expect(ready.Message).To(And(ContainSubstring("Cycle Job p-1a2b failed (BackoffLimitExceeded)"),
			ContainSubstring("is forbidden"), ContainSubstring("retried at "+fx.At(4).UTC().Format(time.RFC3339))))
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.StalledCondition)).To(BeNil())
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReconcilingCondition)).To(BeNil(),
			"not 'waiting for the first cycle' for ever")
	})

	t.Run("a stalled policy: the user is Stalled with the policy's reason and words", func(t *testing.T) {
		g := NewWithT(t)
		u := newUser()
		policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
		meta.SetStatusCondition(&policy.Status.Conditions, metav1.Condition{Type: syncv1alpha1.StalledCondition, Status: metav1.ConditionTrue,
			Reason: syncv1alpha1.SyncPolicyJobRejectedReason, Message: "The API server refused cycle Job p-1: spec.template.spec.serviceAccountName: Invalid value"})
		SetConditions(u, p, nil, policy, nil)
		stalled := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled.Reason).To(Equal(syncv1alpha1.SyncPolicyJobRejectedReason))
		g.Expect(stalled.Message).To(ContainSubstring("SyncPolicy p is stalled: The API server refused cycle Job p-1"))
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
	})
}

// A cycle Job writes a user's status with its result, decided by Settle and Observe; the
// operator then decides again from what the Job wrote. Deciding again must change nothing, or
// every cycle would still cost the operator's write after the Job's.
func TestDecidingAgainFromWhatWasDecidedChangesNothing(t *testing.T) {
	chain := fx.ThreeSteps()
	policies := map[string]*syncv1alpha1.SyncPolicy{}
	for _, s := range chain.Spec.Steps {
		policies[s.Policy] = &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: s.Policy},
			Spec: syncv1alpha1.SyncPolicySpec{Schedule: syncv1alpha1.Schedule{Interval: "10s", JitterPercent: 10}}}
	}
	decide := func(u *syncv1alpha1.SyncUser, now time.Time) Move {
		current, move, problem := Settle(u, chain, now)
		var policy *syncv1alpha1.SyncPolicy
		if problem == nil {
			policy = policies[current.Policy]
		}
		Observe(u, current, problem, policy, nil, nil, now)
		return move
	}
	cases := []struct {
		name     string
		step     int
		last     func(policy string) *syncv1alpha1.CycleResult
		wantStep string
		wantMove string
	}{
		{"a cycle with changes keeps the user on its step", 0,
			func(p string) *syncv1alpha1.CycleResult {
				return fx.Cycle(p, 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Created = false, 3 })
			},
			"import", ""},
		{"an empty cycle moves the user on", 0, func(p string) *syncv1alpha1.CycleResult { return fx.Cycle(p, 1, 2) }, "verify", "import"},
		{"an empty cycle on the last step completes the chain", 2, func(p string) *syncv1alpha1.CycleResult { return fx.Cycle(p, 1, 2) }, "bau", ""},
		{"a failed cycle keeps the user where it is", 1, func(p string) *syncv1alpha1.CycleResult {
			return fx.Cycle(p, 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Failure = false, "dial tcp: connection refused" })
		}, "verify", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u := chainUser("")
			u.UID = "uid-ada"
			u.Spec.ChainRef.StartAt = chain.Spec.Steps[tc.step].Name
			decide(u, fx.At(0).Time) // Placed, as the operator does before the first cycle.
			u.Status.LastCycle = tc.last(chain.Spec.Steps[tc.step].Policy)

			move := decide(u, fx.At(3).Time) // The Job, with the result.
			g.Expect(move.Left).To(Equal(tc.wantMove))
			g.Expect(u.Status.Step).To(Equal(tc.wantStep))
			written := u.DeepCopy()

			for _, later := range []int{3, 4, 30} { // The operator, at once or later.
				again := written.DeepCopy()
				g.Expect(decide(again, fx.At(later).Time)).To(Equal(Move{}))
				g.Expect(again.Status).To(Equal(written.Status), "decided again %d minutes in", later)
			}
		})
	}
}
