package ldap

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// DNField is the field holding an entry's distinguished name; a collection
// may name it as its key when its entries have no entryUUID, but a rename
// then changes the item's ID, which looks like a delete and a create.
const DNField = "dn"

// DefaultKey is the key attribute of a collection that names none: OpenLDAP
// (RFC 4530) gives every entry one, and it survives renames.
const DefaultKey = "entryUUID"

// Config configures an ldap endpoint from resolved values: the bind password
// and CA are the contents of the Secret keys, not references.
type Config struct {
	// Side is "source" or "target", for error messages in the policy's
	// terms (target.ldap.url).
	Side string
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection to TLS before binding.
	StartTLS bool
	// CAPEM is the PEM certificate authority the server's certificate is
	// checked against; "" means the system's roots.
	CAPEM string
	// BindDN and BindPassword authenticate the connection (simple bind).
	BindDN, BindPassword string
	// BaseDN is searched for every collection's entries.
	BaseDN string
	// Collections say how each collection's entries are found and created,
	// by the name entities give in their collection field.
	Collections []Class
	// Entities maps entity names to their collections.
	Entities map[string]collection.Collection
	// Timeout bounds connecting and each request; 0 means 30s.
	Timeout time.Duration
	// PageSize is the number of entries asked per page of a search; 0
	// means 500.
	PageSize int
}

// Class is one collection of entries.
type Class struct {
	// Name is what entities[].<side>.collection refers to.
	Name string
	// ObjectClasses select the collection's entries (every one must be
	// present) and are given to the entries the connector creates.
	ObjectClasses []string
	// RDNAttribute names new entries (uid=jdoe,<ParentDN>); when a write
	// changes its value, the entry is renamed.
	RDNAttribute string
	// ParentDN is where new entries are created; "" means BaseDN.
	ParentDN string
	// Filter is an extra LDAP filter (RFC 4515) an entry must match to be
	// one of the user's, with @email, @name and @attr_<key> standing for
	// the user's identity values, escaped so that no value can widen it.
	// Entries the connector creates get the scope's values but nothing
	// else: a filter on anything else would not select them, and the next
	// cycle would create them again.
	Filter string
	// OriginAttribute, when set, holds the engine's origin token on the
	// entries the connector creates, written in the same add as the entry,
	// so that a create cut off by a crash is recognised (schema/chainsync.ldif
	// defines chainsyncOrigin for it). It is never a field.
	OriginAttribute string
	// OriginObjectClass is the auxiliary class that allows OriginAttribute,
	// given to created entries only (chainsyncSynced).
	OriginObjectClass string
	// BinaryAttributes are attributes whose values are octets, base64 text
	// on chainsync's side, besides those the directory's schema gives a
	// binary syntax (jpegPhoto, userCertificate, objectGUID) and those
	// named with the ;binary option.
	BinaryAttributes []string
}

const (
	defaultTimeout  = 30 * time.Second
	defaultPageSize = 500
)

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) field(name string) string { return c.side() + ".ldap." + name }

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return defaultTimeout
	}
	return c.Timeout
}

func (c Config) pageSize() uint32 {
	if c.PageSize <= 0 {
		return defaultPageSize
	}
	return uint32(c.PageSize)
}

// class finds a collection's class by name.
func (c Config) class(name string) (Class, int, bool) {
	for i, cl := range c.Collections {
		if cl.Name == name {
			return cl, i, true
		}
	}
	return Class{}, -1, false
}

