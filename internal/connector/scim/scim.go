package scim

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
	"sync"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/httpretry"
)

// MaxBatch bounds one Write call. Each write is its own request, so the bound only makes the
// engine record progress often.
const MaxBatch = 50

// Connector reads and writes the Users of one SCIM service provider.
type Connector struct {
	cfg    Config
	client *client
	// patch is the ServiceProviderConfig's patch.supported.
	patch bool
	// filtering is the ServiceProviderConfig's filter.supported.
	filtering bool

	mu sync.Mutex
	// versions holds the version each User had when this cycle read or wrote it, for If-Match.
	versions map[string]string
	// noMembersFilter is set once the server refused to filter Groups by members.
	noMembersFilter bool
	// groupNames caches Groups' displayNames by id; allGroups every Group, once listed.
	groupNames map[string]string
	allGroups  []group
}

var _ connector.Connector = (*Connector)(nil)

// New validates cfg and reads the server's ServiceProviderConfig, so that a server that cannot
// be reached or refuses the credentials fails the cycle before anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, client: newClient(cfg), versions: map[string]string{}, groupNames: map[string]string{}}
	resp, err := c.client.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil)
	if err != nil {
		return nil, c.endpointError(err)
	}
	var spc struct {
		Patch struct {
			Supported bool `json:"supported"`
		} `json:"patch"`
		Filter struct {
			Supported bool `json:"supported"`
		} `json:"filter"`
	}
	if err := json.Unmarshal(resp.body, &spc); err != nil {
		return nil, fmt.Errorf("%s: the ServiceProviderConfig is not SCIM JSON: %w", c.cfg.field("baseURL"), err)
	}
	c.patch, c.filtering = spc.Patch.Supported, spc.Filter.Supported
	return c, nil
}

// endpointError says which field of the policy to look at for the errors a person fixes there.
func (c *Connector) endpointError(err error) error {
	switch httpretry.Status(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s: the SCIM server refused the credentials: %w", c.cfg.credentialsField(), err)
	case http.StatusNotFound:
		return connector.InvalidConfig(fmt.Errorf("%s: no SCIM service there: %w", c.cfg.field("baseURL"), err))
	}
	return err
}

// Capabilities: the origin token lives in externalId; meta.lastModified is the modification time.
func (c *Connector) Capabilities() connector.Capabilities {
	modTime := false
	for _, coll := range c.cfg.Entities {
		modTime = modTime || coll.ModifiedField != ""
	}
	return connector.Capabilities{ModTime: modTime, Origin: c.cfg.origin() == OriginExternalID, MaxBatch: MaxBatch}
}

// Close releases idle connections.
func (c *Connector) Close() error {
	c.client.http.CloseIdleConnections()
	return nil
}

func (c *Connector) collection(entity string) (collection.Collection, error) {
	coll, ok := c.cfg.Entities[entity]
	if !ok {
		return coll, connector.InvalidConfig(fmt.Errorf("%s: no collection is configured", c.cfg.entityPath(entity)))
	}
	return coll, nil
}

