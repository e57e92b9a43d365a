package cycle

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/testenv"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// apiWithNamespace starts an API server of the test's own, with namespace ns in it.
func apiWithNamespace(t *testing.T, ns string) (client.WithWatch, context.Context) {
	g := NewWithT(t)
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	return c, ctx
}

// A Job reads the users it cycles with one List when it holds a good share of the policy's users,
// and with a Get each when it holds a few among many: either way it gets exactly its users still
// on the policy, never one deleted or moved since the Job was launched.
func TestAJobReadsItsUsersStillOnThePolicy(t *testing.T) {
	g := NewWithT(t)
	const ns = "read-users"
	c, ctx := apiWithNamespace(t, ns)
	place := func(name, policy string) {
		u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: name + "@example.com"},
				PolicyRef: &syncv1alpha1.PolicyReference{Name: policy}}}
		g.Expect(c.Create(ctx, u)).To(Succeed())
		u.Status.Policy = policy
		g.Expect(c.Status().Update(ctx, u)).To(Succeed())
	}
	place("ada", "crm")
	place("grace", "crm")
	place("moved", "mailbox") // Was on crm when the Job was launched.
	for i := range 40 {
		place("other"+string(rune('a'+i%26))+string(rune('a'+i/26)), "crm")
	}

	var gets, lists int
	counting := interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists++
			return c.List(ctx, list, opts...)
		},
	})
	r := &Runner{Cycle: jobargs.Cycle{Namespace: ns}, Client: counting}
	names := []string{"ada", "grace", "moved", "deleted"}
	for _, tc := range []struct {
		assigned            int32
		wantGets, wantLists int
	}{
		{42, 0, 1},   // One page of the policy's users for four of them.
		{4000, 4, 0}, // Eight pages: a Get each is fewer requests.
	} {
		gets, lists = 0, 0
		policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "crm"},
			Status: syncv1alpha1.SyncPolicyStatus{Users: syncv1alpha1.UserCounts{Assigned: tc.assigned}}}
		users, err := r.readUsers(ctx, policy, names)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(users).To(HaveLen(2), "assigned %d", tc.assigned)
		g.Expect(users).To(HaveKey("ada"))
		g.Expect(users).To(HaveKey("grace"))
		g.Expect(users["ada"].Spec.Identity.Email).To(Equal("ada@example.com"))
		g.Expect([]int{gets, lists}).To(Equal([]int{tc.wantGets, tc.wantLists}), "gets and lists among %d assigned", tc.assigned)
	}
}

