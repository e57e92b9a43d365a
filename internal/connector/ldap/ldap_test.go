package ldap

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

var (
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann", Attributes: map[string]string{"team": "blue"}}
	bob = connector.Scope{Email: "bob@example.com", Name: "Bob", Attributes: map[string]string{"team": "blue"}}
	ctx = context.Background()
)

// config is a contacts collection in base, owned through contactOwner.
func config(t *testing.T, base string, mutate func(*Config)) Config {
	s := ldaptest.Current(t)
	cfg := Config{Side: "target", URL: s.URL(), BindDN: s.ServiceDN, BindPassword: s.ServicePassword, BaseDN: base,
		Collections: []Class{{Name: "contacts", ObjectClasses: []string{"chainsyncContact"}, RDNAttribute: "email"}},
		Entities: map[string]collection.Collection{"contacts": {Name: "contacts", KeyFields: []string{"entryUUID"},
			ModifiedField: "modifyTimestamp", Scope: []collection.ScopeMatch{{Field: "contactOwner", Identity: "email"}}}}}
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

func open(t *testing.T, cfg Config) *Connector {
	t.Helper()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func contact(t *testing.T, base, owner, email string, more map[string][]string) {
	attrs := map[string][]string{"objectClass": {"chainsyncContact"}, "email": {email}, "contactOwner": {owner}}
	for k, v := range more {
		attrs[k] = v
	}
	ldaptest.Current(t).Add(t, "email="+goldap.EscapeDN(email)+","+base, attrs)
}

func collect(g Gomega, seq iter.Seq2[connector.Item, error]) map[string]connector.Item {
	out := map[string]connector.Item{}
	for item, err := range seq {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).NotTo(HaveKey(item.ID), "read twice: %s", item.ID)
		out[item.ID] = item
	}
	return out
}

// byEmail re-keys items by their email, which the tests know in advance.
func byEmail(items map[string]connector.Item) map[string]connector.Item {
	out := map[string]connector.Item{}
	for _, item := range items {
		out[item.Fields["email"].Text] = item
	}
	return out
}

// An identity is matched literally, whatever it holds: a filter's special
// characters in it can neither widen the search nor break it.
func TestScopeCannotBeWidenedByTheIdentity(t *testing.T) {
	base := ldaptest.Current(t).Subtree(t)
	contact(t, base, ann.Email, "a@x", nil)
	contact(t, base, bob.Email, "b@x", nil)
	contact(t, base, `odd*(name)\`, "odd@x", nil)
	c := open(t, config(t, base, func(c *Config) {
		c.Collections[0].Filter = "(|(contactOwner=@email)(contactOwner=@attr_alias))"
	}))
	for _, evil := range []string{"*", "ann*", "*)(contactOwner=*", "ann@example.com)(|(contactOwner=*", `\2a`, "ann@example.com\x00", "\x00"} {
		t.Run(fmt.Sprintf("%q", evil), func(t *testing.T) {
			g := NewWithT(t)
			s := connector.Scope{Email: evil, Attributes: map[string]string{"alias": evil}}
			g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: s, Entity: "contacts"}))).To(BeEmpty())
		})
	}
	g := NewWithT(t)
	odd := connector.Scope{Email: `odd*(name)\`, Attributes: map[string]string{"alias": "none"}}
	g.Expect(byEmail(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: odd, Entity: "contacts"})))).To(HaveKey("odd@x"),
		"an identity with special characters still finds its own entries")
	annToo := connector.Scope{Email: ann.Email, Attributes: map[string]string{"alias": "none"}}
	g.Expect(byEmail(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: annToo, Entity: "contacts"})))).To(HaveLen(1))
}

func TestBindFilterEscapesPerRFC4515(t *testing.T) {
	g := NewWithT(t)
	f, err := bindFilter("(uid=@name)", connector.Scope{Name: "a*b(c)d\\e\x00"}, false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f).To(Equal(`(uid=a\2ab\28c\29d\5ce\00)`))
	_, err = bindFilter("(uid=@attr_missing)", ann, false)
	g.Expect(err).To(MatchError(ContainSubstring("the user has no attributes.missing")), "a missing value is never matched as empty")
	_, err = bindFilter("(uid=@emial)", ann, true)
	g.Expect(err).To(MatchError(ContainSubstring("unknown parameter @emial")))
	_, err = bindFilter("(mail=*@example.com)", ann, true)
	g.Expect(err).NotTo(HaveOccurred(), "a literal @ is not a parameter")
	_, err = bindFilter("(&(uid=@email)", ann, true)
	g.Expect(err).To(MatchError(ContainSubstring("is not an LDAP filter")))
}

func TestReadPagesPastTheSizeLimitAndMapsValues(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	for i := range ldaptest.SizeLimit + 5 {
		contact(t, base, ann.Email, fmt.Sprintf("p%03d@x", i), nil)
	}
	contact(t, base, ann.Email, "multi@x", map[string][]string{"telephoneNumber": {"+1 555 0002", "+1 555 0001"},
		"description": {`["looks","like","a list"]`}, "contactScore": {"7"}})
	contact(t, base, bob.Email, "bob@x", nil)
	c := open(t, config(t, base, func(c *Config) { c.PageSize = 30 }))

	got := byEmail(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"})))
	g.Expect(got).To(HaveLen(ldaptest.SizeLimit+6), "every entry, although the server answers at most %d per unpaged search", ldaptest.SizeLimit)
	g.Expect(got).NotTo(HaveKey("bob@x"))
	multi := got["multi@x"]
	g.Expect(multi.Fields["telephoneNumber"]).To(Equal(connector.String(`["+1 555 0001","+1 555 0002"]`)), "several values read as a sorted list")
	g.Expect(multi.Fields["description"]).To(Equal(connector.String(`["[\"looks\",\"like\",\"a list\"]"]`)),
		"a single value that looks like a list reads as a one-element list, so it writes back as itself")
	g.Expect(multi.Fields["dn"]).To(Equal(connector.String("email=multi@x," + base)))
	g.Expect(multi.ID).To(MatchRegexp(`^[0-9a-f-]{36}$`), "the key is the entry's entryUUID")
	g.Expect(multi.ModTime).To(BeTemporally("~", time.Now(), time.Minute))
}

func TestWritesAddReplaceRenameAndDelete(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	contact(t, base, ann.Email, "carl@x", map[string][]string{"name": {"Carl"}, "description": {"kept by the directory"}})
	contact(t, base, bob.Email, "dora@x", map[string][]string{"name": {"Dora"}})
	c := open(t, config(t, base, nil))
	ids := map[string]string{}
	for _, scope := range []connector.Scope{ann, bob} {
		for id, item := range collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: scope, Entity: "contacts"})) {
			ids[item.Fields["email"].Text] = id
		}
	}

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("fay@x"), "name": connector.String("Fay"),
			"telephoneNumber": connector.String(`["+1 555 0101","+1 555 0100"]`), "contactScore": connector.Int(3)}},
		{Op: connector.OpUpdate, ID: ids["carl@x"], Fields: map[string]connector.Value{"name": connector.String("Carlos"), "email": connector.String("carlos@x")}},
		{Op: connector.OpUpdate, ID: ids["dora@x"], Fields: map[string]connector.Value{"name": connector.String("not yours")}},
		{Op: connector.OpDelete, ID: ids["dora@x"]},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("fay@x"), "name": connector.String("Fay again")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("gus@x"), "contactScore": connector.String("lots")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("no email")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("h@x"), "contactOwner": connector.String(bob.Email)}},
		{Op: connector.OpUpdate, ID: "00000000-0000-0000-0000-000000000000", Fields: map[string]connector.Value{"name": connector.String("ghost")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].ID).To(MatchRegexp(`^[0-9a-f-]{36}$`), "a create returns the entryUUID the server assigned")
	g.Expect(res[0].Stored["telephoneNumber"].Text).To(Equal(`["+1 555 0100","+1 555 0101"]`), "stored as the next read returns it")
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[1].ID).To(Equal(ids["carl@x"]), "a rename keeps the item's ID")
	g.Expect(res[1].Stored["dn"].Text).To(Equal("email=carlos@x," + base))
	g.Expect(res[2].Err).To(MatchError(connector.ErrNotFound), "bob's entry is out of ann's scope")
	g.Expect(res[3].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(res[4].Err).To(MatchError(ContainSubstring("Already Exists")), "the server's own words")
	g.Expect(res[5].Err).To(MatchError(ContainSubstring("contactScore")))
	g.Expect(res[5].Err).To(MatchError(ContainSubstring("Invalid Attribute Syntax")))
	g.Expect(res[6].Err).To(MatchError(ContainSubstring("needs a value for email")))
	g.Expect(res[7].Err).To(MatchError(ContainSubstring("not the user's")))
	g.Expect(res[8].Err).To(MatchError(connector.ErrNotFound))
	for _, r := range res[2:] {
		g.Expect(connector.IsItemError(r.Err)).To(BeTrue(), "%v", r.Err)
	}

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(2))
	carl := got[ids["carl@x"]]
	g.Expect(carl.Fields["name"].Text).To(Equal("Carlos"))
	g.Expect(carl.Fields["email"].Text).To(Equal("carlos@x"), "the old RDN value is gone")
	g.Expect(carl.Fields["description"].Text).To(Equal("kept by the directory"), "attributes not written are left alone")
	g.Expect(got[res[0].ID].Fields["contactOwner"].Text).To(Equal(ann.Email), "a create lands in the user's scope")
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: bob, Entity: "contacts"}))).To(HaveKey(ids["dora@x"]))

	res, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: ids["carl@x"], Fields: map[string]connector.Value{"description": connector.Null(), "telephoneNumber": connector.String("+1 555 0199")}},
		{Op: connector.OpDelete, ID: res[0].ID},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	got = collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[ids["carl@x"]].Fields).NotTo(HaveKey("description"), "a null removes the attribute")
	g.Expect(got[ids["carl@x"]].Fields["telephoneNumber"].Text).To(Equal("+1 555 0199"))

	// An attribute the schema lacks is the field mapping's fault.
	_, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: ids["carl@x"], Fields: map[string]connector.Value{"favouriteColour": connector.String("blue")}}}})
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "%v", err)
	g.Expect(err).To(MatchError(ContainSubstring("favouriteColour")))
}

// Change reads take what was modified at or after the watermark, including
// entries modified later in the watermark's own second.
func TestIncrementalReads(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	contact(t, base, ann.Email, "old@x", map[string][]string{"modified": {"20240101000000Z"}})
	contact(t, base, ann.Email, "a@x", map[string][]string{"modified": {"20240102000000.5Z"}})
	contact(t, base, bob.Email, "bob@x", map[string][]string{"modified": {"20250101000000Z"}})
	c := open(t, config(t, base, func(c *Config) {
		e := c.Entities["contacts"]
		e.ModifiedField = "modified"
		c.Entities["contacts"] = e
	}))
	g.Expect(c.Capabilities()).To(Equal(connector.Capabilities{Incremental: true, ModTime: true, MaxBatch: MaxBatch}))
	req := connector.ReadRequest{Scope: ann, Entity: "contacts"}
	mark, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	stamp, cookie, err := decodeWatermark(mark)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(stamp).To(Equal("20240102000000.5Z"), "the newest of ann's entries, not bob's")
	g.Expect(cookie).NotTo(BeEmpty(), "the test directory offers content synchronisation")
	// Read by time alone, as on a directory without content synchronisation.
	mark = connector.Watermark(stamp)

	contact(t, base, ann.Email, "same@x", map[string][]string{"modified": {"20240102000000.5Z"}})
	contact(t, base, ann.Email, "untimed@x", nil)
	changes := byEmail(collect(g, c.ReadChanges(ctx, req, mark)))
	g.Expect(changes).To(HaveKey("same@x"), "an entry at the watermark's instant written later is not missed")
	g.Expect(changes).To(HaveKey("untimed@x"), "an entry without a modification time is not missed")
	g.Expect(changes).NotTo(HaveKey("old@x"))
	g.Expect(changes).NotTo(HaveKey("bob@x"))
	g.Expect(changes["a@x"].ModTime).To(Equal(time.Date(2024, 1, 2, 0, 0, 0, 5e8, time.UTC)))

	old := byEmail(collect(g, c.ReadAll(ctx, req)))["old@x"]
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: old.ID, Fields: map[string]connector.Value{"name": connector.String("edited")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].ModTime).To(BeTemporally("~", time.Now(), time.Minute), "a write stamps the modification attribute")
	for _, bad := range []connector.Watermark{"yesterday", "20240101000000Z)(objectClass=*"} {
		for _, err := range c.ReadChanges(ctx, req, bad) {
			g.Expect(err).To(MatchError(ContainSubstring("was not made by the ldap connector")))
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	g := NewWithT(t)
	err := Config{Side: "target", URL: "http://x", StartTLS: true, PageSize: -1,
		Collections: []Class{{Name: "people", ObjectClasses: []string{"inet Org"}, RDNAttribute: "", Filter: "(uid=@nmae)"}, {Name: "people"}},
		Entities:    map[string]collection.Collection{"people": {Name: "persons", KeyFields: []string{"entryUUID", "uid"}}},
	}.ValidateSpec()
	for _, want := range []string{
		`target.ldap.url: "http://x" is not ldap://host[:port] or ldaps://host[:port]`,
		"target.ldap.baseDN: must be set",
		"target.ldap.pageSize: must not be negative",
		`target.ldap.collections[0].objectClasses: "inet Org" is not an object class name`,
		`target.ldap.collections[0].rdnAttribute: "" is not an attribute name`,
		"target.ldap.collections[0].filter: unknown parameter @nmae",
		`target.ldap.collections[1].name: "people" is defined twice`,
		"target.ldap.collections[1].objectClasses: at least one object class is required",
		`entities[people].target.collection: "persons" is not one of target.ldap.collections[].name`,
		"entities[people].target.keyFields: ldap keys an entry by one attribute",
	} {
		g.Expect(err).To(MatchError(ContainSubstring(want)))
	}

	base := ldaptest.Current(t).Subtree(t)
	_, err = New(ctx, config(t, "ou=nowhere,"+base, func(c *Config) { c.Collections[0].ParentDN = "ou=gone," + base }))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "%v", err)
	g.Expect(err).To(MatchError(ContainSubstring(`target.ldap.baseDN: entry "ou=nowhere,` + base + `" does not exist`)))
	g.Expect(err).To(MatchError(ContainSubstring(`target.ldap.collections[0].parentDN: entry "ou=gone,` + base + `" does not exist`)))

	_, err = New(ctx, config(t, base, func(c *Config) { c.BindPassword = "wrong" }))
	g.Expect(err).To(MatchError(ContainSubstring("target.ldap.bindSecretRef: 127.0.0.1:")))
	g.Expect(err).To(MatchError(ContainSubstring("Invalid Credentials")))
}

