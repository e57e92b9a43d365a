package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/webhook"
)

// The webhook server (internal/webhook) asks for cycles by annotating users; its markers are
// here because controller-gen reads this package.
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncreceivers,verbs=get;list;watch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncreceivers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncusers,verbs=patch

// SyncReceiverReconciler gives each receiver its path, from its token, and says whether it can
// serve calls. The calls themselves are served by internal/webhook on every replica.
type SyncReceiverReconciler struct {
	client.Client
	// Tokens reads tokens from the API server once per version of their Secret.
	Tokens *webhook.Tokens
}

// Reconcile handles one SyncReceiver.
func (r *SyncReceiverReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	rcv := &syncv1alpha1.SyncReceiver{}
	if err := r.Get(ctx, req.NamespacedName, rcv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := rcv.DeepCopy()
	defer func() {
		if reconciled(retErr) {
			rcv.Status.ObservedGeneration = rcv.Generation
		}
		retErr = errors.Join(retErr, patchStatus(ctx, r.Client, rcv, base, func(o *syncv1alpha1.SyncReceiver) any { return o.Status }))
	}()

	var world receiverWorld
	var err error
	if world.token, world.tokenProblem, err = r.Tokens.Token(ctx, rcv); err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the token: %w", err)
	}
	err = r.Get(ctx, client.ObjectKey{Namespace: rcv.Namespace, Name: rcv.Spec.PolicyRef.Name}, &syncv1alpha1.SyncPolicy{})
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("getting SyncPolicy %s: %w", rcv.Spec.PolicyRef.Name, err)
	}
	world.policyFound = err == nil
	// A problem is fixed by a person changing a Secret or a policy, which are watched.
	setReceiverStatus(rcv, world)
	return ctrl.Result{}, nil
}

// SetupWithManager watches receivers, the metadata of their Secrets (a new token is a new
// resourceVersion, and a new path), and their policies.
func (r *SyncReceiverReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&syncv1alpha1.SyncReceiver{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newReceiverList, receiverSecretIndex))).
		Watches(&syncv1alpha1.SyncPolicy{}, handler.EnqueueRequestsFromMapFunc(enqueueByIndex(r, newReceiverList, receiverPolicyIndex))).
		Named("syncreceiver").
		Complete(r)
}

func newReceiverList() client.ObjectList { return &syncv1alpha1.SyncReceiverList{} }
