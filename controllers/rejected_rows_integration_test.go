package controllers_test

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/records"
)

func TestABadRowIsItsOwnersProblemOrNoOnes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada, bob := person(50), person(51)
	hrExport(t, ns, [][5]string{ada, bob})
	export := filepath.Join(claimDir(ns), "hr", "employees.csv")
	f, err := os.OpenFile(export, os.O_APPEND|os.O_WRONLY, 0)
	g.Expect(err).NotTo(HaveOccurred())
	// Line 4 has one cell too many but its owner is readable: Ada's. Line 5 is cut short before
	// the owner column: no one's.
	_, err = f.WriteString("E998,extra@example.com,Extra,Cell," + ada[1] + ",surplus\nE999,cut@example.com\n")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.Close()).To(Succeed())
	db := directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "import"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "import"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "bob", bob[1], "import"))).To(Succeed())

	a := eventuallyCycled(t, ns, "ada", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})
	g.Expect(a.Status.LastCycle.Items.Errors).To(BeEquivalentTo(1), "the row Ada owns is Ada's error")
	g.Expect(a.Status.LastCycle.ItemReports).To(ContainElement(HaveField("Reason", ContainSubstring("employees.csv line 4"))))
	b := eventuallyCycled(t, ns, "bob", "import", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(1))
	})
	g.Expect(b.Status.LastCycle.Items.Errors).To(BeZero(), "no one else's bad row fails Bob")
	g.Expect(b.Status.LastCycle.RejectedRows).To(BeEquivalentTo(1))
	g.Expect(peopleIn(t, db)).To(HaveLen(2))

	// The row that is no one's is in the export's report, with its line, and counted on the policy.
	store, err := records.Open(claimDir(ns))
	g.Expect(err).NotTo(HaveOccurred())
	report, err := store.ExportReportPath("import", "people", records.RejectedRowsReport)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		b, err := os.ReadFile(report)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(b)).To(ContainSubstring("5,"))
		g.Expect(string(b)).To(ContainSubstring("E999,cut@example.com"))
		g.Expect(string(b)).NotTo(ContainSubstring("E998"), "an owned row is its owner's, not the export's")
	}, wait).Should(Succeed())
	g.Eventually(func(g Gomega) {
		p := &syncv1alpha1.SyncPolicy{}
		g.Expect(k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "import"}, p)).To(Succeed())
		g.Expect(p.Status.RejectedRows).To(BeEquivalentTo(1))
		g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.ReadyCondition).Message).To(ContainSubstring("1 export rows are no one's"))
	}, wait).Should(Succeed())
}
