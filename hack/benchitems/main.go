// Command benchitems measures chainsync on one user's large export, side by side with the tools
// people compare it with, on the same files in the same run: csvdiff (installed as a Go tool at
// the version go.mod pins) for finding what changed, PostgreSQL's own COPY (psql \copy) for
// loading a table. It generates a realistic export (10 columns of text, ~118 MB at 1M rows) and
// a copy of it with 1% of rows changed (0.25% inserted, 0.5% updated, 0.25% deleted), then runs
// each measurement interleaved with its comparison and prints the medians, the ratios and each
// side's peak memory (the max RSS of the process, from rusage), ending with one GOAL line per
// goal of issue 14.
//
// chainsync's side runs as a child process (this binary, re-executed) doing what a cycle does:
// engine.Run over the csv and postgres connectors and the record store, the function `chainsync
// cycle` calls for each user, files parsed and all. The two delta rows run the read and compare
// half of it alone: the csv connector's read, delta's cleanse and sort, and the merge against
// another export or against the records of the last cycle.
//
// Run it with `make bench-items` (ROWS=1000000 by default). -profile DIR writes a CPU and a
// heap profile of each row's first run.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == childArg {
		os.Exit(child(os.Args[2]))
	}
	rows := flag.Int("rows", 1_000_000, "rows of the export")
	runs := flag.Int("runs", 3, "runs of each measurement; the median is printed")
	slowRuns := flag.Int("slow-runs", 0, "runs of the initial syncs and the cycles after them; 0 means -runs")
	profile := flag.String("profile", "", "directory to write a CPU and a heap profile of each chainsync row's first run into")
	keep := flag.Bool("keep", false, "keep the generated files and stores (their folder is printed)")
	only := flag.String("only", "", "measure only these groups of rows, comma-separated: delta, csv, postgres, feed (for a quick look; the goals of the others print 0)")
	flag.Parse()
	for _, g := range strings.Split(*only, ",") {
		if g != "" {
			groups[g] = true
		}
	}
	if *slowRuns <= 0 {
		*slowRuns = *runs
	}
	if err := run(*rows, *runs, *slowRuns, *profile, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench-items:", err)
		os.Exit(1)
	}
}

// groups are the rows -only asks for; empty means all.
var groups = map[string]bool{}

func measured(group string) bool { return len(groups) == 0 || groups[group] }

// sample is one measured process.
type sample struct {
	wall    time.Duration
	cpu     time.Duration
	peakMiB float64
}

// row is one line of the table: chainsync against its comparison.
type row struct {
	name, comparison string
	chainsync, other []sample
}

