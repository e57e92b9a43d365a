package ldap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// certificate is a self-signed certificate's DER, which slapd checks.
func certificate(t *testing.T, name string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(der)
}

// rawValues reads an attribute's octets as the directory holds them.
func rawValues(t *testing.T, dn, attr string) [][]byte {
	conn := ldaptest.Current(t).Connect(t)
	defer conn.Close()
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	if err != nil {
		t.Fatalf("reading %s of %s: %v", attr, dn, err)
	}
	return res.Entries[0].GetEqualFoldRawAttributeValues(attr)
}

// Binary attributes are base64 text on chainsync's side and octets in the
// directory: those the schema gives a binary syntax (JPEG, certificate,
// octet string, or inherited from one), those transferred with ;binary,
// and those a collection declares, even when their octets happen to be
// text.
func TestBinaryAttributesAreBase64(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	c := open(t, config(t, base, func(c *Config) { c.Collections[0].BinaryAttributes = []string{"description"} }))
	certA, certB := certificate(t, "a"), certificate(t, "b")
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("pic@x"),
			"jpegPhoto":              connector.String(b64("GIF89a")),
			"userCertificate;binary": connector.String(fmt.Sprintf(`[%q,%q]`, b64(certB), b64(certA))),
			"contactPortrait":        connector.String(b64("plain text octets")),
			"description":            connector.String(b64("hello")),
		}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"email": connector.String("bad@x"), "jpegPhoto": connector.String("not base64!")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[1].Err).To(MatchError(ContainSubstring(`jpegPhoto: a binary attribute takes base64 text, and "not base64!" is not`)))
	g.Expect(connector.IsItemError(res[1].Err)).To(BeTrue())

	dn := "email=pic@x," + base
	g.Expect(rawValues(t, dn, "jpegPhoto")).To(Equal([][]byte{[]byte("GIF89a")}), "the directory holds the octets, not their base64")
	g.Expect(rawValues(t, dn, "userCertificate;binary")).To(ConsistOf([]byte(certA), []byte(certB)))
	g.Expect(rawValues(t, dn, "description")).To(Equal([][]byte{[]byte("hello")}))

	certs := []string{b64(certA), b64(certB)}
	slices.Sort(certs)
	want := map[string]connector.Value{
		"jpegPhoto":              connector.Bytes([]byte("GIF89a")),
		"userCertificate;binary": connector.String(fmt.Sprintf(`[%q,%q]`, certs[0], certs[1])),
		"contactPortrait":        connector.Bytes([]byte("plain text octets")),
		"description":            connector.Bytes([]byte("hello")),
	}
	fields := []string{"jpegPhoto", "userCertificate;binary", "contactPortrait", "description"}
	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts", Fields: fields}))[res[0].ID]
	for f, v := range want {
		g.Expect(got.Fields).To(HaveKeyWithValue(f, v), "read as base64")
		g.Expect(res[0].Stored).To(HaveKeyWithValue(f, v), "stored as a read returns it")
	}
	g.Expect(got.Fields["jpegPhoto"].Text).To(Equal(b64("GIF89a")), "the same text the source wrote: no change next cycle")
}

// An entry keyed by an octet string (objectGUID on Active Directory) has
// its base64 for ID, and writes find it by its octets.
func TestBinaryKey(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	guid := "\x01\x00*()\\\xff\x10"
	contact(t, base, ann.Email, "keyed@x", map[string][]string{"contactBadge": {guid}})
	c := open(t, config(t, base, func(c *Config) {
		e := c.Entities["contacts"]
		e.KeyFields = []string{"contactBadge"}
		c.Entities["contacts"] = e
	}))
	items := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts", Fields: []string{"name"}}))
	id := base64.StdEncoding.EncodeToString([]byte(guid))
	g.Expect(items).To(HaveKey(id))
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: id, Fields: map[string]connector.Value{"name": connector.String("Found by its octets")}},
		{Op: connector.OpUpdate, ID: b64("\x01\x00*"), Fields: map[string]connector.Value{"name": connector.String("no such")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[1].Err).To(MatchError(connector.ErrNotFound), "the special characters of the key do not widen the search")
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts", Fields: []string{"name"}}))[id].Fields["name"].Text).
		To(Equal("Found by its octets"))
}

// An HR export with a photo column in base64 syncs into jpegPhoto: the
// first cycle writes the octets, and the second finds nothing to do.
func TestBinaryRoundTripSecondCycleIsEmpty(t *testing.T) {
	g := NewWithT(t)
	base := ldaptest.Current(t).Subtree(t)
	dir := t.TempDir()
	photo := b64("\xff\xd8\xff\xe0 JFIF not really")
	g.Expect(os.WriteFile(filepath.Join(dir, "people.csv"), []byte(fmt.Sprintf(
		"email,owner,photo\nann.photo@x,%s,%s\nann.none@x,%s,\n", ann.Email, photo, ann.Email)), 0o600)).To(Succeed())
	src, err := csv.New(csv.Config{Side: "source", Directory: dir, Entities: map[string]collection.Collection{"contacts": {
		Name: "people.csv", KeyFields: []string{"email"}, Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}})
	g.Expect(err).NotTo(HaveOccurred())
	tgt := open(t, config(t, base, nil))
	store, err := records.Open(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	policy := engine.Policy{Name: "photos", Source: engine.Endpoint{Name: "hr"}, Target: engine.Endpoint{Name: "directory"},
		Entities: []engine.Entity{{Name: "contacts", TargetKeyFields: []string{"email"}, MatchOn: []string{"email"},
			Fields: []engine.FieldMapping{{Source: "email", Target: "email"}, {Source: "photo", Target: "jpegPhoto"}}}},
		Direction: engine.OneWay, Conflict: engine.SourceWins}
	cycle := func(n int) engine.Counts {
		r, err := engine.Run(context.Background(), engine.Cycle{ID: fmt.Sprint("cycle-", n), User: ann.Email, Scope: ann,
			Policy: policy, Source: src, Target: tgt, Records: store, LockTimeout: time.Minute, Log: logr.Discard()})
		g.Expect(err).NotTo(HaveOccurred())
		return r.Total
	}
	g.Expect(cycle(1)).To(Equal(engine.Counts{Created: 2}))
	g.Expect(rawValues(t, "email=ann.photo@x,"+base, "jpegPhoto")).To(Equal([][]byte{[]byte("\xff\xd8\xff\xe0 JFIF not really")}))
	g.Expect(cycle(2)).To(Equal(engine.Counts{}), "the octets read back as the export's base64: nothing to do")
}
