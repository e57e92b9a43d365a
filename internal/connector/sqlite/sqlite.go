// Package sqlite is the connector for tables of an SQLite database file, with
// the pure-Go modernc.org/sqlite driver (no cgo), the embedded default for
// trying chainsync with no server at all.
//
// Values are written as their canonical text and SQLite's column affinity
// stores them (a "42" in an INTEGER column becomes 42, "5.00" in a NUMERIC
// one 5, a text in a DATETIME column reads back as a time). A write returns
// the row as a read will see it (RETURNING, WriteResult.Stored), so our own
// write read back is no change.
//
// With a modifiedField the connector is incremental: the watermark is the
// newest modification value among the user's rows, and a change read takes
// every row at or after it (and rows with no modification value). Rows at
// the boundary instant are therefore read again by the next cycle, which is
// harmless (the engine ignores unchanged items) and is what guarantees that
// a row written later with the same timestamp is not missed. A change read
// cannot see deletes (SQLite keeps no tombstones); the engine finds them in
// its full reads.
//
// Every create is provable after a crash (the Origin capability): a table
// with a column named chainsync_origin stores the engine's origin token in
// it; for any other table the connector keeps the tokens of each Write's
// creates in a chainsync_writes table of the same database, written in the
// Write's transaction (see sqlgen.WritesTable), so the user's table needs no
// change.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
)

// MaxBatch bounds one Write call: one transaction holds SQLite's write lock
// for the whole batch.
const MaxBatch = 1000

// Config configures an sqlite endpoint from resolved values.
type Config struct {
	// Side is "source" or "target", for error messages in the policy's
	// terms (source.sqlite.file).
	Side string
	// File is the local path of the database file. It must exist: the
	// connector never creates a database or a table.
	File string
	// Entities maps entity names to their tables.
	Entities map[string]collection.Collection
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

// Validate checks the configuration and that the file exists, without opening
// the database.
func (c Config) Validate() error {
	if err := c.ValidateSpec(); err != nil {
		return connector.InvalidConfig(err)
	}
	if fi, err := os.Stat(c.File); err != nil {
		// A file that is not there is a volume not mounted or a database not
		// yet created: an outage, not a spec a person must change.
		return fmt.Errorf("%s.sqlite.file: %w", c.side(), err)
	} else if fi.IsDir() {
		return connector.InvalidConfig(fmt.Errorf("%s.sqlite.file: %s is a directory", c.side(), c.File))
	}
	return nil
}

// ValidateSpec checks what can be checked without the file, so the operator
// can refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	if c.File == "" {
		errs = append(errs, fmt.Errorf("%s.sqlite.file: must be set", c.side()))
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		if err := coll.Validate(c.entityPath(name), true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Connector reads and writes the tables of one SQLite database.
type Connector struct {
	cfg    Config
	db     *sql.DB
	tables map[string]sqlgen.Table
	caps   connector.Capabilities
	// now stamps the modification column of written rows; tests replace it.
	now func() time.Time
}

var (
	_ connector.Connector    = (*Connector)(nil)
	_ connector.ChangeReader = (*Connector)(nil)
)

// New validates cfg, opens the database and checks every entity's table
// and columns, so a misconfigured policy fails before anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.File)
	if err != nil {
		return nil, err
	}
	// mode=rw: a missing file is an error, not a new empty database.
	// Writes take the lock up front, and wait for other writers.
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, fmt.Errorf("%s.sqlite.file: %w", cfg.side(), err)
	}
	c := &Connector{cfg: cfg, db: db, tables: map[string]sqlgen.Table{}, now: time.Now}
	if err := c.inspect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the database.
func (c *Connector) Close() error { return c.db.Close() }

func (c *Connector) inspect(ctx context.Context) error {
	c.caps = connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}
	var errs []error
	for name, coll := range c.cfg.Entities {
		path := c.cfg.entityPath(name)
		rows, err := c.db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, coll.Name)
		if err != nil {
			return fmt.Errorf("%s.sqlite.file: opening %s: %w", c.cfg.side(), c.cfg.File, err)
		}
		var cols []string
		hasOrigin := false
		for rows.Next() {
			var col string
			if err := rows.Scan(&col); err != nil {
				rows.Close()
				return err
			}
			if col == sqlgen.OriginColumn {
				hasOrigin = true
				continue
			}
			cols = append(cols, col)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s.sqlite.file: reading %s: %w", c.cfg.side(), c.cfg.File, err)
		}
		if len(cols) == 0 {
			errs = append(errs, fmt.Errorf("%s.collection: table %q does not exist in %s", path, coll.Name, filepath.Base(c.cfg.File)))
			continue
		}
		if err := sqlgen.CheckColumns(path, fmt.Sprintf("table %q", coll.Name), coll, cols); err != nil {
			errs = append(errs, err)
			continue
		}
		where, _ := collection.ParseWhere(coll.Where)
		t := sqlgen.Table{QualifiedName: sqlgen.Quote(coll.Name), Coll: coll, Where: where, Columns: cols,
			HasOrigin: hasOrigin, Placeholder: func(n int) string { return "?" + strconv.Itoa(n) }}
		if !hasOrigin {
			t.Writes = sqlgen.Quote(sqlgen.WritesTable)
		}
		c.tables[name] = t
		c.caps.Incremental = c.caps.Incremental && coll.ModifiedField != ""
		c.caps.ModTime = c.caps.Incremental
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// Capabilities: incremental with modification times when every entity has a
// modifiedField; always Origin (see the package doc).
func (c *Connector) Capabilities() connector.Capabilities { return c.caps }

func (c *Connector) table(entity string) (sqlgen.Table, error) {
	t, ok := c.tables[entity]
	if !ok {
		return sqlgen.Table{}, fmt.Errorf("entity %q is not configured for the %s sqlite endpoint", entity, c.cfg.side())
	}
	return t, nil
}

// ReadAll streams the user's rows of the entity's table.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return c.read(ctx, req, nil)
}

