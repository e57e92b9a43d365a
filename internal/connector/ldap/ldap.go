// Package ldap is the connector for entries of an LDAP directory (OpenLDAP,
// Active Directory, FreeIPA), with github.com/go-ldap/ldap/v3.
//
// Each collection is a class of entries under the base DN: those carrying
// all of its object classes, and matching the user's scope: the
// collection's scope fields (attribute = identity value) and the class
// filter, with the identity values escaped per RFC 4515 so that a value
// holding *()\ or NUL is matched literally and cannot widen the search.
// Searches page their results (RFC 2696), so a directory's size limit does
// not cut a large read short, and one page at a time is held in memory.
//
// An item is an entry; its fields are attributes, and the field "dn" its
// distinguished name. The key is one attribute, entryUUID by default, which
// the server assigns and keeps across renames, so a renamed entry is the
// same item. An attribute with several values reads as a JSON array of its
// values, sorted (LDAP values are a set), and such an array is written back
// as several values; a value that is not UTF-8 reads as bytes (base64).
//
// Binary attributes (see binary.go) are base64 text on chainsync's side and
// octets in the directory, whatever the octets hold: those of a binary
// syntax in the directory's schema (jpegPhoto, userCertificate, objectGUID,
// any octet string, userPassword included), those named with the ;binary
// option, and those a collection lists in BinaryAttributes. One value reads
// as bytes, several as a sorted JSON array of their base64; a write takes
// either form, and a text that is not base64 fails its item. A binary key
// (objectGUID) makes the item's ID its base64.
//
// Writes: a create adds an entry named by the class's RDN attribute under
// its parent DN; an update replaces only the attributes it is given (a null
// removes the attribute) and renames the entry (modrdn) first when the RDN
// attribute's value changes; a delete deletes the entry. What the server
// refuses for one entry (a schema violation, a duplicate name, a value out
// of syntax) fails that item with the server's message; an attribute type
// the schema does not have, or a parent entry that does not exist, is the
// policy's fault (connector.ErrInvalidConfig).
//
// With a modifiedField (modifyTimestamp, or an attribute of generalized time
// syntax that writes stamp) the connector is incremental: the watermark is
// the newest modification time among the user's entries, and a change read
// takes the entries modified at or after it (and those without one), so
// entries sharing the boundary second are read again rather than missed.
// Where the directory offers content synchronisation (RFC 4533) and the key
// is entryUUID, change reads come from it instead, deletions included (see
// sync.go); otherwise they cannot see deletions, and the engine finds them
// in the Complete cycles it schedules.
//
// Creates are provable after a crash (the Origin capability) when every
// collection names an originAttribute: the engine's origin token is written
// in the same add as the entry, the one atomic step LDAP offers. No
// attribute of the standard schemas may hold it without being the user's
// data, and a bookkeeping entry beside it (as chainsync_writes is for SQL)
// cannot be written atomically with the entry on directories without LDAP
// transactions (RFC 5805), so it takes a schema addition: schema/chainsync.ldif
// defines chainsyncOrigin and the auxiliary class chainsyncSynced that allows
// it. Without it the engine settles a create cut off by a crash with the
// entity's matchOn fields, which an ldap target then needs.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// MaxBatch bounds one Write call: each write is its own request, so the
// bound only keeps a cycle's progress reported in steps.
const MaxBatch = 500

// operational attributes are kept by the server: read, never written.
var operational = map[string]bool{"entryuuid": true, "modifytimestamp": true, "createtimestamp": true,
	"entrycsn": true, "creatorsname": true, "modifiersname": true, "objectguid": true, "whenchanged": true, "whencreated": true}

func isOperational(attr string) bool { return operational[strings.ToLower(attr)] }

// Connector reads and writes the entries of one directory.
type Connector struct {
	cfg Config
	// host is the server's host:port, as errors name it.
	host    string
	conn    *goldap.Conn
	entries map[string]entries
	caps    connector.Capabilities
	// contentSync is true when the directory offers RFC 4533 (sync.go).
	contentSync bool
	// now stamps a modifiedField that is not operational; tests replace it.
	now func() time.Time
}

// entries is one entity's collection as the connector uses it.
type entries struct {
	path  string
	coll  collection.Collection
	class Class
	key   string
	// schemaBinary names, in lower case, the directory's attributes of a binary syntax.
	schemaBinary map[string]bool
}

var (
	_ connector.Connector    = (*Connector)(nil)
	_ connector.ChangeReader = (*Connector)(nil)
)

