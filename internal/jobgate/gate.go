// Package jobgate runs the user cycles of one Job a few at a time, and lets a cycle step aside
// while it waits for work it shares with the Job's other cycles (a csv file rewritten once for
// all of them), so that the shared work starts as soon as every cycle of the Job is either done
// or waiting for it: no earlier, which would do it more often than needed, and no later, which
// would leave the Job idle.
package jobgate

import (
	"context"
	"slices"
	"sync"
)

// Gate bounds how many cycles run at once. A cycle waiting through Wait does not count against
// the bound, so the Job's other cycles go on meanwhile.
type Gate struct {
	mu     sync.Mutex
	limit  int
	active int             // cycles holding a slot
	queue  []chan struct{} // cycles waiting for a slot, oldest first
	// resuming is how many at the head of the queue are back from Wait.
	resuming int
	parked int             // cycles in Wait
	quiet  bool            // as last told to onQuiet
	// onQuiet are told each time the Job becomes quiet: no cycle runs or waits for a slot, and
	// at least one is in Wait. Only what those wait for can make progress then.
	onQuiet []func()
}

// New returns a gate letting limit cycles run at once (at least one).
func New(limit int) *Gate {
	return &Gate{limit: max(1, limit)}
}

// OnQuiet registers f to be called, in a goroutine of its own, each time the Job becomes quiet.
func (g *Gate) OnQuiet(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onQuiet = append(g.onQuiet, f)
}

// Do runs fn once a slot is free, holding it meanwhile except while fn is in Wait.
func (g *Gate) Do(ctx context.Context, fn func() error) error {
	if err := g.Acquire(ctx); err != nil {
		return err
	}
	defer g.Release()
	return fn()
}

// Acquire takes a slot, waiting for one as long as ctx allows; slots are handed out in the
// order they were asked for, so a caller that acquires before it starts each cycle starts them
// in its own order. Release gives it back.
func (g *Gate) Acquire(ctx context.Context) error { return g.acquire(ctx, false) }

// Release gives back a slot taken by Acquire.
func (g *Gate) Release() { g.release() }

// Wait gives up the caller's slot until done is closed or ctx ends, then takes a slot again
// before it returns: the caller, called from Do's fn, always holds one afterwards. When ctx
// ends, the slot is taken at once, beyond the limit if need be, so that a cancelled cycle winds
// down rather than waits for others.
func (g *Gate) Wait(ctx context.Context, done <-chan struct{}) error {
	g.mu.Lock()
	g.parked++
	g.releaseLocked()
	g.mu.Unlock()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if aerr := g.acquire(ctx, true); aerr != nil {
		g.mu.Lock()
		g.active++ // over the limit: see above
		g.mu.Unlock()
		return aerr
	}
	return err
}

// acquire takes a slot, waiting for one as long as ctx allows. unpark also leaves Wait in the
// same step, so the Job never looks quiet in between.
func (g *Gate) acquire(ctx context.Context, unpark bool) error {
	g.mu.Lock()
	if unpark {
		g.parked--
	}
	if g.active < g.limit && len(g.queue) == 0 {
		g.active++
		g.checkQuietLocked()
		g.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	if unpark {
		// Before the cycles not started yet: a cycle back from Wait holds its work in memory
		// until it ends, and new ones started before it would pile up more.
		g.queue = slices.Insert(g.queue, g.resuming, turn)
		g.resuming++
	} else {
		g.queue = append(g.queue, turn)
	}
	g.checkQuietLocked()
	g.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if i := slices.Index(g.queue, turn); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
			if i < g.resuming {
				g.resuming--
			}
			g.checkQuietLocked()
			return ctx.Err()
		}
		return nil // handed a slot meanwhile: it is ours
	}
}

func (g *Gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked()
}

// releaseLocked hands the slot to the oldest cycle waiting for one, or frees it.
func (g *Gate) releaseLocked() {
	if len(g.queue) > 0 && g.active <= g.limit {
		close(g.queue[0])
		g.queue = g.queue[1:]
		g.resuming = max(0, g.resuming-1)
	} else {
		g.active--
	}
	g.checkQuietLocked()
}

func (g *Gate) checkQuietLocked() {
	quiet := g.active == 0 && len(g.queue) == 0 && g.parked > 0
	if quiet && !g.quiet {
		for _, f := range g.onQuiet {
			go f()
		}
	}
	g.quiet = quiet
}
