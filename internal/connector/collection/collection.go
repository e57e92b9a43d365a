// Package collection is what the csv, sqlite and postgres connectors share
// about one entity's collection: its key fields and how they become an
// Item.ID, its modification field, and how one user's scope selects rows
// (field = identity matches, and for SQL a where clause with bound identity
// parameters).
package collection

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chainsync/chainsync/internal/connector"
)

// Collection configures one entity on one endpoint, in the terms of the
// SyncPolicy API (entities[].source or entities[].target).
type Collection struct {
	// Name is the file (csv) or table/view (sql) holding the entity.
	Name string
	// KeyFields identify an item; several make a composite key.
	KeyFields []string
	// ModifiedField, when set, holds each item's last modification time.
	ModifiedField string
	// Scope selects one user's items: every field must equal the identity
	// value it names.
	Scope []ScopeMatch
	// Where is an SQL condition with @email, @name and @attr_<key>
	// parameters (SQL connectors only). Rows the engine creates get the
	// Scope values filled in, but nothing can make them satisfy Where: a
	// collection written to needs Scope for what identifies the owner.
	Where string
}

// ScopeMatch requires Field to equal the user's Identity value: "email",
// "name" or "attributes.<key>".
type ScopeMatch struct {
	Field    string
	Identity string
}

var identityPattern = regexp.MustCompile(`^(email|name|attributes\.[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$`)

// Validate checks what can be checked without the endpoint. path names the
// collection in user terms, e.g. "entities[contacts].source"; allowWhere is
// false for connectors that cannot evaluate SQL.
func (c Collection) Validate(path string, allowWhere bool) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("%s.collection: must be set", path))
	}
	if len(c.KeyFields) == 0 {
		errs = append(errs, fmt.Errorf("%s.keyFields: at least one key field is required", path))
	}
	seen := map[string]bool{}
	for _, f := range c.KeyFields {
		if f == "" {
			errs = append(errs, fmt.Errorf("%s.keyFields: a key field name is empty", path))
		}
		if seen[f] {
			errs = append(errs, fmt.Errorf("%s.keyFields: %q is listed twice", path, f))
		}
		seen[f] = true
	}
	for i, m := range c.Scope {
		if m.Field == "" {
			errs = append(errs, fmt.Errorf("%s.scope[%d].field: must be set", path, i))
		}
		if !identityPattern.MatchString(m.Identity) {
			errs = append(errs, fmt.Errorf("%s.scope[%d].identity: %q is not email, name or attributes.<key>", path, i, m.Identity))
		}
	}
	if c.Where != "" {
		if !allowWhere {
			errs = append(errs, fmt.Errorf("%s.where: needs an SQL connector (sqlite or postgres); use scope instead", path))
		} else if _, err := ParseWhere(c.Where); err != nil {
			errs = append(errs, fmt.Errorf("%s.where: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// Fields lists the fields the connector must read besides the requested
// ones: keys, modification time and scope fields.
func (c Collection) Fields() []string {
	out := append([]string(nil), c.KeyFields...)
	if c.ModifiedField != "" {
		out = append(out, c.ModifiedField)
	}
	for _, m := range c.Scope {
		out = append(out, m.Field)
	}
	return out
}

// ErrNullKey is returned by EncodeID when a key field is null or empty.
var ErrNullKey = errors.New("a key field is null or empty")

// EncodeID turns key values into an Item.ID. A single key is its canonical
// text, as a user would write it; a composite key is a JSON array of the
// texts (of their base64 after "b64:" when one is not valid UTF-8), which no
// two distinct tuples share and DecodeID can take apart.
// Collections never mix the two forms, so a single key that looks like an
// array cannot collide with a composite one.
func EncodeID(keyTexts []string) (string, error) {
	for _, t := range keyTexts {
		if t == "" {
			return "", ErrNullKey
		}
	}
	if len(keyTexts) == 1 {
		return keyTexts[0], nil
	}
	for _, t := range keyTexts {
		if !utf8.ValidString(t) {
			// JSON would turn invalid bytes into U+FFFD, and two
			// different keys into one: spell such keys in base64.
			enc := make([]string, len(keyTexts))
			for i, t := range keyTexts {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(t))
			}
			b, err := json.Marshal(enc)
			return binaryIDPrefix + string(b), err
		}
	}
	b, err := json.Marshal(keyTexts)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// binaryIDPrefix marks a composite ID whose parts are base64, because one of
// them is not valid UTF-8.
const binaryIDPrefix = "b64:"

// DecodeID is the inverse of EncodeID for a collection with n key fields.
func DecodeID(id string, n int) ([]string, error) {
	if id == "" {
		return nil, ErrNullKey
	}
	if n == 1 {
		return []string{id}, nil
	}
	raw, binary := strings.CutPrefix(id, binaryIDPrefix)
	var parts []string
	if err := json.Unmarshal([]byte(raw), &parts); err != nil || len(parts) != n {
		return nil, fmt.Errorf("ID %q is not a composite key of %d fields", id, n)
	}
	if binary {
		for i, p := range parts {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				return nil, fmt.Errorf("ID %q is not a composite key of %d fields: %w", id, n, err)
			}
			parts[i] = string(b)
		}
	}
	return parts, nil
}

// ItemID computes the ID of an item from its fields; ErrNullKey when a key
// field is absent, null or empty.
func (c Collection) ItemID(fields map[string]connector.Value) (string, error) {
	texts := make([]string, len(c.KeyFields))
	for i, f := range c.KeyFields {
		v, ok := fields[f]
		if !ok || v.IsNull() {
			return "", ErrNullKey
		}
		texts[i] = v.Text
	}
	return EncodeID(texts)
}

// IdentityValue resolves "email", "name" or "attributes.<key>" for a user.
// A user without the value is an error: matching the empty string instead
// could hand one user's items to another.
func IdentityValue(s connector.Scope, identity string) (string, error) {
	var v string
	switch {
	case identity == "email":
		v = s.Email
	case identity == "name":
		v = s.Name
	case strings.HasPrefix(identity, "attributes."):
		v = s.Attributes[strings.TrimPrefix(identity, "attributes.")]
	default:
		return "", fmt.Errorf("unknown identity %q", identity)
	}
	if v == "" {
		return "", fmt.Errorf("the user has no %s, which the scope needs", identity)
	}
	return v, nil
}

// ScopeValues resolves every scope match for a user, by field.
func (c Collection) ScopeValues(s connector.Scope) (map[string]string, error) {
	out := make(map[string]string, len(c.Scope))
	for _, m := range c.Scope {
		v, err := IdentityValue(s, m.Identity)
		if err != nil {
			return nil, fmt.Errorf("scope field %q: %w", m.Field, err)
		}
		out[m.Field] = v
	}
	return out, nil
}

// timeLayouts are the forms a modification time takes in files and text
// columns, most precise first.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// ParseTime reads a modification time written as text. Times without a zone
// are taken as UTC.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339 or YYYY-MM-DD hh:mm:ss)", s)
}
