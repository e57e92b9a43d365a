package plugin_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/plugin"
)

const heldCycle = "import-csv-7f3a9c2e1b"

// chainWithUsers sets up what the README's example shows: a two-step chain with a user synced,
// one whose deletes are held back, one completed and one not yet placed; and a user placed
// directly on the second step's (suspended) policy whose cycles fail.
func chainWithUsers(t *testing.T) string {
	t.Helper()
	g := NewWithT(t)
	ns := namespace(t)
	importCSV, mailbox := csvPolicy(ns, "import-csv"), csvPolicy(ns, "mailbox")
	mailbox.Spec.Suspend = true
	for _, p := range []*syncv1alpha1.SyncPolicy{importCSV, mailbox} {
		g.Expect(k8s.Create(ctx(t), p)).To(Succeed())
	}
	importCSV.Status.Conditions = []metav1.Condition{condition("Ready", "True", "PolicyReady", "2 users")}
	importCSV.Status.Conditions[0].LastTransitionTime = metav1.Now()
	g.Expect(k8s.Status().Update(ctx(t), importCSV)).To(Succeed())

	chain := &syncv1alpha1.OnboardingChain{ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "import-csv"}, {Name: "mailbox", Policy: "mailbox"}}}}
	g.Expect(k8s.Create(ctx(t), chain)).To(Succeed())
	chain.Status.Conditions = []metav1.Condition{condition("Ready", "False", "StepStuck", "1 user stuck on step import")}
	chain.Status.Conditions[0].LastTransitionTime = metav1.Now()
	g.Expect(k8s.Status().Update(ctx(t), chain)).To(Succeed())

	onImport := syncv1alpha1.SyncUserStatus{Chain: "onboarding", Step: "import", Policy: "import-csv"}
	synced := onImport
	synced.Conditions = []metav1.Condition{condition("Ready", "True", "CycleSucceeded", "Synced")}
	synced.LastCycle = &syncv1alpha1.CycleResult{ID: "import-csv-0a1b2c3d4e", Empty: false}
	userOn(t, ns, "alice", "", "onboarding", synced)

	held := onImport
	msg := fmt.Sprintf("Cycle %s holds back 12 deletes over the policy's threshold; approve with the annotation %s=%s",
		heldCycle, syncv1alpha1.ApproveDeletesAnnotation, heldCycle)
	held.Conditions = []metav1.Condition{condition("Ready", "False", "DeleteThresholdExceeded", msg),
		condition("Stalled", "True", "DeleteThresholdExceeded", msg)}
	held.LastCycle = &syncv1alpha1.CycleResult{ID: heldCycle, PendingDeletes: 12, PendingDeletesCycle: heldCycle}
	userOn(t, ns, "bob", "", "onboarding", held)

	userOn(t, ns, "carol", "", "onboarding", syncv1alpha1.SyncUserStatus{Chain: "onboarding", Step: "mailbox", Policy: "mailbox",
		Conditions: []metav1.Condition{condition("Ready", "True", "CycleSucceeded", "Synced"),
			condition("Completed", "True", "ChainCompleted", "Synced clean on the last step")}})
	userOn(t, ns, "dave", "", "onboarding", syncv1alpha1.SyncUserStatus{})
	userOn(t, ns, "erin", "mailbox", "", syncv1alpha1.SyncUserStatus{Policy: "mailbox",
		Conditions: []metav1.Condition{condition("Ready", "False", "CycleFailed", "EndpointUnavailable: dial tcp 10.0.0.7:389: connection refused")},
		LastCycle:  &syncv1alpha1.CycleResult{ID: "mailbox-9e8d7c6b5a", FailureReason: "EndpointUnavailable"}})
	return ns
}

