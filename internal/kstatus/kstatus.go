// Package kstatus sets the conditions every chainsync kind reports the way kstatus (the
// readiness library Flux, Argo CD and kubectl wait read) understands them: Ready, plus Stalled
// and Reconciling that exist only while true.
package kstatus

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// MarkStalled says a person must act, as kstatus reads "failed": Stalled=True and Ready=False
// with the same reason and message, and no Reconciling.
func MarkStalled(conds *[]metav1.Condition, generation int64, reason, message string) {
	for _, t := range []string{syncv1alpha1.StalledCondition, syncv1alpha1.ReadyCondition} {
		status := metav1.ConditionTrue
		if t == syncv1alpha1.ReadyCondition {
			status = metav1.ConditionFalse
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: t, Status: status, Reason: reason, Message: message, ObservedGeneration: generation})
	}
	meta.RemoveStatusCondition(conds, syncv1alpha1.ReconcilingCondition)
}
