package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/plugin"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

// The names the binary answers to as a kubectl plugin: kubectl runs kubectl-chainsync for
// `kubectl chainsync ...`, and kubectl_complete-chainsync to complete its arguments.
const (
	PluginName         = "kubectl-chainsync"
	PluginCompleteName = "kubectl_complete-chainsync"
	pluginDisplayName  = "kubectl chainsync"
	pluginGroup        = "cluster"
)

// operatorCommands are hidden from the plugin's help: they are the operator's and its Jobs',
// not a person's at a kubectl prompt.
var operatorCommands = []string{"manager", "cycle", "forget-records", "local"}

// Execute runs the binary as the name it was invoked as (its argv[0]'s base name): chainsync,
// or the kubectl plugin under either of its names.
func Execute(name string, args []string) error {
	return execute(name, args, os.Stdout, os.Stderr)
}

func execute(name string, args []string, stdout, stderr io.Writer) error {
	root := NewRootCommand()
	root.SetOut(stdout)
	root.SetErr(stderr)
	switch name {
	case PluginName, PluginCompleteName:
		asPlugin(root)
		if name == PluginCompleteName {
			// kubectl passes the words after `kubectl chainsync`; cobra completes them when
			// asked by its hidden __complete command.
			args = append([]string{cobra.ShellCompRequestCmd}, args...)
		}
	}
	root.SetArgs(args)
	return root.Execute()
}

// asPlugin makes root read as `kubectl chainsync` in help and completion.
func asPlugin(root *cobra.Command) {
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = pluginDisplayName
	// kubectl completes the plugin through kubectl_complete-chainsync, not a script of its own.
	root.CompletionOptions.HiddenDefaultCmd = true
	for _, g := range root.Groups() {
		if g.ID == pluginGroup {
			g.Title = "Commands:"
		}
	}
	for _, c := range root.Commands() {
		for _, name := range operatorCommands {
			if c.Name() == name {
				c.Hidden = true
			}
		}
	}
}

// kube is the API access of the plugin's commands, from kubectl's own flags (--kubeconfig,
// --context, -n/--namespace, ...), so that a command reaches the cluster kubectl would.
type kube struct {
	flags *genericclioptions.ConfigFlags
}

func newKube() *kube { return &kube{flags: genericclioptions.NewConfigFlags(true)} }

// bind adds kubectl's connection flags to cmd.
func (k *kube) bind(cmd *cobra.Command) {
	k.flags.AddFlags(cmd.Flags())
}

func (k *kube) client() (client.Client, error) {
	cfg, err := k.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	scheme, err := chainsyncscheme.New()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	return c, nil
}

