package local_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	_ "modernc.org/sqlite"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/local"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
	"github.com/chainsync/chainsync/internal/slapd"
	"github.com/chainsync/chainsync/internal/testenv"
)

// The demo, as someone trying chainsync sees it: `chainsync local` (the built binary) runs until
// every demo user has completed its chain, the sqlite one and the one through the demo's own
// directory (slapd) and application (SCIM); kubectl, through the kubeconfig it wrote, shows the
// users and the chains, and the directory and the application, reached with the URLs and
// credentials the demo applied, hold the users; SIGTERM stops it and leaves no process behind
// (slapd included); a second start finds everything as it was and creates nothing twice; a start
// after a SIGKILL stops what the killed run left.
func TestLocalRunsTheDemoToCompletionStopsCleanlyAndKeepsItsData(t *testing.T) {
	g := NewWithT(t)
	if slapd.FindInstalled() == "" {
		t.Fatalf("OpenLDAP's slapd is not installed, and the demo's directory chain needs it: %s", slapd.InstallHint)
	}
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	assets, err := testenv.Assets(root)
	g.Expect(err).NotTo(HaveOccurred())
	bin := buildChainsync(t, root)
	dataDir := filepath.Join(t.TempDir(), "local")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")

	run := startLocal(t, bin, assets, "--data-dir", dataDir, "--kubeconfig", kubeconfig)
	g.Eventually(run.output).WithTimeout(3*time.Minute).Should(ContainSubstring("export KUBECONFIG="+kubeconfig+"\n"),
		"the kubeconfig path is printed")
	c := clientFor(t, kubeconfig)
	g.Eventually(func(g Gomega) {
		chain := &syncv1alpha1.OnboardingChain{}
		g.Expect(c.Get(context.Background(), key(local.DemoChain), chain)).To(Succeed())
		g.Expect(chain.Status.Users).To(BeEquivalentTo(5))
		g.Expect(chain.Status.CompletedUsers).To(BeEquivalentTo(5))
		g.Expect(c.Get(context.Background(), key(local.DirectoryChain), chain)).To(Succeed())
		g.Expect(chain.Status.Users).To(BeEquivalentTo(3))
		g.Expect(chain.Status.CompletedUsers).To(BeEquivalentTo(3))
	}).WithTimeout(4*time.Minute).WithPolling(time.Second).Should(Succeed(), "output so far:\n%s", run.output)
	g.Expect(run.output()).To(ContainSubstring("chain directory-and-app-onboarding: HR new hires (csv) -> directory (ldap) -> app (scim), live"))

	if kubectl := filepath.Join(assets, "kubectl"); isExecutable(kubectl) {
		out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "syncusers", "-n", local.DemoNamespace, "--no-headers").CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		g.Expect(lines).To(HaveLen(8))
		g.Expect(lines).To(HaveEach(Or(MatchRegexp(`\sTrue\s+business-as-usual\s+hr-bau\s+Completed`),
			MatchRegexp(`^new-hires-(john-backus|frances-allen|radia-perlman)-[0-9a-f]{8}\s+True\s+application\s+directory-to-app\s+Completed`))))
	}
	enrolment := &syncv1alpha1.SyncEnrolment{}
	g.Expect(c.Get(context.Background(), key("new-hires"), enrolment)).To(Succeed())
	g.Expect(enrolment.Status.Managed).To(BeEquivalentTo(3), "the new hires are enrolled from the HR export")
	g.Expect(enrolment.Status.Skipped).To(BeZero())
	g.Eventually(run.output).WithTimeout(time.Minute).Should(MatchRegexp(`chain chainsync-demo/employee-onboarding completed=5/5`), "the progress shows the chain complete")
	g.Eventually(run.output).WithTimeout(time.Minute).Should(MatchRegexp(`chain chainsync-demo/directory-and-app-onboarding completed=3/3`))
	g.Expect(directoryMails(t, dataDir)).To(ConsistOf("ada.lovelace@example.com", "alan.turing@example.com",
		"edsger.dijkstra@example.com", "grace.hopper@example.com", "katherine.johnson@example.com"))
	newHires := map[string]string{"john.backus@example.com": "Engineering", "frances.allen@example.com": "Research",
		"radia.perlman@example.com": "Networks"}
	g.Expect(ldapDepartments(t, c)).To(Equal(newHires), "the directory has an entry per new hire")
	accounts := appAccounts(t, c)
	g.Expect(accounts).To(HaveLen(3))
	for userName, account := range accounts {
		g.Expect(account.groups).To(Equal([]string{newHires[userName]}), "the application has %s in their department's Group", userName)
	}
	callPrintedWebhook(t, g, c, run.output())
	before := demoUIDs(t, c)
	oldURL := policyLDAPURL(t, c)

	run.stop(t)
	g.Expect(run.output()).To(ContainSubstring("Stopped; the data is kept in " + dataDir))
	g.Expect(processesUsing(t, dataDir)).To(BeEmpty(), "kube-apiserver, etcd and slapd stopped")

	// Meanwhile another program took the directory's port: the next start puts slapd on another
	// and points the policies and the bind Secret's allowed destination there.
	taken, err := net.Listen("tcp", strings.TrimPrefix(oldURL, "ldap://"))
	g.Expect(err).NotTo(HaveOccurred())
	defer taken.Close()

	// The second start: the default kubeconfig path, the same objects, the same directory.
	run = startLocal(t, bin, assets, "--data-dir", dataDir)
	defaultKubeconfig := filepath.Join(dataDir, "kubeconfig")
	g.Eventually(run.output).WithTimeout(3 * time.Minute).Should(ContainSubstring("export KUBECONFIG=" + defaultKubeconfig + "\n"))
	c = clientFor(t, defaultKubeconfig)
	g.Expect(policyLDAPURL(t, c)).NotTo(Equal(oldURL))
	for _, name := range []string{"hr-to-directory", "directory-to-app"} {
		g.Eventually(func(g Gomega) {
			p := &syncv1alpha1.SyncPolicy{}
			g.Expect(c.Get(context.Background(), key(name), p)).To(Succeed())
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
			g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue(), "%v", p.Status.Conditions)
		}).WithTimeout(time.Minute).Should(Succeed(), "policy %s works on the directory's new port", name)
	}
	g.Expect(demoUIDs(t, c)).To(Equal(before), "the demo's objects are the same ones, not created again")
	chain := &syncv1alpha1.OnboardingChain{}
	g.Expect(c.Get(context.Background(), key(local.DemoChain), chain)).To(Succeed())
	g.Expect(chain.Status.CompletedUsers).To(BeEquivalentTo(5))
	g.Eventually(run.output).WithTimeout(time.Minute).Should(MatchRegexp(`chain chainsync-demo/employee-onboarding completed=5/5`))
	g.Eventually(run.output).WithTimeout(time.Minute).Should(MatchRegexp(`chain chainsync-demo/directory-and-app-onboarding completed=3/3`))
	g.Expect(directoryMails(t, dataDir)).To(HaveLen(5), "no one was imported twice")
	g.Expect(ldapDepartments(t, c)).To(Equal(newHires), "the directory was kept, and no one was added twice")
	g.Expect(appAccounts(t, c)).To(Equal(accounts), "the application's accounts were kept, and no one was created twice")

	out, err := exec.Command(bin, "records", "--store", local.DemoStoreDir(dataDir), "users").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(MatchRegexp(`ada.lovelace@example.com\s+1\s+1\s+0`))

	// Killed outright, it cannot stop kube-apiserver and etcd; the next start stops them first.
	g.Expect(run.cmd.Process.Kill()).To(Succeed())
	_ = run.cmd.Wait()
	g.Expect(processesUsing(t, dataDir)).NotTo(BeEmpty())
	run = startLocal(t, bin, assets, "--data-dir", dataDir)
	g.Eventually(run.output).WithTimeout(3 * time.Minute).Should(ContainSubstring("export KUBECONFIG=" + defaultKubeconfig + "\n"))
	c = clientFor(t, defaultKubeconfig)
	g.Expect(demoUIDs(t, c)).To(Equal(before))
	g.Expect(run.output()).To(ContainSubstring("directory-and-app-onboarding: HR new hires (csv) -> directory (ldap) -> app (scim), live"),
		"slapd starts again on a directory whose server was killed")
	g.Expect(ldapDepartments(t, c)).To(Equal(newHires))
	run.stop(t)
	g.Expect(processesUsing(t, dataDir)).To(BeEmpty())
}

