package scim

import (
	"net/http"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
)

func members(s *scimtest.Server) map[string][]string {
	out := map[string][]string{}
	for _, g := range s.Groups() {
		out[g.DisplayName] = g.Members
	}
	return out
}

func readGroups(g Gomega, c *Connector, scope connector.Scope, field string) connector.Value {
	var items []connector.Item
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: scope, Entity: "people", Fields: []string{"userName", field}}) {
		g.Expect(err).NotTo(HaveOccurred())
		items = append(items, it)
	}
	g.Expect(items).To(HaveLen(1))
	v, ok := items[0].Fields[field]
	if !ok {
		return connector.Null()
	}
	return v
}

// A User's Groups are written one membership at a time, on the Groups' members: added to two,
// removed from one, and nobody else's membership is touched, not even one added meanwhile.
func TestGroupMembershipIsAddedAndRemovedForTheUserAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts scimtest.Options
	}{
		{"filtered by members", scimtest.Options{}},
		{"from the User's groups attribute", scimtest.Options{NoMembersFilter: true}},
		{"from a server that ignores filters", scimtest.Options{IgnoreFilter: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, tc.opts)
			bob := s.Put(scimtest.User{UserName: "bob@example.com"})
			carl := s.Put(scimtest.User{UserName: "carl@example.com"})
			staff := s.PutGroup("Staff", bob)
			s.PutGroup("Engineering")
			s.PutGroup("Sales", bob)
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})

			res, err := write(c, ann, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{
				"displayName": connector.String("Ann"), GroupNamesField: connector.String(`["Staff","engineering"]`)}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			annID := res[0].ID
			g.Expect(res[0].Stored).To(HaveKeyWithValue(GroupNamesField, connector.String(`["Engineering","Staff"]`)),
				"stored as a read gives it: the server's spelling, sorted")
			g.Expect(members(s)).To(Equal(map[string][]string{"Staff": {bob, annID}, "Engineering": {annID}, "Sales": {bob}}))
			g.Expect(readGroups(g, c, ann, GroupNamesField)).To(Equal(connector.String(`["Engineering","Staff"]`)))
			g.Expect(readGroups(g, c, ann, GroupIDsField).Text).To(ContainSubstring(staff))

			// Someone adds carl to Staff just before chainsync writes Staff's members.
			s.Inject(scimtest.Fault{Method: http.MethodPatch, PathPrefix: "/Groups/" + staff, Times: 1,
				Before: func(s *scimtest.Server) { s.AddMember(staff, carl) }})
			res, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{
				GroupNamesField: connector.String("Engineering")}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(res[0].Stored).To(HaveKeyWithValue(GroupNamesField, connector.String("Engineering")))
			g.Expect(members(s)).To(Equal(map[string][]string{"Staff": {bob, carl}, "Engineering": {annID}, "Sales": {bob}}),
				"ann left Staff; bob and carl, added meanwhile, stay")
			g.Expect(readGroups(g, c, ann, GroupNamesField)).To(Equal(connector.String("Engineering")))

			res, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{
				"title": connector.String("Engineer"), GroupNamesField: connector.Null()}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(res[0].Stored).To(HaveKeyWithValue(GroupNamesField, connector.Null()))
			g.Expect(res[0].Stored).To(HaveKeyWithValue("title", connector.String("Engineer")))
			g.Expect(members(s)).To(Equal(map[string][]string{"Staff": {bob, carl}, "Engineering": nil, "Sales": {bob}}))
			g.Expect(readGroups(g, c, ann, GroupNamesField)).To(Equal(connector.Null()))
		})
	}
}

// A Group the server does not have fails the User's item with the server's detail (by id) or a
// clear message (by name); the memberships that can be written are.
func TestUnknownGroupFailsTheItem(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	bob := s.Put(scimtest.User{UserName: "bob@example.com"})
	annID := s.Put(scimtest.User{UserName: ann.Email})
	staff := s.PutGroup("Staff", bob)
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})

	res, err := write(c, ann,
		connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{GroupIDsField: connector.String(`["g999999","` + staff + `"]`)}},
		connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{GroupNamesField: connector.String(`["Staff","Nowhere"]`)}},
		connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"userName": connector.String(ann.Email)}},
	)
	g.Expect(err).NotTo(HaveOccurred(), "an unknown Group fails its item, not the cycle")
	g.Expect(res[0].Err).To(MatchError(And(ContainSubstring("adding the User to Group g999999"), ContainSubstring("Resource g999999 not found."))),
		"the server's detail")
	g.Expect(connector.IsItemError(res[0].Err)).To(BeTrue())
	g.Expect(res[0].Err).NotTo(MatchError(connector.ErrNotFound), "the User is there; only the Group is not")
	g.Expect(res[1].Err).To(MatchError(ContainSubstring(`no Group of the SCIM server has the displayName "Nowhere"`)))
	g.Expect(connector.IsItemError(res[1].Err)).To(BeTrue())
	g.Expect(members(s)["Staff"]).To(Equal([]string{bob, annID}), "the Group that exists is written all the same")

	_, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{
		GroupIDsField: connector.String(staff), GroupNamesField: connector.String("Staff")}})
	g.Expect(err).To(MatchError(ContainSubstring("map one of them")))
	_, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: annID, Fields: map[string]connector.Value{"groups": connector.String("Staff")}})
	g.Expect(err).To(MatchError(ContainSubstring("groups attribute is read-only; map groups.display")))
}
