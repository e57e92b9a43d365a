package controllers_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/records"
)

const wait = 90 * time.Second

func getUser(g Gomega, t *testing.T, ns, name string) *syncv1alpha1.SyncUser {
	u := &syncv1alpha1.SyncUser{}
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	return u
}

// eventuallyCycled waits for a user's cycle on policy that satisfies check, and returns the user.
func eventuallyCycled(t *testing.T, ns, name, policy string, check func(Gomega, *syncv1alpha1.CycleResult)) *syncv1alpha1.SyncUser {
	t.Helper()
	var u *syncv1alpha1.SyncUser
	NewWithT(t).Eventually(func(g Gomega) {
		u = getUser(g, t, ns, name)
		g.Expect(u.Status.LastCycle).NotTo(BeNil())
		g.Expect(u.Status.LastCycle.Policy).To(Equal(policy))
		check(g, u.Status.LastCycle)
	}, wait, 250*time.Millisecond).Should(Succeed())
	return u
}

// eventuallyUser waits until the user satisfies check: conditions follow a cycle's result by a
// reconcile of the operator, so they are waited for too.
func eventuallyUser(t *testing.T, ns, name string, check func(Gomega, *syncv1alpha1.SyncUser)) *syncv1alpha1.SyncUser {
	t.Helper()
	var u *syncv1alpha1.SyncUser
	NewWithT(t).Eventually(func(g Gomega) {
		u = getUser(g, t, ns, name)
		check(g, u)
	}, wait, 250*time.Millisecond).Should(Succeed())
	return u
}

func annotate(t *testing.T, obj client.Object, key, value string) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	base := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[key] = value
	obj.SetAnnotations(ann)
	g.Expect(k8s.Patch(ctx(t), obj, client.MergeFrom(base))).To(Succeed())
}

func condition(u *syncv1alpha1.SyncUser, t string) *metav1.Condition {
	return meta.FindStatusCondition(u.Status.Conditions, t)
}

func TestUserMovedToAnotherPolicyKeepsItsRecords(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(1)
	hrExport(t, ns, [][5]string{ada})
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "first"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "second"))).To(Succeed())
	user := policyUser(ns, "ada", ada[1], "first")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())
	eventuallyCycled(t, ns, "ada", "first", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})

	// A GitOps change moves the user to the other policy over the same endpoints.
	// A merge patch, as kubectl apply sends: the cycle writes the user's status meanwhile, which
	// an update with the resourceVersion read before would lose to.
	g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(user), user)).To(Succeed())
	base := user.DeepCopy()
	user.Spec.PolicyRef.Name = "second"
	g.Expect(k8s.Patch(ctx(t), user, client.MergeFrom(base))).To(Succeed())

	moved := eventuallyCycled(t, ns, "ada", "second", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Failure).To(BeEmpty())
		g.Expect(c.Items.Created).To(BeZero(), "the records came along: nothing is created twice")
		g.Expect(c.Empty).To(BeTrue())
	})
	g.Expect(moved.Status.History).To(HaveLen(2))
	g.Expect(moved.Status.History[0].Policy).To(Equal("first"))
	g.Expect(moved.Status.History[1].Policy).To(Equal("second"))
	g.Expect(peopleIn(t, db)).To(Equal([]string{ada[1] + " " + ada[2]}))
}

func TestEndpointDownStallsNothingAndRecovers(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(2)
	hrExport(t, ns, [][5]string{ada})
	// No directory database yet: the target endpoint is down.
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "import"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "bau"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec:       syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "import", Policy: "import"}, {Name: "bau", Policy: "bau"}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), chainUser(ns, "ada", ada[1], "onboarding", ""))).To(Succeed())

	eventuallyCycled(t, ns, "ada", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.FailureReason).To(Equal("EndpointUnavailable"))
	})
	failed := eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(condition(u, syncv1alpha1.SyncedCondition)).To(HaveField("Status", metav1.ConditionFalse))
	})
	g.Expect(failed.Status.LastCycle.Failure).To(ContainSubstring("directory.db"), "the reason names what is down")
	g.Expect(failed.Status.Step).To(Equal("import"), "a failed cycle never moves a user on")
	g.Expect(condition(failed, syncv1alpha1.SyncedCondition)).To(HaveField("Status", metav1.ConditionFalse))
	g.Expect(condition(failed, syncv1alpha1.SyncedCondition).Message).To(ContainSubstring("directory.db"))
	g.Expect(condition(failed, syncv1alpha1.ReadyCondition)).To(HaveField("Status", metav1.ConditionFalse))

	// The endpoint comes back: the next scheduled cycle syncs, and the user moves on.
	db := directory(t, ns)
	g.Eventually(func(g Gomega) {
		u := getUser(g, t, ns, "ada")
		g.Expect(u.Status.Step).To(Equal("bau"))
		g.Expect(condition(u, syncv1alpha1.CompletedCondition)).To(HaveField("Status", metav1.ConditionTrue))
		g.Expect(condition(u, syncv1alpha1.SyncedCondition)).To(HaveField("Status", metav1.ConditionTrue))
	}, wait, time.Second).Should(Succeed())
	g.Expect(peopleIn(t, db)).To(HaveLen(1))
}

