package records

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// detachedDir holds user folders on their way out: outside users/, so no cycle or listing sees
// them, and on the same volume, so moving a folder there is one rename.
const detachedDir = "detached"

// DetachUser takes the user's folder out of the store in one rename, under the user's lock so
// that a running cycle finishes first. A deletion killed at any point leaves the folder either
// whole in users/ or out of it, never half-deleted for the next cycle to read; PurgeDetached
// removes what was taken out. A user without records is no error, so a deletion can be re-run.
// Corrupt records are detached too: deleting them is how a person starts over.
func (s *Store) DetachUser(identity string, lockTimeout time.Duration) error {
	dir, err := s.UserDir(identity)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockFile(filepath.Join(dir, dbFile), lockTimeout)
	if err != nil {
		return fmt.Errorf("locking the records of %s: %w", identity, err)
	}
	defer unlock()
	out := filepath.Join(s.root, detachedDir)
	if err := os.MkdirAll(out, 0o750); err != nil {
		return fmt.Errorf("deleting the records of %s: %w", identity, err)
	}
	to := filepath.Join(out, filepath.Base(dir)+"."+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(dir, to); err != nil {
		return fmt.Errorf("deleting the records of %s: %w", identity, err)
	}
	return nil
}

// PurgeDetached removes every folder DetachUser took out, those of deletions killed before
// removing theirs included.
func (s *Store) PurgeDetached() error {
	dir := filepath.Join(s.root, detachedDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing deleted records: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("removing deleted records: %w", err))
		}
	}
	return errors.Join(errs...)
}

// lockFile takes the lock bbolt takes on a records file (an exclusive flock), waiting up to
// timeout, without opening it as a database: records that no longer open are deleted as well.
// A missing file needs no lock.
func lockFile(path string, timeout time.Duration) (func(), error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || !time.Now().Before(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, ErrLocked
			}
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
