package cycle

import (
	"errors"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// rejectReports writes the rows cleansing set aside (a null or a duplicate key) into the user's
// record folder, where a person opens them to fix the export: <entity>.nullpk.csv and
// <entity>.duplicates.csv for the source's rows, <entity>.<target>.nullpk.csv and so on for the
// target's. Every cycle replaces them, so a report never outlives its problem.
type rejectReports struct {
	reports map[[2]string]*csv.RejectReport // by entity and endpoint name
	errs    []error
}

func newRejectReports(store *records.Store, identity string, policy *syncv1alpha1.SyncPolicy) (*rejectReports, error) {
	r := &rejectReports{reports: map[[2]string]*csv.RejectReport{}}
	for _, e := range policy.Spec.Entities {
		var srcCols, tgtCols []string
		for _, f := range e.Fields {
			srcCols, tgtCols = append(srcCols, f.Source), append(tgtCols, f.Target)
		}
		for _, side := range []struct {
			endpoint, name string
			columns        []string
		}{{policy.Spec.Source.Name, e.Name, srcCols}, {policy.Spec.Target.Name, e.Name + "." + policy.Spec.Target.Name, tgtCols}} {
			nullKeys, err := store.ReportPath(identity, side.name, records.NullKeyReport)
			if err != nil {
				return nil, err
			}
			dups, err := store.ReportPath(identity, side.name, records.DuplicateReport)
			if err != nil {
				return nil, err
			}
			r.reports[[2]string{e.Name, side.endpoint}] = csv.NewRejectReport(nullKeys, dups, side.columns)
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