func TestSuspendedPolicyStartsNoCycle(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(3)
	hrExport(t, ns, [][5]string{ada})
	directory(t, ns)
	policy := hrPolicy(ns, "import", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Suspend = true })
	g.Expect(k8s.Create(ctx(t), policy)).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "import"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(policy), policy)).To(Succeed())
		g.Expect(policy.Status.Users.Assigned).To(BeEquivalentTo(1))
		g.Expect(meta.FindStatusCondition(policy.Status.Conditions, syncv1alpha1.ReadyCondition)).To(HaveField("Reason", syncv1alpha1.SuspendedReason))
	}, wait, 250*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getUser(g, t, ns, "ada").Status.LastCycle).To(BeNil())
	}, 5*time.Second, 500*time.Millisecond).Should(Succeed())

	policy.Spec.Suspend = false
	g.Expect(k8s.Update(ctx(t), policy)).To(Succeed())
	eventuallyCycled(t, ns, "ada", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})
}

func TestRequestedAtRunsACycleNow(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(4)
	hrExport(t, ns, [][5]string{ada})
	directory(t, ns)
	policy := hrPolicy(ns, "hourly", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Schedule.Interval = "1h" })
	g.Expect(k8s.Create(ctx(t), policy)).To(Succeed())
	user := policyUser(ns, "ada", ada[1], "hourly")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())
	first := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	}).Status.LastCycle.ID

	annotate(t, user, syncv1alpha1.RequestedAtAnnotation, "2026-11-22T10:00:00Z")
	second := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.ID).NotTo(Equal(first))
	})
	g.Expect(second.Status.LastHandledRequestedAt).To(Equal("2026-11-22T10:00:00Z"))
	g.Expect(second.Status.LastCycle.Empty).To(BeTrue())

	annotate(t, policy, syncv1alpha1.RequestedAtAnnotation, "again")
	eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.ID).NotTo(BeElementOf(first, second.Status.LastCycle.ID))
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(policy), policy)).To(Succeed())
		g.Expect(policy.Status.LastHandledRequestedAt).To(Equal("again"))
	}, wait).Should(Succeed())
}

func TestDeletesOverTheThresholdWaitForApproval(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	// Ada manages four people; three of them leave.
	owner := person(5)[1]
	team := [][5]string{}
	for i := 10; i < 14; i++ {
		p := person(i)
		p[4] = owner
		team = append(team, p)
	}
	hrExport(t, ns, team)
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "bau", func(p *syncv1alpha1.SyncPolicy) {
		p.Spec.Deletes.Propagate = true
		p.Spec.Deletes.MaxCount = new(int32(1))
	}))).To(Succeed())
	user := policyUser(ns, "ada", owner, "bau")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())
	eventuallyCycled(t, ns, "ada", "bau", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(4))
	})

	hrExport(t, ns, team[:1])
	eventuallyCycled(t, ns, "ada", "bau", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.PendingDeletes).To(BeEquivalentTo(3))
	})
	held := eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(condition(u, syncv1alpha1.StalledCondition)).NotTo(BeNil())
	})
	g.Expect(peopleIn(t, db)).To(HaveLen(4), "nothing is deleted before the approval")
	stalled := condition(held, syncv1alpha1.StalledCondition)
	g.Expect(stalled).NotTo(BeNil())
	g.Expect(stalled.Reason).To(Equal(syncv1alpha1.SyncUserDeleteThresholdExceededReason))
	cycleID := held.Status.LastCycle.PendingDeletesCycle
	g.Expect(cycleID).NotTo(BeEmpty())
	g.Expect(stalled.Message).To(ContainSubstring(syncv1alpha1.ApproveDeletesAnnotation + "=" + cycleID))

	annotate(t, user, syncv1alpha1.ApproveDeletesAnnotation, cycleID)
	g.Eventually(func(g Gomega) {
		u := getUser(g, t, ns, "ada")
		g.Expect(u.Status.LastCycle.Items.Deleted).To(BeEquivalentTo(3))
		g.Expect(condition(u, syncv1alpha1.StalledCondition)).To(BeNil())
	}, wait, 250*time.Millisecond).Should(Succeed())
	g.Expect(peopleIn(t, db)).To(Equal([]string{team[0][1] + " " + team[0][2]}))
}