// scopeFilter is the SCIM filter selecting the user's Users, with each identity value written as
// a JSON string: quotes and backslashes escaped, so that no value can end the string and add a
// clause of its own.
func scopeFilter(coll collection.Collection, scope connector.Scope) (string, map[string]string, error) {
	values, err := coll.ScopeValues(scope)
	if err != nil {
		return "", nil, err
	}
	var clauses []string
	for _, m := range coll.Scope {
		p, err := parsePath(m.Field)
		if err != nil {
			return "", nil, err
		}
		clauses = append(clauses, p.String()+" eq "+jsonString(values[m.Field]))
	}
	return strings.Join(clauses, " and "), values, nil
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// ReadAll pages through the user's Users.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		coll, err := c.collection(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		for _, f := range req.Fields {
			if _, err := parsePath(f); err != nil {
				yield(connector.Item{}, connector.InvalidConfig(fmt.Errorf("%s: field %w", c.cfg.entityPath(req.Entity), err)))
				return
			}
		}
		filter, scopeValues, err := scopeFilter(coll, req.Scope)
		if err != nil {
			yield(connector.Item{}, connector.InvalidConfig(fmt.Errorf("%s.scope: %w", c.cfg.entityPath(req.Entity), err)))
			return
		}
		// Pages are taken by position: a User added or deleted between two pages shifts the rest,
		// and a User missed would look deleted. A list whose total changes, or that repeats a
		// User, fails the read instead; the next cycle lists again.
		total, seen := -1, map[string]bool{}
		changed := func(how string) {
			yield(connector.Item{}, fmt.Errorf("listing %s: the Users changed while they were listed (%s); the next cycle lists them again", Users, how))
		}
		for start := 1; ; {
			q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.cfg.pageSize())}}
			if filter != "" {
				q.Set("filter", filter)
			}
			resp, err := c.client.do(ctx, http.MethodGet, "/"+Users+"?"+q.Encode(), nil, nil)
			if err != nil {
				yield(connector.Item{}, c.readError(req.Entity, err))
				return
			}
			var page struct {
				TotalResults int               `json:"totalResults"`
				Resources    []json.RawMessage `json:"Resources"`
			}
			if err := json.Unmarshal(resp.body, &page); err != nil {
				yield(connector.Item{}, fmt.Errorf("listing %s: the answer is not a SCIM list: %w", Users, err))
				return
			}
			if total == -1 {
				total = page.TotalResults
			} else if page.TotalResults != total {
				changed(fmt.Sprintf("%d, then %d", total, page.TotalResults))
				return
			}
			for _, raw := range page.Resources {
				u, err := decodeUser(raw)
				if err != nil {
					if !yield(connector.Item{}, connector.NewItemError("", err)) {
						return
					}
					continue
				}
				if seen[u.id] {
					changed(u.id + " came twice")
					return
				}
				seen[u.id] = true
				if !u.inScope(scopeValues) || (c.cfg.deletes() == Deactivate && u.inactive()) {
					continue
				}
				c.remember(u.id, u.version)
				it := c.item(u, req.Fields)
				if err := c.readMemberships(ctx, u, req.Fields, it.Fields); err != nil {
					yield(connector.Item{}, err)
					return
				}
				if !yield(it, nil) {
					return
				}
			}
			start += len(page.Resources)
			if len(page.Resources) == 0 || start > total {
				if start-1 != total {
					changed(fmt.Sprintf("%d of %d came", start-1, total))
				}
				return
			}
		}
	}
}

// readMemberships fills in the membership fields asked for.
func (c *Connector) readMemberships(ctx context.Context, u user, fields []string, out map[string]connector.Value) error {
	var asked []string
	for _, f := range fields {
		if membershipField(f) != "" {
			asked = append(asked, f)
		}
	}
	if len(asked) == 0 {
		return nil
	}
	groups, err := c.memberships(ctx, u)
	if httpretry.Status(err) == http.StatusNotFound {
		return connector.InvalidConfig(fmt.Errorf("%s: the SCIM server keeps no Groups, so %s cannot be read: %w", c.cfg.field("baseURL"), asked[0], err))
	}
	if err != nil {
		return fmt.Errorf("reading the Groups of User %s: %w", u.id, c.endpointError(err))
	}
	for _, f := range asked {
		if v := membershipValue(groups, membershipField(f)); !v.IsNull() {
			out[f] = v
		}
	}
	return nil
}

func (c *Connector) readError(entity string, err error) error {
	if httpretry.Status(err) == http.StatusBadRequest {
		return connector.InvalidConfig(fmt.Errorf("%s.scope: the server refuses the filter: %w", c.cfg.entityPath(entity), err))
	}
	return c.endpointError(err)
}

func (c *Connector) remember(id, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version == "" {
		delete(c.versions, id)
	} else {
		c.versions[id] = version
	}
}

func (c *Connector) version(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[id]
}

func (c *Connector) item(u user, fields []string) connector.Item {
	it := connector.Item{ID: u.id, Fields: u.fields(fields), ModTime: u.modified}
	if c.cfg.origin() == OriginExternalID {
		it.Origin = u.externalID
	}
	return it
}

// Write applies the batch in order, one request per write.
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	coll, err := c.collection(req.Entity)
	if err != nil {
		return nil, err
	}
	for _, w := range req.Writes {
		if err := c.checkWritable(req.Entity, w.Fields); err != nil {
			return nil, err
		}
	}
	results := make([]connector.WriteResult, 0, len(req.Writes))
	for _, w := range req.Writes {
		var res connector.WriteResult
		switch w.Op {
		case connector.OpCreate:
			res, err = c.create(ctx, coll, req.Scope, w)
		case connector.OpUpdate:
			res, err = c.update(ctx, w)
		case connector.OpDelete:
			res, err = c.delete(ctx, w)
		default:
			err = fmt.Errorf("unknown write op %v", w.Op)
		}
		if err != nil {
			if !connector.IsItemError(err) {
				return results, c.endpointError(err)
			}
			res = connector.WriteResult{ID: cmpOr(res.ID, w.ID), Err: err}
		}
		results = append(results, res)
	}
	return results, nil
}

