// Package scimtest runs a real SCIM 2.0 service provider for tests (internal/scimserver: the server
// of github.com/elimity-com/scim over Users with the enterprise extension and Groups, in memory) on
// a TCP port that a test's child processes reach too, with the quirks some providers have, and
// faults (429, 5xx, slow answers) injected in front of it.
package scimtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chainsync/chainsync/internal/scimserver"
)

// The credentials the server accepts: a bearer token, or a user name and password.
const (
	Token    = "scimtest-token"
	Username = "provisioner"
	Password = "scimtest-password"
)

// EnterpriseSchema is the URN of the enterprise extension.
const EnterpriseSchema = scimserver.EnterpriseSchema

// User and Group are a User and a Group as a test sees them.
type (
	User  = scimserver.User
	Group = scimserver.Group
)

// Options shape the server.
type Options struct {
	// NoPatch makes the ServiceProviderConfig say PATCH is not supported, and PATCH fail.
	NoPatch bool
	// IgnoreFilter makes the server list every User whatever the filter, as some do.
	IgnoreFilter bool
	// NoMembersFilter makes the server refuse to filter Groups by their members (400
	// invalidFilter), as some do; a User's groups attribute then says what it belongs to.
	NoMembersFilter bool
}

// Server is a running SCIM server.
type Server struct {
	// Provider sets up and inspects Users and Groups behind the protocol's back.
	*scimserver.Provider
	URL  string
	http *httptest.Server

	faultMu  sync.Mutex
	faults   []Fault
	requests int
}

// Fault is an answer the server gives instead of serving a request: Status with a Retry-After of
// RetryAfter (when set); or, without a Status, the request served after Before has run and Delay
// has passed.
type Fault struct {
	// Method, PathPrefix and Query (a part of the raw query) select the requests (empty: any).
	Method, PathPrefix, Query string
	Status                    int
	RetryAfter                string
	Delay                     time.Duration
	// Before runs before the request is served: a change made by someone else meanwhile.
	Before func(*Server)
	// Times is how many requests the fault takes; 0 means every one.
	Times int
}

// Start runs a server for the test.
func Start(t testing.TB, opts Options) *Server {
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs a server; Close stops it.
func New(opts Options) (*Server, error) {
	p, err := scimserver.New(scimserver.Options{Token: Token, Username: Username, Password: Password, NoPatch: opts.NoPatch})
	if err != nil {
		return nil, err
	}
	s := &Server{Provider: p}
	server := p.Handler()
	var handler http.Handler = server
	if opts.IgnoreFilter {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			q.Del("filter")
			r.URL.RawQuery = q.Encode()
			server.ServeHTTP(w, r)
		})
	}
	if opts.NoMembersFilter {
		next := handler
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/Groups") && strings.Contains(strings.ToLower(r.URL.Query().Get("filter")), "members") {
				w.Header().Set("Content-Type", "application/scim+json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"Groups cannot be filtered by members."}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	s.http = httptest.NewServer(s.withFaults(handler))
	s.URL = s.http.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// Inject adds a fault; faults are tried in the order added.
func (s *Server) Inject(f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, f)
}

// Requests counts the requests the server has seen, faults included.
func (s *Server) Requests() int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.requests
}

func (s *Server) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := s.takeFault(r)
		switch {
		case !ok:
		case f.Status == 0:
			if f.Before != nil {
				f.Before(s)
			}
			// Served all the same, as a server does whose answer the client gave up waiting for.
			time.Sleep(f.Delay)
		default:
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"%d","detail":"Injected fault."}`, f.Status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) takeFault(r *http.Request) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.requests++
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.PathPrefix) && strings.Contains(r.URL.RawQuery, f.Query) {
			if f.Times > 0 {
				if s.faults[i].Times--; s.faults[i].Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			return f, true
		}
	}
	return Fault{}, false
}
