package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

var (
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann", Attributes: map[string]string{"tenant": "t1"}}
	bob = connector.Scope{Email: "bob@example.com", Name: "Bob", Attributes: map[string]string{"tenant": "t1"}}
	ctx = context.Background()
)

// newDB creates a database file with the given schema and rows.
func newDB(t *testing.T, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return path
}

func exec(t *testing.T, path string, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

const contactsTable = `CREATE TABLE contacts (
	id INTEGER PRIMARY KEY, owner TEXT NOT NULL, tenant TEXT, name TEXT, email TEXT UNIQUE,
	score REAL, active BOOLEAN, photo BLOB, modified DATETIME)`

func contacts(mutate func(*collection.Collection)) map[string]collection.Collection {
	c := collection.Collection{Name: "contacts", KeyFields: []string{"id"}, ModifiedField: "modified",
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}
	if mutate != nil {
		mutate(&c)
	}
	return map[string]collection.Collection{"contacts": c}
}

func open(t *testing.T, path string, entities map[string]collection.Collection) *Connector {
	t.Helper()
	c, err := New(ctx, Config{Side: "target", File: path, Entities: entities})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
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

func TestReadScopeWhereAndTypes(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, contactsTable,
		`INSERT INTO contacts VALUES (1, 'ann@example.com', 't1', 'Carl', 'carl@x', 1.5, 1, x'0102', '2024-03-01 10:00:00')`,
		`INSERT INTO contacts VALUES (2, 'bob@example.com', 't1', 'Dora', 'dora@x', NULL, 0, NULL, '2024-03-01 10:00:00')`,
		`INSERT INTO contacts VALUES (3, 'ann@example.com', 't2', 'Eve', 'eve@x', 2, NULL, NULL, NULL)`)
	c := open(t, path, contacts(func(c *collection.Collection) { c.Where = "tenant = @attr_tenant" }))

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(1), "bob's row and ann's row of another tenant are out of scope")
	carl := got["1"]
	g.Expect(carl.Fields["name"]).To(Equal(connector.String("Carl")))
	g.Expect(carl.Fields["score"]).To(Equal(connector.Float(1.5)))
	g.Expect(carl.Fields["photo"]).To(Equal(connector.Bytes([]byte{1, 2})))
	g.Expect(carl.Fields["id"].Text).To(Equal("1"))
	g.Expect(carl.ModTime).To(Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)))

	// Identity values are bound, never pasted: a hostile email is just a
	// value that matches nothing.
	evil := connector.Scope{Email: "x' OR '1'='1", Attributes: map[string]string{"tenant": "t1' OR '1'='1"}}
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: evil, Entity: "contacts"}))).To(BeEmpty())
}

func TestWriteRoundTripsAndReportsItemErrors(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, contactsTable,
		`INSERT INTO contacts VALUES (1, 'ann@example.com', 't1', 'Carl', 'carl@x', 1.5, 1, NULL, '2024-03-01 10:00:00')`,
		`INSERT INTO contacts VALUES (2, 'bob@example.com', 't1', 'Dora', 'dora@x', NULL, 0, NULL, '2024-03-01 10:00:00')`)
	c := open(t, path, contacts(nil))
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return now }

	fields := map[string]connector.Value{"name": connector.String("Fay"), "email": connector.String("fay@x"),
		"score": connector.Int(7), "active": connector.Bool(true), "photo": connector.Bytes([]byte("img")), "tenant": connector.Null()}
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: fields},
		{Op: connector.OpUpdate, ID: "1", Fields: map[string]connector.Value{"name": connector.String("Carlos")}},
		{Op: connector.OpUpdate, ID: "2", Fields: map[string]connector.Value{"name": connector.String("not yours")}},
		{Op: connector.OpDelete, ID: "2"},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("Dup"), "email": connector.String("carl@x")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"nope": connector.String("x")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"owner": connector.String("bob@example.com")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].ID).To(Equal("3"), "the database assigns the key and the connector returns it")
	g.Expect(res[0].ModTime).To(Equal(now))
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[2].Err).To(MatchError(connector.ErrNotFound), "bob's row is out of ann's scope")
	g.Expect(res[3].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(res[4].Err).To(MatchError(ContainSubstring("UNIQUE constraint failed")))
	g.Expect(connector.IsItemError(res[4].Err)).To(BeTrue())
	g.Expect(res[5].Err).To(MatchError(ContainSubstring(`column "nope" does not exist`)))
	g.Expect(res[6].Err).To(MatchError(ContainSubstring("not the user's")))

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(2))
	g.Expect(got["1"].Fields["name"].Text).To(Equal("Carlos"))
	fay := got["3"]
	for name, v := range fields {
		g.Expect(fay.Fields[name].Text).To(Equal(v.Text), "field %s reads back with the same canonical text", name)
	}
	g.Expect(fay.Fields["owner"].Text).To(Equal("ann@example.com"), "a create lands in the user's scope")
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: bob, Entity: "contacts"}))["2"].Fields["name"].Text).To(Equal("Dora"))
}

