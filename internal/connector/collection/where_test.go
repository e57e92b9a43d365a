package collection

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
)

func numbered(n int) string { return "?" + strconv.Itoa(n) }

func TestWhereRendersFromTheTree(t *testing.T) {
	scope := connector.Scope{Email: "ann@example.com'; DROP TABLE t; --", Name: "Ann", Attributes: map[string]string{"dept": "HR"}}
	for _, tc := range []struct {
		clause string
		sql    string
		args   []any
	}{
		{`owner = @email`, `("owner" = ?1)`, []any{scope.Email}},
		{"Owner=@email\n\tAND \"Mixed\"\"Case\" <> 'it''s' AND note != '@name -- /* ; )'",
			`("owner" = ?1 AND "Mixed""Case" <> ?2 AND "note" <> ?3)`, []any{scope.Email, "it's", "@name -- /* ; )"}},
		{`a = 1 OR b = 2 AND c = 3`,
			`("a" = CAST(?1 AS BIGINT) OR ("b" = CAST(?2 AS BIGINT) AND "c" = CAST(?3 AS BIGINT)))`, []any{"1", "2", "3"}},
		{`(a = 1 OR b >= 2) and c < 3`,
			`(("a" = CAST(?1 AS BIGINT) OR "b" >= CAST(?2 AS BIGINT)) AND "c" < CAST(?3 AS BIGINT))`, []any{"1", "2", "3"}},
		{`a = 1 AND (b = 2 AND (c <= 3 AND d > 4))`,
			`("a" = CAST(?1 AS BIGINT) AND "b" = CAST(?2 AS BIGINT) AND "c" <= CAST(?3 AS BIGINT) AND "d" > CAST(?4 AS BIGINT))`,
			[]any{"1", "2", "3", "4"}},
		{`NOT (a = 'x' OR b = 'y')`, `(NOT ("a" = ?1 OR "b" = ?2))`, []any{"x", "y"}},
		{`dept IN ('HR', 'IT') AND name NOT IN (@name)`, `("dept" IN (?1, ?2) AND "name" NOT IN (?3))`, []any{"HR", "IT", "Ann"}},
		{`deleted_at IS NULL AND closed IS NOT NULL AND NOT archived AND active`,
			`("deleted_at" IS NULL AND "closed" IS NOT NULL AND NOT ("archived") AND "active")`, nil},
		{`email LIKE '%@example.com' or name not like 'test%'`, `("email" LIKE ?1 OR "name" NOT LIKE ?2)`, []any{"%@example.com", "test%"}},
		{`score BETWEEN 1.5 AND -2 AND n NOT BETWEEN .5 AND 99999999999999999999 AND flag = TRUE AND other <> false AND x = NULL`,
			`("score" BETWEEN CAST(?1 AS NUMERIC) AND CAST(?2 AS BIGINT) AND "n" NOT BETWEEN CAST(?3 AS NUMERIC) AND CAST(?4 AS NUMERIC) AND "flag" = TRUE AND "other" <> FALSE AND "x" = NULL)`,
			[]any{"1.5", "-2", ".5", "99999999999999999999"}},
		{`tenant = @attr_dept AND @name = owner_name`, `("tenant" = ?1 AND ?2 = "owner_name")`, []any{"HR", "Ann"}},
		{`name IS DISTINCT FROM @name || ' (hidden)' AND x IS NOT DISTINCT FROM y`,
			`("name" IS DISTINCT FROM ?1 || ?2 AND "x" IS NOT DISTINCT FROM "y")`, []any{"Ann", " (hidden)"}},
		{`"select" = 'SELECT 1; --'`, `("select" = ?1)`, []any{"SELECT 1; --"}},
	} {
		t.Run(tc.clause, func(t *testing.T) {
			g := NewWithT(t)
			w, err := ParseWhere(tc.clause)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(w.IsEmpty()).To(BeFalse())
			sql, args, err := w.Render(scope, 1, numbered)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sql).To(Equal(tc.sql))
			if tc.args == nil {
				g.Expect(args).To(BeEmpty())
			} else {
				g.Expect(args).To(Equal(tc.args))
			}
		})
	}
}