func TestUnreachableServerIsAnEndpointFailure(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, err = New(ctx, config(t, ldaptest.Suffix, func(c *Config) { c.URL = fmt.Sprintf("ldap://127.0.0.1:%d", port) }))
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("target.ldap.url: cannot reach 127.0.0.1:%d", port))))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeFalse(), "a server down is an outage, not a wrong spec")
}

// TestCreatesCarryTheirOrigin: with chainsync's schema, an entry the
// connector creates holds the engine's origin token, read back as the
// item's Origin and never as a field; entries it did not create have none.
func TestCreatesCarryTheirOrigin(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	contact(t, base, ann.Email, "before@x", nil)
	g.Expect(open(t, config(t, base, nil)).Capabilities().Origin).To(BeFalse(), "no origin attribute, no proof")
	c := open(t, config(t, base, func(c *Config) {
		c.Collections[0].OriginAttribute, c.Collections[0].OriginObjectClass = "chainsyncOrigin", "chainsyncSynced"
	}))
	g.Expect(c.Capabilities().Origin).To(BeTrue())
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Origin: "chainsync1:abc:0:k1", Fields: map[string]connector.Value{"email": connector.String("new@x"),
			"chainsyncOrigin": connector.String("forged")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].Stored).NotTo(HaveKey("chainsyncOrigin"))
	got := byEmail(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"})))
	g.Expect(got["new@x"].Origin).To(Equal("chainsync1:abc:0:k1"), "the token, not a field's value")
	g.Expect(got["new@x"].Fields).NotTo(HaveKey("chainsyncOrigin"))
	g.Expect(got["before@x"].Origin).To(BeEmpty())
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts", Fields: []string{"email"}}))).
		To(ContainElement(HaveField("Origin", "chainsync1:abc:0:k1")), "asked for when only some fields are")
}

