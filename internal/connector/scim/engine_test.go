package scim

import (
	"context"
	"iter"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(m.Run())
}

// TestEngine runs the engine's scenarios with a SCIM server on both sides. A contact is a User:
// its email the userName, its name the displayName, and its owner the enterprise extension's
// organization, which the scope filters on. The killed cycles' child process reaches the parent's
// server over TCP, by the URL the endpoint's Spec gives.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

var fixture = enginetest.Fixture{
	New: func(t *testing.T, role string) enginetest.Endpoint {
		s := scimtest.Start(t, scimtest.Options{})
		return scimEndpoint{url: s.URL, server: s}
	},
	OpenSpec: func(spec string) (enginetest.Endpoint, error) { return scimEndpoint{url: spec}, nil },
}

const organization = enterpriseSchema + ":organization"

type scimEndpoint struct {
	url string
	// server is nil in a child process, which only connects.
	server *scimtest.Server
}

func (e scimEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(context.Background(), Config{Side: side, BaseURL: e.url, BearerToken: scimtest.Token,
		Entities: map[string]collection.Collection{enginetest.Entity: {Name: Users, KeyFields: []string{"id"},
			ModifiedField: "meta.lastModified", Scope: []collection.ScopeMatch{{Field: organization, Identity: "email"}}}}})
	if err != nil {
		t.Fatalf("scim.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return renamed{c}
}

func (e scimEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	e.server.Put(scimtest.User{UserName: email, DisplayName: name, Organization: owner, LastModified: modified})
}

func (e scimEndpoint) Delete(t testing.TB, owner, email string) { e.server.Delete(email) }

func (e scimEndpoint) Rows(t testing.TB, owner string) []string {
	var rows []string
	for _, u := range e.server.Users() {
		if u.Organization == owner {
			rows = append(rows, u.UserName+" "+u.DisplayName)
		}
	}
	slices.Sort(rows)
	return rows
}

func (e scimEndpoint) Spec() string      { return e.url }
func (e scimEndpoint) Incremental() bool { return false }

// renamed gives the suite's fields (email, name) the User attributes that hold them.
type renamed struct{ connector.Connector }

var (
	toSCIM   = map[string]string{"email": "userName", "name": "displayName"}
	fromSCIM = map[string]string{"userName": "email", "displayName": "name"}
)

func rename(fields map[string]connector.Value, names map[string]string) map[string]connector.Value {
	out := maps.Clone(fields)
	for from, to := range names {
		if v, ok := out[from]; ok {
			delete(out, from)
			out[to] = v
		}
	}
	return out
}

func (r renamed) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	for i, f := range req.Fields {
		if to, ok := toSCIM[f]; ok {
			req.Fields = slices.Clone(req.Fields)
			req.Fields[i] = to
		}
	}
	return func(yield func(connector.Item, error) bool) {
		for it, err := range r.Connector.ReadAll(ctx, req) {
			it.Fields = rename(it.Fields, fromSCIM)
			if !yield(it, err) {
				return
			}
		}
	}
}

func (r renamed) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	req.Writes = slices.Clone(req.Writes)
	for i := range req.Writes {
		req.Writes[i].Fields = rename(req.Writes[i].Fields, toSCIM)
	}
	res, err := r.Connector.Write(ctx, req)
	for i := range res {
		res[i].Stored = rename(res[i].Stored, fromSCIM)
	}
	return res, err
}

// TestKillAndRerunWithoutMatchOn kills a cycle after its first batch of creates under a policy
// without matchOn: only the origin in the created Users' externalId tells the rerun which
// Users the killed cycle made.
func TestKillAndRerunWithoutMatchOn(t *testing.T) { enginetest.KillAndRerunWithoutMatchOn(t, fixture) }
