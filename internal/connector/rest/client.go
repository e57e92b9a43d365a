package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"
)

// maxBody bounds an answer read into memory: one page or one item.
const maxBody = 64 << 20

// maxDetail bounds the part of a refusal's body an error quotes.
const maxDetail = 512

// client sends requests: authentication, the rate ceiling, retries of what a later try can fix,
// and errors that carry the server's words but never a credential.
type client struct {
	cfg     Config
	http    *http.Client
	limiter *rate.Limiter
	// sleep waits between retries; tests count the waits.
	sleep func(context.Context, time.Duration) error

	mu sync.Mutex
	// tokens caches the OAuth2 token until it is near expiry; replaced when the API refuses it.
	tokens oauth2.TokenSource
	// token is the last OAuth2 access token sent, kept out of error messages.
	token string
}

func newClient(cfg Config) *client {
	c := &client{cfg: cfg, http: &http.Client{Timeout: cfg.requestTimeout()}, sleep: sleepCtx}
	if cfg.RequestsPerSecond > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), max(1, int(cfg.RequestsPerSecond)))
	}
	if cfg.Auth.OAuth2 != nil {
		c.tokens = c.newTokenSource()
	}
	return c
}

func (c *client) newTokenSource() oauth2.TokenSource {
	o := c.cfg.Auth.OAuth2
	cc := clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes}
	// The token source outlives any one request: it refreshes with its own context, through a
	// client with the request timeout.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: c.cfg.requestTimeout()})
	return cc.TokenSource(ctx)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// statusError is an answer the server gave that is not a success.
type statusError struct {
	method, url string
	status      int
	// detail is the start of the answer's body, without credentials.
	detail string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, http.StatusText(e.status))
	if e.detail != "" {
		msg += ": " + e.detail
	}
	return msg
}

// unreachableError is a request that got no answer after every retry.
type unreachableError struct {
	base string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API at %s: %v", e.base, e.err)
}
func (e *unreachableError) Unwrap() error { return e.err }

// tokenError is an authorization server that refused the client credentials or could not be
// reached.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "getting an OAuth2 token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// response is a successful answer.
type response struct {
	status int
	header http.Header
	body   []byte
	// date is the server's clock when it answered (its Date header), or the zero time.
	date time.Time
}

// do sends one request to an absolute URL, retrying 429s after their Retry-After, 5xx answers
// and connections that could not be made with backoff. A request that was sent but got no
// answer is retried only when it does not create: a POST may have created the item. A 401 with
// OAuth2 drops the cached token and tries once more with a new one.
func (c *client) do(ctx context.Context, method, url string, body any) (response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return response{}, err
		}
	}
	backoff := c.cfg.backoff()
	renewed := false
	for attempt := 0; ; attempt++ {
		resp, wait, err := c.once(ctx, method, url, payload)
		if err == nil {
			return resp, nil
		}
		last := attempt >= c.cfg.retries()
		var se *statusError
		var te *tokenError
		switch {
		case ctx.Err() != nil:
			return response{}, ctx.Err()
		case errors.As(err, &te):
			return response{}, err
		case errors.As(err, &se) && se.status == http.StatusUnauthorized && c.tokens != nil && !renewed:
			renewed = true
			c.mu.Lock()
			c.tokens = c.newTokenSource()
			c.mu.Unlock()
			attempt--
			continue
		case errors.As(err, &se) && se.status == http.StatusTooManyRequests:
			if wait > c.cfg.maxRetryAfter() {
				return response{}, fmt.Errorf("%w; the server asks to wait %s, longer than %s", err, wait, c.cfg.maxRetryAfter())
			}
			if wait == 0 {
				wait = backoff
				backoff *= 2
			}
		case errors.As(err, &se) && se.status >= 500:
			wait = max(wait, backoff)
			backoff *= 2
		case errors.As(err, &se):
			return response{}, err
		case method == http.MethodPost && !notSent(err):
			return response{}, fmt.Errorf("%s %s: no answer, so the item may or may not have been created: %w", method, url, err)
		default:
			if last {
				return response{}, &unreachableError{base: c.cfg.BaseURL, err: err}
			}
			wait = backoff
			backoff *= 2
		}
		if last {
			return response{}, err
		}
		if err := c.sleep(ctx, wait); err != nil {
			return response{}, err
		}
	}
}

// notSent reports whether a transport error happened before the request reached the server.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// once sends the request once; for a 429 or 503 it also returns the Retry-After the server asked.
func (c *client) once(ctx context.Context, method, url string, payload []byte) (response, time.Duration, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return response{}, 0, err
		}
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return response{}, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.authenticate(req); err != nil {
		return response{}, 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return response{}, 0, err
	}
	if len(b) > maxBody {
		return response{}, 0, fmt.Errorf("%s %s: the answer is larger than %d MiB", method, url, maxBody>>20)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		date, _ := http.ParseTime(resp.Header.Get("Date"))
		return response{status: resp.StatusCode, header: resp.Header, body: b, date: date}, 0, nil
	}
	se := &statusError{method: method, url: url, status: resp.StatusCode, detail: c.redact(truncate(string(b), maxDetail))}
	return response{}, retryAfter(resp.Header.Get("Retry-After")), se
}

func (c *client) authenticate(req *http.Request) error {
	a := c.cfg.Auth
	switch {
	case a.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+a.BearerToken)
	case a.Username != "":
		req.SetBasicAuth(a.Username, a.Password)
	case a.APIKey != "":
		req.Header.Set(a.APIKeyHeader, a.APIKey)
	case a.OAuth2 != nil:
		c.mu.Lock()
		tokens := c.tokens
		c.mu.Unlock()
		tok, err := tokens.Token()
		if err != nil {
			return &tokenError{err: c.redactErr(err)}
		}
		c.mu.Lock()
		c.token = tok.AccessToken
		c.mu.Unlock()
		tok.SetAuthHeader(req)
	}
	return nil
}

// redact removes every credential value from a text the server wrote: an API that echoes the
// request (or a token) back in its error must not put a secret in a status.
func (c *client) redact(s string) string {
	c.mu.Lock()
	secrets := append(c.cfg.Auth.secrets(), c.token)
	c.mu.Unlock()
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

func (c *client) redactErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		detail := c.redact(truncate(string(re.Body), maxDetail))
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("%s answered %d: %s", c.cfg.Auth.OAuth2.TokenURL, status, detail)
	}
	return errors.New(c.redact(err.Error()))
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// retryAfter reads Retry-After as seconds or as an HTTP date; 0 when absent or unreadable.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// status returns the HTTP status of a server's refusal, 0 for any other error.
func status(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}
