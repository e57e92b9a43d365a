package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/go-logr/logr"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/connector/postgres"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// childArg makes the binary run one job (the JSON argument after it) as chainsync's side of a
// measurement, in a process of its own so that its peak memory is its own.
const childArg = "child"

// profileEnv names the directory a child writes cpu.pprof and heap.pprof into.
const profileEnv = "BENCHITEMS_PROFILE"

// job is what one child does.
type job struct {
	// Kind is "cycle" (engine.Run), "delta-files" (the changed export against the base export)
	// or "delta-records" (the changed export against the records of a cycle of the base one).
	Kind    string
	ID      string
	Source  end
	Target  end
	Store   string
	Base    string
	Changed string
	// WantIncremental fails a cycle that was not an Incremental one.
	WantIncremental bool
	Rows            int
	SpillDir        string
}

// end is one endpoint: a csv folder or a postgres schema.
type end struct {
	CSV      string `json:",omitempty"`
	Host     string `json:",omitempty"`
	Port     int    `json:",omitempty"`
	User     string `json:",omitempty"`
	Password string `json:",omitempty"`
	Database string `json:",omitempty"`
	Schema   string `json:",omitempty"`
}

func csvEnd(dir string) end { return end{CSV: dir} }

func (b *bench) pgEnd(schema string) end {
	s := b.pg
	return end{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Database: s.Database, Schema: schema}
}

var user = connector.Scope{Email: "ann@example.com"}

const entity = "items"

// fields are the mapped columns; each side keeps its own modified column.
var fields = columns[:len(columns)-1]

func policy() engine.Policy {
	e := engine.Entity{Name: entity}
	for _, f := range fields {
		e.Fields = append(e.Fields, engine.FieldMapping{Source: f, Target: f})
	}
	return engine.Policy{Name: "bench", Source: engine.Endpoint{Name: "src"}, Target: engine.Endpoint{Name: "tgt"},
		Direction: engine.OneWay, Conflict: engine.SourceWins, Deletes: engine.Deletes{Propagate: true}, Entities: []engine.Entity{e}}
}

func open(ctx context.Context, e end, side string) (connector.Connector, error) {
	coll := collection.Collection{Name: "items", KeyFields: []string{"id"}, ModifiedField: "modified"}
	if e.CSV != "" {
		coll.Name = exportFile
		return csv.New(csv.Config{Side: side, Directory: e.CSV, Entities: map[string]collection.Collection{entity: coll},
			MissingFileIsEmpty: side == "target"})
	}
	return postgres.New(ctx, postgres.Config{Side: side, Host: e.Host, Port: e.Port, User: e.User, Password: e.Password,
		Database: e.Database, Schema: e.Schema, SSLMode: "disable", Entities: map[string]collection.Collection{entity: coll}})
}

func child(arg string) int {
	var j job
	if err := json.Unmarshal([]byte(arg), &j); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dir := os.Getenv(profileEnv)
	if dir != "" {
		os.MkdirAll(dir, 0o755)
		f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		pprof.StartCPUProfile(f)
	}
	err := j.run(context.Background())
	if dir != "" {
		pprof.StopCPUProfile()
		f, ferr := os.Create(filepath.Join(dir, "heap.pprof"))
		if ferr == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func (j job) run(ctx context.Context) error {
	switch j.Kind {
	case "cycle":
		return j.cycle(ctx)
	case "delta-files":
		return j.deltaFiles(ctx)
	case "delta-records":
		return j.deltaRecords(ctx)
	}
	return fmt.Errorf("unknown job %q", j.Kind)
}

func (j job) cycle(ctx context.Context) error {
	src, err := open(ctx, j.Source, "source")
	if err != nil {
		return err
	}
	defer src.Close()
	tgt, err := open(ctx, j.Target, "target")
	if err != nil {
		return err
	}
	defer tgt.Close()
	store, err := records.Open(j.Store)
	if err != nil {
		return err
	}
	r, err := engine.Run(ctx, engine.Cycle{ID: j.ID, User: user.Email, Scope: user, Policy: policy(), Source: src, Target: tgt,
		Records: store, LockTimeout: time.Minute, Log: logr.Discard(), SpillDir: j.SpillDir})
	if err != nil {
		return err
	}
	if r.Total.Errors > 0 || r.Total.Skipped > 0 {
		return fmt.Errorf("cycle %s: %+v", j.ID, r.Total)
	}
	if j.WantIncremental && r.Entities[0].Mode != engine.Incremental {
		return fmt.Errorf("cycle %s was %s, not Incremental", j.ID, r.Entities[0].Mode)
	}
	return nil
}

// read is the csv connector's read of one export, cleansed and sorted as a cycle's.
func (j job) read(ctx context.Context, dir string) (*delta.Sorter, func(func(delta.Entry, error) bool), error) {
	c, err := open(ctx, csvEnd(dir), "source")
	if err != nil {
		return nil, nil, err
	}
	req := connector.ReadRequest{Scope: user, Entity: entity, Fields: fields}
	cl := delta.Cleansing{Fields: fields, SpillDir: j.SpillDir}
	fail := func(err error) { panic(err) }
	return cl.Prepare(c.ReadAll(ctx, req), fail, func(r delta.Rejected) { fail(fmt.Errorf("rejected %+v", r)) })
}

// expect checks the counts of a merge against what generate made.
func (j job) expect(counts [4]int) error {
	want := [4]int{delta.Insert: j.Rows / 400, delta.Update: j.Rows / 200, delta.Delete: j.Rows / 400}
	want[delta.Unchanged] = j.Rows - want[delta.Update] - want[delta.Delete]
	if counts != want {
		return fmt.Errorf("found %v (unchanged, insert, update, delete), want %v", counts, want)
	}
	return nil
}

func (j job) deltaFiles(ctx context.Context) error {
	baseSorter, base, err := j.read(ctx, j.Base)
	if err != nil {
		return err
	}
	defer baseSorter.Close()
	sorter, changed, err := j.read(ctx, j.Changed)
	if err != nil {
		return err
	}
	defer sorter.Close()
	recorded := func(yield func(delta.Recorded, error) bool) {
		for e, err := range base {
			if !yield(delta.Recorded{Key: e.Key, ID: e.ID, Hash: e.Hash}, err) {
				return
			}
		}
	}
	var counts [4]int
	for c, err := range delta.Merge(changed, recorded) {
		if err != nil {
			return err
		}
		counts[c.Kind]++
	}
	return j.expect(counts)
}

func (j job) deltaRecords(ctx context.Context) error {
	store, err := records.Open(j.Store)
	if err != nil {
		return err
	}
	u, err := store.OpenUser(user.Email, records.OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer u.Close()
	sorter, changed, err := j.read(ctx, j.Changed)
	if err != nil {
		return err
	}
	defer sorter.Close()
	pair, side := records.PairOf(records.Endpoint{Name: "src", Entity: entity}, records.Endpoint{Name: "tgt", Entity: entity})
	var counts [4]int
	err = u.View(func(tx *records.Tx) error {
		recorded := func(yield func(delta.Recorded, error) bool) {
			for l, err := range tx.Links(pair, side) {
				st := l.Sides[side]
				if !yield(delta.Recorded{Key: st.Key, ID: st.ID, Hash: st.Hash, Ref: l.Sides[0].Key}, err) {
					return
				}
			}
		}
		for c, err := range delta.Merge(changed, recorded) {
			if err != nil {
				return err
			}
			counts[c.Kind]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	runtime.KeepAlive(u)
	return j.expect(counts)
}
