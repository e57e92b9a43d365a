// Package scheme knows every kind chainsync reads or writes: Kubernetes' built-in kinds and the
// chainsync API.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// New returns a scheme with the Kubernetes built-in kinds and the chainsync kinds.
func New() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := syncv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}
