// Package jsonservertest gives tests a real third-party REST API: json-server (typicode's, from
// the npm registry, pinned by hack/ensure-json-server.sh), started per test on a free loopback
// port from a data file the test writes, and stopped when the test ends.
//
// json-server serves each top-level array of the data file as a resource: GET /contacts (with
// ?field=value filters, _page/_limit pages and a Link header, _start/_limit offsets, field_gte
// ranges), GET, PUT, PATCH and DELETE /contacts/{id}, POST /contacts (ids assigned 1, 2, ...), and
// nested routes: GET and POST /users/{userId}/contacts read and write contacts whose userId is the
// path segment. The server the tests start adds what a real API has and json-server lacks: it
// refuses requests without the credentials of Options (401), and, with Options.StampField, it
// stamps that field of every written item with the server's clock, unless the request sets it
// (as an import of old data would).
//
// Tests never skip for want of the server: when node, npm or the package is missing, Start
// installs it through hack/ensure-json-server.sh, and fails the test with the reason when it
// cannot.
package jsonservertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FixCommand installs the server.
const FixCommand = "hack/ensure-json-server.sh"

// Options say what the server holds and which credentials it takes. With no credentials set, it
// takes every request.
type Options struct {
	// Data is the content of the data file: resource name to its items.
	Data map[string][]map[string]any
	// Token is the bearer token every request must carry.
	Token string
	// Username and Password are the HTTP basic credentials every request must carry.
	Username, Password string
	// APIKeyHeader and APIKey: every request must carry the key in that header.
	APIKeyHeader, APIKey string
	// StampField is stamped with the time (RFC 3339, milliseconds, UTC) on every write that does
	// not set it.
	StampField string
}

// Server is a running json-server.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL  string
	opts Options
}

var (
	installOnce sync.Once
	prefix      string
	installErr  error
)

// install runs the ensure script once per test binary and returns json-server's install prefix.
func install() (string, error) {
	installOnce.Do(func() {
		script, err := findScript()
		if err != nil {
			installErr = err
			return
		}
		var stderr bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			installErr = fmt.Errorf("%s: %w\n%s", FixCommand, err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		prefix = lines[len(lines)-1]
	})
	return prefix, installErr
}

// findScript finds hack/ensure-json-server.sh in the module the test runs in.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, FixCommand), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory, so no " + FixCommand)
		}
		dir = parent
	}
}

// server.js runs json-server as a module, with the middleware a real API would have.
const serverJS = `
const fs = require('fs');
const jsonServer = require('json-server');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const server = jsonServer.create();
const router = jsonServer.router(JSON.parse(fs.readFileSync(cfg.dataFile, 'utf8')));
server.use(jsonServer.defaults({ logger: false, noCors: true, static: cfg.dir }));
server.use((req, res, next) => {
  const h = req.headers;
  const basic = 'Basic ' + Buffer.from(cfg.username + ':' + cfg.password).toString('base64');
  if ((cfg.token && h.authorization !== 'Bearer ' + cfg.token) ||
      (cfg.username && h.authorization !== basic) ||
      (cfg.apiKeyHeader && h[cfg.apiKeyHeader.toLowerCase()] !== cfg.apiKey)) {
    res.status(401).jsonp({ error: 'not authenticated' });
    return;
  }
  next();
});
server.use(jsonServer.bodyParser);
server.use((req, res, next) => {
  const b = req.body;
  if (cfg.stampField && ['POST', 'PUT', 'PATCH'].includes(req.method) && b && typeof b === 'object' && !(cfg.stampField in b)) {
    b[cfg.stampField] = new Date().toISOString();
  }
  next();
});
server.use(router);
server.listen(cfg.port, '127.0.0.1', () => console.log('listening'));
`

// Start starts a server holding opts.Data for the test, stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, stop, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("FAIL: no json-server for the test: %v\nFix: run %s (needs node and npm)", err, FixCommand)
	}
	t.Cleanup(stop)
	return s
}

func start(dir string, opts Options) (*Server, func(), error) {
	prefix, err := install()
	if err != nil {
		return nil, nil, err
	}
	data := opts.Data
	if data == nil {
		data = map[string][]map[string]any{}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, nil, err
	}
	dataFile := filepath.Join(dir, "db.json")
	if err := os.WriteFile(dataFile, raw, 0o600); err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	cfg, _ := json.Marshal(map[string]any{"dataFile": dataFile, "dir": dir, "port": port, "token": opts.Token,
		"username": opts.Username, "password": opts.Password, "apiKeyHeader": opts.APIKeyHeader, "apiKey": opts.APIKey,
		"stampField": opts.StampField})
	cfgFile := filepath.Join(dir, "server.json")
	script := filepath.Join(dir, "server.js")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(script, []byte(serverJS), 0o600); err != nil {
		return nil, nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command("node", script, cfgFile)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(prefix, "node_modules"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig stops the server if the test binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting node: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), opts: opts}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			return s, stop, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			return nil, nil, fmt.Errorf("json-server exited (%v):\n%s", waitErr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logf.Name())
			return nil, nil, fmt.Errorf("json-server did not accept connections within 30s: %v\n%s", err, log)
		}
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

// Do sends a request with the server's credentials, as a user of the API would, and decodes the
// JSON answer into out (unless nil). A status other than 2xx fails the test.
func (s *Server) Do(t testing.TB, method, path string, body, out any) {
	t.Helper()
	if err := s.do(method, path, body, out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (s *Server) do(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case s.opts.Token != "":
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	case s.opts.Username != "":
		req.SetBasicAuth(s.opts.Username, s.opts.Password)
	}
	if s.opts.APIKeyHeader != "" {
		req.Header.Set(s.opts.APIKeyHeader, s.opts.APIKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Items lists a resource's items, as GET /<resource> answers.
func (s *Server) Items(t testing.TB, resource string) []map[string]any {
	t.Helper()
	var items []map[string]any
	s.Do(t, http.MethodGet, "/"+resource, nil, &items)
	return items
}
