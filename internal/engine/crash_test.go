package engine

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/conntest"
	"github.com/chainsync/chainsync/internal/records"
)

// expectConverged asserts the user-visible promise after any crash: every
// source item exists exactly once on the target with its latest content,
// and one more cycle finds nothing to do.
func expectConverged(g Gomega, w *world) {
	src, tgt := w.contents()
	g.Expect(tgt).To(Equal(src), "no lost update")
	for _, side := range [][]string{src, tgt} {
		seen := map[string]bool{}
		for _, s := range side {
			g.Expect(seen[s]).To(BeFalse(), "duplicate %s", s)
			seen[s] = true
		}
	}
	r := w.mustCycle()
	g.Expect(r.Empty()).To(BeTrue(), "%+v", r.Total)
	g.Expect(r.Total.Updated).To(Equal(0))
}

// TestCrashAtEveryWritePoint interrupts the first cycle after each number of
// writes, edits the source meanwhile, and reruns.
func TestCrashAtEveryWritePoint(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dir      Direction
		tgtCaps  connector.Capabilities
		matchOn  []string
		maxBatch int
	}{
		{name: "one-way, target stores origin", dir: OneWay, tgtCaps: fullCaps},
		{name: "one-way, matchOn only", dir: OneWay, tgtCaps: connector.Capabilities{}, matchOn: []string{"email"}},
		{name: "two-way, batches of 3", dir: TwoWay, tgtCaps: fullCaps, maxBatch: 3},
	} {
		for crashAfter := range 12 {
			t.Run(fmt.Sprintf("%s/after %d writes", tc.name, crashAfter), func(t *testing.T) {
				g := NewWithT(t)
				caps := tc.tgtCaps
				caps.MaxBatch = tc.maxBatch
				w := newWorld(t, tc.dir, SourceWins, fullCaps, caps)
				w.policy.Entities[0].MatchOn = tc.matchOn
				var ids []string
				for i := range 6 {
					ids = append(ids, w.src.Put("contact", contact(fmt.Sprint("p", i), fmt.Sprint(i, "@x"))))
				}
				if tc.dir == TwoWay {
					w.tgt.Put("person", person("t0", "t0@x"))
					w.tgt.Put("person", person("t1", "t1@x"))
				}
				w.mustCycle()
				// Second cycle: creates, updates and deletes, crashing midway.
				for i := 6; i < 10; i++ {
					w.src.Put("contact", contact(fmt.Sprint("p", i), fmt.Sprint(i, "@x")))
				}
				w.src.Put("contact", connector.Item{ID: ids[0], Fields: contact("p0 v2", "0@x").Fields})
				w.src.Put("contact", connector.Item{ID: ids[1], Fields: contact("p1 v2", "1@x").Fields})
				w.src.Remove("contact", ids[2])
				w.tgt.CrashAfterWrites(crashAfter)
				w.src.CrashAfterWrites(crashAfter)
				_, err := w.cycle()
				w.tgt.CrashAfterWrites(-1)
				w.src.CrashAfterWrites(-1)
				if err != nil {
					g.Expect(err).To(MatchError(conntest.ErrCrashed))
				}
				// Edited again before the rerun: this update must not be lost.
				w.src.Put("contact", connector.Item{ID: ids[1], Fields: contact("p1 v3", "1@x").Fields})
				w.mustCycle()
				expectConverged(g, w)
			})
		}
	}
}

// Child process of TestKillNineAnywhere: runs cycles against file-backed
// connectors until told to stop (or killed).
func TestMain(m *testing.M) {
	if dir := os.Getenv("CHAINSYNC_CRASH_CHILD"); dir != "" {
		os.Exit(runCrashChild(dir))
	}
	os.Exit(m.Run())
}

func crashPolicy() Policy {
	return Policy{Name: "crash", Source: Endpoint{Name: "crm"}, Target: Endpoint{Name: "mail"},
		Entities: []Entity{{Name: "contacts", SourceEntity: "contact", TargetEntity: "person",
			Fields: []FieldMapping{{Source: "name", Target: "fullName"}, {Source: "email", Target: "mail"}}}},
		Direction: TwoWay, Conflict: SourceWins, Deletes: Deletes{Propagate: true}}
}

