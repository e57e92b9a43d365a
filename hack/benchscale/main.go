// Command benchscale measures how the operator scales: N users on a three-step chain of SQLite
// policies, through the local control plane and the local Job executor running `chainsync cycle`
// as processes. It prints users advanced per second, API requests per user per step (counted by
// the API server itself, by verb and resource), Jobs created and the operator's peak memory, and
// the ceiling: how many SyncUser status patches per second plain clients get through on the same
// API server, measured at rest before the users exist.
//
// Run it with `make bench-scale` (USERS=10000 by default; USERS=1000,10000 sweeps the sizes, each
// on a fresh control plane, and prints how the rate holds up from the first size to the last).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	_ "modernc.org/sqlite"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/config"
	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
)

const ns = "bench"

var (
	gatherWindow string
	// stubCycles builds the cycle binary with its engine stubbed to come back empty (-tags
	// benchstub), for sizes real cycles could not move in a benchmark's time.
	stubCycles bool
)

func main() {
	sizes := flag.String("users", "10000", "users on the chain; a comma-separated list runs each size on a fresh control plane")
	perJob := flag.Int("users-per-job", 500, "jobTemplate.UsersPerJob of each policy")
	parallelism := flag.Int("parallelism", 2, "jobTemplate.parallelism of each policy")
	pods := flag.Int("pods", 4, "pods the executor runs at once (the node's capacity)")
	flag.StringVar(&gatherWindow, "gather-window", "10s", "jobTemplate.gatherWindow of each policy")
	flag.BoolVar(&stubCycles, "stub-cycles", false, "stub the sync engine in the cycle processes: every cycle comes back empty without reading or writing either side (the operator, the API server, the Jobs, the cycle processes and their status writes stay real)")
	timeout := flag.Duration("timeout", 2*time.Hour, "give up on one size after this long, printing the figures for what was done")
	cpuProfile := flag.String("cpuprofile", "", "write the operator's CPU profile (of the largest size) to this file")
	memProfile := flag.String("memprofile", "", "write the operator's heap profile (of the largest size, at its end) to this file")
	figuresTo := flag.String("figures-to", "", "write this size's figures as JSON to this file (a sweep runs each size in a process of its own)")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.WriteTo(devNull())))
	fields := strings.Split(*sizes, ",")
	if len(fields) > 1 {
		runs, err := sweep(fields)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-scale:", err)
			os.Exit(1)
		}
		printGoals(runs)
		return
	}
	users, err := strconv.Atoi(strings.TrimSpace(*sizes))
	if err != nil || users <= 0 {
		fmt.Fprintf(os.Stderr, "bench-scale: -users: %q is not a number of users\n", *sizes)
		os.Exit(2)
	}
	f, err := run(users, *perJob, *parallelism, *pods, *timeout, profiles{cpu: *cpuProfile, heap: *memProfile})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
	if *figuresTo != "" {
		raw, _ := json.Marshal(f)
		if err := os.WriteFile(*figuresTo, raw, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench-scale:", err)
			os.Exit(1)
		}
		return
	}
	printGoals([]figures{f})
}

