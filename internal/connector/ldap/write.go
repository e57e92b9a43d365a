package ldap

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/connector"
)

// CurrentWatermark is the newest modification time among the user's
// entries, or "" when there are none (the next change read then reads
// everything), and a sync cookie where the directory offers one (see
// sync.go).
func (c *Connector) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	e, err := c.incremental(req.Entity)
	if err != nil {
		return "", err
	}
	filter, err := e.filter(req.Scope)
	if err != nil {
		return "", err
	}
	var newest time.Time
	for entry, err := range c.search(ctx, filter, []string{e.coll.ModifiedField}) {
		if err != nil {
			return "", err
		}
		// An unreadable time fails its item in the change read itself.
		if t, err := parseGeneralizedTime(entry.GetEqualFoldAttributeValue(e.coll.ModifiedField)); err == nil && t.After(newest) {
			newest = t
		}
	}
	var stamp string
	if !newest.IsZero() {
		stamp = formatGeneralizedTime(newest)
	}
	var cookie []byte
	if c.syncs(e) {
		if cookie, err = c.syncCookie(ctx, e, req.Scope); err != nil {
			return "", err
		}
	}
	return encodeWatermark(stamp, cookie), nil
}

// ReadChanges streams the entries changed since the watermark: from the
// directory's content synchronisation where it offers it, deletions
// included, and otherwise those modified at or after the watermark's time,
// and those without a modification time.
func (c *Connector) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	e, err := c.incremental(req.Entity)
	if err != nil {
		return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
	}
	stamp, cookie, err := decodeWatermark(since)
	if err != nil {
		return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
	}
	byTime := c.read(ctx, req, "")
	if stamp != "" {
		t, err := parseGeneralizedTime(stamp)
		if err != nil {
			err = fmt.Errorf("watermark %q was not made by the ldap connector", since)
			return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
		}
		m := e.coll.ModifiedField
		byTime = c.read(ctx, req, fmt.Sprintf("(|(%s>=%s)(!(%s=*)))", m, formatGeneralizedTime(t), m))
	}
	if cookie != nil && c.syncs(e) {
		return c.syncChanges(ctx, req, e, cookie, byTime)
	}
	return byTime
}

func (c *Connector) incremental(entity string) (entries, error) {
	e, err := c.collection(entity)
	if err == nil && e.coll.ModifiedField == "" {
		err = fmt.Errorf("%s.modifiedField: incremental reads need a modification attribute", e.path)
	}
	return e, err
}

// Write applies a batch, one request per write (LDAP has no transaction
// across entries): what the server refuses fails its item alone.
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	e, err := c.collection(req.Entity)
	if err != nil {
		return nil, err
	}
	if len(req.Writes) > MaxBatch {
		return nil, fmt.Errorf("batch of %d writes exceeds the ldap connector's MaxBatch %d", len(req.Writes), MaxBatch)
	}
	scope, err := e.coll.ScopeValues(req.Scope)
	if err != nil {
		return nil, fmt.Errorf("%s.scope: %w", e.path, err)
	}
	results := make([]connector.WriteResult, len(req.Writes))
	for i, w := range req.Writes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var res connector.WriteResult
		switch w.Op {
		case connector.OpCreate:
			res, err = c.create(ctx, e, scope, w)
		case connector.OpUpdate:
			res, err = c.update(ctx, e, req.Scope, scope, w)
		case connector.OpDelete:
			res, err = c.delete(ctx, e, req.Scope, w)
		default:
			err = connector.NewItemError(w.ID, fmt.Errorf("unknown write op %v", w.Op))
		}
		if err != nil && !connector.IsItemError(err) {
			return nil, err
		}
		res.Err = err
		results[i] = res
	}
	return results, nil
}

