package collection

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
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

func TestWhereBindsIdentityAsParameters(t *testing.T) {
	g := NewWithT(t)
	w, err := ParseWhere(`owner = @email AND note <> '@name' /* @name */ AND dept = @attr_dept -- @email`)
	g.Expect(err).NotTo(HaveOccurred())
	scope := connector.Scope{Email: "ann@example.com'; DROP TABLE t; --", Attributes: map[string]string{"dept": "HR"}}
	sql, args, err := w.Render(scope, 3, func(n int) string { return "$" + string(rune('0'+n)) })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sql).To(Equal(`owner = $3 AND note <> '@name' /* @name */ AND dept = $4 -- @email`))
	g.Expect(args).To(Equal([]any{"ann@example.com'; DROP TABLE t; --", "HR"}))

	_, _, err = w.Render(connector.Scope{Email: "a@b"}, 1, func(int) string { return "?" })
	g.Expect(err).To(MatchError(ContainSubstring("attributes.dept")))
}

// Rendering a parsed clause with each parameter's own spelling gives the
// clause back: the parser loses nothing and binds exactly the parameters.
func FuzzParseWhere(f *testing.F) {
	for _, s := range []string{"owner = @email", "a = '@name' AND b = @attr_dept -- @x", `"@email" = @name /* @ */`, "x = 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		w, err := ParseWhere(sql)
		if err != nil {
			return
		}
		scope := connector.Scope{Email: "e", Name: "n", Attributes: map[string]string{}}
		for _, p := range w.params {
			if strings.HasPrefix(p, "attributes.") {
				scope.Attributes[strings.TrimPrefix(p, "attributes.")] = "v"
			}
		}
		i := 0
		back, args, err := w.Render(scope, 1, func(int) string {
			p := w.params[i]
			i++
			if name, ok := strings.CutPrefix(p, "attributes."); ok {
				return "@attr_" + name
			}
			return "@" + p
		})
		if err != nil {
			t.Fatal(err)
		}
		if back != sql || len(args) != len(w.params) {
			t.Fatalf("%q rendered back as %q with %d args", sql, back, len(args))
		}
	})
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
