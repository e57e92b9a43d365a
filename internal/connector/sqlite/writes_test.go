package sqlite

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
)

// TestCreatesAreProvableWithoutAnOriginColumn: a table without
// chainsync_origin still returns each create's origin, from chainsync_writes,
// until the same user's next write to the table; other users' proofs stay.
func TestCreatesAreProvableWithoutAnOriginColumn(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, contactsTable)
	c := open(t, path, contacts(nil))
	g.Expect(c.Capabilities().Origin).To(BeTrue())
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))).To(BeEmpty(),
		"a database chainsync never wrote has no chainsync_writes, and reads fine")

	create := func(s connector.Scope, name, origin string) string {
		res, err := c.Write(ctx, connector.WriteRequest{Scope: s, Entity: "contacts", Writes: []connector.Write{
			{Op: connector.OpCreate, Origin: origin, Fields: map[string]connector.Value{"name": connector.String(name)}}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res[0].Err).NotTo(HaveOccurred())
		return res[0].ID
	}
	origins := func(s connector.Scope) map[string]string {
		out := map[string]string{}
		for id, item := range collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: s, Entity: "contacts"})) {
			out[id] = item.Origin
		}
		return out
	}
	a1 := create(ann, "Alice", "o-a1")
	b1 := create(bob, "Bruno", "o-b1")
	g.Expect(origins(ann)).To(Equal(map[string]string{a1: "o-a1"}))

	a2 := create(ann, "Ada", "o-a2")
	g.Expect(origins(ann)).To(Equal(map[string]string{a1: "", a2: "o-a2"}),
		"the engine read a1's proof before writing again: the next write forgets it")
	g.Expect(origins(bob)).To(Equal(map[string]string{b1: "o-b1"}), "another user's proof is kept")
}
