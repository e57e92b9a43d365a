package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
)

func chainPolicy(name, claim string, mutate ...func(*syncv1alpha1.SyncPolicy)) *syncv1alpha1.SyncPolicy {
	p := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: syncv1alpha1.SyncPolicySpec{Store: syncv1alpha1.RecordStore{ClaimName: claim}}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func userOnStep(step string, synced, completed bool) syncv1alpha1.SyncUser {
	u := syncv1alpha1.SyncUser{}
	u.Status.Chain, u.Status.Step = "onboarding", step
	status := func(b bool) metav1.ConditionStatus {
		if b {
			return metav1.ConditionTrue
		}
		return metav1.ConditionFalse
	}
	meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{Type: syncv1alpha1.SyncedCondition, Status: status(synced), Reason: "R"})
	meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{Type: syncv1alpha1.CompletedCondition, Status: status(completed), Reason: "R"})
	return u
}

func TestSummarizeChain(t *testing.T) {
	ok := []*syncv1alpha1.SyncPolicy{chainPolicy("p-import", "records"), chainPolicy("p-verify", "records"), chainPolicy("p-bau", "records")}
	cases := []struct {
		name          string
		policies      []*syncv1alpha1.SyncPolicy
		users         []syncv1alpha1.SyncUser
		ready         metav1.ConditionStatus
		reason        string
		message       string
		stalled       bool
		completed     bool
		perStep       []int32
		failingOnStep []int32
	}{
		{"users spread over the steps", ok, []syncv1alpha1.SyncUser{
			userOnStep("import", true, false), userOnStep("import", false, false), userOnStep("bau", true, true),
		}, metav1.ConditionTrue, syncv1alpha1.OnboardingChainReadyReason, "1/3 users completed; step import: 1 users failing", false, false,
			[]int32{2, 0, 1}, []int32{1, 0, 0}},
		{"every user completed", ok, []syncv1alpha1.SyncUser{userOnStep("bau", true, true), userOnStep("bau", true, true)},
			metav1.ConditionTrue, syncv1alpha1.OnboardingChainReadyReason, "2/2 users completed", false, true, []int32{0, 0, 2}, []int32{0, 0, 0}},
		{"a step's policy is missing", []*syncv1alpha1.SyncPolicy{ok[0], nil, ok[2]}, nil,
			metav1.ConditionFalse, syncv1alpha1.OnboardingChainPolicyNotFoundReason, `step verify: SyncPolicy "p-verify" not found`, true, false, []int32{0, 0, 0}, []int32{0, 0, 0}},
		{"policies with different stores", []*syncv1alpha1.SyncPolicy{ok[0], chainPolicy("p-verify", "other"), ok[2]}, nil,
			metav1.ConditionFalse, syncv1alpha1.OnboardingChainMixedStoresReason, "different record stores", true, false, []int32{0, 0, 0}, []int32{0, 0, 0}},
		{"users stuck on a suspended policy", []*syncv1alpha1.SyncPolicy{chainPolicy("p-import", "records", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Suspend = true }), ok[1], ok[2]},
			[]syncv1alpha1.SyncUser{userOnStep("import", true, false)},
			metav1.ConditionFalse, syncv1alpha1.OnboardingChainStepStuckReason, "step import: policy p-import is suspended with 1 users on it", false, false, []int32{1, 0, 0}, []int32{0, 0, 0}},
		{"a suspended policy with nobody on it is no problem", []*syncv1alpha1.SyncPolicy{ok[0], chainPolicy("p-verify", "records", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Suspend = true }), ok[2]},
			[]syncv1alpha1.SyncUser{userOnStep("import", true, false)},
			metav1.ConditionTrue, syncv1alpha1.OnboardingChainReadyReason, "0/1 users completed", false, false, []int32{1, 0, 0}, []int32{0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			chain := fx.ThreeSteps()
			summarizeChain(chain, tc.policies, pointers(tc.users))
			ready := meta.FindStatusCondition(chain.Status.Conditions, syncv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(tc.ready))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(ready.Message).To(ContainSubstring(tc.message))
			g.Expect(meta.IsStatusConditionTrue(chain.Status.Conditions, syncv1alpha1.StalledCondition)).To(Equal(tc.stalled))
			g.Expect(meta.IsStatusConditionTrue(chain.Status.Conditions, syncv1alpha1.CompletedCondition)).To(Equal(tc.completed))
			var per, failing []int32
			for _, s := range chain.Status.Steps {
				per, failing = append(per, s.Users), append(failing, s.Failing)
			}
			g.Expect(per).To(Equal(tc.perStep))
			g.Expect(failing).To(Equal(tc.failingOnStep))
		})
	}
}
