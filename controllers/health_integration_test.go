package controllers_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// kstatusOf computes what Flux's and Argo CD's health checks (kstatus) make of an object.
func kstatusOf(g Gomega, t *testing.T, obj client.Object) status.Status {
	g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: raw})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func TestHealthChecksReadOurObjects(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada, bob := person(20), person(21)
	hrExport(t, ns, [][5]string{ada, bob})
	directory(t, ns)

	// A chain whose second step's policy does not exist yet: the chain cannot work.
	chain := &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec:       syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "import", Policy: "import"}, {Name: "bau", Policy: "bau"}}},
	}
	g.Expect(k8s.Create(ctx(t), chain)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, t, chain)).To(Equal(status.FailedStatus)) }, wait).Should(Succeed())

	// A user on a policy that does not exist is stuck until someone acts.
	lost := policyUser(ns, "lost", bob[1], "nowhere")
	g.Expect(k8s.Create(ctx(t), lost)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, t, lost)).To(Equal(status.FailedStatus)) }, wait).Should(Succeed())

	// A policy whose record store claim is missing is stuck too.
	broken := hrPolicy(ns, "broken", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Store.ClaimName = "missing" })
	g.Expect(k8s.Create(ctx(t), broken)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, t, broken)).To(Equal(status.FailedStatus)) }, wait).Should(Succeed())

	// Add the policies and a user: the chain and the user are in progress, then current.
	for _, name := range []string{"import", "bau"} {
		g.Expect(k8s.Create(ctx(t), hrPolicy(ns, name))).To(Succeed())
	}
	user := chainUser(ns, "ada", ada[1], "onboarding", "")
	g.Expect(k8s.Create(ctx(t), user)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(kstatusOf(g, t, user)).To(Equal(status.InProgressStatus)) }, wait, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(kstatusOf(g, t, user)).To(Equal(status.CurrentStatus))
		g.Expect(kstatusOf(g, t, chain)).To(Equal(status.CurrentStatus))
		g.Expect(getUser(g, t, ns, "ada").Status.Step).To(Equal("bau"))
	}, wait, 250*time.Millisecond).Should(Succeed())
	g.Expect(kstatusOf(g, t, hrPolicy(ns, "import"))).To(Equal(status.CurrentStatus))

	// Moving along the chain and completing it are told as events on the user.
	var events eventsv1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx(t), &events, client.InNamespace(ns))).To(Succeed())
		reasons := map[string]string{}
		for _, e := range events.Items {
			if e.Regarding.Kind == "SyncUser" && e.Regarding.Name == "ada" {
				reasons[e.Reason] = e.Note
			}
		}
		g.Expect(reasons).To(HaveKeyWithValue(syncv1alpha1.SyncUserChainAdvancedReason, ContainSubstring("moved to step bau")))
		g.Expect(reasons).To(HaveKey(syncv1alpha1.SyncUserChainCompletedReason))
	}, wait, 250*time.Millisecond).Should(Succeed())

	// The operator's metrics count cycles and items by result and operation.
	g.Eventually(func(g Gomega) {
		body := scrape(g)
		g.Expect(body).To(ContainSubstring(fmt.Sprintf(`chainsync_cycles_started_total{namespace=%q,policy="import"}`, ns)))
		g.Expect(body).To(ContainSubstring(fmt.Sprintf(`chainsync_cycles_finished_total{namespace=%q,policy="bau",result="empty"} 1`, ns)))
		g.Expect(body).To(ContainSubstring(fmt.Sprintf(`chainsync_items_applied_total{namespace=%q,operation="create",policy="import"} 1`, ns)))
		g.Expect(body).To(ContainSubstring(fmt.Sprintf(`chainsync_cycle_duration_seconds_count{namespace=%q,policy="import"}`, ns)))
	}, wait, 250*time.Millisecond).Should(Succeed())
}

func scrape(g Gomega) string {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return string(b)
}
