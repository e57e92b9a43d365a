package webhook

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

// Every outcome a call can have, with the operator's most talkative logging: neither the token
// nor anything of the body may be in what it logs, nor in what it answers.
func TestNoTokenOrBodyInLogsOrAnswers(t *testing.T) {
	g := NewWithT(t)
	const token, secretEmail = "tok-9f8e7d6c5b4a", "ada.secret-marker@example.com"
	scheme, err := chainsyncscheme.New()
	g.Expect(err).NotTo(HaveOccurred())
	rcv := &syncv1alpha1.SyncReceiver{
		ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: "ns", UID: "rcv-uid"},
		Spec: syncv1alpha1.SyncReceiverSpec{
			PolicyRef: syncv1alpha1.PolicyReference{Name: "p"},
			SecretRef: syncv1alpha1.ReceiverSecretReference{Name: "hook", Key: "token"},
			Signature: syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.HMACSHA256Signature, Encoding: syncv1alpha1.HexEncoding},
			User:      syncv1alpha1.ReceiverUsers{EmailPointer: "/email"},
			Limits:    syncv1alpha1.ReceiverLimits{RequestsPerSecond: 1, Burst: 6, MaxBodyBytes: 1024},
		},
		Status: syncv1alpha1.SyncReceiverStatus{WebhookPath: Path([]byte(token), "ns", "hr")},
	}
	user := &syncv1alpha1.SyncUser{
		ObjectMeta: metav1.ObjectMeta{Name: "ada", Namespace: "ns"},
		Spec:       syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: secretEmail}},
		Status:     syncv1alpha1.SyncUserStatus{Policy: "p"},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: "ns", UID: "s-uid", ResourceVersion: "1",
		Labels: map[string]string{syncv1alpha1.CredentialsLabel: "true"}}, Data: map[string][]byte{"token": []byte(token)}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(rcv, user, secret).
		WithIndex(&syncv1alpha1.SyncReceiver{}, receiverPathIndex, func(o client.Object) []string {
			return []string{o.(*syncv1alpha1.SyncReceiver).Status.WebhookPath}
		}).
		WithIndex(&syncv1alpha1.SyncUser{}, userIndex, func(o client.Object) []string { return userIndexKeys(o.(*syncv1alpha1.SyncUser)) }).
		Build()
	clk := clocktesting.NewFakeClock(time.Now())
	s := NewServer("127.0.0.1:0", c, &Tokens{Metadata: c, Secrets: c}, clk)

	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})

	sign := func(body string) string { return hex.EncodeToString(Sign([]byte(token), []byte(body))) }
	good := `{"email":"` + secretEmail + `"}`
	var answers strings.Builder
	for _, tc := range []struct {
		method, path, body, sig string
		code                    int
	}{
		{http.MethodPost, rcv.Status.WebhookPath, good, sign(good), http.StatusAccepted},
		{http.MethodPost, rcv.Status.WebhookPath, `{"email":"nobody.secret-marker@example.com"}`, sign(`{"email":"nobody.secret-marker@example.com"}`), http.StatusAccepted},
		{http.MethodPost, rcv.Status.WebhookPath, good, sign("other"), http.StatusUnauthorized},
		{http.MethodPost, rcv.Status.WebhookPath, good, token, http.StatusUnauthorized},
		{http.MethodPost, rcv.Status.WebhookPath, "secret-marker " + strings.Repeat("x", 2000), "", http.StatusRequestEntityTooLarge},
		{http.MethodPost, rcv.Status.WebhookPath, "secret-marker not json", sign("secret-marker not json"), http.StatusBadRequest},
		{http.MethodPost, "/hook/secret-marker", good, sign(good), http.StatusNotFound},
		{http.MethodPost, rcv.Status.WebhookPath, good, sign(good), http.StatusTooManyRequests},
	} {
		req := httptest.NewRequestWithContext(ctrl.LoggerInto(context.Background(), log), tc.method, tc.path, bytes.NewBufferString(tc.body))
		req.Header.Set("X-Signature-256", tc.sig)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		g.Expect(rec.Code).To(Equal(tc.code), "%s %s", tc.path, tc.body)
		answers.WriteString(rec.Body.String())
	}
	g.Expect(s.coalescer.pending).To(HaveKey(types.NamespacedName{Namespace: "ns", Name: "ada"}))
	g.Expect(logs.String()).To(ContainSubstring(`"outcome"="unauthorized"`), "calls are logged at V(1)")
	for _, out := range []string{logs.String(), answers.String()} {
		g.Expect(out).NotTo(ContainSubstring(token))
		g.Expect(out).NotTo(ContainSubstring("secret-marker"))
	}
}
