package rest

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// PaginationMode is how a list is paged.
type PaginationMode string

const (
	// NoPagination: one request answers the whole list.
	NoPagination PaginationMode = "None"
	// PageNumber asks for page 1, 2, ... (FirstPage onwards) in PageParam.
	PageNumber PaginationMode = "Page"
	// Offset asks for the items from 0, n, 2n, ... in OffsetParam.
	Offset PaginationMode = "Offset"
	// Cursor sends the cursor the last page gave (at NextCursor) in CursorParam.
	Cursor PaginationMode = "Cursor"
	// LinkHeader follows the rel="next" link of each answer's Link header (RFC 8288).
	LinkHeader PaginationMode = "LinkHeader"
)

// TimeFormat is how the modifiedSince parameter writes a time.
type TimeFormat string

const (
	// RFC3339 is UTC with milliseconds, 2024-03-01T09:30:00.000Z, as JavaScript's toISOString.
	RFC3339 TimeFormat = "RFC3339"
	// UnixSeconds is seconds since 1970.
	UnixSeconds TimeFormat = "UnixSeconds"
	// UnixMillis is milliseconds since 1970.
	UnixMillis TimeFormat = "UnixMillis"
)

// Config configures an http endpoint from resolved values: the credentials are the contents of
// the Secret keys, not references.
type Config struct {
	// Side is "source" or "target", for error messages in the policy's terms (target.http.baseURL).
	Side string
	// BaseURL is the API's base; resource paths are appended to it.
	BaseURL string
	Auth    Auth
	// Resources are the API's item lists, by name: an entity's collection names one.
	Resources map[string]Resource
	// Entities maps entity names to their collection.
	Entities map[string]collection.Collection
	// RequestsPerSecond caps the requests sent; 0 means no cap.
	RequestsPerSecond float64
	// RequestTimeout bounds each request; 0 means 30s.
	RequestTimeout time.Duration
	// Retries is how many times a request is retried after a 429, a 5xx or a failed connection;
	// 0 means 4.
	Retries int
	// Backoff is the wait before the first retry, doubled each time; 0 means 1s.
	Backoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a longer one fails the cycle. 0 means 2m.
	MaxRetryAfter time.Duration
	// MaxPages bounds one list, so a server whose pages never end fails the read; 0 means 10000.
	MaxPages int
}

// Auth is how requests authenticate: at most one of its parts is set.
type Auth struct {
	BearerToken string
	// Username and Password are HTTP basic credentials.
	Username, Password string
	// APIKeyHeader carries APIKey.
	APIKeyHeader, APIKey string
	// OAuth2 gets a token with the client credentials grant (RFC 6749 section 4.4).
	OAuth2 *OAuth2
}

// OAuth2 is a client of an OAuth2 authorization server.
type OAuth2 struct {
	TokenURL               string
	ClientID, ClientSecret string
	Scopes                 []string
}

// secrets are the credential values, which no error message may carry.
func (a Auth) secrets() []string {
	var s []string
	for _, v := range []string{a.BearerToken, a.Password, a.APIKey} {
		if v != "" {
			s = append(s, v)
		}
	}
	if a.OAuth2 != nil && a.OAuth2.ClientSecret != "" {
		s = append(s, a.OAuth2.ClientSecret)
	}
	return s
}

// Resource is one list of items of the API and how to read and write them.
type Resource struct {
	// ListPath lists the items, relative to the base URL; it may hold the user's {email}, {name}
	// and {attributes.<key>}, escaped as a path segment.
	ListPath string
	// ListQuery are query parameters of the list; their values may hold the same placeholders.
	ListQuery []Param
	// ItemsAt is the JSON pointer of the array of items in a list's answer; "" is the answer itself.
	ItemsAt string
	// ItemPath is an item's path, with {id}; "" means ListPath/{id}.
	ItemPath string
	// ItemAt is the JSON pointer of the item in an item's answer; "" is the answer itself.
	ItemAt string
	// IDField is the field holding the item's ID; "" means "id".
	IDField string
	// Pagination pages the list.
	Pagination Pagination
	// Create, Update and Delete say the method and path of each write; their zero values are
	// POST ListPath, PATCH ItemPath and DELETE ItemPath.
	Create, Update, Delete Request
	// ModifiedSince, when set, reads changes only: the list asked for the items modified since a
	// time, in a query parameter.
	ModifiedSince *ModifiedSince
	// OriginField, when set, holds chainsync's origin token on the items it creates.
	OriginField string
}

