// Package dav is the connector for a person's address books (carddav, RFC 6352) and calendars
// and task lists (caldav, RFC 4791) on a WebDAV server: iCloud, Nextcloud, Fastmail, Radicale,
// SOGo, Exchange through a gateway. One package serves both registered names; Config.Protocol
// says which.
//
// A user's collection is found from the user's identity: at an explicit path
// ("/dav/{email}/contacts/"), or in the user's home set (addressbook-home-set or
// calendar-home-set of the user's principal, itself "/{email}/" or the account's
// current-user-principal), as the collection with a display name or, alone of its kind, as the
// only one. Each entity is one collection kind: contacts (vCards), events (VEVENT) or tasks
// (VTODO). Identity values are one path segment each: one with a slash, or . or .., is refused.
//
// Fields are properties of the vCard, or of the iCalendar object's main component (the event
// without RECURRENCE-ID, whose exceptions travel with it as one item):
//
//	FN, ORG, TEL, NOTE, SUMMARY, RRULE    the property (the preferred one, else the first)
//	EMAIL;TYPE=work, TEL;TYPE=cell        the one with that parameter value (TYPE=work,voice matches)
//	UID                                   the key: the item's identity across systems
//	REV, LAST-MODIFIED                    the modification time (modifiedField)
//
// Names are case-insensitive. Values are text as the property holds it, escapes undone:
// structured values (N, ADR, ORG) keep their components apart with ";" (ORG:Example;Sales).
// Date-times of iCalendar (DTSTART, DTEND, DUE, ...) are times, in UTC; a date (an all-day
// event) is its text, 2024-03-01. Written, a time keeps the property's TZID when it has one, so
// a weekly meeting stays at 9:00 across daylight saving time. An item's ID is its UID; a create
// writes the UID mapped to UID (so a meeting keeps one UID everywhere), or a new one.
//
// Updates read the object as it is now, change only the mapped properties and write it back:
// properties that are not mapped (photos, other addresses, alarms, attendees, the exceptions of
// a recurring event) are kept. Every write is conditional: a create with If-None-Match: *, an
// update or delete with If-Match and the ETag this cycle read, so an edit made on the server
// meanwhile fails that item (412) instead of being overwritten, and the next cycle sees it. A
// vCard or iCalendar object that does not parse (go-vcard skips a line it cannot read, so the
// connector checks every line first) fails its item and is never written.
//
// Incremental cycles use the collection's sync token (RFC 6578 sync-collection): changes and
// deletions since the last cycle. A deleted object is known by its path only: its ID is the UID
// read for that path in this cycle or, as chainsync, Apple's and most clients name objects
// <UID>.vcf or <UID>.ics, the name less its extension; a deletion of an object named otherwise
// waits for a Complete cycle, as it does when the server refuses an old token.
//
// Every create is provable after a crash (the Origin capability): the engine's origin token goes
// into an X-CHAINSYNC-ORIGIN property of the object, in the same PUT, and comes back as
// Item.Origin. Origin: None leaves it out; the policy then needs matchOn.
package dav

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// MaxBatch bounds one Write call. Each write is its own request, so the bound only makes the
// engine record progress often.
const MaxBatch = 50

// multigetSize is how many objects one multiget asks for.
const multigetSize = 100

// Connector reads and writes the objects of one user's collections on one server.
type Connector struct {
	cfg    Config
	client *client
	card   *carddav.Client
	cal    *caldav.Client
	// principal is the account's current-user-principal, when the server names one.
	principal string

	mu sync.Mutex
	// collections caches the path of each entity's collection per user.
	collections map[string]string
	// objects holds what this cycle knows of each collection's objects, by UID.
	objects map[string]map[string]objectRef
	// indexed marks the collections listed whole, so that a UID not found is not there.
	indexed map[string]bool
}

type objectRef struct{ path, etag string }

var (
	_ connector.Connector    = (*Connector)(nil)
	_ connector.ChangeReader = (*Connector)(nil)
)

