package controllers

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// Metrics served on the manager's /metrics. Cycle outcomes are counted when the operator sees a
// user's new cycle result, since a cycle pod lives too briefly to be scraped.
var (
	cyclesLaunched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chainsync_cycles_started_total",
		Help: "User cycles launched, by policy.",
	}, []string{"namespace", "policy"})

	cyclesFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chainsync_cycles_finished_total",
		Help: "User cycles finished, by policy and result (empty, changed, item_errors, failed).",
	}, []string{"namespace", "policy", "result"})

	itemsApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chainsync_items_applied_total",
		Help: "Items written by cycles, by policy and operation (create, update, delete).",
	}, []string{"namespace", "policy", "operation"})

	cycleDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chainsync_cycle_duration_seconds",
		Help:    "How long user cycles took, by policy.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
	}, []string{"namespace", "policy"})

	// objectState reports where users stand, read from the manager's cache at each scrape.
	objectState = &stateCollector{}
)

func init() {
	metrics.Registry.MustRegister(Collectors()...)
}

// Collectors are the metrics the controllers register in controller-runtime's registry, which
// the manager serves: dashboards and alerts may use their names and nothing else.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{cyclesLaunched, cyclesFinished, itemsApplied, cycleDuration, objectState}
}

// The gauges of where users stand. They are computed at each scrape from the objects in the
// manager's cache rather than set by the reconcilers: a deleted policy, chain or user then leaves
// no stale series behind, and the numbers are never older than the cache.
var (
	policyUsersDesc = prometheus.NewDesc("chainsync_policy_users",
		"Users on a policy by the state of their last cycle on it (synced, failing, waiting for a first cycle), as the policy's status counts them; the states add up to the users assigned.",
		[]string{"namespace", "policy", "state"}, nil)
	policySyncingDesc = prometheus.NewDesc("chainsync_policy_users_syncing",
		"Users of a policy in a running cycle Job, whatever their last cycle's state.",
		[]string{"namespace", "policy"}, nil)
	stalledUsersDesc = prometheus.NewDesc("chainsync_stalled_users",
		"Users marked Stalled: they cannot make progress until a person changes something; reason is the Stalled condition's reason.",
		[]string{"namespace", "policy", "reason"}, nil)
	pendingDeletesDesc = prometheus.NewDesc("chainsync_pending_deletes",
		"Deletes the delete threshold holds back until approved (sync.chainsync.dev/approve-deletes), summed over a policy's users.",
		[]string{"namespace", "policy"}, nil)
	pendingDeletesUsersDesc = prometheus.NewDesc("chainsync_pending_deletes_users",
		"Users of a policy whose deletes the delete threshold holds back until approved.",
		[]string{"namespace", "policy"}, nil)
	chainStepUsersDesc = prometheus.NewDesc("chainsync_chain_step_users",
		"Users on a step of an OnboardingChain, as the chain's status counts them (users that completed the chain stay on its last step).",
		[]string{"namespace", "chain", "step", "policy"}, nil)
	chainCompletedUsersDesc = prometheus.NewDesc("chainsync_chain_completed_users",
		"Users that completed an OnboardingChain: synced clean on its last step.",
		[]string{"namespace", "chain"}, nil)
	chainStepOldestDesc = prometheus.NewDesc("chainsync_chain_step_oldest_entered_timestamp_seconds",
		"When the user longest on a step of an OnboardingChain entered it, among users that have not completed the chain; absent for a step with none.",
		[]string{"namespace", "chain", "step", "policy"}, nil)
)

// stateCollector reports the gauges of where users stand. It reports nothing until the manager
// is started and elected: a standby replica would double every sum.
type stateCollector struct {
	mu      sync.RWMutex
	reader  client.Reader
	elected <-chan struct{}
}

// watch makes the collector read from mgr's cache once mgr leads. The last manager set up in a
// process is the one reported, as the registry is the process's.
func (c *stateCollector) watch(mgr ctrl.Manager) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reader, c.elected = mgr.GetClient(), mgr.Elected()
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{policyUsersDesc, policySyncingDesc, stalledUsersDesc, pendingDeletesDesc,
		pendingDeletesUsersDesc, chainStepUsersDesc, chainCompletedUsersDesc, chainStepOldestDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	reader, elected := c.reader, c.elected
	c.mu.RUnlock()
	if reader == nil {
		return
	}
	select {
	case <-elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var policies syncv1alpha1.SyncPolicyList
	var chains syncv1alpha1.OnboardingChainList
	var users syncv1alpha1.SyncUserList
	for _, list := range []client.ObjectList{&policies, &chains, &users} {
		// Read only, and thousands of users: no copies.
		if err := reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			// A scrape that fails whole would hide the cycle counters too; the gauges go
			// missing instead, which absent() alerts can tell.
			ctrl.Log.WithName("metrics").Error(err, "Listing chainsync objects for the state metrics")
			return
		}
	}
	for _, s := range summarizeState(policies.Items, chains.Items, users.Items) {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, s.value, s.labels...)
	}
}

