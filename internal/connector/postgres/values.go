package postgres

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// Type OIDs whose text form maps to a Value kind other than String.
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
)

// textValue maps a column's text form to a canonical Value. Types without a
// closer kind (numeric, date, uuid, json...) stay text, exactly as the
// server prints them.
func textValue(oid uint32, raw []byte) (connector.Value, error) {
	if raw == nil {
		return connector.Null(), nil
	}
	s := string(raw)
	switch oid {
	case oidBool:
		return connector.Bool(s == "t"), nil
	case oidInt2, oidInt4, oidInt8, oidOID:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return connector.String(s), err
		}
		return connector.Int(i), nil
	case oidFloat4, oidFloat8:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return connector.String(s), nil // NaN, Infinity
		}
		return connector.Float(f), nil
	case oidTimestamp, oidTimestamptz:
		t, err := collection.ParseTime(s)
		if err != nil {
			return connector.String(s), nil // infinity, BC dates
		}
		return connector.Time(t), nil
	case oidBytea:
		b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
		if err != nil {
			return connector.String(s), fmt.Errorf("bytea %q: %w", s, err)
		}
		return connector.Bytes(b), nil
	}
	return connector.String(s), nil
}

// modTime reads a modification value: a timestamp, a text time, or an
// integer of Unix seconds.
func modTime(v connector.Value) (time.Time, error) {
	switch v.Kind {
	case connector.KindNull:
		return time.Time{}, nil
	case connector.KindTime:
		return v.AsTime()
	case connector.KindInt:
		i, err := v.AsInt()
		return time.Unix(i, 0).UTC(), err
	}
	return collection.ParseTime(v.Text)
}

// appendCopyText appends one value in COPY's text format.
func appendCopyText(buf *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		buf.WriteString(`\N`)
	case []byte:
		buf.WriteString(`\\x`)
		buf.WriteString(hex.EncodeToString(v))
	case string:
		for i := 0; i < len(v); i++ {
			switch c := v[i]; c {
			case '\\':
				buf.WriteString(`\\`)
			case '\t':
				buf.WriteString(`\t`)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			default:
				buf.WriteByte(c)
			}
		}
	default:
		appendCopyText(buf, fmt.Sprint(v))
	}
}
