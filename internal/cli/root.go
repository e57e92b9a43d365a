// Package cli is the chainsync command line: one binary whose subcommands are the operator, a
// sync Job's entrypoint and the local tools.
package cli

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// NewRootCommand returns the `chainsync` command with every subcommand, reading the process's
// environment.
func NewRootCommand() *cobra.Command {
	return newRootCommand(os.Getenv)
}

// Run runs chainsync in-process with the given arguments and environment, as the local Job
// executor does for a pod, and returns its exit code.
func Run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	root := newRootCommand(func(k string) string { return env[k] })
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		return 1
	}
	return 0
}

func newRootCommand(env func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "chainsync",
		Short: "Keep each user's data in step between two systems, declaratively, on Kubernetes",
		Long: `chainsync syncs each user's items (contacts, accounts, rows) between two endpoints as
SyncPolicies say, and moves users along OnboardingChains of policies by themselves.`,
		SilenceUsage: true,
	}
	k := newKube()
	root.AddGroup(&cobra.Group{ID: pluginGroup, Title: "Cluster commands (also kubectl chainsync ...):"})
	records := newRecordsCommand(env, k)
	records.GroupID = pluginGroup
	root.AddCommand(newManagerCommand(), newCycleCommand(env), newForgetRecordsCommand(env), newReadMembersCommand(env),
		newLocalCommand(env), records)
	for _, c := range newPluginCommands(k) {
		c.GroupID = pluginGroup
		root.AddCommand(c)
	}
	return root
}

// bindLogFlags adds the zap logging flags (--zap-log-level, --zap-devel, ...) to cmd and returns
// a function that builds the logger they describe, writing to w.
func bindLogFlags(cmd *cobra.Command) func(w io.Writer) logr.Logger {
	opts := zap.Options{}
	goflags := flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)
	opts.BindFlags(goflags)
	cmd.Flags().AddGoFlagSet(goflags)
	return func(w io.Writer) logr.Logger {
		return zap.New(zap.UseFlagOptions(&opts), zap.WriteTo(w))
	}
}
