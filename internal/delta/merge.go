package delta

import (
	"fmt"
	"iter"
)

// Recorded is what the transaction records remember of one item of one side.
type Recorded struct {
	Key  string
	Hash string
	// ID is the item's native ID as last synced, by which an item the read
	// could not key (a null key, an item error) can still be recognised.
	ID string
	// Ref is the caller's handle on the record (the link it belongs to).
	Ref string
}

// ChangeKind is the outcome of comparing an item with its record.
type ChangeKind uint8

const (
	Unchanged ChangeKind = iota
	Insert
	Update
	Delete
)

func (k ChangeKind) String() string {
	return [...]string{"unchanged", "insert", "update", "delete"}[k]
}

// Change pairs the current entry with its record. Insert has only Current,
// Delete only Recorded.
type Change struct {
	Kind     ChangeKind
	Current  Entry
	Recorded Recorded
}

// Merge walks the current entries and the records, both ordered by key with
// unique keys, once, in step: linear time, constant memory. A stream out of
// order is an error, since a merge over it would report false changes.
func Merge(current iter.Seq2[Entry, error], recorded iter.Seq2[Recorded, error]) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		// The records are ranged over and the current entries pulled: one coroutine switch
		// per entry, not two.
		nextCur, stopCur := iter.Pull2(current)
		defer stopCur()

		var lastCur string
		haveLastCur := false
		pullCur := func() (Entry, bool, error) {
			e, err, ok := nextCur()
			if !ok || err != nil {
				return e, false, err
			}
			if haveLastCur && e.Key <= lastCur {
				return e, false, fmt.Errorf("current entries out of order at key %q", e.Key)
			}
			lastCur, haveLastCur = e.Key, true
			return e, true, nil
		}

		cur, curOK, err := pullCur()
		if err != nil {
			yield(Change{}, err)
			return
		}
		var lastRec string
		haveLastRec := false
		for rec, err := range recorded {
			if err != nil {
				yield(Change{}, err)
				return
			}
			if haveLastRec && rec.Key <= lastRec {
				yield(Change{}, fmt.Errorf("records out of order at key %q", rec.Key))
				return
			}
			lastRec, haveLastRec = rec.Key, true
			for curOK && cur.Key < rec.Key {
				if !yield(Change{Kind: Insert, Current: cur}, nil) {
					return
				}
				if cur, curOK, err = pullCur(); err != nil {
					yield(Change{}, err)
					return
				}
			}
			if !curOK || rec.Key < cur.Key {
				if !yield(Change{Kind: Delete, Recorded: rec}, nil) {
					return
				}
				continue
			}
			c := Change{Kind: Unchanged, Current: cur, Recorded: rec}
			if cur.Hash != rec.Hash {
				c.Kind = Update
			}
			if !yield(c, nil) {
				return
			}
			if cur, curOK, err = pullCur(); err != nil {
				yield(Change{}, err)
				return
			}
		}
		for curOK {
			if !yield(Change{Kind: Insert, Current: cur}, nil) {
				return
			}
			if cur, curOK, err = pullCur(); err != nil {
				yield(Change{}, err)
				return
			}
		}
	}
}
