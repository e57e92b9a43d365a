package rest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/testutil/jsonservertest"
)

// odd is an identity with every character that could end a path segment or a query value.
var odd = connector.Scope{Email: "o/d?d&x=1#f%20@example.com", Name: "Odd"}

func ids(items []connector.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func names(items []connector.Item, field string) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Fields[field].Text)
	}
	slices.Sort(out)
	return out
}

func read(t *testing.T, c *Connector, scope connector.Scope, fields ...string) []connector.Item {
	t.Helper()
	var items []connector.Item
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: scope, Entity: "people", Fields: fields}) {
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		items = append(items, it)
	}
	return items
}

func write(t *testing.T, c *Connector, scope connector.Scope, ws ...connector.Write) []connector.WriteResult {
	t.Helper()
	res, err := c.Write(ctx, connector.WriteRequest{Scope: scope, Entity: "people", Writes: ws})
	if err != nil {
		t.Fatalf("writing: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("writing: %v", r.Err)
		}
	}
	return res
}

func serverConfig(s *jsonservertest.Server, res Resource, coll collection.Collection) Config {
	coll.Name = "contacts"
	coll.KeyFields = []string{"id"}
	return Config{Side: "target", BaseURL: s.URL, Auth: Auth{BearerToken: testToken},
		Resources: map[string]Resource{"contacts": res}, Entities: map[string]collection.Collection{"people": coll}}
}

// TestScopeAsAQueryParameterEscapesTheIdentity writes and reads one user's contacts, whose email
// holds / ? & # %, by a query parameter json-server filters on: the server sees the identity
// whole, and no other user's contact is read.
func TestScopeAsAQueryParameterEscapesTheIdentity(t *testing.T) {
	g := NewWithT(t)
	s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, Data: map[string][]map[string]any{"contacts": {
		{"id": 1, "owner": "o", "name": "someone else's"},
		{"id": 2, "owner": "o/d?d", "name": "a prefix of the identity"},
	}}})
	c, _ := open(t, serverConfig(s, Resource{ListPath: "/contacts", ListQuery: []Param{{Name: "owner", Value: "{email}"}}},
		collection.Collection{Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}))
	write(t, c, odd, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("Odd's")}})
	items := read(t, c, odd, "name", "owner")
	g.Expect(names(items, "name")).To(Equal([]string{"Odd's"}))
	g.Expect(items[0].Fields["owner"]).To(Equal(connector.String(odd.Email)), "the create stored the identity whole")
}

// TestScopeAsAPathSegmentEscapesTheIdentity uses json-server's nested routes, /users/{userId}/contacts,
// whose segment the server decodes into userId: an identity with / ? & # % is one segment. (The
// users exist: json-server deletes the contacts of users it does not have after every delete.)
func TestScopeAsAPathSegmentEscapesTheIdentity(t *testing.T) {
	g := NewWithT(t)
	s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, Data: map[string][]map[string]any{
		"users": {{"id": "o"}, {"id": odd.Email}}, "contacts": {{"id": 1, "userId": "o", "name": "someone else's"}}}})
	c, _ := open(t, serverConfig(s, Resource{ListPath: "/users/{email}/contacts", ItemPath: "/contacts/{id}"}, collection.Collection{}))
	res := write(t, c, odd, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("Odd's")}})
	var stored map[string]any
	s.Do(t, http.MethodGet, "/contacts/"+res[0].ID, nil, &stored)
	g.Expect(stored["userId"]).To(Equal(odd.Email), "the server decoded the segment into the whole identity")
	g.Expect(names(read(t, c, odd, "name"), "name")).To(Equal([]string{"Odd's"}))

	write(t, c, odd, connector.Write{Op: connector.OpUpdate, ID: res[0].ID, Fields: map[string]connector.Value{"name": connector.String("renamed")}})
	g.Expect(names(read(t, c, odd, "name"), "name")).To(Equal([]string{"renamed"}))
	write(t, c, odd, connector.Write{Op: connector.OpDelete, ID: res[0].ID})
	g.Expect(read(t, c, odd, "name")).To(BeEmpty())
	g.Expect(s.Items(t, "contacts")).To(HaveLen(1), "someone else's contact is left")
}

