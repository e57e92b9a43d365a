package sqlite

import (
	"database/sql"
	"slices"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
)

// One table shared by every user, whose item keys are unique per owner
// only: the where clause is all that keeps ann's "k1" apart from bob's.
const notesTable = `CREATE TABLE notes (owner TEXT NOT NULL, item TEXT NOT NULL, body TEXT, rank INTEGER,
	PRIMARY KEY (owner, item))`

const notesRows = `INSERT INTO notes VALUES ('ann@example.com', 'k1', 'ann 1', 1), ('ann@example.com', 'k2', 'ann 2', 10),
	('bob@example.com', 'k1', 'bob 1', 1), ('bob@example.com', 'k3', 'bob 3', 10)`

func notes(where string) map[string]collection.Collection {
	return map[string]collection.Collection{"notes": {Name: "notes", KeyFields: []string{"item"}, Where: where}}
}

// allNotes reads the table behind the connector's back.
func allNotes(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT owner || ' ' || item || ' ' || coalesce(body, '-') FROM notes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Issue #9: a where clause closed its own parenthesis and made every row
// ann's; one changed row of hers then overwrote bob's.
func TestWhereCannotReachOtherUsersRows(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, notesTable, notesRows)
	before := allNotes(t, path)

	_, err := New(ctx, Config{Side: "target", File: path, Entities: notes("owner = @email) OR (1=1")})
	g.Expect(err).To(MatchError(ContainSubstring(`entities[notes].target.where: unexpected ")" at position 15: no "(" to close`)))

	// A clause that parses but selects more than one user's rows: a write
	// of one item must not change more than one row, whatever it says.
	c := open(t, path, notes("owner = @email OR 1 = 1"))
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
	g.Expect(allNotes(t, path)).To(Equal(before), "neither bob's rows nor ann's were changed")

	// A write that matches one row still goes through, in the same batch
	// as a refused one.
	res, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "notes", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "k1", Fields: map[string]connector.Value{"body": connector.String("overwritten")}},
		{Op: connector.OpUpdate, ID: "k2", Fields: map[string]connector.Value{"body": connector.String("ann 2 edited")}},
		{Op: connector.OpDelete, ID: "k3"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).To(MatchError(ContainSubstring("matched 2 rows")))
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[1].ID).To(Equal("k2"))
	g.Expect(res[2].Err).NotTo(HaveOccurred(), "the clause puts bob's k3 in ann's scope, and it is one row")
	g.Expect(allNotes(t, path)).To(Equal([]string{"ann@example.com k1 ann 1", "ann@example.com k2 ann 2 edited", "bob@example.com k1 bob 1"}))
}

func TestWhereLiteralsAreTypedAndColumnsChecked(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, notesTable, notesRows)

	// SQLite reads a double-quoted name that is no column as a string:
	// every identifier is quoted, so a misspelt column must fail here,
	// not turn "ownr <> @email" into a condition true for every row.
	_, err := New(ctx, Config{Side: "target", File: path, Entities: notes("ownr <> @email")})
	g.Expect(err).To(MatchError(ContainSubstring(`entities[notes].target.where: column "ownr" does not exist in table "notes"`)))

	// Bare names fold to lower case, as SQLite matches them anyway; a
	// number compares as a number, also against a text parameter.
	c := open(t, path, notes(`OWNER = @email AND "Rank" >= 2 AND @attr_level >= 3 AND body LIKE 'ann%'`))
	level := connector.Scope{Email: ann.Email, Attributes: map[string]string{"level": "10"}}
	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: level, Entity: "notes"}))
	g.Expect(got).To(And(HaveLen(1), HaveKey("k2")))
}
