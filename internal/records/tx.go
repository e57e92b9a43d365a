package records

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"

	bolt "go.etcd.io/bbolt"
)

// Tx is a transaction over one user's records. Iterators are valid only
// inside the transaction.
type Tx struct {
	tx *bolt.Tx
	// buckets are the pairs' buckets found so far: a cycle's transaction asks for its pair's
	// once per item.
	buckets map[Pair]*bolt.Bucket
}

func pairKey(p Pair) []byte {
	b, _ := json.Marshal(p.Sides)
	return b
}

// pair returns the pair's bucket; create makes it when missing (write
// transactions only). A nil bucket means no records for the pair yet.
func (t *Tx) pair(p Pair, create bool) (*bolt.Bucket, error) {
	if b, ok := t.buckets[p]; ok {
		return b, nil
	}
	b, err := t.findPair(p, create)
	if b != nil && t.tx.Writable() {
		// Links are mostly added in key order (a first cycle's creates come sorted), and
		// bbolt's default of splitting pages half full would leave the store twice its size.
		for _, name := range [][]byte{bucketLinks, bucketIndex1} {
			if sb := b.Bucket(name); sb != nil {
				sb.FillPercent = linksFillPercent
			}
		}
	}
	if b != nil {
		if t.buckets == nil {
			t.buckets = map[Pair]*bolt.Bucket{}
		}
		t.buckets[p] = b
	}
	return b, err
}

// linksFillPercent is how full bbolt fills the pages of links it splits.
const linksFillPercent = 0.9

func (t *Tx) findPair(p Pair, create bool) (*bolt.Bucket, error) {
	pairs := t.tx.Bucket(bucketPairs)
	if pairs == nil {
		return nil, fmt.Errorf("%w: no pairs bucket", ErrCorrupt)
	}
	b := pairs.Bucket(pairKey(p))
	if b != nil || !create {
		return b, nil
	}
	b, err := pairs.CreateBucket(pairKey(p))
	if err != nil {
		return nil, fmt.Errorf("creating records for %s: %w", p, err)
	}
	for _, name := range [][]byte{bucketLinks, bucketIndex1, bucketIntents, bucketPending} {
		if _, err := b.CreateBucket(name); err != nil {
			return nil, fmt.Errorf("creating records for %s: %w", p, err)
		}
	}
	id, _ := json.Marshal(p)
	return b, b.Put(keyPairID, id)
}

func sub(b *bolt.Bucket, name []byte, p Pair) (*bolt.Bucket, error) {
	s := b.Bucket(name)
	if s == nil {
		return nil, fmt.Errorf("%w: records for %s lack the %s bucket", ErrCorrupt, p, name)
	}
	return s, nil
}

func decode[T any](raw []byte, what string, p Pair, key []byte) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%w: %s %q of %s: %v", ErrCorrupt, what, key, p, err)
	}
	return v, nil
}

func linkOf(raw []byte, p Pair, key []byte) (Link, error) {
	l, err := decodeLink(raw)
	if err != nil {
		return l, fmt.Errorf("%w: link %q of %s: %v", ErrCorrupt, key, p, err)
	}
	return l, nil
}

// Pairs lists the pairs the user has records for.
func (t *Tx) Pairs() iter.Seq2[Pair, error] {
	return func(yield func(Pair, error) bool) {
		pairs := t.tx.Bucket(bucketPairs)
		if pairs == nil {
			yield(Pair{}, fmt.Errorf("%w: no pairs bucket", ErrCorrupt))
			return
		}
		c := pairs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				continue
			}
			raw := pairs.Bucket(k).Get(keyPairID)
			p, err := decode[Pair](raw, "pair", Pair{}, k)
			if !yield(p, err) {
				return
			}
		}
	}
}

// State returns the pair's watermarks and mapping fingerprint (zero when
// the pair has no records).
func (t *Tx) State(p Pair) (PairState, error) {
	b, err := t.pair(p, false)
	if err != nil || b == nil {
		return PairState{}, err
	}
	raw := b.Get(keyPairState)
	if raw == nil {
		return PairState{}, nil
	}
	return decode[PairState](raw, "state", p, keyPairState)
}

// PutState stores the pair's state.
func (t *Tx) PutState(p Pair, s PairState) error {
	b, err := t.pair(p, true)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(s)
	return b.Put(keyPairState, raw)
}

// Link finds the link whose item on side has key.
func (t *Tx) Link(p Pair, side Side, key string) (Link, bool, error) {
	b, err := t.pair(p, false)
	if err != nil || b == nil {
		return Link{}, false, err
	}
	links, err := sub(b, bucketLinks, p)
	if err != nil {
		return Link{}, false, err
	}
	key0 := []byte(key)
	if side == 1 {
		index, err := sub(b, bucketIndex1, p)
		if err != nil {
			return Link{}, false, err
		}
		if key0 = index.Get([]byte(key)); key0 == nil {
			return Link{}, false, nil
		}
	}
	raw := links.Get(key0)
	if raw == nil {
		if side == 1 {
			return Link{}, false, fmt.Errorf("%w: index of %s points at missing link %q", ErrCorrupt, p, key0)
		}
		return Link{}, false, nil
	}
	l, err := linkOf(raw, p, key0)
	return l, err == nil, err
}

