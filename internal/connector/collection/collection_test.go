package collection

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestCompositeIDsDoNotCollide(t *testing.T) {
	g := NewWithT(t)
	tuples := [][]string{{"a,b", "c"}, {"a", "b,c"}, {`a"`, "b"}, {"a", `"b`}, {"a\x00", "b"}, {"a", "\x00b"}}
	seen := map[string][]string{}
	for _, tuple := range tuples {
		id, err := EncodeID(tuple)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(seen).NotTo(HaveKey(id), "tuple %q collides with %q", tuple, seen[id])
		seen[id] = tuple
		back, err := DecodeID(id, len(tuple))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(back).To(Equal(tuple))
	}
	single, err := EncodeID([]string{"E-42"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(single).To(Equal("E-42"), "a single key stays readable")
	_, err = EncodeID([]string{"a", ""})
	g.Expect(err).To(MatchError(ErrNullKey))
}

func TestValidateNamesTheField(t *testing.T) {
	g := NewWithT(t)
	err := Collection{Name: "people.csv", Scope: []ScopeMatch{{Field: "owner", Identity: "mail"}}, Where: "owner = @email"}.
		Validate("entities[contacts].source", false)
	g.Expect(err).To(MatchError(ContainSubstring("entities[contacts].source.keyFields: at least one key field is required")))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.scope[0].identity: "mail" is not email`)))
	g.Expect(err).To(MatchError(ContainSubstring("entities[contacts].source.where: needs an SQL connector")))

	err = Collection{Name: "t", KeyFields: []string{"id"}, Where: "owner = @mail"}.Validate("entities[x].target", true)
	g.Expect(err).To(MatchError(ContainSubstring("entities[x].target.where: unknown parameter @mail")))
}

func FuzzCompositeIDRoundTrip(f *testing.F) {
	f.Add("a", "b")
	f.Add(`["x"`, `"]`)
	f.Fuzz(func(t *testing.T, a, b string) {
		id, err := EncodeID([]string{a, b})
		if a == "" || b == "" {
			if err == nil {
				t.Fatal("an empty key part must be a null key")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeID(id, 2)
		if err != nil {
			t.Fatal(err)
		}
		if back[0] != a || back[1] != b {
			t.Fatalf("%q %q came back as %q", a, b, back)
		}
	})
}
