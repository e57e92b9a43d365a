package csv

import (
	"bufio"
	stdcsv "encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating the %s report: %w", reason, err)
	}
	buf := bufio.NewWriter(tmp)
	f := &reportFile{tmp: tmp, buf: buf, w: stdcsv.NewWriter(buf)}
	r.files[reason] = f
	if err := f.w.Write(append([]string{"id"}, r.columns...)); err != nil {
		return nil, err
	}
	return f, nil
}

// Close publishes the reports atomically and removes those of reasons that
// had no rows this time.
func (r *RejectReport) Close() error {
	var errs []error
	for _, reason := range []delta.RejectReason{delta.NullKey, delta.Duplicate} {
		dst := r.paths[reason]
		f, ok := r.files[reason]
		if !ok {
			if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		f.w.Flush()
		if err := errors.Join(f.w.Error(), f.buf.Flush(), f.tmp.Chmod(0o644)); err != nil {
			f.tmp.Close()
			os.Remove(f.tmp.Name())
			errs = append(errs, fmt.Errorf("writing %s: %w", dst, err))
			continue
		}
		if err := replaceFile(f.tmp, dst); err != nil {
			os.Remove(f.tmp.Name())
			errs = append(errs, err)
		}
	}
	r.files = map[delta.RejectReason]*reportFile{}
	return errors.Join(errs...)
}
