package csv

import (
	"context"
	stdcsv "encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// The tests below start real processes writing one csv file, as cycle Jobs
// of different users do: goroutines would share one process and could hide
// a lock that only works within it.

const envConcurrentChild = "CHAINSYNC_CSV_CONCURRENT_CHILD"

// childJob is what one child process does: Mode "writes" calls Write
// directly, Mode "cycle" runs the engine for one user.
type childJob struct {
	Mode    string
	Dir     string // the csv target's directory
	Source  string // the csv source's directory (cycle)
	Store   string // the record store (cycle)
	Owner   string
	Prefix  string
	Rows    int
	GoFile  string // the child starts once this file exists
	OutFile string
}

// writeOutcome is one Write's result as the child saw it.
type writeOutcome struct {
	Op  string
	ID  string
	Err string
}

func sharedPeople(side string, dir string) Config {
	return Config{Side: side, Directory: dir, MissingFileIsEmpty: side == "target",
		Entities: map[string]collection.Collection{"people": {Name: "people.csv", KeyFields: []string{"id"},
			Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}}
}

// TestHelperProcessConcurrent is the child side; it does nothing in a normal
// test run.
func TestHelperProcessConcurrent(t *testing.T) {
	spec := os.Getenv(envConcurrentChild)
	if spec == "" {
		return
	}
	var job childJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(job.GoFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never told to start")
		}
	}
	var out any
	var err error
	switch job.Mode {
	case "writes":
		out, err = childWrites(job)
	case "cycle":
		out, err = childCycle(job)
	default:
		err = fmt.Errorf("unknown mode %q", job.Mode)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	if err := os.WriteFile(job.OutFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// childWrites creates job.Rows rows one Write at a time, then renames every
// third and deletes every fourth, two operations per Write: many small
// rewrites, so the writers' rewrites overlap.
func childWrites(job childJob) ([]writeOutcome, error) {
	c, err := New(sharedPeople("target", job.Dir))
	if err != nil {
		return nil, err
	}
	scope := connector.Scope{Email: job.Owner}
	var outcomes []writeOutcome
	write := func(ws ...connector.Write) error {
		res, err := c.Write(context.Background(), connector.WriteRequest{Scope: scope, Entity: "people", Writes: ws})
		if err != nil {
			return err
		}
		for i, r := range res {
			o := writeOutcome{Op: ws[i].Op.String(), ID: r.ID}
			if r.Err != nil {
				o.Err = r.Err.Error()
			}
			outcomes = append(outcomes, o)
		}
		return nil
	}
	for i := range job.Rows {
		if err := write(connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{
			"id": connector.String(fmt.Sprintf("%s-%03d", job.Prefix, i)), "name": connector.String(fmt.Sprintf("name %d", i))}}); err != nil {
			return outcomes, err
		}
	}
	var pending []connector.Write
	for i := range job.Rows {
		id := fmt.Sprintf("%s-%03d", job.Prefix, i)
		switch {
		case i%4 == 0:
			pending = append(pending, connector.Write{Op: connector.OpDelete, ID: id})
		case i%3 == 0:
			pending = append(pending, connector.Write{Op: connector.OpUpdate, ID: id,
				Fields: map[string]connector.Value{"name": connector.String(fmt.Sprintf("renamed %d", i))}})
		default:
			continue
		}
		if len(pending) == 2 {
			if err := write(pending...); err != nil {
				return outcomes, err
			}
			pending = nil
		}
	}
	if len(pending) > 0 {
		return outcomes, write(pending...)
	}
	return outcomes, nil
}

// smallBatches makes the engine write a few rows per Write, so that the
// cycles' writes interleave.
type smallBatches struct{ connector.Connector }

func (s smallBatches) Capabilities() connector.Capabilities {
	caps := s.Connector.Capabilities()
	caps.MaxBatch = 5
	return caps
}

func peoplePolicy() engine.Policy {
	return engine.Policy{
		Name:   "people-policy",
		Source: engine.Endpoint{Name: "hr"}, Target: engine.Endpoint{Name: "crm"},
		Entities: []engine.Entity{{Name: "people",
			Fields: []engine.FieldMapping{{Source: "id", Target: "id"}, {Source: "name", Target: "name"}}}},
		Direction: engine.OneWay, Conflict: engine.SourceWins,
	}
}

func runCycle(ctx context.Context, job childJob, target connector.Connector) (engine.Result, error) {
	src, err := New(sharedPeople("source", job.Source))
	if err != nil {
		return engine.Result{}, err
	}
	if target == nil {
		tgt, err := New(sharedPeople("target", job.Dir))
		if err != nil {
			return engine.Result{}, err
		}
		target = tgt
	}
	store, err := records.Open(job.Store)
	if err != nil {
		return engine.Result{}, err
	}
	return engine.Run(ctx, engine.Cycle{ID: "cycle-" + job.Prefix, User: job.Owner, Scope: connector.Scope{Email: job.Owner},
		Policy: peoplePolicy(), Source: src, Target: target, Records: store, Log: logr.Discard(), LockTimeout: time.Minute})
}

func childCycle(job childJob) (engine.Result, error) {
	tgt, err := New(sharedPeople("target", job.Dir))
	if err != nil {
		return engine.Result{}, err
	}
	return runCycle(context.Background(), job, smallBatches{tgt})
}

// startChildren runs one child process per job, lets them all start at
// once, and returns each one's decoded output.
func startChildren[T any](t *testing.T, jobs []childJob) []T {
	t.Helper()
	goFile := filepath.Join(t.TempDir(), "go")
	outDir := t.TempDir()
	cmds := make([]*exec.Cmd, len(jobs))
	outs := make([][]byte, len(jobs))
	for i := range jobs {
		jobs[i].GoFile = goFile
		jobs[i].OutFile = filepath.Join(outDir, fmt.Sprintf("out-%d.json", i))
		spec, _ := json.Marshal(jobs[i])
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperProcessConcurrent$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), envConcurrentChild+"="+string(spec))
	}
	done := make(chan int, len(jobs))
	for i, cmd := range cmds {
		go func() {
			outs[i], _ = cmd.CombinedOutput()
			done <- i
		}()
	}
	// Started processes wait for this file, so their writes overlap.
	time.Sleep(200 * time.Millisecond)
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range jobs {
		<-done
	}
	results := make([]T, len(jobs))
	for i, cmd := range cmds {
		if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			t.Fatalf("child %d failed: %v\n%s", i, cmd.ProcessState, outs[i])
		}
		b, err := os.ReadFile(jobs[i].OutFile)
		if err != nil {
			t.Fatalf("child %d wrote no result: %v\n%s", i, err, outs[i])
		}
		if err := json.Unmarshal(b, &results[i]); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	return results
}

// peopleRows reads the shared file as "owner id name" lines, sorted.
func peopleRows(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "people.csv"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := stdcsv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	var rows []string
	for _, r := range recs[1:] {
		rows = append(rows, r[idx["owner"]]+" "+r[idx["id"]]+" "+r[idx["name"]])
	}
	slices.Sort(rows)
	return rows
}

func owner(i int) string { return fmt.Sprintf("user%d@example.com", i) }

// Eight users' cycles write one csv file at once, each with many small
// rewrites: every row each of them was told was written is in the file,
// and nothing else.
func TestConcurrentWritersKeepEveryRow(t *testing.T) {
	g := NewWithT(t)
	const writers, rows = 8, 50
	dir := t.TempDir()
	jobs := make([]childJob, writers)
	var want []string
	writes := rows // per writer: the creates, then one per rename or delete
	for w := range jobs {
		jobs[w] = childJob{Mode: "writes", Dir: dir, Owner: owner(w), Prefix: fmt.Sprintf("w%d", w), Rows: rows}
		for i := range rows {
			if w == 0 && (i%4 == 0 || i%3 == 0) {
				writes++
			}
			switch {
			case i%4 == 0:
			case i%3 == 0:
				want = append(want, fmt.Sprintf("%s w%d-%03d renamed %d", owner(w), w, i, i))
			default:
				want = append(want, fmt.Sprintf("%s w%d-%03d name %d", owner(w), w, i, i))
			}
		}
	}
	slices.Sort(want)
	outcomes := startChildren[[]writeOutcome](t, jobs)

	for w, outs := range outcomes {
		g.Expect(outs).To(HaveLen(writes), "writer %d", w)
		for _, o := range outs {
			g.Expect(o.Err).To(BeEmpty(), "writer %d: %s of %s", w, o.Op, o.ID)
		}
	}
	got := peopleRows(t, dir)
	g.Expect(len(got)).To(Equal(len(want)), "rows in the file")
	g.Expect(got).To(Equal(want))
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		g.Expect(e.Name()).NotTo(HaveSuffix(".tmp"), "no temporary file is left behind")
	}
}