func buildChainsync(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chainsync")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building chainsync: %v\n%s", err, out)
	}
	return bin
}

// localRun is a running `chainsync local`.
type localRun struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *localRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(p)
}

func (r *localRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

func startLocal(t *testing.T, bin, assets string, args ...string) *localRun {
	t.Helper()
	r := &localRun{}
	r.cmd = exec.Command(bin, append([]string{"local", "--assets", assets}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r, r
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			_ = r.cmd.Wait()
		}
	})
	return r
}

// stop sends SIGTERM, as a service manager or Ctrl-C would, and expects a clean exit.
func (r *localRun) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("chainsync local did not exit cleanly: %v\n%s", err, r.output())
	}
}

func clientFor(t *testing.T, kubeconfig string) client.Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := chainsyncscheme.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: local.DemoNamespace, Name: name}
}

// demoUIDs names every demo object by kind and name, with its UID.
func demoUIDs(t *testing.T, c client.Client) map[string]types.UID {
	t.Helper()
	ctx := context.Background()
	uids := map[string]types.UID{}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: local.DemoNamespace}, ns); err != nil {
		t.Fatal(err)
	}
	uids["Namespace/"+ns.Name] = ns.UID
	lists := map[string]client.ObjectList{"SyncUser": &syncv1alpha1.SyncUserList{}, "SyncPolicy": &syncv1alpha1.SyncPolicyList{},
		"OnboardingChain": &syncv1alpha1.OnboardingChainList{}, "PersistentVolumeClaim": &corev1.PersistentVolumeClaimList{}}
	for kind, list := range lists {
		if err := c.List(ctx, list, client.InNamespace(local.DemoNamespace)); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			o := item.(client.Object)
			uids[kind+"/"+o.GetName()] = o.GetUID()
		}
	}
	if len(uids) != 1+8+5+2+1 {
		t.Fatalf("expected the namespace, 8 users, 5 policies, 2 chains and a claim, found %v", uids)
	}
	return uids
}

