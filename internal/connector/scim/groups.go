package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/httpretry"
)

// The membership fields: the Groups a User belongs to, by displayName or by id. They are the
// sub-attributes of the User's read-only groups attribute (RFC 7643 section 4.1.2), and are
// written through the Groups' members instead.
const (
	GroupNamesField = "groups.display"
	GroupIDsField   = "groups.value"
)

// Groups is the resource type holding memberships.
const Groups = "Groups"

// membershipField returns the membership field f names, or "".
func membershipField(f string) string {
	for _, m := range []string{GroupNamesField, GroupIDsField} {
		if strings.EqualFold(f, m) {
			return m
		}
	}
	return ""
}

// group is a Group a User belongs to.
type group struct{ id, name string }

// membershipValue is how a read gives a User's Groups: nothing for none, one Group's name (or
// id) as text, several as a sorted JSON array, as the ldap connector gives several values.
func membershipValue(groups []group, field string) connector.Value {
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		if field == GroupIDsField {
			names = append(names, g.id)
		} else {
			names = append(names, g.name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	switch {
	case len(names) == 0:
		return connector.Null()
	case len(names) == 1 && !strings.HasPrefix(names[0], "["):
		return connector.String(names[0])
	}
	b, _ := json.Marshal(names)
	return connector.String(string(b))
}

// membershipNames reads a written membership value: null or "" for none, a JSON array of
// strings, or one name.
func membershipNames(v connector.Value) ([]string, error) {
	switch {
	case v.IsNull() || v.Text == "":
		return nil, nil
	case strings.HasPrefix(v.Text, "["):
		var names []string
		if err := json.Unmarshal([]byte(v.Text), &names); err != nil {
			return nil, fmt.Errorf("%q is neither one Group nor a JSON array of Groups: %w", v.Text, err)
		}
		return slices.DeleteFunc(names, func(n string) bool { return n == "" }), nil
	}
	return []string{v.Text}, nil
}

// memberships returns the Groups the User belongs to: the Groups whose members hold its id, when
// the server can filter Groups by members, and otherwise the User's own groups attribute.
func (c *Connector) memberships(ctx context.Context, u user) ([]group, error) {
	if c.filterMembers() {
		groups, err := c.listGroups(ctx, "members.value eq "+jsonString(u.id), u.id)
		switch s := httpretry.Status(err); {
		case err == nil:
			return groups, nil
		case s == http.StatusBadRequest || s == http.StatusNotImplemented:
			// The server does not filter Groups by members: it says so once, and the User's
			// groups attribute answers from then on.
			c.mu.Lock()
			c.noMembersFilter = true
			c.mu.Unlock()
		default:
			return nil, err
		}
	}
	var groups []group
	list, _ := u.attrs["groups"].([]any)
	for _, e := range list {
		elem, _ := e.(map[string]any)
		id, _ := elem["value"].(string)
		if id == "" {
			continue
		}
		name, _ := elem["display"].(string)
		if name == "" {
			var err error
			if name, err = c.groupName(ctx, id); err != nil {
				return nil, err
			}
		}
		groups = append(groups, group{id: id, name: name})
	}
	return groups, nil
}

func (c *Connector) filterMembers() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.filtering && !c.noMembersFilter
}

// listGroups pages through the Groups the filter selects. With member set, the Groups are
// checked against the filter: a server that ignores it must not make every Group look like the
// User's. A Group that lists members without that one is left out, and so is one without
// members when others list theirs; when none lists members, the server leaves them out of lists
// and the filter is trusted.
func (c *Connector) listGroups(ctx context.Context, filter, member string) ([]group, error) {
	type listed struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
		Members     *[]struct {
			Value string `json:"value"`
		} `json:"members"`
	}
	var all []listed
	for start := 1; ; {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.cfg.pageSize())}, "filter": {filter}}
		resp, err := c.client.do(ctx, http.MethodGet, "/"+Groups+"?"+q.Encode(), nil, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalResults int      `json:"totalResults"`
			Resources    []listed `json:"Resources"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return nil, fmt.Errorf("listing %s: the answer is not a SCIM list: %w", Groups, err)
		}
		all = append(all, page.Resources...)
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			break
		}
	}
	membersListed := slices.ContainsFunc(all, func(g listed) bool { return g.Members != nil })
	var groups []group
	for _, g := range all {
		c.rememberGroup(group{id: g.ID, name: g.DisplayName})
		if member != "" && membersListed && (g.Members == nil || !slices.ContainsFunc(*g.Members, func(m struct {
			Value string `json:"value"`
		}) bool {
			return m.Value == member
		})) {
			continue
		}
		groups = append(groups, group{id: g.ID, name: g.DisplayName})
	}
	return groups, nil
}

func (c *Connector) rememberGroup(g group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groupNames[g.id] = g.name
}

// groupName is a Group's displayName, for a User's groups attribute that gives only ids.
func (c *Connector) groupName(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	name, ok := c.groupNames[id]
	c.mu.Unlock()
	if ok {
		return name, nil
	}
	resp, err := c.client.do(ctx, http.MethodGet, "/"+Groups+"/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return "", err
	}
	var g struct {
		DisplayName string `json:"displayName"`
	}
	if err := json.Unmarshal(resp.body, &g); err != nil {
		return "", fmt.Errorf("GET /%s/%s: the answer is not a Group: %w", Groups, id, err)
	}
	c.rememberGroup(group{id: id, name: g.DisplayName})
	return g.DisplayName, nil
}

// groupByName finds the one Group of that displayName; none, or several, fail the item.
func (c *Connector) groupByName(ctx context.Context, uid, name string) (group, error) {
	var found []group
	var err error
	if c.filtering {
		found, err = c.listGroups(ctx, "displayName eq "+jsonString(name), "")
	}
	if !c.filtering || httpretry.Status(err) == http.StatusBadRequest || httpretry.Status(err) == http.StatusNotImplemented {
		found, err = c.listAllGroups(ctx)
	}
	if err != nil {
		return group{}, itemError(uid, err)
	}
	// The filter compares without case, as displayName's caseExact is false; so does this check,
	// which also keeps a server that ignores the filter from answering with every Group.
	found = slices.DeleteFunc(found, func(g group) bool { return !strings.EqualFold(g.name, name) })
	switch len(found) {
	case 0:
		return group{}, connector.NewItemError(uid, fmt.Errorf("no Group of the SCIM server has the displayName %q", name))
	case 1:
		return found[0], nil
	}
	return group{}, connector.NewItemError(uid, fmt.Errorf("%d Groups of the SCIM server have the displayName %q; map %s to their ids instead", len(found), name, GroupIDsField))
}

// listAllGroups lists every Group once per connector, for a server that cannot filter them.
func (c *Connector) listAllGroups(ctx context.Context) ([]group, error) {
	c.mu.Lock()
	all := c.allGroups
	c.mu.Unlock()
	if all != nil {
		return all, nil
	}
	var groups []group
	for start := 1; ; {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(c.cfg.pageSize())}}
		resp, err := c.client.do(ctx, http.MethodGet, "/"+Groups+"?"+q.Encode(), nil, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalResults int `json:"totalResults"`
			Resources    []struct {
				ID          string `json:"id"`
				DisplayName string `json:"displayName"`
			} `json:"Resources"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return nil, fmt.Errorf("listing %s: the answer is not a SCIM list: %w", Groups, err)
		}
		for _, g := range page.Resources {
			groups = append(groups, group{id: g.ID, name: g.DisplayName})
		}
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			break
		}
	}
	c.mu.Lock()
	c.allGroups = groups
	c.mu.Unlock()
	return groups, nil
}

