// Package enginetest runs the sync engine against real connectors: the same
// scenarios (one-way full and incremental cycles, two-way conflicts under
// every rule, deletes with and without propagation, first-cycle linking by
// matchOn, and a real SIGKILL mid-cycle followed by a rerun) for each
// connector, through a small Endpoint fixture each connector's tests supply.
//
// Every endpoint holds one "contacts" collection of rows with an owner (the
// scope: the user's email), an email, a name and a modification time. The
// policy syncs email and name and links existing rows by email.
package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// Ann is the user every scenario syncs; Bob's rows share the collections
// and must never be touched.
var (
	Ann = connector.Scope{Email: "ann@example.com", Name: "Ann"}
	Bob = connector.Scope{Email: "bob@example.com", Name: "Bob"}
)

// Entity is the connectors' entity name for the contacts collection.
const Entity = "contacts"

// Endpoint is one real system holding a contacts collection.
type Endpoint interface {
	// Connector opens a connector on the endpoint; side is "source" or
	// "target".
	Connector(t testing.TB, side string) connector.Connector
	// Put creates or replaces owner's row with this email, behind the
	// connector's back, as a user of the system would.
	Put(t testing.TB, owner, email, name string, modified time.Time)
	// Delete removes owner's row with this email.
	Delete(t testing.TB, owner, email string)
	// Rows lists owner's rows as "email name", sorted, duplicates kept.
	Rows(t testing.TB, owner string) []string
	// Spec describes the endpoint so that OpenSpec can reopen it in a
	// child process.
	Spec() string
	// Incremental says whether the connector reads changes incrementally.
	Incremental() bool
}

// Fixture makes fresh, empty endpoints for one test.
type Fixture struct {
	// New makes an empty endpoint; role is "source" or "target".
	New func(t *testing.T, role string) Endpoint
	// OpenSpec reopens an endpoint from its Spec in a child process.
	OpenSpec func(spec string) (Endpoint, error)
}

// Policy is the scenarios' policy.
func Policy(dir engine.Direction, rule engine.ConflictRule, propagate bool) engine.Policy {
	return engine.Policy{
		Name:   "contacts-policy",
		Source: engine.Endpoint{Name: "hr"}, Target: engine.Endpoint{Name: "crm"},
		Entities: []engine.Entity{{Name: Entity,
			Fields:  []engine.FieldMapping{{Source: "email", Target: "email"}, {Source: "name", Target: "name"}},
			MatchOn: []string{"email"}}},
		Direction: dir, Conflict: rule, Deletes: engine.Deletes{Propagate: propagate},
	}
}

// World is a policy between two endpoints with its record store.
type World struct {
	t        *testing.T
	Src, Tgt Endpoint
	src, tgt connector.Connector
	store    *records.Store
	Policy   engine.Policy
	cycles   int
}

// NewWorld makes two empty endpoints and a record store.
func NewWorld(t *testing.T, f Fixture, p engine.Policy) *World {
	store, err := records.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &World{t: t, Src: f.New(t, "source"), Tgt: f.New(t, "target"), store: store, Policy: p}
	return w
}

func (w *World) connectors() {
	if w.src == nil {
		w.src, w.tgt = w.Src.Connector(w.t, "source"), w.Tgt.Connector(w.t, "target")
	}
}

// Cycle runs one cycle for Ann and fails the test on error.
func (w *World) Cycle() engine.Result {
	w.t.Helper()
	w.connectors()
	w.cycles++
	r, err := engine.Run(context.Background(), engine.Cycle{ID: fmt.Sprintf("cycle-%d", w.cycles), User: Ann.Email, Scope: Ann,
		Policy: w.Policy, Source: w.src, Target: w.tgt, Records: w.store, Clock: clock{}, Log: logr.Discard(), LockTimeout: time.Minute})
	if err != nil {
		w.t.Fatalf("cycle %d: %v", w.cycles, err)
	}
	return r
}

type clock struct{}

func (clock) Now() time.Time { return time.Now() }

// base is a time in the recent past: test rows are stamped after it, and
// the connectors stamp their own writes with the real time, after that.
var base = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

