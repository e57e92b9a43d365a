package controllers

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func TestObservedGenerationWaitsForAFinishedReconcile(t *testing.T) {
	g := NewWithT(t)
	g.Expect(reconciled(nil)).To(BeTrue())
	g.Expect(reconciled(reconcile.TerminalError(errors.New("spec.schedule.cron: bad")))).To(BeTrue(),
		"a spec that cannot work is a finished reconcile: Stalled, for this generation")
	g.Expect(reconciled(fmt.Errorf("listing users: %w", errors.New("connection refused")))).To(BeFalse(),
		"a transient error is retried; the status must not claim the generation yet")
}

func TestMarkStalledReadsAsFailedToKstatus(t *testing.T) {
	g := NewWithT(t)
	conds := []metav1.Condition{{Type: syncv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: "Progressing"}}
	markStalled(&conds, 3, "SecretNotFound", `Secret "crm-db" not found`)
	g.Expect(meta.FindStatusCondition(conds, syncv1alpha1.ReconcilingCondition)).To(BeNil())
	for _, c := range []struct {
		t      string
		status metav1.ConditionStatus
	}{{syncv1alpha1.StalledCondition, metav1.ConditionTrue}, {syncv1alpha1.ReadyCondition, metav1.ConditionFalse}} {
		got := meta.FindStatusCondition(conds, c.t)
		g.Expect(got).NotTo(BeNil())
		g.Expect(got.Status).To(Equal(c.status))
		g.Expect(got.Reason).To(Equal("SecretNotFound"))
		g.Expect(got.ObservedGeneration).To(BeEquivalentTo(3))
	}
}
