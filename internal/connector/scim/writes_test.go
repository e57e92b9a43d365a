package scim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
)

const employeeNumber = enterpriseSchema + ":employeeNumber"

func write(c *Connector, scope connector.Scope, writes ...connector.Write) ([]connector.WriteResult, error) {
	return c.Write(ctx, connector.WriteRequest{Scope: scope, Entity: "people", Writes: writes})
}

func findUser(s *scimtest.Server, userName string) scimtest.User {
	for _, u := range s.Users() {
		if u.UserName == userName {
			return u
		}
	}
	return scimtest.User{}
}

func TestCreateFillsTheScopeAndCarriesTheOrigin(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})

	res, err := write(c, ann, connector.Write{Op: connector.OpCreate, Origin: "chainsync1:abc:0:E042", Fields: map[string]connector.Value{
		"displayName": connector.String("Ann Example"), "name.givenName": connector.String("Ann"),
		"active": connector.String("TRUE"), employeeNumber: connector.Int(42), "title": connector.Null()}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(HaveLen(1))
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].Stored).To(Equal(map[string]connector.Value{"id": connector.String(res[0].ID),
		"displayName": connector.String("Ann Example"), "name.givenName": connector.String("Ann"),
		"active": connector.Bool(true), employeeNumber: connector.String("42"), "title": connector.Null()}),
		"what the server keeps, typed as a read returns it")

	u := findUser(s, ann.Email)
	g.Expect(u.ID).To(Equal(res[0].ID), "the scope's userName is filled in from the person's email")
	g.Expect(u.ExternalID).To(Equal("chainsync1:abc:0:E042"))

	items, err := readAll(c, ann)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Origin).To(Equal("chainsync1:abc:0:E042"))
	g.Expect(items[0].Fields).To(HaveKeyWithValue(employeeNumber, connector.String("42")))
	g.Expect(items[0].Fields).To(HaveKeyWithValue("name.givenName", connector.String("Ann")))
}

func TestWriteErrorsConcernTheirItemAndCarryTheServersDetail(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	taken := s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Someone else's Ann"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})

	res, err := write(c, ann,
		connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"displayName": connector.String("Ann")}},
		connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"active": connector.String("maybe")}},
		connector.Write{Op: connector.OpUpdate, ID: "u999999", Fields: map[string]connector.Value{"displayName": connector.String("Gone")}},
		connector.Write{Op: connector.OpDelete, ID: "u999999"},
		connector.Write{Op: connector.OpUpdate, ID: taken, Fields: map[string]connector.Value{"title": connector.String("Engineer")}},
	)
	g.Expect(err).NotTo(HaveOccurred(), "no write here fails the endpoint")
	g.Expect(res).To(HaveLen(5))
	g.Expect(res[0].Err).To(MatchError(ContainSubstring(`409 Conflict (uniqueness): userName "ann@example.com" is already taken.`)))
	g.Expect(res[1].Err).To(MatchError(ContainSubstring(`active: "maybe" is not true or false`)))
	g.Expect(errors.Is(res[2].Err, connector.ErrNotFound)).To(BeTrue(), "%v", res[2].Err)
	g.Expect(errors.Is(res[3].Err, connector.ErrNotFound)).To(BeTrue(), "%v", res[3].Err)
	g.Expect(res[4].Err).NotTo(HaveOccurred(), "the batch goes on after failed items")
	for _, r := range res[:4] {
		g.Expect(connector.IsItemError(r.Err)).To(BeTrue())
	}
}

func TestUpdateChangesOnlyTheMappedAttributes(t *testing.T) {
	for _, noPatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPatch=%v", noPatch), func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, scimtest.Options{NoPatch: noPatch})
			id := s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann", ExternalID: "hr-7", Organization: "R&D"})
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
			_, err := readAll(c, ann)
			g.Expect(err).NotTo(HaveOccurred())

			res, err := write(c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Origin: "chainsync1:abc:0:E042",
				Fields: map[string]connector.Value{"displayName": connector.String("Ann Example"), employeeNumber: connector.String("E042")}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(res[0].Stored).To(HaveKeyWithValue("displayName", connector.String("Ann Example")))

			u := findUser(s, ann.Email)
			g.Expect(u.DisplayName).To(Equal("Ann Example"))
			g.Expect(u.Organization).To(Equal("R&D"), "an attribute of the extension the write does not name is kept")
			g.Expect(u.ExternalID).To(Equal("hr-7"), "an update never takes externalId from whoever set it")

			res, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{"displayName": connector.Null()}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(findUser(s, ann.Email).DisplayName).To(BeEmpty(), "a null removes the attribute")
		})
	}
}

