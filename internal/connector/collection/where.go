package collection

import (
	"fmt"
	"strings"

	"github.com/chainsync/chainsync/internal/connector"
)

// Where is a parsed where clause: a tree of conditions over columns,
// literals and the identity parameters @email, @name and @attr_<key>.
//
// The clause's text never reaches the database. Render writes SQL from the
// tree alone: operators and keywords it spells itself, every column as a
// quoted identifier, and every literal and parameter as a bound argument.
// Whatever a policy says, its condition stays one parenthesised unit, so a
// connector ANDing it with the user's scope keeps the scope on every row.
//
// The grammar (keywords in any case, see where_parse.go):
//
//	condition  = conjuncts { OR conjuncts }
//	conjuncts  = negation { AND negation }
//	negation   = NOT negation | "(" condition ")" | predicate
//	predicate  = value ( ( "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=" ) value
//	                   | [ NOT ] IN "(" value { "," value } ")"
//	                   | [ NOT ] LIKE value
//	                   | [ NOT ] BETWEEN value AND value
//	                   | IS [ NOT ] NULL                  (after a column)
//	                   | IS [ NOT ] DISTINCT FROM value )
//	           | column | TRUE | FALSE                   (a boolean column)
//	value      = term { "||" term }
//	term       = column | 'string' | [ "-" ] number | TRUE | FALSE | NULL
//	           | @email | @name | @attr_<key>
//	column     = bare name [A-Za-z_][A-Za-z0-9_]* | "quoted name"
//
// A bare name is folded to lower case, as PostgreSQL folds unquoted names,
// and then quoted like every column: "Owner" written bare is "owner". A
// quoted name is kept exactly. SQLite matches column names in any case, so
// there the folding changes nothing.
//
// ILIKE is left out: PostgreSQL has it, SQLite does not, and SQLite's LIKE
// already ignores ASCII case.
type Where struct {
	// root is nil for an empty clause.
	root condition
}

// ParseWhere parses a where clause. Anything outside the grammar, from a
// ';' or a comment to a function call or a subquery, is an error naming
// its position (counted in characters from 1), so a policy that would
// change the query's shape fails validation instead of running.
func ParseWhere(clause string) (Where, error) {
	root, err := parse(clause)
	if err != nil {
		return Where{}, err
	}
	return Where{root: root}, nil
}

// IsEmpty reports whether there is no condition.
func (w Where) IsEmpty() bool { return w.root == nil }

// Columns lists the columns the clause names, once each, in order of
// appearance, as Render names them.
func (w Where) Columns() []string {
	if w.root == nil {
		return nil
	}
	var cols []string
	seen := map[string]bool{}
	w.root.visit(func(v value) {
		if v.kind == valueColumn && !seen[v.text] {
			seen[v.text] = true
			cols = append(cols, v.text)
		}
	})
	return cols
}

// Render writes the clause, in parentheses, with placeholder(n) for the
// n-th bound argument counting on from firstArg, and returns the values to
// bind. It is "" for an empty clause.
func (w Where) Render(s connector.Scope, firstArg int, placeholder func(n int) string) (string, []any, error) {
	if w.root == nil {
		return "", nil, nil
	}
	r := &renderer{scope: s, next: firstArg, placeholder: placeholder}
	r.b.WriteByte('(')
	if err := w.root.render(r); err != nil {
		return "", nil, fmt.Errorf("where: %w", err)
	}
	r.b.WriteByte(')')
	return r.b.String(), r.args, nil
}

// quoteIdent quotes a column name as sqlgen.Quote does (sqlgen imports this
// package, so it cannot be used from here).
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

type renderer struct {
	b           strings.Builder
	args        []any
	scope       connector.Scope
	next        int
	placeholder func(int) string
}

func (r *renderer) bind(v any) {
	r.args = append(r.args, v)
	r.b.WriteString(r.placeholder(r.next))
	r.next++
}

// A condition is a node of the tree that is true or false for a row.
type condition interface {
	render(r *renderer) error
	// visit calls f for every value in the condition, in order.
	visit(f func(value))
}

// valueKind says what a value is, and so how it is rendered.
type valueKind uint8

const (
	// valueColumn is a column; text is its name as the database knows it.
	valueColumn valueKind = iota + 1
	// valueParam is an identity parameter; text is the identity:
	// "email", "name" or "attributes.<key>".
	valueParam
	valueString
	// valueInteger fits in 64 bits; valueDecimal is any other number.
	// text is the number as written, with its sign.
	valueInteger
	valueDecimal
	valueTrue
	valueFalse
	valueNull
	// valueConcat joins parts with ||.
	valueConcat
)

type value struct {
	kind  valueKind
	text  string
	parts []value
}

func (v value) visit(f func(value)) {
	if v.kind == valueConcat {
		for _, p := range v.parts {
			p.visit(f)
		}
		return
	}
	f(v)
}

