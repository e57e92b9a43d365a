package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RecordsOnDelete says what happens to a user's transaction records when its SyncUser is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type RecordsOnDelete string

const (
	// RetainRecords keeps the records, so adding the user back later creates nothing twice.
	RetainRecords RecordsOnDelete = "Retain"
	// DeleteRecords removes the records; the synced items themselves are left on both sides.
	DeleteRecords RecordsOnDelete = "Delete"
)

// CycleMode is how a cycle compared the two sides.
// +kubebuilder:validation:Enum=Initial;Complete;Incremental
type CycleMode string

const (
	// InitialCycle is a user's first cycle on a sync pair: items on both sides are linked by matchOn.
	InitialCycle CycleMode = "Initial"
	// CompleteCycle compares everything on both sides with the records, deletes included.
	CompleteCycle CycleMode = "Complete"
	// IncrementalCycle reads only what changed since the last cycle.
	IncrementalCycle CycleMode = "Incremental"
)

// UserIdentity says who the user is on the endpoints. Connectors use it to select the user's items.
// +kubebuilder:validation:XValidation:rule="has(self.email) || has(self.name)",message="identity needs an email or a name"
type UserIdentity struct {
	// email address of the user, for example the mailbox to sync.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	Email string `json:"email,omitempty"`

	// name of the user as the endpoints know it: an account or subject name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// attributes are further values that a policy's scope can match, for example an employee number.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 63 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="attribute names must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].size() <= 1024)",message="attribute values must be at most 1024 characters"
	Attributes map[string]string `json:"attributes,omitempty"`
}

