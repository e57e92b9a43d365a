package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

// One table shared by every user, whose item keys are unique per owner
// only: the where clause is all that keeps ann's "k1" apart from bob's.
const notesDDL = `CREATE TABLE %[1]q.notes (owner text NOT NULL, item text NOT NULL, body text, rank int,
	PRIMARY KEY (owner, item))`

const notesRows = `INSERT INTO %[1]q.notes VALUES ('ann@example.com', 'k1', 'ann 1', 1), ('ann@example.com', 'k2', 'ann 2', 10),
	('bob@example.com', 'k1', 'bob 1', 1), ('bob@example.com', 'k3', 'bob 3', 10)`

func notes(where string) map[string]collection.Collection {
	return map[string]collection.Collection{"notes": {Name: "notes", KeyFields: []string{"item"}, Where: where}}
}

// allNotes reads the table behind the connector's back.
func allNotes(t *testing.T, s *pgtest.Server, schema string) []string {
	t.Helper()
	conn := s.Connect(t)
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, fmt.Sprintf(`SELECT owner || ' ' || item || ' ' || coalesce(body, '-') FROM %q.notes ORDER BY 1`, schema))
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Issue #9: a where clause closed its own parenthesis and made every row
// ann's; one changed row of hers then overwrote bob's.
func TestWhereCannotReachOtherUsersRows(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, notes("owner = @email) OR (1=1"))
	s.Exec(t, fmt.Sprintf(notesDDL, schema))
	s.Exec(t, fmt.Sprintf(notesRows, schema))
	before := allNotes(t, s, schema)

	_, err := New(ctx, cfg)
	g.Expect(err).To(MatchError(ContainSubstring(`entities[notes].target.where: unexpected ")" at position 15: no "(" to close`)))

	// A clause that parses but selects more than one user's rows: a write
	// of one item must not change more than one row, whatever it says.
	// Both the pipelined batch and the row-by-row replay must hold.
	cfg.Entities = notes("owner = @email OR 1 = 1")
	c := open(t, cfg)
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "notes", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "k1", Fields: map[string]connector.Value{"body": connector.String("overwritten")}},
		{Op: connector.OpDelete, ID: "k1"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	for i, r := range res {
		g.Expect(connector.IsItemError(r.Err)).To(BeTrue(), "write %d fails as an item, not the endpoint", i)
		g.Expect(r.Err).To(MatchError(sqlgen.ErrManyRows), "write %d", i)
		g.Expect(r.Err).To(MatchError(ContainSubstring("matched 2 rows")), "write %d", i)
	}
	g.Expect(allNotes(t, s, schema)).To(Equal(before), "neither bob's rows nor ann's were changed")

	// Writes that match one row still go through, in the same batch as a
	// refused one, COPYed creates included.
	res, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "notes", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"owner": connector.String("ann@example.com"),
			"item": connector.String("k4"), "body": connector.String("ann 4")}},
		{Op: connector.OpUpdate, ID: "k2", Fields: map[string]connector.Value{"body": connector.String("ann 2 edited")}},
		{Op: connector.OpDelete, ID: "k1"},
		{Op: connector.OpDelete, ID: "k3"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(withoutStored(res[0])).To(Equal(connector.WriteResult{ID: "k4"}))
	g.Expect(withoutStored(res[1])).To(Equal(connector.WriteResult{ID: "k2"}))
	g.Expect(res[2].Err).To(MatchError(ContainSubstring("matched 2 rows")))
	g.Expect(res[3].Err).NotTo(HaveOccurred(), "the clause puts bob's k3 in ann's scope, and it is one row")
	g.Expect(allNotes(t, s, schema)).To(Equal([]string{"ann@example.com k1 ann 1", "ann@example.com k2 ann 2 edited",
		"ann@example.com k4 ann 4", "bob@example.com k1 bob 1"}))
}

func TestWhereLiteralsAreTyped(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, notes(`OWNER = @email AND rank >= 2 AND @attr_level >= 3 AND body LIKE 'ann%' AND 1 = 1 AND rank BETWEEN 1.5 AND 10`))
	s.Exec(t, fmt.Sprintf(notesDDL, schema))
	s.Exec(t, fmt.Sprintf(notesRows, schema))
	c := open(t, cfg)

	// "10" >= "3" is false as text: the parameter must be compared as a
	// number, as it was when the literal was pasted into the SQL.
	level := connector.Scope{Email: ann.Email, Attributes: map[string]string{"level": "10"}}
	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: level, Entity: "notes"}))
	g.Expect(got).To(And(HaveLen(1), HaveKey("k2")))

	cfg.Entities = notes(`ownr = @email`)
	_, err := New(ctx, cfg)
	g.Expect(err).To(MatchError(ContainSubstring(`entities[notes].target.where: column "ownr" does not exist in "notes"`)))
}
