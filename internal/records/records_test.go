package records

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	bolt "go.etcd.io/bbolt"
)

var contacts, _ = PairOf(Endpoint{Name: "crm", Entity: "contacts"}, Endpoint{Name: "mail", Entity: "Contacts"})

func openUser(t *testing.T, s *Store, identity string) *User {
	t.Helper()
	u, err := s.OpenUser(identity, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func link(k0, k1 string) Link {
	return Link{Sides: [2]SideState{{Key: k0, ID: k0, Hash: "h0"}, {Key: k1, ID: k1, Hash: "h1"}}}
}

func TestPairIsTheSameWhicheverSideIsSource(t *testing.T) {
	g := NewWithT(t)
	a, b := Endpoint{Name: "crm", Entity: "contacts"}, Endpoint{Name: "mail", Entity: "Contacts"}
	p1, sideOfA := PairOf(a, b)
	p2, sideOfB := PairOf(b, a)
	g.Expect(p1).To(Equal(p2))
	g.Expect(sideOfA).To(Equal(Side(0)))
	g.Expect(sideOfB).To(Equal(Side(1)))
}

// Records survive closing and are found from either side, ordered by that
// side's key, which is what the delta merge walks.
func TestLinksAreFoundAndOrderedFromEitherSide(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	g.Expect(u.Update(func(tx *Tx) error {
		for _, l := range []Link{link("a", "z"), link("b", "y"), link("c", "x")} {
			if err := tx.PutLink(contacts, l); err != nil {
				return err
			}
		}
		// Relinking b to a new side-1 item drops the old index entry.
		return tx.PutLink(contacts, link("b", "w"))
	})).To(Succeed())
	u.Close()

	u = openUser(t, s, "ann@example.com")
	g.Expect(u.View(func(tx *Tx) error {
		var bySide1 []string
		for l, err := range tx.Links(contacts, 1) {
			g.Expect(err).NotTo(HaveOccurred())
			bySide1 = append(bySide1, l.Sides[1].Key)
		}
		g.Expect(bySide1).To(Equal([]string{"w", "x", "z"}))
		l, ok, err := tx.Link(contacts, 1, "x")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
		g.Expect(l.Sides[0].Key).To(Equal("c"))
		_, ok, _ = tx.Link(contacts, 1, "y")
		g.Expect(ok).To(BeFalse())
		return nil
	})).To(Succeed())
	g.Expect(u.Verify()).To(Succeed())
}

func TestOneWriterPerUser(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	first := openUser(t, s, "ann@example.com")
	_, err := s.OpenUser("ann@example.com", OpenOptions{LockTimeout: 50 * time.Millisecond})
	g.Expect(err).To(MatchError(ErrLocked))
	// Another user is not blocked.
	openUser(t, s, "bob@example.com")
	first.Close()
	openUser(t, s, "ann@example.com")
}

// A process killed while holding a user's records does not leave them
// locked: the lock is the kernel's and dies with the process.
func TestLockDiesWithItsProcess(t *testing.T) {
	if dir := os.Getenv("RECORDS_HOLD_LOCK"); dir != "" {
		s, _ := Open(dir)
		if _, err := s.OpenUser("ann@example.com", OpenOptions{}); err != nil {
			os.Exit(3)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	g := NewWithT(t)
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithItsProcess$")
	child.Env = append(os.Environ(), "RECORDS_HOLD_LOCK="+dir)
	out, _ := child.StdoutPipe()
	g.Expect(child.Start()).To(Succeed())
	buf := make([]byte, 6)
	_, err := out.Read(buf)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(buf)).To(Equal("locked"))

	s, _ := Open(dir)
	_, err = s.OpenUser("ann@example.com", OpenOptions{})
	g.Expect(err).To(MatchError(ErrLocked))

	g.Expect(child.Process.Signal(syscall.SIGKILL)).To(Succeed())
	child.Wait()
	u, err := s.OpenUser("ann@example.com", OpenOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	u.Close()
}

func TestCorruptRecordsAreReportedAndLeftAlone(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	g.Expect(u.Update(func(tx *Tx) error { return tx.PutLink(contacts, link("a", "b")) })).To(Succeed())
	u.Close()
	dir, _ := s.UserDir("ann@example.com")
	path := filepath.Join(dir, dbFile)
	data, _ := os.ReadFile(path)
	garbled := bytes.Clone(data)
	for i := range 2 * os.Getpagesize() { // both meta pages: bbolt survives one
		garbled[i] ^= 0x5a
	}
	g.Expect(os.WriteFile(path, garbled, 0o640)).To(Succeed())

	_, err := s.OpenUser("ann@example.com", OpenOptions{})
	g.Expect(err).To(MatchError(ErrCorrupt))
	g.Expect(err.Error()).To(ContainSubstring(path))
	after, _ := os.ReadFile(path)
	g.Expect(after).To(Equal(garbled), "corrupt records must not be overwritten")
}

func TestUndecodableLinkIsReportedByVerify(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	g.Expect(u.Update(func(tx *Tx) error {
		if err := tx.PutLink(contacts, link("a", "b")); err != nil {
			return err
		}
		return tx.tx.Bucket(bucketPairs).Bucket(pairKey(contacts)).Bucket(bucketLinks).Put([]byte("a"), []byte("{not json"))
	})).To(Succeed())
	g.Expect(u.Verify()).To(MatchError(ErrCorrupt))
}

func TestNewerFormatIsRefused(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	g.Expect(u.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("4")) })).To(Succeed())
	u.Close()
	_, err := s.OpenUser("ann@example.com", OpenOptions{})
	g.Expect(err).To(MatchError(ErrUnsupportedFormat))
}

// Records written by format 1 (intents' ops as numbers) are read as they are, and upgraded when
// a cycle opens them: an intent a crashed cycle left open is still settled.
func TestFormatOneIsReadAndUpgraded(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g.Expect(u.Update(func(tx *Tx) error { return tx.PutIntent(contacts, Intent{Op: OpCreate, Side: 1, SourceKey: "k1"}) })).To(Succeed())
	// As format 1 wrote it: the op a number, in the key and the value.
	g.Expect(u.db.Update(func(tx *bolt.Tx) error {
		intents := tx.Bucket(bucketPairs).Bucket(pairKey(contacts)).Bucket(bucketIntents)
		if err := intents.Delete([]byte("1\x00create\x00k1")); err != nil {
			return err
		}
		raw := fmt.Sprintf(`{"op":1,"side":1,"sourceKey":"k1","cycleID":"c1","at":%q}`, at.Format(time.RFC3339))
		if err := intents.Put([]byte("1\x001\x00k1"), []byte(raw)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte("1"))
	})).To(Succeed())
	u.Close()

	intents := func(u *User) []Intent {
		var out []Intent
		g.Expect(u.View(func(tx *Tx) error {
			for i, err := range tx.Intents(contacts) {
				if err != nil {
					return err
				}
				out = append(out, i)
			}
			return nil
		})).To(Succeed())
		return out
	}
	ro, err := s.OpenUser("ann@example.com", OpenOptions{ReadOnly: true})
	g.Expect(err).NotTo(HaveOccurred(), "format 1 is read")
	g.Expect(intents(ro)).To(ConsistOf(HaveField("Op", OpCreate)))
	ro.Close()

	rw := openUser(t, s, "ann@example.com")
	open := intents(rw)
	g.Expect(open).To(ConsistOf(And(HaveField("Op", OpCreate), HaveField("CycleID", "c1"), HaveField("At", at))))
	g.Expect(rw.Update(func(tx *Tx) error { return tx.DeleteIntent(contacts, open[0]) })).To(Succeed())
	g.Expect(intents(rw)).To(BeEmpty(), "the upgraded intent is found by its new key and settled")
	g.Expect(rw.db.View(func(tx *bolt.Tx) error {
		g.Expect(string(tx.Bucket(bucketMeta).Get(keyFormat))).To(Equal(fmt.Sprint(FormatVersion)))
		return nil
	})).To(Succeed())
}

func TestSecondPolicyCannotClaimTheSameUserAndTarget(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	g.Expect(s.ClaimTarget("ann@example.com", "mail", "onboarding", now)).To(Succeed())
	g.Expect(s.ClaimTarget("ann@example.com", "mail", "onboarding", now)).To(Succeed())
	err := s.ClaimTarget("ann@example.com", "mail", "daily", now)
	g.Expect(err).To(MatchError(ErrClaimed))
	g.Expect(err.Error()).To(ContainSubstring(`"onboarding"`))
	g.Expect(s.ClaimTarget("bob@example.com", "mail", "daily", now)).To(Succeed())
	g.Expect(s.ClaimTarget("ann@example.com", "crm", "daily", now)).To(Succeed())

	g.Expect(s.ReleaseTarget("ann@example.com", "mail", "daily")).To(Succeed()) // not the holder
	g.Expect(s.ClaimTarget("ann@example.com", "mail", "daily", now)).To(MatchError(ErrClaimed))
	g.Expect(s.ReleaseTarget("ann@example.com", "mail", "onboarding")).To(Succeed())
	g.Expect(s.ClaimTarget("ann@example.com", "mail", "daily", now)).To(Succeed())
	claims, err := s.Claims()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims).To(HaveLen(3))
}