// sweep runs each size in a process of its own with the same flags: a fresh control plane, a
// fresh operator (controllers register once per process), and a peak memory of its own.
func sweep(sizes []string) ([]figures, error) {
	dir, err := os.MkdirTemp("", "chainsync-bench-sweep-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var runs []figures
	for i, size := range sizes {
		out := filepath.Join(dir, fmt.Sprintf("figures-%d.json", i))
		args := []string{"-figures-to", out, "-users", strings.TrimSpace(size)}
		flag.Visit(func(f *flag.Flag) {
			if f.Name != "users" && f.Name != "figures-to" {
				args = append(args, "-"+f.Name+"="+f.Value.String())
			}
		})
		cmd := exec.Command(os.Args[0], args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s users: %w", size, err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		var f figures
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, err
		}
		runs = append(runs, f)
	}
	return runs, nil
}

// figures are one size's results.
type figures struct {
	Users, Completed int
	Stubbed          bool
	Rate             float64 // users advanced per second
	Ceiling          float64 // status patches per second at rest
	RequestsPerStep  float64
	PeakResidentMiB  float64
}

// printGoals prints one line per goal of issue #13, for a script to check: the largest size's
// figures, and the linearity of the rate from the smallest size to the largest. A run with
// stubbed cycles says so in each goal's name.
func printGoals(runs []figures) {
	last := runs[len(runs)-1]
	fmt.Println()
	for _, f := range runs {
		fmt.Printf("Summary: %6d users  %6.1f advanced/s  ceiling %5.0f/s  ratio %.3f  %.1f requests per user-step  %4.0f MiB%s\n",
			f.Users, f.Rate, f.Ceiling, f.Rate/f.Ceiling, f.RequestsPerStep, f.PeakResidentMiB, stubbedLabel(f, " (cycles stubbed)"))
	}
	if len(runs) > 1 {
		fmt.Printf("GOAL linearity-%d-vs-%d%s measured=%.2f target>=0.8\n", last.Users, runs[0].Users, stubbedLabel(last, "-stubbed"), last.Rate/runs[0].Rate)
	}
	label := stubbedLabel(last, "-stubbed")
	fmt.Printf("GOAL users-vs-ceiling%s measured=%.3f target>=0.5\n", label, last.Rate/last.Ceiling)
	fmt.Printf("GOAL requests-per-user-step%s measured=%.1f target<=4\n", label, last.RequestsPerStep)
	for _, f := range runs {
		// The bounds: 256 MiB at 10,000 users, 1 GiB at 100,000.
		target := 256
		if f.Users > 10_000 {
			target = 1024
		}
		fmt.Printf("GOAL operator-rss-mib-%d-users%s measured=%.0f target<=%d\n", f.Users, stubbedLabel(f, "-stubbed"), f.PeakResidentMiB, target)
	}
	fmt.Printf("GOAL users-completed%s measured=%d target>=%d\n", label, last.Completed, last.Users)
}

func stubbedLabel(f figures, label string) string {
	if f.Stubbed {
		return label
	}
	return ""
}

type profiles struct{ cpu, heap string }

func devNull() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}

func run(users, perJob, parallelism, pods int, timeout time.Duration, prof profiles) (figures, error) {
	f, err := runSize(users, perJob, parallelism, pods, timeout, prof)
	if err != nil {
		return f, fmt.Errorf("%d users: %w", users, err)
	}
	return f, nil
}

