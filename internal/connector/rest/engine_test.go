package rest

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/jsonservertest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(m.Run())
}

// TestEngine runs the engine's scenarios with json-server on both sides. A contact is an item of
// /contacts: its email and name top-level properties, its owner at /owner/email (the scope, also
// asked of the server as ?owner.email=), chainsync's origin at /sync/origin, and updatedAt, which
// the server stamps on every write. The list is paged by the Link header. The killed cycles'
// child process reaches the parent's server by the URL the endpoint's Spec gives.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

// TestKillAndRerunWithoutMatchOn kills a cycle after its first batch of creates under a policy
// without matchOn: only the origin in the created items tells the rerun which items the killed
// cycle made.
func TestKillAndRerunWithoutMatchOn(t *testing.T) { enginetest.KillAndRerunWithoutMatchOn(t, fixture) }

var fixture = enginetest.Fixture{
	New: func(t *testing.T, role string) enginetest.Endpoint {
		s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, StampField: "updatedAt",
			Data: map[string][]map[string]any{"contacts": {}}})
		return jsonEndpoint{url: s.URL, server: s}
	},
	OpenSpec: func(spec string) (enginetest.Endpoint, error) { return jsonEndpoint{url: spec}, nil },
}

const testToken = "json-server-test-token"

// contactsResource is /contacts of json-server, paged by its Link header.
func contactsResource() Resource {
	return Resource{ListPath: "/contacts", ListQuery: []Param{{Name: "owner.email", Value: "{email}"}},
		Pagination:  Pagination{Mode: LinkHeader, PageParam: "_page", SizeParam: "_limit", PageSize: 100, TotalHeader: "X-Total-Count"},
		OriginField: "/sync/origin"}
}

func contactsCollection() collection.Collection {
	return collection.Collection{Name: "contacts", KeyFields: []string{"id"}, ModifiedField: "updatedAt",
		Scope: []collection.ScopeMatch{{Field: "/owner/email", Identity: "email"}}}
}

type jsonEndpoint struct {
	url string
	// server is nil in a child process, which only connects.
	server *jsonservertest.Server
}

func (e jsonEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(context.Background(), Config{Side: side, BaseURL: e.url, Auth: Auth{BearerToken: testToken},
		Resources: map[string]Resource{"contacts": contactsResource()},
		Entities:  map[string]collection.Collection{enginetest.Entity: contactsCollection()}})
	if err != nil {
		t.Fatalf("rest.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type contact struct {
	ID    any    `json:"id,omitempty"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Owner struct {
		Email string `json:"email"`
	} `json:"owner"`
	UpdatedAt string `json:"updatedAt,omitempty"`
}

func (e jsonEndpoint) find(t testing.TB, owner, email string) []contact {
	var found []contact
	e.server.Do(t, http.MethodGet, "/contacts?"+url.Values{"owner.email": {owner}, "email": {email}}.Encode(), nil, &found)
	return found
}

// Put edits the contact as a user of the application would: an existing one keeps its other
// properties (chainsync's origin among them).
func (e jsonEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	stamp := modified.UTC().Format("2006-01-02T15:04:05.000Z")
	if found := e.find(t, owner, email); len(found) > 0 {
		e.server.Do(t, http.MethodPatch, "/contacts/"+idString(found[0].ID), map[string]any{"name": name, "updatedAt": stamp}, nil)
		return
	}
	c := contact{Email: email, Name: name, UpdatedAt: stamp}
	c.Owner.Email = owner
	e.server.Do(t, http.MethodPost, "/contacts", c, nil)
}

func (e jsonEndpoint) Delete(t testing.TB, owner, email string) {
	for _, c := range e.find(t, owner, email) {
		e.server.Do(t, http.MethodDelete, "/contacts/"+idString(c.ID), nil, nil)
	}
}

func (e jsonEndpoint) Rows(t testing.TB, owner string) []string {
	var found []contact
	e.server.Do(t, http.MethodGet, "/contacts?"+url.Values{"owner.email": {owner}}.Encode(), nil, &found)
	var rows []string
	for _, c := range found {
		if c.Owner.Email == owner { // json-server drops a filter no item can match
			rows = append(rows, c.Email+" "+c.Name)
		}
	}
	slices.Sort(rows)
	return rows
}

func (e jsonEndpoint) Spec() string      { return e.url }
func (e jsonEndpoint) Incremental() bool { return false }

func idString(id any) string {
	switch id := id.(type) {
	case string:
		return id
	case float64:
		return strconv.FormatFloat(id, 'f', -1, 64)
	}
	return ""
}