func TestUsersListAndCopy(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "Ann@Example.com")
	g.Expect(u.Update(func(tx *Tx) error { return tx.PutLink(contacts, link("a", "b")) })).To(Succeed())
	g.Expect(u.CopyTo(s, "ann.new@example.com")).To(Succeed())
	g.Expect(u.CopyTo(s, "ann.new@example.com")).To(MatchError(ContainSubstring("already has records")))
	users, err := s.Users()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(ConsistOf("Ann@Example.com", "ann.new@example.com"))

	copied := openUser(t, s, "ann.new@example.com")
	export, err := copied.Export()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(export.Identity).To(Equal("ann.new@example.com"))
	g.Expect(export.Pairs).To(HaveLen(1))
	g.Expect(export.Pairs[0].Links).To(HaveLen(1))
}

func TestReportPathStaysInTheUsersFolder(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	dir, _ := s.UserDir("ann@example.com")
	p, err := s.ReportPath("ann@example.com", "../../contacts", NullKeyReport)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.HasPrefix(p, filepath.Join(dir, reportsDir)+string(filepath.Separator))).To(BeTrue())
	p, _ = s.ReportPath("ann@example.com", "contacts", DuplicateReport)
	g.Expect(filepath.Base(p)).To(Equal("contacts.duplicates.csv"))
}

