package cycle_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	_ "modernc.org/sqlite"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/cli"
	"github.com/chainsync/chainsync/internal/cycle"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/testenv"
)

// stepClock moves a second on at every reading, so each cycle is later than the one before, and
// the refused row's first retry (a minute later) is not due yet at the dry run.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// A real cycle from an HR export (csv) into a directory (sqlite) that refuses one row, then a dry
// run: which item failed and why, and what the dry run would write, reach the user's record
// folder, `chainsync records show` and the SyncUser's status.
func TestItemReportsReachTheRecordsAndTheStatus(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	k8s := env.Client
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	const ns, ada = "item-reports", "ada@example.com"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	volumes := t.TempDir()
	claim := filepath.Join(volumes, "records")
	g.Expect(os.MkdirAll(filepath.Join(claim, "hr"), 0o755)).To(Succeed())
	export := func(rows ...string) {
		content := "employee_id,email,first_name,last_name,owner\n" + strings.Join(rows, "\n") + "\n"
		g.Expect(os.WriteFile(filepath.Join(claim, "hr", "employees.csv"), []byte(content), 0o644)).To(Succeed())
	}
	db, err := sql.Open("sqlite", filepath.Join(claim, "directory.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { db.Close() })
	// The directory refuses a given name of "Refused": a row's own failure, not the database's.
	_, err = db.Exec(`CREATE TABLE people (
		id INTEGER PRIMARY KEY AUTOINCREMENT, employee_number TEXT, given_name TEXT CHECK (given_name <> 'Refused'),
		family_name TEXT, mail TEXT, owner TEXT, updated_at TEXT, chainsync_origin TEXT)`)
	g.Expect(err).NotTo(HaveOccurred())
	directoryRows := func() []string {
		rows, err := db.Query(`SELECT id || ' ' || employee_number || ' ' || family_name FROM people ORDER BY id`)
		g.Expect(err).NotTo(HaveOccurred())
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			g.Expect(rows.Scan(&s)).To(Succeed())
			out = append(out, s)
		}
		return out
	}

	policy := &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "import", Namespace: ns},
		Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector,
				CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{Path: "hr"}}},
			Target: syncv1alpha1.Endpoint{Name: "directory", Connector: syncv1alpha1.SQLiteConnector,
				SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: "directory.db"}}},
			Entities: []syncv1alpha1.Entity{{
				Name: "people",
				Source: syncv1alpha1.Collection{Collection: "employees.csv", KeyFields: []string{"employee_id"},
					Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}},
				Target: syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"}, ModifiedField: "updated_at",
					Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}},
				Fields: []syncv1alpha1.FieldMapping{
					{Source: "employee_id", Target: "employee_number"}, {Source: "first_name", Target: "given_name"},
					{Source: "last_name", Target: "family_name"}, {Source: "email", Target: "mail"},
				},
			}},
			Deletes:  syncv1alpha1.DeletePolicy{Propagate: true, MaxPercent: ptr.To[int32](100)},
			Schedule: syncv1alpha1.Schedule{Interval: "1h"},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records"},
		},
	}
	g.Expect(k8s.Create(ctx, policy)).To(Succeed())
	user := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: ada},
			PolicyRef: &syncv1alpha1.PolicyReference{Name: "import"}},
	}
	g.Expect(k8s.Create(ctx, user)).To(Succeed())
	user.Status.Policy = "import" // what the operator does when it places the user
	g.Expect(k8s.Status().Update(ctx, user)).To(Succeed())

	clock := &stepClock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	runCycle := func(job string) *syncv1alpha1.CycleResult {
		r := &cycle.Runner{Client: k8s, Clock: clock, Log: logr.Discard(), Cycle: jobargs.Cycle{Namespace: ns, Policy: "import",
			Job: job, Store: claim, Volumes: volumes, Concurrency: 1, LockTimeout: time.Second}}
		g.Expect(r.Run(ctx, []string{"ada"})).To(Succeed())
		got := &syncv1alpha1.SyncUser{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(user), got)).To(Succeed())
		g.Expect(got.Status.LastCycle).NotTo(BeNil())
		g.Expect(got.Status.LastCycle.ID).To(Equal(job))
		return got.Status.LastCycle
	}
	recordsShow := func(args ...string) string {
		var out, errOut bytes.Buffer
		code := cli.Run(ctx, append([]string{"records", "--store", claim, "show", ada}, args...), nil, &out, &errOut)
		g.Expect(code).To(Equal(0), errOut.String())
		g.Expect(errOut.String()).To(BeEmpty())
		return out.String()
	}

	// A real cycle: two rows are created, the third is refused by the directory.
	export("E001,ada@example.com,Ada,Lovelace,ada@example.com",
		"E002,bob@example.com,Refused,Babbage,ada@example.com",
		"E004,cy@example.com,Cy,Cole,ada@example.com")
	last := runCycle("import-1")
	g.Expect(last.Items.Created).To(BeEquivalentTo(2))
	g.Expect(last.Items.Errors).To(BeEquivalentTo(1))
	g.Expect(last.ItemReports).To(ConsistOf(MatchAllFields(Fields{
		"Entity": Equal("people"), "Outcome": Equal(syncv1alpha1.ItemFailed), "SourceID": Equal("E002"), "TargetID": BeEmpty(),
		"Reason": And(ContainSubstring("create failed (attempt 1)"), ContainSubstring("CHECK constraint failed")),
	})))
	g.Expect(last.MoreItemReports).To(BeZero())
	g.Expect(directoryRows()).To(HaveLen(2))

	store, err := records.Open(claim)
	g.Expect(err).NotTo(HaveOccurred())
	kept, err := store.CycleReports(ada)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept).To(HaveLen(1))
	g.Expect(kept[0]).To(MatchFields(IgnoreExtras, Fields{
		"FormatVersion": Equal(records.CycleReportFormat), "CycleID": Equal("import-1"), "Policy": Equal("import"),
		"Mode": Equal("Initial"), "DryRun": BeFalse(), "CompletionTime": Not(BeZero()),
	}))
	g.Expect(kept[0].Items).To(ConsistOf(MatchFields(IgnoreExtras, Fields{
		"Outcome": Equal(records.OutcomeError),
		"Source":  Equal(records.ItemSide{Endpoint: "hr", Key: "E002", ID: "E002"}),
		"Target":  Equal(records.ItemSide{Endpoint: "directory"}),
		"Reason":  ContainSubstring("CHECK constraint failed"),
	})))

	out := recordsShow()
	g.Expect(out).To(ContainSubstring("Recent cycles (1):"))
	g.Expect(out).To(MatchRegexp(`Cycle import-1 \(Initial\) of policy import, finished 2026-03-01T08:00:\d\dZ`))
	g.Expect(out).To(MatchRegexp(`OUTCOME\s+ENTITY\s+HR ID\s+DIRECTORY ID\s+REASON`))
	g.Expect(out).To(MatchRegexp(`error\s+people\s+E002\s+-\s+create failed \(attempt 1\): .*CHECK constraint failed`))

	// A dry run: a row is new, one changed, one gone from the export; the refused one waits for its
	// retry, as it would in a real cycle.
	ids := map[string]string{} // employee number -> directory id
	for _, row := range directoryRows() {
		f := strings.Fields(row)
		ids[f[1]] = f[0]
	}
	before := directoryRows()
	policy.Spec.DryRun = true
	g.Expect(k8s.Update(ctx, policy)).To(Succeed())
	export("E001,ada@example.com,Ada,King,ada@example.com",
		"E002,bob@example.com,Refused,Babbage,ada@example.com",
		"E003,dee@example.com,Dee,Dunn,ada@example.com")
	last = runCycle("import-2")
	g.Expect(last.DryRun).To(BeTrue())
	g.Expect(directoryRows()).To(Equal(before), "a dry run writes nothing")
	type planned struct{ outcome, source, target string }
	var plan []planned
	for _, it := range last.ItemReports {
		plan = append(plan, planned{string(it.Outcome), it.SourceID, it.TargetID})
	}
	g.Expect(plan).To(Equal([]planned{
		{"WaitingToRetry", "E002", ""},
		{"WouldDelete", "E004", ids["E004"]},
		{"WouldCreate", "E003", ""},
		{"WouldUpdate", "E001", ids["E001"]},
	}), "what needs a person first, then the plan: deletes, creates, updates")
	g.Expect(last.ItemReports[0].Reason).To(MatchRegexp(`^retrying after 2026-03-01T\S+: .*CHECK constraint failed`))

	kept, err = store.CycleReports(ada)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept).To(HaveLen(2))
	g.Expect(kept[0].CycleID).To(Equal("import-2"), "newest first")
	g.Expect(kept[0].DryRun).To(BeTrue())
	g.Expect(kept[1].CycleID).To(Equal("import-1"))

	out = recordsShow()
	g.Expect(out).To(ContainSubstring("Recent cycles (2):"))
	g.Expect(out).To(MatchRegexp(`Cycle import-2 \(Complete, dry run\) of policy import`))
	g.Expect(out).To(MatchRegexp(`would delete\s+people\s+E004\s+` + ids["E004"] + `\s+deleted on hr`))
	g.Expect(out).To(MatchRegexp(`would create\s+people\s+E003\s+-\s+new on hr`))
	g.Expect(out).To(MatchRegexp(`waiting to retry\s+people\s+E002\s+-\s+retrying after`))
	g.Expect(out).To(MatchRegexp(`would update\s+people\s+E001\s+` + ids["E001"] + `\s+content copied from hr`))
	g.Expect(strings.Index(out, "import-2")).To(BeNumerically("<", strings.Index(out, "Cycle import-1")))

	var shown records.UserExport
	g.Expect(json.Unmarshal([]byte(recordsShow("-o", "json")), &shown)).To(Succeed())
	g.Expect(shown.Pairs).To(HaveLen(1))
	g.Expect(shown.Cycles).To(HaveLen(2))
	g.Expect(shown.Cycles[0].DryRun).To(BeTrue())
	g.Expect(shown.Cycles[0].Items).To(ContainElement(MatchFields(IgnoreExtras, Fields{
		"Outcome": Equal(records.OutcomeWouldUpdate),
		"Source":  Equal(records.ItemSide{Endpoint: "hr", Key: "E001", ID: "E001"}),
		"Target":  Equal(records.ItemSide{Endpoint: "directory", Key: ids["E001"], ID: ids["E001"]}),
	})))
}
