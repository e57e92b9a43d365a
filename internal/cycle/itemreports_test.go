package cycle

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

func TestCycleReportNamesItemsOnSourceAndTargetWithoutSecrets(t *testing.T) {
	policy := &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "import"},
		Spec:       syncv1alpha1.SyncPolicySpec{Source: syncv1alpha1.Endpoint{Name: "hr"}, Target: syncv1alpha1.Endpoint{Name: "directory"}},
	}
	secrets := secretValues{"db": {"password": []byte("s3cret-pw\n"), "user": []byte("ann")}}
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		report engine.ItemReport
		want   records.ItemReport
	}{
		{"a write to the target failed",
			engine.ItemReport{Endpoint: "directory", ID: "", OtherEndpoint: "hr", OtherKey: "E1", OtherID: "E1", Kind: engine.ReportError,
				Reason: "create failed (attempt 1): CHECK constraint failed"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeError, Source: records.ItemSide{Endpoint: "hr", Key: "E1", ID: "E1"},
				Target: records.ItemSide{Endpoint: "directory"}, Reason: "create failed (attempt 1): CHECK constraint failed"}},
		{"a row of the source could not be read",
			engine.ItemReport{Endpoint: "hr", ID: "employees.csv line 3", Kind: engine.ReportError, Reason: "wrong number of fields"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeError, Source: records.ItemSide{Endpoint: "hr", ID: "employees.csv line 3"},
				Target: records.ItemSide{Endpoint: "directory"}, Reason: "wrong number of fields"}},
		{"a conflict reported on the source",
			engine.ItemReport{Endpoint: "hr", Key: "E2", ID: "E2", OtherEndpoint: "directory", OtherKey: "7", OtherID: "7", Kind: engine.ReportConflict, Reason: "changed on both"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeConflict, Source: records.ItemSide{Endpoint: "hr", Key: "E2", ID: "E2"},
				Target: records.ItemSide{Endpoint: "directory", Key: "7", ID: "7"}, Reason: "changed on both"}},
		{"a delete held on the target",
			engine.ItemReport{Endpoint: "directory", Key: "8", ID: "8", OtherEndpoint: "hr", OtherKey: "E3", Kind: engine.ReportDeleteAwaitingApproval, Reason: "over the threshold"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeDeleteHeld, Source: records.ItemSide{Endpoint: "hr", Key: "E3"},
				Target: records.ItemSide{Endpoint: "directory", Key: "8", ID: "8"}, Reason: "over the threshold"}},
		{"a secret value in an endpoint's error",
			engine.ItemReport{Endpoint: "directory", Kind: engine.ReportGivenUp, Reason: "login failed with password s3cret-pw for ann"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeGivenUp, Source: records.ItemSide{Endpoint: "hr"},
				Target: records.ItemSide{Endpoint: "directory"}, Reason: "login failed with password [redacted] for ann"}},
		{"passwords in connection strings",
			engine.ItemReport{Endpoint: "directory", Kind: engine.ReportSkipped, Reason: `dial postgres://app:hunter2@db:5432/x; host=db password='a b' user=app; PWD=xyz`},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeWaitingToRetry, Source: records.ItemSide{Endpoint: "hr"},
				Target: records.ItemSide{Endpoint: "directory"}, Reason: `dial postgres://app:[redacted]@db:5432/x; host=db password=[redacted] user=app; PWD=[redacted]`}},
		{"a kind this build does not know is shown as an error",
			engine.ItemReport{Endpoint: "hr", Kind: "Novel", Reason: "?"},
			records.ItemReport{Entity: "people", Outcome: records.OutcomeError, Source: records.ItemSide{Endpoint: "hr"},
				Target: records.ItemSide{Endpoint: "directory"}, Reason: "?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			result := engine.Result{Entities: []engine.EntityResult{{Name: "people", Mode: engine.Complete, Reports: []engine.ItemReport{tc.report}}}}
			rep := cycleReport(policy, "import-1", start, start.Add(time.Second), result, nil, secrets)
			g.Expect(rep.CycleID).To(Equal("import-1"))
			g.Expect(rep.Policy).To(Equal("import"))
			g.Expect(rep.Mode).To(Equal("Complete"))
			g.Expect(rep.Items).To(Equal([]records.ItemReport{tc.want}))
		})
	}

	t.Run("every kind the engine reports has an outcome the API accepts", func(t *testing.T) {
		g := NewWithT(t)
		api := map[records.Outcome]bool{}
		for _, o := range []syncv1alpha1.ItemOutcome{syncv1alpha1.ItemFailed, syncv1alpha1.ItemGivenUp, syncv1alpha1.ItemConflict,
			syncv1alpha1.ItemQuarantined, syncv1alpha1.ItemDeleteHeld, syncv1alpha1.ItemNullKey, syncv1alpha1.ItemDuplicateKey,
			syncv1alpha1.ItemWaitingToRetry, syncv1alpha1.ItemWouldDelete, syncv1alpha1.ItemWouldCreate, syncv1alpha1.ItemWouldUpdate} {
			api[records.Outcome(o)] = true
		}
		for kind, o := range outcomes {
			g.Expect(api).To(HaveKey(o), "engine kind %s", kind)
		}
		g.Expect(outcomes).To(HaveLen(len(api)))
	})

	t.Run("a failed cycle keeps its failure, scrubbed", func(t *testing.T) {
		g := NewWithT(t)
		err := fmt.Errorf("%w: connecting: postgres://app:s3cret-pw@db/x refused", engine.ErrEndpoint)
		rep := cycleReport(policy, "import-2", start, start, engine.Result{}, err, secrets)
		g.Expect(rep.Failure).To(Equal("endpoint failure: connecting: postgres://app:[redacted]@db/x refused"))
		g.Expect(rep.Items).To(BeEmpty())
	})
}

