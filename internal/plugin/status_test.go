package plugin

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func cond(t, status, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg}
}

func TestDescribeUserSaysWhetherAPersonIsNeeded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		user  syncv1alpha1.SyncUser
		want  User
		whyNo string
	}{{
		name: "held deletes are stuck, with the approve command",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "bob"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{
				cond("Ready", "False", "DeleteThresholdExceeded", "Cycle c-2 holds back 12 deletes"),
				cond("Stalled", "True", "DeleteThresholdExceeded", "Cycle c-2 holds back 12 deletes"),
			},
			LastCycle: &syncv1alpha1.CycleResult{ID: "c-2", PendingDeletes: 12, PendingDeletesCycle: "c-1"}}},
		want: User{Name: "bob", State: StateStuck, Stuck: true, Reason: "DeleteThresholdExceeded",
			Message: "Cycle c-2 holds back 12 deletes", Fix: "kubectl chainsync approve bob"},
	}, {
		name: "held deletes not yet reconciled into Stalled are stuck too",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "bob"}, Status: syncv1alpha1.SyncUserStatus{
			LastCycle: &syncv1alpha1.CycleResult{ID: "c-2", PendingDeletes: 3, PendingDeletesCycle: "c-2"}}},
		want: User{Name: "bob", State: StateStuck, Stuck: true, Reason: "DeleteThresholdExceeded",
			Message: "Cycle c-2 holds back 3 deletes", Fix: "kubectl chainsync approve bob"},
	}, {
		name: "items given up are resynced",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "cy"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Stalled", "True", "ItemsGivenUp", "2 items failed")}}},
		want: User{Name: "cy", State: StateStuck, Stuck: true, Reason: "ItemsGivenUp", Message: "2 items failed",
			Fix: "kubectl chainsync resync cy"},
	}, {
		name: "corrupt records are cleared",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "di"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Stalled", "True", "RecordsCorrupt", "unreadable")}}},
		want: User{Name: "di", State: StateStuck, Stuck: true, Reason: "RecordsCorrupt", Message: "unreadable",
			Fix: "kubectl chainsync clear di"},
	}, {
		name: "a stalled user with nothing the plugin can do has no fix",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "ed"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Stalled", "True", "PolicyNotFound", "no step x")}}},
		want: User{Name: "ed", State: StateStuck, Stuck: true, Reason: "PolicyNotFound", Message: "no step x"},
	}, {
		name: "a failing cycle is stuck without a fix",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "fay"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Ready", "False", "CycleFailed", "EndpointUnavailable: refused")}}},
		want: User{Name: "fay", State: StateFailing, Stuck: true, Reason: "CycleFailed", Message: "EndpointUnavailable: refused"},
	}, {
		name: "suspended is a choice, not stuck",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "gil"}, Spec: syncv1alpha1.SyncUserSpec{Suspend: true},
			Status: syncv1alpha1.SyncUserStatus{Conditions: []metav1.Condition{cond("Ready", "False", "Suspended", "suspended")}}},
		want: User{Name: "gil", State: StateSuspended},
	}, {
		name: "completed before synced",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "hal"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Ready", "True", "CycleSucceeded", ""), cond("Completed", "True", "ChainCompleted", "")}}},
		want: User{Name: "hal", State: StateCompleted},
	}, {
		name: "synced",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "ivy"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Ready", "True", "CycleSucceeded", ""), cond("Completed", "False", "Progressing", "")}}},
		want: User{Name: "ivy", State: StateSynced},
	}, {
		name: "waiting for its first cycle",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "jo"}, Status: syncv1alpha1.SyncUserStatus{
			Conditions: []metav1.Condition{cond("Ready", "False", "WaitingForCycle", "w"), cond("Reconciling", "True", "WaitingForCycle", "w")}}},
		want: User{Name: "jo", State: StateWaiting},
	}, {
		name: "never reconciled",
		user: syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "kim"}},
		want: User{Name: "kim", State: StateWaiting},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(describeUser(&tc.user, "kubectl chainsync")).To(Equal(tc.want))
		})
	}
}

func chainUser(name, step string, conds ...metav1.Condition) syncv1alpha1.SyncUser {
	return syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"},
		Spec:       syncv1alpha1.SyncUserSpec{ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}},
		Status:     syncv1alpha1.SyncUserStatus{Chain: "onboarding", Step: step, Conditions: conds},
	}
}