// New validates cfg and asks the server for the account's principal, so that a server that cannot
// be reached or refuses the credentials fails the cycle before anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := parseBase(cfg.URL) // Validate checked it
	cl := &client{http: newHTTPClient(cfg.requestTimeout()), base: base, bearer: cfg.BearerToken, username: cfg.Username, password: cfg.Password}
	c := &Connector{cfg: cfg, client: cl, collections: map[string]string{}, objects: map[string]map[string]objectRef{}, indexed: map[string]bool{}}
	var err error
	if c.card, err = carddav.NewClient(cl, cfg.URL); err != nil {
		return nil, connector.InvalidConfig(fmt.Errorf("%s: %w", cfg.field("url"), err))
	}
	if c.cal, err = caldav.NewClient(cl, cfg.URL); err != nil {
		return nil, connector.InvalidConfig(fmt.Errorf("%s: %w", cfg.field("url"), err))
	}
	c.principal, err = cl.currentUserPrincipal(ctx, base.Path)
	switch s := statusOf(err); {
	case err == nil:
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return nil, c.endpointError(err)
	case s == 0:
		return nil, fmt.Errorf("%s: the server cannot be reached: %w", cfg.field("url"), err)
	case cfg.Principal == "":
		return nil, connector.InvalidConfig(fmt.Errorf("%s: the server names no current-user-principal there, and %s is not set: %w",
			cfg.field("url"), cfg.field("principal"), err))
	}
	return c, nil
}

// endpointError says which field of the policy to look at for the errors a person fixes there.
func (c *Connector) endpointError(err error) error {
	switch statusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s: the server refused the credentials: %w", c.cfg.credentialsField(), err)
	}
	return err
}

// Capabilities: origins live in X-CHAINSYNC-ORIGIN; REV or LAST-MODIFIED is the modification time;
// sync tokens make change reads.
func (c *Connector) Capabilities() connector.Capabilities {
	modTime := false
	for _, coll := range c.cfg.Entities {
		modTime = modTime || coll.ModifiedField != ""
	}
	return connector.Capabilities{Incremental: true, ModTime: modTime, Origin: c.cfg.origin() == OriginProperty, MaxBatch: MaxBatch}
}

// Close releases idle connections.
func (c *Connector) Close() error {
	c.client.http.CloseIdleConnections()
	return nil
}

// entity is what a read or write of one entity for one user works on.
type entity struct {
	coll collection.Collection
	dc   Collection
	// path is the user's collection.
	path string
}

func (c *Connector) entity(ctx context.Context, name string, scope connector.Scope) (entity, error) {
	coll, ok := c.cfg.Entities[name]
	if !ok {
		return entity{}, connector.InvalidConfig(fmt.Errorf("%s: no collection is configured", c.cfg.entityPath(name)))
	}
	dc, _ := c.cfg.collection(coll.Name) // ValidateSpec checked it
	key := name + "\x00" + scope.Key()
	c.mu.Lock()
	p, ok := c.collections[key]
	c.mu.Unlock()
	if !ok {
		var err error
		if p, err = c.find(ctx, dc, scope); err != nil {
			return entity{}, err
		}
		c.mu.Lock()
		c.collections[key] = p
		c.mu.Unlock()
	}
	return entity{coll: coll, dc: dc, path: p}, nil
}

