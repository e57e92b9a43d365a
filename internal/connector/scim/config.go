// Package scim is the connector for the Users of a SCIM 2.0 service provider (RFC 7643, RFC 7644),
// the protocol SaaS applications accept for provisioning.
//
// Fields are SCIM attribute paths: "userName", "active", "name.givenName", the element of a
// multi-valued attribute that has a type, as in `emails[type eq "work"].value`, and attributes of
// the enterprise extension with their schema URN, as in
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber". An item's ID is the
// User's SCIM id. A user's scope is a SCIM filter built from the collection's scope matches
// (`userName eq "ann@example.com"`), each identity value written as a JSON string, so that no
// identity can add a clause to the filter; items the server returns are checked against the scope
// again, in case a server ignores or loosens the filter.
//
// A User's Groups are the membership fields "groups.display" (the Groups' displayNames) and
// "groups.value" (their ids): nothing for none, one Group as text, several as a sorted JSON array
// (["Engineering","Staff"]), as the ldap connector gives several values. They are read from the
// Groups whose members hold the User (filter members.value eq "<id>"), or, from a server that
// cannot filter Groups by members, from the User's read-only groups attribute. They are written
// one membership at a time: a PATCH of each Group the User joins (add members) or leaves (remove
// members[value eq "<id>"]), so the Group's other members, even those added meanwhile, are never
// written. A Group the server does not have fails the User's item with the server's detail, and
// the memberships that can be written are.
//
// Reads page through the list with startIndex and count; a list whose total changes while it is
// paged, or that repeats a User, fails the read, since a User shifted past would look deleted.
// Creates POST; updates PATCH the mapped attributes (a typed element by replacing its whole
// attribute, as the User has it now), or GET and PUT the whole User when the
// ServiceProviderConfig says PATCH is not supported. Deletes DELETE or, with Deletes: Deactivate,
// set active to false; inactive Users are then no longer read, as for the engine they are gone,
// so such a policy should not map active. A User read with a version (meta.version or an ETag) is
// written with If-Match, so an edit made on the server after the read fails that item (412)
// instead of being overwritten, and the next cycle sees it.
//
// A 429 is retried after its Retry-After, a 5xx or a connection that could not be made is
// retried with backoff; a 4xx fails only its item, with the server's detail. A POST whose answer
// was lost (a timeout) is not retried, since the User may have been created: the cycle fails, and
// the next one recognises the User by its origin (below).
//
// Every create is provable after a crash (the Origin capability): the connector writes the
// engine's origin token into the created User's externalId, which RFC 7643 leaves to the
// provisioning client, and reads it back as Item.Origin. The token is
// "chainsync1:<pair hash>:<side>:<source key>": the application then holds the source's key of
// the person (often an employee ID or an email it already has). Updates never touch externalId,
// so Users created by someone else keep theirs. A policy that maps a field to externalId, or an
// application whose identity provider owns externalId, should set Origin: None and use matchOn.
package scim

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

// DeleteMode says what a delete does to a User.
type DeleteMode string

const (
	// Delete removes the User (DELETE).
	Delete DeleteMode = "Delete"
	// Deactivate sets the User's active attribute to false: many applications must never lose a
	// User's history.
	Deactivate DeleteMode = "Deactivate"
)

// OriginMode says where the connector keeps the proof of its creates.
type OriginMode string

const (
	// OriginExternalID writes the engine's origin token into externalId of the Users it creates.
	OriginExternalID OriginMode = "ExternalID"
	// OriginNone keeps no proof: the policy needs matchOn.
	OriginNone OriginMode = "None"
)

