// Package records is the transaction record store: for each user and each
// sync pair, which item on one side is which on the other and what both
// looked like when last synced, plus watermarks, pending items and write
// intents. It lives in one directory (a PersistentVolumeClaim in a cluster),
// one bbolt database per user:
//
//	<root>/registry.db                      which policy syncs which user where
//	<root>/users/<DirName(user)>/records.db  the user's records
//	<root>/users/<DirName(user)>/identity   the identity, for listing
//	<root>/users/<DirName(user)>/reports/   <entity>.nullpk.csv, <entity>.duplicates.csv
//	<root>/users/<DirName(user)>/cycles/    <DirName(cycle)>.json: the last cycles' item reports
//
// bbolt's flock on records.db makes one writer per user; the kernel drops
// the lock when the holder dies, so a killed cycle never leaves it held.
package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the version of the layout inside records.db. A store
// written by a newer version is refused rather than misread.
//
// Format 2 stores intents' ops by name (format 1: connector's numbers).
// Format 3 stores links in a binary layout (formats 1 and 2: JSON; see
// linkcodec.go). A store of an older format is read as it is, and upgraded
// when opened for writing.
const FormatVersion = 3

var (
	// ErrLocked: another process holds the user's records.
	ErrLocked = errors.New("user records are locked by another cycle")
	// ErrCorrupt: the records cannot be trusted; they are left untouched for
	// inspection and repair.
	ErrCorrupt = errors.New("user records are corrupt")
	// ErrUnsupportedFormat: the records were written by another format
	// version.
	ErrUnsupportedFormat = errors.New("unsupported records format version")
	// ErrClaimed: another policy already syncs this user into this target.
	ErrClaimed = errors.New("user is already synced into this target by another policy")
	// ErrNoRecords: the user has no records yet (read-only open).
	ErrNoRecords = errors.New("user has no records")
)

const (
	usersDir     = "users"
	dbFile       = "records.db"
	identityFile = "identity"
	reportsDir   = "reports"
	exportsDir   = "exports"
)

var (
	bucketMeta    = []byte("meta")
	bucketPairs   = []byte("pairs")
	keyFormat     = []byte("format")
	keyIdentity   = []byte("identity")
	bucketLinks   = []byte("links")  // side-0 key -> Link
	bucketIndex1  = []byte("index1") // side-1 key -> side-0 key
	bucketIntents = []byte("intents")
	bucketPending = []byte("pending")
	keyPairState  = []byte("state")
	keyPairID     = []byte("pair")
)

// Store is a record store rooted at a directory.
type Store struct {
	root string
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(root, usersDir), 0o750); err != nil {
		return nil, fmt.Errorf("creating record store at %s: %w", root, err)
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// UserDir is the user's folder (it may not exist yet).
func (s *Store) UserDir(identity string) (string, error) {
	name, err := DirName(identity)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.root, usersDir, name), nil
}

// ReportKind names a cleansing report file.
type ReportKind string

const (
	NullKeyReport   ReportKind = "nullpk"
	DuplicateReport ReportKind = "duplicates"
	// RejectedRowsReport holds an export's rows that no user's cycle could read or tell to be
	// anyone's; it is the policy's, not a user's (ExportReportPath).
	RejectedRowsReport ReportKind = "rejected"
)

// ExportReportPath is where a report about a policy's export, not about one user, goes:
// exports/<policy>/<entity>.<kind>.csv under the store. The folder is created; names are
// encoded so they cannot escape it.
func (s *Store) ExportReportPath(policy, entity string, kind ReportKind) (string, error) {
	p, err := DirName(policy)
	if err != nil {
		return "", fmt.Errorf("policy name: %w", err)
	}
	name, err := DirName(entity)
	if err != nil {
		return "", fmt.Errorf("entity name: %w", err)
	}
	dir := filepath.Join(s.root, exportsDir, p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("creating the reports folder of policy %s: %w", policy, err)
	}
	return filepath.Join(dir, name+"."+string(kind)+".csv"), nil
}

