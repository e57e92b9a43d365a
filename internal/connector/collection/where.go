package collection

import (
	"fmt"
	"strings"

	"github.com/chainsync/chainsync/internal/connector"
)

// Where is a parsed where clause: SQL text with the identity parameters
// (@email, @name, @attr_<key>) found outside string literals, quoted
// identifiers and comments, so that they can be bound as parameters.
type Where struct {
	// text holds the SQL around the parameters: len(text) == len(params)+1.
	text   []string
	params []string // "email", "name" or "attributes.<key>"
}

// ParseWhere finds the identity parameters of a where clause. Any other
// @word is an error, so a typo fails validation instead of every cycle.
func ParseWhere(sql string) (Where, error) {
	var w Where
	var cur strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			end := strings.IndexByte(sql[i+1:], c)
			if end < 0 {
				return Where{}, fmt.Errorf("unterminated %c quote", c)
			}
			cur.WriteString(sql[i : i+end+2])
			i += end + 2
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			cur.WriteString(sql[i : i+end])
			i += end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return Where{}, fmt.Errorf("unterminated /* comment")
			}
			cur.WriteString(sql[i : i+end+4])
			i += end + 4
		case c == '@' && i+1 < len(sql) && isWordByte(sql[i+1]):
			j := i + 1
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
			word := sql[i+1 : j]
			var param string
			switch {
			case word == "email", word == "name":
				param = word
			case strings.HasPrefix(word, "attr_") && len(word) > len("attr_"):
				param = "attributes." + strings.TrimPrefix(word, "attr_")
			default:
				return Where{}, fmt.Errorf("unknown parameter @%s: use @email, @name or @attr_<key>", word)
			}
			w.text = append(w.text, cur.String())
			cur.Reset()
			w.params = append(w.params, param)
			i = j
		case c == ';':
			return Where{}, fmt.Errorf("must be a single condition, without ';'")
		default:
			cur.WriteByte(c)
			i++
		}
	}
	w.text = append(w.text, cur.String())
	return w, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// IsEmpty reports whether there is no condition.
func (w Where) IsEmpty() bool {
	return strings.TrimSpace(strings.Join(w.text, "")) == "" && len(w.params) == 0
}

// Render writes the clause with placeholder(n) for the n-th bound argument,
// counting on from firstArg, and returns the values to bind.
func (w Where) Render(s connector.Scope, firstArg int, placeholder func(n int) string) (string, []any, error) {
	var b strings.Builder
	args := make([]any, 0, len(w.params))
	for i, p := range w.params {
		b.WriteString(w.text[i])
		v, err := IdentityValue(s, p)
		if err != nil {
			return "", nil, fmt.Errorf("where: %w", err)
		}
		args = append(args, v)
		b.WriteString(placeholder(firstArg + i))
	}
	b.WriteString(w.text[len(w.text)-1])
	return b.String(), args, nil
}