func TestReinitResyncsOrRelinks(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(6)
	hrExport(t, ns, [][5]string{ada})
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hourly", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Schedule.Interval = "1h" }))).To(Succeed())
	user := policyUser(ns, "ada", ada[1], "hourly")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())
	eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Mode).To(Equal(syncv1alpha1.InitialCycle))
	})

	annotate(t, user, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitResync)
	resynced := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Mode).To(Equal(syncv1alpha1.CompleteCycle))
	})
	g.Expect(resynced.Status.LastHandledReinit).To(Equal(syncv1alpha1.ReinitResync))

	// Clearing forgets the records; the Initial cycle links the existing row by matchOn.
	annotate(t, user, syncv1alpha1.ReinitAnnotation, syncv1alpha1.ReinitClear)
	cleared := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Mode).To(Equal(syncv1alpha1.InitialCycle))
	})
	g.Expect(cleared.Status.LastHandledReinit).To(Equal(syncv1alpha1.ReinitClear))
	g.Expect(cleared.Status.LastCycle.Items.Created).To(BeZero())
	g.Expect(peopleIn(t, db)).To(HaveLen(1))

	// The same request again, made new by a suffix; the target is down, so the cycle fails and
	// the request stays pending instead of being marked handled.
	file := filepath.Join(claimDir(ns), "directory.db")
	g.Expect(os.Rename(file, file+".away")).To(Succeed())
	annotate(t, user, syncv1alpha1.ReinitAnnotation, "clear@2")
	failed := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Reinit).To(Equal("clear@2"))
		g.Expect(c.FailureReason).To(Equal(syncv1alpha1.CycleEndpointUnavailableReason))
	})
	g.Expect(failed.Status.LastHandledReinit).To(Equal(syncv1alpha1.ReinitClear), "a failed cycle did not clear anything")

	// Back up; the next cycle (asked for now rather than in an hour) carries the request out.
	g.Expect(os.Rename(file+".away", file)).To(Succeed())
	annotate(t, user, syncv1alpha1.RequestedAtAnnotation, "after-the-outage")
	done := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.FailureReason).To(BeEmpty())
		g.Expect(c.Mode).To(Equal(syncv1alpha1.InitialCycle))
	})
	g.Expect(done.Status.LastHandledReinit).To(Equal("clear@2"))
	g.Expect(peopleIn(t, db)).To(HaveLen(1))
}

