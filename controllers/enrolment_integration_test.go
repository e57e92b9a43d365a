package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func enrolment(ns, name string, spec syncv1alpha1.SyncEnrolmentSpec) *syncv1alpha1.SyncEnrolment {
	return &syncv1alpha1.SyncEnrolment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

// enrolledUsers lists the SyncUsers an enrolment made, by member key.
func enrolledUsers(g Gomega, t *testing.T, ns, name string) map[string]syncv1alpha1.SyncUser {
	var list syncv1alpha1.SyncUserList
	g.Expect(k8s.List(ctx(t), &list, client.InNamespace(ns), client.MatchingLabels{syncv1alpha1.EnrolmentLabel: name})).To(Succeed())
	out := map[string]syncv1alpha1.SyncUser{}
	for _, u := range list.Items {
		out[u.Annotations[syncv1alpha1.MemberKeyAnnotation]] = u
	}
	return out
}

func getEnrolment(g Gomega, t *testing.T, ns, name string) *syncv1alpha1.SyncEnrolment {
	e := &syncv1alpha1.SyncEnrolment{}
	g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, e)).To(Succeed())
	return e
}

// requestRead asks the enrolment to read its source now, as a person would.
func requestRead(g Gomega, t *testing.T, ns, name, value string) {
	e := getEnrolment(g, t, ns, name)
	patch := client.MergeFrom(e.DeepCopy())
	if e.Annotations == nil {
		e.Annotations = map[string]string{}
	}
	e.Annotations[syncv1alpha1.RequestedAtAnnotation] = value
	g.Expect(k8s.Patch(ctx(t), e, patch)).To(Succeed())
}