// PolicyReference names a SyncPolicy in the user's namespace.
type PolicyReference struct {
	// name of the SyncPolicy.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ChainReference names an OnboardingChain in the user's namespace, and where on it to start.
type ChainReference struct {
	// name of the OnboardingChain.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// startAt is the step a new user starts on, to bypass earlier steps; the first step by default.
	// It counts only when the user is placed: changing it later does not move the user. A step
	// name the chain does not have leaves the user Stalled with PolicyNotFound.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	StartAt string `json:"startAt,omitempty"`
}

// SyncUserSpec places one user on a policy or a chain.
// +kubebuilder:validation:XValidation:rule="has(self.policyRef) != has(self.chainRef)",message="set exactly one of policyRef or chainRef"
type SyncUserSpec struct {
	// identity says who the user is on the endpoints.
	// +required
	Identity UserIdentity `json:"identity"`

	// policyRef places the user on one SyncPolicy.
	// +optional
	PolicyRef *PolicyReference `json:"policyRef,omitempty"`

	// chainRef places the user on an OnboardingChain, which moves it from policy to policy.
	// +optional
	ChainRef *ChainReference `json:"chainRef,omitempty"`

	// suspend stops new cycles for this user; a running one finishes.
	// +optional
	// +kubebuilder:default=false
	Suspend bool `json:"suspend,omitempty"`

	// recordsOnDelete is what happens to the user's transaction records when this object is
	// deleted: Retain (so adding the user back creates nothing twice) or Delete.
	// +optional
	// +kubebuilder:default=Retain
	RecordsOnDelete RecordsOnDelete `json:"recordsOnDelete,omitempty"`
}

// ItemCounts counts what a cycle did, or would do in a dry run.
type ItemCounts struct {
	// created items, on either side.
	// +optional
	Created int32 `json:"created"`
	// updated items, on either side.
	// +optional
	Updated int32 `json:"updated"`
	// deleted items, on either side.
	// +optional
	Deleted int32 `json:"deleted"`
	// skipped items: set aside by cleansing (null keys, duplicates) or given up after retries.
	// +optional
	Skipped int32 `json:"skipped"`
	// errors: items whose write failed this cycle; they are retried with backoff.
	// +optional
	Errors int32 `json:"errors"`
	// conflicts: items changed on both sides, settled by the policy's rule or left for a person.
	// +optional
	Conflicts int32 `json:"conflicts"`
	// quarantined items matched more than one item on the other side at the first cycle.
	// +optional
	Quarantined int32 `json:"quarantined"`
	// givenUp items failed on every allowed attempt and are not tried again until their content
	// changes or a person asks (reinit: resync); counted among errors too.
	// +optional
	GivenUp int32 `json:"givenUp,omitempty"`
}

// CycleResult is the outcome of one user's cycle.
type CycleResult struct {
	// id identifies the cycle; the approve-deletes annotation names it.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id,omitempty"`

	// policy that ran the cycle.
	// +optional
	Policy string `json:"policy,omitempty"`

	// job that ran the cycle.
	// +optional
	Job string `json:"job,omitempty"`

	// mode is how the cycle compared the two sides.
	// +optional
	Mode CycleMode `json:"mode,omitempty"`

	// startTime of the cycle.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime of the cycle.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// items counts what the cycle did.
	// +optional
	Items ItemCounts `json:"items,omitempty"`

	// pendingDeletes were held back by the delete threshold and wait for approval.
	// +optional
	PendingDeletes int32 `json:"pendingDeletes,omitempty"`

	// pendingDeletesCycle is the cycle that first held the deletes back: the value the
	// sync.chainsync.dev/approve-deletes annotation must have to approve them.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PendingDeletesCycle string `json:"pendingDeletesCycle,omitempty"`

	// dryRun is true when the cycle only computed what it would do.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// rejectedRows counts the rows of the policy's csv exports that this cycle's reads could
	// tell to be no one's (a ragged row without its owner's cell, say): they fail no user and
	// are listed, with their lines, in the record store's exports/<policy>/ reports.
	// +optional
	RejectedRows int32 `json:"rejectedRows,omitempty"`

	// reinit is the sync.chainsync.dev/reinit value this cycle carried out, or tried to: a
	// failed or dry-run cycle leaves the request pending, to be tried again on schedule.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reinit string `json:"reinit,omitempty"`

	// empty is true when the cycle had no errors, skipped items, creations or deletions: the
	// user is done with this policy and moves to the next step of its chain.
	// +optional
	Empty bool `json:"empty"`

	// failureReason is a machine-readable cause when the cycle could not run, for example
	// EndpointUnavailable or DestinationClaimed.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	FailureReason string `json:"failureReason,omitempty"`

	// failure says why the cycle could not run, for example an unreachable endpoint.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Failure string `json:"failure,omitempty"`

	// itemReports name the first items of the cycle a person may need to look at, the most
	// pressing first: items that failed or were given up, conflicts, quarantined items, deletes
	// held back, rows set aside by cleansing, writes waiting for a retry; in a dry run, then the
	// writes it would make. `chainsync records show` lists more of them, for the last cycles.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=5
	ItemReports []CycleItemReport `json:"itemReports,omitempty"`

	// moreItemReports counts the cycle's reported items that itemReports leaves out.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MoreItemReports int32 `json:"moreItemReports,omitempty"`
}

// ItemOutcome is what a cycle did with an item, or would do in a dry run.
// +kubebuilder:validation:Enum=Error;GivenUp;Conflict;Quarantined;DeleteHeld;NullKey;DuplicateKey;WaitingToRetry;WouldDelete;WouldCreate;WouldUpdate
type ItemOutcome string

const (
	// ItemFailed: reading or writing the item failed; a failed write is retried with backoff.
	ItemFailed ItemOutcome = "Error"
	// ItemGivenUp: writing the item failed as often as the policy allows; it is tried again only
	// when its content changes.
	ItemGivenUp ItemOutcome = "GivenUp"
	// ItemConflict: the item changed on both sides and the conflict rule is Manual.
	ItemConflict ItemOutcome = "Conflict"
	// ItemQuarantined: the item matched more than one item on the other side; it is not synced.
	ItemQuarantined ItemOutcome = "Quarantined"
	// ItemDeleteHeld: the delete threshold held the item's delete back until it is approved.
	ItemDeleteHeld ItemOutcome = "DeleteHeld"
	// ItemNullKey: cleansing set the item aside, as its key is empty.
	ItemNullKey ItemOutcome = "NullKey"
	// ItemDuplicateKey: cleansing set the item aside, as another item has the same key.
	ItemDuplicateKey ItemOutcome = "DuplicateKey"
	// ItemWaitingToRetry: a failed write of the item waits for its next attempt.
	ItemWaitingToRetry ItemOutcome = "WaitingToRetry"
	// ItemWouldDelete, ItemWouldCreate and ItemWouldUpdate are a dry run's plan.
	ItemWouldDelete ItemOutcome = "WouldDelete"
	ItemWouldCreate ItemOutcome = "WouldCreate"
	ItemWouldUpdate ItemOutcome = "WouldUpdate"
)

// CycleItemReport names one item of a cycle, what happened to it and why.
type CycleItemReport struct {
	// entity of the policy the item belongs to.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Entity string `json:"entity"`

	// outcome is what happened to the item: Error, GivenUp, Conflict, Quarantined, DeleteHeld,
	// NullKey, DuplicateKey or WaitingToRetry; in a dry run also WouldCreate, WouldUpdate or
	// WouldDelete.
	// +required
	Outcome ItemOutcome `json:"outcome"`

	// sourceID is the item's ID on the source endpoint, where known.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	SourceID string `json:"sourceID,omitempty"`

	// targetID is the item's ID on the target endpoint, where known: not for an item not yet
	// created there.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TargetID string `json:"targetID,omitempty"`

	// reason says why, in the words of the sync engine or of the endpoint, for example the
	// constraint a row broke.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Reason string `json:"reason,omitempty"`
}

// StepHistoryEntry records a user's time on one step.
type StepHistoryEntry struct {
	// step name, or empty for a user placed directly on a policy.
	// +optional
	Step string `json:"step,omitempty"`

	// policy of the step.
	// +required
	Policy string `json:"policy"`

	// enteredTime is when the user was placed on the step.
	// +optional
	EnteredTime *metav1.Time `json:"enteredTime,omitempty"`

	// completedTime is when an empty cycle moved the user on.
	// +optional
	CompletedTime *metav1.Time `json:"completedTime,omitempty"`
}

// SyncUserStatus is where a user is and how its last cycle went.
type SyncUserStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Synced, Completed, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// chain the user is on now; empty for a user placed directly on a policy.
	// +optional
	Chain string `json:"chain,omitempty"`

	// policy the user is on now.
	// +optional
	Policy string `json:"policy,omitempty"`

	// step of the chain the user is on now; empty for a user placed directly on a policy.
	// +optional
	Step string `json:"step,omitempty"`

	// stepIndex is the position of step in the chain, from 0.
	// +optional
	StepIndex int32 `json:"stepIndex,omitempty"`

	// lastCycle is the outcome of the user's latest cycle.
	// +optional
	LastCycle *CycleResult `json:"lastCycle,omitempty"`

	// history lists the steps passed, oldest first, bounded to the latest 20.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	History []StepHistoryEntry `json:"history,omitempty"`

	// lastCompleteTime is when the user's last Complete (or Initial) cycle ended: one that
	// compared everything, deletions included. The next is due spec.schedule.completeEvery later.
	// +optional
	LastCompleteTime *metav1.Time `json:"lastCompleteTime,omitempty"`

	// nextSyncTime is when the user's next scheduled cycle is due.
	// +optional
	NextSyncTime *metav1.Time `json:"nextSyncTime,omitempty"`

	// lastHandledRequestedAt is the requested-at annotation value last acted on.
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`

	// lastHandledReinit is the reinit annotation value last carried out by a cycle that
	// succeeded and wrote (not a dry run).
	// +optional
	LastHandledReinit string `json:"lastHandledReinit,omitempty"`
}

// UserPolicyField selects the SyncUsers on a policy (kubectl get syncusers --field-selector
// status.policy=NAME): a cycle reads its users with one List.
const UserPolicyField = "status.policy"

// SyncUser is one user (a mailbox, an account, a subject) placed on a SyncPolicy or an
// OnboardingChain. Its status shows where the user is and how its last cycle went.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=su,categories=chainsync
// +kubebuilder:selectablefield:JSONPath=`.status.policy`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Step",type=string,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.status.policy`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says who the user is and where to place it.
	// +required
	Spec SyncUserSpec `json:"spec"`

	// status is where the user is and how its last cycle went.
	// +optional
	Status SyncUserStatus `json:"status,omitempty"`
}

// SyncUserList is a list of SyncUser.
// +kubebuilder:object:root=true
type SyncUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncUser `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncUser{}, &SyncUserList{})
}
