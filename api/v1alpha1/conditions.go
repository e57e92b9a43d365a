package v1alpha1

import "strings"

// Condition types. They follow kstatus: Ready is always present once an object has been
// reconciled; Reconciling and Stalled exist only while they are true, so tools such as Flux and
// Argo CD read "in progress" and "failed" without knowing chainsync.
const (
	// ReadyCondition is True when the object does what its spec asks.
	ReadyCondition = "Ready"

	// ReconcilingCondition is present (True) while the operator is still working towards the spec,
	// for example while a user's first cycle runs.
	ReconcilingCondition = "Reconciling"

	// StalledCondition is present (True) when the operator cannot make progress without a change
	// from a person: a missing reference, an invalid spec, a delete waiting for approval.
	StalledCondition = "Stalled"

	// SyncedCondition on a SyncUser is True when its last cycle finished without item errors.
	SyncedCondition = "Synced"

	// CompletedCondition on a SyncUser is True once it reached the last step of its chain and synced
	// clean there; on an OnboardingChain, once every one of its users has.
	CompletedCondition = "Completed"
)

// Reasons shared by every kind.
const (
	// ProgressingReason explains Reconciling while work towards the spec is under way.
	ProgressingReason = "Progressing"

	// InvalidSpecReason explains Stalled when the spec passed admission but cannot work, for
	// example a cron expression that does not parse.
	InvalidSpecReason = "InvalidSpec"

	// SuspendedReason explains Ready=False while spec.suspend is true.
	SuspendedReason = "Suspended"
)

// SyncPolicy reasons.
const (
	// SyncPolicyReadyReason: the policy is valid and its users' cycles are scheduled.
	SyncPolicyReadyReason = "PolicyReady"

	// SyncPolicySecretNotFoundReason: a Secret named by an endpoint does not exist or lacks a key.
	SyncPolicySecretNotFoundReason = "SecretNotFound"

	// SyncPolicyStoreNotFoundReason: the record store's PersistentVolumeClaim does not exist.
	SyncPolicyStoreNotFoundReason = "StoreNotFound"

	// SyncPolicySecretNotAllowedReason: a Secret named by an endpoint has not opted in to
	// chainsync (the CredentialsLabel), so its values are never read or mounted.
	SyncPolicySecretNotAllowedReason = "SecretNotAllowed"

	// SyncPolicyDestinationNotAllowedReason: an endpoint would send a Secret's values to a host
	// that the Secret's AllowedDestinationsAnnotation does not list.
	SyncPolicyDestinationNotAllowedReason = "DestinationNotAllowed"

	// SyncPolicyServiceAccountNotFoundReason: jobTemplate.serviceAccountName does not exist.
	SyncPolicyServiceAccountNotFoundReason = "ServiceAccountNotFound"

	// SyncPolicyServiceAccountNotAllowedReason: jobTemplate.serviceAccountName names a service
	// account without the CycleServiceAccountLabel, which cycle Jobs may not run as.
	SyncPolicyServiceAccountNotAllowedReason = "ServiceAccountNotAllowed"

	// SyncPolicyJobRejectedReason: the API server refused to create a cycle Job (an invalid
	// jobTemplate, a quota, an admission policy); its words are in the message.
	SyncPolicyJobRejectedReason = "JobRejected"
)

// OnboardingChain reasons.
const (
	// OnboardingChainReadyReason: every step's policy exists and is ready.
	OnboardingChainReadyReason = "ChainReady"

	// OnboardingChainPolicyNotFoundReason: a step names a SyncPolicy that does not exist.
	OnboardingChainPolicyNotFoundReason = "PolicyNotFound"

	// OnboardingChainMixedStoresReason: the steps' policies use different record stores, so a user
	// moving between them would lose its transaction records and be synced again from scratch.
	OnboardingChainMixedStoresReason = "MixedRecordStores"

	// OnboardingChainStepStuckReason: users cannot leave a step (failing users, or its policy is
	// suspended or not ready).
	OnboardingChainStepStuckReason = "StepStuck"

	// OnboardingChainCompletedReason: every user of the chain has completed it.
	OnboardingChainCompletedReason = "ChainCompleted"
)

// SyncUser reasons.
const (
	// SyncUserSyncedReason: the last cycle finished with no item errors.
	SyncUserSyncedReason = "CycleSucceeded"

	// SyncUserCycleFailedReason: the last cycle could not run (endpoint unreachable, bad
	// credentials) or ended with item errors.
	SyncUserCycleFailedReason = "CycleFailed"

	// SyncUserChainAdvancedReason: an empty cycle moved the user to the next step of its chain.
	SyncUserChainAdvancedReason = "ChainAdvanced"

	// SyncUserChainCompletedReason: the user synced clean on the last step of its chain.
	SyncUserChainCompletedReason = "ChainCompleted"

	// SyncUserPolicyNotFoundReason: the referenced SyncPolicy, OnboardingChain or start step does
	// not exist.
	SyncUserPolicyNotFoundReason = "PolicyNotFound"

	// SyncUserDestinationClaimedReason: another policy already syncs this user into the same
	// target endpoint; two would fight over the same items.
	SyncUserDestinationClaimedReason = "DestinationClaimed"

	// SyncUserDeleteThresholdExceededReason: a cycle would delete more than the policy allows; it
	// deleted nothing and waits for the approve-deletes annotation naming that cycle.
	SyncUserDeleteThresholdExceededReason = "DeleteThresholdExceeded"

	// SyncUserRecordsCorruptReason: the user's transaction records cannot be read; a person
	// inspects them and rebuilds them (reinit: clear).
	SyncUserRecordsCorruptReason = "RecordsCorrupt"

	// SyncUserItemsGivenUpReason: items failed on every allowed attempt; a person fixes them at
	// the endpoint and asks for another try (reinit: resync).
	SyncUserItemsGivenUpReason = "ItemsGivenUp"

	// SyncUserConflictsPendingReason: items changed on both sides wait for a person under the
	// Manual conflict rule.
	SyncUserConflictsPendingReason = "ConflictsPending"

	// SyncUserItemsQuarantinedReason: items matched more than one item on the other side at the
	// first cycle; a person removes the duplicates.
	SyncUserItemsQuarantinedReason = "ItemsQuarantined"

	// SyncUserJobFailedReason: the cycle Job meant to run the user failed (its backoff limit or
	// deadline) without a result for the user; it is retried with backoff.
	SyncUserJobFailedReason = "JobFailed"

	// SyncUserWaitingForCycleReason: the user is placed and waits for its first cycle.
	SyncUserWaitingForCycleReason = "WaitingForCycle"
)

