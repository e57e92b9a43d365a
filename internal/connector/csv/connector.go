package csv

import (
	"bufio"
	"context"
	"encoding/binary"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"iter"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/encoding"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/delta"
)

// Connector reads and writes the csv files of one endpoint.
type Connector struct {
	cfg Config
	enc encoding.Encoding
	// now stamps the modified field of written rows; tests replace it.
	now func() time.Time
}

var _ connector.Connector = (*Connector)(nil)

// Close implements connector.Connector: files are opened and closed by each read and write.
func (c *Connector) Close() error { return nil }

// New validates cfg and returns a connector for it.
func New(cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	enc, _ := lookupEncoding(cfg.Encoding)
	return &Connector{cfg: cfg, enc: enc, now: time.Now}, nil
}

// MaxBatch is large because every Write rewrites the whole file: small
// batches would make writing a large file quadratic.
const MaxBatch = 50_000

// Capabilities: modification times when every entity names a modified
// column; never incremental; origins kept beside the file (see origins).
func (c *Connector) Capabilities() connector.Capabilities {
	modTime := true
	for _, coll := range c.cfg.Entities {
		modTime = modTime && coll.ModifiedField != ""
	}
	return connector.Capabilities{ModTime: modTime, Origin: true, MaxBatch: MaxBatch}
}

func (c *Connector) entity(name string) (collection.Collection, error) {
	coll, ok := c.cfg.Entities[name]
	if !ok {
		return collection.Collection{}, fmt.Errorf("entity %q is not configured for the %s csv endpoint", name, c.cfg.side())
	}
	return coll, nil
}

// header is a parsed header row: the column order and each name's index.
type header struct {
	names []string
	index map[string]int
}

func newHeader(names []string) header {
	h := header{names: slices.Clone(names), index: make(map[string]int, len(names))}
	for i, n := range h.names {
		if _, dup := h.index[n]; !dup {
			h.index[n] = i
		}
	}
	return h
}

// check fails when a column the collection needs is not in the header, in
// the words a user needs to fix the policy or the export.
func (h header) check(path string, coll collection.Collection) error {
	var errs []error
	need := func(field, col string) {
		if _, ok := h.index[col]; !ok {
			errs = append(errs, fmt.Errorf("%s.%s: column %q is not in the header of %s", path, field, col, coll.Name))
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
	return errors.Join(errs...)
}

// fileReader is an open csv file positioned after its header row.
type fileReader struct {
	f      *os.File
	r      *stdcsv.Reader
	header header
}

func (c *Connector) openReader(path string, coll collection.Collection) (*fileReader, error) {
	f, err := os.Open(c.cfg.file(coll))
	if err != nil {
		return nil, err
	}
	fr, err := c.newFileReader(f, path, coll)
	if err != nil {
		f.Close()
		return nil, err
	}
	return fr, nil
}

// newFileReader reads the header of f from its start. It leaves f open.
func (c *Connector) newFileReader(f *os.File, path string, coll collection.Collection) (*fileReader, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading %s: %w", coll.Name, err)
	}
	r := stdcsv.NewReader(bufio.NewReaderSize(decodingReader(f, c.enc), 256<<10))
	r.Comma = c.cfg.delimiter()
	r.Comment = c.cfg.comment()
	r.ReuseRecord = true
	names, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s has no header row", coll.Name)
		}
		return nil, fmt.Errorf("reading the header of %s: %w", coll.Name, err)
	}
	h := newHeader(names)
	if err := h.check(path, coll); err != nil {
		return nil, err
	}
	// Rows with a different number of cells are reported per row, not
	// fatal to the whole file.
	r.FieldsPerRecord = -1
	return &fileReader{f: f, r: r, header: h}, nil
}

// row is one record read from a file: well formed, or malformed with what
// could be read of it (a broken quote ends a row's cells early).
type row struct {
	cells []string
	line  int
	// problem is empty for a well-formed row; otherwise it says what is
	// wrong, and column is where, when known.
	problem string
	column  int
}

// next reads the next record. A malformed row is a row, not an error: the
// reader resynchronises at the next line, so one bad row hides no other.
// The cells are reused by the next call.
func (fr *fileReader) next() (row, error) {
	rec, err := fr.r.Read()
	var perr *stdcsv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return row{}, io.EOF
	case errors.As(err, &perr):
		return row{cells: rec, line: perr.StartLine, problem: perr.Err.Error(), column: perr.Column}, nil
	case err != nil:
		return row{}, err
	}
	line, _ := fr.r.FieldPos(0)
	rw := row{cells: rec, line: line}
	if len(rec) != len(fr.header.names) {
		rw.problem = fmt.Sprintf("row has %s, the header has %d", cells(len(rec)), len(fr.header.names))
	}
	return rw, nil
}

