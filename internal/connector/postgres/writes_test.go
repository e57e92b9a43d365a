package postgres

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// TestWritesTableNeedsNoChangeToTheUsersTable: a table without
// chainsync_origin gets its creates proven by chainsync_writes; a user who
// may not create that table is told what to grant, as a configuration
// error, before anything is written.
func TestWritesTableNeedsNoChangeToTheUsersTable(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, map[string]collection.Collection{"contacts": {Name: "contacts", KeyFields: []string{"id"},
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}})
	s.Exec(t, fmt.Sprintf(`CREATE TABLE %q.contacts (id bigserial PRIMARY KEY, owner text NOT NULL, name text)`, schema))
	role := "limited_" + schema
	s.Exec(t, fmt.Sprintf(`CREATE ROLE %q LOGIN PASSWORD 'limited'`, role))
	t.Cleanup(func() {
		s.Exec(t, fmt.Sprintf(`DROP OWNED BY %q CASCADE`, role))
		s.Exec(t, fmt.Sprintf(`DROP ROLE %q`, role))
	})
	s.Exec(t, fmt.Sprintf(`GRANT USAGE ON SCHEMA %[1]q TO %[2]q; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %[1]q TO %[2]q;
		GRANT USAGE ON ALL SEQUENCES IN SCHEMA %[1]q TO %[2]q`, schema, role))
	cfg.User, cfg.Password = role, "limited"
	c := open(t, cfg)
	g.Expect(c.Capabilities().Origin).To(BeTrue())
	create := connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Origin: "o-1", Fields: map[string]connector.Value{"name": connector.String("Alice")}}}}

	_, err := c.Write(ctx, create)
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "%v", err)
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("GRANT CREATE ON SCHEMA %q TO %q", schema, role))))
	g.Expect(err).To(MatchError(ContainSubstring("or add a column chainsync_origin text to")))
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))).To(BeEmpty(), "nothing was written")

	// Created by an administrator, as the message offers, but not yet
	// granted: reads go on, writes say what is missing.
	s.Exec(t, fmt.Sprintf(`CREATE TABLE %q.chainsync_writes (tbl text NOT NULL, scope text NOT NULL, row_id text NOT NULL,
		origin text NOT NULL, PRIMARY KEY (tbl, scope, row_id))`, schema))
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))).To(BeEmpty())
	_, err = c.Write(ctx, create)
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "%v", err)
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %q.%q TO %q", schema, "chainsync_writes", role))))

	s.Exec(t, fmt.Sprintf(`GRANT SELECT, INSERT, UPDATE, DELETE ON %q.chainsync_writes TO %q`, schema, role))
	res, err := c.Write(ctx, create)
	g.Expect(err).NotTo(HaveOccurred())
	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveKey(res[0].ID))
	g.Expect(got[res[0].ID].Origin).To(Equal("o-1"), "the origin comes back from chainsync_writes")
	g.Expect(got[res[0].ID].Fields).NotTo(HaveKey("chainsync_origin"))
}