// directoryMails lists the mail of every row of the demo's directory.
func directoryMails(t *testing.T, dataDir string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(local.DemoClaimDir(dataDir), "directory", "directory.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT mail FROM people ORDER BY mail`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var mails []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			t.Fatal(err)
		}
		mails = append(mails, m)
	}
	return mails
}

// processesUsing lists the command lines of running processes that name dir: kube-apiserver
// (its --cert-dir) and etcd (its --data-dir) of a run on that data directory.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		if strings.Contains(cmdline, dir) {
			found = append(found, cmdline)
		}
	}
	return found
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode()&0o111 != 0
}

// ldapDepartments reads the demo's directory as a person would, with the URL of the demo's
// hr-to-directory policy and the bind Secret it names: each entry's mail and department.
func ldapDepartments(t *testing.T, c client.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	policy := &syncv1alpha1.SyncPolicy{}
	if err := c.Get(ctx, key("hr-to-directory"), policy); err != nil {
		t.Fatal(err)
	}
	endpoint := policy.Spec.Target.LDAP
	secret := &corev1.Secret{}
	if err := c.Get(ctx, key(endpoint.BindSecretRef.Name), secret); err != nil {
		t.Fatal(err)
	}
	conn, err := ldap.DialURL(endpoint.URL)
	if err != nil {
		t.Fatalf("connecting to the demo's directory %s: %v", endpoint.URL, err)
	}
	defer conn.Close()
	if err := conn.Bind(string(secret.Data["bindDN"]), string(secret.Data["password"])); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Search(ldap.NewSearchRequest(endpoint.Collections[0].ParentDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=inetOrgPerson)", []string{"mail", "departmentNumber"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	departments := map[string]string{}
	for _, e := range res.Entries {
		departments[e.GetAttributeValue("mail")] = e.GetAttributeValue("departmentNumber")
	}
	return departments
}

func policyLDAPURL(t *testing.T, c client.Client) string {
	t.Helper()
	policy := &syncv1alpha1.SyncPolicy{}
	if err := c.Get(context.Background(), key("hr-to-directory"), policy); err != nil {
		t.Fatal(err)
	}
	return policy.Spec.Target.LDAP.URL
}

type appAccount struct {
	id     string
	groups []string
}

// appAccounts reads the demo's application as a person would, with the base URL of the demo's
// directory-to-app policy and the token Secret it names: each User's id and Groups, by userName.
func appAccounts(t *testing.T, c client.Client) map[string]appAccount {
	t.Helper()
	ctx := context.Background()
	policy := &syncv1alpha1.SyncPolicy{}
	if err := c.Get(ctx, key("directory-to-app"), policy); err != nil {
		t.Fatal(err)
	}
	endpoint := policy.Spec.Target.SCIM
	secret := &corev1.Secret{}
	if err := c.Get(ctx, key(endpoint.BearerTokenSecretRef.Name), secret); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, endpoint.BaseURL+"/Users", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(secret.Data[endpoint.BearerTokenSecretRef.Key]))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reading the demo's application %s: %v", endpoint.BaseURL, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("reading the demo's application: %s", res.Status)
	}
	var list struct {
		Resources []struct {
			ID       string `json:"id"`
			UserName string `json:"userName"`
			Groups   []struct {
				Display string `json:"display"`
			} `json:"groups"`
		} `json:"Resources"`
	}
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	accounts := map[string]appAccount{}
	for _, u := range list.Resources {
		a := appAccount{id: u.ID}
		for _, g := range u.Groups {
			a.groups = append(a.groups, g.Display)
		}
		accounts[u.UserName] = a
	}
	return accounts
}

