package csv

import (
	"bufio"
	"context"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/delta"
)

// Write applies a batch by rewriting the entity's file: rows of the batch's
// updates and deletes (within the user's scope) are changed or dropped,
// every other row is copied unchanged, and creates are appended. The new
// file replaces the old one atomically.
//
// Other cycles may write the same file at the same time (other users' Jobs,
// or other users in this one), so the whole rewrite happens under the
// file's lock (see lockFile) and starts from the file as it is once the lock
// is held: the batch is applied to what other writers left, never to an
// earlier read. An update or delete of a row that is no longer there, or no
// longer the user's, fails with ErrNotFound; a create whose key another
// writer has taken meanwhile fails as existing. Both are item errors, as
// they would be had the writes come one after the other.
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	coll, err := c.entity(req.Entity)
	if err != nil {
		return nil, err
	}
	path := c.cfg.entityPath(req.Entity)
	scope, err := coll.ScopeValues(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("%s.scope: %w", path, err)
	}
	unlock, err := lockFile(ctx, c.cfg.lockFile(coll))
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := c.now().UTC()
	results := make([]connector.WriteResult, len(req.Writes))

	var old *fileReader
	var hdr header
	switch fr, err := c.openReader(path, coll); {
	case err == nil:
		old = fr
		defer old.f.Close()
		hdr = fr.header
	case errors.Is(err, fs.ErrNotExist):
		hdr = newHeader(newFileColumns(coll, req.Writes))
	default:
		return nil, fmt.Errorf("opening %s: %w", coll.Name, err)
	}

	// Index the batch. Memory is proportional to the batch, not the file.
	byID := map[string]int{} // update or delete, by ID
	for i, w := range req.Writes {
		switch w.Op {
		case connector.OpUpdate, connector.OpDelete:
			if _, dup := byID[w.ID]; dup {
				results[i].Err = connector.NewItemError(w.ID, errors.New("the batch changes this item twice"))
				continue
			}
			results[i].ID = w.ID
			if w.Op == connector.OpUpdate {
				if err := hdr.checkFields(w.Fields, coll.Name); err != nil {
					results[i].Err = connector.NewItemError(w.ID, err)
					continue
				}
			}
			byID[w.ID] = i
			results[i].Err = connector.NewItemError(w.ID, connector.ErrNotFound) // until found
		case connector.OpCreate:
			if err := hdr.checkFields(w.Fields, coll.Name); err != nil {
				results[i].Err = connector.NewItemError(w.ID, err)
			}
		default:
			results[i].Err = connector.NewItemError(w.ID, fmt.Errorf("unknown write op %v", w.Op))
		}
	}
	creates := map[string]int{} // create, by the ID its key fields give
	for i, w := range req.Writes {
		if w.Op != connector.OpCreate || results[i].Err != nil {
			continue
		}
		id, err := c.createID(coll, scope, w.Fields)
		if err == nil {
			if _, dup := creates[id]; dup {
				err = fmt.Errorf("another create in the batch has the key %s", id)
			}
		}
		if err != nil {
			results[i].Err = connector.NewItemError(id, err)
			continue
		}
		creates[id] = i
		results[i].ID = id
	}

	dir := filepath.Dir(c.cfg.file(coll))
	tmp, err := os.CreateTemp(dir, "."+coll.Name+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file for %s: %w", coll.Name, err)
	}
	mode := fs.FileMode(0o644)
	if old != nil {
		if fi, err := old.f.Stat(); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("creating a temporary file for %s: %w", coll.Name, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	buf := bufio.NewWriterSize(tmp, 256<<10)
	encoded := encodingWriter(buf, c.enc)
	w := stdcsv.NewWriter(encoded)
	w.Comma = c.cfg.delimiter()
	if err := w.Write(hdr.names); err != nil {
		return nil, fmt.Errorf("writing %s: %w", coll.Name, err)
	}

	if old != nil {
		if err := c.rewriteRows(ctx, old, w, coll, scope, req.Writes, byID, creates, results, now); err != nil {
			return nil, err
		}
	}
	for i, wr := range req.Writes {
		if wr.Op != connector.OpCreate || results[i].Err != nil {
			continue
		}
		rec := make([]string, len(hdr.names))
		c.apply(rec, hdr, coll, wr.Fields, scope, now, &results[i])
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("writing %s: %w", coll.Name, err)
		}
	}

	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", coll.Name, err)
	}
	if err := encoded.Close(); err != nil {
		return nil, fmt.Errorf("encoding %s as %s: %w", coll.Name, c.cfg.Encoding, err)
	}
	if err := buf.Flush(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", coll.Name, err)
	}
	if err := c.recordCreates(coll, req.Scope, req.Writes, results); err != nil {
		return nil, err
	}
	if err := replaceFile(tmp, c.cfg.file(coll)); err != nil {
		return nil, err
	}
	committed = true
	return results, nil
}

