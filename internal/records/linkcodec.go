package records

import (
	"encoding/binary"
	"encoding/hex"
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
// (sideGone, sideIDIsKey, sideModTime, sideHexHash), its key, its ID unless it is the key, its
// hash (as its 16 bytes when it is 32 lowercase hex digits, as delta's hashes are), and its
// modification time when set. Strings are a uvarint length and their bytes. A time is a tag
// byte (see appendTime), then its Unix nanoseconds as a varint and, for a zone other than UTC
// or Local, its offset in seconds; a time nanoseconds cannot hold is time.Time's binary form.
const linkBinary = 0x01

const (
	sideGone = 1 << iota
	sideIDIsKey
	sideModTime
	sideHexHash
)

var errBadLink = errors.New("malformed link")

func encodeLink(l Link) []byte {
	b := make([]byte, 0, 64+len(l.Sides[0].Key)+len(l.Sides[1].Key)+len(l.Sides[0].Hash)+len(l.Sides[1].Hash))
	putString := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	putTime := func(t time.Time) { b = appendTime(b, t) }
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
		if isHexHash(s.Hash) {
			flags |= sideHexHash
		}
		b = append(b, flags)
		putString(s.Key)
		if flags&sideIDIsKey == 0 {
			putString(s.ID)
		}
		if flags&sideHexHash != 0 {
			b, _ = hex.AppendDecode(b, []byte(s.Hash))
		} else {
			putString(s.Hash)
		}
		if flags&sideModTime != 0 {
			putTime(s.ModTime)
		}
	}
	putTime(l.SyncedAt)
	return b
}

// isHexHash says whether h is 32 lowercase hex digits, which hex.EncodeToString gives back.
func isHexHash(h string) bool {
	if len(h) != 32 {
		return false
	}
	for i := range len(h) {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Tags of an encoded time.
const (
	timeZero   = 0
	timeNanos  = 1
	timeBinary = 0x7f
)

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, timeZero)
	}
	_, offset := t.Zone()
	if y := t.Year(); y < 1678 || y > 2261 { // beyond int64 nanoseconds
		raw, _ := t.MarshalBinary()
		b = append(b, timeBinary)
		b = binary.AppendUvarint(b, uint64(len(raw)))
		return append(b, raw...)
	}
	var flags byte = timeNanos
	if t.Location() == time.UTC {
		flags |= 2
	} else if t.Location() != time.Local || offset != 0 {
		flags |= 4 // a fixed zone of the offset
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, t.UnixNano())
	if flags&4 != 0 {
		b = binary.AppendVarint(b, int64(offset))
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
	varint := func() int64 {
		n, w := binary.Varint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if w <= 0 {
			bad = true
			return 0
		}
		s = s[w:]
		return n
	}
	getTime := func() time.Time {
		var t time.Time
		if len(s) == 0 {
			bad = true
			return t
		}
		tag := s[0]
		s = s[1:]
		switch {
		case tag == timeZero:
		case tag == timeBinary:
			raw := getString()
			if !bad {
				bad = t.UnmarshalBinary([]byte(raw)) != nil
			}
		case tag&timeNanos != 0 && tag < 8:
			t = time.Unix(0, varint())
			switch {
			case tag&2 != 0:
				t = t.UTC()
			case tag&4 != 0:
				t = t.In(time.FixedZone("", int(varint())))
			default:
				t = t.Local()
			}
		default:
			bad = true
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
		if flags&sideHexHash != 0 {
			if len(s) < 16 {
				return Link{}, errBadLink
			}
			st.Hash, s = hex.EncodeToString([]byte(s[:16])), s[16:]
		} else {
			st.Hash = getString()
		}
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
