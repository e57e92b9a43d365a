package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// chainPolicyIndex finds the chains that have a policy as one of their steps.
const chainPolicyIndex = ".spec.steps.policy"

func setupOnboardingChainIndexers(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &syncv1alpha1.OnboardingChain{}, chainPolicyIndex, func(o client.Object) []string {
		var names []string
		for _, s := range o.(*syncv1alpha1.OnboardingChain).Spec.Steps {
			names = append(names, s.Policy)
		}
		return names
	})
}
