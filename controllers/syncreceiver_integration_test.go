package controllers_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/webhook"
)

// tokenSecret is a receiver's token, opted in to chainsync unless optOut.
func tokenSecret(ns, name, token string, optOut bool) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{syncv1alpha1.CredentialsLabel: "true"}}, Data: map[string][]byte{"token": []byte(token)}}
	if optOut {
		s.Labels = nil
	}
	return s
}

// githubReceiver is signed as GitHub signs, and finds the user by the email in /user/email.
func githubReceiver(ns, name, policy, secret string, mutate ...func(*syncv1alpha1.SyncReceiver)) *syncv1alpha1.SyncReceiver {
	r := &syncv1alpha1.SyncReceiver{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: syncv1alpha1.SyncReceiverSpec{
			PolicyRef: syncv1alpha1.PolicyReference{Name: policy},
			SecretRef: syncv1alpha1.ReceiverSecretReference{Name: secret},
			Signature: syncv1alpha1.ReceiverSignature{Header: "X-Hub-Signature-256", Prefix: "sha256="},
			User:      syncv1alpha1.ReceiverUsers{EmailPointer: "/user/email"},
		},
	}
	for _, m := range mutate {
		m(r)
	}
	return r
}

// readyPath waits for the receiver to be Ready and returns its path.
func readyPath(t *testing.T, r *syncv1alpha1.SyncReceiver) string {
	t.Helper()
	var path string
	NewWithT(t).Eventually(func(g Gomega) {
		got := &syncv1alpha1.SyncReceiver{}
		g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(r), got)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, syncv1alpha1.ReadyCondition)).To(BeTrue(), "%+v", got.Status.Conditions)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		path = got.Status.WebhookPath
	}, wait, 100*time.Millisecond).Should(Succeed())
	return path
}

type call struct {
	code       int
	outcome    string
	retryAfter string
}

// post calls the operator's webhook port.
func post(t *testing.T, method, path string, body []byte, header ...string) call {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, "http://"+webhookAddr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Outcome string }
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return call{resp.StatusCode, answer.Outcome, resp.Header.Get("Retry-After")}
}

func githubSignature(token string, body []byte) string {
	return "sha256=" + hex.EncodeToString(webhook.Sign([]byte(token), body))
}

func emailBody(email string) []byte {
	return fmt.Appendf(nil, `{"action":"updated","user":{"email":%q}}`, email)
}

