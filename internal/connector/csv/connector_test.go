package csv

import (
	"bufio"
	"context"
	stdcsv "encoding/csv"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

var ann = connector.Scope{Email: "ann@example.com", Name: "Ann", Attributes: map[string]string{"dept": "HR"}}

func newConnector(t *testing.T, dir string, mutate func(*Config)) *Connector {
	t.Helper()
	cfg := Config{
		Side:      "source",
		Directory: dir,
		Entities: map[string]collection.Collection{
			"people": {Name: "people.csv", KeyFields: []string{"id"}},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readAll(g Gomega, c *Connector, entity string, scope connector.Scope) (items []connector.Item, itemErrs []error) {
	for item, err := range c.ReadAll(context.Background(), connector.ReadRequest{Scope: scope, Entity: entity}) {
		if connector.IsItemError(err) {
			itemErrs = append(itemErrs, err)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred())
		items = append(items, item)
	}
	return items, itemErrs
}

func byID(items []connector.Item) map[string]connector.Item {
	out := map[string]connector.Item{}
	for _, it := range items {
		out[it.ID] = it
	}
	return out
}

func TestReadsQuotingDelimiterAndComments(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", "# exported by HR\n"+
		"id;name;note\n"+
		"1;\"Smith; John\";\"said \"\"hi\"\"\"\n"+
		"# a comment between rows\n"+
		"2;Jane;\"two\nlines\"\n"+
		"3;;\n")
	c := newConnector(t, dir, func(c *Config) { c.Delimiter = ";"; c.Comment = "#" })

	items, errs := readAll(g, c, "people", ann)
	g.Expect(errs).To(BeEmpty())
	got := byID(items)
	g.Expect(got).To(HaveLen(3))
	g.Expect(got["1"].Fields).To(Equal(map[string]connector.Value{
		"id": connector.String("1"), "name": connector.String("Smith; John"), "note": connector.String(`said "hi"`),
	}))
	g.Expect(got["2"].Fields["note"]).To(Equal(connector.String("two\nlines")))
	g.Expect(got["3"].Fields["name"].IsNull()).To(BeTrue(), "an empty cell reads as null, like an SQL NULL")
}

func TestCompositeKeysAndScope(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", "company,emp_id,owner,name\n"+
		"acme,1,ann@example.com,A\n"+
		"acme,2,bob@example.com,B\n"+
		"beta,1,ann@example.com,C\n")
	c := newConnector(t, dir, func(c *Config) {
		c.Entities["people"] = collection.Collection{Name: "people.csv", KeyFields: []string{"company", "emp_id"},
			Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}
	})
	items, _ := readAll(g, c, "people", ann)
	ids := []string{}
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	g.Expect(ids).To(ConsistOf(`["acme","1"]`, `["beta","1"]`), "bob's row is out of ann's scope")

	_, err := first(c.ReadAll(context.Background(), connector.ReadRequest{Entity: "people", Scope: connector.Scope{Name: "nomail"}}))
	g.Expect(err).To(MatchError(ContainSubstring("entities[people].source.scope: scope field \"owner\": the user has no email")))
}

func TestEncodings(t *testing.T) {
	for _, encName := range []string{"utf-8", "utf-16le", "utf-16be", "latin1", "windows-1252"} {
		t.Run(encName, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			name := "Zoë Müller"
			if encName != "latin1" {
				name += " €" // windows-1252 has the euro sign, latin1 does not
			}
			enc, err := lookupEncoding(encName)
			g.Expect(err).NotTo(HaveOccurred())
			raw, err := enc.NewEncoder().String("id,name\n7," + name + "\n")
			g.Expect(err).NotTo(HaveOccurred())
			if encName == "utf-16le" {
				g.Expect(raw[:2]).To(Equal("\xff\xfe"), "the test file starts with a byte order mark")
			}
			writeFile(t, dir, "people.csv", raw)
			c := newConnector(t, dir, func(c *Config) { c.Encoding = encName })

			items, _ := readAll(g, c, "people", ann)
			g.Expect(items).To(HaveLen(1))
			g.Expect(items[0].Fields["name"].Text).To(Equal(name))

			// A rewrite keeps the encoding.
			_, err = c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
				{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("8"), "name": connector.String("Anaïs")}},
			}})
			g.Expect(err).NotTo(HaveOccurred())
			b, _ := os.ReadFile(filepath.Join(dir, "people.csv"))
			decoded, err := enc.NewDecoder().String(string(b))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(strings.TrimPrefix(decoded, "\ufeff")).To(Equal("id,name\n7," + name + "\n8,Anaïs\n"))
		})
	}
}

