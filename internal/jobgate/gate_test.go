package jobgate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Six cycles, two at a time, each waiting once for work shared by all: the shared work is asked
// for once, only when all six are waiting, and never more than two cycles run at once.
func TestQuietOnceEveryCycleWaits(t *testing.T) {
	g := NewWithT(t)
	gate := New(2)
	shared := make(chan struct{})
	var quiet, waiting, running, most atomic.Int32
	gate.OnQuiet(func() {
		if quiet.Add(1) == 1 {
			g.Expect(waiting.Load()).To(BeEquivalentTo(6), "every cycle waits when the Job is quiet")
			close(shared)
		}
	})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := gate.Do(context.Background(), func() error {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(5 * time.Millisecond)
				running.Add(-1)
				waiting.Add(1)
				err := gate.Wait(context.Background(), shared)
				running.Add(1)
				time.Sleep(time.Millisecond)
				running.Add(-1)
				return err
			})
			g.Expect(err).NotTo(HaveOccurred())
		}()
	}
	wg.Wait()
	g.Expect(quiet.Load()).To(BeEquivalentTo(1))
	g.Expect(most.Load()).To(BeEquivalentTo(2))
}

// A cycle whose context ends while it waits returns at once with the context's error, holding a
// slot it then gives back: the gate is free again for the next cycle.
func TestWaitEndsWithItsContext(t *testing.T) {
	g := NewWithT(t)
	gate := New(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := gate.Do(ctx, func() error { return gate.Wait(ctx, make(chan struct{})) })
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	ran := false
	g.Expect(gate.Do(context.Background(), func() error { ran = true; return nil })).To(Succeed())
	g.Expect(ran).To(BeTrue())
}
