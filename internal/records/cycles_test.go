package records

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
)

func TestCycleReportsAreKeptBoundedAndReadBack(t *testing.T) {
	const ann = "ann@example.com"
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	cycleAt := func(i int, items ...ItemReport) CycleReport {
		return CycleReport{CycleID: fmt.Sprintf("import-%d", i), Policy: "import", Mode: "Complete",
			StartTime: t0.Add(time.Duration(i) * time.Minute), CompletionTime: t0.Add(time.Duration(i)*time.Minute + time.Second), Items: items}
	}
	item := func(o Outcome, id string) ItemReport {
		return ItemReport{Entity: "people", Outcome: o, Source: ItemSide{Endpoint: "hr", Key: id, ID: id}, Target: ItemSide{Endpoint: "directory"}, Reason: "because " + id}
	}
	ids := func(rs []CycleReport) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.CycleID)
		}
		return out
	}

	cases := []struct {
		name    string
		puts    []CycleReport
		prepare func(t *testing.T, dir string) // dir is the user's cycles folder
		check   func(g Gomega, got []CycleReport, err error, dir string)
	}{
		{
			name: "nothing kept yet",
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(BeEmpty())
			},
		},
		{
			name: "round trip",
			puts: []CycleReport{{
				CycleID: "import-1", Policy: "import", Mode: "Initial", DryRun: true,
				StartTime: t0, CompletionTime: t0.Add(time.Second), Failure: "",
				Items: []ItemReport{{Entity: "people", Outcome: OutcomeWouldUpdate,
					Source: ItemSide{Endpoint: "hr", Key: "E1", ID: "E1"}, Target: ItemSide{Endpoint: "directory", Key: "7", ID: "7"},
					Reason: "content copied from hr"}},
			}},
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal([]CycleReport{{
					FormatVersion: CycleReportFormat, CycleID: "import-1", Policy: "import", Mode: "Initial", DryRun: true,
					StartTime: t0, CompletionTime: t0.Add(time.Second),
					Items: []ItemReport{{Entity: "people", Outcome: OutcomeWouldUpdate,
						Source: ItemSide{Endpoint: "hr", Key: "E1", ID: "E1"}, Target: ItemSide{Endpoint: "directory", Key: "7", ID: "7"},
						Reason: "content copied from hr"}},
				}}))
			},
		},
		{
			name: "the last cycles are kept, newest first",
			puts: func() []CycleReport {
				var rs []CycleReport
				for i := range MaxCycleReports + 3 {
					rs = append(rs, cycleAt(i))
				}
				return rs
			}(),
			check: func(g Gomega, got []CycleReport, err error, dir string) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(ids(got)).To(Equal([]string{"import-12", "import-11", "import-10", "import-9", "import-8",
					"import-7", "import-6", "import-5", "import-4", "import-3"}))
				entries, _ := os.ReadDir(dir)
				g.Expect(entries).To(HaveLen(MaxCycleReports), "older files are removed, no temporary file is left")
			},
		},
		{
			name: "a retried cycle replaces its report",
			puts: []CycleReport{cycleAt(1, item(OutcomeError, "E1")), cycleAt(2), cycleAt(1, item(OutcomeError, "E2"))},
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(ids(got)).To(Equal([]string{"import-2", "import-1"}))
				g.Expect(got[1].Items).To(ConsistOf(HaveField("Source.ID", "E2")))
			},
		},
		{
			name: "items are bounded, those needing a person kept first",
			puts: func() []CycleReport {
				var items []ItemReport
				for i := range 2 * MaxReportItems {
					items = append(items, item(OutcomeWouldCreate, fmt.Sprintf("C%03d", i)))
				}
				items = append(items, item(OutcomeConflict, "X1"), item(OutcomeWouldDelete, "D1"), item(OutcomeError, "E1"))
				return []CycleReport{cycleAt(1, items...)}
			}(),
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).NotTo(HaveOccurred())
				items := got[0].Items
				g.Expect(items).To(HaveLen(MaxReportItems))
				g.Expect(got[0].MoreItems).To(Equal(MaxReportItems + 3))
				g.Expect(items[0].Source.ID).To(Equal("E1"))
				g.Expect(items[1].Source.ID).To(Equal("X1"))
				g.Expect(items[2].Source.ID).To(Equal("D1"))
				g.Expect(items[3].Source.ID).To(Equal("C000"), "items of one outcome keep their order")
			},
		},
		{
			name: "long reasons and IDs are shortened on a character boundary",
			puts: []CycleReport{func() CycleReport {
				long := item(OutcomeError, strings.Repeat("é", MaxReportIDLength))
				long.Reason = strings.Repeat("ü", MaxReportReasonLength)
				r := cycleAt(1, long)
				r.Failure = strings.Repeat("x", 2*MaxReportReasonLength)
				return r
			}()},
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).NotTo(HaveOccurred())
				it := got[0].Items[0]
				for _, s := range []string{it.Source.Key, it.Source.ID} {
					g.Expect(len(s)).To(BeNumerically("<=", MaxReportIDLength))
					g.Expect(utf8.ValidString(s)).To(BeTrue())
					g.Expect(s).To(HaveSuffix("..."))
				}
				g.Expect(len(it.Reason)).To(BeNumerically("<=", MaxReportReasonLength))
				g.Expect(utf8.ValidString(it.Reason)).To(BeTrue())
				g.Expect(len(got[0].Failure)).To(Equal(MaxReportReasonLength))
			},
		},
		{
			name: "a newer format or a damaged file is named, the rest still read",
			puts: []CycleReport{cycleAt(1), cycleAt(2)},
			prepare: func(t *testing.T, dir string) {
				write := func(name, content string) {
					if err := os.MkdirAll(dir, 0o750); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
						t.Fatal(err)
					}
				}
				write("import-0.json", `{"formatVersion": 2, "cycleID": "import-0", "entries": []}`)
				write("import-00.json", `{"formatVersion": 1, "cycleID": `)
			},
			check: func(g Gomega, got []CycleReport, err error, _ string) {
				g.Expect(err).To(MatchError(ErrUnsupportedFormat))
				g.Expect(err).To(MatchError(ErrCorrupt))
				g.Expect(err).To(MatchError(ContainSubstring("import-0.json has cycle report format 2, this build reads 1")))
				g.Expect(ids(got)).To(Equal([]string{"import-2", "import-1"}))
			},
		},
		{
			name: "a temporary file left by a crash is removed once stale",
			puts: []CycleReport{cycleAt(1)},
			prepare: func(t *testing.T, dir string) {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{".import-0.json.1.tmp", ".import-0.json.2.tmp"} {
					if err := os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o640); err != nil {
						t.Fatal(err)
					}
				}
				old := time.Now().Add(-2 * staleTempFile)
				if err := os.Chtimes(filepath.Join(dir, ".import-0.json.1.tmp"), old, old); err != nil {
					t.Fatal(err)
				}
			},
			check: func(g Gomega, got []CycleReport, err error, dir string) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(ids(got)).To(Equal([]string{"import-1"}))
				g.Expect(filepath.Join(dir, ".import-0.json.1.tmp")).NotTo(BeAnExistingFile())
				g.Expect(filepath.Join(dir, ".import-0.json.2.tmp")).To(BeAnExistingFile(), "it may be another cycle's write")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := Open(t.TempDir())
			g.Expect(err).NotTo(HaveOccurred())
			userDir, err := s.UserDir(ann)
			g.Expect(err).NotTo(HaveOccurred())
			dir := filepath.Join(userDir, "cycles")
			if tc.prepare != nil {
				tc.prepare(t, dir)
			}
			for _, r := range tc.puts {
				g.Expect(s.PutCycleReport(ann, r)).To(Succeed())
			}
			got, err := s.CycleReports(ann)
			tc.check(g, got, err, dir)
		})
	}
}

func TestPutCycleReportLeavesTheCallersItemsAlone(t *testing.T) {
	g := NewWithT(t)
	s, _ := Open(t.TempDir())
	items := []ItemReport{{Entity: "people", Outcome: OutcomeWouldCreate}, {Entity: "people", Outcome: OutcomeError}}
	g.Expect(s.PutCycleReport("ann@example.com", CycleReport{CycleID: "import-1", Items: items})).To(Succeed())
	g.Expect(items[0].Outcome).To(Equal(OutcomeWouldCreate))
}
