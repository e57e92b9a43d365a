package local

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestFreshWipesOnlyADataDirectoryChainsyncLocalMade(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "local")
	g.Expect(Prepare(dir, false)).To(Succeed())
	kept := filepath.Join(dir, "etcd", "member")
	g.Expect(os.MkdirAll(kept, 0o700)).To(Succeed())

	g.Expect(Prepare(dir, false)).To(Succeed())
	g.Expect(kept).To(BeADirectory(), "a start without --fresh keeps the data")
	g.Expect(Prepare(dir, true)).To(Succeed())
	g.Expect(kept).NotTo(BeADirectory(), "--fresh wipes it")
	g.Expect(dir).To(BeADirectory(), "and starts a new one")

	someoneElses := t.TempDir()
	precious := filepath.Join(someoneElses, "thesis.tex")
	g.Expect(os.WriteFile(precious, []byte("..."), 0o600)).To(Succeed())
	g.Expect(Prepare(someoneElses, true)).To(MatchError(ContainSubstring("not a chainsync local data directory")))
	g.Expect(precious).To(BeARegularFile(), "a directory chainsync local did not make is never wiped")

	g.Expect(Prepare(t.TempDir(), true)).To(Succeed(), "an empty directory is fine")
}
