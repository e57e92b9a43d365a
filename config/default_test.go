package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/chainsync/chainsync/config"
	"github.com/chainsync/chainsync/internal/testenv"
)

// config/default is what `make deploy` applies: it must render, and an API server with the
// chainsync CRDs must accept every object of it (a server-side dry run checks the schemas,
// the RBAC objects and the CRDs themselves, without creating anything but the namespace).
func TestDefaultRendersAndTheAPIServerAcceptsEveryObject(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "default")

	var namespace, deployment *unstructured.Unstructured
	services := map[string]*unstructured.Unstructured{}
	var crdNames []string
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		switch o.GetKind() {
		case "Namespace":
			namespace = o
		case "CustomResourceDefinition":
			crdNames = append(crdNames, o.GetName())
		case "Deployment":
			deployment = o
		case "Service":
			services[o.GetName()] = o
		}
	}
	g.Expect(namespace).NotTo(BeNil(), "config/default creates its namespace")
	g.Expect(kinds).To(HaveKeyWithValue("Deployment", 1))
	g.Expect(kinds).To(HaveKeyWithValue("ServiceAccount", 2), "the manager's and the cycle Jobs'")
	g.Expect(kinds).To(HaveKeyWithValue("PersistentVolumeClaim", 1), "a volume for the records")
	g.Expect(kinds).To(HaveKeyWithValue("Service", 2), "the manager's metrics and its webhook receivers")
	expectServiceReachesPort(g, services["chainsync-manager-metrics"], deployment, "--metrics-bind-address")
	expectServiceReachesPort(g, services["chainsync-webhook-receiver"], deployment, "--webhook-bind-address")
	embedded, err := config.CRDs()
	g.Expect(err).NotTo(HaveOccurred())
	var embeddedNames []string
	for _, crd := range embedded {
		embeddedNames = append(embeddedNames, crd.Name)
	}
	g.Expect(crdNames).To(ConsistOf(embeddedNames), "the CRDs deployed are the ones chainsync local installs")
	for _, o := range objs {
		if o.GetNamespace() != "" {
			g.Expect(o.GetNamespace()).To(Equal(namespace.GetName()), "%s %s", o.GetKind(), o.GetName())
		}
	}

	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A dry run of an object in a namespace that does not exist fails, so the namespace is real.
	g.Expect(apply(ctx, env.Client, namespace)).To(Succeed())
	for _, o := range objs {
		g.Expect(apply(ctx, env.Client, o, client.DryRunAll)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
}

// A Service must select the manager's pods and target the container port that its flag (for
// example --metrics-bind-address) opens: a mistake in either leaves callers with no endpoints.
func expectServiceReachesPort(g Gomega, service, deployment *unstructured.Unstructured, flag string) {
	g.Expect(service).NotTo(BeNil(), "a Service for %s", flag)
	podLabels, _, _ := unstructured.NestedStringMap(deployment.Object, "spec", "template", "metadata", "labels")
	selector, _, _ := unstructured.NestedStringMap(service.Object, "spec", "selector")
	g.Expect(selector).NotTo(BeEmpty())
	for k, v := range selector {
		g.Expect(podLabels).To(HaveKeyWithValue(k, v), "the Service %s selects the manager's pods", service.GetName())
	}
	containers, _, _ := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	g.Expect(containers).To(HaveLen(1))
	container := containers[0].(map[string]any)
	args, _, _ := unstructured.NestedStringSlice(container, "args")
	containerPorts, _, _ := unstructured.NestedSlice(container, "ports")
	ports, _, _ := unstructured.NestedSlice(service.Object, "spec", "ports")
	g.Expect(ports).To(HaveLen(1))
	target := ports[0].(map[string]any)["targetPort"]
	var opened any
	for _, p := range containerPorts {
		if p := p.(map[string]any); p["name"] == target || p["containerPort"] == target {
			opened = p["containerPort"]
		}
	}
	g.Expect(opened).NotTo(BeNil(), "the Service %s targets a port of the manager's container", service.GetName())
	g.Expect(args).To(ContainElement(fmt.Sprintf("%s=:%v", flag, opened)))
}

func apply(ctx context.Context, c client.Client, o *unstructured.Unstructured, opts ...client.ApplyOption) error {
	opts = append(opts, client.FieldOwner("chainsync-install"), client.ForceOwnership)
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), opts...)
}

// render runs kustomize (in-process, so the test needs no kubectl) on a directory of config/.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	path, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		t.Fatalf("rendering config/%s: %v", dir, err)
	}
	raw, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		o := &unstructured.Unstructured{}
		err := dec.Decode(&o.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading rendered config/%s: %v", dir, err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, o)
		}
	}
}
