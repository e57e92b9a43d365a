package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/conntest"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

var fullCaps = connector.Capabilities{Incremental: true, ModTime: true, Origin: true}

type world struct {
	onReject func(entity, endpoint string, rej delta.Rejected)
	t        *testing.T
	src      *conntest.Memory
	tgt      *conntest.Memory
	store    *records.Store
	clock    *fakeClock
	policy   Policy
	cycles   int
}

func newWorld(t *testing.T, dir Direction, rule ConflictRule, srcCaps, tgtCaps connector.Capabilities) *world {
	store, err := records.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, src: conntest.NewMemory(srcCaps), tgt: conntest.NewMemory(tgtCaps), store: store,
		clock: &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}}
	w.src.SetClock(w.clock.Now)
	w.tgt.SetClock(w.clock.Now)
	w.policy = Policy{
		Name:   "contacts",
		Source: Endpoint{Name: "crm"}, Target: Endpoint{Name: "mail"},
		Entities: []Entity{{Name: "contacts", SourceEntity: "contact", TargetEntity: "person",
			Fields:  []FieldMapping{{Source: "name", Target: "fullName"}, {Source: "email", Target: "mail"}},
			MatchOn: []string{"email"}}},
		Direction: dir, Conflict: rule, Deletes: Deletes{Propagate: true},
	}
	return w
}

func (w *world) cycle() (Result, error) {
	w.cycles++
	w.clock.t = w.clock.t.Add(time.Minute)
	return Run(context.Background(), Cycle{ID: fmt.Sprintf("cycle-%d", w.cycles), User: "ann@example.com",
		Scope: connector.Scope{Email: "ann@example.com"}, Policy: w.policy, Source: w.src, Target: w.tgt,
		Records: w.store, Clock: w.clock, Log: logr.Discard(), OnReject: w.onReject})
}

func (w *world) mustCycle() Result {
	w.t.Helper()
	r, err := w.cycle()
	if err != nil {
		w.t.Fatalf("cycle %d: %v", w.cycles, err)
	}
	return r
}

func contact(name, email string) connector.Item {
	return connector.Item{Fields: map[string]connector.Value{"name": connector.String(name), "email": connector.String(email)}}
}

func person(name, email string) connector.Item {
	return connector.Item{Fields: map[string]connector.Value{"fullName": connector.String(name), "mail": connector.String(email)}}
}

// contents lists "name <email>" of each side's items, sorted, in source terms.
func (w *world) contents() (src, tgt []string) {
	for _, it := range w.src.Items("contact") {
		src = append(src, it.Fields["name"].Text+" <"+it.Fields["email"].Text+">")
	}
	for _, it := range w.tgt.Items("person") {
		tgt = append(tgt, it.Fields["fullName"].Text+" <"+it.Fields["mail"].Text+">")
	}
	sort.Strings(src)
	sort.Strings(tgt)
	return src, tgt
}

func TestOneWayCreatesOnceAndTheSecondCycleIsEmpty(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.src.Put("contact", contact("Bob", "bob@x"))

	first := w.mustCycle()
	g.Expect(first.Total.Created).To(Equal(2))
	g.Expect(first.Entities[0].Mode).To(Equal(Initial))
	g.Expect(first.Empty()).To(BeFalse())
	src, tgt := w.contents()
	g.Expect(tgt).To(Equal(src))

	second := w.mustCycle()
	g.Expect(second.Total).To(Equal(Counts{}), "our own writes read back must not be changes")
	g.Expect(second.Empty()).To(BeTrue())
	g.Expect(second.Entities[0].Mode).To(Equal(Incremental))

	// An update is not a creation: the cycle that makes it is still empty.
	id := w.src.Items("contact")[0].ID
	w.src.Put("contact", connector.Item{ID: id, Fields: contact("Ann Smith", "ann@x").Fields})
	third := w.mustCycle()
	g.Expect(third.Total.Updated).To(Equal(1))
	g.Expect(third.Empty()).To(BeTrue())
	src, tgt = w.contents()
	g.Expect(tgt).To(Equal(src))
}

