// Package rest is the connector for a JSON REST API, described declaratively: the "http"
// connector of a SyncPolicy (named rest so as not to shadow net/http).
//
// Each resource of the endpoint is one list of items: the path that lists them, how the list is
// paged (page numbers, offsets, cursors or the Link header), where the items are in the answer,
// the field that holds an item's ID, and the method and path of creates, updates and deletes.
// An entity's collection names a resource; its keyFields are the resource's idField.
//
// Fields are JSON pointers (RFC 6901) into an item: "/name/first", "/emails/0/value"; a field
// without a leading "/" is a top-level property ("email" is "/email"). An object or array a field
// points at whole is synced as its JSON text.
//
// A user's scope is the collection's scope matches (every field must equal the identity value),
// and the placeholders {email}, {name} and {attributes.<key>} in the list path (escaped as a path
// segment, so that no identity can add a segment, a query or a fragment) and in query parameters.
// Items the server returns are checked against the scope matches again, in case a server ignores
// or loosens a filter, and creates carry the scope's values in its fields.
//
// Reads page until an empty page, the total the API gives (totalHeader or totalAt), the end of
// the cursors or of the Link header's next links; a list that repeats an item, a cursor or a
// link, or whose total changes while it is paged, fails the read, since an item shifted past
// would look deleted; so does a list that has not ended after maxPages pages. An answer that is
// not JSON fails the read too, naming the request: nothing is taken for deleted. With
// modifiedSince, change reads ask for the items modified since the watermark, which is the
// server's clock (its Date header) when the cycle began, less an overlap.
//
// Updates PATCH the changed top-level properties, whole: a field inside a nested object or an
// array (or any update with PUT) first GETs the item and changes only what the fields point at,
// so the rest of the object or array is kept. A 429 is retried after its Retry-After; 5xx answers
// and connections that could not be made, with backoff; a configured ceiling of requests per
// second holds across the cycle. A 4xx fails only its item, quoting the start of the server's
// answer with every credential cut out. A POST whose answer was lost is not retried, since the
// item may exist: the cycle fails, and the next one recognises the item by its origin.
//
// Creates are provable after a crash (the Origin capability) when the resource has an
// originField: the connector writes the engine's origin token there on create, never on update,
// and reads it back as Item.Origin. Without one, the policy needs matchOn.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/httpretry"
)

// MaxBatch bounds one Write call. Each write is its own request, so the bound only makes the
// engine record progress often.
const MaxBatch = 50

// Connector reads and writes the items of one REST API.
type Connector struct {
	cfg    Config
	base   *url.URL
	client *client
}

var (
	_ connector.Connector    = (*Connector)(nil)
	_ connector.ChangeReader = (*Connector)(nil)
)

// New validates cfg and, with OAuth2, gets a first token, so that an authorization server that
// refuses the client fails the cycle before anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/")) // Validate checked it
	c := &Connector{cfg: cfg, base: base, client: newClient(cfg)}
	if cfg.Auth.OAuth2 != nil {
		if err := c.client.authenticate(&http.Request{Header: http.Header{}}); err != nil {
			return nil, c.endpointError(err)
		}
	}
	return c, nil
}

// endpointError says which field of the policy to look at.
func (c *Connector) endpointError(err error) error {
	var te *tokenError
	var ue *httpretry.UnreachableError
	switch s := httpretry.Status(err); {
	case errors.As(err, &te):
		return fmt.Errorf("%s: the authorization server refused the client or could not be reached: %w", c.cfg.field("auth.oauth2"), err)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return fmt.Errorf("%s: the API refused the credentials: %w", c.cfg.field("auth"), err)
	case errors.As(err, &ue):
		return fmt.Errorf("%s: %w", c.cfg.field("baseURL"), err)
	}
	return err
}

// Capabilities: origins where every resource has an originField, modification times where the
// collections name them, change reads where a resource can ask for them.
func (c *Connector) Capabilities() connector.Capabilities {
	caps := connector.Capabilities{Origin: len(c.cfg.Entities) > 0, MaxBatch: MaxBatch}
	for _, coll := range c.cfg.Entities {
		res := c.cfg.Resources[coll.Name]
		caps.ModTime = caps.ModTime || coll.ModifiedField != ""
		caps.Incremental = caps.Incremental || res.ModifiedSince != nil
		caps.Origin = caps.Origin && res.OriginField != ""
	}
	return caps
}