// TestAnEditMadeAfterTheReadIsNotOverwritten changes a User on the server after the cycle read
// it: the cycle's update fails for that User (412), and the edit stays.
func TestAnEditMadeAfterTheReadIsNotOverwritten(t *testing.T) {
	for _, noPatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPatch=%v", noPatch), func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, scimtest.Options{NoPatch: noPatch})
			id := s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann"})
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
			_, err := readAll(c, ann)
			g.Expect(err).NotTo(HaveOccurred())
			s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann, edited in the app"})

			res, err := write(c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{"displayName": connector.String("Ann from HR")}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).To(MatchError(ContainSubstring("the User changed on the server since this cycle read it")))
			g.Expect(connector.IsItemError(res[0].Err)).To(BeTrue())
			g.Expect(findUser(s, ann.Email).DisplayName).To(Equal("Ann, edited in the app"))
		})
	}
}

func TestDeactivateKeepsTheUserAndStopsReadingIt(t *testing.T) {
	for _, noPatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPatch=%v", noPatch), func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, scimtest.Options{NoPatch: noPatch})
			id := s.Put(scimtest.User{UserName: "ann@example.com", DisplayName: "Ann"})
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName(), Deletes: Deactivate})

			res, err := write(c, ann, connector.Write{Op: connector.OpDelete, ID: id})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			u := findUser(s, ann.Email)
			g.Expect(u.ID).To(Equal(id), "the User is still there")
			g.Expect(u.Active).To(HaveValue(BeFalse()))

			items, err := readAll(c, ann)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(items).To(BeEmpty(), "for the engine, a deactivated User is gone")
		})
	}
}

func TestDeleteRemovesTheUser(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	id := s.Put(scimtest.User{UserName: "ann@example.com"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
	_, err := readAll(c, ann)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := write(c, ann, connector.Write{Op: connector.OpDelete, ID: id})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(s.Users()).To(BeEmpty())
}

func TestReadPagesThroughEveryUser(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{}) // it answers at most 50 per page, whatever the count asked
	for i := range 120 {
		s.Put(scimtest.User{UserName: fmt.Sprintf("p%03d@x", i), Organization: "ann@example.com", LastModified: time.Unix(int64(i), 0)})
	}
	s.Put(scimtest.User{UserName: "bob@x", Organization: "bob@example.com"})
	coll := byUserName()["people"]
	coll.Scope[0].Field = organization
	coll.ModifiedField = "meta.lastModified"
	for _, pageSize := range []int{7, 100} {
		c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, PageSize: pageSize, Entities: map[string]collection.Collection{"people": coll}})
		items, err := readAll(c, ann)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(items).To(HaveLen(120), "page size %d", pageSize)
		g.Expect(items[119].ModTime).To(Equal(time.Unix(119, 0).UTC()))
	}
}

// TestAListChangedWhilePagedFailsTheRead deletes or adds a User between two pages: the Users
// after it shift, and one would be missed and look deleted, so the read fails instead.
func TestAListChangedWhilePagedFailsTheRead(t *testing.T) {
	for name, change := range map[string]func(*scimtest.Server){
		"deleted": func(s *scimtest.Server) { s.Delete("p000@x") },
		"added":   func(s *scimtest.Server) { s.Put(scimtest.User{UserName: "new@x", Organization: "ann@example.com"}) },
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, scimtest.Options{})
			for i := range 5 {
				s.Put(scimtest.User{UserName: fmt.Sprintf("p%03d@x", i), Organization: "ann@example.com"})
			}
			coll := byUserName()["people"]
			coll.Scope[0].Field = organization
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, PageSize: 2, Entities: map[string]collection.Collection{"people": coll}})
			s.Inject(scimtest.Fault{Method: "GET", Query: "startIndex=3", Times: 1, Before: change})
			_, err := readAll(c, ann)
			g.Expect(err).To(MatchError(ContainSubstring("the Users changed while they were listed")))
			g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())

			items, err := readAll(c, ann)
			g.Expect(err).NotTo(HaveOccurred(), "the next read sees the list as it is now")
			g.Expect(items).To(HaveLen(len(s.Users())))
		})
	}
}

