package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/chainsync/chainsync/internal/connector/httpretry"
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
	c := &client{cfg: cfg, http: &http.Client{Timeout: cfg.requestTimeout()}, sleep: httpretry.Sleep}
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
	var resp response
	renewed := false
	policy := httpretry.Policy{Retries: c.cfg.retries(), Backoff: c.cfg.backoff(), MaxRetryAfter: c.cfg.maxRetryAfter(),
		Sleep: c.sleep, Server: "the API", Base: c.cfg.BaseURL, Created: "item", Final: isTokenError}
	err := policy.Do(ctx, method, url, func() (time.Duration, error) {
		var wait time.Duration
		var err error
		resp, wait, err = c.once(ctx, method, url, payload)
		if httpretry.Status(err) == http.StatusUnauthorized && c.tokens != nil && !renewed && ctx.Err() == nil {
			// A token the API no longer takes: one more try with a new one, before any retry.
			renewed = true
			c.mu.Lock()
			c.tokens = c.newTokenSource()
			c.mu.Unlock()
			resp, wait, err = c.once(ctx, method, url, payload)
		}
		return wait, err
	})
	if err != nil {
		return response{}, err
	}
	return resp, nil
}

func isTokenError(err error) bool {
	var te *tokenError
	return errors.As(err, &te)
}

// once sends the request once; for a 429 or 503 it also returns the Retry-After the server asked.
func (c *client) once(ctx context.Context, method, url string, payload []byte) (response, time.Duration, error) {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return response{}, 0, err
		}
	}
	req, err := httpretry.NewRequest(ctx, method, url, payload)
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
	se := &httpretry.StatusError{Method: method, URL: url, Status: resp.StatusCode, Detail: c.redact(httpretry.Truncate(string(b), maxDetail))}
	return response{}, httpretry.RetryAfter(resp.Header.Get("Retry-After")), se
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
		detail := c.redact(httpretry.Truncate(string(re.Body), maxDetail))
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("%s answered %d: %s", c.cfg.Auth.OAuth2.TokenURL, status, detail)
	}
	return errors.New(c.redact(err.Error()))
}
