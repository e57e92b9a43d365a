package slapd

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
)

func TestFindLooksOnPathThenWhereDebianPutsIt(t *testing.T) {
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }
	onPath := func(string) (string, error) { return "/opt/openldap/sbin/slapd", nil }
	for _, tc := range []struct {
		name     string
		lookPath func(string) (string, error)
		debian   bool
		want     string
	}{
		{"on PATH", onPath, true, "/opt/openldap/sbin/slapd"},
		{"Debian's package", notOnPath, true, "/usr/sbin/slapd"},
		{"not installed", notOnPath, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			exists := func(p string) bool { return tc.debian && p == "/usr/sbin/slapd" }
			g.Expect(Find(tc.lookPath, exists)).To(Equal(tc.want))
		})
	}
}

// A server kept in a directory, as `chainsync local` keeps its demo's, starts again on another
// port with its entries, and its service account may write while anyone else may only bind.
func TestServerKeptInADirectoryRestartsWithItsEntries(t *testing.T) {
	g := NewWithT(t)
	bin := FindInstalled()
	if bin == "" {
		t.Fatalf("slapd is not installed: %s", InstallHint)
	}
	dir := t.TempDir()
	cfg := Config{Dir: dir, Suffix: "dc=example,dc=com", RootDN: "cn=admin,dc=example,dc=com", RootPassword: "root-pw",
		ServiceDN: "cn=svc,dc=example,dc=com"}
	g.Expect(Configured(dir)).To(BeFalse())
	g.Expect(Init(bin, cfg)).To(Succeed())
	g.Expect(Configured(dir)).To(BeTrue())

	s := start(g, bin, dir)
	conn, err := s.Dial()
	g.Expect(err).NotTo(HaveOccurred())
	suffix := ldap.NewAddRequest(cfg.Suffix, nil)
	suffix.Attribute("objectClass", []string{"dcObject", "organization"})
	suffix.Attribute("dc", []string{"example"})
	suffix.Attribute("o", []string{"example"})
	g.Expect(conn.Add(suffix)).To(Succeed())
	svc := ldap.NewAddRequest(cfg.ServiceDN, nil)
	svc.Attribute("objectClass", []string{"applicationProcess", "simpleSecurityObject"})
	svc.Attribute("userPassword", []string{"svc-pw"})
	g.Expect(conn.Add(svc)).To(Succeed())
	conn.Close()
	g.Expect(s.Stop()).To(Succeed())

	s = start(g, bin, dir)
	defer s.Stop()
	conn, err = ldap.DialURL(s.URLs[0])
	g.Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	g.Expect(conn.Bind(cfg.ServiceDN, "svc-pw")).To(Succeed(), "the service account was kept")
	ou := ldap.NewAddRequest("ou=people,"+cfg.Suffix, nil)
	ou.Attribute("objectClass", []string{"organizationalUnit"})
	g.Expect(conn.Add(ou)).To(Succeed())
	g.Expect(conn.Bind(cfg.ServiceDN, "wrong")).NotTo(Succeed())
}

func start(g Gomega, bin, dir string) *Server {
	port, err := FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	s, err := Start(bin, dir, []string{fmt.Sprintf("ldap://127.0.0.1:%d", port)}, "cn=admin,dc=example,dc=com", "root-pw")
	g.Expect(err).NotTo(HaveOccurred(), "log: %s", filepath.Join(dir, "slapd.log"))
	return s
}

func TestAPortTakenMeanwhileIsErrExited(t *testing.T) {
	g := NewWithT(t)
	bin := FindInstalled()
	if bin == "" {
		t.Fatalf("slapd is not installed: %s", InstallHint)
	}
	dir := t.TempDir()
	g.Expect(Init(bin, Config{Dir: dir, Suffix: "dc=example,dc=com", RootDN: "cn=admin,dc=example,dc=com",
		RootPassword: "root-pw", ServiceDN: "cn=svc,dc=example,dc=com"})).To(Succeed())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer taken.Close()
	go func() { // Another test's server, which is not slapd.
		for {
			conn, err := taken.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	url := fmt.Sprintf("ldap://127.0.0.1:%d", taken.Addr().(*net.TCPAddr).Port)
	_, err = Start(bin, dir, []string{url}, "cn=admin,dc=example,dc=com", "root-pw")
	g.Expect(err).To(MatchError(ErrExited), "what ldaptest retries on other ports")
}