// PutLink stores a link, replacing the one with the same side-0 key and
// keeping the side-1 index in step.
func (t *Tx) PutLink(p Pair, l Link) error {
	if l.Sides[0].Key == "" || l.Sides[1].Key == "" {
		return fmt.Errorf("storing link of %s: both keys are required, got %q and %q", p, l.Sides[0].Key, l.Sides[1].Key)
	}
	b, err := t.pair(p, true)
	if err != nil {
		return err
	}
	if err := t.DeleteLink(p, 0, l.Sides[0].Key); err != nil {
		return err
	}
	if err := b.Bucket(bucketLinks).Put([]byte(l.Sides[0].Key), encodeLink(l)); err != nil {
		return fmt.Errorf("storing link of %s: %w", p, err)
	}
	return b.Bucket(bucketIndex1).Put([]byte(l.Sides[1].Key), []byte(l.Sides[0].Key))
}

// DeleteLink removes the link whose item on side has key, if any.
func (t *Tx) DeleteLink(p Pair, side Side, key string) error {
	l, ok, err := t.Link(p, side, key)
	if err != nil || !ok {
		return err
	}
	b, _ := t.pair(p, false)
	if err := b.Bucket(bucketLinks).Delete([]byte(l.Sides[0].Key)); err != nil {
		return err
	}
	return b.Bucket(bucketIndex1).Delete([]byte(l.Sides[1].Key))
}

// Links iterates the pair's links ordered by their key on side, as the
// delta merge needs.
func (t *Tx) Links(p Pair, side Side) iter.Seq2[Link, error] {
	return func(yield func(Link, error) bool) {
		b, err := t.pair(p, false)
		if err != nil {
			yield(Link{}, err)
			return
		}
		if b == nil {
			return
		}
		links, err := sub(b, bucketLinks, p)
		if err != nil {
			yield(Link{}, err)
			return
		}
		if side == 0 {
			c := links.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				l, err := linkOf(v, p, k)
				if !yield(l, err) {
					return
				}
			}
			return
		}
		index, err := sub(b, bucketIndex1, p)
		if err != nil {
			yield(Link{}, err)
			return
		}
		// Where both sides key items alike, the links come in the index's order: a cursor
		// on them that steps to the next one mostly finds it there, with no search.
		c, lc := index.Cursor(), links.Cursor()
		var lk, raw []byte
		for k, key0 := c.First(); k != nil; k, key0 = c.Next() {
			if lk != nil {
				lk, raw = lc.Next()
			}
			if lk == nil || !bytes.Equal(lk, key0) {
				lk, raw = lc.Seek(key0)
			}
			if lk == nil || !bytes.Equal(lk, key0) {
				raw = nil
			}
			if raw == nil {
				yield(Link{}, fmt.Errorf("%w: index of %s points at missing link %q", ErrCorrupt, p, key0))
				return
			}
			l, err := linkOf(raw, p, key0)
			if !yield(l, err) {
				return
			}
		}
	}
}

// CountLinks is the number of links of the pair.
func (t *Tx) CountLinks(p Pair) (int, error) {
	b, err := t.pair(p, false)
	if err != nil || b == nil {
		return 0, err
	}
	links, err := sub(b, bucketLinks, p)
	if err != nil {
		return 0, err
	}
	return links.Stats().KeyN, nil
}

func intentKey(i Intent) []byte {
	return fmt.Appendf(nil, "%d\x00%s\x00%s", i.Side, i.Op, i.SourceKey)
}

// PutIntent records that a write is about to happen.
func (t *Tx) PutIntent(p Pair, i Intent) error {
	b, err := t.pair(p, true)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(i)
	return b.Bucket(bucketIntents).Put(intentKey(i), raw)
}

// DeleteIntent settles an intent.
func (t *Tx) DeleteIntent(p Pair, i Intent) error {
	b, err := t.pair(p, false)
	if err != nil || b == nil {
		return err
	}
	return b.Bucket(bucketIntents).Delete(intentKey(i))
}

// Intents lists the open intents of the pair.
func (t *Tx) Intents(p Pair) iter.Seq2[Intent, error] {
	return each[Intent](t, p, bucketIntents, "intent")
}

func pendingKey(kind PendingKind, side Side, key string) []byte {
	return fmt.Appendf(nil, "%s\x00%d\x00%s", kind, side, key)
}

// PutPending stores or replaces a pending item.
func (t *Tx) PutPending(pe Pending) error {
	b, err := t.pair(pe.Pair, true)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(pe)
	return b.Bucket(bucketPending).Put(pendingKey(pe.Kind, pe.Side, pe.Key), raw)
}

// DeletePending removes a pending item.
func (t *Tx) DeletePending(p Pair, kind PendingKind, side Side, key string) error {
	b, err := t.pair(p, false)
	if err != nil || b == nil {
		return err
	}
	return b.Bucket(bucketPending).Delete(pendingKey(kind, side, key))
}

// PendingItems lists the pair's pending items.
func (t *Tx) PendingItems(p Pair) iter.Seq2[Pending, error] {
	return each[Pending](t, p, bucketPending, "pending item")
}

// ResetPair forgets everything about the pair, for a reinitialisation.
func (t *Tx) ResetPair(p Pair) error {
	delete(t.buckets, p)
	pairs := t.tx.Bucket(bucketPairs)
	if pairs.Bucket(pairKey(p)) == nil {
		return nil
	}
	return pairs.DeleteBucket(pairKey(p))
}

func each[T any](t *Tx, p Pair, name []byte, what string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		b, err := t.pair(p, false)
		if err != nil {
			yield(zero, err)
			return
		}
		if b == nil {
			return
		}
		bucket, err := sub(b, name, p)
		if err != nil {
			yield(zero, err)
			return
		}
		c := bucket.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			item, err := decode[T](v, what, p, k)
			if !yield(item, err) {
				return
			}
		}
	}
}
