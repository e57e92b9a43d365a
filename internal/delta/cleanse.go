package delta

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/chainsync/chainsync/internal/connector"
)

// RejectReason says why an item was set aside instead of synced.
type RejectReason string

const (
	// NullKey: the item has no ID or an empty key field.
	NullKey RejectReason = "NullKey"
	// Duplicate: another item has the same key. Identical copies are
	// collapsed into one and still reported; copies that differ are all set
	// aside, since picking one would be a guess.
	Duplicate RejectReason = "Duplicate"
)

// Rejected is an item set aside by cleansing, for the .nullpk.csv and
// .duplicates.csv reports.
type Rejected struct {
	Reason RejectReason
	Entry  Entry
}

// Cleansing says how to cleanse one side of an entity.
type Cleansing struct {
	// Fields are the fields the mapping uses; every other field is dropped
	// and takes no part in the hash.
	Fields []string
	// KeyFields, when set, make the key instead of the native ID.
	KeyFields []string
	// SpillDir holds the sort's temporary runs; "" means os.TempDir.
	SpillDir string
	// MaxInMemory is how many entries the sort holds before spilling a run;
	// 0 means DefaultMaxInMemory.
	MaxInMemory int
}

// Project keeps the used fields of item and computes its key and hash. ok
// is false for a null key (see Blank).
func (c Cleansing) Project(item connector.Item) (e Entry, ok bool) {
	e, ok = c.projector().project(item)
	return e.withValues(), ok
}

// projector is a Cleansing ready to project many items: the field names sorted once for the
// hash, and buffers reused from one item to the next.
type projector struct {
	c Cleansing
	// byName lists the indexes of c.Fields in the order of their names, as the hash takes
	// them.
	byName []int
	// values and present are one item's fields in the order of c.Fields, each looked up once.
	values         []connector.Value
	present        []bool
	scratch, bytes []byte
}

func (c Cleansing) projector() *projector {
	byName := make([]int, len(c.Fields))
	for i := range byName {
		byName[i] = i
	}
	slices.SortStableFunc(byName, func(a, b int) int { return strings.Compare(c.Fields[a], c.Fields[b]) })
	return &projector{c: c, byName: byName, values: make([]connector.Value, len(c.Fields)), present: make([]bool, len(c.Fields))}
}

// project is Project with the fields packed (see Entry.Values).
func (p *projector) project(item connector.Item) (e Entry, ok bool) {
	c := p.c
	b := p.bytes[:0]
	for i, name := range c.Fields {
		v, ok := item.Fields[name]
		p.values[i], p.present[i] = v, ok
		if !ok {
			b = append(b, absent)
			continue
		}
		b = append(b, byte(v.Kind))
		b = binary.AppendUvarint(b, uint64(len(v.Text)))
		b = append(b, v.Text...)
	}
	p.bytes = b
	// What Hash writes, from the values looked up above.
	h := p.scratch[:0]
	for _, i := range p.byName {
		h = append(h, c.Fields[i]...)
		if !p.present[i] || p.values[i].IsNull() {
			h = append(h, 0, 0)
			continue
		}
		h = append(h, 0, 1)
		h = append(h, p.values[i].Text...)
		h = append(h, 0)
	}
	p.scratch = h
	sum := sha256.Sum256(h)
	// The ID is copied: a connector's may share memory with its whole row (a csv line),
	// which the entry would keep alive in the sort.
	id := strings.Clone(item.ID)
	e = Entry{ID: id, ModTime: item.ModTime, Origin: item.Origin, packed: string(p.bytes), names: c.Fields,
		Hash: hex.EncodeToString(sum[:16])}
	if len(c.KeyFields) == 0 {
		e.Key = id
		return e, !Blank(id)
	}
	e.Key, ok = EncodeKey(item.Fields, c.KeyFields)
	return e, ok && !Blank(id)
}

// SetAside is what a connector reports, wrapped in a *connector.ItemError,
// for an item it has set aside itself because it sees more than one user's
// items: a key that rows of other users in the same export also hold, which
// no single user's read could tell. Prepare reports the item to onReject
// like one of its own rejects; code that does not know SetAside takes it for
// the item error it also is, so the item is not synced either way.
type SetAside struct {
	Reason RejectReason
	// Item is the item as read, for the report.
	Item connector.Item
	// Why says what the connector saw, for a person.
	Why error
	// Retract says the connector yielded the item earlier in the same read, before it could
	// tell (a connector that finds such keys in the same pass as it reads): Prepare takes
	// every entry of its key back out of the read.
	Retract bool
}

func (s *SetAside) Error() string { return fmt.Sprintf("set aside (%s): %v", s.Reason, s.Why) }
func (s *SetAside) Unwrap() error { return s.Why }

