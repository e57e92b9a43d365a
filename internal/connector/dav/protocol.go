package dav

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The requests go-webdav's client does not make as the connector needs them are made here: reads
// that return each object's text as it is (go-webdav parses a whole multiget at once, and one
// card that does not parse would fail the read of all), conditional writes (If-Match,
// If-None-Match), and sync-collection for CalDAV too. Paths are unescaped, as go-webdav has them.

const (
	nsDAV     = "DAV:"
	nsCardDAV = "urn:ietf:params:xml:ns:carddav"
	nsCalDAV  = "urn:ietf:params:xml:ns:caldav"
)

// client sends authenticated requests to one server.
type client struct {
	http *http.Client
	base *url.URL
	// bearer or username/password authenticate every request.
	bearer, username, password string
}

// Do adds the credentials, so that go-webdav's discovery sends them too.
func (c *client) Do(req *http.Request) (*http.Response, error) {
	switch {
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	case c.username != "":
		req.SetBasicAuth(c.username, c.password)
	}
	return c.http.Do(req)
}

// statusError is an answer the server gave with a status that is not success.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.method, e.path, http.StatusText(e.status))
	if e.status != 0 {
		msg = fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, http.StatusText(e.status))
	}
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

func statusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (c *client) url(path string) string {
	u := *c.base
	u.Path, u.RawPath = path, ""
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

func (c *client) do(ctx context.Context, method, path string, header http.Header, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		detail := strings.TrimSpace(string(data))
		if len(detail) > 300 {
			detail = detail[:300] + "..."
		}
		if strings.HasPrefix(detail, "<!") || strings.HasPrefix(strings.ToLower(detail), "<html") {
			detail = ""
		}
		return answer{}, &statusError{method: method, path: path, status: resp.StatusCode, body: detail}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// multistatus is a WebDAV 207 answer (RFC 4918), with the sync-token of RFC 6578.
type multistatus struct {
	Responses []davResponse `xml:"DAV: response"`
	SyncToken string        `xml:"DAV: sync-token"`
}

type davResponse struct {
	Hrefs     []string   `xml:"DAV: href"`
	Status    string     `xml:"DAV: status"`
	Propstats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Status string `xml:"DAV: status"`
	Prop   struct {
		ETag      string `xml:"DAV: getetag"`
		Principal *struct {
			Href string `xml:"DAV: href"`
		} `xml:"DAV: current-user-principal"`
		SyncToken    string `xml:"DAV: sync-token"`
		ResourceType *struct {
			Collection *struct{} `xml:"DAV: collection"`
		} `xml:"DAV: resourcetype"`
		AddressData  *string `xml:"urn:ietf:params:xml:ns:carddav address-data"`
		CalendarData *string `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
	} `xml:"DAV: prop"`
}

// code reads "HTTP/1.1 404 Not Found" as 404; 200 when there is no status line.
func code(status string) int {
	f := strings.Fields(status)
	if len(f) < 2 {
		return http.StatusOK
	}
	var n int
	fmt.Sscanf(f[1], "%d", &n)
	return n
}

// member is one object of a collection as a listing, a multiget or a sync-collection names it.
type member struct {
	path, etag string
	// data is the object's text, from a multiget; nil when it was not asked or not found.
	data *string
	// status is the response's own status: 404 for an object gone.
	status int
}

func (r davResponse) member() (member, error) {
	if len(r.Hrefs) == 0 {
		return member{}, errors.New("a response without href")
	}
	u, err := url.Parse(r.Hrefs[0])
	if err != nil {
		return member{}, fmt.Errorf("href %q: %w", r.Hrefs[0], err)
	}
	m := member{path: u.Path, status: code(r.Status)}
	for _, ps := range r.Propstats {
		if code(ps.Status) != http.StatusOK {
			continue
		}
		if ps.Prop.ETag != "" {
			m.etag = unquote(ps.Prop.ETag)
		}
		if ps.Prop.AddressData != nil {
			m.data = ps.Prop.AddressData
		}
		if ps.Prop.CalendarData != nil {
			m.data = ps.Prop.CalendarData
		}
		if ps.Prop.ResourceType != nil && ps.Prop.ResourceType.Collection != nil {
			m.status = -1 // a collection, not an object
		}
	}
	return m, nil
}

func unquote(etag string) string {
	etag = strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	return strings.Trim(etag, `"`)
}

func quote(etag string) string { return `"` + etag + `"` }

func (c *client) report(ctx context.Context, method, path, depth, body string) (multistatus, error) {
	a, err := c.do(ctx, method, path, http.Header{"Depth": {depth}, "Content-Type": {"application/xml; charset=utf-8"}},
		[]byte(xml.Header+body))
	if err != nil {
		return multistatus{}, err
	}
	var ms multistatus
	if err := xml.Unmarshal(a.body, &ms); err != nil {
		return multistatus{}, fmt.Errorf("%s %s: the answer is not a WebDAV multistatus: %w", method, path, err)
	}
	return ms, nil
}

func sameCollection(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// list is the collection's objects with their ETags (PROPFIND, Depth 1).
func (c *client) list(ctx context.Context, collection string) ([]member, error) {
	ms, err := c.report(ctx, "PROPFIND", collection, "1",
		`<propfind xmlns="DAV:"><prop><resourcetype/><getetag/></prop></propfind>`)
	if err != nil {
		return nil, err
	}
	var out []member
	for _, r := range ms.Responses {
		m, err := r.member()
		if err != nil {
			return nil, fmt.Errorf("PROPFIND %s: %w", collection, err)
		}
		if m.status == -1 || sameCollection(m.path, collection) {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// multiget reads the objects at paths, with their text and ETags (RFC 6352 8.7, RFC 4791 7.9).
func (c *client) multiget(ctx context.Context, p Protocol, collection string, paths []string) ([]member, error) {
	var b strings.Builder
	report, data, ns := "addressbook-multiget", "address-data", nsCardDAV
	if p == CalDAV {
		report, data, ns = "calendar-multiget", "calendar-data", nsCalDAV
	}
	fmt.Fprintf(&b, `<C:%s xmlns:D="DAV:" xmlns:C="%s"><D:prop><D:getetag/><C:%s/></D:prop>`, report, ns, data)
	for _, p := range paths {
		b.WriteString("<D:href>")
		xml.EscapeText(&b, []byte((&url.URL{Path: p}).EscapedPath()))
		b.WriteString("</D:href>")
	}
	fmt.Fprintf(&b, "</C:%s>", report)
	ms, err := c.report(ctx, "REPORT", collection, "1", b.String())
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(ms.Responses))
	for _, r := range ms.Responses {
		m, err := r.member()
		if err != nil {
			return nil, fmt.Errorf("REPORT %s: %w", collection, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// errTokenRefused is a sync token the server no longer (or never) answers from.
var errTokenRefused = errors.New("the server refused the sync token")

// syncCollection is what changed in the collection since token (RFC 6578): the objects added or
// changed, with their ETags, and those deleted (status 404), and the token of now.
func (c *client) syncCollection(ctx context.Context, collection, token string) (changed []member, deleted []string, now string, err error) {
	var b strings.Builder
	b.WriteString(`<sync-collection xmlns="DAV:"><sync-token>`)
	xml.EscapeText(&b, []byte(token))
	b.WriteString(`</sync-token><sync-level>1</sync-level><prop><getetag/></prop></sync-collection>`)
	ms, err := c.report(ctx, "REPORT", collection, "0", b.String())
	if err != nil {
		if s := statusOf(err); s == http.StatusForbidden || s == http.StatusConflict || s == http.StatusPreconditionFailed {
			return nil, nil, "", fmt.Errorf("%w: %w", errTokenRefused, err)
		}
		return nil, nil, "", err
	}
	for _, r := range ms.Responses {
		m, err := r.member()
		if err != nil {
			return nil, nil, "", fmt.Errorf("REPORT %s: %w", collection, err)
		}
		switch {
		case m.status == http.StatusNotFound:
			deleted = append(deleted, m.path)
		case m.status == -1 || sameCollection(m.path, collection):
		default:
			changed = append(changed, m)
		}
	}
	return changed, deleted, ms.SyncToken, nil
}

// syncToken is the collection's DAV:sync-token now; "" when the server keeps none.
func (c *client) syncToken(ctx context.Context, collection string) (string, error) {
	ms, err := c.report(ctx, "PROPFIND", collection, "0", `<propfind xmlns="DAV:"><prop><sync-token/></prop></propfind>`)
	if err != nil {
		return "", err
	}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstats {
			if code(ps.Status) == http.StatusOK && ps.Prop.SyncToken != "" {
				return ps.Prop.SyncToken, nil
			}
		}
	}
	return "", nil
}

// get reads one object and its ETag.
func (c *client) get(ctx context.Context, path string) ([]byte, string, error) {
	a, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, "", err
	}
	return a.body, unquote(a.header.Get("ETag")), nil
}

// put writes an object: with ifMatch only over that version, with create only where there is none
// (If-None-Match: *). It returns the new ETag, or "" when the server gives none.
func (c *client) put(ctx context.Context, p Protocol, path string, body []byte, ifMatch string, create bool) (string, error) {
	h := http.Header{"Content-Type": {"text/vcard; charset=utf-8"}}
	if p == CalDAV {
		h.Set("Content-Type", "text/calendar; charset=utf-8")
	}
	if create {
		h.Set("If-None-Match", "*")
	} else if ifMatch != "" {
		h.Set("If-Match", quote(ifMatch))
	}
	a, err := c.do(ctx, http.MethodPut, path, h, body)
	if err != nil {
		return "", err
	}
	return unquote(a.header.Get("ETag")), nil
}

func (c *client) delete(ctx context.Context, path, ifMatch string) error {
	var h http.Header
	if ifMatch != "" {
		h = http.Header{"If-Match": {quote(ifMatch)}}
	}
	_, err := c.do(ctx, http.MethodDelete, path, h, nil)
	return err
}

func newHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	return &http.Client{Timeout: timeout, Transport: t}
}

// currentUserPrincipal is the account's principal (RFC 5397), asked of the base URL.
func (c *client) currentUserPrincipal(ctx context.Context, base string) (string, error) {
	ms, err := c.report(ctx, "PROPFIND", base, "0", `<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>`)
	if err != nil {
		return "", err
	}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstats {
			if code(ps.Status) == http.StatusOK && ps.Prop.Principal != nil && ps.Prop.Principal.Href != "" {
				u, err := url.Parse(ps.Prop.Principal.Href)
				if err != nil {
					return "", fmt.Errorf("PROPFIND %s: the principal %q is no URL: %w", base, ps.Prop.Principal.Href, err)
				}
				return u.Path, nil
			}
		}
	}
	return "", &statusError{method: "PROPFIND", path: base, status: http.StatusNotFound, body: "no current-user-principal"}
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}
