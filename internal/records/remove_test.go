package records

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Deleting a user's records waits for its running cycle, takes the whole folder out of users/
// at once, and can be run again at every step.
func TestDetachUserThenPurge(t *testing.T) {
	g := NewWithT(t)
	s, err := Open(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	u, err := s.OpenUser("ann@x", OpenOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u.Update(func(tx *Tx) error { return tx.PutLink(contacts, link("a", "b")) })).To(Succeed())
	_, err = s.ReportPath("ann@x", "contacts", NullKeyReport)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(s.DetachUser("ann@x", 10*time.Millisecond)).To(MatchError(ErrLocked), "a cycle holds the records")
	g.Expect(u.Close()).To(Succeed())
	g.Expect(s.DetachUser("ann@x", time.Second)).To(Succeed())
	dir, _ := s.UserDir("ann@x")
	g.Expect(dir).NotTo(BeADirectory())
	g.Expect(s.Users()).To(BeEmpty())
	g.Expect(filepath.Join(s.Root(), detachedDir)).To(BeADirectory())

	g.Expect(s.DetachUser("ann@x", time.Second)).To(Succeed(), "again, as a retried deletion does")
	g.Expect(s.PurgeDetached()).To(Succeed())
	entries, err := os.ReadDir(filepath.Join(s.Root(), detachedDir))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(BeEmpty())
	g.Expect(s.PurgeDetached()).To(Succeed())

	_, err = s.OpenUser("ann@x", OpenOptions{ReadOnly: true})
	g.Expect(err).To(MatchError(ErrNoRecords))
}

// Records that no longer open are deleted like any others: deleting them is how a person starts
// over.
func TestDetachUserDeletesCorruptRecords(t *testing.T) {
	g := NewWithT(t)
	s, err := Open(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	dir, _ := s.UserDir("ann@x")
	g.Expect(os.MkdirAll(dir, 0o750)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, dbFile), []byte("not a database, and long enough to be read as one"), 0o640)).To(Succeed())
	_, err = s.OpenUser("ann@x", OpenOptions{})
	g.Expect(err).To(HaveOccurred())

	g.Expect(s.DetachUser("ann@x", time.Second)).To(Succeed())
	g.Expect(s.PurgeDetached()).To(Succeed())
	u, err := s.OpenUser("ann@x", OpenOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "fresh records")
	g.Expect(u.Close()).To(Succeed())
}

// A cycle that waited for the lock while the user's folder was taken out must not write into
// the detached file, where its records would be purged: it opens the user's records afresh.
func TestOpenUserWaitingWhileDetachedOpensFreshRecords(t *testing.T) {
	g := NewWithT(t)
	s, err := Open(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	u, err := s.OpenUser("ann@x", OpenOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u.Close()).To(Succeed())
	dir, _ := s.UserDir("ann@x")
	unlock, err := lockFile(filepath.Join(dir, dbFile), time.Second)
	g.Expect(err).NotTo(HaveOccurred())

	opened := make(chan error, 1)
	go func() {
		u, err := s.OpenUser("ann@x", OpenOptions{LockTimeout: 10 * time.Second})
		if err == nil {
			err = errors.Join(u.Update(func(tx *Tx) error { return tx.PutLink(contacts, link("a", "b")) }), u.Close())
		}
		opened <- err
	}()
	time.Sleep(200 * time.Millisecond) // the cycle now waits for the lock on the file it opened
	g.Expect(os.Rename(dir, filepath.Join(s.Root(), "gone"))).To(Succeed(), "what DetachUser does under the lock")
	unlock()
	g.Eventually(opened, 5*time.Second).Should(Receive(BeNil()))

	u, err = s.OpenUser("ann@x", OpenOptions{ReadOnly: true})
	g.Expect(err).NotTo(HaveOccurred(), "the cycle's records are in the user's folder")
	defer u.Close()
	g.Expect(u.View(func(tx *Tx) error {
		n, err := tx.CountLinks(contacts)
		g.Expect(n).To(Equal(1))
		return err
	})).To(Succeed())
}
