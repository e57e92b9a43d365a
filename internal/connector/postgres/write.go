package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
)

// op is one Write turned into SQL.
type op struct {
	write connector.Write
	cols  []string
	vals  []any
	sql   string
	args  []any
	// copyID is set for a create that names its whole key, which COPY can
	// load without returning anything.
	copyID string
}

// errReplay says a row broke a constraint in the fast path: the batch must
// be replayed row by row to find which.
var errReplay = errors.New("a row failed; replaying the batch row by row")

// Write applies a batch in one transaction (see the package doc). An update
// or delete that matched more than one row is a row's failure like a broken
// constraint: the batch is replayed and only that write is undone.
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	t, err := c.table(req.Entity)
	if err != nil {
		return nil, err
	}
	if len(req.Writes) > MaxBatch {
		return nil, fmt.Errorf("batch of %d writes exceeds the postgres connector's MaxBatch %d", len(req.Writes), MaxBatch)
	}
	scope, err := t.Coll.ScopeValues(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("%s.scope: %w", c.cfg.entityPath(req.Entity), err)
	}
	if t.Writes != "" {
		if err := c.ensureWrites(ctx, t); err != nil {
			return nil, err
		}
	}
	now := sqlgen.Stamp(c.now())
	results := make([]connector.WriteResult, len(req.Writes))
	ops := make([]*op, len(req.Writes))
	for i, w := range req.Writes {
		o, err := c.prepare(t, req.Scope, scope, w, now)
		if err != nil {
			results[i] = connector.WriteResult{ID: w.ID, Err: err}
			continue
		}
		ops[i] = o
	}
	fast := make([]connector.WriteResult, len(results))
	copy(fast, results)
	err = c.writeFast(ctx, t, req.Scope, ops, fast, now)
	if err == nil {
		return fast, nil
	}
	if !errors.Is(err, errReplay) {
		return nil, err
	}
	if err := c.writeOneByOne(ctx, t, req.Scope, ops, results); err != nil {
		return nil, err
	}
	return results, nil
}

func (c *Connector) prepare(t table, s connector.Scope, scope map[string]string, w connector.Write, now connector.Value) (*op, error) {
	o := &op{write: w}
	var err error
	switch w.Op {
	case connector.OpCreate:
		o.cols, o.vals, err = t.WriteColumns(w, scope, now)
		if err != nil {
			return nil, connector.NewItemError(w.ID, err)
		}
		// A create COPY loads needs no statement of its own unless the batch is replayed.
		if o.copyID = copyableID(t, o.cols, o.vals); o.copyID == "" {
			o.sql, o.args = t.Insert(o.cols, o.vals)
		}
	case connector.OpUpdate:
		keys, err := decodeKeys(w.ID, len(t.Coll.KeyFields))
		if err != nil {
			return nil, connector.NewItemError(w.ID, err)
		}
		o.cols, o.vals, err = t.WriteColumns(w, scope, now)
		if err != nil {
			return nil, connector.NewItemError(w.ID, err)
		}
		if len(o.cols) == 0 { // nothing to change, but the row must exist
			o.cols, o.vals = []string{t.Coll.KeyFields[0]}, []any{keys[0]}
		}
		o.sql, o.args, err = t.Update(s, keys, o.cols, o.vals)
		if err != nil {
			return nil, err
		}
	case connector.OpDelete:
		keys, err := decodeKeys(w.ID, len(t.Coll.KeyFields))
		if err != nil {
			return nil, connector.NewItemError(w.ID, err)
		}
		o.sql, o.args, err = t.Delete(s, keys)
		if err != nil {
			return nil, err
		}
	default:
		return nil, connector.NewItemError(w.ID, fmt.Errorf("unknown write op %v", w.Op))
	}
	return o, nil
}

// copyableID is the ID of a create that sets every key column, "" when the
// server must assign part of the key (the create then needs RETURNING).
func copyableID(t table, cols []string, vals []any) string {
	texts := make([]string, len(t.Coll.KeyFields))
	for i, k := range t.Coll.KeyFields {
		for j, c := range cols {
			if c == k {
				if s, ok := vals[j].(string); ok {
					texts[i] = s
				}
			}
		}
	}
	id, err := collection.EncodeID(texts)
	if err != nil {
		return ""
	}
	return id
}

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

