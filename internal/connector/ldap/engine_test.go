package ldap

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

// TestEngine runs the engine's scenarios with OpenLDAP on both sides:
// contact entries keyed by the entryUUID the server assigns, named by their
// email, owned by the user whose email is in contactOwner, and stamped in
// modified, under a subtree of their own per endpoint. Created entries carry
// their origin in chainsyncOrigin, so a kill and rerun is settled by origin.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

// TestEngineWithoutOrigin runs them on a directory without chainsync's
// schema: creates cut off by the kill are settled by matchOn.
func TestEngineWithoutOrigin(t *testing.T) { enginetest.Run(t, newFixture(false)) }

// TestKillAndRerunWithoutMatchOn kills a cycle right after its first batch
// of adds, under a policy without matchOn: the rerun must recognise the
// entries by their chainsyncOrigin alone (adding one again would fail on its
// taken name, which the scenario counts as an error).
func TestKillAndRerunWithoutMatchOn(t *testing.T) { enginetest.KillAndRerunWithoutMatchOn(t, fixture) }

var fixture = newFixture(true)

func newFixture(withOrigin bool) enginetest.Fixture {
	return enginetest.Fixture{
		New: func(t *testing.T, role string) enginetest.Endpoint {
			s := ldaptest.Current(t)
			e := ldapEndpoint{URL: s.URL(), BindDN: s.ServiceDN, Password: s.ServicePassword, BaseDN: s.Subtree(t), WithOrigin: withOrigin}
			// One connection for the test's own reads and writes, as the
			// root DN: 1,200 binds would make the kill scenario slow.
			e.setup = s.Connect(t)
			t.Cleanup(func() { e.setup.Close() })
			return e
		},
		OpenSpec: func(spec string) (enginetest.Endpoint, error) {
			var e ldapEndpoint
			err := json.Unmarshal([]byte(spec), &e)
			return e, err
		},
	}
}

type ldapEndpoint struct {
	URL, BindDN, Password, BaseDN string
	WithOrigin                    bool
	setup                         *goldap.Conn
}

func (e ldapEndpoint) config(side string) Config {
	class := Class{Name: "contacts", ObjectClasses: []string{"chainsyncContact"}, RDNAttribute: "email"}
	if e.WithOrigin {
		class.OriginAttribute, class.OriginObjectClass = "chainsyncOrigin", "chainsyncSynced"
	}
	return Config{Side: side, URL: e.URL, BindDN: e.BindDN, BindPassword: e.Password, BaseDN: e.BaseDN, Collections: []Class{class},
		Entities: map[string]collection.Collection{enginetest.Entity: {Name: "contacts", KeyFields: []string{"entryUUID"},
			ModifiedField: "modified", Scope: []collection.ScopeMatch{{Field: "contactOwner", Identity: "email"}}}}}
}

func (e ldapEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(context.Background(), e.config(side))
	if err != nil {
		t.Fatalf("ldap.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e ldapEndpoint) find(t testing.TB, owner, email string) []*goldap.Entry {
	filter := "(&(objectClass=chainsyncContact)(contactOwner=" + goldap.EscapeFilter(owner) + ")"
	if email != "" {
		filter += "(email=" + goldap.EscapeFilter(email) + ")"
	}
	res, err := e.setup.Search(goldap.NewSearchRequest(e.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		filter+")", []string{"email", "name"}, nil))
	if err != nil {
		t.Fatalf("searching %s: %v", e.BaseDN, err)
	}
	return res.Entries
}

func (e ldapEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	stamp := formatGeneralizedTime(modified)
	if found := e.find(t, owner, email); len(found) > 0 {
		mod := goldap.NewModifyRequest(found[0].DN, nil)
		mod.Replace("name", []string{name})
		mod.Replace("modified", []string{stamp})
		if err := e.setup.Modify(mod); err != nil {
			t.Fatalf("modifying %s: %v", found[0].DN, err)
		}
		return
	}
	add := goldap.NewAddRequest("email="+goldap.EscapeDN(email)+","+e.BaseDN, nil)
	add.Attribute("objectClass", []string{"chainsyncContact"})
	add.Attribute("email", []string{email})
	add.Attribute("name", []string{name})
	add.Attribute("contactOwner", []string{owner})
	add.Attribute("modified", []string{stamp})
	if err := e.setup.Add(add); err != nil {
		t.Fatalf("adding %s: %v", add.DN, err)
	}
}

func (e ldapEndpoint) Delete(t testing.TB, owner, email string) {
	for _, entry := range e.find(t, owner, email) {
		if err := e.setup.Del(goldap.NewDelRequest(entry.DN, nil)); err != nil {
			t.Fatalf("deleting %s: %v", entry.DN, err)
		}
	}
}

func (e ldapEndpoint) Rows(t testing.TB, owner string) []string {
	var out []string
	for _, entry := range e.find(t, owner, "") {
		out = append(out, entry.GetAttributeValue("email")+" "+entry.GetAttributeValue("name"))
	}
	slices.Sort(out)
	return out
}

func (e ldapEndpoint) Spec() string {
	b, _ := json.Marshal(e)
	return string(b)
}

func (e ldapEndpoint) Incremental() bool { return true }
