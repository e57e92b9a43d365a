package plugin

import (
	"context"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// Names lists, for shell completion, the names of the namespace's objects of the kinds given
// (KindSyncUser, KindSyncPolicy, "OnboardingChain") that start with prefix, sorted and once
// each. With onlyPendingDeletes, users without deletes to approve are left out.
func Names(ctx context.Context, c client.Reader, namespace, prefix string, onlyPendingDeletes bool, kinds ...string) ([]string, error) {
	var names []string
	for _, kind := range kinds {
		switch kind {
		case KindSyncUser:
			var l syncv1alpha1.SyncUserList
			if err := c.List(ctx, &l, client.InNamespace(namespace)); err != nil {
				return nil, err
			}
			for _, u := range l.Items {
				if !onlyPendingDeletes || (u.Status.LastCycle != nil && u.Status.LastCycle.PendingDeletes > 0) {
					names = append(names, u.Name)
				}
			}
		case KindSyncPolicy:
			var l syncv1alpha1.SyncPolicyList
			if err := c.List(ctx, &l, client.InNamespace(namespace)); err != nil {
				return nil, err
			}
			for _, p := range l.Items {
				names = append(names, p.Name)
			}
		default:
			var l syncv1alpha1.OnboardingChainList
			if err := c.List(ctx, &l, client.InNamespace(namespace)); err != nil {
				return nil, err
			}
			for _, ch := range l.Items {
				names = append(names, ch.Name)
			}
		}
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, prefix) })
	slices.Sort(names)
	return slices.Compact(names), nil
}
