package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
	"github.com/chainsync/chainsync/internal/webhook"
)

func TestSetReceiverStatus(t *testing.T) {
	token := []byte("tok-123")
	path := webhook.Path(token, "ns", "hr")
	notAllowed := &webhook.TokenProblem{Reason: syncv1alpha1.SyncReceiverSecretNotAllowedReason, Message: `Secret "hook" is not labelled`}
	for _, tc := range []struct {
		name     string
		suspend  bool
		world    receiverWorld
		ready    metav1.ConditionStatus
		reason   string
		stalled  bool
		wantPath string
	}{
		{"ready", false, receiverWorld{token: token, policyFound: true}, metav1.ConditionTrue, syncv1alpha1.SyncReceiverReadyReason, false, path},
		{"suspended", true, receiverWorld{token: token, policyFound: true}, metav1.ConditionFalse, syncv1alpha1.SuspendedReason, false, path},
		{"policy missing: the path is shown for the sender", false, receiverWorld{token: token}, metav1.ConditionFalse, syncv1alpha1.SyncReceiverPolicyNotFoundReason, true, path},
		{"token unreadable: no path", false, receiverWorld{tokenProblem: notAllowed, policyFound: true}, metav1.ConditionFalse, syncv1alpha1.SyncReceiverSecretNotAllowedReason, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			rcv := &syncv1alpha1.SyncReceiver{ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: "ns", Generation: 3}}
			rcv.Spec.PolicyRef.Name = "p"
			rcv.Spec.Suspend = tc.suspend
			// A stale path and a Stalled condition from before must not survive.
			rcv.Status.WebhookPath = "/hook/old"
			kstatus.MarkStalled(&rcv.Status.Conditions, 2, "Old", "old")
			setReceiverStatus(rcv, tc.world)
			g.Expect(rcv.Status.WebhookPath).To(Equal(tc.wantPath))
			ready := meta.FindStatusCondition(rcv.Status.Conditions, syncv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(tc.ready))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(ready.ObservedGeneration).To(BeEquivalentTo(3))
			g.Expect(ready.Message).NotTo(ContainSubstring(string(token)))
			g.Expect(meta.IsStatusConditionTrue(rcv.Status.Conditions, syncv1alpha1.StalledCondition)).To(Equal(tc.stalled))
		})
	}
}
