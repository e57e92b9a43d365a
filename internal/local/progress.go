package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// snapshot is what the progress display shows: every chain and every user, sorted.
type snapshot struct {
	chains []chainRow
	users  []userRow
}

type chainRow struct {
	namespace, name string
	users           int32
	completed       int32
	// steps reads "import 1, verify 0, business-as-usual 4": users per step.
	steps string
}

type userRow struct {
	namespace, name, step, policy, ready, status string
	completed                                    bool
}

// takeSnapshot reads the chains and users, in every namespace.
func takeSnapshot(ctx context.Context, c client.Reader) (snapshot, error) {
	var chains syncv1alpha1.OnboardingChainList
	if err := c.List(ctx, &chains); err != nil {
		return snapshot{}, fmt.Errorf("listing OnboardingChains: %w", err)
	}
	var users syncv1alpha1.SyncUserList
	if err := c.List(ctx, &users); err != nil {
		return snapshot{}, fmt.Errorf("listing SyncUsers: %w", err)
	}
	var s snapshot
	for _, ch := range chains.Items {
		var steps []string
		for _, st := range ch.Status.Steps {
			steps = append(steps, fmt.Sprintf("%s %d", st.Name, st.Users))
		}
		s.chains = append(s.chains, chainRow{namespace: ch.Namespace, name: ch.Name, users: ch.Status.Users,
			completed: ch.Status.CompletedUsers, steps: strings.Join(steps, ", ")})
	}
	for _, u := range users.Items {
		row := userRow{namespace: u.Namespace, name: u.Name, step: u.Status.Step, policy: u.Status.Policy, ready: "Unknown"}
		if ready := meta.FindStatusCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition); ready != nil {
			row.ready, row.status = string(ready.Status), ready.Message
		}
		row.completed = meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition)
		s.users = append(s.users, row)
	}
	slices.SortFunc(s.chains, func(a, b chainRow) int { return strings.Compare(a.namespace+"/"+a.name, b.namespace+"/"+b.name) })
	slices.SortFunc(s.users, func(a, b userRow) int { return strings.Compare(a.namespace+"/"+a.name, b.namespace+"/"+b.name) })
	return s, nil
}

// table renders the snapshot as aligned columns: the chains, then the users. The namespace
// column appears only when there is more than one namespace to tell apart.
func (s snapshot) table() []string {
	namespaces := map[string]bool{}
	for _, u := range s.users {
		namespaces[u.namespace] = true
	}
	for _, c := range s.chains {
		namespaces[c.namespace] = true
	}
	withNS := len(namespaces) > 1
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	row := func(ns string, cells ...string) {
		if withNS {
			cells = append([]string{ns}, cells...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if len(s.chains) > 0 {
		row("NAMESPACE", "CHAIN", "COMPLETED", "USERS PER STEP")
		for _, c := range s.chains {
			row(c.namespace, c.name, fmt.Sprintf("%d/%d", c.completed, c.users), c.steps)
		}
		_ = tw.Flush()
		buf.WriteString("\n")
	}
	if len(s.users) == 0 {
		_ = tw.Flush()
		buf.WriteString("No SyncUsers yet: apply some with kubectl.\n")
		return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	}
	row("NAMESPACE", "NAME", "STEP", "POLICY", "READY", "DONE", "STATUS")
	for _, u := range s.users {
		done := ""
		if u.completed {
			done = "yes"
		}
		row(u.namespace, u.name, dash(u.step), dash(u.policy), u.ready, done, u.status)
	}
	_ = tw.Flush()
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// display shows snapshots as they come.
type display interface {
	show(snapshot)
}

// screen redraws one screen in place, as `watch` does: a fixed header, then the table cut to the
// terminal's height and width.
type screen struct {
	w      io.Writer
	header []string
	// size returns the terminal's columns and rows.
	size func() (int, int)
}

func (s *screen) show(snap snapshot) {
	s.w.Write([]byte(s.frame(snap, time.Now())))
}

// frame is the text that redraws the screen: cursor home, every line cleared to its end, and
// whatever an earlier, longer frame left below cleared.
func (s *screen) frame(snap snapshot, now time.Time) string {
	width, height := s.size()
	lines := append(slices.Clone(s.header), "", "Updated "+now.Format("15:04:05"), "")
	lines = append(lines, snap.table()...)
	if height > 0 && len(lines) > height-1 {
		more := len(lines) - (height - 2)
		lines = append(lines[:height-2], fmt.Sprintf("... %d more lines (kubectl get syncusers -A shows all)", more))
	}
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, l := range lines {
		if width > 0 && len(l) > width {
			l = l[:width]
		}
		b.WriteString(l)
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	return b.String()
}

// lineLog prints one line per change, for output that is not a terminal (a log, a pipe, a test).
type lineLog struct {
	w    io.Writer
	last map[string]string
	now  func() time.Time
}

func newLineLog(w io.Writer) *lineLog {
	return &lineLog{w: w, last: map[string]string{}, now: time.Now}
}

func (l *lineLog) show(snap snapshot) {
	stamp := l.now().Format("15:04:05")
	for _, c := range snap.chains {
		key := "chain " + c.namespace + "/" + c.name
		line := fmt.Sprintf("completed=%d/%d steps=%q", c.completed, c.users, c.steps)
		l.print(stamp, key, line)
	}
	for _, u := range snap.users {
		key := "user " + u.namespace + "/" + u.name
		line := fmt.Sprintf("step=%s policy=%s ready=%s completed=%t status=%q", dash(u.step), dash(u.policy), u.ready, u.completed, u.status)
		l.print(stamp, key, line)
	}
}

func (l *lineLog) print(stamp, key, line string) {
	if l.last[key] == line {
		return
	}
	l.last[key] = line
	fmt.Fprintf(l.w, "%s %s %s\n", stamp, key, line)
}

// showProgress shows a snapshot every interval until ctx ends.
func showProgress(ctx context.Context, c client.Reader, d display, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if snap, err := takeSnapshot(ctx, c); err == nil {
			d.show(snap)
		} else if ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
