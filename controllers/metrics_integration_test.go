package controllers_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// scrapedGauges reads the operator's /metrics as Prometheus does and returns the values of the
// gauge name whose labels include want, keyed by their other labels (k=v,... sorted).
func scrapedGauges(g Gomega, name string, want map[string]string) map[string]float64 {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(scrape(g)))
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	fam, ok := families[name]
	if !ok {
		return out
	}
	g.Expect(fam.GetType()).To(Equal(dto.MetricType_GAUGE), name)
	for _, m := range fam.GetMetric() {
		var rest []string
		matches := true
		for _, l := range m.GetLabel() {
			v, wanted := want[l.GetName()]
			switch {
			case wanted && v != l.GetValue():
				matches = false
			case !wanted:
				rest = append(rest, l.GetName()+"="+l.GetValue())
			}
		}
		if matches {
			out[strings.Join(rest, ",")] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The gauges a dashboard and the alerts read say where users stand, as a person would count them
// in kubectl, and go away with the objects they describe.
func TestStateGaugesCountUsersWhereTheyStand(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	inNS := map[string]string{"namespace": ns}
	ada, bob := person(40), person(41)
	owner := person(42)[1]
	var team [][5]string
	for i := 43; i < 47; i++ {
		p := person(i)
		p[4] = owner
		team = append(team, p)
	}
	hrExport(t, ns, append([][5]string{ada, bob}, team...))
	directory(t, ns)

	// Ada and Bob go through a two-step chain; Dan waits on a chain whose first policy is
	// suspended; Lost names a policy that does not exist; Carol's team loses three people at once.
	for _, p := range []*syncv1alpha1.SyncPolicy{
		hrPolicy(ns, "import"), hrPolicy(ns, "bau"),
		hrPolicy(ns, "paused", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Suspend = true }),
		hrPolicy(ns, "guarded", func(p *syncv1alpha1.SyncPolicy) {
			p.Spec.Deletes.Propagate = true
			p.Spec.Deletes.MaxCount = new(int32(1))
		}),
	} {
		g.Expect(k8s.Create(ctx(t), p)).To(Succeed())
	}
	onboarding := &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding", Namespace: ns},
		Spec:       syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "import", Policy: "import"}, {Name: "bau", Policy: "bau"}}},
	}
	waiting := &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "waiting", Namespace: ns},
		Spec:       syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{{Name: "first", Policy: "paused"}, {Name: "then", Policy: "bau"}}},
	}
	g.Expect(k8s.Create(ctx(t), onboarding)).To(Succeed())
	g.Expect(k8s.Create(ctx(t), waiting)).To(Succeed())
	carol := policyUser(ns, "carol", owner, "guarded")
	for _, u := range []*syncv1alpha1.SyncUser{
		chainUser(ns, "ada", ada[1], "onboarding", ""), chainUser(ns, "bob", bob[1], "onboarding", ""),
		chainUser(ns, "dan", person(48)[1], "waiting", ""), policyUser(ns, "lost", person(49)[1], "nowhere"), carol,
	} {
		g.Expect(k8s.Create(ctx(t), u)).To(Succeed())
	}
	eventuallyCycled(t, ns, "carol", "guarded", func(g Gomega, c *syncv1alpha1.CycleResult) {
		g.Expect(c.Items.Created).To(BeEquivalentTo(4))
	})
	hrExport(t, ns, append([][5]string{ada, bob}, team[:1]...))

	g.Eventually(func(g Gomega) {
		g.Expect(scrapedGauges(g, "chainsync_chain_step_users", inNS)).To(Equal(map[string]float64{
			"chain=onboarding,policy=import,step=import": 0, "chain=onboarding,policy=bau,step=bau": 2,
			"chain=waiting,policy=paused,step=first": 1, "chain=waiting,policy=bau,step=then": 0,
		}))
		g.Expect(scrapedGauges(g, "chainsync_chain_completed_users", inNS)).To(Equal(map[string]float64{
			"chain=onboarding": 2, "chain=waiting": 0}))
		g.Expect(scrapedGauges(g, "chainsync_policy_users", map[string]string{"namespace": ns, "policy": "bau"})).To(Equal(map[string]float64{
			"state=synced": 2, "state=failing": 0, "state=waiting": 0}))
		g.Expect(scrapedGauges(g, "chainsync_policy_users", map[string]string{"namespace": ns, "policy": "paused"})).To(Equal(map[string]float64{
			"state=synced": 0, "state=failing": 0, "state=waiting": 1}))
		g.Expect(scrapedGauges(g, "chainsync_stalled_users", inNS)).To(Equal(map[string]float64{
			"policy=nowhere,reason=" + syncv1alpha1.SyncUserPolicyNotFoundReason:          1,
			"policy=guarded,reason=" + syncv1alpha1.SyncUserDeleteThresholdExceededReason: 1,
		}))
		g.Expect(scrapedGauges(g, "chainsync_pending_deletes", map[string]string{"namespace": ns, "policy": "guarded"})).To(Equal(map[string]float64{"": 3}))
		g.Expect(scrapedGauges(g, "chainsync_pending_deletes_users", map[string]string{"namespace": ns, "policy": "guarded"})).To(Equal(map[string]float64{"": 1}))
		g.Expect(scrapedGauges(g, "chainsync_pending_deletes_users", map[string]string{"namespace": ns, "policy": "bau"})).To(Equal(map[string]float64{"": 0}))
	}, 2*time.Minute, 250*time.Millisecond).Should(Succeed())

	// Only Dan is still working through a step: the oldest entry is when he was placed on it.
	dan := getUser(g, t, ns, "dan")
	g.Expect(dan.Status.History).NotTo(BeEmpty())
	g.Expect(scrapedGauges(g, "chainsync_chain_step_oldest_entered_timestamp_seconds", inNS)).To(Equal(map[string]float64{
		"chain=waiting,policy=paused,step=first": float64(dan.Status.History[len(dan.Status.History)-1].EnteredTime.Unix()),
	}))

	// Deleted, the chain, the policy and the user take their series with them.
	g.Expect(k8s.Delete(ctx(t), waiting)).To(Succeed())
	g.Expect(k8s.Delete(ctx(t), carol)).To(Succeed())
	g.Expect(k8s.Delete(ctx(t), hrPolicy(ns, "guarded"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(scrapedGauges(g, "chainsync_chain_step_users", map[string]string{"namespace": ns, "chain": "waiting"})).To(BeEmpty())
		g.Expect(scrapedGauges(g, "chainsync_chain_completed_users", map[string]string{"namespace": ns, "chain": "waiting"})).To(BeEmpty())
		g.Expect(scrapedGauges(g, "chainsync_policy_users", map[string]string{"namespace": ns, "policy": "guarded"})).To(BeEmpty())
		g.Expect(scrapedGauges(g, "chainsync_pending_deletes", map[string]string{"namespace": ns, "policy": "guarded"})).To(BeEmpty())
		g.Expect(scrapedGauges(g, "chainsync_stalled_users", map[string]string{"namespace": ns, "policy": "guarded"})).To(BeEmpty())
	}, wait, 250*time.Millisecond).Should(Succeed())
}
