package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EndpointSide names one endpoint of a SyncPolicy.
// +kubebuilder:validation:Enum=Source;Target
type EndpointSide string

const (
	// SourceSide is a policy's spec.source.
	SourceSide EndpointSide = "Source"
	// TargetSide is a policy's spec.target.
	TargetSide EndpointSide = "Target"
)

// RemovalAction is what happens to a generated SyncUser once its member left every source.
// +kubebuilder:validation:Enum=Suspend;Delete
type RemovalAction string

const (
	// SuspendRemoved keeps the SyncUser, suspended: no cycle runs for it, its records and its
	// place on the chain are kept, and it resumes if the member comes back.
	SuspendRemoved RemovalAction = "Suspend"
	// DeleteRemoved deletes the SyncUser; its records go as its recordsOnDelete says.
	DeleteRemoved RemovalAction = "Delete"
)

// MemberIdentityFields says which fields of a member row give the user's identity.
// +kubebuilder:validation:XValidation:rule="has(self.email) || has(self.name)",message="identity needs an email or a name field"
type MemberIdentityFields struct {
	// email is the field holding the user's email address.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Email string `json:"email,omitempty"`

	// name is the field holding the user's account or subject name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`

	// attributes maps identity attribute names to the fields holding them, for policies whose
	// scope matches attributes (an employee number, a department).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 63 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="attribute names must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].size() >= 1 && self[k].size() <= 128)",message="attribute fields must be 1 to 128 characters"
	Attributes map[string]string `json:"attributes,omitempty"`
}

// EnrolmentSource reads members from a collection of one endpoint of a SyncPolicy: its
// connection, Secrets, volumes and Job settings are the policy's, so nothing is declared twice.
type EnrolmentSource struct {
	// policyRef names the SyncPolicy, in this namespace, whose endpoint holds the members. A
	// Job of that policy's jobTemplate reads them.
	// +required
	PolicyRef PolicyReference `json:"policyRef"`

	// endpoint is the policy's side to read: Source (default) or Target.
	// +optional
	// +kubebuilder:default=Source
	Endpoint EndpointSide `json:"endpoint,omitempty"`

	// collection is the file (csv), table or view (sql), or collection name (ldap, scim, http)
	// holding one row per member. An LDAP group's members are an ldap collection whose filter
	// is the group's, memberOf for example.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Collection string `json:"collection"`

	// keyFields identify a member across reads, so a member whose email changes is the same
	// user renamed, not a new one: an employee number, an account ID.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	KeyFields []string `json:"keyFields"`

	// where selects the member rows (sql connectors only), for example "department = 'Sales'
	// AND active". It has no user parameters.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Where string `json:"where,omitempty"`

	// identity says which fields of a row give the user's identity.
	// +required
	Identity MemberIdentityFields `json:"identity"`

	// interval between reads of the source, as a Go duration ("10m", "1h"); 10m by default. A new
	// sync.chainsync.dev/requested-at value on the enrolment reads it at once.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(s|m|h))+$`
	Interval string `json:"interval,omitempty"`
}

// EnrolmentRemovals guards the removal of generated users whose members left the sources, as
// the delete threshold guards deletes: a refresh that would remove more than maxCount users, or
// more than maxPercent of those managed, removes none until a person approves.
type EnrolmentRemovals struct {
	// action for a user whose member left: Suspend (default) keeps it, suspended; Delete
	// deletes the SyncUser.
	// +optional
	// +kubebuilder:default=Suspend
	Action RemovalAction `json:"action,omitempty"`

	// maxCount is the most users one refresh removes without approval; 10 by default.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	MaxCount *int32 `json:"maxCount,omitempty"`

	// maxPercent is the largest share of the managed users one refresh removes without
	// approval; 10 by default.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxPercent *int32 `json:"maxPercent,omitempty"`
}

// SyncEnrolmentSpec says who to enrol and where to place them.
// +kubebuilder:validation:XValidation:rule="has(self.policyRef) != has(self.chainRef)",message="set exactly one of policyRef or chainRef"
// +kubebuilder:validation:XValidation:rule="has(self.users) || has(self.selector) || has(self.source)",message="set at least one of users, selector or source"
type SyncEnrolmentSpec struct {
	// policyRef places the enrolled users on one SyncPolicy.
	// +optional
	PolicyRef *PolicyReference `json:"policyRef,omitempty"`

	// chainRef places the enrolled users on an OnboardingChain, at its first step or startAt.
	// +optional
	ChainRef *ChainReference `json:"chainRef,omitempty"`

	// users are members listed here.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Users []UserIdentity `json:"users,omitempty"`

	// selector enrols the identities of the SyncUsers in this namespace that it matches (users
	// placed elsewhere, by hand or by another tool). Those SyncUsers are read, never changed.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// source reads members from an endpoint's collection, on a schedule.
	// +optional
	Source *EnrolmentSource `json:"source,omitempty"`

	// removals guards what happens to users whose members left.
	// +optional
	// +kubebuilder:default={}
	Removals EnrolmentRemovals `json:"removals,omitzero"`

	// recordsOnDelete is given to the generated SyncUsers: what happens to a user's records
	// when its SyncUser is deleted.
	// +optional
	// +kubebuilder:default=Retain
	RecordsOnDelete RecordsOnDelete `json:"recordsOnDelete,omitempty"`

	// suspend stops the enrolment: no source is read, no user created, changed or removed.
	// The users it made go on syncing.
	// +optional
	// +kubebuilder:default=false
	Suspend bool `json:"suspend,omitempty"`
}

