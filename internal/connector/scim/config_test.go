package scim

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
)

var (
	ctx = context.Background()
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann"}
)

// byUserName is the collection as most policies have it: one User per person, found by the
// person's email as userName.
func byUserName() map[string]collection.Collection {
	return map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"},
		Scope: []collection.ScopeMatch{{Field: "userName", Identity: "email"}}}}
}

func TestValidateNamesTheFieldAtFault(t *testing.T) {
	valid := Config{Side: "target", BaseURL: "https://app.example.com/scim/v2", BearerToken: "t", Entities: byUserName()}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no base URL", func(c *Config) { c.BaseURL = "" }, "target.scim.baseURL: must be set"},
		{"not a URL", func(c *Config) { c.BaseURL = "app.example.com/scim" }, `target.scim.baseURL: "app.example.com/scim" is not an http(s) URL`},
		{"unknown delete mode", func(c *Config) { c.Deletes = "Archive" }, `target.scim.deletes: "Archive" is not Delete or Deactivate`},
		{"unknown origin", func(c *Config) { c.Origin = "Label" }, `target.scim.origin: "Label" is not ExternalID or None`},
		{"no credentials", func(c *Config) { c.BearerToken = "" }, "target.scim.bearerTokenSecretRef: the token is empty, and no basicAuthSecretRef gives a user name instead"},
		{"both credentials", func(c *Config) { c.Username, c.Password = "u", "p" }, "target.scim.bearerTokenSecretRef: a bearer token and a user name are both given"},
		{"not Users", func(c *Config) {
			c.Entities = map[string]collection.Collection{"teams": {Name: "Groups", KeyFields: []string{"id"}}}
		}, `entities[teams].target.collection: "Groups" is not a resource type this connector knows (Users)`},
		{"key is not id", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"userName"}}}
		}, "entities[people].target.keyFields: must be [id]"},
		{"modified is not meta.lastModified", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"}, ModifiedField: "updated"}}
		}, "entities[people].target.modifiedField: must be meta.lastModified or unset"},
		{"scope field is not an attribute path", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"},
				Scope: []collection.ScopeMatch{{Field: `userName eq "x" or userName`, Identity: "email"}}}}
		}, `entities[people].target.scope[0].field: "userName eq \"x\" or userName" is not a SCIM attribute path`},
		{"scope field in an unknown schema", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"},
				Scope: []collection.ScopeMatch{{Field: "urn:example:custom:1.0:User:tenant", Identity: "email"}}}}
		}, "entities[people].target.scope[0].field: \"urn:example:custom:1.0:User:tenant\": the schema urn:example:custom:1.0:User is neither"},
		{"scope on an element of a multi-valued attribute", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"},
				Scope: []collection.ScopeMatch{{Field: `emails[type eq "work"].value`, Identity: "email"}}}}
		}, `entities[people].target.scope[0].field: "emails[type eq \"work\"].value" picks an element of a multi-valued attribute, which a scope cannot compare`},
		{"where", func(c *Config) {
			c.Entities = map[string]collection.Collection{"people": {Name: Users, KeyFields: []string{"id"}, Where: "owner = @email"}}
		}, "entities[people].target.where: needs an SQL connector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := valid
			tc.mutate(&c)
			err := c.Validate()
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err).To(MatchError(connector.ErrInvalidConfig), "a person fixes it in the policy or the Secret")
		})
	}
	NewWithT(t).Expect(valid.Validate()).To(Succeed())
}

func TestScopeFilterQuotesTheIdentity(t *testing.T) {
	g := NewWithT(t)
	coll := collection.Collection{Scope: []collection.ScopeMatch{{Field: "userName", Identity: "email"},
		{Field: organization, Identity: "attributes.org"}}}
	f, _, err := scopeFilter(coll, connector.Scope{Email: `a" or userName pr or userName eq "\`, Attributes: map[string]string{"org": "R&D <EU>"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f).To(Equal(`userName eq "a\" or userName pr or userName eq \"\\" and ` + organization + ` eq "R&D <EU>"`))

	_, _, err = scopeFilter(coll, connector.Scope{Email: "a@x"})
	g.Expect(err).To(MatchError(ContainSubstring("the user has no attributes.org")), "a missing identity never matches everyone")
}

// TestScopeCannotBeWidened reads, from a real server, with identities crafted to end the filter's
// string and add a clause that matches every User: nobody else's User comes back.
func TestScopeCannotBeWidened(t *testing.T) {
	s := scimtest.Start(t, scimtest.Options{})
	s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann"})
	s.Put(scimtest.User{UserName: "bob@example.com", DisplayName: "Bob"})
	s.Put(scimtest.User{UserName: `x" or userName pr or userName eq "y`, DisplayName: "Quoted"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
	for _, email := range []string{
		`nobody" or userName pr or userName eq "x`,
		`nobody\" or userName pr or userName eq \"x`,
		`nobody") or (userName pr`,
		"nobody\" or userName pr or userName eq \"x\x00",
	} {
		t.Run(email, func(t *testing.T) {
			g := NewWithT(t)
			items, err := readAll(c, connector.Scope{Email: email})
			if err != nil {
				g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
			}
			g.Expect(items).To(BeEmpty())
		})
	}
	t.Run("an identity with quotes never matches another's User", func(t *testing.T) {
		g := NewWithT(t)
		email := `x" or userName pr or userName eq "y`
		items, err := readAll(c, connector.Scope{Email: email})
		g.Expect(err).NotTo(HaveOccurred())
		// This server compares the string as escaped, so finds nothing; RFC 7644 would find the
		// User of that very userName. Either way, no one else's.
		for _, it := range items {
			g.Expect(it.Fields["userName"]).To(Equal(connector.String(email)))
		}
	})
}

// TestScopeHoldsWhenTheServerIgnoresTheFilter reads from a server that lists every User whatever
// the filter: the connector still returns the person's own User only.
func TestScopeHoldsWhenTheServerIgnoresTheFilter(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{IgnoreFilter: true})
	s.Put(scimtest.User{UserName: "bob@example.com", DisplayName: "Bob"})
	s.Put(scimtest.User{UserName: "Ann@Example.com", DisplayName: "Ann"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
	items, err := readAll(c, ann)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Fields["displayName"]).To(Equal(connector.String("Ann")), "userName compares without case, as SCIM's eq does")
}

func newConnector(t *testing.T, cfg Config) *Connector {
	t.Helper()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readAll(c *Connector, scope connector.Scope) ([]connector.Item, error) {
	var items []connector.Item
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: scope, Entity: "people"}) {
		if err != nil {
			return items, err
		}
		items = append(items, it)
	}
	return items, nil
}