// The same through the engine: eight users' first cycles at once, each
// creating its rows on a shared csv target in small batches. The file then
// holds every user's rows, the records agree with it (a second cycle of
// every user has nothing to do), and each cycle counted only rows that are
// there.
func TestConcurrentCyclesKeepEveryRow(t *testing.T) {
	g := NewWithT(t)
	const users, rows = 8, 30
	src, tgt, store := t.TempDir(), t.TempDir(), t.TempDir()
	var lines []string
	for u := range users {
		for i := range rows {
			lines = append(lines, fmt.Sprintf("u%d-%03d,%s,person %d", u, i, owner(u), i))
		}
	}
	writeFile(t, src, "people.csv", "id,owner,name\n"+joinLines(lines))

	jobs := make([]childJob, users)
	for u := range jobs {
		jobs[u] = childJob{Mode: "cycle", Dir: tgt, Source: src, Store: store, Owner: owner(u), Prefix: fmt.Sprintf("u%d", u)}
	}
	results := startChildren[engine.Result](t, jobs)
	for u, r := range results {
		g.Expect(r.Total).To(Equal(engine.Counts{Created: rows}), "user %d: %+v", u, r.Entities)
	}
	got, want := peopleRows(t, tgt), peopleRows(t, src)
	g.Expect(len(got)).To(Equal(len(want)), "rows on the target")
	g.Expect(got).To(Equal(want))

	for u := range users {
		jobs[u].Prefix += "-again"
		r, err := runCycle(context.Background(), jobs[u], nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.Total).To(Equal(engine.Counts{}), "user %d's second cycle: %+v", u, r.Entities)
	}
}

func joinLines(lines []string) string {
	var s string
	for _, l := range lines {
		s += l + "\n"
	}
	return s
}

// A writer waits for the lock as long as its cycle allows, then gives up
// with an endpoint failure and changes nothing.
func TestWriteWaitsForTheLockUntilCancelled(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", "id,owner,name\n1,ann@example.com,Ann\n")
	c, err := New(sharedPeople("target", dir))
	g.Expect(err).NotTo(HaveOccurred())
	unlock, err := lockFile(context.Background(), filepath.Join(dir, ".people.csv.lock"))
	g.Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	create := connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("2"), "name": connector.String("Two")}}}}
	_, err = c.Write(ctx, create)
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
	g.Expect(peopleRows(t, dir)).To(Equal([]string{"ann@example.com 1 Ann"}))

	unlock()
	res, err := c.Write(context.Background(), create)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(peopleRows(t, dir)).To(Equal([]string{"ann@example.com 1 Ann", "ann@example.com 2 Two"}))
}
