package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/cycle"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/jobargs"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
)

func newCycleCommand(env func(string) string) *cobra.Command {
	var args jobargs.Cycle
	var fsRoot string
	var logger func(io.Writer) logr.Logger
	cmd := &cobra.Command{
		Use:   jobargs.CycleCommand + " --namespace NS --policy POLICY --job JOB --store DIR [flags] -- USER...",
		Short: "Run one cycle Job's share of users (the entrypoint of the Jobs the operator launches)",
		Long: `Runs the sync engine for each SyncUser named (its share of them, in an Indexed Job: pod i of
--shards takes users i, i+shards, ...) and writes each user's result to its status. Exits 0 when
every user's cycle ran, item errors included; non-zero when the cycle itself could not run.`,
		RunE: func(cmd *cobra.Command, users []string) error {
			args.Users = users
			if err := args.Validate(); err != nil {
				return err
			}
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			mine, err := shareOf(args.Users, args.Shards, env("JOB_COMPLETION_INDEX"))
			if err != nil {
				return err
			}
			r := &cycle.Runner{Cycle: args, Client: c, FSRoot: fsRoot,
				Log: logger(cmd.ErrOrStderr()).WithName("cycle").WithValues("job", args.Job)}
			return r.Run(cmd.Context(), mine)
		},
	}
	args.BindFlags(cmd.Flags())
	bindFSRoot(cmd, &fsRoot)
	logger = bindLogFlags(cmd)
	return cmd
}

func newForgetRecordsCommand(env func(string) string) *cobra.Command {
	var args jobargs.ForgetRecords
	var fsRoot string
	var logger func(io.Writer) logr.Logger
	cmd := &cobra.Command{
		Use:   jobargs.ForgetRecordsCommand + " --namespace NS --store DIR [flags] -- USER...",
		Short: "Delete users' records from a record store (the entrypoint of the Job that runs when a SyncUser with recordsOnDelete: Delete goes)",
		Long: `Deletes each SyncUser's records from the store and releases its claims, so another policy may
sync the same person there. Each step can be cut short and run again. The SyncUsers must still
exist (the operator holds a deleted one with its finalizer until this has run): their identity
names their records.`,
		RunE: func(cmd *cobra.Command, users []string) error {
			args.Users = users
			if err := args.Validate(); err != nil {
				return err
			}
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			r := &cycle.Runner{Client: c, FSRoot: fsRoot,
				Cycle: jobargs.Cycle{Namespace: args.Namespace, Job: args.Job, Store: args.Store, LockTimeout: args.LockTimeout},
				Log:   logger(cmd.ErrOrStderr()).WithName("forget-records").WithValues("job", args.Job)}
			return r.Forget(cmd.Context(), args.Users)
		},
	}
	args.BindFlags(cmd.Flags())
	bindFSRoot(cmd, &fsRoot)
	logger = bindLogFlags(cmd)
	return cmd
}

func newReadMembersCommand(env func(string) string) *cobra.Command {
	var args jobargs.ReadMembers
	var fsRoot string
	var logger func(io.Writer) logr.Logger
	cmd := &cobra.Command{
		Use:   jobargs.ReadMembersCommand + " --namespace NS --enrolment NAME --job JOB [flags]",
		Short: "Read a SyncEnrolment's members from its source (the entrypoint of the Jobs that read enrolment sources)",
		Long: `Opens the endpoint that the enrolment's spec.source names (a side of a SyncPolicy, with that
policy's Secrets and volumes), reads the collection whole, and writes one member per row to the
ConfigMap <enrolment>-members, which the operator turns into SyncUsers. A read that fails writes
nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := args.Validate(); err != nil {
				return err
			}
			c, err := apiClient(env)
			if err != nil {
				return err
			}
			r := &cycle.MembersReader{ReadMembers: args, Client: c, FSRoot: fsRoot,
				Log: logger(cmd.ErrOrStderr()).WithName("read-members").WithValues("job", args.Job)}
			return r.Run(cmd.Context())
		},
	}
	args.BindFlags(cmd.Flags())
	bindFSRoot(cmd, &fsRoot)
	logger = bindLogFlags(cmd)
	return cmd
}

// bindFSRoot adds --fs-root, which the local Job executor passes: there is no container, and
// the pod's filesystem is a sandbox directory mirroring its mounts.
func bindFSRoot(cmd *cobra.Command, fsRoot *string) {
	cmd.Flags().StringVar(fsRoot, executor.FSRootFlag, "",
		"Directory standing for the container's root filesystem: absolute paths are opened under it (given by the local Job executor)")
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
	// client-go's default (5 requests/s, burst 10) would make a Job of 500 users wait minutes
	// for its own reads and status writes; the API server's priority and fairness is the limit
	// that protects it.
	cfg.QPS, cfg.Burst = 200, 400
	scheme, err := chainsyncscheme.New()
	if err != nil {
		return nil, err
	}
	// Only chainsync's own kinds are read and written: a fixed mapping spares every pod the
	// discovery requests a dynamic one makes first (/api, /apis, the group's resources).
	// Every kind of the group is namespaced; ConfigMaps are where enrolment reads write members.
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{syncv1alpha1.GroupVersion, corev1.SchemeGroupVersion})
	for kind := range scheme.KnownTypes(syncv1alpha1.GroupVersion) {
		if !strings.HasSuffix(kind, "List") && !strings.HasSuffix(kind, "Options") && kind != "WatchEvent" && kind != "Status" {
			mapper.Add(syncv1alpha1.GroupVersion.WithKind(kind), meta.RESTScopeNamespace)
		}
	}
	mapper.Add(corev1.SchemeGroupVersion.WithKind("ConfigMap"), meta.RESTScopeNamespace)
	c, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
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
