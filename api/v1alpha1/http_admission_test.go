package v1alpha1_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// httpTarget replaces the base policy's target with an http endpoint whose block is given.
func httpTarget(block string) string {
	return `[{"op":"replace","path":"/spec/target","value":{"name":"app","connector":"http","http":` + block + `}}]`
}

func TestHTTPEndpointsAreCheckedOnAdmission(t *testing.T) {
	const resource = `"resources":[{"name":"contacts","listPath":"/contacts"}]`
	for _, tc := range []struct{ name, patch, want string }{
		{"http without its block", `[{"op":"replace","path":"/spec/target","value":{"name":"app","connector":"http"}}]`,
			`connector is http, so the http block must be set`},
		{"two kinds of credentials", httpTarget(`{"baseURL":"https://app.example.com","auth":{"bearerTokenSecretRef":{"name":"a","key":"t"},"apiKey":{"header":"X-Key","secretRef":{"name":"a","key":"k"}}},` + resource + `}`),
			`auth: set at most one of bearerTokenSecretRef, basicAuthSecretRef, apiKey and oauth2`},
		{"base URL with credentials in it", httpTarget(`{"baseURL":"https://user:pw@app.example.com",` + resource + `}`),
			`spec.target.http.baseURL: Invalid value: "https://user:pw@app.example.com"`},
		{"no resources", httpTarget(`{"baseURL":"https://app.example.com","resources":[]}`),
			`spec.target.http.resources: Invalid value: 0`},
		{"list path with a query", httpTarget(`{"baseURL":"https://app.example.com","resources":[{"name":"c","listPath":"/contacts?owner=x"}]}`),
			`spec.target.http.resources[0].listPath: Invalid value: "/contacts?owner=x"`},
		{"item path without {id}", httpTarget(`{"baseURL":"https://app.example.com","resources":[{"name":"c","listPath":"/c","itemPath":"/c/x"}]}`),
			`spec.target.http.resources[0].itemPath: Invalid value: "/c/x"`},
		{"cursor pages without the cursor's place", httpTarget(`{"baseURL":"https://app.example.com","resources":[{"name":"c","listPath":"/c","pagination":{"mode":"Cursor","cursorParam":"after"}}]}`),
			`pagination.cursorParam and nextCursor are needed with mode Cursor`},
		{"unknown pagination", httpTarget(`{"baseURL":"https://app.example.com","resources":[{"name":"c","listPath":"/c","pagination":{"mode":"Scroll"}}]}`),
			`Unsupported value: "Scroll"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := patched(t, basePolicy, tc.patch)
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid policy")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestHTTPSecretsGoWhereTheyAreSent(t *testing.T) {
	g := NewWithT(t)
	p := &syncv1alpha1.SyncPolicy{Spec: syncv1alpha1.SyncPolicySpec{Target: syncv1alpha1.Endpoint{HTTP: &syncv1alpha1.HTTPEndpoint{
		BaseURL: "https://app.example.com/api",
		Auth: syncv1alpha1.HTTPAuth{OAuth2: &syncv1alpha1.HTTPOAuth2{TokenURL: "https://auth.example.com/token",
			ClientSecretRef: syncv1alpha1.CredentialsSecretReference{Name: "oauth", UsernameKey: "id", PasswordKey: "secret"}}},
	}}}}
	g.Expect(p.SecretUses()).To(ConsistOf(
		syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "oauth", Key: "id"}, Field: "target.http.auth.oauth2.clientSecretRef", Destination: "https://auth.example.com/token"},
		syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "oauth", Key: "secret"}, Field: "target.http.auth.oauth2.clientSecretRef", Destination: "https://auth.example.com/token"},
	), "the client's secret goes to the token URL only; the API gets a token, no Secret value")
	p.Spec.Target.HTTP.Auth = syncv1alpha1.HTTPAuth{APIKey: &syncv1alpha1.HTTPAPIKey{Header: "X-Key", SecretRef: syncv1alpha1.SecretKeyReference{Name: "api", Key: "key"}}}
	g.Expect(p.SecretUses()).To(ConsistOf(syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "api", Key: "key"},
		Field: "target.http.auth.apiKey.secretRef", Destination: "https://app.example.com/api"}))
}
