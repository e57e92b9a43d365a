package dav

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/testutil/radicaletest"
)

var (
	ctx = context.Background()
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann"}
)

// addressBook makes an address book of its own for one test, in Ann's principal.
func addressBook(t *testing.T, displayName string) string {
	p := fmt.Sprintf("/%s/t%d/", ann.Email, collectionSeq.Add(1))
	radicaletest.Current(t).MakeCollection(t, p, radicaletest.AddressBook, displayName)
	return p
}

func people(modified string) map[string]collection.Collection {
	return map[string]collection.Collection{"people": {Name: "contacts", KeyFields: []string{UID}, ModifiedField: modified}}
}

// open connects as the service account to the collection at path.
func open(t *testing.T, p Protocol, path, component string) *Connector {
	t.Helper()
	c, err := New(ctx, Config{Protocol: p, Side: "target", URL: radicaletest.Current(t).URL,
		Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
		Collections: []Collection{{Name: "contacts", Path: path, Component: component}}, Entities: people("")})
	if err != nil {
		t.Fatalf("dav.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readAll(t *testing.T, c connector.Connector, fields ...string) ([]connector.Item, []error) {
	var items []connector.Item
	var errs []error
	for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people", Fields: fields}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items = append(items, it)
	}
	return items, errs
}

func vcf(uid, extra string) string {
	return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\n" + extra + "END:VCARD\r\n"
}

func TestUpdateKeepsWhatIsNotMapped(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "")
	s.Put(t, book+"ann-1.vcf", vcf("ann-1", "FN:Ann Example\r\nN:Example;Ann;;;\r\nEMAIL;TYPE=home:ann@home.example\r\n"+
		"EMAIL;TYPE=work:ann@old.example\r\nADR;TYPE=home:;;1 Rue de la Paix;Paris;;75002;France\r\n"+
		"PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ==\r\nX-ABLABEL:Met at the fair\r\nNOTE:Likes tea\r\n"))
	c := open(t, CardDAV, book, "")
	items, errs := readAll(t, c, "FN", "EMAIL;TYPE=work")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].ID).To(Equal("ann-1"), "the UID is the item's ID")
	g.Expect(items[0].Fields).To(HaveKeyWithValue("EMAIL;TYPE=work", connector.String("ann@old.example")))

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{{Op: connector.OpUpdate, ID: "ann-1",
		Fields: map[string]connector.Value{"FN": connector.String("Ann Newname"), "EMAIL;TYPE=work": connector.String("ann@new.example")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[0].Stored).To(Equal(map[string]connector.Value{"FN": connector.String("Ann Newname"), "EMAIL;TYPE=work": connector.String("ann@new.example"), UID: connector.String("ann-1")}))

	objs := s.Objects(t, book)
	g.Expect(objs).To(HaveLen(1))
	text := strings.ReplaceAll(objs[0].Data, "\r\n ", "")
	for _, kept := range []string{"N:Example;Ann;;;", "ann@home.example", "1 Rue de la Paix", "/9j/4AAQSkZJRgABAQ==", "X-ABLABEL:Met at the fair", "NOTE:Likes tea", "UID:ann-1"} {
		g.Expect(text).To(ContainSubstring(kept), "an unmapped property is kept")
	}
	g.Expect(text).To(ContainSubstring("FN:Ann Newname"))
	g.Expect(text).To(ContainSubstring("ann@new.example"))
	g.Expect(text).NotTo(ContainSubstring("ann@old.example"))
}

func TestAConcurrentEditIsAConflictNotAnOverwrite(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "")
	s.Put(t, book+"a.vcf", vcf("a", "FN:Alice\r\n"))
	s.Put(t, book+"b.vcf", vcf("b", "FN:Bruno\r\n"))
	c := open(t, CardDAV, book, "")
	_, errs := readAll(t, c, "FN")
	g.Expect(errs).To(BeEmpty())

	// Someone edits both on their phone after the cycle read them.
	s.Put(t, book+"a.vcf", vcf("a", "FN:Alice (phone)\r\n"))
	s.Put(t, book+"b.vcf", vcf("b", "FN:Bruno (phone)\r\n"))
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "a", Fields: map[string]connector.Value{"FN": connector.String("Alice (crm)")}},
		{Op: connector.OpDelete, ID: "b"},
	}})
	g.Expect(err).NotTo(HaveOccurred(), "a conflict is the item's, not the endpoint's")
	g.Expect(res).To(HaveLen(2))
	g.Expect(res[0].Err).To(MatchError(ContainSubstring("changed on the server since this cycle read it")))
	g.Expect(connector.IsItemError(res[1].Err)).To(BeTrue())
	g.Expect(res[1].Err).To(MatchError(ContainSubstring("412")))
	var names []string
	for _, o := range s.Objects(t, book) {
		names = append(names, strings.TrimSpace(strings.Split(strings.Split(o.Data, "FN:")[1], "\n")[0]))
	}
	slices.Sort(names)
	g.Expect(names).To(Equal([]string{"Alice (phone)", "Bruno (phone)"}), "the phone's edits are kept, the cycle's writes refused")

	// The next cycle reads them again and writes over what it has seen.
	_, errs = readAll(t, c, "FN")
	g.Expect(errs).To(BeEmpty())
	res, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "a", Fields: map[string]connector.Value{"FN": connector.String("Alice (crm)")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
}