func TestWhereNumbersArgumentsFromFirstArg(t *testing.T) {
	g := NewWithT(t)
	w, err := ParseWhere(`owner = @email AND dept = @attr_dept`)
	g.Expect(err).NotTo(HaveOccurred())
	sql, args, err := w.Render(connector.Scope{Email: "a@b", Attributes: map[string]string{"dept": "HR"}}, 3, func(n int) string { return "$" + strconv.Itoa(n) })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sql).To(Equal(`("owner" = $3 AND "dept" = $4)`))
	g.Expect(args).To(Equal([]any{"a@b", "HR"}))

	_, _, err = w.Render(connector.Scope{Email: "a@b"}, 1, numbered)
	g.Expect(err).To(MatchError(ContainSubstring("attributes.dept")), "a missing identity value never matches the empty string")

	for _, blank := range []string{"", " \n\t "} {
		w, err := ParseWhere(blank)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(w.IsEmpty()).To(BeTrue())
	}
}

func TestWhereRejectsAnythingButOneCondition(t *testing.T) {
	for _, tc := range []struct{ clause, err string }{
		{`owner = @email) OR (1=1`, `unexpected ")" at position 15: no "(" to close`},
		{`x = 1; DROP TABLE t`, `";" at position 6: the where clause must be a single condition`},
		{`x = 1 -- c`, `comment at position 7: comments are not allowed`},
		{`/* */`, `comment at position 1: comments are not allowed`},
		{`f(x) = 1`, `function call "f(" at position 1: functions are not allowed`},
		{`x IN (SELECT 1)`, `unexpected "SELECT" at position 7: subqueries are not allowed`},
		{`x = (SELECT 1)`, `unexpected "(" at position 5: expected a column, a literal or a parameter`},
		{`EXISTS (SELECT 1)`, `unexpected "EXISTS" at position 1: EXISTS is an SQL keyword (double-quote a column of that name)`},
		{`owner = @mail`, `unknown parameter @mail at position 9: use @email, @name or @attr_<key>`},
		{`owner = @`, `"@" at position 9 must start @email, @name or @attr_<key>`},
		{`(a = 1`, `unexpected end of the clause at position 7: expected AND, OR or ")" to close "(" at position 1`},
		{`(a = 1 b`, `unexpected "b" at position 8: expected AND, OR or ")" to close "(" at position 1`},
		{`a = 1 b`, `unexpected "b" at position 7: expected AND, OR or the end of the clause`},
		{`a = b = c`, `unexpected "=" at position 7: expected AND, OR or the end of the clause`},
		{`a = 1 UNION SELECT 1`, `unexpected "UNION" at position 7: expected AND, OR or the end of the clause`},
		{`a =`, `unexpected end of the clause at position 4: expected a column, a literal or a parameter`},
		{`a = AND b = 1`, `unexpected "AND" at position 5: expected a column, a literal or a parameter`},
		{`NOT`, `unexpected end of the clause at position 4: expected a condition`},
		{`a = 1 AND`, `unexpected end of the clause at position 10: expected a condition`},
		{`x IN ()`, `unexpected ")" at position 7: expected a column, a literal or a parameter`},
		{`x IN ('a' 'b')`, `unexpected "'b'" at position 11: expected "," or ")"`},
		{`x IN 'a'`, `unexpected "'a'" at position 6: expected "(" after IN`},
		{`x NOT = 1`, `unexpected "=" at position 7: expected IN, LIKE or BETWEEN after NOT`},
		{`x BETWEEN 1 OR 2`, `unexpected "OR" at position 13: expected AND between the bounds of BETWEEN`},
		{`x IS 1`, `unexpected "1" at position 6: expected NULL, NOT NULL or DISTINCT FROM after IS`},
		{`x IS DISTINCT 1`, `unexpected "1" at position 15: expected FROM after DISTINCT`},
		{`@email IS NULL`, `IS NULL at position 8 needs a column on its left`},
		{`x ILIKE 'a%'`, `ILIKE at position 3 is not supported: it is PostgreSQL-only (SQLite's LIKE already ignores ASCII case)`},
		{`'unterminated`, `string starting at position 1 is not terminated`},
		{`"x = 1`, `quoted identifier starting at position 1 is not terminated`},
		{`"" = 1`, `empty quoted identifier at position 1`},
		{`a = 1::text`, `unexpected ":" at position 6`},
		{`a = 'x' | 'y'`, `unexpected "|" at position 9`},
		{`a = ?`, `unexpected "?" at position 5`},
		{`a = $1`, `unexpected "$" at position 5`},
		{`a.b = 1`, `unexpected "." at position 2`},
		{"a = `b`", "unexpected \"`\" at position 5"},
		{`a = 1e5`, `malformed number "1e5" at position 5`},
		{`a = 1.2.3`, `malformed number "1.2.3" at position 5`},
		{`a = - b`, `unexpected "b" at position 7: expected a number after "-"`},
		{`1`, `"1" at position 1 is not a condition: compare it with =, <>, <, >, IN, LIKE, BETWEEN or IS`},
		{`@name`, `"@name" at position 1 is not a condition: compare it with =, <>, <, >, IN, LIKE, BETWEEN or IS`},
		{`é = 1`, `unexpected "é" at position 1`},
		{`"é" = 'ü' AND x = ;`, `";" at position 19: the where clause must be a single condition`},
		{"a = 'x\x00'", `NUL character at position 7`},
		{"a = '\xff'", `invalid UTF-8 at position 6`},
		{strings.Repeat("(", 100) + "a = 1" + strings.Repeat(")", 100), `"(" at position 65: nested more than 64 levels deep`},
		{strings.Repeat("NOT ", 100) + "a", `"NOT" at position 257: nested more than 64 levels deep`},
	} {
		t.Run(tc.clause, func(t *testing.T) {
			_, err := ParseWhere(tc.clause)
			NewWithT(t).Expect(err).To(MatchError(tc.err))
		})
	}
}

