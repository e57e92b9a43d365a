package delta

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
)

func item(id string, kv ...string) connector.Item {
	fields := map[string]connector.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		fields[kv[i]] = connector.String(kv[i+1])
	}
	return connector.Item{ID: id, Fields: fields}
}

func items(list ...connector.Item) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		for _, it := range list {
			if !yield(it, nil) {
				return
			}
		}
	}
}

type prepared struct {
	keys     []string
	entries  []Entry
	rejected map[RejectReason][]string
}

func prepare(t *testing.T, c Cleansing, list ...connector.Item) prepared {
	t.Helper()
	p := prepared{rejected: map[RejectReason][]string{}}
	sorter, sorted, err := c.Prepare(items(list...), func(error) {}, func(r Rejected) {
		p.rejected[r.Reason] = append(p.rejected[r.Reason], r.Entry.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sorter.Close()
	for e, err := range sorted {
		if err != nil {
			t.Fatal(err)
		}
		p.keys = append(p.keys, e.Key)
		p.entries = append(p.entries, e)
	}
	return p
}

func TestCleansing(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	cases := []struct {
		name         string
		cleansing    Cleansing
		items        []connector.Item
		wantIDs      []string
		wantNullKey  []string
		wantDupes    []string
		wantFieldsOf map[string][]string
	}{{
		name:      "sorted by native ID, unused columns dropped",
		cleansing: Cleansing{Fields: []string{"email"}},
		items:     []connector.Item{item("b", "email", "b@x", "secret", "s"), item("a", "email", "a@x")},
		wantIDs:   []string{"a", "b"},
		wantFieldsOf: map[string][]string{
			"b": {"email"},
		},
	}, {
		name:        "empty native ID is a null key",
		cleansing:   Cleansing{Fields: []string{"email"}},
		items:       []connector.Item{item("", "email", "ghost@x"), item("a", "email", "a@x")},
		wantIDs:     []string{"a"},
		wantNullKey: []string{""},
	}, {
		name:        "null and empty key fields are null keys",
		cleansing:   Cleansing{Fields: []string{"email"}, KeyFields: []string{"email"}},
		items:       []connector.Item{item("1", "email", ""), item("2"), item("3", "email", "c@x")},
		wantIDs:     []string{"3"},
		wantNullKey: []string{"1", "2"},
	}, {
		name:        "a native ID of blanks is a null key",
		cleansing:   Cleansing{Fields: []string{"email"}},
		items:       []connector.Item{item("  ", "email", "blank@x"), item("\t", "email", "tab@x"), item(" a ", "email", "a@x")},
		wantIDs:     []string{" a "},
		wantNullKey: []string{"  ", "\t"},
	}, {
		name:        "key fields of blanks are null keys",
		cleansing:   Cleansing{Fields: []string{"email"}, KeyFields: []string{"company", "email"}},
		items:       []connector.Item{item("1", "company", "acme", "email", " \t "), item("2", "company", " ", "email", "b@x"), item("3", "company", "acme", "email", "c@x")},
		wantIDs:     []string{"3"},
		wantNullKey: []string{"1", "2"},
	}, {
		name:      "identical duplicates collapse to one and are reported",
		cleansing: Cleansing{Fields: []string{"email"}},
		items:     []connector.Item{item("a", "email", "a@x"), item("a", "email", "a@x")},
		wantIDs:   []string{"a"},
		wantDupes: []string{"a"},
	}, {
		name:      "differing duplicates are all set aside",
		cleansing: Cleansing{Fields: []string{"email"}},
		items:     []connector.Item{item("a", "email", "a@x"), item("b"), item("a", "email", "other@x")},
		wantIDs:   []string{"b"},
		wantDupes: []string{"a", "a"},
	}, {
		name:      "composite keys order by first field then second",
		cleansing: Cleansing{Fields: []string{"last", "first"}, KeyFields: []string{"last", "first"}},
		items: []connector.Item{
			item("1", "last", "ab", "first", "c"),
			item("2", "last", "a", "first", "bc"),
			item("3", "last", "a", "first", "b"),
		},
		wantIDs: []string{"3", "2", "1"},
	}, {
		name:      "composite keys that concatenate alike stay distinct",
		cleansing: Cleansing{Fields: []string{"x", "y"}, KeyFields: []string{"x", "y"}},
		items:     []connector.Item{item("1", "x", "a", "y", "bc"), item("2", "x", "ab", "y", "c")},
		wantIDs:   []string{"1", "2"},
	}, {
		name:      "unicode keys sort bytewise",
		cleansing: Cleansing{Fields: []string{"n"}},
		items:     []connector.Item{item("ünïcode"), item("zebra"), item("Émile"), item("日本")},
		wantIDs:   []string{"zebra", "Émile", "ünïcode", "日本"},
	}, {
		name:      "huge fields pass through a spill intact",
		cleansing: Cleansing{Fields: []string{"blob"}, MaxInMemory: 1},
		items:     []connector.Item{item("b", "blob", huge), item("a", "blob", "small")},
		wantIDs:   []string{"a", "b"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := prepare(t, tc.cleansing, tc.items...)
			var ids []string
			for _, e := range got.entries {
				ids = append(ids, e.ID)
			}
			g.Expect(ids).To(Equal(tc.wantIDs))
			g.Expect(got.rejected[NullKey]).To(ConsistOf(stringsAsAny(tc.wantNullKey)...))
			g.Expect(got.rejected[Duplicate]).To(ConsistOf(stringsAsAny(tc.wantDupes)...))
			for id, want := range tc.wantFieldsOf {
				for _, e := range got.entries {
					if e.ID == id {
						g.Expect(slices.Sorted(mapsKeys(e.Values()))).To(Equal(want))
					}
				}
			}
			for _, e := range got.entries {
				for _, it := range tc.items {
					if it.ID == e.ID && it.Fields["blob"].Text == huge {
						g.Expect(e.Values()["blob"].Text).To(Equal(huge))
					}
				}
			}
		})
	}
}

func stringsAsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func mapsKeys[V any](m map[string]V) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// A connector that sees more than the user's items (a whole export) sets
// some aside itself; Prepare reports them like its own rejects, apart from
// item errors, and never sorts them into the stream.
func TestPrepareReportsItemsTheConnectorSetAside(t *testing.T) {
	g := NewWithT(t)
	read := func(yield func(connector.Item, error) bool) {
		_ = yield(item("a", "email", "a@x"), nil) &&
			yield(connector.Item{}, connector.NewItemError("b", &SetAside{Reason: Duplicate, Item: item("b", "email", "b@x"),
				Why: errors.New("the key is on 2 rows of people.csv")})) &&
			yield(connector.Item{}, connector.NewItemError("c", errors.New("people.csv line 4: row has 3 cells, the header has 2"))) &&
			yield(item("d"), nil)
	}
	var itemErrs []error
	var rejected []Rejected
	sorter, sorted, err := Cleansing{Fields: []string{"email"}}.Prepare(read,
		func(err error) { itemErrs = append(itemErrs, err) }, func(r Rejected) { rejected = append(rejected, r) })
	g.Expect(err).NotTo(HaveOccurred())
	defer sorter.Close()
	var kept []string
	for e, err := range sorted {
		g.Expect(err).NotTo(HaveOccurred())
		kept = append(kept, e.ID)
	}
	g.Expect(kept).To(Equal([]string{"a", "d"}))
	g.Expect(rejected).To(HaveLen(1))
	g.Expect(rejected[0].Reason).To(Equal(Duplicate))
	g.Expect(rejected[0].Entry.Key).To(Equal("b"))
	g.Expect(rejected[0].Entry.Fields).To(Equal(map[string]connector.Value{"email": connector.String("b@x")}), "projected like any item")
	g.Expect(itemErrs).To(ConsistOf(MatchError(ContainSubstring("line 4"))))

	// Read as a plain item error by code that does not know SetAside.
	sa := connector.NewItemError("b", &SetAside{Reason: Duplicate, Item: item("b"), Why: errors.New("the key is on 2 rows of people.csv")})
	g.Expect(connector.IsItemError(sa)).To(BeTrue())
	g.Expect(sa).To(MatchError(`item "b": set aside (Duplicate): the key is on 2 rows of people.csv`))
}

func TestDuplicateKeys(t *testing.T) {
	cases := []struct {
		name string
		rows []Entry
		want map[string]int
	}{{
		name: "no rows",
		want: map[string]int{},
	}, {
		name: "unique keys",
		rows: []Entry{{Key: "b", Hash: "1"}, {Key: "a", Hash: "1"}},
		want: map[string]int{},
	}, {
		name: "a key on differing rows, every copy counted",
		rows: []Entry{{Key: "1002", Hash: "ada"}, {Key: "1001", Hash: "x"}, {Key: "1002", Hash: "bob"}, {Key: "1002", Hash: "ada"}},
		want: map[string]int{"1002": 3},
	}, {
		name: "identical rows are one row exported twice",
		rows: []Entry{{Key: "a", Hash: "1"}, {Key: "a", Hash: "1"}, {Key: "b", Hash: "2"}, {Key: "b", Hash: "3"}},
		want: map[string]int{"b": 2},
	}}
	for _, tc := range cases {
		for _, maxInMemory := range []int{1, 2, 0} {
			t.Run(fmt.Sprintf("%s/spill after %d", tc.name, maxInMemory), func(t *testing.T) {
				g := NewWithT(t)
				got, err := DuplicateKeys(entriesOf(tc.rows...), t.TempDir(), maxInMemory)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal(tc.want))
			})
		}
	}

	g := NewWithT(t)
	failing := func(yield func(Entry, error) bool) {
		_ = yield(Entry{Key: "a"}, nil) && yield(Entry{}, errors.New("disk on fire"))
	}
	_, err := DuplicateKeys(failing, t.TempDir(), 0)
	g.Expect(err).To(MatchError(ContainSubstring("disk on fire")))
}

// A column the mapping does not use must not make an item look changed.
func TestUnusedColumnDoesNotChangeHash(t *testing.T) {
	g := NewWithT(t)
	c := Cleansing{Fields: []string{"email"}}
	before, _ := c.Project(item("a", "email", "a@x", "lastLogin", "monday"))
	after, _ := c.Project(item("a", "email", "a@x", "lastLogin", "tuesday"))
	g.Expect(after.Hash).To(Equal(before.Hash))
	changed, _ := c.Project(item("a", "email", "new@x"))
	g.Expect(changed.Hash).NotTo(Equal(before.Hash))
}

func recordsOf(list ...Recorded) iter.Seq2[Recorded, error] {
	return func(yield func(Recorded, error) bool) {
		for _, r := range list {
			if !yield(r, nil) {
				return
			}
		}
	}
}

func entriesOf(list ...Entry) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		for _, e := range list {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func TestMerge(t *testing.T) {
	g := NewWithT(t)
	current := entriesOf(Entry{Key: "a", Hash: "1"}, Entry{Key: "b", Hash: "2"}, Entry{Key: "d", Hash: "4"})
	recorded := recordsOf(Recorded{Key: "a", Hash: "1"}, Recorded{Key: "b", Hash: "old"}, Recorded{Key: "c", Hash: "3"})
	var got []string
	for c, err := range Merge(current, recorded) {
		g.Expect(err).NotTo(HaveOccurred())
		key := c.Current.Key
		if c.Kind == Delete {
			key = c.Recorded.Key
		}
		got = append(got, c.Kind.String()+" "+key)
	}
	g.Expect(got).To(Equal([]string{"unchanged a", "update b", "delete c", "insert d"}))
}

func TestMergeRefusesUnorderedRecords(t *testing.T) {
	g := NewWithT(t)
	var lastErr error
	for _, err := range Merge(entriesOf(), recordsOf(Recorded{Key: "b"}, Recorded{Key: "a"})) {
		lastErr = err
	}
	g.Expect(lastErr).To(MatchError(ContainSubstring("out of order")))
}

func TestSpilledSortMatchesInMemorySort(t *testing.T) {
	g := NewWithT(t)
	s := NewSorter(t.TempDir(), 7)
	defer s.Close()
	var want []string
	for i := range 100 {
		key := fmt.Sprintf("%03d", (i*37)%100)
		want = append(want, key)
		g.Expect(s.Add(Entry{Key: key, ModTime: time.Unix(int64(i), 0)})).To(Succeed())
	}
	slices.Sort(want)
	sorted, err := s.Sorted()
	g.Expect(err).NotTo(HaveOccurred())
	var got []string
	for e, err := range sorted {
		g.Expect(err).NotTo(HaveOccurred())
		got = append(got, e.Key)
	}
	g.Expect(got).To(Equal(want))
}

// FuzzEntryCodec: any bytes either decode or fail cleanly, and every entry
// survives a round trip through a spill run.
func FuzzEntryCodec(f *testing.F) {
	f.Add("key", "id", "field", "value", int64(0), []byte{})
	f.Add("", "", "", "", int64(-1), []byte{3, 'a', 'b', 'c', 200, 200, 200, 200, 200, 1})
	f.Add("k\x00", "ü", "n", strings.Repeat("z", 300), int64(1e18), []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, key, id, name, text string, mod int64, garbage []byte) {
		e := Entry{Key: key, ID: id, Hash: Hash(nil, nil), Fields: map[string]connector.Value{name: connector.String(text)}}
		if mod != 0 {
			e.ModTime = time.Unix(0, mod).UTC()
		}
		packed, _ := Cleansing{Fields: []string{name, name + "\x00absent"}}.projector().project(connector.Item{ID: id, Fields: e.Fields})
		packed.Key, packed.ModTime = key, e.ModTime
		var buf bytes.Buffer
		buf.Write(encodeEntry(nil, &e))
		buf.Write(encodeEntry(nil, &packed))
		r := bufio.NewReader(&buf)
		back, err := decodeEntry(r, nil)
		if err != nil {
			t.Fatalf("decoding what was encoded: %v", err)
		}
		if back.Key != e.Key || back.ID != e.ID || !back.ModTime.Equal(e.ModTime) || back.Fields[name] != e.Fields[name] {
			t.Fatalf("round trip changed the entry: %+v -> %+v", e, back)
		}
		backPacked, err := decodeEntry(r, packed.names)
		if err != nil {
			t.Fatalf("decoding what was encoded packed: %v", err)
		}
		if backPacked.Key != key || backPacked.ID != id || backPacked.Hash != packed.Hash || !backPacked.ModTime.Equal(e.ModTime) ||
			!maps.Equal(backPacked.Values(), e.Fields) {
			t.Fatalf("round trip changed the packed entry: %+v -> %+v", packed, backPacked)
		}
		r = bufio.NewReader(bytes.NewReader(garbage))
		for range 100 {
			if _, err := decodeEntry(r, []string{"a", "b"}); err != nil {
				break
			}
		}
	})
}

// FuzzEncodeKey: composite keys are injective and preserve tuple order,
// which the merge relies on.
func FuzzEncodeKey(f *testing.F) {
	f.Add("a", "bc", "ab", "c")
	f.Add("a\x00", "b", "a", "\x00b")
	f.Add("é", "", "e", "x")
	f.Fuzz(func(t *testing.T, a1, a2, b1, b2 string) {
		fields := func(x, y string) map[string]connector.Value {
			return map[string]connector.Value{"x": connector.String(x), "y": connector.String(y)}
		}
		ka, okA := EncodeKey(fields(a1, a2), []string{"x", "y"})
		kb, okB := EncodeKey(fields(b1, b2), []string{"x", "y"})
		present := func(s string) bool { return strings.TrimSpace(s) != "" }
		if okA != (present(a1) && present(a2)) || okB != (present(b1) && present(b2)) {
			t.Fatalf("null key detection wrong")
		}
		if !okA || !okB {
			return
		}
		tupleOrder := strings.Compare(a1, b1)
		if tupleOrder == 0 {
			tupleOrder = strings.Compare(a2, b2)
		}
		if got := strings.Compare(ka, kb); got != tupleOrder {
			t.Fatalf("key order %d, tuple order %d for (%q,%q) vs (%q,%q)", got, tupleOrder, a1, a2, b1, b2)
		}
	})
}

func TestSpoolKeepsOrderPastMemory(t *testing.T) {
	g := NewWithT(t)
	s := NewSpool(t.TempDir(), 3)
	defer s.Close()
	c := Cleansing{Fields: []string{"email", "name"}}.projector()
	var want []string
	for i := range 10 {
		e, _ := c.project(item(fmt.Sprintf("id-%d", 9-i), "email", fmt.Sprintf("%d@x", i)))
		g.Expect(s.Add(e)).To(Succeed())
		want = append(want, e.Key+" "+e.Values()["email"].Text)
	}
	g.Expect(s.Len()).To(Equal(10))
	for range 2 { // read twice
		var got []string
		for e, err := range s.All() {
			g.Expect(err).NotTo(HaveOccurred())
			got = append(got, e.Key+" "+e.Values()["email"].Text)
		}
		g.Expect(got).To(Equal(want))
	}
}

// The sort's numeric key prefix orders keys as their bytes do: shorter keys, NULs and high bytes
// included.
func TestKeyOrderMatchesByteOrder(t *testing.T) {
	g := NewWithT(t)
	keys := []string{"", "\x00", "a", "a\x00", "a\x00b", "ab", "abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefg", "\xff", "\xff\xff", "b", "ABC"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("%c%x", 'a'+i%3, i*7919))
	}
	entries := make([]Entry, len(keys))
	for i, k := range keys {
		entries[i] = Entry{Key: k}
	}
	var got []string
	for _, i := range keyOrder(entries) {
		got = append(got, entries[i].Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	g.Expect(got).To(Equal(want))
}

// A projected entry's hash is Hash of its fields, whatever the order of the names, and its
// packed fields are the ones it was given.
func TestProjectHashesAsHash(t *testing.T) {
	g := NewWithT(t)
	fields := map[string]connector.Value{"b": connector.String("2"), "a": connector.String(""), "n": connector.Null(), "z": connector.Int(7)}
	for _, names := range [][]string{{"z", "a", "b"}, {"a", "b", "missing", "n", "z"}, {"b", "b", "a"}, {}} {
		p := Cleansing{Fields: names}.projector()
		e, _ := p.project(connector.Item{ID: "x", Fields: fields})
		g.Expect(e.Hash).To(Equal(Hash(fields, names)), "names %v", names)
		want := map[string]connector.Value{}
		for _, n := range names {
			if v, ok := fields[n]; ok {
				want[n] = v
			}
		}
		g.Expect(e.Values()).To(Equal(want))
	}
}
