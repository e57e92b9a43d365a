package engine_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/connector/postgres"
	"github.com/chainsync/chainsync/internal/connector/sqlite"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

// typedColumns are the columns whose stored form is not the text written:
// each endpoint declares them with its own types (all text in csv).
var typedColumns = []string{"ts", "day", "amount", "code", "active", "doc", "docb"}

// typedRows are what people type into an export or a database: a time
// without a zone, a date, an integral amount for a numeric(10,2), a code
// shorter than its char(6), yes/1 for booleans, json with its own spacing
// and key order.
var typedRows = []map[string]string{
	{"ref": "r1", "ts": "2024-03-01 09:30:00", "day": "2024-03-01", "amount": "5", "code": "ab", "active": "yes",
		"doc": `{"b": 1,  "a": [1,2]}`, "docb": `{"b": 1,  "a": [1,2]}`},
	{"ref": "r2", "ts": "2024-03-01T09:30:00+02:00", "day": "2024-12-31", "amount": "12.5", "code": "abcdef", "active": "1",
		"doc": `[ ]`, "docb": `{"z":{"y":true, "x":null}}`},
}

const valuesOwner = "ann@example.com"

// typedEndpoint is one system holding the items table with typed columns.
type typedEndpoint interface {
	connector(t *testing.T, side string) connector.Connector
	put(t *testing.T, row map[string]string)
}

// TestValuesRoundTripSecondCycleIsEmpty syncs typed values between every
// pair of connectors, both ways: the first cycle creates, and the second
// must find nothing to do. A target that stores a value in another text
// form (a timestamptz, numeric(10,2), char(6), boolean, jsonb, a date)
// reads our own write back differently; unless the engine records what was
// stored, every later cycle rewrites the item.
func TestValuesRoundTripSecondCycleIsEmpty(t *testing.T) {
	// This package's TestMain is the crash tests' and starts no server.
	server, err := pgtest.Start()
	if err != nil {
		t.Fatalf("no PostgreSQL server for the test: %v (run %s)", err, pgtest.FixCommand)
	}
	t.Cleanup(func() { server.Stop() })
	kinds := map[string]func(t *testing.T) typedEndpoint{
		"csv":      newCSVTyped,
		"sqlite":   newSQLiteTyped,
		"postgres": func(t *testing.T) typedEndpoint { return newPostgresTyped(t, server, "id") },
		// Keyed by a column the write sets: creates go by COPY, which
		// returns nothing.
		"postgres keyed by ref": func(t *testing.T) typedEndpoint { return newPostgresTyped(t, server, "ref") },
	}
	for _, pair := range [][2]string{
		{"csv", "sqlite"}, {"csv", "postgres"}, {"csv", "postgres keyed by ref"}, {"sqlite", "postgres"}, {"postgres", "sqlite"},
		{"sqlite", "csv"}, {"postgres", "csv"},
	} {
		for _, dir := range []engine.Direction{engine.OneWay, engine.TwoWay} {
			t.Run(fmt.Sprintf("%s to %s %s", pair[0], pair[1], dir), func(t *testing.T) {
				g := NewWithT(t)
				src, tgt := kinds[pair[0]](t), kinds[pair[1]](t)
				for _, row := range typedRows {
					src.put(t, row)
				}
				store, err := records.Open(t.TempDir())
				g.Expect(err).NotTo(HaveOccurred())
				fields := []engine.FieldMapping{{Source: "ref", Target: "ref"}}
				for _, c := range typedColumns {
					fields = append(fields, engine.FieldMapping{Source: c, Target: c})
				}
				policy := engine.Policy{Name: "values", Source: engine.Endpoint{Name: pair[0] + "-src"}, Target: engine.Endpoint{Name: pair[1] + "-tgt"},
					Entities: []engine.Entity{{Name: "items", Fields: fields}}, Direction: dir, Conflict: engine.SourceWins}
				srcConn, tgtConn := src.connector(t, "source"), tgt.connector(t, "target")
				cycle := func(n int) engine.Result {
					r, err := engine.Run(context.Background(), engine.Cycle{ID: fmt.Sprint("cycle-", n), User: valuesOwner,
						Scope: connector.Scope{Email: valuesOwner}, Policy: policy, Source: srcConn, Target: tgtConn,
						Records: store, LockTimeout: time.Minute, Log: logr.Discard()})
					g.Expect(err).NotTo(HaveOccurred())
					return r
				}
				first := cycle(1)
				g.Expect(first.Total).To(Equal(engine.Counts{Created: len(typedRows)}), "%+v", first.Entities)
				second := cycle(2)
				g.Expect(second.Total).To(Equal(engine.Counts{}), "our own writes read back are no change: %+v", second.Entities)
			})
		}
	}
}