func TestReceiverCyclesTheUserACallNamesAndNothingElse(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada, bob := person(1), person(2)
	hrExport(t, ns, [][5]string{ada, bob})
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hourly", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Schedule.Interval = "1h" }))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "hourly"))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "bob", bob[1], "hourly"))).To(Succeed())
	first := eventuallyCycled(t, ns, "ada", "hourly", func(Gomega, *syncv1alpha1.CycleResult) {}).Status.LastCycle.ID
	eventuallyCycled(t, ns, "bob", "hourly", func(Gomega, *syncv1alpha1.CycleResult) {})

	const token = "wh-token-5a1f9c"
	secret := tokenSecret(ns, "hr-webhook", token, false)
	g.Expect(k8s.Create(ctx(t), secret)).To(Succeed())
	rcv := githubReceiver(ns, "hr", "hourly", "hr-webhook", func(r *syncv1alpha1.SyncReceiver) { r.Spec.Limits.MaxBodyBytes = 1024 })
	g.Expect(k8s.Create(ctx(t), rcv)).To(Succeed())
	path := readyPath(t, rcv)
	g.Expect(path).To(Equal(webhook.Path([]byte(token), ns, "hr")))
	g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
	g.Expect(rcv.Spec.Signature.Scheme).To(Equal(syncv1alpha1.HMACSHA256Signature), "defaults are visible")
	g.Expect(rcv.Spec.Limits.RequestsPerSecond).To(BeEquivalentTo(10))
	statusJSON, _ := json.Marshal(rcv.Status)
	g.Expect(string(statusJSON)).NotTo(ContainSubstring(token))

	body := emailBody(strings.ToUpper(ada[1]))
	sig := githubSignature(token, body)
	// Refused calls: none of them may ask for a cycle.
	g.Expect(post(t, http.MethodPost, path, body)).To(Equal(call{code: 401, outcome: "unauthorized"}), "unsigned")
	g.Expect(post(t, http.MethodPost, path, body, "X-Hub-Signature-256", githubSignature("not-the-token", body))).
		To(Equal(call{code: 401, outcome: "unauthorized"}), "signed with another token")
	g.Expect(post(t, http.MethodPost, path, emailBody(bob[1]), "X-Hub-Signature-256", sig)).
		To(Equal(call{code: 401, outcome: "unauthorized"}), "another body under ada's signature")
	big := fmt.Appendf(nil, `{"user":{"email":%q},"pad":%q}`, ada[1], strings.Repeat("x", 2048))
	g.Expect(post(t, http.MethodPost, path, big, "X-Hub-Signature-256", githubSignature(token, big))).
		To(Equal(call{code: 413, outcome: "too_large"}))
	notJSON := []byte("email=" + ada[1])
	g.Expect(post(t, http.MethodPost, path, notJSON, "X-Hub-Signature-256", githubSignature(token, notJSON))).
		To(Equal(call{code: 400, outcome: "bad_request"}))
	g.Expect(post(t, http.MethodGet, path, nil)).To(Equal(call{code: 405, outcome: "bad_request"}))
	g.Expect(post(t, http.MethodPost, webhook.Path([]byte("guess"), ns, "hr"), body, "X-Hub-Signature-256", sig)).
		To(Equal(call{code: 404, outcome: "not_found"}))
	nobody := emailBody("nobody@example.com")
	g.Expect(post(t, http.MethodPost, path, nobody, "X-Hub-Signature-256", githubSignature(token, nobody))).
		To(Equal(call{code: 202, outcome: "unknown_user"}))
	g.Consistently(func(g Gomega) {
		g.Expect(getUser(g, t, ns, "ada").Annotations).NotTo(HaveKey(syncv1alpha1.RequestedAtAnnotation))
		g.Expect(getUser(g, t, ns, "bob").Annotations).NotTo(HaveKey(syncv1alpha1.RequestedAtAnnotation))
	}, 2500*time.Millisecond, 250*time.Millisecond).Should(Succeed(), "no refused call asks for a cycle")

	// A good call: ada (her email in another case) cycles now, bob does not.
	g.Expect(post(t, http.MethodPost, path, body, "X-Hub-Signature-256", sig)).To(Equal(call{code: 202, outcome: "accepted"}))
	cycled := eventuallyCycled(t, ns, "ada", "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) { g.Expect(c.ID).NotTo(Equal(first)) })
	g.Expect(cycled.Status.LastHandledRequestedAt).To(Equal(cycled.Annotations[syncv1alpha1.RequestedAtAnnotation]))
	g.Expect(getUser(g, t, ns, "bob").Annotations).NotTo(HaveKey(syncv1alpha1.RequestedAtAnnotation))

	g.Eventually(func(g Gomega) {
		metrics := scrape(g)
		for outcome, n := range map[string]int{"unauthorized": 3, "too_large": 1, "bad_request": 2, "unknown_user": 1, "accepted": 1} {
			g.Expect(metrics).To(ContainSubstring(fmt.Sprintf(`chainsync_webhook_calls_total{namespace=%q,outcome=%q,receiver="hr"} %d`, ns, outcome, n)))
		}
	}, wait).Should(Succeed())

	// A new token moves the path at once: the old one serves nothing, the new one is shown.
	secret.Data["token"] = []byte("rotated-token-77")
	g.Expect(k8s.Update(ctx(t), secret)).To(Succeed())
	newPath := webhook.Path([]byte("rotated-token-77"), ns, "hr")
	g.Eventually(func() string { return readyPath(t, rcv) }, wait).Should(Equal(newPath))
	g.Expect(post(t, http.MethodPost, path, body, "X-Hub-Signature-256", sig).code).To(Equal(404))
	g.Expect(post(t, http.MethodPost, newPath, body, "X-Hub-Signature-256", githubSignature("rotated-token-77", body))).
		To(Equal(call{code: 202, outcome: "accepted"}))
}

// A hundred calls for one user in a burst are one or two cycles (the calls may straddle two
// coalescing windows), not a hundred.
func TestReceiverBurstIsCoalescedIntoOneCycle(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(3)
	hrExport(t, ns, [][5]string{ada})
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hourly", func(p *syncv1alpha1.SyncPolicy) {
		p.Spec.Schedule.Interval = "1h"
		p.Spec.JobTemplate.SuccessfulJobsHistoryLimit = ptr.To[int32](50)
	}))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "hourly"))).To(Succeed())
	eventuallyCycled(t, ns, "ada", "hourly", func(Gomega, *syncv1alpha1.CycleResult) {})
	jobs := func(g Gomega) int {
		var list batchv1.JobList
		g.Expect(k8s.List(ctx(t), &list, client.InNamespace(ns), client.MatchingLabels{syncv1alpha1.PolicyLabel: "hourly"})).To(Succeed())
		return len(list.Items)
	}
	g.Expect(jobs(g)).To(Equal(1))

	const token = "burst-token"
	g.Expect(k8s.Create(ctx(t), tokenSecret(ns, "hr-webhook", token, false))).To(Succeed())
	rcv := githubReceiver(ns, "hr", "hourly", "hr-webhook", func(r *syncv1alpha1.SyncReceiver) {
		r.Spec.Limits = syncv1alpha1.ReceiverLimits{RequestsPerSecond: 1000, Burst: 1000}
	})
	g.Expect(k8s.Create(ctx(t), rcv)).To(Succeed())
	path := readyPath(t, rcv)

	// Every value the annotation takes is a request for a cycle: a watch sees each of them.
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx(t), &syncv1alpha1.SyncUserList{}, client.InNamespace(ns))
	g.Expect(err).NotTo(HaveOccurred())
	requested := map[string]bool{}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for e := range w.ResultChan() {
			if u, ok := e.Object.(*syncv1alpha1.SyncUser); ok && u.Annotations[syncv1alpha1.RequestedAtAnnotation] != "" {
				requested[u.Annotations[syncv1alpha1.RequestedAtAnnotation]] = true
			}
		}
	}()

	body := emailBody(ada[1])
	sig := githubSignature(token, body)
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for range 10 {
		wg.Go(func() {
			for range 10 {
				codes <- post(t, http.MethodPost, path, body, "X-Hub-Signature-256", sig).code
			}
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		g.Expect(code).To(Equal(202))
	}

	eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(u.Annotations).To(HaveKey(syncv1alpha1.RequestedAtAnnotation))
		g.Expect(u.Status.LastHandledRequestedAt).To(Equal(u.Annotations[syncv1alpha1.RequestedAtAnnotation]))
		g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.ReconcilingCondition)).To(BeFalse())
	})
	// Long enough for a second window's request and its cycle to have shown.
	g.Consistently(jobs, 4*time.Second, 250*time.Millisecond).Should(BeNumerically("<=", 3))
	g.Expect(jobs(g)).To(BeNumerically(">=", 2), "the burst cycled ada")
	w.Stop()
	<-watched
	g.Expect(len(requested)).To(BeNumerically("~", 1, 1), "a hundred calls within a second ask for one or two cycles")
}

