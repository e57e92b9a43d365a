package cycle

import (
	"errors"
	"strconv"
	"sync"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
	"github.com/chainsync/chainsync/internal/reports"
)

// rejectReports writes the rows cleansing set aside (a null or a duplicate key) into the user's
// record folder, where a person opens them to fix the export: <entity>.nullpk.csv and
// <entity>.duplicates.csv for the source's rows, <entity>.<target>.nullpk.csv and so on for the
// target's. Every cycle replaces them, so a report never outlives its problem.
type rejectReports struct {
	reports map[[2]string]*reports.RejectReport // by entity and endpoint name
	errs    []error
}

func newRejectReports(store *records.Store, identity string, policy engine.Policy) (*rejectReports, error) {
	r := &rejectReports{reports: map[[2]string]*reports.RejectReport{}}
	for _, e := range policy.Entities {
		var srcCols, tgtCols []string
		for _, f := range e.Fields {
			srcCols, tgtCols = append(srcCols, f.Source), append(tgtCols, f.Target)
		}
		for _, side := range []struct {
			endpoint, name string
			columns        []string
		}{{policy.Source.Name, e.Name, srcCols}, {policy.Target.Name, e.Name + "." + policy.Target.Name, tgtCols}} {
			nullKeys, err := store.ReportPath(identity, side.name, records.NullKeyReport)
			if err != nil {
				return nil, err
			}
			dups, err := store.ReportPath(identity, side.name, records.DuplicateReport)
			if err != nil {
				return nil, err
			}
			r.reports[[2]string{e.Name, side.endpoint}] = reports.NewRejectReport(nullKeys, dups, side.columns)
		}
	}
	return r, nil
}

// add is the engine's OnReject.
func (r *rejectReports) add(entity, endpoint string, rej delta.Rejected) {
	if rep, ok := r.reports[[2]string{entity, endpoint}]; ok {
		if err := rep.Add(rej); err != nil {
			r.errs = append(r.errs, err)
		}
	}
}

// close publishes the reports and removes those with no rows this cycle.
func (r *rejectReports) close() error {
	errs := r.errs
	for _, rep := range r.reports {
		errs = append(errs, rep.Close())
	}
	return errors.Join(errs...)
}

// rejectedRows collects, for one Job, the rows of the policy's csv exports that no user's read
// could tell to be anyone's (a ragged row, a cell that does not decode, no scope value): one
// report per endpoint and entity, exports/<policy>/<entity>[.<target>].rejected.csv in the
// store, replaced by every Job, so it never outlives its problem. Users are cycled at the same
// time and each read meets the same rows, so the reports are shared and deduplicated.
type rejectedRows struct {
	mu      sync.Mutex
	store   *records.Store
	policy  *syncv1alpha1.SyncPolicy
	reports map[[2]string]*reports.RowReport // by side and entity
	errs    []error
}

func newRejectedRows(store *records.Store, policy *syncv1alpha1.SyncPolicy) *rejectedRows {
	return &rejectedRows{store: store, policy: policy, reports: map[[2]string]*reports.RowReport{}}
}

// forUser returns the csv connector's OnRejectedRow for one user's read of side, and a count of
// the distinct rows that read rejected, for the user's status.
func (r *rejectedRows) forUser(side string) (func(entity string, row csv.RejectedRow), func() int) {
	seen := map[[3]string]bool{}
	var mu sync.Mutex
	add := func(entity string, row csv.RejectedRow) {
		mu.Lock()
		seen[[3]string{entity, row.File, strconv.Itoa(row.Line)}] = true
		mu.Unlock()
		r.add(side, entity, row)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	return add, count
}

func (r *rejectedRows) add(side, entity string, row csv.RejectedRow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep, err := r.report(side, entity)
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	if err := rep.Add(row); err != nil {
		r.errs = append(r.errs, err)
	}
}

// report is the Job's report of side's entity, started on first use: the export's
// exports/<policy>/<entity>[.<target>].rejected.csv.
func (r *rejectedRows) report(side, entity string) (*reports.RowReport, error) {
	key := [2]string{side, entity}
	if rep, ok := r.reports[key]; ok {
		return rep, nil
	}
	name := entity
	if side == "target" {
		name += "." + r.policy.Spec.Target.Name
	}
	path, err := r.store.ExportReportPath(r.policy.Name, name, records.RejectedRowsReport)
	if err != nil {
		return nil, err
	}
	rep := reports.NewRowReport(path)
	r.reports[key] = rep
	return rep, nil
}

// close publishes the reports. A report of an earlier Job whose rows are gone is removed by the
// next Job that reads the export clean: every entity of a csv side is closed, rows or none.
func (r *rejectedRows) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, side := range []string{"source", "target"} {
		ep := r.policy.Spec.Source
		if side == "target" {
			ep = r.policy.Spec.Target
		}
		if ep.CSV == nil {
			continue
		}
		for _, e := range r.policy.Spec.Entities {
			if _, err := r.report(side, e.Name); err != nil {
				r.errs = append(r.errs, err)
			}
		}
	}
	errs := r.errs
	for _, rep := range r.reports {
		errs = append(errs, rep.Close())
	}
	return errors.Join(errs...)
}
