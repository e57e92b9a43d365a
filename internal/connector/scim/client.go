package scim

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
	"time"
)

// client sends SCIM requests: authentication, retries of what a later try can fix, and errors
// that carry the server's detail.
type client struct {
	cfg  Config
	base string
	http *http.Client
	// sleep waits between retries; tests count the waits.
	sleep func(context.Context, time.Duration) error
}

func newClient(cfg Config) *client {
	return &client{cfg: cfg, base: strings.TrimSuffix(cfg.BaseURL, "/"),
		http: &http.Client{Timeout: cfg.requestTimeout()}, sleep: sleepCtx}
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
	// scimType and detail are the SCIM error's (RFC 7644 section 3.12), when the body is one.
	scimType, detail string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, http.StatusText(e.status))
	if e.scimType != "" {
		msg += " (" + e.scimType + ")"
	}
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
	return fmt.Sprintf("cannot reach the SCIM server at %s: %v", e.base, e.err)
}
func (e *unreachableError) Unwrap() error { return e.err }

// response is a successful answer.
type response struct {
	status int
	etag   string
	body   []byte
}

// do sends one request, retrying 429s after their Retry-After, 5xx answers with backoff, and
// connections that could not be made. A request that was sent but got no answer is retried only
// when it is idempotent: a POST may have created the User.
func (c *client) do(ctx context.Context, method, path string, header http.Header, body any) (response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return response{}, err
		}
	}
	url := c.base + path
	backoff := c.cfg.backoff()
	for attempt := 0; ; attempt++ {
		resp, wait, err := c.once(ctx, method, url, header, payload)
		if err == nil {
			return resp, nil
		}
		last := attempt >= c.cfg.retries()
		var se *statusError
		switch {
		case ctx.Err() != nil:
			return response{}, ctx.Err()
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
			return response{}, fmt.Errorf("%s %s: no answer, so the User may or may not have been created: %w", method, url, err)
		default:
			if last {
				return response{}, &unreachableError{base: c.base, err: err}
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
func (c *client) once(ctx context.Context, method, url string, header http.Header, payload []byte) (response, time.Duration, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return response{}, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if c.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	} else {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return response{}, 0, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return response{status: resp.StatusCode, etag: resp.Header.Get("ETag"), body: b}, 0, nil
	}
	se := &statusError{method: method, url: url, status: resp.StatusCode}
	var scimErr struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(b, &scimErr) == nil {
		se.scimType, se.detail = scimErr.ScimType, scimErr.Detail
	}
	return response{}, retryAfter(resp.Header.Get("Retry-After")), se
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