func itemsCollection(name string, key string) collection.Collection {
	return collection.Collection{Name: name, KeyFields: []string{key},
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}
}

type csvTyped struct{ dir string }

func newCSVTyped(t *testing.T) typedEndpoint { return csvTyped{dir: t.TempDir()} }

func (e csvTyped) connector(t *testing.T, side string) connector.Connector {
	c, err := csv.New(csv.Config{Side: side, Directory: e.dir, MissingFileIsEmpty: true,
		Entities: map[string]collection.Collection{"items": itemsCollection("items.csv", "ref")}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e csvTyped) put(t *testing.T, row map[string]string) {
	path := filepath.Join(e.dir, "items.csv")
	cols := append([]string{"ref", "owner"}, typedColumns...)
	var b strings.Builder
	if _, err := os.Stat(path); err != nil {
		b.WriteString(strings.Join(cols, ",") + "\n")
	}
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		v := row[c]
		if c == "owner" {
			v = valuesOwner
		}
		b.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"`)
	}
	b.WriteByte('\n')
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

type sqliteTyped struct{ path string }

func newSQLiteTyped(t *testing.T) typedEndpoint {
	e := sqliteTyped{path: filepath.Join(t.TempDir(), "items.db")}
	e.exec(t, `CREATE TABLE items (id INTEGER PRIMARY KEY, ref TEXT, owner TEXT NOT NULL, ts DATETIME, day DATE,
		amount NUMERIC(10,2), code CHAR(6), active BOOLEAN, doc JSON, docb JSONB)`)
	return e
}

func (e sqliteTyped) exec(t *testing.T, q string, args ...any) {
	db, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e sqliteTyped) connector(t *testing.T, side string) connector.Connector {
	c, err := sqlite.New(context.Background(), sqlite.Config{Side: side, File: e.path,
		Entities: map[string]collection.Collection{"items": itemsCollection("items", "id")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e sqliteTyped) put(t *testing.T, row map[string]string) {
	cols, ph, args := typedInsert(row, func(n int) string { return fmt.Sprint("?", n) })
	e.exec(t, "INSERT INTO items ("+cols+") VALUES ("+ph+")", args...)
}

// typedInsert binds a row's texts, which the database parses by column type.
func typedInsert(row map[string]string, placeholder func(int) string) (cols, ph string, args []any) {
	names := append([]string{"ref", "owner"}, typedColumns...)
	phs := make([]string, len(names))
	for i, c := range names {
		phs[i] = placeholder(i + 1)
		if c == "owner" {
			args = append(args, valuesOwner)
		} else {
			args = append(args, row[c])
		}
	}
	return strings.Join(names, ", "), strings.Join(phs, ", "), args
}

type postgresTyped struct {
	s      *pgtest.Server
	schema string
	key    string
}

func newPostgresTyped(t *testing.T, s *pgtest.Server, key string) typedEndpoint {
	e := postgresTyped{s: s, schema: s.Schema(t), key: key}
	s.Exec(t, fmt.Sprintf(`CREATE TABLE %q.items (id bigserial, ref text UNIQUE, owner text NOT NULL, ts timestamptz, day date,
		amount numeric(10,2), code char(6), active boolean, doc json, docb jsonb)`, e.schema))
	return e
}

func (e postgresTyped) connector(t *testing.T, side string) connector.Connector {
	c, err := postgres.New(context.Background(), postgres.Config{Side: side, Host: e.s.Host, Port: e.s.Port, User: e.s.User,
		Password: e.s.Password, Database: e.s.Database, Schema: e.schema, SSLMode: "prefer",
		Entities: map[string]collection.Collection{"items": itemsCollection("items", e.key)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e postgresTyped) put(t *testing.T, row map[string]string) {
	cols, ph, args := typedInsert(row, func(n int) string { return fmt.Sprint("$", n) })
	e.s.Exec(t, fmt.Sprintf("INSERT INTO %q.items (%s) VALUES (%s)", e.schema, cols, ph), args...)
}
