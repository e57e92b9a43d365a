package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

// TestEngine runs the engine's scenarios with PostgreSQL on both sides:
// bigserial keys the server assigns, and on the target a chainsync_origin
// column, so the kill-and-rerun is settled by origin tokens there.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

var fixture = newFixture(", chainsync_origin text, UNIQUE (owner, email)")

// TestKillAndRerunWithoutOriginColumnOrMatchOn kills a cycle right after
// PostgreSQL committed its batch, into a table as a user has it (no
// chainsync_origin column, nothing unique but the serial key) under a
// policy without matchOn: the rerun must recognise the rows from
// chainsync_writes.
func TestKillAndRerunWithoutOriginColumnOrMatchOn(t *testing.T) {
	enginetest.KillAndRerunWithoutMatchOn(t, newFixture(""))
}

// newFixture makes contacts tables keyed by a bigserial; the target's table
// gets targetExtra after its columns. The source's (owner, email) is
// unique, as Put relies on.
func newFixture(targetExtra string) enginetest.Fixture {
	return enginetest.Fixture{
		New: func(t *testing.T, role string) enginetest.Endpoint {
			s := pgtest.Current(t)
			schema := s.Schema(t)
			extra := ", UNIQUE (owner, email)"
			if role == "target" {
				extra = targetExtra
			}
			s.Exec(t, fmt.Sprintf(`CREATE TABLE %q.contacts (id bigserial PRIMARY KEY, owner text NOT NULL, email text, name text,
				modified timestamptz%s)`, schema, extra))
			e := pgEndpoint{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Database: s.Database, Schema: schema}
			// One connection for the test's own reads and writes: a new one
			// per row would make the 1,200-row scenario take a minute.
			e.setup = e.connect(t)
			t.Cleanup(func() { e.setup.Close(context.Background()) })
			return e
		},
		OpenSpec: func(spec string) (enginetest.Endpoint, error) {
			var e pgEndpoint
			err := json.Unmarshal([]byte(spec), &e)
			return e, err
		},
	}
}

type pgEndpoint struct {
	Host                             string
	Port                             int
	User, Password, Database, Schema string
	setup                            *pgx.Conn
}

func (e pgEndpoint) config(side string) Config {
	return Config{Side: side, Host: e.Host, Port: e.Port, User: e.User, Password: e.Password, Database: e.Database,
		Schema: e.Schema, SSLMode: "prefer", Entities: map[string]collection.Collection{enginetest.Entity: {
			Name: "contacts", KeyFields: []string{"id"}, ModifiedField: "modified",
			Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}, Where: "name IS DISTINCT FROM @name || ' (hidden)'"}}}
}

func (e pgEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(context.Background(), e.config(side))
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (e pgEndpoint) exec(t testing.TB, sql string, args ...any) {
	if _, err := e.setup.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e pgEndpoint) connect(t testing.TB) *pgx.Conn {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=prefer", e.Host, e.Port, e.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = e.User, e.Password
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func (e pgEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	e.exec(t, fmt.Sprintf(`INSERT INTO %q.contacts (owner, email, name, modified) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner, email) DO UPDATE SET name = $3, modified = $4`, e.Schema), owner, email, name, modified)
}

func (e pgEndpoint) Delete(t testing.TB, owner, email string) {
	e.exec(t, fmt.Sprintf(`DELETE FROM %q.contacts WHERE owner = $1 AND email = $2`, e.Schema), owner, email)
}

func (e pgEndpoint) Rows(t testing.TB, owner string) []string {
	rows, _ := e.setup.Query(context.Background(), fmt.Sprintf(`SELECT email || ' ' || name FROM %q.contacts WHERE owner = $1`, e.Schema), owner)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (e pgEndpoint) Spec() string {
	b, _ := json.Marshal(e)
	return string(b)
}

func (e pgEndpoint) Incremental() bool { return true }