// A cycle Job writes its user's whole new status with the result: an empty cycle moves the user
// to the next step of its chain in that one write, with no operator running. A Job that read the
// user before someone else wrote it decides again from a fresh read rather than undo that write.
func TestAnEmptyCycleMovesItsUserInTheSameWriteDecidedFromAFreshRead(t *testing.T) {
	g := NewWithT(t)
	const ns = "status-writes"
	c, ctx := apiWithNamespace(t, ns)
	chain := &syncv1alpha1.OnboardingChain{ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "import", Policy: "import"}, {Name: "verify", Policy: "verify"}}}}
	g.Expect(c.Create(ctx, chain)).To(Succeed())
	policies := map[string]*syncv1alpha1.SyncPolicy{}
	for _, name := range []string{"import", "verify"} {
		p := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector, CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{Path: "hr"}}},
			Target: syncv1alpha1.Endpoint{Name: "directory", Connector: syncv1alpha1.SQLiteConnector, SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: "directory.db"}}},
			Entities: []syncv1alpha1.Entity{{Name: "people", Source: syncv1alpha1.Collection{Collection: "people.csv", KeyFields: []string{"id"}},
				Target: syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"}}, MatchOn: []string{"email"},
				Fields: []syncv1alpha1.FieldMapping{{Source: "email", Target: "email"}}}},
			Schedule: syncv1alpha1.Schedule{Interval: "1h", JitterPercent: 10},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records"},
		}}
		g.Expect(c.Create(ctx, p)).To(Succeed())
		policies[name] = p
	}
	ada := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "ada@example.com"},
			ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}}}
	g.Expect(c.Create(ctx, ada)).To(Succeed())
	entered := time.Now().Add(-time.Minute).Truncate(time.Second)
	current, _, _ := userstatus.Settle(ada, chain, entered) // Placed, as the operator does.
	userstatus.Observe(ada, current, nil, policies["import"], nil, nil, entered)
	g.Expect(c.Status().Update(ctx, ada)).To(Succeed())

	// The Job reads ada; then a person edits her before the Job's cycle ends.
	readByJob := ada.DeepCopy()
	ada.Spec.Identity.Name = "Ada Lovelace"
	g.Expect(c.Update(ctx, ada)).To(Succeed())

	// Times as a clock reads them, within a second, and policies with jitter: what the Job
	// decides must be what the operator decides from the whole seconds the API stores.
	started, ended := metav1.NewTime(entered.Add(10*time.Second+300*time.Millisecond)), metav1.NewTime(entered.Add(20*time.Second+999*time.Millisecond))
	w := newUserStatusWriter(c, ns, systemClock{}, policies["import"])
	got := &syncv1alpha1.SyncUser{}
	operatorDecidesTheSame := func(policy string) {
		again := got.DeepCopy()
		current, move, problem := userstatus.Settle(again, chain, time.Now())
		g.Expect(problem).To(BeNil())
		g.Expect(move).To(Equal(userstatus.Move{}))
		userstatus.Observe(again, current, nil, policies[policy], nil, nil, time.Now())
		g.Expect(again.Status).To(Equal(got.Status), "the operator has nothing to write")
	}

	g.Expect(w.write(ctx, readByJob, cycleOutcome{result: syncv1alpha1.CycleResult{ID: "import-1", Job: "import-1", Policy: "import",
		StartTime: &started, CompletionTime: &ended, Items: syncv1alpha1.ItemCounts{Created: 1}}})).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ada), got)).To(Succeed())
	g.Expect(got.Spec.Identity.Name).To(Equal("Ada Lovelace"), "the person's write stays")
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation), "decided from the user as it is now")
	g.Expect(got.Status.LastCycle.ID).To(Equal("import-1"))
	g.Expect(got.Status.Step).To(Equal("import"), "a cycle that changed something keeps the user on its step")
	operatorDecidesTheSame("import")

	started, ended = metav1.NewTime(ended.Add(time.Hour)), metav1.NewTime(ended.Add(time.Hour+time.Second))
	g.Expect(w.write(ctx, got, cycleOutcome{result: syncv1alpha1.CycleResult{ID: "import-2", Job: "import-2", Policy: "import",
		StartTime: &started, CompletionTime: &ended, Empty: true}})).To(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ada), got)).To(Succeed())
	g.Expect(got.Status.Step).To(Equal("verify"), "an empty cycle moves the user on in the same write")
	g.Expect(got.Status.Policy).To(Equal("verify"))
	g.Expect(got.Status.History).To(HaveLen(2))
	g.Expect(got.Status.History[0].CompletedTime.Time).To(BeTemporally("==", ended.Truncate(time.Second)))
	g.Expect(got.Status.History[1].EnteredTime.Time).To(BeTemporally("==", ended.Truncate(time.Second)))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, syncv1alpha1.ReadyCondition).Message).To(
		ContainSubstring("Waiting for the first cycle on step verify"))
	operatorDecidesTheSame("verify")

	// A user deleted before its result is written is no one's to tell.
	g.Expect(c.Delete(ctx, got)).To(Succeed())
	g.Expect(w.write(ctx, got, cycleOutcome{result: syncv1alpha1.CycleResult{ID: "verify-1", Policy: "verify",
		StartTime: &started, CompletionTime: &ended, Empty: true}})).To(Succeed())
}
