package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/chainsync/chainsync/internal/connector"
)

// maxFieldLen bounds one decoded entry so a corrupt run cannot make the
// decoder allocate gigabytes.
const maxFieldLen = 1 << 28

var (
	errCorruptRun     = errors.New("corrupt sort run")
	errMalformedEntry = fmt.Errorf("%w: malformed entry", errCorruptRun)
)

// Flags of an encoded entry.
const (
	idIsKey      = 1 << iota // the ID is not written: it is the key
	packedFields             // the fields are packed (Entry.packed), their names the sort's
)

// encodeEntry appends e to buf: its length, then flags, strings with their
// lengths, the modification time and the fields. Runs live only for the
// duration of one sort, so the format needs no version. Packed fields are
// written as they are, without their names: every packed entry of a sort
// has the same.
func encodeEntry(buf []byte, e *Entry) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, binary.MaxVarintLen64)...) // room for the length
	body := len(buf)
	putString := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	var flags byte
	if e.ID == e.Key {
		flags |= idIsKey
	}
	if e.Fields == nil && e.names != nil {
		flags |= packedFields
	}
	buf = append(buf, flags)
	putString(e.Key)
	if flags&idIsKey == 0 {
		putString(e.ID)
	}
	putString(e.Hash)
	putString(e.Origin)
	var mod int64
	if !e.ModTime.IsZero() {
		mod = e.ModTime.UnixNano()
	}
	buf = binary.AppendVarint(buf, mod)
	if flags&packedFields != 0 {
		buf = append(buf, e.packed...)
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(e.Fields)))
		for name, v := range e.Fields {
			putString(name)
			buf = append(buf, byte(v.Kind))
			putString(v.Text)
		}
	}
	// Move the body back against a length of its own size.
	n := binary.PutUvarint(buf[start:], uint64(len(buf)-body))
	copy(buf[start+n:], buf[body:])
	return buf[:len(buf)-(body-start-n)]
}

// decodeEntry reads one entry; io.EOF means a clean end of run. names are
// the names of the sort's packed fields. The entry's strings share one
// allocation.
func decodeEntry(r *bufio.Reader, names []string) (Entry, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return Entry{}, fmt.Errorf("%w: truncated entry", errCorruptRun)
		}
		return Entry{}, err // io.EOF here is the clean end
	}
	if size > maxFieldLen {
		return Entry{}, fmt.Errorf("%w: entry of %d bytes", errCorruptRun, size)
	}
	if size == 0 {
		return Entry{}, fmt.Errorf("%w: empty entry", errCorruptRun)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return Entry{}, fmt.Errorf("%w: truncated entry", errCorruptRun)
	}
	// b is never written again: the entry's strings are views of it.
	s := unsafe.String(&b[0], len(b))
	corrupt := errMalformedEntry
	uvarint := func() (uint64, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 {
			return 0, false
		}
		b, s = b[w:], s[w:]
		return n, true
	}
	getString := func() (string, bool) {
		n, ok := uvarint()
		if !ok || n > uint64(len(s)) {
			return "", false
		}
		v := s[:n]
		b, s = b[n:], s[n:]
		return v, true
	}
	flags := b[0]
	b, s = b[1:], s[1:]
	var e Entry
	var ok bool
	if e.Key, ok = getString(); !ok {
		return Entry{}, corrupt
	}
	e.ID = e.Key
	if flags&idIsKey == 0 {
		if e.ID, ok = getString(); !ok {
			return Entry{}, corrupt
		}
	}
	for _, dst := range []*string{&e.Hash, &e.Origin} {
		if *dst, ok = getString(); !ok {
			return Entry{}, corrupt
		}
	}
	mod, w := binary.Varint(b)
	if w <= 0 {
		return Entry{}, corrupt
	}
	b, s = b[w:], s[w:]
	if mod != 0 {
		e.ModTime = time.Unix(0, mod).UTC()
	}
	if flags&packedFields != 0 {
		if names == nil || !validPacked(s, len(names)) {
			return Entry{}, corrupt
		}
		e.packed, e.names = s, names
		return e, nil
	}
	count, ok := uvarint()
	if !ok || count > uint64(len(s)) {
		return Entry{}, corrupt
	}
	e.Fields = make(map[string]connector.Value, count)
	for range count {
		name, ok := getString()
		if !ok || len(b) == 0 {
			return Entry{}, corrupt
		}
		kind := b[0]
		b, s = b[1:], s[1:]
		text, ok := getString()
		if !ok {
			return Entry{}, corrupt
		}
		e.Fields[name] = connector.Value{Kind: connector.Kind(kind), Text: text}
	}
	if len(s) != 0 {
		return Entry{}, corrupt
	}
	return e, nil
}
