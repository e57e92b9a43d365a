package postgres

import (
	"bufio"
	"context"
	stdcsv "encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	csvconn "github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

// The benchmarks sync one user's contacts: CHAINSYNC_BENCH_ROWS rows
// (default 1,000,000). Run them one iteration each:
//
//	CHAINSYNC_BENCH_ROWS=1000000 go test ./internal/connector/postgres -run '^$' -bench . -benchtime 1x -timeout 60m
func benchRows(b *testing.B) int {
	if s := os.Getenv("CHAINSYNC_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("CHAINSYNC_BENCH_ROWS=%q is not a positive number", s)
		}
		return n
	}
	return 1_000_000
}

var benchOwner = connector.Scope{Email: "ann@example.com"}

// benchCSV writes the rows as a csv export once per benchmark.
func benchCSV(b *testing.B, n int) string {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "contacts.csv"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	cw := stdcsv.NewWriter(w)
	cw.Write([]string{"email", "owner", "name", "phone", "modified"})
	// Each row modified at its own second, as rows edited over time are.
	// (Rows sharing the newest timestamp are re-read by the next change
	// read; a table bulk-loaded with one timestamp would be re-read whole
	// by its first incremental cycle.)
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		cw.Write([]string{fmt.Sprintf("person%07d@example.com", i), benchOwner.Email, fmt.Sprintf("Person Number %d", i),
			fmt.Sprintf("+33 1 %08d", i), start.Add(time.Duration(i) * time.Second).Format(time.RFC3339)})
	}
	cw.Flush()
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return dir
}

const benchTable = `CREATE TABLE %q.contacts (email text PRIMARY KEY, owner text NOT NULL, name text, phone text,
	modified timestamptz DEFAULT now())`

func benchPolicy() engine.Policy {
	return engine.Policy{Name: "bench", Source: engine.Endpoint{Name: "src"}, Target: engine.Endpoint{Name: "tgt"},
		Direction: engine.OneWay,
		Entities: []engine.Entity{{Name: "contacts", MatchOn: []string{"email"}, Fields: []engine.FieldMapping{
			{Source: "email", Target: "email"}, {Source: "name", Target: "name"}, {Source: "phone", Target: "phone"}}}}}
}

func benchCollection() map[string]collection.Collection {
	return map[string]collection.Collection{"contacts": {Name: "contacts", KeyFields: []string{"email"}, ModifiedField: "modified",
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}
}

// benchTarget makes an empty contacts table in a fresh schema.
func benchTarget(b *testing.B, side string) (*Connector, *pgtest.Server, string) {
	s := pgtest.Current(b)
	schema := s.Schema(b)
	s.Exec(b, fmt.Sprintf(benchTable, schema))
	c, err := New(context.Background(), Config{Side: side, Host: s.Host, Port: s.Port, User: s.User, Password: s.Password,
		Database: s.Database, Schema: schema, SSLMode: "disable", Entities: benchCollection()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, s, schema
}

func runCycle(b *testing.B, id string, store *records.Store, src, tgt connector.Connector) engine.Result {
	r, err := engine.Run(context.Background(), engine.Cycle{ID: id, User: benchOwner.Email, Scope: benchOwner, Policy: benchPolicy(),
		Source: src, Target: tgt, Records: store, Log: logr.Discard(), SpillDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// loadCopy loads the csv file into the table with PostgreSQL's own COPY.
func loadCopy(b *testing.B, c *Connector, schema, dir string) {
	f, err := os.Open(filepath.Join(dir, "contacts.csv"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	conn, err := c.pool.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	_, err = conn.Conn().PgConn().CopyFrom(context.Background(), f,
		fmt.Sprintf(`COPY %q.contacts (email, owner, name, phone, modified) FROM STDIN WITH (FORMAT csv, HEADER true)`, schema))
	if err != nil {
		b.Fatal(err)
	}
}

func reportRows(b *testing.B, n int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkPostgresCOPY is the yardstick: PostgreSQL's own COPY of the same
// csv file into the same table on the same server.
func BenchmarkPostgresCOPY(b *testing.B) {
	n := benchRows(b)
	dir := benchCSV(b, n)
	for b.Loop() {
		b.StopTimer()
		c, _, schema := benchTarget(b, "target")
		b.StartTimer()
		loadCopy(b, c, schema, dir)
	}
	reportRows(b, n)
}

// BenchmarkInitialSyncCSVToPostgres is a user's first cycle from a csv
// export to an empty table.
func BenchmarkInitialSyncCSVToPostgres(b *testing.B) {
	n := benchRows(b)
	dir := benchCSV(b, n)
	src, err := csvconn.New(csvconn.Config{Side: "source", Directory: dir, Entities: map[string]collection.Collection{
		"contacts": {Name: "contacts.csv", KeyFields: []string{"email"}, Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		tgt, _, _ := benchTarget(b, "target")
		store, err := records.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r := runCycle(b, "initial", store, src, tgt)
		if r.Total.Created != n {
			b.Fatalf("created %d of %d: %+v", r.Total.Created, n, r.Total)
		}
	}
	reportRows(b, n)
}

// BenchmarkInitialSyncPostgresToPostgres is a user's first cycle from one
// table to an empty one.
func BenchmarkInitialSyncPostgresToPostgres(b *testing.B) {
	n := benchRows(b)
	dir := benchCSV(b, n)
	src, _, srcSchema := benchTarget(b, "source")
	loadCopy(b, src, srcSchema, dir)
	for b.Loop() {
		b.StopTimer()
		tgt, _, _ := benchTarget(b, "target")
		store, err := records.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r := runCycle(b, "initial", store, src, tgt)
		if r.Total.Created != n {
			b.Fatalf("created %d of %d: %+v", r.Total.Created, n, r.Total)
		}
	}
	reportRows(b, n)
}

// BenchmarkIncrementalCycleOnePercentChanged is a later cycle between two
// tables after 1% of the source rows changed: a change read by the
// modification column on the source, and batched updates on the target.
func BenchmarkIncrementalCycleOnePercentChanged(b *testing.B) {
	n := benchRows(b)
	dir := benchCSV(b, n)
	src, s, srcSchema := benchTarget(b, "source")
	loadCopy(b, src, srcSchema, dir)
	tgt, _, _ := benchTarget(b, "target")
	store, err := records.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	runCycle(b, "initial", store, src, tgt)
	changed := max(n/100, 1)
	cycle := 0
	for b.Loop() {
		b.StopTimer()
		cycle++
		s.Exec(b, fmt.Sprintf(`UPDATE %q.contacts SET name = name || ' v%d', modified = clock_timestamp()
			WHERE email IN (SELECT email FROM %[1]q.contacts ORDER BY md5(email || %[2]d) LIMIT %d)`, srcSchema, cycle, changed))
		b.StartTimer()
		r := runCycle(b, fmt.Sprintf("cycle-%d", cycle), store, src, tgt)
		if r.Entities[0].Mode != engine.Incremental || r.Total.Updated != changed {
			b.Fatalf("mode %s, updated %d of %d changed: %+v", r.Entities[0].Mode, r.Total.Updated, changed, r.Total)
		}
	}
	b.ReportMetric(float64(changed), "changed-rows")
}