func cells(n int) string {
	if n == 1 {
		return "1 cell"
	}
	return fmt.Sprintf("%d cells", n)
}

// reason is what is wrong with a malformed row, without where it is.
func (rw row) reason() string {
	if rw.column > 0 {
		return fmt.Sprintf("column %d: %s", rw.column, rw.problem)
	}
	return rw.problem
}

// describe names the row's file and line along with what is wrong.
func (rw row) describe(file string) string {
	if rw.column > 0 {
		return fmt.Sprintf("%s line %d, column %d: %s", file, rw.line, rw.column, rw.problem)
	}
	return fmt.Sprintf("%s line %d: %s", file, rw.line, rw.problem)
}

// rowOwner says whose a malformed row is, from its scope cells.
type rowOwner int

const (
	ownedByUser rowOwner = iota
	ownedByOther
	ownedByNobody // a scope cell is missing or blank: no one can claim it
)

func (fr *fileReader) ownerOf(cells []string, scope map[string]string) rowOwner {
	mine := true
	for field, want := range scope {
		i := fr.header.index[field]
		if i >= len(cells) || strings.TrimSpace(cells[i]) == "" {
			return ownedByNobody
		}
		mine = mine && cells[i] == want
	}
	if mine {
		return ownedByUser
	}
	return ownedByOther
}

// dupSortInMemory bounds the entries the duplicate key search holds before
// it spills: they are small, but they are held beside the read, which must
// stream.
const dupSortInMemory = 20_000

// dupFinder collects the key and content of every row of the file, whoever's it is, for the
// keys that rows of different content share: keys identify items within the whole export, so
// one user's read cannot tell a duplicate on its own.
type dupFinder struct {
	rows *delta.Sorter
	hash maphash.Hash
}

func newDupFinder() *dupFinder {
	d := &dupFinder{rows: delta.NewSorter("", dupSortInMemory)}
	d.hash.SetSeed(maphash.MakeSeed())
	return d
}

// add takes a well-formed row with its ID ("" for a null key, which is no key).
func (d *dupFinder) add(id string, cells []string) error {
	if id == "" {
		return nil
	}
	return d.rows.Add(delta.Entry{Key: strings.Clone(id), Hash: rowHash(&d.hash, cells)})
}

// keys returns the keys rows of different content share, with how many rows hold each.
func (d *dupFinder) keys() (map[string]int, error) {
	sorted, err := d.rows.Sorted()
	if err != nil {
		return nil, err
	}
	return delta.DuplicateKeys(sorted, "", dupSortInMemory)
}

func (d *dupFinder) close() { d.rows.Close() }

// rowHash identifies a row's content, every cell included, within one read:
// its hash is seeded afresh by each, and never kept.
func rowHash(h *maphash.Hash, cells []string) string {
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	for _, cell := range cells {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(cell))))
		h.WriteString(cell)
	}
	return string(binary.LittleEndian.AppendUint64(nil, h.Sum64()))
}

// ReadAll streams the rows of the entity's file that are in the user's
// scope. An empty cell reads as Null. It cleanses what the engine cannot,
// since the engine sees only this user's rows:
//
//   - A key that rows of different content hold, whoever's they are, is
//     not the user's to sync: the user's rows with it are yielded again at
//     the end of the read as delta.SetAside duplicates with Retract set,
//     which take the items back (item errors to code that does not know
//     SetAside). Rows alike in every cell are left to the engine, which
//     collapses them.
//   - A malformed row (cells missing or extra, a broken quote) is the item
//     error, with its file and line, of the user its scope cells name; when
//     they cannot be read it is no one's, and goes to Config.OnRejectedRow.
//   - A key that is empty or only blanks gives an empty ID, which the
//     engine's cleansing sets aside as a null key.
//
// Such keys are found in the same pass over the file, every row's key and
// content going through a sort beside the read; only when the user has rows
// with one is the file read again, from the same open file, for them.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		coll, err := c.entity(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		path := c.cfg.entityPath(req.Entity)
		scope, err := coll.ScopeValues(req.Scope)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("%s.scope: %w", path, err))
			return
		}
		f, err := os.Open(c.cfg.file(coll))
		if errors.Is(err, fs.ErrNotExist) && c.cfg.MissingFileIsEmpty {
			return
		}
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("opening %s: %w", coll.Name, err))
			return
		}
		defer f.Close()
		fr, err := c.newFileReader(f, path, coll)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("opening %s: %w", coll.Name, err))
			return
		}
		created, err := readOrigins(c.cfg.originsFile(coll))
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		mine := created[req.Scope.Key()]
		cols := fr.columns(req.Fields, coll)
		dups := newDupFinder()
		defer dups.close()
		for {
			if ctx.Err() != nil {
				yield(connector.Item{}, ctx.Err())
				return
			}
			rw, err := fr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				yield(connector.Item{}, fmt.Errorf("reading %s: %w", coll.Name, err))
				return
			}
			if rw.problem != "" {
				switch fr.ownerOf(rw.cells, scope) {
				case ownedByUser:
					id := recordID(rw.cells, fr.header, coll)
					if !yield(connector.Item{}, connector.NewItemError(id, errors.New(rw.describe(coll.Name)))) {
						return
					}
				case ownedByNobody:
					c.rejectRow(req.Entity, coll, fr.header, rw)
				}
				continue
			}
			if err := dups.add(recordID(rw.cells, fr.header, coll), rw.cells); err != nil {
				yield(connector.Item{}, fmt.Errorf("looking for duplicate keys in %s: %w", coll.Name, err))
				return
			}
			if !fr.inScope(rw.cells, scope) {
				continue
			}
			item, err := fr.item(rw.cells, cols, coll)
			if err != nil {
				err = connector.NewItemError(item.ID, fmt.Errorf("%s line %d: %w", coll.Name, rw.line, err))
			}
			item.Origin = mine[item.ID]
			if !yield(item, err) {
				return
			}
		}
		keys, err := dups.keys()
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("looking for duplicate keys in %s: %w", coll.Name, err))
			return
		}
		if len(keys) > 0 {
			c.retractDuplicates(ctx, f, path, coll, scope, cols, keys, yield)
		}
	}
}