func TestStatusShowsEachChainsStepsWithTheirUsersStuckFirst(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)

	out, errOut, code := chainsync(t, "status", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(Equal(strings.ReplaceAll(`OnboardingChain NS/onboarding: 4 users, 1 completed, 1 stuck; Ready False: 1 user stuck on step import
├── 1. import (SyncPolicy import-csv): 2 users, 1 stuck
│   ├── bob    stuck DeleteThresholdExceeded: Cycle import-csv-7f3a9c2e1b holds back 12 deletes over the policy's threshold; approve with the annotation sync.chainsync.dev/approve-deletes=import-csv-7f3a9c2e1b
│   │          fix: chainsync approve bob
│   └── alice  synced
├── 2. mailbox (SyncPolicy mailbox): 1 user, 0 stuck; policy suspended
│   └── carol  completed
└── not on a step: 1 user, 0 stuck
    └── dave  waiting

SyncPolicy NS/mailbox: 1 user, 0 completed, 1 stuck; Ready Unknown: not reconciled yet
└── SyncPolicy mailbox: 1 user, 1 stuck; policy suspended
    └── erin  failing CycleFailed: EndpointUnavailable: dial tcp 10.0.0.7:389: connection refused
`, "NS", ns)))

	// One chain by name; its policies' direct users are not part of it.
	out, _, code = chainsync(t, "status", "onboarding", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(HavePrefix("OnboardingChain " + ns + "/onboarding"))
	g.Expect(out).NotTo(ContainSubstring("erin"))

	out, _, code = chainsync(t, "status", "-n", ns, "-o", "json")
	g.Expect(code).To(Equal(0))
	var trees []plugin.Tree
	g.Expect(json.Unmarshal([]byte(out), &trees)).To(Succeed())
	g.Expect(trees).To(HaveLen(2))
	g.Expect(trees[0].Steps[0].Users[0]).To(Equal(plugin.User{Name: "bob", State: "stuck", Stuck: true,
		Reason: "DeleteThresholdExceeded", Message: trees[0].Steps[0].Users[0].Message, Fix: "chainsync approve bob"}))

	// Every namespace: this one's chain is among them.
	out, _, code = chainsync(t, "status", "-A")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("OnboardingChain " + ns + "/onboarding: 4 users"))

	_, errOut, code = chainsync(t, "status", "nothing", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("no OnboardingChain or SyncPolicy nothing in namespace " + ns))
}

func TestApproveNamesTheCycleThatHeldTheDeletes(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)

	out, errOut, code := chainsync(t, "approve", "bob", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(Equal("syncuser/bob annotated sync.chainsync.dev/approve-deletes=import-csv-7f3a9c2e1b " +
		"(approves the 12 deletes held back by cycle import-csv-7f3a9c2e1b; a cycle carries them out now)\n"))
	var bob syncv1alpha1.SyncUser
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "bob"}, &bob)).To(Succeed())
	g.Expect(bob.Annotations).To(HaveKeyWithValue(syncv1alpha1.ApproveDeletesAnnotation, heldCycle))
	g.Expect(managers(&bob)).To(ContainElement(plugin.FieldManager))

	out, _, code = chainsync(t, "approve", "bob", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("syncuser/bob already approves the 12 deletes held back by cycle " + heldCycle))

	_, errOut, code = chainsync(t, "approve", "alice", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("syncuser/alice has no deletes waiting for approval: its last cycle import-csv-0a1b2c3d4e held none back"))
	_, errOut, code = chainsync(t, "approve", "dave", "nobody", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("syncuser/dave has no deletes waiting for approval: it has run no cycle yet"))
	g.Expect(errOut).To(ContainSubstring("no SyncUser nobody in namespace " + ns))
}

func TestResyncAndClearAskAnewEachTime(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)

	out, errOut, code := chainsync(t, "resync", "alice", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(MatchRegexp(`^syncuser/alice annotated sync\.chainsync\.dev/reinit=resync@\d+ \(a Complete cycle against the kept records starts now\)\n$`))
	var alice syncv1alpha1.SyncUser
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "alice"}, &alice)).To(Succeed())
	value := alice.Annotations[syncv1alpha1.ReinitAnnotation]
	g.Expect(syncv1alpha1.ReinitKind(value)).To(Equal(syncv1alpha1.ReinitResync), "the operator reads it as resync")
	g.Expect(value).To(MatchRegexp(`^resync@\d+$`))

	// The resync is still pending (no cycle carried it out): clear replaces it, and says so.
	out, _, code = chainsync(t, "clear", "alice", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(MatchRegexp(`reinit=clear@\d+ \(a cycle forgets the records and relinks the items by matchOn now; it replaces the pending request resync@\d+\)`))
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "alice"}, &alice)).To(Succeed())
	g.Expect(syncv1alpha1.ReinitKind(alice.Annotations[syncv1alpha1.ReinitAnnotation])).To(Equal(syncv1alpha1.ReinitClear))
}

