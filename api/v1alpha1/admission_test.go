package v1alpha1_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/testenv"
)

// env is one control plane for the whole package: starting one takes seconds, not milliseconds.
var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
	}
	os.Exit(code)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

const basePolicy = `
apiVersion: sync.chainsync.dev/v1alpha1
kind: SyncPolicy
metadata: {name: base, namespace: default}
spec:
  source: {name: hr, connector: csv, csv: {directory: {path: exports}}}
  target: {name: directory, connector: sqlite, sqlite: {file: {path: directory.db}}}
  entities:
  - name: people
    source: {collection: people.csv, keyFields: [id]}
    target: {collection: people, keyFields: [id]}
    fields: [{source: name, target: name}, {source: email, target: mail}]
  store: {claimName: records}
`

const baseUser = `
apiVersion: sync.chainsync.dev/v1alpha1
kind: SyncUser
metadata: {name: base, namespace: default}
spec:
  identity: {email: ada@example.com}
  policyRef: {name: base}
`

const baseChain = `
apiVersion: sync.chainsync.dev/v1alpha1
kind: OnboardingChain
metadata: {name: base, namespace: default}
spec:
  steps:
  - {name: import, policy: import}
  - {name: bau, policy: bau}
`

func TestSamplesAreAccepted(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "sync_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(files).NotTo(BeEmpty())

	kinds := map[string]bool{}
	for _, file := range files {
		for _, obj := range decodeAll(t, file) {
			obj.SetNamespace("default")
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			g.Expect(err).NotTo(HaveOccurred(), "%s: %s %s", filepath.Base(file), obj.GetKind(), obj.GetName())
			kinds[obj.GetKind()] = true
		}
	}
	g.Expect(kinds).To(HaveKey("SyncPolicy"))
	g.Expect(kinds).To(HaveKey("OnboardingChain"))
	g.Expect(kinds).To(HaveKey("SyncUser"))
}

