package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/conntest"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/delta"
)

// exportSource reads like the csv connector over a shared export: the items
// in duplicated are set aside because another user's row has their key, those
// in keyless read with an empty key (so no ID), and those in unreadable fail
// to read. A full extract, so every cycle is a Complete one.
type exportSource struct {
	*conntest.Memory
	duplicated, keyless, unreadable map[string]bool
}

var extractCaps = connector.Capabilities{ModTime: true}

func newExportSource() *exportSource {
	return &exportSource{Memory: conntest.NewMemory(extractCaps),
		duplicated: map[string]bool{}, keyless: map[string]bool{}, unreadable: map[string]bool{}}
}

func (x *exportSource) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		for it, err := range x.Memory.ReadAll(ctx, req) {
			switch {
			case err != nil:
			case x.duplicated[it.ID]:
				err = connector.NewItemError(it.ID, &delta.SetAside{Reason: delta.Duplicate, Item: it,
					Why: fmt.Errorf("2 rows of the file, not all alike, have the key %s", it.ID)})
				it = connector.Item{}
			case x.keyless[it.ID]:
				it.ID = ""
			case x.unreadable[it.ID]:
				err = connector.NewItemError(it.ID, errors.New("line 3: wrong number of fields"))
				it = connector.Item{}
			}
			if !yield(it, err) {
				return
			}
		}
	}
}

func (w *world) cycleFrom(src connector.Connector) Result {
	w.t.Helper()
	w.cycles++
	w.clock.t = w.clock.t.Add(time.Minute)
	r, err := Run(context.Background(), Cycle{ID: fmt.Sprintf("cycle-%d", w.cycles), User: "ann@example.com",
		Scope: connector.Scope{Email: "ann@example.com"}, Policy: w.policy, Source: src, Target: w.tgt,
		Records: w.store, Clock: w.clock, Log: logr.Discard(), OnReject: w.onReject})
	if err != nil {
		w.t.Fatalf("cycle %d: %v", w.cycles, err)
	}
	return r
}

func nameOf(src *exportSource, id string) string {
	it, _ := src.Get("contact", id)
	return it.Fields["name"].Text
}

func reportKinds(r Result) []string {
	var kinds []string
	for _, e := range r.Entities {
		for _, rep := range e.Reports {
			kinds = append(kinds, rep.Kind+": "+rep.Reason)
		}
	}
	return kinds
}

// A key duplicated within the user's own rows: cleansing sets both aside.
func TestItemSetAsideByCleansingIsNotDeleted(t *testing.T) {
	for _, dir := range []Direction{OneWay, TwoWay} {
		t.Run(string(dir), func(t *testing.T) {
			g := NewWithT(t)
			w := newWorld(t, dir, SourceWins, extractCaps, fullCaps)
			w.policy.Entities[0].SourceKeyFields = []string{"email"}
			w.src.Put("contact", contact("Ann", "ann@x"))
			w.src.Put("contact", contact("Bob", "bob@x"))
			g.Expect(w.mustCycle().Total.Created).To(Equal(2))

			twin := w.src.Put("contact", contact("Ann Other", "ann@x"))
			r := w.mustCycle()
			g.Expect(r.Total).To(Equal(Counts{Skipped: 2}), "both copies set aside, nothing written")
			g.Expect(r.Empty()).To(BeFalse())
			g.Expect(reportKinds(r)).To(HaveEach(ContainSubstring("copy on mail is kept as is")))
			_, tgt := w.contents()
			g.Expect(tgt).To(Equal([]string{"Ann <ann@x>", "Bob <bob@x>"}))

			w.src.Remove("contact", twin)
			g.Expect(w.mustCycle().Total).To(Equal(Counts{}), "the records were kept as they were")
			_, tgt = w.contents()
			g.Expect(tgt).To(Equal([]string{"Ann <ann@x>", "Bob <bob@x>"}))
		})
	}
}