// Close releases idle connections.
func (c *Connector) Close() error {
	c.client.http.CloseIdleConnections()
	return nil
}

// entity is what one entity's reads and writes need.
type entity struct {
	name  string
	coll  collection.Collection
	res   Resource
	id    pointer
	scope map[string]string
	who   identities
}

func (c *Connector) entity(name string, scope connector.Scope) (entity, error) {
	coll, ok := c.cfg.Entities[name]
	if !ok {
		return entity{}, connector.InvalidConfig(fmt.Errorf("%s: no collection is configured", c.cfg.entityPath(name)))
	}
	res := c.cfg.Resources[coll.Name]
	values, err := coll.ScopeValues(scope)
	if err != nil {
		return entity{}, connector.InvalidConfig(fmt.Errorf("%s.scope: %w", c.cfg.entityPath(name), err))
	}
	id, _ := parseField(res.idField()) // ValidateSpec checked the fields
	who := func(identity string) (string, error) {
		v, err := collection.IdentityValue(scope, identity)
		if err != nil {
			return "", connector.InvalidConfig(fmt.Errorf("%s: %w", c.cfg.resourceField(coll.Name, "listPath"), err))
		}
		return v, nil
	}
	return entity{name: name, coll: coll, res: res, id: id, scope: values, who: who}, nil
}

// url makes an absolute URL from a path template and query parameters.
func (c *Connector) url(tmpl, id string, who identities, query url.Values) (string, error) {
	path, err := expand(tmpl, id, who, url.PathEscape)
	if err != nil {
		return "", err
	}
	u := *c.base
	raw := strings.TrimSuffix(c.base.EscapedPath(), "/") + path
	if u.Path, err = url.PathUnescape(raw); err != nil {
		return "", err
	}
	u.RawPath = raw
	u.RawQuery = query.Encode()
	return u.String(), nil
}

// ReadAll pages through the user's items.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return c.read(ctx, req, time.Time{})
}

// CurrentWatermark is the server's clock now, less the overlap: taken from the Date header of
// the list's first page, asked for with one item where the page size is a parameter.
func (c *Connector) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	e, err := c.entity(req.Entity, req.Scope)
	if err != nil {
		return "", err
	}
	if e.res.ModifiedSince == nil {
		return "", nil
	}
	p := e.res.Pagination
	size := 0
	if p.SizeParam != "" {
		size = 1
	}
	u, err := c.listURL(e, size, time.Time{})
	if err != nil {
		return "", err
	}
	resp, err := c.client.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", c.readError(e, err)
	}
	now := resp.date
	if now.IsZero() {
		now = time.Now()
	}
	return connector.Watermark(now.Add(-e.res.ModifiedSince.overlap()).UTC().Format(time.RFC3339Nano)), nil
}

// ReadChanges reads the items modified since the watermark; a resource without modifiedSince, or
// no watermark yet, reads everything.
func (c *Connector) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	var t time.Time
	if since != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, string(since)); err != nil {
			return func(yield func(connector.Item, error) bool) {
				yield(connector.Item{}, fmt.Errorf("the watermark %q is not a time: %w", since, err))
			}
		}
	}
	return c.read(ctx, req, t)
}

// listURL is the first page's URL; size 0 means the pagination's page size.
func (c *Connector) listURL(e entity, size int, since time.Time) (string, error) {
	q := url.Values{}
	for _, p := range e.res.ListQuery {
		v, err := expand(p.Value, "", e.who, func(s string) string { return s })
		if err != nil {
			return "", err
		}
		q.Add(p.Name, v)
	}
	p := e.res.Pagination
	if p.SizeParam != "" {
		q.Set(p.SizeParam, strconv.Itoa(cmpOr(size, p.pageSize())))
	}
	switch p.mode() {
	case PageNumber:
		q.Set(p.PageParam, strconv.Itoa(p.firstPage()))
	case Offset:
		q.Set(p.OffsetParam, "0")
	case LinkHeader:
		if p.PageParam != "" {
			q.Set(p.PageParam, strconv.Itoa(p.firstPage()))
		}
	}
	if m := e.res.ModifiedSince; m != nil && !since.IsZero() {
		q.Set(m.Param, formatTime(since, m.Format))
	}
	return c.url(e.res.ListPath, "", e.who, q)
}

