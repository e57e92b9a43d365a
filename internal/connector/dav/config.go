package dav

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

// Protocol is which of the two the connector speaks: it is also the connector's registered name.
type Protocol string

const (
	// CardDAV is address books of vCards (RFC 6352).
	CardDAV Protocol = "carddav"
	// CalDAV is calendars and task lists of iCalendar objects (RFC 4791).
	CalDAV Protocol = "caldav"
)

// OriginMode says where the connector keeps the proof of its creates.
type OriginMode string

const (
	// OriginProperty writes the engine's origin token into X-CHAINSYNC-ORIGIN.
	OriginProperty OriginMode = "Property"
	// OriginNone keeps no proof: the policy needs matchOn.
	OriginNone OriginMode = "None"
)

// The components a CalDAV collection's items are.
const (
	Events = "VEVENT"
	Tasks  = "VTODO"
)

// UID is the key field: the item's identity across systems.
const UID = "UID"

// Collection is how one of a user's collections is found: at Path, or in the user's home set by
// DisplayName, or as the only one of its kind there.
type Collection struct {
	Name string
	// Path names the collection, with {email}, {name} or {attributes.<key>} for the user's identity.
	Path string
	// DisplayName picks the collection in the user's home set by display name or last segment.
	DisplayName string
	// Component is VEVENT or VTODO for CalDAV ("" means VEVENT); empty for CardDAV.
	Component string
}

func (c Collection) component() string {
	if c.Component == "" {
		return Events
	}
	return c.Component
}

// Config configures a carddav or caldav endpoint from resolved values: the credentials are the
// contents of the Secret keys, not references.
type Config struct {
	Protocol Protocol
	// Side is "source" or "target", for error messages in the policy's terms (target.carddav.url).
	Side string
	// URL is the server's base URL.
	URL string
	// Principal is the path of the user's principal, with the identity placeholders; "" means the
	// account's own (DAV:current-user-principal).
	Principal string
	// BearerToken, or Username and Password, authenticate every request.
	BearerToken        string
	Username, Password string
	Collections        []Collection
	// Origin chooses where creates are proven; "" means Property.
	Origin OriginMode
	// Entities maps entity names to their collection, keyed by UID.
	Entities map[string]collection.Collection
	// RequestTimeout bounds each request; 0 means 30s.
	RequestTimeout time.Duration
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) field(name string) string { return c.side() + "." + string(c.Protocol) + "." + name }

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

func (c Config) origin() OriginMode {
	if c.Origin == "" {
		return OriginProperty
	}
	return c.Origin
}

func (c Config) requestTimeout() time.Duration {
	if c.RequestTimeout == 0 {
		return 30 * time.Second
	}
	return c.RequestTimeout
}

func (c Config) credentialsField() string {
	if c.BearerToken != "" {
		return c.field("bearerTokenSecretRef")
	}
	return c.field("basicAuthSecretRef")
}

func (c Config) collection(name string) (Collection, bool) {
	i := slices.IndexFunc(c.Collections, func(dc Collection) bool { return dc.Name == name })
	if i < 0 {
		return Collection{}, false
	}
	return c.Collections[i], true
}

// Validate checks the configuration, credentials included, without reaching the server.
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

// placeholder is {email}, {name} or {attributes.<key>} in a path.
var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

var identityPattern = regexp.MustCompile(`^(email|name|attributes\.[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$`)

func checkTemplate(field, path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%s: %q must be a path from the server's root, starting with /", field, path)
	}
	for _, m := range placeholder.FindAllStringSubmatch(path, -1) {
		if !identityPattern.MatchString(m[1]) {
			return fmt.Errorf("%s: {%s} is not {email}, {name} or {attributes.<key>}", field, m[1])
		}
	}
	if strings.ContainsAny(placeholder.ReplaceAllString(path, "x"), "{}?#") {
		return fmt.Errorf("%s: %q has a brace, ? or # outside a placeholder", field, path)
	}
	return nil
}

// expand puts the user's identity into a path template. An identity is one path segment: a value
// with a slash, or one that is . or .., would name another user's collection, and is refused.
func expand(template string, scope connector.Scope) (string, error) {
	var err error
	out := placeholder.ReplaceAllStringFunc(template, func(m string) string {
		v, verr := collection.IdentityValue(scope, m[1:len(m)-1])
		if verr == nil && (strings.Contains(v, "/") || v == "." || v == "..") {
			verr = fmt.Errorf("the user's %s %q cannot be a path segment", m[1:len(m)-1], v)
		}
		if verr != nil && err == nil {
			err = verr
		}
		return v
	})
	return out, err
}

// ValidateSpec checks what can be checked without the Secrets and the server.
func (c Config) ValidateSpec() error {
	var errs []error
	if c.Protocol != CardDAV && c.Protocol != CalDAV {
		errs = append(errs, fmt.Errorf("%s: the protocol %q is neither carddav nor caldav", c.side(), c.Protocol))
	}
	if u, err := url.Parse(c.URL); c.URL == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("url")))
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL without credentials", c.field("url"), c.URL))
	}
	if c.Principal != "" {
		if err := checkTemplate(c.field("principal"), c.Principal); err != nil {
			errs = append(errs, err)
		}
	}
	if !slices.Contains([]OriginMode{OriginProperty, OriginNone}, c.origin()) {
		errs = append(errs, fmt.Errorf("%s: %q is not Property or None", c.field("origin"), c.Origin))
	}
	if len(c.Collections) == 0 {
		errs = append(errs, fmt.Errorf("%s: at least one collection is required", c.field("collections")))
	}
	for i, dc := range c.Collections {
		f := fmt.Sprintf("%s[%d]", c.field("collections"), i)
		if dc.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must be set", f))
		}
		if dc.Path != "" && dc.DisplayName != "" {
			errs = append(errs, fmt.Errorf("%s: set path or displayName, not both", f))
		}
		if dc.Path != "" {
			if err := checkTemplate(f+".path", dc.Path); err != nil {
				errs = append(errs, err)
			}
		}
		switch {
		case c.Protocol == CardDAV && dc.Component != "":
			errs = append(errs, fmt.Errorf("%s.component: an address book's items are vCards; component is for caldav", f))
		case c.Protocol == CalDAV && !slices.Contains([]string{"", Events, Tasks}, dc.Component):
			errs = append(errs, fmt.Errorf("%s.component: %q is not VEVENT or VTODO", f, dc.Component))
		}
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		path := c.entityPath(name)
		if err := coll.Validate(path, false); err != nil {
			errs = append(errs, err)
		}
		if _, ok := c.collection(coll.Name); coll.Name != "" && !ok {
			errs = append(errs, fmt.Errorf("%s.collection: %q is not one of %s", path, coll.Name, c.field("collections")))
		}
		if len(coll.KeyFields) > 0 && !slices.Equal(coll.KeyFields, []string{UID}) {
			errs = append(errs, fmt.Errorf("%s.keyFields: must be [UID], the item's identity across systems", path))
		}
		if want := modifiedProperty(c.Protocol); coll.ModifiedField != "" && coll.ModifiedField != want {
			errs = append(errs, fmt.Errorf("%s.modifiedField: must be %s or unset", path, want))
		}
		if len(coll.Scope) > 0 {
			errs = append(errs, fmt.Errorf("%s.scope: a user's items are those of the user's own collection; scope does not apply (put {email} in %s or %s)",
				path, c.field("principal"), c.field("collections[].path")))
		}
	}
	return connector.InvalidConfig(errors.Join(errs...))
}