func TestDirNameExamples(t *testing.T) {
	cases := map[string]string{
		"gordon.welling@rivademo.com": "gordon.welling@rivademo.com",
		"Gordon@x":                    "_47ordon@x",
		"..":                          "_2e.",
		"a/b":                         "a_2fb",
		"é":                           "_c3_a9",
	}
	for identity, want := range cases {
		got, err := DirName(identity)
		if err != nil || got != want {
			t.Errorf("DirName(%q) = %q, %v; want %q", identity, got, err, want)
		}
	}
	if _, err := DirName(""); err == nil {
		t.Error("empty identity accepted")
	}
}

// FuzzDirName: every identity maps to a single safe path component, the
// mapping can be inverted (so it is injective), and two identities never
// share a folder even on a case-folding filesystem.
func FuzzDirName(f *testing.F) {
	for _, seed := range []string{"ann@example.com", "Ann@example.com", "..", ".", "/", "a/../b", "\x00", "_41", "~", strings.Repeat("A", 300), "日本"} {
		f.Add(seed, strings.ToUpper(seed))
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		na, errA := DirName(a)
		nb, errB := DirName(b)
		if (errA != nil) != (a == "") || (errB != nil) != (b == "") {
			t.Fatalf("errors: %v %v", errA, errB)
		}
		if a == "" || b == "" {
			return
		}
		for _, n := range []string{na, nb} {
			if n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00") || len(n) > 255 || n != strings.ToLower(n) {
				t.Fatalf("unsafe name %q", n)
			}
			if filepath.Base(n) != n {
				t.Fatalf("%q is not a single path component", n)
			}
		}
		if back, ok := IdentityFromDirName(na); ok && back != a {
			t.Fatalf("DirName(%q) = %q inverts to %q", a, na, back)
		}
		if a != b && strings.EqualFold(na, nb) {
			t.Fatalf("%q and %q share folder %q", a, b, na)
		}
	})
}

