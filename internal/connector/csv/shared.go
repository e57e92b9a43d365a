package csv

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/delta"
)

// Shared lets the cycles of one Job share the csv files of their policy, which every user's
// cycle would otherwise read and rewrite whole for its own few rows (a Job of a thousand users
// on a million-row export would parse a billion rows):
//
//   - Reads: the first read of a file in the Job goes through it once and files each row under
//     the user whose scope cells it has (a spill file on disk, so memory stays bounded); every
//     user's read then yields its own rows from there, with the same cleansing a read of the
//     file gives (duplicate keys found over the whole file, malformed rows, rows no one's).
//     Before each read the file and its origins are checked to be the ones filed: a file
//     another writer replaced since is read again; rows of a user this Job wrote since are
//     read from the file itself. Line numbers in what a read reports are those of the file as
//     the Job filed it.
//   - Writes: a user's Write waits, its slot in the Job given up (Gate), until every cycle of
//     the Job is done or waiting too; then all waiting batches go into the file in one rewrite,
//     under the file's lock, each batch applied as its own Write would be. A Write returns only
//     once its rows are in the file, so what the engine records after it is as true as after a
//     Write of its own, and a crash loses no more than it does then.
//
// A Shared is for the connectors of one Job's users, all made from the same policy.
type Shared struct {
	ctx      context.Context // the Job's: shared rewrites run under it, not under any one user's
	gate     Gate
	scopes   []connector.Scope
	spillDir string
	// maxWrites is sharedMaxWrites; tests lower it.
	maxWrites int

	mu     sync.Mutex
	files  map[string]*sharedFile // by file and how it is parsed (sharedKey)
	spills []*os.File
}

// Gate is the Job's scheduler as a shared Write sees it (jobgate.Gate).
type Gate interface {
	// Wait gives up the caller's slot until done is closed or ctx ends.
	Wait(ctx context.Context, done <-chan struct{}) error
	// OnQuiet calls f each time every cycle of the Job is done or in Wait.
	OnQuiet(f func())
}

// Writes are held back for other users at most this long, and at most this many: a cycle may
// wait for something other than the gate (a lock held by a user whose batch is held back), and
// held batches are in memory. A Write beyond the bound starts the rewrite and waits for it
// without giving up its slot, so that no more users start their cycles meanwhile: a rewrite of
// a large file takes seconds, and the users that started and wrote in that time held 8 GiB of
// rows in a Job of 1,000 first syncs of a million-row export.
const (
	sharedMaxWait   = 10 * time.Second
	sharedMaxWrites = MaxBatch
)

// NewShared returns the sharing of one Job's cycles of the users with scopes (nil: any user).
// Shared rewrites run under ctx. gate may be nil: each Write then goes into the file at once, as
// without sharing. Close it when the Job is done.
func NewShared(ctx context.Context, gate Gate, scopes []connector.Scope, spillDir string) *Shared {
	s := &Shared{ctx: ctx, gate: gate, scopes: scopes, spillDir: spillDir, maxWrites: sharedMaxWrites, files: map[string]*sharedFile{}}
	if gate != nil {
		gate.OnQuiet(s.flushAll)
	}
	return s
}

// Close removes the Job's spill files.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range s.spills {
		errs = append(errs, f.Close(), os.Remove(f.Name()))
	}
	s.spills = nil
	return errors.Join(errs...)
}

// sharedFile is one file as the Job shares it.
type sharedFile struct {
	readMu sync.Mutex // held while the file is filed, so it is filed once
	snap   *snapshot

	mu       sync.Mutex // the writes
	pending  []*heldWrite
	flushing bool
	again    bool // a flush was asked for while one ran
	timer    *time.Timer
	memo     rewriteMemo
}

// heldWrite is a Write waiting for the Job's shared rewrite.
type heldWrite struct {
	c     *Connector
	path  string
	coll  collection.Collection
	b     *batch
	taken bool // by a rewrite: its outcome is coming
	err   error
	done  chan struct{}
	// resumed is closed once the Write has its slot again (or gave up waiting).
	resumed chan struct{}
	// keptSlot is set for a Write that waits without giving up its slot. Set before the
	// write is held, never changed.
	keptSlot bool
}

