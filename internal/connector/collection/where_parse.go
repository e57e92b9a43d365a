package collection

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file turns a where clause into the tree of where.go: a lexer that
// knows every token the grammar has and nothing else, and a recursive
// descent parser, one function per rule, lowest precedence first.

// maxDepth bounds nesting (parentheses and NOT), so that no clause can
// exhaust the parser's stack; real clauses need a handful of levels.
const maxDepth = 64

type tokenKind uint8

const (
	tokEnd     tokenKind = iota
	tokWord              // a bare name or a keyword, as written
	tokQuoted            // a "quoted name", unescaped
	tokString            // a 'string', unescaped
	tokNumber            // digits with an optional fraction, as written
	tokParam             // an identity parameter; text is the identity
	tokCompare           // = <> != < <= > >=
	tokConcat            // ||
	tokMinus             // -, only ever before a number
	tokOpen              // (
	tokClose             // )
	tokComma             // ,
)

type token struct {
	kind tokenKind
	text string
	// off and end delimit the token in the clause, in bytes.
	off, end int
}

// Words that cannot be bare column names: the grammar's own, and SQL's
// words for what the grammar leaves out, which would otherwise be read as
// column names and fail with a confusing message. A column with such a
// name is written double-quoted.
var (
	grammarWords = wordSet("AND OR NOT IN IS NULL LIKE BETWEEN TRUE FALSE DISTINCT FROM")
	sqlWords     = wordSet("SELECT WITH EXISTS CASE WHEN THEN ELSE END CAST UNION INTERSECT EXCEPT ESCAPE COLLATE " +
		"ILIKE SIMILAR GLOB MATCH REGEXP ISNULL NOTNULL WHERE ORDER GROUP HAVING LIMIT")
)

func wordSet(words string) map[string]bool {
	set := map[string]bool{}
	for _, w := range strings.Fields(words) {
		set[w] = true
	}
	return set
}

// position is what errors call the place of a byte offset: the number of
// the character there, counting from 1.
func position(src string, off int) int { return utf8.RuneCountInString(src[:off]) + 1 }

func lex(src string) ([]token, error) {
	if !utf8.ValidString(src) {
		for off := 0; off < len(src); {
			r, size := utf8.DecodeRuneInString(src[off:])
			if r == utf8.RuneError && size == 1 {
				return nil, fmt.Errorf("invalid UTF-8 at position %d", position(src, off))
			}
			off += size
		}
	}
	if off := strings.IndexByte(src, 0); off >= 0 {
		return nil, fmt.Errorf("NUL character at position %d", position(src, off))
	}
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		next := byte(0)
		if i+1 < len(src) {
			next = src[i+1]
		}
		tok := token{off: i, end: i + 1}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '-' && next == '-', c == '/' && next == '*':
			return nil, fmt.Errorf("comment at position %d: comments are not allowed", position(src, i))
		case c == ';':
			return nil, fmt.Errorf(`";" at position %d: the where clause must be a single condition`, position(src, i))
		case c == '\'' || c == '"':
			text, end, ok := quoted(src, i)
			if !ok && c == '\'' {
				return nil, fmt.Errorf("string starting at position %d is not terminated", position(src, i))
			}
			if !ok {
				return nil, fmt.Errorf("quoted identifier starting at position %d is not terminated", position(src, i))
			}
			tok.kind, tok.text, tok.end = tokString, text, end
			if c == '"' {
				if text == "" {
					return nil, fmt.Errorf("empty quoted identifier at position %d", position(src, i))
				}
				tok.kind = tokQuoted
			}
		case c == '@':
			j := i + 1
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			word := src[i+1 : j]
			var identity string
			switch {
			case word == "":
				return nil, fmt.Errorf(`"@" at position %d must start @email, @name or @attr_<key>`, position(src, i))
			case word == "email", word == "name":
				identity = word
			case strings.HasPrefix(word, "attr_") && len(word) > len("attr_"):
				identity = "attributes." + strings.TrimPrefix(word, "attr_")
			default:
				return nil, fmt.Errorf("unknown parameter @%s at position %d: use @email, @name or @attr_<key>", word, position(src, i))
			}
			tok.kind, tok.text, tok.end = tokParam, identity, j
		case isDigit(c) || c == '.' && isDigit(next):
			j := i
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j < len(src) && src[j] == '.' {
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			if j < len(src) && (isWordByte(src[j]) || src[j] == '.') {
				for j < len(src) && (isWordByte(src[j]) || src[j] == '.') {
					j++
				}
				return nil, fmt.Errorf("malformed number %q at position %d", src[i:j], position(src, i))
			}
			tok.kind, tok.text, tok.end = tokNumber, src[i:j], j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			tok.kind, tok.text, tok.end = tokWord, src[i:j], j
		case c == '=':
			tok.kind, tok.text = tokCompare, "="
		case c == '<' && (next == '=' || next == '>'), c == '>' && next == '=', c == '!' && next == '=':
			tok.kind, tok.text, tok.end = tokCompare, src[i:i+2], i+2
		case c == '<' || c == '>':
			tok.kind, tok.text = tokCompare, src[i:i+1]
		case c == '|' && next == '|':
			tok.kind, tok.text, tok.end = tokConcat, "||", i+2
		case c == '-':
			tok.kind, tok.text = tokMinus, "-"
		case c == '(':
			tok.kind, tok.text = tokOpen, "("
		case c == ')':
			tok.kind, tok.text = tokClose, ")"
		case c == ',':
			tok.kind, tok.text = tokComma, ","
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, fmt.Errorf("unexpected %q at position %d", string(r), position(src, i))
		}
		toks = append(toks, tok)
		i = tok.end
	}
	return append(toks, token{kind: tokEnd, off: len(src), end: len(src)}), nil
}