func formatTime(t time.Time, f TimeFormat) string {
	switch f {
	case UnixSeconds:
		return strconv.FormatInt(t.Unix(), 10)
	case UnixMillis:
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// listError is a list that cannot be read to its end as it is.
func (c *Connector) listError(e entity, format string, args ...any) error {
	return fmt.Errorf("listing %s (%s): %s; nothing is taken for deleted, and the next cycle lists again",
		e.coll.Name, c.cfg.resourceField(e.coll.Name, "listPath"), fmt.Sprintf(format, args...))
}

func (c *Connector) read(ctx context.Context, req connector.ReadRequest, since time.Time) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		e, err := c.entity(req.Entity, req.Scope)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		fields := map[string]pointer{}
		for _, f := range append(slices.Clone(req.Fields), e.coll.Fields()...) {
			p, err := parseField(f)
			if err != nil {
				yield(connector.Item{}, connector.InvalidConfig(fmt.Errorf("%s: field %w", c.cfg.entityPath(req.Entity), err)))
				return
			}
			fields[f] = p
		}
		next, err := c.listURL(e, 0, since)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		p := e.res.Pagination
		seenIDs, seenPages := map[string]bool{}, map[string]bool{}
		total, count := -1, 0
		for page := 0; next != ""; page++ {
			if page == c.cfg.maxPages() {
				yield(connector.Item{}, c.listError(e, "the list did not end after %d pages (%s: raise it if the list is that long)",
					page, c.cfg.field("maxPages")))
				return
			}
			if seenPages[next] {
				yield(connector.Item{}, c.listError(e, "the server sent back to %s, a page already read", next))
				return
			}
			seenPages[next] = true
			resp, err := c.client.do(ctx, http.MethodGet, next, nil)
			if err != nil {
				yield(connector.Item{}, c.readError(e, err))
				return
			}
			doc, err := decode(resp.body)
			if err != nil {
				yield(connector.Item{}, c.listError(e, "GET %s: the answer is not JSON (%v): %s", next, err, c.client.redact(httpretry.Truncate(string(resp.body), 200))))
				return
			}
			items, err := itemsOf(doc, e.res.ItemsAt)
			if err != nil {
				yield(connector.Item{}, c.listError(e, "GET %s: %v", next, err))
				return
			}
			if t, ok, err := c.total(e, resp, doc); err != nil {
				yield(connector.Item{}, c.listError(e, "GET %s: %v", next, err))
				return
			} else if ok {
				if total != -1 && t != total {
					yield(connector.Item{}, c.listError(e, "the items changed while they were listed (%d, then %d)", total, t))
					return
				}
				total = t
			}
			for i, raw := range items {
				obj, ok := raw.(map[string]any)
				if !ok {
					if !yield(connector.Item{}, connector.NewItemError("", fmt.Errorf("GET %s: element %d of the list is not an object", next, i))) {
						return
					}
					continue
				}
				idv, _ := e.id.get(obj)
				id, ok := idText(idv)
				if !ok {
					if !yield(connector.Item{}, connector.NewItemError("", fmt.Errorf("GET %s: element %d of the list has no %s", next, i, e.res.idField()))) {
						return
					}
					continue
				}
				if seenIDs[id] {
					yield(connector.Item{}, c.listError(e, "item %s came twice", id))
					return
				}
				seenIDs[id] = true
				if !inScope(obj, e.scope) {
					continue
				}
				if !yield(c.item(e, id, obj, fields, req.Fields == nil), nil) {
					return
				}
			}
			count += len(items)
			after, err := c.nextPage(e, next, resp, doc, len(items), count, total)
			if err != nil {
				yield(connector.Item{}, c.listError(e, "GET %s: %v", next, err))
				return
			}
			next = after
		}
		if total != -1 && count != total && p.mode() != NoPagination {
			yield(connector.Item{}, c.listError(e, "%d of %d items came", count, total))
		}
	}
}

