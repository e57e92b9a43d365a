package csv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// exportWorld is a shared export (the source) synced for several users to
// a shared csv target, keeping what each user's last cycle set aside from
// the export (what the cycle runner writes to the user's reports).
type exportWorld struct {
	t        *testing.T
	src, tgt string
	store    *records.Store
	setAside map[string][]delta.Rejected
	// mutate adjusts the source's configuration.
	mutate func(*Config)
}

func newExportWorld(t *testing.T, export string) *exportWorld {
	w := &exportWorld{t: t, src: t.TempDir(), tgt: t.TempDir(), setAside: map[string][]delta.Rejected{}}
	writeFile(t, w.src, "people.csv", export)
	store, err := records.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w.store = store
	return w
}

// setAsideRows lists the rows of the export the user's last cycle set
// aside for reason, as "id|name" of the row's cells.
func (w *exportWorld) setAsideRows(user string, reason delta.RejectReason) []string {
	var out []string
	for _, r := range w.setAside[user] {
		if r.Reason == reason {
			out = append(out, r.Entry.Fields["id"].Text+"|"+r.Entry.Fields["name"].Text)
		}
	}
	return out
}

// cycle runs one cycle of user, writing its null key and duplicate reports
// into reports/<user>/.
func (w *exportWorld) cycle(user string) engine.Result {
	w.t.Helper()
	cfg := sharedPeople("source", w.src)
	if w.mutate != nil {
		w.mutate(&cfg)
	}
	src, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	tgt, err := New(sharedPeople("target", w.tgt))
	if err != nil {
		w.t.Fatal(err)
	}
	w.setAside[user] = nil
	r, err := engine.Run(context.Background(), engine.Cycle{ID: "cycle", User: user, Scope: connector.Scope{Email: user},
		Policy: peoplePolicy(), Source: src, Target: tgt, Records: w.store, Log: logr.Discard(), LockTimeout: time.Minute,
		OnReject: func(entity, endpoint string, rej delta.Rejected) {
			if endpoint == "hr" {
				w.setAside[user] = append(w.setAside[user], rej)
			}
		}})
	if err != nil {
		w.t.Fatalf("cycle of %s: %v", user, err)
	}
	return r
}

// Keys are unique across the whole export: 1002 held by a row of ada's and
// a row of bob's is nobody's to sync, and each copy is in its owner's
// duplicates report. A key of blanks is no key.
func TestKeyDuplicatedAcrossUsersIsSyncedForNoOne(t *testing.T) {
	g := NewWithT(t)
	const ada, bob = "ada@example.com", "bob@example.com"
	w := newExportWorld(t, "id,owner,name\n"+
		"1001,ada@example.com,Ada One\n"+
		"1002,ada@example.com,Ada Two\n"+
		"1003,bob@example.com,Bob Three\n"+
		"1002,bob@example.com,Bob Two\n"+
		"  ,ada@example.com,Blank Key\n")

	for range 2 {
		ra, rb := w.cycle(ada), w.cycle(bob)
		g.Expect(ra.Total.Errors).To(BeZero(), "%+v", ra.Entities)
		g.Expect(rb.Total.Errors).To(BeZero(), "%+v", rb.Entities)
		g.Expect(ra.Total.Skipped).To(Equal(2), "ada's 1002 and her blank key are set aside: %+v", ra.Entities)
		g.Expect(rb.Total.Skipped).To(Equal(1), "bob's 1002 is set aside: %+v", rb.Entities)
		g.Expect(peopleRows(t, w.tgt)).To(Equal([]string{"ada@example.com 1001 Ada One", "bob@example.com 1003 Bob Three"}))

		g.Expect(w.setAsideRows(ada, delta.Duplicate)).To(Equal([]string{"1002|Ada Two"}))
		g.Expect(w.setAsideRows(bob, delta.Duplicate)).To(Equal([]string{"1002|Bob Two"}))
		g.Expect(w.setAsideRows(ada, delta.NullKey)).To(Equal([]string{"  |Blank Key"}))
		g.Expect(w.setAsideRows(bob, delta.NullKey)).To(BeEmpty())
	}

	// Once the export is fixed, the key syncs for its one owner.
	writeFile(t, w.src, "people.csv", "id,owner,name\n"+
		"1001,ada@example.com,Ada One\n"+
		"1002,ada@example.com,Ada Two\n"+
		"1003,bob@example.com,Bob Three\n")
	g.Expect(w.cycle(ada).Total).To(Equal(engine.Counts{Created: 1}))
	g.Expect(w.cycle(bob).Total).To(Equal(engine.Counts{}))
	g.Expect(w.setAsideRows(ada, delta.Duplicate)).To(BeEmpty())
}

