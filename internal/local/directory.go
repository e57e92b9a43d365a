package local

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/scimserver"
	"github.com/chainsync/chainsync/internal/slapd"
)

// The directory demo: the chain HR export (csv) -> directory (ldap) -> application (scim), run
// against a slapd and a SCIM service provider that chainsync local runs itself, when slapd is
// installed.
var (
	//go:embed demo/directory.yaml
	directoryManifests string
	//go:embed demo/new-hires.csv
	demoNewHires []byte
)

const (
	// DirectoryChain is the directory demo's chain.
	DirectoryChain = "directory-and-app-onboarding"
	// DirectoryChainSample is the chain the directory demo runs, as a sample for a real directory
	// and application.
	DirectoryChainSample = "config/samples/sync_v1alpha1_onboardingchain_directory_app.yaml"

	directorySuffix = "dc=example,dc=com"
	directoryPeople = "ou=people," + directorySuffix
	directoryRoot   = "cn=admin," + directorySuffix
	// DirectoryBindDN is the account chainsync binds as, allowed to write the directory.
	DirectoryBindDN = "cn=chainsync," + directorySuffix
	// The application serves SCIM under this path, as applications do.
	scimPath = "/scim/v2"
)

// directoryGroups are the application's Groups, one per department of the new hires: the chain
// makes each person a member of their department's.
var directoryGroups = []string{"Engineering", "Research", "Networks"}

// directoryFiles names the files of the directory demo in a data directory.
type directoryFiles struct {
	root         string
	state        string // directoryState
	slapd        string // slapd's configuration, database and log
	app          string // the SCIM provider's Users and Groups
	bindPassword string // for ldapsearch -y
	token        string // for curl
	applied      string // marks the demo's objects applied
}

func newDirectoryFiles(dataDir string) directoryFiles {
	root := filepath.Join(dataDir, "directory-demo")
	return directoryFiles{
		root:         root,
		state:        filepath.Join(root, "state.json"),
		slapd:        filepath.Join(root, "slapd"),
		app:          filepath.Join(root, "app.json"),
		bindPassword: filepath.Join(root, "bind-password"),
		token:        filepath.Join(root, "app-token"),
		applied:      filepath.Join(root, "applied"),
	}
}

// directoryState is what the directory demo keeps between starts: its secrets, made on the first
// start, and the ports it last listened on, taken again when they are free.
type directoryState struct {
	Format       int    `json:"format"`
	RootPassword string `json:"rootPassword"`
	BindPassword string `json:"bindPassword"`
	Token        string `json:"token"`
	LDAPPort     int    `json:"ldapPort"`
	SCIMPort     int    `json:"scimPort"`
}

const directoryStateFormat = 1

// directoryDemo is the running directory and application.
type directoryDemo struct {
	files directoryFiles
	state directoryState
	ldap  *slapd.Server
	app   *http.Server
	// appDone has the application server's end.
	appDone chan error
}

func (d *directoryDemo) ldapURL() string {
	return "ldap://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(d.state.LDAPPort))
}

func (d *directoryDemo) scimURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(d.state.SCIMPort)) + scimPath
}