func TestWhereColumns(t *testing.T) {
	g := NewWithT(t)
	w, err := ParseWhere(`Owner = @email AND ("Dept" IN (x, 'y') OR owner LIKE z || 'a') AND NOT flag`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(w.Columns()).To(Equal([]string{"owner", "Dept", "x", "z", "flag"}))
}

var attrParam = regexp.MustCompile(`@attr_([A-Za-z0-9_]+)`)

// Whatever parses renders as one parenthesised unit whose every value is
// bound: put after "scope AND", the whole clause stays conjoined with the
// user's condition. Substituting the arguments back gives a clause that
// parses to the same tree.
func FuzzWhere(f *testing.F) {
	for _, s := range []string{
		"owner = @email",
		"owner = @email) OR (1=1",
		"owner = @email OR 1 = 1",
		"x = 1; DROP TABLE t",
		"x = 1 -- c",
		"/* */ x = 1",
		"f(x) = 1",
		"x IN (SELECT 1)",
		`("a" = 'it''s' OR NOT b IN (1, -2.5, @name)) AND c IS NOT NULL AND d NOT LIKE 'x%' AND e BETWEEN 1 AND 2`,
		`tenant = @attr_dept AND name IS DISTINCT FROM @name || ' (hidden)'`,
		`")(" = '")(' AND "a""b" <> TRUE`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, clause string) {
		w, err := ParseWhere(clause)
		if err != nil || w.IsEmpty() {
			return
		}
		// Sentinel identity values (NUL cannot occur in a literal) tell
		// a bound parameter from a bound literal.
		scope := connector.Scope{Email: "\x00email", Name: "\x00name", Attributes: map[string]string{}}
		for _, m := range attrParam.FindAllStringSubmatch(clause, -1) {
			scope.Attributes[m[1]] = "\x00attr_" + m[1]
		}
		const first = 7
		sql, args, err := w.Render(scope, first, func(n int) string { return "$" + strconv.Itoa(n) })
		if err != nil {
			t.Fatalf("%q parsed but does not render: %v", clause, err)
		}
		outside, placeholders := splitOutsideIdentifiers(t, sql)
		if len(placeholders) != len(args) {
			t.Fatalf("%q rendered as %q: %d placeholders for %d args", clause, sql, len(placeholders), len(args))
		}
		for i, n := range placeholders {
			if n != first+i {
				t.Fatalf("%q rendered as %q: placeholder %d is $%d", clause, sql, i, n)
			}
		}
		if !strings.HasPrefix(outside, "(") || closingParen(outside) != len(outside)-1 {
			t.Fatalf("%q rendered as %q, which is not one parenthesised unit", clause, sql)
		}
		for _, bad := range []string{";", "--", "/*", "'"} {
			if strings.Contains(outside, bad) {
				t.Fatalf("%q rendered as %q, which holds %q outside identifiers", clause, sql, bad)
			}
		}
		back := substitute(sql, args, first)
		again, err := ParseWhere(back)
		if err != nil {
			t.Fatalf("%q rendered as %q, back as %q, which does not parse: %v", clause, sql, back, err)
		}
		if !reflect.DeepEqual(w, again) {
			t.Fatalf("%q rendered as %q, back as %q, which parses to another tree", clause, sql, back)
		}
	})
}