// Validate checks the configuration, credentials and CA included, without
// connecting.
func (c Config) Validate() error {
	errs := []error{c.ValidateSpec()}
	if c.CAPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CAPEM)) {
		errs = append(errs, fmt.Errorf("%s: the key holds no PEM certificate", c.field("caSecretRef")))
	}
	if c.BindDN != "" {
		if _, err := goldap.ParseDN(c.BindDN); err != nil {
			errs = append(errs, fmt.Errorf("%s: the bind DN %q is not a DN: %w", c.field("bindSecretRef"), c.BindDN, err))
		}
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// ValidateSpec checks what can be checked without the Secrets and the
// server, so the operator can refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	if u, err := url.Parse(c.URL); c.URL == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("url")))
	} else if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s: %q is not ldap://host[:port] or ldaps://host[:port]", c.field("url"), c.URL))
	} else if c.StartTLS && u.Scheme == "ldaps" {
		errs = append(errs, fmt.Errorf("%s: StartTLS is for ldap:// URLs; ldaps:// is TLS already", c.field("startTLS")))
	}
	if c.BaseDN == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("baseDN")))
	} else if _, err := goldap.ParseDN(c.BaseDN); err != nil {
		errs = append(errs, fmt.Errorf("%s: %q is not a DN: %w", c.field("baseDN"), c.BaseDN, err))
	}
	if c.PageSize < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative", c.field("pageSize")))
	}
	seen := map[string]bool{}
	for i, cl := range c.Collections {
		path := fmt.Sprintf("%s[%d]", c.field("collections"), i)
		if cl.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must be set", path))
		} else if seen[cl.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is defined twice", path, cl.Name))
		}
		seen[cl.Name] = true
		if len(cl.ObjectClasses) == 0 {
			errs = append(errs, fmt.Errorf("%s.objectClasses: at least one object class is required", path))
		}
		for _, oc := range cl.ObjectClasses {
			if !attributeName.MatchString(oc) {
				errs = append(errs, fmt.Errorf("%s.objectClasses: %q is not an object class name", path, oc))
			}
		}
		if !attributeName.MatchString(cl.RDNAttribute) {
			errs = append(errs, fmt.Errorf("%s.rdnAttribute: %q is not an attribute name", path, cl.RDNAttribute))
		}
		if cl.OriginAttribute != "" && !attributeName.MatchString(cl.OriginAttribute) {
			errs = append(errs, fmt.Errorf("%s.originAttribute: %q is not an attribute name", path, cl.OriginAttribute))
		}
		if cl.OriginObjectClass != "" && (cl.OriginAttribute == "" || !attributeName.MatchString(cl.OriginObjectClass)) {
			errs = append(errs, fmt.Errorf("%s.originObjectClass: %q needs originAttribute, and must be an object class name", path, cl.OriginObjectClass))
		}
		for _, b := range cl.BinaryAttributes {
			if !attributeName.MatchString(b) {
				errs = append(errs, fmt.Errorf("%s.binaryAttributes: %q is not an attribute name", path, b))
			}
		}
		if cl.ParentDN != "" {
			if _, err := goldap.ParseDN(cl.ParentDN); err != nil {
				errs = append(errs, fmt.Errorf("%s.parentDN: %q is not a DN: %w", path, cl.ParentDN, err))
			}
		}
		if cl.Filter != "" {
			if _, err := bindFilter(cl.Filter, connector.Scope{Email: "e", Name: "n"}, true); err != nil {
				errs = append(errs, fmt.Errorf("%s.filter: %w", path, err))
			}
		}
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		path := c.entityPath(name)
		coll = withDefaultKey(coll)
		if err := coll.Validate(path, false); err != nil {
			errs = append(errs, err)
		}
		if _, _, ok := c.class(coll.Name); !ok && coll.Name != "" {
			errs = append(errs, fmt.Errorf("%s.collection: %q is not one of %s[].name", path, coll.Name, c.field("collections")))
		}
		if len(coll.KeyFields) > 1 {
			errs = append(errs, fmt.Errorf("%s.keyFields: ldap keys an entry by one attribute (entryUUID, or dn)", path))
		}
		for _, f := range coll.Fields() {
			if f != DNField && !attributeName.MatchString(f) {
				errs = append(errs, fmt.Errorf("%s: %q is not an attribute name", path, f))
			}
		}
	}
	return errors.Join(errs...)
}

// withDefaultKey keys a collection that names no key by DefaultKey.
func withDefaultKey(coll collection.Collection) collection.Collection {
	if len(coll.KeyFields) == 0 {
		coll.KeyFields = []string{DefaultKey}
	}
	return coll
}

// attributeName is an attribute description: a name or OID, with options
// (jpegPhoto;binary).
var attributeName = regexp.MustCompile(`^([A-Za-z][-A-Za-z0-9]*|[0-9]+(\.[0-9]+)+)(;[-A-Za-z0-9]+)*$`)

// filterParam is an identity parameter in a class filter.
var filterParam = regexp.MustCompile(`@(email|name|attr_[A-Za-z0-9][-A-Za-z0-9_.]*)`)

// wholeValueParam is an assertion value that looks like a parameter, to
// tell a misspelt one (@emial) from a literal such as (mail=*@example.com).
var wholeValueParam = regexp.MustCompile(`=(@[A-Za-z_][-A-Za-z0-9_.]*)\)`)

// bindFilter puts the user's identity values into a filter template,
// escaped per RFC 4515, and checks the result parses. With check, missing
// attributes are bound to a placeholder (to check the syntax alone).
func bindFilter(template string, s connector.Scope, check bool) (string, error) {
	var errs []error
	bound := filterParam.ReplaceAllStringFunc(template, func(p string) string {
		identity := strings.TrimPrefix(p, "@")
		if rest, ok := strings.CutPrefix(identity, "attr_"); ok {
			identity = "attributes." + rest
		}
		v, err := collection.IdentityValue(s, identity)
		if err != nil {
			if check {
				return "x"
			}
			errs = append(errs, err)
		}
		return goldap.EscapeFilter(v)
	})
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	for _, m := range wholeValueParam.FindAllStringSubmatch(template, -1) {
		if !filterParam.MatchString(m[1]) || filterParam.FindString(m[1]) != m[1] {
			return "", fmt.Errorf("unknown parameter %s (use @email, @name or @attr_<key>)", m[1])
		}
	}
	if !strings.HasPrefix(bound, "(") {
		bound = "(" + bound + ")"
	}
	if _, err := goldap.CompileFilter(bound); err != nil {
		return "", fmt.Errorf("%q is not an LDAP filter: %w", template, err)
	}
	return bound, nil
}
