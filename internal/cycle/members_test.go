package cycle

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector/registry"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

// An LDAP group's members, through a collection whose filter is the group's memberOf: the
// enrolment of a department kept as a directory group.
func TestTheMembersOfAnLDAPGroupAreReadAsAnEnrolmentSource(t *testing.T) {
	g := NewWithT(t)
	s, err := ldaptest.Start("")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = s.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	base := s.Subtree(t)
	for _, uid := range []string{"ada", "grace", "alan"} {
		s.Add(t, "uid="+uid+","+base, map[string][]string{"objectClass": {"inetOrgPerson"}, "cn": {uid}, "sn": {uid},
			"mail": {uid + "@example.com"}})
	}
	group := "cn=engineering," + base
	s.Add(t, group, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"engineering"},
		"member": {"uid=ada," + base, "uid=alan," + base}})

	policy := &syncv1alpha1.SyncPolicy{Spec: syncv1alpha1.SyncPolicySpec{Target: syncv1alpha1.Endpoint{
		Name: "directory", Connector: syncv1alpha1.LDAPConnector, LDAP: &syncv1alpha1.LDAPEndpoint{
			URL: s.URL(), BaseDN: base,
			BindSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "bind", UsernameKey: "dn", PasswordKey: "password"},
			Collections: []syncv1alpha1.LDAPCollection{{Name: "engineers", ObjectClasses: []string{"inetOrgPerson"},
				RDNAttribute: "uid", ParentDN: base, Filter: "(memberOf=" + group + ")"}},
		}}}}
	src := &syncv1alpha1.EnrolmentSource{Endpoint: syncv1alpha1.TargetSide, Collection: "engineers", KeyFields: []string{"entryUUID"},
		Identity: syncv1alpha1.MemberIdentityFields{Email: "mail", Name: "uid"}}
	eps := endpoints{policy: policy, secrets: secretValues{"bind": {"dn": []byte(s.ServiceDN), "password": []byte(s.ServicePassword)}}}
	conn, err := registry.Open(ctx, memberEndpoint(policy, src), eps)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = conn.Close() })

	list, err := readMembers(ctx, conn, src)
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, m := range list.Members {
		g.Expect(m.Key).NotTo(BeEmpty())
		g.Expect(m.Email).To(Equal(m.Name + "@example.com"))
		names = append(names, m.Name)
	}
	g.Expect(names).To(ConsistOf("ada", "alan"), "grace is not in the group")
	g.Expect(list.Unreadable).To(BeZero())
}
