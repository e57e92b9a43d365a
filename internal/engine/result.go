package engine

// Mode is how an entity was compared.
type Mode string

const (
	// Initial: the user's first cycle on a pair; existing items are linked
	// by matchOn.
	Initial Mode = "Initial"
	// Complete: a full compare of both sides against the records.
	Complete Mode = "Complete"
	// Incremental: only the changes since the recorded watermarks.
	Incremental Mode = "Incremental"
)

// Counts are the numbers of one entity or of a whole cycle.
type Counts struct {
	Created     int `json:"created"`
	Updated     int `json:"updated"`
	Deleted     int `json:"deleted"`
	Skipped     int `json:"skipped"`
	Conflicts   int `json:"conflicts"`
	Errors      int `json:"errors"`
	Quarantined int `json:"quarantined"`
}

func (c *Counts) add(o Counts) {
	c.Created += o.Created
	c.Updated += o.Updated
	c.Deleted += o.Deleted
	c.Skipped += o.Skipped
	c.Conflicts += o.Conflicts
	c.Errors += o.Errors
	c.Quarantined += o.Quarantined
}

// Kinds of ItemReport.
const (
	// ReportError: reading or writing the item failed; a failed write is
	// retried with backoff.
	ReportError = "Error"
	// ReportGivenUp: writing the item failed on its last allowed attempt, or
	// had failed so before; it is not tried again until its content changes.
	ReportGivenUp = "GivenUp"
	// ReportSkipped: a failed write waiting for its next retry.
	ReportSkipped = "Skipped"
	// ReportConflict: changed on both sides under the Manual rule.
	ReportConflict = "Conflict"
	// ReportQuarantined: matched more than one item at the first cycle.
	ReportQuarantined = "Quarantined"
	// ReportDeleteAwaitingApproval: a delete held back by the threshold.
	ReportDeleteAwaitingApproval = "DeleteAwaitingApproval"
	// ReportWouldCreate, ReportWouldUpdate and ReportWouldDelete are a dry
	// run's plan: the writes it would have made.
	ReportWouldCreate = "WouldCreate"
	ReportWouldUpdate = "WouldUpdate"
	ReportWouldDelete = "WouldDelete"
)

// ItemReport tells a user about one item that was not synced as is, or that
// a dry run would write.
type ItemReport struct {
	// Endpoint, Key and ID name the item the report is about; for a write,
	// the item written (with no key or ID before it is created).
	Endpoint string `json:"endpoint"`
	Key      string `json:"key"`
	ID       string `json:"id,omitempty"`
	// OtherEndpoint, OtherKey and OtherID name the same item on the other
	// endpoint, where it is known: the item a write copies or follows, the
	// other side of a conflict.
	OtherEndpoint string `json:"otherEndpoint,omitempty"`
	OtherKey      string `json:"otherKey,omitempty"`
	OtherID       string `json:"otherID,omitempty"`
	// Kind is one of the Report constants, or a cleansing rejection
	// (delta.NullKey, delta.Duplicate).
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// EntityResult is the outcome for one entity.
type EntityResult struct {
	Name    string       `json:"name"`
	Mode    Mode         `json:"mode"`
	Counts  Counts       `json:"counts"`
	Reports []ItemReport `json:"reports,omitempty"`
}

// Result is the outcome of a cycle.
type Result struct {
	CycleID  string         `json:"cycleID"`
	DryRun   bool           `json:"dryRun,omitempty"`
	Entities []EntityResult `json:"entities"`
	Total    Counts         `json:"total"`
	// DeleteThresholdExceeded is set when the cycle's deletes exceeded the
	// policy's threshold: none was made, PendingDeletes lists them, and
	// they wait for Deletes.ApprovedCycle to name ApprovalCycle.
	DeleteThresholdExceeded bool         `json:"deleteThresholdExceeded,omitempty"`
	ApprovalCycle           string       `json:"approvalCycle,omitempty"`
	PendingDeletes          []ItemReport `json:"pendingDeletes,omitempty"`
}

// Empty reports whether the cycle had nothing left to do: no errors, no
// skipped items, no creations and no deletions: what moves a user along an
// onboarding chain. Updates do not count. Conflicts,
// quarantined items and held-back deletes count as skipped, since they are
// left unsynced.
func (r Result) Empty() bool {
	t := r.Total
	return t.Errors == 0 && t.Skipped == 0 && t.Created == 0 && t.Deleted == 0
}