// startDirectoryDemo starts slapd (configured and seeded on the first start) and the SCIM
// application on loopback ports, the ones of the last start when they are free.
func startDirectoryDemo(dataDir, bin string) (_ *directoryDemo, err error) {
	d := &directoryDemo{files: newDirectoryFiles(dataDir)}
	if err := os.MkdirAll(d.files.root, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", d.files.root, err)
	}
	if d.state, err = loadDirectoryState(d.files); err != nil {
		return nil, err
	}
	if !slapd.Configured(d.files.slapd) {
		err := slapd.Init(bin, slapd.Config{Dir: d.files.slapd, Suffix: directorySuffix, RootDN: directoryRoot,
			RootPassword: d.state.RootPassword, ServiceDN: DirectoryBindDN})
		if err != nil {
			return nil, fmt.Errorf("configuring the demo's slapd in %s: %w", d.files.slapd, err)
		}
	}
	d.state.LDAPPort, err = portOrFree(d.state.LDAPPort)
	if err != nil {
		return nil, err
	}
	if d.ldap, err = slapd.Start(bin, d.files.slapd, []string{d.ldapURL()}, directoryRoot, d.state.RootPassword); err != nil {
		return nil, fmt.Errorf("starting the demo's slapd: %w", err)
	}
	defer func() {
		if err != nil {
			_ = d.ldap.Stop()
		}
	}()
	if err := d.seedDirectory(); err != nil {
		return nil, err
	}
	if err := d.startApp(); err != nil {
		return nil, err
	}
	if err := saveDirectoryState(d.files, d.state); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// loadDirectoryState reads the state of an earlier start, or makes one with fresh secrets.
func loadDirectoryState(files directoryFiles) (directoryState, error) {
	raw, err := os.ReadFile(files.state)
	if errors.Is(err, os.ErrNotExist) {
		s := directoryState{Format: directoryStateFormat, RootPassword: randomSecret(), BindPassword: randomSecret(), Token: randomSecret()}
		return s, saveDirectoryState(files, s)
	}
	if err != nil {
		return directoryState{}, fmt.Errorf("reading the directory demo's state: %w", err)
	}
	var s directoryState
	if err := json.Unmarshal(raw, &s); err != nil {
		return directoryState{}, fmt.Errorf("reading the directory demo's state %s: %w", files.state, err)
	}
	if s.Format != directoryStateFormat {
		return directoryState{}, fmt.Errorf("the directory demo's state %s has format %d; this chainsync reads format %d (start with --fresh)",
			files.state, s.Format, directoryStateFormat)
	}
	return s, nil
}

// saveDirectoryState writes the state, and the bind password and token alone in files of their
// own for ldapsearch -y and curl.
func saveDirectoryState(files directoryFiles, s directoryState) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	for path, body := range map[string][]byte{files.state: raw, files.bindPassword: []byte(s.BindPassword), files.token: []byte(s.Token)} {
		if err := os.WriteFile(path+".tmp", body, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

func randomSecret() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// portOrFree is port when no one listens on it (0 never is), else a free one.
func portOrFree(port int) (int, error) {
	if port != 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			_ = l.Close()
			return port, nil
		}
	}
	return slapd.FreePort()
}

// seedDirectory adds the suffix, ou=people and chainsync's account, those missing: a start cut
// off before it finished adds the rest.
func (d *directoryDemo) seedDirectory() error {
	conn, err := d.ldap.Dial()
	if err != nil {
		return fmt.Errorf("connecting to the demo's slapd: %w", err)
	}
	defer conn.Close()
	entries := []*goldap.AddRequest{
		addRequest(directorySuffix, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"chainsync demo"}}),
		addRequest(directoryPeople, map[string][]string{"objectClass": {"organizationalUnit"}}),
		addRequest(DirectoryBindDN, map[string][]string{"objectClass": {"applicationProcess", "simpleSecurityObject"},
			"userPassword": {d.state.BindPassword}}),
	}
	for _, e := range entries {
		if err := conn.Add(e); err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultEntryAlreadyExists) {
			return fmt.Errorf("adding %s to the demo's directory: %w", e.DN, err)
		}
	}
	return nil
}

func addRequest(dn string, attrs map[string][]string) *goldap.AddRequest {
	req := goldap.NewAddRequest(dn, nil)
	for name, values := range attrs {
		req.Attribute(name, values)
	}
	return req
}

// startApp serves the SCIM application, its Users and Groups kept in the data directory; its
// Groups are made on the first start.
func (d *directoryDemo) startApp() error {
	app, err := scimserver.New(scimserver.Options{Token: d.state.Token, File: d.files.app})
	if err != nil {
		return fmt.Errorf("starting the demo's SCIM application: %w", err)
	}
	if len(app.Groups()) == 0 {
		for _, name := range directoryGroups {
			app.PutGroup(name)
		}
		if err := app.Save(); err != nil {
			return err
		}
	}
	port, err := portOrFree(d.state.SCIMPort)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listening for the demo's SCIM application: %w", err)
	}
	d.state.SCIMPort = port
	mux := http.NewServeMux()
	mux.Handle(scimPath+"/", http.StripPrefix(scimPath, app.Handler()))
	d.app = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.appDone = make(chan error, 1)
	go func() { d.appDone <- d.app.Serve(l) }()
	return nil
}

