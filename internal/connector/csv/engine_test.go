package csv

import (
	stdcsv "encoding/csv"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(m.Run())
}

// TestEngine runs the engine's scenarios with csv files on both sides.
func TestEngine(t *testing.T) { enginetest.Run(t, fixture) }

var fixture = enginetest.Fixture{
	New: func(t *testing.T, role string) enginetest.Endpoint {
		return csvEndpoint{dir: t.TempDir()}
	},
	OpenSpec: func(spec string) (enginetest.Endpoint, error) { return csvEndpoint{dir: spec}, nil },
}

// csvEndpoint is a directory with contacts.csv keyed by email, one file
// shared by all users (owner column).
type csvEndpoint struct{ dir string }

var csvHeader = []string{"email", "owner", "name", "modified"}

func (e csvEndpoint) path() string { return filepath.Join(e.dir, "contacts.csv") }

func (e csvEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(Config{Side: side, Directory: e.dir, MissingFileIsEmpty: side == "target",
		Entities: map[string]collection.Collection{enginetest.Entity: {Name: "contacts.csv", KeyFields: []string{"email"},
			ModifiedField: "modified", Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}})
	if err != nil {
		t.Fatalf("csv.New: %v", err)
	}
	return c
}

func (e csvEndpoint) load(t testing.TB) [][]string {
	f, err := os.Open(e.path())
	if errors.Is(err, fs.ErrNotExist) {
		return [][]string{csvHeader}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := stdcsv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (e csvEndpoint) save(t testing.TB, recs [][]string) {
	f, err := os.Create(e.path())
	if err != nil {
		t.Fatal(err)
	}
	w := stdcsv.NewWriter(f)
	w.WriteAll(recs)
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

func (e csvEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	recs := e.load(t)
	row := []string{email, owner, name, modified.UTC().Format(time.RFC3339Nano)}
	for i, r := range recs[1:] {
		if r[0] == email {
			recs[i+1] = row
			e.save(t, recs)
			return
		}
	}
	e.save(t, append(recs, row))
}

func (e csvEndpoint) Delete(t testing.TB, owner, email string) {
	recs := e.load(t)
	e.save(t, slices.DeleteFunc(recs, func(r []string) bool { return r[0] == email && r[1] == owner }))
}

func (e csvEndpoint) Rows(t testing.TB, owner string) []string {
	var out []string
	recs := e.load(t)
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	for _, r := range recs[1:] {
		if r[idx["owner"]] == owner {
			out = append(out, r[idx["email"]]+" "+r[idx["name"]])
		}
	}
	slices.Sort(out)
	return out
}

func (e csvEndpoint) Spec() string      { return e.dir }
func (e csvEndpoint) Incremental() bool { return false }

// TestKillAndRerunWithoutMatchOn kills a cycle right after it rewrote the
// csv target, under a policy without matchOn: the rerun must recognise the
// rows from the origins file, not fail to create them again for ever.
func TestKillAndRerunWithoutMatchOn(t *testing.T) { enginetest.KillAndRerunWithoutMatchOn(t, fixture) }
