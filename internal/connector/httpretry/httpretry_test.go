package httpretry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestRetryAfter(t *testing.T) {
	g := NewWithT(t)
	g.Expect(RetryAfter("7")).To(Equal(7 * time.Second))
	g.Expect(RetryAfter("0")).To(Equal(time.Duration(0)))
	g.Expect(RetryAfter("")).To(Equal(time.Duration(0)), "absent")
	g.Expect(RetryAfter("-3")).To(Equal(time.Duration(0)), "negative seconds")
	g.Expect(RetryAfter("soon")).To(Equal(time.Duration(0)), "unreadable")

	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	g.Expect(RetryAfter(date)).To(And(BeNumerically(">", 85*time.Second), BeNumerically("<=", 90*time.Second)), "an HTTP date")
	g.Expect(RetryAfter(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))).To(Equal(time.Duration(0)), "a date gone by")
}

func TestTruncate(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Truncate("  short \n", 10)).To(Equal("short"), "trimmed, not cut")
	g.Expect(Truncate("abcdef", 6)).To(Equal("abcdef"))
	g.Expect(Truncate("abcdef", 3)).To(Equal("abc..."))
	g.Expect(Truncate("héllo", 2)).To(Equal("h..."), "é is two bytes: not cut in half")
	g.Expect(Truncate("héllo", 3)).To(Equal("hé..."))
	g.Expect(Truncate("日本語", 5)).To(Equal("日..."))
	g.Expect(Truncate("日本語", 2)).To(Equal("..."))
}

func TestStatusError(t *testing.T) {
	g := NewWithT(t)
	err := error(&StatusError{Method: "PUT", URL: "http://x/Users/1", Status: 409, Type: "uniqueness", Detail: "taken"})
	g.Expect(err.Error()).To(Equal("PUT http://x/Users/1: 409 Conflict (uniqueness): taken"))
	g.Expect((&StatusError{Method: "GET", URL: "http://x", Status: 404}).Error()).To(Equal("GET http://x: 404 Not Found"))
	g.Expect(Status(errors.Join(errors.New("wrapped"), err))).To(Equal(409))
	g.Expect(Status(errors.New("other"))).To(Equal(0))
}

// tries is a Policy whose waits are recorded, and a send that answers with the given errors in
// turn (nil once they run out), with a Retry-After each.
type tries struct {
	waits []time.Duration
	sent  int
}

func (tr *tries) policy() Policy {
	return Policy{Retries: 3, Backoff: time.Second, MaxRetryAfter: time.Minute, Server: "the API", Base: "http://api", Created: "item",
		Sleep: func(_ context.Context, d time.Duration) error { tr.waits = append(tr.waits, d); return nil }}
}

type answer struct {
	wait time.Duration
	err  error
}

func (tr *tries) send(answers ...answer) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		tr.sent++
		if tr.sent > len(answers) {
			return 0, nil
		}
		a := answers[tr.sent-1]
		return a.wait, a.err
	}
}

func refused(status int) error {
	return &StatusError{Method: "GET", URL: "http://api/x", Status: status}
}

var (
	ctx      = context.Background()
	dialErr  = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	readErr  = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}
	tooMany  = refused(http.StatusTooManyRequests)
	badGate  = refused(http.StatusBadGateway)
	notFound = refused(http.StatusNotFound)
)

func TestTooManyRequestsWaitsForRetryAfter(t *testing.T) {
	g := NewWithT(t)
	tr := &tries{}
	err := tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{7 * time.Second, tooMany}, answer{0, tooMany}, answer{0, tooMany}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.waits).To(Equal([]time.Duration{7 * time.Second, time.Second, 2 * time.Second}), "Retry-After, else backoff")

	tr = &tries{}
	err = tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{time.Hour, tooMany}))
	g.Expect(err).To(MatchError("GET http://api/x: 429 Too Many Requests; the server asks to wait 1h0m0s, longer than 1m0s"))
	g.Expect(errors.Is(err, tooMany)).To(BeTrue())
	g.Expect(tr.waits).To(BeEmpty())
}

func TestServerErrorsBackOffBoundedByTheRetries(t *testing.T) {
	g := NewWithT(t)
	tr := &tries{}
	err := tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{0, badGate}, answer{0, badGate}, answer{0, badGate}, answer{0, badGate}, answer{0, badGate}))
	g.Expect(err).To(Equal(badGate), "the last refusal, as it was")
	g.Expect(tr.sent).To(Equal(4), "the first try and 3 retries")
	g.Expect(tr.waits).To(Equal([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}), "doubling, and no wait after the last try")

	tr = &tries{}
	err = tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{5 * time.Second, badGate}, answer{0, badGate}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.waits).To(Equal([]time.Duration{5 * time.Second, 2 * time.Second}), "the longer of Retry-After and the backoff")
}