// sharedKey names a file and everything that changes how it parses and who its rows are.
func (c *Connector) sharedKey(coll collection.Collection) string {
	scope := make([]string, len(coll.Scope))
	for i, m := range coll.Scope {
		scope[i] = m.Field + "=" + m.Identity
	}
	b, _ := json.Marshal([]any{c.cfg.file(coll), c.cfg.Delimiter, c.cfg.Comment, c.cfg.Encoding, coll.KeyFields, coll.ModifiedField, scope})
	return string(b)
}

func (s *Shared) file(key string) *sharedFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[key]
	if !ok {
		f = &sharedFile{}
		s.files[key] = f
	}
	return f
}

// write holds b back until the Job's next shared rewrite of the file, and returns its results.
func (s *Shared) write(ctx context.Context, c *Connector, path string, coll collection.Collection, b *batch) ([]connector.WriteResult, error) {
	f := s.file(c.sharedKey(coll))
	hw := &heldWrite{c: c, path: path, coll: coll, b: b, done: make(chan struct{}), resumed: make(chan struct{})}
	defer close(hw.resumed)
	f.mu.Lock()
	f.pending = append(f.pending, hw)
	held := 0
	for _, p := range f.pending {
		held += len(p.b.writes)
	}
	full := held >= s.maxWrites
	hw.keptSlot = full || s.gate == nil
	if !full && f.timer == nil {
		f.timer = time.AfterFunc(sharedMaxWait, func() { s.flush(f) })
	}
	f.mu.Unlock()
	if s.gate == nil || full {
		go s.flush(f)
	}
	var err error
	if s.gate != nil && !full {
		err = s.gate.Wait(ctx, hw.done)
	} else {
		select {
		case <-hw.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		f.mu.Lock()
		if !hw.taken {
			f.pending = slices.DeleteFunc(f.pending, func(p *heldWrite) bool { return p == hw })
		}
		f.mu.Unlock()
		// A batch already taken may be in the file: its intents stay open, and the user's next
		// cycle settles them, as after a Write cut off.
		return nil, err
	}
	return hw.b.results, hw.err
}

// flushAll rewrites every file with held writes: the Job is quiet, waiting for them.
func (s *Shared) flushAll() {
	s.mu.Lock()
	files := make([]*sharedFile, 0, len(s.files))
	for _, f := range s.files {
		files = append(files, f)
	}
	s.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		held := len(f.pending) > 0
		f.mu.Unlock()
		if held {
			go s.flush(f)
		}
	}
}

// flush rewrites the file once with every held write, and again if more were asked for
// meanwhile.
func (s *Shared) flush(f *sharedFile) {
	f.mu.Lock()
	if f.flushing {
		f.again = true
		f.mu.Unlock()
		return
	}
	f.flushing = true
	for {
		f.again = false
		if f.timer != nil {
			f.timer.Stop()
			f.timer = nil
		}
		taken := f.pending
		f.pending = nil
		for _, hw := range taken {
			hw.taken = true
		}
		f.mu.Unlock()
		if len(taken) > 0 {
			s.rewrite(f, taken)
		}
		f.mu.Lock()
		if !f.again || len(f.pending) == 0 {
			if len(f.pending) > 0 && f.timer == nil {
				f.timer = time.AfterFunc(sharedMaxWait, func() { s.flush(f) })
			}
			f.flushing = false
			f.mu.Unlock()
			return
		}
	}
}