func openCrashWorld(dir string) (*conntest.Memory, *conntest.Memory, *records.Store, error) {
	src, err := conntest.OpenFile(filepath.Join(dir, "source.json"), fullCaps)
	if err != nil {
		return nil, nil, nil, err
	}
	tgt, err := conntest.OpenFile(filepath.Join(dir, "target.json"), fullCaps)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := records.Open(filepath.Join(dir, "records"))
	return src, tgt, store, err
}

func runCrashChild(dir string) int {
	src, tgt, store, err := openCrashWorld(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Slow writes widen the window in which the parent's kill lands.
	tgt.OnEachWrite(func() { time.Sleep(3 * time.Millisecond) })
	src.OnEachWrite(func() { time.Sleep(3 * time.Millisecond) })
	_, err = Run(nil, Cycle{ID: "child-" + strconv.Itoa(os.Getpid()), User: "ann@example.com", Policy: crashPolicy(),
		Source: src, Target: tgt, Records: store, LockTimeout: 10 * time.Second, Log: logr.Discard()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKillNineAnywhere kills a real cycle process with SIGKILL at many
// different instants, edits both sides between runs, and checks that the
// survivors converge without duplicates or lost updates.
func TestKillNineAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	g := NewWithT(t)
	dir := t.TempDir()
	src, tgt, _, err := openCrashWorld(dir)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 40 {
		src.Put("contact", contact(fmt.Sprint("s", i), fmt.Sprint("s", i, "@x")))
	}
	for i := range 10 {
		tgt.Put("person", person(fmt.Sprint("t", i), fmt.Sprint("t", i, "@x")))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	killedMidCycle := 0
	runChild := func(killAfter time.Duration) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CHAINSYNC_CRASH_CHILD="+dir)
		g.Expect(cmd.Start()).To(Succeed())
		if killAfter > 0 {
			time.Sleep(killAfter)
			cmd.Process.Signal(syscall.SIGKILL)
		}
		if err := cmd.Wait(); err != nil {
			if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && status.Signaled() {
				killedMidCycle++
				return
			}
			t.Fatalf("cycle process failed: %v", err)
		}
	}
	for round := range 25 {
		// Edit both sides as users would between cycles.
		src, tgt, _, err = openCrashWorld(dir)
		g.Expect(err).NotTo(HaveOccurred())
		srcItems, tgtItems := src.Items("contact"), tgt.Items("person")
		for range 5 {
			it := srcItems[rng.IntN(len(srcItems))]
			src.Put("contact", connector.Item{ID: it.ID, Fields: contact(fmt.Sprint("edited ", round), it.Fields["email"].Text).Fields})
		}
		if len(tgtItems) > 0 {
			it := tgtItems[rng.IntN(len(tgtItems))]
			tgt.Put("person", connector.Item{ID: it.ID, Fields: person(fmt.Sprint("t-edited ", round), it.Fields["mail"].Text).Fields})
		}
		if len(tgtItems) > 3 && round%3 == 0 {
			tgt.Remove("person", tgtItems[rng.IntN(len(tgtItems))].ID)
		}
		for i := range 5 {
			src.Put("contact", contact(fmt.Sprint("new ", round), fmt.Sprint("n", round, "-", i, "@x")))
		}
		runChild(time.Duration(10+rng.IntN(60)) * time.Millisecond)
	}
	g.Expect(killedMidCycle).To(BeNumerically(">=", 10), "the kills must land inside cycles to prove anything")
	runChild(0) // to completion
	runChild(0)

	src, tgt, store, err := openCrashWorld(dir)
	g.Expect(err).NotTo(HaveOccurred())
	w := &world{t: t, src: src, tgt: tgt, store: store, clock: &fakeClock{t: time.Now()}, policy: crashPolicy()}
	expectConverged(g, w)
	u, err := store.OpenUser("ann@example.com", records.OpenOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	defer u.Close()
	g.Expect(u.Verify()).To(Succeed())
}

func recordsOpen() records.OpenOptions { return records.OpenOptions{} }
