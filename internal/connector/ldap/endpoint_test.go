package ldap

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

// secrets is a cycle pod's view of the policy's Secrets.
type secrets map[string]string

func (secrets) Path(syncv1alpha1.VolumePath) string { return "" }
func (s secrets) Secret(ref syncv1alpha1.SecretKeyReference) (string, error) {
	v, ok := s[ref.Name+"/"+ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
	}
	return v, nil
}

// TestKindOpensFromTheBlockAndItsSecrets: the block, its Secrets and the
// entities make a working connector; a collection without keyFields is
// keyed by entryUUID.
func TestKindOpensFromTheBlockAndItsSecrets(t *testing.T) {
	g := NewWithT(t)
	s := ldaptest.Current(t)
	base := s.Subtree(t)
	contact(t, base, ann.Email, "a@x", nil)
	block := &EndpointBlock{URL: s.TLSURL(), BaseDN: base, Timeout: "10s", PageSize: 50,
		BindSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "bind", UsernameKey: "username", PasswordKey: "password"},
		CASecretRef:   &syncv1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"},
		Collections:   []CollectionBlock{{Name: "contacts", ObjectClasses: []string{"chainsyncContact"}, RDNAttribute: "email"}}}
	kind := NewKind(func(endpoint.Spec) *EndpointBlock { return block })
	spec := endpoint.Spec{Side: "target", Entities: map[string]collection.Collection{"contacts": {Name: "contacts",
		Scope: []collection.ScopeMatch{{Field: "contactOwner", Identity: "email"}}}}}
	g.Expect(kind.ValidateSpec(spec)).To(Succeed())

	env := secrets{"bind/username": s.ServiceDN, "bind/password": s.ServicePassword, "ca/ca.crt": s.CAPEM}
	c, err := kind.Open(ctx, spec, env)
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	items := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(items).To(HaveLen(1))
	for id, item := range items {
		g.Expect(id).To(Equal(item.Fields["entryUUID"].Text))
	}

	delete(env, "ca/ca.crt")
	_, err = kind.Open(ctx, spec, env)
	g.Expect(err).To(MatchError(ContainSubstring("target.ldap.caSecretRef: secret ca has no key ca.crt")))

	block.Timeout = "soon"
	err = kind.ValidateSpec(spec)
	g.Expect(err).To(MatchError(ContainSubstring(`target.ldap.timeout: "soon" is not a positive duration`)))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue())
	g.Expect(NewKind(func(endpoint.Spec) *EndpointBlock { return nil }).ValidateSpec(spec)).To(MatchError("target.ldap: must be set for connector ldap"))
}