// A key another user's row holds: the connector sets the item aside. While
// it is, the other side's changes wait too; once it is unambiguous again they
// are made.
func TestItemSetAsideByTheConnectorIsNeitherDeletedNorWritten(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, SourceWins, extractCaps, fullCaps)
	src := newExportSource()
	src.SetClock(w.clock.Now)
	annID := src.Put("contact", contact("Ann", "ann@x"))
	src.Put("contact", contact("Bob", "bob@x"))
	g.Expect(w.cycleFrom(src).Total.Created).To(Equal(2))

	src.duplicated[annID] = true
	var annOnTarget string
	for _, it := range w.tgt.Items("person") {
		if it.Fields["mail"].Text == "ann@x" {
			annOnTarget = it.ID
		}
	}
	w.tgt.Put("person", connector.Item{ID: annOnTarget, Fields: person("Ann Lee", "ann@x").Fields})
	r := w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Skipped: 1}))
	g.Expect(r.Entities[0].Reports).To(ConsistOf(And(
		HaveField("Kind", string(delta.Duplicate)), HaveField("ID", annID),
		HaveField("Reason", ContainSubstring("not taken for deleted")))))
	g.Expect(w.tgt.Items("person")).To(HaveLen(2), "nothing deleted on the target")
	g.Expect(nameOf(src, annID)).To(Equal("Ann"), "the target's edit is not written over an ambiguous item")

	delete(src.duplicated, annID)
	r = w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Updated: 1}), "the edit made meanwhile is synced")
	g.Expect(nameOf(src, annID)).To(Equal("Ann Lee"))
	g.Expect(w.cycleFrom(src).Total).To(Equal(Counts{}))
}

// A row whose key was emptied cannot be told from the items missing from the
// read, so none of them is taken for deleted until it has a key again.
func TestItemsMissingBesideAKeylessRowAreNotDeleted(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", extractCaps, fullCaps)
	src := newExportSource()
	annID := src.Put("contact", contact("Ann", "ann@x"))
	bobID := src.Put("contact", contact("Bob", "bob@x"))
	src.Put("contact", contact("Cy", "cy@x"))
	g.Expect(w.cycleFrom(src).Total.Created).To(Equal(3))

	src.keyless[annID] = true
	src.Remove("contact", bobID)
	r := w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Skipped: 3}), "the keyless row, and Ann and Bob, who may be it")
	g.Expect(w.tgt.Items("person")).To(HaveLen(3))

	delete(src.keyless, annID)
	r = w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Deleted: 1}), "Bob was deleted after all")
	_, tgt := w.contents()
	g.Expect(tgt).To(Equal([]string{"Ann <ann@x>", "Cy <cy@x>"}))
}

// An item that fails to read exists all the same.
func TestItemThatFailsToReadIsNotDeleted(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", extractCaps, fullCaps)
	src := newExportSource()
	annID := src.Put("contact", contact("Ann", "ann@x"))
	src.Put("contact", contact("Bob", "bob@x"))
	g.Expect(w.cycleFrom(src).Total.Created).To(Equal(2))

	src.unreadable[annID] = true
	r := w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Errors: 1}))
	g.Expect(w.tgt.Items("person")).To(HaveLen(2))

	delete(src.unreadable, annID)
	g.Expect(w.cycleFrom(src).Total).To(Equal(Counts{}))
}

// The same with the csv connector over a shared export: a key another user's
// row also holds, then a key emptied.
func TestCSVRowsTurningAmbiguousAreNotDeleted(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", extractCaps, fullCaps)
	dir := t.TempDir()
	export := func(rows ...string) {
		t.Helper()
		data := "id,owner,name,email\n" + strings.Join(rows, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, "contacts.csv"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := csv.New(csv.Config{Directory: dir, Entities: map[string]collection.Collection{"contact": {
		Name: "contacts.csv", KeyFields: []string{"id"}, Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}})
	g.Expect(err).NotTo(HaveOccurred())
	ann, bob := "1,ann@example.com,Ann,ann@x", "2,ann@example.com,Bob,bob@x"
	export(ann, bob)
	g.Expect(w.cycleFrom(src).Total.Created).To(Equal(2))

	export(ann, bob, "1,cy@example.com,Cy,cy@x")
	r := w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Skipped: 1}))
	g.Expect(reportKinds(r)).To(ConsistOf(And(HavePrefix(string(delta.Duplicate)), ContainSubstring("not taken for deleted"))))
	g.Expect(w.tgt.Items("person")).To(HaveLen(2))

	export(" ,ann@example.com,Ann,ann@x", bob)
	r = w.cycleFrom(src)
	g.Expect(r.Total).To(Equal(Counts{Skipped: 2}), "the keyless row, and Ann, who may be it")
	g.Expect(w.tgt.Items("person")).To(HaveLen(2))

	export(ann, bob)
	g.Expect(w.cycleFrom(src).Total).To(Equal(Counts{}))
	_, tgt := w.contents()
	g.Expect(tgt).To(Equal([]string{"Ann <ann@x>", "Bob <bob@x>"}))
}
