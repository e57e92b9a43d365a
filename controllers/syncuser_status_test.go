package controllers

import (
	"cmp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func at(minutes int) *metav1.Time {
	t := metav1.NewTime(t0.Add(time.Duration(minutes) * time.Minute))
	return &t
}

func threeSteps() *syncv1alpha1.OnboardingChain {
	return &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding"},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "p-import"}, {Name: "verify", Policy: "p-verify"}, {Name: "bau", Policy: "p-bau"},
		}},
	}
}

func chainUser(startAt string) *syncv1alpha1.SyncUser {
	return &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Generation: 1},
		Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "ada@example.com"},
			ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding", StartAt: startAt},
		},
	}
}

func cycle(policy string, start, end int, mutate ...func(*syncv1alpha1.CycleResult)) *syncv1alpha1.CycleResult {
	c := &syncv1alpha1.CycleResult{ID: "job-" + policy, Policy: policy, StartTime: at(start), CompletionTime: at(end), Empty: true}
	for _, m := range mutate {
		m(c)
	}
	return c
}

func TestPlaceUser(t *testing.T) {
	chain := threeSteps()
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
			p, problem := placeUser(tc.user, tc.chain)
			if tc.wantProblem != "" {
				g.Expect(problem).NotTo(BeNil())
				g.Expect(problem.message).To(ContainSubstring(tc.wantProblem))
				g.Expect(problem.reason).To(Equal(syncv1alpha1.SyncUserPolicyNotFoundReason))
				return
			}
			g.Expect(problem).To(BeNil())
			g.Expect(p.policy).To(Equal(tc.wantPolicy))
			g.Expect(p.step).To(Equal(tc.wantStep))
			g.Expect(p.lastStep).To(Equal(tc.wantLast))
		})
	}
}

func TestAdvanceAlongChain(t *testing.T) {
	chain := threeSteps()
	placed := func(step int) (*syncv1alpha1.SyncUser, placement) {
		u := chainUser("")
		p := placement{chain: "onboarding", step: chain.Spec.Steps[step].Name, stepIndex: step,
			policy: chain.Spec.Steps[step].Policy, lastStep: step == 2}
		moveTo(&u.Status, p, *at(0))
		return u, p
	}
	cases := []struct {
		name     string
		step     int
		last     *syncv1alpha1.CycleResult
		wantStep string
	}{
		{"an empty cycle moves the user on", 0, cycle("p-import", 1, 2), "verify"},
		{"a cycle that created items does not", 0, cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Items.Created = false, 3
		}), "import"},
		{"a failed cycle does not", 0, cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure = false, "connection refused"
		}), "import"},
		{"a dry run proves nothing", 0, cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) { c.DryRun = true }), "import"},
		{"a cycle of another policy does not count", 0, cycle("p-verify", 1, 2), "import"},
		{"a cycle from before the user entered the step does not count", 0, cycle("p-import", -5, -4), "import"},
		{"still running", 0, cycle("p-import", 1, 2, func(c *syncv1alpha1.CycleResult) { c.CompletionTime = nil }), "import"},
		{"the last step keeps the user", 2, cycle("p-bau", 1, 2), "bau"},
		{"no cycle yet", 1, nil, "verify"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u, p := placed(tc.step)
			u.Status.LastCycle = tc.last
			left := advanceAlongChain(&u.Status, chain, p)
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
			g.Expect(cycleOnCurrentStep(&u.Status)).To(BeNil())
		})
	}
}

