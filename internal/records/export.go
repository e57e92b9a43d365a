package records

import (
	"encoding/json"
	"fmt"
	"io"
)

// PairExport is everything kept about one pair, for `chainsync records`.
type PairExport struct {
	Pair    Pair      `json:"pair"`
	State   PairState `json:"state"`
	Links   []Link    `json:"links"`
	Intents []Intent  `json:"intents,omitempty"`
	Pending []Pending `json:"pending,omitempty"`
}

// UserExport is everything kept about one user.
type UserExport struct {
	Identity      string       `json:"identity"`
	FormatVersion int          `json:"formatVersion"`
	Pairs         []PairExport `json:"pairs"`
	// Cycles are the user's last cycle reports, newest first (Store.CycleReports);
	// Export leaves them to the caller, since they are kept outside records.db.
	Cycles []CycleReport `json:"cycles,omitempty"`
}

// Export reads all of the user's records.
func (u *User) Export() (UserExport, error) {
	out := UserExport{Identity: u.identity, FormatVersion: FormatVersion}
	err := u.View(func(tx *Tx) error {
		for p, err := range tx.Pairs() {
			if err != nil {
				return err
			}
			pe := PairExport{Pair: p}
			if pe.State, err = tx.State(p); err != nil {
				return err
			}
			for l, err := range tx.Links(p, 0) {
				if err != nil {
					return err
				}
				pe.Links = append(pe.Links, l)
			}
			for i, err := range tx.Intents(p) {
				if err != nil {
					return err
				}
				pe.Intents = append(pe.Intents, i)
			}
			for pending, err := range tx.PendingItems(p) {
				if err != nil {
					return err
				}
				pe.Pending = append(pe.Pending, pending)
			}
			out.Pairs = append(out.Pairs, pe)
		}
		return nil
	})
	if err != nil {
		return UserExport{}, fmt.Errorf("exporting records of %s: %w", u.identity, err)
	}
	return out, nil
}

// WriteJSON writes Export as indented JSON.
func (u *User) WriteJSON(w io.Writer) error {
	e, err := u.Export()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}
