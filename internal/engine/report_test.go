package engine

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"

	"github.com/chainsync/chainsync/internal/connector"
)

// A report names the item on both endpoints where the engine knows it: a person looking for the
// item that failed, or at what a dry run would write, finds it on either side.
func TestReportsNameTheItemOnBothSides(t *testing.T) {
	g := NewWithT(t)
	w := newWorld(t, TwoWay, Manual, fullCaps, fullCaps)
	w.policy.Retry = Retry{MaxAttempts: 1}
	annID := w.src.Put("contact", contact("Ann", "ann@x"))
	bobID := w.src.Put("contact", contact("Bob", "bob@x"))
	w.src.Put("contact", contact("Bad", "bad@x"))
	w.tgt.FailItem("Bad", errors.New("rejected by server"))
	r := w.mustCycle()
	g.Expect(r.Entities[0].Reports).To(ConsistOf(MatchAllFields(Fields{
		"Endpoint": Equal("mail"), "Key": BeEmpty(), "ID": BeEmpty(),
		"OtherEndpoint": Equal("crm"), "OtherKey": Not(BeEmpty()), "OtherID": Not(BeEmpty()),
		"Kind": Equal(ReportGivenUp), "Reason": And(ContainSubstring("create failed (attempt 1, the last)"), ContainSubstring("rejected by server")),
	})), "the last allowed attempt gives up at once")
	personOf := func(name string) string {
		for _, it := range w.tgt.Items("person") {
			if it.Fields["fullName"].Text == name {
				return it.ID
			}
		}
		return ""
	}
	annOnMail, bobOnMail := personOf("Ann"), personOf("Bob")

	// Both sides change Ann; Bob changes on the source; Cy is new; Dee left the target.
	w.src.Put("contact", connector.Item{ID: annID, Fields: contact("Ann A", "ann@x").Fields})
	w.tgt.Put("person", connector.Item{ID: annOnMail, Fields: person("Ann B", "ann@x").Fields})
	w.src.Put("contact", connector.Item{ID: bobID, Fields: contact("Bob B", "bob@x").Fields})
	cyID := w.src.Put("contact", contact("Cy", "cy@x"))
	w.policy.DryRun = true
	r = w.mustCycle()
	g.Expect(r.Entities[0].Reports).To(ContainElements(
		MatchFields(IgnoreExtras, Fields{"Kind": Equal(ReportConflict), "Endpoint": Equal("crm"), "ID": Equal(annID),
			"OtherEndpoint": Equal("mail"), "OtherID": Equal(annOnMail)}),
		MatchFields(IgnoreExtras, Fields{"Kind": Equal(ReportWouldUpdate), "Endpoint": Equal("mail"), "ID": Equal(bobOnMail),
			"OtherEndpoint": Equal("crm"), "OtherID": Equal(bobID), "Reason": Equal("content copied from crm")}),
		MatchFields(IgnoreExtras, Fields{"Kind": Equal(ReportWouldCreate), "Endpoint": Equal("mail"), "ID": BeEmpty(),
			"OtherEndpoint": Equal("crm"), "OtherID": Equal(cyID), "Reason": Equal("new on crm")}),
		MatchFields(IgnoreExtras, Fields{"Kind": Equal(ReportGivenUp), "Endpoint": Equal("mail"),
			"Reason": ContainSubstring("given up after 1 attempts")}),
	))

	w.policy.DryRun = false
	w.policy.Conflict = SourceWins
	w.mustCycle()
	w.src.Remove("contact", bobID)
	w.policy.DryRun = true
	r = w.mustCycle()
	g.Expect(r.Entities[0].Reports).To(ContainElement(MatchFields(IgnoreExtras, Fields{
		"Kind": Equal(ReportWouldDelete), "Endpoint": Equal("mail"), "ID": Equal(bobOnMail),
		"OtherEndpoint": Equal("crm"), "OtherID": Equal(bobID), "Reason": Equal("deleted on crm"),
	})))
}
