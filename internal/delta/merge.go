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
		nextCur, stopCur := iter.Pull2(current)
		defer stopCur()
		nextRec, stopRec := iter.Pull2(recorded)
		defer stopRec()

		var lastCur, lastRec string
		var haveLastCur, haveLastRec bool
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
		pullRec := func() (Recorded, bool, error) {
			r, err, ok := nextRec()
			if !ok || err != nil {
				return r, false, err
			}
			if haveLastRec && r.Key <= lastRec {
				return r, false, fmt.Errorf("records out of order at key %q", r.Key)
			}
			lastRec, haveLastRec = r.Key, true
			return r, true, nil
		}

		cur, curOK, err := pullCur()
		if err != nil {
			yield(Change{}, err)
			return
		}
		rec, recOK, err := pullRec()
		if err != nil {
			yield(Change{}, err)
			return
		}
		for curOK || recOK {
			var c Change
			advanceCur, advanceRec := false, false
			switch {
			case !recOK || (curOK && cur.Key < rec.Key):
				c = Change{Kind: Insert, Current: cur}
				advanceCur = true
			case !curOK || rec.Key < cur.Key:
				c = Change{Kind: Delete, Recorded: rec}
				advanceRec = true
			default:
				c = Change{Kind: Unchanged, Current: cur, Recorded: rec}
				if cur.Hash != rec.Hash {
					c.Kind = Update
				}
				advanceCur, advanceRec = true, true
			}
			if !yield(c, nil) {
				return
			}
			if advanceCur {
				if cur, curOK, err = pullCur(); err != nil {
					yield(Change{}, err)
					return
				}
			}
			if advanceRec {
				if rec, recOK, err = pullRec(); err != nil {
					yield(Change{}, err)
					return
				}
			}
		}
	}
}
