package cli

import (
	"io"
	"os"

	"github.com/go-logr/logr"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/webhook"
)

func newManagerCommand() *cobra.Command {
	opts := manager.Options{}
	var cycleImage, webhookAddr string
	var secureMetrics bool
	var logger func(io.Writer) logr.Logger
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the operator against the cluster of the current kubeconfig or service account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(logger(cmd.ErrOrStderr()))
			opts.InsecureMetrics = !secureMetrics
			cfg, err := ctrl.GetConfig()
			if err != nil {
				return err
			}
			mgr, err := manager.New(cfg, opts)
			if err != nil {
				return err
			}
			ctx := ctrl.SetupSignalHandler()
			if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{
				Jobs: controllers.CycleJobBuilder{Image: cycleImage},
			}); err != nil {
				return err
			}
			if err := webhook.SetupWithManager(ctx, mgr, webhook.Options{Addr: webhookAddr}); err != nil {
				return err
			}
			ctrl.Log.WithName("manager").Info("Starting the operator", "leaderElection", opts.LeaderElection,
				"metricsAddr", opts.MetricsAddr, "metricsSecure", secureMetrics, "webhookAddr", webhookAddr)
			return mgr.Start(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8443", `Address serving Prometheus metrics; "0" turns them off`)
	f.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve metrics over HTTPS, only to bearer tokens the API server authenticates and allows to get /metrics; "+
			"false serves plain HTTP to anyone (for development)")
	f.StringVar(&webhookAddr, "webhook-bind-address", ":9292",
		`Address serving SyncReceivers' webhook calls, on every replica; "0" turns them off`)
	f.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address serving /healthz and /readyz")
	f.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader so only one replica reconciles at a time")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's)")
	f.StringSliceVar(&opts.Namespaces, "namespace", nil, "Watch only these namespaces (repeatable; default: all)")
	f.StringVar(&cycleImage, "cycle-image", envOr("CHAINSYNC_IMAGE", "chainsync:dev"),
		"Image the cycle Jobs run: this chainsync build's image (env CHAINSYNC_IMAGE)")
	logger = bindLogFlags(cmd)
	return cmd
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