// callPrintedWebhook runs the call to the demo's receiver that the header prints, as a person
// would paste it into a shell, and checks that ada cycles now rather than at her next scheduled
// cycle, a minute away on the business-as-usual step.
func callPrintedWebhook(t *testing.T, g Gomega, c client.Client, output string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(output, "\n") {
		if strings.Contains(l, "curl ") && strings.Contains(l, "/hook/") {
			line = strings.TrimSpace(l)
		}
	}
	g.Expect(line).NotTo(BeEmpty(), "the header prints a call to the demo's webhook:\n%s", output)
	ada := &syncv1alpha1.SyncUser{}
	g.Expect(c.Get(context.Background(), key("ada-lovelace"), ada)).To(Succeed())
	g.Expect(ada.Status.Policy).To(Equal("hr-bau"))
	before := ada.Status.LastCycle.ID
	called := time.Now()
	out, err := exec.Command("sh", "-c", line).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(ContainSubstring(`"outcome":"accepted"`))
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(context.Background(), key("ada-lovelace"), ada)).To(Succeed())
		g.Expect(ada.Status.LastCycle.ID).NotTo(Equal(before))
		g.Expect(ada.Annotations).To(HaveKey(syncv1alpha1.RequestedAtAnnotation))
		g.Expect(ada.Status.LastHandledRequestedAt).To(Equal(ada.Annotations[syncv1alpha1.RequestedAtAnnotation]), "the cycle is the one the call asked for")
	}).WithTimeout(time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Expect(time.Since(called)).To(BeNumerically("<", 20*time.Second), "the call, not the schedule, cycled ada")
}