// itemError turns a refusal that concerns this User alone into an item error with the server's
// detail; anything else stays an endpoint failure.
func itemError(id string, err error) error {
	switch s := httpretry.Status(err); {
	case s == http.StatusNotFound:
		return connector.NewItemError(id, fmt.Errorf("%w: %v", connector.ErrNotFound, err))
	case s == http.StatusPreconditionFailed:
		return connector.NewItemError(id, fmt.Errorf("the User changed on the server since this cycle read it; the next cycle reads it again: %w", err))
	case s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusForbidden && s != http.StatusTooManyRequests:
		return connector.NewItemError(id, err)
	}
	return err
}

func (c *Connector) create(ctx context.Context, coll collection.Collection, scope connector.Scope, w connector.Write) (connector.WriteResult, error) {
	body := map[string]any{}
	scopeValues, err := coll.ScopeValues(scope)
	if err != nil {
		return connector.WriteResult{}, connector.InvalidConfig(err)
	}
	userFields, groupsField, groups := membershipWrites(w.Fields)
	fields := make(map[string]connector.Value, len(w.Fields)+len(scopeValues))
	maps.Copy(fields, userFields)
	for f, v := range scopeValues {
		fields[f] = connector.String(v)
	}
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if v := fields[f]; !v.IsNull() {
			p, _ := parsePath(f) // Write and ValidateSpec checked them
			jv, err := toJSON(p, v)
			if err != nil {
				return connector.WriteResult{}, connector.NewItemError("", err)
			}
			setPath(body, p, jv)
		}
	}
	if c.cfg.origin() == OriginExternalID && w.Origin != "" {
		body["externalId"] = w.Origin
	}
	body["schemas"] = schemasOf(body)
	resp, err := c.client.do(ctx, http.MethodPost, "/"+Users, nil, body)
	if err != nil {
		return connector.WriteResult{}, itemError("", err)
	}
	res, err := c.result(resp, userFields)
	if err != nil || groupsField == "" {
		return res, err
	}
	// The User exists now whatever becomes of its memberships: a failure keeps its ID, and the
	// next cycle finds it by its origin (or matchOn) and sets them again.
	return c.withMemberships(ctx, res, resp.body, groupsField, groups)
}

// withMemberships sets the User's Groups after its own attributes were written, and adds them to
// what the write stored.
func (c *Connector) withMemberships(ctx context.Context, res connector.WriteResult, userBody []byte, field string, v connector.Value) (connector.WriteResult, error) {
	u, err := decodeUser(userBody)
	if err != nil {
		return res, fmt.Errorf("the server's answer to a write is not a User: %w", err)
	}
	stored, err := c.setMemberships(ctx, u, field, v)
	if err != nil {
		return res, err
	}
	if res.Stored == nil {
		res.Stored = map[string]connector.Value{}
	}
	res.Stored[field] = stored
	return res, nil
}

// checkWritable refuses, as a policy to fix, field names that are no attribute path, the
// attributes the server assigns and, when it carries the origin, externalId.
func (c *Connector) checkWritable(entity string, fields map[string]connector.Value) error {
	memberships := 0
	for f := range fields {
		if membershipField(f) != "" {
			memberships++
		}
	}
	if memberships > 1 {
		return connector.InvalidConfig(fmt.Errorf("%s: %s and %s both map the User's Groups; map one of them",
			c.cfg.entityPath(entity), GroupNamesField, GroupIDsField))
	}
	for f := range fields {
		p, err := parsePath(f)
		switch {
		case err != nil:
		case membershipField(f) != "":
		case p.schema == userSchema && strings.EqualFold(p.name, "groups"):
			err = fmt.Errorf("%s: a User's groups attribute is read-only; map %s (the Groups' displayNames) or %s (their ids), which chainsync writes through the Groups' members",
				f, GroupNamesField, GroupIDsField)
		case p.schema == userSchema && (p.name == "id" || p.name == "meta"):
			err = fmt.Errorf("%s is assigned by the SCIM server and cannot be written", f)
		case p.schema == userSchema && p.name == "externalId" && c.cfg.origin() == OriginExternalID:
			err = fmt.Errorf("externalId carries chainsync's origin token (%s is ExternalID); map the field to another attribute, or set it to None and use matchOn",
				c.cfg.field("origin"))
		}
		if err != nil {
			return connector.InvalidConfig(fmt.Errorf("%s: field %w", c.cfg.entityPath(entity), err))
		}
	}
	return nil
}

