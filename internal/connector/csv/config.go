// Package csv is the connector for a directory of full-extract CSV files, one
// file per entity, as an HR export drops them: a header row, then one row per
// item, keyed by one or more columns.
//
// Reads stream the file row by row, so files larger than memory work. The
// engine cleanses what is read (package delta sets aside rows with a null
// key or a duplicate key), and the cycle writes those rows to the files a
// user can open (package reports).
// Keys are unique across the whole file, not per user, and a user's read
// shows the engine only that user's rows, so each read first goes through
// the whole file for keys that rows of different users (or different
// content) share, and sets those rows aside itself (see ReadAll). A
// malformed row is the item error of the user it belongs to; one that
// cannot be told to be anyone's goes to Config.OnRejectedRow, for the
// export's rejected rows report, and fails no one.
//
// As a target, every Write rewrites the file atomically: the new content
// goes to a temporary file in the same directory, is synced, then renamed
// over the old one, so a reader or a crash never sees half a file. Rows
// outside the user's scope (other users' rows in a shared file) are copied
// unchanged. Comment lines are not kept by a rewrite. Writers of one file,
// in any process, take turns: each holds an flock on .<file>.lock beside
// the file while it reads the file and replaces it, so no writer's rows are
// lost to another's rename. Readers take no lock; the rename lets them see
// either the old file or the new one.
//
// CSV has no change feed, so the connector is not incremental. It has no
// hidden column for an origin token either: the tokens of each Write's
// creates go to .<file>.origins.json beside the file (see origins), which
// is how the connector offers Origin without a column in the export.
package csv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// Config configures a csv endpoint from resolved values.
type Config struct {
	// Side is "source" or "target": how the SyncPolicy names this endpoint,
	// so that errors name the field at fault (source.csv.delimiter).
	Side string
	// Directory is the local path of the directory holding the files.
	Directory string
	// Delimiter separates fields; "" means ",".
	Delimiter string
	// Comment, when set, starts lines to ignore.
	Comment string
	// Encoding is utf-8 (default), utf-16le, utf-16be, latin1 or
	// windows-1252.
	Encoding string
	// Entities maps entity names to their files.
	Entities map[string]collection.Collection
	// MissingFileIsEmpty makes an absent file read as an entity with no
	// items, as a target that has not been written yet is. For a source it
	// should stay false: reading a vanished export as empty would look like
	// every item was deleted.
	MissingFileIsEmpty bool
	// OnRejectedRow, when set, receives the rows of an entity's file that
	// ReadAll can give to no user (see RejectedRow), in file order, on
	// every read: each user's read of a shared export finds the same ones.
	// The cycle writes them for a person (reports.RowReport) and counts them.
	OnRejectedRow func(entity string, row RejectedRow)
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

// Validate checks the configuration and that the directory exists, and names
// the field at fault in the SyncPolicy's terms.
func (c Config) Validate() error {
	specErr := c.ValidateSpec()
	if specErr != nil {
		specErr = connector.InvalidConfig(specErr)
	}
	prefix := c.side() + ".csv."
	var dirErr error
	if c.Directory == "" {
		// ValidateSpec said so already.
	} else if fi, err := os.Stat(c.Directory); err != nil {
		// A directory that is not there is a volume not mounted or not yet
		// written: an outage, not a spec a person must change.
		dirErr = fmt.Errorf("%sdirectory: %w", prefix, err)
	} else if !fi.IsDir() {
		dirErr = connector.InvalidConfig(fmt.Errorf("%sdirectory: %s is not a directory", prefix, c.Directory))
	}
	return errors.Join(specErr, dirErr)
}

// ValidateSpec checks what can be checked without the files, so the operator
// can refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	prefix := c.side() + ".csv."
	if c.Directory == "" {
		errs = append(errs, fmt.Errorf("%sdirectory: must be set", prefix))
	}
	if c.Delimiter != "" {
		if r, err := singleRune(c.Delimiter); err != nil || !validDelim(r) {
			errs = append(errs, fmt.Errorf("%sdelimiter: %q cannot separate fields (one character, not a quote, newline or the replacement character)", prefix, c.Delimiter))
		}
	}
	if c.Comment != "" {
		r, err := singleRune(c.Comment)
		if err != nil || !validDelim(r) || r == c.delimiter() {
			errs = append(errs, fmt.Errorf("%scomment: %q must be one character other than the delimiter", prefix, c.Comment))
		}
	}
	if _, err := lookupEncoding(c.Encoding); err != nil {
		errs = append(errs, fmt.Errorf("%sencoding: %w", prefix, err))
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		path := c.entityPath(name)
		if err := coll.Validate(path, false); err != nil {
			errs = append(errs, err)
		}
		if coll.Name != "" && (strings.ContainsAny(coll.Name, `/\`) || coll.Name == "." || coll.Name == "..") {
			errs = append(errs, fmt.Errorf("%s.collection: %q must be a file name in %s, not a path", path, coll.Name, c.Directory))
		}
	}
	return errors.Join(errs...)
}

func (c Config) delimiter() rune {
	if c.Delimiter == "" {
		return ','
	}
	r, _ := utf8.DecodeRuneInString(c.Delimiter)
	return r
}

func (c Config) comment() rune {
	if c.Comment == "" {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(c.Comment)
	return r
}

func (c Config) file(coll collection.Collection) string {
	return filepath.Join(c.Directory, coll.Name)
}

// lockFile is the file writers of coll's file lock, beside it on the same
// volume so that every process writing the file sees the same lock. It is
// never removed: a writer could otherwise lock a file that another has just
// unlinked, and both would hold "the" lock.
func (c Config) lockFile(coll collection.Collection) string {
	return filepath.Join(c.Directory, "."+coll.Name+".lock")
}

func singleRune(s string) (rune, error) {
	r, size := utf8.DecodeRuneInString(s)
	if size != len(s) {
		return 0, errors.New("not one character")
	}
	return r, nil
}

func validDelim(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && r != utf8.RuneError
}
