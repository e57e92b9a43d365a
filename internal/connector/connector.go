package connector

import (
	"context"
	"encoding/json"
	"iter"
	"time"
)

// Item is one record of an entity on one endpoint: a contact, a row, a file
// line.
type Item struct {
	// ID is the native ID the endpoint gives the item (primary key, UID,
	// DN). It is stable for the item's lifetime and unique within the
	// entity for the user's scope. For a composite key, the connector
	// encodes it into one string of its choice.
	ID string `json:"id"`
	// Fields holds the item's data by field name. A field that the endpoint
	// holds but the item lacks is absent or Null; the engine treats both
	// the same.
	Fields map[string]Value `json:"fields,omitempty"`
	// ModTime is when the item was last modified on the endpoint; zero when
	// the connector does not know (Capabilities.ModTime false).
	ModTime time.Time `json:"modTime,omitzero"`
	// Origin is the opaque token the engine stored with the item on its last
	// create or update (only when Capabilities.Origin); empty otherwise.
	Origin string `json:"origin,omitempty"`
	// Deleted marks a tombstone in a ReadChanges stream: the item with this
	// ID was deleted since the watermark. Never set by ReadAll.
	Deleted bool `json:"deleted,omitempty"`
}

// Scope says whose items to read and write. Connectors filter by it (a
// mailbox, a WHERE owner = email, a csv column) however their system allows.
type Scope struct {
	// Email is the user's email address, the usual identity.
	Email string `json:"email,omitempty"`
	// Name is the user's display or account name.
	Name string `json:"name,omitempty"`
	// Attributes are free attributes of the user (department, owner ID,
	// tenant) that a connector's configuration may refer to.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Key is a stable text naming the scope, for a connector that keeps
// bookkeeping of its own per user.
func (s Scope) Key() string {
	b, _ := json.Marshal(s) // map keys are sorted: the same scope, the same text
	return string(b)
}

// Capabilities say what a connector supports; the engine adapts to them.
type Capabilities struct {
	// Incremental is true when the connector implements ChangeReader.
	Incremental bool
	// ModTime is true when items carry a meaningful ModTime, which enables
	// the NewestWins conflict rule.
	ModTime bool
	// Origin is true when the connector stores Write.Origin with the item
	// it creates, in the same commit as the item (a hidden column, an X-
	// property, a bookkeeping table beside it), and returns it as
	// Item.Origin at least until the same scope's next Write to the entity:
	// the engine reads every item before it writes again, so that is as
	// long as it needs the proof. Without it the engine falls back to
	// matchOn fields to settle creates interrupted by a crash.
	Origin bool
	// ReadOnly is true when the endpoint can only be a source.
	ReadOnly bool
	// MaxBatch is the largest number of Writes the connector accepts in one
	// Write call; 0 means no limit.
	MaxBatch int
}

// ReadRequest selects the items to read.
type ReadRequest struct {
	Scope  Scope
	Entity string
	// Fields lists the fields the engine needs; a connector may return more
	// (the engine drops them) but may use it to read less. Nil means all.
	Fields []string
}

// Watermark is an opaque position in an entity's change stream (a
// timestamp, a log sequence number, a sync token), chosen by the connector.
// The empty Watermark means "from the beginning".
type Watermark string

// Op is the kind of a Write.
type Op uint8

const (
	OpCreate Op = iota + 1
	OpUpdate
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "op?"
}

// Write is one change to apply.
type Write struct {
	Op Op
	// ID names the item for OpUpdate and OpDelete; ignored for OpCreate (the
	// endpoint assigns the ID and returns it in WriteResult.ID).
	ID string
	// Fields is the full new content for OpCreate and OpUpdate (fields not
	// listed are left as they are on update). Unused for OpDelete.
	Fields map[string]Value
	// Origin is an opaque token to store with the item when
	// Capabilities.Origin is true; ignored otherwise.
	Origin string
}

// WriteRequest is a batch of writes to one entity of one user.
type WriteRequest struct {
	Scope  Scope
	Entity string
	Writes []Write
}

// WriteResult reports the outcome of one Write.
type WriteResult struct {
	// ID is the native ID of the item written; for OpCreate, the ID the
	// endpoint assigned.
	ID string
	// ModTime is the item's modification time after the write, when known.
	ModTime time.Time
	// Stored holds the item's fields as the endpoint keeps them after a
	// create or update, read back as ReadAll would return them (a
	// timestamptz column prints "2024-03-01 09:30:00" back in its own form,
	// numeric(10,2) turns "5" into "5.00"). The engine records their hash,
	// so its own write read back next cycle is no change. Nil when the
	// connector stores exactly what it was given, as text files do.
	Stored map[string]Value
	// Err is non-nil when this item failed; it should be an *ItemError.
	Err error
}

// Connector is implemented by every endpoint type.
type Connector interface {
	// Capabilities reports what this connector supports. It must not change
	// during a cycle.
	Capabilities() Capabilities

	// ReadAll streams every item of the entity within the scope. The
	// sequence yields (item, nil) per item; it yields (zero, err) to report
	// an error: an *ItemError for an item that cannot be read (the engine
	// skips and reports it, and the sequence may continue), anything else
	// for an endpoint failure (the engine stops iterating). Reads must not
	// hold the whole entity in memory when it can be large.
	ReadAll(ctx context.Context, req ReadRequest) iter.Seq2[Item, error]

	// Write applies a batch in order and returns one result per Write, at
	// most Capabilities.MaxBatch at a time. The returned error is for an
	// endpoint failure only; results may then be partial or nil, and the
	// engine settles whatever was applied in its next cycle.
	Write(ctx context.Context, req WriteRequest) ([]WriteResult, error)

	// Close releases what the connector holds (connections, file handles) once the cycle is
	// done with it.
	Close() error
}

// ChangeReader is implemented by connectors with Capabilities.Incremental.
type ChangeReader interface {
	// CurrentWatermark returns the position of the entity's change stream
	// now. The engine calls it before reading, so a change made during the
	// cycle is seen again in the next one rather than missed.
	CurrentWatermark(ctx context.Context, req ReadRequest) (Watermark, error)

	// ReadChanges streams items created, updated or deleted (Item.Deleted)
	// since the watermark, with the same error rules as ReadAll. Yielding an
	// unchanged item is harmless; missing a change is not.
	ReadChanges(ctx context.Context, req ReadRequest, since Watermark) iter.Seq2[Item, error]
}
