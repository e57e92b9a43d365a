package v1alpha1_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func enrolmentObject(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte("apiVersion: sync.chainsync.dev/v1alpha1\nkind: SyncEnrolment\nmetadata: {name: e, namespace: default}\nspec:\n"+spec), &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestEnrolmentsAreCheckedOnAdmission(t *testing.T) {
	const source = `  source: {policyRef: {name: hr}, collection: employees.csv, keyFields: [id], identity: {email: email}}` + "\n"
	for _, tc := range []struct{ name, spec, want string }{
		{"no placement", source, "set exactly one of policyRef or chainRef"},
		{"both placements", "  policyRef: {name: p}\n  chainRef: {name: c}\n" + source, "set exactly one of policyRef or chainRef"},
		{"no members anywhere", "  policyRef: {name: p}\n", "set at least one of users, selector or source"},
		{"a source without identity fields", "  policyRef: {name: p}\n  source: {policyRef: {name: hr}, collection: f, keyFields: [id], identity: {}}\n",
			"identity needs an email or a name field"},
		{"a source without key fields", "  policyRef: {name: p}\n  source: {policyRef: {name: hr}, collection: f, keyFields: [], identity: {email: e}}\n",
			"spec.source.keyFields"},
		{"an interval that is no duration", "  policyRef: {name: p}\n  source: {policyRef: {name: hr}, collection: f, keyFields: [id], identity: {email: e}, interval: soon}\n",
			"spec.source.interval"},
		{"an unknown removal action", "  policyRef: {name: p}\n  users: [{email: a@example.com}]\n  removals: {action: Purge}\n", `Unsupported value: "Purge"`},
		{"a listed user with a bad email", "  policyRef: {name: p}\n  users: [{email: not an address}]\n", "spec.users[0].email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := env.Client.Create(ctx(t), enrolmentObject(t, tc.spec), client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid enrolment")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
	t.Run("defaults", func(t *testing.T) {
		g := NewWithT(t)
		obj := enrolmentObject(t, "  chainRef: {name: c}\n"+source)
		g.Expect(env.Client.Create(ctx(t), obj, client.DryRunAll)).To(Succeed())
		field := func(path ...string) any {
			v, _, err := unstructured.NestedFieldNoCopy(obj.Object, path...)
			g.Expect(err).NotTo(HaveOccurred())
			return v
		}
		g.Expect(field("spec", "source", "interval")).To(Equal("10m"))
		g.Expect(field("spec", "source", "endpoint")).To(Equal("Source"))
		g.Expect(field("spec", "removals", "action")).To(Equal("Suspend"), "the removal guard is visible in kubectl get -o yaml")
		g.Expect(field("spec", "removals", "maxCount")).To(BeEquivalentTo(10))
		g.Expect(field("spec", "removals", "maxPercent")).To(BeEquivalentTo(10))
		g.Expect(field("spec", "recordsOnDelete")).To(Equal("Retain"))
	})
}
