package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
)

// Several users' cycles, in separate processes as cycle Jobs are, write one
// database at once; the csv connector has the same test.

const envConcurrentChild = "CHAINSYNC_SQLITE_CONCURRENT_CHILD"

type concurrentJob struct {
	File    string
	Owner   string
	Rows    int
	GoFile  string
	OutFile string
}

// concurrentCreated is a create the child was told succeeded.
type concurrentCreated struct {
	ID    string
	Email string
}

func concurrentConfig(file string) Config {
	return Config{Side: "target", File: file, Entities: map[string]collection.Collection{"contacts": {
		Name: "contacts", KeyFields: []string{"id"}, Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}}
}

// TestHelperProcessConcurrent is the child side; it does nothing in a normal
// test run.
func TestHelperProcessConcurrent(t *testing.T) {
	spec := os.Getenv(envConcurrentChild)
	if spec == "" {
		return
	}
	var job concurrentJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(job.GoFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never told to start")
		}
	}
	c, err := New(ctx, concurrentConfig(job.File))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var created []concurrentCreated
	for i := range job.Rows {
		email := fmt.Sprintf("%s-%03d@x", job.Owner, i)
		res, err := c.Write(ctx, connector.WriteRequest{Scope: connector.Scope{Email: job.Owner}, Entity: "contacts",
			Writes: []connector.Write{{Op: connector.OpCreate, Fields: map[string]connector.Value{
				"email": connector.String(email), "name": connector.String(fmt.Sprintf("person %d", i))}}}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatalf("create %s: %v", email, res[0].Err)
		}
		created = append(created, concurrentCreated{ID: res[0].ID, Email: email})
	}
	b, _ := json.Marshal(created)
	if err := os.WriteFile(job.OutFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Eight processes create fifty rows each, one Write per row: the table
// holds all 400, each where its Write said it put it.
func TestConcurrentWritersKeepEveryRow(t *testing.T) {
	g := NewWithT(t)
	const writers, rows = 8, 50
	file := newDB(t, `CREATE TABLE contacts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, email TEXT, name TEXT)`)
	goFile := filepath.Join(t.TempDir(), "go")
	outDir := t.TempDir()
	cmds := make([]*osexec.Cmd, writers)
	outs := make([][]byte, writers)
	done := make(chan struct{}, writers)
	for w := range cmds {
		spec, _ := json.Marshal(concurrentJob{File: file, Owner: fmt.Sprintf("user%d@example.com", w), Rows: rows,
			GoFile: goFile, OutFile: filepath.Join(outDir, fmt.Sprintf("out-%d.json", w))})
		cmds[w] = osexec.Command(os.Args[0], "-test.run=^TestHelperProcessConcurrent$", "-test.count=1")
		cmds[w].Env = append(os.Environ(), envConcurrentChild+"="+string(spec))
		go func() {
			outs[w], _ = cmds[w].CombinedOutput()
			done <- struct{}{}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	g.Expect(os.WriteFile(goFile, nil, 0o644)).To(Succeed())
	for range cmds {
		<-done
	}

	db, err := sql.Open("sqlite", file)
	g.Expect(err).NotTo(HaveOccurred())
	defer db.Close()
	var total int
	g.Expect(db.QueryRow(`SELECT count(*) FROM contacts`).Scan(&total)).To(Succeed())
	for w, cmd := range cmds {
		g.Expect(cmd.ProcessState.Success()).To(BeTrue(), "writer %d: %s", w, outs[w])
		b, err := os.ReadFile(filepath.Join(outDir, fmt.Sprintf("out-%d.json", w)))
		g.Expect(err).NotTo(HaveOccurred())
		var created []concurrentCreated
		g.Expect(json.Unmarshal(b, &created)).To(Succeed())
		g.Expect(created).To(HaveLen(rows))
		for _, c := range created {
			var owner, email string
			g.Expect(db.QueryRow(`SELECT owner, email FROM contacts WHERE id = ?`, c.ID).Scan(&owner, &email)).To(Succeed(), "row %s", c.ID)
			g.Expect([]string{owner, email}).To(Equal([]string{fmt.Sprintf("user%d@example.com", w), c.Email}))
		}
	}
	g.Expect(total).To(Equal(writers * rows))
}
