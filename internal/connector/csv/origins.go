package csv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// origins is what .<file>.origins.json beside an entity's file holds: for
// each user scope (connector.Scope.Key), the origin token of every row that
// scope's last Write created, by the row's ID. A CSV row has no hidden
// column for the token, so this file is how a create cut off by a crash is
// recognised (the Origin capability) without a column in the export.
//
// Write replaces the scope's entry, under the file's lock, before it
// renames the new file into place: a crash in between leaves tokens for
// rows that are not there, which prove nothing. An entry lives until the
// scope's next Write, by which time the engine has read and recorded it.
type origins map[string]map[string]string

func (c Config) originsFile(coll collection.Collection) string {
	return filepath.Join(c.Directory, "."+coll.Name+".origins.json")
}

// readOrigins reads an origins file; a missing one holds nothing.
func readOrigins(path string) (origins, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return origins{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	o := origins{}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	return o, nil
}

// recordCreates replaces the scope's entry in the origins file with the
// origins of this batch's creates.
func (c *Connector) recordCreates(coll collection.Collection, s connector.Scope, writes []connector.Write, results []connector.WriteResult) error {
	path := c.cfg.originsFile(coll)
	o, err := readOrigins(path)
	if err != nil {
		return err
	}
	created := map[string]string{}
	for i, w := range writes {
		if w.Op == connector.OpCreate && results[i].Err == nil && w.Origin != "" {
			created[results[i].ID] = w.Origin
		}
	}
	key := s.Key()
	if len(created) == 0 && o[key] == nil {
		return nil
	}
	if len(created) == 0 {
		delete(o, key)
	} else {
		o[key] = created
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	if err := replaceFile(tmp, path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
