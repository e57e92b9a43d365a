package reports

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/delta"
)

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestCleansingReportsListWhatWasSetAsideAndGoAwayOnceClean(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	nullpk, dups := filepath.Join(dir, "people.nullpk.csv"), filepath.Join(dir, "people.duplicates.csv")
	row := func(id, name string) delta.Entry {
		return delta.Entry{ID: id, Fields: map[string]connector.Value{"name": connector.String(name)}}
	}
	report := NewRejectReport(nullpk, dups, []string{"name"})
	for _, r := range []delta.Rejected{
		{Reason: delta.NullKey, Entry: row("", "No Key")},
		{Reason: delta.Duplicate, Entry: row("2", "Bob")},
		{Reason: delta.Duplicate, Entry: row("2", "Robert, \"Bob\"")},
	} {
		g.Expect(report.Add(r)).To(Succeed())
	}
	g.Expect(report.Close()).To(Succeed())
	g.Expect(lines(t, nullpk)).To(Equal([]string{"id,name", ",No Key"}))
	g.Expect(lines(t, dups)).To(Equal([]string{"id,name", "2,Bob", `2,"Robert, ""Bob"""`}), "plain csv a spreadsheet opens")

	// Next cycle, clean data: the stale reports go away.
	g.Expect(NewRejectReport(nullpk, dups, []string{"name"}).Close()).To(Succeed())
	g.Expect(nullpk).NotTo(BeAnExistingFile())
	g.Expect(dups).NotTo(BeAnExistingFile())
}

func TestRejectedRowsReportHasLineReasonAndTheRowOnce(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "people.rejected.csv")
	header := []string{"id", "owner", "name", "dept"}
	rows := []csv.RejectedRow{
		{File: "people.csv", Line: 5, Reason: "row has 1 cell, the header has 4", Header: header, Cells: []string{"4"}},
		{File: "people.csv", Line: 9, Reason: "row has 3 cells, the header has 4", Header: header, Cells: []string{"8", "", "Short"}},
	}
	report := NewRowReport(path)
	for range 2 { // Two users' reads meet the same rows.
		for _, r := range rows {
			g.Expect(report.Add(r)).To(Succeed())
		}
	}
	g.Expect(report.Rows()).To(Equal(2))
	g.Expect(report.Close()).To(Succeed())
	g.Expect(lines(t, path)).To(Equal([]string{
		"line,reason,id,owner,name,dept",
		`5,"row has 1 cell, the header has 4",4`,
		`9,"row has 3 cells, the header has 4",8,,Short`,
	}))

	// A clean export leaves no stale report behind.
	clean := NewRowReport(path)
	g.Expect(clean.Rows()).To(BeZero())
	g.Expect(clean.Close()).To(Succeed())
	g.Expect(path).NotTo(BeAnExistingFile())
}
