package csv

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/jobgate"
	"github.com/chainsync/chainsync/internal/records"
)

// readOutcome is what one read gave a user: its items, item errors and the rows it found to be
// no one's, as text, in order.
func readOutcome(g Gomega, c *Connector, scope connector.Scope, rejected *[]string) []string {
	var out []string
	for item, err := range c.ReadAll(context.Background(), connector.ReadRequest{Scope: scope, Entity: "people"}) {
		if err != nil {
			g.Expect(connector.IsItemError(err)).To(BeTrue(), "%v", err)
			out = append(out, "error "+err.Error())
			continue
		}
		names := make([]string, 0, len(item.Fields))
		for k, v := range item.Fields {
			names = append(names, k+"="+v.Text)
		}
		slices.Sort(names)
		out = append(out, fmt.Sprintf("item %s %v origin=%q modified=%s", item.ID, names, item.Origin, item.ModTime.Format(time.RFC3339)))
	}
	if rejected != nil {
		out = append(out, *rejected...)
		*rejected = nil
	}
	return out
}

func sharedConnector(t *testing.T, side, dir string, shared *Shared, rejected *[]string) *Connector {
	t.Helper()
	cfg := sharedPeople(side, dir)
	people := cfg.Entities["people"]
	people.ModifiedField = "modified"
	cfg.Entities["people"] = people
	cfg.Shared = shared
	if rejected != nil {
		cfg.OnRejectedRow = func(entity string, row RejectedRow) {
			*rejected = append(*rejected, fmt.Sprintf("rejected %s line %d: %s", entity, row.Line, row.Reason))
		}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func email(name string) connector.Scope { return connector.Scope{Email: name + "@example.com"} }

// A Job's users reading one export through Shared get exactly what each would get reading the
// file alone: its own rows in file order, its malformed rows as item errors, its rows whose key
// another user's row holds taken back, the origins of its creates, and the rows no one owns
// reported to every reader. A user the Job was not told of, and users whose rows another writer
// or the Job itself rewrote since the file was filed, still get their rows as they now are.
func TestSharedReadGivesEachUserItsOwnShare(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", strings.Join([]string{
		"id,owner,name,modified",
		"1,ann@example.com,Ann,2024-01-01T00:00:00Z",
		"2,bob@example.com,Bob,2024-01-02T00:00:00Z",
		"3,ann@example.com,Ann Two,2024-01-03T00:00:00Z",
		"4,cid@example.com,Cid,not a time",
		"5,bob@example.com,short row",
		"6,,no owner,2024-01-01T00:00:00Z,extra",
		"7,ann@example.com,Seven,2024-01-07T00:00:00Z",
		"7,bob@example.com,Seven too,2024-01-07T00:00:00Z",
		"8,eve@example.com,Eve,2024-01-08T00:00:00Z",
		"9,ann@example.com,Nine,2024-01-09T00:00:00Z",
		"9,ann@example.com,Nine,2024-01-09T00:00:00Z",
		"",
	}, "\n"))
	writeFile(t, dir, ".people.csv.origins.json", fmt.Sprintf(`{%q: {"3": "token-3"}, %q: {"8": "token-8"}}`,
		email("ann").Key(), email("eve").Key()))

	users := []connector.Scope{email("ann"), email("bob"), email("cid"), email("dan")}
	var plainRejected, sharedRejected []string
	plain := sharedConnector(t, "source", dir, nil, &plainRejected)
	shared := NewShared(context.Background(), nil, users, t.TempDir())
	defer shared.Close()
	job := sharedConnector(t, "source", dir, shared, &sharedRejected)

	compare := func(when string, lines func([]string) []string) {
		for _, u := range append(users, email("eve")) {
			want := readOutcome(g, plain, u, &plainRejected)
			g.Expect(lines(readOutcome(g, job, u, &sharedRejected))).To(Equal(lines(want)), "%s, %s's read", when, u.Email)
		}
	}
	asTheyAre := func(s []string) []string { return s }
	// Rows the Job itself took out move the lines after them up; a shared read names rows by
	// their lines as the Job read the file.
	withoutLines := func(s []string) []string {
		out := make([]string, len(s))
		for i, l := range s {
			out[i] = regexp.MustCompile(`line \d+`).ReplaceAllString(l, "line N")
		}
		return out
	}
	compare("filed once", asTheyAre)
	g.Expect(readOutcome(g, job, email("ann"), &sharedRejected)).To(HaveLen(7), "Ann's 1, 3, 7, 9 twice, the retraction of 7, the row no one's")

	// Another Job's writer replaces the file: it is filed again.
	other := sharedConnector(t, "target", dir, nil, nil)
	_, err := other.Write(context.Background(), connector.WriteRequest{Scope: email("bob"), Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "2", Fields: map[string]connector.Value{"name": connector.String("Robert")}},
		{Op: connector.OpCreate, Origin: "token-10", Fields: map[string]connector.Value{"id": connector.String("10"), "name": connector.String("Ten")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	compare("after another Job's write", asTheyAre)

	// This Job writes Cid's rows: Cid's read sees them, the others are still served as filed.
	jobTarget := sharedConnector(t, "target", dir, shared, nil)
	res, err := jobTarget.Write(context.Background(), connector.WriteRequest{Scope: email("cid"), Entity: "people", Writes: []connector.Write{
		{Op: connector.OpDelete, ID: "4"},
		{Op: connector.OpCreate, Origin: "token-11", Fields: map[string]connector.Value{"id": connector.String("11"), "name": connector.String("Eleven")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	for _, r := range res {
		g.Expect(r.Err).NotTo(HaveOccurred())
	}
	compare("after the Job's own write", withoutLines)
	g.Expect(readOutcome(g, job, email("cid"), &sharedRejected)).To(ConsistOf(HavePrefix("item 11 "), HavePrefix("rejected ")))
}

// jobOf runs users' first cycles, csv to csv, as one Job does: a gate of concurrency cycles at a
// time, the csv files shared.
func jobOf(t *testing.T, concurrency int, src, tgt, store string, users []connector.Scope, id string, maxWrites ...int) []engine.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gate := jobgate.New(concurrency)
	shared := NewShared(ctx, gate, users, t.TempDir())
	if len(maxWrites) > 0 {
		shared.maxWrites = maxWrites[0]
	}
	defer shared.Close()
	st, err := records.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	results := make([]engine.Result, len(users))
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = gate.Do(ctx, func() (err error) {
				source, target := sharedConnector(t, "source", src, shared, nil), sharedConnector(t, "target", tgt, shared, nil)
				policy := peoplePolicy()
				policy.Deletes.Propagate = true
				results[i], err = engine.Run(ctx, engine.Cycle{ID: id, User: u.Email, Scope: u, Policy: policy,
					Source: source, Target: target, Records: st, Log: logr.Discard(), LockTimeout: time.Minute})
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("user %s: %v", users[i].Email, err)
		}
	}
	return results
}

func countRewrites(t *testing.T) func() map[string]int {
	var mu sync.Mutex
	counts := map[string]int{}
	saved := rewrote
	rewrote = func(file string, _ int, _ bool) {
		mu.Lock()
		defer mu.Unlock()
		counts[filepath.Base(file)]++
	}
	t.Cleanup(func() { rewrote = saved })
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := counts
		counts = map[string]int{}
		return out
	}
}

// Twelve users of one Job, three cycled at a time, write one csv target: their writes go in with
// one rewrite of the file per Job, every user's rows are there and only once, and the records
// agree with the file (a second Job has nothing to do). A Job after the export changed writes
// each change once, again in one rewrite.
func TestSharedWritesGoInOneRewritePerJob(t *testing.T) {
	g := NewWithT(t)
	rewrites := countRewrites(t)
	const users, rows = 12, 20
	src, tgt, store := t.TempDir(), t.TempDir(), t.TempDir()
	var lines []string
	var scopes []connector.Scope
	for u := range users {
		scopes = append(scopes, connector.Scope{Email: owner(u)})
		for i := range rows {
			lines = append(lines, fmt.Sprintf("u%d-%03d,%s,person %d,2024-01-01T00:00:00Z", u, i, owner(u), i))
		}
	}
	writeFile(t, src, "people.csv", "id,owner,name,modified\n"+joinLines(lines))

	for u, r := range jobOf(t, 3, src, tgt, store, scopes, "first") {
		g.Expect(r.Total).To(Equal(engine.Counts{Created: rows}), "user %d: %+v", u, r.Entities)
	}
	g.Expect(rewrites()).To(Equal(map[string]int{"people.csv": 1}))
	g.Expect(peopleRows(t, tgt)).To(Equal(peopleRows(t, src)))

	for u, r := range jobOf(t, 3, src, tgt, store, scopes, "second") {
		g.Expect(r.Total).To(Equal(engine.Counts{}), "user %d: %+v", u, r.Entities)
	}
	g.Expect(rewrites()).To(BeEmpty())

	// Every user's row 0 renamed, row 1 deleted, a row added.
	for i, l := range lines {
		switch {
		case strings.Contains(l, "-000,"):
			lines[i] = strings.Replace(l, "person 0", "renamed", 1)
		case strings.Contains(l, "-001,"):
			lines[i] = ""
		}
	}
	for u := range users {
		lines = append(lines, fmt.Sprintf("u%d-new,%s,newcomer,2024-01-02T00:00:00Z", u, owner(u)))
	}
	writeFile(t, src, "people.csv", "id,owner,name,modified\n"+strings.ReplaceAll(joinLines(lines), "\n\n", "\n"))
	for u, r := range jobOf(t, 3, src, tgt, store, scopes, "third") {
		g.Expect(r.Total).To(Equal(engine.Counts{Created: 1, Updated: 1, Deleted: 1}), "user %d: %+v", u, r.Entities)
	}
	g.Expect(rewrites()).To(Equal(map[string]int{"people.csv": 1}))
	g.Expect(peopleRows(t, tgt)).To(Equal(peopleRows(t, src)))
}

// A first sync writes a large file in batches of creates: each batch after the first appends to
// the file as the last one left it rather than parsing and rewriting it all. A create whose key
// the file holds, an update, or a file another writer replaced meanwhile takes the full rewrite,
// which checks and keeps everything as before.
func TestBatchesOfCreatesAppend(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var appended []bool
	saved := rewrote
	rewrote = func(_ string, _ int, a bool) {
		mu.Lock()
		defer mu.Unlock()
		appended = append(appended, a)
	}
	t.Cleanup(func() { rewrote = saved })
	dir := t.TempDir()
	c := sharedConnector(t, "target", dir, nil, nil)
	other := sharedConnector(t, "target", dir, nil, nil)
	write := func(c *Connector, who string, ws ...connector.Write) []connector.WriteResult {
		res, err := c.Write(context.Background(), connector.WriteRequest{Scope: email(who), Entity: "people", Writes: ws})
		g.Expect(err).NotTo(HaveOccurred())
		return res
	}
	create := func(id string) connector.Write {
		return connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String(id), "name": connector.String("n" + id)}}
	}
	for b := range 4 {
		for _, r := range write(c, "ann", create(fmt.Sprintf("%d-a", b)), create(fmt.Sprintf("%d-b", b))) {
			g.Expect(r.Err).NotTo(HaveOccurred())
		}
	}
	g.Expect(appended).To(Equal([]bool{false, true, true, true}))

	res := write(c, "ann", create("1-b"), create("5-a"))
	g.Expect(res[0].Err).To(MatchError(ContainSubstring("already exists")))
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	write(c, "ann", connector.Write{Op: connector.OpUpdate, ID: "0-a", Fields: map[string]connector.Value{"name": connector.String("renamed")}})
	write(c, "ann", create("6-a"))
	write(other, "bob", create("7-a"))
	write(c, "ann", create("8-a"))
	g.Expect(appended[4:]).To(Equal([]bool{false, false, true, false, false}))
	g.Expect(peopleRows(t, dir)).To(Equal([]string{
		"ann@example.com 0-a renamed", "ann@example.com 0-b n0-b", "ann@example.com 1-a n1-a", "ann@example.com 1-b n1-b",
		"ann@example.com 2-a n2-a", "ann@example.com 2-b n2-b", "ann@example.com 3-a n3-a", "ann@example.com 3-b n3-b",
		"ann@example.com 5-a n5-a", "ann@example.com 6-a n6-a", "ann@example.com 8-a n8-a", "bob@example.com 7-a n7-a"}))
}

// More rows to write than a Job holds back: the users past the bound wait for the rewrite
// keeping their slots, the others resume in order behind them, and the Job ends with every row
// written, none lost or doubled (it once waited for ever).
func TestSharedWritesBeyondTheBoundEnd(t *testing.T) {
	g := NewWithT(t)
	rewrites := countRewrites(t)
	const users, rows = 12, 20
	src, tgt, store := t.TempDir(), t.TempDir(), t.TempDir()
	var lines []string
	var scopes []connector.Scope
	for u := range users {
		scopes = append(scopes, connector.Scope{Email: owner(u)})
		for i := range rows {
			lines = append(lines, fmt.Sprintf("u%d-%03d,%s,person %d,2024-01-01T00:00:00Z", u, i, owner(u), i))
		}
	}
	writeFile(t, src, "people.csv", "id,owner,name,modified\n"+joinLines(lines))
	for u, r := range jobOf(t, 3, src, tgt, store, scopes, "first", 50) {
		g.Expect(r.Total).To(Equal(engine.Counts{Created: rows}), "user %d: %+v", u, r.Entities)
	}
	g.Expect(rewrites()["people.csv"]).To(BeNumerically(">=", users*rows/50/2), "rewrites past the bound")
	g.Expect(peopleRows(t, tgt)).To(Equal(peopleRows(t, src)))
}
