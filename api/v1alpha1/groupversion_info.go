// Package v1alpha1 holds the chainsync API: SyncPolicy, OnboardingChain and SyncUser.
//
// +kubebuilder:object:generate=true
// +groupName=sync.chainsync.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every chainsync kind.
	GroupVersion = schema.GroupVersion{Group: "sync.chainsync.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the chainsync kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the chainsync kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
