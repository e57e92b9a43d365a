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

// ItemReport tells a user about one item that was not synced as is.
type ItemReport struct {
	Endpoint string `json:"endpoint"`
	Key      string `json:"key"`
	ID       string `json:"id,omitempty"`
	// Kind is Error, Skipped, Conflict, Quarantined, NullKey, Duplicate or
	// DeleteAwaitingApproval.
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
// skipped items, no creations and no deletions (Riva's definition, which
// moves a user along an onboarding chain). Updates do not count. Conflicts,
// quarantined items and held-back deletes count as skipped, since they are
// left unsynced.
func (r Result) Empty() bool {
	t := r.Total
	return t.Errors == 0 && t.Skipped == 0 && t.Created == 0 && t.Deleted == 0
}
