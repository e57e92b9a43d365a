package v1alpha1_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// davTarget replaces the base policy's target with a carddav or caldav endpoint whose block is given.
func davTarget(connector, block string) string {
	return `[{"op":"replace","path":"/spec/target","value":{"name":"mailbox","connector":"` + connector + `","` + connector + `":` + block + `}}]`
}

func TestDAVEndpointsAreCheckedOnAdmission(t *testing.T) {
	const basic = `"basicAuthSecretRef":{"name":"dav","usernameKey":"user","passwordKey":"password"}`
	const contacts = `"collections":[{"name":"contacts","displayName":"Contacts"}]`
	for _, tc := range []struct{ name, patch, want string }{
		{"carddav without its block", `[{"op":"replace","path":"/spec/target","value":{"name":"mailbox","connector":"carddav"}}]`,
			`connector is carddav, so the carddav block must be set`},
		{"caldav with a carddav block", `[{"op":"replace","path":"/spec/target","value":{"name":"mailbox","connector":"caldav","carddav":{"url":"https://dav.example.com",` + basic + `,` + contacts + `}}}]`,
			`connector is caldav, so the caldav block must be set`},
		{"no credentials", davTarget("carddav", `{"url":"https://dav.example.com",`+contacts+`}`),
			`set exactly one of bearerTokenSecretRef and basicAuthSecretRef`},
		{"a URL with credentials in it", davTarget("carddav", `{"url":"https://ann:pw@dav.example.com",`+basic+`,`+contacts+`}`),
			`spec.target.carddav.url: Invalid value: "https://ann:pw@dav.example.com"`},
		{"a relative principal", davTarget("carddav", `{"url":"https://dav.example.com","principal":"{email}/",`+basic+`,`+contacts+`}`),
			`spec.target.carddav.principal: Invalid value: "{email}/"`},
		{"path and displayName", davTarget("carddav", `{"url":"https://dav.example.com",`+basic+`,"collections":[{"name":"c","path":"/{email}/c/","displayName":"C"}]}`),
			`set path or displayName, not both`},
		{"a component on an address book", davTarget("carddav", `{"url":"https://dav.example.com",`+basic+`,"collections":[{"name":"c","component":"VTODO"}]}`),
			`an address book's items are vCards; component is for caldav`},
		{"an unknown component", davTarget("caldav", `{"url":"https://dav.example.com",`+basic+`,"collections":[{"name":"c","component":"VJOURNAL"}]}`),
			`Unsupported value: "VJOURNAL"`},
		{"no collections", davTarget("caldav", `{"url":"https://dav.example.com",`+basic+`,"collections":[]}`),
			`spec.target.caldav.collections: Invalid value: 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := patched(t, basePolicy, tc.patch)
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid policy")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
	t.Run("a valid caldav block", func(t *testing.T) {
		obj := patched(t, basePolicy, davTarget("caldav", `{"url":"https://dav.example.com/","principal":"/principals/{email}/",`+basic+
			`,"collections":[{"name":"meetings","displayName":"Work"},{"name":"todo","path":"/calendars/{email}/tasks/","component":"VTODO"}]}`))
		NewWithT(t).Expect(env.Client.Create(ctx(t), obj, client.DryRunAll)).To(Succeed())
	})
}

func TestDAVSecretsGoWhereTheyAreSent(t *testing.T) {
	g := NewWithT(t)
	p := &syncv1alpha1.SyncPolicy{Spec: syncv1alpha1.SyncPolicySpec{Target: syncv1alpha1.Endpoint{CardDAV: &syncv1alpha1.DAVEndpoint{
		URL:                "https://dav.example.com/",
		BasicAuthSecretRef: &syncv1alpha1.CredentialsSecretReference{Name: "dav", UsernameKey: "user", PasswordKey: "password"},
	}}, Source: syncv1alpha1.Endpoint{CalDAV: &syncv1alpha1.DAVEndpoint{
		URL:                  "https://calendar.example.com/",
		BearerTokenSecretRef: &syncv1alpha1.SecretKeyReference{Name: "cal", Key: "token"},
	}}}}
	g.Expect(p.SecretUses()).To(ConsistOf(
		syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "cal", Key: "token"}, Field: "source.caldav.bearerTokenSecretRef", Destination: "https://calendar.example.com/"},
		syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "dav", Key: "user"}, Field: "target.carddav.basicAuthSecretRef", Destination: "https://dav.example.com/"},
		syncv1alpha1.SecretUse{SecretKeyReference: syncv1alpha1.SecretKeyReference{Name: "dav", Key: "password"}, Field: "target.carddav.basicAuthSecretRef", Destination: "https://dav.example.com/"},
	))
}