func TestHistoryIsBounded(t *testing.T) {
	g := NewWithT(t)
	var st syncv1alpha1.SyncUserStatus
	for i := range 50 {
		moveTo(&st, placement{policy: "p" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, *at(i))
	}
	g.Expect(st.History).To(HaveLen(maxHistory))
	g.Expect(st.History[maxHistory-1].Policy).To(Equal(st.Policy), "the newest entry is kept")
	g.Expect(st.History[0].EnteredTime).To(Equal(at(50 - maxHistory)))
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
		problem *placementProblem
		found   bool
		want    want
		rule    syncv1alpha1.ConflictResolution
	}{
		{"waiting for the first cycle", nil, false, nil, true,
			want{ready: "False", synced: "", completed: "False", reconciling: syncv1alpha1.SyncUserWaitingForCycleReason, readyMessage: "Waiting for the first cycle"}, ""},
		{"synced with changes mid-chain", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Created = false, 4 }), false, nil, true,
			want{ready: "True", synced: "True", completed: "False", readyMessage: "Synced on step"}, ""},
		{"empty cycle on the last step completes", cycle("p", 1, 2), true, nil, true,
			want{ready: "True", synced: "True", completed: "True", readyMessage: "Completed"}, ""},
		{"endpoint down", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, "dial tcp: connection refused", "EndpointUnavailable"
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", readyMessage: "connection refused"}, ""},
		{"item errors", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Errors = false, 2 }), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", readyMessage: "2 errors"}, ""},
		{"deletes held back", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.PendingDeletes, c.PendingDeletesCycle = false, 40, "p-123"
		}), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserDeleteThresholdExceededReason,
				readyMessage: "sync.chainsync.dev/approve-deletes=p-123"}, ""},
		{"destination claimed", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, `policy "b" cannot sync ada into "crm": claimed by "a"`, syncv1alpha1.SyncUserDestinationClaimedReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserDestinationClaimedReason, readyMessage: "claimed"}, ""},
		{"records corrupt", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, "records.db: checksum mismatch", syncv1alpha1.CycleRecordsCorruptReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserRecordsCorruptReason,
				readyMessage: "sync.chainsync.dev/reinit=clear"}, ""},
		{"policy wrong, found by the cycle", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) {
			c.Empty, c.Failure, c.FailureReason = false, `table "peple" does not exist`, syncv1alpha1.CycleInvalidSpecReason
		}), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.InvalidSpecReason,
				readyMessage: `SyncPolicy p cannot work as written: table "peple" does not exist`}, ""},
		{"items given up", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Errors, c.Items.GivenUp = false, 3, 2 }), false, nil, true,
			want{ready: "False", synced: "False", completed: "False", stalled: syncv1alpha1.SyncUserItemsGivenUpReason,
				readyMessage: "2 items failed on every attempt"}, ""},
		{"conflicts left for a person", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Conflicts, c.Items.Skipped = false, 4, 4 }), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserConflictsPendingReason,
				readyMessage: "4 items changed on both sides"}, syncv1alpha1.Manual},
		{"conflicts settled by the rule", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Items.Conflicts, c.Items.Updated = 4, 4 }), false, nil, true,
			want{ready: "True", synced: "True", completed: "False", readyMessage: "Synced"}, syncv1alpha1.SourceWins},
		{"items quarantined", cycle("p", 1, 2, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Quarantined, c.Items.Skipped = false, 1, 1 }), false, nil, true,
			want{ready: "False", synced: "True", completed: "False", stalled: syncv1alpha1.SyncUserItemsQuarantinedReason,
				readyMessage: "1 items matched more than one item"}, ""},
		{"policy missing", nil, false, nil, false,
			want{ready: "False", stalled: syncv1alpha1.SyncUserPolicyNotFoundReason, readyMessage: `SyncPolicy "p" not found`}, ""},
		{"chain missing", nil, false, &placementProblem{syncv1alpha1.SyncUserPolicyNotFoundReason, "OnboardingChain \"x\" not found"}, false,
			want{ready: "False", stalled: syncv1alpha1.SyncUserPolicyNotFoundReason, readyMessage: "OnboardingChain"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			u := chainUser("")
			p := placement{chain: "onboarding", step: "s", policy: "p", lastStep: tc.lastStp}
			moveTo(&u.Status, p, *at(0))
			u.Status.LastCycle = tc.last
			var policy *syncv1alpha1.SyncPolicy
			if tc.found {
				policy = &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
				policy.Spec.ConflictResolution = cmp.Or(tc.rule, syncv1alpha1.SourceWins)
			}
			setUserConditions(u, p, tc.problem, policy, nil)

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
	p := placement{chain: "onboarding", step: "bau", policy: "p", lastStep: true}
	moveTo(&u.Status, p, *at(0))
	u.Status.LastCycle = cycle("p", 1, 2)
	setUserConditions(u, p, nil, &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, nil)
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition)).To(BeTrue())

	// Business as usual: later cycles bring changes, the user stays completed and synced.
	u.Status.LastCycle = cycle("p", 10, 11, func(c *syncv1alpha1.CycleResult) { c.Empty, c.Items.Created = false, 1 })
	setUserConditions(u, p, nil, &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, nil)
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
}

func TestUserShowsWhatKeepsItsCyclesFromRunning(t *testing.T) {
	p := placement{policy: "p", lastStep: true}
	newUser := func() *syncv1alpha1.SyncUser {
		u := chainUser("")
		moveTo(&u.Status, p, *at(0))
		return u
	}

	t.Run("a failed Job: Ready=False JobFailed with the Job's words and the retry, not Stalled", func(t *testing.T) {
		g := NewWithT(t)
		u := newUser()
		policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
		setUserConditions(u, p, nil, policy, &jobFailure{job: "p-1a2b", reason: "BackoffLimitExceeded",
			message: "Job has reached the specified backoff limit: exit code 1: syncusers.sync.chainsync.dev is forbidden", retryAt: at(4).Time})
		ready := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(syncv1alpha1.SyncUserJobFailedReason))
		g.Expect(ready.Message).To(And(ContainSubstring("Cycle Job p-1a2b failed (BackoffLimitExceeded)"),
			ContainSubstring("is forbidden"), ContainSubstring("retried at "+at(4).UTC().Format(time.RFC3339))))
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
		setUserConditions(u, p, nil, policy, nil)
		stalled := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil())
		g.Expect(stalled.Reason).To(Equal(syncv1alpha1.SyncPolicyJobRejectedReason))
		g.Expect(stalled.Message).To(ContainSubstring("SyncPolicy p is stalled: The API server refused cycle Job p-1"))
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
	})
}
