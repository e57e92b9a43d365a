package cycle

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
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

// applyStatus writes the result with server-side apply under the cycle's own field manager, so
// it never overwrites what the operator owns in the same status.
// Every field the cycle owns is sent each time, lastCompleteTime included: a field left out of an
// apply is removed.
func applyStatus(ctx context.Context, c client.Client, user *syncv1alpha1.SyncUser, result syncv1alpha1.CycleResult,
	lastComplete *metav1.Time, handledRequestedAt, handledReinit string) error {
	status := syncv1alpha1.SyncUserStatus{LastCycle: &result, LastCompleteTime: lastComplete,
		LastHandledRequestedAt: handledRequestedAt, LastHandledReinit: handledReinit}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&status)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": raw}}
	u.SetGroupVersionKind(syncv1alpha1.GroupVersion.WithKind("SyncUser"))
	u.SetNamespace(user.Namespace)
	u.SetName(user.Name)
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("writing the cycle result to SyncUser %s/%s: %w", user.Namespace, user.Name, err)
	}
	return nil
}
