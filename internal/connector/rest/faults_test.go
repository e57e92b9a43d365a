package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

var (
	ctx = context.Background()
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann"}
)

// faultConfig is a connector on an httptest server: /contacts, not paged unless the test says,
// with retries that do not wait.
func faultConfig(url string) Config {
	return Config{Side: "target", BaseURL: url, Auth: Auth{BearerToken: "s3cr3t-token"},
		Resources: map[string]Resource{"contacts": {ListPath: "/contacts"}},
		Entities:  map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{"id"}}},
		Retries:   3, Backoff: time.Millisecond, RequestTimeout: 2 * time.Second}
}

func open(t *testing.T, cfg Config) (*Connector, *[]time.Duration) {
	t.Helper()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	waits := &[]time.Duration{}
	c.client.sleep = func(_ context.Context, d time.Duration) error {
		*waits = append(*waits, d)
		return nil
	}
	t.Cleanup(func() { c.Close() })
	return c, waits
}

func readAll(c *Connector, entity string) ([]connector.Item, []error) {
	var items []connector.Item
	var errs []error
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: entity}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items = append(items, it)
	}
	return items, errs
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestTooManyRequestsWaitsForRetryAfter(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `[{"id": 1, "name": "Ann"}]`)
	})
	c, waits := open(t, faultConfig(s.URL))
	items, errs := readAll(c, "people")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(1))
	g.Expect(*waits).To(Equal([]time.Duration{7 * time.Second, 7 * time.Second}), "the server's Retry-After is honoured")
}

func TestRetryAfterLongerThanTheLimitFailsTheRead(t *testing.T) {
	g := NewWithT(t)
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c, _ := open(t, faultConfig(s.URL))
	_, errs := readAll(c, "people")
	g.Expect(errs).To(HaveLen(1))
	g.Expect(connector.IsEndpointFailure(errs[0])).To(BeTrue())
	g.Expect(errs[0].Error()).To(ContainSubstring("asks to wait 1h0m0s, longer than 2m0s"))
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, `[{"id": "a"}, {"id": "b"}]`)
	})
	c, waits := open(t, faultConfig(s.URL))
	items, errs := readAll(c, "people")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(2))
	g.Expect(*waits).To(Equal([]time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}), "doubling backoff")

	t.Run("until the retries run out", func(t *testing.T) {
		g := NewWithT(t)
		s := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
		c, waits := open(t, faultConfig(s.URL))
		_, errs := readAll(c, "people")
		g.Expect(errs).To(HaveLen(1))
		g.Expect(errs[0].Error()).To(ContainSubstring("503 Service Unavailable"))
		g.Expect(*waits).To(HaveLen(3))
	})
}

func TestRequestsPerSecondIsACeiling(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"id": 1}`)
	})
	cfg := faultConfig(s.URL)
	cfg.RequestsPerSecond = 20
	c, _ := open(t, cfg)
	var writes []connector.Write
	for range 10 {
		writes = append(writes, connector.Write{Op: connector.OpUpdate, ID: "1", Fields: map[string]connector.Value{"name": connector.String("x")}})
	}
	start := time.Now()
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: writes})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(HaveLen(10))
	// A burst of 20 is allowed at once; 10 more need half a second at 20/s.
	for range 20 {
		c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: writes[:1]})
	}
	g.Expect(time.Since(start)).To(BeNumerically(">=", 450*time.Millisecond), "30 requests at 20 per second take over 0.45s")
	g.Expect(calls.Load()).To(Equal(int32(30)))
}

func TestTimeoutIsRetriedForReadsButNotForCreates(t *testing.T) {
	var calls atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 || r.Method == http.MethodPost {
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprint(w, `[{"id": 1}]`)
	})
	cfg := faultConfig(s.URL)
	cfg.RequestTimeout = 100 * time.Millisecond
	c, waits := open(t, cfg)
	t.Run("a read", func(t *testing.T) {
		g := NewWithT(t)
		items, errs := readAll(c, "people")
		g.Expect(errs).To(BeEmpty())
		g.Expect(items).To(HaveLen(1))
		g.Expect(*waits).To(HaveLen(1), "retried once after the timeout")
	})
	t.Run("a create", func(t *testing.T) {
		g := NewWithT(t)
		before := calls.Load()
		_, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people",
			Writes: []connector.Write{{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("Ann")}}}})
		g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
		g.Expect(err.Error()).To(ContainSubstring("no answer, so the item may or may not have been created"))
		g.Expect(calls.Load()-before).To(Equal(int32(1)), "a POST that may have created is not sent again")
	})
}

func TestAnswerThatIsNotJSONFailsTheReadNamingIt(t *testing.T) {
	g := NewWithT(t)
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html><body>Login required s3cr3t-token</body></html>`)
	})
	c, _ := open(t, faultConfig(s.URL))
	items, errs := readAll(c, "people")
	g.Expect(items).To(BeEmpty())
	g.Expect(errs).To(HaveLen(1))
	g.Expect(connector.IsEndpointFailure(errs[0])).To(BeTrue(), "a page that cannot be read fails the read, so nothing is taken for deleted")
	g.Expect(errs[0].Error()).To(And(ContainSubstring("the answer is not JSON"), ContainSubstring("<html><body>Login required"),
		ContainSubstring("nothing is taken for deleted")))
	g.Expect(errs[0].Error()).NotTo(ContainSubstring("s3cr3t-token"))
}

