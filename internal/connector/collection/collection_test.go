package collection

import (
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