// writeFast runs updates, deletes and server-keyed creates as one pipelined
// batch, then COPYs the other creates, all in one transaction.
func (c *Connector) writeFast(ctx context.Context, t table, s connector.Scope, ops []*op, results []connector.WriteResult, now connector.Value) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return c.endpointError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	batch := &pgx.Batch{}
	var queued []int
	for i, o := range ops {
		if o == nil || o.copyID != "" {
			continue
		}
		batch.Queue(o.sql, o.args...)
		queued = append(queued, i)
	}
	if len(queued) > 0 {
		br := tx.SendBatch(ctx, batch)
		for _, i := range queued {
			res, err := c.runOne(t, ops[i], br.Exec, br.Query)
			if errors.Is(err, connector.ErrNotFound) {
				// A missing row aborts nothing: report it and go on.
				res.Err = err
			} else if err != nil {
				// A row's failure, or a write that matched more than
				// one row: the replay undoes just that one.
				br.Close()
				if connector.IsItemError(err) {
					return errReplay
				}
				return err
			}
			results[i] = res
		}
		if err := br.Close(); err != nil {
			return c.classifyBatch(err)
		}
	}

	groups := map[string][]int{}
	var order []string
	for i, o := range ops {
		if o == nil || o.copyID == "" {
			continue
		}
		key := strings.Join(o.cols, "\x00")
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	for _, key := range order {
		idx := groups[key]
		var buf bytes.Buffer
		for _, i := range idx {
			for j, v := range ops[i].vals {
				if j > 0 {
					buf.WriteByte('\t')
				}
				appendCopyText(&buf, v)
			}
			buf.WriteByte('\n')
		}
		cols := make([]string, len(ops[idx[0]].cols))
		for j, col := range ops[idx[0]].cols {
			cols[j] = sqlgen.Quote(col)
		}
		stmt := "COPY " + t.QualifiedName + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, &buf, stmt); err != nil {
			return c.classifyBatch(err)
		}
		for _, i := range idx {
			results[i] = connector.WriteResult{ID: ops[i].copyID, ModTime: writtenModTime(t, ops[i], now)}
		}
	}
	if err := c.readBack(ctx, tx, t, s, ops, results); err != nil {
		return err
	}
	if t.Writes != "" {
		if err := c.recordCreates(ctx, tx, t, s, ops, results); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return c.classifyBatch(err)
	}
	return nil
}

// readBack reads the rows a batch created or updated, in its transaction,
// as a read returns them (text results by column type), for WriteResult.Stored
// (COPY returns nothing, and RETURNING in a pipeline cannot ask for text
// results). A row whose key reads back in another form ("007" into an integer
// column) is not found by its ID and keeps what was written.
func (c *Connector) readBack(ctx context.Context, tx pgx.Tx, t table, s connector.Scope, ops []*op, results []connector.WriteResult) error {
	byID := map[string]int{}
	keys := make([][]string, len(t.Coll.KeyFields)) // by key column, as unnest takes them
	for i, o := range ops {
		if o == nil || o.write.Op == connector.OpDelete || results[i].Err != nil {
			continue
		}
		parts, err := collection.DecodeID(results[i].ID, len(t.Coll.KeyFields))
		if err != nil {
			continue
		}
		byID[results[i].ID] = i
		for j, p := range parts {
			keys[j] = append(keys[j], p)
		}
	}
	if len(byID) == 0 {
		return nil
	}
	// One array per key column, each text cast to its column's type so the
	// key's index serves the match.
	arrays, casts, args := make([]string, len(keys)), make([]string, len(keys)), make([]any, len(keys))
	for j := range keys {
		arrays[j], casts[j], args[j] = "%s::text[]", fmt.Sprintf("k%d::%s", j, t.keyTypes[j]), keys[j]
	}
	names := make([]string, len(keys))
	for j := range names {
		names[j] = fmt.Sprintf("k%d", j)
	}
	cond := "(" + quoteAll(t.Coll.KeyFields) + ") IN (SELECT " + strings.Join(casts, ", ") + " FROM unnest(" +
		strings.Join(arrays, ", ") + ") AS keys(" + strings.Join(names, ", ") + "))"
	cols := t.SelectColumns(nil)
	q, qargs, err := t.SelectMatching(s, cols, cond, args...)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, qargs...)...)
	if err != nil {
		return c.endpointError(fmt.Errorf("reading back rows written to %s: %w", t.Coll.Name, err))
	}
	defer rows.Close()
	oids := make([]uint32, len(cols))
	for i, fd := range rows.FieldDescriptions() {
		oids[i] = fd.DataTypeOID
	}
	for rows.Next() {
		item, _ := toItem(t, cols, oids, rows.RawValues())
		if i, ok := byID[item.ID]; ok {
			results[i].Stored = item.Fields
		}
	}
	if err := rows.Err(); err != nil {
		return c.endpointError(fmt.Errorf("reading back rows written to %s: %w", t.Coll.Name, err))
	}
	return nil
}

func quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = sqlgen.Quote(c)
	}
	return strings.Join(q, ", ")
}

