// Package ldaptest gives tests a real OpenLDAP server: a throwaway slapd
// (internal/slapd) in a temporary directory, on free loopback ports, one per
// test binary.
//
// The server listens for plain LDAP (StartTLS offered) and for LDAPS, with a
// certificate authority made for the run (Server.CAPEM). Its database holds
// the suffix dc=example,dc=com, managed by Server.BindDN; it answers at most
// SizeLimit entries to a search that does not page its results (RFC 2696),
// so tests prove that large reads page; and it offers content
// synchronisation (RFC 4533, the syncprov overlay, with a session log so
// that deletions are told by entryUUID).
//
// Tests never skip for want of a server: when slapd is missing, Main fails
// the binary with the command that installs it.
package ldaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/slapd"
)

// FixCommand installs what the harness needs.
const FixCommand = "hack/ensure-slapd.sh"

// Suffix is the naming context of the server's database.
const Suffix = "dc=example,dc=com"

// SizeLimit is the most entries the server returns to one search that does
// not page its results.
const SizeLimit = 100

// Server is a running slapd for tests.
type Server struct {
	Host string
	// Port serves plain LDAP (and StartTLS), TLSPort LDAPS.
	Port, TLSPort int
	// BindDN and Password are the database's root DN, allowed everything
	// and exempt from limits: tests set up and inspect entries with it.
	BindDN, Password string
	// ServiceDN and ServicePassword are an ordinary account that may read
	// and write the whole suffix and is held to the size limit, as a
	// connector's bind account is.
	ServiceDN, ServicePassword string
	// CAPEM is the certificate authority of the server's TLS certificate.
	CAPEM string

	dir    string
	server *slapd.Server
}

// URL is the ldap:// URL of the server.
func (s *Server) URL() string { return "ldap://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSURL is the ldaps:// URL of the server.
func (s *Server) TLSURL() string {
	return "ldaps://" + net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort))
}

var current *Server

// Main runs a test binary's tests against a server, with extra schema (an
// LDIF of cn=schema,cn=config children, or "") loaded: call it from TestMain
// as os.Exit(ldaptest.Main(m, schema)).
func Main(m *testing.M, schema string) int {
	s, err := Start(schema)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: no OpenLDAP server for the tests: %v\n", err)
		fmt.Fprintf(os.Stderr, "Fix: run %s (installs Debian's slapd and ldap-utils packages)\n", FixCommand)
		return 1
	}
	current = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test slapd: %v\n", err)
	}
	return code
}

// Current is the server Main started.
func Current(t testing.TB) *Server {
	t.Helper()
	if current == nil {
		t.Fatalf("ldaptest.Main was not called from TestMain")
	}
	return current
}

var subtreeSeq atomic.Int64

// Subtree creates a fresh organizational unit under Suffix for one test and
// deletes it with everything below when the test ends, so tests can share
// the server without seeing each other's entries. It returns its DN.
func (s *Server) Subtree(t testing.TB) string {
	t.Helper()
	dn := fmt.Sprintf("ou=t%d,%s", subtreeSeq.Add(1), Suffix)
	s.Add(t, dn, map[string][]string{"objectClass": {"organizationalUnit"}})
	t.Cleanup(func() {
		if err := s.deleteTree(dn); err != nil {
			t.Errorf("deleting %s: %v", dn, err)
		}
	})
	return dn
}

// deleteTree deletes an entry and everything below it, deepest first:
// OpenLDAP's back-mdb does not offer the tree delete control.
func (s *Server) deleteTree(dn string) error {
	conn, err := s.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if err != nil {
		return err
	}
	dns := make([]string, len(res.Entries))
	for i, e := range res.Entries {
		dns[i] = e.DN
	}
	slices.SortFunc(dns, func(a, b string) int { return strings.Count(b, ",") - strings.Count(a, ",") })
	for _, d := range dns {
		if err := conn.Del(ldap.NewDelRequest(d, nil)); err != nil {
			return err
		}
	}
	return nil
}

