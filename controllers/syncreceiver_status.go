package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
	"github.com/chainsync/chainsync/internal/webhook"
)

// receiverWorld is what a receiver's reconcile observed: its token (or why it cannot be read),
// and whether its policy exists.
type receiverWorld struct {
	token        []byte
	tokenProblem *webhook.TokenProblem
	policyFound  bool
}

// setReceiverStatus writes a receiver's path and conditions from what was observed. The path is
// shown whenever the token can be read, so a person can configure the sender while the policy
// is still missing; it is cleared when the token cannot, since the old path no longer serves.
// The message never contains the token: only the path, which is a hash of it.
func setReceiverStatus(rcv *syncv1alpha1.SyncReceiver, w receiverWorld) {
	conds := &rcv.Status.Conditions
	if w.tokenProblem != nil {
		rcv.Status.WebhookPath = ""
		kstatus.MarkStalled(conds, rcv.Generation, w.tokenProblem.Reason, w.tokenProblem.Message)
		return
	}
	rcv.Status.WebhookPath = webhook.Path(w.token, rcv.Namespace, rcv.Name)
	if !w.policyFound {
		kstatus.MarkStalled(conds, rcv.Generation, syncv1alpha1.SyncReceiverPolicyNotFoundReason,
			"spec.policyRef: SyncPolicy \""+rcv.Spec.PolicyRef.Name+"\" not found; calls find no users")
		return
	}
	ready := metav1.Condition{Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: syncv1alpha1.SyncReceiverReadyReason, Message: "Serving calls at " + rcv.Status.WebhookPath, ObservedGeneration: rcv.Generation}
	if rcv.Spec.Suspend {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, syncv1alpha1.SuspendedReason, "Suspended: calls are answered 503"
	}
	meta.RemoveStatusCondition(conds, syncv1alpha1.StalledCondition)
	meta.RemoveStatusCondition(conds, syncv1alpha1.ReconcilingCondition)
	meta.SetStatusCondition(conds, ready)
}