// A hostile export's bad rows: each one whose owner can be read is that
// owner's item error, naming the file and line; the others fail no one.
// Users without a bad row have a clean cycle, so they can move on along a
// chain.
func TestMalformedRowFailsOnlyItsOwner(t *testing.T) {
	g := NewWithT(t)
	w := newExportWorld(t, hostileExport)
	users := []string{"ada@example.com", "bob@example.com", "cy@example.com", "dan@example.com"}
	results := map[string]engine.Result{}
	for _, u := range users {
		results[u] = w.cycle(u)
	}
	g.Expect(results["ada@example.com"].Total).To(Equal(engine.Counts{Created: 1, Errors: 1}))
	g.Expect(reasons(results["ada@example.com"])).To(ConsistOf(ContainSubstring("people.csv line 3: row has 5 cells, the header has 4")))
	g.Expect(results["bob@example.com"].Total).To(Equal(engine.Counts{Created: 1}))
	g.Expect(results["cy@example.com"].Total).To(Equal(engine.Counts{Errors: 1}))
	g.Expect(reasons(results["cy@example.com"])).To(ConsistOf(ContainSubstring(`people.csv line 6, column 19: bare " in non-quoted-field`)))
	g.Expect(results["dan@example.com"].Total).To(Equal(engine.Counts{}))
	g.Expect(results["dan@example.com"].Empty()).To(BeTrue())
}

// hostileExport: ada's row with a stray comma (line 3), a row cut short
// before its owner (line 5), a bare quote in cy's row (line 6), a broken
// quote before the owner (line 7), an unowned well-formed row (line 8) and
// an unowned short row (line 9).
const hostileExport = "id,owner,name,dept\n" +
	"1,ada@example.com,Ada,HR\n" +
	"2,ada@example.com,Smith, Ada,HR\n" +
	"3,bob@example.com,Bob,IT\n" +
	"4\n" +
	"5,cy@example.com,C\"y,IT\n" +
	"6,\"x\"y,IT\n" +
	"7,,Nobody,IT\n" +
	"8,,Short\n"

func reasons(r engine.Result) []string {
	var out []string
	for _, e := range r.Entities {
		for _, rep := range e.Reports {
			out = append(out, rep.Reason)
		}
	}
	return out
}

// The rows no one can be given go to OnRejectedRow, with their file, line
// and what is wrong; each user's read finds the same rows.
func TestUnattributableRowsGoToOnRejectedRow(t *testing.T) {
	g := NewWithT(t)
	w := newExportWorld(t, hostileExport)
	for _, u := range []string{"ada@example.com", "dan@example.com"} {
		var rows []string
		w.mutate = func(c *Config) {
			c.OnRejectedRow = func(entity string, row RejectedRow) {
				g.Expect(entity).To(Equal("people"))
				g.Expect(row.Header).To(Equal([]string{"id", "owner", "name", "dept"}))
				rows = append(rows, fmt.Sprintf("%s:%d %s %q", row.File, row.Line, row.Reason, row.Cells))
			}
		}
		w.cycle(u)
		g.Expect(rows).To(Equal([]string{
			`people.csv:5 row has 1 cell, the header has 4 ["4"]`,
			`people.csv:7 column 5: extraneous or missing " in quoted-field ["6"]`,
			`people.csv:9 row has 3 cells, the header has 4 ["8" "" "Short"]`,
		}), "%s's read", u)
	}
}
