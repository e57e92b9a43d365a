package cycle

import (
	"time"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// userCycle is one user's cycle, translated once from its SyncPolicy and SyncUser into what the
// engine, the connectors and the records take: who (identity and scope), what (the engine policy,
// the user's requests applied), and which requests it carries out.
type userCycle struct {
	// identity keys the user's records and claims; scope selects its items on each endpoint.
	identity string
	scope    connector.Scope
	policy   engine.Policy
	requests requests
	// clear is set for a `reinit: clear` the runner carries out itself (see records.Cleared).
	clear *records.Cleared
}

// planUserCycle translates the user's next cycle of policy, run by job at now.
func planUserCycle(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser, job string, now time.Time) userCycle {
	id := user.Spec.Identity
	uc := userCycle{
		identity: RecordsIdentity(user),
		scope:    connector.Scope{Email: id.Email, Name: id.Name, Attributes: id.Attributes},
		policy:   enginePolicy(policy),
		requests: requestsOf(user),
	}
	p := &uc.policy
	p.Deletes.ApprovedCycle = uc.requests.approvedCycle
	p.Complete = completeDue(policy, user, now)
	switch syncv1alpha1.ReinitKind(uc.requests.reinit) {
	case syncv1alpha1.ReinitResync:
		p.Complete = true
		p.RetryGivenUp = true
	case syncv1alpha1.ReinitClear:
		if p.DryRun {
			// A dry run writes nothing, records included: the engine plans as if cleared.
			for _, e := range p.Entities {
				p.Reinit = append(p.Reinit, e.Name)
			}
			break
		}
		// Cleared by the runner, not the engine, so that the clear and the note that it was
		// carried out are one transaction.
		uc.clear = &records.Cleared{Request: uc.requests.reinit, Requester: string(user.UID),
			After: user.Status.LastHandledReinit, CycleID: job, At: now}
	}
	return uc
}

// RecordsIdentity is the identity a user's records are kept under: the email, else the name.
func RecordsIdentity(user *syncv1alpha1.SyncUser) string {
	if user.Spec.Identity.Email != "" {
		return user.Spec.Identity.Email
	}
	return user.Spec.Identity.Name
}

// cycleMode is how the API names the engine's mode.
func cycleMode(m engine.Mode) syncv1alpha1.CycleMode {
	switch m {
	case engine.Initial:
		return syncv1alpha1.InitialCycle
	case engine.Complete:
		return syncv1alpha1.CompleteCycle
	case engine.Incremental:
		return syncv1alpha1.IncrementalCycle
	}
	return ""
}