// At is base plus n seconds, for rows' modification times.
func At(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

// Run runs every scenario against the fixture.
func Run(t *testing.T, f Fixture) {
	t.Run("OneWayFullThenIncremental", func(t *testing.T) { oneWay(t, f) })
	for _, rule := range []engine.ConflictRule{engine.SourceWins, engine.TargetWins, engine.NewestWins, engine.Manual} {
		t.Run("TwoWayConflict"+string(rule), func(t *testing.T) { twoWayConflict(t, f, rule) })
	}
	t.Run("DeletesNotPropagated", func(t *testing.T) { deletes(t, f, false) })
	t.Run("DeletesPropagated", func(t *testing.T) { deletes(t, f, true) })
	t.Run("FirstCycleLinksByMatchOn", func(t *testing.T) { linksByMatchOn(t, f) })
	t.Run("KillAndRerunMakesNoDuplicates", func(t *testing.T) { killAndRerun(t, f, false) })
	t.Run("TwoWayKillAndRerunConverges", func(t *testing.T) { twoWayKillAndRerun(t, f) })
}

func oneWay(t *testing.T, f Fixture) {
	g := NewWithT(t)
	w := NewWorld(t, f, Policy(engine.OneWay, "", false))
	w.Src.Put(t, Ann.Email, "a@x", "Alice", At(1))
	w.Src.Put(t, Ann.Email, "b@x", "Bruno", At(1))
	w.Src.Put(t, Ann.Email, "c@x", "Chloé, \"quoted\"", At(2))
	w.Src.Put(t, Bob.Email, "z@x", "Bob's own", At(2))
	w.Tgt.Put(t, Bob.Email, "y@x", "Bob's target row", At(2))

	first := w.Cycle()
	g.Expect(first.Total).To(Equal(engine.Counts{Created: 3}))
	g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal(w.Src.Rows(t, Ann.Email)))
	g.Expect(w.Tgt.Rows(t, Bob.Email)).To(Equal([]string{"y@x Bob's target row"}), "other users' rows are left alone")

	second := w.Cycle()
	g.Expect(second.Total).To(Equal(engine.Counts{}), "our own writes read back are not changes")
	wantMode := engine.Complete
	if w.Src.Incremental() {
		wantMode = engine.Incremental
	}
	g.Expect(second.Entities[0].Mode).To(Equal(wantMode))

	w.Src.Put(t, Ann.Email, "b@x", "Bruno Braga", At(3))
	w.Src.Put(t, Ann.Email, "d@x", "Dinah", At(3))
	third := w.Cycle()
	g.Expect(third.Entities[0].Mode).To(Equal(wantMode))
	g.Expect(third.Total).To(Equal(engine.Counts{Created: 1, Updated: 1}))
	g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal(w.Src.Rows(t, Ann.Email)))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}

func twoWayConflict(t *testing.T, f Fixture, rule engine.ConflictRule) {
	g := NewWithT(t)
	w := NewWorld(t, f, Policy(engine.TwoWay, rule, false))
	w.Src.Put(t, Ann.Email, "a@x", "Alice", At(1))
	w.Src.Put(t, Ann.Email, "b@x", "Bruno", At(1))
	w.Tgt.Put(t, Ann.Email, "t@x", "Theo", At(1))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{Created: 3}))
	g.Expect(w.Src.Rows(t, Ann.Email)).To(Equal([]string{"a@x Alice", "b@x Bruno", "t@x Theo"}))
	g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal(w.Src.Rows(t, Ann.Email)))

	// Both sides change Alice (the target later) and Bruno (the source
	// later); Theo changes on the target only, which is no conflict.
	now := time.Now().Truncate(time.Millisecond)
	earlier, later := now.Add(-time.Minute), now
	w.Src.Put(t, Ann.Email, "a@x", "Alice (source)", earlier)
	w.Tgt.Put(t, Ann.Email, "a@x", "Alice (target)", later)
	w.Src.Put(t, Ann.Email, "b@x", "Bruno (source)", later)
	w.Tgt.Put(t, Ann.Email, "b@x", "Bruno (target)", earlier)
	w.Tgt.Put(t, Ann.Email, "t@x", "Theo (target)", later)
	r := w.Cycle()

	if rule == engine.Manual {
		g.Expect(r.Total.Conflicts).To(Equal(2))
		g.Expect(w.Src.Rows(t, Ann.Email)).To(Equal([]string{"a@x Alice (source)", "b@x Bruno (source)", "t@x Theo (target)"}),
			"manual leaves both sides of a conflict alone")
		g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal([]string{"a@x Alice (target)", "b@x Bruno (target)", "t@x Theo (target)"}))
		return
	}
	want := map[engine.ConflictRule][]string{
		engine.SourceWins: {"a@x Alice (source)", "b@x Bruno (source)", "t@x Theo (target)"},
		engine.TargetWins: {"a@x Alice (target)", "b@x Bruno (target)", "t@x Theo (target)"},
		engine.NewestWins: {"a@x Alice (target)", "b@x Bruno (source)", "t@x Theo (target)"},
	}[rule]
	g.Expect(w.Src.Rows(t, Ann.Email)).To(Equal(want))
	g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal(want))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}

