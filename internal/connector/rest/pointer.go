package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chainsync/chainsync/internal/connector"
)

// pointer is a field's place in an item: a JSON pointer (RFC 6901) split into its tokens, "~0"
// and "~1" decoded.
type pointer []string

// parseField reads a field name: a JSON pointer ("/name/first", "/emails/0/value"), or a name
// without a leading "/", which is a top-level property ("email" is "/email").
func parseField(field string) (pointer, error) {
	if field == "" {
		return nil, errors.New("a field is empty")
	}
	if !strings.HasPrefix(field, "/") {
		return pointer{field}, nil
	}
	var p pointer
	for _, tok := range strings.Split(field[1:], "/") {
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(tok, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("%q is not a JSON pointer: ~ must be written ~0 (and / as ~1)", field)
		}
		if tok == "-" {
			return nil, fmt.Errorf("%q: the pointer token - (past the end of an array) names no value to sync", field)
		}
		p = append(p, strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~"))
	}
	return p, nil
}

func (p pointer) String() string {
	var b strings.Builder
	for _, tok := range p {
		b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// index reads an array index token: digits, without leading zeros.
func index(tok string) (int, bool) {
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil && i >= 0
}

// get returns the value p points at in doc; false when a step is missing or null.
func (p pointer) get(doc any) (any, bool) {
	cur := doc
	for _, tok := range p {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, ok := index(tok)
			if !ok || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}

// set puts v where p points in doc, making the objects and arrays on the way: an array where the
// token is an index, an object otherwise. An array is padded with nulls up to the index. It
// fails when a step is a value that is neither an object nor an array.
func (p pointer) set(doc map[string]any, v any) error {
	_, err := setAt(doc, p, p, v)
	return err
}

func setAt(node any, full, p pointer, v any) (any, error) {
	if len(p) == 0 {
		return v, nil
	}
	tok := p[0]
	if node == nil {
		if _, isIndex := index(tok); isIndex {
			node = []any{}
		} else {
			node = map[string]any{}
		}
	}
	switch n := node.(type) {
	case map[string]any:
		sub, err := setAt(n[tok], full, p[1:], v)
		if err != nil {
			return nil, err
		}
		n[tok] = sub
		return n, nil
	case []any:
		i, ok := index(tok)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not an index into the array at %s", full, tok, full[:len(full)-len(p)])
		}
		for len(n) <= i {
			n = append(n, nil)
		}
		sub, err := setAt(n[i], full, p[1:], v)
		if err != nil {
			return nil, err
		}
		n[i] = sub
		return n, nil
	}
	return nil, fmt.Errorf("%s: the value at %s is neither an object nor an array", full, full[:len(full)-len(p)])
}

// remove deletes the property p points at; an array element is set to null instead, so the
// elements after it keep their places.
func (p pointer) remove(doc map[string]any) {
	parent, ok := p[:len(p)-1].get(doc)
	if len(p) == 1 {
		parent, ok = doc, true
	}
	if !ok {
		return
	}
	switch c := parent.(type) {
	case map[string]any:
		delete(c, p[len(p)-1])
	case []any:
		if i, ok := index(p[len(p)-1]); ok && i < len(c) {
			c[i] = nil
		}
	}
}

// value turns a JSON value into a field value: an object or an array the field points at whole is
// its compact JSON text.
func value(v any) connector.Value {
	switch v := v.(type) {
	case nil:
		return connector.Null()
	case string:
		return connector.String(v)
	case bool:
		return connector.Bool(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return connector.Int(i)
		}
		f, _ := v.Float64()
		return connector.Float(f)
	}
	b, _ := json.Marshal(v)
	return connector.String(string(b))
}

// toJSON gives a field value the JSON type of its kind: numbers and booleans as such, everything
// else as a string.
func toJSON(v connector.Value) any {
	switch v.Kind {
	case connector.KindNull:
		return nil
	case connector.KindInt, connector.KindFloat:
		return json.Number(v.Text)
	case connector.KindBool:
		return v.Text == "true"
	}
	return v.Text
}

// idText is an item's ID as the idField holds it: a string, or a number's decimal text.
func idText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	}
	return "", false
}