// Add adds an entry, failing the test on error.
func (s *Server) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	conn := s.Connect(t)
	defer conn.Close()
	req := ldap.NewAddRequest(dn, nil)
	for name, values := range attrs {
		req.Attribute(name, values)
	}
	if err := conn.Add(req); err != nil {
		t.Fatalf("adding %s: %v", dn, err)
	}
}

// Connect opens a connection bound as BindDN, for a test to set up or
// inspect entries.
func (s *Server) Connect(t testing.TB) *ldap.Conn {
	t.Helper()
	conn, err := s.dial()
	if err != nil {
		t.Fatalf("connecting to the test slapd: %v", err)
	}
	return conn
}

func (s *Server) dial() (*ldap.Conn, error) { return s.server.Dial() }

// Start starts a slapd with extra schema loaded.
func Start(schema string) (*Server, error) {
	bin := slapd.FindInstalled()
	if bin == "" {
		return nil, errors.New("slapd not found in /usr/sbin or on PATH")
	}
	s := &Server{Host: "127.0.0.1", BindDN: "cn=admin," + Suffix, Password: "chainsync-test-password",
		ServiceDN: "cn=chainsync," + Suffix, ServicePassword: "chainsync-service-password"}
	if err := s.start(bin, schema); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin, schema string) error {
	dir, err := os.MkdirTemp("", "chainsync-ldaptest-")
	if err != nil {
		return err
	}
	s.dir = dir
	if err := s.writeTLSFiles(); err != nil {
		return err
	}
	err = slapd.Init(bin, slapd.Config{Dir: dir, Suffix: Suffix, RootDN: s.BindDN, RootPassword: s.Password,
		ServiceDN: s.ServiceDN, SizeLimit: SizeLimit, Schema: schema, NoSync: true,
		TLSCA: filepath.Join(dir, "ca.crt"), TLSCert: filepath.Join(dir, "server.crt"), TLSKey: filepath.Join(dir, "server.key")})
	if err != nil {
		return err
	}
	// A port found free can be taken by another test process before slapd binds it; slapd then
	// exits at once, and another pair is tried.
	for attempt := 1; ; attempt++ {
		if s.Port, err = slapd.FreePort(); err != nil {
			return err
		}
		if s.TLSPort, err = slapd.FreePort(); err != nil {
			return err
		}
		s.server, err = slapd.Start(bin, dir, []string{s.URL(), s.TLSURL()}, s.BindDN, s.Password)
		if err == nil {
			break
		}
		if !errors.Is(err, slapd.ErrExited) || attempt == 5 {
			return err
		}
	}
	conn, err := s.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Add(suffixEntry()); err != nil {
		return err
	}
	return conn.Add(s.serviceEntry())
}

func suffixEntry() *ldap.AddRequest {
	req := ldap.NewAddRequest(Suffix, nil)
	req.Attribute("objectClass", []string{"dcObject", "organization"})
	req.Attribute("dc", []string{"example"})
	req.Attribute("o", []string{"chainsync tests"})
	return req
}

func (s *Server) serviceEntry() *ldap.AddRequest {
	req := ldap.NewAddRequest(s.ServiceDN, nil)
	req.Attribute("objectClass", []string{"applicationProcess", "simpleSecurityObject"})
	req.Attribute("userPassword", []string{s.ServicePassword})
	return req
}

// Stop shuts a started server down and removes its directory.
func (s *Server) Stop() error {
	var err error
	if s.server != nil {
		err = s.server.Stop()
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// Kill stops the server abruptly, for tests of a directory that goes down;
// it is not restarted. Use it on a server of the test's own (Start), not on
// the shared one.
func (s *Server) Kill() {
	if s.server != nil {
		s.server.Kill()
	}
}

// TLSConfig trusts the server's certificate authority.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CAPEM))
	return &tls.Config{RootCAs: pool, ServerName: s.Host}
}

// writeTLSFiles makes a certificate authority for this run and a server
// certificate for 127.0.0.1 and localhost signed by it.
func (s *Server) writeTLSFiles() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chainsync ldap test CA"},
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
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.CAPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	files := map[string][]byte{
		"ca.crt":     []byte(s.CAPEM),
		"server.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), body, 0o600); err != nil {
			return err
		}
	}
	return nil
}
