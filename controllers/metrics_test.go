package controllers

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func TestSummarizeState(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	at := func(h int) *metav1.Time { return &metav1.Time{Time: t0.Add(time.Duration(h) * time.Hour)} }
	onStep := func(name, step string, entered int, mutate ...func(*syncv1alpha1.SyncUser)) syncv1alpha1.SyncUser {
		u := syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
		u.Status.Chain, u.Status.Step, u.Status.Policy = "onboarding", step, "p-"+step
		u.Status.History = []syncv1alpha1.StepHistoryEntry{{Step: step, Policy: "p-" + step, EnteredTime: at(entered)}}
		for _, m := range mutate {
			m(&u)
		}
		return u
	}
	completed := func(u *syncv1alpha1.SyncUser) {
		meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{Type: syncv1alpha1.CompletedCondition, Status: metav1.ConditionTrue, Reason: "R"})
	}
	stalled := func(reason string) func(*syncv1alpha1.SyncUser) {
		return func(u *syncv1alpha1.SyncUser) {
			meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{Type: syncv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: reason})
		}
	}
	holding := func(deletes int32, started int) func(*syncv1alpha1.SyncUser) {
		return func(u *syncv1alpha1.SyncUser) {
			u.Status.LastCycle = &syncv1alpha1.CycleResult{Policy: u.Status.Policy, StartTime: at(started), CompletionTime: at(started), PendingDeletes: deletes}
		}
	}
	policy := func(name string, n syncv1alpha1.UserCounts) syncv1alpha1.SyncPolicy {
		p := syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
		p.Status.Users = n
		return p
	}
	chain := syncv1alpha1.OnboardingChain{ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: "ns"}}
	chain.Status.Steps = []syncv1alpha1.ChainStepStatus{{Name: "import", Policy: "p-import", Users: 3}, {Name: "bau", Policy: "p-bau", Users: 2}}
	chain.Status.CompletedUsers = 1

	cases := []struct {
		name     string
		policies []syncv1alpha1.SyncPolicy
		chains   []syncv1alpha1.OnboardingChain
		users    []syncv1alpha1.SyncUser
		want     []string
	}{
		{"a policy's states add up to its users, syncing apart",
			[]syncv1alpha1.SyncPolicy{policy("p", syncv1alpha1.UserCounts{Assigned: 5, Syncing: 2, Synced: 2, Failing: 1})}, nil, nil,
			[]string{"chainsync_policy_users{ns,p,synced} 2", "chainsync_policy_users{ns,p,failing} 1", "chainsync_policy_users{ns,p,waiting} 2",
				"chainsync_policy_users_syncing{ns,p} 2", "chainsync_pending_deletes{ns,p} 0", "chainsync_pending_deletes_users{ns,p} 0"}},
		{"counts a status not yet caught up with never go negative",
			[]syncv1alpha1.SyncPolicy{policy("p", syncv1alpha1.UserCounts{Assigned: 1, Synced: 2})}, nil, nil,
			[]string{"chainsync_policy_users{ns,p,synced} 2", "chainsync_policy_users{ns,p,failing} 0", "chainsync_policy_users{ns,p,waiting} 0",
				"chainsync_policy_users_syncing{ns,p} 0", "chainsync_pending_deletes{ns,p} 0", "chainsync_pending_deletes_users{ns,p} 0"}},
		{"a chain's steps as its status counts them; the oldest entry among users not done",
			nil, []syncv1alpha1.OnboardingChain{chain}, []syncv1alpha1.SyncUser{
				onStep("a", "import", 5), onStep("b", "import", 3), onStep("c", "import", 4),
				onStep("d", "bau", 1, completed), onStep("e", "bau", 6)},
			[]string{"chainsync_chain_step_users{ns,onboarding,import,p-import} 3",
				fmt.Sprintf("chainsync_chain_step_oldest_entered_timestamp_seconds{ns,onboarding,import,p-import} %d", t0.Add(3*time.Hour).Unix()),
				"chainsync_chain_step_users{ns,onboarding,bau,p-bau} 2",
				fmt.Sprintf("chainsync_chain_step_oldest_entered_timestamp_seconds{ns,onboarding,bau,p-bau} %d", t0.Add(6*time.Hour).Unix()),
				"chainsync_chain_completed_users{ns,onboarding} 1"}},
		{"stalled users by reason, on the policy they name when not placed",
			nil, nil, []syncv1alpha1.SyncUser{
				onStep("a", "import", 0, stalled("DeleteThresholdExceeded")), onStep("b", "import", 0, stalled("DeleteThresholdExceeded")),
				{ObjectMeta: metav1.ObjectMeta{Name: "lost", Namespace: "ns"}, Spec: syncv1alpha1.SyncUserSpec{PolicyRef: &syncv1alpha1.PolicyReference{Name: "nowhere"}},
					Status: syncv1alpha1.SyncUserStatus{Conditions: []metav1.Condition{{Type: syncv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: "PolicyNotFound"}}}}},
			[]string{"chainsync_stalled_users{ns,nowhere,PolicyNotFound} 1", "chainsync_stalled_users{ns,p-import,DeleteThresholdExceeded} 2"}},
		{"held deletes of the current step only: a cycle from before the step holds nothing now",
			nil, nil, []syncv1alpha1.SyncUser{onStep("a", "bau", 2, holding(7, 3)), onStep("b", "bau", 2, holding(3, 4)), onStep("c", "bau", 2, holding(9, 1))},
			[]string{"chainsync_pending_deletes{ns,p-bau} 10", "chainsync_pending_deletes_users{ns,p-bau} 2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range summarizeState(tc.policies, tc.chains, tc.users) {
				got = append(got, fmt.Sprintf("%s{%s} %s", descName(s.desc), strings.Join(s.labels, ","), strconv.FormatFloat(s.value, 'f', -1, 64)))
			}
			NewWithT(t).Expect(got).To(ConsistOf(tc.want))
		})
	}
}

// descName reads a Desc's metric name: client_golang keeps it unexported but prints it.
func descName(d *prometheus.Desc) string {
	s := d.String()
	const key = `fqName: "`
	i := strings.Index(s, key)
	if i < 0 {
		return s
	}
	s = s[i+len(key):]
	return s[:strings.Index(s, `"`)]
}