// New validates cfg, connects and binds, and checks that the base DN and
// every class's parent DN exist, so a misconfigured policy fails before
// anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, host, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, host: host, conn: conn, entries: map[string]entries{}, now: time.Now,
		caps: connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}}
	if err := c.inspect(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// dial connects (through TLS for ldaps:// or with StartTLS) and binds; it
// returns the connection and the host:port it reached.
func dial(ctx context.Context, cfg Config) (*goldap.Conn, string, error) {
	u, _ := url.Parse(cfg.URL)
	host := u.Host
	if u.Port() == "" {
		port := "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	tlsConfig := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if cfg.CAPEM != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(cfg.CAPEM))
		tlsConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: cfg.timeout()}
	if deadline, ok := ctx.Deadline(); ok {
		dialer.Deadline = deadline
	}
	conn, err := goldap.DialURL(u.Scheme+"://"+host, goldap.DialWithDialer(dialer), goldap.DialWithTLSConfig(tlsConfig))
	if err != nil {
		return nil, "", fmt.Errorf("%s: cannot reach %s: %w", cfg.field("url"), host, unwrapNetwork(err))
	}
	conn.SetTimeout(cfg.timeout())
	if cfg.StartTLS {
		if err := conn.StartTLS(tlsConfig); err != nil {
			conn.Close()
			return nil, "", fmt.Errorf("%s: StartTLS with %s: %w", cfg.field("startTLS"), host, unwrapNetwork(err))
		}
	}
	if cfg.BindDN != "" {
		if err := conn.Bind(cfg.BindDN, cfg.BindPassword); err != nil {
			conn.Close()
			if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
				return nil, "", fmt.Errorf("%s: %s refused the bind DN %q and its password: %w", cfg.field("bindSecretRef"), host, cfg.BindDN, err)
			}
			return nil, "", fmt.Errorf("binding to %s as %q: %w", host, cfg.BindDN, unwrapNetwork(err))
		}
	}
	return conn, host, nil
}

// unwrapNetwork drops go-ldap's "LDAP Result Code 200 "Network Error"" prefix
// from a network failure, whose own words say it better.
func unwrapNetwork(err error) error {
	var lerr *goldap.Error
	if errors.As(err, &lerr) && lerr.ResultCode == goldap.ErrorNetwork && lerr.Err != nil {
		return lerr.Err
	}
	return err
}

// Close closes the connection.
func (c *Connector) Close() error { return c.conn.Close() }

func (c *Connector) inspect() error {
	var err error
	if c.contentSync, err = c.offersContentSync(); err != nil {
		return err
	}
	schemaBinary, err := c.readBinarySchema()
	if err != nil {
		return err
	}
	var errs []error
	if err := c.mustExist(c.cfg.BaseDN, c.cfg.field("baseDN")); err != nil {
		if !errors.Is(err, connector.ErrInvalidConfig) {
			return err
		}
		errs = append(errs, err)
	}
	for name, coll := range c.cfg.Entities {
		class, i, _ := c.cfg.class(coll.Name)
		coll = withDefaultKey(coll)
		c.entries[name] = entries{path: c.cfg.entityPath(name), coll: coll, class: class, key: coll.KeyFields[0], schemaBinary: schemaBinary}
		if class.ParentDN != "" {
			if err := c.mustExist(class.ParentDN, fmt.Sprintf("%s[%d].parentDN", c.cfg.field("collections"), i)); err != nil {
				if !errors.Is(err, connector.ErrInvalidConfig) {
					return err
				}
				errs = append(errs, err)
			}
		}
		c.caps.Origin = c.caps.Origin && class.OriginAttribute != ""
		c.caps.Incremental = c.caps.Incremental && coll.ModifiedField != ""
		c.caps.ModTime = c.caps.Incremental
	}
	return errors.Join(errs...)
}

// mustExist checks that an entry exists.
func (c *Connector) mustExist(dn, field string) error {
	_, err := c.conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return connector.InvalidConfig(fmt.Errorf("%s: entry %q does not exist", field, dn))
	}
	if err != nil {
		return c.endpointError("reading "+dn, err)
	}
	return nil
}