func (s *Shared) rewrite(f *sharedFile, taken []*heldWrite) {
	batches := make([]*batch, len(taken))
	for i, hw := range taken {
		batches[i] = hw.b
	}
	first := taken[0]
	// Reads of the file wait for the rewrite: one in the middle would find the origins file
	// replaced and the file not yet, and file the rows again for nothing.
	f.readMu.Lock()
	done, err := first.c.rewrite(s.ctx, first.path, first.coll, batches, &f.memo)
	if snap := f.snap; snap != nil {
		if err == nil && snap.ids.same(done.before) {
			// Only this rewrite changed the file since it was filed: the rows filed are still
			// those of every user but the ones written.
			snap.ids = done.after
			for _, b := range batches {
				snap.stale[snap.tupleOf(b.values)] = true
			}
		} else {
			f.snap = nil
		}
	}
	f.readMu.Unlock()
	for _, hw := range taken {
		hw.err = err
	}
	// The users that gave up their slots resume in the order they wrote, each once the one
	// before has its slot again: woken at once, they would take the Job's slots in any order,
	// and a Job's users would end in a different order on every run. Those that kept their
	// slots (see sharedMaxWrites) go first and at once: a user waiting for a slot behind them
	// would otherwise wait for ever.
	var parked []*heldWrite
	for _, hw := range taken {
		if hw.keptSlot {
			close(hw.done)
		} else {
			parked = append(parked, hw)
		}
	}
	go func() {
		for _, hw := range parked {
			close(hw.done)
			<-hw.resumed
		}
	}()
}

// fileIDs identify the versions of an entity's file and its origins file: every writer
// replaces them by a rename, so a file whose identity, size and time are unchanged was not
// written.
type fileIDs struct {
	file, origins fs.FileInfo // nil when missing
}

func (c *Connector) fileIDs(coll collection.Collection) fileIDs {
	var ids fileIDs
	ids.file, _ = os.Stat(c.cfg.file(coll))
	ids.origins, _ = os.Stat(c.cfg.originsFile(coll))
	return ids
}

func (ids fileIDs) same(other fileIDs) bool {
	return sameFile(ids.file, other.file) && sameFile(ids.origins, other.origins)
}

func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// snapshot is a file filed by user: each user's rows, in file order, in a spill file.
type snapshot struct {
	ids     fileIDs
	header  header
	fields  []string // the scope columns, in the order of a tuple
	spill   *os.File
	chunks  map[string][]chunk // by tuple; nobody's rows under rejectedTuple
	dups    map[string]int     // keys rows of different content share, whoever's
	origins origins            // of the Job's users
	stale   map[string]bool    // tuples this Job wrote since: read from the file
	wanted  map[string]bool    // the tuples filed; nil: all
}

type chunk struct{ off, n int64 }

// rejectedTuple files the rows no one can be told to own: no tuple of cells starts with a 0.
const rejectedTuple = "\x00"

// The kinds of a filed row.
const (
	filedRow       = 'r'
	filedMalformed = 'm' // its owner's item error
	filedRejected  = 'x' // no one's
)

// spillAt bounds the rows held in memory while a file is filed.
const spillAt = 16 << 20

// tupleOf is the tuple of a user's scope values.
func (s *snapshot) tupleOf(values map[string]string) string {
	return tuple(len(s.fields), func(i int) string { return values[s.fields[i]] })
}

// tupleOfRow is the tuple of a row's scope cells, and whether a malformed row can be told to be
// anyone's by them (see ownerOf).
func (s *snapshot) tupleOfRow(cells []string) (string, bool) {
	owned := true
	t := tuple(len(s.fields), func(i int) string {
		j := s.header.index[s.fields[i]]
		if j >= len(cells) || strings.TrimSpace(cells[j]) == "" {
			owned = false
			if j >= len(cells) {
				return ""
			}
		}
		return cells[j]
	})
	return t, owned
}

func tuple(n int, cell func(int) string) string {
	var b []byte
	for i := range n {
		v := cell(i)
		b = binary.AppendUvarint(b, uint64(len(v)+1))
		b = append(b, v...)
	}
	return string(b)
}

// snapshot returns the file as filed for the Job, filing it when it was not, or was replaced
// since. nil means the file is missing.
func (s *Shared) snapshot(ctx context.Context, c *Connector, path string, coll collection.Collection) (*snapshot, error) {
	f := s.file(c.sharedKey(coll))
	f.readMu.Lock()
	defer f.readMu.Unlock()
	if f.snap != nil && f.snap.ids.same(c.fileIDs(coll)) {
		return f.snap, nil
	}
	f.snap = nil
	snap, err := s.fileRows(ctx, c, path, coll)
	if err != nil || snap == nil {
		return nil, err
	}
	f.snap = snap
	return snap, nil
}