func median(ss []sample, f func(sample) float64) float64 {
	if len(ss) == 0 {
		return 0
	}
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func wallOf(s sample) float64 { return s.wall.Seconds() }
func cpuOf(s sample) float64  { return s.cpu.Seconds() }
func peakOf(s sample) float64 { return s.peakMiB }

type bench struct {
	work, self string
	rows       int
	pg         *pgtest.Server
	profile    string
	profiled   map[string]bool
	schemaSeq  int
}

func run(rows, runs, slowRuns int, profile string, keep bool) error {
	ctx := context.Background()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "chainsync-bench-items-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("files in", work)
	} else {
		defer os.RemoveAll(work)
	}
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return err
		}
	}
	csvdiff := filepath.Join(work, "csvdiff")
	build := exec.Command("go", "build", "-o", csvdiff, "github.com/aswinkarthik/csvdiff")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building csvdiff (the Go tool go.mod pins): %w", err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		return fmt.Errorf("psql not found (hack/ensure-postgres.sh installs it): %w", err)
	}

	started := time.Now()
	size, err := generate(work, rows)
	if err != nil {
		return err
	}
	fmt.Printf("export: %d rows x 10 columns, %.0f MB; changed export: 1%% changed (%d inserted, %d updated, %d deleted); made in %s\n",
		rows, float64(size)/1e6, rows/400, rows/200, rows/400, time.Since(started).Round(time.Millisecond))

	pg, err := pgtest.Start()
	if err != nil {
		return fmt.Errorf("starting PostgreSQL (hack/ensure-postgres.sh installs it): %w", err)
	}
	defer pg.Stop()
	b := &bench{work: work, self: self, rows: rows, pg: pg, profile: profile, profiled: map[string]bool{}}

	base, changed := filepath.Join(work, "base"), filepath.Join(work, "changed")
	baseFile, changedFile := filepath.Join(base, exportFile), filepath.Join(changed, exportFile)
	csvdiffRun := func() (sample, error) {
		return measure(exec.Command(csvdiff, baseFile, changedFile, "--primary-key", "0", "--format", "rowmark"), "")
	}

	// The records and target file of a first csv -> csv cycle, which the delta and the Complete
	// cycle rows start from.
	seedStore, seedTarget := filepath.Join(work, "seed-store"), filepath.Join(work, "seed-target")
	os.MkdirAll(seedTarget, 0o755)
	s, err := b.chainsync("", job{Kind: "cycle", ID: "seed", Source: csvEnd(base), Target: csvEnd(seedTarget), Store: seedStore})
	if err != nil {
		return fmt.Errorf("first csv -> csv cycle: %w", err)
	}
	fmt.Printf("first cycle csv -> csv (setup): %.2f s, peak %.0f MiB\n", s.wall.Seconds(), s.peakMiB)

	deltaFiles := &row{name: "delta of two exports (csv connector + delta, file vs file)", comparison: "csvdiff"}
	deltaRecords := &row{name: "delta of the new export vs the records of the last cycle", comparison: "csvdiff"}
	completeCSV := &row{name: "Complete cycle csv -> csv, 1% changed", comparison: "csvdiff"}
	initialPG := &row{name: "Initial sync csv -> postgres", comparison: "psql \\copy"}
	completePG := &row{name: "next cycle csv -> postgres, 1% changed (Complete: csv has no change feed)", comparison: "csvdiff"}
	initialFeed := &row{name: "Initial sync postgres -> postgres (source with a change feed)", comparison: "psql \\copy"}
	nextFeed := &row{name: "next cycle postgres -> postgres, 1% changed (Incremental: modifiedField)", comparison: "—"}

	for i := range max(runs, slowRuns) {
		fmt.Fprintf(os.Stderr, "run %d of %d\n", i+1, max(runs, slowRuns))
		step := func(r *row, mine func() (sample, error), theirs func() (sample, error)) error {
			// Alternate which goes first, so neither always runs on a warmer page cache.
			first, second := mine, theirs
			if i%2 == 1 {
				first, second = theirs, mine
			}
			for _, f := range []func() (sample, error){first, second} {
				if f == nil {
					continue
				}
				if _, err := f(); err != nil {
					return fmt.Errorf("%s: %w", r.name, err)
				}
			}
			return nil
		}
		add := func(to *[]sample, f func() (sample, error)) func() (sample, error) {
			if f == nil {
				return nil
			}
			return func() (sample, error) {
				s, err := f()
				if err == nil {
					*to = append(*to, s)
				}
				return s, err
			}
		}
		if i < runs && measured("delta") {
			err := step(deltaFiles, add(&deltaFiles.chainsync, func() (sample, error) {
				return b.chainsync("delta-files", job{Kind: "delta-files", Base: base, Changed: changed})
			}), add(&deltaFiles.other, csvdiffRun))
			if err != nil {
				return err
			}
			err = step(deltaRecords, add(&deltaRecords.chainsync, func() (sample, error) {
				return b.chainsync("delta-records", job{Kind: "delta-records", Changed: changed, Store: seedStore})
			}), add(&deltaRecords.other, csvdiffRun))
			if err != nil {
				return err
			}
		}
		if i < runs && measured("csv") {
			store, target := filepath.Join(work, fmt.Sprintf("store-csv-%d", i)), filepath.Join(work, fmt.Sprintf("target-csv-%d", i))
			if err := copyTree(seedStore, store); err != nil {
				return err
			}
			if err := copyTree(seedTarget, target); err != nil {
				return err
			}
			err = step(completeCSV, add(&completeCSV.chainsync, func() (sample, error) {
				return b.chainsync("complete-csv-csv", job{Kind: "cycle", ID: "next", Source: csvEnd(changed), Target: csvEnd(target), Store: store})
			}), add(&completeCSV.other, csvdiffRun))
			if err != nil {
				return err
			}
			os.RemoveAll(store)
			os.RemoveAll(target)
		}
		if i >= slowRuns {
			continue
		}

		if measured("postgres") {
			if err := b.csvToPostgres(ctx, i, psql, base, changed, baseFile, csvdiffRun, initialPG, completePG, step, add); err != nil {
				return err
			}
		}
		// postgres -> postgres: a source with a change feed.
		if !measured("feed") {
			continue
		}
		source, err := b.table(ctx)
		if err != nil {
			return err
		}
		if _, err := b.psqlCopy(psql, source, baseFile); err != nil {
			return err
		}
		target, err := b.table(ctx)
		if err != nil {
			return err
		}
		copyTarget, err := b.table(ctx)
		if err != nil {
			return err
		}
		store := filepath.Join(work, fmt.Sprintf("store-feed-%d", i))
		err = step(initialFeed, add(&initialFeed.chainsync, func() (sample, error) {
			return b.chainsync("initial-postgres-postgres", job{Kind: "cycle", ID: "initial", Source: b.pgEnd(source), Target: b.pgEnd(target), Store: store})
		}), add(&initialFeed.other, func() (sample, error) { return b.psqlCopy(psql, copyTarget, baseFile) }))
		if err != nil {
			return err
		}
		if err := b.applyChanges(ctx, source, changed); err != nil {
			return err
		}
		err = step(nextFeed, add(&nextFeed.chainsync, func() (sample, error) {
			return b.chainsync("next-postgres-postgres", job{Kind: "cycle", ID: "next", Source: b.pgEnd(source), Target: b.pgEnd(target), Store: store,
				WantIncremental: true})
		}), nil)
		if err != nil {
			return err
		}
		os.RemoveAll(store)
		b.drop(ctx, source, target, copyTarget)
	}

	fmt.Printf("\n%d rows; medians of %d runs (%d for the postgres rows); cpu is user+sys of the process\n\n", rows, runs, slowRuns)
	fmt.Println("| work | chainsync | the comparison, same files, same run | ratio | chainsync peak memory |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	ratio := func(r *row) float64 { return median(r.chainsync, wallOf) / median(r.other, wallOf) }
	for _, r := range []*row{deltaFiles, deltaRecords, completeCSV, initialPG, completePG, initialFeed} {
		fmt.Printf("| %s | %.2f s (%.1f cpu-s) | %s %.2f s (%.1f cpu-s), peak %.0f MiB | %.2f× (cpu %.2f×) | %.0f MiB |\n", r.name,
			median(r.chainsync, wallOf), median(r.chainsync, cpuOf), r.comparison, median(r.other, wallOf), median(r.other, cpuOf),
			median(r.other, peakOf), ratio(r), median(r.chainsync, cpuOf)/median(r.other, cpuOf), median(r.chainsync, peakOf))
	}
	fmt.Printf("| %s | %.2f s (%.1f cpu-s) | — | %.1f%% of the initial | %.0f MiB |\n", nextFeed.name,
		median(nextFeed.chainsync, wallOf), median(nextFeed.chainsync, cpuOf),
		100*median(nextFeed.chainsync, wallOf)/median(initialFeed.chainsync, wallOf), median(nextFeed.chainsync, peakOf))
	fmt.Printf("| (the csv -> postgres next cycle above, against its initial) | | | %.1f%% of the initial | |\n\n",
		100*median(completePG.chainsync, wallOf)/median(initialPG.chainsync, wallOf))

	goal := func(name string, measured float64, cmp string, target float64) {
		fmt.Printf("GOAL %s measured=%.3g target%s%g\n", name, measured, cmp, target)
	}
	goal("delta-vs-csvdiff-time", ratio(deltaRecords), "<=", 0.67)
	goal("delta-vs-csvdiff-memory", median(deltaRecords.chainsync, peakOf)/median(deltaRecords.other, peakOf), "<=", 0.25)
	goal("complete-csv-csv-vs-csvdiff", ratio(completeCSV), "<=", 2)
	goal("complete-csv-postgres-vs-csvdiff", ratio(completePG), "<=", 2)
	goal("initial-vs-copy", ratio(initialPG), "<=", 1.5)
	goal("initial-peak-mib", median(initialPG.chainsync, peakOf), "<=", 512)
	goal("next-csv-vs-initial", median(completePG.chainsync, wallOf)/median(initialPG.chainsync, wallOf), "<=", 0.25)
	goal("next-changefeed-vs-initial", median(nextFeed.chainsync, wallOf)/median(initialFeed.chainsync, wallOf), "<=", 0.05)
	return nil
}

