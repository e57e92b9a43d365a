package ldap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

// TestTLSChecksTheServerAgainstTheCA: LDAPS and StartTLS both verify the
// server's certificate against the CA given, and refuse one it did not sign.
func TestTLSChecksTheServerAgainstTheCA(t *testing.T) {
	s := ldaptest.Current(t)
	base := s.Subtree(t)
	contact(t, base, ann.Email, "a@x", nil)
	for name, mutate := range map[string]func(*Config){
		"ldaps":    func(c *Config) { c.URL = s.TLSURL() },
		"StartTLS": func(c *Config) { c.StartTLS = true },
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			c := open(t, config(t, base, func(c *Config) { mutate(c); c.CAPEM = s.CAPEM }))
			g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))).To(HaveLen(1))

			_, err := New(ctx, config(t, base, func(c *Config) { mutate(c); c.CAPEM = otherCA(t) }))
			g.Expect(err).To(MatchError(ContainSubstring("certificate signed by unknown authority")))
		})
	}
}

// TestTimeouts: a server that accepts the connection and never answers
// fails the connector within its timeout, naming the host.
func TestTimeouts(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	start := time.Now()
	_, err = New(ctx, config(t, ldaptest.Suffix, func(c *Config) {
		c.URL = "ldap://" + l.Addr().String()
		c.Timeout = 300 * time.Millisecond
	}))
	g.Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second))
	g.Expect(err).To(MatchError(ContainSubstring(l.Addr().String())))
	g.Expect(err).To(MatchError(ContainSubstring("timed out")))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
}

func otherCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