func TestInvalidObjectsAreRejected(t *testing.T) {
	cases := []struct {
		name  string
		base  string
		patch string // RFC 6902 JSON patch applied to base
		want  string // part of the API server's message
	}{
		// SyncPolicy: enums and bounds.
		{"unknown direction", basePolicy, `[{"op":"add","path":"/spec/direction","value":"Sideways"}]`, `spec.direction: Unsupported value: "Sideways"`},
		{"unknown conflict rule", basePolicy, `[{"op":"add","path":"/spec/conflictResolution","value":"Latest"}]`, `spec.conflictResolution: Unsupported value: "Latest"`},
		{"unknown connector", basePolicy, `[{"op":"replace","path":"/spec/source/connector","value":"excel"}]`, `spec.source.connector: Unsupported value: "excel"`},
		{"endpoint name not a DNS label", basePolicy, `[{"op":"replace","path":"/spec/source/name","value":"HR_Export"}]`, `spec.source.name: Invalid value: "HR_Export"`},
		{"no entities", basePolicy, `[{"op":"replace","path":"/spec/entities","value":[]}]`, `spec.entities: Invalid value: 0: spec.entities in body should have at least 1 items`},
		{"no key fields", basePolicy, `[{"op":"replace","path":"/spec/entities/0/source/keyFields","value":[]}]`, `spec.entities[0].source.keyFields in body should have at least 1 items`},
		{"percent over 100", basePolicy, `[{"op":"add","path":"/spec/deletes","value":{"propagate":true,"maxPercent":150}}]`, `spec.deletes.maxPercent: Invalid value: 150: spec.deletes.maxPercent in body should be less than or equal to 100`},
		{"no users per job", basePolicy, `[{"op":"add","path":"/spec/jobTemplate","value":{"usersPerJob":0}}]`, `spec.jobTemplate.usersPerJob in body should be greater than or equal to 1`},
		{"jitter over 50", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"interval":"1h","jitterPercent":80}}]`, `spec.schedule.jitterPercent in body should be less than or equal to 50`},
		{"interval not a duration", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"interval":"5 minutes"}}]`, `spec.schedule.interval: Invalid value: "5 minutes"`},
		{"cron not five fields", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"cron":"every day"}}]`, `spec.schedule.cron: Invalid value: "every day"`},
		{"scope names no identity value", basePolicy, `[{"op":"add","path":"/spec/entities/0/source/scope","value":[{"field":"owner","identity":"phone"}]}]`, `spec.entities[0].source.scope[0].identity: Invalid value: "phone"`},
		{"no record store", basePolicy, `[{"op":"remove","path":"/spec/store"}]`, `spec.store: Required value`},
		{"target where without scope", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"db","connector":"sqlite","sqlite":{"file":{"path":"a.db"}}}},{"op":"replace","path":"/spec/entities/0/target","value":{"collection":"people","keyFields":["id"],"where":"owner = @email"}}]`, `entities[].target.where needs target.scope too`},
		{"secret key leaving the mount", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"db","connector":"postgres","postgres":{"host":"db","database":"app","credentialsSecretRef":{"name":"db","passwordKey":"../../volumes/records/records.db"}}}}]`, `spec.target.postgres.credentialsSecretRef.passwordKey: Invalid value: "../../volumes/records/records.db"`},
		{"secret name not a DNS name", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"db","connector":"postgres","postgres":{"host":"db","database":"app","credentialsSecretRef":{"name":"../db"}}}}]`, `spec.target.postgres.credentialsSecretRef.name: Invalid value: "../db"`},
		{"postgres without credentials", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"db","connector":"postgres","postgres":{"host":"db","database":"app"}}}]`, `spec.target.postgres.credentialsSecretRef: Required value`},

		// SyncPolicy: cross-field rules (CEL).
		{"connector block missing", basePolicy, `[{"op":"replace","path":"/spec/source/connector","value":"sqlite"}]`, `connector is sqlite, so the sqlite block must be set`},
		{"two connector blocks", basePolicy, `[{"op":"add","path":"/spec/source/sqlite","value":{"file":{"path":"a.db"}}}]`, `spec.source: Invalid value: set exactly one of csv, sqlite, postgres, scim, ldap, http, carddav or caldav`},
		{"ldap startTLS on ldaps", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"dir","connector":"ldap","ldap":{"url":"ldaps://ldap.example.com","startTLS":true,"baseDN":"dc=example,dc=com","collections":[{"name":"people","objectClasses":["inetOrgPerson"],"rdnAttribute":"uid"}]}}}]`, `startTLS is for ldap:// URLs`},
		{"ldap url not ldap", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"dir","connector":"ldap","ldap":{"url":"https://ldap.example.com","baseDN":"dc=example,dc=com","collections":[{"name":"people","objectClasses":["inetOrgPerson"],"rdnAttribute":"uid"}]}}}]`, `spec.target.ldap.url: Invalid value: "https://ldap.example.com"`},
		{"ldap where", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"dir","connector":"ldap","ldap":{"url":"ldap://ldap.example.com","baseDN":"dc=example,dc=com","collections":[{"name":"people","objectClasses":["inetOrgPerson"],"rdnAttribute":"uid"}]}}},{"op":"add","path":"/spec/entities/0/target/where","value":"uid = @email"},{"op":"add","path":"/spec/entities/0/target/scope","value":[{"field":"mail","identity":"email"}]}]`, `entities[].target.where needs an SQL connector`},
		{"scim with two kinds of auth", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"app","connector":"scim","scim":{"baseURL":"https://app.example.com/scim/v2","bearerTokenSecretRef":{"name":"app","key":"token"},"basicAuthSecretRef":{"name":"app"}}}}]`, `set exactly one of bearerTokenSecretRef and basicAuthSecretRef`},
		{"scim base URL not http(s)", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"app","connector":"scim","scim":{"baseURL":"file:///etc/passwd","bearerTokenSecretRef":{"name":"app","key":"token"}}}}]`, `spec.target.scim.baseURL: Invalid value: "file:///etc/passwd"`},
		{"scim deletes unknown", basePolicy, `[{"op":"replace","path":"/spec/target","value":{"name":"app","connector":"scim","scim":{"baseURL":"https://app.example.com/scim/v2","bearerTokenSecretRef":{"name":"app","key":"token"},"deletes":"Purge"}}}]`, `spec.target.scim.deletes: Unsupported value: "Purge"`},
		{"same endpoint twice", basePolicy, `[{"op":"replace","path":"/spec/target/name","value":"hr"}]`, `source.name and target.name must differ`},
		{"duplicate entity names", basePolicy, `[{"op":"copy","from":"/spec/entities/0","path":"/spec/entities/1"}]`, `spec.entities: Invalid value: entity names must be unique`},
		{"two mappings into one field", basePolicy, `[{"op":"replace","path":"/spec/entities/0/fields/1/target","value":"name"}]`, `spec.entities[0]: Invalid value: two field mappings write the same target field`},
		{"matchOn outside the mapping", basePolicy, `[{"op":"add","path":"/spec/entities/0/matchOn","value":["phone"]}]`, `every matchOn field must be the source of a field mapping`},
		{"interval and cron", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"interval":"1h","cron":"@daily"}}]`, `set either schedule.interval or schedule.cron, not both`},
		{"complete cycles too often", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"interval":"1h","completeEvery":"30s"}}]`, `completeEvery must be at least 1m`},
		{"interval too short", basePolicy, `[{"op":"add","path":"/spec/schedule","value":{"interval":"5s"}}]`, `spec.schedule.interval: Invalid value: "5s": interval must be at least 10s`},
		{"NewestWins without modification times", basePolicy, `[{"op":"add","path":"/spec/conflictResolution","value":"NewestWins"}]`, `conflictResolution NewestWins needs source.modifiedField and target.modifiedField on every entity`},
		{"SQL where on a csv endpoint", basePolicy, `[{"op":"add","path":"/spec/entities/0/source/where","value":"owner = @email"}]`, `entities[].source.where needs an SQL connector`},
		{"absolute path", basePolicy, `[{"op":"replace","path":"/spec/source/csv/directory/path","value":"/etc"}]`, `path must be relative to the claim and must not contain '..'`},
		{"path escaping the claim", basePolicy, `[{"op":"replace","path":"/spec/source/csv/directory/path","value":"exports/../../etc"}]`, `path must be relative to the claim and must not contain '..'`},
		{"store subPath escaping the claim", basePolicy, `[{"op":"add","path":"/spec/store/subPath","value":"../other"}]`, `subPath must be relative to the claim and must not contain '..'`},

		// SyncUser.
		{"user on a policy and a chain", baseUser, `[{"op":"add","path":"/spec/chainRef","value":{"name":"onboarding"}}]`, `set exactly one of policyRef or chainRef`},
		{"startAt naming no step", baseUser, `[{"op":"remove","path":"/spec/policyRef"},{"op":"add","path":"/spec/chainRef","value":{"name":"onboarding","startAt":"Import Step"}}]`, `spec.chainRef.startAt: Invalid value: "Import Step"`},
		{"user on nothing", baseUser, `[{"op":"remove","path":"/spec/policyRef"}]`, `set exactly one of policyRef or chainRef`},
		{"user without identity", baseUser, `[{"op":"replace","path":"/spec/identity","value":{"attributes":{"team":"a"}}}]`, `identity needs an email or a name`},
		{"malformed email", baseUser, `[{"op":"replace","path":"/spec/identity/email","value":"ada at example.com"}]`, `spec.identity.email: Invalid value: "ada at example.com"`},
		{"unknown records policy", baseUser, `[{"op":"add","path":"/spec/recordsOnDelete","value":"Archive"}]`, `spec.recordsOnDelete: Unsupported value: "Archive"`},
		{"bad attribute name", baseUser, `[{"op":"add","path":"/spec/identity/attributes","value":{"cost center!":"1"}}]`, `attribute names must be at most 63 letters`},

		// OnboardingChain.
		{"chain without steps", baseChain, `[{"op":"replace","path":"/spec/steps","value":[]}]`, `spec.steps in body should have at least 1 items`},
		{"duplicate step names", baseChain, `[{"op":"replace","path":"/spec/steps/1/name","value":"import"}]`, `step names must be unique`},
		{"policy on two steps", baseChain, `[{"op":"replace","path":"/spec/steps/1/policy","value":"import"}]`, `a policy can be only one step of a chain`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := patched(t, tc.base, tc.patch)
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid %s", obj.GetKind())
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestDefaultsAreVisibleOnCreatedObjects(t *testing.T) {
	g := NewWithT(t)
	c := env.Client

	policy := decodeOne(t, basePolicy)
	policy.SetName("defaults")
	g.Expect(c.Create(ctx(t), policy)).To(Succeed())
	var got syncv1alpha1.SyncPolicy
	g.Expect(c.Get(ctx(t), client.ObjectKeyFromObject(policy), &got)).To(Succeed())
	s := got.Spec
	g.Expect(s.Direction).To(Equal(syncv1alpha1.OneWay))
	g.Expect(s.ConflictResolution).To(Equal(syncv1alpha1.SourceWins))
	g.Expect(s.Schedule.Interval).To(Equal("15m"))
	g.Expect(s.Schedule.JitterPercent).To(BeEquivalentTo(10))
	g.Expect(s.Schedule.CompleteEvery).To(Equal("24h"))
	g.Expect(s.Deletes.Propagate).To(BeFalse())
	g.Expect(s.Deletes.MaxPercent).To(HaveValue(BeEquivalentTo(10)))
	g.Expect(s.Deletes.MinCount).To(HaveValue(BeEquivalentTo(5)), "the percentage applies above five deletes")
	g.Expect(s.JobTemplate.UsersPerJob).To(BeEquivalentTo(50))
	g.Expect(s.JobTemplate.Parallelism).To(BeEquivalentTo(1))
	g.Expect(s.JobTemplate.Concurrency).To(BeEquivalentTo(4))
	g.Expect(s.JobTemplate.ServiceAccountName).To(Equal("chainsync-cycle"))
	g.Expect(s.JobTemplate.BackoffLimit).To(HaveValue(BeEquivalentTo(2)))
	g.Expect(s.JobTemplate.TTLSecondsAfterFinished).To(HaveValue(BeEquivalentTo(3600)))
	g.Expect(s.Source.CSV.Delimiter).To(Equal(","))
	g.Expect(s.Source.CSV.Encoding).To(Equal("utf-8"))

	// A Go client sends a typed object; defaults must fill what it leaves out, and a cron
	// schedule must not be given the default interval as well.
	typed := syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "typed", Namespace: "default"},
		Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "crm", Connector: syncv1alpha1.PostgresConnector, Postgres: &syncv1alpha1.PostgresEndpoint{
				Host: "crm-db", Database: "crm", CredentialsSecretRef: syncv1alpha1.CredentialsSecretReference{Name: "crm-db"},
			}},
			Target:   got.Spec.Target,
			Entities: got.Spec.Entities,
			Schedule: syncv1alpha1.Schedule{Cron: "@daily"},
			Store:    syncv1alpha1.RecordStore{ClaimName: "records"},
		},
	}
	g.Expect(c.Create(ctx(t), &typed)).To(Succeed())
	g.Expect(c.Get(ctx(t), client.ObjectKeyFromObject(&typed), &got)).To(Succeed())
	g.Expect(got.Spec.Schedule.Interval).To(BeEmpty())
	g.Expect(got.Spec.Schedule.Cron).To(Equal("@daily"))
	g.Expect(got.Spec.JobTemplate.UsersPerJob).To(BeEquivalentTo(50))
	pg := got.Spec.Source.Postgres
	g.Expect(pg.Port).To(BeEquivalentTo(5432))
	g.Expect(pg.Schema).To(Equal("public"))
	g.Expect(pg.SSLMode).To(BeEquivalentTo("require"))
	g.Expect(pg.CredentialsSecretRef.UsernameKey).To(Equal("username"))
	g.Expect(pg.CredentialsSecretRef.PasswordKey).To(Equal("password"))

	user := decodeOne(t, baseUser)
	user.SetName("defaults")
	g.Expect(c.Create(ctx(t), user)).To(Succeed())
	var gotUser syncv1alpha1.SyncUser
	g.Expect(c.Get(ctx(t), client.ObjectKeyFromObject(user), &gotUser)).To(Succeed())
	g.Expect(gotUser.Spec.RecordsOnDelete).To(Equal(syncv1alpha1.RetainRecords))
	g.Expect(gotUser.Spec.Suspend).To(BeFalse())
}

