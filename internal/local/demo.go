package local

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	_ "modernc.org/sqlite" // the directory database the demo syncs into
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/slapd"
	"github.com/chainsync/chainsync/internal/webhook"
)

// The demo: DemoManifests, applied as they are, and the files its policies read and write.
var (
	//go:embed demo/demo.yaml
	DemoManifests []byte
	//go:embed demo/employees.csv
	demoEmployees []byte
)

const (
	// DemoNamespace holds every demo object.
	DemoNamespace = "chainsync-demo"
	// DemoChain is the demo's onboarding chain.
	DemoChain = "employee-onboarding"
	// demoClaim holds the HR export, the directory and the records (under demoStoreSubPath).
	demoClaim        = "demo-data"
	demoStoreSubPath = "records"
)

// DemoClaimDir is where the demo's PersistentVolumeClaim lives in a data directory.
func DemoClaimDir(dataDir string) string {
	return executor.ClaimDir(newLayout(dataDir).volumes, DemoNamespace, demoClaim)
}

// DemoStoreDir is the demo's record store, for `chainsync records --store`.
func DemoStoreDir(dataDir string) string {
	return filepath.Join(DemoClaimDir(dataDir), demoStoreSubPath)
}

// applyDemo writes the demo's files and applies its objects, once per data directory: later
// starts keep what is there, since the person trying it may have changed or deleted it.
func applyDemo(ctx context.Context, c client.Client, dirs layout) (applied bool, err error) {
	if _, err := os.Stat(dirs.demoApplied); err == nil {
		return false, nil
	}
	if err := seedDemoFiles(DemoClaimDir(dirs.root)); err != nil {
		return false, err
	}
	if err := applyManifests(ctx, c, DemoManifests); err != nil {
		return false, fmt.Errorf("applying the demo: %w", err)
	}
	if err := os.WriteFile(dirs.demoApplied, nil, 0o600); err != nil {
		return false, fmt.Errorf("marking the demo applied: %w", err)
	}
	return true, nil
}

// seedDemoFiles writes the HR export and creates the directory's empty people table.
func seedDemoFiles(claimDir string) error {
	hr := filepath.Join(claimDir, "hr")
	for _, dir := range []string{hr, filepath.Join(claimDir, "directory")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating the demo's %s: %w", dir, err)
		}
	}
	if err := os.WriteFile(filepath.Join(hr, "employees.csv"), demoEmployees, 0o644); err != nil {
		return fmt.Errorf("writing the demo's HR export: %w", err)
	}
	path := filepath.Join(claimDir, "directory", "directory.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return fmt.Errorf("opening the demo's directory %s: %w", path, err)
	}
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS people (
		id INTEGER PRIMARY KEY AUTOINCREMENT, employee_number TEXT, given_name TEXT, family_name TEXT,
		mail TEXT, department TEXT, updated_at TEXT, chainsync_origin TEXT)`)
	return errors.Join(wrap(err, "creating the demo's directory table"), db.Close())
}

func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// directoryNote is the demo's word on the chain HR export -> directory (ldap) -> application
// (scim): where its directory and application are and how to look into them while it runs, why it
// is not running, or, without slapd, how to get it.
func directoryNote(dataDir string, d *directoryDemo, slapdBin string, startErr error) []string {
	sample := "         the chain for a directory and an application of your own: " + DirectoryChainSample
	switch {
	case d != nil:
		return []string{
			"  ldap:  chain " + DirectoryChain + ": HR new hires (csv) -> directory (ldap) -> app (scim), live",
			"         its users are enrolled from " + filepath.Join(DemoClaimDir(dataDir), "hr", "new-hires.csv") + " by SyncEnrolment new-hires:",
			"         add a row there, and within a minute that person is on the chain too",
			"         directory " + d.ldapURL() + " (slapd, data in " + d.files.slapd + "):",
			"           ldapsearch -x -H " + d.ldapURL() + " -D " + DirectoryBindDN + " -y " + d.files.bindPassword + " -b " + directoryPeople,
			"         app " + d.scimURL() + ":",
			`           curl -H "Authorization: Bearer $(cat ` + d.files.token + `)" ` + d.scimURL() + "/Users",
			sample,
		}
	case startErr != nil:
		return []string{
			"  ldap:  the chain HR -> directory (ldap) -> app (scim) is not running: " + firstLine(startErr.Error()),
			"         slapd is " + slapdBin + "; its log: " + filepath.Join(newDirectoryFiles(dataDir).slapd, "slapd.log"),
			sample,
		}
	}
	return []string{
		"  ldap:  the chain HR -> directory (ldap) -> app (scim) runs here when OpenLDAP's slapd is installed,",
		"         and it is not: " + slapd.InstallHint + ", then start again",
		sample,
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// The demo's webhook receiver and the Secret of its token (demo/demo.yaml).
const (
	demoReceiver       = "hr-changes"
	demoReceiverSecret = "hr-webhook"
	defaultWebhookPort = 9292
)

// loopbackAddr is 127.0.0.1:port, or a free port of 127.0.0.1 when port is taken: two local
// control planes can run side by side.
func loopbackAddr(port int) string {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		return addr
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return addr // Serving fails with the reason.
	}
	defer l.Close()
	return l.Addr().String()
}

// webhookNote is a call to the demo's receiver to try, signed with openssl as the HR system
// would sign it, when the demo has its receiver (a data directory made before it did not).
func webhookNote(ctx context.Context, c client.Client, addr string) []string {
	if addr == "0" {
		return nil
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: demoReceiverSecret}, secret); err != nil {
		return nil
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: demoReceiver}, &syncv1alpha1.SyncReceiver{}); err != nil {
		return nil
	}
	token := string(secret.Data["token"])
	return []string{
		"  hook:  receiver " + demoReceiver + ": the HR system says an employee changed, who cycles now on step business-as-usual:",
		`           body='{"email":"ada.lovelace@example.com"}'; curl -H "X-Signature-256: $(printf %s "$body" | openssl dgst -sha256 -hmac ` +
			token + ` -r | cut -d' ' -f1)" -sd "$body" http://` + addr + webhook.Path([]byte(token), DemoNamespace, demoReceiver),
	}
}