// Param is one query parameter.
type Param struct{ Name, Value string }

// Request is a write's method and path.
type Request struct{ Method, Path string }

// Pagination says how a list is paged.
type Pagination struct {
	Mode PaginationMode
	// PageParam carries the page number (Page), OffsetParam the offset (Offset), CursorParam the
	// cursor (Cursor).
	PageParam, OffsetParam, CursorParam string
	// SizeParam, when set, carries PageSize.
	SizeParam string
	// PageSize is the items asked per page; 0 means 100.
	PageSize int
	// FirstPage is the number of the first page (Page); nil means 1.
	FirstPage *int
	// NextCursor is the JSON pointer of the next page's cursor in an answer (Cursor).
	NextCursor string
	// TotalHeader or TotalAt give the number of items in the list, when the API says it: the
	// read then stops at the total, and fails if the total changes while it pages.
	TotalHeader, TotalAt string
}

// ModifiedSince is the query parameter that asks for the items modified since a time.
type ModifiedSince struct {
	Param  string
	Format TimeFormat
	// Overlap is read again before each watermark, for the server's clocks and a change being
	// written while the watermark was taken; 0 means 1m.
	Overlap time.Duration
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) field(name string) string { return c.side() + ".http." + name }

func (c Config) resourceField(name, field string) string {
	return fmt.Sprintf("%s.http.resources[%s].%s", c.side(), name, field)
}

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

func (c Config) retries() int                  { return cmpOr(c.Retries, 4) }
func (c Config) backoff() time.Duration        { return cmpOr(c.Backoff, time.Second) }
func (c Config) requestTimeout() time.Duration { return cmpOr(c.RequestTimeout, 30*time.Second) }
func (c Config) maxRetryAfter() time.Duration  { return cmpOr(c.MaxRetryAfter, 2*time.Minute) }
func (c Config) maxPages() int                 { return cmpOr(c.MaxPages, 10000) }

func (p Pagination) mode() PaginationMode { return cmpOr(p.Mode, NoPagination) }
func (p Pagination) pageSize() int        { return cmpOr(p.PageSize, 100) }
func (p Pagination) firstPage() int {
	if p.FirstPage == nil {
		return 1
	}
	return *p.FirstPage
}

func (r Resource) idField() string { return cmpOr(r.IDField, "id") }
func (r Resource) itemPath() string {
	return cmpOr(r.ItemPath, strings.TrimSuffix(r.ListPath, "/")+"/{id}")
}
func (r Resource) create() Request {
	return Request{Method: cmpOr(r.Create.Method, "POST"), Path: cmpOr(r.Create.Path, r.ListPath)}
}
func (r Resource) update() Request {
	return Request{Method: cmpOr(r.Update.Method, "PATCH"), Path: cmpOr(r.Update.Path, r.itemPath())}
}
func (r Resource) delete() Request {
	return Request{Method: cmpOr(r.Delete.Method, "DELETE"), Path: cmpOr(r.Delete.Path, r.itemPath())}
}

func (m ModifiedSince) overlap() time.Duration { return cmpOr(m.Overlap, time.Minute) }

func cmpOr[T comparable](v, fallback T) T {
	var zero T
	if v == zero {
		return fallback
	}
	return v
}

