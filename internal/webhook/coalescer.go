package webhook

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// coalesceWindow is how often pending cycle requests are sent: a user named by a hundred calls
// in that time is asked for one cycle, not a hundred.
const coalesceWindow = time.Second

// coalescer gathers the users that calls name and asks for their cycles once per window. Calls
// only mark users pending; flushing sends one request per pending user. A request that fails
// stays pending for the next window.
type coalescer struct {
	clock  clock.WithTicker
	window time.Duration
	// request asks for a cycle of one user now.
	request func(ctx context.Context, user types.NamespacedName) error

	mu      sync.Mutex
	pending map[types.NamespacedName]bool
}

func newCoalescer(c clock.WithTicker, window time.Duration, request func(context.Context, types.NamespacedName) error) *coalescer {
	return &coalescer{clock: c, window: window, request: request, pending: map[types.NamespacedName]bool{}}
}

// add marks users pending.
func (c *coalescer) add(users ...types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		c.pending[u] = true
	}
}

// run flushes every window until ctx ends, then once more so that no accepted call is lost on
// a clean shutdown.
func (c *coalescer) run(ctx context.Context) {
	ticker := c.clock.NewTicker(c.window)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			c.flush(flushCtx)
			cancel()
			return
		case <-ticker.C():
			c.flush(ctx)
		}
	}
}

// flush sends the pending requests and keeps those that failed.
func (c *coalescer) flush(ctx context.Context) {
	c.mu.Lock()
	batch := c.pending
	c.pending = map[types.NamespacedName]bool{}
	c.mu.Unlock()
	var failed []types.NamespacedName
	for user := range batch {
		if err := c.request(ctx, user); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Requesting a cycle; trying again in the next window", "user", user)
			failed = append(failed, user)
		}
	}
	c.add(failed...)
}
