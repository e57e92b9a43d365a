package records

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// CycleReportFormat is the version of a cycle report file. A file of a newer
// version is refused rather than misread.
const CycleReportFormat = 1

// The bounds on what a user's cycle reports keep, so that a user with
// thousands of failing items, or a dry run planning thousands of writes,
// cannot fill the volume: a report for each of the last MaxCycleReports
// cycles, each with at most MaxReportItems items (the rest only counted, in
// MoreItems), each key and ID at most MaxReportIDLength bytes and each reason
// at most MaxReportReasonLength. Ten cycles cover a day at most schedules;
// a hundred items are more than a person reads, and the most important come
// first. At most about 1.5 MB per user, and a few hundred bytes for a user
// whose cycles go well.
const (
	MaxCycleReports       = 10
	MaxReportItems        = 100
	MaxReportIDLength     = 256
	MaxReportReasonLength = 1024
)

const (
	cyclesDir = "cycles"
	// staleTempFile is how old a temporary file left by a crashed write must
	// be before it is removed; a younger one may be another cycle's write.
	staleTempFile = time.Hour
)

// Outcome is what happened to an item in a cycle, or would happen in a dry
// run. The names are the file format's own.
type Outcome string

const (
	// OutcomeError: reading or writing the item failed; a failed write is
	// retried with backoff.
	OutcomeError Outcome = "Error"
	// OutcomeGivenUp: writing the item failed as many times as the policy
	// allows; it is tried again only when its content changes.
	OutcomeGivenUp Outcome = "GivenUp"
	// OutcomeConflict: changed on both sides, left for a person (Manual).
	OutcomeConflict Outcome = "Conflict"
	// OutcomeQuarantined: matched more than one item on the other side.
	OutcomeQuarantined Outcome = "Quarantined"
	// OutcomeDeleteHeld: a delete held back by the delete threshold.
	OutcomeDeleteHeld Outcome = "DeleteHeld"
	// OutcomeNullKey and OutcomeDuplicateKey: set aside by cleansing.
	OutcomeNullKey      Outcome = "NullKey"
	OutcomeDuplicateKey Outcome = "DuplicateKey"
	// OutcomeWaitingToRetry: a failed write waiting for its next attempt.
	OutcomeWaitingToRetry Outcome = "WaitingToRetry"
	// OutcomeWouldDelete, OutcomeWouldCreate and OutcomeWouldUpdate are a
	// dry run's plan.
	OutcomeWouldDelete Outcome = "WouldDelete"
	OutcomeWouldCreate Outcome = "WouldCreate"
	OutcomeWouldUpdate Outcome = "WouldUpdate"
)

// outcomeOrder ranks outcomes by how much they need a person, most first:
// the bounded report keeps these.
var outcomeOrder = []Outcome{
	OutcomeError, OutcomeGivenUp, OutcomeConflict, OutcomeQuarantined, OutcomeDeleteHeld,
	OutcomeNullKey, OutcomeDuplicateKey, OutcomeWaitingToRetry,
	OutcomeWouldDelete, OutcomeWouldCreate, OutcomeWouldUpdate,
}

func (o Outcome) rank() int {
	if i := slices.Index(outcomeOrder, o); i >= 0 {
		return i
	}
	return len(outcomeOrder)
}

// ItemSide names an item on one endpoint; Key and ID are empty where not
// known (an item not yet created, a row that could not be read).
type ItemSide struct {
	Endpoint string `json:"endpoint"`
	Key      string `json:"key,omitempty"`
	ID       string `json:"id,omitempty"`
}

// ItemReport is one item in a cycle report.
type ItemReport struct {
	Entity  string   `json:"entity"`
	Outcome Outcome  `json:"outcome"`
	Source  ItemSide `json:"source"`
	Target  ItemSide `json:"target"`
	// Reason says why, in the words of the engine or the endpoint.
	Reason string `json:"reason,omitempty"`
}

// CycleReport is what one cycle of a user left for a person to look at: the
// items it could not sync as is, and in a dry run the writes it would make.
type CycleReport struct {
	FormatVersion  int       `json:"formatVersion"`
	CycleID        string    `json:"cycleID"`
	Policy         string    `json:"policy,omitempty"`
	Mode           string    `json:"mode,omitempty"`
	DryRun         bool      `json:"dryRun,omitempty"`
	StartTime      time.Time `json:"startTime,omitzero"`
	CompletionTime time.Time `json:"completionTime,omitzero"`
	// Failure says why the cycle as a whole failed, if it did.
	Failure string       `json:"failure,omitempty"`
	Items   []ItemReport `json:"items"`
	// MoreItems counts the items left out to keep the report bounded.
	MoreItems int `json:"moreItems,omitempty"`
}

