package controllers_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	_ "modernc.org/sqlite"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/config"
	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/cli"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
	"github.com/chainsync/chainsync/internal/webhook"
)

// One control plane and one operator (with the local Job executor running cycles in-process)
// for the package; every test works in a namespace of its own.
var (
	env         *testenv.Env
	k8s         client.Client // direct, uncached: assertions read what the server holds
	dataDir     string
	metricsAddr string
	webhookAddr string
	nsCounter   atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// The operator's logs help when a test fails: CHAINSYNC_TEST_LOG=1 shows them.
	logs := io.Discard
	if os.Getenv("CHAINSYNC_TEST_LOG") != "" {
		logs = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	if dataDir, err = os.MkdirTemp("", "chainsync-controllers-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dataDir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startOperator(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting the operator:", err)
		return 1
	}
	return m.Run()
}

func startOperator(ctx context.Context) error {
	// The cycle pods run with the least-privileged role the deployment ships.
	role, err := config.CycleClusterRole()
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, role); err != nil {
		return err
	}

	if metricsAddr, err = freeAddr(); err != nil {
		return err
	}
	if webhookAddr, err = freeAddr(); err != nil {
		return err
	}
	// The tests read metrics as Prometheus would on a trusted network; the secure default is
	// tested in internal/manager.
	mgr, err := manager.New(env.Config, manager.Options{MetricsAddr: metricsAddr, ProbeAddr: "0", InsecureMetrics: true})
	if err != nil {
		return err
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{Jobs: controllers.CycleJobBuilder{Image: "chainsync:test"}}); err != nil {
		return err
	}
	if err := webhook.SetupWithManager(ctx, mgr, webhook.Options{Addr: webhookAddr}); err != nil {
		return err
	}
	ex, err := executor.New(env.Config, executor.Options{
		DataDir: dataDir,
		Runner: executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
			return cli.Run(ctx, args[1:], env, stdout, stderr)
		}),
		MaxConcurrentPods: 4,
	})
	if err != nil {
		return err
	}
	if err := ex.SetupWithManager(mgr); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "operator stopped:", err)
		}
	}()
	return nil
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// namespace creates a namespace with what a user sets up before applying policies: the cycle
// service account bound to chainsync-cycle, and the record store's PersistentVolumeClaim.
func namespace(t *testing.T) string {
	t.Helper()
	g := NewWithT(t)
	ns := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name())))
	ns = strings.TrimRight(ns[:min(len(ns), 50)], "-")
	g.Expect(k8s.Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns,
		Labels: map[string]string{syncv1alpha1.CycleServiceAccountLabel: "true"}}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "chainsync-cycle"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "chainsync-cycle", Namespace: ns}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "records", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	})).To(Succeed())
	return ns
}

// claimDir is where the executor keeps a claim's files.
func claimDir(ns string) string { return executor.ClaimDir(dataDir, ns, "records") }

// hrExport writes the HR export the policies read. Each row belongs to the user whose email is
// in its owner column.
func hrExport(t *testing.T, ns string, people [][5]string) {
	t.Helper()
	dir := filepath.Join(claimDir(ns), "hr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("employee_id,email,first_name,last_name,owner\n")
	for _, p := range people {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", p[0], p[1], p[2], p[3], p[4])
	}
	if err := os.WriteFile(filepath.Join(dir, "employees.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// person is an employee who is their own user.
func person(i int) [5]string {
	email := fmt.Sprintf("user%03d@example.com", i)
	return [5]string{fmt.Sprintf("E%03d", i), email, fmt.Sprintf("First%d", i), fmt.Sprintf("Last%d", i), email}
}

// directory creates the SQLite directory the policies write into.
func directory(t *testing.T, ns string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(claimDir(ns), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(claimDir(ns), "directory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(`CREATE TABLE people (
		id INTEGER PRIMARY KEY AUTOINCREMENT, employee_number TEXT, given_name TEXT, family_name TEXT,
		mail TEXT, owner TEXT, updated_at TEXT, chainsync_origin TEXT)`)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// peopleIn lists the directory's rows as "mail given_name", sorted, duplicates kept.
func peopleIn(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT mail, given_name FROM people ORDER BY mail, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var mail, name string
		if err := rows.Scan(&mail, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, mail+" "+name)
	}
	return out
}

// hrPolicy syncs the HR export's people into the directory, one way, every 10 seconds.
func hrPolicy(ns, name string, mutate ...func(*syncv1alpha1.SyncPolicy)) *syncv1alpha1.SyncPolicy {
	p := &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
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
				MatchOn: []string{"email"},
			}},
			Schedule:    syncv1alpha1.Schedule{Interval: "10s"},
			Store:       syncv1alpha1.RecordStore{ClaimName: "records"},
			JobTemplate: syncv1alpha1.CycleJobTemplate{UsersPerJob: 50, Parallelism: 2, Concurrency: 8},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}