func TestReceiverStatusAndRateLimit(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	rcv := githubReceiver(ns, "flooded", "no-such-policy", "flood-token", func(r *syncv1alpha1.SyncReceiver) {
		r.Spec.Limits = syncv1alpha1.ReceiverLimits{RequestsPerSecond: 1, Burst: 3}
	})
	g.Expect(k8s.Create(ctx(t), rcv)).To(Succeed())
	stalled := func(reason string) func(Gomega) {
		return func(g Gomega) {
			got := &syncv1alpha1.SyncReceiver{}
			g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(rcv), got)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, syncv1alpha1.StalledCondition)).To(BeTrue())
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, syncv1alpha1.ReadyCondition).Reason).To(Equal(reason))
			if reason == syncv1alpha1.SyncReceiverPolicyNotFoundReason {
				g.Expect(got.Status.WebhookPath).NotTo(BeEmpty(), "the path is shown as soon as the token is read")
			} else {
				g.Expect(got.Status.WebhookPath).To(BeEmpty())
			}
		}
	}
	g.Eventually(stalled(syncv1alpha1.SyncReceiverSecretNotFoundReason), wait).Should(Succeed())
	secret := tokenSecret(ns, "flood-token", "flood", true)
	g.Expect(k8s.Create(ctx(t), secret)).To(Succeed())
	g.Eventually(stalled(syncv1alpha1.SyncReceiverSecretNotAllowedReason), wait).Should(Succeed(), "a Secret not opted in is not read")
	secret.Labels = map[string]string{syncv1alpha1.CredentialsLabel: "true"}
	g.Expect(k8s.Update(ctx(t), secret)).To(Succeed())
	g.Eventually(stalled(syncv1alpha1.SyncReceiverPolicyNotFoundReason), wait).Should(Succeed())

	path := webhook.Path([]byte("flood"), ns, "flooded")
	var got []call
	for range 6 {
		got = append(got, post(t, http.MethodPost, path, []byte(`{}`)))
	}
	g.Expect(got[:3]).To(HaveEach(call{code: 401, outcome: "unauthorized"}), "the burst is allowed through to the signature check")
	for _, c := range got[3:] {
		g.Expect(c.code).To(Equal(http.StatusTooManyRequests))
		g.Expect(c.outcome).To(Equal("rate_limited"))
		g.Expect(strconv.Atoi(c.retryAfter)).To(BeNumerically(">=", 1))
	}
}