// CurrentWatermark is the newest modification value among the user's rows,
// or "" when there are none (the next change read then reads everything).
func (c *Connector) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	t, err := c.incrementalTable(req.Entity)
	if err != nil {
		return "", err
	}
	q, args, err := t.MaxModified(req.Scope)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.cfg.entityPath(req.Entity), err)
	}
	var max any
	if err := c.db.QueryRowContext(ctx, q, args...).Scan(&max); err != nil {
		return "", fmt.Errorf("reading the watermark of %s: %w", t.Coll.Name, err)
	}
	return encodeWatermark(max)
}

// ReadChanges streams the rows modified at or after the watermark.
func (c *Connector) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	if _, err := c.incrementalTable(req.Entity); err != nil {
		return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
	}
	if since == "" {
		return c.read(ctx, req, nil)
	}
	bound, err := decodeWatermark(since)
	if err != nil {
		return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
	}
	return c.read(ctx, req, bound)
}

func (c *Connector) incrementalTable(entity string) (sqlgen.Table, error) {
	t, err := c.table(entity)
	if err == nil && t.Coll.ModifiedField == "" {
		err = fmt.Errorf("%s.modifiedField: incremental reads need a modification column", c.cfg.entityPath(entity))
	}
	return t, err
}

func (c *Connector) read(ctx context.Context, req connector.ReadRequest, since any) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		t, err := c.table(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		cols := t.SelectColumns(req.Fields)
		q, args, err := t.Select(req.Scope, cols, since)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("%s: %w", c.cfg.entityPath(req.Entity), err))
			return
		}
		origins, err := c.recordedOrigins(ctx, t, req.Scope)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		rows, err := c.db.QueryContext(ctx, q, args...)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("reading %s: %w", t.Coll.Name, err))
			return
		}
		defer rows.Close()
		raw := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				yield(connector.Item{}, fmt.Errorf("reading %s: %w", t.Coll.Name, err))
				return
			}
			item, err := toItem(t, cols, raw)
			if err != nil {
				err = connector.NewItemError(item.ID, err)
			}
			if o, ok := origins[item.ID]; ok {
				item.Origin = o
			}
			if !yield(item, err) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(connector.Item{}, fmt.Errorf("reading %s: %w", t.Coll.Name, err))
		}
	}
}

