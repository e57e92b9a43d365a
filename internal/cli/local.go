package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/local"
)

func newLocalCommand(env func(string) string) *cobra.Command {
	opts := local.Options{}
	var noDemo bool
	var logger func(io.Writer) logr.Logger
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a local control plane with the operator and a demo, for trying chainsync",
		Long: `Starts kube-apiserver and etcd (the control plane the tests use) with its data in --data-dir,
installs or updates the CRDs, and runs the operator with a local Job executor that runs the cycle
Jobs in this process. On the first start of a data directory it applies a demo: an HR export
(csv) onboarded into a directory (sqlite) through a three-step chain with five users, whose
progress it shows until stopped. When slapd is installed it also runs, on a slapd and a SCIM
application of its own kept in the data directory, the chain HR export (csv) -> directory (ldap)
-> application (scim) for three new hires; without slapd it says how to get it.

It writes a kubeconfig (--kubeconfig, or <data-dir>/kubeconfig) for kubectl, to apply your own
policies and users. Ctrl-C or SIGTERM stops everything; the data directory is kept for the next
start unless --fresh. The operator's logs go to <data-dir>/logs/chainsync.log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if opts.DataDir == "" {
				opts.DataDir = defaultLocalDataDir(env)
			}
			if opts.Assets == "" {
				opts.Assets = env("KUBEBUILDER_ASSETS")
			}
			opts.Demo = !noDemo
			if err := local.Prepare(opts.DataDir, opts.Fresh); err != nil {
				return err
			}
			opts.Fresh = false // done
			logFile, err := os.OpenFile(local.LogFile(opts.DataDir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("opening the log file: %w", err)
			}
			defer logFile.Close()
			opts.Log = logger(logFile).WithName("local")
			ctrl.SetLogger(opts.Log)
			opts.Runner = executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
				return Run(ctx, args[1:], env, stdout, stderr) // args[0] is the container's "chainsync"
			})
			opts.Out = cmd.OutOrStdout()
			if f, ok := opts.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opts.Screen = func() (int, int) {
					w, h, err := term.GetSize(int(f.Fd()))
					if err != nil {
						return 0, 0
					}
					return w, h
				}
			}
			if err := local.Run(ctx, opts); err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
				return err
			}
			fmt.Fprintln(opts.Out, "Stopped; the data is kept in", opts.DataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", "", "Directory kept between runs (default ${XDG_DATA_HOME:-~/.local/share}/chainsync/local)")
	f.BoolVar(&opts.Fresh, "fresh", false, "Wipe the data directory first")
	f.BoolVar(&noDemo, "no-demo", false, "Start empty: do not apply the demo")
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "Where to write the kubeconfig (default <data-dir>/kubeconfig)")
	f.StringVar(&opts.Assets, "assets", "", "Directory of kube-apiserver and etcd (default KUBEBUILDER_ASSETS, else built by hack/envtest.sh)")
	f.IntVar(&opts.Port, "port", 0, "API server port (default: any free port)")
	f.IntVar(&opts.MaxConcurrentPods, "pods", 4, "Cycle pods running at once")
	f.StringVar(&opts.WebhookAddr, "webhook-bind-address", "",
		`Address serving SyncReceivers' webhook calls (default 127.0.0.1:9292, or a free port when taken); "0" turns them off`)
	logger = bindLogFlags(cmd)
	return cmd
}

// defaultLocalDataDir is ${XDG_DATA_HOME:-~/.local/share}/chainsync/local.
func defaultLocalDataDir(env func(string) string) string {
	base := env("XDG_DATA_HOME")
	if base == "" {
		base = filepath.Join(env("HOME"), ".local", "share")
	}
	return filepath.Join(base, "chainsync", "local")
}
