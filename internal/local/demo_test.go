package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// Someone trying the demo without slapd is told how to get it; with it, where the directory and
// the application are and how to look into them; when they could not start, why and where the
// log is. Each time they learn where the chain is as a sample, and that file exists.
func TestDirectoryNoteSaysWhereTheDirectoryIsOrHowToGetSlapd(t *testing.T) {
	g := NewWithT(t)
	without := strings.Join(directoryNote("/data", nil, "", nil), "\n")
	g.Expect(without).To(ContainSubstring("slapd is installed,\n         and it is not: apt-get install slapd (or hack/ensure-slapd.sh), then start again"))
	g.Expect(without).To(ContainSubstring(DirectoryChainSample))

	running := &directoryDemo{files: newDirectoryFiles("/data"), state: directoryState{LDAPPort: 3890, SCIMPort: 8080}}
	with := strings.Join(directoryNote("/data", running, "/usr/sbin/slapd", nil), "\n")
	g.Expect(with).To(ContainSubstring("chain " + DirectoryChain + ": HR new hires (csv) -> directory (ldap) -> app (scim), live"))
	g.Expect(with).To(ContainSubstring("ldapsearch -x -H ldap://127.0.0.1:3890 -D cn=chainsync,dc=example,dc=com -y /data/directory-demo/bind-password -b ou=people,dc=example,dc=com"))
	g.Expect(with).To(ContainSubstring(`curl -H "Authorization: Bearer $(cat /data/directory-demo/app-token)" http://127.0.0.1:8080/scim/v2/Users`))
	g.Expect(with).NotTo(ContainSubstring("apt-get"))

	failed := strings.Join(directoryNote("/data", nil, "/usr/sbin/slapd", errors.New("slapd exited (exit status 1):\nlots of log")), "\n")
	g.Expect(failed).To(ContainSubstring("is not running: slapd exited (exit status 1):\n"))
	g.Expect(failed).NotTo(ContainSubstring("lots of log"))
	g.Expect(failed).To(ContainSubstring("/data/directory-demo/slapd/slapd.log"))

	g.Expect(filepath.Join("..", "..", DirectoryChainSample)).To(BeAnExistingFile())
	sample, err := os.ReadFile(filepath.Join("..", "..", DirectoryChainSample))
	g.Expect(err).NotTo(HaveOccurred())
	for _, want := range []string{"kind: OnboardingChain", "connector: ldap", "connector: scim", "target: groups.display", "target: jpegPhoto"} {
		g.Expect(string(sample)).To(ContainSubstring(want))
	}
}

// The directory demo's manifests, filled in, are the sample's chain pointed at the demo's own
// directory and application, with Secrets opted in for those destinations only.
func TestDirectoryManifestsPointAtTheDemosServersWithSecretsForThemOnly(t *testing.T) {
	g := NewWithT(t)
	d := &directoryDemo{state: directoryState{LDAPPort: 3890, SCIMPort: 8080, BindPassword: "pw", Token: "tok"}}
	raw, err := renderDirectoryManifests(d.values())
	g.Expect(err).NotTo(HaveOccurred())
	objs, err := decodeManifests(raw)
	g.Expect(err).NotTo(HaveOccurred())
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		g.Expect(o.GetNamespace()).To(Equal(DemoNamespace))
		if o.GetKind() == "Secret" {
			g.Expect(o.GetLabels()).To(HaveKeyWithValue("sync.chainsync.dev/credentials", "true"))
		}
	}
	g.Expect(kinds).To(Equal(map[string]int{"Secret": 2, "SyncPolicy": 2, "OnboardingChain": 1, "SyncEnrolment": 1}))
	text := string(raw)
	g.Expect(text).To(ContainSubstring(`sync.chainsync.dev/allowed-destinations: "127.0.0.1:3890"`))
	g.Expect(text).To(ContainSubstring(`sync.chainsync.dev/allowed-destinations: "http://127.0.0.1:8080/scim/v2"`))
	g.Expect(text).To(ContainSubstring(`url: "ldap://127.0.0.1:3890"`))
	g.Expect(text).To(ContainSubstring(`baseURL: "http://127.0.0.1:8080/scim/v2"`))
	g.Expect(text).To(ContainSubstring(`password: "pw"`))
	g.Expect(text).NotTo(ContainSubstring("{{"))
}
