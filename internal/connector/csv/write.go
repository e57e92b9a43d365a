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
	"strings"
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
//
// With Config.Shared, the batch waits for the other cycles of the Job and
// goes into the file in one rewrite with theirs (see Shared).
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	coll, err := c.entity(req.Entity)
	if err != nil {
		return nil, err
	}
	b, err := c.newBatch(coll, req)
	if err != nil {
		return nil, err
	}
	if c.cfg.Shared != nil {
		return c.cfg.Shared.write(ctx, c, c.cfg.entityPath(req.Entity), coll, b)
	}
	if _, err := c.rewrite(ctx, c.cfg.entityPath(req.Entity), coll, []*batch{b}, c.memo(coll)); err != nil {
		return nil, err
	}
	return b.results, nil
}

// batch is one Write's batch on its way into the file, alone or with other users' batches of
// the same Job.
type batch struct {
	scope   connector.Scope
	values  map[string]string // the scope's columns
	writes  []connector.Write
	results []connector.WriteResult
}

func (c *Connector) newBatch(coll collection.Collection, req connector.WriteRequest) (*batch, error) {
	scope, err := coll.ScopeValues(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("%s.scope: %w", c.cfg.entityPath(req.Entity), err)
	}
	return &batch{scope: req.Scope, values: scope, writes: req.Writes, results: make([]connector.WriteResult, len(req.Writes))}, nil
}

// change is an update or delete of a batch, by the ID it names.
type change struct {
	b *batch
	i int
}

// rewritten says what a rewrite replaced: the file and origins file as they were when the lock
// was taken, and as the rewrite left them. A Job's shared read of the file (see Shared) uses it
// to tell its own writes from other writers'.
type rewritten struct {
	before, after fileIDs
}