func TestInitialCycleLinksExistingItemsByMatchOn(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, SourceWins, fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.src.Put("contact", contact("Bob", "bob@x"))
	w.tgt.Put("person", person("Ann", "ann@x"))
	w.tgt.Put("person", person("Robert", "bob@x"))
	// Two target items match one source item: neither is guessed.
	w.src.Put("contact", contact("Cy", "cy@x"))
	w.tgt.Put("person", person("Cy", "cy@x"))
	w.tgt.Put("person", person("Cyrus", "cy@x"))

	r := w.mustCycle()
	g.Expect(r.Total.Created).To(Equal(0))
	g.Expect(r.Total.Updated).To(Equal(1), "Bob differs; the source wins")
	g.Expect(r.Total.Quarantined).To(Equal(3))
	g.Expect(r.Empty()).To(BeFalse())
	g.Expect(w.tgt.Items("person")).To(HaveLen(4))
	_, tgt := w.contents()
	g.Expect(tgt).To(ContainElement("Bob <bob@x>"))

	// Quarantine is looked at again each cycle and resolved by fixing data.
	g.Expect(w.mustCycle().Total.Quarantined).To(Equal(3))
	for _, it := range w.tgt.Items("person") {
		if it.Fields["fullName"].Text == "Cyrus" {
			w.tgt.Remove("person", it.ID)
		}
	}
	r = w.mustCycle()
	g.Expect(r.Total.Quarantined).To(Equal(0))
	g.Expect(r.Total.Created).To(Equal(0))
	g.Expect(w.mustCycle().Empty()).To(BeTrue())
}

// 001's warning: moving a user to another policy over the same endpoints
// must not re-create their items.
func TestMovingUserToAnotherPolicyKeepsRecords(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, connector.Capabilities{Origin: true})
	w.policy.Entities[0].MatchOn = nil // no safety net: only the records prevent duplicates
	w.src.Put("contact", contact("Ann", "ann@x"))
	g.Expect(w.mustCycle().Total.Created).To(Equal(1))

	w.policy.Name = "daily"
	_, err := w.cycle()
	g.Expect(err).To(MatchError(records.ErrClaimed), "two policies may not sync one user into one target")
	g.Expect(w.store.ReleaseTarget("ann@example.com", "mail", "contacts")).To(Succeed())
	r := w.mustCycle()
	g.Expect(r.Total.Created).To(Equal(0))
	g.Expect(r.Empty()).To(BeTrue())
	g.Expect(w.tgt.Items("person")).To(HaveLen(1))
}

// Issue #10: an endpoint that cannot show which items a cycle created, without matchOn, would
// get them all again after a crash between its commit and the records'.
func TestCreatesWithoutAProofAreRefused(t *testing.T) {
	g := NewWithT(t)
	for _, dir := range []Direction{OneWay, TwoWay} {
		w := newWorld(t, dir, SourceWins, fullCaps, connector.Capabilities{})
		w.policy.Entities[0].MatchOn = nil
		w.src.Put("contact", contact("Ann", "ann@x"))
		_, err := w.cycle()
		g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
		g.Expect(err).To(MatchError(ContainSubstring("entities[contacts]: mail cannot show after a crash")))
		g.Expect(err).To(MatchError(ContainSubstring("set matchOn")))
		g.Expect(w.tgt.Items("person")).To(BeEmpty(), "refused before anything was written")

		w.policy.DryRun = true
		g.Expect(w.cycle()).Error().NotTo(HaveOccurred(), "a dry run creates nothing")
		w.policy.DryRun = false
		w.policy.Entities[0].MatchOn = []string{"email"}
		g.Expect(w.mustCycle().Total.Created).To(Equal(1), "matchOn is the proof")
	}
	// Two-way, the source receives creates too.
	w := newWorld(t, TwoWay, SourceWins, connector.Capabilities{}, fullCaps)
	w.policy.Entities[0].MatchOn = nil
	_, err := w.cycle()
	g.Expect(err).To(MatchError(ContainSubstring("crm cannot show after a crash")))
}

func TestTwoWayConflictRules(t *testing.T) {
	cases := []struct {
		rule       ConflictRule
		srcLater   bool
		wantBoth   string
		wantReport bool
	}{
		{SourceWins, false, "source", false},
		{TargetWins, true, "target", false},
		{NewestWins, true, "source", false},
		{NewestWins, false, "target", false},
		{Manual, true, "", true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/srcLater=%v", tc.rule, tc.srcLater), func(t *testing.T) {
			g := NewWithT(t)
			w := newWorld(t, TwoWay, tc.rule, fullCaps, fullCaps)
			srcID := w.src.Put("contact", contact("Ann", "ann@x"))
			w.mustCycle()
			tgtID := w.tgt.Items("person")[0].ID
			edit := func(later bool, m *conntest.Memory, entity, id string, item connector.Item) {
				item.ID = id
				item.ModTime = w.clock.t.Add(time.Second)
				if later {
					item.ModTime = item.ModTime.Add(time.Second)
				}
				m.Put(entity, item)
			}
			edit(tc.srcLater, w.src, "contact", srcID, contact("Ann (source)", "ann@x"))
			edit(!tc.srcLater, w.tgt, "person", tgtID, person("Ann (target)", "ann@x"))

			r := w.mustCycle()
			src, tgt := w.contents()
			if tc.wantReport {
				g.Expect(r.Total.Conflicts).To(Equal(1))
				g.Expect(src).To(Equal([]string{"Ann (source) <ann@x>"}))
				g.Expect(tgt).To(Equal([]string{"Ann (target) <ann@x>"}))
				g.Expect(w.mustCycle().Total.Conflicts).To(Equal(1), "re-checked every cycle")
				edit(true, w.tgt, "person", tgtID, person("Ann (source)", "ann@x"))
				r = w.mustCycle()
				g.Expect(r.Total.Conflicts).To(Equal(0), "resolved once the sides agree")
				g.Expect(r.Empty()).To(BeTrue())
				return
			}
			g.Expect(r.Total.Updated).To(Equal(1))
			g.Expect(tgt).To(Equal(src))
			g.Expect(src).To(Equal([]string{"Ann (" + tc.wantBoth + ") <ann@x>"}))
			g.Expect(w.mustCycle().Total).To(Equal(Counts{}), "no echo back")
		})
	}
}