// Prepare cleanses and sorts an item stream. Item errors from the read go to
// onItemError and the item is skipped; any other read error stops Prepare.
// Rejected items, and items the connector set aside (SetAside), go to
// onReject. The returned Sorted stream must be drained or abandoned before
// Close of the returned Sorter.
func (c Cleansing) Prepare(items iter.Seq2[connector.Item, error], onItemError func(error), onReject func(Rejected)) (*Sorter, iter.Seq2[Entry, error], error) {
	sorter := NewSorter(c.SpillDir, c.MaxInMemory)
	reject := func(r Rejected) {
		r.Entry = r.Entry.withValues()
		onReject(r)
	}
	retracted := map[string]bool{}
	// The read and the projection (parsing, hashing) run on one goroutine and the sort on
	// this one, so that a read of a large export keeps two cores busy. The callbacks run here,
	// in the read's order.
	for batch := range projected(items, c.projector()) {
		for _, r := range batch {
			switch {
			case r.err != nil:
				var aside *SetAside
				if errors.As(r.err, &aside) && connector.IsItemError(r.err) {
					reject(Rejected{Reason: aside.Reason, Entry: r.entry})
					if aside.Retract && r.ok {
						retracted[r.entry.Key] = true
					}
					continue
				}
				if connector.IsItemError(r.err) {
					onItemError(r.err)
					continue
				}
				sorter.Close()
				return nil, nil, fmt.Errorf("reading items: %w", r.err)
			case !r.ok:
				reject(Rejected{Reason: NullKey, Entry: r.entry})
				continue
			}
			if err := sorter.Add(r.entry); err != nil {
				sorter.Close()
				return nil, nil, err
			}
		}
	}
	sorted, err := sorter.Sorted()
	if err != nil {
		sorter.Close()
		return nil, nil, err
	}
	if len(retracted) > 0 {
		sorted = withoutKeys(sorted, retracted)
	}
	return sorter, Deduplicate(sorted, reject), nil
}

// withoutKeys passes a stream through, less the entries of the given keys.
func withoutKeys(entries iter.Seq2[Entry, error], keys map[string]bool) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		for e, err := range entries {
			if err == nil && keys[e.Key] {
				continue
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// projectedItem is one item of a read, projected, or the error the read gave instead.
type projectedItem struct {
	entry Entry
	ok    bool
	err   error
}

// projectBatch items are handed from the reading goroutine to the sorting one at a time.
const projectBatch = 512

// projected reads items and projects them on a goroutine of its own, yielding them in batches
// in the read's order. It stops at the first error that is not an item error (yielded last),
// and when the caller stops; either way the read has ended when it returns.
func projected(items iter.Seq2[connector.Item, error], p *projector) iter.Seq[[]projectedItem] {
	return func(yield func([]projectedItem) bool) {
		batches := make(chan []projectedItem, 4)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer close(batches)
			batch := make([]projectedItem, 0, projectBatch)
			send := func() bool {
				select {
				case batches <- batch:
					batch = make([]projectedItem, 0, projectBatch)
					return true
				case <-stop:
					return false
				}
			}
			for item, err := range items {
				r := projectedItem{err: err}
				var aside *SetAside
				switch {
				case err == nil:
					r.entry, r.ok = p.project(item)
				case errors.As(err, &aside):
					r.entry, r.ok = p.project(aside.Item)
				}
				batch = append(batch, r)
				if err != nil && !connector.IsItemError(err) {
					break
				}
				if len(batch) == projectBatch && !send() {
					return
				}
			}
			if len(batch) > 0 {
				send()
			}
		}()
		defer func() {
			close(stop)
			for range batches {
			}
			<-done
		}()
		for batch := range batches {
			if !yield(batch) {
				return
			}
		}
	}
}

// Deduplicate passes a key-ordered stream through, collapsing identical
// entries with the same key and setting aside every entry of a key whose
// copies differ.
func Deduplicate(sorted iter.Seq2[Entry, error], onReject func(Rejected)) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		var group []Entry
		flush := func() bool {
			if len(group) == 0 {
				return true
			}
			defer func() { group = group[:0] }()
			if len(group) == 1 {
				return yield(group[0], nil)
			}
			identical := true
			for _, e := range group[1:] {
				if e.Hash != group[0].Hash || e.ID != group[0].ID {
					identical = false
				}
			}
			if identical {
				for _, e := range group[1:] {
					onReject(Rejected{Reason: Duplicate, Entry: e})
				}
				return yield(group[0], nil)
			}
			for _, e := range group {
				onReject(Rejected{Reason: Duplicate, Entry: e})
			}
			return true
		}
		for e, err := range sorted {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			if len(group) > 0 && group[0].Key != e.Key {
				if !flush() {
					return
				}
			}
			group = append(group, e)
		}
		flush()
	}
}

// DuplicateKeys reads the (Key, Hash) entries of every row of a whole export
// and returns the keys that rows of different content share, with how many
// rows hold each. Rows alike in key and content are one row exported twice,
// which Deduplicate collapses, so their key is not returned.
//
// The rows are sorted with bounded memory, spilling to spillDir past
// maxInMemory entries (0 means DefaultMaxInMemory); only the duplicated keys
// are held.
func DuplicateKeys(rows iter.Seq2[Entry, error], spillDir string, maxInMemory int) (map[string]int, error) {
	sorter := NewSorter(spillDir, maxInMemory)
	defer sorter.Close()
	for e, err := range rows {
		if err != nil {
			return nil, err
		}
		if err := sorter.Add(Entry{Key: e.Key, Hash: e.Hash}); err != nil {
			return nil, err
		}
	}
	sorted, err := sorter.Sorted()
	if err != nil {
		return nil, err
	}
	dups := map[string]int{}
	var key, hash string
	n, differ := 0, false
	settle := func() {
		if n > 1 && differ {
			dups[key] = n
		}
	}
	for e, err := range sorted {
		if err != nil {
			return nil, err
		}
		if n > 0 && e.Key == key {
			n++
			differ = differ || e.Hash != hash
			continue
		}
		settle()
		key, hash, n, differ = e.Key, e.Hash, 1, false
	}
	settle()
	return dups, nil
}