// rewrite applies batches, in order, in one rewrite of the file under its lock. Each batch's
// results are filled in; the error is for the file as a whole.
func (c *Connector) rewrite(ctx context.Context, path string, coll collection.Collection, batches []*batch, memo *rewriteMemo) (rewritten, error) {
	var done rewritten
	unlock, err := lockFile(ctx, c.cfg.lockFile(coll))
	if err != nil {
		return done, err
	}
	defer unlock()
	now := c.now().UTC()
	done.before = c.fileIDs(coll)

	var old *fileReader
	var hdr header
	switch fr, err := c.openReader(path, coll); {
	case err == nil:
		old = fr
		defer old.f.Close()
		hdr = fr.header
	case errors.Is(err, fs.ErrNotExist):
		var all []connector.Write
		for _, b := range batches {
			all = append(all, b.writes...)
		}
		hdr = newHeader(newFileColumns(coll, all))
	default:
		return done, fmt.Errorf("opening %s: %w", coll.Name, err)
	}

	// Index the batches. Memory is proportional to the batches, not the file.
	changes := map[string][]change{} // update or delete, by ID
	creates := map[string]change{}   // create, by the ID its key fields give
	for _, b := range batches {
		mine := map[string]bool{}
		for i, w := range b.writes {
			res := &b.results[i]
			switch w.Op {
			case connector.OpUpdate, connector.OpDelete:
				if mine[w.ID] {
					res.Err = connector.NewItemError(w.ID, errors.New("the batch changes this item twice"))
					continue
				}
				res.ID = w.ID
				if w.Op == connector.OpUpdate {
					if err := hdr.checkFields(w.Fields, coll.Name); err != nil {
						res.Err = connector.NewItemError(w.ID, err)
						continue
					}
				}
				mine[w.ID] = true
				changes[w.ID] = append(changes[w.ID], change{b, i})
				res.Err = connector.NewItemError(w.ID, connector.ErrNotFound) // until found
			case connector.OpCreate:
				if err := hdr.checkFields(w.Fields, coll.Name); err != nil {
					res.Err = connector.NewItemError(w.ID, err)
				}
			default:
				res.Err = connector.NewItemError(w.ID, fmt.Errorf("unknown write op %v", w.Op))
			}
		}
		for i, w := range b.writes {
			if w.Op != connector.OpCreate || b.results[i].Err != nil {
				continue
			}
			id, err := c.createID(coll, b.values, w.Fields)
			if err == nil {
				if other, dup := creates[id]; dup && other.b == b {
					err = fmt.Errorf("another create in the batch has the key %s", id)
				} else if dup {
					// Another user's create in the same rewrite came first: as if its Write
					// had come before this one.
					err = errors.New("an item with this key already exists")
				}
			}
			if err != nil {
				b.results[i].Err = connector.NewItemError(id, err)
				continue
			}
			creates[id] = change{b, i}
			b.results[i].ID = id
		}
	}

	appending := old != nil && len(changes) == 0 && memo.holds(done.before.file, creates) && c.appendSafe()
	keys := memo.start(appending)

	dir := filepath.Dir(c.cfg.file(coll))
	tmp, err := os.CreateTemp(dir, "."+coll.Name+".*.tmp")
	if err != nil {
		return done, fmt.Errorf("creating a temporary file for %s: %w", coll.Name, err)
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
		return done, fmt.Errorf("creating a temporary file for %s: %w", coll.Name, err)
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
	switch {
	case appending:
		// Only creates, none of whose keys the file holds, into the file as the last rewrite
		// left it: its bytes are copied as they are, which costs a fraction of parsing them, so
		// that writing a large file in batches is not quadratic.
		if err := copyFile(tmp, old.f); err != nil {
			return done, fmt.Errorf("copying %s: %w", coll.Name, err)
		}
	default:
		if err := w.Write(hdr.names); err != nil {
			return done, fmt.Errorf("writing %s: %w", coll.Name, err)
		}
		if old != nil {
			if err := c.rewriteRows(ctx, old, w, coll, changes, creates, now, keys); err != nil {
				return done, err
			}
		}
	}
	for _, b := range batches {
		for i, wr := range b.writes {
			if wr.Op != connector.OpCreate || b.results[i].Err != nil {
				continue
			}
			rec := make([]string, len(hdr.names))
			c.apply(rec, hdr, coll, wr.Fields, b.values, now, &b.results[i])
			keys.add(b.results[i].ID)
			if err := w.Write(rec); err != nil {
				return done, fmt.Errorf("writing %s: %w", coll.Name, err)
			}
		}
	}

	w.Flush()
	if err := w.Error(); err != nil {
		return done, fmt.Errorf("writing %s: %w", coll.Name, err)
	}
	if err := encoded.Close(); err != nil {
		return done, fmt.Errorf("encoding %s as %s: %w", coll.Name, c.cfg.Encoding, err)
	}
	if err := buf.Flush(); err != nil {
		return done, fmt.Errorf("writing %s: %w", coll.Name, err)
	}
	if err := c.recordCreates(coll, batches); err != nil {
		return done, err
	}
	if err := replaceFile(tmp, c.cfg.file(coll)); err != nil {
		return done, err
	}
	committed = true
	done.after = c.fileIDs(coll)
	memo.keep(done.after.file, keys)
	rewrote(c.cfg.file(coll), len(batches), appending)
	return done, nil
}

// copyFile copies f from its start to the end of tmp, ending it with a line break.
func copyFile(tmp, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(tmp, f)
	if err != nil || n == 0 {
		return err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, n-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		_, err = tmp.Write([]byte{'\n'})
	}
	return err
}

// appendSafe says whether rows can be appended to the file's bytes: not in UTF-16, whose
// encoder starts what it writes with a byte order mark.
func (c *Connector) appendSafe() bool {
	return !strings.HasPrefix(strings.ToLower(c.cfg.Encoding), "utf-16")
}

// rewrote is told of each rewrite of a file, with how many Writes' batches went into it; tests
// count them.
var rewrote = func(file string, batches int, appended bool) {}

// rewriteRows copies the old file's rows to w, applying the batches' updates
// and deletes to their users' rows, and fails the creates whose key is taken.
func (c *Connector) rewriteRows(ctx context.Context, old *fileReader, w *stdcsv.Writer, coll collection.Collection,
	changes map[string][]change, creates map[string]change, now time.Time, keys *keySet) error {
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
			if cr, ok := creates[id]; ok && id != "" {
				cr.b.results[cr.i].Err = connector.NewItemError(id, errors.New("an item with this key already exists"))
				delete(creates, id)
			}
			deleted := false
			for _, ch := range changes[id] {
				if id == "" || !old.inScope(rec, ch.b.values) {
					continue
				}
				res := &ch.b.results[ch.i]
				res.Err = nil
				if ch.b.writes[ch.i].Op == connector.OpDelete {
					deleted = true
					break
				}
				c.apply(rec, old.header, coll, ch.b.writes[ch.i].Fields, ch.b.values, now, res)
				id = res.ID
				break
			}
			if deleted {
				continue
			}
			keys.add(id)
		} else {
			keys.add(recordID(rec, old.header, coll))
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