func TestWriteKeepsOtherUsersRowsAndReportsItemErrors(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", "id,owner,name,modified\n"+
		"1,ann@example.com,Ann One,2024-01-01T00:00:00Z\n"+
		"2,bob@example.com,Bob Two,2024-01-01T00:00:00Z\n"+
		"3,ann@example.com,Ann Three,2024-01-01T00:00:00Z\n"+
		"4,bob@example.com,Bob Four,2024-01-01T00:00:00Z\n")
	c := newConnector(t, dir, func(c *Config) {
		c.Side = "target"
		c.Entities["people"] = collection.Collection{Name: "people.csv", KeyFields: []string{"id"}, ModifiedField: "modified",
			Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}
	})
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }

	res, err := c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "1", Fields: map[string]connector.Value{"name": connector.String("Ann Uno")}},
		{Op: connector.OpDelete, ID: "3"},
		{Op: connector.OpDelete, ID: "2"}, // bob's: not ann's to delete
		{Op: connector.OpUpdate, ID: "99", Fields: map[string]connector.Value{"name": connector.String("ghost")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("5"), "name": connector.String("Ann Five")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("4"), "name": connector.String("clash")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("6"), "phone": connector.String("1")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(HaveLen(7))
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].ModTime).To(Equal(now), "an update stamps the modified column")
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[2].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(res[3].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(connector.IsItemError(res[3].Err)).To(BeTrue())
	g.Expect(res[4]).To(Equal(connector.WriteResult{ID: "5", ModTime: now}))
	g.Expect(res[5].Err).To(MatchError(ContainSubstring("already exists")), "key 4 is bob's: keys are unique in the whole file")
	g.Expect(res[6].Err).To(MatchError(ContainSubstring(`column "phone" is not in the header of people.csv`)))

	b, err := os.ReadFile(filepath.Join(dir, "people.csv"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).To(HavePrefix("id,owner,name,modified\n" +
		"1,ann@example.com,Ann Uno,2025-06-01T12:00:00Z\n" +
		"2,bob@example.com,Bob Two,2024-01-01T00:00:00Z\n" +
		"4,bob@example.com,Bob Four,2024-01-01T00:00:00Z\n" +
		"5,ann@example.com,Ann Five,2025-06-01T12:00:00Z\n"))

	// A create whose key ann already holds fails as an item.
	res, err = c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("5"), "name": connector.String("again")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).To(MatchError(ContainSubstring("already exists")))
	g.Expect(connector.IsItemError(res[0].Err)).To(BeTrue())
}

func TestWriteIsAtomic(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	original := "id,name\n1,Zoë\n"
	latin1, _ := lookupEncoding("latin1")
	raw, _ := latin1.NewEncoder().String(original)
	writeFile(t, dir, "people.csv", raw)
	c := newConnector(t, dir, func(c *Config) { c.Encoding = "latin1" })

	// Latin-1 cannot hold the euro sign: the write fails part-way through
	// encoding, and the old file must be untouched, with no leftovers.
	_, err := c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.String("2"), "name": connector.String("5 €")}},
	}})
	g.Expect(err).To(HaveOccurred())
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
	b, _ := os.ReadFile(filepath.Join(dir, "people.csv"))
	g.Expect(string(b)).To(Equal(raw))
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	g.Expect(names).To(ConsistOf("people.csv", ".people.csv.lock"), "no temporary file is left behind, only the writers' lock")

	// A write to a file that does not exist yet creates it, key first.
	res, err := c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpDelete, ID: "1"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	os.Remove(filepath.Join(dir, "people.csv"))
	res, err = c.Write(context.Background(), connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("N"), "id": connector.String("9"), "age": connector.Int(3)}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0]).To(Equal(connector.WriteResult{ID: "9"}))
	b, _ = os.ReadFile(filepath.Join(dir, "people.csv"))
	g.Expect(string(b)).To(Equal("id,age,name\n9,3,N\n"))
}