// namespace is -n, else the kubeconfig context's namespace, else "default", as for kubectl.
func (k *kube) namespace() (string, error) {
	ns, _, err := k.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

func (k *kube) requests(cmd *cobra.Command) (*plugin.Requests, error) {
	c, err := k.client()
	if err != nil {
		return nil, err
	}
	ns, err := k.namespace()
	if err != nil {
		return nil, err
	}
	return &plugin.Requests{Client: c, Namespace: ns, Out: cmd.OutOrStdout()}, nil
}

// completeNames completes the arguments of a command from the cluster: names of the kinds given.
func (k *kube) completeNames(onlyPendingDeletes bool, kinds ...string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := k.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ns, err := k.namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		names, err := plugin.Names(ctx, c, ns, toComplete, onlyPendingDeletes, kinds...)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// newPluginCommands returns the plugin's commands but records, whose cluster form is part of
// the records command (see newRecordsCommand).
func newPluginCommands(k *kube) []*cobra.Command {
	var allNamespaces bool
	var output string
	var limit int
	status := &cobra.Command{
		Use:   "status [CHAIN]",
		Short: "Show each OnboardingChain's steps with their users as a tree, the stuck users first",
		Long: `Shows each OnboardingChain of the namespace (or only CHAIN) as a tree: its steps in order,
each with the users on it, those that cannot go on without a person (Stalled, deletes held
back, failing cycles) first with the reason, and the plugin command that resolves it where
one does. Users placed on a SyncPolicy directly follow, one tree per policy. CHAIN may also
name a SyncPolicy.`,
		Example: `  kubectl chainsync status
  kubectl chainsync status onboarding -n team-a
  kubectl chainsync status -A -o json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: k.completeNames(false, "OnboardingChain", plugin.KindSyncPolicy),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", output)
			}
			c, err := k.client()
			if err != nil {
				return err
			}
			opts := plugin.StatusOptions{Command: cmd.Root().DisplayName()}
			if !allNamespaces {
				if opts.Namespace, err = k.namespace(); err != nil {
					return err
				}
			}
			if len(args) == 1 {
				opts.Chain = args[0]
			}
			trees, err := plugin.Status(cmd.Context(), c, opts)
			if err != nil {
				return err
			}
			if output == "json" {
				if trees == nil {
					trees = []plugin.Tree{}
				}
				return writeJSON(cmd.OutOrStdout(), trees)
			}
			return plugin.WriteTrees(cmd.OutOrStdout(), trees, limit)
		},
	}
	status.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Show the chains of every namespace")
	status.Flags().StringVarP(&output, "output", "o", "text", "Output format: text or json (every user, no limit)")
	status.Flags().IntVar(&limit, "limit", 10, "Users shown per step besides the stuck ones, which are all shown; 0 shows every user")

	eachUser := func(use, short, long string, completePending bool, do func(ctx context.Context, r *plugin.Requests, name string) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Long: long,
			Args:              cobra.MinimumNArgs(1),
			ValidArgsFunction: k.completeNames(completePending, plugin.KindSyncUser),
			RunE: func(cmd *cobra.Command, args []string) error {
				r, err := k.requests(cmd)
				if err != nil {
					return err
				}
				var errs []error
				for _, name := range args {
					errs = append(errs, do(cmd.Context(), r, name))
				}
				return errors.Join(errs...)
			},
		}
	}
	eachRef := func(use, short, long string, do func(ctx context.Context, r *plugin.Requests, ref plugin.Ref) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Long: long,
			Args:              cobra.MinimumNArgs(1),
			ValidArgsFunction: k.completeNames(false, plugin.KindSyncUser, plugin.KindSyncPolicy),
			RunE: func(cmd *cobra.Command, args []string) error {
				r, err := k.requests(cmd)
				if err != nil {
					return err
				}
				var errs []error
				for _, arg := range args {
					ref, err := plugin.ParseRef(arg)
					if err == nil {
						err = do(cmd.Context(), r, ref)
					}
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			},
		}
	}
	refHelp := `
A bare NAME may be a SyncUser or a SyncPolicy; syncuser/NAME or syncpolicy/NAME (su/, sp/)
says which when both exist.`

	cmds := []*cobra.Command{
		status,
		eachUser("approve USER...", "Approve the deletes the delete threshold held back for a user",
			`Sets `+syncv1alpha1.ApproveDeletesAnnotation+` to the cycle that held the user's deletes back
(status.lastCycle.pendingDeletesCycle), which starts a cycle that carries them out. Refuses a
user with no deletes waiting.`, true,
			func(ctx context.Context, r *plugin.Requests, name string) error { return r.Approve(ctx, name) }),
		eachUser("resync USER...", "Run a Complete cycle of a user against its kept records, items given up included",
			`Sets `+syncv1alpha1.ReinitAnnotation+`=resync@<time>: the user's next cycle, which starts now,
compares everything on both sides and tries the items given up again. The request stays pending
until a cycle carried it out.`, false,
			func(ctx context.Context, r *plugin.Requests, name string) error {
				return r.Reinit(ctx, name, syncv1alpha1.ReinitResync)
			}),
		eachUser("clear USER...", "Forget a user's records and relink its items by matchOn",
			`Sets `+syncv1alpha1.ReinitAnnotation+`=clear@<time>: the user's next cycle, which starts now,
forgets the transaction records and runs an Initial cycle that links the items on both sides
by the policy's matchOn. For corrupt records and quarantined items.`, false,
			func(ctx context.Context, r *plugin.Requests, name string) error {
				return r.Reinit(ctx, name, syncv1alpha1.ReinitClear)
			}),
		eachRef("sync-now (USER | POLICY)...", "Start a cycle now, of a user or of every user of a policy",
			`Sets `+syncv1alpha1.RequestedAtAnnotation+` to the current time.`+refHelp,
			func(ctx context.Context, r *plugin.Requests, ref plugin.Ref) error { return r.SyncNow(ctx, ref) }),
		eachRef("suspend (USER | POLICY)...", "Stop new cycles of a user or a policy (spec.suspend=true)",
			`Sets spec.suspend=true, as `+"`kubectl patch`"+` would, recorded as field manager `+plugin.FieldManager+`.
A running cycle finishes. spec is what GitOps tools own: one whose manifest sets
spec.suspend puts its value back at its next sync, so suspend there in Git.`+refHelp,
			func(ctx context.Context, r *plugin.Requests, ref plugin.Ref) error {
				return r.SetSuspend(ctx, ref, true)
			}),
		eachRef("resume (USER | POLICY)...", "Let a suspended user or policy cycle again (spec.suspend=false)",
			`Sets spec.suspend=false, recorded as field manager `+plugin.FieldManager+`; see suspend.`+refHelp,
			func(ctx context.Context, r *plugin.Requests, ref plugin.Ref) error {
				return r.SetSuspend(ctx, ref, false)
			}),
	}
	for _, c := range cmds {
		k.bind(c)
	}
	return cmds
}

// recordsInCluster is the RunE of `records USER`: a Job in the cluster prints the user's
// records from its policy's store.
func recordsInCluster(k *kube, output *string, image *string, timeout *time.Duration, keep *bool) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if *output != "table" && *output != "json" {
			return fmt.Errorf("--output must be table or json, not %q", *output)
		}
		c, err := k.client()
		if err != nil {
			return err
		}
		ns, err := k.namespace()
		if err != nil {
			return err
		}
		cfg, err := k.flags.ToRESTConfig()
		if err != nil {
			return err
		}
		clientset, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("creating the API client: %w", err)
		}
		return plugin.Records(cmd.Context(), args[0], plugin.RecordsOptions{
			Client: c, Namespace: ns, Logs: plugin.PodLogs{Pods: clientset.CoreV1()},
			Image: *image, Output: *output, Timeout: *timeout, Keep: *keep,
			Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(),
		})
	}
}
