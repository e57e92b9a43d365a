// Package radicaletest gives tests a real CardDAV and CalDAV server: a throwaway Radicale started
// from the system's installation (Debian's radicale package) on a free loopback port, with its
// own storage folder, configuration and htpasswd users in a temporary directory, one per test
// binary.
//
// Users: ServiceUser may read and write every collection (the account a policy gives the
// connector, reaching each user's collections by their principal), and each user Main is given
// may read and write their own principal's collections only, as Radicale's owner_only rights
// allow. A principal's collections are at /<user>/<collection>/.
//
// Tests never skip for want of a server: when radicale is missing, Main fails the binary with
// the command that installs it.
package radicaletest

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FixCommand installs what the harness needs.
const FixCommand = "hack/ensure-radicale.sh"

// The service account, allowed into every collection.
const (
	ServiceUser     = "chainsync"
	ServicePassword = "chainsync-service-password"
)

// Server is a running Radicale for tests.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>/.
	URL string
	// Users are the ordinary accounts, name to password.
	Users map[string]string

	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	http   *http.Client
}

var current *Server

// Main runs a test binary's tests against a server with these users (name to password): call
// it from TestMain as os.Exit(radicaletest.Main(m, users)).
func Main(m *testing.M, users map[string]string) int {
	s, err := Start(users)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: no Radicale server for the tests: %v\n", err)
		fmt.Fprintf(os.Stderr, "Fix: run %s (installs Debian's radicale package)\n", FixCommand)
		return 1
	}
	current = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test radicale: %v\n", err)
	}
	return code
}

// Current is the server Main started.
func Current(t testing.TB) *Server {
	t.Helper()
	if current == nil {
		t.Fatalf("radicaletest.Main was not called from TestMain")
	}
	return current
}

// serve runs Radicale from Python with fsync off, which only Radicale's own code may set (options
// starting with _ are refused in a config file): a throwaway server need not survive a power
// cut, and a PUT costs several times less without it.
const serve = `import sys
from radicale import config, server
conf = config.load([(sys.argv[1], False)])
conf.update({"storage": {"_filesystem_fsync": "False"}}, "chainsync tests", privileged=True)
server.serve(conf)
`

// findPython is the interpreter Radicale is installed for: the one its script names (Debian's
// /usr/bin/radicale runs /usr/bin/python3, which a pyenv python3 on PATH is not), else python3.
func findPython() (string, error) {
	if p, err := exec.LookPath("radicale"); err == nil {
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			line, _ := bufio.NewReader(f).ReadString('\n')
			if interp, ok := strings.CutPrefix(strings.TrimSpace(line), "#!"); ok && !strings.Contains(interp, " ") {
				if exec.Command(interp, "-c", "import radicale").Run() == nil {
					return interp, nil
				}
			}
		}
	}
	if exec.Command("python3", "-c", "import radicale").Run() == nil {
		return "python3", nil
	}
	return "", errors.New("radicale not found: neither a radicale script on PATH nor python3's radicale module")
}

// New starts a server of the test's own, stopped when the test ends, for tests that run in
// parallel with others: Radicale serves one write at a time, so each gets a process (and a core)
// of its own. It fails the test, never skips it, when the server cannot start.
func New(t testing.TB, users map[string]string) *Server {
	t.Helper()
	s, err := Start(users)
	if err != nil {
		t.Fatalf("no Radicale server for the test: %v (run %s)", err, FixCommand)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the test radicale: %v", err)
		}
	})
	return s
}

