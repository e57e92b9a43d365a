// Package conntest provides an in-memory connector for tests of anything
// built on the connector contract, with fault injection and an optional
// file backing that survives a kill -9 of the process using it.
package conntest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
)

// ErrCrashed is returned by every write after the injected crash point, as
// if the process had died: the engine must treat it as an endpoint failure.
var ErrCrashed = errors.New("conntest: crashed")

// Memory is a connector holding entities in memory. It ignores the scope:
// use one Memory per user. Safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	caps connector.Capabilities
	path string
	now  func() time.Time

	state       memoryState
	failItems   map[string]error
	failRead    error
	crashAfter  int // writes left before crashing; -1 means never
	writesSeen  int
	onEachWrite func()
}

type memoryState struct {
	NextID   int                               `json:"nextID"`
	Seq      int                               `json:"seq"`
	Entities map[string]map[string]*storedItem `json:"entities"`
	Deleted  map[string]map[string]int         `json:"deleted"` // entity -> id -> seq
}

type storedItem struct {
	Item connector.Item `json:"item"`
	Seq  int            `json:"seq"`
}

// NewMemory returns an empty in-memory connector with the given
// capabilities. Incremental, ModTime and Origin are honoured.
func NewMemory(caps connector.Capabilities) *Memory {
	return &Memory{caps: caps, crashAfter: -1, now: time.Now, state: memoryState{
		Entities: map[string]map[string]*storedItem{}, Deleted: map[string]map[string]int{},
	}}
}

// OpenFile returns a Memory persisted to path: loaded from it when it exists,
// and rewritten and fsynced (temp file and rename) after every single write,
// so a process killed at any instant leaves either the old or the new state.
func OpenFile(path string, caps connector.Capabilities) (*Memory, error) {
	m := NewMemory(caps)
	m.path = path
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, m.persist()
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &m.state); err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if m.state.Entities == nil {
		m.state.Entities = map[string]map[string]*storedItem{}
	}
	if m.state.Deleted == nil {
		m.state.Deleted = map[string]map[string]int{}
	}
	return m, nil
}

func (m *Memory) persist() error {
	if m.path == "" {
		return nil
	}
	raw, err := json.Marshal(m.state)
	if err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(tmp, m.path)
}

// SetClock sets the clock used for modification times.
func (m *Memory) SetClock(now func() time.Time) { m.mu.Lock(); m.now = now; m.mu.Unlock() }

// FailItem makes every write to the item with this ID fail with an
// ItemError; a create fails when any of its field values equals id.
// A nil err clears it.
func (m *Memory) FailItem(id string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failItems == nil {
		m.failItems = map[string]error{}
	}
	if err == nil {
		delete(m.failItems, id)
	} else {
		m.failItems[id] = err
	}
}

// FailReads makes reads fail as an endpoint failure; nil clears it.
func (m *Memory) FailReads(err error) { m.mu.Lock(); m.failRead = err; m.mu.Unlock() }

// CrashAfterWrites lets n more single writes succeed, then fails every
// write with ErrCrashed and reports no result for the batch that crashed,
// as if the process had died mid-batch; n < 0 disables it.
func (m *Memory) CrashAfterWrites(n int) { m.mu.Lock(); m.crashAfter = n; m.mu.Unlock() }

// OnEachWrite runs f after each single write is applied (and persisted), for
// tests that want to stop the process at a precise point.
func (m *Memory) OnEachWrite(f func()) { m.mu.Lock(); m.onEachWrite = f; m.mu.Unlock() }

// Writes is the number of single writes applied so far.
func (m *Memory) Writes() int { m.mu.Lock(); defer m.mu.Unlock(); return m.writesSeen }

// Put creates or replaces an item directly, as a user editing the system
// would, bumping its modification time. An empty ID gets a fresh one.
func (m *Memory) Put(entity string, item connector.Item) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if item.ID == "" {
		m.state.NextID++
		item.ID = "m" + strconv.Itoa(m.state.NextID)
	}
	item.Fields = maps.Clone(item.Fields)
	if item.ModTime.IsZero() {
		item.ModTime = m.now()
	}
	m.store(entity, item)
	if err := m.persist(); err != nil {
		panic(err)
	}
	return item.ID
}

// Remove deletes an item directly.
func (m *Memory) Remove(entity, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(entity, id)
	if err := m.persist(); err != nil {
		panic(err)
	}
}

// Get returns one item.
func (m *Memory) Get(entity, id string) (connector.Item, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.state.Entities[entity][id]
	if !ok {
		return connector.Item{}, false
	}
	return s.Item, true
}