// The schemas of a User: the core and the enterprise extension.
const (
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// Users is the one collection the connector knows: the Users resource type.
const Users = "Users"

// Config configures a scim endpoint from resolved values: the credentials are the contents of the
// Secret keys, not references.
type Config struct {
	// Side is "source" or "target", for error messages in the policy's terms (target.scim.baseURL).
	Side string
	// BaseURL is the service provider's SCIM base, e.g. https://app.example.com/scim/v2.
	BaseURL string
	// BearerToken, when set, authenticates every request ("Authorization: Bearer ...").
	BearerToken string
	// Username and Password, when set, authenticate with HTTP basic auth instead.
	Username, Password string
	// Deletes chooses between deleting and deactivating Users; "" means Delete.
	Deletes DeleteMode
	// Origin chooses where creates are proven; "" means ExternalID.
	Origin OriginMode
	// Entities maps entity names to their collection, which must be Users keyed by id.
	Entities map[string]collection.Collection
	// PageSize is the count asked per list page; 0 means 100.
	PageSize int
	// RequestTimeout bounds each HTTP request; 0 means 30s.
	RequestTimeout time.Duration
	// Retries is how many times a request is retried after a 429, a 5xx or a failed connection;
	// 0 means 4.
	Retries int
	// Backoff is the wait before the first retry of a 5xx, doubled each time; 0 means 1s.
	Backoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a longer one fails the cycle. 0 means 2m.
	MaxRetryAfter time.Duration
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) field(name string) string { return c.side() + ".scim." + name }

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

func (c Config) deletes() DeleteMode { return cmpOr(c.Deletes, Delete) }
func (c Config) origin() OriginMode  { return cmpOr(c.Origin, OriginExternalID) }
func (c Config) pageSize() int       { return cmpOr(c.PageSize, 100) }
func (c Config) retries() int        { return cmpOr(c.Retries, 4) }
func (c Config) backoff() time.Duration {
	return cmpOr(c.Backoff, time.Second)
}
func (c Config) requestTimeout() time.Duration { return cmpOr(c.RequestTimeout, 30*time.Second) }
func (c Config) maxRetryAfter() time.Duration  { return cmpOr(c.MaxRetryAfter, 2*time.Minute) }

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
	switch {
	case c.BearerToken != "" && c.Username != "":
		errs = append(errs, fmt.Errorf("%s: a bearer token and a user name are both given; give one", c.field("bearerTokenSecretRef")))
	case c.BearerToken == "" && c.Username == "":
		errs = append(errs, fmt.Errorf("%s: the token is empty, and no basicAuthSecretRef gives a user name instead", c.field("bearerTokenSecretRef")))
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// credentialsField names the reference the credentials came from.
func (c Config) credentialsField() string {
	if c.BearerToken != "" {
		return c.field("bearerTokenSecretRef")
	}
	return c.field("basicAuthSecretRef")
}

// ValidateSpec checks what can be checked without the Secrets and the server, so the operator can
// refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("baseURL")))
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", c.field("baseURL"), c.BaseURL))
	}
	if !slices.Contains([]DeleteMode{Delete, Deactivate}, c.deletes()) {
		errs = append(errs, fmt.Errorf("%s: %q is not Delete or Deactivate", c.field("deletes"), c.Deletes))
	}
	if !slices.Contains([]OriginMode{OriginExternalID, OriginNone}, c.origin()) {
		errs = append(errs, fmt.Errorf("%s: %q is not ExternalID or None", c.field("origin"), c.Origin))
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		path := c.entityPath(name)
		if err := coll.Validate(path, false); err != nil {
			errs = append(errs, err)
		}
		if coll.Name != "" && coll.Name != Users {
			errs = append(errs, fmt.Errorf("%s.collection: %q is not a resource type this connector knows (Users)", path, coll.Name))
		}
		if len(coll.KeyFields) > 0 && !slices.Equal(coll.KeyFields, []string{"id"}) {
			errs = append(errs, fmt.Errorf("%s.keyFields: must be [id], the SCIM id of the User", path))
		}
		if coll.ModifiedField != "" && coll.ModifiedField != "meta.lastModified" {
			errs = append(errs, fmt.Errorf("%s.modifiedField: must be meta.lastModified or unset", path))
		}
		for i, m := range coll.Scope {
			if p, err := parsePath(m.Field); err != nil {
				errs = append(errs, fmt.Errorf("%s.scope[%d].field: %w", path, i, err))
			} else if p.elementType != "" {
				errs = append(errs, fmt.Errorf("%s.scope[%d].field: %q picks an element of a multi-valued attribute, which a scope cannot compare", path, i, m.Field))
			}
		}
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// attrPath is a field: an attribute of a schema, a sub-attribute of a complex one, or a
// sub-attribute of the element of a multi-valued one that has a given type.
type attrPath struct {
	// schema is the URN of the schema holding the attribute: the core User or an extension.
	schema string
	name   string
	// elementType picks the element of a multi-valued attribute, as in emails[type eq "work"].value.
	elementType string
	sub         string
}

var pathPattern = regexp.MustCompile(`^([A-Za-z][-_A-Za-z0-9$]*)(?:\[type eq "([^"\\]*)"\])?(?:\.([A-Za-z][-_A-Za-z0-9$]*))?$`)

// parsePath reads "name", "name.sub", "name[type eq \"t\"].sub", each with an optional
// "<schema URN>:" before it.
func parsePath(field string) (attrPath, error) {
	p := attrPath{schema: userSchema}
	rest := field
	if strings.HasPrefix(strings.ToLower(field), "urn:") {
		i := strings.LastIndex(strings.Split(field, "[")[0], ":")
		p.schema, rest = field[:i], field[i+1:]
		if p.schema != userSchema && p.schema != enterpriseSchema {
			return p, fmt.Errorf("%q: the schema %s is neither the core User nor the enterprise extension", field, p.schema)
		}
	}
	m := pathPattern.FindStringSubmatch(rest)
	typed := strings.Contains(rest, "[")
	if m == nil || (typed && m[3] == "") {
		return p, fmt.Errorf("%q is not a SCIM attribute path (name, name.subAttribute, name[type eq \"work\"].subAttribute, or one of them after <schema URN>:)", field)
	}
	p.name, p.elementType, p.sub = m[1], m[2], m[3]
	return p, nil
}

// String is the path as a SCIM filter or PATCH path writes it.
func (p attrPath) String() string {
	s := p.name
	if p.elementType != "" {
		s += `[type eq "` + p.elementType + `"]`
	}
	if p.sub != "" {
		s += "." + p.sub
	}
	if p.schema != userSchema {
		s = p.schema + ":" + s
	}
	return s
}

// attribute is the whole top-level attribute p is part of.
func (p attrPath) attribute() attrPath { return attrPath{schema: p.schema, name: p.name} }
