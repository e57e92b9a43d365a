package dav

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/testutil/radicaletest"
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

func TestKindOpensFromTheBlockAndItsSecrets(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "Clients")
	s.Put(t, book+"c.vcf", vcf("c", "FN:Carla\r\nEMAIL;TYPE=work:carla@example.com\r\n"))
	env := secrets{"dav/user": radicaletest.ServiceUser, "dav/password": radicaletest.ServicePassword}
	spec := endpoint.Spec{Side: "target", Entities: people("REV"), Endpoint: syncv1alpha1.Endpoint{Name: "mailbox", Connector: syncv1alpha1.CardDAVConnector,
		CardDAV: &syncv1alpha1.DAVEndpoint{URL: s.URL, Principal: "/{email}/",
			BasicAuthSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "dav", UsernameKey: "user", PasswordKey: "password"},
			Collections:        []syncv1alpha1.DAVCollection{{Name: "contacts", DisplayName: "Clients"}}, Timeout: "10s"}}}
	g.Expect(CardDAVKind.ValidateSpec(spec)).To(Succeed())
	c, err := CardDAVKind.Open(ctx, spec, env)
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	g.Expect(c.Capabilities()).To(Equal(connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}))
	items, errs := readAll(t, c, "EMAIL;TYPE=work")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Fields["EMAIL;TYPE=work"]).To(Equal(connector.String("carla@example.com")))

	_, err = CalDAVKind.Open(ctx, spec, env)
	g.Expect(err).To(MatchError("target.caldav: must be set for connector caldav"), "the caldav kind reads the caldav block")
}

func TestKindNamesTheFieldAtFault(t *testing.T) {
	basic := &syncv1alpha1.CredentialsSecretReference{Name: "dav", UsernameKey: "user", PasswordKey: "password"}
	contacts := []syncv1alpha1.DAVCollection{{Name: "contacts"}}
	byUID := map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{UID}}}
	for _, tc := range []struct {
		name     string
		block    *syncv1alpha1.DAVEndpoint
		entities map[string]collection.Collection
		want     string
	}{
		{"no block", nil, byUID, "target.carddav: must be set for connector carddav"},
		{"no credentials", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", Collections: contacts}, byUID,
			"target.carddav: set exactly one of bearerTokenSecretRef and basicAuthSecretRef"},
		{"bad URL", &syncv1alpha1.DAVEndpoint{URL: "ftp://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts}, byUID,
			`target.carddav.url: "ftp://dav.example.com" is not an http(s) URL`},
		{"an unknown placeholder", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", Principal: "/{mail}/", BasicAuthSecretRef: basic, Collections: contacts}, byUID,
			"target.carddav.principal: {mail} is not {email}, {name} or {attributes.<key>}"},
		{"a component on an address book", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic,
			Collections: []syncv1alpha1.DAVCollection{{Name: "contacts", Component: "VTODO"}}}, byUID,
			"target.carddav.collections[0].component: an address book's items are vCards"},
		{"a collection the block does not have", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts},
			map[string]collection.Collection{"people": {Name: "clients", KeyFields: []string{UID}}},
			`entities[people].target.collection: "clients" is not one of target.carddav.collections`},
		{"a key that is not the UID", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts},
			map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{"EMAIL"}}},
			"entities[people].target.keyFields: must be [UID]"},
		{"a modification time that is not REV", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts},
			map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{UID}, ModifiedField: "LAST-MODIFIED"}},
			"entities[people].target.modifiedField: must be REV or unset"},
		{"a scope", &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts},
			map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{UID}, Scope: []collection.ScopeMatch{{Field: "X-OWNER", Identity: "email"}}}},
			"entities[people].target.scope: a user's items are those of the user's own collection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := kindFor(CardDAV, func(endpoint.Spec) *syncv1alpha1.DAVEndpoint { return tc.block }).
				ValidateSpec(endpoint.Spec{Side: "target", Entities: tc.entities})
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
		})
	}
	t.Run("a Secret key that is not there", func(t *testing.T) {
		g := NewWithT(t)
		kind := kindFor(CardDAV, func(endpoint.Spec) *syncv1alpha1.DAVEndpoint {
			return &syncv1alpha1.DAVEndpoint{URL: "https://dav.example.com", BasicAuthSecretRef: basic, Collections: contacts}
		})
		_, err := kind.Open(ctx, endpoint.Spec{Side: "target", Entities: byUID}, secrets{})
		g.Expect(err).To(MatchError("target.carddav.basicAuthSecretRef: secret dav has no key user"))
	})
}
