// Package cli is the chainsync command line: one binary whose subcommands are the operator, a
// sync Job's entrypoint and the local tools.
package cli

import (
	"flag"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// NewRootCommand returns the `chainsync` command with every subcommand.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "chainsync",
		Short: "Keep each user's data in step between two systems, declaratively, on Kubernetes",
		Long: `chainsync syncs each user's items (contacts, accounts, rows) between two endpoints as
SyncPolicies say, and moves users along OnboardingChains of policies by themselves.`,
		SilenceUsage: true,
	}
	root.AddCommand(newManagerCommand())
	return root
}

// bindLogFlags adds the zap logging flags (--zap-log-level, --zap-devel, ...) to cmd and installs
// the logger before the command runs.
func bindLogFlags(cmd *cobra.Command) {
	opts := zap.Options{}
	goflags := flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)
	opts.BindFlags(goflags)
	cmd.Flags().AddGoFlagSet(goflags)
	previous := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
		if previous != nil {
			return previous(cmd, args)
		}
		return nil
	}
}
