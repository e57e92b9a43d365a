package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestFindSlapdLooksOnPathThenWhereDebianPutsIt(t *testing.T) {
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
			g.Expect(findSlapd(tc.lookPath, exists)).To(Equal(tc.want))
		})
	}
}

// Someone trying the demo without slapd is told how to get it; with it, where it is. Either way
// they learn where the chain with a real directory and application is, and that file exists.
func TestDirectoryNoteSaysHowToGetSlapd(t *testing.T) {
	g := NewWithT(t)
	without := strings.Join(directoryNote(""), "\n")
	g.Expect(without).To(ContainSubstring("slapd is not installed: apt-get install slapd (or hack/ensure-slapd.sh)"))
	g.Expect(without).To(ContainSubstring(DirectoryChainSample))
	with := strings.Join(directoryNote("/usr/sbin/slapd"), "\n")
	g.Expect(with).To(ContainSubstring("slapd is installed (/usr/sbin/slapd)"))
	g.Expect(with).NotTo(ContainSubstring("apt-get"))
	g.Expect(filepath.Join("..", "..", DirectoryChainSample)).To(BeAnExistingFile())
	sample, err := os.ReadFile(filepath.Join("..", "..", DirectoryChainSample))
	g.Expect(err).NotTo(HaveOccurred())
	for _, want := range []string{"kind: OnboardingChain", "connector: ldap", "connector: scim", "target: groups.display", "target: jpegPhoto"} {
		g.Expect(string(sample)).To(ContainSubstring(want))
	}
}