func (v value) render(r *renderer) error {
	switch v.kind {
	case valueColumn:
		r.b.WriteString(quoteIdent(v.text))
	case valueParam:
		s, err := IdentityValue(r.scope, v.text)
		if err != nil {
			return err
		}
		r.bind(s)
	case valueString:
		r.bind(v.text)
	case valueInteger, valueDecimal:
		// A bound number would be typed by its context, and as text
		// when there is none (@attr_level >= 3 would compare "10" and
		// "3" as strings in PostgreSQL): the cast gives it the type the
		// literal had in the SQL. Both dialects know these type names.
		typ := "BIGINT"
		if v.kind == valueDecimal {
			typ = "NUMERIC"
		}
		r.b.WriteString("CAST(")
		r.bind(v.text)
		r.b.WriteString(" AS " + typ + ")")
	case valueTrue:
		r.b.WriteString("TRUE")
	case valueFalse:
		r.b.WriteString("FALSE")
	case valueNull:
		r.b.WriteString("NULL")
	case valueConcat:
		// || binds tighter than any operator a condition puts around it,
		// in SQLite as in PostgreSQL.
		for i, p := range v.parts {
			if i > 0 {
				r.b.WriteString(" || ")
			}
			if err := p.render(r); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown value kind %d", v.kind)
	}
	return nil
}

// junction is terms joined by AND or by OR. The parser flattens nested
// junctions of the same kind, so the tree of a clause is the tree of its
// rendering.
type junction struct {
	or    bool
	terms []condition
}

func (j junction) render(r *renderer) error {
	sep := " AND "
	if j.or {
		sep = " OR "
	}
	for i, t := range j.terms {
		if i > 0 {
			r.b.WriteString(sep)
		}
		_, nested := t.(junction)
		if nested {
			r.b.WriteByte('(')
		}
		if err := t.render(r); err != nil {
			return err
		}
		if nested {
			r.b.WriteByte(')')
		}
	}
	return nil
}

func (j junction) visit(f func(value)) {
	for _, t := range j.terms {
		t.visit(f)
	}
}

type negation struct{ c condition }

func (n negation) render(r *renderer) error {
	r.b.WriteString("NOT (")
	if err := n.c.render(r); err != nil {
		return err
	}
	r.b.WriteByte(')')
	return nil
}

func (n negation) visit(f func(value)) { n.c.visit(f) }

// comparison is left op right; op is one of = <> < <= > >= ("!=" is
// parsed as "<>").
type comparison struct {
	op          string
	left, right value
}

func (c comparison) render(r *renderer) error {
	if err := c.left.render(r); err != nil {
		return err
	}
	r.b.WriteString(" " + c.op + " ")
	return c.right.render(r)
}

func (c comparison) visit(f func(value)) { c.left.visit(f); c.right.visit(f) }

// membership is x [NOT] IN (list).
type membership struct {
	x    value
	not  bool
	list []value
}

func (m membership) render(r *renderer) error {
	if err := m.x.render(r); err != nil {
		return err
	}
	r.b.WriteString(notWord(m.not) + " IN (")
	for i, v := range m.list {
		if i > 0 {
			r.b.WriteString(", ")
		}
		if err := v.render(r); err != nil {
			return err
		}
	}
	r.b.WriteByte(')')
	return nil
}

func (m membership) visit(f func(value)) {
	m.x.visit(f)
	for _, v := range m.list {
		v.visit(f)
	}
}

// nullTest is column IS [NOT] NULL.
type nullTest struct {
	x   value
	not bool
}

func (n nullTest) render(r *renderer) error {
	if err := n.x.render(r); err != nil {
		return err
	}
	if n.not {
		r.b.WriteString(" IS NOT NULL")
	} else {
		r.b.WriteString(" IS NULL")
	}
	return nil
}

func (n nullTest) visit(f func(value)) { n.x.visit(f) }

// distinctTest is x IS [NOT] DISTINCT FROM y, a comparison in which NULL
// equals NULL.
type distinctTest struct {
	x, y value
	not  bool
}

func (d distinctTest) render(r *renderer) error {
	if err := d.x.render(r); err != nil {
		return err
	}
	if d.not {
		r.b.WriteString(" IS NOT DISTINCT FROM ")
	} else {
		r.b.WriteString(" IS DISTINCT FROM ")
	}
	return d.y.render(r)
}

func (d distinctTest) visit(f func(value)) { d.x.visit(f); d.y.visit(f) }

// likeTest is x [NOT] LIKE pattern.
type likeTest struct {
	x, pattern value
	not        bool
}

func (l likeTest) render(r *renderer) error {
	if err := l.x.render(r); err != nil {
		return err
	}
	r.b.WriteString(notWord(l.not) + " LIKE ")
	return l.pattern.render(r)
}

func (l likeTest) visit(f func(value)) { l.x.visit(f); l.pattern.visit(f) }

// rangeTest is x [NOT] BETWEEN lo AND hi.
type rangeTest struct {
	x, lo, hi value
	not       bool
}

func (b rangeTest) render(r *renderer) error {
	if err := b.x.render(r); err != nil {
		return err
	}
	r.b.WriteString(notWord(b.not) + " BETWEEN ")
	if err := b.lo.render(r); err != nil {
		return err
	}
	r.b.WriteString(" AND ")
	return b.hi.render(r)
}

func (b rangeTest) visit(f func(value)) { b.x.visit(f); b.lo.visit(f); b.hi.visit(f) }

// truth is a boolean column, TRUE or FALSE standing alone.
type truth struct{ x value }

func (t truth) render(r *renderer) error { return t.x.render(r) }

func (t truth) visit(f func(value)) { t.x.visit(f) }

func notWord(not bool) string {
	if not {
		return " NOT"
	}
	return ""
}
