package delta

import (
	"fmt"
	"iter"

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
// is false for a null key.
func (c Cleansing) Project(item connector.Item) (e Entry, ok bool) {
	kept := make(map[string]connector.Value, len(c.Fields))
	for _, name := range c.Fields {
		if v, present := item.Fields[name]; present {
			kept[name] = v
		}
	}
	e = Entry{ID: item.ID, ModTime: item.ModTime, Origin: item.Origin, Fields: kept, Hash: Hash(kept, c.Fields)}
	if len(c.KeyFields) == 0 {
		e.Key = item.ID
		return e, item.ID != ""
	}
	e.Key, ok = EncodeKey(item.Fields, c.KeyFields)
	return e, ok && item.ID != ""
}

// Prepare cleanses and sorts an item stream. Item errors from the read go to
// onItemError and the item is skipped; any other read error stops Prepare.
// Rejected items go to onReject. The returned Sorted stream must be drained
// or abandoned before Close of the returned Sorter.
func (c Cleansing) Prepare(items iter.Seq2[connector.Item, error], onItemError func(error), onReject func(Rejected)) (*Sorter, iter.Seq2[Entry, error], error) {
	sorter := NewSorter(c.SpillDir, c.MaxInMemory)
	for item, err := range items {
		if err != nil {
			if connector.IsItemError(err) {
				onItemError(err)
				continue
			}
			sorter.Close()
			return nil, nil, fmt.Errorf("reading items: %w", err)
		}
		e, ok := c.Project(item)
		if !ok {
			onReject(Rejected{Reason: NullKey, Entry: e})
			continue
		}
		if err := sorter.Add(e); err != nil {
			sorter.Close()
			return nil, nil, err
		}
	}
	sorted, err := sorter.Sorted()
	if err != nil {
		sorter.Close()
		return nil, nil, err
	}
	return sorter, Deduplicate(sorted, onReject), nil
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