func TestAnItemThatIsNotAnObjectIsAnItemError(t *testing.T) {
	g := NewWithT(t)
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id": 1}, "junk", {"name": "no id"}, {"id": 2}]`)
	})
	c, _ := open(t, faultConfig(s.URL))
	items, errs := readAll(c, "people")
	g.Expect(items).To(HaveLen(2))
	g.Expect(errs).To(HaveLen(2))
	for _, err := range errs {
		g.Expect(connector.IsItemError(err)).To(BeTrue())
	}
	g.Expect(errs[1].Error()).To(ContainSubstring("element 2 of the list has no id"))
}

func TestAPageThatNeverEndsFailsAtMaxPages(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Pagination
		h    http.HandlerFunc
		want string
	}{
		{"cursor after cursor", Pagination{Mode: Cursor, CursorParam: "cursor", NextCursor: "/next"},
			func(w http.ResponseWriter, r *http.Request) {
				n := len(r.URL.Query().Get("cursor"))
				fmt.Fprintf(w, `{"items": [{"id": %d}], "next": "c%s"}`, n, strings.Repeat("x", n))
			}, "did not end after 25 pages"},
		{"the same cursor again", Pagination{Mode: Cursor, CursorParam: "cursor", NextCursor: "/next"},
			func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"items": [{"id": %q}], "next": "same"}`, r.URL.Query().Get("cursor"))
			}, "a page already read"},
		{"a server that ignores the page number", Pagination{Mode: PageNumber, PageParam: "page"},
			func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"items": [{"id": 1}, {"id": 2}]}`) },
			"item 1 came twice"},
		{"a link to the same page", Pagination{Mode: LinkHeader},
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `</contacts>; rel="next"`)
				fmt.Fprintf(w, `{"items": [{"id": 1}]}`)
			}, "a page already read"},
		{"a link to another host", Pagination{Mode: LinkHeader},
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `<https://evil.example.com/contacts?page=2>; rel="next"`)
				fmt.Fprintf(w, `{"items": [{"id": 1}]}`)
			}, "leaves http://127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := serve(t, tc.h)
			cfg := faultConfig(s.URL)
			cfg.MaxPages = 25
			cfg.Resources["contacts"] = Resource{ListPath: "/contacts", ItemsAt: "/items", Pagination: tc.p}
			c, _ := open(t, cfg)
			_, errs := readAll(c, "people")
			g.Expect(errs).NotTo(BeEmpty())
			last := errs[len(errs)-1]
			g.Expect(connector.IsEndpointFailure(last)).To(BeTrue())
			g.Expect(last.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestCursorPagination(t *testing.T) {
	g := NewWithT(t)
	pages := map[string]string{
		"":   `{"data": [{"id": 1}, {"id": 2}], "meta": {"next": "p2"}}`,
		"p2": `{"data": [{"id": 3}], "meta": {"next": "p3"}}`,
		"p3": `{"data": [], "meta": {"next": null}}`,
	}
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		g.Expect(r.URL.Query().Get("limit")).To(Equal("2"))
		fmt.Fprint(w, pages[r.URL.Query().Get("after")])
	})
	cfg := faultConfig(s.URL)
	cfg.Resources["contacts"] = Resource{ListPath: "/contacts", ItemsAt: "/data",
		Pagination: Pagination{Mode: Cursor, CursorParam: "after", NextCursor: "/meta/next", SizeParam: "limit", PageSize: 2}}
	c, _ := open(t, cfg)
	items, errs := readAll(c, "people")
	g.Expect(errs).To(BeEmpty())
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	g.Expect(ids).To(Equal([]string{"1", "2", "3"}))
}

