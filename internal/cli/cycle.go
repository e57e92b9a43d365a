package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chainsync/chainsync/internal/cycle"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

func newCycleCommand(env func(string) string) *cobra.Command {
	r := &cycle.Runner{}
	var logger func(io.Writer) logr.Logger
	var shards int
	var forget bool
	cmd := &cobra.Command{
		Use:   "cycle --namespace NS --policy POLICY --job JOB --store DIR [flags] -- USER...",
		Short: "Run one cycle Job's share of users (the entrypoint of the Jobs the operator launches)",
		Long: `Runs the sync engine for each SyncUser named (its share of them, in an Indexed Job: pod i of
--shards takes users i, i+shards, ...) and writes each user's result to its status. Exits 0 when
every user's cycle ran, item errors included; non-zero when the cycle itself could not run.`,
		RunE: func(cmd *cobra.Command, users []string) error {
			var err error
			if r.Client, err = apiClient(env); err != nil {
				return err
			}
			r.FSRoot = env("CHAINSYNC_FS_ROOT")
			r.Log = logger(cmd.ErrOrStderr()).WithName("cycle").WithValues("job", r.Job)
			mine, err := shareOf(users, shards, env("JOB_COMPLETION_INDEX"))
			if err != nil {
				return err
			}
			if forget {
				return r.Forget(cmd.Context(), mine)
			}
			return r.Run(cmd.Context(), mine)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Namespace, "namespace", "", "Namespace of the policy and its users")
	f.StringVar(&r.Policy, "policy", "", "SyncPolicy to run")
	f.StringVar(&r.Job, "job", "", "Name of the cycle (the Job); delete approvals name it")
	f.StringVar(&r.Store, "store", "", "Directory of the record store")
	f.StringVar(&r.Volumes, "volumes", "/chainsync/volumes", "Directory where each PersistentVolumeClaim is mounted, by claim name")
	f.StringVar(&r.Secrets, "secrets", "/chainsync/secrets", "Directory where the policy's Secrets are mounted, as <secret>/<key>")
	f.StringArrayVar(&r.AllowedDestinations, "allow-destination", nil, "A host:port the operator allowed the policy's Secrets to be sent to (repeatable)")
	f.IntVar(&r.Concurrency, "concurrency", 4, "Users cycled at the same time")
	f.IntVar(&shards, "shards", 1, "Pods sharing the users (the Indexed Job's completions)")
	f.DurationVar(&r.LockTimeout, "lock-timeout", time.Minute, "How long a user waits for another cycle of the same user")
	f.BoolVar(&forget, "forget-records", false, "Delete the users' records instead of cycling them")
	for _, name := range []string{"namespace", "policy", "job", "store"} {
		_ = cmd.MarkFlagRequired(name)
	}
	logger = bindLogFlags(cmd)
	return cmd
}

// shareOf picks this pod's users: every shards-th from its completion index.
func shareOf(users []string, shards int, index string) ([]string, error) {
	if shards <= 1 || index == "" {
		return users, nil
	}
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || i >= shards {
		return nil, fmt.Errorf("JOB_COMPLETION_INDEX %q is not an index below --shards %d", index, shards)
	}
	var mine []string
	for j := i; j < len(users); j += shards {
		mine = append(mine, users[j])
	}
	return mine, nil
}

// kubeConfig uses KUBECONFIG when set (the local executor provides one per pod), else the pod's
// service account.
// apiClient connects to the API server as kubeConfig says, knowing chainsync's kinds.
func apiClient(env func(string) string) (client.Client, error) {
	cfg, err := kubeConfig(env)
	if err != nil {
		return nil, err
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

func kubeConfig(env func(string) string) (*rest.Config, error) {
	if path := env("KUBECONFIG"); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no KUBECONFIG and not in a pod: %w", err)
	}
	return cfg, nil
}