func TestPrinterColumnsAreServed(t *testing.T) {
	g := NewWithT(t)
	c := env.Client

	user := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "printed", Namespace: "default"},
		Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "ada@example.com"},
			ChainRef: &syncv1alpha1.ChainReference{Name: "onboarding"},
		},
	}
	g.Expect(c.Create(ctx(t), user)).To(Succeed())
	user.Status = syncv1alpha1.SyncUserStatus{
		Policy: "hr-import",
		Step:   "import",
		Conditions: []metav1.Condition{{
			Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: syncv1alpha1.ProgressingReason,
			Message: "Cycle 2 on step import running", LastTransitionTime: metav1.Now(),
		}},
	}
	g.Expect(c.Status().Update(ctx(t), user)).To(Succeed())

	table := getTable(t, "syncusers")
	g.Expect(columnNames(table)).To(Equal([]string{"Name", "Ready", "Step", "Policy", "Status", "Age"}))
	row := rowFor(table, "printed")
	g.Expect(row).NotTo(BeNil(), "the SyncUser is missing from the table")
	g.Expect(row[1:5]).To(Equal([]any{"False", "import", "hr-import", "Cycle 2 on step import running"}))

	g.Expect(columnNames(getTable(t, "syncpolicies"))).To(Equal([]string{"Name", "Ready", "Synced", "Assigned", "Status", "Age"}))
	g.Expect(columnNames(getTable(t, "onboardingchains"))).To(Equal([]string{"Name", "Ready", "Completed", "Users", "Status", "Age"}))
}

