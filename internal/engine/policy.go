// Package engine runs one sync cycle for one user and one policy: read both
// endpoints, compare them with the transaction records, settle conflicts,
// write the difference, and record what was synced so that the next cycle
// is incremental and nothing is ever created twice.
//
// It takes plain Go values (Policy, two connectors, a record store, a clock)
// and knows nothing of Kubernetes.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Direction says which way data flows.
type Direction string

const (
	// OneWay makes the target mirror the source: source changes are written
	// to the target, and target edits of synced items are overwritten with
	// the source's content (deleted ones re-created) on Complete cycles.
	// Target items that were never synced are left alone.
	OneWay Direction = "OneWay"
	// TwoWay writes changes from either side to the other.
	TwoWay Direction = "TwoWay"
)

// ConflictRule settles a two-way conflict: both sides changed one item
// since the last sync, to different content.
type ConflictRule string

const (
	SourceWins ConflictRule = "SourceWins"
	TargetWins ConflictRule = "TargetWins"
	// NewestWins keeps the side with the later modification time; on a tie,
	// or when neither time is known, the source wins so the outcome never
	// depends on read order. An unknown time counts as older.
	NewestWins ConflictRule = "NewestWins"
	// Manual leaves both sides as they are, reports a conflict, and looks
	// again every cycle until the sides agree (someone edited one to match
	// the other).
	Manual ConflictRule = "Manual"
)

// Endpoint names one side of a policy.
type Endpoint struct {
	// Name identifies the endpoint; records are kept per pair of names, so
	// two policies naming the same endpoints share records.
	Name string
}

// FieldMapping maps a source field to a target field.
type FieldMapping struct {
	Source string
	Target string
}

// Entity is one kind of item synced by a policy.
type Entity struct {
	// Name labels the entity in results.
	Name string
	// SourceEntity and TargetEntity are the connectors' entity names;
	// empty means Name.
	SourceEntity, TargetEntity string
	// Fields are the fields synced; every other field is ignored.
	Fields []FieldMapping
	// SourceKeyFields and TargetKeyFields, when set, identify items by
	// these fields instead of the native ID (null or duplicate keys are
	// set aside and reported).
	SourceKeyFields, TargetKeyFields []string
	// MatchOn lists source field names (each must be mapped in Fields)
	// whose values link an unsynced source item to an unsynced target item
	// instead of creating a copy: how the first cycle adopts what already
	// exists, and how a create interrupted by a crash is recognised when the
	// target cannot store an origin. An ambiguous match is quarantined.
	MatchOn []string
}

// Deletes says whether and how deletes propagate.
type Deletes struct {
	// Propagate deletes to the other side; otherwise the surviving item is
	// left alone and no longer synced.
	Propagate bool
	// MaxCount, when > 0, is the most deletes one cycle may make.
	MaxCount int
	// MaxPercent, when > 0, is the most deletes one cycle may make as a
	// percentage of the user's synced items, once they are more than
	// MinCount.
	MaxPercent float64
	// MinCount is how many deletes one cycle may always make whatever
	// MaxPercent says: a percentage of a user with few items is less than
	// one item, so without a floor every delete of a small user would wait
	// for approval.
	MinCount int
	// ApprovedCycle names a cycle whose held-back deletes are approved.
	ApprovedCycle string
}

// Retry bounds the retries of failing items.
type Retry struct {
	// Backoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxAttempts after which an item is given up and only reported.
	MaxAttempts int
}

// DefaultRetry is used when Policy.Retry is zero.
var DefaultRetry = Retry{Backoff: time.Minute, MaxBackoff: 6 * time.Hour, MaxAttempts: 10}

// Policy is what to sync, as the engine needs it.
type Policy struct {
	Name      string
	Source    Endpoint
	Target    Endpoint
	Entities  []Entity
	Direction Direction
	Conflict  ConflictRule
	Deletes   Deletes
	Retry     Retry
	// DryRun computes and reports everything and writes nothing anywhere.
	DryRun bool
	// Complete forces a full compare of every entity.
	Complete bool
	// RetryGivenUp tries again the items given up after their last allowed attempt, as a person
	// asks once they fixed the cause.
	RetryGivenUp bool
	// Reinit lists entities whose records are forgotten and rebuilt by an
	// Initial cycle (matchOn linking), for after an endpoint was restored.
	Reinit []string
}

func (e Entity) sourceEntity() string {
	if e.SourceEntity != "" {
		return e.SourceEntity
	}
	return e.Name
}

func (e Entity) targetEntity() string {
	if e.TargetEntity != "" {
		return e.TargetEntity
	}
	return e.Name
}

// fingerprint identifies what makes the records of an entity valid: the
// mapping and keys. When it changes, hashes no longer compare and the
// entity needs a Complete cycle.
func (e Entity) fingerprint() string {
	raw, _ := json.Marshal([]any{e.Fields, e.SourceKeyFields, e.TargetKeyFields})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}
