package rest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
)

// oauthServers are an authorization server issuing numbered tokens that live expiresIn seconds,
// and an API that takes only the last token issued.
type oauthServers struct {
	tokenURL, apiURL string
	issued           atomic.Int32
	mu               sync.Mutex
	valid            string
}

func startOAuth(t *testing.T, expiresIn int) *oauthServers {
	o := &oauthServers{}
	token := serve(t, func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if r.FormValue("grant_type") != "client_credentials" || id != "client" || secret != "client-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error": "invalid_client", "error_description": "bad secret for client"}`)
			return
		}
		n := o.issued.Add(1)
		o.mu.Lock()
		o.valid = fmt.Sprintf("token-%d", n)
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token": "token-%d", "token_type": "Bearer", "expires_in": %d}`, n, expiresIn)
	})
	api := serve(t, func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+o.valid
		o.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `[{"id": 1}]`)
	})
	o.tokenURL, o.apiURL = token.URL+"/oauth/token", api.URL
	return o
}

func (o *oauthServers) revoke() {
	o.mu.Lock()
	o.valid = "revoked"
	o.mu.Unlock()
}

func oauthConfig(o *oauthServers, secret string) Config {
	cfg := faultConfig(o.apiURL)
	cfg.Auth = Auth{OAuth2: &OAuth2{TokenURL: o.tokenURL, ClientID: "client", ClientSecret: secret, Scopes: []string{"contacts"}}}
	return cfg
}

func TestOAuth2TokenIsCachedAndRenewed(t *testing.T) {
	t.Run("cached while it lives", func(t *testing.T) {
		g := NewWithT(t)
		o := startOAuth(t, 3600)
		c, _ := open(t, oauthConfig(o, "client-secret"))
		for range 5 {
			_, errs := readAll(c, "people")
			g.Expect(errs).To(BeEmpty())
		}
		g.Expect(o.issued.Load()).To(Equal(int32(1)), "one token for every request")
	})
	t.Run("renewed when it nears expiry", func(t *testing.T) {
		g := NewWithT(t)
		o := startOAuth(t, 5) // within the library's 10s early refresh: every request needs a new one
		c, _ := open(t, oauthConfig(o, "client-secret"))
		for range 3 {
			_, errs := readAll(c, "people")
			g.Expect(errs).To(BeEmpty())
		}
		g.Expect(o.issued.Load()).To(BeNumerically(">=", 3))
	})
	t.Run("renewed when the API refuses it", func(t *testing.T) {
		g := NewWithT(t)
		o := startOAuth(t, 3600)
		c, _ := open(t, oauthConfig(o, "client-secret"))
		o.revoke()
		_, errs := readAll(c, "people")
		g.Expect(errs).To(BeEmpty())
		g.Expect(o.issued.Load()).To(Equal(int32(2)))
	})
	t.Run("a wrong client secret fails New, naming the block, without the secret", func(t *testing.T) {
		g := NewWithT(t)
		o := startOAuth(t, 3600)
		_, err := New(ctx, oauthConfig(o, "wrong-secret-value"))
		g.Expect(err).To(HaveOccurred())
		g.Expect(err).NotTo(MatchError(connector.ErrInvalidConfig))
		g.Expect(err.Error()).To(And(ContainSubstring("target.http.auth.oauth2: the authorization server refused the client"),
			ContainSubstring("invalid_client")))
		g.Expect(strings.Contains(err.Error(), "wrong-secret-value")).To(BeFalse())
	})
}
