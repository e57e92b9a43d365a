package v1alpha1_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

const baseReceiver = `
apiVersion: sync.chainsync.dev/v1alpha1
kind: SyncReceiver
metadata: {name: base, namespace: default}
spec:
  policyRef: {name: base}
  secretRef: {name: hook}
  user: {emailPointer: /user/email}
`

func TestReceiversAreCheckedOnAdmission(t *testing.T) {
	for _, tc := range []struct{ name, patch, want string }{
		{"no way to find users", `[{"op":"replace","path":"/spec/user","value":{}}]`, `set exactly one of emailPointer, namePointer or allUsers: true`},
		{"two ways to find users", `[{"op":"add","path":"/spec/user/namePointer","value":"/login"}]`, `set exactly one of emailPointer, namePointer or allUsers: true`},
		{"a pointer and all users", `[{"op":"add","path":"/spec/user/allUsers","value":true}]`, `set exactly one of emailPointer, namePointer or allUsers: true`},
		{"allUsers false alone", `[{"op":"replace","path":"/spec/user","value":{"allUsers":false}}]`, `set exactly one of emailPointer, namePointer or allUsers: true`},
		{"pointer without a slash", `[{"op":"replace","path":"/spec/user/emailPointer","value":"user.email"}]`, `spec.user.emailPointer: Invalid value: "user.email"`},
		{"pointer with a bad escape", `[{"op":"replace","path":"/spec/user/emailPointer","value":"/a~2b"}]`, `spec.user.emailPointer: Invalid value: "/a~2b"`},
		{"unknown scheme", `[{"op":"add","path":"/spec/signature","value":{"scheme":"HMACSHA1"}}]`, `spec.signature.scheme: Unsupported value: "HMACSHA1"`},
		{"unknown encoding", `[{"op":"add","path":"/spec/signature","value":{"encoding":"base32"}}]`, `spec.signature.encoding: Unsupported value: "base32"`},
		{"bearer in base64", `[{"op":"add","path":"/spec/signature","value":{"scheme":"Bearer","encoding":"base64"}}]`, `encoding is for HMACSHA256 signatures`},
		{"header with a colon", `[{"op":"add","path":"/spec/signature","value":{"header":"X-Sig: 1"}}]`, `spec.signature.header: Invalid value: "X-Sig: 1"`},
		{"body limit too large", `[{"op":"add","path":"/spec/limits","value":{"maxBodyBytes":1073741824}}]`, `spec.limits.maxBodyBytes: Invalid value: 1073741824`},
		{"no rate", `[{"op":"add","path":"/spec/limits","value":{"requestsPerSecond":0}}]`, `spec.limits.requestsPerSecond: Invalid value: 0`},
		{"secret name with a slash", `[{"op":"replace","path":"/spec/secretRef/name","value":"../hook"}]`, `spec.secretRef.name: Invalid value: "../hook"`},
		{"no policy", `[{"op":"remove","path":"/spec/policyRef"}]`, `spec.policyRef: Required value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := patched(t, baseReceiver, tc.patch)
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid receiver")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestReceiverDefaultsColumnsAndNames(t *testing.T) {
	g := NewWithT(t)
	obj := decodeOne(t, baseReceiver)
	g.Expect(env.Client.Create(ctx(t), obj)).To(Succeed())
	var got syncv1alpha1.SyncReceiver
	g.Expect(env.Client.Get(ctx(t), client.ObjectKeyFromObject(obj), &got)).To(Succeed())
	s := got.Spec
	g.Expect(s.SecretRef.Key).To(Equal("token"))
	g.Expect(s.Signature.Scheme).To(Equal(syncv1alpha1.HMACSHA256Signature))
	g.Expect(s.Signature.Encoding).To(Equal(syncv1alpha1.HexEncoding))
	g.Expect(s.Signature.HeaderName()).To(Equal("X-Signature-256"))
	g.Expect(s.Limits).To(Equal(syncv1alpha1.ReceiverLimits{RequestsPerSecond: 10, Burst: 20, MaxBodyBytes: 1 << 20}))
	g.Expect(s.Suspend).To(BeFalse())

	bearer := syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.BearerSignature}
	g.Expect(bearer.HeaderName()).To(Equal("Authorization"))
	g.Expect(bearer.HeaderPrefix()).To(Equal("Bearer "))
	bearer.Header = "X-Gitlab-Token"
	g.Expect(bearer.HeaderPrefix()).To(BeEmpty(), "a token in its own header comes alone")

	g.Expect(columnNames(getTable(t, "syncreceivers"))).To(Equal([]string{"Name", "Ready", "Path", "Status", "Age"}))
	resources, err := discoveryResources(t)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resources["syncreceivers"].ShortNames).To(ConsistOf("receiver"))
	g.Expect(resources["syncreceivers"].Categories).To(ContainElement("chainsync"))
}