func TestParsePath(t *testing.T) {
	for field, want := range map[string]string{
		"userName":                          "userName",
		"name.givenName":                    "name.givenName",
		`emails[type eq "work"].value`:      `emails[type eq "work"].value`,
		employeeNumber:                      employeeNumber,
		enterpriseSchema + ":manager.value": enterpriseSchema + ":manager.value",
		`emails[type eq "work"]`:            "not a SCIM attribute path",
		`emails[value eq "x"].type`:         "not a SCIM attribute path",
		`emails[type eq "a\"b"].value`:      "not a SCIM attribute path",
		"name.givenName.x":                  "not a SCIM attribute path",
		"urn:example:2.0:User:tenant":       "neither the core User nor the enterprise extension",
	} {
		p, err := parsePath(field)
		got := p.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("parsePath(%q) = %q, want %q", field, got, want)
		}
	}
}

// TestAnElementOfAMultiValuedAttribute writes a User's work email, next to a home email someone
// else keeps up: the work one changes and goes, the home one stays.
func TestAnElementOfAMultiValuedAttribute(t *testing.T) {
	const work, home = `emails[type eq "work"].value`, `emails[type eq "home"].value`
	for _, noPatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPatch=%v", noPatch), func(t *testing.T) {
			g := NewWithT(t)
			s := scimtest.Start(t, scimtest.Options{NoPatch: noPatch})
			c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
			read := func() map[string]connector.Value {
				var items []connector.Item
				for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{work, home}}) {
					g.Expect(err).NotTo(HaveOccurred())
					items = append(items, it)
				}
				g.Expect(items).To(HaveLen(1))
				return items[0].Fields
			}

			res, err := write(c, ann, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{
				work: connector.String("ann@corp.example"), home: connector.String("ann@home.example")}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(res[0].Stored).To(HaveKeyWithValue(work, connector.String("ann@corp.example")))
			id := res[0].ID
			g.Expect(read()).To(HaveKeyWithValue(home, connector.String("ann@home.example")))

			res, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{work: connector.String("ann.example@corp.example")}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(read()).To(Equal(map[string]connector.Value{"id": connector.String(id),
				work: connector.String("ann.example@corp.example"), home: connector.String("ann@home.example")}))

			res, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{work: connector.Null()}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res[0].Err).NotTo(HaveOccurred())
			g.Expect(res[0].Stored).To(HaveKeyWithValue(work, connector.Null()))
			g.Expect(read()).To(Equal(map[string]connector.Value{"id": connector.String(id), home: connector.String("ann@home.example")}))
		})
	}
}

// TestFieldsThatCannotBeWrittenAreAPolicyToFix fails the whole batch, before any request, for a
// mapping every item would fail on, and says which field.
func TestFieldsThatCannotBeWrittenAreAPolicyToFix(t *testing.T) {
	s := scimtest.Start(t, scimtest.Options{})
	c := newConnector(t, Config{Side: "target", BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
	for field, want := range map[string]string{
		"externalId":   "entities[people].target: field externalId carries chainsync's origin token (target.scim.origin is ExternalID)",
		"id":           "entities[people].target: field id is assigned by the SCIM server",
		"given name":   `entities[people].target: field "given name" is not a SCIM attribute path`,
		"meta.created": "entities[people].target: field meta.created is assigned by the SCIM server",
	} {
		t.Run(field, func(t *testing.T) {
			g := NewWithT(t)
			res, err := write(c, ann,
				connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"displayName": connector.String("Ann")}},
				connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{field: connector.String("x")}})
			g.Expect(err).To(MatchError(ContainSubstring(want)))
			g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
			g.Expect(res).To(BeEmpty())
			g.Expect(s.Users()).To(BeEmpty(), "nothing written")
		})
	}
	t.Run("read", func(t *testing.T) {
		g := NewWithT(t)
		var err error
		for _, err = range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{"given name"}}) {
		}
		g.Expect(err).To(MatchError(ContainSubstring(`entities[people].target: field "given name" is not a SCIM attribute path`)))
		g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
	})
}
