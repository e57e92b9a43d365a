package records

import (
	"encoding/json"
	"fmt"
	"time"
)

var keyCleared = []byte("cleared")

// Cleared is the last `reinit: clear` request carried out on a user's records. It is stored in
// the same transaction that forgets the records, so a cycle killed after the clear, before its
// result reached the requester, is not followed by a second clear: that would forget the links
// the first one rebuilt and take edits made since for conflicts.
type Cleared struct {
	// Request is the request's value ("clear", "clear@2").
	Request string `json:"request"`
	// Requester names who asked (a SyncUser's UID): records outlive their SyncUser, and another
	// SyncUser of the same identity asking "clear" is a new request.
	Requester string `json:"requester"`
	// After is the request the requester had last seen handled when this one was carried out:
	// the same value asked again after another request was handled is a new request.
	After   string    `json:"after,omitempty"`
	CycleID string    `json:"cycleID"`
	At      time.Time `json:"at"`
}

// Same says whether c and other are the same request of the same requester.
func (c Cleared) Same(other Cleared) bool {
	return c.Request == other.Request && c.Requester == other.Requester && c.After == other.After
}

// Clear forgets the records of pairs and stores c, in one transaction: either the request was
// carried out and says so, or nothing changed.
func (u *User) Clear(pairs []Pair, c Cleared) error {
	return u.Update(func(tx *Tx) error {
		for _, p := range pairs {
			if err := tx.ResetPair(p); err != nil {
				return fmt.Errorf("forgetting records of %s: %w", p, err)
			}
		}
		raw, _ := json.Marshal(c)
		return tx.tx.Bucket(bucketMeta).Put(keyCleared, raw)
	})
}

// LastCleared returns the last clear request carried out on the records, if any.
func (t *Tx) LastCleared() (Cleared, bool, error) {
	meta := t.tx.Bucket(bucketMeta)
	if meta == nil {
		return Cleared{}, false, fmt.Errorf("%w: no meta bucket", ErrCorrupt)
	}
	raw := meta.Get(keyCleared)
	if raw == nil {
		return Cleared{}, false, nil
	}
	var c Cleared
	if err := json.Unmarshal(raw, &c); err != nil {
		return Cleared{}, false, fmt.Errorf("%w: last clear request: %v", ErrCorrupt, err)
	}
	return c, true, nil
}