// rewriteRows copies the old file's rows to w, applying the batch's updates
// and deletes to the user's rows, and fails the creates whose key is taken.
func (c *Connector) rewriteRows(ctx context.Context, old *fileReader, w *stdcsv.Writer, coll collection.Collection,
	scope map[string]string, writes []connector.Write, byID, creates map[string]int, results []connector.WriteResult, now time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := old.r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// Copying a row we cannot parse would need its raw bytes;
			// dropping it would lose someone's data. Refuse instead.
			return fmt.Errorf("reading %s to rewrite it: %w", coll.Name, err)
		}
		if len(rec) == len(old.header.names) {
			// Keys identify items within the whole file, so a create
			// clashes with any user's row, not only this user's.
			id := recordID(rec, old.header, coll)
			if i, ok := creates[id]; ok && id != "" {
				results[i].Err = connector.NewItemError(id, errors.New("an item with this key already exists"))
				delete(creates, id)
			}
			if i, ok := byID[id]; ok && id != "" && old.inScope(rec, scope) {
				results[i].Err = nil
				if writes[i].Op == connector.OpDelete {
					continue
				}
				c.apply(rec, old.header, coll, writes[i].Fields, scope, now, &results[i])
			}
		}
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("writing %s: %w", coll.Name, err)
		}
	}
}

// apply writes fields into rec, keeps the scope columns on the user,
// stamps the modified column when the write does not set it, and records
// the resulting ID and modification time.
func (c *Connector) apply(rec []string, hdr header, coll collection.Collection, fields map[string]connector.Value,
	scope map[string]string, now time.Time, res *connector.WriteResult) {
	for name, v := range fields {
		rec[hdr.index[name]] = v.Text
	}
	for field, v := range scope {
		rec[hdr.index[field]] = v
	}
	if coll.ModifiedField != "" {
		i := hdr.index[coll.ModifiedField]
		if _, set := fields[coll.ModifiedField]; !set {
			rec[i] = connector.Time(now).Text
		}
		if t, err := collection.ParseTime(rec[i]); err == nil {
			res.ModTime = t
		}
	}
	res.ID = recordID(rec, hdr, coll)
}

// recordID is the ID of a row: "" when a key cell is missing (a short
// row), empty or only blanks, all of which make a null key.
func recordID(rec []string, hdr header, coll collection.Collection) string {
	if len(coll.KeyFields) == 1 {
		j := hdr.index[coll.KeyFields[0]]
		if j >= len(rec) || delta.Blank(rec[j]) {
			return ""
		}
		return rec[j]
	}
	texts := make([]string, len(coll.KeyFields))
	for i, k := range coll.KeyFields {
		j := hdr.index[k]
		if j >= len(rec) || delta.Blank(rec[j]) {
			return ""
		}
		texts[i] = rec[j]
	}
	id, _ := collection.EncodeID(texts)
	return id
}

// createID is the ID a create will have. The scope columns are filled in
// from the user's identity, so a create naming another user is refused.
func (c *Connector) createID(coll collection.Collection, scope map[string]string, fields map[string]connector.Value) (string, error) {
	for field, want := range scope {
		if v, ok := fields[field]; ok && !v.IsNull() && v.Text != want {
			return "", fmt.Errorf("scope field %s is %q, not the user's %q", field, v.Text, want)
		}
	}
	merged := make(map[string]connector.Value, len(fields)+len(scope))
	for k, v := range fields {
		merged[k] = v
	}
	for k, v := range scope {
		merged[k] = connector.String(v)
	}
	id, err := coll.ItemID(merged)
	if err != nil {
		return "", fmt.Errorf("a create needs every key field (%v): %w", coll.KeyFields, err)
	}
	return id, nil
}

func (h header) checkFields(fields map[string]connector.Value, file string) error {
	for name := range fields {
		if _, ok := h.index[name]; !ok {
			return fmt.Errorf("column %q is not in the header of %s", name, file)
		}
	}
	return nil
}

// newFileColumns is the header of a file the first write creates: key
// fields, then scope and modification fields, then the rest by name.
func newFileColumns(coll collection.Collection, writes []connector.Write) []string {
	cols := coll.Fields()
	var rest []string
	for _, w := range writes {
		for name := range w.Fields {
			if !slices.Contains(cols, name) && !slices.Contains(rest, name) {
				rest = append(rest, name)
			}
		}
	}
	slices.Sort(rest)
	return slices.Compact(append(cols, rest...))
}

// replaceFile makes tmp durable and renames it over dst, then syncs the
// directory so the rename itself survives a crash.
func replaceFile(tmp *os.File, dst string) error {
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		defer d.Close()
		if err := d.Sync(); err != nil {
			return fmt.Errorf("syncing the directory of %s: %w", dst, err)
		}
	}
	return nil
}
