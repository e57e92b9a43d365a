package cycle

import (
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

func TestCycleStatusTellsWhatHappened(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC))
	end := metav1.NewTime(start.Add(time.Second))
	cases := []struct {
		name       string
		result     engine.Result
		err        error
		wantReason string
		wantEmpty  bool
		check      func(Gomega, syncv1alpha1.CycleResult)
	}{
		{"nothing left to do", engine.Result{Entities: []engine.EntityResult{{Mode: engine.Incremental}}, Total: engine.Counts{Updated: 2}}, nil, "", true,
			func(g Gomega, c syncv1alpha1.CycleResult) {
				g.Expect(c.Mode).To(Equal(syncv1alpha1.IncrementalCycle))
				g.Expect(c.Items.Updated).To(BeEquivalentTo(2))
			}},
		{"creations are not empty", engine.Result{Entities: []engine.EntityResult{{Mode: engine.Initial}, {Mode: engine.Complete}}, Total: engine.Counts{Created: 3}}, nil, "", false,
			func(g Gomega, c syncv1alpha1.CycleResult) {
				g.Expect(c.Mode).To(Equal(syncv1alpha1.InitialCycle), "the widest mode of any entity")
			}},
		{"deletes held back", engine.Result{Total: engine.Counts{Skipped: 4}, DeleteThresholdExceeded: true, ApprovalCycle: "job-1",
			PendingDeletes: make([]engine.ItemReport, 4)}, nil, "", false,
			func(g Gomega, c syncv1alpha1.CycleResult) {
				g.Expect(c.PendingDeletes).To(BeEquivalentTo(4))
				g.Expect(c.PendingDeletesCycle).To(Equal("job-1"))
			}},
		{"endpoint down", engine.Result{}, fmt.Errorf("opening: %w: dial tcp: refused", engine.ErrEndpoint), syncv1alpha1.CycleEndpointUnavailableReason, false, nil},
		{"spec wrong, found on opening", engine.Result{}, fmt.Errorf("opening: %w: %w", engine.ErrEndpoint,
			connector.InvalidConfig(errors.New(`entities[people].target.collection: table "peple" does not exist`))),
			syncv1alpha1.CycleInvalidSpecReason, false, nil},
		{"destination claimed", engine.Result{}, fmt.Errorf("x: %w", records.ErrClaimed), syncv1alpha1.SyncUserDestinationClaimedReason, false, nil},
		{"records locked", engine.Result{}, fmt.Errorf("x: %w", records.ErrLocked), syncv1alpha1.CycleRecordsLockedReason, false, nil},
		{"records corrupt", engine.Result{}, fmt.Errorf("x: %w", records.ErrCorrupt), syncv1alpha1.CycleRecordsCorruptReason, false, nil},
		{"anything else", engine.Result{}, errors.New("boom"), syncv1alpha1.CycleErrorReason, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := cycleStatus("p", "job-2", start, end, tc.result, tc.err)
			g.Expect(c.ID).To(Equal("job-2"))
			g.Expect(c.Policy).To(Equal("p"))
			g.Expect(c.FailureReason).To(Equal(tc.wantReason))
			g.Expect(c.Empty).To(Equal(tc.wantEmpty))
			if tc.err != nil {
				g.Expect(c.Failure).To(Equal(tc.err.Error()))
			}
			if tc.check != nil {
				tc.check(g, c)
			}
		})
	}
}

func TestCompleteCyclesComeBackOnSchedule(t *testing.T) {
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	policy := &syncv1alpha1.SyncPolicy{Spec: syncv1alpha1.SyncPolicySpec{Schedule: syncv1alpha1.Schedule{CompleteEvery: "6h"}}}
	user := func(ago time.Duration) *syncv1alpha1.SyncUser {
		u := &syncv1alpha1.SyncUser{}
		if ago >= 0 {
			u.Status.LastCompleteTime = &metav1.Time{Time: now.Add(-ago)}
		}
		return u
	}
	g := NewWithT(t)
	g.Expect(completeDue(policy, user(-1), now)).To(BeTrue(), "none known yet")
	g.Expect(completeDue(policy, user(time.Hour), now)).To(BeFalse())
	g.Expect(completeDue(policy, user(6*time.Hour), now)).To(BeTrue())
	policy.Spec.Schedule.CompleteEvery = ""
	g.Expect(completeDue(policy, user(7*time.Hour), now)).To(BeFalse(), "a day by default")

	g.Expect(comparedEverything(engine.Result{Entities: []engine.EntityResult{{Mode: engine.Complete}, {Mode: engine.Initial}}})).To(BeTrue())
	g.Expect(comparedEverything(engine.Result{Entities: []engine.EntityResult{{Mode: engine.Complete}, {Mode: engine.Incremental}}})).To(BeFalse())
}