// quoted reads the string or quoted name starting with the quote at
// src[start], in which a doubled quote stands for one.
func quoted(src string, start int) (text string, end int, ok bool) {
	q := src[start]
	var b strings.Builder
	for i := start + 1; i < len(src); i++ {
		if src[i] != q {
			b.WriteByte(src[i])
			continue
		}
		if i+1 < len(src) && src[i+1] == q {
			b.WriteByte(q)
			i++
			continue
		}
		return b.String(), i + 1, true
	}
	return "", 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c)
}

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func parse(src string) (condition, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tokEnd {
		return nil, nil
	}
	c, err := p.condition()
	if err != nil {
		return nil, err
	}
	switch t := p.peek(); t.kind {
	case tokEnd:
		return c, nil
	case tokClose:
		return nil, p.unexpected(t, `no "(" to close`)
	default:
		return nil, p.unexpected(t, "expected AND, OR or the end of the clause")
	}
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEnd {
		p.i++
	}
	return t
}

func isKeyword(t token, kw string) bool { return t.kind == tokWord && strings.EqualFold(t.text, kw) }

// keyword consumes the next token if it is the keyword kw.
func (p *parser) keyword(kw string) bool {
	if isKeyword(p.peek(), kw) {
		p.next()
		return true
	}
	return false
}

func (p *parser) describe(t token) string {
	if t.kind == tokEnd {
		return "end of the clause"
	}
	text := p.src[t.off:t.end]
	if utf8.RuneCountInString(text) > 40 {
		text = string([]rune(text)[:40]) + "..."
	}
	return strconv.Quote(text)
}

func (p *parser) unexpected(t token, want string) error {
	return fmt.Errorf("unexpected %s at position %d: %s", p.describe(t), position(p.src, t.off), want)
}

// enter goes one level deeper at token t.
func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > maxDepth {
		return fmt.Errorf("%s at position %d: nested more than %d levels deep", p.describe(t), position(p.src, t.off), maxDepth)
	}
	return nil
}

// condition = conjuncts { OR conjuncts }
func (p *parser) condition() (condition, error) {
	return p.junction(true)
}