// splitOutsideIdentifiers returns the rendered SQL with every quoted
// identifier blanked to "" and the placeholders' numbers in order.
func splitOutsideIdentifiers(t *testing.T, sql string) (string, []int) {
	var out strings.Builder
	var placeholders []int
	for i := 0; i < len(sql); {
		switch c := sql[i]; {
		case c == '"':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				t.Fatalf("unterminated identifier in %q", sql)
			}
			out.WriteString(`""`)
			i = j + 1
		case c == '$':
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(sql[i+1 : j])
			if err != nil {
				t.Fatalf("bad placeholder in %q", sql)
			}
			placeholders = append(placeholders, n)
			out.WriteString("$")
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), placeholders
}

// closingParen is the index of the ")" matching the "(" at 0, -1 if none.
func closingParen(s string) int {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

var castPlaceholder = regexp.MustCompile(`CAST\(\$(\d+) AS (BIGINT|NUMERIC)\)|\$(\d+)`)

// substitute writes each bound argument back as the clause would spell it.
// Quoted identifiers cannot hold "$": the fuzzer's clauses may, so they are
// left alone by matching placeholders only outside them.
func substitute(sql string, args []any, first int) string {
	var out strings.Builder
	for i := 0; i < len(sql); {
		if sql[i] == '"' {
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '"' {
					if j+1 < len(sql) && sql[j+1] == '"' {
						j++
						continue
					}
					break
				}
			}
			out.WriteString(sql[i : j+1])
			i = j + 1
			continue
		}
		loc := castPlaceholder.FindStringSubmatchIndex(sql[i:])
		if loc == nil || loc[0] != 0 {
			out.WriteByte(sql[i])
			i++
			continue
		}
		m := sql[i : i+loc[1]]
		sub := castPlaceholder.FindStringSubmatch(m)
		num := sub[1] + sub[3]
		n, _ := strconv.Atoi(num)
		arg := args[n-first].(string)
		switch {
		case sub[1] != "":
			out.WriteString(arg)
		case strings.HasPrefix(arg, "\x00"):
			out.WriteString("@" + arg[1:])
		default:
			out.WriteString("'" + strings.ReplaceAll(arg, "'", "''") + "'")
		}
		i += loc[1]
	}
	return out.String()
}