// stateSample is one gauge value.
type stateSample struct {
	desc   *prometheus.Desc
	labels []string
	value  float64
}

// summarizeState computes the gauges of where users stand from the objects, in a stable order.
func summarizeState(policies []syncv1alpha1.SyncPolicy, chains []syncv1alpha1.OnboardingChain, users []syncv1alpha1.SyncUser) []stateSample {
	var out []stateSample
	add := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, stateSample{desc: d, labels: labels, value: v})
	}
	for i := range policies {
		p := &policies[i]
		n := p.Status.Users
		add(policyUsersDesc, float64(n.Synced), p.Namespace, p.Name, "synced")
		add(policyUsersDesc, float64(n.Failing), p.Namespace, p.Name, "failing")
		add(policyUsersDesc, float64(max(0, n.Assigned-n.Synced-n.Failing)), p.Namespace, p.Name, "waiting")
		add(policySyncingDesc, float64(n.Syncing), p.Namespace, p.Name)
	}

	type policyKey struct{ namespace, policy string }
	type stalledKey struct{ namespace, policy, reason string }
	type stepKey struct{ namespace, chain, step string }
	stalled := map[stalledKey]int{}
	pending := map[policyKey][2]int{} // deletes, users; every policy reports, 0 when none
	for i := range policies {
		pending[policyKey{policies[i].Namespace, policies[i].Name}] = [2]int{}
	}
	oldest := map[stepKey]time.Time{}
	for i := range users {
		u := &users[i]
		policy := u.Status.Policy
		if policy == "" && u.Spec.PolicyRef != nil {
			policy = u.Spec.PolicyRef.Name
		}
		if c := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.StalledCondition); c != nil && c.Status == "True" {
			stalled[stalledKey{u.Namespace, policy, c.Reason}]++
		}
		if c := userstatus.CycleOnCurrentStep(&u.Status); c != nil && c.PendingDeletes > 0 {
			k := policyKey{u.Namespace, policy}
			pending[k] = [2]int{pending[k][0] + int(c.PendingDeletes), pending[k][1] + 1}
		}
		if u.Status.Chain == "" || meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition) {
			continue
		}
		if n := len(u.Status.History); n > 0 && u.Status.History[n-1].EnteredTime != nil {
			k := stepKey{u.Namespace, u.Status.Chain, u.Status.Step}
			if t := u.Status.History[n-1].EnteredTime.Time; oldest[k].IsZero() || t.Before(oldest[k]) {
				oldest[k] = t
			}
		}
	}
	for _, k := range sortedKeys(stalled, func(a, b stalledKey) bool {
		return a.namespace+"/"+a.policy+"/"+a.reason < b.namespace+"/"+b.policy+"/"+b.reason
	}) {
		add(stalledUsersDesc, float64(stalled[k]), k.namespace, k.policy, k.reason)
	}
	for _, k := range sortedKeys(pending, func(a, b policyKey) bool { return a.namespace+"/"+a.policy < b.namespace+"/"+b.policy }) {
		add(pendingDeletesDesc, float64(pending[k][0]), k.namespace, k.policy)
		add(pendingDeletesUsersDesc, float64(pending[k][1]), k.namespace, k.policy)
	}

	for i := range chains {
		c := &chains[i]
		for _, s := range c.Status.Steps {
			add(chainStepUsersDesc, float64(s.Users), c.Namespace, c.Name, s.Name, s.Policy)
			if t := oldest[stepKey{c.Namespace, c.Name, s.Name}]; !t.IsZero() {
				add(chainStepOldestDesc, float64(t.Unix()), c.Namespace, c.Name, s.Name, s.Policy)
			}
		}
		add(chainCompletedUsersDesc, float64(c.Status.CompletedUsers), c.Namespace, c.Name)
	}
	return out
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}