// membershipWrites takes the membership field out of a write's fields; at most one of the two
// may be written.
func membershipWrites(fields map[string]connector.Value) (map[string]connector.Value, string, connector.Value) {
	rest := maps.Clone(fields)
	var field string
	var v connector.Value
	for f, fv := range fields {
		if m := membershipField(f); m != "" {
			field, v = m, fv
			delete(rest, f)
		}
	}
	return rest, field, v
}

// setMemberships makes the User a member of exactly the Groups the value names, adding it to the
// Groups it is missing from and removing it from the others, one PATCH of members per Group: the
// Group's other members are never written. It returns the membership as the server has it after.
func (c *Connector) setMemberships(ctx context.Context, u user, field string, v connector.Value) (connector.Value, error) {
	names, err := membershipNames(v)
	if err != nil {
		return connector.Value{}, connector.NewItemError(u.id, fmt.Errorf("%s: %w", field, err))
	}
	current, err := c.memberships(ctx, u)
	if err != nil {
		return connector.Value{}, itemError(u.id, err)
	}
	want := map[string]group{}
	var errs []error
	for _, n := range names {
		g := group{id: n}
		if field == GroupNamesField {
			if g, err = c.groupByName(ctx, u.id, n); err != nil {
				if !connector.IsItemError(err) {
					return connector.Value{}, err
				}
				errs = append(errs, err)
				continue
			}
		}
		want[g.id] = g
	}
	have, changed := map[string]bool{}, false
	for _, g := range current {
		have[g.id] = true
		if _, ok := want[g.id]; !ok {
			changed = true
			op := map[string]any{"op": "remove", "path": "members[value eq " + jsonString(u.id) + "]"}
			if err := c.patchMembers(ctx, u.id, g, op); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if !have[id] {
			changed = true
			op := map[string]any{"op": "add", "path": "members", "value": []map[string]any{{"value": u.id, "type": "User"}}}
			if err := c.patchMembers(ctx, u.id, want[id], op); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, err := range errs {
		if !connector.IsItemError(err) {
			return connector.Value{}, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return connector.Value{}, connector.NewItemError(u.id, err)
	}
	if !changed {
		return membershipValue(current, field), nil
	}
	// Read back, since a User's groups attribute may have changed too.
	if resp, err := c.client.do(ctx, http.MethodGet, "/"+Users+"/"+url.PathEscape(u.id), nil, nil); err == nil {
		if fresh, err := decodeUser(resp.body); err == nil {
			u = fresh
		}
	}
	after, err := c.memberships(ctx, u)
	if err != nil {
		return connector.Value{}, itemError(u.id, err)
	}
	return membershipValue(after, field), nil
}

// patchMembers sends one PATCH of a Group's members; the server's refusal fails the User's item
// with its detail, naming the Group.
func (c *Connector) patchMembers(ctx context.Context, uid string, g group, op map[string]any) error {
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": []map[string]any{op}}
	_, err := c.client.do(ctx, http.MethodPatch, "/"+Groups+"/"+url.PathEscape(g.id), nil, body)
	if err == nil {
		return nil
	}
	what := "adding the User to"
	if op["op"] == "remove" {
		what = "removing the User from"
	}
	name := g.id
	if g.name != "" {
		name = fmt.Sprintf("%q (%s)", g.name, g.id)
	}
	s := httpretry.Status(err)
	if s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
		// Not itemError: a Group not found is no sign that the User is gone.
		return connector.NewItemError(uid, fmt.Errorf("%s Group %s: %w", what, name, err))
	}
	return fmt.Errorf("%s Group %s: %w", what, name, err)
}
