package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/cli"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/conntest"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/records"
)

// syncedStore returns a record store written by the engine: ann and bob each synced one contact
// from crm into mail; ann's second contact was refused by mail and is pending.
func syncedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	store, err := records.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	caps := connector.Capabilities{Incremental: true, ModTime: true, Origin: true}
	policy := engine.Policy{
		Name:   "contacts",
		Source: engine.Endpoint{Name: "crm"}, Target: engine.Endpoint{Name: "mail"},
		Entities: []engine.Entity{{Name: "contacts", SourceEntity: "contact", TargetEntity: "person",
			Fields:  []engine.FieldMapping{{Source: "name", Target: "fullName"}, {Source: "email", Target: "mail"}},
			MatchOn: []string{"email"}}},
		Direction: engine.OneWay,
	}
	contact := func(name, email string) connector.Item {
		return connector.Item{Fields: map[string]connector.Value{"name": connector.String(name), "email": connector.String(email)}}
	}
	for _, user := range []string{"ann@example.com", "bob@example.com"} {
		src, tgt := conntest.NewMemory(caps), conntest.NewMemory(caps)
		src.Put("contact", contact("Friend of "+user, "friend-of-"+user))
		if user == "ann@example.com" {
			src.Put("contact", contact("Refused", "refused@example.com"))
			tgt.FailItem("Refused", errors.New("rejected by server"))
		}
		_, err := engine.Run(context.Background(), engine.Cycle{ID: "contacts-1", User: user,
			Scope: connector.Scope{Email: user}, Policy: policy, Source: src, Target: tgt,
			Records: store, Log: logr.Discard()})
		if err != nil {
			t.Fatalf("cycle of %s: %v", user, err)
		}
	}
	return dir
}

func chainsync(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = cli.Run(context.Background(), args, nil, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestRecordsUsersListsEveryUserWithTheirCounts(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)

	out, _, code := chainsync("records", "--store", store, "users")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(MatchRegexp(`USER\s+PAIRS\s+LINKED ITEMS\s+PENDING\s+LAST SYNCED`))
	g.Expect(out).To(MatchRegexp(`ann@example.com\s+1\s+1\s+1\s+\d{4}-`))
	g.Expect(out).To(MatchRegexp(`bob@example.com\s+1\s+1\s+0\s+\d{4}-`))

	out, _, code = chainsync("records", "--store", store, "users", "-o", "json")
	g.Expect(code).To(Equal(0))
	var users []map[string]any
	g.Expect(json.Unmarshal([]byte(out), &users)).To(Succeed())
	g.Expect(users).To(HaveLen(2))
	g.Expect(users[0]).To(HaveKeyWithValue("identity", "ann@example.com"))
	g.Expect(users[0]).To(HaveKeyWithValue("pending", BeNumerically("==", 1)))
}

func TestRecordsShowPrintsPairsWatermarksLinksAndPendingItems(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)

	out, _, code := chainsync("records", "--store", store, "show", "ann@example.com")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("User:   ann@example.com"))
	g.Expect(out).To(ContainSubstring("Pair:   crm/contact <-> mail/person"))
	g.Expect(out).To(MatchRegexp(`Initialized:\s+true`))
	g.Expect(out).To(MatchRegexp(`Watermark crm:\s+\S+`))
	g.Expect(out).To(MatchRegexp(`Watermark mail:\s+\S+`))
	g.Expect(out).To(ContainSubstring("Linked items (1):"))
	g.Expect(out).To(MatchRegexp(`CRM KEY\s+MAIL KEY\s+SYNCED AT`))
	g.Expect(out).To(ContainSubstring("Pending items (1):"))
	g.Expect(out).To(MatchRegexp(`Failing\s+mail\s+\S+\s+1\s+\d{4}-\S+\s+.*rejected by server`))
}

func TestRecordsShowJSONIsTheWholeExport(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)

	out, _, code := chainsync("records", "--store", store, "show", "ann@example.com", "-o", "json")
	g.Expect(code).To(Equal(0))
	var export records.UserExport
	g.Expect(json.Unmarshal([]byte(out), &export)).To(Succeed())
	g.Expect(export.Identity).To(Equal("ann@example.com"))
	g.Expect(export.Pairs).To(HaveLen(1))
	g.Expect(export.Pairs[0].Links).To(HaveLen(1))
	g.Expect(export.Pairs[0].Pending).To(ConsistOf(HaveField("Kind", records.Failing)))
	g.Expect(export.Pairs[0].State.Initialized).To(BeTrue())
}

func TestRecordsClaimsSaysWhichPolicySyncsWhomWhere(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)

	out, _, code := chainsync("records", "--store", store, "claims")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(MatchRegexp(`USER\s+TARGET\s+POLICY\s+SINCE`))
	g.Expect(out).To(MatchRegexp(`ann@example.com\s+mail\s+contacts\s+\d{4}-`))
	g.Expect(out).To(MatchRegexp(`bob@example.com\s+mail\s+contacts\s+\d{4}-`))
}