// result reads back the User a write returned: its fields as a read sees them, its version.
func (c *Connector) result(resp response, written map[string]connector.Value) (connector.WriteResult, error) {
	u, err := decodeUser(resp.body)
	if err != nil {
		return connector.WriteResult{}, fmt.Errorf("the server's answer to a write is not a User: %w", err)
	}
	c.remember(u.id, cmpOr(u.version, resp.etag))
	stored := u.fields(slices.Collect(maps.Keys(written)))
	for f := range written {
		if _, ok := stored[f]; !ok {
			stored[f] = connector.Null()
		}
	}
	return connector.WriteResult{ID: u.id, ModTime: u.modified, Stored: stored}, nil
}

func ifMatch(version string) http.Header {
	if version == "" {
		return nil
	}
	return http.Header{"If-Match": {version}}
}

func (c *Connector) update(ctx context.Context, w connector.Write) (connector.WriteResult, error) {
	userFields, groupsField, groups := membershipWrites(w.Fields)
	if groupsField == "" {
		return c.updateUser(ctx, w)
	}
	var res connector.WriteResult
	var body []byte
	var err error
	if len(userFields) > 0 {
		w.Fields = userFields
		if res, err = c.updateUser(ctx, w); err != nil {
			return res, err
		}
	}
	// The User as it is now, for the servers that give memberships in its groups attribute.
	resp, err := c.client.do(ctx, http.MethodGet, "/"+Users+"/"+url.PathEscape(w.ID), nil, nil)
	if err != nil {
		return res, itemError(w.ID, err)
	}
	body = resp.body
	if res.ID == "" {
		u, err := decodeUser(body)
		if err != nil {
			return res, fmt.Errorf("GET %s: the answer is not a User: %w", w.ID, err)
		}
		res = connector.WriteResult{ID: u.id, ModTime: u.modified, Stored: map[string]connector.Value{}}
	}
	return c.withMemberships(ctx, res, body, groupsField, groups)
}

// updateUser writes the User's own attributes.
func (c *Connector) updateUser(ctx context.Context, w connector.Write) (connector.WriteResult, error) {
	typed := map[string]connector.Value{}
	for f, v := range w.Fields {
		if p, _ := parsePath(f); p.elementType != "" {
			typed[f] = v
		}
	}
	if !c.patch {
		return c.replace(ctx, w.ID, w.Fields)
	}
	var ops []map[string]any
	version := c.version(w.ID)
	if len(typed) > 0 {
		// An element of a multi-valued attribute is replaced with the whole attribute, as the
		// User has it now with the element changed: a PATCH path with a filter that matches no
		// element yet is an error in RFC 7644.
		body, etag, err := c.current(ctx, w.ID)
		if err != nil {
			return connector.WriteResult{}, err
		}
		version = cmpOr(version, etag)
		if err := merge(body, typed); err != nil {
			return connector.WriteResult{}, connector.NewItemError(w.ID, err)
		}
		done := map[attrPath]bool{}
		for _, f := range slices.Sorted(maps.Keys(typed)) {
			p, _ := parsePath(f)
			if attr := p.attribute(); !done[attr] {
				done[attr] = true
				obj, key := slot(body, attr, false)
				ops = append(ops, map[string]any{"op": "replace", "path": attr.String(), "value": obj[key]})
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(w.Fields)) {
		p, _ := parsePath(f) // Write checked them
		v := w.Fields[f]
		switch {
		case p.elementType != "":
		case v.IsNull():
			ops = append(ops, map[string]any{"op": "remove", "path": p.String()})
		default:
			jv, err := toJSON(p, v)
			if err != nil {
				return connector.WriteResult{}, connector.NewItemError(w.ID, err)
			}
			ops = append(ops, map[string]any{"op": "replace", "path": p.String(), "value": jv})
		}
	}
	return c.patchUser(ctx, w.ID, version, ops, w.Fields)
}

func (c *Connector) patchUser(ctx context.Context, id, version string, ops []map[string]any, written map[string]connector.Value) (connector.WriteResult, error) {
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
	path := "/" + Users + "/" + url.PathEscape(id)
	resp, err := c.client.do(ctx, http.MethodPatch, path, ifMatch(version), body)
	if err != nil {
		return connector.WriteResult{}, itemError(id, err)
	}
	if resp.status == http.StatusNoContent || len(resp.body) == 0 {
		// Nothing changed, and the server says so without the User: read it.
		if resp, err = c.client.do(ctx, http.MethodGet, path, nil, nil); err != nil {
			return connector.WriteResult{}, itemError(id, err)
		}
	}
	return c.result(resp, written)
}

// current GETs the User as it is now, and its version; an item error when it is no longer the
// version this cycle read.
func (c *Connector) current(ctx context.Context, id string) (map[string]any, string, error) {
	path := "/" + Users + "/" + url.PathEscape(id)
	resp, err := c.client.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, "", itemError(id, err)
	}
	u, err := decodeUser(resp.body)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: the answer is not a User: %w", path, err)
	}
	now := cmpOr(u.version, resp.etag)
	if read := c.version(id); read != "" && now != "" && now != read {
		return nil, "", connector.NewItemError(id,
			fmt.Errorf("the User changed on the server since this cycle read it (version %s, now %s); the next cycle reads it again", read, now))
	}
	return u.attrs, now, nil
}

