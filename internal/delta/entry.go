// Package delta turns a connector's unordered read of an entity into a
// cleansed, key-ordered stream and merges it against the ordered transaction
// records to find inserts, updates and deletes: drop the columns the mapping
// does not use, set aside null keys and duplicates, sort by key, compare.
//
// Memory is bounded: the sort spills runs to disk once it holds more than a
// set number of entries, and the merge walks both sorted streams once.
package delta

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
)

// Entry is one cleansed item: only the fields the mapping uses, its key and
// the hash of its content.
type Entry struct {
	// Key orders and identifies the entry: the item's native ID, or its key
	// fields encoded by EncodeKey when the policy names key fields.
	Key     string
	ID      string
	Hash    string
	ModTime time.Time
	Origin  string
	Fields  map[string]connector.Value
}

// Hash is the content hash of the named fields of an item. Only canonical
// text counts, not the value kind, so a csv "42" and an SQL 42 hash the same;
// a missing field and a Null one hash the same too, because a connector that
// cannot store nulls will hand back an absent field.
func Hash(fields map[string]connector.Value, names []string) string {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	h := sha256.New()
	for _, name := range sorted {
		v, ok := fields[name]
		h.Write([]byte(name))
		if !ok || v.IsNull() {
			h.Write([]byte{0, 0})
			continue
		}
		h.Write([]byte{0, 1})
		h.Write([]byte(v.Text))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// EncodeKey builds a key from key field values such that distinct value
// tuples give distinct keys and byte order of keys follows the tuple order.
// ok is false when any key field is null, empty or only blanks: a null key.
func EncodeKey(fields map[string]connector.Value, keyFields []string) (key string, ok bool) {
	var b []byte
	for i, name := range keyFields {
		v, present := fields[name]
		if !present || v.IsNull() || Blank(v.Text) {
			return "", false
		}
		if i > 0 {
			b = append(b, 0, 0)
		}
		// Escape NUL as 0x00 0x01 so the 0x00 0x00 separator stays unique
		// and sorts before any continuation.
		for j := 0; j < len(v.Text); j++ {
			if v.Text[j] == 0 {
				b = append(b, 0, 1)
			} else {
				b = append(b, v.Text[j])
			}
		}
	}
	return string(b), true
}

// Blank reports whether a key text is empty or only white space. Such a key
// identifies nothing (an export tool pads a missing value with spaces as
// readily as it leaves it out), so it is a null key, not an item.
func Blank(key string) bool { return strings.TrimSpace(key) == "" }