func TestRecordsReleaseClaimLetsAnotherPolicyInAndKeepsTheRecords(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)
	before, _, _ := chainsync("records", "--store", store, "show", "ann@example.com", "-o", "json")

	out, _, code := chainsync("records", "--store", store, "release-claim", "ann@example.com", "mail")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("Released the claim of SyncPolicy contacts on ann@example.com's mail"))

	out, _, _ = chainsync("records", "--store", store, "claims")
	g.Expect(out).NotTo(ContainSubstring("ann@example.com"))
	g.Expect(out).To(ContainSubstring("bob@example.com"), "other users' claims stay")
	after, _, _ := chainsync("records", "--store", store, "show", "ann@example.com", "-o", "json")
	g.Expect(after).To(Equal(before), "the records are kept")

	_, errOut, code := chainsync("records", "--store", store, "release-claim", "ann@example.com", "mail")
	g.Expect(code).NotTo(Equal(0))
	g.Expect(errOut).To(ContainSubstring("no claim on ann@example.com's mail"))
}

func TestRecordsChangesNothingAndSharesTheLockWithOtherReaders(t *testing.T) {
	g := NewWithT(t)
	store := syncedStore(t)
	before := fingerprint(t, store)

	// Another reader holds ann's records: a writer would fail with ErrLocked, a reader shares it.
	s, err := records.Open(store)
	g.Expect(err).NotTo(HaveOccurred())
	reader, err := s.OpenUser("ann@example.com", records.OpenOptions{ReadOnly: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer reader.Close()

	for _, args := range [][]string{{"users"}, {"show", "ann@example.com"}, {"show", "ann@example.com", "-o", "json"}, {"claims"}} {
		_, stderr, code := chainsync(append([]string{"records", "--store", store}, args...)...)
		g.Expect(code).To(Equal(0), "records %v: %s", args, stderr)
	}
	g.Expect(fingerprint(t, store)).To(Equal(before), "the store's files changed")
}

func TestRecordsRefusesWhatIsNotThere(t *testing.T) {
	g := NewWithT(t)
	missing := filepath.Join(t.TempDir(), "no-store")
	_, stderr, code := chainsync("records", "--store", missing, "users")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("no record store at " + missing))
	g.Expect(missing).NotTo(BeADirectory(), "a reader must not create a store")

	store := syncedStore(t)
	_, stderr, code = chainsync("records", "--store", store, "show", "carol@example.com")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("user has no records"))

	_, stderr, code = chainsync("records", "--store", store, "users", "-o", "yaml")
	g.Expect(code).To(Equal(1))
	g.Expect(stderr).To(ContainSubstring("--output must be table or json"))
}

func TestRecordsShowTheReportsOfADryRunOfAUserWithoutRecords(t *testing.T) {
	g := NewWithT(t)
	dir := syncedStore(t)
	store, err := records.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(store.PutCycleReport("carol@example.com", records.CycleReport{CycleID: "contacts-2", Policy: "contacts", Mode: "Initial", DryRun: true,
		Items: []records.ItemReport{{Entity: "contacts", Outcome: records.OutcomeWouldCreate,
			Source: records.ItemSide{Endpoint: "crm", Key: "c1", ID: "c1"}, Target: records.ItemSide{Endpoint: "mail"}, Reason: "new on crm"}},
		MoreItems: 7})).To(Succeed())

	out, stderr, code := chainsync("records", "--store", dir, "show", "carol@example.com")
	g.Expect(code).To(Equal(0), stderr)
	g.Expect(out).To(ContainSubstring("No pairs synced yet."))
	g.Expect(out).To(ContainSubstring("Cycle contacts-2 (Initial, dry run) of policy contacts, finished -"))
	g.Expect(out).To(MatchRegexp(`OUTCOME\s+ENTITY\s+CRM ID\s+MAIL ID\s+REASON`))
	g.Expect(out).To(MatchRegexp(`would create\s+contacts\s+c1\s+-\s+new on crm`))
	g.Expect(out).To(ContainSubstring("... and 7 more items, not kept"))

	out, stderr, code = chainsync("records", "--store", dir, "show", "carol@example.com", "-o", "json")
	g.Expect(code).To(Equal(0), stderr)
	var export records.UserExport
	g.Expect(json.Unmarshal([]byte(out), &export)).To(Succeed())
	g.Expect(export.Identity).To(Equal("carol@example.com"))
	g.Expect(export.Pairs).To(BeEmpty())
	g.Expect(export.Cycles).To(ConsistOf(HaveField("MoreItems", 7)))

	out, _, code = chainsync("records", "--store", dir, "users")
	g.Expect(code).To(Equal(0))
	g.Expect(out).NotTo(ContainSubstring("carol"), "a dry run leaves no records")
}

// fingerprint hashes every file of dir, by path.
func fingerprint(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sums[path] = sha256.Sum256(raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