func (c *Connector) create(ctx context.Context, e entries, scope map[string]string, w connector.Write) (connector.WriteResult, error) {
	attrs, err := c.attributeValues(e, scope, w)
	if err != nil {
		return connector.WriteResult{}, connector.NewItemError(w.ID, err)
	}
	rdn, _ := valuesOf(attrs, e.class.RDNAttribute)
	if len(rdn) == 0 {
		return connector.WriteResult{}, connector.NewItemError(w.ID, fmt.Errorf("a new entry needs a value for %s, which names it", e.class.RDNAttribute))
	}
	parent := e.class.ParentDN
	if parent == "" {
		parent = c.cfg.BaseDN
	}
	dn := e.class.RDNAttribute + "=" + goldap.EscapeDN(rdn[0]) + "," + parent
	add := goldap.NewAddRequest(dn, nil)
	classes := e.class.ObjectClasses
	if e.class.OriginAttribute != "" && w.Origin != "" {
		if e.class.OriginObjectClass != "" {
			classes = append(slices.Clip(classes), e.class.OriginObjectClass)
		}
		attrs[e.class.OriginAttribute] = []string{w.Origin}
	}
	add.Attribute("objectClass", classes)
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		if len(attrs[name]) > 0 {
			add.Attribute(name, attrs[name])
		}
	}
	if err := c.conn.Add(add); err != nil {
		var lerr *goldap.Error
		if errors.As(err, &lerr) && lerr.ResultCode == goldap.LDAPResultNoSuchObject {
			return connector.WriteResult{}, connector.InvalidConfig(fmt.Errorf("%s.collection: adding %s: the parent entry does not exist (the server has %q): %w",
				e.path, dn, lerr.MatchedDN, err))
		}
		return connector.WriteResult{}, c.classify(w.ID, "adding "+dn, err)
	}
	return c.readBack(ctx, e, dn, w)
}

func (c *Connector) update(ctx context.Context, e entries, s connector.Scope, scope map[string]string, w connector.Write) (connector.WriteResult, error) {
	dn, err := c.find(ctx, e, s, w.ID)
	if err != nil {
		return connector.WriteResult{ID: w.ID}, err
	}
	attrs, err := c.attributeValues(e, scope, w)
	if err != nil {
		return connector.WriteResult{ID: w.ID}, connector.NewItemError(w.ID, err)
	}
	if rdn, ok := valuesOf(attrs, e.class.RDNAttribute); ok {
		if dn, err = c.rename(e, dn, rdn, w.ID); err != nil {
			return connector.WriteResult{ID: w.ID}, err
		}
	}
	mod := goldap.NewModifyRequest(dn, nil)
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		mod.Replace(name, attrs[name])
	}
	if len(mod.Changes) > 0 {
		if err := c.conn.Modify(mod); err != nil {
			return connector.WriteResult{ID: w.ID}, c.classify(w.ID, "modifying "+dn, err)
		}
	}
	return c.readBack(ctx, e, dn, w)
}

// rename gives an entry a new RDN when its RDN attribute no longer holds
// the value that names it, and returns its new DN.
func (c *Connector) rename(e entries, dn string, rdn []string, id string) (string, error) {
	if len(rdn) == 0 {
		return "", connector.NewItemError(id, fmt.Errorf("%s names the entry and cannot be removed", e.class.RDNAttribute))
	}
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return "", connector.NewItemError(id, fmt.Errorf("entry %q: cannot parse its DN: %v", dn, err))
	}
	for _, a := range parsed.RDNs[0].Attributes {
		if strings.EqualFold(a.Type, e.class.RDNAttribute) && slices.Contains(rdn, a.Value) {
			return dn, nil
		}
	}
	newRDN := e.class.RDNAttribute + "=" + goldap.EscapeDN(rdn[0])
	if err := c.conn.ModifyDN(goldap.NewModifyDNRequest(dn, newRDN, true, "")); err != nil {
		return "", c.classify(id, "renaming "+dn, err)
	}
	parent := &goldap.DN{RDNs: parsed.RDNs[1:]}
	return newRDN + "," + parent.String(), nil
}

func (c *Connector) delete(ctx context.Context, e entries, s connector.Scope, w connector.Write) (connector.WriteResult, error) {
	dn, err := c.find(ctx, e, s, w.ID)
	if err != nil {
		return connector.WriteResult{ID: w.ID}, err
	}
	if err := c.conn.Del(goldap.NewDelRequest(dn, nil)); err != nil {
		return connector.WriteResult{ID: w.ID}, c.classify(w.ID, "deleting "+dn, err)
	}
	return connector.WriteResult{ID: w.ID}, nil
}

