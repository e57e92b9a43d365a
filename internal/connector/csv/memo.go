package csv

import (
	"hash/maphash"
	"io/fs"
	"sync"

	"github.com/chainsync/chainsync/internal/connector/collection"
)

// rewriteMemo remembers the keys of the file a rewrite left, so that the next one, when the
// file is still that one and its batches only create rows whose keys it does not hold, can copy
// the file's bytes as they are and append the rows, without parsing it: a large first sync
// writes the file in many batches, and parsing it whole for each made that quadratic.
//
// Keys are held as 64-bit hashes (8 bytes a row, not the keys themselves): a create whose hash
// is held, a clash or a collision, takes the full rewrite, which checks the key itself.
type rewriteMemo struct {
	mu   sync.Mutex
	file fs.FileInfo // the file the keys are of; nil: none
	seed maphash.Seed
	keys map[uint64]struct{}
}

// memo is the connector's memo of coll's file, for its own Writes.
func (c *Connector) memo(coll collection.Collection) *rewriteMemo {
	c.memosMu.Lock()
	defer c.memosMu.Unlock()
	if c.memos == nil {
		c.memos = map[string]*rewriteMemo{}
	}
	m, ok := c.memos[coll.Name]
	if !ok {
		m = &rewriteMemo{}
		c.memos[coll.Name] = m
	}
	return m
}

// holds says whether the memo is of file, as it is now, and none of creates' keys is in it.
func (m *rewriteMemo) holds(file fs.FileInfo, creates map[string]change) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.file == nil || !sameFile(m.file, file) {
		return false
	}
	for id := range creates {
		if _, ok := m.keys[maphash.String(m.seed, id)]; ok {
			return false
		}
	}
	return true
}

// keySet collects the keys of the file a rewrite writes.
type keySet struct {
	seed maphash.Seed
	keys map[uint64]struct{}
}

// start returns the set the rewrite adds its keys to: the memo's own when it appends to the file
// the memo is of, a new one otherwise. nil when there is no memo.
func (m *rewriteMemo) start(appending bool) *keySet {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if appending {
		return &keySet{seed: m.seed, keys: m.keys}
	}
	return &keySet{seed: maphash.MakeSeed(), keys: map[uint64]struct{}{}}
}

func (k *keySet) add(id string) {
	if k != nil && id != "" {
		k.keys[maphash.String(k.seed, id)] = struct{}{}
	}
}

// keep makes the memo that of file, with keys.
func (m *rewriteMemo) keep(file fs.FileInfo, keys *keySet) {
	if m == nil || keys == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.file, m.seed, m.keys = file, keys.seed, keys.keys
}
