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
	"encoding/binary"
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
	// Fields holds the used fields by name when the entry was built with them. Entries that
	// Cleansing made carry them packed instead (see Values): a sort holds and spills a hundred
	// thousand of them at a time, and most are only compared by Hash, never opened.
	Fields map[string]connector.Value
	// packed holds the fields named by names, in that order (see unpack), when Fields is nil.
	packed string
	names  []string
}

// Values returns the entry's fields by name; a packed entry's are decoded, into a new map on
// every call.
func (e Entry) Values() map[string]connector.Value {
	if e.Fields != nil || e.names == nil {
		return e.Fields
	}
	return unpack(e.packed, e.names)
}

// withValues returns e with its fields in Fields, for callers outside the package that read
// Fields (the rejects' reports).
func (e Entry) withValues() Entry {
	e.Fields = e.Values()
	e.packed, e.names = "", nil
	return e
}

// absent marks a field the item did not have, in place of its kind in a packed entry.
const absent = 0xff

// unpack decodes packed fields (see projector.project: per field its kind, or absent, then
// its text's length and bytes); the texts share packed's memory.
func unpack(packed string, names []string) map[string]connector.Value {
	fields := make(map[string]connector.Value, len(names))
	for _, name := range names {
		if len(packed) == 0 {
			break
		}
		kind := packed[0]
		packed = packed[1:]
		if kind == absent {
			continue
		}
		n, w := binary.Uvarint([]byte(packed[:min(len(packed), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(packed)-w) < n {
			break // not written by pack; runs are checked when decoded (validPacked)
		}
		fields[name] = connector.Value{Kind: connector.Kind(kind), Text: packed[w : w+int(n)]}
		packed = packed[w+int(n):]
	}
	return fields
}

// validPacked reports whether packed is what pack writes for len(names) fields.
func validPacked(packed string, names int) bool {
	for range names {
		if len(packed) == 0 {
			return false
		}
		kind := packed[0]
		packed = packed[1:]
		if kind == absent {
			continue
		}
		n, w := binary.Uvarint([]byte(packed[:min(len(packed), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(packed)-w) < n {
			return false
		}
		packed = packed[w+int(n):]
	}
	return len(packed) == 0
}

// Hash is the content hash of the named fields of an item. Only canonical
// text counts, not the value kind, so a csv "42" and an SQL 42 hash the same;
// a missing field and a Null one hash the same too, because a connector that
// cannot store nulls will hand back an absent field.
func Hash(fields map[string]connector.Value, names []string) string {
	return hashSorted(fields, hashOrder(names), nil)
}

// Hasher is Hash over one list of names, sorted once, reusing its buffer; it is not safe for
// concurrent use.
type Hasher struct {
	sorted  []string
	scratch []byte
}

// NewHasher returns a Hasher of the named fields.
func NewHasher(names []string) *Hasher { return &Hasher{sorted: hashOrder(names)} }

// Hash is Hash(fields, names).
func (h *Hasher) Hash(fields map[string]connector.Value) string {
	return hashSorted(fields, h.sorted, &h.scratch)
}

// hashOrder is names sorted, as Hash takes them; a sorted list is used as it is.
func hashOrder(names []string) []string {
	if slices.IsSorted(names) {
		return names
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	return sorted
}

// hashSorted is Hash over names already sorted, using scratch (which may be nil) for the bytes
// hashed.
func hashSorted(fields map[string]connector.Value, sorted []string, scratch *[]byte) string {
	var local []byte
	if scratch == nil {
		scratch = &local
	}
	b := (*scratch)[:0]
	for _, name := range sorted {
		v, ok := fields[name]
		b = append(b, name...)
		if !ok || v.IsNull() {
			b = append(b, 0, 0)
			continue
		}
		b = append(b, 0, 1)
		b = append(b, v.Text...)
		b = append(b, 0)
	}
	*scratch = b
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
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