// Validate checks the configuration, credentials included, without reaching the server. Its
// errors are ErrInvalidConfig: a person fixes them in the policy or the Secret.
func (c Config) Validate() error {
	errs := []error{c.ValidateSpec()}
	a := c.Auth
	set := 0
	for _, given := range []bool{a.BearerToken != "", a.Username != "", a.APIKey != "", a.OAuth2 != nil} {
		if given {
			set++
		}
	}
	if set > 1 {
		errs = append(errs, fmt.Errorf("%s: give one kind of credentials", c.field("auth")))
	}
	if a.OAuth2 != nil && (a.OAuth2.ClientID == "" || a.OAuth2.ClientSecret == "") {
		errs = append(errs, fmt.Errorf("%s: the client ID or secret is empty", c.field("auth.oauth2.clientSecretRef")))
	}
	if a.APIKey != "" && a.APIKeyHeader == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("auth.apiKey.header")))
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// ValidateSpec checks what can be checked without the Secrets and the server, so the operator can
// refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	if err := checkURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", c.field("baseURL"), err))
	}
	if c.Auth.OAuth2 != nil {
		if err := checkURL(c.Auth.OAuth2.TokenURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.field("auth.oauth2.tokenURL"), err))
		}
	}
	if c.RequestsPerSecond < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative", c.field("requestsPerSecond")))
	}
	for _, name := range sortedKeys(c.Resources) {
		errs = append(errs, c.validateResource(name, c.Resources[name])...)
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for _, name := range sortedKeys(c.Entities) {
		coll := c.Entities[name]
		path := c.entityPath(name)
		if err := coll.Validate(path, false); err != nil {
			errs = append(errs, err)
		}
		res, ok := c.Resources[coll.Name]
		if !ok && coll.Name != "" {
			errs = append(errs, fmt.Errorf("%s.collection: %q is none of %s's resources", path, coll.Name, c.field("resources")))
			continue
		}
		if len(coll.KeyFields) > 0 && !slices.Equal(coll.KeyFields, []string{res.idField()}) {
			errs = append(errs, fmt.Errorf("%s.keyFields: must be [%s], the resource's idField", path, res.idField()))
		}
		for _, f := range append([]string{coll.ModifiedField}, scopeFields(coll)...) {
			if f == "" {
				continue
			}
			if _, err := parseField(f); err != nil {
				errs = append(errs, fmt.Errorf("%s: field %w", path, err))
			}
		}
		if res.ModifiedSince != nil && coll.ModifiedField == "" {
			errs = append(errs, fmt.Errorf("%s.modifiedField: must be set, as %s reads changes by modification time",
				path, c.resourceField(coll.Name, "modifiedSince")))
		}
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

func scopeFields(coll collection.Collection) []string {
	var fs []string
	for _, m := range coll.Scope {
		fs = append(fs, m.Field)
	}
	return fs
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("must be set")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Errorf("%q is not an http(s) URL", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: give credentials in auth, and no query or fragment", raw)
	}
	return nil
}

func (c Config) validateResource(name string, r Resource) []error {
	var errs []error
	field := func(f string) string { return c.resourceField(name, f) }
	if !strings.HasPrefix(r.ListPath, "/") {
		errs = append(errs, fmt.Errorf("%s: %q must start with /", field("listPath"), r.ListPath))
	}
	checkTemplate := func(f, tmpl string, id bool) {
		if err := checkTemplate(tmpl, id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field(f), err))
		}
	}
	checkTemplate("listPath", r.ListPath, false)
	for i, q := range r.ListQuery {
		if q.Name == "" {
			errs = append(errs, fmt.Errorf("%s: the name is empty", field(fmt.Sprintf("listQuery[%d]", i))))
		}
		checkTemplate(fmt.Sprintf("listQuery[%d].value", i), q.Value, false)
	}
	for f, tmpl := range map[string]string{"itemPath": r.ItemPath, "update.path": r.Update.Path, "delete.path": r.Delete.Path} {
		if tmpl == "" {
			continue
		}
		if !strings.HasPrefix(tmpl, "/") {
			errs = append(errs, fmt.Errorf("%s: %q must start with /", field(f), tmpl))
		} else if !strings.Contains(tmpl, "{id}") {
			errs = append(errs, fmt.Errorf("%s: %q must hold {id}, the item's ID", field(f), tmpl))
		}
		checkTemplate(f, tmpl, true)
	}
	if r.Create.Path != "" {
		if !strings.HasPrefix(r.Create.Path, "/") {
			errs = append(errs, fmt.Errorf("%s: %q must start with /", field("create.path"), r.Create.Path))
		}
		checkTemplate("create.path", r.Create.Path, false)
	}
	for f, m := range map[string]string{"create.method": r.Create.Method, "update.method": r.Update.Method, "delete.method": r.Delete.Method} {
		if m != "" && !slices.Contains([]string{"POST", "PUT", "PATCH", "DELETE"}, m) {
			errs = append(errs, fmt.Errorf("%s: %q is not POST, PUT, PATCH or DELETE", field(f), m))
		}
	}
	if m := r.Update.Method; m != "" && m != "PUT" && m != "PATCH" && m != "POST" {
		errs = append(errs, fmt.Errorf("%s: an update is PATCH, PUT or POST", field("update.method")))
	}
	for f, ptr := range map[string]string{"itemsAt": r.ItemsAt, "itemAt": r.ItemAt, "pagination.nextCursor": r.Pagination.NextCursor,
		"pagination.totalAt": r.Pagination.TotalAt} {
		if ptr != "" && !strings.HasPrefix(ptr, "/") {
			errs = append(errs, fmt.Errorf("%s: %q is not a JSON pointer (they start with /)", field(f), ptr))
		} else if _, err := parseField(cmpOr(ptr, "/")); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field(f), err))
		}
	}
	for f, ptr := range map[string]string{"idField": r.IDField, "originField": r.OriginField} {
		if ptr == "" {
			continue
		}
		if _, err := parseField(ptr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field(f), err))
		}
	}
	p := r.Pagination
	need := func(f, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: must be set for pagination mode %s", field("pagination."+f), p.mode()))
		}
	}
	switch p.mode() {
	case NoPagination, LinkHeader:
	case PageNumber:
		need("pageParam", p.PageParam)
	case Offset:
		need("offsetParam", p.OffsetParam)
		need("sizeParam", p.SizeParam)
	case Cursor:
		need("cursorParam", p.CursorParam)
		need("nextCursor", p.NextCursor)
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not None, Page, Offset, Cursor or LinkHeader", field("pagination.mode"), p.Mode))
	}
	if p.PageSize < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative", field("pagination.pageSize")))
	}
	if m := r.ModifiedSince; m != nil {
		need := m.Param == ""
		if need {
			errs = append(errs, fmt.Errorf("%s: must be set", field("modifiedSince.param")))
		}
		if f := cmpOr(m.Format, RFC3339); !slices.Contains([]TimeFormat{RFC3339, UnixSeconds, UnixMillis}, f) {
			errs = append(errs, fmt.Errorf("%s: %q is not RFC3339, UnixSeconds or UnixMillis", field("modifiedSince.format"), m.Format))
		}
	}
	return errs
}

// placeholder is {id}, {email}, {name} or {attributes.<key>} in a path or query template.
var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

var identityName = regexp.MustCompile(`^(email|name|attributes\.[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$`)

func checkTemplate(tmpl string, id bool) error {
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		switch {
		case m[1] == "id" && id:
		case m[1] == "id":
			return fmt.Errorf("%q: {id} has no value here, only in item paths", tmpl)
		case !identityName.MatchString(m[1]):
			return fmt.Errorf("%q: {%s} is not {id}, {email}, {name} or {attributes.<key>}", tmpl, m[1])
		}
	}
	if rest := placeholder.ReplaceAllString(tmpl, ""); strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("%q: a { or } outside a placeholder", tmpl)
	}
	return nil
}

// identities names the user's identity values a template may use.
type identities func(name string) (string, error)

// expand fills a template's placeholders; escape writes each value (a path segment's escaping,
// or none for a query value, which url.Values encodes).
func expand(tmpl string, id string, who identities, escape func(string) string) (string, error) {
	var err error
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		if name == "id" {
			return escape(id)
		}
		v, e := who(name)
		if e != nil && err == nil {
			err = e
		}
		return escape(v)
	})
	return out, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
