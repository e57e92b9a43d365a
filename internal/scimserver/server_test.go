package scimserver

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// A provider with a File, made again on it (as `chainsync local` does at every start), has the
// Users and Groups that were created through the protocol, with their ids and memberships, and
// gives the next User an id of its own.
func TestProviderKeepsItsUsersAndGroupsInItsFile(t *testing.T) {
	g := NewWithT(t)
	file := filepath.Join(t.TempDir(), "app", "scim.json")
	p, err := New(Options{Token: "t0k3n", File: file})
	g.Expect(err).NotTo(HaveOccurred())
	research := p.PutGroup("Research")
	g.Expect(p.Save()).To(Succeed())
	srv := httptest.NewServer(p.Handler())
	ada := createUser(g, srv.URL, "t0k3n", "ada@example.com")
	patch(g, srv.URL+"/Groups/"+research, "t0k3n",
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+ada+`"}]}]}`)
	srv.Close()

	again, err := New(Options{Token: "t0k3n", File: file})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.Users()).To(ConsistOf(HaveField("UserName", "ada@example.com")))
	g.Expect(again.Users()[0].ID).To(Equal(ada))
	g.Expect(again.Groups()).To(ConsistOf(Group{ID: research, DisplayName: "Research", Members: []string{ada}}))
	srv = httptest.NewServer(again.Handler())
	defer srv.Close()
	g.Expect(createUser(g, srv.URL, "t0k3n", "grace@example.com")).NotTo(Equal(ada))
}

func TestProviderRefusesOtherCredentialsAndAFileOfAnotherFormat(t *testing.T) {
	g := NewWithT(t)
	p, err := New(Options{Token: "t0k3n"})
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/Users", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	res, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	res.Body.Close()
	g.Expect(res.StatusCode).To(Equal(http.StatusUnauthorized))

	file := filepath.Join(t.TempDir(), "scim.json")
	g.Expect(os.WriteFile(file, []byte(`{"format":99}`), 0o600)).To(Succeed())
	_, err = New(Options{Token: "t0k3n", File: file})
	g.Expect(err).To(MatchError(ContainSubstring("has format 99")))
}

func createUser(g Gomega, url, token, userName string) string {
	req, _ := http.NewRequest(http.MethodPost, url+"/Users",
		strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"`+userName+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	g.Expect(res.StatusCode).To(Equal(http.StatusCreated))
	return res.Header.Get("Location")[strings.LastIndex(res.Header.Get("Location"), "/")+1:]
}

func patch(g Gomega, url, token, body string) {
	req, _ := http.NewRequest(http.MethodPatch, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer res.Body.Close()
	g.Expect(res.StatusCode).To(BeNumerically("<", 300))
}