// endpointError words a failure of the directory itself. A server gone while a request was on
// the wire is not always a network error code: the request gets the reader's "unable to read
// LDAP response packet: EOF", with the connection closing.
func (c *Connector) endpointError(doing string, err error) error {
	if goldap.IsErrorWithCode(err, goldap.ErrorNetwork) || c.conn.IsClosing() {
		return fmt.Errorf("%s: cannot reach %s: %w", doing, c.host, unwrapNetwork(err))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Capabilities: incremental with modification times when every entity has a
// modifiedField; Origin when every collection has an originAttribute.
func (c *Connector) Capabilities() connector.Capabilities { return c.caps }

func (c *Connector) collection(entity string) (entries, error) {
	e, ok := c.entries[entity]
	if !ok {
		return entries{}, fmt.Errorf("entity %q is not configured for the %s ldap endpoint", entity, c.cfg.side())
	}
	return e, nil
}

// filter selects the user's entries of a collection, with more conditions
// (already filters) and-ed in.
func (e entries) filter(s connector.Scope, more ...string) (string, error) {
	var b strings.Builder
	b.WriteString("(&")
	for _, oc := range e.class.ObjectClasses {
		fmt.Fprintf(&b, "(objectClass=%s)", goldap.EscapeFilter(oc))
	}
	scope, err := e.coll.ScopeValues(s)
	if err != nil {
		return "", fmt.Errorf("%s.scope: %w", e.path, err)
	}
	for _, m := range e.coll.Scope {
		fmt.Fprintf(&b, "(%s=%s)", m.Field, goldap.EscapeFilter(scope[m.Field]))
	}
	if e.class.Filter != "" {
		f, err := bindFilter(e.class.Filter, s, false)
		if err != nil {
			return "", fmt.Errorf("%s.filter: %w", e.path, err)
		}
		b.WriteString(f)
	}
	for _, m := range more {
		b.WriteString(m)
	}
	b.WriteString(")")
	return b.String(), nil
}

// attributes lists what a read asks the server for: the requested fields
// (all user attributes when nil) and the key, modification and scope
// attributes, which are operational or may not be among them.
func (e entries) attributes(fields []string) []string {
	attrs := []string{e.key, e.class.RDNAttribute}
	if e.class.OriginAttribute != "" {
		attrs = append(attrs, e.class.OriginAttribute)
	}
	attrs = append(attrs, e.coll.Fields()...)
	if fields == nil {
		attrs = append(attrs, "*")
	}
	for _, f := range fields {
		if f != DNField {
			attrs = append(attrs, f)
		}
	}
	slices.Sort(attrs)
	return slices.DeleteFunc(slices.Compact(attrs), func(a string) bool { return a == DNField })
}

// ReadAll streams the user's entries of the entity's collection.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return c.read(ctx, req, "")
}

// read streams the user's entries matching extra (a filter, or "").
func (c *Connector) read(ctx context.Context, req connector.ReadRequest, extra string) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		e, err := c.collection(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		filter, err := e.filter(req.Scope, extra)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		for entry, err := range c.search(ctx, filter, e.attributes(req.Fields)) {
			if err != nil {
				yield(connector.Item{}, err)
				return
			}
			item, err := e.item(entry, req.Fields)
			if err != nil {
				err = connector.NewItemError(item.ID, err)
			}
			if !yield(item, err) {
				return
			}
		}
	}
}

// search streams the entries under the base DN matching filter, one page
// at a time.
func (c *Connector) search(ctx context.Context, filter string, attrs []string) iter.Seq2[*goldap.Entry, error] {
	return func(yield func(*goldap.Entry, error) bool) {
		paging := goldap.NewControlPaging(c.cfg.pageSize())
		req := goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, []goldap.Control{paging})
		for {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			res, err := c.conn.Search(req)
			if err != nil {
				if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
					err = connector.InvalidConfig(fmt.Errorf("%s: entry %q does not exist", c.cfg.field("baseDN"), c.cfg.BaseDN))
				}
				yield(nil, c.endpointError("searching "+c.cfg.BaseDN, err))
				return
			}
			for _, entry := range res.Entries {
				if !yield(entry, nil) {
					c.abandonPaging(req, paging)
					return
				}
			}
			next, _ := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging)
			if next == nil || len(next.Cookie) == 0 {
				return
			}
			paging.SetCookie(next.Cookie)
		}
	}
}

// abandonPaging tells the server a paged search will not be continued
// (RFC 2696: a page size of zero), so it frees what it holds for it.
func (c *Connector) abandonPaging(req *goldap.SearchRequest, paging *goldap.ControlPaging) {
	paging.PagingSize = 0
	c.conn.Search(req)
}

