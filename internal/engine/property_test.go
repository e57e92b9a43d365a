package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/conntest"
)

// TestRandomEditsConverge: random creates, updates and deletes on both sides,
// interleaved with cycles, always end with both sides equal, no duplicates,
// consistent records, and a final cycle with nothing to do.
func TestRandomEditsConverge(t *testing.T) {
	modes := []struct {
		dir  Direction
		rule ConflictRule
	}{{OneWay, ""}, {TwoWay, SourceWins}, {TwoWay, TargetWins}, {TwoWay, NewestWins}}
	for _, m := range modes {
		for seed := range uint64(15) {
			t.Run(fmt.Sprintf("%s-%s/seed-%d", m.dir, m.rule, seed), func(t *testing.T) {
				g := NewWithT(t)
				caps := fullCaps
				if seed%3 == 1 {
					caps = connector.Capabilities{ModTime: true} // no incremental, no origin
				}
				w := newWorld(t, m.dir, m.rule, fullCaps, caps)
				rng := rand.New(rand.NewPCG(seed, 7))
				fresh := 0
				edit := func(mem *conntest.Memory, entity string, mk func(string, string) connector.Item, nameField, emailField string, mayCreate bool) {
					items := mem.Items(entity)
					switch op := rng.IntN(4); {
					case (op == 0 || len(items) == 0) && mayCreate:
						fresh++
						mem.Put(entity, mk(fmt.Sprint("new", fresh), fmt.Sprint("e", fresh, "@x")))
					case op == 1 && len(items) > 0:
						mem.Remove(entity, items[rng.IntN(len(items))].ID)
					case len(items) > 0:
						it := items[rng.IntN(len(items))]
						mem.Put(entity, connector.Item{ID: it.ID, Fields: mk(fmt.Sprint("v", rng.IntN(1000)), it.Fields[emailField].Text).Fields})
					}
				}
				for range 12 {
					for range rng.IntN(4) {
						edit(w.src, "contact", contact, "name", "email", true)
					}
					for range rng.IntN(3) {
						edit(w.tgt, "person", person, "fullName", "mail", m.dir == TwoWay)
					}
					w.clock.t = w.clock.t.Add(time.Duration(rng.Int64N(5 * 60e9)))
					w.mustCycle()
				}
				w.policy.Complete = true // catches one-way target drift
				w.mustCycle()
				w.policy.Complete = false
				expectConverged(g, w)

				u, err := w.store.OpenUser("ann@example.com", recordsOpen())
				g.Expect(err).NotTo(HaveOccurred())
				defer u.Close()
				g.Expect(u.Verify()).To(Succeed())
				export, err := u.Export()
				g.Expect(err).NotTo(HaveOccurred())
				links := 0
				for _, p := range export.Pairs {
					links += len(p.Links)
					g.Expect(p.Intents).To(BeEmpty())
				}
				g.Expect(links).To(Equal(len(w.src.Items("contact"))), "one link per item")
			})
		}
	}
}
