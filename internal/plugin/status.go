package plugin

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// Tree is one chain (or one policy with users placed on it directly) as `status` shows it: its
// steps in order, each with its users, the stuck ones first.
type Tree struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Ready is the Ready condition's status ("True", "False", "Unknown" when not yet reconciled)
	// and Message its message when not True.
	Ready     string `json:"ready"`
	Message   string `json:"message,omitempty"`
	Users     int    `json:"users"`
	Completed int    `json:"completed"`
	Stuck     int    `json:"stuck"`
	Steps     []Step `json:"steps"`
	// Unplaced are the chain's users not (yet) on any of its steps.
	Unplaced []User `json:"unplaced,omitempty"`
}

// Step is one step of a Tree.
type Step struct {
	Name   string `json:"name,omitempty"`
	Policy string `json:"policy"`
	// PolicyProblem says why the step's policy cannot cycle anyone (missing, suspended, stalled).
	PolicyProblem string `json:"policyProblem,omitempty"`
	Stuck         int    `json:"stuck"`
	Users         []User `json:"users"`
}

// User is one SyncUser in a Tree.
type User struct {
	Name string `json:"name"`
	// State is one word: stuck, failing, synced, completed, syncing, waiting or suspended.
	State  string `json:"state"`
	Stuck  bool   `json:"stuck"`
	Reason string `json:"reason,omitempty"`
	// Message says why the user is stuck, or what it waits for.
	Message string `json:"message,omitempty"`
	// Fix is the plugin command that resolves the user's problem, when one does.
	Fix string `json:"fix,omitempty"`
}

// The states of a User.
const (
	StateStuck     = "stuck"
	StateFailing   = "failing"
	StateSynced    = "synced"
	StateCompleted = "completed"
	StateSyncing   = "syncing"
	StateWaiting   = "waiting"
	StateSuspended = "suspended"
)

// fixCommand names the plugin command that resolves a Stalled reason; "" when a person must
// change something elsewhere (the policy, the endpoint).
func fixCommand(reason string) string {
	switch reason {
	case syncv1alpha1.SyncUserDeleteThresholdExceededReason:
		return "approve"
	case syncv1alpha1.SyncUserItemsGivenUpReason:
		return "resync"
	case syncv1alpha1.SyncUserRecordsCorruptReason, syncv1alpha1.SyncUserItemsQuarantinedReason:
		return "clear"
	}
	return ""
}

// describeUser says where a user stands. A user is stuck when it cannot go on without a person
// (Stalled, deletes held back) or its cycles keep failing: those are the ones `status` lists
// first. command is how the plugin is invoked ("kubectl chainsync"), for the Fix.
func describeUser(u *syncv1alpha1.SyncUser, command string) User {
	v := User{Name: u.Name}
	conds := u.Status.Conditions
	last := u.Status.LastCycle
	stalled := meta.FindStatusCondition(conds, syncv1alpha1.StalledCondition)
	ready := meta.FindStatusCondition(conds, syncv1alpha1.ReadyCondition)
	switch {
	case stalled != nil && stalled.Status == metav1.ConditionTrue:
		v.State, v.Stuck, v.Reason, v.Message = StateStuck, true, stalled.Reason, stalled.Message
	case last != nil && last.PendingDeletes > 0:
		// Not yet reconciled into Stalled, but the cycle already holds deletes back.
		v.State, v.Stuck, v.Reason = StateStuck, true, syncv1alpha1.SyncUserDeleteThresholdExceededReason
		v.Message = fmt.Sprintf("Cycle %s holds back %d deletes", last.ID, last.PendingDeletes)
	case u.Spec.Suspend:
		v.State = StateSuspended
	case ready != nil && ready.Status == metav1.ConditionFalse &&
		(ready.Reason == syncv1alpha1.SyncUserCycleFailedReason || ready.Reason == syncv1alpha1.SyncUserJobFailedReason):
		v.State, v.Stuck, v.Reason, v.Message = StateFailing, true, ready.Reason, ready.Message
	case meta.IsStatusConditionTrue(conds, syncv1alpha1.CompletedCondition):
		v.State = StateCompleted
	case ready != nil && ready.Status == metav1.ConditionTrue:
		v.State = StateSynced
	case meta.IsStatusConditionTrue(conds, syncv1alpha1.ReconcilingCondition):
		v.State = StateSyncing
		if c := meta.FindStatusCondition(conds, syncv1alpha1.ReconcilingCondition); c.Reason == syncv1alpha1.SyncUserWaitingForCycleReason {
			v.State = StateWaiting
		}
	default:
		v.State = StateWaiting
		if ready != nil {
			v.Reason, v.Message = ready.Reason, ready.Message
		}
	}
	if verb := fixCommand(v.Reason); verb != "" && v.Stuck {
		v.Fix = command + " " + verb + " " + u.Name
	}
	return v
}