func TestCompositeKeysAndOrigin(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, `CREATE TABLE lines (ord TEXT, line INTEGER, qty INTEGER, chainsync_origin TEXT, PRIMARY KEY (ord, line))`,
		`INSERT INTO lines VALUES ('A,1', 2, 5, NULL), ('A', 12, 6, NULL)`)
	c := open(t, path, map[string]collection.Collection{"lines": {Name: "lines", KeyFields: []string{"ord", "line"}}})
	g.Expect(c.Capabilities().Origin).To(BeTrue())
	g.Expect(c.Capabilities().Incremental).To(BeFalse(), "no modifiedField, no change reads")

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "lines"}))
	g.Expect(got).To(HaveKey(`["A,1","2"]`))
	g.Expect(got).To(HaveKey(`["A","12"]`))
	g.Expect(got[`["A,1","2"]`].Fields).NotTo(HaveKey("chainsync_origin"), "the origin column is hidden")

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "lines", Writes: []connector.Write{
		{Op: connector.OpCreate, Origin: "cycle-7/lines/B", Fields: map[string]connector.Value{"ord": connector.String("B"), "line": connector.Int(1), "qty": connector.Int(1)}},
		{Op: connector.OpUpdate, ID: `["A,1","2"]`, Origin: "cycle-7/lines/A1", Fields: map[string]connector.Value{"qty": connector.Int(9)}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].ID).To(Equal(`["B","1"]`))
	got = collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "lines"}))
	g.Expect(got[`["B","1"]`].Origin).To(Equal("cycle-7/lines/B"))
	g.Expect(got[`["A,1","2"]`].Origin).To(Equal("cycle-7/lines/A1"))
	g.Expect(got[`["A,1","2"]`].Fields["qty"].Text).To(Equal("9"))
}

// The change read is the delicate part: rows sharing the watermark's
// timestamp, and rows written later with that same timestamp, must all be
// read by the next cycle.
func TestIncrementalReadsMissNothingAtEqualTimestamps(t *testing.T) {
	g := NewWithT(t)
	path := newDB(t, contactsTable,
		`INSERT INTO contacts (id, owner, name, modified) VALUES (1, 'ann@example.com', 'old', '2024-01-01 00:00:00')`,
		`INSERT INTO contacts (id, owner, name, modified) VALUES (2, 'ann@example.com', 'a', '2024-01-02 00:00:00')`,
		`INSERT INTO contacts (id, owner, name, modified) VALUES (3, 'ann@example.com', 'b', '2024-01-02 00:00:00')`,
		`INSERT INTO contacts (id, owner, name, modified) VALUES (9, 'bob@example.com', 'bob', '2024-05-01 00:00:00')`)
	c := open(t, path, contacts(nil))
	g.Expect(c.Capabilities()).To(Equal(connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}))
	req := connector.ReadRequest{Scope: ann, Entity: "contacts"}

	first, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(collect(g, c.ReadChanges(ctx, req, ""))).To(HaveLen(3), "the empty watermark reads from the beginning")

	// Written after the watermark was taken, with the same timestamp as
	// the newest rows, and a row whose time is unknown.
	exec(t, path, `INSERT INTO contacts (id, owner, name, modified) VALUES (4, 'ann@example.com', 'c', '2024-01-02 00:00:00')`)
	exec(t, path, `UPDATE contacts SET name = 'a2' WHERE id = 2`)
	exec(t, path, `INSERT INTO contacts (id, owner, name) VALUES (5, 'ann@example.com', 'no time')`)

	second, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	changes := collect(g, c.ReadChanges(ctx, req, first))
	g.Expect(changes).To(HaveKey("4"), "a row with the boundary timestamp written after the watermark is not missed")
	g.Expect(changes).To(HaveKey("5"), "a row without a modification time is not missed")
	g.Expect(changes["2"].Fields["name"].Text).To(Equal("a2"))
	g.Expect(changes).NotTo(HaveKey("1"), "rows before the watermark are not read again")
	g.Expect(changes).NotTo(HaveKey("9"), "bob's rows are out of scope, and out of ann's watermark")

	exec(t, path, `UPDATE contacts SET name = 'later', modified = '2024-02-01 00:00:00' WHERE id = 3`)
	changes = collect(g, c.ReadChanges(ctx, req, second))
	g.Expect(changes["3"].Fields["name"].Text).To(Equal("later"))
	g.Expect(changes).NotTo(HaveKey("1"))
}

func TestConfigErrorsNameTheField(t *testing.T) {
	g := NewWithT(t)
	_, err := New(ctx, Config{Side: "source", File: filepath.Join(t.TempDir(), "missing.db"), Entities: contacts(nil)})
	g.Expect(err).To(MatchError(ContainSubstring("source.sqlite.file: stat ")))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeFalse(), "a file not there yet is an outage, not a wrong spec")
	g.Expect(filepath.Join(t.TempDir(), "missing.db")).NotTo(BeAnExistingFile())

	path := newDB(t, `CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT)`)
	_, err = New(ctx, Config{Side: "source", File: path, Entities: map[string]collection.Collection{
		"contacts": {Name: "employees", KeyFields: []string{"emp_id"}, ModifiedField: "changed", Where: "owner = @mail"},
		"accounts": {Name: "accounts", KeyFields: []string{"id"}},
	}})
	g.Expect(err).To(MatchError(ContainSubstring("entities[contacts].source.where: unknown parameter @mail")))

	_, err = New(ctx, Config{Side: "source", File: path, Entities: map[string]collection.Collection{
		"contacts": {Name: "employees", KeyFields: []string{"emp_id"}, ModifiedField: "changed"},
		"accounts": {Name: "accounts", KeyFields: []string{"id"}},
	}})
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.keyFields: column "emp_id" does not exist in table "employees"`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.modifiedField: column "changed" does not exist in table "employees"`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[accounts].source.collection: table "accounts" does not exist in app.db`)))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "a missing table or column is the spec's fault")

	// A file that is not a database is an endpoint failure at New.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("this is not a database, just some text long enough to look like a header"), 0o644)
	_, err = New(ctx, Config{Side: "source", File: junk, Entities: contacts(nil)})
	g.Expect(err).To(MatchError(ContainSubstring("source.sqlite.file")))
}