// item maps an entry to an item, its fields named as the policy names them
// (fields, and the collection's own), whatever case the server answers in.
func (e entries) item(entry *goldap.Entry, fields []string) (connector.Item, error) {
	names := append([]string{e.key, e.coll.ModifiedField, e.class.RDNAttribute}, e.coll.Fields()...)
	names = append(names, fields...)
	item := connector.Item{Fields: make(map[string]connector.Value, len(entry.Attributes)+1)}
	item.Fields[DNField] = connector.String(entry.DN)
	for _, a := range entry.Attributes {
		name := a.Name
		if e.class.OriginAttribute != "" && strings.EqualFold(name, e.class.OriginAttribute) {
			if len(a.Values) > 0 {
				item.Origin = a.Values[0]
			}
			continue
		}
		for _, want := range names {
			if strings.EqualFold(name, want) {
				name = want
				break
			}
		}
		item.Fields[name] = value(a.ByteValues, e.isBinary(a.Name))
	}
	if strings.EqualFold(e.key, DNField) {
		item.ID = entry.DN
	} else {
		item.ID = item.Fields[e.key].Text
		if item.ID == "" {
			return item, fmt.Errorf("entry %q has no %s", entry.DN, e.key)
		}
	}
	if m := e.coll.ModifiedField; m != "" {
		if v, ok := item.Fields[m]; ok {
			t, err := parseGeneralizedTime(v.Text)
			if err != nil {
				return item, fmt.Errorf("entry %q: %s: %w", entry.DN, m, err)
			}
			item.ModTime = t
			item.Fields[m] = connector.Time(t)
		}
	}
	return item, nil
}

// value maps an attribute's values to one Value: a single value as text
// (bytes when it is not UTF-8), several as a sorted JSON array. A binary
// attribute's values are bytes, whatever they hold: one as a bytes Value
// (base64 text), several as a sorted JSON array of their base64.
func value(raw [][]byte, binary bool) connector.Value {
	if binary && len(raw) == 1 {
		return connector.Bytes(raw[0])
	}
	if len(raw) == 1 && !looksLikeList(string(raw[0])) {
		if !utf8.Valid(raw[0]) {
			return connector.Bytes(raw[0])
		}
		return connector.String(string(raw[0]))
	}
	texts := make([]string, len(raw))
	for i, r := range raw {
		texts[i] = string(r)
		if binary {
			texts[i] = base64.StdEncoding.EncodeToString(r)
		}
	}
	slices.Sort(texts)
	b, _ := json.Marshal(texts)
	return connector.String(string(b))
}

// looksLikeList reports whether a text is a JSON array of strings, which
// is how several values read; a single value of that form is written as a
// one-element array so it reads back as itself.
func looksLikeList(s string) bool {
	if !strings.HasPrefix(s, "[") {
		return false
	}
	var list []string
	return json.Unmarshal([]byte(s), &list) == nil
}

// values maps a Value to an attribute's values: a JSON array of strings to
// its elements, bytes to their decoded form, anything else to its text. A
// binary attribute takes base64 text (or bytes): a JSON array of base64
// texts, or one.
func values(v connector.Value, binary bool) ([]string, error) {
	switch {
	case v.IsNull():
		return nil, nil
	case v.Kind == connector.KindBytes:
		b, err := v.AsBytes()
		return []string{string(b)}, err
	case binary:
		texts := []string{v.Text}
		if looksLikeList(v.Text) {
			json.Unmarshal([]byte(v.Text), &texts)
		}
		for i, t := range texts {
			raw, err := decodeBase64(t)
			if err != nil {
				return nil, err
			}
			texts[i] = raw
		}
		return texts, nil
	case v.Kind == connector.KindTime:
		t, err := v.AsTime()
		return []string{formatGeneralizedTime(t)}, err
	case looksLikeList(v.Text):
		var list []string
		json.Unmarshal([]byte(v.Text), &list)
		return list, nil
	}
	return []string{v.Text}, nil
}

// generalized time (RFC 4517): YYYYMMDDHH[MM[SS]][.fraction](Z|+hhmm).
var generalizedTimeLayouts = []string{"20060102150405.999999999Z0700", "20060102150405Z0700", "200601021504Z0700", "2006010215Z0700"}

func parseGeneralizedTime(s string) (time.Time, error) {
	norm := strings.Replace(s, ",", ".", 1) // the fraction may be written with a comma
	for _, layout := range generalizedTimeLayouts {
		if t, err := time.Parse(layout, norm); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a generalized time", s)
}

// formatGeneralizedTime writes a time in UTC, with its fraction of a second
// when it has one.
func formatGeneralizedTime(t time.Time) string {
	return t.UTC().Format("20060102150405.999999999Z")
}