// find resolves the user's collection: its path, or discovery from the user's principal.
func (c *Connector) find(ctx context.Context, dc Collection, scope connector.Scope) (string, error) {
	field := fmt.Sprintf("%s[%s]", c.cfg.field("collections"), dc.Name)
	if dc.Path != "" {
		p, err := expand(dc.Path, scope)
		if err != nil {
			return "", connector.InvalidConfig(fmt.Errorf("%s.path: %w", field, err))
		}
		return dirPath(p), nil
	}
	principal := c.principal
	if c.cfg.Principal != "" {
		p, err := expand(c.cfg.Principal, scope)
		if err != nil {
			return "", connector.InvalidConfig(fmt.Errorf("%s: %w", c.cfg.field("principal"), err))
		}
		principal = p
	}
	type found struct{ path, name string }
	var home string
	var all []found
	var err error
	kind := "address book"
	if c.cfg.Protocol == CardDAV {
		if home, err = c.card.FindAddressBookHomeSet(ctx, principal); err == nil {
			var books []carddav.AddressBook
			books, err = c.card.FindAddressBooks(ctx, home)
			for _, b := range books {
				all = append(all, found{b.Path, b.Name})
			}
		}
	} else {
		kind = map[string]string{Events: "calendar", Tasks: "task list"}[dc.component()]
		if home, err = c.cal.FindCalendarHomeSet(ctx, principal); err == nil {
			var cals []caldav.Calendar
			cals, err = c.cal.FindCalendars(ctx, home)
			for _, cal := range cals {
				if len(cal.SupportedComponentSet) == 0 || slices.Contains(cal.SupportedComponentSet, dc.component()) {
					all = append(all, found{cal.Path, cal.Name})
				}
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("finding the %ss of the principal %s: %w", kind, principal, err)
	}
	var names []string
	for _, f := range all {
		names = append(names, fmt.Sprintf("%q (%s)", f.name, f.path))
		if dc.DisplayName != "" && (f.name == dc.DisplayName || path.Base(strings.TrimSuffix(f.path, "/")) == dc.DisplayName) {
			return dirPath(f.path), nil
		}
	}
	switch {
	case dc.DisplayName != "":
		return "", fmt.Errorf("%s.displayName: the home set %s of the principal %s holds no %s named %q (it holds %s)",
			field, home, principal, kind, dc.DisplayName, orNone(names))
	case len(all) == 1:
		return dirPath(all[0].path), nil
	case len(all) == 0:
		return "", fmt.Errorf("%s: the home set %s of the principal %s holds no %s", field, home, principal, kind)
	}
	return "", connector.InvalidConfig(fmt.Errorf("%s: the home set %s of the principal %s holds several %ss (%s); pick one with displayName",
		field, home, principal, kind, strings.Join(names, ", ")))
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func dirPath(p string) string {
	if !strings.HasSuffix(p, "/") {
		return p + "/"
	}
	return p
}

func (c *Connector) checkFields(name string, fields []string) error {
	for _, f := range fields {
		if _, err := parseProp(f); err != nil {
			return connector.InvalidConfig(fmt.Errorf("%s: field %w", c.cfg.entityPath(name), err))
		}
	}
	return nil
}

// ReadAll lists the user's collection and reads its objects a multiget at a time.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		e, err := c.entity(ctx, req.Entity, req.Scope)
		if err == nil {
			err = c.checkFields(req.Entity, req.Fields)
		}
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		members, err := c.client.list(ctx, e.path)
		if err != nil {
			yield(connector.Item{}, c.readError(e, err))
			return
		}
		paths := make([]string, len(members))
		for i, m := range members {
			paths[i] = m.path
		}
		c.readObjects(ctx, e, req.Fields, paths, true, yield)
	}
}

func (c *Connector) readError(e entity, err error) error {
	if statusOf(err) == http.StatusNotFound {
		return fmt.Errorf("the collection %s is not on the server: %w", e.path, err)
	}
	return c.endpointError(err)
}

// readObjects reads the objects at paths and yields them; whole says the paths are the whole
// collection, so that a UID missing from it is known not to be there. It reports whether the
// caller should go on.
func (c *Connector) readObjects(ctx context.Context, e entity, fields []string, paths []string, whole bool,
	yield func(connector.Item, error) bool) bool {
	seen := map[string]string{}
	for batch := range slices.Chunk(paths, multigetSize) {
		got, err := c.client.multiget(ctx, c.cfg.Protocol, e.path, batch)
		if err != nil {
			yield(connector.Item{}, c.readError(e, err))
			return false
		}
		for _, m := range got {
			if m.status == http.StatusNotFound || m.data == nil {
				continue // deleted since it was listed
			}
			obj, err := c.parse([]byte(*m.data), e)
			if err != nil {
				if !yield(connector.Item{}, connector.NewItemError(m.path, fmt.Errorf("%s: %w; it is left as it is", m.path, err))) {
					return false
				}
				continue
			}
			uid := obj.uid()
			if other, dup := seen[uid]; dup {
				if !yield(connector.Item{}, connector.NewItemError(uid, fmt.Errorf("%s and %s hold the same UID; the second is left out", other, m.path))) {
					return false
				}
				continue
			}
			seen[uid] = m.path
			c.remember(e.path, uid, objectRef{m.path, m.etag})
			if !yield(c.item(e, obj, fields), nil) {
				return false
			}
		}
	}
	if whole {
		c.mu.Lock()
		c.indexed[e.path] = true
		c.mu.Unlock()
	}
	return true
}

func (c *Connector) parse(data []byte, e entity) (object, error) {
	var obj object
	var err error
	if c.cfg.Protocol == CardDAV {
		obj, err = parseVCard(data)
	} else {
		obj, err = parseICal(data, e.dc.component())
	}
	if err != nil {
		return nil, err
	}
	if obj.uid() == "" {
		return nil, errors.New("it has no UID")
	}
	return obj, nil
}

func (c *Connector) remember(collection, uid string, ref objectRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	objs := c.objects[collection]
	if objs == nil {
		objs = map[string]objectRef{}
		c.objects[collection] = objs
	}
	if ref.path == "" {
		delete(objs, uid)
	} else {
		objs[uid] = ref
	}
}

func (c *Connector) known(collection, uid string) (objectRef, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref, ok := c.objects[collection][uid]
	return ref, ok, c.indexed[collection]
}

// item gives the fields asked for, every property when fields is nil.
func (c *Connector) item(e entity, obj object, fields []string) connector.Item {
	it := connector.Item{ID: obj.uid(), Fields: map[string]connector.Value{}}
	if fields == nil {
		it.Fields = obj.all()
	}
	for _, f := range fields {
		p, _ := parseProp(f) // checked
		if v, ok := obj.get(p); ok {
			it.Fields[f] = v
		}
	}
	it.Fields[UID] = connector.String(obj.uid())
	if mf := e.coll.ModifiedField; mf != "" {
		if v, ok := obj.get(propPath{name: mf}); ok && v.Kind == connector.KindTime {
			it.ModTime, _ = v.AsTime()
		}
	}
	if c.cfg.origin() == OriginProperty {
		if v, ok := obj.get(propPath{name: OriginPropertyName}); ok {
			it.Origin = v.Text
		}
	}
	return it
}

// CurrentWatermark is the collection's sync token now; "" when the server keeps none.
func (c *Connector) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	e, err := c.entity(ctx, req.Entity, req.Scope)
	if err != nil {
		return "", err
	}
	token, err := c.client.syncToken(ctx, e.path)
	if err != nil {
		return "", c.readError(e, err)
	}
	return connector.Watermark(token), nil
}