func TestACreateNeverReplacesAnObject(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "")
	s.Put(t, book+"taken.vcf", vcf("taken", "FN:Already here\r\n"))
	c := open(t, CardDAV, book, "")
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{UID: connector.String("taken"), "FN": connector.String("Intruder")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{UID: connector.String("meeting-42@example.com"), "FN": connector.String("New")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).To(MatchError(ContainSubstring("an object is at")))
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[1].ID).To(Equal("meeting-42@example.com"), "a mapped UID is kept: one identity across systems")
	items, _ := readAll(t, c, "FN")
	got := map[string]string{}
	for _, it := range items {
		got[it.ID] = it.Fields["FN"].Text
	}
	g.Expect(got).To(Equal(map[string]string{"taken": "Already here", "meeting-42@example.com": "New"}))
}

// corrupting is a proxy in front of the test server that breaks the line X-CORRUPT:here, in
// every answer, into one without its colon: a server serving a card a buggy client stored.
// Radicale itself refuses such a card, and rewrites what it stores.
func corrupting(t *testing.T) string {
	target, err := url.Parse(radicaletest.Current(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Accept-Encoding") // answers in plain text, to be edited
	}
	proxy.ModifyResponse = func(r *http.Response) error {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		body = bytes.ReplaceAll(body, []byte("X-CORRUPT:here"), []byte("X-CORRUPT here"))
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestAVCardThatDoesNotParseIsAnItemErrorAndIsKept(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "")
	s.Put(t, book+"good.vcf", vcf("good", "FN:Good\r\n"))
	etag := s.Put(t, book+"broken.vcf", vcf("broken", "FN:Broken\r\nX-CORRUPT:here\r\n"))
	c, err := New(ctx, Config{Protocol: CardDAV, Side: "target", URL: corrupting(t), Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
		Collections: []Collection{{Name: "contacts", Path: book}}, Entities: people("")})
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	items, errs := readAll(t, c, "FN")
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].ID).To(Equal("good"))
	g.Expect(errs).To(HaveLen(1))
	g.Expect(connector.IsItemError(errs[0])).To(BeTrue(), "one card that does not parse fails its item only: %v", errs[0])
	g.Expect(errs[0]).To(MatchError(ContainSubstring(`broken.vcf: line 5 is not a vCard property: "X-CORRUPT here"; it is left as it is`)))

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "broken", Fields: map[string]connector.Value{"FN": connector.String("Fixed?")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(connector.IsItemError(res[0].Err)).To(BeTrue())
	for _, o := range s.Objects(t, book) {
		if strings.HasSuffix(o.Path, "broken.vcf") {
			g.Expect(o.ETag).To(Equal(etag), "nothing is lost: the card is left as it is")
			g.Expect(o.Data).To(ContainSubstring("X-CORRUPT:here"))
		}
	}
}

func TestChangeReadsSeeDeletionsByTheSyncToken(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	book := addressBook(t, "")
	for _, uid := range []string{"a", "b", "c"} {
		s.Put(t, book+uid+".vcf", vcf(uid, "FN:"+strings.ToUpper(uid)+"\r\n"))
	}
	c := open(t, CardDAV, book, "")
	req := connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{"FN"}}
	mark, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mark).NotTo(BeEmpty())

	s.Delete(t, book+"a.vcf")
	s.Put(t, book+"b.vcf", vcf("b", "FN:B (edited)\r\n"))
	s.Put(t, book+"d.vcf", vcf("d", "FN:D\r\n"))
	got := map[string]string{}
	for it, err := range c.ReadChanges(ctx, req, mark) {
		g.Expect(err).NotTo(HaveOccurred())
		if it.Deleted {
			got[it.ID] = "deleted"
		} else {
			got[it.ID] = it.Fields["FN"].Text
		}
	}
	g.Expect(got).To(Equal(map[string]string{"a": "deleted", "b": "B (edited)", "d": "D"}), "c did not change")

	next, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	n := 0
	for range c.ReadChanges(ctx, req, next) {
		n++
	}
	g.Expect(n).To(BeZero(), "nothing changed since")

	// A token the server does not know reads everything again, rather than miss a change.
	n = 0
	for it, err := range c.ReadChanges(ctx, req, "http://radicale.org/ns/sync/0000") {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(it.Deleted).To(BeFalse())
		n++
	}
	g.Expect(n).To(Equal(3))
}

