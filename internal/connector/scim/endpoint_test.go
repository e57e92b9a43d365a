package scim

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
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
	s := scimtest.Start(t, scimtest.Options{})
	s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann"})
	env := secrets{"app/token": scimtest.Token, "app/username": scimtest.Username, "app/password": scimtest.Password}
	var block *Endpoint
	kind := kindFor(func(endpoint.Spec) *Endpoint { return block })
	spec := endpoint.Spec{Side: "target", Entities: byUserName()}

	for name, b := range map[string]*Endpoint{
		"bearer token": {BaseURL: s.URL, BearerTokenSecretRef: &syncv1alpha1.SecretKeyReference{Name: "app", Key: "token"}},
		"basic auth": {BaseURL: s.URL, BasicAuthSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "app",
			UsernameKey: "username", PasswordKey: "password"}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			block = b
			g.Expect(kind.ValidateSpec(spec)).To(Succeed())
			c, err := kind.Open(ctx, spec, env)
			g.Expect(err).NotTo(HaveOccurred())
			defer c.Close()
			var names []connector.Value
			for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people"}) {
				g.Expect(err).NotTo(HaveOccurred())
				names = append(names, it.Fields["displayName"])
			}
			g.Expect(names).To(Equal([]connector.Value{connector.String("Ann")}))
		})
	}
}

func TestKindNamesTheFieldAtFault(t *testing.T) {
	token := &syncv1alpha1.SecretKeyReference{Name: "app", Key: "token"}
	basic := &syncv1alpha1.CredentialsSecretReference{Name: "app", UsernameKey: "username", PasswordKey: "password"}
	for _, tc := range []struct {
		name  string
		block *Endpoint
		want  string
	}{
		{"no block", nil, "target.scim: must be set for connector scim"},
		{"no credentials", &Endpoint{BaseURL: "https://app.example.com/scim"}, "target.scim: set exactly one of bearerTokenSecretRef and basicAuthSecretRef"},
		{"both credentials", &Endpoint{BaseURL: "https://app.example.com/scim", BearerTokenSecretRef: token, BasicAuthSecretRef: basic},
			"target.scim: set exactly one of bearerTokenSecretRef and basicAuthSecretRef"},
		{"bad URL", &Endpoint{BaseURL: "ftp://app.example.com", BearerTokenSecretRef: token}, `target.scim.baseURL: "ftp://app.example.com" is not an http(s) URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := kindFor(func(endpoint.Spec) *Endpoint { return tc.block }).ValidateSpec(endpoint.Spec{Side: "target", Entities: byUserName()})
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
		})
	}
	t.Run("a Secret key that is not there", func(t *testing.T) {
		g := NewWithT(t)
		kind := kindFor(func(endpoint.Spec) *Endpoint {
			return &Endpoint{BaseURL: "https://app.example.com/scim", BearerTokenSecretRef: token}
		})
		_, err := kind.Open(ctx, endpoint.Spec{Side: "target", Entities: byUserName()}, secrets{})
		g.Expect(err).To(MatchError("target.scim.bearerTokenSecretRef: secret app has no key token"))
	})
}