func TestFiveHundredMembersOfACSVExportAreEnrolledAndRunTheChainThenOneLeavesAndOneIsRenamed(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	const n = 500
	var people [][5]string
	for i := range n {
		people = append(people, person(i))
	}
	hrExport(t, ns, people)
	db := directory(t, ns)
	for _, name := range []string{"import", "bau"} {
		g.Expect(k8s.Create(ctx(t), hrPolicy(ns, name, func(p *syncv1alpha1.SyncPolicy) {
			p.Spec.JobTemplate.UsersPerJob = n
		}))).To(Succeed())
	}
	// Left running, 500 users cycling every 10 seconds would hold the suite's shared Job
	// executor for every test after this one.
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range []string{"import", "bau"} {
			p := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
			if err := k8s.Patch(c, p, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
				t.Errorf("suspending policy %s: %v", name, err)
			}
		}
	})
	g.Expect(k8s.Create(ctx(t), &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec:       syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "import", Policy: "import"}, {Name: "bau", Policy: "bau"}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), enrolment(ns, "new-hires", syncv1alpha1.SyncEnrolmentSpec{
		ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"},
		Source: &syncv1alpha1.EnrolmentSource{PolicyRef: syncv1alpha1.PolicyReference{Name: "import"},
			Collection: "employees.csv", KeyFields: []string{"employee_id"},
			Identity: syncv1alpha1.MemberIdentityFields{Email: "email", Attributes: map[string]string{"employeeId": "employee_id"}}},
	}))).To(Succeed())

	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "new-hires")
		g.Expect(e.Status.Members).To(BeEquivalentTo(n))
		g.Expect(e.Status.Managed).To(BeEquivalentTo(n))
		g.Expect(meta.IsStatusConditionTrue(e.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(e.Status.SourceReadTime).NotTo(BeNil())
	}, 2*time.Minute, time.Second).Should(Succeed())
	users := enrolledUsers(g, t, ns, "new-hires")
	g.Expect(users).To(HaveLen(n))
	first := users["row:E001"]
	g.Expect(first.Spec.Identity.Email).To(Equal("user001@example.com"))
	g.Expect(first.Spec.Identity.Attributes).To(Equal(map[string]string{"employeeId": "E001"}))
	g.Expect(first.Spec.ChainRef.Name).To(Equal("onboarding"))
	g.Expect(first.OwnerReferences).To(HaveLen(1))
	g.Expect(first.OwnerReferences[0].Kind).To(Equal("SyncEnrolment"))

	chain := &syncv1alpha1.OnboardingChain{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "onboarding"}, chain)).To(Succeed())
		var list syncv1alpha1.SyncUserList
		g.Expect(k8s.List(ctx(t), &list, client.InNamespace(ns))).To(Succeed())
		cycled, failed, why, waiting := 0, 0, "", ""
		for _, u := range list.Items {
			if !meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition) && waiting == "" {
				waiting = fmt.Sprintf("%s on step %s: %s", u.Name, u.Status.Step, readyOf(&u))
			}
			if c := u.Status.LastCycle; c != nil {
				cycled++
				if c.Failure != "" {
					failed++
					why = c.Failure
				}
			}
		}
		var jobs batchv1.JobList
		g.Expect(k8s.List(ctx(t), &jobs, client.InNamespace(ns))).To(Succeed())
		g.Expect(chain.Status.CompletedUsers).To(BeEquivalentTo(n), "cycled %d failed %d (%s), %d jobs; one not completed: %s", cycled, failed, why, len(jobs.Items), waiting)
	}, 4*time.Minute, 2*time.Second).Should(Succeed())
	g.Expect(peopleIn(t, db)).To(HaveLen(n), "each member's person was created once")

	// E000 leaves the export; E001 changes email (the same employee, renamed).
	people = people[1:]
	people[0][1], people[0][4] = "ada.renamed@example.com", "ada.renamed@example.com"
	hrExport(t, ns, people)
	requestRead(g, t, ns, "new-hires", "after-hr-change")
	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "new-hires")
		g.Expect(e.Status.LastHandledRequestedAt).To(Equal("after-hr-change"))
		g.Expect(e.Status.Members).To(BeEquivalentTo(n - 1))
		g.Expect(e.Status.Suspended).To(BeEquivalentTo(1))
		g.Expect(e.Status.Managed).To(BeEquivalentTo(n), "a member who left keeps a suspended user")
	}, time.Minute, time.Second).Should(Succeed())
	users = enrolledUsers(g, t, ns, "new-hires")
	g.Expect(users).To(HaveLen(n))
	g.Expect(users["row:E000"].Spec.Suspend).To(BeTrue())
	g.Expect(users["row:E001"].Name).To(Equal(first.Name), "renamed, not replaced")
	g.Expect(users["row:E001"].UID).To(Equal(first.UID))
	g.Expect(users["row:E001"].Spec.Identity.Email).To(Equal("ada.renamed@example.com"))
	g.Expect(users["row:E002"].Spec.Suspend).To(BeFalse())
}