// ReportPath is where a cleansing report for the user's entity goes:
// <user folder>/reports/<entity>.<kind>.csv. The reports folder is created;
// the entity name is encoded like an identity so it cannot escape it.
func (s *Store) ReportPath(identity, entity string, kind ReportKind) (string, error) {
	dir, err := s.UserDir(identity)
	if err != nil {
		return "", err
	}
	name, err := DirName(entity)
	if err != nil {
		return "", fmt.Errorf("entity name: %w", err)
	}
	dir = filepath.Join(dir, reportsDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("creating reports folder for %s: %w", identity, err)
	}
	return filepath.Join(dir, name+"."+string(kind)+".csv"), nil
}

// OpenOptions tune OpenUser.
type OpenOptions struct {
	// LockTimeout is how long to wait for another cycle of the same user;
	// 0 means fail at once with ErrLocked.
	LockTimeout time.Duration
	// ReadOnly opens for inspection: a shared lock, nothing created.
	ReadOnly bool
}

// User is one user's open records. Close it to release the lock.
type User struct {
	identity string
	db       *bolt.DB
}

// OpenUser opens the user's records, taking the user's lock.
func (s *Store) OpenUser(identity string, opts OpenOptions) (*User, error) {
	dir, err := s.UserDir(identity)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dbFile)
	if opts.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("opening records of %s: %w", identity, ErrNoRecords)
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating records folder of %s: %w", identity, err)
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = time.Millisecond // bbolt treats 0 as "wait forever"
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("opening records of %s at %s: %w", identity, path, classifyOpenError(err))
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		// DetachUser took the folder out while this waited for the lock: the file locked is no
		// longer the user's records, and writes to it would be lost.
		db.Close()
		return s.OpenUser(identity, opts)
	}
	u := &User{identity: identity, db: db}
	if err := u.checkFormat(!opts.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening records of %s at %s: %w", identity, path, err)
	}
	if !opts.ReadOnly {
		if err := writeFileAtomic(filepath.Join(dir, identityFile), []byte(identity)); err != nil {
			db.Close()
			return nil, err
		}
	}
	return u, nil
}

func classifyOpenError(err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w: %v", ErrLocked, err)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch):
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

func (u *User) checkFormat(initialise bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if !initialise {
				return fmt.Errorf("%w: no meta bucket", ErrCorrupt)
			}
			return nil
		}
		v := meta.Get(keyFormat)
		if len(v) == 0 {
			return fmt.Errorf("%w: no format version", ErrCorrupt)
		}
		if !slices.Contains([]string{"1", "2", fmt.Sprint(FormatVersion)}, string(v)) {
			return fmt.Errorf("%w: records have %s, this build reads 1 to %d", ErrUnsupportedFormat, v, FormatVersion)
		}
		if id := meta.Get(keyIdentity); string(id) != u.identity {
			return fmt.Errorf("%w: records belong to %q, not %q", ErrCorrupt, id, u.identity)
		}
		return nil
	}
	if err := u.db.View(check); err != nil || !initialise {
		return err
	}
	return u.db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if string(meta.Get(keyFormat)) == "1" {
				if err := upgradeFromFormatOne(tx); err != nil {
					return err
				}
			}
			if string(meta.Get(keyFormat)) == "2" {
				return upgradeFromFormatTwo(tx)
			}
			return nil
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(fmt.Sprint(FormatVersion))); err != nil {
			return err
		}
		if err := meta.Put(keyIdentity, []byte(u.identity)); err != nil {
			return err
		}
		_, err = tx.CreateBucket(bucketPairs)
		return err
	})
}

