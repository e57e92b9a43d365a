package rest

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/testutil/jsonservertest"
)

// secrets is the Secrets a cycle pod has mounted.
type secrets map[string]string

func (s secrets) Path(syncv1alpha1.VolumePath) string { return "" }
func (s secrets) Secret(ref syncv1alpha1.SecretKeyReference) (string, error) {
	v, ok := s[ref.Name+"/"+ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
	}
	return v, nil
}

func people() map[string]collection.Collection {
	return map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{"id"}}}
}

func TestKindOpensFromTheBlockAndItsSecrets(t *testing.T) {
	g := NewWithT(t)
	s := jsonservertest.Start(t, jsonservertest.Options{Username: "svc", Password: "pw",
		Data: map[string][]map[string]any{"contacts": {{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}}}})
	block := &syncv1alpha1.HTTPEndpoint{BaseURL: s.URL,
		Auth: syncv1alpha1.HTTPAuth{BasicAuthSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "crm", UsernameKey: "username", PasswordKey: "password"}},
		Resources: []syncv1alpha1.HTTPResource{{Name: "contacts", ListPath: "/contacts", IDField: "id",
			Pagination: &syncv1alpha1.HTTPPagination{Mode: "Page", PageParam: "_page", SizeParam: "_limit", PageSize: 1}}}}
	spec := endpoint.Spec{Side: "target", Endpoint: syncv1alpha1.Endpoint{Connector: syncv1alpha1.HTTPConnector, HTTP: block}, Entities: people()}
	g.Expect(Kind.ValidateSpec(spec)).To(Succeed())
	c, err := Kind.Open(ctx, spec, secrets{"crm/username": "svc", "crm/password": "pw"})
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	var got []string
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{"name"}}) {
		g.Expect(err).NotTo(HaveOccurred())
		got = append(got, it.Fields["name"].Text)
	}
	g.Expect(got).To(Equal([]string{"Ann", "Bob"}))
}

func TestKindNamesTheFieldAtFault(t *testing.T) {
	valid := func() *syncv1alpha1.HTTPEndpoint {
		return &syncv1alpha1.HTTPEndpoint{BaseURL: "https://crm.example.com/api",
			Resources: []syncv1alpha1.HTTPResource{{Name: "contacts", ListPath: "/contacts"}}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*syncv1alpha1.HTTPEndpoint)
		colls map[string]collection.Collection
		want  string
	}{
		{"bad URL", func(b *syncv1alpha1.HTTPEndpoint) { b.BaseURL = "ftp://crm.example.com" }, nil,
			`target.http.baseURL: "ftp://crm.example.com" is not an http(s) URL`},
		{"unknown placeholder", func(b *syncv1alpha1.HTTPEndpoint) { b.Resources[0].ListPath = "/users/{mail}/contacts" }, nil,
			`target.http.resources[contacts].listPath: "/users/{mail}/contacts": {mail} is not {id}, {email}, {name} or {attributes.<key>}`},
		{"item path without id", func(b *syncv1alpha1.HTTPEndpoint) { b.Resources[0].ItemPath = "/contacts/x" }, nil,
			`target.http.resources[contacts].itemPath: "/contacts/x" must hold {id}`},
		{"cursor without its pointer", func(b *syncv1alpha1.HTTPEndpoint) {
			b.Resources[0].Pagination = &syncv1alpha1.HTTPPagination{Mode: "Cursor", CursorParam: "after"}
		}, nil, "target.http.resources[contacts].pagination.nextCursor: must be set for pagination mode Cursor"},
		{"unknown resource", nil, map[string]collection.Collection{"people": {Name: "leads", KeyFields: []string{"id"}}},
			`entities[people].target.collection: "leads" is none of target.http.resources's resources`},
		{"key is not the id field", nil, map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{"email"}}},
			"entities[people].target.keyFields: must be [id], the resource's idField"},
		{"modifiedSince without modifiedField", func(b *syncv1alpha1.HTTPEndpoint) {
			b.Resources[0].ModifiedSince = &syncv1alpha1.HTTPModifiedSince{Param: "since"}
		}, nil, "entities[people].target.modifiedField: must be set, as target.http.resources[contacts].modifiedSince reads changes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			b := valid()
			if tc.edit != nil {
				tc.edit(b)
			}
			colls := tc.colls
			if colls == nil {
				colls = people()
			}
			err := Kind.ValidateSpec(endpoint.Spec{Side: "target", Endpoint: syncv1alpha1.Endpoint{HTTP: b}, Entities: colls})
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
		})
	}
	t.Run("a Secret key that is not there", func(t *testing.T) {
		g := NewWithT(t)
		b := valid()
		b.Auth.APIKey = &syncv1alpha1.HTTPAPIKey{Header: "X-API-Key", SecretRef: syncv1alpha1.SecretKeyReference{Name: "crm", Key: "key"}}
		_, err := Kind.Open(ctx, endpoint.Spec{Side: "target", Endpoint: syncv1alpha1.Endpoint{HTTP: b}, Entities: people()}, secrets{})
		g.Expect(err).To(MatchError("target.http.auth.apiKey.secretRef: secret crm has no key key"))
	})
}
