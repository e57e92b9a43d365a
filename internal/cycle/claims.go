package cycle

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/records"
)

// Claims outlive the SyncUser that made them, as its records do (recordsOnDelete: Retain), so
// that a user deleted and applied again on the same policy creates nothing. A claim whose holder
// is gone would otherwise keep the same person, applied again on another policy, out of the
// target for ever.

// WhyAbandoned says why claim no longer protects anyone ("" while it does): its policy is gone,
// or no SyncUser of its identity is on that policy any more. policies and users are those of the
// store's namespace.
func WhyAbandoned(claim records.Claim, policies []syncv1alpha1.SyncPolicy, users []syncv1alpha1.SyncUser) string {
	found := false
	for i := range policies {
		if policies[i].Name == claim.Policy {
			found = true
			break
		}
	}
	if !found {
		return fmt.Sprintf("SyncPolicy %s is gone", claim.Policy)
	}
	for i := range users {
		if users[i].Status.Policy == claim.Policy && RecordsIdentity(&users[i]) == claim.User {
			return ""
		}
	}
	return fmt.Sprintf("no SyncUser of %s is on SyncPolicy %s", claim.User, claim.Policy)
}

// releaseAbandonedClaim hands the claim on the user's target over when its holder is another
// policy that no longer syncs this identity, and says whether it did. The runner asks only when
// a claim refused the cycle, which is rare: then it reads the namespace's policies and users.
func (r *Runner) releaseAbandonedClaim(ctx context.Context, store *records.Store, identity, target string, user *syncv1alpha1.SyncUser) (bool, error) {
	held, err := store.ClaimOf(identity, target)
	if err != nil || held == nil || held.Policy == user.Status.Policy {
		return false, err
	}
	var policies syncv1alpha1.SyncPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(user.Namespace)); err != nil {
		return false, fmt.Errorf("listing policies to check the claim of %s on %s: %w", held.Policy, target, err)
	}
	var users syncv1alpha1.SyncUserList
	if err := r.Client.List(ctx, &users, client.InNamespace(user.Namespace)); err != nil {
		return false, fmt.Errorf("listing users to check the claim of %s on %s: %w", held.Policy, target, err)
	}
	why := WhyAbandoned(*held, policies.Items, users.Items)
	if why == "" {
		return false, nil
	}
	if err := store.ReleaseTarget(identity, target, held.Policy); err != nil {
		return false, fmt.Errorf("releasing the abandoned claim of %s on %s: %w", held.Policy, target, err)
	}
	r.Log.Info("Released an abandoned claim", "user", identity, "target", target, "heldBy", held.Policy, "why", why)
	return true, nil
}
