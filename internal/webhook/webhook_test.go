package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func TestVerified(t *testing.T) {
	token, body := []byte("s3cret"), []byte(`{"user":{"email":"Ada@Example.com"}}`)
	mac := Sign(token, body)
	hmacSig := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.HMACSHA256Signature, Encoding: syncv1alpha1.HexEncoding}
	github := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.HMACSHA256Signature, Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: syncv1alpha1.HexEncoding}
	b64 := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.HMACSHA256Signature, Header: "X-Shopify-Hmac-Sha256", Encoding: syncv1alpha1.Base64Encoding}
	bearer := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.BearerSignature}
	gitlab := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.BearerSignature, Header: "X-Gitlab-Token"}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sig    syncv1alpha1.ReceiverSignature
		header http.Header
		body   []byte
		want   bool
	}{
		{"hmac in the default header", hmacSig, h("X-Signature-256", hex.EncodeToString(mac)), body, true},
		{"hmac in upper-case hex", hmacSig, h("X-Signature-256", strings.ToUpper(hex.EncodeToString(mac))), body, true},
		{"hmac with one byte changed", hmacSig, h("X-Signature-256", "00"+hex.EncodeToString(mac)[2:]), body, false},
		{"hmac of another body", hmacSig, h("X-Signature-256", hex.EncodeToString(mac)), []byte(`{}`), false},
		{"hmac keyed with another token", hmacSig, h("X-Signature-256", hex.EncodeToString(Sign([]byte("guess"), body))), body, false},
		{"no signature", hmacSig, h(), body, false},
		{"signature not hex", hmacSig, h("X-Signature-256", "zz"), body, false},
		{"github's header and prefix", github, h("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac)), body, true},
		{"github's prefix missing", github, h("X-Hub-Signature-256", hex.EncodeToString(mac)), body, false},
		{"base64", b64, h("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac)), body, true},
		{"the token itself where an hmac is due", hmacSig, h("X-Signature-256", "s3cret"), body, false},
		{"bearer", bearer, h("Authorization", "Bearer s3cret"), body, true},
		{"bearer in lower case", bearer, h("Authorization", "bearer s3cret"), body, true},
		{"bearer wrong", bearer, h("Authorization", "Bearer s3cre"), body, false},
		{"bearer without its scheme", bearer, h("Authorization", "s3cret"), body, false},
		{"bearer in its own header", gitlab, h("X-Gitlab-Token", "s3cret"), body, true},
		{"bearer empty", gitlab, h("X-Gitlab-Token", ""), body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(verified(tc.sig, token, tc.header, tc.body)).To(Equal(tc.want))
		})
	}
}

func TestLookupKeys(t *testing.T) {
	byEmail := syncv1alpha1.ReceiverUsers{EmailPointer: "/user/email"}
	byName := syncv1alpha1.ReceiverUsers{NamePointer: "/commits/0/author~1login"}
	for _, tc := range []struct {
		name    string
		users   syncv1alpha1.ReceiverUsers
		body    string
		want    []string
		wantErr bool
	}{
		{"email, matched in lower case", byEmail, `{"user":{"email":"Ada@Example.com"}}`, []string{emailKey("p", "ada@example.com")}, false},
		{"an array of emails", byEmail, `{"user":{"email":["a@x.io","b@x.io",3]}}`, []string{emailKey("p", "a@x.io"), emailKey("p", "b@x.io")}, false},
		{"pointer finds nothing", byEmail, `{"zen":"ping"}`, nil, false},
		{"pointer finds an object", byEmail, `{"user":{"email":{"primary":"a@x.io"}}}`, nil, false},
		{"name through an array and an escaped slash", byName, `{"commits":[{"author/login":"ada"}]}`, []string{nameKey("p", "ada")}, false},
		{"not JSON", byEmail, `email=ada@example.com`, nil, true},
		{"all users, body not read", syncv1alpha1.ReceiverUsers{AllUsers: true}, `not json`, []string{allUsersKey("p")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			keys, err := lookupKeys(tc.users, "p", []byte(tc.body))
			if tc.wantErr {
				g.Expect(err).To(BeAssignableToTypeOf(errBadBody{}))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys).To(Equal(tc.want))
		})
	}
}

func TestUserIndexKeysMatchLookups(t *testing.T) {
	g := NewWithT(t)
	u := &syncv1alpha1.SyncUser{Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: "Ada@Example.com", Name: "ada"}}}
	g.Expect(userIndexKeys(u)).To(BeEmpty(), "a user on no policy is found by no receiver")
	u.Status.Policy = "p"
	keys, err := lookupKeys(syncv1alpha1.ReceiverUsers{EmailPointer: "/e"}, "p", []byte(`{"e":"ADA@example.COM"}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(userIndexKeys(u)).To(ContainElements(keys[0], allUsersKey("p"), nameKey("p", "ada")))
	other, _ := lookupKeys(syncv1alpha1.ReceiverUsers{EmailPointer: "/e"}, "q", []byte(`{"e":"ada@example.com"}`))
	g.Expect(userIndexKeys(u)).NotTo(ContainElement(other[0]), "a receiver of another policy does not find the user")
}

func TestPathDependsOnTokenNamespaceAndName(t *testing.T) {
	g := NewWithT(t)
	p := Path([]byte("t"), "ns", "r")
	g.Expect(p).To(MatchRegexp(`^/hook/[0-9a-f]{64}$`))
	g.Expect(Path([]byte("t2"), "ns", "r")).NotTo(Equal(p), "a new token moves the path")
	g.Expect(Path([]byte("t"), "ns2", "r")).NotTo(Equal(p))
	g.Expect(Path([]byte("t"), "ns", "r2")).NotTo(Equal(p))
}