// byStuckThenName puts stuck users first, each group by name.
func byStuckThenName(a, b User) int {
	if a.Stuck != b.Stuck {
		if a.Stuck {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Name, b.Name)
}

// policyProblem says why a policy cycles no one: it is missing, suspended or stalled.
func policyProblem(name string, policies map[string]*syncv1alpha1.SyncPolicy) string {
	p, ok := policies[name]
	switch {
	case !ok:
		return "SyncPolicy " + name + " does not exist"
	case p.Spec.Suspend:
		return "suspended"
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, syncv1alpha1.StalledCondition); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason + ": " + c.Message
	}
	return ""
}

func readiness(conds []metav1.Condition) (status, message string) {
	c := meta.FindStatusCondition(conds, syncv1alpha1.ReadyCondition)
	if c == nil {
		return string(metav1.ConditionUnknown), "not reconciled yet"
	}
	if c.Status == metav1.ConditionTrue {
		return string(c.Status), ""
	}
	return string(c.Status), c.Message
}

// ChainTree places a chain's users (users: every SyncUser of the namespace; those of other
// chains are left out) on its steps, as their status says, stuck ones first.
func ChainTree(chain *syncv1alpha1.OnboardingChain, users []syncv1alpha1.SyncUser,
	policies map[string]*syncv1alpha1.SyncPolicy, command string) Tree {
	t := Tree{Kind: "OnboardingChain", Namespace: chain.Namespace, Name: chain.Name, Steps: []Step{}}
	t.Ready, t.Message = readiness(chain.Status.Conditions)
	index := map[string]int{}
	for i, s := range chain.Spec.Steps {
		index[s.Name] = i
		t.Steps = append(t.Steps, Step{Name: s.Name, Policy: s.Policy, PolicyProblem: policyProblem(s.Policy, policies), Users: []User{}})
	}
	for i := range users {
		u := &users[i]
		if !onChain(u, chain.Name) {
			continue
		}
		v := describeUser(u, command)
		t.count(v)
		if i, ok := index[u.Status.Step]; ok && u.Status.Chain == chain.Name {
			t.Steps[i].Users = append(t.Steps[i].Users, v)
			if v.Stuck {
				t.Steps[i].Stuck++
			}
			continue
		}
		t.Unplaced = append(t.Unplaced, v)
	}
	t.sort()
	return t
}

func onChain(u *syncv1alpha1.SyncUser, chain string) bool {
	return (u.Spec.ChainRef != nil && u.Spec.ChainRef.Name == chain) || u.Status.Chain == chain
}

// PolicyTree is the one-step tree of a policy's users placed on it directly (not through a chain).
func PolicyTree(policy *syncv1alpha1.SyncPolicy, users []syncv1alpha1.SyncUser, command string) Tree {
	t := Tree{Kind: "SyncPolicy", Namespace: policy.Namespace, Name: policy.Name}
	t.Ready, t.Message = readiness(policy.Status.Conditions)
	step := Step{Policy: policy.Name, PolicyProblem: policyProblem(policy.Name, map[string]*syncv1alpha1.SyncPolicy{policy.Name: policy}), Users: []User{}}
	for i := range users {
		u := &users[i]
		if u.Spec.PolicyRef == nil || u.Spec.PolicyRef.Name != policy.Name {
			continue
		}
		v := describeUser(u, command)
		t.count(v)
		step.Users = append(step.Users, v)
		if v.Stuck {
			step.Stuck++
		}
	}
	t.Steps = []Step{step}
	t.sort()
	return t
}

func (t *Tree) count(v User) {
	t.Users++
	if v.Stuck {
		t.Stuck++
	}
	if v.State == StateCompleted {
		t.Completed++
	}
}

func (t *Tree) sort() {
	for i := range t.Steps {
		slices.SortFunc(t.Steps[i].Users, byStuckThenName)
	}
	slices.SortFunc(t.Unplaced, byStuckThenName)
}