func deletes(t *testing.T, f Fixture, propagate bool) {
	g := NewWithT(t)
	w := NewWorld(t, f, Policy(engine.OneWay, "", propagate))
	w.Src.Put(t, Ann.Email, "a@x", "Alice", At(1))
	w.Src.Put(t, Ann.Email, "b@x", "Bruno", At(1))
	w.Cycle()
	w.Src.Delete(t, Ann.Email, "a@x")
	// Change reads cannot see deletes (no tombstones), so deletes are
	// found by the Complete cycles the cycle runner schedules.
	w.Policy.Complete = true
	r := w.Cycle()
	if propagate {
		g.Expect(r.Total.Deleted).To(Equal(1))
		g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal([]string{"b@x Bruno"}))
	} else {
		g.Expect(r.Total.Deleted).To(Equal(0))
		g.Expect(w.Tgt.Rows(t, Ann.Email)).To(Equal([]string{"a@x Alice", "b@x Bruno"}), "without propagation the target keeps the row")
	}
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}

func linksByMatchOn(t *testing.T, f Fixture) {
	g := NewWithT(t)
	w := NewWorld(t, f, Policy(engine.OneWay, "", false))
	w.Src.Put(t, Ann.Email, "a@x", "Alice Source", At(1))
	w.Src.Put(t, Ann.Email, "b@x", "Bruno", At(1))
	w.Tgt.Put(t, Ann.Email, "a@x", "Alice Target", At(1))
	w.Tgt.Put(t, Ann.Email, "c@x", "Only on target", At(1))
	r := w.Cycle()
	g.Expect(r.Entities[0].Mode).To(Equal(engine.Initial))
	g.Expect(r.Total.Created).To(Equal(1), "a@x exists on both sides: linked, not created twice")
	rows := w.Tgt.Rows(t, Ann.Email)
	g.Expect(rows).To(HaveLen(3))
	g.Expect(rows).To(ContainElements("a@x Alice Source", "b@x Bruno", "c@x Only on target"))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}

// The child side of killAndRerun: env vars tell it what to run.
const (
	envChild = "CHAINSYNC_ENGINETEST_CHILD"
)

type childSpec struct {
	Source, Target string
	Store          string
	KillAfter      int
	WithoutMatchOn bool
	// TwoWay counts the writes to either side, and kills after the KillAfter-th.
	TwoWay bool
}

// IsChild reports whether this process is killAndRerun's child; TestMain
// then calls RunChild instead of running tests.
func IsChild() bool { return os.Getenv(envChild) != "" }

// RunChild runs one cycle and SIGKILLs itself right after the target's
// KillAfter-th Write returns: the writes are made, their outcome not yet
// recorded, the worst moment to die.
func RunChild(f Fixture) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(envChild)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	src, err := f.OpenSpec(spec.Source)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tgt, err := f.OpenSpec(spec.Target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := records.Open(spec.Store)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tb := &childTB{}
	writes := new(int)
	policy := crashPolicy(spec.WithoutMatchOn)
	var source connector.Connector = src.Connector(tb, "source")
	if spec.TwoWay {
		policy = twoWayCrashPolicy()
		source = &killAfterWrites{Connector: source, after: spec.KillAfter, writes: writes}
	}
	killer := &killAfterWrites{Connector: tgt.Connector(tb, "target"), after: spec.KillAfter, writes: writes}
	_, err = engine.Run(context.Background(), engine.Cycle{ID: "killed", User: Ann.Email, Scope: Ann,
		Policy: policy, Source: source, Target: killer,
		Records: store, Clock: clock{}, Log: logr.Discard(), LockTimeout: time.Minute})
	fmt.Fprintln(os.Stderr, "cycle finished before the kill:", err)
	return 3
}

type killAfterWrites struct {
	connector.Connector
	after int
	// writes is shared by the connectors of one cycle.
	writes *int
}

func (k *killAfterWrites) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	res, err := k.Connector.Write(ctx, req)
	*k.writes++
	if *k.writes >= k.after {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return res, err
}

// childTB lets the fixtures' t-taking helpers run outside a test.
type childTB struct{ testing.TB }

func (childTB) Helper()        {}
func (childTB) Cleanup(func()) {}
func (childTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(2)
}
func (childTB) Fatal(args ...any)                 { fmt.Fprintln(os.Stderr, args...); os.Exit(2) }
func (childTB) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (childTB) Name() string                      { return "enginetest-child" }

// crashPolicy is the kill-and-rerun policy: one way, and without matchOn
// when the connector alone must recognise the killed cycle's creates.
func crashPolicy(withoutMatchOn bool) engine.Policy {
	p := Policy(engine.OneWay, "", false)
	if withoutMatchOn {
		p.Entities[0].MatchOn = nil
	}
	return p
}