// Why a cycle could not run, in a SyncUser's status.lastCycle.failureReason.
const (
	// CycleEndpointUnavailableReason: an endpoint could not be reached or read (network, server,
	// credentials refused, disk).
	CycleEndpointUnavailableReason = "EndpointUnavailable"

	// CycleInvalidSpecReason: the policy cannot work as written (a field, a table or a column
	// that does not exist); the message names the field.
	CycleInvalidSpecReason = InvalidSpecReason

	// CycleRecordsLockedReason: another cycle of the same user held its records too long.
	CycleRecordsLockedReason = "RecordsLocked"

	// CycleRecordsCorruptReason: the user's records cannot be read.
	CycleRecordsCorruptReason = "RecordsCorrupt"

	// CycleErrorReason: any other failure of the cycle itself.
	CycleErrorReason = "CycleError"
)

// Annotations a person (or a script) sets to ask for something now. Each takes a value, and a
// request is handled once per new value, so the same request can be made again with a new one.
const (
	// RequestedAtAnnotation on a SyncPolicy or SyncUser asks for a cycle now; any new value does.
	RequestedAtAnnotation = "sync.chainsync.dev/requested-at"

	// ApproveDeletesAnnotation on a SyncUser approves the deletes held back by the delete
	// threshold in the cycle whose ID is the value.
	ApproveDeletesAnnotation = "sync.chainsync.dev/approve-deletes"

	// ReinitAnnotation on a SyncUser re-initialises it: "resync" runs a Complete cycle against the
	// kept records; "clear" forgets the records and runs an Initial cycle that links by matchOn.
	// To ask for the same again, append "@" and anything new ("clear@2", "resync@$(date +%s)").
	// A request is handled by a cycle that carried it out: one that fails, or a dry run, leaves
	// it pending.
	ReinitAnnotation = "sync.chainsync.dev/reinit"
)

// ReinitKind is what a ReinitAnnotation value asks for ("resync", "clear"), without the suffix
// that makes a repeated request new.
func ReinitKind(value string) string {
	kind, _, _ := strings.Cut(value, "@")
	return kind
}

// Reinit values for ReinitAnnotation.
const (
	ReinitResync = "resync"
	ReinitClear  = "clear"
)

// What the owner of a Secret or a service account declares, so that a policy author cannot use
// them without that owner's consent: a policy may only name Secrets with CredentialsLabel, send
// their values only to the destinations they list, and run its Jobs only as a service account
// with CycleServiceAccountLabel.
const (
	// CredentialsLabel set to "true" on a Secret lets SyncPolicies of its namespace use it.
	CredentialsLabel = "sync.chainsync.dev/credentials"

	// AllowedDestinationsAnnotation on a Secret lists, separated by commas or white space, where
	// its values may be sent: "host", "host:port", "*.domain" (any subdomain), or a URL prefix
	// "https://host/path/" for URL-based endpoints. A Secret without it is sent nowhere.
	AllowedDestinationsAnnotation = "sync.chainsync.dev/allowed-destinations"

	// CycleServiceAccountLabel set to "true" on a ServiceAccount lets cycle Jobs run as it.
	CycleServiceAccountLabel = "sync.chainsync.dev/cycle"
)

// PolicyLabel is on every Job the operator launches for a policy, so a person can select them.
const PolicyLabel = "sync.chainsync.dev/policy"

// SyncEnrolment reasons, labels and annotations.
const (
	// SyncEnrolmentReadyReason: every member has a SyncUser, or a reason in status why not.
	SyncEnrolmentReadyReason = "Enrolled"

	// SyncEnrolmentReadingReason explains Reconciling while the first read of the source runs.
	SyncEnrolmentReadingReason = "ReadingSource"

	// SyncEnrolmentSourceFailedReason: the last read of the source failed; the members of the
	// read before it stand, and nobody is removed.
	SyncEnrolmentSourceFailedReason = "SourceReadFailed"

	// SyncEnrolmentPolicyNotFoundReason: the source's policyRef names no SyncPolicy.
	SyncEnrolmentPolicyNotFoundReason = "PolicyNotFound"

	// SyncEnrolmentRemovalsHeldReason: more removals than the threshold allows wait for approval.
	SyncEnrolmentRemovalsHeldReason = "RemovalsHeld"

	// EnrolmentLabel on a generated SyncUser names the SyncEnrolment that made and owns it.
	EnrolmentLabel = "sync.chainsync.dev/enrolment"

	// MemberKeyAnnotation on a generated SyncUser is the member it was made for: its key in the
	// source, or its identity when listed or selected.
	MemberKeyAnnotation = "sync.chainsync.dev/member"

	// ApproveRemovalsAnnotation on a SyncEnrolment approves the removals held back, named by the
	// value of its status.pendingRemovalsID.
	ApproveRemovalsAnnotation = "sync.chainsync.dev/approve-removals"
)
