package scimserver

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
)

// User is a User as the provider's methods show it.
type User struct {
	ID, UserName, DisplayName, ExternalID string
	// Organization is the enterprise extension's organization.
	Organization string
	Active       *bool
	LastModified time.Time
}

// Put creates or replaces, behind the protocol's back, the User of that userName, with the
// modification time given. Changes made by the provider's methods are kept in the File by Save.
func (p *Provider) Put(u User) string {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	attrs := scim.ResourceAttributes{"userName": u.UserName}
	if u.DisplayName != "" {
		attrs["displayName"] = u.DisplayName
	}
	if u.ExternalID != "" {
		attrs["externalId"] = u.ExternalID
	}
	if u.Active != nil {
		attrs["active"] = *u.Active
	}
	if u.Organization != "" {
		attrs[EnterpriseSchema] = map[string]any{"organization": u.Organization}
	}
	for _, id := range st.order {
		if existing := st.users[id]; strings.EqualFold(existing.attrs["userName"].(string), u.UserName) {
			existing.attrs, existing.modified = attrs, u.LastModified.UTC()
			existing.version++
			return id
		}
	}
	return st.add(attrs, u.LastModified.UTC()).id
}

// Delete removes the User of that userName, behind the protocol's back.
func (p *Provider) Delete(userName string) {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range st.order {
		if strings.EqualFold(st.users[id].attrs["userName"].(string), userName) {
			st.remove(id)
			return
		}
	}
}

// Users lists the Users in the order they were created.
func (p *Provider) Users() []User {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []User
	for _, id := range st.order {
		u := st.users[id]
		user := User{ID: id, LastModified: u.modified}
		user.UserName, _ = u.attrs["userName"].(string)
		user.DisplayName, _ = u.attrs["displayName"].(string)
		user.ExternalID, _ = u.attrs["externalId"].(string)
		if a, ok := u.attrs["active"].(bool); ok {
			user.Active = &a
		}
		if ext, ok := u.attrs[EnterpriseSchema].(map[string]any); ok {
			user.Organization, _ = ext["organization"].(string)
		}
		out = append(out, user)
	}
	return out
}

// store is the resource handler: Users in memory, with userName unique regardless of case,
// a version per User that If-Match is checked against, and PATCH applied to attributes and
// sub-attributes. It holds the Groups too (groupHandler serves them), so that a User's groups
// attribute says which Groups have it as a member, as RFC 7643 has the server compute it.
type store struct {
	mu      sync.Mutex
	users   map[string]*stored
	order   []string
	next    int
	noPatch bool
	// file keeps the store when set (Options.File).
	file string

	groups     map[string]*stored
	groupOrder []string
	nextGroup  int
}

type stored struct {
	id       string
	attrs    scim.ResourceAttributes
	created  time.Time
	modified time.Time
	version  int
}

func (st *store) add(attrs scim.ResourceAttributes, modified time.Time) *stored {
	st.next++
	u := &stored{id: fmt.Sprintf("u%06d", st.next), attrs: attrs, created: modified, modified: modified, version: 1}
	st.users[u.id] = u
	st.order = append(st.order, u.id)
	return u
}

// remove deletes a User, and its memberships with it.
func (st *store) remove(id string) {
	delete(st.users, id)
	st.order = slices.DeleteFunc(st.order, func(o string) bool { return o == id })
	for _, g := range st.groups {
		if slices.Contains(memberIDs(g.attrs), id) {
			g.attrs["members"] = withoutMember(g.attrs["members"], id)
			g.version++
		}
	}
}

func (u *stored) resource() scim.Resource {
	etag := `W/"` + strconv.Itoa(u.version) + `"`
	created, modified := u.created, u.modified
	return scim.Resource{ID: u.id, Attributes: u.attrs, Meta: scim.Meta{Created: &created, LastModified: &modified, Version: etag}}
}

// userResource is a User with its groups attribute: the Groups that have it as a member.
func (st *store) userResource(u *stored) scim.Resource {
	r := u.resource()
	var groups []any
	for _, gid := range st.groupOrder {
		g := st.groups[gid]
		if slices.Contains(memberIDs(g.attrs), u.id) {
			groups = append(groups, map[string]any{"value": gid, "display": g.attrs["displayName"], "type": "direct"})
		}
	}
	if groups != nil {
		attrs := scim.ResourceAttributes{}
		for k, v := range r.Attributes {
			attrs[k] = v
		}
		attrs["groups"] = groups
		r.Attributes = attrs
	}
	return r
}

func (st *store) unique(userName any, except string) error {
	name, _ := userName.(string)
	for id, u := range st.users {
		if id != except && strings.EqualFold(u.attrs["userName"].(string), name) {
			e := scimerrors.ScimErrorUniqueness
			e.Detail = fmt.Sprintf("userName %q is already taken.", name)
			return e
		}
	}
	return nil
}