// fileRows reads the file once and files its rows by owner.
func (s *Shared) fileRows(ctx context.Context, c *Connector, path string, coll collection.Collection) (*snapshot, error) {
	file, err := os.Open(c.cfg.file(coll))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", coll.Name, err)
	}
	defer file.Close()
	var ids fileIDs
	if ids.file, err = file.Stat(); err != nil {
		return nil, fmt.Errorf("opening %s: %w", coll.Name, err)
	}
	fr, err := c.newFileReader(file, path, coll)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", coll.Name, err)
	}
	ids.origins, _ = os.Stat(c.cfg.originsFile(coll))
	all, err := readOrigins(c.cfg.originsFile(coll))
	if err != nil {
		return nil, err
	}
	snap := &snapshot{ids: ids, header: fr.header, chunks: map[string][]chunk{}, origins: origins{}, stale: map[string]bool{}}
	for _, m := range coll.Scope {
		snap.fields = append(snap.fields, m.Field)
	}
	slices.Sort(snap.fields)
	snap.fields = slices.Compact(snap.fields)

	var wanted map[string]bool // nil: everyone's
	if s.scopes != nil {
		wanted = map[string]bool{}
		snap.wanted = wanted
		for _, sc := range s.scopes {
			values, err := coll.ScopeValues(sc)
			if err != nil {
				continue // that user's read fails on its own
			}
			wanted[snap.tupleOf(values)] = true
			if o, ok := all[sc.Key()]; ok {
				snap.origins[sc.Key()] = o
			}
		}
	} else {
		snap.origins = all
	}
	spill, err := os.CreateTemp(s.spillDir, "chainsync-csv-shared-*")
	if err != nil {
		return nil, fmt.Errorf("filing the rows of %s: %w", coll.Name, err)
	}
	s.mu.Lock()
	s.spills = append(s.spills, spill)
	s.mu.Unlock()
	snap.spill = spill

	dups := newDupFinder()
	defer dups.close()
	held := map[string][]byte{}
	size, off := 0, int64(0)
	spillHeld := func() error {
		for t, b := range held {
			if len(b) == 0 {
				continue
			}
			if _, err := spill.WriteAt(b, off); err != nil {
				return fmt.Errorf("filing the rows of %s: %w", coll.Name, err)
			}
			snap.chunks[t] = append(snap.chunks[t], chunk{off, int64(len(b))})
			off += int64(len(b))
			held[t] = b[:0]
		}
		size = 0
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rw, err := fr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", coll.Name, err)
		}
		t, owned := snap.tupleOfRow(rw.cells)
		kind := byte(filedRow)
		switch {
		case rw.problem != "" && !owned:
			kind, t = filedRejected, rejectedTuple
		case rw.problem != "":
			kind = filedMalformed
		default:
			if err := dups.add(recordID(rw.cells, fr.header, coll), rw.cells); err != nil {
				return nil, fmt.Errorf("looking for duplicate keys in %s: %w", coll.Name, err)
			}
		}
		if kind != filedRejected && wanted != nil && !wanted[t] {
			continue
		}
		before := len(held[t])
		held[t] = appendFiled(held[t], kind, rw)
		if size += len(held[t]) - before; size >= spillAt {
			if err := spillHeld(); err != nil {
				return nil, err
			}
		}
	}
	if err := spillHeld(); err != nil {
		return nil, err
	}
	if snap.dups, err = dups.keys(); err != nil {
		return nil, fmt.Errorf("looking for duplicate keys in %s: %w", coll.Name, err)
	}
	return snap, nil
}

// appendFiled encodes a row: its kind, line, problem and column, then its cells.
func appendFiled(b []byte, kind byte, rw row) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(rw.line))
	b = binary.AppendUvarint(b, uint64(rw.column))
	b = binary.AppendUvarint(b, uint64(len(rw.problem)))
	b = append(b, rw.problem...)
	b = binary.AppendUvarint(b, uint64(len(rw.cells)))
	for _, cell := range rw.cells {
		b = binary.AppendUvarint(b, uint64(len(cell)))
		b = append(b, cell...)
	}
	return b
}