// classifyBatch turns a row's failure into errReplay and anything else into
// an endpoint failure.
func (c *Connector) classifyBatch(err error) error {
	if isItemFailure(err) {
		return errReplay
	}
	return c.endpointError(err)
}

// writeOneByOne replays a batch with a savepoint around each row, so the
// rows that break constraints fail alone and the rest are applied.
func (c *Connector) writeOneByOne(ctx context.Context, t table, s connector.Scope, ops []*op, results []connector.WriteResult) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return c.endpointError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for i, o := range ops {
		if o == nil {
			continue
		}
		if o.sql == "" {
			o.sql, o.args = t.Insert(o.cols, o.vals)
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT chainsync_row"); err != nil {
			return c.endpointError(err)
		}
		res, err := c.runOne(t, o,
			func() (pgconn.CommandTag, error) { return tx.Exec(ctx, o.sql, o.args...) },
			func() (pgx.Rows, error) { return tx.Query(ctx, o.sql, o.args...) })
		if err != nil && !connector.IsItemError(err) {
			return err
		}
		if err != nil && !errors.Is(err, connector.ErrNotFound) {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT chainsync_row"); rerr != nil {
				return c.endpointError(rerr)
			}
		} else if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT chainsync_row"); err != nil {
			return c.endpointError(err)
		}
		res.Err = err
		results[i] = res
	}
	if err := c.readBack(ctx, tx, t, s, ops, results); err != nil {
		return err
	}
	if t.Writes != "" {
		if err := c.recordCreates(ctx, tx, t, s, ops, results); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return c.endpointError(err)
	}
	return nil
}

// runOne executes one op, a delete through exec and anything else through
// query, and reads its result: an item error for a row's own failure, a
// missing row or an update or delete that matched more than one row (one
// item is one row, whatever the where clause lets through; the caller
// undoes it), any other error for the endpoint.
func (c *Connector) runOne(t table, o *op, exec func() (pgconn.CommandTag, error), query func() (pgx.Rows, error)) (connector.WriteResult, error) {
	id := o.write.ID
	if o.write.Op == connector.OpDelete {
		tag, err := exec()
		if err != nil {
			return connector.WriteResult{ID: id}, c.rowError(id, err)
		}
		switch n := tag.RowsAffected(); {
		case n == 0:
			return connector.WriteResult{ID: id}, connector.NewItemError(id, connector.ErrNotFound)
		case n > 1:
			return connector.WriteResult{ID: id}, connector.NewItemError(id, sqlgen.ManyRowsError(o.write.Op, n))
		}
		return connector.WriteResult{ID: id}, nil
	}
	// RETURNING gives one row per row written: the key columns, then the
	// modification column.
	n := len(t.Coll.KeyFields)
	if t.Coll.ModifiedField != "" {
		n++
	}
	returned := make([]*string, n)
	ptrs := make([]any, n)
	for i := range ptrs {
		ptrs[i] = &returned[i]
	}
	rows, err := query()
	if err != nil {
		return connector.WriteResult{ID: id}, c.rowError(id, err)
	}
	var written int64
	for rows.Next() {
		written++
		if written == 1 {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return connector.WriteResult{ID: id}, c.rowError(id, err)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return connector.WriteResult{ID: id}, c.rowError(id, err)
	}
	switch {
	case written == 0:
		return connector.WriteResult{ID: id}, connector.NewItemError(id, connector.ErrNotFound)
	case written > 1:
		return connector.WriteResult{ID: id}, connector.NewItemError(id, sqlgen.ManyRowsError(o.write.Op, written))
	}
	texts := make([]string, len(t.Coll.KeyFields))
	for i := range texts {
		if returned[i] != nil {
			texts[i] = *returned[i]
		}
	}
	var res connector.WriteResult
	res.ID, _ = collection.EncodeID(texts)
	if t.Coll.ModifiedField != "" && returned[n-1] != nil {
		res.ModTime, _ = collection.ParseTime(*returned[n-1])
	}
	return res, nil
}

func (c *Connector) rowError(id string, err error) error {
	if isItemFailure(err) {
		return connector.NewItemError(id, err)
	}
	return c.endpointError(fmt.Errorf("writing item %q: %w", id, err))
}

// isItemFailure: data exceptions (22), integrity violations (23) and
// exceptions raised by triggers (P0001) concern the row, not the server.
func isItemFailure(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23") || pgErr.Code == "P0001"
}

// writtenModTime is the modification time a COPY-loaded row got: the value
// the write set, or the stamp.
func writtenModTime(t table, o *op, now connector.Value) time.Time {
	if t.Coll.ModifiedField == "" {
		return time.Time{}
	}
	for j, col := range o.cols {
		if col == t.Coll.ModifiedField {
			if s, ok := o.vals[j].(string); ok {
				mt, _ := modTime(connector.String(s))
				return mt
			}
		}
	}
	mt, _ := now.AsTime()
	return mt
}

func (c *Connector) writesTable() string {
	return sqlgen.Quote(c.cfg.schema()) + "." + sqlgen.Quote(sqlgen.WritesTable)
}

// recordedOrigins are the origins chainsync_writes holds for the user's rows
// of a table without an origin column: those of the last Write's creates.
func (c *Connector) recordedOrigins(ctx context.Context, t table, s connector.Scope) (map[string]string, error) {
	if t.Writes == "" {
		return nil, nil
	}
	var exists bool
	if err := c.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.Writes).Scan(&exists); err != nil || !exists {
		return nil, c.endpointOrNil(err)
	}
	// A user who may not read the table gets no proofs: reading needs only
	// those of this user's own writes, and a write fails on the same grant,
	// saying what to grant.
	q, args := t.SelectWrites(s)
	rows, err := c.pool.Query(ctx, q, args...)
	if isPermissionDenied(err) {
		return nil, nil
	}
	if err != nil {
		return nil, c.writesError(fmt.Errorf("reading %s: %w", t.Writes, err), t)
	}
	origins := map[string]string{}
	var id, origin string
	_, err = pgx.ForEachRow(rows, []any{&id, &origin}, func() error {
		origins[id] = origin
		return nil
	})
	if isPermissionDenied(err) {
		return nil, nil
	}
	if err != nil {
		return nil, c.writesError(fmt.Errorf("reading %s: %w", t.Writes, err), t)
	}
	return origins, nil
}