func runSize(users, perJob, parallelism, pods int, timeout time.Duration, prof profiles) (figures, error) {
	fig := figures{Users: users, Stubbed: stubCycles}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root, err := testenv.RepoRoot()
	if err != nil {
		return fig, err
	}
	work, err := os.MkdirTemp("", "chainsync-bench-")
	if err != nil {
		return fig, err
	}
	defer os.RemoveAll(work)
	binary := filepath.Join(work, "chainsync")
	args := []string{"build", "-o", binary}
	if stubCycles {
		args = append(args, "-tags", "benchstub")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fig, fmt.Errorf("building chainsync: %w", err)
	}

	env, err := testenv.Start()
	if err != nil {
		return fig, err
	}
	defer func() { _ = env.Stop() }()
	c := env.Client
	// The ceiling first, on the server at rest: measured after the run, on a server still busy
	// with its aftermath, it sank with the size and flattered the ratio.
	if fig.Ceiling, err = statusPatchCeiling(ctx, c); err != nil {
		return fig, err
	}
	if err := setUp(ctx, c, work, users, perJob, parallelism); err != nil {
		return fig, err
	}

	mgr, err := manager.New(env.Config, manager.Options{MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		return fig, err
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{Jobs: controllers.CycleJobBuilder{Image: "chainsync:bench"}}); err != nil {
		return fig, err
	}
	ex, err := executor.New(env.Config, executor.Options{DataDir: work, Runner: executor.ProcessRunner{ChainsyncBinary: binary}, MaxConcurrentPods: pods})
	if err != nil {
		return fig, err
	}
	if err := ex.SetupWithManager(mgr); err != nil {
		return fig, err
	}
	before, err := apiRequests(ctx, env)
	if err != nil {
		return fig, err
	}

	if stubCycles {
		fmt.Println("STUBBED CYCLES: each cycle's sync engine comes back empty without reading or writing either side;",
			"real: the API server, etcd, the operator, the Jobs, the cycle processes, their record store claims, their reads of the users and their status writes")
	}
	fmt.Printf("Placing %d users on a 3-step chain of sqlite policies, import and verify every 10s, bau every 15m (usersPerJob %d, parallelism %d, gatherWindow %s, %d pods at once)\n",
		users, perJob, parallelism, gatherWindow, pods)
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	go func() { _ = mgr.Start(mgrCtx) }()
	stopProfile, err := startProfile(prof.cpu)
	if err != nil {
		return fig, err
	}
	start := time.Now()
	if err := createUsers(ctx, c, users); err != nil {
		return fig, err
	}
	advanced, waitErr := waitCompleted(ctx, c, users)
	if waitErr != nil && ctx.Err() == nil {
		return fig, waitErr
	}
	elapsed := time.Since(start)
	stopProfile()
	if err := writeHeapProfile(prof.heap); err != nil {
		return fig, err
	}
	// Past the timeout the figures are still printed, for what was done by then.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fig.PeakResidentMiB = float64(peakResidentBytes()) / (1 << 20)
	after, err := apiRequests(ctx, env)
	if err != nil {
		return fig, err
	}
	stopMgr()

	// Every request the API server served during the run, less the benchmark's own creates
	// and its polling of the chain.
	served := after.minus(before)
	delete(served, requestKind{verb: "GET", resource: "onboardingchains", code: "200"})
	served[requestKind{verb: "POST", resource: "syncusers", code: "201"}] -= float64(users)
	requests := served.total()
	fig.Completed = advanced.completed
	fig.Rate = float64(advanced.total()) / elapsed.Seconds()
	fig.RequestsPerStep = requests / float64(max(1, advanced.total()))

	if waitErr != nil {
		fmt.Printf("INCOMPLETE: %v; the figures below are for what was done by then\n", waitErr)
	}
	fmt.Printf("Users completed:                  %d of %d in %s\n", advanced.completed, users, elapsed.Round(time.Second))
	fmt.Printf("Users advanced per second:        %.1f (step moves and completions: %d)\n", fig.Rate, advanced.total())
	fmt.Printf("API requests per user per step:   %.2f (%.0f requests); by verb and resource:\n", fig.RequestsPerStep, requests)
	served.print(float64(max(1, advanced.total())))
	fmt.Printf("Jobs created:                     %.0f\n", served[requestKind{verb: "POST", resource: "jobs", code: "201"}])
	fmt.Printf("Cycles by result (operator):      %s\n", cyclesByResult())
	fmt.Printf("Operator peak memory (RSS):       %.0f MiB (operator and executor, one process)\n", fig.PeakResidentMiB)
	fmt.Printf("Ceiling, SyncUser status patches: %.0f/s (%d clients for %s on the same API server, at rest)\n", fig.Ceiling, ceilingClients, ceilingTime)
	return fig, nil
}

func setUp(ctx context.Context, c client.Client, work string, users, perJob, parallelism int) error {
	role, err := config.CycleClusterRole()
	if err != nil {
		return err
	}
	objs := []client.Object{
		role,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns,
			Labels: map[string]string{syncv1alpha1.CycleServiceAccountLabel: "true"}}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "chainsync-cycle"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "chainsync-cycle", Namespace: ns}},
		},
		&corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "records", Namespace: ns},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T: %w", o, err)
		}
	}
	if err := seedDatabases(executor.ClaimDir(work, ns, "records"), users); err != nil {
		return err
	}
	for _, name := range []string{"import", "verify", "bau"} {
		if err := c.Create(ctx, policy(name, perJob, parallelism)); err != nil {
			return err
		}
	}
	return c.Create(ctx, &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "import"}, {Name: "verify", Policy: "verify"}, {Name: "bau", Policy: "bau"}}},
	})
}

func email(i int) string { return fmt.Sprintf("user%05d@example.com", i) }