// MemberSkipReason says why a member got no SyncUser.
// +kubebuilder:validation:Enum=AlreadyPlaced;InvalidIdentity;DuplicateIdentity;NameTaken
type MemberSkipReason string

const (
	// MemberAlreadyPlaced: a SyncUser this enrolment did not make already places the identity on
	// the same policy or chain; a second would sync the same mailbox twice.
	MemberAlreadyPlaced MemberSkipReason = "AlreadyPlaced"
	// MemberInvalidIdentity: the email is not an address, or the identity is empty or too long.
	MemberInvalidIdentity MemberSkipReason = "InvalidIdentity"
	// MemberDuplicateIdentity: another member has the same identity; the first one is enrolled.
	MemberDuplicateIdentity MemberSkipReason = "DuplicateIdentity"
	// MemberNameTaken: the SyncUser name the member would get belongs to an object this
	// enrolment did not make.
	MemberNameTaken MemberSkipReason = "NameTaken"
)

// SkippedMember is one member that got no SyncUser, and why.
type SkippedMember struct {
	// member names the member: its email or name, or its key in the source.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Member string `json:"member"`

	// reason is why it was skipped.
	// +required
	Reason MemberSkipReason `json:"reason"`

	// message explains the reason, naming the SyncUser in the way when there is one.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// SyncEnrolmentStatus is what the operator observed of an enrolment.
type SyncEnrolmentStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// members counts the distinct members found in users, selector and source.
	// +optional
	Members int32 `json:"members"`

	// managed counts the SyncUsers this enrolment made and keeps, removed ones included until
	// they are deleted.
	// +optional
	Managed int32 `json:"managed"`

	// suspended counts managed users suspended because their member left.
	// +optional
	Suspended int32 `json:"suspended,omitempty"`

	// skipped counts members that got no SyncUser; skippedMembers names the first of them.
	// +optional
	Skipped int32 `json:"skipped,omitempty"`

	// skippedMembers are the first members skipped, and why.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	SkippedMembers []SkippedMember `json:"skippedMembers,omitempty"`

	// pendingRemovals counts the users whose removal the threshold holds back.
	// +optional
	PendingRemovals int32 `json:"pendingRemovals,omitempty"`

	// pendingRemovalsID names the held removals: set the sync.chainsync.dev/approve-removals
	// annotation to it to let them go ahead. A different set of removals gets a different ID.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	PendingRemovalsID string `json:"pendingRemovalsID,omitempty"`

	// sourceReadTime is when the members of spec.source were last read.
	// +optional
	SourceReadTime *metav1.Time `json:"sourceReadTime,omitempty"`

	// nextSourceReadTime is when the source is read next.
	// +optional
	NextSourceReadTime *metav1.Time `json:"nextSourceReadTime,omitempty"`

	// sourceJob is the Job reading the source now, or the last one.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	SourceJob string `json:"sourceJob,omitempty"`

	// lastHandledRequestedAt is the last sync.chainsync.dev/requested-at value that started a
	// read of the source.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`
}

// SyncEnrolment places users on a policy or a chain from a list, a label selector over
// SyncUsers, or the rows of an endpoint's collection (an HR export, a table, a directory group),
// refreshed on a schedule. It creates and owns one SyncUser per member, labelled with its name,
// and never touches SyncUsers it did not create.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=enrol,categories=chainsync
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Managed",type=integer,JSONPath=`.status.managed`
// +kubebuilder:printcolumn:name="Skipped",type=integer,JSONPath=`.status.skipped`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncEnrolment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says who to enrol and where.
	// +required
	Spec SyncEnrolmentSpec `json:"spec"`

	// status counts the members and the users made for them.
	// +optional
	Status SyncEnrolmentStatus `json:"status,omitempty"`
}

// SyncEnrolmentList is a list of SyncEnrolment.
// +kubebuilder:object:root=true
type SyncEnrolmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncEnrolment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncEnrolment{}, &SyncEnrolmentList{})
}