// ReadChanges reads what changed since the token: the objects added or changed, and tombstones
// for those deleted. Without a token, or with one the server refuses, it reads the whole
// collection, and deletions wait for a Complete cycle.
func (c *Connector) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	if since == "" {
		return c.ReadAll(ctx, req)
	}
	return func(yield func(connector.Item, error) bool) {
		e, err := c.entity(ctx, req.Entity, req.Scope)
		if err == nil {
			err = c.checkFields(req.Entity, req.Fields)
		}
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		changed, deleted, _, err := c.client.syncCollection(ctx, e.path, string(since))
		if errors.Is(err, errTokenRefused) {
			for it, err := range c.ReadAll(ctx, req) {
				if !yield(it, err) {
					return
				}
			}
			return
		}
		if err != nil {
			yield(connector.Item{}, c.readError(e, err))
			return
		}
		paths := make([]string, len(changed))
		for i, m := range changed {
			paths[i] = m.path
		}
		if !c.readObjects(ctx, e, req.Fields, paths, false, yield) {
			return
		}
		for _, p := range deleted {
			if !yield(connector.Item{ID: c.uidOf(e.path, p), Deleted: true}, nil) {
				return
			}
		}
	}
}

// uidOf is the UID of the object that was at p: the one read there, else the name less its
// extension, as objects are usually named.
func (c *Connector) uidOf(collection, p string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, ref := range c.objects[collection] {
		if ref.path == p {
			delete(c.objects[collection], uid)
			return uid
		}
	}
	name := path.Base(p)
	return strings.TrimSuffix(name, path.Ext(name))
}

// Write applies the batch in order, one request per write.
func (c *Connector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	e, err := c.entity(ctx, req.Entity, req.Scope)
	if err != nil {
		return nil, err
	}
	for _, w := range req.Writes {
		if err := c.checkFields(req.Entity, slices.Collect(maps.Keys(w.Fields))); err != nil {
			return nil, err
		}
		if _, ok := w.Fields[OriginPropertyName]; ok && c.cfg.origin() == OriginProperty {
			return nil, connector.InvalidConfig(fmt.Errorf("%s: field %s carries chainsync's origin token (%s is Property); map another property, or set it to None and use matchOn",
				c.cfg.entityPath(req.Entity), OriginPropertyName, c.cfg.field("origin")))
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
			if res.ID == "" {
				res.ID = w.ID
			}
			res = connector.WriteResult{ID: res.ID, Err: err}
		}
		results = append(results, res)
	}
	return results, nil
}

