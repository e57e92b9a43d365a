// Command benchscale measures how the operator scales: N users on a three-step chain of SQLite
// policies, through the local control plane and the local Job executor running `chainsync cycle`
// as processes. It prints users advanced per second, API requests per user per step (counted by
// the API server itself), Jobs created and the operator's peak memory, and, measured on the same
// API server, how many status patches per second a plain client gets through: the ceiling.
//
// Run it with `make bench-scale` (USERS=10000 by default).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	_ "modernc.org/sqlite"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/config"
	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
)

const ns = "bench"

func main() {
	users := flag.Int("users", 10000, "users on the chain")
	perJob := flag.Int("users-per-job", 500, "jobTemplate.usersPerJob of each policy")
	parallelism := flag.Int("parallelism", 2, "jobTemplate.parallelism of each policy")
	pods := flag.Int("pods", 4, "pods the executor runs at once (the node's capacity)")
	timeout := flag.Duration("timeout", 2*time.Hour, "give up after this long, printing the figures for what was done")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.WriteTo(devNull())))
	if err := run(*users, *perJob, *parallelism, *pods, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

func devNull() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}

func run(users, perJob, parallelism, pods int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "chainsync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	binary := filepath.Join(work, "chainsync")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building chainsync: %w", err)
	}

	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	c := env.Client
	if err := setUp(ctx, c, work, users, perJob, parallelism); err != nil {
		return err
	}

	mgr, err := manager.New(env.Config, manager.Options{MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		return err
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{Jobs: controllers.CycleJobBuilder{Image: "chainsync:bench"}}); err != nil {
		return err
	}
	ex, err := executor.New(env.Config, executor.Options{DataDir: work, Runner: executor.ProcessRunner{ChainsyncBinary: binary}, MaxConcurrentPods: pods})
	if err != nil {
		return err
	}
	if err := ex.SetupWithManager(mgr); err != nil {
		return err
	}
	before, _, err := apiRequests(ctx, env)
	if err != nil {
		return err
	}

	fmt.Printf("Placing %d users on a 3-step chain of sqlite policies (usersPerJob %d, parallelism %d, %d pods at once)\n",
		users, perJob, parallelism, pods)
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	go func() { _ = mgr.Start(mgrCtx) }()
	start := time.Now()
	if err := createUsers(ctx, c, users); err != nil {
		return err
	}
	advanced, waitErr := waitCompleted(ctx, c, users)
	if waitErr != nil && ctx.Err() == nil {
		return waitErr
	}
	elapsed := time.Since(start)
	// Past the timeout the figures are still printed, for what was done by then.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	peakResident := peakResidentBytes()
	after, jobsCreated, err := apiRequests(ctx, env)
	if err != nil {
		return err
	}
	stopMgr()

	// Every request the API server served during the run, less the benchmark's own creates
	// and its polling of the chain.
	requests := after - before - float64(users)
	ceiling, err := statusPatchCeiling(ctx, c, min(users, 2000))
	if err != nil {
		return err
	}

	if waitErr != nil {
		fmt.Printf("INCOMPLETE: %v; the figures below are for what was done by then\n", waitErr)
	}
	fmt.Printf("Users completed:                  %d of %d in %s\n", advanced.completed, users, elapsed.Round(time.Second))
	fmt.Printf("Users advanced per second:        %.1f (step moves and completions: %d)\n", float64(advanced.total())/elapsed.Seconds(), advanced.total())
	fmt.Printf("API requests per user per step:   %.1f (%.0f requests)\n", requests/float64(advanced.total()), requests)
	fmt.Printf("Jobs created:                     %d\n", int(jobsCreated))
	fmt.Printf("Operator peak memory (RSS):       %.0f MiB (operator and executor, one process)\n", float64(peakResident)/(1<<20))
	fmt.Printf("Ceiling, plain status patches/s:  %.0f (8 concurrent clients on the same API server)\n", ceiling)
	// One line per goal of issue #13, for a script to check.
	rate := float64(advanced.total()) / elapsed.Seconds()
	fmt.Printf("GOAL users-vs-ceiling measured=%.3f target>=0.5\n", rate/ceiling)
	fmt.Printf("GOAL requests-per-user-step measured=%.1f target<=4\n", requests/float64(advanced.total()))
	fmt.Printf("GOAL operator-rss-mib measured=%.0f target<=256\n", float64(peakResident)/(1<<20))
	fmt.Printf("GOAL users-completed measured=%d target>=%d\n", advanced.completed, users)
	return nil
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
			Schedule: syncv1alpha1.Schedule{Interval: "10s"},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records"},
			JobTemplate: syncv1alpha1.CycleJobTemplate{UsersPerJob: int32(perJob), Parallelism: int32(parallelism), Concurrency: 8,
				TTLSecondsAfterFinished: new(int32(3600)), SuccessfulJobsHistoryLimit: new(int32(100)), FailedJobsHistoryLimit: new(int32(100))},
		},
	}
}

func createUsers(ctx context.Context, c client.Client, users int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < users; i = int(next.Add(1)) - 1 {
				u := &syncv1alpha1.SyncUser{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("user%05d", i), Namespace: ns},
					Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: email(i)},
						ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"}},
				}
				if err := c.Create(ctx, u); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("creating users: %w", err)
	default:
		return nil
	}
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

// apiRequests sums the API server's apiserver_request_total counter, and the Jobs it created.
func apiRequests(ctx context.Context, env *testenv.Env) (total, jobsCreated float64, err error) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return 0, 0, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			continue
		}
		total += v
		if strings.Contains(line, `resource="jobs"`) && strings.Contains(line, `verb="POST"`) && strings.Contains(line, `code="201"`) {
			jobsCreated += v
		}
	}
	return total, jobsCreated, nil
}

// statusPatchCeiling patches SyncUser status as fast as 8 plain clients can for 10 seconds.
func statusPatchCeiling(ctx context.Context, c client.Client, users int) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += 8 {
				u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("user%05d", i%users), Namespace: ns}}
				patch := []byte(fmt.Sprintf(`{"status":{"lastHandledRequestedAt":"ceiling-%d"}}`, i))
				if err := c.Status().Patch(ctx, u, client.RawPatch("application/merge-patch+json", patch)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("measuring the status patch ceiling: %w", err)
	}
	return float64(done.Load()) / 10, nil
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
