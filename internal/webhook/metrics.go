package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of a call, the outcome label of chainsync_webhook_calls_total.
const (
	outcomeAccepted     = "accepted"
	outcomeUnknownUser  = "unknown_user"
	outcomeUnauthorized = "unauthorized"
	outcomeTooLarge     = "too_large"
	outcomeRateLimited  = "rate_limited"
	outcomeBadRequest   = "bad_request"
	outcomeNotFound     = "not_found"
	outcomeSuspended    = "suspended"
	outcomeError        = "error"
)

// calls counts webhook calls by receiver and outcome. A call to a path that names no receiver
// has empty namespace and receiver labels, so guessing paths cannot grow the series.
var calls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "chainsync_webhook_calls_total",
	Help: "Webhook calls by receiver and outcome: accepted, unknown_user, unauthorized, too_large, rate_limited, bad_request, not_found, suspended, error.",
}, []string{"namespace", "receiver", "outcome"})

func init() {
	metrics.Registry.MustRegister(calls)
}