func TestMembersOfASQLTableAreEnrolledAndMassRemovalWaitsForApproval(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	hrExport(t, ns, nil)
	db := directory(t, ns)
	_, err := db.Exec(`CREATE TABLE staff (id INTEGER PRIMARY KEY, login TEXT, mail TEXT, active INTEGER)`)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 520 {
		_, err := db.Exec(`INSERT INTO staff VALUES (?, ?, ?, ?)`, i, fmt.Sprintf("login%d", i), fmt.Sprintf("staff%d@example.com", i), i%26 != 0)
		g.Expect(err).NotTo(HaveOccurred())
	}
	// A bad address in an active row: skipped, with its reason; the others enrol.
	_, err = db.Exec(`UPDATE staff SET mail = 'not an address' WHERE id = 1`)
	g.Expect(err).NotTo(HaveOccurred())
	// Suspended: its users need not cycle for this test, and a suspended policy's endpoint is
	// still read for members.
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "directory", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Suspend = true }))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), enrolment(ns, "staff", syncv1alpha1.SyncEnrolmentSpec{
		PolicyRef: &syncv1alpha1.PolicyReference{Name: "directory"},
		Source: &syncv1alpha1.EnrolmentSource{PolicyRef: syncv1alpha1.PolicyReference{Name: "directory"}, Endpoint: syncv1alpha1.TargetSide,
			Collection: "staff", KeyFields: []string{"id"}, Where: "active = 1",
			Identity: syncv1alpha1.MemberIdentityFields{Email: "mail", Name: "login"}},
	}))).To(Succeed())

	// 520 rows, 20 inactive, one invalid.
	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "staff")
		g.Expect(e.Status.Managed).To(BeEquivalentTo(499))
		g.Expect(e.Status.Skipped).To(BeEquivalentTo(1))
		g.Expect(e.Status.SkippedMembers).To(ConsistOf(HaveField("Reason", syncv1alpha1.MemberInvalidIdentity)))
	}, 2*time.Minute, time.Second).Should(Succeed())
	users := enrolledUsers(g, t, ns, "staff")
	g.Expect(users["row:2"].Spec.Identity).To(Equal(syncv1alpha1.UserIdentity{Email: "staff2@example.com", Name: "login2"}))
	g.Expect(users["row:2"].Spec.PolicyRef.Name).To(Equal("directory"))
	g.Expect(users).NotTo(HaveKey("row:26"), "inactive rows are not members")

	// A hundred leave at once: more than the default threshold (10), so nobody is removed
	// until a person approves the set the status names.
	_, err = db.Exec(`UPDATE staff SET active = 0 WHERE id BETWEEN 100 AND 205`)
	g.Expect(err).NotTo(HaveOccurred())
	requestRead(g, t, ns, "staff", "1")
	var e *syncv1alpha1.SyncEnrolment
	g.Eventually(func(g Gomega) {
		e = getEnrolment(g, t, ns, "staff")
		g.Expect(e.Status.PendingRemovals).To(BeEquivalentTo(102), "%+v", e.Status)
		g.Expect(meta.IsStatusConditionTrue(e.Status.Conditions, syncv1alpha1.StalledCondition)).To(BeTrue())
	}, time.Minute, time.Second).Should(Succeed())
	g.Expect(e.Status.Suspended).To(BeZero())
	for _, u := range enrolledUsers(g, t, ns, "staff") {
		g.Expect(u.Spec.Suspend).To(BeFalse(), "held: %s", u.Name)
	}

	patch := client.MergeFrom(e.DeepCopy())
	e.Annotations = map[string]string{syncv1alpha1.ApproveRemovalsAnnotation: e.Status.PendingRemovalsID}
	g.Expect(k8s.Patch(ctx(t), e, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "staff")
		g.Expect(e.Status.Suspended).To(BeEquivalentTo(102))
		g.Expect(e.Status.PendingRemovals).To(BeZero())
		g.Expect(meta.IsStatusConditionTrue(e.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue())
	}, time.Minute, time.Second).Should(Succeed())
	g.Expect(enrolledUsers(g, t, ns, "staff")["row:150"].Spec.Suspend).To(BeTrue())

	// Row 2's person is renamed: the same user, with the new identity.
	_, err = db.Exec(`UPDATE staff SET mail = 'renamed2@example.com', login = 'renamed2' WHERE id = 2`)
	g.Expect(err).NotTo(HaveOccurred())
	requestRead(g, t, ns, "staff", "2")
	g.Eventually(func(g Gomega) {
		u := enrolledUsers(g, t, ns, "staff")["row:2"]
		g.Expect(u.Spec.Identity).To(Equal(syncv1alpha1.UserIdentity{Email: "renamed2@example.com", Name: "renamed2"}))
		g.Expect(u.UID).To(Equal(users["row:2"].UID))
	}, time.Minute, time.Second).Should(Succeed())
}

