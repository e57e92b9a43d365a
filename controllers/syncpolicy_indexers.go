package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

const (
	// jobOwnerIndex finds the cycle Jobs a policy launched (their controller reference).
	jobOwnerIndex = ".metadata.controller"
	// policySecretIndex finds the policies that read a Secret.
	policySecretIndex = ".spec.secrets"
	// policyServiceAccountIndex finds the policies whose Jobs run as a service account.
	policyServiceAccountIndex = ".spec.jobTemplate.serviceAccountName"
	// policyClaimIndex finds the policies that mount a PersistentVolumeClaim.
	policyClaimIndex = ".spec.claims"
)

func setupSyncPolicyIndexers(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &batchv1.Job{}, jobOwnerIndex, func(o client.Object) []string {
		owner := metav1.GetControllerOf(o)
		if owner == nil || owner.APIVersion != syncv1alpha1.GroupVersion.String() || owner.Kind != "SyncPolicy" {
			return nil
		}
		return []string{owner.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncPolicy{}, policySecretIndex, func(o client.Object) []string {
		var names []string
		for _, ref := range o.(*syncv1alpha1.SyncPolicy).SecretKeys() {
			names = append(names, ref.Name)
		}
		return names
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncPolicy{}, policyServiceAccountIndex, func(o client.Object) []string {
		return []string{o.(*syncv1alpha1.SyncPolicy).Spec.JobTemplate.ServiceAccountName}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &syncv1alpha1.SyncPolicy{}, policyClaimIndex, func(o client.Object) []string {
		return o.(*syncv1alpha1.SyncPolicy).Claims()
	})
}