// itemError turns a refusal that concerns this object alone into an item error with the
// server's detail; anything else stays an endpoint failure.
func itemError(id string, err error) error {
	switch s := statusOf(err); {
	case s == http.StatusNotFound:
		return connector.NewItemError(id, fmt.Errorf("%w: %v", connector.ErrNotFound, err))
	case s == http.StatusPreconditionFailed:
		return connector.NewItemError(id, fmt.Errorf("the object changed on the server since this cycle read it; the next cycle reads it again: %w", err))
	case s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusForbidden && s != http.StatusTooManyRequests:
		return connector.NewItemError(id, err)
	}
	return err
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.@+]{0,200}$`)

// objectPath names a new object after its UID, as clients do, or after the UID's hash when the
// UID is no safe file name.
func (c *Connector) objectPath(e entity, uid string) string {
	ext := ".vcf"
	if c.cfg.Protocol == CalDAV {
		ext = ".ics"
	}
	name := uid
	if !plainName.MatchString(uid) {
		sum := sha256.Sum256([]byte(uid))
		name = hex.EncodeToString(sum[:16])
	}
	return e.path + name + ext
}

func newUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// apply writes the fields into obj, with the modification time, DTSTAMP and origin chainsync
// keeps; the fields come last, so a mapped REV or LAST-MODIFIED wins.
func (c *Connector) apply(obj object, w connector.Write, now time.Time) error {
	if err := obj.set(propPath{name: modifiedProperty(c.cfg.Protocol)}, connector.Time(now)); err != nil {
		return err
	}
	if c.cfg.Protocol == CalDAV {
		if err := obj.set(propPath{name: "DTSTAMP"}, connector.Time(now)); err != nil {
			return err
		}
	}
	if c.cfg.origin() == OriginProperty && w.Origin != "" {
		if err := obj.set(propPath{name: OriginPropertyName}, connector.String(w.Origin)); err != nil {
			return err
		}
	}
	for _, f := range slices.Sorted(maps.Keys(w.Fields)) {
		p, _ := parseProp(f)
		if p.name == UID {
			if v := w.Fields[f]; !v.IsNull() && v.Text != obj.uid() {
				return fmt.Errorf("the UID is the item's identity and cannot change (%s to %s)", obj.uid(), v.Text)
			}
			continue
		}
		if err := obj.set(p, w.Fields[f]); err != nil {
			return err
		}
	}
	return nil
}

// result is what a write stored: the written fields as a read gives them back.
func (c *Connector) result(e entity, obj object, written map[string]connector.Value, now time.Time) connector.WriteResult {
	it := c.item(e, obj, slices.Collect(maps.Keys(written)))
	for f := range written {
		if _, ok := it.Fields[f]; !ok {
			it.Fields[f] = connector.Null()
		}
	}
	return connector.WriteResult{ID: obj.uid(), ModTime: now, Stored: it.Fields}
}

func (c *Connector) now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func (c *Connector) create(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	uid := newUID()
	for f, v := range w.Fields {
		if strings.EqualFold(f, UID) && !v.IsNull() && v.Text != "" {
			uid = v.Text
		}
	}
	var obj object
	if c.cfg.Protocol == CardDAV {
		obj = newVCard(uid)
	} else {
		obj = newICal(uid, e.dc.component())
	}
	now := c.now()
	if err := c.apply(obj, w, now); err != nil {
		return connector.WriteResult{}, connector.NewItemError("", err)
	}
	if _, ok := obj.get(propPath{name: "DTSTART"}); c.cfg.Protocol == CalDAV && e.dc.component() == Events && !ok {
		return connector.WriteResult{}, connector.NewItemError("", errors.New("an event needs a start: map a field to DTSTART (a time, or a date for an all-day event)"))
	}
	body, err := obj.encode()
	if err != nil {
		return connector.WriteResult{}, connector.NewItemError("", fmt.Errorf("encoding the new object: %w", err))
	}
	p := c.objectPath(e, uid)
	etag, err := c.client.put(ctx, c.cfg.Protocol, p, body, "", true)
	if statusOf(err) == http.StatusPreconditionFailed {
		return connector.WriteResult{}, connector.NewItemError("", fmt.Errorf("an object is at %s already (UID %s): %w", p, uid, err))
	}
	if err != nil {
		return connector.WriteResult{}, itemError("", err)
	}
	c.remember(e.path, uid, objectRef{p, etag})
	return c.result(e, obj, w.Fields, now), nil
}

// locate finds the object with a UID: read this cycle, named after it, or in a listing of the
// whole collection.
func (c *Connector) locate(ctx context.Context, e entity, uid string) (objectRef, error) {
	ref, ok, indexed := c.known(e.path, uid)
	if ok {
		return ref, nil
	}
	if !indexed {
		p := c.objectPath(e, uid)
		body, etag, err := c.client.get(ctx, p)
		if err != nil && statusOf(err) != http.StatusNotFound {
			return objectRef{}, itemError(uid, err)
		}
		if err == nil {
			if obj, perr := c.parse(body, e); perr == nil && obj.uid() == uid {
				return objectRef{p, etag}, nil
			}
		}
		if err := c.index(ctx, e); err != nil {
			return objectRef{}, err
		}
		if ref, ok, _ := c.known(e.path, uid); ok {
			return ref, nil
		}
	}
	return objectRef{}, connector.NewItemError(uid, fmt.Errorf("%w: no object in %s has the UID %s", connector.ErrNotFound, e.path, uid))
}

// index lists the whole collection and reads its objects' UIDs.
func (c *Connector) index(ctx context.Context, e entity) error {
	members, err := c.client.list(ctx, e.path)
	if err != nil {
		return c.readError(e, err)
	}
	paths := make([]string, len(members))
	for i, m := range members {
		paths[i] = m.path
	}
	var failed error
	c.readObjects(ctx, e, []string{}, paths, true, func(_ connector.Item, err error) bool {
		if connector.IsEndpointFailure(err) {
			failed = err
			return false
		}
		return true
	})
	return failed
}

func (c *Connector) update(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	ref, err := c.locate(ctx, e, w.ID)
	if err != nil {
		return connector.WriteResult{}, err
	}
	body, etag, err := c.client.get(ctx, ref.path)
	if err != nil {
		return connector.WriteResult{}, itemError(w.ID, err)
	}
	if ref.etag != "" && etag != "" && etag != ref.etag {
		return connector.WriteResult{}, connector.NewItemError(w.ID,
			fmt.Errorf("the object changed on the server since this cycle read it (ETag %s, now %s); the next cycle reads it again", ref.etag, etag))
	}
	obj, err := c.parse(body, e)
	if err != nil {
		return connector.WriteResult{}, connector.NewItemError(w.ID, fmt.Errorf("%s: %w; it is left as it is", ref.path, err))
	}
	if obj.uid() != w.ID {
		return connector.WriteResult{}, connector.NewItemError(w.ID, fmt.Errorf("%w: %s now holds the UID %s", connector.ErrNotFound, ref.path, obj.uid()))
	}
	now := c.now()
	if err := c.apply(obj, w, now); err != nil {
		return connector.WriteResult{}, connector.NewItemError(w.ID, err)
	}
	out, err := obj.encode()
	if err != nil {
		return connector.WriteResult{}, connector.NewItemError(w.ID, fmt.Errorf("encoding %s: %w", ref.path, err))
	}
	newETag, err := c.client.put(ctx, c.cfg.Protocol, ref.path, out, cmpOr(etag, ref.etag), false)
	if err != nil {
		return connector.WriteResult{}, itemError(w.ID, err)
	}
	c.remember(e.path, w.ID, objectRef{ref.path, newETag})
	return c.result(e, obj, w.Fields, now), nil
}

func (c *Connector) delete(ctx context.Context, e entity, w connector.Write) (connector.WriteResult, error) {
	ref, err := c.locate(ctx, e, w.ID)
	if err != nil {
		return connector.WriteResult{ID: w.ID}, err
	}
	if err := c.client.delete(ctx, ref.path, ref.etag); err != nil {
		return connector.WriteResult{ID: w.ID}, itemError(w.ID, err)
	}
	c.remember(e.path, w.ID, objectRef{})
	return connector.WriteResult{ID: w.ID}, nil
}

func cmpOr(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}