// Start starts a Radicale with the service account and these users.
func Start(users map[string]string) (*Server, error) {
	python, err := findPython()
	if err != nil {
		return nil, err
	}
	s := &Server{Users: users, http: &http.Client{Timeout: 30 * time.Second}}
	if err := s.start(python); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(python string) error {
	dir, err := os.MkdirTemp("", "chainsync-radicaletest-")
	if err != nil {
		return err
	}
	s.dir = dir
	var htpasswd strings.Builder
	fmt.Fprintf(&htpasswd, "%s:%s\n", ServiceUser, ServicePassword)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range s.Users {
			if !yield(n) {
				return
			}
		}
	}) {
		fmt.Fprintf(&htpasswd, "%s:%s\n", name, s.Users[name])
	}
	// Rights are matched top down: the service account everywhere, then every user in the root
	// (to find their principal), their principal and their principal's collections.
	rights := fmt.Sprintf(`[service]
user: %s
collection: .*
permissions: RrWw

[root]
user: .+
collection:
permissions: R

[principal]
user: .+
collection: {user}
permissions: RW

[collections]
user: .+
collection: {user}/[^/]+
permissions: rw
`, ServiceUser)
	port, err := freePort()
	if err != nil {
		return err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	config := fmt.Sprintf(`[server]
hosts = 127.0.0.1:%[2]d

[auth]
type = htpasswd
htpasswd_filename = %[1]s/users
htpasswd_encryption = plain
delay = 0

[rights]
type = from_file
file = %[1]s/rights

[storage]
filesystem_folder = %[1]s/collections

[web]
type = none

[logging]
level = warning
`, dir, port)
	files := map[string]string{"users": htpasswd.String(), "rights": rights, "config": config, "serve.py": serve}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(dir, "radicale.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = exec.Command(python, filepath.Join(dir, "serve.py"), filepath.Join(dir, "config"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Pdeathsig stops the server if the test binary is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting radicale: %w", err)
	}
	s.exited = make(chan struct{})
	var waitErr error
	go func() {
		waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.do("OPTIONS", "/", nil, nil)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("radicale exited (%v):\n%s", waitErr, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("radicale did not answer within 30s: %v\n%s", err, log)
		}
	}
}

// Stop shuts a started server down and removes its directory.
func (s *Server) Stop() error {
	if s.exited != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if s.dir != "" {
		return os.RemoveAll(s.dir)
	}
	return nil
}

