// Package sqlgen writes the statements the sqlite and postgres connectors
// run: reads of one user's rows (scope matches and the policy's where
// clause, with identity values always bound as parameters), change reads
// past a watermark, and keyed inserts, updates and deletes. The dialects
// differ only in placeholders and the table name's qualification.
package sqlgen

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// OriginColumn is the optional hidden column that stores the engine's
// origin token with each row. A table that has it gives the connector the
// Origin capability; the column is never read or written as a field.
const OriginColumn = "chainsync_origin"

// WritesTable is the bookkeeping table chainsync keeps in the database of a
// table without OriginColumn: the origin token of each row a Write created,
// written in the Write's transaction, so that a create whose outcome a crash
// kept from the records is still recognised by the next cycle's read. Rows
// live per table and user scope until that scope's next Write to the table:
// the engine reads (and records what it finds) before it writes again, so
// by then the records hold every link these rows prove.
const WritesTable = "chainsync_writes"

// WritesDDL creates the bookkeeping table under the given quoted name.
func WritesDDL(qualified string) string {
	return "CREATE TABLE IF NOT EXISTS " + qualified + ` (
	tbl text NOT NULL,
	scope text NOT NULL,
	row_id text NOT NULL,
	origin text NOT NULL,
	PRIMARY KEY (tbl, scope, row_id))`
}

// Quote quotes an identifier for both SQLite and PostgreSQL.
func Quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

// Table describes one entity's table for statement building.
type Table struct {
	// QualifiedName is the quoted table name, schema-qualified if needed.
	QualifiedName string
	Coll          collection.Collection
	Where         collection.Where
	// Columns are the table's columns in order, excluding OriginColumn.
	Columns []string
	// HasOrigin is true when the table has OriginColumn.
	HasOrigin bool
	// Writes is the quoted name of the WritesTable that proves this table's
	// creates when it has no OriginColumn.
	Writes string
	// Placeholder renders the n-th (1-based) bound argument.
	Placeholder func(n int) string
	// ReturnText makes writes return just their key and modification
	// columns, as text (PostgreSQL, whose pipelined writes cannot ask for
	// text results; the connector reads the stored row back itself).
	ReturnText bool
}

// Args accumulates bound arguments and hands out their placeholders.
type Args struct {
	values []any
	ph     func(int) string
}

// Add binds v and returns its placeholder.
func (a *Args) Add(v any) string {
	a.values = append(a.values, v)
	return a.ph(len(a.values))
}

// Values are the arguments to bind, in order.
func (a *Args) Values() []any { return a.values }

func (t Table) newArgs() *Args { return &Args{ph: t.Placeholder} }

// scopeCondition is the user's part of the table: scope matches and the
// where clause, all bound. The where clause renders as one parenthesised
// unit from its parsed tree, so nothing in it can detach the conditions
// around it: "a AND (where)" holds a for every row, whatever where says.
func (t Table) scopeCondition(s connector.Scope, args *Args) (string, error) {
	var conds []string
	values, err := t.Coll.ScopeValues(s)
	if err != nil {
		return "", err
	}
	for _, m := range t.Coll.Scope {
		conds = append(conds, Quote(m.Field)+" = "+args.Add(values[m.Field]))
	}
	if !t.Where.IsEmpty() {
		first := len(args.values) + 1
		sql, vals, err := t.Where.Render(s, first, t.Placeholder)
		if err != nil {
			return "", err
		}
		args.values = append(args.values, vals...)
		conds = append(conds, sql)
	}
	return strings.Join(conds, " AND "), nil
}

// SelectColumns lists the columns a read returns: the key, modification
// and scope columns and the requested fields (all when fields is nil),
// then the origin column when the table has one.
func (t Table) SelectColumns(fields []string) []string {
	var cols []string
	if fields == nil {
		cols = append(cols, t.Columns...)
	} else {
		want := map[string]bool{}
		for _, f := range append(append([]string(nil), fields...), t.Coll.Fields()...) {
			want[f] = true
		}
		for _, c := range t.Columns {
			if want[c] {
				cols = append(cols, c)
			}
		}
	}
	if t.HasOrigin {
		cols = append(cols, OriginColumn)
	}
	return cols
}

// Select reads the user's rows; with since set, only rows whose
// modification column is at or after it, or null (a row whose time is
// unknown must not be missed). Re-reading the rows at the boundary instant
// is what makes equal timestamps safe: the engine ignores unchanged items.
func (t Table) Select(s connector.Scope, cols []string, since any) (string, []any, error) {
	args := t.newArgs()
	cond, err := t.scopeCondition(s, args)
	if err != nil {
		return "", nil, err
	}
	var conds []string
	if cond != "" {
		conds = append(conds, cond)
	}
	if since != nil {
		mod := Quote(t.Coll.ModifiedField)
		conds = append(conds, fmt.Sprintf("(%s >= %s OR %s IS NULL)", mod, args.Add(since), mod))
	}
	sql := "SELECT " + quoteAll(cols) + " FROM " + t.QualifiedName
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	return sql, args.Values(), nil
}

