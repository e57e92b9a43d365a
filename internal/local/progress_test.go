package local

import (
	"bytes"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

var demoSnapshot = snapshot{
	chains: []chainRow{{namespace: "demo", name: "onboarding", users: 2, completed: 1, steps: "import 1, publish 1"}},
	users: []userRow{
		{namespace: "demo", name: "ada", step: "publish", policy: "hr-publish", ready: "True", completed: true, status: "Completed"},
		{namespace: "demo", name: "alan", step: "import", policy: "hr-import", ready: "False", status: "Waiting for the first cycle"},
	},
}

func TestTableShowsChainsThenUsersInAlignedColumns(t *testing.T) {
	g := NewWithT(t)
	g.Expect(demoSnapshot.table()).To(Equal([]string{
		"CHAIN       COMPLETED  USERS PER STEP",
		"onboarding  1/2        import 1, publish 1",
		"",
		"NAME  STEP     POLICY      READY  DONE  STATUS",
		"ada   publish  hr-publish  True   yes   Completed",
		"alan  import   hr-import   False        Waiting for the first cycle",
	}))
}

func TestTableNamesNamespacesOnlyWhenThereAreSeveral(t *testing.T) {
	g := NewWithT(t)
	s := snapshot{users: []userRow{
		{namespace: "a", name: "u1", ready: "Unknown"},
		{namespace: "b", name: "u2", step: "s", policy: "p", ready: "True"},
	}}
	g.Expect(s.table()).To(Equal([]string{
		"NAMESPACE  NAME  STEP  POLICY  READY    DONE  STATUS",
		"a          u1    -     -       Unknown        ",
		"b          u2    s     p       True           ",
	}))
	g.Expect(snapshot{}.table()).To(Equal([]string{"No SyncUsers yet: apply some with kubectl."}))
}

func TestScreenRedrawsInPlaceWithinTheTerminal(t *testing.T) {
	g := NewWithT(t)
	s := &screen{header: []string{"chainsync local"}, size: func() (int, int) { return 20, 8 }}
	frame := s.frame(demoSnapshot, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))

	g.Expect(frame).To(HavePrefix("\x1b[H"), "starts at the top left instead of scrolling")
	g.Expect(frame).To(HaveSuffix("\x1b[J"), "clears what a longer frame left below")
	lines := strings.Split(strings.TrimSuffix(strings.TrimSuffix(frame, "\x1b[J"), "\n"), "\n")
	g.Expect(lines).To(HaveLen(7), "one line short of the height, so the screen does not scroll")
	for _, l := range lines {
		g.Expect(len(strings.TrimSuffix(strings.TrimPrefix(l, "\x1b[H"), "\x1b[K"))).To(BeNumerically("<=", 20))
	}
	g.Expect(lines[1]).To(Equal("\x1b[K"))
	g.Expect(lines[2]).To(Equal("Updated 12:00:00\x1b[K"))
	g.Expect(lines[6]).To(HavePrefix("... 4 more lines"))
}

func TestLineLogPrintsOnlyWhatChanged(t *testing.T) {
	g := NewWithT(t)
	var out bytes.Buffer
	l := newLineLog(&out)
	l.now = func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }

	l.show(demoSnapshot)
	g.Expect(strings.Split(strings.TrimSpace(out.String()), "\n")).To(Equal([]string{
		`12:00:00 chain demo/onboarding completed=1/2 steps="import 1, publish 1"`,
		`12:00:00 user demo/ada step=publish policy=hr-publish ready=True completed=true status="Completed"`,
		`12:00:00 user demo/alan step=import policy=hr-import ready=False completed=false status="Waiting for the first cycle"`,
	}))

	out.Reset()
	l.show(demoSnapshot)
	g.Expect(out.String()).To(BeEmpty())

	next := demoSnapshot
	next.users = []userRow{demoSnapshot.users[0], {namespace: "demo", name: "alan", step: "import", policy: "hr-import", ready: "True", status: "Synced"}}
	l.show(next)
	g.Expect(out.String()).To(Equal(`12:00:00 user demo/alan step=import policy=hr-import ready=True completed=false status="Synced"` + "\n"))
}
