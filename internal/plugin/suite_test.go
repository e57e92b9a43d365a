package plugin_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/cli"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/testenv"
)

// One control plane for the package, and the local Job executor in place of a kubelet, so the
// Job of `records USER` really runs `chainsync records show`. No operator runs: the tests write
// the statuses it would, and assert what the plugin prints and writes.
var (
	env        *testenv.Env
	k8s        client.Client // direct, uncached
	kubeconfig string
	dataDir    string
	nsCounter  atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
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
	if dataDir, err = os.MkdirTemp("", "chainsync-plugin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dataDir)
	if kubeconfig, err = writeKubeconfig(dataDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ex, err := executor.New(env.Config, executor.Options{
		DataDir: dataDir,
		Runner: executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
			return cli.Run(ctx, args[1:], env, stdout, stderr)
		}),
	})
	if err == nil {
		err = ex.SetupWithManager(mgr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "executor stopped:", err)
		}
	}()
	return m.Run()
}

// writeKubeconfig writes a kubeconfig file for the test control plane's admin, as a person's
// laptop has one.
func writeKubeconfig(dir string) (string, error) {
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// chainsync runs the plugin's command line as a person would, against the test control plane.
func chainsync(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut strings.Builder
	// After the command's name: when completing, the last word is the one being completed.
	at := 1
	if args[0] == "__complete" {
		at = 2
	}
	args = append(append(args[:at:at], "--kubeconfig="+kubeconfig), args[at:]...)
	code = cli.Run(ctx(t), args, nil, &out, &errOut)
	return out.String(), errOut.String(), code
}

// namespace creates a namespace of the test's own.
func namespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name())))
	ns = strings.TrimRight(ns[:min(len(ns), 50)], "-")
	NewWithT(t).Expect(k8s.Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	return ns
}

// csvPolicy is a valid policy syncing a csv export into a sqlite file, its store on the claim
// "records" under subPath "store".
func csvPolicy(ns, name string) *syncv1alpha1.SyncPolicy {
	return &syncv1alpha1.SyncPolicy{
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
				Target: syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"},
					Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}},
				Fields:  []syncv1alpha1.FieldMapping{{Source: "email", Target: "mail"}},
				MatchOn: []string{"email"},
			}},
			Schedule: syncv1alpha1.Schedule{Interval: "1h"},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records", SubPath: "store"},
		},
	}
}

// userOn creates a SyncUser on a policy or (chain non-empty) a chain, then writes status as the
// operator would, through the status subresource.
func userOn(t *testing.T, ns, name, policy, chain string, status syncv1alpha1.SyncUserStatus) *syncv1alpha1.SyncUser {
	t.Helper()
	g := NewWithT(t)
	u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: name + "@example.com"}}}
	if chain != "" {
		u.Spec.ChainRef = &syncv1alpha1.ChainReference{Name: chain}
	} else {
		u.Spec.PolicyRef = &syncv1alpha1.PolicyReference{Name: policy}
	}
	g.Expect(k8s.Create(ctx(t), u)).To(Succeed())
	u.Status = status
	for i := range u.Status.Conditions {
		u.Status.Conditions[i].LastTransitionTime = metav1.Now()
	}
	g.Expect(k8s.Status().Update(ctx(t), u)).To(Succeed())
	return u
}

func condition(kind, status, reason, message string) metav1.Condition {
	return metav1.Condition{Type: kind, Status: metav1.ConditionStatus(status), Reason: reason, Message: message}
}

// managers lists who wrote obj, as managedFields records them.
func managers(obj client.Object) []string {
	var names []string
	for _, f := range obj.GetManagedFields() {
		names = append(names, f.Manager)
	}
	return names
}
