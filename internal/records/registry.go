package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	registryFile     = "registry.db"
	registryLockFile = "registry.lock"
)

var bucketClaims = []byte("claims")

// Claim says that a policy syncs a user into a target endpoint: two policies
// writing one user into one target would fight over the same items.
type Claim struct {
	User   string    `json:"user"`
	Target string    `json:"target"`
	Policy string    `json:"policy"`
	Since  time.Time `json:"since"`
}

func claimKey(user, target string) []byte {
	b, _ := json.Marshal([2]string{target, user})
	return b
}

// registryLockTimeout is how long a cycle waits for its turn at the claims registry.
const registryLockTimeout = 30 * time.Second

func (s *Store) withRegistry(write bool, fn func(*bolt.Bucket) error) error {
	// Opened per call and closed at once: cycles of different users share the registry, and
	// each holds its lock for a moment only. The turn is taken on a lock file of its own, in a
	// blocking flock the kernel hands on as soon as it is free: bbolt's own lock polls every
	// 50 ms, and with 64 processes at once some waited 12 s while others went ten times.
	// Readers share their turn; only a new or released claim writes.
	unlock, err := takeTurn(filepath.Join(s.root, registryLockFile), write, registryLockTimeout)
	if err != nil {
		return fmt.Errorf("opening claims registry: %w", err)
	}
	defer unlock()
	path := filepath.Join(s.root, registryFile)
	if !write {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fn(nil) // No claim made yet.
		}
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: registryLockTimeout, ReadOnly: !write})
	if err != nil {
		return fmt.Errorf("opening claims registry: %w", classifyOpenError(err))
	}
	defer db.Close()
	run := db.View
	if write {
		run = db.Update
	}
	return run(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClaims)
		if b == nil && write {
			if b, err = tx.CreateBucket(bucketClaims); err != nil {
				return err
			}
		}
		return fn(b)
	})
}

// ClaimTarget records that policy syncs user into target. Claiming again for
// the same policy is a no-op; a claim by another policy is refused with
// ErrClaimed naming the holder.
func (s *Store) ClaimTarget(user, target, policy string, now time.Time) error {
	// Every cycle claims again: reading first lets all those that hold their claim already
	// share the registry, instead of each taking it alone to write nothing.
	if held, err := s.ClaimOf(user, target); err != nil {
		return err
	} else if held != nil && held.Policy == policy {
		return nil
	}
	return s.withRegistry(true, func(b *bolt.Bucket) error {
		key := claimKey(user, target)
		if raw := b.Get(key); raw != nil {
			var held Claim
			if err := json.Unmarshal(raw, &held); err != nil {
				return fmt.Errorf("%w: claims registry entry %s: %v", ErrCorrupt, key, err)
			}
			if held.Policy == policy {
				return nil
			}
			return fmt.Errorf("policy %q cannot sync %s into %q: %w (%q, since %s)",
				policy, user, target, ErrClaimed, held.Policy, held.Since.Format(time.RFC3339))
		}
		raw, _ := json.Marshal(Claim{User: user, Target: target, Policy: policy, Since: now})
		return b.Put(key, raw)
	})
}

// ReleaseTarget drops policy's claim on user's target, when it holds it.
func (s *Store) ReleaseTarget(user, target, policy string) error {
	return s.withRegistry(true, func(b *bolt.Bucket) error {
		key := claimKey(user, target)
		raw := b.Get(key)
		if raw == nil {
			return nil
		}
		var held Claim
		if err := json.Unmarshal(raw, &held); err != nil {
			return fmt.Errorf("%w: claims registry entry %s: %v", ErrCorrupt, key, err)
		}
		if held.Policy != policy {
			return nil
		}
		return b.Delete(key)
	})
}

// ClaimOf returns the claim on user's target, nil when there is none.
func (s *Store) ClaimOf(user, target string) (*Claim, error) {
	var held *Claim
	err := s.withRegistry(false, func(b *bolt.Bucket) error {
		if b == nil {
			return nil
		}
		raw := b.Get(claimKey(user, target))
		if raw == nil {
			return nil
		}
		held = &Claim{}
		if err := json.Unmarshal(raw, held); err != nil {
			return fmt.Errorf("%w: claims registry entry %s: %v", ErrCorrupt, claimKey(user, target), err)
		}
		return nil
	})
	return held, err
}

// Claims lists every claim.
func (s *Store) Claims() ([]Claim, error) {
	var claims []Claim
	err := s.withRegistry(false, func(b *bolt.Bucket) error {
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var c Claim
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("%w: claims registry entry %s: %v", ErrCorrupt, k, err)
			}
			claims = append(claims, c)
			return nil
		})
	})
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return nil, nil
	}
	return claims, err
}