type (
	stepFunc func(r *row, mine, theirs func() (sample, error)) error
	addFunc  func(to *[]sample, f func() (sample, error)) func() (sample, error)
)

// csvToPostgres measures the initial sync csv -> postgres against COPY, then the next cycle
// against csvdiff.
func (b *bench) csvToPostgres(ctx context.Context, i int, psql, base, changed, baseFile string, csvdiffRun func() (sample, error),
	initialPG, completePG *row, step stepFunc, add addFunc) error {
	target, err := b.table(ctx)
	if err != nil {
		return err
	}
	copyTarget, err := b.table(ctx)
	if err != nil {
		return err
	}
	defer b.drop(ctx, target, copyTarget)
	store := filepath.Join(b.work, fmt.Sprintf("store-pg-%d", i))
	defer os.RemoveAll(store)
	err = step(initialPG, add(&initialPG.chainsync, func() (sample, error) {
		return b.chainsync("initial-csv-postgres", job{Kind: "cycle", ID: "initial", Source: csvEnd(base), Target: b.pgEnd(target), Store: store})
	}), add(&initialPG.other, func() (sample, error) { return b.psqlCopy(psql, copyTarget, baseFile) }))
	if err != nil {
		return err
	}
	return step(completePG, add(&completePG.chainsync, func() (sample, error) {
		return b.chainsync("next-csv-postgres", job{Kind: "cycle", ID: "next", Source: csvEnd(changed), Target: b.pgEnd(target), Store: store})
	}), add(&completePG.other, csvdiffRun))
}

