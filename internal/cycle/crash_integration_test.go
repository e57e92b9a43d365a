package cycle_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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

// A cycle killed with SIGKILL anywhere must leave what its re-run (the Job's pod retried, or the
// next Job) turns into the state an uninterrupted cycle gives: no duplicate, no lost edit on
// either side, one result in the user's status (the operator counts each cycle ID once, so a
// killed cycle that wrote none is counted once, by its re-run), a request carried out once.
// The killed process is a real `chainsync cycle` run from this test binary (TestMain).

const crashChildEnv = "CHAINSYNC_CYCLE_CRASH_CHILD"

// crashChild is what the child process is told to do.
type crashChild struct {
	Kubeconfig string
	Args       []string // of `chainsync`
	CrashAt    string   // a crash point,
	CrashAtNth int      // reached that many times (1 if 0), or
	WritesSide string   // the side whose connector kills the process after Writes batches
	Writes     int
}

func TestMain(m *testing.M) {
	if raw := os.Getenv(crashChildEnv); raw != "" {
		var c crashChild
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if c.CrashAt != "" {
			cycle.CrashAt(c.CrashAt, max(1, c.CrashAtNth))
		}
		if c.WritesSide != "" {
			cycle.CrashAfterWrites(c.WritesSide, c.Writes, 1)
		}
		os.Exit(cli.Run(context.Background(), c.Args, map[string]string{"KUBECONFIG": c.Kubeconfig}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const ada = "ada@example.com"

// crashWorld is an HR export (csv) synced both ways with a directory (sqlite) for one user, in
// its own namespace and store.
type crashWorld struct {
	t          *testing.T
	g          Gomega
	ctx        context.Context
	k8s        client.Client
	kubeconfig string
	ns         string
	volumes    string
	claim      string
	db         *sql.DB
	store      *records.Store
}

func startCrashEnv(t *testing.T) (*testenv.Env, string) {
	if testing.Short() {
		t.Skip("spawns processes and a control plane")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData,
		Token: env.Config.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return env, path
}

func newCrashWorld(t *testing.T, env *testenv.Env, kubeconfig, ns string) *crashWorld {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w := &crashWorld{t: t, g: g, ctx: ctx, k8s: env.Client, kubeconfig: kubeconfig, ns: ns, volumes: t.TempDir()}
	w.claim = filepath.Join(w.volumes, "records")
	g.Expect(os.MkdirAll(filepath.Join(w.claim, "hr"), 0o755)).To(Succeed())
	g.Expect(w.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	db, err := sql.Open("sqlite", filepath.Join(w.claim, "directory.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { db.Close() })
	w.db = db
	// A table as a user has it: no chainsync_origin column, no unique key to turn a duplicate
	// into an error.
	_, err = db.Exec(`CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, employee_number TEXT, given_name TEXT,
		family_name TEXT, mail TEXT, owner TEXT, updated_at TEXT)`)
	g.Expect(err).NotTo(HaveOccurred())
	w.store, err = records.Open(w.claim)
	g.Expect(err).NotTo(HaveOccurred())

	scope := []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}
	policy := &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "directory", Namespace: ns},
		Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector,
				CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{Path: "hr"}}},
			Target: syncv1alpha1.Endpoint{Name: "directory", Connector: syncv1alpha1.SQLiteConnector,
				SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: "directory.db"}}},
			Direction: syncv1alpha1.TwoWay, ConflictResolution: syncv1alpha1.SourceWins,
			Entities: []syncv1alpha1.Entity{{
				Name:    "people",
				Source:  syncv1alpha1.Collection{Collection: "employees.csv", KeyFields: []string{"employee_id"}, Scope: scope},
				Target:  syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"}, ModifiedField: "updated_at", Scope: scope},
				MatchOn: []string{"email"},
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
	g.Expect(w.k8s.Create(ctx, policy)).To(Succeed())
	user := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: ada},
			PolicyRef: &syncv1alpha1.PolicyReference{Name: "directory"}},
	}
	g.Expect(w.k8s.Create(ctx, user)).To(Succeed())
	user.Status.Policy = "directory" // what the operator does when it places the user
	g.Expect(w.k8s.Status().Update(ctx, user)).To(Succeed())
	return w
}

// export writes the HR export: rows of "id first last".
func (w *crashWorld) export(rows ...string) {
	lines := []string{"employee_id,email,first_name,last_name,owner"}
	for _, r := range rows {
		f := strings.Fields(r)
		lines = append(lines, strings.Join([]string{f[0], strings.ToLower(f[0]) + "@example.com", f[1], f[2], ada}, ","))
	}
	w.g.Expect(os.WriteFile(filepath.Join(w.claim, "hr", "employees.csv"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)).To(Succeed())
}

// sourceRows are the export's rows as "id first last", sorted.
func (w *crashWorld) sourceRows() []string {
	f, err := os.Open(filepath.Join(w.claim, "hr", "employees.csv"))
	w.g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	all, err := csv.NewReader(f).ReadAll()
	w.g.Expect(err).NotTo(HaveOccurred())
	head := all[0]
	col := func(row []string, name string) string { return row[slices.Index(head, name)] }
	var out []string
	for _, row := range all[1:] {
		out = append(out, col(row, "employee_id")+" "+col(row, "first_name")+" "+col(row, "last_name"))
	}
	slices.Sort(out)
	return out
}

// targetRows are the directory's rows as "number given family", sorted.
func (w *crashWorld) targetRows() []string {
	rows, err := w.db.Query(`SELECT employee_number || ' ' || given_name || ' ' || family_name FROM people`)
	w.g.Expect(err).NotTo(HaveOccurred())
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		w.g.Expect(rows.Scan(&s)).To(Succeed())
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// editTarget changes a directory row as a person would, and says when.
func (w *crashWorld) editTarget(number, given, family string) {
	res, err := w.db.Exec(`UPDATE people SET given_name = ?, family_name = ?, updated_at = ? WHERE employee_number = ?`,
		given, family, time.Now().UTC().Format(time.RFC3339Nano), number)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(res.RowsAffected()).To(BeEquivalentTo(1))
}

// addTarget adds a directory row as a person would.
func (w *crashWorld) addTarget(number, given, family string) {
	_, err := w.db.Exec(`INSERT INTO people (employee_number, given_name, family_name, mail, owner, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		number, given, family, strings.ToLower(number)+"@example.com", ada, time.Now().UTC().Format(time.RFC3339Nano))
	w.g.Expect(err).NotTo(HaveOccurred())
}

func (w *crashWorld) user() *syncv1alpha1.SyncUser {
	u := &syncv1alpha1.SyncUser{}
	w.g.Expect(w.k8s.Get(w.ctx, client.ObjectKey{Namespace: w.ns, Name: "ada"}, u)).To(Succeed())
	return u
}

func (w *crashWorld) annotate(key, value string) {
	u := w.user()
	if u.Annotations == nil {
		u.Annotations = map[string]string{}
	}
	u.Annotations[key] = value
	w.g.Expect(w.k8s.Update(w.ctx, u)).To(Succeed())
}

// cycleArgs runs job for users, ada when none are named, one after the other.
func (w *crashWorld) cycleArgs(job string, users ...string) []string {
	if len(users) == 0 {
		users = []string{"ada"}
	}
	return append([]string{"cycle", "--namespace", w.ns, "--policy", "directory", "--job", job, "--store", w.claim,
		"--volumes", w.volumes, "--concurrency", "1", "--lock-timeout", "5s", "--"}, users...)
}

// kill runs `chainsync cycle` in a child process that kills itself as c says, and checks that
// it died by SIGKILL rather than finished.
func (w *crashWorld) kill(c crashChild) {
	c.Kubeconfig = w.kubeconfig
	spec, err := json.Marshal(c)
	w.g.Expect(err).NotTo(HaveOccurred())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	w.g.Expect(ok).To(BeTrue(), "the child must be killed, not finish: %v\n%s", err, out)
	status := exit.Sys().(syscall.WaitStatus)
	w.g.Expect(status.Signaled() && status.Signal() == syscall.SIGKILL).To(BeTrue(), "the child died by SIGKILL: %v\n%s", err, out)
}

// cycle runs job's cycle to the end in this process and returns the user's status after it.
func (w *crashWorld) cycle(job string) syncv1alpha1.SyncUserStatus {
	r := &cycle.Runner{Client: w.k8s, Log: logr.Discard(), Cycle: jobargs.Cycle{Namespace: w.ns, Policy: "directory", Job: job,
		Store: w.claim, Volumes: w.volumes, Concurrency: 1, LockTimeout: 5 * time.Second}}
	w.g.Expect(r.Run(w.ctx, []string{"ada"})).To(Succeed())
	st := w.user().Status
	w.g.Expect(st.LastCycle).NotTo(BeNil())
	w.g.Expect(st.LastCycle.ID).To(Equal(job))
	w.g.Expect(st.LastCycle.Failure).To(BeEmpty())
	return st
}

// expectConverged checks what a person would: both sides hold want, once each, and one more
// cycle has nothing to do.
func (w *crashWorld) expectConverged(job string, want ...string) {
	slices.Sort(want)
	w.g.Expect(w.targetRows()).To(Equal(want), "the directory: every row once, with its latest edit")
	w.g.Expect(w.sourceRows()).To(Equal(want), "the export: every row once, with its latest edit")
	last := w.cycle(job).LastCycle
	w.g.Expect(last.Empty).To(BeTrue(), "%+v", last.Items)
	w.g.Expect(last.Items).To(Equal(syncv1alpha1.ItemCounts{}))
}

// Killed after the engine finished and before the status write: the user's status shows no
// result of the killed cycle (so the operator counts it zero times), and the pod's retry, under
// the same cycle ID, writes one result that is true of the data.
func TestKilledBeforeTheStatusWrite(t *testing.T) {
	env, kubeconfig := startCrashEnv(t)
	w := newCrashWorld(t, env, kubeconfig, "before-status")
	w.export("E001 Ada Lovelace", "E002 Bob Babbage", "E003 Cy Cole")
	w.addTarget("X001", "Xia", "Xu")

	w.kill(crashChild{Args: w.cycleArgs("sync-1"), CrashAt: cycle.CrashBeforeStatus})
	w.g.Expect(w.targetRows()).To(HaveLen(4), "the engine finished before the kill")
	w.g.Expect(w.user().Status.LastCycle).To(BeNil(), "a killed cycle writes no result, so none is counted")

	// Edited on both sides before the retry: neither edit may be lost.
	w.editTarget("X001", "Xia", "Xu-Edited")
	w.export("E001 Ada King", "E002 Bob Babbage", "E003 Cy Cole", "X001 Xia Xu")
	st := w.cycle("sync-1")
	w.g.Expect(st.LastCycle.Items).To(Equal(syncv1alpha1.ItemCounts{Updated: 2}), "only the edits: nothing created twice")
	reports, err := w.store.CycleReports(ada)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(reports).To(HaveLen(1), "one report for the cycle ID, not one per attempt")
	w.g.Expect(reports[0].CycleID).To(Equal("sync-1"))
	w.expectConverged("sync-2", "E001 Ada King", "E002 Bob Babbage", "E003 Cy Cole", "X001 Xia Xu-Edited")
}

// A Job's pod killed after one user's result was written, then retried (same Job, same cycle
// ID): the retry cycles the users not done yet and leaves the result of the one done, which the
// operator has counted, as it is; a second cycle would replace it, uncounted.
func TestRetriedJobLeavesTheUsersItFinished(t *testing.T) {
	env, kubeconfig := startCrashEnv(t)
	w := newCrashWorld(t, env, kubeconfig, "retried-job")
	bob := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "bob", Namespace: w.ns},
		Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "bob@example.com"},
			PolicyRef: &syncv1alpha1.PolicyReference{Name: "directory"}},
	}
	w.g.Expect(w.k8s.Create(w.ctx, bob)).To(Succeed())
	bob.Status.Policy = "directory"
	w.g.Expect(w.k8s.Status().Update(w.ctx, bob)).To(Succeed())
	w.export("E001 Ada Lovelace", "E002 Bob Babbage")

	w.kill(crashChild{Args: w.cycleArgs("sync-1", "ada", "bob"), CrashAt: cycle.CrashBeforeStatus, CrashAtNth: 2})
	done := w.user().Status.LastCycle
	w.g.Expect(done).NotTo(BeNil())
	w.g.Expect(done.ID).To(Equal("sync-1"))
	w.g.Expect(done.Items.Created).To(BeEquivalentTo(2))
	w.g.Expect(w.k8s.Get(w.ctx, client.ObjectKeyFromObject(bob), bob)).To(Succeed())
	w.g.Expect(bob.Status.LastCycle).To(BeNil(), "killed before bob's result")

	w.editSource("E001", "Ada King") // would make a second cycle of ada a changed one
	r := &cycle.Runner{Client: w.k8s, Log: logr.Discard(), Cycle: jobargs.Cycle{Namespace: w.ns, Policy: "directory", Job: "sync-1",
		Store: w.claim, Volumes: w.volumes, Concurrency: 1, LockTimeout: 5 * time.Second}}
	w.g.Expect(r.Run(w.ctx, []string{"ada", "bob"})).To(Succeed())
	w.g.Expect(w.user().Status.LastCycle).To(Equal(done), "the result counted stays")
	w.g.Expect(w.k8s.Get(w.ctx, client.ObjectKeyFromObject(bob), bob)).To(Succeed())
	w.g.Expect(bob.Status.LastCycle).NotTo(BeNil())
	w.g.Expect(bob.Status.LastCycle.ID).To(Equal("sync-1"))
	w.g.Expect(bob.Status.LastCycle.Failure).To(BeEmpty())

	// The edit is the next cycle's.
	w.g.Expect(w.cycle("sync-2").LastCycle.Items).To(Equal(syncv1alpha1.ItemCounts{Updated: 1}))
	w.expectConverged("sync-3", "E001 Ada King", "E002 Bob Babbage")
}

// `reinit: clear` killed after the clear, and killed after the relinking cycle finished but
// before its status said the request was handled: the re-run carries the request out once.
func TestKilledDuringAReinitClear(t *testing.T) {
	env, kubeconfig := startCrashEnv(t)
	for _, tc := range []struct {
		name  string
		crash crashChild
		// relinked says the killed cycle linked the records again before it died: an edit made
		// after that is a change to carry over; one made before is a difference that relinking
		// settles by the conflict rule (SourceWins), as if it had been made before the request.
		relinked bool
	}{
		{"after the clear", crashChild{CrashAt: cycle.CrashAfterClear}, false},
		{"while relinking", crashChild{WritesSide: "target", Writes: 1}, true},
		{"before the status write", crashChild{CrashAt: cycle.CrashBeforeStatus}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCrashWorld(t, env, kubeconfig, "clear-"+strings.ReplaceAll(tc.name, " ", "-"))
			w.export("E001 Ada Lovelace", "E002 Bob Babbage", "E003 Cy Cole")
			w.addTarget("X001", "Xia", "Xu")
			w.cycle("sync-1")
			// New on the export since: the relinking cycle creates it.
			w.export("E001 Ada Lovelace", "E002 Bob Babbage", "E003 Cy Cole", "E004 Dee Dunn", "X001 Xia Xu")

			w.annotate(syncv1alpha1.ReinitAnnotation, "clear@1")
			crash := tc.crash
			crash.Args = w.cycleArgs("sync-2")
			w.kill(crash)
			w.g.Expect(w.user().Status.LastHandledReinit).To(BeEmpty())
			w.g.Expect(w.user().Status.LastCycle.ID).To(Equal("sync-1"), "the killed cycle wrote no result")

			// A person edits the directory before the retry: once relinked, the edit is newer
			// than the clear and must reach the export, not be settled as a conflict by a second
			// clear.
			w.editTarget("E002", "Bob", "Babbage-Edited")
			e002 := "E002 Bob Babbage"
			if tc.relinked {
				e002 = "E002 Bob Babbage-Edited"
			}
			st := w.cycle("sync-2")
			w.g.Expect(st.LastHandledReinit).To(Equal("clear@1"))
			w.g.Expect(st.LastCycle.Reinit).To(Equal("clear@1"))
			w.expectConverged("sync-3", "E001 Ada Lovelace", e002, "E003 Cy Cole", "E004 Dee Dunn", "X001 Xia Xu")
			w.g.Expect(w.user().Status.LastCycle.Mode).NotTo(Equal(syncv1alpha1.CycleMode("Initial")), "handled: not cleared again")
		})
	}
}

func (w *crashWorld) forgetArgs() []string {
	return jobargs.ForgetRecords{Namespace: w.ns, Job: "ada-forget", Store: w.claim, LockTimeout: 5 * time.Second,
		Users: []string{"ada"}}.Args()
}

func (w *crashWorld) claimsOfAda() []records.Claim {
	claims, err := w.store.Claims()
	w.g.Expect(err).NotTo(HaveOccurred())
	var mine []records.Claim
	for _, c := range claims {
		if c.User == ada {
			mine = append(mine, c)
		}
	}
	return mine
}

// The records-deletion Job (`chainsync forget-records`) killed after taking the records
// out and after releasing a claim, then retried: the records are gone at once and for good, the
// claims released, nothing left on the volume, and the same person synced again later relinks
// what is there instead of reading a half-deleted folder.
func TestKilledDuringARecordsDeletion(t *testing.T) {
	env, kubeconfig := startCrashEnv(t)
	w := newCrashWorld(t, env, kubeconfig, "forget")
	w.export("E001 Ada Lovelace", "E002 Bob Babbage")
	w.cycle("sync-1")
	w.g.Expect(w.store.Users()).To(ConsistOf(ada))
	w.g.Expect(w.claimsOfAda()).To(HaveLen(1))
	userDir, err := w.store.UserDir(ada)
	w.g.Expect(err).NotTo(HaveOccurred())
	detached := filepath.Join(w.claim, "detached")

	w.kill(crashChild{Args: w.forgetArgs(), CrashAt: cycle.CrashForgetDetached})
	w.g.Expect(userDir).NotTo(BeADirectory(), "no half-deleted folder: it left users/ in one rename")
	w.g.Expect(w.store.Users()).To(BeEmpty())
	w.g.Expect(w.claimsOfAda()).To(HaveLen(1), "killed before releasing the claim")

	w.kill(crashChild{Args: w.forgetArgs(), CrashAt: cycle.CrashForgetReleased})
	w.g.Expect(w.claimsOfAda()).To(BeEmpty())

	var out strings.Builder
	code := cli.Run(w.ctx, w.forgetArgs(), map[string]string{"KUBECONFIG": w.kubeconfig}, &out, &out)
	w.g.Expect(code).To(Equal(0), out.String())
	w.g.Expect(userDir).NotTo(BeADirectory())
	entries, err := os.ReadDir(detached)
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(entries).To(BeEmpty(), "what the killed attempts took out is removed too")
	w.g.Expect(w.claimsOfAda()).To(BeEmpty())

	// Synced again: an Initial cycle that relinks both sides' rows by matchOn, creating nothing.
	st := w.cycle("sync-2")
	w.g.Expect(st.LastCycle.Mode).To(Equal(syncv1alpha1.CycleMode("Initial")))
	w.g.Expect(st.LastCycle.Items.Created).To(BeZero())
	w.expectConverged("sync-3", "E001 Ada Lovelace", "E002 Bob Babbage")
}

// A two-way policy killed mid-cycle, between the batches it writes to either side (each batch
// committed on its endpoint and not yet recorded) or before its status write, in its first
// cycle and in a later one; both sides edited before each re-run.
func TestTwoWayKilledMidCycle(t *testing.T) {
	env, kubeconfig := startCrashEnv(t)
	for _, tc := range []struct {
		name  string
		crash crashChild
	}{
		{"after 1 directory write", crashChild{WritesSide: "target", Writes: 1}},
		{"after 2 directory writes", crashChild{WritesSide: "target", Writes: 2}},
		{"after 1 export write", crashChild{WritesSide: "source", Writes: 1}},
		{"after 2 export writes", crashChild{WritesSide: "source", Writes: 2}},
		{"before the status write", crashChild{CrashAt: cycle.CrashBeforeStatus}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newCrashWorld(t, env, kubeconfig, "two-way-"+strings.ReplaceAll(tc.name, " ", "-"))
			w.export("E001 Ada Lovelace", "E002 Bob Babbage", "E003 Cy Cole", "E004 Dee Dunn")
			w.addTarget("X001", "Xia", "Xu")
			w.addTarget("X002", "Yan", "Yu")
			w.addTarget("X003", "Zoe", "Zhu")

			// The first cycle: creates on both sides.
			crash := tc.crash
			crash.Args = w.cycleArgs("sync-1")
			w.kill(crash)
			w.editTarget("X001", "Xia", "Xu-Edited")
			rows := w.sourceRows()
			w.g.Expect(rows).To(ContainElement(HavePrefix("E001 ")))
			w.editSource("E001", "Ada King")
			w.cycle("sync-1")
			w.expectConverged("sync-2", "E001 Ada King", "E002 Bob Babbage", "E003 Cy Cole", "E004 Dee Dunn",
				"X001 Xia Xu-Edited", "X002 Yan Yu", "X003 Zoe Zhu")

			// A later cycle: creates and updates on both sides.
			w.editSource("E002", "Bob Brown")
			w.addSource("E005 Eve Ek", "E006 Fay Fox")
			w.editTarget("X002", "Yan", "Yu-Edited")
			w.addTarget("X004", "Ann", "Abe")
			w.addTarget("X005", "Ben", "Bo")
			crash.Args = w.cycleArgs("sync-3")
			w.kill(crash)
			w.editTarget("E003", "Cy", "Cole-Edited")
			w.editSource("X003", "Zoe Zhang")
			w.cycle("sync-3")
			w.expectConverged("sync-4", "E001 Ada King", "E002 Bob Brown", "E003 Cy Cole-Edited", "E004 Dee Dunn",
				"E005 Eve Ek", "E006 Fay Fox", "X001 Xia Xu-Edited", "X002 Yan Yu-Edited", "X003 Zoe Zhang",
				"X004 Ann Abe", "X005 Ben Bo")
		})
	}
}

// editExport changes the export's rows in place, as a person editing the file would, keeping
// whatever columns and rows the cycles wrote.
func (w *crashWorld) editExport(edit func(head []string, rows [][]string) [][]string) {
	path := filepath.Join(w.claim, "hr", "employees.csv")
	f, err := os.Open(path)
	w.g.Expect(err).NotTo(HaveOccurred())
	all, err := csv.NewReader(f).ReadAll()
	f.Close()
	w.g.Expect(err).NotTo(HaveOccurred())
	all = append(all[:1], edit(all[0], all[1:])...)
	var b strings.Builder
	cw := csv.NewWriter(&b)
	w.g.Expect(cw.WriteAll(all)).To(Succeed())
	w.g.Expect(os.WriteFile(path, []byte(b.String()), 0o644)).To(Succeed())
}

// editSource renames the export's row id to "first last".
func (w *crashWorld) editSource(id, name string) {
	first, last, _ := strings.Cut(name, " ")
	found := false
	w.editExport(func(head []string, rows [][]string) [][]string {
		for _, row := range rows {
			if row[slices.Index(head, "employee_id")] == id {
				row[slices.Index(head, "first_name")], row[slices.Index(head, "last_name")] = first, last
				found = true
			}
		}
		return rows
	})
	w.g.Expect(found).To(BeTrue(), "row %s in the export", id)
}

// addSource adds rows of "id first last" to the export.
func (w *crashWorld) addSource(rows ...string) {
	w.editExport(func(head []string, all [][]string) [][]string {
		for _, r := range rows {
			f := strings.Fields(r)
			values := map[string]string{"employee_id": f[0], "email": strings.ToLower(f[0]) + "@example.com",
				"first_name": f[1], "last_name": f[2], "owner": ada}
			row := make([]string, len(head))
			for i, col := range head {
				row[i] = values[col]
			}
			all = append(all, row)
		}
		return all
	})
}
