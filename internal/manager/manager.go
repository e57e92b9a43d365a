// Package manager builds the chainsync operator: a controller-runtime manager with the
// chainsync scheme, health probes, metrics and leader election.
package manager

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

var enrolmentLabelExists = func() labels.Requirement {
	r, err := labels.NewRequirement(syncv1alpha1.EnrolmentLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return *r
}()

// stripUser keeps of a SyncUser what the operator reads: not its managedFields, nor kubectl's
// copy of the applied manifest, nor its last cycle's item reports (for people and the plugin,
// read from the API). They can be most of a user, and the operator holds every user. It writes
// users only by patches, which leave what it does not hold as it is.
func stripUser(obj any) (any, error) {
	u, ok := obj.(*syncv1alpha1.SyncUser)
	if !ok {
		return obj, nil // A tombstone of a deleted user.
	}
	u.ManagedFields = nil
	if _, found := u.Annotations[corev1.LastAppliedConfigAnnotation]; found {
		delete(u.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	if c := u.Status.LastCycle; c != nil {
		c.ItemReports = nil
	}
	return u, nil
}

// LeaderElectionID names the Lease that replicas of the operator compete for.
const LeaderElectionID = "chainsync-manager.sync.chainsync.dev"

// Options configure the operator process.
type Options struct {
	// MetricsAddr serves Prometheus metrics; "0" turns them off.
	MetricsAddr string
	// InsecureMetrics serves metrics as plain HTTP to anyone who can reach MetricsAddr. Left
	// false, they are served over HTTPS and only to clients whose bearer token the API server
	// accepts (a TokenReview) and who may get the /metrics URL (a SubjectAccessReview): the
	// operator's own identity then needs config/rbac/metrics_auth_role.yaml.
	InsecureMetrics bool
	// ProbeAddr serves /healthz and /readyz.
	ProbeAddr string
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; empty means the namespace the pod runs in.
	LeaderElectionNamespace string
	// Namespaces restricts the operator to these namespaces; empty watches all.
	Namespaces []string
}

// New returns a manager ready for controllers to be added and started.
func New(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	scheme, err := chainsyncscheme.New()
	if err != nil {
		return nil, err
	}
	// Nothing the operator does reads managedFields, and on SyncUsers written by two managers
	// (the operator and the cycle Jobs) they are a large share of each object: thousands of
	// users held without them take that much less memory.
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&syncv1alpha1.SyncUser{}: {Transform: stripUser},
			// The only ConfigMaps the operator reads are the members its enrolments' sources
			// yielded: not every ConfigMap of the cluster.
			&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(nil).Add(enrolmentLabelExists)},
		}}
	if len(opts.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsOptions(opts),
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	// Ready once the informer caches have synced, so a rolling update waits for a warm replica.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, nil
}

func metricsOptions(opts Options) metricsserver.Options {
	if opts.InsecureMetrics {
		return metricsserver.Options{BindAddress: opts.MetricsAddr}
	}
	return metricsserver.Options{
		BindAddress:    opts.MetricsAddr,
		SecureServing:  true,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
		// Without a certificate in CertDir the server makes a self-signed one in memory, which
		// suits Prometheus scraping a pod IP (it cannot verify a pod's name anyway) and a
		// read-only root filesystem.
		TLSOpts: []func(*tls.Config){offerOnlyHTTP1},
	}
}

// offerOnlyHTTP1 keeps HTTP/2 off the metrics port: scrapers speak HTTP/1.1, and HTTP/2's
// stream resets have been used to exhaust servers (CVE-2023-44487, CVE-2023-39325) before a
// request ever reaches the authentication filter.
func offerOnlyHTTP1(c *tls.Config) {
	c.NextProtos = []string{"http/1.1"}
}
