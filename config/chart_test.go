package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/chainsync/chainsync/internal/testenv"
)

// helm builds (or reuses) the pinned helm with hack/helm.sh, as the tests' other tools come.
func helm(t *testing.T) (bin, repo string) {
	t.Helper()
	repo, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(repo, "hack", "helm.sh")).Output()
	if err != nil {
		t.Fatalf("hack/helm.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], repo
}

// helmTemplate renders the chart as `helm install -n chainsync-system` would apply it.
func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	bin, repo := helm(t)
	cmd := exec.Command(bin, append([]string{"template", "chainsync", filepath.Join(repo, "charts", "chainsync"),
		"--namespace", "chainsync-system", "--include-crds"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	return decodeObjects(t, out)
}

func decodeObjects(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding rendered objects: %v", err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, o)
		}
	}
}

func byKindAndName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return out
}

// The chart's files/ and crds/ are copies of config/ (`make chart` writes them): the chart and
// config/default cannot drift apart there.
func TestChartCopiesOfConfigAreCurrent(t *testing.T) {
	g := NewWithT(t)
	copies := map[string]string{
		"rbac/role.yaml":          "../charts/chainsync/files/manager-role.yaml",
		"rbac/cycle_role.yaml":    "../charts/chainsync/files/cycle-role.yaml",
		"prometheus/monitor.yaml": "../charts/chainsync/files/monitor.yaml",
	}
	crds, err := filepath.Glob("crd/bases/*.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crds).NotTo(BeEmpty())
	for _, crd := range crds {
		copies[crd] = filepath.Join("../charts/chainsync/crds", filepath.Base(crd))
	}
	inChart, err := filepath.Glob("../charts/chainsync/crds/*.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(inChart).To(HaveLen(len(crds)), "the chart has no CRD config/crd/bases lacks")
	for src, dst := range copies {
		want, err := os.ReadFile(src)
		g.Expect(err).NotTo(HaveOccurred())
		got, err := os.ReadFile(dst)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(got)).To(Equal(string(want)), "%s is a stale copy of config/%s: run make chart", dst, src)
	}
}

// With its defaults the chart renders, object for object and field for field, what
// `kubectl apply -k config/default` applies, but for the namespace (helm install
// --create-namespace makes it) and the annotation that keeps the records on uninstall.
func TestChartRendersWhatConfigDefaultApplies(t *testing.T) {
	g := NewWithT(t)
	bin, repo := helm(t)
	lint, err := exec.Command(bin, "lint", "--strict", filepath.Join(repo, "charts", "chainsync")).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(lint))

	chart := byKindAndName(helmTemplate(t))
	var kustomized []*unstructured.Unstructured
	for _, o := range render(t, "default") {
		if o.GetKind() != "Namespace" {
			kustomized = append(kustomized, o)
		}
	}
	want := byKindAndName(kustomized)
	pvc := chart["PersistentVolumeClaim chainsync-system/chainsync-records"]
	g.Expect(pvc).NotTo(BeNil())
	g.Expect(pvc.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	pvc.SetAnnotations(nil)
	g.Expect(keys(chart)).To(ConsistOf(keys(want)))
	for key, o := range want {
		g.Expect(chart[key].Object).To(Equal(o.Object), key)
	}
}

func keys(m map[string]*unstructured.Unstructured) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The values a cluster admin sets render objects the API server accepts, doing what they say.
func TestChartValuesRenderAndTheAPIServerAcceptsThem(t *testing.T) {
	g := NewWithT(t)
	objs := helmTemplate(t, "--set", "namespaces={team-a,team-b}", "--set", "records.existingClaim=team-records",
		"--set", "webhookReceiver.port=8080", "--set", "metrics.serviceMonitor.enabled=true", "--set", "logLevel=debug",
		"--set", "image.repository=registry.example.com/chainsync", "--set", "image.tag=v1.2.3", "--set", "replicas=3")
	all := byKindAndName(objs)
	g.Expect(all).NotTo(HaveKey("PersistentVolumeClaim chainsync-system/chainsync-records"), "an existing claim is used")
	g.Expect(all).NotTo(HaveKey("ClusterRole /chainsync-manager"), "the manager's role is granted per namespace")
	g.Expect(all).NotTo(HaveKey("ClusterRoleBinding /chainsync-manager"))
	for _, ns := range []string{"team-a", "team-b"} {
		g.Expect(all).To(HaveKey("Role " + ns + "/chainsync-manager"))
		g.Expect(all).To(HaveKey("RoleBinding " + ns + "/chainsync-manager"))
	}
	deployment := all["Deployment chainsync-system/chainsync-manager"]
	g.Expect(deployment).NotTo(BeNil())
	replicas, _, _ := unstructured.NestedFieldNoCopy(deployment.Object, "spec", "replicas")
	g.Expect(replicas).To(BeEquivalentTo(3))
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	container := containers[0].(map[string]any)
	g.Expect(container["image"]).To(Equal("registry.example.com/chainsync:v1.2.3"))
	args, _, _ := unstructured.NestedStringSlice(container, "args")
	g.Expect(args).To(ContainElements("--leader-elect", "--webhook-bind-address=:9292", "--namespace=team-a", "--namespace=team-b", "--zap-log-level=debug"))
	envVars, _, _ := unstructured.NestedSlice(container, "env")
	g.Expect(envVars).To(ContainElement(map[string]any{"name": "CHAINSYNC_IMAGE", "value": "registry.example.com/chainsync:v1.2.3"}),
		"cycle Jobs run the manager's image")
	receiver := all["Service chainsync-system/chainsync-webhook-receiver"]
	g.Expect(receiver).NotTo(BeNil())
	ports, _, _ := unstructured.NestedSlice(receiver.Object, "spec", "ports")
	g.Expect(ports[0].(map[string]any)["port"]).To(BeEquivalentTo(8080))
	containerPorts, _, _ := unstructured.NestedSlice(container, "ports")
	g.Expect(containerPorts).To(ContainElement(HaveKeyWithValue("name", ports[0].(map[string]any)["targetPort"])),
		"the receiver's Service targets a port of the manager")

	monitor := all["ServiceMonitor chainsync-system/chainsync-manager"]
	g.Expect(monitor).NotTo(BeNil())
	raw, err := json.Marshal(monitor.Object)
	g.Expect(err).NotTo(HaveOccurred())
	typed := &monitoringv1.ServiceMonitor{}
	g.Expect(yaml.UnmarshalStrict(raw, typed)).To(Succeed())
	g.Expect(typed.Spec.Endpoints).To(HaveLen(1))

	// The ServiceMonitor's CRD is not in envtest; every other object goes through a dry run.
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ns := range []string{"chainsync-system", "team-a", "team-b"} {
		g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	for _, o := range append(objs, helmTemplate(t)...) {
		if o.GetKind() == "ServiceMonitor" {
			continue
		}
		g.Expect(apply(ctx, env.Client, o, client.DryRunAll)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
}