func (c *Connector) endpointOrNil(err error) error {
	if err == nil {
		return nil
	}
	return c.endpointError(err)
}

// ensureWrites creates chainsync_writes when it is missing, before the
// first write of a table without an origin column.
func (c *Connector) ensureWrites(ctx context.Context, t table) error {
	c.writesMu.Lock()
	defer c.writesMu.Unlock()
	if c.writesReady {
		return nil
	}
	var exists bool
	if err := c.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.Writes).Scan(&exists); err != nil {
		return c.endpointError(err)
	}
	if !exists {
		// CREATE ... IF NOT EXISTS still needs the right to create, so it
		// only runs when the table is missing.
		if _, err := c.pool.Exec(ctx, sqlgen.WritesDDL(t.Writes)); err != nil && !isCreatedMeanwhile(err) {
			return c.writesError(err, t)
		}
	}
	c.writesReady = true
	return nil
}

// isCreatedMeanwhile: another process created the table between our check
// and our CREATE.
func isCreatedMeanwhile(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "23505")
}

func isPermissionDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// writesError names what to grant, or the column to add instead, when the
// user may not create or use chainsync_writes.
func (c *Connector) writesError(err error, t table) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		user := sqlgen.Quote(c.cfg.User)
		return connector.InvalidConfig(fmt.Errorf("%s: chainsync records the rows it creates in table %s, which user %q may not create or use (%s): "+
			"GRANT CREATE ON SCHEMA %s TO %s; or create the table (%s) and GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s; "+
			"or add a column %s text to %s",
			c.cfg.side()+".postgres", t.Writes, c.cfg.User, pgErr.Message, sqlgen.Quote(c.cfg.schema()), user,
			strings.Join(strings.Fields(sqlgen.WritesDDL(t.Writes)), " "), t.Writes, user, sqlgen.OriginColumn, t.QualifiedName))
	}
	return c.endpointError(err)
}

// recordCreates replaces, in the batch's transaction, what chainsync_writes
// held for the user's earlier writes to the table with the origins of the
// rows this batch created.
func (c *Connector) recordCreates(ctx context.Context, tx pgx.Tx, t table, s connector.Scope, ops []*op, results []connector.WriteResult) error {
	q, args := t.ForgetWrites(s)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return c.writesError(fmt.Errorf("clearing %s: %w", t.Writes, err), t)
	}
	var ids, origins []string
	for i, o := range ops {
		if o != nil && o.write.Op == connector.OpCreate && results[i].Err == nil && o.write.Origin != "" {
			ids, origins = append(ids, results[i].ID), append(origins, o.write.Origin)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// The scope's rows were just deleted and its writes take turns (the
	// engine holds the user's lock), so nothing conflicts: COPY is enough.
	rows := make([][]any, len(ids))
	tbl, scope := t.QualifiedName, s.Key()
	for i := range ids {
		rows[i] = []any{tbl, scope, ids[i], origins[i]}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{c.cfg.schema(), sqlgen.WritesTable}, []string{"tbl", "scope", "row_id", "origin"}, pgx.CopyFromRows(rows))
	if err != nil {
		return c.writesError(fmt.Errorf("recording creates in %s: %w", t.Writes, err), t)
	}
	return nil
}
