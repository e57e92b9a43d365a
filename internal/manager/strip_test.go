package manager

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// The operator holds every SyncUser: it keeps what it reads and drops the rest.
func TestTheCacheHoldsUsersWithoutWhatTheOperatorNeverReads(t *testing.T) {
	g := NewWithT(t)
	u := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada",
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"manifest"}`,
				syncv1alpha1.RequestedAtAnnotation: "now"}},
		Status: syncv1alpha1.SyncUserStatus{Policy: "crm", LastCycle: &syncv1alpha1.CycleResult{ID: "crm-1",
			Items:       syncv1alpha1.ItemCounts{Errors: 2},
			ItemReports: []syncv1alpha1.CycleItemReport{{Entity: "people", SourceID: "E001", Reason: "a long message"}, {Entity: "people", SourceID: "E002", Reason: "another"}}}},
	}
	out, err := stripUser(u)
	g.Expect(err).NotTo(HaveOccurred())
	held := out.(*syncv1alpha1.SyncUser)
	g.Expect(held.ManagedFields).To(BeNil())
	g.Expect(held.Annotations).To(Equal(map[string]string{syncv1alpha1.RequestedAtAnnotation: "now"}), "requests are read")
	g.Expect(held.Status.LastCycle.ItemReports).To(BeNil())
	g.Expect(held.Status.LastCycle.Items.Errors).To(BeEquivalentTo(2), "the counts are read")
	g.Expect(held.Status.Policy).To(Equal("crm"))

	tombstone := "a deleted object's final state unknown"
	g.Expect(stripUser(tombstone)).To(Equal(tombstone))
}