// runKilledChild runs one cycle of spec in a child process (RunChild) and asserts that it died
// by SIGKILL mid-cycle rather than finishing.
func runKilledChild(g Gomega, spec childSpec) {
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+string(raw))
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	g.Expect(ok).To(BeTrue(), "the child must be killed, not finish: %v\n%s", err, out)
	status := exit.Sys().(syscall.WaitStatus)
	g.Expect(status.Signaled() && status.Signal() == syscall.SIGKILL).To(BeTrue(), "the child died by SIGKILL: %v\n%s", err, out)
}

// twoWayCrashPolicy is the two-way kill-and-rerun policy; edits on both sides do not conflict.
func twoWayCrashPolicy() engine.Policy { return Policy(engine.TwoWay, engine.SourceWins, false) }

// KillAndRerunWithoutMatchOn is KillAndRerunMakesNoDuplicates with nothing
// but the target connector to tell which rows the killed cycle created: no
// matchOn. Give it a fixture whose target is a table as a user has it: no
// chainsync_origin column, and no unique key that would turn a duplicate
// into an error.
func KillAndRerunWithoutMatchOn(t *testing.T, f Fixture) { killAndRerun(t, f, true) }

func killAndRerun(t *testing.T, f Fixture, withoutMatchOn bool) {
	g := NewWithT(t)
	w := NewWorld(t, f, crashPolicy(withoutMatchOn))
	const n = 1200
	for i := range n {
		w.Src.Put(t, Ann.Email, fmt.Sprintf("p%04d@x", i), fmt.Sprintf("Person %d", i), At(i%50))
	}
	runKilledChild(g, childSpec{Source: w.Src.Spec(), Target: w.Tgt.Spec(), Store: w.store.Root(), KillAfter: 1,
		WithoutMatchOn: withoutMatchOn})
	written := len(w.Tgt.Rows(t, Ann.Email))
	g.Expect(written).To(BeNumerically(">", 0), "the killed cycle wrote its first batch before dying")
	t.Logf("killed after writing %d of %d rows", written, n)
	// Edited before the rerun, and among the rows the killed cycle wrote
	// first: the rerun must carry the edit over, not lose it.
	w.Src.Put(t, Ann.Email, "p0000@x", "Person 0, edited", At(60))

	r := w.Cycle()
	g.Expect(r.Total.Errors).To(Equal(0), "%+v", r.Entities)
	g.Expect(r.Total.Created).To(Equal(n-written), "rows the killed cycle wrote are recognised, not created again")
	rows := w.Tgt.Rows(t, Ann.Email)
	g.Expect(rows).To(HaveLen(n), "every source row exactly once on the target")
	g.Expect(slices.Compact(slices.Clone(rows))).To(HaveLen(n), "no duplicates")
	g.Expect(rows).To(Equal(w.Src.Rows(t, Ann.Email)))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}

// twoWayKillAndRerun kills a two-way cycle after its first write (to either side), with rows new
// on both sides, edits both sides, and reruns: every row once on each side, both edits kept.
func twoWayKillAndRerun(t *testing.T, f Fixture) {
	g := NewWithT(t)
	w := NewWorld(t, f, twoWayCrashPolicy())
	const n = 400
	for i := range n {
		w.Src.Put(t, Ann.Email, fmt.Sprintf("s%04d@x", i), fmt.Sprintf("Source person %d", i), At(i%50))
		w.Tgt.Put(t, Ann.Email, fmt.Sprintf("t%04d@x", i), fmt.Sprintf("Target person %d", i), At(i%50))
	}
	runKilledChild(g, childSpec{Source: w.Src.Spec(), Target: w.Tgt.Spec(), Store: w.store.Root(), KillAfter: 1, TwoWay: true})
	g.Expect(len(w.Src.Rows(t, Ann.Email))+len(w.Tgt.Rows(t, Ann.Email))).To(BeNumerically(">", 2*n), "the killed cycle wrote before dying")

	w.Src.Put(t, Ann.Email, "s0000@x", "Source person 0, edited", At(70))
	w.Tgt.Put(t, Ann.Email, "t0001@x", "Target person 1, edited", At(70))
	r := w.Cycle()
	g.Expect(r.Total.Errors).To(Equal(0), "%+v", r.Entities)
	src, tgt := w.Src.Rows(t, Ann.Email), w.Tgt.Rows(t, Ann.Email)
	g.Expect(src).To(HaveLen(2*n), "every row once on the source")
	g.Expect(slices.Compact(slices.Clone(src))).To(HaveLen(2*n), "no duplicates")
	g.Expect(tgt).To(Equal(src), "both sides agree")
	g.Expect(src).To(ContainElement(ContainSubstring("Source person 0, edited")))
	g.Expect(src).To(ContainElement(ContainSubstring("Target person 1, edited")))
	g.Expect(w.Cycle().Total).To(Equal(engine.Counts{}))
}
