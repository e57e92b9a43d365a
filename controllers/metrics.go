package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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
)

func init() {
	metrics.Registry.MustRegister(cyclesLaunched, cyclesFinished, itemsApplied, cycleDuration)
}
