package ldaptest

import (
	"os"
	"strconv"
	"testing"

	"github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
)

func TestMain(m *testing.M) { os.Exit(Main(m, "")) }

// TestServerIsRealAndLimitsUnpagedSearches: the service account sees the
// size limit a real directory sets, and pages past it.
func TestServerIsRealAndLimitsUnpagedSearches(t *testing.T) {
	g := NewWithT(t)
	s := Current(t)
	base := s.Subtree(t)
	for i := range SizeLimit + 1 {
		s.Add(t, "cn=p"+strconv.Itoa(i)+","+base, map[string][]string{"objectClass": {"person"}, "sn": {"x"}})
	}
	conn, err := ldap.DialURL(s.TLSURL(), ldap.DialWithTLSConfig(s.TLSConfig()))
	g.Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	g.Expect(conn.Bind(s.ServiceDN, s.ServicePassword)).To(Succeed())
	search := ldap.NewSearchRequest(base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=person)", []string{"cn"}, nil)
	_, err = conn.Search(search)
	g.Expect(ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded)).To(BeTrue(), "%v", err)
	res, err := conn.SearchWithPaging(search, 50)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Entries).To(HaveLen(SizeLimit + 1))
}
