package engine

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
)

func TestDeleteThresholdLetsSmallUsersDeleteAndHoldsMassDeletes(t *testing.T) {
	for _, tc := range []struct {
		name           string
		items, deleted int
		deletes        Deletes
		wantHeld       bool
	}{
		{name: "a small user deletes one of three items", items: 3, deleted: 1,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}},
		{name: "a small user deletes all of its items, no more than minCount", items: 5, deleted: 5,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}},
		{name: "exactly minCount deletes over the percentage", items: 20, deleted: 5,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}},
		{name: "one delete more than minCount over the percentage", items: 20, deleted: 6,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}, wantHeld: true},
		{name: "more than minCount, within the percentage", items: 100, deleted: 10,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}},
		{name: "more than minCount, just over the percentage", items: 100, deleted: 11,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}, wantHeld: true},
		{name: "a mass delete of a large user", items: 1000, deleted: 200,
			deletes: Deletes{MaxPercent: 10, MinCount: 5}, wantHeld: true},
		{name: "maxCount caps below minCount", items: 3, deleted: 3,
			deletes: Deletes{MaxCount: 2, MaxPercent: 10, MinCount: 5}, wantHeld: true},
		{name: "no floor: the percentage alone", items: 3, deleted: 1,
			deletes: Deletes{MaxPercent: 10}, wantHeld: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			w := newWorld(t, OneWay, "", fullCaps, fullCaps)
			tc.deletes.Propagate = true
			w.policy.Deletes = tc.deletes
			var ids []string
			for i := range tc.items {
				ids = append(ids, w.src.Put("contact", contact(fmt.Sprint("p", i), fmt.Sprint(i, "@x"))))
			}
			g.Expect(w.mustCycle().Total.Created).To(Equal(tc.items))
			for _, id := range ids[:tc.deleted] {
				w.src.Remove("contact", id)
			}

			r := w.mustCycle()
			g.Expect(r.DeleteThresholdExceeded).To(Equal(tc.wantHeld))
			if tc.wantHeld {
				g.Expect(r.Total.Deleted).To(BeZero())
				g.Expect(r.PendingDeletes).To(HaveLen(tc.deleted))
				g.Expect(w.tgt.Items("person")).To(HaveLen(tc.items))
			} else {
				g.Expect(r.Total.Deleted).To(Equal(tc.deleted))
				g.Expect(w.tgt.Items("person")).To(HaveLen(tc.items - tc.deleted))
			}
		})
	}
}