// WriteTrees prints the trees: per step at most limit users that are not stuck (0: all), every
// stuck one, and a count of the rest by state.
func WriteTrees(w io.Writer, trees []Tree, limit int) error {
	if len(trees) == 0 {
		_, err := fmt.Fprintln(w, "No OnboardingChains, nor users placed on a SyncPolicy directly.")
		return err
	}
	var b strings.Builder
	for i, t := range trees {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s %s/%s: %s, %d completed, %d stuck; Ready %s", t.Kind, t.Namespace, t.Name,
			plural(t.Users, "user"), t.Completed, t.Stuck, t.Ready)
		if t.Message != "" {
			fmt.Fprintf(&b, ": %s", t.Message)
		}
		b.WriteByte('\n')
		branches := len(t.Steps)
		if len(t.Unplaced) > 0 {
			branches++
		}
		for si, s := range t.Steps {
			label := "SyncPolicy " + s.Policy
			if s.Name != "" {
				label = fmt.Sprintf("%d. %s (SyncPolicy %s)", si+1, s.Name, s.Policy)
			}
			writeBranch(&b, si == branches-1, label, s.PolicyProblem, s.Users, s.Stuck, limit)
		}
		if len(t.Unplaced) > 0 {
			stuck := 0
			for _, u := range t.Unplaced {
				if u.Stuck {
					stuck++
				}
			}
			writeBranch(&b, true, "not on a step", "", t.Unplaced, stuck, limit)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeBranch(b *strings.Builder, lastBranch bool, label, problem string, users []User, stuck, limit int) {
	fork, indent := "├── ", "│   "
	if lastBranch {
		fork, indent = "└── ", "    "
	}
	fmt.Fprintf(b, "%s%s: %s, %d stuck", fork, label, plural(len(users), "user"), stuck)
	if problem != "" {
		fmt.Fprintf(b, "; policy %s", problem)
	}
	b.WriteByte('\n')
	shown := users
	var hidden []User
	if limit > 0 && len(users) > stuck+limit {
		shown, hidden = users[:stuck+limit], users[stuck+limit:]
	}
	width := 0
	for _, u := range shown {
		width = max(width, len(u.Name))
	}
	for i, u := range shown {
		last := i == len(shown)-1 && len(hidden) == 0
		leaf, cont := "├── ", "│   "
		if last {
			leaf, cont = "└── ", "    "
		}
		line := fmt.Sprintf("%-*s  %s", width, u.Name, u.State)
		if u.Reason != "" {
			line += " " + u.Reason
		}
		if u.Stuck && u.Message != "" {
			line += ": " + u.Message
		}
		fmt.Fprintf(b, "%s%s%s\n", indent, leaf, line)
		if u.Fix != "" {
			fmt.Fprintf(b, "%s%s%*s  fix: %s\n", indent, cont, width, "", u.Fix)
		}
	}
	if len(hidden) > 0 {
		fmt.Fprintf(b, "%s└── ... and %d more: %s\n", indent, len(hidden), countStates(hidden))
	}
}

// countStates says how many users are in each state, in the order of the states' names.
func countStates(users []User) string {
	counts := map[string]int{}
	for _, u := range users {
		counts[u.State]++
	}
	states := make([]string, 0, len(counts))
	for s := range counts {
		states = append(states, s)
	}
	slices.Sort(states)
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%d %s", counts[s], s)
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// StatusOptions select what `status` shows.
type StatusOptions struct {
	// Namespace to read; "" reads every namespace.
	Namespace string
	// Chain limits the output to one OnboardingChain (or SyncPolicy) of that name.
	Chain string
	// Command is how the plugin is invoked, for the fixes it suggests.
	Command string
}

// Status reads the chains, policies and users and builds one Tree per chain, then one per policy
// with users placed on it directly; by namespace, then name.
func Status(ctx context.Context, c client.Reader, opts StatusOptions) ([]Tree, error) {
	in := []client.ListOption{}
	if opts.Namespace != "" {
		in = append(in, client.InNamespace(opts.Namespace))
	}
	var chains syncv1alpha1.OnboardingChainList
	if err := c.List(ctx, &chains, in...); err != nil {
		return nil, fmt.Errorf("listing OnboardingChains: %w", err)
	}
	var policies syncv1alpha1.SyncPolicyList
	if err := c.List(ctx, &policies, in...); err != nil {
		return nil, fmt.Errorf("listing SyncPolicies: %w", err)
	}
	var users syncv1alpha1.SyncUserList
	if err := c.List(ctx, &users, in...); err != nil {
		return nil, fmt.Errorf("listing SyncUsers: %w", err)
	}
	usersIn := map[string][]syncv1alpha1.SyncUser{}
	for _, u := range users.Items {
		usersIn[u.Namespace] = append(usersIn[u.Namespace], u)
	}
	policiesIn := map[string]map[string]*syncv1alpha1.SyncPolicy{}
	for i := range policies.Items {
		p := &policies.Items[i]
		if policiesIn[p.Namespace] == nil {
			policiesIn[p.Namespace] = map[string]*syncv1alpha1.SyncPolicy{}
		}
		policiesIn[p.Namespace][p.Name] = p
	}

	var trees []Tree
	for i := range chains.Items {
		ch := &chains.Items[i]
		if opts.Chain == "" || opts.Chain == ch.Name {
			trees = append(trees, ChainTree(ch, usersIn[ch.Namespace], policiesIn[ch.Namespace], opts.Command))
		}
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		if opts.Chain != "" && opts.Chain != p.Name {
			continue
		}
		t := PolicyTree(p, usersIn[p.Namespace], opts.Command)
		// A policy that is only a chain's step has its users in the chain's tree; asked for by
		// name, it is shown all the same.
		if t.Users > 0 || opts.Chain == p.Name {
			trees = append(trees, t)
		}
	}
	if opts.Chain != "" && len(trees) == 0 {
		where := "namespace " + opts.Namespace
		if opts.Namespace == "" {
			where = "any namespace"
		}
		return nil, fmt.Errorf("no OnboardingChain or SyncPolicy %s in %s", opts.Chain, where)
	}
	slices.SortStableFunc(trees, func(a, b Tree) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), kindOrder(a.Kind)-kindOrder(b.Kind), strings.Compare(a.Name, b.Name))
	})
	return trees, nil
}

func kindOrder(kind string) int {
	if kind == "OnboardingChain" {
		return 0
	}
	return 1
}
