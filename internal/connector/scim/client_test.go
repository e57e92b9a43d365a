package scim

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/testutil/scimtest"
)

// recordSleeps makes the connector's waits between retries instant, and lists them.
func recordSleeps(c *Connector) *[]time.Duration {
	var sleeps []time.Duration
	c.client.sleep = func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return nil
	}
	return &sleeps
}

func TestRateLimitsAreWaitedOut(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	s.Put(scimtest.User{UserName: "ann@example.com"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName()})
	sleeps := recordSleeps(c)
	s.Inject(scimtest.Fault{Method: http.MethodGet, Status: http.StatusTooManyRequests, RetryAfter: "3", Times: 2})

	items, err := readAll(c, ann)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(items).To(HaveLen(1))
	g.Expect(*sleeps).To(Equal([]time.Duration{3 * time.Second, 3 * time.Second}), "Retry-After, as the server asked")

	s.Inject(scimtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "3600"})
	_, err = readAll(c, ann)
	g.Expect(err).To(MatchError(ContainSubstring("the server asks to wait 1h0m0s, longer than 2m0s")))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName(), Backoff: 100 * time.Millisecond})
	sleeps := recordSleeps(c)
	s.Inject(scimtest.Fault{Method: http.MethodPost, Status: http.StatusServiceUnavailable, Times: 2})

	res, err := write(c, ann, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"displayName": connector.String("Ann")}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(*sleeps).To(Equal([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}))
	g.Expect(s.Users()).To(HaveLen(1), "created once")

	s.Inject(scimtest.Fault{Status: http.StatusInternalServerError})
	before := s.Requests()
	_, err = write(c, ann, connector.Write{Op: connector.OpUpdate, ID: res[0].ID, Fields: map[string]connector.Value{"displayName": connector.String("Ann E.")}})
	g.Expect(err).To(MatchError(ContainSubstring("500 Internal Server Error: Injected fault.")))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue(), "a server that keeps failing fails the cycle, not the item")
	g.Expect(s.Requests()-before).To(Equal(5), "the first try and 4 retries")
}

func TestTimeouts(t *testing.T) {
	g := NewWithT(t)
	s := scimtest.Start(t, scimtest.Options{})
	s.Put(scimtest.User{UserName: "ann@example.com"})
	c := newConnector(t, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName(), RequestTimeout: 250 * time.Millisecond})
	recordSleeps(c)

	s.Inject(scimtest.Fault{Method: http.MethodGet, Delay: 750 * time.Millisecond, Times: 1})
	items, err := readAll(c, ann)
	g.Expect(err).NotTo(HaveOccurred(), "a read that timed out is tried again")
	g.Expect(items).To(HaveLen(1))

	s.Inject(scimtest.Fault{Method: http.MethodPost, Delay: 750 * time.Millisecond, Times: 1})
	before := s.Requests()
	_, err = write(c, connector.Scope{Email: "bob@example.com"}, connector.Write{Op: connector.OpCreate, Origin: "chainsync1:abc:0:bob"})
	g.Expect(err).To(MatchError(ContainSubstring("no answer, so the User may or may not have been created")))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
	g.Expect(s.Requests()-before).To(Equal(1), "a create whose answer was lost is not sent again")
	g.Eventually(func() string { return findUser(s, "bob@example.com").ExternalID }).WithTimeout(5*time.Second).Should(Equal("chainsync1:abc:0:bob"),
		"the server made the User after all; its origin lets the next cycle recognise it")
}

func TestEndpointFailures(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		g := NewWithT(t)
		s := scimtest.Start(t, scimtest.Options{})
		s.Close()
		_, err := New(ctx, Config{BaseURL: s.URL, BearerToken: scimtest.Token, Entities: byUserName(), Backoff: time.Millisecond})
		g.Expect(err).To(MatchError(ContainSubstring("cannot reach the SCIM server at " + s.URL)))
		g.Expect(err).NotTo(MatchError(connector.ErrInvalidConfig), "an outage, not a spec to fix")
	})
	t.Run("wrong token", func(t *testing.T) {
		g := NewWithT(t)
		s := scimtest.Start(t, scimtest.Options{})
		_, err := New(ctx, Config{Side: "target", BaseURL: s.URL, BearerToken: "stale", Entities: byUserName()})
		g.Expect(err).To(MatchError(ContainSubstring("target.scim.bearerTokenSecretRef: the SCIM server refused the credentials")))
		g.Expect(err).To(MatchError(ContainSubstring("The credentials are not valid.")))
	})
	t.Run("no SCIM service at the base URL", func(t *testing.T) {
		g := NewWithT(t)
		s := scimtest.Start(t, scimtest.Options{})
		_, err := New(ctx, Config{Side: "target", BaseURL: s.URL + "/nothing/here", BearerToken: scimtest.Token, Entities: byUserName()})
		g.Expect(err).To(MatchError(ContainSubstring("target.scim.baseURL: no SCIM service there")))
		g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
	})
}