// TestNestedFieldsKeepWhatTheyDoNotName writes fields inside a nested object and an array: the
// create builds them, an update changes only what the fields point at, a null removes it.
func TestNestedFieldsKeepWhatTheyDoNotName(t *testing.T) {
	g := NewWithT(t)
	s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, Data: map[string][]map[string]any{"contacts": {}}})
	c, _ := open(t, serverConfig(s, Resource{ListPath: "/contacts"}, collection.Collection{}))
	res := write(t, c, ann, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{
		"/name/first":     connector.String("Ann"),
		"/emails/0/value": connector.String("ann@work.example"),
		"/emails/1/value": connector.String("ann@home.example"),
		"/address/zip":    connector.Int(1000),
		"/flags/vip":      connector.Bool(true),
		"/a~1b":           connector.String("slash in a name"),
	}})
	g.Expect(res[0].Stored).To(HaveKeyWithValue("/address/zip", connector.Int(1000)))
	id := res[0].ID
	// Someone adds to the item in the application.
	s.Do(t, http.MethodPatch, "/contacts/"+id, map[string]any{"name": map[string]any{"first": "Ann", "last": "Lee"},
		"emails": []any{map[string]any{"value": "ann@work.example", "type": "work"}, map[string]any{"value": "ann@home.example"}}}, nil)

	write(t, c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{
		"/name/first":     connector.String("Anne"),
		"/emails/1/value": connector.String("anne@home.example"),
		"/flags/vip":      connector.Null(),
	}})
	var got map[string]any
	s.Do(t, http.MethodGet, "/contacts/"+id, nil, &got)
	g.Expect(got["name"]).To(Equal(map[string]any{"first": "Anne", "last": "Lee"}), "the last name, not mapped, is kept")
	g.Expect(got["emails"]).To(Equal([]any{map[string]any{"value": "ann@work.example", "type": "work"}, map[string]any{"value": "anne@home.example"}}))
	g.Expect(got["flags"]).To(Equal(map[string]any{}))
	g.Expect(got["a/b"]).To(Equal("slash in a name"))
	g.Expect(got["address"]).To(Equal(map[string]any{"zip": float64(1000)}), "an Int is a JSON number")

	items := read(t, c, ann, "/name/first", "/emails/0", "/flags/vip")
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Fields).To(Equal(map[string]connector.Value{
		"id":          connector.Int(1),
		"/name/first": connector.String("Anne"),
		"/emails/0":   connector.String(`{"type":"work","value":"ann@work.example"}`),
	}), "an object read whole is its JSON; a removed field is absent")
}

// TestPaginationModesReadEveryItemOnce pages 23 items by 5 in each mode json-server offers.
func TestPaginationModesReadEveryItemOnce(t *testing.T) {
	var data []map[string]any
	for i := range 23 {
		data = append(data, map[string]any{"id": i + 1, "name": fmt.Sprintf("p%02d", i)})
	}
	s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, Data: map[string][]map[string]any{"contacts": data}})
	for mode, p := range map[string]Pagination{
		"page numbers":                {Mode: PageNumber, PageParam: "_page", SizeParam: "_limit", PageSize: 5},
		"page numbers with a total":   {Mode: PageNumber, PageParam: "_page", SizeParam: "_limit", PageSize: 5, TotalHeader: "X-Total-Count"},
		"offsets":                     {Mode: Offset, OffsetParam: "_start", SizeParam: "_limit", PageSize: 5},
		"Link header":                 {Mode: LinkHeader, PageParam: "_page", SizeParam: "_limit", PageSize: 5},
		"a page bigger than the list": {Mode: PageNumber, PageParam: "_page", SizeParam: "_limit", PageSize: 100},
	} {
		t.Run(mode, func(t *testing.T) {
			g := NewWithT(t)
			c, _ := open(t, serverConfig(s, Resource{ListPath: "/contacts", Pagination: p}, collection.Collection{}))
			items := read(t, c, ann, "name")
			g.Expect(items).To(HaveLen(23))
			g.Expect(names(items, "name")[22]).To(Equal("p22"))
		})
	}
	t.Run("fewer pages than the list needs", func(t *testing.T) {
		g := NewWithT(t)
		cfg := serverConfig(s, Resource{ListPath: "/contacts", Pagination: Pagination{Mode: LinkHeader, PageParam: "_page", SizeParam: "_limit", PageSize: 5}},
			collection.Collection{})
		cfg.MaxPages = 3
		c, _ := open(t, cfg)
		_, errs := readAll(c, "people")
		g.Expect(errs).To(HaveLen(1))
		g.Expect(errs[0].Error()).To(ContainSubstring("did not end after 3 pages (target.http.maxPages: raise it if the list is that long)"))
	})
}

