// Package config carries the manifests that the chainsync binary itself applies: the CRDs, and
// the ClusterRole that cycle Jobs run with. `chainsync local` installs them without a checkout of
// the repository; kustomize reads the same files for a real cluster.
package config

import (
	"embed"
	"fmt"
	"io/fs"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

//go:embed crd/bases/*.yaml
var crdFiles embed.FS

//go:embed rbac/cycle_role.yaml
var cycleRole []byte

// CRDs returns the CustomResourceDefinitions of config/crd/bases.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	paths, err := fs.Glob(crdFiles, "crd/bases/*.yaml")
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, path := range paths {
		raw, err := crdFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, crd); err != nil {
			return nil, fmt.Errorf("reading CRD %s: %w", path, err)
		}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		crds = append(crds, crd)
	}
	return crds, nil
}

// CycleClusterRole returns the ClusterRole chainsync-cycle of config/rbac/cycle_role.yaml: what a
// cycle Job may do, bound per namespace to the Jobs' ServiceAccount.
func CycleClusterRole() (*rbacv1.ClusterRole, error) {
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(cycleRole, role); err != nil {
		return nil, fmt.Errorf("reading config/rbac/cycle_role.yaml: %w", err)
	}
	role.SetGroupVersionKind(rbacv1.SchemeGroupVersion.WithKind("ClusterRole"))
	return role, nil
}