// Items returns the entity's items ordered by ID.
func (m *Memory) Items(entity string) []connector.Item {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []connector.Item
	for _, s := range m.state.Entities[entity] {
		it := s.Item
		it.Fields = maps.Clone(it.Fields)
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b connector.Item) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (m *Memory) store(entity string, item connector.Item) {
	if m.state.Entities[entity] == nil {
		m.state.Entities[entity] = map[string]*storedItem{}
	}
	m.state.Seq++
	if !m.caps.Origin {
		item.Origin = ""
	}
	m.state.Entities[entity][item.ID] = &storedItem{Item: item, Seq: m.state.Seq}
	delete(m.state.Deleted[entity], item.ID)
}

func (m *Memory) remove(entity, id string) bool {
	if _, ok := m.state.Entities[entity][id]; !ok {
		return false
	}
	delete(m.state.Entities[entity], id)
	m.state.Seq++
	if m.state.Deleted[entity] == nil {
		m.state.Deleted[entity] = map[string]int{}
	}
	m.state.Deleted[entity][id] = m.state.Seq
	return true
}

// Capabilities implements connector.Connector.
func (m *Memory) Capabilities() connector.Capabilities { return m.caps }

// Close implements connector.Connector; every write is persisted as it is made.
func (m *Memory) Close() error { return nil }

// ReadAll implements connector.Connector, from a snapshot taken when the
// iteration starts.
func (m *Memory) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return m.read(req, -1)
}

func (m *Memory) read(req connector.ReadRequest, since int) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		m.mu.Lock()
		if m.failRead != nil {
			err := m.failRead
			m.mu.Unlock()
			yield(connector.Item{}, err)
			return
		}
		var snapshot []connector.Item
		for _, s := range m.state.Entities[req.Entity] {
			if s.Seq > since {
				it := s.Item
				it.Fields = maps.Clone(it.Fields)
				if !m.caps.ModTime {
					it.ModTime = time.Time{}
				}
				snapshot = append(snapshot, it)
			}
		}
		if since >= 0 {
			for id, seq := range m.state.Deleted[req.Entity] {
				if seq > since {
					snapshot = append(snapshot, connector.Item{ID: id, Deleted: true})
				}
			}
		}
		m.mu.Unlock()
		for _, it := range snapshot {
			if !yield(it, nil) {
				return
			}
		}
	}
}

// CurrentWatermark implements connector.ChangeReader.
func (m *Memory) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failRead != nil {
		return "", m.failRead
	}
	return connector.Watermark(strconv.Itoa(m.state.Seq)), nil
}

// ReadChanges implements connector.ChangeReader.
func (m *Memory) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	seq := 0
	if since != "" {
		var err error
		if seq, err = strconv.Atoi(string(since)); err != nil {
			return func(yield func(connector.Item, error) bool) {
				yield(connector.Item{}, fmt.Errorf("bad watermark %q: %w", since, err))
			}
		}
	}
	return m.read(req, seq)
}

// Write implements connector.Connector, applying (and persisting) one
// write at a time so a crash can fall between any two.
func (m *Memory) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	var results []connector.WriteResult
	for _, w := range req.Writes {
		m.mu.Lock()
		if m.crashAfter == 0 {
			m.mu.Unlock()
			// As if the process died: what this batch applied is not
			// reported, so only the engine's intents can tell.
			return nil, ErrCrashed
		}
		res := m.apply(req.Entity, w)
		if res.Err == nil {
			if m.crashAfter > 0 {
				m.crashAfter--
			}
			m.writesSeen++
			if err := m.persist(); err != nil {
				m.mu.Unlock()
				return results, err
			}
		}
		hook := m.onEachWrite
		m.mu.Unlock()
		results = append(results, res)
		if hook != nil && res.Err == nil {
			hook()
		}
	}
	return results, nil
}

func (m *Memory) apply(entity string, w connector.Write) connector.WriteResult {
	if err := m.failItems[w.ID]; err != nil && w.Op != connector.OpCreate {
		return connector.WriteResult{ID: w.ID, Err: connector.NewItemError(w.ID, err)}
	}
	if w.Op == connector.OpCreate {
		for _, v := range w.Fields {
			if err := m.failItems[v.Text]; err != nil {
				return connector.WriteResult{Err: connector.NewItemError(v.Text, err)}
			}
		}
	}
	now := m.now()
	switch w.Op {
	case connector.OpCreate:
		m.state.NextID++
		id := "m" + strconv.Itoa(m.state.NextID)
		m.store(entity, connector.Item{ID: id, Fields: maps.Clone(w.Fields), ModTime: now, Origin: w.Origin})
		return connector.WriteResult{ID: id, ModTime: now}
	case connector.OpUpdate:
		s, ok := m.state.Entities[entity][w.ID]
		if !ok {
			return connector.WriteResult{ID: w.ID, Err: connector.NewItemError(w.ID, connector.ErrNotFound)}
		}
		it := s.Item
		it.Fields = maps.Clone(it.Fields)
		maps.Copy(it.Fields, w.Fields)
		it.ModTime = now
		if w.Origin != "" {
			it.Origin = w.Origin
		}
		m.store(entity, it)
		return connector.WriteResult{ID: w.ID, ModTime: now}
	case connector.OpDelete:
		if !m.remove(entity, w.ID) {
			return connector.WriteResult{ID: w.ID, Err: connector.NewItemError(w.ID, connector.ErrNotFound)}
		}
		return connector.WriteResult{ID: w.ID}
	}
	return connector.WriteResult{ID: w.ID, Err: connector.NewItemError(w.ID, fmt.Errorf("unknown op %v", w.Op))}
}

var (
	_ connector.Connector    = (*Memory)(nil)
	_ connector.ChangeReader = (*Memory)(nil)
)