func TestRefusalsAndFinalErrorsAreNotRetried(t *testing.T) {
	g := NewWithT(t)
	tr := &tries{}
	err := tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{0, notFound}))
	g.Expect(err).To(Equal(notFound))
	g.Expect(tr.sent).To(Equal(1))

	final := errors.New("the authorization server refused the client")
	tr = &tries{}
	p := tr.policy()
	p.Final = func(err error) bool { return err == final }
	g.Expect(p.Do(ctx, "GET", "http://api/x", tr.send(answer{0, final}))).To(Equal(final))
	g.Expect(tr.sent).To(Equal(1))
}

func TestLostAnswers(t *testing.T) {
	t.Run("a POST that was sent is not sent again", func(t *testing.T) {
		g := NewWithT(t)
		tr := &tries{}
		err := tr.policy().Do(ctx, http.MethodPost, "http://api/x", tr.send(answer{0, readErr}))
		g.Expect(err).To(MatchError("POST http://api/x: no answer, so the item may or may not have been created: read tcp: connection reset"))
		g.Expect(errors.Is(err, readErr)).To(BeTrue())
		g.Expect(tr.sent).To(Equal(1))
	})
	t.Run("a POST that could not connect is", func(t *testing.T) {
		g := NewWithT(t)
		tr := &tries{}
		g.Expect(tr.policy().Do(ctx, http.MethodPost, "http://api/x", tr.send(answer{0, dialErr}))).To(Succeed())
		g.Expect(tr.sent).To(Equal(2))
	})
	t.Run("a GET is, until it is unreachable", func(t *testing.T) {
		g := NewWithT(t)
		tr := &tries{}
		err := tr.policy().Do(ctx, http.MethodGet, "http://api/x", tr.send(answer{0, readErr}, answer{0, dialErr}, answer{0, dialErr}, answer{0, dialErr}))
		var ue *UnreachableError
		g.Expect(errors.As(err, &ue)).To(BeTrue())
		g.Expect(err).To(MatchError("cannot reach the API at http://api: dial tcp: connection refused"))
		g.Expect(errors.Is(err, dialErr)).To(BeTrue())
		g.Expect(tr.waits).To(Equal([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}))
	})
}

func TestATimedOutPOSTOverHTTPIsSentOnce(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(200 * time.Millisecond)
	}))
	defer s.Close()
	hc := &http.Client{Timeout: 50 * time.Millisecond}
	tr := &tries{}
	err := tr.policy().Do(ctx, http.MethodPost, s.URL, func() (time.Duration, error) {
		resp, err := hc.Post(s.URL, "application/json", nil)
		if err == nil {
			resp.Body.Close()
		}
		return 0, err
	})
	g.Expect(err).To(MatchError(ContainSubstring("no answer, so the item may or may not have been created")))
	g.Expect(calls.Load()).To(Equal(int32(1)))
	g.Expect(tr.waits).To(BeEmpty())
}

func TestACancelledContextEndsTheRetries(t *testing.T) {
	g := NewWithT(t)
	c, cancel := context.WithCancel(ctx)
	tr := &tries{}
	err := tr.policy().Do(c, "GET", "http://api/x", func() (time.Duration, error) {
		cancel()
		return 0, badGate
	})
	g.Expect(err).To(MatchError(context.Canceled))

	g.Expect(Sleep(c, time.Hour)).To(MatchError(context.Canceled), "Sleep ends with the context")
	g.Expect(Sleep(ctx, time.Millisecond)).To(Succeed())
}

func TestNewRequest(t *testing.T) {
	g := NewWithT(t)
	req, err := NewRequest(ctx, http.MethodGet, "http://api/x", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(req.Body).To(BeNil(), "no body, not an empty one")

	req, err = NewRequest(ctx, http.MethodPost, "http://api/x", []byte(`{"a":1}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(req.ContentLength).To(Equal(int64(7)))
	g.Expect(req.GetBody).NotTo(BeNil(), "a body that can be sent again")
}

func TestNoWaitIsLongerThanMaxRetryAfter(t *testing.T) {
	g := NewWithT(t)
	tr := &tries{}
	err := tr.policy().Do(ctx, "GET", "http://api/x", tr.send(answer{time.Hour, refused(http.StatusServiceUnavailable)}))
	g.Expect(err).To(MatchError(ContainSubstring("503 Service Unavailable; the server asks to wait 1h0m0s, longer than 1m0s")),
		"a 503's Retry-After of an hour fails the request instead of holding the cycle for an hour")
	g.Expect(tr.waits).To(BeEmpty())

	tr = &tries{}
	p := tr.policy()
	p.Retries, p.Backoff = 8, 20*time.Second
	err = p.Do(ctx, "GET", "http://api/x", tr.send(answer{0, badGate}, answer{0, badGate}, answer{0, badGate}, answer{0, badGate}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.waits).To(Equal([]time.Duration{20 * time.Second, 40 * time.Second, time.Minute, time.Minute}), "the backoff doubles up to MaxRetryAfter")
}
