package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chainsync/chainsync/internal/testenv"
)

// TestBaseImagesArePinnedByDigest fails when a Dockerfile builds on an image named only by a tag:
// a tag can be moved to other content by whoever controls the registry, a digest cannot.
func TestBaseImagesArePinnedByDigest(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var dockerfiles []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking, as test scratch files are
		}
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if name := d.Name(); !d.IsDir() && (name == "Dockerfile" || strings.HasPrefix(name, "Dockerfile.") ||
			strings.HasSuffix(name, ".Dockerfile")) {
			dockerfiles = append(dockerfiles, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dockerfiles) == 0 {
		t.Fatal("no Dockerfile found in the repository")
	}
	for _, p := range dockerfiles {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		for _, problem := range unpinnedBaseImages(string(b)) {
			t.Errorf("%s: %s", rel, problem)
		}
	}
}

func TestUnpinnedBaseImages(t *testing.T) {
	const digest = "@sha256:3c3e25a4da13fd0478eed2df1eb35a0e667094a7124d3993a6a1d30f71c17e79"
	for _, tc := range []struct {
		name       string
		dockerfile string
		problems   int
	}{
		{"tag and digest", "FROM golang:1.26.8" + digest + " AS build\nFROM build\n", 0},
		{"lower case, platform flag", "from --platform=$BUILDPLATFORM golang:1.26.8" + digest + " as build\n", 0},
		{"registry with a port", "FROM localhost:5000/tools/go:1.26" + digest + "\n", 0},
		{"scratch has no digest", "FROM scratch\n", 0},
		{"a later stage builds on an earlier one", "FROM golang:1.26" + digest + " AS build\nFROM build AS test\n", 0},
		{"tag only", "FROM golang:1.26 AS build\n", 1},
		{"digest only", "FROM golang" + digest + "\n", 1},
		{"short digest", "FROM golang:1.26@sha256:3c3e25a4\n", 1},
		{"upper-case digest", "FROM golang:1.26" + strings.ToUpper(digest) + "\n", 1},
		{"image from a build argument", "ARG BASE=golang:1.26\nFROM ${BASE}\n", 1},
		{"second stage unpinned", "FROM golang:1.26" + digest + " AS build\nFROM gcr.io/distroless/static-debian12:nonroot\n", 1},
		{"stage name used before it is defined", "FROM build\nFROM golang:1.26" + digest + " AS build\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unpinnedBaseImages(tc.dockerfile); len(got) != tc.problems {
				t.Errorf("got %d problems %q, want %d", len(got), got, tc.problems)
			}
		})
	}
}

// digestSuffix ends a reference pinned to the sha256 digest of its content.
var digestSuffix = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// unpinnedBaseImages describes each FROM of a Dockerfile whose image is not named by both a tag
// and a digest. FROM scratch and FROM an earlier stage name nothing to pin.
func unpinnedBaseImages(dockerfile string) []string {
	var problems []string
	stages := map[string]bool{}
	lines := bufio.NewScanner(strings.NewReader(dockerfile))
	for n := 1; lines.Scan(); n++ {
		fields := strings.Fields(lines.Text())
		if len(fields) == 0 || !strings.EqualFold(fields[0], "FROM") {
			continue
		}
		args := fields[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			problems = append(problems, fmt.Sprintf("line %d: FROM names no image", n))
			continue
		}
		image := args[0]
		if image != "scratch" && !stages[strings.ToLower(image)] && !hasTagAndDigest(image) {
			problems = append(problems, fmt.Sprintf("line %d: %s is not pinned as image:tag@sha256:<64 hex digits>", n, image))
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return problems
}

func hasTagAndDigest(image string) bool {
	if !digestSuffix.MatchString(image) {
		return false
	}
	name := strings.TrimSuffix(image, digestSuffix.FindString(image))
	// The tag follows the last colon of the last path segment; a colon before a slash is a
	// registry's port.
	lastSegment := name[strings.LastIndex(name, "/")+1:]
	tag := lastSegment[strings.LastIndex(lastSegment, ":")+1:]
	return strings.Contains(lastSegment, ":") && tag != ""
}