// BenchmarkLinkWrites measures committed record writes, 1000 links per
// transaction as the engine batches them.
func BenchmarkLinkWrites(b *testing.B) {
	s, _ := Open(b.TempDir())
	u, err := s.OpenUser("bench@example.com", OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	const perTx = 1000
	n := 0
	b.ResetTimer()
	for b.Loop() {
		if err := u.Update(func(tx *Tx) error {
			for range perTx {
				n++
				k := fmt.Sprintf("%09d", n)
				if err := tx.PutLink(contacts, link(k, "x"+k)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "links/s")
}

// Records written by format 2 (links as JSON) are read as they are, and their links re-encoded
// when a cycle opens them, more than one batch of them.
func TestFormatTwoIsReadAndUpgraded(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	u := openUser(t, s, "ann@example.com")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	n := upgradeLinksBatch + 7
	var want []Link
	for i := range n {
		l := Link{SyncedAt: at}
		l.Sides[0] = SideState{Key: fmt.Sprintf("k%06d", i), ID: fmt.Sprintf("k%06d", i), Hash: "h0"}
		l.Sides[1] = SideState{Key: fmt.Sprintf("t%06d", i), ID: fmt.Sprintf("id%d", i), Hash: "h1", ModTime: at, Gone: i%2 == 0}
		want = append(want, l)
	}
	// As format 2 wrote them.
	g.Expect(u.db.Update(func(tx *bolt.Tx) error {
		t := &Tx{tx: tx}
		for _, l := range want {
			if err := t.PutLink(contacts, l); err != nil {
				return err
			}
			raw, _ := json.Marshal(l)
			if err := tx.Bucket(bucketPairs).Bucket(pairKey(contacts)).Bucket(bucketLinks).Put([]byte(l.Sides[0].Key), raw); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte("2"))
	})).To(Succeed())
	u.Close()

	links := func(u *User) []Link {
		var out []Link
		g.Expect(u.View(func(tx *Tx) error {
			for l, err := range tx.Links(contacts, 1) {
				if err != nil {
					return err
				}
				out = append(out, l)
			}
			return nil
		})).To(Succeed())
		return out
	}
	ro, err := s.OpenUser("ann@example.com", OpenOptions{ReadOnly: true})
	g.Expect(err).NotTo(HaveOccurred(), "format 2 is read")
	g.Expect(links(ro)).To(Equal(want))
	ro.Close()

	rw := openUser(t, s, "ann@example.com")
	g.Expect(links(rw)).To(Equal(want))
	g.Expect(rw.db.View(func(tx *bolt.Tx) error {
		g.Expect(string(tx.Bucket(bucketMeta).Get(keyFormat))).To(Equal("3"))
		return tx.Bucket(bucketPairs).Bucket(pairKey(contacts)).Bucket(bucketLinks).ForEach(func(k, v []byte) error {
			g.Expect(v[0]).To(Equal(byte(linkBinary)), "link %s re-encoded", k)
			return nil
		})
	})).To(Succeed())
	g.Expect(rw.Verify()).To(Succeed())
}

func FuzzLinkCodec(f *testing.F) {
	f.Add("k", "k", "h", "t", "id", "h2", int64(0), true, []byte{})
	f.Add("k", "k", "0123456789abcdef0123456789abcdef", "t", "t", "0123456789ABCDEF0123456789abcdef", int64(-1), false, []byte{linkBinary, 8})
	f.Add("", "x", "", "é", "", "", int64(1e18), false, []byte{linkBinary, 0, 200, 200})
	f.Fuzz(func(t *testing.T, k0, id0, h0, k1, id1, h1 string, mod int64, gone bool, garbage []byte) {
		l := Link{SyncedAt: time.Unix(0, mod).UTC()}
		l.Sides[0] = SideState{Key: k0, ID: id0, Hash: h0, Gone: gone}
		l.Sides[1] = SideState{Key: k1, ID: id1, Hash: h1}
		if mod != 0 {
			l.Sides[1].ModTime = time.Unix(0, mod).In(time.FixedZone("x", 3600))
		}
		back, err := decodeLink(encodeLink(l))
		if err != nil {
			t.Fatalf("decoding what was encoded: %v", err)
		}
		if back.Sides[0] != l.Sides[0] || !back.SyncedAt.Equal(l.SyncedAt) || back.Sides[1].Key != k1 || back.Sides[1].ID != id1 || back.Sides[1].Hash != h1 ||
			!back.Sides[1].ModTime.Equal(l.Sides[1].ModTime) {
			t.Fatalf("round trip changed the link: %+v -> %+v", l, back)
		}
		decodeLink(garbage) // fails or not, without panicking
	})
}
