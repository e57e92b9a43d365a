package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChainStep is one policy of a chain.
type ChainStep struct {
	// name identifies the step in status and in a SyncUser's chainRef.startAt, for example "import".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// policy is the SyncPolicy, in the chain's namespace, that syncs users on this step.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Policy string `json:"policy"`
}

// OnboardingChainSpec is an ordered list of policies that users move through.
type OnboardingChainSpec struct {
	// steps in order. A user whose cycle on a step comes back empty (no errors, skipped items,
	// creations or deletions) moves to the next step; the last step is where users stay.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.name == s.name))",message="step names must be unique"
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.policy == s.policy))",message="a policy can be only one step of a chain"
	Steps []ChainStep `json:"steps"`
}

// ChainStepStatus counts the users on one step.
type ChainStepStatus struct {
	// name of the step.
	// +required
	Name string `json:"name"`

	// policy of the step.
	// +required
	Policy string `json:"policy"`

	// users currently on this step.
	// +optional
	Users int32 `json:"users"`

	// failing users on this step whose last cycle failed.
	// +optional
	Failing int32 `json:"failing"`
}

// OnboardingChainStatus is what the operator observed of a chain.
type OnboardingChainStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Completed, and Reconciling or Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// steps counts users per step, in the spec's order.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Steps []ChainStepStatus `json:"steps,omitempty"`

	// users on the chain, on any step.
	// +optional
	Users int32 `json:"users"`

	// completedUsers reached the last step and synced clean there.
	// +optional
	CompletedUsers int32 `json:"completedUsers"`
}

// OnboardingChain is an ordered list of SyncPolicies. Users placed on it are synced by each policy
// in turn and move on by themselves after an empty cycle: migrations, imports and onboarding.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=chain,categories=chainsync
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Completed",type=integer,JSONPath=`.status.completedUsers`
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=`.status.users`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OnboardingChain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec lists the chain's steps.
	// +required
	Spec OnboardingChainSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status OnboardingChainStatus `json:"status,omitempty"`
}

// OnboardingChainList is a list of OnboardingChain.
// +kubebuilder:object:root=true
type OnboardingChainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OnboardingChain `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OnboardingChain{}, &OnboardingChainList{})
}
