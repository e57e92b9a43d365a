package controllers

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// OnboardingChainReconciler checks a chain's steps and reports how its users progress.
type OnboardingChainReconciler struct {
	client.Client
	// Users holds the users by chain.
	Users *userIndex
}

// Reconcile handles one OnboardingChain.
func (r *OnboardingChainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	chain := &syncv1alpha1.OnboardingChain{}
	if err := r.Get(ctx, req.NamespacedName, chain); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := chain.DeepCopy()
	defer func() {
		if reconciled(retErr) {
			chain.Status.ObservedGeneration = chain.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, chain, base, func(c *syncv1alpha1.OnboardingChain) any { return c.Status }))
	}()

	policies := make([]*syncv1alpha1.SyncPolicy, len(chain.Spec.Steps))
	for i, step := range chain.Spec.Steps {
		p := &syncv1alpha1.SyncPolicy{}
		err := r.Get(ctx, client.ObjectKey{Namespace: chain.Namespace, Name: step.Policy}, p)
		switch {
		case apierrors.IsNotFound(err):
			p = nil
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("getting SyncPolicy %s of step %s: %w", step.Policy, step.Name, err)
		}
		policies[i] = p
	}
	users, err := r.Users.users(usersByChain, chain.Namespace, chain.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	summarizeChain(chain, policies, users)
	return ctrl.Result{}, nil
}

// SetupWithManager watches chains, their users and their policies.
func (r *OnboardingChainReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1alpha1.OnboardingChain{}).
		Watches(&syncv1alpha1.SyncUser{}, enqueueCoalesced(chainOfUser, userEventWindow)).
		Watches(&syncv1alpha1.SyncPolicy{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, func() client.ObjectList { return &syncv1alpha1.OnboardingChainList{} }, chainPolicyIndex))).
		Named("onboardingchain").
		Complete(r)
}

func chainOfUser(_ context.Context, obj client.Object) []reconcile.Request {
	ref := obj.(*syncv1alpha1.SyncUser).Spec.ChainRef
	if ref == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}}}
}