// Bound orders the items by how much they need a person (errors first, a
// dry run's plan last, otherwise as reported), keeps the first maxItems and
// counts the rest in MoreItems, and shortens keys, IDs and reasons to the
// format's bounds.
func (r *CycleReport) Bound(maxItems int) {
	slices.SortStableFunc(r.Items, func(a, b ItemReport) int { return cmp.Compare(a.Outcome.rank(), b.Outcome.rank()) })
	if len(r.Items) > maxItems {
		r.MoreItems += len(r.Items) - maxItems
		r.Items = slices.Clip(r.Items[:maxItems])
	}
	if r.Items == nil {
		r.Items = []ItemReport{}
	}
	for i := range r.Items {
		it := &r.Items[i]
		for _, s := range []*ItemSide{&it.Source, &it.Target} {
			s.Key, s.ID = Shorten(s.Key, MaxReportIDLength), Shorten(s.ID, MaxReportIDLength)
		}
		it.Reason = Shorten(it.Reason, MaxReportReasonLength)
	}
	r.Failure = Shorten(r.Failure, MaxReportReasonLength)
}

// Shorten keeps s within n bytes, cutting at a character boundary and
// marking the cut with "...".
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."[:min(3, n)]
}

func (s *Store) cycleReportsDir(identity string) (string, error) {
	dir, err := s.UserDir(identity)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, cyclesDir), nil
}

// PutCycleReport keeps a cycle's report in the user's folder, bounded (see
// Bound), replacing an earlier report of the same cycle (a retried Job), and
// removes the oldest reports beyond MaxCycleReports. The file appears whole or
// not at all. It needs no lock: a dry run writes its report while sharing the
// user's records with other readers.
func (s *Store) PutCycleReport(identity string, r CycleReport) error {
	dir, err := s.cycleReportsDir(identity)
	if err != nil {
		return err
	}
	name, err := DirName(r.CycleID)
	if err != nil {
		return fmt.Errorf("cycle report of %s: cycle ID: %w", identity, err)
	}
	r.FormatVersion = CycleReportFormat
	r.Items = slices.Clone(r.Items) // Bound sorts them: the caller's stay as they were
	r.Bound(MaxReportItems)
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report of cycle %s of %s: %w", r.CycleID, identity, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating the cycle reports folder of %s: %w", identity, err)
	}
	if err := writeNewFile(dir, name+".json", append(raw, '\n')); err != nil {
		return fmt.Errorf("writing the report of cycle %s of %s: %w", r.CycleID, identity, err)
	}
	if err := pruneCycleReports(dir, MaxCycleReports); err != nil {
		return fmt.Errorf("removing old cycle reports of %s: %w", identity, err)
	}
	return nil
}

// writeNewFile writes name in dir through a temporary file of its own, so
// that concurrent writers never mix their bytes and a reader sees the old
// file or the new one, never part of one.
func writeNewFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// cycleReportFile is a report file with what orders it among the others.
type cycleReportFile struct {
	name   string
	report CycleReport
	err    error
	// at is the report's completion time, or the file's modification time
	// when it cannot be read.
	at time.Time
}

func readCycleReports(dir string) ([]cycleReportFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []cycleReportFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		f := cycleReportFile{name: name}
		f.report, f.err = readCycleReport(filepath.Join(dir, name))
		f.at = f.report.CompletionTime
		if f.err != nil {
			if info, err := e.Info(); err == nil {
				f.at = info.ModTime()
			}
		}
		files = append(files, f)
	}
	// Newest first; a retried cycle keeps its file name, so names break ties.
	slices.SortFunc(files, func(a, b cycleReportFile) int {
		return cmp.Or(b.at.Compare(a.at), b.report.StartTime.Compare(a.report.StartTime), strings.Compare(b.name, a.name))
	})
	return files, nil
}

func readCycleReport(path string) (CycleReport, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return CycleReport{}, err
	}
	var version struct {
		FormatVersion int `json:"formatVersion"`
	}
	if err := json.Unmarshal(raw, &version); err != nil {
		return CycleReport{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, filepath.Base(path), err)
	}
	if version.FormatVersion != CycleReportFormat {
		return CycleReport{}, fmt.Errorf("%w: %s has cycle report format %d, this build reads %d",
			ErrUnsupportedFormat, filepath.Base(path), version.FormatVersion, CycleReportFormat)
	}
	var r CycleReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return CycleReport{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, filepath.Base(path), err)
	}
	return r, nil
}

func pruneCycleReports(dir string, keep int) error {
	files, err := readCycleReports(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files[min(keep, len(files)):] {
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTempFile {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CycleReports returns the user's kept cycle reports, newest first, without
// taking the user's lock. A report that cannot be read (a newer format, a
// damaged file) is left out and named in the error; the others are returned
// all the same.
func (s *Store) CycleReports(identity string) ([]CycleReport, error) {
	dir, err := s.cycleReportsDir(identity)
	if err != nil {
		return nil, err
	}
	files, err := readCycleReports(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the cycle reports of %s: %w", identity, err)
	}
	var reports []CycleReport
	var errs []error
	for _, f := range files {
		if f.err != nil {
			errs = append(errs, f.err)
			continue
		}
		reports = append(reports, f.report)
	}
	if len(errs) > 0 {
		return reports, fmt.Errorf("reading the cycle reports of %s: %w", identity, errors.Join(errs...))
	}
	return reports, nil
}
