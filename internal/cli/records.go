package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/cycle"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/plugin"
	"github.com/chainsync/chainsync/internal/records"
)

// recordsLockWait is how long a read waits for a cycle holding a user's records. Readers share
// the lock with each other but not with a cycle, which holds it only while it runs.
const recordsLockWait = 2 * time.Second

func newRecordsCommand(env func(string) string, k *kube) *cobra.Command {
	var storeDir, output, namespace, fsRoot, image string
	var timeout time.Duration
	var keep bool
	cmd := &cobra.Command{
		Use:   "records (USER | --store DIR (users | show USER | claims | release-claim USER TARGET))",
		Short: "Inspect a record store: its users, one user's records, which policy syncs whom where",
		Long: `Reads the transaction records that cycles keep in a record store (a policy's
store.claimName/subPath; locally, chainsync local prints the demo's), and what the user's last
cycles reported about single items: which failed and why, and what a dry run would write.
Read-only but for release-claim: it never takes a user's write lock, and waits briefly for a
running cycle of the same user.

records USER (a SyncUser, without --store) does the same from a laptop: it runs a short Job in
the user's namespace that mounts the store of the user's policy read-only and runs
` + "`chainsync records show`" + ` for that user, prints its output, and deletes the Job. It needs
permission to create Jobs and read pods/log there; the claim must be mountable where the Job
lands (a ReadWriteOnce claim in use by a running cycle on another node waits for it).`,
		Example: `  kubectl chainsync records alice -n team-a
  chainsync records --store /data/records show alice@example.com`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: k.completeNames(false, plugin.KindSyncUser),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			if storeDir != "" {
				return fmt.Errorf("records USER reads the store in the cluster; with --store, say records --store %s show %s", storeDir, args[0])
			}
			return recordsInCluster(k, &output, &image, &timeout, &keep)(cmd, args)
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&storeDir, "store", "", "Directory of the record store")
	f.StringVarP(&output, "output", "o", "table", "Output format: table or json")
	// Where the local Job executor runs `records show` of records USER, as it runs cycles.
	f.StringVar(&fsRoot, executor.FSRootFlag, "", "Directory standing for the container's root filesystem (given by the local Job executor)")
	_ = f.MarkHidden(executor.FSRootFlag)
	cmd.Flags().StringVar(&image, "image", "", "chainsync image of the Job of records USER (default: that of the namespace's newest cycle Job)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "How long records USER waits for its Job")
	cmd.Flags().BoolVar(&keep, "keep", false, "Leave the Job of records USER in place, for kubectl describe (Kubernetes removes it 5 minutes after it finished)")
	k.bind(cmd)

	open := func() (*records.Store, error) {
		if output != "table" && output != "json" {
			return nil, fmt.Errorf("--output must be table or json, not %q", output)
		}
		if storeDir == "" {
			return nil, errors.New("--store is required: the directory of the record store")
		}
		dir := storeDir
		if fsRoot != "" {
			dir = filepath.Join(fsRoot, storeDir)
		}
		// records.Open creates a missing store; a reader must not.
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("no record store at %s", storeDir)
		}
		return records.Open(dir)
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "users",
		Short: "List the users that have records, with how many items each has synced",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := open()
			if err != nil {
				return err
			}
			summaries, err := summarizeUsers(store)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), summaries)
			}
			return writeUserSummaries(cmd.OutOrStdout(), summaries)
		},
	}, &cobra.Command{
		Use:   "show USER",
		Short: "Show one user's records: pairs, watermarks, links, pending items, open intents and the last cycles' item reports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := open()
			if err != nil {
				return err
			}
			export, err := readUser(store, args[0])
			noRecords := errors.Is(err, records.ErrNoRecords)
			if err != nil && !noRecords {
				return err
			}
			// A dry run of a new user leaves reports and no records: they are shown all the same.
			cycles, cerr := store.CycleReports(args[0])
			if noRecords && len(cycles) == 0 {
				return err
			}
			if cerr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "Warning: %v\n", cerr)
			}
			export.Identity, export.Cycles = args[0], cycles
			if noRecords {
				export.FormatVersion = records.FormatVersion
			}
			if output == "json" {
				if export.Pairs == nil {
					export.Pairs = []records.PairExport{}
				}
				return writeJSON(cmd.OutOrStdout(), export)
			}
			return writeUserRecords(cmd.OutOrStdout(), export)
		},
	}, &cobra.Command{
		Use:   "claims",
		Short: "List which policy syncs each user into each target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := open()
			if err != nil {
				return err
			}
			claims, err := store.Claims()
			if err != nil {
				return fmt.Errorf("reading claims in %s: %w", storeDir, err)
			}
			slices.SortFunc(claims, func(a, b records.Claim) int {
				return strings.Compare(a.User+"\x00"+a.Target, b.User+"\x00"+b.Target)
			})
			listed := make([]listedClaim, len(claims))
			for i, c := range claims {
				listed[i].Claim = c
			}
			if namespace != "" {
				if err := markAbandoned(cmd.Context(), env, namespace, listed); err != nil {
					return err
				}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), listed)
			}
			return writeClaims(cmd.OutOrStdout(), listed, namespace != "")
		},
	}, &cobra.Command{
		Use:   "release-claim USER TARGET",
		Short: "Release the claim on USER's TARGET, so another policy may sync USER there (records are kept)",
		Long: `Drops the claim that says which policy syncs USER into TARGET (as claims lists them). Cycles
hand over claims whose holder is gone by themselves; this is for an administrator who knows a
claim is stale before then. The user's records are kept.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := open()
			if err != nil {
				return err
			}
			held, err := store.ClaimOf(args[0], args[1])
			if err != nil {
				return fmt.Errorf("reading the claim in %s: %w", storeDir, err)
			}
			if held == nil {
				return fmt.Errorf("no claim on %s's %s in %s", args[0], args[1], storeDir)
			}
			if err := store.ReleaseTarget(held.User, held.Target, held.Policy); err != nil {
				return fmt.Errorf("releasing the claim: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Released the claim of SyncPolicy %s on %s's %s (held since %s).\n",
				held.Policy, held.User, held.Target, timeOrDash(held.Since))
			return err
		},
	})
	for _, sub := range cmd.Commands() {
		if sub.Name() == "claims" {
			sub.Flags().StringVarP(&namespace, "namespace", "n", "",
				"Namespace of the store's policies: mark claims whose policy or SyncUser is gone (needs KUBECONFIG or a pod's service account)")
		}
	}
	return cmd
}

// listedClaim is a claim as `records claims` prints it.
type listedClaim struct {
	records.Claim
	// Abandoned says why the claim protects no one any more; empty while it does, or unchecked.
	Abandoned string `json:"abandoned,omitempty"`
}

// markAbandoned checks each claim against the policies and users of namespace.
func markAbandoned(ctx context.Context, env func(string) string, namespace string, claims []listedClaim) error {
	c, err := apiClient(env)
	if err != nil {
		return err
	}
	var policies syncv1alpha1.SyncPolicyList
	if err := c.List(ctx, &policies, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("listing SyncPolicies in %s: %w", namespace, err)
	}
	var users syncv1alpha1.SyncUserList
	if err := c.List(ctx, &users, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("listing SyncUsers in %s: %w", namespace, err)
	}
	for i := range claims {
		claims[i].Abandoned = cycle.WhyAbandoned(claims[i].Claim, policies.Items, users.Items)
	}
	return nil
}

// userSummary is one line of `records users`.
type userSummary struct {
	Identity   string    `json:"identity"`
	Pairs      int       `json:"pairs"`
	Links      int       `json:"links"`
	Pending    int       `json:"pending"`
	LastSynced time.Time `json:"lastSynced,omitzero"`
	// Unreadable says why the records could not be read (a cycle holding them, corruption).
	Unreadable string `json:"unreadable,omitempty"`
}

func summarizeUsers(store *records.Store) ([]userSummary, error) {
	users, err := store.Users()
	if err != nil {
		return nil, err
	}
	slices.Sort(users)
	summaries := []userSummary{}
	for _, identity := range users {
		s := userSummary{Identity: identity}
		export, err := readUser(store, identity)
		if err != nil {
			s.Unreadable = err.Error()
		}
		for _, p := range export.Pairs {
			s.Pairs++
			s.Links += len(p.Links)
			s.Pending += len(p.Pending)
			if p.State.LastSynced.After(s.LastSynced) {
				s.LastSynced = p.State.LastSynced
			}
		}
		summaries = append(summaries, s)
	}
	return summaries, nil
}

func readUser(store *records.Store, identity string) (records.UserExport, error) {
	u, err := store.OpenUser(identity, records.OpenOptions{ReadOnly: true, LockTimeout: recordsLockWait})
	if err != nil {
		return records.UserExport{}, err
	}
	defer u.Close()
	return u.Export()
}

func writeUserSummaries(w io.Writer, summaries []userSummary) error {
	if len(summaries) == 0 {
		_, err := fmt.Fprintln(w, "No users have records yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tPAIRS\tLINKED ITEMS\tPENDING\tLAST SYNCED")
	for _, s := range summaries {
		if s.Unreadable != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tunreadable: %s\n", s.Identity, s.Unreadable)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Identity, s.Pairs, s.Links, s.Pending, timeOrDash(s.LastSynced))
	}
	return tw.Flush()
}

// writeUserRecords prints a user's records pair by pair: state and watermarks, then the linked
// items (which key on one side is which on the other), then what needs attention; and last what
// the recent cycles reported about single items.
func writeUserRecords(w io.Writer, e records.UserExport) error {
	fmt.Fprintf(w, "User:   %s\n", e.Identity)
	if len(e.Pairs) == 0 {
		fmt.Fprintln(w, "No pairs synced yet.")
	}
	if err := writePairs(w, e.Pairs); err != nil {
		return err
	}
	return writeCycleReports(w, e.Cycles)
}

func writePairs(w io.Writer, pairs []records.PairExport) error {
	for _, p := range pairs {
		a, b := p.Pair.Sides[0], p.Pair.Sides[1]
		fmt.Fprintf(w, "\nPair:   %s/%s <-> %s/%s\n", a.Name, a.Entity, b.Name, b.Entity)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  Initialized:\t%t\n", p.State.Initialized)
		fmt.Fprintf(tw, "  Last synced:\t%s\n", timeOrDash(p.State.LastSynced))
		fmt.Fprintf(tw, "  Last cycle:\t%s\n", orDash(p.State.LastCycleID))
		fmt.Fprintf(tw, "  Watermark %s:\t%s\n", a.Name, orDash(string(p.State.Watermarks[0])))
		fmt.Fprintf(tw, "  Watermark %s:\t%s\n", b.Name, orDash(string(p.State.Watermarks[1])))
		if err := tw.Flush(); err != nil {
			return err
		}

		fmt.Fprintf(w, "\n  Linked items (%d):\n", len(p.Links))
		if len(p.Links) > 0 {
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "    %s KEY\t%s KEY\tSYNCED AT\tNOTE\n", strings.ToUpper(a.Name), strings.ToUpper(b.Name))
			for _, l := range p.Links {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", l.Sides[0].Key, l.Sides[1].Key, timeOrDash(l.SyncedAt), goneNote(l, a.Name, b.Name))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}

		fmt.Fprintf(w, "\n  Pending items (%d):\n", len(p.Pending))
		if len(p.Pending) > 0 {
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    KIND\tSIDE\tKEY\tATTEMPTS\tFIRST SEEN\tREASON")
			for _, pe := range p.Pending {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%d\t%s\t%s\n", pendingKind(pe), p.Pair.Sides[pe.Side].Name, pe.Key, pe.Attempts, timeOrDash(pe.FirstSeen), pe.Reason)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}

		// An intent left open means a cycle died between writing and recording; the next cycle
		// settles it.
		if len(p.Intents) > 0 {
			fmt.Fprintf(w, "\n  Unsettled writes (%d):\n", len(p.Intents))
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "    OP\tSIDE\tKEY\tCYCLE\tAT")
			for _, in := range p.Intents {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", in.Op, p.Pair.Sides[in.Side].Name, in.SourceKey, in.CycleID, timeOrDash(in.At))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCycleReports prints the recent cycles, newest first, each with the items it reported: what
// happened to them, their IDs on either side, and why.
func writeCycleReports(w io.Writer, cycles []records.CycleReport) error {
	fmt.Fprintf(w, "\nRecent cycles (%d):\n", len(cycles))
	for _, c := range cycles {
		kind := orDash(c.Mode)
		if c.DryRun {
			kind += ", dry run"
		}
		fmt.Fprintf(w, "\n  Cycle %s (%s) of policy %s, finished %s\n", c.CycleID, kind, orDash(c.Policy), timeOrDash(c.CompletionTime))
		if c.Failure != "" {
			fmt.Fprintf(w, "    Failed: %s\n", c.Failure)
		}
		if len(c.Items) == 0 {
			fmt.Fprintln(w, "    No items to report.")
			continue
		}
		src, tgt := c.Items[0].Source.Endpoint, c.Items[0].Target.Endpoint
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "    OUTCOME\tENTITY\t%s ID\t%s ID\tREASON\n", strings.ToUpper(src), strings.ToUpper(tgt))
		for _, it := range c.Items {
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", outcomeWords(it.Outcome), it.Entity, itemID(it.Source), itemID(it.Target), it.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if c.MoreItems > 0 {
			fmt.Fprintf(w, "    ... and %d more items, not kept\n", c.MoreItems)
		}
	}
	return nil
}

// outcomeWords spells an outcome for a person: WouldCreate is "would create".
func outcomeWords(o records.Outcome) string {
	var b strings.Builder
	for i, r := range string(o) {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func itemID(s records.ItemSide) string {
	return orDash(cmp.Or(s.ID, s.Key))
}

func goneNote(l records.Link, side0, side1 string) string {
	var gone []string
	if l.Sides[0].Gone {
		gone = append(gone, "deleted on "+side0)
	}
	if l.Sides[1].Gone {
		gone = append(gone, "deleted on "+side1)
	}
	return strings.Join(gone, ", ")
}

func pendingKind(p records.Pending) string {
	if p.GivenUp {
		return string(p.Kind) + " (given up)"
	}
	return string(p.Kind)
}

func writeClaims(w io.Writer, claims []listedClaim, checked bool) error {
	if len(claims) == 0 {
		_, err := fmt.Fprintln(w, "No claims yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "USER\tTARGET\tPOLICY\tSINCE"
	if checked {
		header += "\tABANDONED"
	}
	fmt.Fprintln(tw, header)
	for _, c := range claims {
		line := fmt.Sprintf("%s\t%s\t%s\t%s", c.User, c.Target, c.Policy, timeOrDash(c.Since))
		if checked {
			line += "\t" + cmp.Or(c.Abandoned, "-")
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
