package connector

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind tells a connector how to store a Value natively (SQL column type,
// parameter binding). It does not take part in hashing: a csv string "42" and
// an SQL integer 42 are the same data.
type Kind uint8

const (
	KindNull Kind = iota
	KindString
	KindInt
	KindFloat
	KindBool
	KindTime
	KindBytes
)

var kindNames = [...]string{"null", "string", "int", "float", "bool", "time", "bytes"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one field value in canonical form. Build it with the constructors
// (String, Int, Float, Bool, Time, Bytes, Null) rather than by hand, so that
// Text is canonical: the content hash of an item is computed from Text alone.
type Value struct {
	Kind Kind `json:"kind"`
	// Text is the canonical text: decimal integers, shortest round-trip
	// floats, "true"/"false", UTC RFC 3339 with nanoseconds for times,
	// standard base64 for bytes, empty for null.
	Text string `json:"text,omitempty"`
}

// Null is the absent value (SQL NULL, an empty csv cell a connector chooses to
// treat as missing). It differs from String("").
func Null() Value { return Value{Kind: KindNull} }

// String is a text value, kept exactly as given.
func String(s string) Value { return Value{Kind: KindString, Text: s} }

// Int is an integer value.
func Int(i int64) Value { return Value{Kind: KindInt, Text: strconv.FormatInt(i, 10)} }

// Float is a floating point value. Integral floats print without a fraction,
// so Float(42) and Int(42) hash the same.
func Float(f float64) Value {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return Value{Kind: KindFloat, Text: strconv.FormatInt(int64(f), 10)}
	}
	return Value{Kind: KindFloat, Text: strconv.FormatFloat(f, 'g', -1, 64)}
}

// Bool is a boolean value.
func Bool(b bool) Value { return Value{Kind: KindBool, Text: strconv.FormatBool(b)} }

// Time is a point in time, normalised to UTC so that the same instant read
// with different zone offsets hashes the same. Systems that store only
// seconds or microseconds should truncate before calling Time.
func Time(t time.Time) Value {
	return Value{Kind: KindTime, Text: t.UTC().Format(time.RFC3339Nano)}
}

// Bytes is a binary value.
func Bytes(b []byte) Value {
	return Value{Kind: KindBytes, Text: base64.StdEncoding.EncodeToString(b)}
}

// IsNull reports whether v is the null value.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// AsInt parses an Int (or integral Float/String) value.
func (v Value) AsInt() (int64, error) { return strconv.ParseInt(v.Text, 10, 64) }

// AsTime parses a Time value.
func (v Value) AsTime() (time.Time, error) { return time.Parse(time.RFC3339Nano, v.Text) }

// AsBytes decodes a Bytes value.
func (v Value) AsBytes() ([]byte, error) { return base64.StdEncoding.DecodeString(v.Text) }

func (v Value) String() string {
	if v.IsNull() {
		return "<null>"
	}
	return fmt.Sprintf("%s(%q)", v.Kind, v.Text)
}