func TestKindsAreInTheChainsyncCategoryWithShortNames(t *testing.T) {
	g := NewWithT(t)
	resources, err := discoveryResources(t)
	g.Expect(err).NotTo(HaveOccurred())
	for plural, short := range map[string]string{"syncpolicies": "sp", "onboardingchains": "chain", "syncusers": "su"} {
		g.Expect(resources[plural].ShortNames).To(ConsistOf(short), plural)
		g.Expect(resources[plural].Categories).To(ContainElement("chainsync"), plural)
	}
}

func discoveryResources(t *testing.T) (map[string]metav1.APIResource, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		return nil, err
	}
	list, err := dc.ServerResourcesForGroupVersion(syncv1alpha1.GroupVersion.String())
	if err != nil {
		return nil, err
	}
	out := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		out[r.Name] = r
	}
	return out, nil
}

func restClient(t *testing.T) rest.Interface {
	cfg := rest.CopyConfig(env.Config)
	cfg.GroupVersion = &syncv1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// getTable asks the API server for what `kubectl get` prints: the server-side Table.
func getTable(t *testing.T, plural string) *metav1.Table {
	raw, err := restClient(t).Get().
		AbsPath("/apis/sync.chainsync.dev/v1alpha1/namespaces/default", plural).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		Do(ctx(t)).Raw()
	if err != nil {
		t.Fatalf("getting %s as a table: %v", plural, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	return &table
}

func columnNames(table *metav1.Table) []string {
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	return names
}

func rowFor(table *metav1.Table, name string) []any {
	for _, r := range table.Rows {
		if len(r.Cells) > 0 && r.Cells[0] == name {
			return r.Cells
		}
	}
	return nil
}

func patched(t *testing.T, base, patch string) *unstructured.Unstructured {
	t.Helper()
	doc, err := yaml.YAMLToJSON([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch([]byte(patch))
	if err != nil {
		t.Fatalf("bad test patch %s: %v", patch, err)
	}
	doc, err = p.Apply(doc)
	if err != nil {
		t.Fatalf("applying test patch %s: %v", patch, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(doc); err != nil {
		t.Fatal(err)
	}
	return obj
}

func decodeOne(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	return patched(t, doc, `[]`)
}

func decodeAll(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(obj.Object) > 0 && !strings.HasPrefix(obj.GetKind(), "List") {
			objs = append(objs, obj)
		}
	}
}