// filedRows yields the rows filed under t, in file order. The row's cells are reused by the
// next one.
func (s *snapshot) filedRows(t string) iter.Seq2[filed, error] {
	return func(yield func(filed, error) bool) {
		var buf []byte
		var cells []string
		for _, ch := range s.chunks[t] {
			buf = slices.Grow(buf[:0], int(ch.n))[:ch.n]
			if _, err := s.spill.ReadAt(buf, ch.off); err != nil {
				yield(filed{}, fmt.Errorf("reading filed rows: %w", err))
				return
			}
			// One string per chunk; cells are slices of it, so a row costs no copy.
			text := string(buf)
			for p := 0; p < len(text); {
				kind := text[p]
				p++
				next := func() int {
					var v uint64
					for shift := 0; ; shift += 7 {
						c := text[p]
						p++
						v |= uint64(c&0x7f) << shift
						if c < 0x80 {
							return int(v)
						}
					}
				}
				str := func() string {
					n := next()
					v := text[p : p+n]
					p += n
					return v
				}
				rw := row{line: next(), column: next(), problem: str()}
				cells = cells[:0]
				for range next() {
					cells = append(cells, str())
				}
				rw.cells = cells
				if !yield(filed{kind, rw}, nil) {
					return
				}
			}
		}
	}
}

// filed is a filed row and its kind.
type filed struct {
	kind byte
	row
}

// readShared is ReadAll from the Job's filed rows.
func (c *Connector) readShared(ctx context.Context, req connector.ReadRequest, path string, coll collection.Collection,
	scope map[string]string, yield func(connector.Item, error) bool) {
	snap, err := c.cfg.Shared.snapshot(ctx, c, path, coll)
	if err != nil {
		yield(connector.Item{}, err)
		return
	}
	if snap == nil {
		if !c.cfg.MissingFileIsEmpty {
			yield(connector.Item{}, fmt.Errorf("opening %s: %w", coll.Name, fs.ErrNotExist))
		}
		return
	}
	t := snap.tupleOf(scope)
	if snap.stale[t] || snap.wanted != nil && !snap.wanted[t] {
		// Written by the Job since it was filed, or a user the Job was not told of.
		c.readFile(ctx, req, path, coll, scope, yield)
		return
	}
	fr := &fileReader{header: snap.header}
	for rw, err := range snap.filedRows(rejectedTuple) {
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		if rw.kind == filedRejected {
			c.rejectRow(req.Entity, coll, fr.header, rw.row)
		}
	}
	mine := snap.origins[req.Scope.Key()]
	cols := fr.columns(req.Fields, coll)
	retract := false
	for rw, err := range snap.filedRows(t) {
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		if rw.kind == filedMalformed {
			id := recordID(rw.cells, fr.header, coll)
			if !yield(connector.Item{}, connector.NewItemError(id, errors.New(rw.describe(coll.Name)))) {
				return
			}
			continue
		}
		item, err := fr.item(rw.cells, cols, coll)
		if err != nil {
			err = connector.NewItemError(item.ID, fmt.Errorf("%s line %d: %w", coll.Name, rw.line, err))
		}
		retract = retract || snap.dups[item.ID] > 0
		item.Origin = mine[item.ID]
		if !yield(item, err) {
			return
		}
	}
	if !retract {
		return
	}
	for rw, err := range snap.filedRows(t) {
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		if rw.kind != filedRow {
			continue
		}
		id := recordID(rw.cells, fr.header, coll)
		if snap.dups[id] == 0 {
			continue
		}
		item, ierr := fr.item(rw.cells, cols, coll)
		if ierr != nil {
			continue // an item error already, and no item to take back
		}
		err := connector.NewItemError(item.ID, &delta.SetAside{Reason: delta.Duplicate, Item: item, Retract: true,
			Why: fmt.Errorf("%s line %d: %d rows of the file, not all alike, have the key %s", coll.Name, rw.line, snap.dups[id], id)})
		if !yield(connector.Item{}, err) {
			return
		}
	}
}