// TestBinaryValuesAndFieldNamesRoundTrip: a binary value reads as bytes
// and is written back as the same bytes; fields are named as the policy
// spells them, whatever case the directory answers in.
func TestBinaryValuesAndFieldNamesRoundTrip(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	c := open(t, config(t, base, nil))
	photo := []byte{0xff, 0xd8, 0xff, 0x00, 0x10}
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("pic@x"), "jpegphoto": connector.Bytes(photo),
			"TELEPHONENUMBER": connector.String("+1 555 0100")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].Stored["jpegphoto"]).To(Equal(connector.Bytes(photo)))
	g.Expect(res[0].Stored["TELEPHONENUMBER"]).To(Equal(connector.String("+1 555 0100")))
	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts", Fields: []string{"jpegphoto", "TELEPHONENUMBER"}}))
	g.Expect(got[res[0].ID].Fields["jpegphoto"]).To(Equal(connector.Bytes(photo)))
	g.Expect(got[res[0].ID].Fields["TELEPHONENUMBER"]).To(Equal(connector.String("+1 555 0100")))
}

// TestServerGoneMidCycleIsAnEndpointFailure: reads and writes against a
// directory that went away fail the cycle, naming the host, not one item.
func TestServerGoneMidCycleIsAnEndpointFailure(t *testing.T) {
	g := NewWithT(t)
	s, err := ldaptest.Start(originSchema + "\n" + testSchema)
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Stop()
	c := open(t, Config{Side: "source", URL: s.URL(), BindDN: s.ServiceDN, BindPassword: s.ServicePassword, BaseDN: ldaptest.Suffix,
		Timeout: 2 * time.Second, Collections: []Class{{Name: "contacts", ObjectClasses: []string{"chainsyncContact"}, RDNAttribute: "email"}},
		Entities: map[string]collection.Collection{"contacts": {Name: "contacts"}}})
	s.Kill()
	host := fmt.Sprintf("cannot reach %s:%d", s.Host, s.Port)
	var readErrs []error
	for _, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}) {
		readErrs = append(readErrs, err)
	}
	g.Expect(readErrs).To(HaveLen(1))
	g.Expect(readErrs[0]).To(MatchError(ContainSubstring(host)))
	g.Expect(connector.IsEndpointFailure(readErrs[0])).To(BeTrue())
	_, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("a@x")}}}})
	g.Expect(err).To(MatchError(ContainSubstring(host)))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
}

