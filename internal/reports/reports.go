// Package reports writes the files a person opens to fix an export: per user, the rows
// cleansing set aside (a null or a duplicate key) from any endpoint; per export, a csv file's
// rows that are no one's. They are plain UTF-8 comma-separated files whatever the export's own
// format, so any spreadsheet opens them, and each is replaced by the next cycle's, so a report
// never outlives its problem.
package reports

import (
	"bufio"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/delta"
)

// RejectReport writes the items that cleansing set aside (package delta) to
// the files a user opens to fix the export: <entity>.nullpk.csv for rows
// with a null key and <entity>.duplicates.csv for rows whose key is taken.
// They are plain UTF-8 comma-separated files with an "id" column and the
// entity's fields, whatever the export's own format, so any spreadsheet
// opens them. Each cycle replaces the previous cycle's reports; a report
// with no rows is removed, so a stale one never outlives the problem.
type RejectReport struct {
	paths   map[delta.RejectReason]string
	columns []string
	files   map[delta.RejectReason]*reportFile
}

type reportFile struct {
	tmp  *os.File
	buf  *bufio.Writer
	w    *stdcsv.Writer
	rows int
}

// NewRejectReport starts the reports of one entity: nullKeyPath and
// duplicatesPath are where they go (records.Store.ReportPath gives the
// user's <entity>.nullpk.csv and <entity>.duplicates.csv). columns are the
// fields to show, in order.
func NewRejectReport(nullKeyPath, duplicatesPath string, columns []string) *RejectReport {
	return &RejectReport{
		paths:   map[delta.RejectReason]string{delta.NullKey: nullKeyPath, delta.Duplicate: duplicatesPath},
		columns: columns, files: map[delta.RejectReason]*reportFile{},
	}
}

// Add writes one rejected item. It has the shape of delta's onReject
// callback except for the error, which the caller keeps for Close.
func (r *RejectReport) Add(rej delta.Rejected) error {
	f, err := r.file(rej.Reason)
	if err != nil {
		return err
	}
	rec := make([]string, 0, len(r.columns)+1)
	rec = append(rec, rej.Entry.ID)
	for _, col := range r.columns {
		rec = append(rec, rej.Entry.Fields[col].Text)
	}
	f.rows++
	return f.w.Write(rec)
}

func (r *RejectReport) file(reason delta.RejectReason) (*reportFile, error) {
	if f, ok := r.files[reason]; ok {
		return f, nil
	}
	dst, ok := r.paths[reason]
	if !ok {
		return nil, fmt.Errorf("no report file for %s", reason)
	}
	f, err := newReportFile(dst, append([]string{"id"}, r.columns...))
	if err != nil {
		return nil, fmt.Errorf("creating the %s report: %w", reason, err)
	}
	r.files[reason] = f
	return f, nil
}

// Close publishes the reports atomically and removes those of reasons that
// had no rows this time.
func (r *RejectReport) Close() error {
	var errs []error
	for _, reason := range []delta.RejectReason{delta.NullKey, delta.Duplicate} {
		errs = append(errs, publishReport(r.files[reason], r.paths[reason]))
	}
	r.files = map[delta.RejectReason]*reportFile{}
	return errors.Join(errs...)
}

// RowReport writes the rows an export's reads could give to no user
// (RejectedRow) to one file, the export's <entity>.rejected.csv, and counts
// them. Like RejectReport's files it is plain UTF-8 comma-separated, holds
// what one cycle found, and is removed when that is nothing; its columns
// are "line" and "reason", then the export's own columns, with a row's
// extra cells, if any, after them.
//
// One report is for one entity's file. Every read of the file finds the
// same rows, so a row added again (same file and line) is ignored, and
// Rows counts each row once however many users' reads fed the report.
type RowReport struct {
	path string
	f    *reportFile
	seen map[rowRef]bool
}

type rowRef struct {
	file string
	line int
}

// NewRowReport starts a rejected rows report that Close publishes at path.
func NewRowReport(path string) *RowReport {
	return &RowReport{path: path, seen: map[rowRef]bool{}}
}

// Add writes one rejected row. It fits csv.Config.OnRejectedRow except for
// the error, which the caller keeps for Close.
func (r *RowReport) Add(row csv.RejectedRow) error {
	ref := rowRef{row.File, row.Line}
	if r.seen[ref] {
		return nil
	}
	r.seen[ref] = true
	if r.f == nil {
		f, err := newReportFile(r.path, append([]string{"line", "reason"}, row.Header...))
		if err != nil {
			return fmt.Errorf("creating the rejected rows report: %w", err)
		}
		r.f = f
	}
	r.f.rows++
	return r.f.w.Write(append([]string{strconv.Itoa(row.Line), row.Reason}, row.Cells...))
}

// Rows is how many distinct rows were added: the number of the export's
// rows that no one's cycle syncs because they are malformed and no one's.
func (r *RowReport) Rows() int { return len(r.seen) }

// Close publishes the report atomically, or removes the previous one when
// there were no rows.
func (r *RowReport) Close() error {
	err := publishReport(r.f, r.path)
	r.f = nil
	return err
}

// newReportFile starts a report beside dst with its header row.
func newReportFile(dst string, header []string) (*reportFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return nil, err
	}
	buf := bufio.NewWriter(tmp)
	f := &reportFile{tmp: tmp, buf: buf, w: stdcsv.NewWriter(buf)}
	if err := f.w.Write(header); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return f, nil
}

// publishReport renames f over dst, or removes dst when f is nil: a report
// with no rows never outlives its problem.
func publishReport(f *reportFile, dst string) error {
	if f == nil {
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	f.w.Flush()
	if err := errors.Join(f.w.Error(), f.buf.Flush(), f.tmp.Chmod(0o644)); err != nil {
		f.tmp.Close()
		os.Remove(f.tmp.Name())
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	// Renamed without syncing: a report lost to a crash is written again by the next cycle.
	if err := errors.Join(f.tmp.Close(), os.Rename(f.tmp.Name(), dst)); err != nil {
		os.Remove(f.tmp.Name())
		return fmt.Errorf("replacing %s: %w", dst, err)
	}
	return nil
}
