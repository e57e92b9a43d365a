package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

const (
	// userPolicyIndex finds the users currently on a policy (status.policy), whether placed on it
	// directly or through a chain step.
	userPolicyIndex = ".status.policy"
	// userChainIndex finds the users placed on a chain.
	userChainIndex = ".spec.chainRef.name"
	// jobUserIndex finds the cycle Jobs that hold a user (their users annotation).
	jobUserIndex = ".metadata.annotations.users"
)

func setupSyncUserIndexers(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncUser{}, userPolicyIndex, func(o client.Object) []string {
		if p := o.(*syncv1alpha1.SyncUser).Status.Policy; p != "" {
			return []string{p}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &batchv1.Job{}, jobUserIndex, func(o client.Object) []string {
		if o.GetLabels()[syncv1alpha1.PolicyLabel] == "" {
			return nil
		}
		return jobUsers(o.(*batchv1.Job))
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &syncv1alpha1.SyncUser{}, userChainIndex, func(o client.Object) []string {
		if ref := o.(*syncv1alpha1.SyncUser).Spec.ChainRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	})
}