// nextPage is the URL of the page after current, or "" when the list has ended.
func (c *Connector) nextPage(e entity, current string, resp response, doc any, n, count, total int) (string, error) {
	p := e.res.Pagination
	u, err := url.Parse(current)
	if err != nil {
		return "", err
	}
	q := u.Query()
	switch p.mode() {
	case NoPagination:
		return "", nil
	case PageNumber, Offset:
		if n == 0 || (total != -1 && count >= total) {
			return "", nil
		}
		if p.mode() == PageNumber {
			page, _ := strconv.Atoi(q.Get(p.PageParam))
			q.Set(p.PageParam, strconv.Itoa(page+1))
		} else {
			q.Set(p.OffsetParam, strconv.Itoa(count))
		}
	case Cursor:
		ptr, _ := parseField(p.NextCursor)
		v, _ := ptr.get(doc)
		cursor, ok := idText(v)
		if !ok {
			return "", nil
		}
		q.Set(p.CursorParam, cursor)
	case LinkHeader:
		link := nextLink(resp.header.Values("Link"))
		if link == "" {
			return "", nil
		}
		next, err := u.Parse(link)
		if err != nil {
			return "", fmt.Errorf("the Link header's next link %q is not a URL: %w", link, err)
		}
		// The credentials go with every request: never to a server the policy does not name.
		if next.Scheme != c.base.Scheme || next.Host != c.base.Host {
			return "", fmt.Errorf("the Link header's next link %s leaves %s://%s, where the credentials may go", next, c.base.Scheme, c.base.Host)
		}
		return next.String(), nil
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// nextLink finds the rel="next" target among Link header values (RFC 8288).
func nextLink(values []string) string {
	for _, v := range values {
		for _, link := range splitLinks(v) {
			target, params, ok := strings.Cut(link, ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for _, param := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(k, "rel") && slices.Contains(strings.Fields(strings.ToLower(strings.Trim(v, `"`))), "next") {
					return target[1 : len(target)-1]
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header at the commas between links, not those inside <...> or quotes.
func splitLinks(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i, r := range v {
		switch {
		case r == '"':
			quoted = !quoted
		case r == '<' && !quoted:
			depth++
		case r == '>' && !quoted:
			depth--
		case r == ',' && !quoted && depth == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// total reads the number of items the API says the list has; false when it does not say.
func (c *Connector) total(e entity, resp response, doc any) (int, bool, error) {
	p := e.res.Pagination
	switch {
	case p.TotalHeader != "":
		v := resp.header.Get(p.TotalHeader)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, false, fmt.Errorf("the %s header %q is not a number", p.TotalHeader, v)
		}
		return n, true, nil
	case p.TotalAt != "":
		ptr, _ := parseField(p.TotalAt)
		v, ok := ptr.get(doc)
		if !ok {
			return 0, false, nil
		}
		num, isNum := v.(json.Number)
		n, err := strconv.Atoi(num.String())
		if !isNum || err != nil {
			return 0, false, fmt.Errorf("%s is not a whole number", p.TotalAt)
		}
		return n, true, nil
	}
	return 0, false, nil
}

func decode(body []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return doc, nil
}

func itemsOf(doc any, at string) ([]any, error) {
	v := doc
	if at != "" {
		ptr, _ := parseField(at)
		v, _ = ptr.get(doc)
	}
	switch v := v.(type) {
	case []any:
		return v, nil
	case nil:
		if at != "" {
			// An API may leave an empty list out.
			return nil, nil
		}
	}
	return nil, fmt.Errorf("the answer has no array of items at %q (itemsAt)", at)
}

// inScope checks the scope again on what the server returned: a server that ignores or loosens
// a filter must not hand one person's items to another.
func inScope(obj map[string]any, scope map[string]string) bool {
	for f, want := range scope {
		p, _ := parseField(f)
		v, ok := p.get(obj)
		if !ok || value(v).Text != want {
			return false
		}
	}
	return true
}

func (c *Connector) item(e entity, id string, obj map[string]any, fields map[string]pointer, all bool) connector.Item {
	it := connector.Item{ID: id, Fields: map[string]connector.Value{}}
	if all {
		for k, v := range obj {
			it.Fields[k] = value(v)
		}
	}
	for f, p := range fields {
		if v, ok := p.get(obj); ok {
			it.Fields[f] = value(v)
		}
	}
	if e.coll.ModifiedField != "" {
		it.ModTime = modTime(it.Fields[e.coll.ModifiedField])
	}
	if e.res.OriginField != "" {
		p, _ := parseField(e.res.OriginField)
		if v, ok := p.get(obj); ok {
			it.Origin, _ = v.(string)
		}
	}
	return it
}

// modTime reads a modification time written as RFC 3339 text or as seconds since 1970; the zero
// time when it is neither.
func modTime(v connector.Value) time.Time {
	switch v.Kind {
	case connector.KindString:
		t, _ := collection.ParseTime(v.Text)
		return t
	case connector.KindInt:
		n, _ := v.AsInt()
		if n > 1e11 { // milliseconds: seconds this large are after the year 5000
			return time.UnixMilli(n).UTC()
		}
		return time.Unix(n, 0).UTC()
	}
	return time.Time{}
}

func (c *Connector) readError(e entity, err error) error {
	if s := httpretry.Status(err); s == http.StatusNotFound || s == http.StatusBadRequest {
		return connector.InvalidConfig(fmt.Errorf("%s: the API refuses the list (check listPath, listQuery and pagination): %w",
			c.cfg.resourceField(e.coll.Name, "listPath"), err))
	}
	return c.endpointError(err)
}

// Write applies the batch in order, one request per write (two for an update that GETs first).
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	e, err := c.entity(req.Entity, req.Scope)
	if err != nil {
		return nil, err
	}
	for _, w := range req.Writes {
		if err := c.checkWritable(e, w.Fields); err != nil {
			return nil, err
		}
	}
	results := make([]connector.WriteResult, 0, len(req.Writes))
	for _, w := range req.Writes {
		var res connector.WriteResult
		switch w.Op {
		case connector.OpCreate:
			res, err = c.create(ctx, e, w)
		case connector.OpUpdate:
			res, err = c.update(ctx, e, w)
		case connector.OpDelete:
			res, err = c.delete(ctx, e, w)
		default:
			err = fmt.Errorf("unknown write op %v", w.Op)
		}
		if err != nil {
			if !connector.IsItemError(err) {
				return results, c.endpointError(err)
			}
			res = connector.WriteResult{ID: w.ID, Err: err}
		}
		results = append(results, res)
	}
	return results, nil
}

// checkWritable refuses, as a policy to fix, fields that are no pointer, the ID the server
// assigns, and the origin field.
func (c *Connector) checkWritable(e entity, fields map[string]connector.Value) error {
	for f := range fields {
		p, err := parseField(f)
		switch {
		case err != nil:
		case slices.Equal(p, e.id):
			err = fmt.Errorf("%s is the item's ID (idField), which the API assigns", f)
		case e.res.OriginField != "" && f == e.res.OriginField:
			err = fmt.Errorf("%s carries chainsync's origin token (originField); map the field to another property", f)
		}
		if err != nil {
			return connector.InvalidConfig(fmt.Errorf("%s: field %w", c.cfg.entityPath(e.name), err))
		}
	}
	return nil
}

// itemError turns a refusal that concerns this item alone into an item error with the server's
// words; anything else stays an endpoint failure.
func itemError(id string, err error) error {
	switch s := httpretry.Status(err); {
	case s == http.StatusNotFound || s == http.StatusGone:
		return connector.NewItemError(id, fmt.Errorf("%w: %v", connector.ErrNotFound, err))
	case s == http.StatusPreconditionFailed || s == http.StatusConflict:
		return connector.NewItemError(id, fmt.Errorf("the item changed on the server or conflicts with another; the next cycle reads it again: %w", err))
	case s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusForbidden && s != http.StatusTooManyRequests:
		return connector.NewItemError(id, err)
	}
	return err
}

// merge writes fields into an item's JSON: null removes what the field points at.
func merge(obj map[string]any, fields map[string]connector.Value) error {
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		p, _ := parseField(f)
		if v := fields[f]; v.IsNull() {
			p.remove(obj)
		} else if err := p.set(obj, toJSON(v)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Connector) create(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	fields := maps.Clone(w.Fields)
	for f, v := range e.scope {
		fields[f] = connector.String(v)
	}
	body := map[string]any{}
	if err := merge(body, fields); err != nil {
		return connector.WriteResult{}, connector.NewItemError("", err)
	}
	if e.res.OriginField != "" && w.Origin != "" {
		p, _ := parseField(e.res.OriginField)
		if err := p.set(body, w.Origin); err != nil {
			return connector.WriteResult{}, connector.NewItemError("", err)
		}
	}
	r := e.res.create()
	u, err := c.url(r.Path, "", e.who, nil)
	if err != nil {
		return connector.WriteResult{}, err
	}
	resp, err := c.client.do(ctx, r.Method, u, body)
	if err != nil {
		return connector.WriteResult{}, itemError("", err)
	}
	obj, err := c.answer(ctx, e, resp)
	if err != nil {
		return connector.WriteResult{}, fmt.Errorf("%s %s created an item, but %w; the next cycle finds it by its origin", r.Method, u, err)
	}
	return c.result(e, obj, w.Fields)
}

// answer is the item a write's answer holds, or that its Location header names.
func (c *Connector) answer(ctx context.Context, e entity, resp response) (map[string]any, error) {
	if len(bytes.TrimSpace(resp.body)) == 0 {
		loc := resp.header.Get("Location")
		if loc == "" {
			return nil, errors.New("the answer holds neither the item nor a Location")
		}
		u, err := c.base.Parse(loc)
		if err != nil || u.Scheme != c.base.Scheme || u.Host != c.base.Host {
			return nil, fmt.Errorf("the Location %q is not on %s://%s", loc, c.base.Scheme, c.base.Host)
		}
		if resp, err = c.client.do(ctx, http.MethodGet, u.String(), nil); err != nil {
			return nil, err
		}
	}
	doc, err := decode(resp.body)
	if err != nil {
		return nil, fmt.Errorf("the answer is not JSON (%v): %s", err, c.client.redact(httpretry.Truncate(string(resp.body), 200)))
	}
	v := doc
	if e.res.ItemAt != "" {
		p, _ := parseField(e.res.ItemAt)
		v, _ = p.get(doc)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the answer has no item object at %q (itemAt)", e.res.ItemAt)
	}
	return obj, nil
}

// result reads back the item a write returned: its ID, and its fields as a read sees them.
func (c *Connector) result(e entity, obj map[string]any, written map[string]connector.Value) (connector.WriteResult, error) {
	idv, _ := e.id.get(obj)
	id, ok := idText(idv)
	if !ok {
		return connector.WriteResult{}, fmt.Errorf("the item the API answered has no %s", e.res.idField())
	}
	fields := map[string]pointer{}
	for f := range written {
		fields[f], _ = parseField(f)
	}
	it := c.item(e, id, obj, fields, false)
	stored := it.Fields
	for f := range written {
		if _, ok := stored[f]; !ok {
			stored[f] = connector.Null()
		}
	}
	return connector.WriteResult{ID: id, ModTime: it.ModTime, Stored: stored}, nil
}

func (c *Connector) update(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	r := e.res.update()
	u, err := c.url(r.Path, w.ID, e.who, nil)
	if err != nil {
		return connector.WriteResult{}, err
	}
	deep := r.Method == http.MethodPut
	for f := range w.Fields {
		p, _ := parseField(f)
		deep = deep || len(p) > 1
	}
	var body map[string]any
	if deep {
		// The item as it is now, changed where the fields point: the rest of a nested object or
		// an array is kept.
		cur, err := c.current(ctx, e, w.ID)
		if err != nil {
			return connector.WriteResult{}, err
		}
		if err := merge(cur, w.Fields); err != nil {
			return connector.WriteResult{}, connector.NewItemError(w.ID, err)
		}
		body = cur
		if r.Method != http.MethodPut {
			body = map[string]any{}
			for f := range w.Fields {
				p, _ := parseField(f)
				body[p[0]] = cur[p[0]]
			}
		}
	} else {
		body = map[string]any{}
		for f, v := range w.Fields {
			p, _ := parseField(f)
			body[p[0]] = toJSON(v) // null clears the property
		}
	}
	resp, err := c.client.do(ctx, r.Method, u, body)
	if err != nil {
		return connector.WriteResult{}, itemError(w.ID, err)
	}
	if len(bytes.TrimSpace(resp.body)) == 0 && resp.header.Get("Location") == "" {
		return connector.WriteResult{ID: w.ID}, nil
	}
	obj, err := c.answer(ctx, e, resp)
	if err != nil {
		return connector.WriteResult{}, fmt.Errorf("%s %s: %w", r.Method, u, err)
	}
	return c.result(e, obj, w.Fields)
}

// current GETs an item as it is now, for an update to change.
func (c *Connector) current(ctx context.Context, e entity, id string) (map[string]any, error) {
	u, err := c.url(e.res.itemPath(), id, e.who, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, itemError(id, err)
	}
	obj, err := c.answer(ctx, e, resp)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if m := e.coll.ModifiedField; m != "" {
		// The server keeps the modification time; sending the old one back could stop it.
		p, _ := parseField(m)
		p.remove(obj)
	}
	return obj, nil
}

func (c *Connector) delete(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	r := e.res.delete()
	u, err := c.url(r.Path, w.ID, e.who, nil)
	if err != nil {
		return connector.WriteResult{}, err
	}
	if _, err := c.client.do(ctx, r.Method, u, nil); err != nil {
		return connector.WriteResult{}, itemError(w.ID, err)
	}
	return connector.WriteResult{ID: w.ID}, nil
}
