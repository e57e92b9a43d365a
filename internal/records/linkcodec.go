package records

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
)

// Links are the bulk of a user's records (one per synced item, a million for a large export),
// read whole by every Complete cycle and written once per item by the first: since format 3
// they are stored in a binary layout rather than JSON, a third of the size and read without
// parsing. Formats 1 and 2 stored them as JSON objects, which decodeLink still reads: a value
// starting with '{' is one.
//
// The layout: the byte linkBinary, each side's state, then SyncedAt. A side is a flags byte
// (sideGone, sideIDIsKey, sideModTime), its key, its ID unless it is the key, its hash, and its
// modification time when set. Strings are a uvarint length and their bytes; times are
// time.Time's binary form behind a uvarint length.
const linkBinary = 0x01

const (
	sideGone = 1 << iota
	sideIDIsKey
	sideModTime
)

var errBadLink = errors.New("malformed link")

func encodeLink(l Link) []byte {
	b := make([]byte, 0, 64+len(l.Sides[0].Key)+len(l.Sides[1].Key)+len(l.Sides[0].Hash)+len(l.Sides[1].Hash))
	putString := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	putTime := func(t time.Time) {
		raw, _ := t.MarshalBinary()
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	b = append(b, linkBinary)
	for _, s := range l.Sides {
		var flags byte
		if s.Gone {
			flags |= sideGone
		}
		if s.ID == s.Key {
			flags |= sideIDIsKey
		}
		if !s.ModTime.IsZero() {
			flags |= sideModTime
		}
		b = append(b, flags)
		putString(s.Key)
		if flags&sideIDIsKey == 0 {
			putString(s.ID)
		}
		putString(s.Hash)
		if flags&sideModTime != 0 {
			putTime(s.ModTime)
		}
	}
	if l.SyncedAt.IsZero() {
		b = append(b, 0)
	} else {
		putTime(l.SyncedAt)
	}
	return b
}

// decodeLink reads a link in either layout. The strings of a binary one share one allocation.
func decodeLink(raw []byte) (Link, error) {
	var l Link
	if len(raw) > 0 && raw[0] == '{' {
		err := json.Unmarshal(raw, &l)
		return l, err
	}
	if len(raw) == 0 || raw[0] != linkBinary {
		return l, errBadLink
	}
	s := string(raw[1:])
	bad := false
	uvarint := func() uint64 {
		n, w := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if w <= 0 {
			bad = true
			return 0
		}
		s = s[w:]
		return n
	}
	getString := func() string {
		n := uvarint()
		if bad || n > uint64(len(s)) {
			bad = true
			return ""
		}
		v := s[:n]
		s = s[n:]
		return v
	}
	getTime := func() time.Time {
		var t time.Time
		raw := getString()
		if !bad && raw != "" {
			bad = t.UnmarshalBinary([]byte(raw)) != nil
		}
		return t
	}
	for i := range l.Sides {
		if len(s) == 0 {
			return Link{}, errBadLink
		}
		flags := s[0]
		s = s[1:]
		st := &l.Sides[i]
		st.Gone = flags&sideGone != 0
		st.Key = getString()
		st.ID = st.Key
		if flags&sideIDIsKey == 0 {
			st.ID = getString()
		}
		st.Hash = getString()
		if flags&sideModTime != 0 {
			st.ModTime = getTime()
		}
	}
	l.SyncedAt = getTime()
	if bad || len(s) != 0 {
		return Link{}, errBadLink
	}
	return l, nil
}
