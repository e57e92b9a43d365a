package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
)

// maxFieldLen bounds one decoded string so a corrupt run cannot make the
// decoder allocate gigabytes.
const maxFieldLen = 1 << 28

var errCorruptRun = errors.New("corrupt sort run")

// encodeEntry writes e as length-prefixed strings; runs live only for the
// duration of one sort, so the format needs no version.
func encodeEntry(w *bufio.Writer, e *Entry) error {
	var buf [binary.MaxVarintLen64]byte
	putString := func(s string) {
		n := binary.PutUvarint(buf[:], uint64(len(s)))
		w.Write(buf[:n])
		w.WriteString(s)
	}
	putString(e.Key)
	putString(e.ID)
	putString(e.Hash)
	putString(e.Origin)
	var mod int64
	if !e.ModTime.IsZero() {
		mod = e.ModTime.UnixNano()
	}
	n := binary.PutVarint(buf[:], mod)
	w.Write(buf[:n])
	n = binary.PutUvarint(buf[:], uint64(len(e.Fields)))
	w.Write(buf[:n])
	for name, v := range e.Fields {
		putString(name)
		w.WriteByte(byte(v.Kind))
		putString(v.Text)
	}
	return nil
}

// decodeEntry reads one entry; io.EOF means a clean end of run.
func decodeEntry(r *bufio.Reader) (Entry, error) {
	getString := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if n > maxFieldLen {
			return "", fmt.Errorf("%w: string of %d bytes", errCorruptRun, n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b), nil
	}
	var e Entry
	var err error
	if e.Key, err = getString(); err != nil {
		return Entry{}, err // io.EOF here is the clean end
	}
	unexpected := func(err error) error {
		if err == io.EOF {
			return fmt.Errorf("%w: truncated entry", errCorruptRun)
		}
		return err
	}
	for _, dst := range []*string{&e.ID, &e.Hash, &e.Origin} {
		if *dst, err = getString(); err != nil {
			return Entry{}, unexpected(err)
		}
	}
	mod, err := binary.ReadVarint(r)
	if err != nil {
		return Entry{}, unexpected(err)
	}
	if mod != 0 {
		e.ModTime = time.Unix(0, mod).UTC()
	}
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return Entry{}, unexpected(err)
	}
	if count > maxFieldLen {
		return Entry{}, fmt.Errorf("%w: %d fields", errCorruptRun, count)
	}
	e.Fields = make(map[string]connector.Value, min(count, 64))
	for range count {
		name, err := getString()
		if err != nil {
			return Entry{}, unexpected(err)
		}
		kind, err := r.ReadByte()
		if err != nil {
			return Entry{}, unexpected(err)
		}
		text, err := getString()
		if err != nil {
			return Entry{}, unexpected(err)
		}
		e.Fields[name] = connector.Value{Kind: connector.Kind(kind), Text: text}
	}
	return e, nil
}