// MaxModified reads the newest modification time among the user's rows.
func (t Table) MaxModified(s connector.Scope) (string, []any, error) {
	args := t.newArgs()
	cond, err := t.scopeCondition(s, args)
	if err != nil {
		return "", nil, err
	}
	sql := "SELECT max(" + Quote(t.Coll.ModifiedField) + ") FROM " + t.QualifiedName
	if cond != "" {
		sql += " WHERE " + cond
	}
	return sql, args.Values(), nil
}

// keyCondition matches one row by its decoded key within the user's scope.
func (t Table) keyCondition(s connector.Scope, keys []any, args *Args) (string, error) {
	var conds []string
	for i, k := range t.Coll.KeyFields {
		conds = append(conds, Quote(k)+" = "+args.Add(keys[i]))
	}
	cond, err := t.scopeCondition(s, args)
	if err != nil {
		return "", err
	}
	if cond != "" {
		conds = append(conds, cond)
	}
	return strings.Join(conds, " AND "), nil
}

// SelectMatching reads the user's rows that also meet cond, a condition
// with one %s per value of condArgs, where they are bound.
func (t Table) SelectMatching(s connector.Scope, cols []string, cond string, condArgs ...any) (string, []any, error) {
	args := t.newArgs()
	ph := make([]any, len(condArgs))
	for i, v := range condArgs {
		ph[i] = args.Add(v)
	}
	conds := []string{fmt.Sprintf(cond, ph...)}
	scope, err := t.scopeCondition(s, args)
	if err != nil {
		return "", nil, err
	}
	if scope != "" {
		conds = append(conds, scope)
	}
	return "SELECT " + quoteAll(cols) + " FROM " + t.QualifiedName + " WHERE " + strings.Join(conds, " AND "), args.Values(), nil
}

// Returning lists what a write returns: the whole row as SelectColumns(nil)
// reads it, so the connector reports the row as it will read back (see
// connector.WriteResult.Stored); with ReturnText, only the key columns and
// then the modification column, as text.
func (t Table) Returning() string {
	cols := t.SelectColumns(nil)
	if t.ReturnText {
		cols = append([]string(nil), t.Coll.KeyFields...)
		if t.Coll.ModifiedField != "" {
			cols = append(cols, t.Coll.ModifiedField)
		}
	}
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = Quote(c)
		if t.ReturnText {
			q[i] += "::text"
		}
	}
	return " RETURNING " + strings.Join(q, ", ")
}

// SelectWrites reads the origins of the rows the scope's last Write to
// this table created: row_id, origin.
func (t Table) SelectWrites(s connector.Scope) (string, []any) {
	args := t.newArgs()
	return "SELECT row_id, origin FROM " + t.Writes + " WHERE tbl = " + args.Add(t.QualifiedName) +
		" AND scope = " + args.Add(s.Key()), args.Values()
}

// ForgetWrites drops what the scope's earlier Writes to this table recorded
// (see WritesTable).
func (t Table) ForgetWrites(s connector.Scope) (string, []any) {
	args := t.newArgs()
	return "DELETE FROM " + t.Writes + " WHERE tbl = " + args.Add(t.QualifiedName) + " AND scope = " + args.Add(s.Key()), args.Values()
}

// RecordWrite stores the origin of one row a Write created.
func (t Table) RecordWrite(s connector.Scope, id, origin string) (string, []any) {
	args := t.newArgs()
	return "INSERT INTO " + t.Writes + " (tbl, scope, row_id, origin) VALUES (" + args.Add(t.QualifiedName) + ", " + args.Add(s.Key()) +
		", " + args.Add(id) + ", " + args.Add(origin) + ") ON CONFLICT (tbl, scope, row_id) DO UPDATE SET origin = excluded.origin", args.Values()
}

// Insert creates a row from columns and their bound values.
func (t Table) Insert(cols []string, vals []any) (string, []any) {
	args := t.newArgs()
	ph := make([]string, len(vals))
	for i, v := range vals {
		ph[i] = args.Add(v)
	}
	return "INSERT INTO " + t.QualifiedName + " (" + quoteAll(cols) + ") VALUES (" + strings.Join(ph, ", ") + ")" + t.Returning(), args.Values()
}

// Update sets columns of the user's row with the given key.
func (t Table) Update(s connector.Scope, keys []any, cols []string, vals []any) (string, []any, error) {
	args := t.newArgs()
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = Quote(c) + " = " + args.Add(vals[i])
	}
	cond, err := t.keyCondition(s, keys, args)
	if err != nil {
		return "", nil, err
	}
	return "UPDATE " + t.QualifiedName + " SET " + strings.Join(sets, ", ") + " WHERE " + cond + t.Returning(), args.Values(), nil
}

