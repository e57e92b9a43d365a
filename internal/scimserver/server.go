// Package scimserver is a SCIM 2.0 service provider: the server of github.com/elimity-com/scim
// (request parsing, schema validation, filters, PATCH validation, the protocol's answers and
// errors) over Users with the enterprise extension and Groups whose members are those Users, kept
// by the resource handlers here, in memory and, when asked, in a file. The scim connector's tests
// run it (internal/testutil/scimtest, which adds faults); `chainsync local` runs it as the demo's
// application.
package scimserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/elimity-com/scim"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// EnterpriseSchema is the URN of the enterprise extension.
const EnterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// Options shape the provider.
type Options struct {
	// Token is the bearer token it accepts; Username and Password, when set, the basic
	// credentials it accepts too.
	Token              string
	Username, Password string
	// NoPatch makes the ServiceProviderConfig say PATCH is not supported, and PATCH fail.
	NoPatch bool
	// File, when set, keeps the Users and Groups: read by New when it exists, rewritten
	// (to a temporary file, then renamed) after every change.
	File string
}

// Provider is a SCIM service provider; Handler serves its protocol.
type Provider struct {
	store   *store
	handler http.Handler
}

// New makes a provider, with the Users and Groups of opts.File when it exists.
func New(opts Options) (*Provider, error) {
	if opts.Token == "" {
		return nil, errors.New("scimserver: a Token is required")
	}
	st := &store{users: map[string]*stored{}, groups: map[string]*stored{}, noPatch: opts.NoPatch, file: opts.File}
	if opts.File != "" {
		if err := st.load(); err != nil {
			return nil, err
		}
	}
	server, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			SupportFiltering: true, SupportPatch: !opts.NoPatch, MaxResults: 50,
			AuthenticationSchemes: []scim.AuthenticationScheme{{Type: scim.AuthenticationTypeOauthBearerToken,
				Name: "Bearer token", Description: "Authorization: Bearer <token>", Primary: true}},
		},
		ResourceTypes: []scim.ResourceType{{
			ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
			Schema:           schema.CoreUserSchema(),
			SchemaExtensions: []scim.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
			Handler:          st,
		}, {
			ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups",
			Schema:  schema.CoreGroupSchema(),
			Handler: groupHandler{st},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &Provider{store: st, handler: requireCredentials(opts, server)}, nil
}

// Handler serves the SCIM protocol at its root (/Users, /Groups, /ServiceProviderConfig, ...),
// to requests with the credentials of the Options.
func (p *Provider) Handler() http.Handler { return p.handler }

// Save writes the Users and Groups to the Options' File, for changes made through the
// provider's methods rather than the protocol; nothing without a File.
func (p *Provider) Save() error {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.save()
}

func requireCredentials(opts Options, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, basic := r.BasicAuth()
		bearer := r.Header.Get("Authorization") == "Bearer "+opts.Token
		basicOK := basic && opts.Username != "" && user == opts.Username && password == opts.Password
		if !bearer && !basicOK {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"The credentials are not valid."}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// fileFormat is the version of the File's layout.
const fileFormat = 1

type savedStore struct {
	Format    int           `json:"format"`
	Next      int           `json:"next"`
	NextGroup int           `json:"nextGroup"`
	Users     []savedObject `json:"users"`
	Groups    []savedObject `json:"groups"`
}

type savedObject struct {
	ID         string                  `json:"id"`
	Attributes scim.ResourceAttributes `json:"attributes"`
	Created    time.Time               `json:"created"`
	Modified   time.Time               `json:"modified"`
	Version    int                     `json:"version"`
}

func saveObject(o *stored) savedObject {
	return savedObject{ID: o.id, Attributes: o.attrs, Created: o.created, Modified: o.modified, Version: o.version}
}

func (o savedObject) stored() *stored {
	return &stored{id: o.ID, attrs: o.Attributes, created: o.Created, modified: o.Modified, version: o.Version}
}

// save writes the store to its file; the caller holds mu.
func (st *store) save() error {
	if st.file == "" {
		return nil
	}
	saved := savedStore{Format: fileFormat, Next: st.next, NextGroup: st.nextGroup,
		Users: []savedObject{}, Groups: []savedObject{}}
	for _, id := range st.order {
		saved.Users = append(saved.Users, saveObject(st.users[id]))
	}
	for _, id := range st.groupOrder {
		saved.Groups = append(saved.Groups, saveObject(st.groups[id]))
	}
	raw, err := json.Marshal(saved)
	if err != nil {
		return fmt.Errorf("encoding the SCIM provider's data: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(st.file), 0o700); err != nil {
		return fmt.Errorf("saving the SCIM provider's data: %w", err)
	}
	tmp := st.file + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("saving the SCIM provider's data: %w", err)
	}
	if err := os.Rename(tmp, st.file); err != nil {
		return fmt.Errorf("saving the SCIM provider's data: %w", err)
	}
	return nil
}

// load reads the store's file, when there is one.
func (st *store) load() error {
	raw, err := os.ReadFile(st.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the SCIM provider's data: %w", err)
	}
	var saved savedStore
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("reading the SCIM provider's data %s: %w", st.file, err)
	}
	if saved.Format != fileFormat {
		return fmt.Errorf("the SCIM provider's data %s has format %d; this chainsync reads format %d", st.file, saved.Format, fileFormat)
	}
	st.next, st.nextGroup = saved.Next, saved.NextGroup
	for _, o := range saved.Users {
		st.users[o.ID] = o.stored()
		st.order = append(st.order, o.ID)
	}
	for _, o := range saved.Groups {
		st.groups[o.ID] = o.stored()
		st.groupOrder = append(st.groupOrder, o.ID)
	}
	return nil
}