func TestDeleteThresholdHoldsAllDeletesUntilApproved(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.policy.Deletes.MaxCount = 2
	var ids []string
	for i := range 5 {
		ids = append(ids, w.src.Put("contact", contact(fmt.Sprint("p", i), fmt.Sprint(i, "@x"))))
	}
	w.mustCycle()
	for _, id := range ids[:3] {
		w.src.Remove("contact", id)
	}
	held := w.mustCycle()
	g.Expect(held.DeleteThresholdExceeded).To(BeTrue())
	g.Expect(held.Total.Deleted).To(Equal(0))
	g.Expect(held.PendingDeletes).To(HaveLen(3))
	g.Expect(held.Empty()).To(BeFalse())
	g.Expect(w.tgt.Items("person")).To(HaveLen(5))
	approval := held.ApprovalCycle
	g.Expect(approval).To(Equal(held.CycleID))

	again := w.mustCycle()
	g.Expect(again.DeleteThresholdExceeded).To(BeTrue())
	g.Expect(again.ApprovalCycle).To(Equal(approval), "the cycle the user was shown stays approvable")

	w.policy.Deletes.ApprovedCycle = approval
	done := w.mustCycle()
	g.Expect(done.DeleteThresholdExceeded).To(BeFalse())
	g.Expect(done.Total.Deleted).To(Equal(3))
	g.Expect(w.tgt.Items("person")).To(HaveLen(2))
	g.Expect(w.mustCycle().Empty()).To(BeTrue())
}

func TestFailingItemIsRetriedWithBackoffThenGivenUp(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.policy.Retry = Retry{Backoff: 10 * time.Minute, MaxBackoff: time.Hour, MaxAttempts: 3}
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.src.Put("contact", contact("Bad", "bad@x"))
	w.tgt.FailItem("Bad", errors.New("rejected by server"))

	r := w.mustCycle()
	g.Expect(r.Total.Created).To(Equal(1), "one failing item does not stop the others")
	g.Expect(r.Total.Errors).To(Equal(1))
	g.Expect(r.Entities[0].Reports).To(ContainElement(HaveField("Reason", ContainSubstring("rejected by server"))))

	r = w.mustCycle() // a minute later: still backing off
	g.Expect(r.Total.Skipped).To(Equal(1))
	g.Expect(w.tgt.Writes()).To(Equal(1))

	w.clock.t = w.clock.t.Add(10 * time.Minute)
	r = w.mustCycle()
	g.Expect(r.Total.Errors).To(Equal(1)) // attempt 2
	w.clock.t = w.clock.t.Add(time.Hour)
	r = w.mustCycle()
	g.Expect(r.Total.Errors).To(Equal(1)) // attempt 3: given up
	w.clock.t = w.clock.t.Add(24 * time.Hour)
	r = w.mustCycle()
	g.Expect(r.Entities[0].Reports).To(ContainElement(HaveField("Reason", ContainSubstring("given up after 3 attempts"))))

	// Fixed at the source: new content gets a fresh start.
	w.tgt.FailItem("Bad", nil)
	id := w.src.Items("contact")[1].ID
	w.src.Put("contact", connector.Item{ID: id, Fields: contact("Bad", "fixed@x").Fields})
	r = w.mustCycle()
	g.Expect(r.Total.Errors).To(Equal(0))
	g.Expect(r.Total.Created).To(Equal(1))
	g.Expect(w.mustCycle().Empty()).To(BeTrue())
}