// Kill stops the server abruptly, for tests of a server that goes down; it is not restarted.
// Use it on a server of the test's own (Start), not on the shared one.
func (s *Server) Kill() {
	if s.exited != nil {
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// do sends a request as the service account; path is unescaped.
func (s *Server) do(method, path string, header http.Header, body []byte) (*http.Response, error) {
	u, _ := url.Parse(s.URL)
	u.Path = path
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.SetBasicAuth(ServiceUser, ServicePassword)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return resp, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	return resp, nil
}

// Kind is what a collection holds.
type Kind string

const (
	AddressBook Kind = "addressbook"
	// Calendar holds events; TaskList tasks.
	Calendar Kind = "VEVENT"
	TaskList Kind = "VTODO"
)

// MakeCollection creates a collection (and the principal above it, when missing) as the
// service account; path is unescaped, as /ann@example.com/contacts/.
func (s *Server) MakeCollection(t testing.TB, path string, kind Kind, displayName string) {
	t.Helper()
	parent := path[:strings.LastIndex(strings.TrimSuffix(path, "/"), "/")+1]
	if parent != "/" {
		if resp, err := s.do("MKCOL", parent, nil, nil); err != nil && resp != nil && resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusConflict {
			t.Fatalf("making the principal %s: %v", parent, err)
		}
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>`)
	if kind == AddressBook {
		b.WriteString(`<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>`)
	} else {
		b.WriteString(`<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>`)
		fmt.Fprintf(&b, `<C:supported-calendar-component-set><C:comp name="%s"/></C:supported-calendar-component-set>`, kind)
	}
	if displayName != "" {
		b.WriteString("<D:displayname>")
		xml.EscapeText(&b, []byte(displayName))
		b.WriteString("</D:displayname>")
	}
	b.WriteString(`</D:prop></D:set></D:mkcol>`)
	if _, err := s.do("MKCOL", path, http.Header{"Content-Type": {"application/xml"}}, []byte(b.String())); err != nil {
		t.Fatalf("making the collection %s: %v", path, err)
	}
}

// Put writes an object as it is, unconditionally, and returns its ETag.
func (s *Server) Put(t testing.TB, path, body string) string {
	t.Helper()
	ct := "text/vcard"
	if strings.HasSuffix(path, ".ics") {
		ct = "text/calendar"
	}
	resp, err := s.do(http.MethodPut, path, http.Header{"Content-Type": {ct}}, []byte(body))
	if err != nil {
		t.Fatalf("putting %s: %v", path, err)
	}
	return strings.Trim(resp.Header.Get("ETag"), `"`)
}

// Delete deletes an object.
func (s *Server) Delete(t testing.TB, path string) {
	t.Helper()
	if _, err := s.do(http.MethodDelete, path, nil, nil); err != nil {
		t.Fatalf("deleting %s: %v", path, err)
	}
}

// Object is one object of a collection.
type Object struct {
	// Path is unescaped.
	Path, ETag, Data string
}

// Objects lists a collection's objects with their text, by one addressbook-query or
// calendar-query.
func (s *Server) Objects(t testing.TB, collection string) []Object {
	t.Helper()
	objs, err := s.objects(collection)
	if err != nil {
		t.Fatalf("listing %s: %v", collection, err)
	}
	return objs
}

func (s *Server) objects(collection string) ([]Object, error) {
	body := `<?xml version="1.0" encoding="utf-8"?><C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/></D:prop></C:addressbook-query>`
	if !s.isAddressBook(collection) {
		body = `<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>`
	}
	resp, err := s.do("REPORT", collection, http.Header{"Depth": {"1"}, "Content-Type": {"application/xml"}}, []byte(body))
	if err != nil {
		return nil, err
	}
	var ms struct {
		Responses []struct {
			Href string `xml:"DAV: href"`
			Prop struct {
				ETag         string `xml:"DAV: getetag"`
				AddressData  string `xml:"urn:ietf:params:xml:ns:carddav address-data"`
				CalendarData string `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
			} `xml:"DAV: propstat>prop"`
		} `xml:"DAV: response"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(data, &ms); err != nil {
		return nil, err
	}
	var out []Object
	for _, r := range ms.Responses {
		u, err := url.Parse(r.Href)
		if err != nil {
			return nil, err
		}
		out = append(out, Object{Path: u.Path, ETag: strings.Trim(r.Prop.ETag, `"`), Data: r.Prop.AddressData + r.Prop.CalendarData})
	}
	return out, nil
}

// isAddressBook asks the collection's resource type.
func (s *Server) isAddressBook(collection string) bool {
	resp, err := s.do("PROPFIND", collection, http.Header{"Depth": {"0"}}, []byte(`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>`))
	if err != nil {
		return false
	}
	data, _ := io.ReadAll(resp.Body)
	return bytes.Contains(data, []byte("addressbook"))
}

// storagePath is where the server keeps an object or collection.
func (s *Server) storagePath(path string) string {
	return filepath.Join(s.dir, "collections", "collection-root", filepath.FromSlash(path))
}

// locked runs f holding Radicale's storage lock, as a program sharing its storage must.
func (s *Server) locked(t testing.TB, f func() error) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(s.dir, "collections", ".Radicale.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("opening the storage lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("taking the storage lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// Write puts an object straight into the server's storage, as another program sharing it would
// (Radicale sees it at the next request, sync tokens included). It is the fast way for a test to
// fill a collection: a PUT costs Radicale a look at every object of the collection, for the UID
// it must not hold twice.
func (s *Server) Write(t testing.TB, path, body string) {
	t.Helper()
	s.locked(t, func() error {
		dst := s.storagePath(path)
		tmp := filepath.Join(filepath.Dir(dst), ".Radicale.tmp-chainsync-"+filepath.Base(dst))
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	})
}

// Remove deletes an object straight from the server's storage.
func (s *Server) Remove(t testing.TB, path string) {
	t.Helper()
	s.locked(t, func() error { return os.Remove(s.storagePath(path)) })
}

// Stamp changes whenever an object of the collection is added, replaced or deleted (Radicale
// writes each object to a file of its own, through a rename): the modification time of the
// collection's folder in the server's storage. Unlike SyncToken, whose answer Radicale computes
// from every object, it costs nothing, so tests may check it before each write of their own.
func (s *Server) Stamp(t testing.TB, collection string) string {
	t.Helper()
	fi, err := os.Stat(s.storagePath(collection))
	if err != nil {
		t.Fatalf("the storage folder of %s: %v", collection, err)
	}
	return fi.ModTime().Format(time.RFC3339Nano)
}

// SyncToken is the collection's DAV:sync-token: it changes with every change to the collection.
func (s *Server) SyncToken(t testing.TB, collection string) string {
	t.Helper()
	resp, err := s.do("PROPFIND", collection, http.Header{"Depth": {"0"}}, []byte(`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><sync-token/></prop></propfind>`))
	if err != nil {
		t.Fatalf("reading the sync token of %s: %v", collection, err)
	}
	var ms struct {
		Token string `xml:"DAV: response>propstat>prop>sync-token"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(data, &ms); err != nil {
		t.Fatalf("reading the sync token of %s: %v", collection, err)
	}
	return ms.Token
}
