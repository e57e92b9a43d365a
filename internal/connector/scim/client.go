package scim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector/httpretry"
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
		http: &http.Client{Timeout: cfg.requestTimeout()}, sleep: httpretry.Sleep}
}

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
	var resp response
	policy := httpretry.Policy{Retries: c.cfg.retries(), Backoff: c.cfg.backoff(), MaxRetryAfter: c.cfg.maxRetryAfter(),
		Sleep: c.sleep, Server: "the SCIM server", Base: c.base, Created: "User"}
	err := policy.Do(ctx, method, url, func() (time.Duration, error) {
		var wait time.Duration
		var err error
		resp, wait, err = c.once(ctx, method, url, header, payload)
		return wait, err
	})
	if err != nil {
		return response{}, err
	}
	return resp, nil
}

// once sends the request once; for a 429 or 503 it also returns the Retry-After the server asked.
func (c *client) once(ctx context.Context, method, url string, header http.Header, payload []byte) (response, time.Duration, error) {
	req, err := httpretry.NewRequest(ctx, method, url, payload)
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
	se := &httpretry.StatusError{Method: method, URL: url, Status: resp.StatusCode}
	var scimErr struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(b, &scimErr) == nil {
		se.Type, se.Detail = scimErr.ScimType, scimErr.Detail
	}
	return response{}, httpretry.RetryAfter(resp.Header.Get("Retry-After")), se
}