// measure runs cmd to its end and returns its wall time, CPU time and peak memory. When the
// process writes profiles, profileDir says where (through the environment).
func measure(cmd *exec.Cmd, profileDir string) (sample, error) {
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if profileDir != "" {
		cmd.Env = append(os.Environ(), profileEnv+"="+profileDir)
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, lastLines(stderr.String(), 20))
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), peakMiB: float64(ru.Maxrss) / 1024}, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// chainsync runs one job in a child process; the first run of each named row is profiled when
// asked.
func (b *bench) chainsync(name string, j job) (sample, error) {
	j.Rows = b.rows
	j.SpillDir = b.work
	raw, _ := json.Marshal(j)
	profileDir := ""
	if b.profile != "" && name != "" && !b.profiled[name] {
		b.profiled[name] = true
		profileDir = filepath.Join(b.profile, name)
	}
	return measure(exec.Command(b.self, childArg, string(raw)), profileDir)
}

const exportFile = "items.csv"

var columns = []string{"id", "email", "given_name", "family_name", "phone", "company", "title", "city", "country", "modified"}

func (b *bench) table(ctx context.Context) (string, error) {
	b.schemaSeq++
	schema := fmt.Sprintf("bench%d", b.schemaSeq)
	err := b.exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]q; CREATE TABLE %[1]q.items (id text PRIMARY KEY, email text, given_name text,
		family_name text, phone text, company text, title text, city text, country text, modified timestamptz DEFAULT now())`, schema))
	return schema, err
}

func (b *bench) drop(ctx context.Context, schemas ...string) {
	for _, s := range schemas {
		b.exec(ctx, fmt.Sprintf(`DROP SCHEMA %q CASCADE`, s))
	}
}

func (b *bench) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, b.pg.URL("disable"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func (b *bench) psqlCopy(psql, schema, file string) (sample, error) {
	return measure(exec.Command(psql, b.pg.URL("disable"), "-v", "ON_ERROR_STOP=1", "-q", "-c",
		fmt.Sprintf(`\copy %q.items (%s) FROM '%s' WITH (FORMAT csv, HEADER true)`, schema, strings.Join(columns, ", "), file)), "")
}

// applyChanges makes the changed export's changes to a table loaded with the base export, as an
// application would: rows inserted, updated and deleted, each stamped with its modification time.
func (b *bench) applyChanges(ctx context.Context, schema, changed string) error {
	conn, err := pgx.Connect(ctx, b.pg.URL("disable"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE upserts (LIKE %q.items); CREATE TEMP TABLE deletes (id text)`, schema)); err != nil {
		return err
	}
	for _, load := range []struct{ table, file string }{{"upserts", "upserts.csv"}, {"deletes", "deletes.csv"}} {
		f, err := os.Open(filepath.Join(changed, "..", load.file))
		if err != nil {
			return err
		}
		_, err = conn.PgConn().CopyFrom(ctx, f, fmt.Sprintf(`COPY %s FROM STDIN WITH (FORMAT csv)`, load.table))
		f.Close()
		if err != nil {
			return err
		}
	}
	sets := make([]string, 0, len(columns))
	for _, c := range columns[1 : len(columns)-1] {
		sets = append(sets, fmt.Sprintf("%s = excluded.%s", c, c))
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]q.items SELECT id, email, given_name, family_name, phone, company, title, city, country,
		clock_timestamp() FROM upserts ON CONFLICT (id) DO UPDATE SET %s, modified = clock_timestamp();
		DELETE FROM %[1]q.items WHERE id IN (SELECT id FROM deletes)`, schema, strings.Join(sets, ", ")))
	return err
}

func copyTree(from, to string) error {
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copying %s: %w: %s", from, err, out)
	}
	return nil
}

// Realistic text: names, companies, titles and places drawn from short lists, as a CRM export's.
var (
	givenNames  = []string{"Maria", "Jean", "Aiko", "Liam", "Fatima", "Noah", "Olga", "Pedro", "Chen", "Amara", "Lucas", "Sofia", "Yusuf", "Emma", "Ravi", "Ines"}
	familyNames = []string{"Garcia", "Martin", "Tanaka", "Smith", "Haddad", "Muller", "Ivanova", "Silva", "Wang", "Okafor", "Bernard", "Rossi", "Demir", "Dubois", "Patel", "Costa"}
	companies   = []string{"Acme Corp", "Globex", "Initech", "Umbrella SA", "Stark Ltd", "Wayne & Co", "Hooli", "Vandelay", "Soylent", "Tyrell Inc"}
	titles      = []string{"Accountant", "Sales Lead", "Engineer", "Buyer", "Director", "Analyst", "Consultant", "Designer", "Manager", "Assistant"}
	cities      = []string{"Paris", "Lyon", "Osaka", "Leeds", "Beirut", "Berlin", "Kazan", "Porto", "Wuhan", "Lagos", "Nantes", "Milan"}
	countries   = []string{"FR", "JP", "GB", "LB", "DE", "RU", "PT", "CN", "NG", "IT"}
)

// person is one row; n picks its content, so the same n gives the same row.
func person(id string, n uint64, version int, modified time.Time) []string {
	r := rand.New(rand.NewPCG(n, uint64(version)))
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	given, family := pick(givenNames), pick(familyNames)
	title := pick(titles)
	if version > 0 {
		title = "Senior " + title
	}
	return []string{id, fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(given), strings.ToLower(family), n%1000), given, family,
		fmt.Sprintf("+33 6 %02d %02d %02d %02d", r.IntN(100), r.IntN(100), r.IntN(100), r.IntN(100)),
		pick(companies), title, pick(cities), pick(countries), modified.Format(time.RFC3339)}
}

// generate writes base/items.csv (rows in no particular key order), changed/items.csv (every
// 400th row deleted, every 200th updated, a new row after every 400th) and, for a table, the
// changes alone: upserts.csv and deletes.csv. It returns the base export's size.
func generate(work string, rows int) (int64, error) {
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	later := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	files := map[string]*csvFile{}
	for _, name := range []string{"base/" + exportFile, "changed/" + exportFile, "upserts.csv", "deletes.csv"} {
		f, err := newCSVFile(filepath.Join(work, name))
		if err != nil {
			return 0, err
		}
		files[name] = f
	}
	base, changed := files["base/"+exportFile], files["changed/"+exportFile]
	base.write(columns)
	changed.write(columns)
	// Keys in a scattered order, as an export sorted by something else lists them.
	perm := rand.New(rand.NewPCG(1, 2)).Perm(rows)
	for j, k := range perm {
		id := fmt.Sprintf("E%08d", k)
		rec := person(id, uint64(k), 0, start.Add(time.Duration(k)*time.Second))
		base.write(rec)
		switch {
		case j%400 == 0:
			files["deletes.csv"].write([]string{id})
		case j%200 == 1:
			upd := person(id, uint64(k), 1, later.Add(time.Duration(j)*time.Second))
			changed.write(upd)
			files["upserts.csv"].write(upd)
		default:
			changed.write(rec)
		}
		if j%400 == 2 {
			n := uint64(rows + j)
			ins := person(fmt.Sprintf("E%08d", n), n, 0, later.Add(time.Duration(j)*time.Second))
			changed.write(ins)
			files["upserts.csv"].write(ins)
		}
	}
	for _, f := range files {
		if err := f.close(); err != nil {
			return 0, err
		}
	}
	fi, err := os.Stat(filepath.Join(work, "base", exportFile))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// csvFile writes rows whose cells never need quoting.
type csvFile struct {
	f *os.File
	w *bufio.Writer
}

func newCSVFile(path string) (*csvFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &csvFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (c *csvFile) write(cells []string) {
	c.w.WriteString(strings.Join(cells, ","))
	c.w.WriteByte('\n')
}

func (c *csvFile) close() error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.f.Close()
}