// find returns the User, checking If-Match against its version.
func (st *store) find(r *http.Request, id string) (*stored, error) {
	u, ok := st.users[id]
	if !ok {
		return nil, scimerrors.ScimErrorResourceNotFound(id)
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != u.resource().Meta.Version {
		return nil, scimerrors.ScimError{Status: http.StatusPreconditionFailed,
			Detail: fmt.Sprintf("Resource %s is at version %s, not %s.", id, u.resource().Meta.Version, m)}
	}
	return u, nil
}

func (st *store) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.unique(attrs["userName"], ""); err != nil {
		return scim.Resource{}, err
	}
	created := st.userResource(st.add(attrs, time.Now().UTC()))
	return created, st.save()
}

func (st *store) Get(r *http.Request, id string) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	u, ok := st.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	return st.userResource(u), nil
}

func (st *store) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var matching []*stored
	for _, id := range st.order {
		u := st.users[id]
		if params.FilterValidator == nil || params.FilterValidator.PassesFilter(filterView(u)) == nil {
			matching = append(matching, u)
		}
	}
	page := scim.Page{TotalResults: len(matching), Resources: []scim.Resource{}}
	start := max(params.StartIndex, 1) - 1
	for i := start; i < len(matching) && i < start+params.Count; i++ {
		page.Resources = append(page.Resources, st.userResource(matching[i]))
	}
	return page, nil
}

// filterView is a User as the library's filter evaluation looks for attributes: those of an
// extension under "<urn>:<name>", the meta attributes under meta.
func filterView(u *stored) map[string]any {
	view := map[string]any{"id": u.id}
	for k, v := range u.attrs {
		view[k] = v
		if ext, ok := v.(map[string]any); ok && strings.HasPrefix(k, "urn:") {
			for name, ev := range ext {
				view[k+":"+name] = ev
			}
		}
	}
	return view
}

func (st *store) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	u, err := st.find(r, id)
	if err != nil {
		return scim.Resource{}, err
	}
	if err := st.unique(attrs["userName"], id); err != nil {
		return scim.Resource{}, err
	}
	u.attrs, u.modified = attrs, time.Now().UTC()
	u.version++
	return st.userResource(u), st.save()
}

func (st *store) Delete(r *http.Request, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, err := st.find(r, id); err != nil {
		return err
	}
	st.remove(id)
	return st.save()
}

func (st *store) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.noPatch {
		return scim.Resource{}, scimerrors.ScimError{Status: http.StatusNotImplemented, Detail: "PATCH is not supported."}
	}
	u, err := st.find(r, id)
	if err != nil {
		return scim.Resource{}, err
	}
	attrs := cloneAttrs(u.attrs)
	for _, op := range ops {
		if err := applyOp(attrs, op); err != nil {
			return scim.Resource{}, err
		}
	}
	if err := st.unique(attrs["userName"], id); err != nil {
		return scim.Resource{}, err
	}
	u.attrs, u.modified = attrs, time.Now().UTC()
	u.version++
	return st.userResource(u), st.save()
}

func cloneAttrs(attrs scim.ResourceAttributes) scim.ResourceAttributes {
	out := scim.ResourceAttributes{}
	for k, v := range attrs {
		if m, ok := v.(map[string]any); ok {
			v = map[string]any(cloneAttrs(m))
		}
		out[k] = v
	}
	return out
}

// applyOp applies one validated operation to an attribute or a sub-attribute, or, without a
// path, to the attributes its value names. Value filters in paths are not supported.
func applyOp(attrs scim.ResourceAttributes, op scim.PatchOperation) error {
	if op.Path == nil {
		values, ok := op.Value.(map[string]any)
		if !ok {
			return scimerrors.ScimErrorInvalidValue
		}
		for k, v := range values {
			attrs[k] = v
		}
		return nil
	}
	if op.Path.ValueExpression != nil || op.Path.SubAttribute != nil {
		e := scimerrors.ScimErrorInvalidPath
		e.Detail = "This server does not support value filters in PATCH paths."
		return e
	}
	ap := op.Path.AttributePath
	obj := map[string]any(attrs)
	if uri := ap.URI(); uri != "" {
		ext, _ := obj[uri].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			obj[uri] = ext
		}
		obj = ext
	}
	key := ap.AttributeName
	if sub := ap.SubAttributeName(); sub != "" {
		complexAttr, _ := obj[key].(map[string]any)
		if complexAttr == nil {
			complexAttr = map[string]any{}
			obj[key] = complexAttr
		}
		obj, key = complexAttr, sub
	}
	if op.Op == scim.PatchOperationRemove {
		delete(obj, key)
	} else {
		obj[key] = op.Value
	}
	return nil
}
