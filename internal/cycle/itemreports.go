package cycle

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// The bounds of status.lastCycle.itemReports, as the API declares them: a handful of items that
// `kubectl describe` shows in full; `chainsync records show` has the rest.
const (
	statusItemReports   = 5
	statusReasonLength  = 512
	statusItemIDLength  = 256
	minRedactableSecret = 4
)

// outcomes names each kind of engine report in the record store's terms.
var outcomes = map[string]records.Outcome{
	engine.ReportError:                  records.OutcomeError,
	engine.ReportGivenUp:                records.OutcomeGivenUp,
	engine.ReportSkipped:                records.OutcomeWaitingToRetry,
	engine.ReportConflict:               records.OutcomeConflict,
	engine.ReportQuarantined:            records.OutcomeQuarantined,
	engine.ReportDeleteAwaitingApproval: records.OutcomeDeleteHeld,
	string(delta.NullKey):               records.OutcomeNullKey,
	string(delta.Duplicate):             records.OutcomeDuplicateKey,
	engine.ReportWouldCreate:            records.OutcomeWouldCreate,
	engine.ReportWouldUpdate:            records.OutcomeWouldUpdate,
	engine.ReportWouldDelete:            records.OutcomeWouldDelete,
}

// cycleReport turns the engine's item reports into the cycle report kept in the user's record
// folder: each item named on the policy's source and target, whichever side the engine reported
// it on, and every text scrubbed of the policy's Secret values and of passwords in connection
// strings, since endpoints' error messages end up in it.
func cycleReport(policy *syncv1alpha1.SyncPolicy, job string, started, ended time.Time, result engine.Result, err error,
	secrets secretValues) records.CycleReport {
	scrub := scrubber(secrets)
	rep := records.CycleReport{
		CycleID: job, Policy: policy.Name, Mode: string(widestMode(result)), DryRun: result.DryRun || policy.Spec.DryRun,
		StartTime: started, CompletionTime: ended, Items: []records.ItemReport{},
	}
	if err != nil {
		rep.Failure = scrub(err.Error())
	}
	source, target := policy.Spec.Source.Name, policy.Spec.Target.Name
	for _, e := range result.Entities {
		for _, r := range e.Reports {
			outcome, ok := outcomes[r.Kind]
			if !ok {
				outcome = records.OutcomeError // a kind this build does not know: shown rather than lost
			}
			this := records.ItemSide{Endpoint: r.Endpoint, Key: r.Key, ID: r.ID}
			other := records.ItemSide{Endpoint: r.OtherEndpoint, Key: r.OtherKey, ID: r.OtherID}
			item := records.ItemReport{Entity: e.Name, Outcome: outcome, Source: other, Target: this, Reason: scrub(r.Reason)}
			if r.Endpoint == source {
				item.Source, item.Target = this, other
			}
			item.Source.Endpoint, item.Target.Endpoint = source, target
			rep.Items = append(rep.Items, item)
		}
	}
	return rep
}

// passwordInText finds passwords in connection strings: URL user info (scheme://user:password@)
// and key=value settings (password=...).
var passwordInText = regexp.MustCompile(`(?i)(://[^:/@\s]*:)[^@\s]*(@)|((?:password|passwd|pwd)\s*=\s*)('[^']*'|"[^"]*"|[^\s;&]+)`)

// scrubber returns a function that removes the policy's Secret values, and passwords in
// connection strings, from a text.
func scrubber(secrets secretValues) func(string) string {
	var values []string
	for _, keys := range secrets {
		for _, v := range keys {
			if s := strings.TrimSpace(string(v)); len(s) >= minRedactableSecret {
				values = append(values, s)
			}
		}
	}
	// Longest first, so a value containing another is removed whole.
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return func(s string) string {
		for _, v := range values {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
		return passwordInText.ReplaceAllString(s, "${1}${3}[redacted]${2}")
	}
}

// statusItems is what status.lastCycle lists of a report: its first items (the report puts the
// most pressing first), within the API's bounds, and how many more there are.
func statusItems(rep records.CycleReport) ([]syncv1alpha1.CycleItemReport, int32) {
	rep.Items = slices.Clone(rep.Items)
	rep.Bound(statusItemReports)
	var items []syncv1alpha1.CycleItemReport
	for _, it := range rep.Items {
		items = append(items, syncv1alpha1.CycleItemReport{
			Entity:   it.Entity,
			Outcome:  syncv1alpha1.ItemOutcome(it.Outcome),
			SourceID: records.Shorten(cmp.Or(it.Source.ID, it.Source.Key), statusItemIDLength),
			TargetID: records.Shorten(cmp.Or(it.Target.ID, it.Target.Key), statusItemIDLength),
			Reason:   records.Shorten(it.Reason, statusReasonLength),
		})
	}
	return items, int32(rep.MoreItems)
}

// keepItemReports keeps the cycle's report in the user's record folder and lists its first items
// in the status. A report that cannot be kept is logged; the cycle's result stands.
func keepItemReports(log logr.Logger, store *records.Store, identity string, rep records.CycleReport, status *syncv1alpha1.CycleResult) {
	rep.Bound(records.MaxReportItems)
	if err := store.PutCycleReport(identity, rep); err != nil {
		log.Error(err, "Keeping the cycle's item report")
	}
	status.ItemReports, status.MoreItemReports = statusItems(rep)
}