// recordedOrigins are the origins chainsync_writes holds for the user's rows
// of a table without an origin column: those of the last Write's creates.
func (c *Connector) recordedOrigins(ctx context.Context, t sqlgen.Table, s connector.Scope) (map[string]string, error) {
	if t.Writes == "" {
		return nil, nil
	}
	var exists bool
	err := c.db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?`, sqlgen.WritesTable).Scan(&exists)
	if err != nil || !exists {
		return nil, err
	}
	q, args := t.SelectWrites(s)
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", sqlgen.WritesTable, err)
	}
	defer rows.Close()
	origins := map[string]string{}
	for rows.Next() {
		var id, origin string
		if err := rows.Scan(&id, &origin); err != nil {
			return nil, fmt.Errorf("reading %s: %w", sqlgen.WritesTable, err)
		}
		origins[id] = origin
	}
	return origins, rows.Err()
}

func toItem(t sqlgen.Table, cols []string, raw []any) (connector.Item, error) {
	item := connector.Item{Fields: make(map[string]connector.Value, len(cols))}
	for i, col := range cols {
		if col == sqlgen.OriginColumn {
			if s, ok := raw[i].(string); ok {
				item.Origin = s
			}
			continue
		}
		item.Fields[col] = value(raw[i])
	}
	item.ID, _ = t.Coll.ItemID(item.Fields)
	if m := t.Coll.ModifiedField; m != "" {
		mt, err := modTime(item.Fields[m], raw[indexOf(cols, m)])
		if err != nil {
			return item, fmt.Errorf("%s: %w", m, err)
		}
		item.ModTime = mt
	}
	return item, nil
}

func indexOf(cols []string, col string) int {
	for i, c := range cols {
		if c == col {
			return i
		}
	}
	return -1
}

// value maps what the driver returns to a canonical Value.
func value(v any) connector.Value {
	switch v := v.(type) {
	case nil:
		return connector.Null()
	case int64:
		return connector.Int(v)
	case float64:
		return connector.Float(v)
	case bool:
		return connector.Bool(v)
	case time.Time:
		return connector.Time(v)
	case []byte:
		return connector.Bytes(v)
	case string:
		return connector.String(v)
	}
	return connector.String(fmt.Sprint(v))
}

// modTime reads a modification value: a DATETIME column, a text time, or
// an integer of Unix seconds.
func modTime(v connector.Value, raw any) (time.Time, error) {
	switch r := raw.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return r.UTC(), nil
	case int64:
		return time.Unix(r, 0).UTC(), nil
	case float64:
		return time.UnixMilli(int64(r * 1000)).UTC(), nil
	}
	return collection.ParseTime(v.Text)
}

// A watermark keeps the storage class of the value, so that it compares
// with the column the way max() ordered it.
func encodeWatermark(v any) (connector.Watermark, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case int64:
		return connector.Watermark("i:" + strconv.FormatInt(v, 10)), nil
	case float64:
		return connector.Watermark("f:" + strconv.FormatFloat(v, 'g', -1, 64)), nil
	case string:
		return connector.Watermark("s:" + v), nil
	case []byte:
		return connector.Watermark("s:" + string(v)), nil
	case time.Time:
		return connector.Watermark("s:" + v.Format("2006-01-02 15:04:05.999999999-07:00")), nil
	}
	return "", fmt.Errorf("unsupported modification value %T", v)
}

func decodeWatermark(w connector.Watermark) (any, error) {
	kind, text, ok := strings.Cut(string(w), ":")
	if ok {
		switch kind {
		case "i":
			return strconv.ParseInt(text, 10, 64)
		case "f":
			return strconv.ParseFloat(text, 64)
		case "s":
			return text, nil
		}
	}
	return nil, fmt.Errorf("watermark %q was not made by the sqlite connector", w)
}

// Write applies a batch in one transaction. A row that breaks a constraint
// fails alone: SQLite undoes just that statement and the batch goes on. An
// update or delete that matched more than one row is undone too, and fails
// its item (see runOnOneRow).
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	t, err := c.table(req.Entity)
	if err != nil {
		return nil, err
	}
	if len(req.Writes) > MaxBatch {
		return nil, fmt.Errorf("batch of %d writes exceeds the sqlite connector's MaxBatch %d", len(req.Writes), MaxBatch)
	}
	scope, err := t.Coll.ScopeValues(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("%s.scope: %w", c.cfg.entityPath(req.Entity), err)
	}
	now := sqlgen.Stamp(c.now())
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("starting a write to %s: %w", c.cfg.File, err)
	}
	defer tx.Rollback()
	if t.Writes != "" {
		if err := c.forgetWrites(ctx, tx, t, req); err != nil {
			return nil, err
		}
	}
	results := make([]connector.WriteResult, len(req.Writes))
	for i, w := range req.Writes {
		res, err := c.writeOne(ctx, tx, t, req.Scope, scope, w, now)
		if err != nil && !connector.IsItemError(err) {
			return nil, err
		}
		res.Err = err
		results[i] = res
		if t.Writes != "" && w.Op == connector.OpCreate && err == nil && w.Origin != "" {
			q, args := t.RecordWrite(req.Scope, res.ID, w.Origin)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return nil, fmt.Errorf("recording a create in %s: %w", sqlgen.WritesTable, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing a write to %s: %w", c.cfg.File, err)
	}
	return results, nil
}

// forgetWrites makes sure chainsync_writes exists and drops what it holds
// for the user's earlier Writes to the table: the engine has read them since.
func (c *Connector) forgetWrites(ctx context.Context, tx *sql.Tx, t sqlgen.Table, req connector.WriteRequest) error {
	if _, err := tx.ExecContext(ctx, sqlgen.WritesDDL(t.Writes)); err != nil {
		return connector.InvalidConfig(fmt.Errorf("%s.sqlite.file: chainsync records the rows it creates in table %s of %s and cannot create it: %w; "+
			"make the file and its directory writable, or add a column %s to table %q",
			c.cfg.side(), sqlgen.WritesTable, filepath.Base(c.cfg.File), err, sqlgen.OriginColumn, t.Coll.Name))
	}
	q, args := t.ForgetWrites(req.Scope)
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("clearing %s: %w", sqlgen.WritesTable, err)
	}
	return nil
}

func (c *Connector) writeOne(ctx context.Context, tx *sql.Tx, t sqlgen.Table, s connector.Scope, scope map[string]string,
	w connector.Write, now connector.Value) (connector.WriteResult, error) {
	switch w.Op {
	case connector.OpCreate:
		cols, vals, err := t.WriteColumns(w, scope, now)
		if err != nil {
			return connector.WriteResult{}, connector.NewItemError(w.ID, err)
		}
		q, args := t.Insert(cols, vals)
		res, _, err := c.run(ctx, tx, t, w, q, args)
		return res, err
	case connector.OpUpdate, connector.OpDelete:
		keys, err := decodeKeys(w.ID, len(t.Coll.KeyFields))
		if err != nil {
			return connector.WriteResult{}, connector.NewItemError(w.ID, err)
		}
		var q string
		var args []any
		if w.Op == connector.OpDelete {
			q, args, err = t.Delete(s, keys)
		} else {
			cols, vals, cerr := t.WriteColumns(w, scope, now)
			if cerr != nil {
				return connector.WriteResult{}, connector.NewItemError(w.ID, cerr)
			}
			if len(cols) == 0 { // nothing to change, but the row must exist
				cols, vals = []string{t.Coll.KeyFields[0]}, []any{keys[0]}
			}
			q, args, err = t.Update(s, keys, cols, vals)
		}
		if err != nil {
			return connector.WriteResult{}, err
		}
		return c.runOnOneRow(ctx, tx, t, w, q, args)
	}
	return connector.WriteResult{}, connector.NewItemError(w.ID, fmt.Errorf("unknown write op %v", w.Op))
}

// runOnOneRow runs an update or delete under a savepoint and undoes it when
// it matched more than one row: one item is one row, whatever the where
// clause lets through.
func (c *Connector) runOnOneRow(ctx context.Context, tx *sql.Tx, t sqlgen.Table, w connector.Write, q string, args []any) (connector.WriteResult, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT chainsync_row"); err != nil {
		return connector.WriteResult{}, fmt.Errorf("writing item %q: %w", w.ID, err)
	}
	res, n, err := c.run(ctx, tx, t, w, q, args)
	if err != nil && !connector.IsItemError(err) {
		return res, err
	}
	if n > 1 {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO chainsync_row"); rerr != nil {
			return connector.WriteResult{}, fmt.Errorf("undoing item %q: %w", w.ID, rerr)
		}
		res, err = connector.WriteResult{ID: w.ID}, connector.NewItemError(w.ID, sqlgen.ManyRowsError(w.Op, n))
	}
	if _, rerr := tx.ExecContext(ctx, "RELEASE chainsync_row"); rerr != nil {
		return connector.WriteResult{}, fmt.Errorf("writing item %q: %w", w.ID, rerr)
	}
	return res, err
}

// run executes one write's statement and returns its result and the number
// of rows it changed.
func (c *Connector) run(ctx context.Context, tx *sql.Tx, t sqlgen.Table, w connector.Write, q string, args []any) (connector.WriteResult, int64, error) {
	if w.Op == connector.OpDelete {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return connector.WriteResult{}, 0, classify(w.ID, err)
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return connector.WriteResult{ID: w.ID}, 0, connector.NewItemError(w.ID, connector.ErrNotFound)
		}
		return connector.WriteResult{ID: w.ID}, n, nil
	}
	// RETURNING gives one row per row written, as a read returns it.
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return connector.WriteResult{ID: w.ID}, 0, classify(w.ID, err)
	}
	defer rows.Close()
	cols := t.SelectColumns(nil)
	raw := make([]any, len(cols))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var n int64
	for rows.Next() {
		n++
		if n == 1 {
			if err := rows.Scan(ptrs...); err != nil {
				return connector.WriteResult{ID: w.ID}, n, classify(w.ID, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return connector.WriteResult{ID: w.ID}, n, classify(w.ID, err)
	}
	if n == 0 {
		return connector.WriteResult{ID: w.ID}, 0, connector.NewItemError(w.ID, connector.ErrNotFound)
	}
	// An unreadable modification value fails the next read as an item
	// error; the write itself was made.
	item, _ := toItem(t, cols, raw)
	return connector.WriteResult{ID: item.ID, ModTime: item.ModTime, Stored: item.Fields}, n, nil
}

// decodeKeys splits an ID into the values bound for its key columns.
func decodeKeys(id string, n int) ([]any, error) {
	parts, err := collection.DecodeID(id, n)
	if err != nil {
		return nil, err
	}
	keys := make([]any, n)
	for i, p := range parts {
		keys[i] = p
	}
	return keys, nil
}

// classify tells a row's own failure (a constraint, a type a STRICT table
// refuses, a value too big) from a failure of the database.
func classify(id string, err error) error {
	var serr *sqlite.Error
	if errors.As(err, &serr) {
		switch serr.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
			return connector.NewItemError(id, err)
		}
	}
	return fmt.Errorf("writing item %q: %w", id, err)
}
