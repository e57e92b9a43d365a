package records

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
)

// Side is one of the two ends of a pair. Side 0 is the endpoint whose name
// (then entity) sorts first, so the same two endpoints make the same pair
// whichever a policy calls source or target.
type Side int

// Other is the opposite side.
func (s Side) Other() Side { return 1 - s }

// Endpoint names one endpoint's entity.
type Endpoint struct {
	Name   string `json:"name"`
	Entity string `json:"entity"`
}

// Pair identifies the records of one entity synced between two endpoints.
// Records belong to the user and the pair, not to a policy: every policy
// syncing the same pair shares them, so moving a user between policies never
// re-creates items.
type Pair struct {
	Sides [2]Endpoint `json:"sides"`
}

// PairOf builds the pair of a and b and says which side a is.
func PairOf(a, b Endpoint) (Pair, Side) {
	if c := cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Entity, b.Entity)); c <= 0 {
		return Pair{Sides: [2]Endpoint{a, b}}, 0
	}
	return Pair{Sides: [2]Endpoint{b, a}}, 1
}

func (p Pair) String() string {
	return fmt.Sprintf("%s/%s<->%s/%s", p.Sides[0].Name, p.Sides[0].Entity, p.Sides[1].Name, p.Sides[1].Entity)
}

// SideState is what was last synced on one side of a link.
type SideState struct {
	Key string `json:"key"`
	ID  string `json:"id"`
	// Hash is the content hash as last synced: what was read, or what the
	// engine wrote, so that reading our own write back is no change.
	Hash    string    `json:"hash"`
	ModTime time.Time `json:"modTime,omitzero"`
	// Gone is set when the item was deleted on this side and the delete was
	// not propagated; the link is kept so the other side's item is not taken
	// for a new one.
	Gone bool `json:"gone,omitempty"`
}

// Link is one synced item: the same data on both sides.
type Link struct {
	Sides    [2]SideState `json:"sides"`
	SyncedAt time.Time    `json:"syncedAt"`
}

// Op is the write an intent announces, stored by name.
type Op string

const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// formatOneOps are the numbers format 1 stored ops as.
var formatOneOps = map[string]Op{"1": OpCreate, "2": OpUpdate, "3": OpDelete}

// UnmarshalJSON reads an op by name, or as the number format 1 stored.
func (o *Op) UnmarshalJSON(b []byte) error {
	if old, ok := formatOneOps[string(b)]; ok {
		*o = old
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("op %s: %w", b, err)
	}
	switch Op(name) {
	case OpCreate, OpUpdate, OpDelete:
		*o = Op(name)
		return nil
	}
	return fmt.Errorf("op %q is not create, update or delete", name)
}

// Intent is written before the engine writes to an endpoint and removed once
// the outcome is recorded; one still open at the next cycle means the process
// died in between, and the engine settles it.
type Intent struct {
	Op Op `json:"op"`
	// Side is the side being written.
	Side Side `json:"side"`
	// SourceKey is the key of the item on the other side that is being
	// copied (for creates and updates) or the key being deleted.
	SourceKey string    `json:"sourceKey"`
	Origin    string    `json:"origin,omitempty"`
	Hash      string    `json:"hash,omitempty"`
	CycleID   string    `json:"cycleID"`
	At        time.Time `json:"at"`
}

// PendingKind says why an item is waiting.
type PendingKind string

const (
	// Quarantined: set aside and not synced (ambiguous match), our "Lost &
	// Found".
	Quarantined PendingKind = "Quarantined"
	// Conflict: both sides changed and the policy's rule is Manual.
	Conflict PendingKind = "Conflict"
	// Failing: writing it failed; retried with backoff until GivenUp.
	Failing PendingKind = "Failing"
	// DeleteAwaitingApproval: a delete held back by the delete threshold
	// until an approval names CycleID.
	DeleteAwaitingApproval PendingKind = "DeleteAwaitingApproval"
)

// Pending is an item that needs attention or a later retry.
type Pending struct {
	Pair Pair        `json:"pair"`
	Kind PendingKind `json:"kind"`
	// Side and Key name the item the entry is about.
	Side   Side   `json:"side"`
	Key    string `json:"key"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
	// Hash is the content the entry is about; a Failing item whose content
	// changed is retried afresh.
	Hash      string    `json:"hash,omitempty"`
	CycleID   string    `json:"cycleID,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
	GivenUp   bool      `json:"givenUp,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// PairState is the per-entity state kept with a pair.
type PairState struct {
	// Watermarks are the incremental positions of each side.
	Watermarks [2]connector.Watermark `json:"watermarks"`
	// MappingFingerprint identifies the field mapping the records were made
	// with; a different one forces a Complete cycle.
	MappingFingerprint string `json:"mappingFingerprint,omitempty"`
	// Initialized is set after the first (Initial) cycle completed.
	Initialized bool      `json:"initialized,omitempty"`
	LastCycleID string    `json:"lastCycleID,omitempty"`
	LastSynced  time.Time `json:"lastSynced,omitzero"`
}
