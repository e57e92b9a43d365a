package manager_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// The manager runs as config/default deploys it: as the chainsync-manager ServiceAccount with
// nothing but config/default's RBAC, so the test also proves that RBAC lets it review scrapers'
// tokens and elect a leader.
func TestManagerServesProbesAndAuthorisedMetricsAndLeadsAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	deployed := renderDefault(t)
	namespace := ""
	for _, o := range deployed {
		if o.GetKind() == "Namespace" {
			namespace = o.GetName()
		}
	}
	g.Expect(namespace).NotTo(BeEmpty(), "config/default creates its namespace")
	for _, want := range []struct{ kind, name string }{
		{"Namespace", namespace},
		{"ServiceAccount", "chainsync-manager"},
		{"ClusterRole", "chainsync-metrics-auth"},
		{"ClusterRoleBinding", "chainsync-metrics-auth"},
		{"Role", "chainsync-leader-election"},
		{"RoleBinding", "chainsync-leader-election"},
		{"ClusterRole", "chainsync-metrics-reader"},
	} {
		o := find(deployed, want.kind, want.name)
		g.Expect(o).NotTo(BeNil(), "config/default has %s %s", want.kind, want.name)
		g.Expect(env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o),
			client.FieldOwner("chainsync-test"), client.ForceOwnership)).To(Succeed(), "%s %s", want.kind, want.name)
	}

	// A scraper bound to chainsync-metrics-reader, and a stranger bound to nothing.
	scraper, stranger := serviceAccount(t, "metrics-scraper"), serviceAccount(t, "stranger")
	create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "chainsync-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: scraper.Namespace, Name: scraper.Name}},
	})
	// The manager caches a denial for half a minute: scrape only once the API server's RBAC
	// has caught up with the binding.
	g.Eventually(func() bool { return mayGetMetrics(t, scraper) }, 20*time.Second).Should(BeTrue())

	asManager := rest.AnonymousClientConfig(env.Config)
	asManager.BearerToken = token(t, find(deployed, "ServiceAccount", "chainsync-manager"))
	probes, metrics := freeAddr(t), freeAddr(t)
	mgr, err := manager.New(asManager, manager.Options{
		MetricsAddr:             metrics,
		ProbeAddr:               probes,
		LeaderElection:          true,
		LeaderElectionNamespace: namespace,
	})
	g.Expect(err).NotTo(HaveOccurred())
	mgrCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mgrCtx) }()

	g.Eventually(func() int { return status(fmt.Sprintf("http://%s/healthz", probes)) }, 20*time.Second).Should(Equal(http.StatusOK))
	g.Eventually(func() int { return status(fmt.Sprintf("http://%s/readyz", probes)) }, 20*time.Second).Should(Equal(http.StatusOK))

	url := fmt.Sprintf("https://%s/metrics", metrics)
	g.Eventually(func() int { code, _ := scrape(url, ""); return code }, 20*time.Second).
		Should(Equal(http.StatusUnauthorized), "a request without a token")
	// Refused, but with 500: the API server's TokenReview of a malformed token carries an error,
	// which controller-runtime's filter reports as a failure to authenticate, not as a stranger.
	code, body := scrape(url, "not-a-token")
	g.Expect(code).To(BeNumerically(">=", 400), "a token the API server does not know")
	g.Expect(body).NotTo(ContainSubstring("leader_election_master_status"))
	g.Eventually(func() int { code, _ := scrape(url, token(t, stranger)); return code }, 20*time.Second).
		Should(Equal(http.StatusForbidden), "a token whose account may not get /metrics")
	g.Eventually(func(g Gomega) {
		code, body := scrape(url, token(t, scraper))
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(ContainSubstring("leader_election_master_status"))
	}, 20*time.Second).Should(Succeed(), "a token bound to chainsync-metrics-reader")
	g.Expect(status(fmt.Sprintf("http://%s/metrics", metrics))).To(Equal(http.StatusBadRequest), "plain HTTP on the metrics port")

	var lease coordinationv1.Lease
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: manager.LeaderElectionID}, &lease)
	}, 20*time.Second).Should(Succeed())
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())

	cancel()
	g.Eventually(stopped, 20*time.Second).Should(Receive(BeNil()), "the manager did not stop cleanly")
	// The Lease is released on a clean stop, so a new replica takes over at once.
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&lease), &lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).To(SatisfyAny(BeNil(), HaveValue(BeEmpty())))
}

// --metrics-secure=false: plain HTTP, no token asked for.
func TestManagerServesPlainMetricsWhenInsecure(t *testing.T) {
	g := NewWithT(t)
	metrics := freeAddr(t)
	mgr, err := manager.New(env.Config, manager.Options{
		MetricsAddr:             metrics,
		InsecureMetrics:         true,
		ProbeAddr:               "0",
		LeaderElection:          true,
		LeaderElectionNamespace: "default",
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()

	g.Eventually(func(g Gomega) {
		code, body := scrape(fmt.Sprintf("http://%s/metrics", metrics), "")
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(ContainSubstring("leader_election_master_status"))
	}, 20*time.Second).Should(Succeed())

	cancel()
	g.Eventually(stopped, 20*time.Second).Should(Receive(BeNil()), "the manager did not stop cleanly")
}

// renderDefault runs kustomize on config/default, in-process, as `make deploy` would.
func renderDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).
		Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatalf("rendering config/default: %v", err)
	}
	raw, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("reading rendered config/default: %v", err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, o)
		}
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func serviceAccount(t *testing.T, name string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	create(t, sa)
	return sa
}

// token mints a bearer token for a ServiceAccount, as the kubelet does for a pod.
func token(t *testing.T, sa client.Object) string {
	t.Helper()
	request := &authenticationv1.TokenRequest{}
	account := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa.GetNamespace(), Name: sa.GetName()}}
	if err := env.Client.SubResource("token").Create(context.Background(), account, request); err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", sa.GetNamespace(), sa.GetName(), err)
	}
	return request.Status.Token
}

func mayGetMetrics(t *testing.T, sa *corev1.ServiceAccount) bool {
	t.Helper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:                  fmt.Sprintf("system:serviceaccount:%s:%s", sa.Namespace, sa.Name),
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
	}}
	if err := env.Client.Create(context.Background(), review); err != nil {
		t.Fatalf("reviewing access to /metrics: %v", err)
	}
	return review.Status.Allowed
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// metricsClient skips verifying the server: the manager's metrics certificate is self-signed.
var metricsClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// scrape gets url with the bearer token, if any; code 0 means no HTTP answer.
func scrape(url, bearer string) (code int, body string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
