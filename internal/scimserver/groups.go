package scimserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
)

// Group is a Group as the provider's methods show it.
type Group struct {
	ID, DisplayName string
	// Members are the ids of the member Users, in the order they were added.
	Members []string
}

// PutGroup creates, behind the protocol's back, a Group with those members, and returns its id.
func (p *Provider) PutGroup(displayName string, members ...string) string {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var list []any
	for _, m := range members {
		list = append(list, map[string]any{"value": m, "type": "User"})
	}
	attrs := scim.ResourceAttributes{"displayName": displayName}
	if list != nil {
		attrs["members"] = list
	}
	return st.addGroup(attrs).id
}

// Groups lists the Groups in the order they were created.
func (p *Provider) Groups() []Group {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Group
	for _, id := range st.groupOrder {
		g := st.groups[id]
		name, _ := g.attrs["displayName"].(string)
		out = append(out, Group{ID: id, DisplayName: name, Members: memberIDs(g.attrs)})
	}
	return out
}

func (st *store) addGroup(attrs scim.ResourceAttributes) *stored {
	st.nextGroup++
	now := time.Now().UTC()
	g := &stored{id: fmt.Sprintf("g%06d", st.nextGroup), attrs: attrs, created: now, modified: now, version: 1}
	st.groups[g.id] = g
	st.groupOrder = append(st.groupOrder, g.id)
	return g
}

func memberIDs(attrs scim.ResourceAttributes) []string {
	list, _ := attrs["members"].([]any)
	var ids []string
	for _, m := range list {
		if elem, ok := m.(map[string]any); ok {
			if v, ok := elem["value"].(string); ok {
				ids = append(ids, v)
			}
		}
	}
	return ids
}

func withoutMember(members any, id string) []any {
	list, _ := members.([]any)
	return slices.DeleteFunc(slices.Clone(list), func(m any) bool {
		elem, _ := m.(map[string]any)
		return elem["value"] == id
	})
}

// groupHandler serves the Groups of a store: members must be Users of the store, and PATCH adds
// members, removes them one by one (members[value eq "<id>"]) or all, and replaces attributes.
type groupHandler struct{ st *store }

func (h groupHandler) find(r *http.Request, id string) (*stored, error) {
	g, ok := h.st.groups[id]
	if !ok {
		return nil, scimerrors.ScimErrorResourceNotFound(id)
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != g.resource().Meta.Version {
		return nil, scimerrors.ScimError{Status: http.StatusPreconditionFailed,
			Detail: fmt.Sprintf("Resource %s is at version %s, not %s.", id, g.resource().Meta.Version, m)}
	}
	return g, nil
}

// checkMembers refuses a member that is no User of the store, as a server keeping referential
// integrity does.
func (h groupHandler) checkMembers(members any) error {
	list, _ := members.([]any)
	for _, m := range list {
		elem, _ := m.(map[string]any)
		v, _ := elem["value"].(string)
		if _, ok := h.st.users[v]; !ok {
			e := scimerrors.ScimErrorInvalidValue
			e.Detail = fmt.Sprintf("Member %q is not a User of this service provider.", v)
			return e
		}
	}
	return nil
}

func (h groupHandler) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if err := h.checkMembers(attrs["members"]); err != nil {
		return scim.Resource{}, err
	}
	return h.st.addGroup(attrs).resource(), h.st.save()
}

func (h groupHandler) Get(r *http.Request, id string) (scim.Resource, error) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	g, ok := h.st.groups[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	return g.resource(), nil
}

func (h groupHandler) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	var matching []*stored
	for _, id := range h.st.groupOrder {
		g := h.st.groups[id]
		if params.FilterValidator == nil || params.FilterValidator.PassesFilter(groupFilterView(g)) == nil {
			matching = append(matching, g)
		}
	}
	page := scim.Page{TotalResults: len(matching), Resources: []scim.Resource{}}
	start := max(params.StartIndex, 1) - 1
	for i := start; i < len(matching) && i < start+params.Count; i++ {
		page.Resources = append(page.Resources, matching[i].resource())
	}
	return page, nil
}

