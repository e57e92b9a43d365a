package delta

import (
	"bufio"
	"cmp"
	"container/heap"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
)

// DefaultMaxInMemory entries are sorted in memory before a run is spilled.
const DefaultMaxInMemory = 50_000

// Sorter is an external merge sort of entries by key: it sorts in memory up
// to a bound, spills sorted runs to temporary files past it, and merges the
// runs on read. Close removes the runs.
type Sorter struct {
	dir         string
	maxInMemory int
	buffer      []Entry
	runs        []*os.File
	// names are the names of the entries' packed fields (see Entry.Values).
	names []string
	// spilling is the run being written in the background, if any: its
	// error, once done.
	spilling chan error
}

// NewSorter returns a sorter spilling to dir ("" for the system temp dir).
func NewSorter(dir string, maxInMemory int) *Sorter {
	if maxInMemory <= 0 {
		maxInMemory = DefaultMaxInMemory
	}
	return &Sorter{dir: dir, maxInMemory: maxInMemory}
}

// Add adds one entry, spilling a run when the memory bound is reached.
func (s *Sorter) Add(e Entry) error {
	if e.names != nil && s.names == nil {
		s.names = e.names
	}
	s.buffer = append(s.buffer, e)
	if len(s.buffer) >= s.maxInMemory {
		return s.spill()
	}
	return nil
}

// spill sorts and writes the buffer as a run on a goroutine of its own, while
// the caller fills a new buffer: one run is written at a time, so at most two
// buffers are held.
func (s *Sorter) spill() error {
	if err := s.wait(); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "chainsync-sort-*.run")
	if err != nil {
		return fmt.Errorf("creating sort run: %w", err)
	}
	// Unlinked at once: the run vanishes even if the process is killed.
	os.Remove(f.Name())
	s.runs = append(s.runs, f)
	buffer := s.buffer
	s.buffer = make([]Entry, 0, s.maxInMemory)
	s.spilling = make(chan error, 1)
	go func() { s.spilling <- writeRun(f, buffer) }()
	return nil
}

// wait waits for the run being written, if any.
func (s *Sorter) wait() error {
	if s.spilling == nil {
		return nil
	}
	err := <-s.spilling
	s.spilling = nil
	return err
}

// keyOrder returns the indexes of entries in key order, equal keys in
// insertion order: sorting indexes moves 4 bytes where sorting entries would
// move a hundred.
// Keys are compared by their first 8 bytes as a number first, which settles
// most comparisons without reading the strings.
func keyOrder(entries []Entry) []int32 {
	type ordered struct {
		prefix uint64
		index  int32
	}
	order := make([]ordered, len(entries))
	for i := range order {
		order[i] = ordered{prefix: keyPrefix(entries[i].Key), index: int32(i)}
	}
	slices.SortFunc(order, func(a, b ordered) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return cmp.Or(cmp.Compare(entries[a.index].Key, entries[b.index].Key), cmp.Compare(a.index, b.index))
	})
	indexes := make([]int32, len(order))
	for i, o := range order {
		indexes[i] = o.index
	}
	return indexes
}

// keyPrefix is the key's first 8 bytes, big-endian, zero-padded: a shorter
// key sorts first among keys of the same padded prefix, and the strings
// compared then settle it.
func keyPrefix(key string) uint64 {
	var p uint64
	for i := range 8 {
		p <<= 8
		if i < len(key) {
			p |= uint64(key[i])
		}
	}
	return p
}

func writeRun(f *os.File, entries []Entry) error {
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for _, i := range keyOrder(entries) {
		buf = encodeEntry(buf[:0], &entries[i])
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing sort run: %w", err)
	}
	return nil
}

// Sorted returns the entries in key order (equal keys in insertion order
// within a run). Call it once, after the last Add.
func (s *Sorter) Sorted() (iter.Seq2[Entry, error], error) {
	if len(s.runs) == 0 {
		order := keyOrder(s.buffer)
		return func(yield func(Entry, error) bool) {
			for _, i := range order {
				if !yield(s.buffer[i], nil) {
					return
				}
			}
		}, nil
	}
	if len(s.buffer) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	if err := s.wait(); err != nil {
		return nil, err
	}
	s.buffer = nil
	readers := make([]*bufio.Reader, len(s.runs))
	for i, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewinding sort run: %w", err)
		}
		readers[i] = bufio.NewReaderSize(f, 256<<10)
	}
	return prefetched(func(yield func(Entry, error) bool) {
		h := &runHeap{}
		for i, r := range readers {
			e, err := decodeEntry(r, s.names)
			if err == io.EOF {
				continue
			}
			if err != nil {
				yield(Entry{}, fmt.Errorf("reading sort run: %w", err))
				return
			}
			heap.Push(h, runHead{entry: e, run: i})
		}
		for h.Len() > 0 {
			head := (*h)[0]
			if !yield(head.entry, nil) {
				return
			}
			next, err := decodeEntry(readers[head.run], s.names)
			switch {
			case err == io.EOF:
				heap.Pop(h)
			case err != nil:
				yield(Entry{}, fmt.Errorf("reading sort run: %w", err))
				return
			default:
				(*h)[0].entry = next
				heap.Fix(h, 0)
			}
		}
	}), nil
}