// Delete removes the user's row with the given key.
func (t Table) Delete(s connector.Scope, keys []any) (string, []any, error) {
	args := t.newArgs()
	cond, err := t.keyCondition(s, keys, args)
	if err != nil {
		return "", nil, err
	}
	return "DELETE FROM " + t.QualifiedName + " WHERE " + cond, args.Values(), nil
}

func quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = Quote(c)
	}
	return strings.Join(q, ", ")
}

// Stamp is the modification value a write sets when the write does not set
// one: microseconds (PostgreSQL's precision) in a fixed-width UTC form, so
// that text columns sort by time too (RFC 3339 with trimmed fractions does
// not: "05.1Z" sorts after "05.12Z").
func Stamp(now time.Time) connector.Value {
	return connector.String(now.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z"))
}

// Bind is how a dialect passes a value: as its canonical text, which the
// database parses by the column's type, so what is read back has the same
// canonical text (null as NULL, bytes as bytes).
func Bind(v connector.Value) any {
	switch v.Kind {
	case connector.KindNull:
		return nil
	case connector.KindBytes:
		b, err := v.AsBytes()
		if err != nil {
			return v.Text
		}
		return b
	}
	return v.Text
}

// WriteColumns turns a create or update into columns and values: the
// write's fields, the user's scope values (a create cannot name another
// user), the modification time when the write does not set it, and the
// origin token when the table keeps one.
func (t Table) WriteColumns(w connector.Write, scope map[string]string, now connector.Value) ([]string, []any, error) {
	cols := make([]string, 0, len(w.Fields)+len(t.Coll.Scope)+2)
	vals := make([]any, 0, cap(cols))
	set := make(map[string]bool, cap(cols))
	// Sorted, so that creates with the same fields share one statement
	// shape (and one COPY).
	names := make([]string, 0, len(w.Fields))
	for name := range w.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v := w.Fields[name]
		if !slices.Contains(t.Columns, name) {
			return nil, nil, fmt.Errorf("column %q does not exist in table %s", name, t.QualifiedName)
		}
		if want, scoped := scope[name]; scoped && !v.IsNull() && v.Text != want {
			return nil, nil, fmt.Errorf("scope column %s is %q, not the user's %q", name, v.Text, want)
		}
		cols, vals = append(cols, name), append(vals, Bind(v))
		set[name] = true
	}
	if w.Op == connector.OpCreate {
		for _, m := range t.Coll.Scope {
			if !set[m.Field] {
				cols, vals = append(cols, m.Field), append(vals, scope[m.Field])
				set[m.Field] = true
			}
		}
	}
	if m := t.Coll.ModifiedField; m != "" && !set[m] {
		cols, vals = append(cols, m), append(vals, Bind(now))
	}
	if t.HasOrigin {
		cols, vals = append(cols, OriginColumn), append(vals, w.Origin)
	}
	return cols, vals, nil
}

// CheckColumns names every column a collection's configuration uses (key fields, modification
// field, scope fields, the where clause's columns) that cols lacks. path names the collection in
// the policy's terms; relation names the table as the dialect's messages do.
//
// The where clause's columns matter most: SQLite reads a double-quoted name that is no column
// as a string, so a misspelt column would silently turn "ownr <> @email" into a condition true
// for every row. They are matched ignoring ASCII case, as SQLite matches names; PostgreSQL,
// which does not, fails the read with its own error instead.
func CheckColumns(path, relation string, coll collection.Collection, cols []string) error {
	have := map[string]bool{}
	for _, c := range cols {
		have[c] = true
	}
	var errs []error
	need := func(field, col string) {
		if !have[col] {
			errs = append(errs, fmt.Errorf("%s.%s: column %q does not exist in %s", path, field, col, relation))
		}
	}
	for _, k := range coll.KeyFields {
		need("keyFields", k)
	}
	if coll.ModifiedField != "" {
		need("modifiedField", coll.ModifiedField)
	}
	for i, m := range coll.Scope {
		need(fmt.Sprintf("scope[%d].field", i), m.Field)
	}
	if where, err := collection.ParseWhere(coll.Where); err == nil {
		folded := map[string]bool{}
		for _, c := range cols {
			folded[asciiLower(c)] = true
		}
		for _, col := range where.Columns() {
			if !folded[asciiLower(col)] {
				errs = append(errs, fmt.Errorf("%s.where: column %q does not exist in %s", path, col, relation))
			}
		}
	}
	return errors.Join(errs...)
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ErrManyRows is wrapped by the item error of an update or delete that matched more than one
// row. An item is one row; more means that its key is not unique within the user's scope (a key
// shared between users, or a where clause broader than one user), and a write of one user's item
// must not change rows it does not name. The connector undoes the statement.
var ErrManyRows = errors.New("the key fields must identify one row within the user's scope and where clause")

// ManyRowsError says that the op for one item matched n rows and was undone.
func ManyRowsError(op connector.Op, n int64) error {
	return fmt.Errorf("the %s matched %d rows and was undone: %w", op, n, ErrManyRows)
}