// TestCredentialKinds reads from json-server requiring each kind of credentials, and fails
// clearly with the wrong ones.
func TestCredentialKinds(t *testing.T) {
	data := map[string][]map[string]any{"contacts": {{"id": 1, "name": "Ann"}}}
	for name, tc := range map[string]struct {
		opts jsonservertest.Options
		auth Auth
	}{
		"bearer": {jsonservertest.Options{Token: "tok-123"}, Auth{BearerToken: "tok-123"}},
		"basic":  {jsonservertest.Options{Username: "svc", Password: "pw-123"}, Auth{Username: "svc", Password: "pw-123"}},
		"API key": {jsonservertest.Options{APIKeyHeader: "X-API-Key", APIKey: "key-123"},
			Auth{APIKeyHeader: "X-API-Key", APIKey: "key-123"}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			tc.opts.Data = data
			s := jsonservertest.Start(t, tc.opts)
			cfg := serverConfig(s, Resource{ListPath: "/contacts"}, collection.Collection{})
			cfg.Auth = tc.auth
			c, _ := open(t, cfg)
			g.Expect(names(read(t, c, ann, "name"), "name")).To(Equal([]string{"Ann"}))

			cfg.Auth = Auth{BearerToken: "wrong"}
			c, _ = open(t, cfg)
			_, errs := readAll(c, "people")
			g.Expect(errs).To(HaveLen(1))
			g.Expect(errs[0].Error()).To(ContainSubstring("target.http.auth: the API refused the credentials"))
			g.Expect(errs[0]).NotTo(MatchError(connector.ErrInvalidConfig))
		})
	}
}

// TestIncrementalReadsAskForTheChangesSinceTheWatermark lets json-server stamp updatedAt on every
// write and asks for updatedAt_gte: a change read reads what changed after the watermark, and
// not what did not.
func TestIncrementalReadsAskForTheChangesSinceTheWatermark(t *testing.T) {
	g := NewWithT(t)
	old := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	s := jsonservertest.Start(t, jsonservertest.Options{Token: testToken, StampField: "updatedAt", Data: map[string][]map[string]any{
		"contacts": {{"id": 1, "name": "old", "updatedAt": old}, {"id": 2, "name": "also old", "updatedAt": old}}}})
	c, _ := open(t, serverConfig(s, Resource{ListPath: "/contacts", ModifiedSince: &ModifiedSince{Param: "updatedAt_gte", Overlap: time.Second}},
		collection.Collection{ModifiedField: "updatedAt"}))
	g.Expect(c.Capabilities().Incremental).To(BeTrue())
	req := connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{"name"}}
	wm, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	time.Sleep(1100 * time.Millisecond) // past the overlap and the Date header's second
	s.Do(t, http.MethodPatch, "/contacts/2", map[string]any{"name": "changed"}, nil)
	s.Do(t, http.MethodPost, "/contacts", map[string]any{"name": "new"}, nil)

	var changed []connector.Item
	for it, err := range c.ReadChanges(ctx, req, wm) {
		g.Expect(err).NotTo(HaveOccurred())
		changed = append(changed, it)
	}
	g.Expect(names(changed, "name")).To(Equal([]string{"changed", "new"}))
	g.Expect(changed[0].ModTime).To(BeTemporally("~", time.Now(), 10*time.Second), "the server's stamp is the item's modification time")
	g.Expect(read(t, c, ann, "name")).To(HaveLen(3), "a full read still reads everything")
}