// seedDatabases writes the source directory (one person per user) and an empty target.
func seedDatabases(dir string, users int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, file := range []string{"hr.db", "directory.db"} {
		db, err := sql.Open("sqlite", filepath.Join(dir, file))
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT,
			email TEXT, name TEXT, owner TEXT, updated_at TEXT, chainsync_origin TEXT); CREATE INDEX people_owner ON people(owner)`); err != nil {
			return err
		}
		if file != "hr.db" {
			continue
		}
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for i := range users {
			if _, err := tx.Exec(`INSERT INTO people (email, name, owner, updated_at) VALUES (?, ?, ?, ?)`,
				email(i), "Person "+strconv.Itoa(i), email(i), "2026-11-01T00:00:00Z"); err != nil {
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

func policy(name string, perJob, parallelism int) *syncv1alpha1.SyncPolicy {
	// The onboarding steps cycle every 10 s, so a user whose first cycle changed something gets
	// its empty one soon; the last step is business as usual, on the default 15 minutes: users
	// who completed the chain do not cycle again while the others catch up, which would count
	// steady-state cycles as the cost of moving along.
	interval := "10s"
	if name == "bau" {
		interval = "15m"
	}
	side := func(file string) syncv1alpha1.Endpoint {
		return syncv1alpha1.Endpoint{Name: strings.TrimSuffix(file, ".db"), Connector: syncv1alpha1.SQLiteConnector,
			SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: file}}}
	}
	coll := syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"}, ModifiedField: "updated_at",
		Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}}
	return &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: syncv1alpha1.SyncPolicySpec{
			Source: side("hr.db"), Target: side("directory.db"),
			Entities: []syncv1alpha1.Entity{{Name: "people", Source: coll, Target: coll, MatchOn: []string{"email"},
				Fields: []syncv1alpha1.FieldMapping{{Source: "email", Target: "email"}, {Source: "name", Target: "name"}}}},
			Schedule: syncv1alpha1.Schedule{Interval: interval},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records"},
			JobTemplate: syncv1alpha1.CycleJobTemplate{UsersPerJob: int32(perJob), Parallelism: int32(parallelism), Concurrency: 8, GatherWindow: gatherWindow,
				TTLSecondsAfterFinished: new(int32(3600)), SuccessfulJobsHistoryLimit: new(int32(100)), FailedJobsHistoryLimit: new(int32(100))},
		},
	}
}

func createUsers(ctx context.Context, c client.Client, users int) error {
	err := parallel(ctx, users, func(i int) error {
		return c.Create(ctx, &syncv1alpha1.SyncUser{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("user%05d", i), Namespace: ns},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: email(i)},
				ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}},
		})
	})
	if err != nil {
		return fmt.Errorf("creating users: %w", err)
	}
	return nil
}

// progress counts how far users got: moves to the second and third step, and completions.
type progress struct{ toVerify, toBau, completed int }

func (p progress) total() int { return p.toVerify + p.toBau + p.completed }

// waitCompleted waits for every user to complete the chain and returns how far they got.
func waitCompleted(ctx context.Context, c client.Client, users int) (progress, error) {
	chain := &syncv1alpha1.OnboardingChain{}
	last := time.Now()
	var p progress
	for {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "onboarding"}, chain); err != nil {
			return p, err
		}
		if len(chain.Status.Steps) == 3 {
			onVerify, onBau := int(chain.Status.Steps[1].Users), int(chain.Status.Steps[2].Users)
			p = progress{toVerify: onVerify + onBau, toBau: onBau, completed: int(chain.Status.CompletedUsers)}
		}
		if p.completed == users {
			return p, nil
		}
		if time.Since(last) > 15*time.Second {
			var per []string
			for _, s := range chain.Status.Steps {
				per = append(per, fmt.Sprintf("%s=%d", s.Name, s.Users))
			}
			fmt.Printf("  ... %d/%d completed (%s)\n", chain.Status.CompletedUsers, users, strings.Join(per, " "))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("waiting for the chain to complete: %w", ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// requestKind is one series of the API server's apiserver_request_total.
type requestKind struct{ verb, resource, subresource, code string }

// requestCounts are the API server's request counters by kind.
type requestCounts map[requestKind]float64

func (r requestCounts) minus(before requestCounts) requestCounts {
	d := requestCounts{}
	for k, v := range r {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

func (r requestCounts) total() float64 {
	var t float64
	for _, v := range r {
		t += v
	}
	return t
}

// print lists the requests per user-step by verb, resource and subresource, most first.
func (r requestCounts) print(steps float64) {
	byKind := map[string]float64{}
	for k, v := range r {
		name := k.verb + " " + k.resource
		if k.subresource != "" {
			name += "/" + k.subresource
		}
		if !strings.HasPrefix(k.code, "2") {
			name += " (" + k.code + ")" // Conflicts and the like, apart: each is a request repeated.
		}
		byKind[name] += v
	}
	names := make([]string, 0, len(byKind))
	for n := range byKind {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byKind[names[i]] > byKind[names[j]] })
	for _, n := range names {
		if byKind[n]/steps >= 0.005 {
			fmt.Printf("    %-40s %6.2f  (%.0f)\n", n, byKind[n]/steps, byKind[n])
		}
	}
}

// apiRequests reads the API server's apiserver_request_total counters.
func apiRequests(ctx context.Context, env *testenv.Env) (requestCounts, error) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the API server's metrics: %w", err)
	}
	counts := requestCounts{}
	family := families["apiserver_request_total"]
	if family == nil {
		return nil, errors.New("the API server exports no apiserver_request_total")
	}
	for _, m := range family.GetMetric() {
		var k requestKind
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				k.verb = l.GetValue()
			case "resource":
				k.resource = l.GetValue()
			case "subresource":
				k.subresource = l.GetValue()
			case "code":
				k.code = l.GetValue()
			}
		}
		counts[k] += m.GetCounter().GetValue()
	}
	return counts, nil
}

const (
	ceilingClients = 16
	ceilingTime    = 20 * time.Second
	ceilingUsers   = 1000
)

// statusPatchCeiling is how many SyncUser status patches per second plain clients get through on
// the API server at rest: the write every user-step needs at least once. It creates its own users
// in a namespace of its own, and deletes them after.
func statusPatchCeiling(ctx context.Context, c client.Client) (float64, error) {
	const space = "ceiling"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: space}}); err != nil {
		return 0, err
	}
	name := func(i int) string { return fmt.Sprintf("ceiling%05d", i%ceilingUsers) }
	err := parallel(ctx, ceilingUsers, func(i int) error {
		return c.Create(ctx, &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name(i), Namespace: space},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: email(i)},
				PolicyRef: &syncv1alpha1.PolicyReference{Name: "none"}}})
	})
	if err != nil {
		return 0, fmt.Errorf("creating the ceiling's users: %w", err)
	}
	var done atomic.Int64
	deadline := time.Now().Add(ceilingTime)
	var wg sync.WaitGroup
	errs := make(chan error, ceilingClients)
	for w := range ceilingClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += ceilingClients {
				u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name(i), Namespace: space}}
				patch := fmt.Appendf(nil, `{"status":{"policy":"none","step":"s%d","observedGeneration":1}}`, i)
				if err := c.Status().Patch(ctx, u, client.RawPatch(types.MergePatchType, patch)); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("measuring the status patch ceiling: %w", err)
	}
	if err := c.DeleteAllOf(ctx, &syncv1alpha1.SyncUser{}, client.InNamespace(space)); err != nil {
		return 0, fmt.Errorf("deleting the ceiling's users: %w", err)
	}
	return float64(done.Load()) / ceilingTime.Seconds(), nil
}

// parallel runs f(0..n-1) on 16 goroutines and returns the first error.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}

// cyclesByResult reads the operator's chainsync_cycles_finished_total: how many cycles per user
// step it took, and whether any failed.
func cyclesByResult() string {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return err.Error()
	}
	by := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "chainsync_cycles_finished_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					by[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	var parts []string
	for _, r := range []string{"empty", "changed", "item_errors", "failed"} {
		parts = append(parts, fmt.Sprintf("%s %.0f", r, by[r]))
	}
	return strings.Join(parts, ", ")
}

// startProfile starts the CPU profile of this process (the operator and the executor) when
// file is set, and returns what stops it.
func startProfile(file string) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

func writeHeapProfile(file string) error {
	if file == "" {
		return nil
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// peakResidentBytes is this process's peak resident memory (VmHWM): the operator and the
// executor, which run in it, and the benchmark's own bookkeeping.
func peakResidentBytes() uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.Sys
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseUint(strings.Fields(line)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
