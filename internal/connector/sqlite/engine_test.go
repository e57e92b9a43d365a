package sqlite

import (
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(m.Run())
}

// TestEngine runs the engine's scenarios with SQLite databases on both
// sides: rows keyed by an INTEGER PRIMARY KEY the database assigns, linked
// across sides by email.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

var fixture = newFixture(true)

// TestKillAndRerunWithoutOriginColumnOrMatchOn kills a cycle right after
// SQLite committed its first batch, into a table as a user has it (no
// chainsync_origin column, nothing unique but the rowid) under a policy
// without matchOn: the rerun must recognise the rows from chainsync_writes.
func TestKillAndRerunWithoutOriginColumnOrMatchOn(t *testing.T) {
	enginetest.KillAndRerunWithoutMatchOn(t, newFixture(false))
}

// newFixture makes contacts tables keyed by an INTEGER PRIMARY KEY; with
// uniqueTarget the target's (owner, email) is unique too, as the source's
// always is (Put relies on it).
func newFixture(uniqueTarget bool) enginetest.Fixture {
	return enginetest.Fixture{
		New: func(t *testing.T, role string) enginetest.Endpoint {
			path := filepath.Join(t.TempDir(), role+".db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			unique := ", UNIQUE (owner, email)"
			if role == "target" && !uniqueTarget {
				unique = ""
			}
			if _, err := db.Exec(`CREATE TABLE contacts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, email TEXT, name TEXT,
				modified DATETIME` + unique + `)`); err != nil {
				t.Fatal(err)
			}
			return sqliteEndpoint{path: path}
		},
		OpenSpec: func(spec string) (enginetest.Endpoint, error) { return sqliteEndpoint{path: spec}, nil },
	}
}

type sqliteEndpoint struct{ path string }

func (e sqliteEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(ctx, Config{Side: side, File: e.path, Entities: map[string]collection.Collection{enginetest.Entity: {
		Name: "contacts", KeyFields: []string{"id"}, ModifiedField: "modified",
		// scope fills in the owner of the rows the engine creates; where
		// alone could not.
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}, Where: "owner = @email AND id > 0"}}})
	if err != nil {
		t.Fatalf("sqlite.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e sqliteEndpoint) db(t testing.TB) *sql.DB {
	db, err := sql.Open("sqlite", e.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func (e sqliteEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	db := e.db(t)
	defer db.Close()
	_, err := db.Exec(`INSERT INTO contacts (owner, email, name, modified) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (owner, email) DO UPDATE SET name = ?3, modified = ?4`, owner, email, name, sqlgen.Stamp(modified).Text)
	if err != nil {
		t.Fatal(err)
	}
}

func (e sqliteEndpoint) Delete(t testing.TB, owner, email string) {
	db := e.db(t)
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM contacts WHERE owner = ? AND email = ?`, owner, email); err != nil {
		t.Fatal(err)
	}
}

func (e sqliteEndpoint) Rows(t testing.TB, owner string) []string {
	db := e.db(t)
	defer db.Close()
	rows, err := db.Query(`SELECT email || ' ' || name FROM contacts WHERE owner = ?`, owner)
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

func (e sqliteEndpoint) Spec() string      { return e.path }
func (e sqliteEndpoint) Incremental() bool { return true }