func TestWrongCredentialsAndUnreachableServersAreEndpointFailures(t *testing.T) {
	t.Run("401", func(t *testing.T) {
		g := NewWithT(t)
		s := serve(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": "bad token s3cr3t-token"}`, http.StatusUnauthorized)
		})
		c, _ := open(t, faultConfig(s.URL))
		_, errs := readAll(c, "people")
		g.Expect(errs).To(HaveLen(1))
		g.Expect(errs[0]).NotTo(MatchError(connector.ErrInvalidConfig), "an outage or a rotated Secret, not a spec to fix")
		g.Expect(errs[0].Error()).To(And(ContainSubstring("target.http.auth: the API refused the credentials"), ContainSubstring("401 Unauthorized")))
		g.Expect(errs[0].Error()).NotTo(ContainSubstring("s3cr3t-token"), "a credential the server echoes is cut out")
	})
	t.Run("a path the API does not have", func(t *testing.T) {
		g := NewWithT(t)
		s := serve(t, http.NotFound)
		c, _ := open(t, faultConfig(s.URL))
		_, errs := readAll(c, "people")
		g.Expect(errs).To(HaveLen(1))
		g.Expect(errs[0]).To(MatchError(connector.ErrInvalidConfig))
		g.Expect(errs[0].Error()).To(ContainSubstring("target.http.resources[contacts].listPath"))
	})
	t.Run("nothing listening", func(t *testing.T) {
		g := NewWithT(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		g.Expect(err).NotTo(HaveOccurred())
		addr := l.Addr().String()
		l.Close()
		c, waits := open(t, faultConfig("http://"+addr))
		_, errs := readAll(c, "people")
		g.Expect(errs).To(HaveLen(1))
		g.Expect(errs[0]).NotTo(MatchError(connector.ErrInvalidConfig))
		g.Expect(errs[0].Error()).To(ContainSubstring("target.http.baseURL: cannot reach the API at http://" + addr))
		g.Expect(*waits).To(HaveLen(3), "retried with backoff first")
	})
}

func TestClientErrorsFailTheirItemOnlyWithTheBodyTruncated(t *testing.T) {
	g := NewWithT(t)
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/bad"):
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error": "email is invalid", "echo": "Bearer s3cr3t-token", "pad": %q}`, strings.Repeat("x", 5000))
		case strings.HasSuffix(r.URL.Path, "/gone"):
			w.WriteHeader(http.StatusNotFound)
		default:
			json.NewEncoder(w).Encode(map[string]any{"id": strings.TrimPrefix(r.URL.Path, "/contacts/"), "name": "ok"})
		}
	})
	c, _ := open(t, faultConfig(s.URL))
	name := map[string]connector.Value{"name": connector.String("x")}
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "bad", Fields: name},
		{Op: connector.OpUpdate, ID: "gone", Fields: name},
		{Op: connector.OpUpdate, ID: "good", Fields: name},
		{Op: connector.OpDelete, ID: "gone"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(HaveLen(4))
	g.Expect(connector.IsItemError(res[0].Err)).To(BeTrue())
	msg := res[0].Err.Error()
	g.Expect(msg).To(And(ContainSubstring("422 Unprocessable Entity"), ContainSubstring("email is invalid"), ContainSubstring("[redacted]")))
	g.Expect(msg).NotTo(ContainSubstring("s3cr3t-token"))
	g.Expect(len(msg)).To(BeNumerically("<", 800), "the body is truncated")
	g.Expect(res[1].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(res[2].Err).NotTo(HaveOccurred())
	g.Expect(res[2].Stored).To(HaveKeyWithValue("name", connector.String("ok")))
	g.Expect(res[3].Err).To(MatchError(connector.ErrNotFound), "the engine takes a delete of a missing item as done")
}
