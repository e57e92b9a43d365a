package engine

import (
	"iter"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// insertsInMemory bounds the new items of one side a plan holds in memory; the rest wait in a
// spool on disk (the first cycle of a large export finds every item new).
var insertsInMemory = 20_000

// insertList is one side's new items, in the read's order, less those the plan took out
// (re-created items relinked to their old link).
type insertList struct {
	spool   *delta.Spool
	removed map[string]bool
	// withOrigin counts the items that carry an origin, so that looking for them in a
	// million new items that carry none reads none.
	withOrigin int
}

func newInsertList(spillDir string) *insertList {
	return &insertList{spool: delta.NewSpool(spillDir, insertsInMemory), removed: map[string]bool{}}
}

func (l *insertList) add(e delta.Entry) error {
	if e.Origin != "" {
		l.withOrigin++
	}
	return l.spool.Add(e)
}

// all yields the items; a nil list has none.
func (l *insertList) all() iter.Seq2[delta.Entry, error] {
	return func(yield func(delta.Entry, error) bool) {
		if l == nil {
			return
		}
		for e, err := range l.spool.All() {
			if err == nil && l.removed[e.Key] {
				continue
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

func (l *insertList) remove(key string) { l.removed[key] = true }

func (l *insertList) close() {
	if l != nil {
		l.spool.Close()
	}
}

// withOrigin yields the items of a list that carry an origin this pair wrote, copied from side
// from: our own creates, read back. Few items do (those whose record a crash lost).
func withOrigin(l *insertList, pair records.Pair, from records.Side) iter.Seq2[originItem, error] {
	return func(yield func(originItem, error) bool) {
		if l == nil || l.withOrigin == 0 {
			return
		}
		for e, err := range l.all() {
			if err != nil {
				yield(originItem{}, err)
				return
			}
			s, key, ok := parseOrigin(pair, e.Origin)
			if !ok || s != from {
				continue
			}
			if !yield(originItem{entry: e, sourceKey: key}, nil) {
				return
			}
		}
	}
}

type originItem struct {
	entry     delta.Entry
	sourceKey string
}

// entriesByKey reads the entries of a list whose keys are wanted.
func entriesByKey(l *insertList, wanted map[string]bool) (map[string]delta.Entry, error) {
	found := map[string]delta.Entry{}
	if len(wanted) == 0 {
		return found, nil
	}
	for e, err := range l.all() {
		if err != nil {
			return nil, err
		}
		if wanted[e.Key] {
			found[e.Key] = e
		}
	}
	return found, nil
}

// creates are the items of one side to create on the other: every new item not paired with
// one there. They are not listed in the plan's actions but read from the list when written.
type creates struct {
	from   *insertList
	paired map[string]bool
}

// createsOn yields the creates to make on side w.
func (p *entityPlan) createsOn(w records.Side) iter.Seq2[action, error] {
	return func(yield func(action, error) bool) {
		c := p.creates[w]
		if c.from == nil {
			return
		}
		for e, err := range c.from.all() {
			if err != nil {
				yield(action{}, err)
				return
			}
			if c.paired[e.Key] {
				continue
			}
			if !yield(action{op: connector.OpCreate, side: w, from: e}, nil) {
				return
			}
		}
	}
}

func (p *entityPlan) close() {
	for _, o := range p.obs {
		if o != nil {
			o.inserts.close()
		}
	}
}

func (l *insertList) len() int {
	if l == nil {
		return 0
	}
	return l.spool.Len()
}