// stop stops the application and slapd, and waits for both.
func (d *directoryDemo) stop() error {
	var errs []error
	if d.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errs = append(errs, d.app.Shutdown(ctx))
		if err := <-d.appDone; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if d.ldap != nil {
		errs = append(errs, d.ldap.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stopping the directory demo: %w", err)
	}
	return nil
}

// directoryValues fill in demo/directory.yaml.
type directoryValues struct {
	LDAPURL, LDAPHostPort, SCIMURL string
	Suffix, PeopleDN               string
	BindDN, BindPassword, Token    string
}

func (d *directoryDemo) values() directoryValues {
	return directoryValues{LDAPURL: d.ldapURL(), LDAPHostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(d.state.LDAPPort)),
		SCIMURL: d.scimURL(), Suffix: directorySuffix, PeopleDN: directoryPeople,
		BindDN: DirectoryBindDN, BindPassword: d.state.BindPassword, Token: d.state.Token}
}

func renderDirectoryManifests(v directoryValues) ([]byte, error) {
	tmpl, err := template.New("directory.yaml").Option("missingkey=error").Parse(directoryManifests)
	if err != nil {
		return nil, fmt.Errorf("reading the directory demo's manifests: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("filling in the directory demo's manifests: %w", err)
	}
	return b.Bytes(), nil
}

// applyDirectoryDemo applies the directory demo's objects and writes its HR export on the first
// start with slapd; on later starts it applies its Secrets again and points its policies at where
// the directory and application listen now, leaving everything else as the person trying it left
// it.
func applyDirectoryDemo(ctx context.Context, c client.Client, dataDir string, d *directoryDemo) (applied bool, err error) {
	manifests, err := renderDirectoryManifests(d.values())
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(d.files.applied); err == nil {
		objs, err := decodeManifests(manifests)
		if err != nil {
			return false, err
		}
		for _, u := range objs {
			if u.GetKind() == "Secret" {
				if err := apply(ctx, c, u); err != nil {
					return false, err
				}
			}
		}
		return false, pointPoliciesAt(ctx, c, d.ldapURL(), d.scimURL())
	}
	hr := filepath.Join(DemoClaimDir(dataDir), "hr")
	if err := os.MkdirAll(hr, 0o755); err != nil {
		return false, fmt.Errorf("creating the demo's %s: %w", hr, err)
	}
	if err := os.WriteFile(filepath.Join(hr, "new-hires.csv"), demoNewHires, 0o644); err != nil {
		return false, fmt.Errorf("writing the demo's new hires: %w", err)
	}
	if err := applyManifests(ctx, c, manifests); err != nil {
		return false, fmt.Errorf("applying the directory demo: %w", err)
	}
	if err := os.WriteFile(d.files.applied, nil, 0o600); err != nil {
		return false, fmt.Errorf("marking the directory demo applied: %w", err)
	}
	return true, nil
}

// pointPoliciesAt sets the ldap and scim endpoints of the directory demo's policies, those that
// still exist, to the directory's and application's URLs, when they changed.
func pointPoliciesAt(ctx context.Context, c client.Client, ldapURL, scimURL string) error {
	for _, name := range []string{"hr-to-directory", "directory-to-app"} {
		p := &syncv1alpha1.SyncPolicy{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: name}, p); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("reading SyncPolicy %s: %w", name, err)
		}
		before := p.DeepCopy()
		for _, e := range []*syncv1alpha1.Endpoint{&p.Spec.Source, &p.Spec.Target} {
			if e.LDAP != nil {
				e.LDAP.URL = ldapURL
			}
			if e.SCIM != nil {
				e.SCIM.BaseURL = scimURL
			}
		}
		if err := c.Patch(ctx, p, client.MergeFrom(before), client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("pointing SyncPolicy %s at the demo's directory and application: %w", name, err)
		}
	}
	return nil
}
