// Package httpretry is what the HTTP connectors (scim, rest) share about a request that may
// fail: which failures a later try can fix and how long to wait for it, the errors that say
// why it failed in the end, and the reading of the headers and bodies those errors quote.
//
// Building a request (headers, authentication) and reading a success stay with each connector.
package httpretry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Policy is how a connector retries a request.
type Policy struct {
	// Retries is how many times a request is tried again after its first try.
	Retries int
	// Backoff is the first wait for a 5xx, a 429 without Retry-After or a failed connection;
	// each wait it gives doubles the next.
	Backoff time.Duration
	// MaxRetryAfter is the longest Retry-After a 429 or a 5xx is waited out for; a longer one
	// fails the request at once. It also caps the doubling backoff, when set.
	MaxRetryAfter time.Duration
	// Sleep waits between tries (tests count the waits); nil means Sleep.
	Sleep func(context.Context, time.Duration) error
	// Server names the server in an UnreachableError ("the API"), Base is its URL.
	Server, Base string
	// Created names what a POST creates ("item"), for a POST whose answer was lost.
	Created string
	// Final, when set, picks out the connector's own errors no retry can fix (a refused OAuth2
	// client, say); Do returns them as they are.
	Final func(error) bool
}

// Do calls send until it succeeds or fails in a way a later try cannot fix, and returns its
// last error. send makes one try; with a refusal (a *StatusError) it also returns the server's
// Retry-After, 0 for none.
//
// A 429 is retried after its Retry-After (backoff without one), a 5xx after the longer of its
// Retry-After and the backoff, and a request that got no answer after the backoff; a
// Retry-After over MaxRetryAfter fails at once, and no wait is longer than it. A POST that
// was sent but got no answer is not retried: it may have created. Any other refusal is
// returned at once. A request that never got an answer ends in an *UnreachableError.
func (p Policy) Do(ctx context.Context, method, url string, send func() (retryAfter time.Duration, err error)) error {
	sleep := p.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	backoff := p.Backoff
	for attempt := 0; ; attempt++ {
		wait, err := send()
		if err == nil {
			return nil
		}
		last := attempt >= p.Retries
		var se *StatusError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case p.Final != nil && p.Final(err):
			return err
		case errors.As(err, &se) && (se.Status == http.StatusTooManyRequests || se.Status >= 500) && wait > p.MaxRetryAfter:
			// A cycle waiting an hour for a 503's Retry-After holds its Job and its users.
			return fmt.Errorf("%w; the server asks to wait %s, longer than %s", err, wait, p.MaxRetryAfter)
		case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
			if wait == 0 {
				wait = backoff
				backoff *= 2
			}
		case errors.As(err, &se) && se.Status >= 500:
			wait = max(wait, backoff)
			backoff *= 2
		case errors.As(err, &se):
			return err
		case method == http.MethodPost && !notSent(err):
			return fmt.Errorf("%s %s: no answer, so the %s may or may not have been created: %w", method, url, p.Created, err)
		default:
			if last {
				return &UnreachableError{Server: p.Server, Base: p.Base, Err: err}
			}
			wait = backoff
			backoff *= 2
		}
		if p.MaxRetryAfter > 0 {
			backoff = min(backoff, p.MaxRetryAfter)
			wait = min(wait, p.MaxRetryAfter)
		}
		if last {
			return err
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// notSent reports whether a transport error happened before the request reached the server.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// NewRequest is a request with payload as its body, or with no body when payload is nil.
func NewRequest(ctx context.Context, method, url string, payload []byte) (*http.Request, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	return http.NewRequestWithContext(ctx, method, url, body)
}

// Sleep waits d, or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// StatusError is an answer the server gave that is not a success.
type StatusError struct {
	Method, URL string
	Status      int
	// Type is the kind of error the body names, where the API has one (SCIM's scimType).
	Type string
	// Detail is what the server said, as the connector read it from the body.
	Detail string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Type != "" {
		msg += " (" + e.Type + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Status returns the HTTP status of a server's refusal, 0 for any other error.
func Status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// UnreachableError is a request that got no answer after every retry.
type UnreachableError struct {
	// Server names the server ("the API"), Base is its URL.
	Server, Base string
	Err          error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s at %s: %v", e.Server, e.Base, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// RetryAfter reads Retry-After as seconds or as an HTTP date; 0 when absent or unreadable.
func RetryAfter(v string) time.Duration {
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

// Truncate trims s and cuts it to at most n bytes, on a rune boundary, marking a cut with "...".
func Truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
