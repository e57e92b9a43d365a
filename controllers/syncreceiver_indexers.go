package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

const (
	// receiverSecretIndex finds the receivers whose token is in a Secret.
	receiverSecretIndex = ".spec.secretRef.name"
	// receiverPolicyIndex finds the receivers of a policy.
	receiverPolicyIndex = ".spec.policyRef.name"
)

func setupSyncReceiverIndexers(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncReceiver{}, receiverSecretIndex, func(o client.Object) []string {
		return []string{o.(*syncv1alpha1.SyncReceiver).Spec.SecretRef.Name}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &syncv1alpha1.SyncReceiver{}, receiverPolicyIndex, func(o client.Object) []string {
		return []string{o.(*syncv1alpha1.SyncReceiver).Spec.PolicyRef.Name}
	})
}
