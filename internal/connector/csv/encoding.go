package csv

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// lookupEncoding maps the API's encoding names to codecs. UTF-16 files are
// written with a byte order mark, as spreadsheet programs expect, and read
// with or without one.
func lookupEncoding(name string) (encoding.Encoding, error) {
	switch strings.ToLower(name) {
	case "", "utf-8", "utf8":
		return unicode.UTF8, nil
	case "utf-16le":
		return unicode.UTF16(unicode.LittleEndian, unicode.UseBOM), nil
	case "utf-16be":
		return unicode.UTF16(unicode.BigEndian, unicode.UseBOM), nil
	case "latin1", "iso-8859-1":
		return charmap.ISO8859_1, nil
	case "windows-1252", "cp1252":
		return charmap.Windows1252, nil
	}
	return nil, fmt.Errorf("%q is not one of utf-8, utf-16le, utf-16be, latin1, windows-1252", name)
}

// decodingReader turns the file's bytes into UTF-8, dropping a leading byte
// order mark (Excel writes one even in UTF-8).
func decodingReader(r io.Reader, enc encoding.Encoding) io.Reader {
	return transform.NewReader(r, unicode.BOMOverride(enc.NewDecoder()))
}

// encodingWriter turns UTF-8 into the file's encoding. Characters the
// encoding cannot hold fail the write rather than turn into '?'.
func encodingWriter(w io.Writer, enc encoding.Encoding) io.WriteCloser {
	if enc == unicode.UTF8 {
		return nopCloser{w}
	}
	return transform.NewWriter(w, enc.NewEncoder())
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