// conjuncts = negation { AND negation }
func (p *parser) junction(or bool) (condition, error) {
	word, operand := "AND", p.negation
	if or {
		word, operand = "OR", func() (condition, error) { return p.junction(false) }
	}
	var terms []condition
	for {
		c, err := operand()
		if err != nil {
			return nil, err
		}
		// Nested junctions of the same kind are one: a AND (b AND c)
		// renders as a AND b AND c, which parses back to this tree.
		if j, ok := c.(junction); ok && j.or == or {
			terms = append(terms, j.terms...)
		} else {
			terms = append(terms, c)
		}
		if !p.keyword(word) {
			break
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return junction{or: or, terms: terms}, nil
}

// negation = NOT negation | "(" condition ")" | predicate
func (p *parser) negation() (condition, error) {
	t := p.peek()
	switch {
	case isKeyword(t, "NOT"):
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		c, err := p.negation()
		if err != nil {
			return nil, err
		}
		p.depth--
		return negation{c}, nil
	case t.kind == tokOpen:
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		if end := p.peek(); end.kind != tokClose {
			return nil, p.unexpected(end, fmt.Sprintf(`expected AND, OR or ")" to close "(" at position %d`, position(p.src, t.off)))
		}
		p.next()
		p.depth--
		return c, nil
	}
	return p.predicate()
}

const wantValue = "expected a column, a literal or a parameter"

func (p *parser) predicate() (condition, error) {
	start := p.peek()
	x, err := p.value("expected a condition")
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tokCompare:
		p.next()
		y, err := p.value(wantValue)
		if err != nil {
			return nil, err
		}
		op := t.text
		if op == "!=" {
			op = "<>"
		}
		return comparison{op: op, left: x, right: y}, nil
	case isKeyword(t, "IS"):
		p.next()
		not := p.keyword("NOT")
		u := p.next()
		switch {
		case isKeyword(u, "NULL"):
			// A parameter or a literal is never null, and PostgreSQL
			// cannot type a parameter that stands alone.
			if x.kind != valueColumn {
				return nil, fmt.Errorf("IS NULL at position %d needs a column on its left", position(p.src, t.off))
			}
			return nullTest{x: x, not: not}, nil
		case isKeyword(u, "DISTINCT"):
			if from := p.next(); !isKeyword(from, "FROM") {
				return nil, p.unexpected(from, "expected FROM after DISTINCT")
			}
			y, err := p.value(wantValue)
			if err != nil {
				return nil, err
			}
			return distinctTest{x: x, y: y, not: not}, nil
		}
		return nil, p.unexpected(u, "expected NULL, NOT NULL or DISTINCT FROM after IS")
	case isKeyword(t, "NOT"), isKeyword(t, "IN"), isKeyword(t, "LIKE"), isKeyword(t, "BETWEEN"), isKeyword(t, "ILIKE"):
		not := p.keyword("NOT")
		return p.test(x, not)
	}
	if x.kind == valueColumn || x.kind == valueTrue || x.kind == valueFalse {
		return truth{x}, nil
	}
	return nil, fmt.Errorf("%s at position %d is not a condition: compare it with =, <>, <, >, IN, LIKE, BETWEEN or IS",
		strconv.Quote(p.src[start.off:p.toks[p.i-1].end]), position(p.src, start.off))
}

// test parses what follows x [NOT]: IN, LIKE or BETWEEN.
func (p *parser) test(x value, not bool) (condition, error) {
	t := p.next()
	switch {
	case isKeyword(t, "IN"):
		if open := p.next(); open.kind != tokOpen {
			return nil, p.unexpected(open, `expected "(" after IN`)
		}
		var list []value
		for {
			v, err := p.value(wantValue)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
			switch sep := p.next(); sep.kind {
			case tokComma:
				continue
			case tokClose:
				return membership{x: x, not: not, list: list}, nil
			default:
				return nil, p.unexpected(sep, `expected "," or ")"`)
			}
		}
	case isKeyword(t, "LIKE"):
		pattern, err := p.value(wantValue)
		if err != nil {
			return nil, err
		}
		return likeTest{x: x, pattern: pattern, not: not}, nil
	case isKeyword(t, "BETWEEN"):
		lo, err := p.value(wantValue)
		if err != nil {
			return nil, err
		}
		if and := p.next(); !isKeyword(and, "AND") {
			return nil, p.unexpected(and, "expected AND between the bounds of BETWEEN")
		}
		hi, err := p.value(wantValue)
		if err != nil {
			return nil, err
		}
		return rangeTest{x: x, lo: lo, hi: hi, not: not}, nil
	case isKeyword(t, "ILIKE"):
		return nil, fmt.Errorf("ILIKE at position %d is not supported: it is PostgreSQL-only (SQLite's LIKE already ignores ASCII case)",
			position(p.src, t.off))
	}
	return nil, p.unexpected(t, "expected IN, LIKE or BETWEEN after NOT")
}

// value = term { "||" term }
func (p *parser) value(want string) (value, error) {
	first, err := p.term(want)
	if err != nil || p.peek().kind != tokConcat {
		return first, err
	}
	parts := []value{first}
	for p.peek().kind == tokConcat {
		p.next()
		v, err := p.term(wantValue)
		if err != nil {
			return value{}, err
		}
		parts = append(parts, v)
	}
	return value{kind: valueConcat, parts: parts}, nil
}

func (p *parser) term(want string) (value, error) {
	t := p.next()
	switch t.kind {
	case tokWord:
		word := strings.ToUpper(t.text)
		switch {
		case word == "TRUE":
			return value{kind: valueTrue}, nil
		case word == "FALSE":
			return value{kind: valueFalse}, nil
		case word == "NULL":
			return value{kind: valueNull}, nil
		case word == "SELECT" || word == "WITH":
			return value{}, p.unexpected(t, "subqueries are not allowed")
		case grammarWords[word]:
			return value{}, p.unexpected(t, want)
		case sqlWords[word]:
			return value{}, p.unexpected(t, word+" is an SQL keyword (double-quote a column of that name)")
		case p.peek().kind == tokOpen:
			return value{}, p.functionCall(t)
		}
		// PostgreSQL folds unquoted names to lower case; quoting the
		// name as written would look for another column there.
		return value{kind: valueColumn, text: strings.ToLower(t.text)}, nil
	case tokQuoted:
		if p.peek().kind == tokOpen {
			return value{}, p.functionCall(t)
		}
		return value{kind: valueColumn, text: t.text}, nil
	case tokString:
		return value{kind: valueString, text: t.text}, nil
	case tokNumber:
		return number(t.text), nil
	case tokMinus:
		n := p.next()
		if n.kind != tokNumber {
			return value{}, p.unexpected(n, `expected a number after "-"`)
		}
		return number("-" + n.text), nil
	case tokParam:
		return value{kind: valueParam, text: t.text}, nil
	}
	return value{}, p.unexpected(t, want)
}

func (p *parser) functionCall(name token) error {
	return fmt.Errorf("function call %q at position %d: functions are not allowed", p.src[name.off:name.end]+"(", position(p.src, name.off))
}

func number(text string) value {
	if _, err := strconv.ParseInt(text, 10, 64); err == nil {
		return value{kind: valueInteger, text: text}
	}
	return value{kind: valueDecimal, text: text}
}
