// Package verify holds checks on the repository itself rather than on any one package.
package verify

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chainsync/chainsync/internal/testenv"
)

// generatedPaths are what `make manifests generate` writes.
var generatedPaths = []string{
	"api/v1alpha1/zz_generated.deepcopy.go",
	"config/crd/bases",
	"config/rbac/role.yaml",
}

// TestGeneratedFilesAreCurrent regenerates the CRDs, RBAC and deepcopy code in a copy of the
// repository and fails when the committed output differs: a stale CRD would reject or silently
// drop fields that the Go types have.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating takes a minute; not in -short mode")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := copyTree(root, work); err != nil {
		t.Fatalf("copying the repository: %v", err)
	}
	cmd := exec.Command("make", "--no-print-directory", "manifests", "generate")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make manifests generate: %v\n%s", err, out)
	}
	for _, p := range generatedPaths {
		compareTrees(t, filepath.Join(root, p), filepath.Join(work, p), p)
	}
}

func compareTrees(t *testing.T, committed, regenerated, name string) {
	t.Helper()
	want := readTree(t, regenerated)
	got := readTree(t, committed)
	for file, content := range want {
		if c, ok := got[file]; !ok {
			t.Errorf("%s: %s is missing; run `make manifests generate` and commit the result", name, file)
		} else if !bytes.Equal(c, content) {
			t.Errorf("%s: %s is stale; run `make manifests generate` and commit the result", name, file)
		}
	}
	for file := range got {
		if _, ok := want[file]; !ok {
			t.Errorf("%s: %s is no longer generated; delete it", name, file)
		}
	}
}

func readTree(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(path, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return out
}

// copyTree copies the sources needed to generate: everything but version control, build output
// and the separate control-plane tools module.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			switch rel {
			case ".git", "bin", filepath.Join("hack", "tools"):
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, "~") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
}