// TestChangeReadsSeeDeletions: on a directory that offers content
// synchronisation (RFC 4533), a change read reports the entries deleted
// since the watermark, and only what changed.
func TestChangeReadsSeeDeletions(t *testing.T) {
	g := NewWithT(t)
	s := ldaptest.Current(t)
	base := s.Subtree(t)
	for _, email := range []string{"keep@x", "edit@x", "gone@x"} {
		contact(t, base, ann.Email, email, nil)
	}
	contact(t, base, bob.Email, "bobs@x", nil)
	c := open(t, config(t, base, nil))
	req := connector.ReadRequest{Scope: ann, Entity: "contacts"}
	before := byEmail(collect(g, c.ReadAll(ctx, req)))
	mark, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())

	admin := s.Connect(t)
	defer admin.Close()
	g.Expect(admin.Del(goldap.NewDelRequest("email=gone@x,"+base, nil))).To(Succeed())
	edit := goldap.NewModifyRequest("email=edit@x,"+base, nil)
	edit.Replace("name", []string{"Edited"})
	g.Expect(admin.Modify(edit)).To(Succeed())
	contact(t, base, ann.Email, "new@x", nil)

	changes := map[string]connector.Item{}
	for item, err := range c.ReadChanges(ctx, req, mark) {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(changes).NotTo(HaveKey(item.ID), "read twice: %s", item.ID)
		changes[item.ID] = item
	}
	g.Expect(changes).To(HaveKeyWithValue(before["gone@x"].ID, connector.Item{ID: before["gone@x"].ID, Deleted: true}))
	g.Expect(changes[before["edit@x"].ID].Fields["name"].Text).To(Equal("Edited"))
	g.Expect(byEmail(changes)).To(HaveKey("new@x"))
	g.Expect(changes).NotTo(HaveKey(before["keep@x"].ID), "an entry that did not change is not read")
}

// TestChangeReadsPastTheSizeLimit: a sync refresh cannot be paged, so more
// changes than the account may read at once make it fail part way; the
// read goes on by modification time, and no entry is read twice.
func TestChangeReadsPastTheSizeLimit(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	c := open(t, config(t, base, nil))
	req := connector.ReadRequest{Scope: ann, Entity: "contacts"}
	mark, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range ldaptest.SizeLimit + 20 {
		contact(t, base, ann.Email, fmt.Sprintf("p%03d@x", i), nil)
	}
	changes := map[string]bool{}
	for item, err := range c.ReadChanges(ctx, req, mark) {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(changes).NotTo(HaveKey(item.ID), "read twice: %s", item.ID)
		changes[item.ID] = true
	}
	g.Expect(changes).To(HaveLen(ldaptest.SizeLimit + 20))
}