// Bearer tokens, as senders that cannot sign send them, and a receiver for every user.
func TestBearerReceiverCyclesEveryUserOfThePolicy(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada, bob := person(5), person(6)
	hrExport(t, ns, [][5]string{ada, bob})
	directory(t, ns)
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hourly", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Schedule.Interval = "1h" }))).To(Succeed())
	firsts := map[string]string{}
	for name, p := range map[string][5]string{"ada": ada, "bob": bob} {
		g.Expect(k8s.Create(ctx(t), policyUser(ns, name, p[1], "hourly"))).To(Succeed())
	}
	for _, name := range []string{"ada", "bob"} {
		firsts[name] = eventuallyCycled(t, ns, name, "hourly", func(Gomega, *syncv1alpha1.CycleResult) {}).Status.LastCycle.ID
	}
	g.Expect(k8s.Create(ctx(t), tokenSecret(ns, "export-done", "bearer-token-1", false))).To(Succeed())
	rcv := &syncv1alpha1.SyncReceiver{
		ObjectMeta: metav1.ObjectMeta{Name: "export-done", Namespace: ns},
		Spec: syncv1alpha1.SyncReceiverSpec{
			PolicyRef: syncv1alpha1.PolicyReference{Name: "hourly"},
			SecretRef: syncv1alpha1.ReceiverSecretReference{Name: "export-done"},
			Signature: syncv1alpha1.ReceiverSignature{Scheme: syncv1alpha1.BearerSignature},
			User:      syncv1alpha1.ReceiverUsers{AllUsers: true},
		},
	}
	g.Expect(k8s.Create(ctx(t), rcv)).To(Succeed())
	path := readyPath(t, rcv)

	g.Expect(post(t, http.MethodPost, path, nil, "Authorization", "Bearer bearer-token-2")).To(Equal(call{code: 401, outcome: "unauthorized"}))
	g.Expect(post(t, http.MethodPost, path, nil, "Authorization", "Bearer bearer-token-1")).To(Equal(call{code: 202, outcome: "accepted"}))
	for _, name := range []string{"ada", "bob"} {
		eventuallyCycled(t, ns, name, "hourly", func(g Gomega, c *syncv1alpha1.CycleResult) { g.Expect(c.ID).NotTo(Equal(firsts[name])) })
	}
}