func TestDeletingAUserRetainsOrDeletesItsRecords(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	kept, dropped := person(7), person(8)
	hrExport(t, ns, [][5]string{kept, dropped})
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "import"))).To(Succeed())
	keptUser := policyUser(ns, "kept", kept[1], "import")
	droppedUser := policyUser(ns, "dropped", dropped[1], "import")
	droppedUser.Spec.RecordsOnDelete = syncv1alpha1.DeleteRecords
	// As `kubectl apply` leaves it: the operator holds users without this copy, and must not
	// drop it when it writes their finalizers.
	droppedUser.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"kind":"SyncUser"}`}
	g.Expect(k8s.Create(ctx(t), keptUser)).To(Succeed())
	g.Expect(k8s.Create(ctx(t), droppedUser)).To(Succeed())
	for _, name := range []string{"kept", "dropped"} {
		u := eventuallyCycled(t, ns, name, "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
			g.Expect(c.Items.Created).To(BeEquivalentTo(1))
		})
		if name == "dropped" {
			g.Expect(u.Finalizers).To(ContainElement("sync.chainsync.dev/records"), "its records are deleted before it goes")
			g.Expect(u.Annotations).To(HaveKeyWithValue(corev1.LastAppliedConfigAnnotation, `{"kind":"SyncUser"}`))
		} else {
			g.Expect(u.Finalizers).To(BeEmpty(), "its records stay: nothing to wait for")
		}
	}
	store, err := records.Open(claimDir(ns))
	g.Expect(err).NotTo(HaveOccurred())
	recordsOf := func(email string) string {
		dir, err := store.UserDir(email)
		g.Expect(err).NotTo(HaveOccurred())
		return dir
	}
	g.Expect(recordsOf(kept[1])).To(BeADirectory())
	g.Expect(recordsOf(dropped[1])).To(BeADirectory())

	for _, u := range []*syncv1alpha1.SyncUser{keptUser, droppedUser} {
		g.Expect(k8s.Delete(ctx(t), u)).To(Succeed())
		g.Eventually(func() error {
			return k8s.Get(ctx(t), client.ObjectKeyFromObject(u), &syncv1alpha1.SyncUser{})
		}, wait, 250*time.Millisecond).Should(MatchError(ContainSubstring("not found")))
	}
	g.Expect(recordsOf(kept[1])).To(BeADirectory(), "Retain keeps the records")
	_, err = os.Stat(recordsOf(dropped[1]))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "Delete removes the records")

	// The retained user comes back: its records link it to the row it had, nothing is duplicated.
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "kept", kept[1], "import"))).To(Succeed())
	eventuallyCycled(t, ns, "kept", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Mode).NotTo(Equal(syncv1alpha1.InitialCycle), "it picks up its records")
		g.Expect(c.Items.Created).To(BeZero())
	})
	g.Expect(peopleIn(t, db)).To(HaveLen(2))
}

func TestRowsSetAsideAreReportedInTheUsersRecordFolder(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(30)
	noKey, dup1, dup2 := person(31), person(32), person(33)
	noKey[0], dup2[0] = "", dup1[0]
	for _, p := range []*[5]string{&noKey, &dup1, &dup2} {
		p[4] = ada[1] // Ada's team
	}
	hrExport(t, ns, [][5]string{ada, noKey, dup1, dup2})
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "import"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "import"))).To(Succeed())
	u := eventuallyCycled(t, ns, "ada", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})
	g.Expect(u.Status.LastCycle.Items.Skipped).To(BeEquivalentTo(3))
	g.Expect(u.Status.LastCycle.Empty).To(BeFalse(), "set-aside rows keep a user on its step until fixed")
	g.Expect(peopleIn(t, db)).To(Equal([]string{ada[1] + " " + ada[2]}))

	store, err := records.Open(claimDir(ns))
	g.Expect(err).NotTo(HaveOccurred())
	read := func(kind records.ReportKind) string {
		path, err := store.ReportPath(ada[1], "people", kind)
		g.Expect(err).NotTo(HaveOccurred())
		b, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred(), "the %s report a person opens", kind)
		return string(b)
	}
	g.Expect(read(records.NullKeyReport)).To(ContainSubstring(noKey[1]))
	dups := read(records.DuplicateReport)
	g.Expect(dups).To(ContainSubstring(dup1[1]))
	g.Expect(dups).To(ContainSubstring(dup2[1]))
	g.Expect(u.Status.LastCompleteTime).NotTo(BeNil(), "the first cycle compared everything")
}

func TestTwoPoliciesCannotSyncOneIdentityIntoOneTarget(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(40)
	hrExport(t, ns, [][5]string{ada})
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "first"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "second"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "first"))).To(Succeed())
	eventuallyCycled(t, ns, "ada", "first", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})

	// A second SyncUser for the same person, on another policy writing the same directory.
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada-again", ada[1], "second"))).To(Succeed())
	eventuallyCycled(t, ns, "ada-again", "second", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.FailureReason).To(Equal(syncv1alpha1.SyncUserDestinationClaimedReason))
	})
	twin := eventuallyUser(t, ns, "ada-again", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(condition(u, syncv1alpha1.StalledCondition)).NotTo(BeNil())
	})
	stalled := condition(twin, syncv1alpha1.StalledCondition)
	g.Expect(stalled).NotTo(BeNil())
	g.Expect(stalled.Reason).To(Equal(syncv1alpha1.SyncUserDestinationClaimedReason))
	g.Expect(stalled.Message).To(ContainSubstring(`"first"`), "the message names the policy holding the claim")
	g.Expect(peopleIn(t, db)).To(HaveLen(1))

	// The first SyncUser is deleted, its records kept: its claim protects no one any more, and
	// the twin's next cycle takes the target over, linking the row by matchOn.
	g.Expect(k8s.Delete(ctx(t), &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}})).To(Succeed())
	taken := eventuallyCycled(t, ns, "ada-again", "second", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Failure).To(BeEmpty())
	})
	g.Expect(taken.Status.LastCycle.Items.Created).To(BeZero())
	eventuallyUser(t, ns, "ada-again", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(condition(u, syncv1alpha1.StalledCondition)).To(BeNil())
	})
	g.Expect(peopleIn(t, db)).To(HaveLen(1))
	store, err := records.Open(claimDir(ns))
	g.Expect(err).NotTo(HaveOccurred())
	claims, err := store.Claims()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims).To(ConsistOf(HaveField("Policy", "second")))
}