// attributeValues are the attributes a create or update writes: the
// write's fields but the DN and what the server keeps, the user's scope
// values, and the modification stamp.
func (c *Connector) attributeValues(e entries, scope map[string]string, w connector.Write) (map[string][]string, error) {
	attrs := map[string][]string{}
	for name, v := range w.Fields {
		if name == DNField || isOperational(name) || strings.EqualFold(name, e.key) || strings.EqualFold(name, e.class.OriginAttribute) {
			continue
		}
		vals, err := values(v, e.isBinary(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		attrs[name] = vals
	}
	for field, want := range scope {
		if got, ok := attrs[field]; ok && !slices.Equal(got, []string{want}) {
			return nil, fmt.Errorf("%s %q is not the user's (%q)", field, strings.Join(got, ", "), want)
		}
		if w.Op == connector.OpCreate {
			attrs[field] = []string{want}
		}
	}
	if m := e.coll.ModifiedField; m != "" && !isOperational(m) {
		attrs[m] = []string{formatGeneralizedTime(c.now())}
	}
	return attrs, nil
}

// valuesOf finds an attribute's values whatever case its field is spelt in.
func valuesOf(attrs map[string][]string, name string) ([]string, bool) {
	for k, v := range attrs {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// find returns the DN of the user's entry with the given ID; an entry
// outside the user's scope is not found.
func (c *Connector) find(ctx context.Context, e entries, s connector.Scope, id string) (string, error) {
	var cond string
	switch {
	case strings.EqualFold(e.key, DNField):
		cond = "" // searched below at the DN itself
	case e.isBinary(e.key):
		// The ID is the key's base64 (objectGUID): the filter asserts its octets.
		raw, err := decodeBase64(id)
		if err != nil {
			return "", connector.NewItemError(id, fmt.Errorf("%s: %w", e.key, err))
		}
		cond = fmt.Sprintf("(%s=%s)", e.key, goldap.EscapeFilter(raw))
	default:
		cond = fmt.Sprintf("(%s=%s)", e.key, goldap.EscapeFilter(id))
	}
	filter, err := e.filter(s, cond)
	if err != nil {
		return "", err
	}
	base, scope := c.cfg.BaseDN, goldap.ScopeWholeSubtree
	if cond == "" {
		base, scope = id, goldap.ScopeBaseObject
	}
	res, err := c.conn.Search(goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases, 2, 0, false, filter, []string{"1.1"}, nil))
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) || (err == nil && len(res.Entries) == 0):
		return "", connector.NewItemError(id, connector.ErrNotFound)
	case goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidDNSyntax):
		return "", connector.NewItemError(id, fmt.Errorf("%q is not a DN", id))
	case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return "", connector.NewItemError(id, fmt.Errorf("more than one entry has %s %q", e.key, id))
	case err != nil:
		return "", c.endpointError("finding "+id, err)
	}
	return res.Entries[0].DN, ctx.Err()
}

// readBack reads a written entry as ReadAll returns it, for the engine to
// record what the directory keeps.
func (c *Connector) readBack(ctx context.Context, e entries, dn string, w connector.Write) (connector.WriteResult, error) {
	id, fields := w.ID, w.Fields
	res, err := c.conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", e.attributes(nil), nil))
	if err != nil {
		return connector.WriteResult{ID: id}, c.endpointError("reading back "+dn, err)
	}
	if len(res.Entries) != 1 {
		return connector.WriteResult{ID: id}, connector.NewItemError(id, connector.ErrNotFound)
	}
	item, err := e.item(res.Entries[0], slices.Collect(maps.Keys(fields)))
	if err != nil {
		return connector.WriteResult{ID: id}, connector.NewItemError(id, err)
	}
	return connector.WriteResult{ID: item.ID, ModTime: item.ModTime, Stored: item.Fields}, ctx.Err()
}

// itemResults are the server's answers that concern one entry: its data
// breaks the schema or a constraint, its name is taken, it may not be
// touched. Any other failure is the directory's.
var itemResults = []uint16{
	goldap.LDAPResultConstraintViolation, goldap.LDAPResultAttributeOrValueExists, goldap.LDAPResultInvalidAttributeSyntax,
	goldap.LDAPResultNamingViolation, goldap.LDAPResultObjectClassViolation, goldap.LDAPResultNotAllowedOnNonLeaf,
	goldap.LDAPResultNotAllowedOnRDN, goldap.LDAPResultEntryAlreadyExists, goldap.LDAPResultObjectClassModsProhibited,
	goldap.LDAPResultInvalidDNSyntax, goldap.LDAPResultInsufficientAccessRights, goldap.LDAPResultUnwillingToPerform,
	goldap.LDAPResultInappropriateMatching,
}

// classify tells an entry's own failure from the policy's (an attribute the
// schema does not have) and the directory's.
func (c *Connector) classify(id, doing string, err error) error {
	switch {
	case goldap.IsErrorAnyOf(err, itemResults...):
		return connector.NewItemError(id, fmt.Errorf("%s: %w", doing, err))
	case goldap.IsErrorWithCode(err, goldap.LDAPResultUndefinedAttributeType):
		return connector.InvalidConfig(fmt.Errorf("%s: the directory's schema has no such attribute; check the field mappings: %w", doing, err))
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		return connector.NewItemError(id, connector.ErrNotFound)
	}
	return c.endpointError(doing, err)
}
