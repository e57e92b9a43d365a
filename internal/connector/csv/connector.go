package csv

import (
	"bufio"
	"context"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"slices"
	"time"

	"golang.org/x/text/encoding"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// Connector reads and writes the csv files of one endpoint.
type Connector struct {
	cfg Config
	enc encoding.Encoding
	// now stamps the modified field of written rows; tests replace it.
	now func() time.Time
}

var _ connector.Connector = (*Connector)(nil)

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
// column; never incremental nor origin-aware (see the package doc).
func (c *Connector) Capabilities() connector.Capabilities {
	modTime := true
	for _, coll := range c.cfg.Entities {
		modTime = modTime && coll.ModifiedField != ""
	}
	return connector.Capabilities{ModTime: modTime, MaxBatch: MaxBatch}
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
	r := stdcsv.NewReader(bufio.NewReaderSize(decodingReader(f, c.enc), 256<<10))
	r.Comma = c.cfg.delimiter()
	r.Comment = c.cfg.comment()
	r.ReuseRecord = true
	names, err := r.Read()
	if err != nil {
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s has no header row", coll.Name)
		}
		return nil, fmt.Errorf("reading the header of %s: %w", coll.Name, err)
	}
	h := newHeader(names)
	if err := h.check(path, coll); err != nil {
		f.Close()
		return nil, err
	}
	// Rows with a different number of cells are reported per row, not
	// fatal to the whole file.
	r.FieldsPerRecord = -1
	return &fileReader{f: f, r: r, header: h}, nil
}

// ReadAll streams the rows of the entity's file that are in the user's
// scope. An empty cell reads as Null. A row whose key is empty gets an empty
// ID, which the engine's cleansing sets aside as a null key.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		coll, err := c.entity(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		scope, err := coll.ScopeValues(req.Scope)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("%s.scope: %w", c.cfg.entityPath(req.Entity), err))
			return
		}
		fr, err := c.openReader(c.cfg.entityPath(req.Entity), coll)
		if errors.Is(err, fs.ErrNotExist) && c.cfg.MissingFileIsEmpty {
			return
		}
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("opening %s: %w", coll.Name, err))
			return
		}
		defer fr.f.Close()
		cols := fr.columns(req.Fields, coll)
		for {
			if ctx.Err() != nil {
				yield(connector.Item{}, ctx.Err())
				return
			}
			rec, err := fr.r.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !errors.Is(err, stdcsv.ErrFieldCount) {
				var perr *stdcsv.ParseError
				if errors.As(err, &perr) {
					// The reader resynchronises at the next line, so
					// one malformed row does not hide the rest.
					if !yield(connector.Item{}, connector.NewItemError(fmt.Sprintf("%s line %d", coll.Name, perr.StartLine), err)) {
						return
					}
					continue
				}
				yield(connector.Item{}, fmt.Errorf("reading %s: %w", coll.Name, err))
				return
			}
			line, _ := fr.r.FieldPos(0)
			if len(rec) != len(fr.header.names) {
				if !yield(connector.Item{}, connector.NewItemError(fmt.Sprintf("%s line %d", coll.Name, line),
					fmt.Errorf("row has %d cells, the header has %d", len(rec), len(fr.header.names)))) {
					return
				}
				continue
			}
			if !fr.inScope(rec, scope) {
				continue
			}
			item, err := fr.item(rec, cols, coll)
			if err != nil {
				err = connector.NewItemError(item.ID, fmt.Errorf("%s line %d: %w", coll.Name, line, err))
			}
			if !yield(item, err) {
				return
			}
		}
	}
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
	item := connector.Item{Fields: fields}
	item.ID, _ = coll.ItemID(fields)
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