func TestEndpointFailureFailsTheCycleAndChangesNoRecords(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, SourceWins, fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.tgt.FailReads(errors.New("connection refused"))
	_, err := w.cycle()
	g.Expect(err).To(MatchError(ErrEndpoint))
	g.Expect(err.Error()).To(ContainSubstring("connection refused"))
	g.Expect(w.tgt.Items("person")).To(BeEmpty())
	g.Expect(w.src.Writes() + w.tgt.Writes()).To(Equal(0))
	w.tgt.FailReads(nil)
	r := w.mustCycle()
	g.Expect(r.Entities[0].Mode).To(Equal(Initial), "the failed cycle recorded nothing")
	g.Expect(r.Total.Created).To(Equal(1))
}

func TestDryRunWritesNothing(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, SourceWins, fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.tgt.Put("person", person("Bob", "bob@x"))
	w.policy.DryRun = true
	r := w.mustCycle()
	g.Expect(r.DryRun).To(BeTrue())
	g.Expect(r.Total.Created).To(Equal(2))
	g.Expect(w.src.Writes() + w.tgt.Writes()).To(Equal(0))
	users, _ := w.store.Users()
	g.Expect(users).To(BeEmpty())
	claims, _ := w.store.Claims()
	g.Expect(claims).To(BeEmpty())

	w.policy.DryRun = false
	w.mustCycle()
	w.src.Remove("contact", w.src.Items("contact")[0].ID)
	w.policy.DryRun = true
	r = w.mustCycle()
	g.Expect(r.Total.Deleted).To(Equal(1))
	g.Expect(w.tgt.Items("person")).To(HaveLen(2))
}

func TestMappingChangeForcesCompleteCycle(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.mustCycle()
	g.Expect(w.mustCycle().Entities[0].Mode).To(Equal(Incremental))
	w.policy.Entities[0].Fields = append(w.policy.Entities[0].Fields, FieldMapping{Source: "phone", Target: "tel"})
	g.Expect(w.mustCycle().Entities[0].Mode).To(Equal(Complete))
	g.Expect(w.mustCycle().Entities[0].Mode).To(Equal(Incremental))
}

// Complete cycles catch what incremental cannot: a one-way target edited or
// deleted behind our back is restored from the source.
func TestOneWayCompleteRestoresTargetDrift(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.src.Put("contact", contact("Bob", "bob@x"))
	w.mustCycle()
	items := w.tgt.Items("person")
	w.tgt.Put("person", connector.Item{ID: items[0].ID, Fields: person("Vandal", "v@x").Fields})
	w.tgt.Remove("person", items[1].ID)
	w.policy.Complete = true
	r := w.mustCycle()
	g.Expect(r.Total.Updated).To(Equal(1))
	g.Expect(r.Total.Created).To(Equal(1))
	src, tgt := w.contents()
	g.Expect(tgt).To(Equal(src))
}

func TestNonPropagatedDeleteLeavesTheOtherSideAlone(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, SourceWins, fullCaps, fullCaps)
	w.policy.Deletes.Propagate = false
	id := w.src.Put("contact", contact("Ann", "ann@x"))
	w.mustCycle()
	w.src.Remove("contact", id)
	r := w.mustCycle()
	g.Expect(r.Total.Deleted).To(Equal(0))
	g.Expect(w.tgt.Items("person")).To(HaveLen(1))
	w.policy.Complete = true
	r = w.mustCycle()
	g.Expect(r.Total.Created).To(Equal(0), "the survivor is not taken for a new item")
	g.Expect(w.src.Items("contact")).To(BeEmpty())
}

func TestRowsSetAsideByCleansingAreHandedOutForReports(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, OneWay, "", fullCaps, fullCaps)
	w.policy.Entities[0].SourceKeyFields = []string{"email"}
	var got []string
	w.onReject = func(entity, endpoint string, rej delta.Rejected) {
		got = append(got, fmt.Sprintf("%s %s %s %s", entity, endpoint, rej.Reason, rej.Entry.Fields["name"].Text))
	}
	w.src.Put("contact", contact("Ann", "ann@x"))
	w.src.Put("contact", contact("Nobody", ""))
	w.src.Put("contact", contact("Bo", "bo@x"))
	w.src.Put("contact", contact("Bob", "bo@x"))

	r := w.mustCycle()
	g.Expect(r.Total.Created).To(Equal(1))
	g.Expect(r.Total.Skipped).To(Equal(3))
	g.Expect(got).To(ConsistOf(
		"contacts crm "+string(delta.NullKey)+" Nobody",
		"contacts crm "+string(delta.Duplicate)+" Bo",
		"contacts crm "+string(delta.Duplicate)+" Bob"))

	got = nil
	w.policy.DryRun = true
	w.mustCycle()
	g.Expect(got).To(BeEmpty(), "a dry run writes no reports")
}