func TestChainTreePlacesUsersOnStepsStuckFirst(t *testing.T) {
	g := NewWithT(t)
	chain := &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: "team"},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "import-csv"}, {Name: "mailbox", Policy: "mailbox"}}},
		Status: syncv1alpha1.OnboardingChainStatus{Conditions: []metav1.Condition{
			cond("Ready", "False", "StepStuck", "1 failing user on step import")}},
	}
	synced := cond("Ready", "True", "CycleSucceeded", "")
	users := []syncv1alpha1.SyncUser{
		chainUser("alice", "import", synced),
		chainUser("zed", "import", cond("Stalled", "True", "ItemsGivenUp", "2 items failed")),
		chainUser("bob", "import", cond("Ready", "False", "CycleFailed", "refused")),
		chainUser("carol", "mailbox", synced, cond("Completed", "True", "ChainCompleted", "")),
		chainUser("new", ""),
		{ObjectMeta: metav1.ObjectMeta{Name: "other-chain", Namespace: "team"},
			Spec: syncv1alpha1.SyncUserSpec{ChainRef: &syncv1alpha1.ChainReference{Name: "offboarding"}}},
	}
	policies := map[string]*syncv1alpha1.SyncPolicy{
		"import-csv": {Spec: syncv1alpha1.SyncPolicySpec{Suspend: true}},
	}
	tree := ChainTree(chain, users, policies, "kubectl chainsync")

	g.Expect(tree.Users).To(Equal(5), "the other chain's user is not counted")
	g.Expect(tree.Completed).To(Equal(1))
	g.Expect(tree.Stuck).To(Equal(2))
	g.Expect(tree.Ready).To(Equal("False"))
	names := func(us []User) (n []string) {
		for _, u := range us {
			n = append(n, u.Name)
		}
		return n
	}
	g.Expect(names(tree.Steps[0].Users)).To(Equal([]string{"bob", "zed", "alice"}), "stuck first, then by name")
	g.Expect(tree.Steps[0].Stuck).To(Equal(2))
	g.Expect(tree.Steps[0].PolicyProblem).To(Equal("suspended"))
	g.Expect(tree.Steps[1].PolicyProblem).To(Equal("SyncPolicy mailbox does not exist"))
	g.Expect(names(tree.Steps[1].Users)).To(Equal([]string{"carol"}))
	g.Expect(names(tree.Unplaced)).To(Equal([]string{"new"}))

	var out strings.Builder
	g.Expect(WriteTrees(&out, []Tree{tree}, 0)).To(Succeed())
	g.Expect(out.String()).To(Equal(`OnboardingChain team/onboarding: 5 users, 1 completed, 2 stuck; Ready False: 1 failing user on step import
├── 1. import (SyncPolicy import-csv): 3 users, 2 stuck; policy suspended
│   ├── bob    failing CycleFailed: refused
│   ├── zed    stuck ItemsGivenUp: 2 items failed
│   │          fix: kubectl chainsync resync zed
│   └── alice  synced
├── 2. mailbox (SyncPolicy mailbox): 1 user, 0 stuck; policy SyncPolicy mailbox does not exist
│   └── carol  completed
└── not on a step: 1 user, 0 stuck
    └── new  waiting
`))
}

func TestWriteTreesShowsEveryStuckUserAndCountsTheRestPastTheLimit(t *testing.T) {
	g := NewWithT(t)
	tree := Tree{Kind: "SyncPolicy", Namespace: "team", Name: "mail", Ready: "True", Users: 5, Stuck: 1,
		Steps: []Step{{Policy: "mail", Stuck: 1, Users: []User{
			{Name: "x", State: StateFailing, Stuck: true, Reason: "CycleFailed", Message: "down"},
			{Name: "a", State: StateSynced}, {Name: "b", State: StateSynced}, {Name: "c", State: StateWaiting}, {Name: "d", State: StateSynced},
		}}}}
	var out strings.Builder
	g.Expect(WriteTrees(&out, []Tree{tree}, 1)).To(Succeed())
	g.Expect(out.String()).To(Equal(`SyncPolicy team/mail: 5 users, 0 completed, 1 stuck; Ready True
└── SyncPolicy mail: 5 users, 1 stuck
    ├── x  failing CycleFailed: down
    ├── a  synced
    └── ... and 3 more: 2 synced, 1 waiting
`))

	out.Reset()
	g.Expect(WriteTrees(&out, nil, 10)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("No OnboardingChains"))
}

func TestParseRefTakesKubectlsSpellings(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want Ref
		err  string
	}{
		{arg: "alice", want: Ref{Name: "alice"}},
		{arg: "syncuser/alice", want: Ref{KindSyncUser, "alice"}},
		{arg: "su/alice", want: Ref{KindSyncUser, "alice"}},
		{arg: "SyncUsers/alice", want: Ref{KindSyncUser, "alice"}},
		{arg: "syncuser.sync.chainsync.dev/alice", want: Ref{KindSyncUser, "alice"}},
		{arg: "sp/mail", want: Ref{KindSyncPolicy, "mail"}},
		{arg: "syncpolicies/mail", want: Ref{KindSyncPolicy, "mail"}},
		{arg: "chain/x", err: `"chain/x" is neither NAME nor syncuser/NAME nor syncpolicy/NAME`},
		{arg: "su/", err: "neither"},
		{arg: "su/a/b", err: "neither"},
		{arg: "", err: "an empty name"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseRef(tc.arg)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