// merge writes fields into a User's attributes.
func merge(body map[string]any, fields map[string]connector.Value) error {
	for f, v := range fields {
		p, _ := parsePath(f)
		if v.IsNull() {
			deletePath(body, p)
			continue
		}
		jv, err := toJSON(p, v)
		if err != nil {
			return err
		}
		setPath(body, p, jv)
	}
	return nil
}

// replace updates a User on a server without PATCH: the User as it is now, with the fields
// changed, PUT back, conditional on the version this cycle read.
func (c *Connector) replace(ctx context.Context, id string, fields map[string]connector.Value) (connector.WriteResult, error) {
	body, version, err := c.current(ctx, id)
	if err != nil {
		return connector.WriteResult{}, err
	}
	// groups is read-only: the server computes it from the Groups' members.
	delete(body, "meta")
	delete(body, "groups")
	if err := merge(body, fields); err != nil {
		return connector.WriteResult{}, connector.NewItemError(id, err)
	}
	body["schemas"] = schemasOf(body)
	resp, err := c.client.do(ctx, http.MethodPut, "/"+Users+"/"+url.PathEscape(id), ifMatch(version), body)
	if err != nil {
		return connector.WriteResult{}, itemError(id, err)
	}
	return c.result(resp, fields)
}

func (c *Connector) delete(ctx context.Context, w connector.Write) (connector.WriteResult, error) {
	if c.cfg.deletes() == Deactivate {
		active := map[string]connector.Value{"active": connector.Bool(false)}
		var err error
		if c.patch {
			_, err = c.patchUser(ctx, w.ID, c.version(w.ID), []map[string]any{{"op": "replace", "path": "active", "value": false}}, active)
		} else {
			_, err = c.replace(ctx, w.ID, active)
		}
		return connector.WriteResult{ID: w.ID}, err
	}
	path := "/" + Users + "/" + url.PathEscape(w.ID)
	if _, err := c.client.do(ctx, http.MethodDelete, path, ifMatch(c.version(w.ID)), nil); err != nil {
		return connector.WriteResult{}, itemError(w.ID, err)
	}
	c.remember(w.ID, "")
	return connector.WriteResult{ID: w.ID}, nil
}

// toJSON gives a value the JSON type its attribute has in RFC 7643: active is the one boolean
// among the User's and the enterprise extension's singular attributes, all others are strings.
func toJSON(p attrPath, v connector.Value) (any, error) {
	if p.schema == userSchema && p.name == "active" && p.sub == "" {
		b, err := strconv.ParseBool(v.Text)
		if err != nil {
			return nil, fmt.Errorf("active: %q is not true or false", v.Text)
		}
		return b, nil
	}
	return v.Text, nil
}

// container returns the object holding p's attribute: the User, or its extension's object.
func container(body map[string]any, p attrPath, create bool) map[string]any {
	if p.schema == userSchema {
		return body
	}
	ext, _ := body[p.schema].(map[string]any)
	if ext == nil && create {
		ext = map[string]any{}
		body[p.schema] = ext
	}
	return ext
}