// retractDuplicates reads the file again for the user's rows whose keys rows of different
// content share, and takes back the items read for them (see ReadAll).
func (c *Connector) retractDuplicates(ctx context.Context, f *os.File, path string, coll collection.Collection, scope map[string]string,
	cols []int, dups map[string]int, yield func(connector.Item, error) bool) {
	fr, err := c.newFileReader(f, path, coll)
	if err != nil {
		yield(connector.Item{}, fmt.Errorf("opening %s: %w", coll.Name, err))
		return
	}
	for {
		if ctx.Err() != nil {
			yield(connector.Item{}, ctx.Err())
			return
		}
		rw, err := fr.next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("reading %s: %w", coll.Name, err))
			return
		}
		if rw.problem != "" || !fr.inScope(rw.cells, scope) {
			continue
		}
		id := recordID(rw.cells, fr.header, coll)
		if dups[id] == 0 {
			continue
		}
		item, ierr := fr.item(rw.cells, cols, coll)
		if ierr != nil {
			continue // an item error already, and no item to take back
		}
		err = connector.NewItemError(item.ID, &delta.SetAside{Reason: delta.Duplicate, Item: item, Retract: true,
			Why: fmt.Errorf("%s line %d: %d rows of the file, not all alike, have the key %s", coll.Name, rw.line, dups[id], id)})
		if !yield(connector.Item{}, err) {
			return
		}
	}
}

func (c *Connector) rejectRow(entity string, coll collection.Collection, hdr header, rw row) {
	if c.cfg.OnRejectedRow == nil {
		return
	}
	c.cfg.OnRejectedRow(entity, RejectedRow{File: coll.Name, Line: rw.line, Reason: rw.reason(),
		Header: hdr.names, Cells: slices.Clone(rw.cells)})
}

// columns picks the header indexes to turn into fields: the requested ones
// plus keys, modification time and scope, or all when none are requested.
func (fr *fileReader) columns(fields []string, coll collection.Collection) []int {
	if fields == nil {
		idx := make([]int, len(fr.header.names))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	var idx []int
	seen := map[int]bool{}
	for _, f := range append(slices.Clone(fields), coll.Fields()...) {
		if i, ok := fr.header.index[f]; ok && !seen[i] {
			idx = append(idx, i)
			seen[i] = true
		}
	}
	return idx
}

func (fr *fileReader) inScope(rec []string, scope map[string]string) bool {
	for field, want := range scope {
		if rec[fr.header.index[field]] != want {
			return false
		}
	}
	return true
}

func (fr *fileReader) item(rec []string, cols []int, coll collection.Collection) (connector.Item, error) {
	fields := make(map[string]connector.Value, len(cols))
	for _, i := range cols {
		fields[fr.header.names[i]] = cellValue(rec[i])
	}
	item := connector.Item{Fields: fields, ID: recordID(rec, fr.header, coll)}
	if coll.ModifiedField != "" {
		if s := rec[fr.header.index[coll.ModifiedField]]; s != "" {
			t, err := collection.ParseTime(s)
			if err != nil {
				return item, fmt.Errorf("%s: %w", coll.ModifiedField, err)
			}
			item.ModTime = t
		}
	}
	return item, nil
}

// cellValue: csv cannot tell an empty string from a missing value, so an
// empty cell is Null, the way SQL connectors return a NULL column.
func cellValue(s string) connector.Value {
	if s == "" {
		return connector.Null()
	}
	return connector.String(s)
}
