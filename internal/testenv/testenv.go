// Package testenv starts a real kube-apiserver and etcd (controller-runtime's envtest) with the
// chainsync CRDs installed, for integration tests and `chainsync local`.
//
// The binaries are built from pinned Go modules by hack/envtest.sh, because they cannot be
// downloaded on our machines. KUBEBUILDER_ASSETS names their directory when set (make test sets
// it); otherwise the script is run, so a plain `go test ./...` works too.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

// Env is a running control plane with the chainsync CRDs installed.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a direct (uncached) client: tests assert on what the server holds.
	Client client.Client
	// Scheme knows the built-in kinds and chainsync's.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

// Start starts kube-apiserver and etcd and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	scheme, err := chainsyncscheme.New()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the test control plane from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a client for the test control plane: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// Stop stops the control plane and removes its data.
func (e *Env) Stop() error {
	return e.env.Stop()
}

// Assets returns the directory holding kube-apiserver, etcd and kubectl: KUBEBUILDER_ASSETS when
// set, or what hack/envtest.sh builds or finds in its cache.
func Assets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "envtest.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane with hack/envtest.sh (run `make envtest` to see why): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// RepoRoot finds the repository root: the nearest directory above the working directory whose
// go.mod declares the chainsync module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/chainsync/chainsync\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no chainsync go.mod above the working directory")
		}
		dir = parent
	}
}
