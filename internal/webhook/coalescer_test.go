package webhook

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// requests records the cycle requests a coalescer sends, failing those named in failOnce once.
type requests struct {
	mu       sync.Mutex
	sent     map[types.NamespacedName]int
	failOnce map[types.NamespacedName]bool
}

func (r *requests) request(_ context.Context, u types.NamespacedName) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failOnce[u] {
		delete(r.failOnce, u)
		return errors.New("the API server is away")
	}
	r.sent[u]++
	return nil
}

func (r *requests) counts() map[types.NamespacedName]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[types.NamespacedName]int{}
	for k, v := range r.sent {
		out[k] = v
	}
	return out
}

func TestCoalescerSendsOneRequestPerUserAndWindow(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ada, bob := types.NamespacedName{Namespace: "ns", Name: "ada"}, types.NamespacedName{Namespace: "ns", Name: "bob"}
	sent := &requests{sent: map[types.NamespacedName]int{}, failOnce: map[types.NamespacedName]bool{bob: true}}
	c := newCoalescer(clk, time.Second, sent.request)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx) }()
	g.Eventually(clk.HasWaiters).Should(BeTrue(), "the coalescer waits for its ticker")

	for range 100 {
		c.add(ada)
	}
	c.add(bob)
	g.Consistently(sent.counts, 50*time.Millisecond).Should(BeEmpty(), "nothing is sent before the window ends")

	clk.Step(time.Second)
	g.Eventually(sent.counts).Should(Equal(map[types.NamespacedName]int{ada: 1}),
		"a hundred calls for ada in one window are one request; bob's failed")
	clk.Step(time.Second)
	g.Eventually(sent.counts).Should(Equal(map[types.NamespacedName]int{ada: 1, bob: 1}),
		"bob's failed request is sent in the next window, and ada is not asked again")

	c.add(ada)
	cancel()
	<-done
	g.Expect(sent.counts()).To(Equal(map[types.NamespacedName]int{ada: 2, bob: 1}),
		"a request pending when the server stops is sent before it returns")
}