// groupFilterView is a Group as the library's filter evaluation looks for a sub-attribute of a
// multi-valued attribute (members.value eq "<id>"): one object whose sub-attribute holds the
// elements' values.
func groupFilterView(g *stored) map[string]any {
	view := map[string]any{"id": g.id, "displayName": g.attrs["displayName"]}
	values := []any{}
	for _, id := range memberIDs(g.attrs) {
		values = append(values, id)
	}
	view["members"] = map[string]any{"value": values}
	return view
}

func (h groupHandler) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	g, err := h.find(r, id)
	if err != nil {
		return scim.Resource{}, err
	}
	if err := h.checkMembers(attrs["members"]); err != nil {
		return scim.Resource{}, err
	}
	g.attrs, g.modified = attrs, time.Now().UTC()
	g.version++
	return g.resource(), h.st.save()
}

func (h groupHandler) Delete(r *http.Request, id string) error {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if _, err := h.find(r, id); err != nil {
		return err
	}
	delete(h.st.groups, id)
	h.st.groupOrder = slices.DeleteFunc(h.st.groupOrder, func(o string) bool { return o == id })
	return h.st.save()
}

func (h groupHandler) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if h.st.noPatch {
		return scim.Resource{}, scimerrors.ScimError{Status: http.StatusNotImplemented, Detail: "PATCH is not supported."}
	}
	g, err := h.find(r, id)
	if err != nil {
		return scim.Resource{}, err
	}
	attrs := cloneAttrs(g.attrs)
	for _, op := range ops {
		if err := h.applyGroupOp(attrs, op); err != nil {
			return scim.Resource{}, err
		}
	}
	g.attrs, g.modified = attrs, time.Now().UTC()
	g.version++
	return g.resource(), h.st.save()
}

func (h groupHandler) applyGroupOp(attrs scim.ResourceAttributes, op scim.PatchOperation) error {
	if op.Path == nil || !strings.EqualFold(op.Path.AttributePath.AttributeName, "members") {
		return applyOp(attrs, op)
	}
	switch {
	case op.Op == scim.PatchOperationAdd:
		if err := h.checkMembers(op.Value); err != nil {
			return err
		}
		members, _ := attrs["members"].([]any)
		added, _ := op.Value.([]any)
		for _, m := range added {
			elem, _ := m.(map[string]any)
			if !slices.Contains(memberIDs(attrs), elem["value"].(string)) {
				members = append(members, m)
				attrs["members"] = members
			}
		}
	case op.Op == scim.PatchOperationRemove && op.Path.ValueExpression != nil:
		// Only the filter the connector sends is understood: value eq "<id>".
		id, ok := memberFilterValue(op.Path.ValueExpression)
		if !ok {
			e := scimerrors.ScimErrorInvalidFilter
			e.Detail = "Only members[value eq \"<id>\"] selects members here."
			return e
		}
		attrs["members"] = withoutMember(attrs["members"], id)
	case op.Op == scim.PatchOperationRemove:
		delete(attrs, "members")
	default:
		if err := h.checkMembers(op.Value); err != nil {
			return err
		}
		attrs["members"] = op.Value
	}
	return nil
}

// memberFilterValue reads the id out of the filter `value eq "<id>"`.
func memberFilterValue(expr any) (string, bool) {
	rest, ok := strings.CutPrefix(fmt.Sprint(expr), `value eq "`)
	if !ok || !strings.HasSuffix(rest, `"`) {
		return "", false
	}
	return strings.TrimSuffix(rest, `"`), true
}

// AddMember adds a User to a Group behind the protocol's back, as someone else's change would.
func (p *Provider) AddMember(groupID, userID string) {
	st := p.store
	st.mu.Lock()
	defer st.mu.Unlock()
	g := st.groups[groupID]
	members, _ := g.attrs["members"].([]any)
	g.attrs["members"] = append(members, map[string]any{"value": userID, "type": "User"})
	g.version++
}
