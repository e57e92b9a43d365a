package cycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// cycleStatus turns the engine's outcome into the SyncUser's status.lastCycle.
func cycleStatus(policy, job string, started, ended metav1.Time, result engine.Result, err error) syncv1alpha1.CycleResult {
	t := result.Total
	c := syncv1alpha1.CycleResult{
		ID: job, Policy: policy, Job: job, Mode: widestMode(result),
		StartTime: &started, CompletionTime: &ended, DryRun: result.DryRun,
		Items: syncv1alpha1.ItemCounts{
			Created: int32(t.Created), Updated: int32(t.Updated), Deleted: int32(t.Deleted), Skipped: int32(t.Skipped),
			Errors: int32(t.Errors), Conflicts: int32(t.Conflicts), Quarantined: int32(t.Quarantined),
		},
	}
	for _, e := range result.Entities {
		for _, rep := range e.Reports {
			if rep.Kind == engine.ReportGivenUp {
				c.Items.GivenUp++
			}
		}
	}
	if result.DeleteThresholdExceeded {
		c.PendingDeletes = int32(len(result.PendingDeletes))
		c.PendingDeletesCycle = result.ApprovalCycle
	}
	if err != nil {
		c.FailureReason = failureReason(err)
		c.Failure = shorten(err.Error(), 1024)
		return c
	}
	c.Empty = result.Empty()
	return c
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, records.ErrClaimed):
		return syncv1alpha1.SyncUserDestinationClaimedReason
	case errors.Is(err, records.ErrLocked):
		return syncv1alpha1.CycleRecordsLockedReason
	case errors.Is(err, records.ErrCorrupt):
		return syncv1alpha1.CycleRecordsCorruptReason
	case errors.Is(err, connector.ErrInvalidConfig):
		return syncv1alpha1.CycleInvalidSpecReason
	case errors.Is(err, engine.ErrEndpoint):
		return syncv1alpha1.CycleEndpointUnavailableReason
	}
	return syncv1alpha1.CycleErrorReason
}

// userStatusWriter writes each user's new status after its cycle, in one request: the result,
// and what follows from it, decided as the operator decides it (package userstatus), such as a
// move to the next chain step after an empty cycle. The operator, reading it back, then has
// nothing left to write; a status write per cycle and another per reaction to it was most of the
// API requests a user cost along a chain.
type userStatusWriter struct {
	client    client.Client
	namespace string
	clock     engine.Clock

	mu sync.Mutex
	// chains and policies are read once per Job, on first use: a Job's users share a few. A nil
	// value is one that does not exist.
	chains   map[string]*syncv1alpha1.OnboardingChain
	policies map[string]*syncv1alpha1.SyncPolicy
}

func newUserStatusWriter(c client.Client, namespace string, clock engine.Clock, own *syncv1alpha1.SyncPolicy) *userStatusWriter {
	return &userStatusWriter{client: c, namespace: namespace, clock: clock,
		chains: map[string]*syncv1alpha1.OnboardingChain{}, policies: map[string]*syncv1alpha1.SyncPolicy{own.Name: own}}
}

// cycleOutcome is what a cycle sets in its user's status itself.
type cycleOutcome struct {
	result             syncv1alpha1.CycleResult
	lastComplete       *metav1.Time
	handledRequestedAt string
	handledReinit      string
}

// write sets the outcome in the user's status with what follows from it, and sends the changes
// as a merge patch that holds only if nobody wrote the user since it was read: a move decided
// from an older read must not undo a newer one (a person moved the user, or the operator placed
// it). On a conflict the user is read again and the status decided again; the cycle itself is
// not run again.
func (w *userStatusWriter) write(ctx context.Context, user *syncv1alpha1.SyncUser, out cycleOutcome) error {
	read := user
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if read == nil {
			fresh := &syncv1alpha1.SyncUser{}
			if err := w.client.Get(ctx, client.ObjectKeyFromObject(user), fresh); err != nil {
				return err
			}
			read = fresh
		}
		base, u := read, read.DeepCopy()
		read = nil // A retry reads the user again.
		if err := w.decide(ctx, u, out); err != nil {
			return err
		}
		return w.client.Status().Patch(ctx, u, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}),
			client.FieldOwner(FieldManager))
	})
	if apierrors.IsNotFound(err) {
		return nil // Deleted meanwhile: no one to tell.
	}
	if err != nil {
		return fmt.Errorf("writing the cycle result to SyncUser %s/%s: %w", user.Namespace, user.Name, err)
	}
	return nil
}

// decide sets the outcome in u's status and brings the rest of it up to date.
func (w *userStatusWriter) decide(ctx context.Context, u *syncv1alpha1.SyncUser, out cycleOutcome) error {
	st := &u.Status
	result := out.result
	// Decided from times as the API stores them (whole seconds), the status is the one the
	// operator decides from what it reads back: a next cycle time a second apart would be a
	// write of its own.
	result.StartTime, result.CompletionTime = asStored(result.StartTime), asStored(result.CompletionTime)
	st.LastCycle = &result
	st.LastCompleteTime = asStored(out.lastComplete)
	st.LastHandledRequestedAt = out.handledRequestedAt
	st.LastHandledReinit = out.handledReinit
	var chain *syncv1alpha1.OnboardingChain
	if ref := u.Spec.ChainRef; ref != nil {
		var err error
		if chain, err = w.chain(ctx, ref.Name); err != nil {
			return err
		}
	}
	now := w.clock.Now()
	current, _, problem := userstatus.Settle(u, chain, now)
	var policy *syncv1alpha1.SyncPolicy
	if problem == nil {
		var err error
		if policy, err = w.policy(ctx, current.Policy); err != nil {
			return err
		}
	}
	// No failed Job counts against the user now: this cycle's result is newer than any.
	userstatus.Observe(u, current, problem, policy, nil, nil, now)
	st.ObservedGeneration = u.Generation
	return nil
}

// asStored is t as the API server stores and returns it.
func asStored(t *metav1.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: t.Truncate(time.Second)}
}

func (w *userStatusWriter) chain(ctx context.Context, name string) (*syncv1alpha1.OnboardingChain, error) {
	return readOnce(ctx, w, w.chains, name, &syncv1alpha1.OnboardingChain{})
}

func (w *userStatusWriter) policy(ctx context.Context, name string) (*syncv1alpha1.SyncPolicy, error) {
	return readOnce(ctx, w, w.policies, name, &syncv1alpha1.SyncPolicy{})
}

// readOnce reads a named object of the Job's namespace the first time it is asked for.
func readOnce[T client.Object](ctx context.Context, w *userStatusWriter, known map[string]T, name string, obj T) (T, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o, ok := known[name]; ok {
		return o, nil
	}
	var none T
	err := w.client.Get(ctx, client.ObjectKey{Namespace: w.namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		known[name] = none
		return none, nil
	case err != nil:
		return none, fmt.Errorf("reading %T %s: %w", obj, name, err)
	}
	known[name] = obj
	return obj, nil
}