func TestSyncNowAnnotatesAUserOrAPolicy(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`).String()

	out, errOut, code := chainsync(t, "sync-now", "alice", "sp/import-csv", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(MatchRegexp(`^syncuser/alice annotated sync\.chainsync\.dev/requested-at=` + stamp + ` \(a cycle starts now\)\n` +
		`syncpolicy/import-csv annotated sync\.chainsync\.dev/requested-at=` + stamp + ` \(a cycle of each of its users starts now\)\n$`))
	var policy syncv1alpha1.SyncPolicy
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "import-csv"}, &policy)).To(Succeed())
	g.Expect(policy.Annotations[syncv1alpha1.RequestedAtAnnotation]).To(MatchRegexp("^" + stamp + "$"))

	out, _, code = chainsync(t, "sync-now", "mailbox", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("(suspended: no cycle starts until it is resumed)"))

	// A name both kinds have must be told apart.
	g.Expect(k8s.Create(ctx(t), csvPolicy(ns, "alice"))).To(Succeed())
	_, errOut, code = chainsync(t, "sync-now", "alice", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("alice is both a SyncUser and a SyncPolicy in namespace " + ns + ": say syncuser/alice or syncpolicy/alice"))
	out, _, code = chainsync(t, "sync-now", "syncuser/alice", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(HavePrefix("syncuser/alice annotated"))
}

func TestSuspendAndResumeSetSpecSuspendAsTheirOwnFieldManager(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)

	out, errOut, code := chainsync(t, "suspend", "alice", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(Equal("syncuser/alice suspended (spec.suspend=true, field manager kubectl-chainsync)\n"))
	var alice syncv1alpha1.SyncUser
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "alice"}, &alice)).To(Succeed())
	g.Expect(alice.Spec.Suspend).To(BeTrue())
	g.Expect(managers(&alice)).To(ContainElement(plugin.FieldManager))

	out, _, _ = chainsync(t, "suspend", "alice", "-n", ns)
	g.Expect(out).To(Equal("syncuser/alice is suspended already (spec.suspend=true)\n"))

	out, _, code = chainsync(t, "resume", "alice", "mailbox", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("syncuser/alice resumed (spec.suspend=false, field manager kubectl-chainsync)\n" +
		"syncpolicy/mailbox resumed (spec.suspend=false, field manager kubectl-chainsync)\n"))
	var mailbox syncv1alpha1.SyncPolicy
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "mailbox"}, &mailbox)).To(Succeed())
	g.Expect(mailbox.Spec.Suspend).To(BeFalse())
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "alice"}, &alice)).To(Succeed())
	g.Expect(alice.Spec.Suspend).To(BeFalse())
}

func TestCompletionOffersTheClustersNames(t *testing.T) {
	g := NewWithT(t)
	ns := chainWithUsers(t)

	out, _, code := chainsync(t, "__complete", "approve", "-n", ns, "")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("bob\n:4\n"), "only users with deletes to approve")

	out, _, _ = chainsync(t, "__complete", "sync-now", "-n", ns, "")
	g.Expect(strings.Split(out, "\n")).To(HaveExactElements("alice", "bob", "carol", "dave", "erin", "import-csv", "mailbox", ":4", ""))

	out, _, _ = chainsync(t, "__complete", "resync", "-n", ns, "c")
	g.Expect(out).To(Equal("carol\n:4\n"))

	out, _, _ = chainsync(t, "__complete", "status", "-n", ns, "on")
	g.Expect(out).To(Equal("onboarding\n:4\n"))
}