// prefetchBatch entries are handed over at a time by prefetched.
const prefetchBatch = 256

// prefetched runs seq on a goroutine of its own, a few batches ahead of the caller: merging
// the runs (reading and decoding them) then overlaps with what the caller does with the
// entries (merging them against the records). The goroutine has ended when the returned
// sequence returns, stopped early or not.
func prefetched(seq iter.Seq2[Entry, error]) iter.Seq2[Entry, error] {
	type item struct {
		e   Entry
		err error
	}
	return func(yield func(Entry, error) bool) {
		batches := make(chan []item, 4)
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			defer close(batches)
			batch := make([]item, 0, prefetchBatch)
			send := func() bool {
				select {
				case batches <- batch:
					batch = make([]item, 0, prefetchBatch)
					return true
				case <-stop:
					return false
				}
			}
			for e, err := range seq {
				batch = append(batch, item{e, err})
				if len(batch) == prefetchBatch && !send() {
					return
				}
			}
			if len(batch) > 0 {
				send()
			}
		}()
		defer func() {
			close(stop)
			for range batches {
			}
			<-done
		}()
		for batch := range batches {
			for _, it := range batch {
				if !yield(it.e, it.err) {
					return
				}
			}
		}
	}
}

// Close releases the runs and the buffer.
func (s *Sorter) Close() error {
	s.wait()
	for _, f := range s.runs {
		f.Close()
	}
	s.runs, s.buffer = nil, nil
	return nil
}

type runHead struct {
	entry Entry
	run   int
}

// runHeap orders run heads by key, then by run number so that equal keys
// come out in the order they were added.
type runHeap []runHead

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := cmp.Compare(h[i].entry.Key, h[j].entry.Key); c != 0 {
		return c < 0
	}
	return h[i].run < h[j].run
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(runHead)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Spool holds a stream of entries to be read again, in the order added: in
// memory up to a bound, and past it in a temporary file, so that a plan can
// keep a million inserts without holding them. Close removes the file.
type Spool struct {
	dir         string
	maxInMemory int
	memory      []Entry
	names       []string
	f           *os.File
	w           *bufio.Writer
	buf         []byte
	n           int
}

// NewSpool returns a spool spilling to dir ("" for the system temp dir) past
// maxInMemory entries (0 for DefaultMaxInMemory).
func NewSpool(dir string, maxInMemory int) *Spool {
	if maxInMemory <= 0 {
		maxInMemory = DefaultMaxInMemory
	}
	return &Spool{dir: dir, maxInMemory: maxInMemory}
}

// Len is the number of entries added.
func (s *Spool) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Add appends an entry.
func (s *Spool) Add(e Entry) error {
	s.n++
	if e.names != nil && s.names == nil {
		s.names = e.names
	}
	if s.f == nil && len(s.memory) < s.maxInMemory {
		s.memory = append(s.memory, e)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "chainsync-spool-*.run")
		if err != nil {
			return fmt.Errorf("creating spool: %w", err)
		}
		os.Remove(f.Name()) // gone even if the process is killed
		s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	}
	s.buf = encodeEntry(s.buf[:0], &e)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("writing spool: %w", err)
	}
	return nil
}

// All yields the entries in the order added. It may be called any number of
// times, but not while entries are added.
func (s *Spool) All() iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if s == nil {
			return
		}
		for _, e := range s.memory {
			if !yield(e, nil) {
				return
			}
		}
		if s.f == nil {
			return
		}
		if err := s.w.Flush(); err != nil {
			yield(Entry{}, fmt.Errorf("writing spool: %w", err))
			return
		}
		r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, 1<<62), 256<<10)
		for {
			e, err := decodeEntry(r, s.names)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Entry{}, fmt.Errorf("reading spool: %w", err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// Close removes the spool's file.
func (s *Spool) Close() error {
	if s == nil {
		return nil
	}
	s.memory = nil
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