func TestStatusListsTheFirstItemsWithinTheAPIBounds(t *testing.T) {
	item := func(o records.Outcome, id string) records.ItemReport {
		return records.ItemReport{Entity: "people", Outcome: o, Source: records.ItemSide{Endpoint: "hr", Key: id}, Target: records.ItemSide{Endpoint: "directory"}}
	}
	cases := []struct {
		name     string
		report   records.CycleReport
		wantIDs  []string
		wantMore int32
	}{
		{"no items", records.CycleReport{}, nil, 0},
		{"a few", records.CycleReport{Items: []records.ItemReport{item(records.OutcomeWouldCreate, "C1"), item(records.OutcomeError, "E1")}},
			[]string{"E1", "C1"}, 0},
		{"more than fit, plus those the record store left out",
			records.CycleReport{MoreItems: 40, Items: func() []records.ItemReport {
				var items []records.ItemReport
				for i := range 8 {
					items = append(items, item(records.OutcomeWouldUpdate, fmt.Sprint("U", i)))
				}
				return append(items, item(records.OutcomeConflict, "X1"))
			}()},
			[]string{"X1", "U0", "U1", "U2", "U3"}, 44},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			items, more := statusItems(tc.report)
			var ids []string
			for _, it := range items {
				ids = append(ids, it.SourceID)
			}
			g.Expect(ids).To(Equal(tc.wantIDs))
			g.Expect(more).To(Equal(tc.wantMore))
		})
	}

	t.Run("long texts are shortened", func(t *testing.T) {
		g := NewWithT(t)
		long := item(records.OutcomeError, strings.Repeat("k", 1000))
		long.Reason = strings.Repeat("r", 1000)
		items, _ := statusItems(records.CycleReport{Items: []records.ItemReport{long}})
		g.Expect(items[0].SourceID).To(HaveLen(statusItemIDLength))
		g.Expect(items[0].Reason).To(HaveLen(statusReasonLength))
		g.Expect(items[0].TargetID).To(BeEmpty())
	})
}