func TestConfigErrorsNameTheField(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	_, err := New(Config{Side: "source", Directory: filepath.Join(dir, "missing"), Delimiter: `"`, Encoding: "ebcdic",
		Entities: map[string]collection.Collection{"contacts": {Name: "../etc/passwd", KeyFields: []string{"id"}}}})
	g.Expect(err).To(MatchError(ContainSubstring("source.csv.directory: stat ")))
	g.Expect(err).To(MatchError(ContainSubstring(`source.csv.delimiter: "\""`)))
	g.Expect(err).To(MatchError(ContainSubstring(`source.csv.encoding: "ebcdic" is not one of`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.collection: "../etc/passwd" must be a file name`)))

	writeFile(t, dir, "employees.csv", "id,name,owner\n1,a,x\n")
	c, err := New(Config{Side: "source", Directory: dir, Entities: map[string]collection.Collection{
		"contacts": {Name: "employees.csv", KeyFields: []string{"emp_id"}, ModifiedField: "changed",
			Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = first(c.ReadAll(context.Background(), connector.ReadRequest{Entity: "contacts", Scope: ann}))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.keyFields: column "emp_id" is not in the header of employees.csv`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].source.modifiedField: column "changed" is not in the header of employees.csv`)))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
}

func TestMissingFile(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	src := newConnector(t, dir, nil)
	_, err := first(src.ReadAll(context.Background(), connector.ReadRequest{Entity: "people", Scope: ann}))
	g.Expect(err).To(MatchError(ContainSubstring("opening people.csv")), "a vanished export must not read as 'everything deleted'")

	tgt := newConnector(t, dir, func(c *Config) { c.MissingFileIsEmpty = true })
	items, _ := readAll(g, tgt, "people", ann)
	g.Expect(items).To(BeEmpty())
}

func TestMalformedRowsAreItemErrors(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writeFile(t, dir, "people.csv", "id,name\n1,a\n2,b,extra\n3,c\"d\n4,d\n")
	c := newConnector(t, dir, nil)
	items, errs := readAll(g, c, "people", ann)
	g.Expect(byID(items)).To(HaveKey("1"))
	g.Expect(byID(items)).To(HaveKey("4"), "rows after a bad one are still read")
	g.Expect(errs).To(HaveLen(2))
	g.Expect(errs[0]).To(MatchError(ContainSubstring(`people.csv line 3: row has 3 cells, the header has 2`)))
}

// first returns the first yielded pair, for tests of errors raised before
// any row.
func first(s iter.Seq2[connector.Item, error]) (connector.Item, error) {
	for item, err := range s {
		return item, err
	}
	return connector.Item{}, nil
}

// A file several times larger than the memory the read uses: the read must
// stream. The heap is sampled while iterating.
func TestReadStreamsLargeFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 40 MB file")
	}
	g := NewWithT(t)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "people.csv"))
	g.Expect(err).NotTo(HaveOccurred())
	w := bufio.NewWriter(f)
	cw := stdcsv.NewWriter(w)
	cw.Write([]string{"id", "name", "note"})
	const rows = 300_000
	pad := strings.Repeat("x", 100)
	for i := range rows {
		cw.Write([]string{fmt.Sprint(i), fmt.Sprintf("person %d", i), pad})
	}
	cw.Flush()
	w.Flush()
	f.Close()
	fi, _ := os.Stat(filepath.Join(dir, "people.csv"))

	c := newConnector(t, dir, nil)
	runtime.GC()
	var ms runtime.MemStats
	var peak uint64
	n := 0
	for _, err := range c.ReadAll(context.Background(), connector.ReadRequest{Entity: "people", Scope: ann}) {
		g.Expect(err).NotTo(HaveOccurred())
		n++
		if n%20_000 == 0 {
			// What the read holds, not the garbage it made: the heap after a collection.
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	g.Expect(n).To(Equal(rows))
	g.Expect(peak).To(BeNumerically("<", uint64(fi.Size())/3),
		"reading a %d MB file held %d MB of heap", fi.Size()>>20, peak>>20)
}