func TestDiscoveryFindsTheUsersCollectionFromTheirIdentity(t *testing.T) {
	s := radicaletest.Current(t)
	work := addressBook(t, "Work")
	s.Put(t, work+"w.vcf", vcf("w", "FN:From work\r\n"))
	addressBook(t, "Family")
	connect := func(cfg Config) ([]connector.Item, error) {
		cfg.Protocol, cfg.Side, cfg.URL, cfg.Entities = CardDAV, "target", s.URL, people("")
		c, err := New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		var items []connector.Item
		for it, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people", Fields: []string{"FN"}}) {
			if err != nil {
				return items, err
			}
			items = append(items, it)
		}
		return items, nil
	}
	t.Run("the service account, by the user's principal and the display name", func(t *testing.T) {
		g := NewWithT(t)
		items, err := connect(Config{Principal: "/{email}/", Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
			Collections: []Collection{{Name: "contacts", DisplayName: "Work"}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(items).To(HaveLen(1))
		g.Expect(items[0].Fields["FN"]).To(Equal(connector.String("From work")))
	})
	t.Run("the user's own account, by current-user-principal", func(t *testing.T) {
		g := NewWithT(t)
		items, err := connect(Config{Username: ann.Email, Password: s.Users[ann.Email],
			Collections: []Collection{{Name: "contacts", DisplayName: "Work"}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(items).To(HaveLen(1))
	})
	t.Run("several address books and no display name", func(t *testing.T) {
		g := NewWithT(t)
		_, err := connect(Config{Principal: "/{email}/", Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
			Collections: []Collection{{Name: "contacts"}}})
		g.Expect(err).To(MatchError(ContainSubstring("holds several address books")))
		g.Expect(err).To(MatchError(ContainSubstring(`"Work"`)))
		g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
	})
	t.Run("a display name the user does not have", func(t *testing.T) {
		g := NewWithT(t)
		_, err := connect(Config{Principal: "/{email}/", Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
			Collections: []Collection{{Name: "contacts", DisplayName: "Clients"}}})
		g.Expect(err).To(MatchError(ContainSubstring(`target.carddav.collections[contacts].displayName: the home set /ann@example.com/ of the principal /ann@example.com/ holds no address book named "Clients"`)))
	})
	t.Run("an identity that is not one path segment", func(t *testing.T) {
		g := NewWithT(t)
		c, err := New(ctx, Config{Protocol: CardDAV, URL: s.URL, Principal: "/{email}/", Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
			Collections: []Collection{{Name: "contacts"}}, Entities: people("")})
		g.Expect(err).NotTo(HaveOccurred())
		defer c.Close()
		for _, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: connector.Scope{Email: "../bob@example.com"}, Entity: "people"}) {
			g.Expect(err).To(MatchError(ContainSubstring(`cannot be a path segment`)))
		}
	})
}

func TestTheServerOrTheCredentialsFailTheEndpoint(t *testing.T) {
	s := radicaletest.Current(t)
	base := Config{Protocol: CardDAV, Side: "target", Collections: []Collection{{Name: "contacts", Path: "/{email}/x/"}}, Entities: people("")}
	t.Run("wrong password", func(t *testing.T) {
		g := NewWithT(t)
		cfg := base
		cfg.URL, cfg.Username, cfg.Password = s.URL, radicaletest.ServiceUser, "wrong"
		_, err := New(ctx, cfg)
		g.Expect(err).To(MatchError(ContainSubstring("target.carddav.basicAuthSecretRef: the server refused the credentials")))
		g.Expect(err).NotTo(MatchError(connector.ErrInvalidConfig), "an outage or a rotated password, not the policy")
	})
	t.Run("unreachable", func(t *testing.T) {
		g := NewWithT(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		g.Expect(err).NotTo(HaveOccurred())
		addr := l.Addr().String()
		l.Close()
		cfg := base
		cfg.URL, cfg.BearerToken = "http://"+addr+"/", "token"
		_, err = New(ctx, cfg)
		g.Expect(err).To(MatchError(ContainSubstring("target.carddav.url: the server cannot be reached")))
	})
	t.Run("a collection that is not there", func(t *testing.T) {
		g := NewWithT(t)
		cfg := base
		cfg.URL, cfg.Username, cfg.Password = s.URL, radicaletest.ServiceUser, radicaletest.ServicePassword
		c, err := New(ctx, cfg)
		g.Expect(err).NotTo(HaveOccurred())
		defer c.Close()
		_, errs := readAll(t, c)
		g.Expect(errs).To(HaveLen(1))
		g.Expect(connector.IsEndpointFailure(errs[0])).To(BeTrue())
		g.Expect(errs[0]).To(MatchError(ContainSubstring("the collection /ann@example.com/x/ is not on the server")))
	})
}

func TestCalendarsKeepARecurringEventWhole(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	cal := fmt.Sprintf("/%s/cal%d/", ann.Email, collectionSeq.Add(1))
	s.MakeCollection(t, cal, radicaletest.Calendar, "")
	s.Put(t, cal+"weekly-1.ics", recurring)
	c := open(t, CalDAV, cal, Events)
	items, errs := readAll(t, c, "SUMMARY", "RRULE", "DTSTART")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(1), "the series and its moved occurrence are one item")
	g.Expect(items[0].ID).To(Equal("weekly-1"))
	g.Expect(items[0].Fields).To(HaveKeyWithValue("RRULE", connector.String("FREQ=WEEKLY;BYDAY=MO")))

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpUpdate, ID: "weekly-1", Fields: map[string]connector.Value{"SUMMARY": connector.String("Team standup")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"SUMMARY": connector.String("Review"), "DTSTART": connector.String("2026-03-05"),
			"RRULE": connector.String("FREQ=MONTHLY")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"SUMMARY": connector.String("Whenever")}},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[1].Err).NotTo(HaveOccurred())
	g.Expect(res[2].Err).To(MatchError(ContainSubstring("an event needs a start: map a field to DTSTART")))
	g.Expect(connector.IsItemError(res[2].Err)).To(BeTrue())
	var texts []string
	for _, o := range s.Objects(t, cal) {
		texts = append(texts, strings.ReplaceAll(o.Data, "\r\n ", ""))
	}
	all := strings.Join(texts, "\n")
	g.Expect(all).To(ContainSubstring("SUMMARY:Team standup"))
	g.Expect(all).To(ContainSubstring("SUMMARY:Standup (moved)"), "the exception is kept")
	g.Expect(all).To(ContainSubstring("RECURRENCE-ID;TZID=Europe/Paris:20260309T090000"))
	g.Expect(all).To(ContainSubstring("TRIGGER:-PT5M"), "the alarm is kept")
	g.Expect(all).To(ContainSubstring("DTSTART;VALUE=DATE:20260305"))
}

func TestTaskListsHoldTasks(t *testing.T) {
	g := NewWithT(t)
	s := radicaletest.Current(t)
	list := fmt.Sprintf("/%s/todo%d/", ann.Email, collectionSeq.Add(1))
	s.MakeCollection(t, list, radicaletest.TaskList, "Tasks")
	c := open(t, CalDAV, list, Tasks)
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "people", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"SUMMARY": connector.String("Call Ann"), "STATUS": connector.String("NEEDS-ACTION"),
			"DUE": connector.String("2026-03-06T17:00:00Z")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	items, errs := readAll(t, c, "SUMMARY", "STATUS", "DUE")
	g.Expect(errs).To(BeEmpty())
	g.Expect(items).To(HaveLen(1))
	g.Expect(items[0].Fields).To(HaveKeyWithValue("STATUS", connector.String("NEEDS-ACTION")))
	g.Expect(items[0].Fields["DUE"].Kind).To(Equal(connector.KindTime))
	g.Expect(res[0].Stored).To(Equal(items[0].Fields), "what a write stored is what the next read gives")
	g.Expect(s.Objects(t, list)[0].Data).To(ContainSubstring("BEGIN:VTODO"))
}
