// Package pgtest gives tests a real PostgreSQL server: the one named by
// CHAINSYNC_TEST_POSTGRES_URL, or else a throwaway server started from the
// system's PostgreSQL binaries (/usr/lib/postgresql/*/bin or PATH) in a
// temporary directory on a free loopback port, one per test binary.
//
// The started server has TLS on (with a certificate authority made for the
// run, see Server.CAPEM) and password authentication over TCP, so tests can
// exercise sslmode, CA verification and bad credentials for real.
//
// Tests never skip for want of a server: when none can be had, Main fails
// the binary with the command that installs PostgreSQL.
package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names an existing server to test against instead of starting one,
// as a libpq URL of a role allowed to create schemas.
const EnvURL = "CHAINSYNC_TEST_POSTGRES_URL"

// EnvBin names a directory holding initdb and postgres, to pick one of
// several installed versions.
const EnvBin = "CHAINSYNC_TEST_POSTGRES_BIN"

// FixCommand installs what the harness needs.
const FixCommand = "hack/ensure-postgres.sh"

// Server is a PostgreSQL server for tests.
type Server struct {
	// Host, Port, User, Password and Database reach the server as a role
	// that may create schemas.
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// CAPEM is the certificate authority of the server's TLS certificate;
	// empty for a server named by EnvURL.
	CAPEM string
	// Started is true when the harness started the server (so TLS and
	// authentication are set up as described above).
	Started bool

	dir  string
	cmd  *exec.Cmd
	uid  int
	logs string
	// exited is closed when the started postgres process has exited.
	exited chan struct{}
}

// URL is a libpq URL for the server with the given sslmode.
func (s *Server) URL(sslMode string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, s.Password),
		Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Path: "/" + s.Database}
	u.RawQuery = url.Values{"sslmode": {sslMode}}.Encode()
	return u.String()
}

var current *Server

// Main runs a test binary's tests against a server: call it from TestMain
// as os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: no PostgreSQL server for the tests: %v\n", err)
		fmt.Fprintf(os.Stderr, "Fix: run %s (installs the postgresql package), or set %s to a server's URL\n", FixCommand, EnvURL)
		return 1
	}
	current = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test PostgreSQL server: %v\n", err)
	}
	return code
}

// Current is the server Main started.
func Current(t testing.TB) *Server {
	t.Helper()
	if current == nil {
		t.Fatalf("pgtest.Main was not called from TestMain")
	}
	return current
}

var schemaSeq atomic.Int64

// Schema creates a fresh schema for one test and drops it when the test
// ends, so tests can share the server without seeing each other's tables.
func (s *Server) Schema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", schemaSeq.Add(1), strings.ToLower(sanitize(t.Name())))
	if len(name) > 63 {
		name = name[:63]
	}
	s.Exec(t, fmt.Sprintf(`CREATE SCHEMA %q`, name))
	t.Cleanup(func() { s.Exec(t, fmt.Sprintf(`DROP SCHEMA %q CASCADE`, name)) })
	return name
}

// Exec runs SQL on the server, failing the test on error.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	conn := s.Connect(t)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Connect opens a connection for a test to set up or inspect data.
func (s *Server) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.URL("prefer"))
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL server: %v", err)
	}
	return conn
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Start returns the server named by EnvURL or starts one.
func Start() (*Server, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		return external(raw)
	}
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", User: "chainsync", Password: "chainsync-test-password", Database: "postgres", Started: true, uid: -1}
	if err := s.start(bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func external(raw string) (*Server, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	s := &Server{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password, Database: cfg.Database}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("prefer"))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", EnvURL, err)
	}
	conn.Close(ctx)
	return s, nil
}

// findBinaries picks EnvBin, or the newest /usr/lib/postgresql/<version>/bin, or the
// directory of initdb on PATH.
func findBinaries() (string, error) {
	if dir := os.Getenv(EnvBin); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBin, dir, err)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("initdb not found in /usr/lib/postgresql/*/bin or on PATH")
}

func (s *Server) start(bin string) error {
	dir, err := os.MkdirTemp("", "chainsync-pgtest-")
	if err != nil {
		return err
	}
	s.dir = dir
	// initdb and postgres refuse to run as root: run them as an
	// unprivileged user who owns the directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		uid, gid, err := unprivilegedUser()
		if err != nil {
			return err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		s.uid = uid
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	if err := s.writeTLSFiles(); err != nil {
		return err
	}
	if cred != nil {
		if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", s.User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(initdb.Args, " "), err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return err
	}
	s.logs = logf.Name()
	// Durability settings are off: a test server's data is thrown away,
	// and the benchmarks compare against COPY on the same server.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(dir, "server.crt"), "-c", "ssl_key_file="+filepath.Join(dir, "server.key"),
		"-c", "max_connections=200")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Pdeathsig stops the server if the test binary is killed, so no
	// server outlives its tests.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	logf.Close()
	s.exited = make(chan struct{})
	var waitErr error
	go func() {
		waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("require"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.logs)
			return fmt.Errorf("postgres exited (%v):\n%s", waitErr, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logs)
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, log)
		}
	}
}

// Stop shuts a started server down and removes its directory.
func (s *Server) Stop() error {
	if s.exited != nil {
		s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
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

func unprivilegedUser() (uid, gid int, err error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid, nil
	}
	return 0, 0, errors.New("running as root and neither the postgres nor the nobody user exists to run PostgreSQL as")
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeTLSFiles makes a certificate authority for this run and a server
// certificate for 127.0.0.1 and localhost signed by it.
func (s *Server) writeTLSFiles() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chainsync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	if err := os.WriteFile(filepath.Join(s.dir, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// NewCAPEM makes a certificate authority unrelated to the server's, for
// tests that a foreign CA is refused.
func NewCAPEM() (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