// upgradeFromFormatOne rekeys every pair's open intents by op name (their values read either
// way) and marks the records format 2, in the caller's transaction.
func upgradeFromFormatOne(tx *bolt.Tx) error {
	pairs := tx.Bucket(bucketPairs)
	if pairs == nil {
		return fmt.Errorf("%w: no pairs bucket", ErrCorrupt)
	}
	err := pairs.ForEachBucket(func(name []byte) error {
		intents := pairs.Bucket(name).Bucket(bucketIntents)
		if intents == nil {
			return nil
		}
		var old [][]byte
		var upgraded []Intent
		err := intents.ForEach(func(k, v []byte) error {
			var i Intent
			if err := json.Unmarshal(v, &i); err != nil {
				return fmt.Errorf("%w: intent %q: %v", ErrCorrupt, k, err)
			}
			old, upgraded = append(old, slices.Clone(k)), append(upgraded, i)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := intents.Delete(k); err != nil {
				return err
			}
		}
		for _, i := range upgraded {
			raw, _ := json.Marshal(i)
			if err := intents.Put(intentKey(i), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("upgrading records from format 1: %w", err)
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, []byte("2"))
}

// upgradeLinksBatch links are re-encoded at a time, so that upgrading a million holds few.
const upgradeLinksBatch = 10_000

// upgradeFromFormatTwo re-encodes every pair's links in the binary layout and marks the records
// format 3, in the caller's transaction.
func upgradeFromFormatTwo(tx *bolt.Tx) error {
	pairs := tx.Bucket(bucketPairs)
	if pairs == nil {
		return fmt.Errorf("%w: no pairs bucket", ErrCorrupt)
	}
	err := pairs.ForEachBucket(func(name []byte) error {
		links := pairs.Bucket(name).Bucket(bucketLinks)
		if links == nil {
			return nil
		}
		var after []byte
		for {
			// Collected first, then put: a bucket must not change under its cursor.
			var keys, values [][]byte
			c := links.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			var last []byte
			for ; k != nil && len(keys) < upgradeLinksBatch; k, v = c.Next() {
				last = k
				if len(v) > 0 && v[0] != '{' {
					continue // upgraded by an earlier attempt
				}
				l, err := decodeLink(v)
				if err != nil {
					return fmt.Errorf("%w: link %q: %v", ErrCorrupt, k, err)
				}
				keys, values = append(keys, slices.Clone(k)), append(values, encodeLink(l))
			}
			done := k == nil
			after = slices.Clone(last)
			for i, k := range keys {
				if err := links.Put(k, values[i]); err != nil {
					return err
				}
			}
			if done {
				return nil
			}
		}
	})
	if err != nil {
		return fmt.Errorf("upgrading records from format 2: %w", err)
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, []byte(fmt.Sprint(FormatVersion)))
}

// Identity is the user's identity.
func (u *User) Identity() string { return u.identity }

// Close releases the user's lock.
func (u *User) Close() error { return u.db.Close() }

// View runs fn in a read-only transaction.
func (u *User) View(fn func(*Tx) error) error {
	return u.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction, committed (and fsynced) when fn
// returns nil and rolled back otherwise.
func (u *User) Update(fn func(*Tx) error) error {
	return u.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Verify checks the database's page structure and that every record
// decodes; it reports every problem found, wrapped in ErrCorrupt.
func (u *User) Verify() error {
	return u.View(func(tx *Tx) error {
		var errs []error
		for err := range tx.tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			for p, err := range tx.Pairs() {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, err := range tx.Links(p, 0) {
					if err != nil {
						errs = append(errs, err)
					}
				}
				for _, err := range tx.PendingItems(p) {
					if err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
		}
		return nil
	})
}

// CopyTo writes a consistent copy of the user's records to another
// identity in dst (which may be this store), for moving a user or keeping a
// backup. The target identity must have no records yet.
func (u *User) CopyTo(dst *Store, identity string) error {
	dir, err := dst.UserDir(identity)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, dbFile)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("copying records of %s to %s: target already has records", u.identity, identity)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("copying records of %s: %w", u.identity, err)
	}
	tmp := path + ".copy"
	if err := u.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(tmp, 0o640) }); err != nil {
		return fmt.Errorf("copying records of %s: %w", u.identity, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("copying records of %s: %w", u.identity, err)
	}
	copied, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("opening copied records of %s: %w", identity, err)
	}
	defer copied.Close()
	if err := copied.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyIdentity, []byte(identity))
	}); err != nil {
		return fmt.Errorf("renaming copied records to %s: %w", identity, err)
	}
	return writeFileAtomic(filepath.Join(dir, identityFile), []byte(identity))
}

// Users lists the identities that have records, without taking locks.
func (s *Store) Users() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, usersDir))
	if err != nil {
		return nil, fmt.Errorf("listing users in %s: %w", s.root, err)
	}
	var users []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id, err := os.ReadFile(filepath.Join(s.root, usersDir, e.Name(), identityFile))
		if err != nil {
			continue // a folder being created, or not ours
		}
		users = append(users, string(id))
	}
	return users, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