func TestListedAndSelectedUsersAreEnrolledAndOthersAreNeverTouched(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	hrExport(t, ns, nil)
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "crm"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "mailbox"))).To(Succeed())
	// People placed by hand on the CRM policy, two of them in sales; one on the mailbox policy
	// already.
	for _, u := range []*syncv1alpha1.SyncUser{
		policyUser(ns, "ann", "ann@example.com", "crm"), policyUser(ns, "bob", "bob@example.com", "crm"),
		policyUser(ns, "cid", "cid@example.com", "crm"), policyUser(ns, "ann-mailbox", "ANN@example.com", "mailbox"),
	} {
		if u.Name == "ann" || u.Name == "bob" {
			u.Labels = map[string]string{"dept": "sales"}
		}
		g.Expect(k8s.Create(ctx(t), u)).To(Succeed())
	}
	g.Expect(k8s.Create(ctx(t), enrolment(ns, "sales-mailboxes", syncv1alpha1.SyncEnrolmentSpec{
		PolicyRef: &syncv1alpha1.PolicyReference{Name: "mailbox"},
		Users:     []syncv1alpha1.UserIdentity{{Email: "dan@example.com"}},
		Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"dept": "sales"}},
	}))).To(Succeed())

	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "sales-mailboxes")
		g.Expect(e.Status.Managed).To(BeEquivalentTo(2))
		g.Expect(e.Status.SkippedMembers).To(ConsistOf(
			HaveField("Reason", syncv1alpha1.MemberAlreadyPlaced)))
	}, time.Minute, time.Second).Should(Succeed())
	var emails []string
	for _, u := range enrolledUsers(g, t, ns, "sales-mailboxes") {
		emails = append(emails, u.Spec.Identity.Email)
		g.Expect(u.Spec.PolicyRef.Name).To(Equal("mailbox"))
	}
	sort.Strings(emails)
	g.Expect(emails).To(Equal([]string{"bob@example.com", "dan@example.com"}), "ann is on the mailbox policy already, by hand")

	// The users it did not make are as they were; deleting the enrolment takes only its own.
	for _, name := range []string{"ann", "bob", "cid", "ann-mailbox"} {
		u := &syncv1alpha1.SyncUser{}
		g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
		g.Expect(u.OwnerReferences).To(BeEmpty())
		g.Expect(u.Labels).NotTo(HaveKey(syncv1alpha1.EnrolmentLabel))
	}
	var jobs batchv1.JobList
	g.Expect(k8s.List(ctx(t), &jobs, client.InNamespace(ns), client.MatchingLabels{syncv1alpha1.EnrolmentLabel: "sales-mailboxes"})).To(Succeed())
	g.Expect(jobs.Items).To(BeEmpty(), "no source, no read Job")
}

func TestAFailedReadOfTheSourceSaysWhyAndRemovesNobody(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	hrExport(t, ns, [][5]string{person(1), person(2)})
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "import"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), enrolment(ns, "hr", syncv1alpha1.SyncEnrolmentSpec{
		PolicyRef: &syncv1alpha1.PolicyReference{Name: "import"},
		Source: &syncv1alpha1.EnrolmentSource{PolicyRef: syncv1alpha1.PolicyReference{Name: "import"},
			Collection: "employees.csv", KeyFields: []string{"employee_id"}, Identity: syncv1alpha1.MemberIdentityFields{Email: "email"}},
	}))).To(Succeed())
	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "hr")
		g.Expect(e.Status.Managed).To(BeEquivalentTo(2), "%+v", e.Status)
	}, time.Minute, time.Second).Should(Succeed())

	// The export's key column is gone: the read fails, and the two users stay as they are.
	g.Expect(writeFile(claimDir(ns), "hr/employees.csv", "id,email\n1,x@example.com\n")).To(Succeed())
	requestRead(g, t, ns, "hr", "broken")
	g.Eventually(func(g Gomega) {
		e := getEnrolment(g, t, ns, "hr")
		ready := meta.FindStatusCondition(e.Status.Conditions, syncv1alpha1.ReadyCondition)
		g.Expect(ready.Reason).To(Equal(syncv1alpha1.SyncEnrolmentSourceFailedReason))
		g.Expect(ready.Message).To(ContainSubstring("employee_id"))
	}, time.Minute, time.Second).Should(Succeed())
	for _, u := range enrolledUsers(g, t, ns, "hr") {
		g.Expect(u.Spec.Suspend).To(BeFalse())
	}
	g.Expect(getEnrolment(g, t, ns, "hr").Status.Managed).To(BeEquivalentTo(2))
}

// readyOf is what a user's Ready condition says.
func readyOf(u *syncv1alpha1.SyncUser) string {
	if c := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition); c != nil {
		return string(c.Status) + " " + c.Reason + ": " + c.Message
	}
	return "no Ready condition"
}

func writeFile(dir, name, content string) error {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}