// slot returns the object holding p's value and its key there. With create, the objects on the
// way are made, and an element of the type p picks is added to its multi-valued attribute.
func slot(body map[string]any, p attrPath, create bool) (map[string]any, string) {
	obj := container(body, p, create)
	switch {
	case obj == nil:
		return nil, ""
	case p.elementType != "":
		list, _ := obj[p.name].([]any)
		for _, e := range list {
			if elem, ok := e.(map[string]any); ok {
				if t, _ := elem["type"].(string); strings.EqualFold(t, p.elementType) {
					return elem, p.sub
				}
			}
		}
		if !create {
			return nil, ""
		}
		elem := map[string]any{"type": p.elementType}
		obj[p.name] = append(list, elem)
		return elem, p.sub
	case p.sub != "":
		complexAttr, _ := obj[p.name].(map[string]any)
		if complexAttr == nil && create {
			complexAttr = map[string]any{}
			obj[p.name] = complexAttr
		}
		return complexAttr, p.sub
	}
	return obj, p.name
}

func setPath(body map[string]any, p attrPath, v any) {
	obj, key := slot(body, p, true)
	obj[key] = v
}

// deletePath removes p's value; an element of a multi-valued attribute left with nothing but its
// type goes too.
func deletePath(body map[string]any, p attrPath) {
	obj, key := slot(body, p, false)
	delete(obj, key)
	if p.elementType == "" {
		return
	}
	attr := container(body, p, false)
	list, _ := attr[p.name].([]any)
	attr[p.name] = slices.DeleteFunc(list, func(e any) bool {
		elem, _ := e.(map[string]any)
		_, hasType := elem["type"]
		return len(elem) == 1 && hasType
	})
}

func schemasOf(body map[string]any) []string {
	if _, ok := body[enterpriseSchema]; ok {
		return []string{userSchema, enterpriseSchema}
	}
	return []string{userSchema}
}

// user is a User as the server returned it.
type user struct {
	id, externalID, version string
	modified                time.Time
	attrs                   map[string]any
}

func decodeUser(raw []byte) (user, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var attrs map[string]any
	if err := d.Decode(&attrs); err != nil {
		return user{}, err
	}
	u := user{attrs: attrs}
	u.id, _ = attrs["id"].(string)
	if u.id == "" {
		return u, errors.New("a User without an id")
	}
	u.externalID, _ = attrs["externalId"].(string)
	if meta, ok := attrs["meta"].(map[string]any); ok {
		u.version, _ = meta["version"].(string)
		if lm, ok := meta["lastModified"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, lm); err == nil {
				u.modified = t.UTC()
			}
		}
	}
	return u, nil
}

func (u user) lookup(p attrPath) (any, bool) {
	obj, key := slot(u.attrs, p, false)
	v, ok := obj[key]
	return v, ok && v != nil
}

func (u user) inactive() bool {
	active, ok := u.attrs["active"].(bool)
	return ok && !active
}

// inScope checks the scope again on what the server returned: a server that ignores or loosens
// the filter must not hand one person's Users to another. Values compare without case, as SCIM's
// eq does for most attributes.
func (u user) inScope(scopeValues map[string]string) bool {
	for f, want := range scopeValues {
		p, _ := parsePath(f)
		got, ok := u.lookup(p)
		s, isString := got.(string)
		if !ok || !isString || !strings.EqualFold(s, want) {
			return false
		}
	}
	return true
}

// fields returns the named fields, or every singular attribute when names is nil.
func (u user) fields(names []string) map[string]connector.Value {
	out := map[string]connector.Value{"id": connector.String(u.id)}
	if names == nil {
		for k, v := range u.attrs {
			if k == "schemas" || k == "meta" || k == "id" {
				continue
			}
			flatten(out, k, v)
		}
		return out
	}
	for _, f := range names {
		if f == "id" {
			continue
		}
		if f == "meta.lastModified" && !u.modified.IsZero() {
			out[f] = connector.Time(u.modified)
			continue
		}
		if p, err := parsePath(f); err == nil {
			if v, ok := u.lookup(p); ok {
				out[f] = value(v)
			}
		}
	}
	return out
}

// flatten names a value by its path: "name.givenName", and "<urn>:department" inside an extension.
func flatten(out map[string]connector.Value, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		sep := "."
		if path == enterpriseSchema {
			sep = ":"
		}
		for k, sub := range v {
			flatten(out, path+sep+k, sub)
		}
	case []any, nil:
		// Multi-valued attributes have no single value to sync.
	default:
		out[path] = value(v)
	}
}

func value(v any) connector.Value {
	switch v := v.(type) {
	case string:
		return connector.String(v)
	case bool:
		return connector.Bool(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return connector.Int(i)
		}
		f, _ := v.Float64()
		return connector.Float(f)
	}
	b, _ := json.Marshal(v)
	return connector.String(string(b))
}
