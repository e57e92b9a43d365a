package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

const (
	// jobUserIndex finds the cycle Jobs that hold a user (their users annotation).
	jobUserIndex = ".metadata.annotations.users"
)

// userIndex files the cached users by the policy they are on and by their chain, and hands them
// out as the cache holds them: a List would copy each user into the list it returns, and the
// policies and chains read all their users up to once a second; at 10,000 users the copies were
// a fifth of the operator's CPU. The users it returns are the cache's own: read only.
type userIndex struct {
	indexer toolscache.Indexer
}

// The indexes userIndex keeps, keyed by the namespace/name of the policy or chain.
const (
	// usersByPolicy files the users currently on a policy (status.policy), whether placed on it
	// directly or through a chain step.
	usersByPolicy = "chainsync:users-by-policy"
	// usersByChain files the users placed on a chain (spec.chainRef).
	usersByChain = "chainsync:users-by-chain"
)

func newUserIndex(ctx context.Context, mgr ctrl.Manager) (*userIndex, error) {
	informer, err := mgr.GetCache().GetInformer(ctx, &syncv1alpha1.SyncUser{})
	if err != nil {
		return nil, err
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the SyncUser informer is a %T, not a client-go SharedIndexInformer", informer)
	}
	by := func(field func(*syncv1alpha1.SyncUser) string) toolscache.IndexFunc {
		return func(obj any) ([]string, error) {
			u, ok := obj.(*syncv1alpha1.SyncUser)
			if !ok || field(u) == "" {
				return nil, nil
			}
			return []string{u.Namespace + "/" + field(u)}, nil
		}
	}
	if err := shared.AddIndexers(toolscache.Indexers{
		usersByPolicy: by(func(u *syncv1alpha1.SyncUser) string { return u.Status.Policy }),
		usersByChain: by(func(u *syncv1alpha1.SyncUser) string {
			if ref := u.Spec.ChainRef; ref != nil {
				return ref.Name
			}
			return ""
		}),
	}); err != nil {
		return nil, err
	}
	return &userIndex{indexer: shared.GetIndexer()}, nil
}

// users returns the users the index files under the policy or chain named name in namespace.
func (x *userIndex) users(index, namespace, name string) ([]*syncv1alpha1.SyncUser, error) {
	objs, err := x.indexer.ByIndex(index, namespace+"/"+name)
	if err != nil {
		return nil, fmt.Errorf("reading the users of %s/%s: %w", namespace, name, err)
	}
	users := make([]*syncv1alpha1.SyncUser, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*syncv1alpha1.SyncUser); ok {
			users = append(users, u)
		}
	}
	return users, nil
}

// enqueue maps an object to the users the index files under it: the users of a chain or policy.
func (x *userIndex) enqueue(index string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		users, err := x.users(index, obj.GetNamespace(), obj.GetName())
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing users to reconcile", "object", klog.KObj(obj))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(users))
		for _, u := range users {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(u)})
		}
		return reqs
	}
}

func setupSyncUserIndexers(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &batchv1.Job{}, jobUserIndex, func(o client.Object) []string {
		if o.GetLabels()[syncv1alpha1.PolicyLabel] == "" {
			return nil
		}
		return jobUsers(o.(*batchv1.Job))
	})
}
