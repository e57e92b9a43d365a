// Package controllers holds one controller per chainsync kind. The markers below are the
// permissions the manager needs; `make manifests` turns them into config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncpolicies;onboardingchains;syncusers,verbs=get;list;watch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncpolicies/status;onboardingchains/status;syncusers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.chainsync.dev,resources=syncusers/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups=batch,resources=jobs/status,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets;persistentvolumeclaims;serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
package controllers
