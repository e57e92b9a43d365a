package dav

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/radicaletest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(childFixture))
	}
	os.Exit(radicaletest.Main(m, users))
}

var users = map[string]string{"ann@example.com": "ann-password", "bob@example.com": "bob-password"}

// TestEngine runs the engine's scenarios with Radicale address books on both sides: each user's
// contacts are the vCards of their own address book (/<email>/<name>/), the contact's email in
// EMAIL;TYPE=work, its name in FN, its modification time in REV. Change cycles read the
// address book's sync token. The killed cycles' child process reaches the parent's server over
// TCP, by the URL the endpoint's Spec gives.
//
// The three suites run in parallel, each with a server of its own: Radicale looks at every object
// of a collection for each one created (a UID must not be there twice), so the scenarios' 1,200
// creates are its heaviest work, and one process does one at a time.
func TestEngine(t *testing.T) {
	t.Parallel()
	enginetest.Run(t, fixture(CardDAV, radicaletest.New(t, users)))
}

// TestEngineCalDAV runs them with task lists: a contact is a task (VTODO), its name the SUMMARY,
// its email the CONTACT, its modification time LAST-MODIFIED. Tasks rather than events, as the
// scenarios create items from a name and an email, and an event without a start is refused.
func TestEngineCalDAV(t *testing.T) {
	t.Parallel()
	enginetest.Run(t, fixture(CalDAV, radicaletest.New(t, users)))
}

// TestKillAndRerunWithoutMatchOn kills a cycle after its first batch of creates under a policy
// without matchOn: only the X-CHAINSYNC-ORIGIN of the created vCards tells the rerun which ones
// the killed cycle made.
func TestKillAndRerunWithoutMatchOn(t *testing.T) {
	t.Parallel()
	enginetest.KillAndRerunWithoutMatchOn(t, fixture(CardDAV, radicaletest.New(t, users)))
}

var collectionSeq atomic.Int64

func fixture(p Protocol, s *radicaletest.Server) enginetest.Fixture {
	return enginetest.Fixture{
		New: func(t *testing.T, role string) enginetest.Endpoint {
			e := &davEndpoint{URL: s.URL, Protocol: p, Collection: fmt.Sprintf("c%d", collectionSeq.Add(1)), server: s, index: map[string]*ownerIndex{}}
			kind := radicaletest.AddressBook
			if p == CalDAV {
				kind = radicaletest.TaskList
			}
			for _, owner := range []string{enginetest.Ann.Email, enginetest.Bob.Email} {
				s.MakeCollection(t, e.path(owner), kind, "")
			}
			return e
		},
		OpenSpec: childFixture.OpenSpec,
	}
}

var childFixture = enginetest.Fixture{OpenSpec: func(spec string) (enginetest.Endpoint, error) {
	e := &davEndpoint{}
	err := json.Unmarshal([]byte(spec), e)
	return e, err
}}

type davEndpoint struct {
	URL, Collection string
	Protocol        Protocol
	// server is nil in a child process, which only connects.
	server *radicaletest.Server
	// index finds an owner's objects by email without listing the collection for every Put: it
	// is listed again only when the collection changed since the fixture's own last write.
	index map[string]*ownerIndex
}

type ownerIndex struct {
	token   string
	byEmail map[string]radicaletest.Object
}

func (e *davEndpoint) component() string {
	if e.Protocol == CalDAV {
		return Tasks
	}
	return ""
}

func (e *davEndpoint) path(owner string) string { return "/" + owner + "/" + e.Collection + "/" }

// fields are the suite's fields (email, name) and the properties holding them.
func (e *davEndpoint) fields() map[string]string {
	if e.Protocol == CalDAV {
		return map[string]string{"email": "CONTACT", "name": "SUMMARY"}
	}
	return map[string]string{"email": "EMAIL;TYPE=work", "name": "FN"}
}

func (e *davEndpoint) Connector(t testing.TB, side string) connector.Connector {
	c, err := New(context.Background(), Config{Protocol: e.Protocol, Side: side, URL: e.URL,
		Username: radicaletest.ServiceUser, Password: radicaletest.ServicePassword,
		Collections: []Collection{{Name: "contacts", Path: "/{email}/" + e.Collection + "/", Component: e.component()}},
		Entities: map[string]collection.Collection{enginetest.Entity: {Name: "contacts", KeyFields: []string{UID},
			ModifiedField: modifiedProperty(e.Protocol)}}})
	if err != nil {
		t.Fatalf("dav.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return renamed{c, e.fields()}
}

// parsed is an object of the fixture's: its email, name, and how to write them back.
type parsed struct {
	email, name string
	card        vcard.Card
	cal         *ical.Calendar
}

func (e *davEndpoint) parse(t testing.TB, data string) parsed {
	if e.Protocol == CardDAV {
		card, err := vcard.NewDecoder(strings.NewReader(data)).Decode()
		if err != nil {
			t.Fatalf("a vCard in the test's address book does not parse: %v\n%s", err, data)
		}
		return parsed{email: card.Value(vcard.FieldEmail), name: card.Value(vcard.FieldFormattedName), card: card}
	}
	cal, err := ical.NewDecoder(strings.NewReader(data)).Decode()
	if err != nil {
		t.Fatalf("an object in the test's calendar does not parse: %v\n%s", err, data)
	}
	ev := task(cal)
	email, _ := ev.Props.Text(ical.PropContact)
	name, _ := ev.Props.Text(ical.PropSummary)
	return parsed{email: email, name: name, cal: cal}
}

func (e *davEndpoint) objects(t testing.TB, owner string) *ownerIndex {
	token := e.server.Stamp(t, e.path(owner))
	idx := e.index[owner]
	if idx != nil && idx.token == token {
		return idx
	}
	idx = &ownerIndex{token: token, byEmail: map[string]radicaletest.Object{}}
	for _, o := range e.server.Objects(t, e.path(owner)) {
		idx.byEmail[e.parse(t, o.Data).email] = o
	}
	e.index[owner] = idx
	return idx
}

func (e *davEndpoint) Put(t testing.TB, owner, email, name string, modified time.Time) {
	idx := e.objects(t, owner)
	o, ok := idx.byEmail[email]
	var body bytes.Buffer
	stamp := modified.UTC().Format("20060102T150405Z")
	if e.Protocol == CardDAV {
		card := vcard.Card{}
		if ok {
			card = e.parse(t, o.Data).card
		} else {
			card.SetValue(vcard.FieldVersion, "3.0")
			card.SetValue(vcard.FieldUID, newUID())
			card.Add(vcard.FieldEmail, &vcard.Field{Value: email, Params: vcard.Params{"TYPE": {"work"}}})
			o.Path = e.path(owner) + card.Value(vcard.FieldUID) + ".vcf"
		}
		card.SetValue(vcard.FieldFormattedName, name)
		card.SetValue(vcard.FieldRevision, stamp)
		vcard.NewEncoder(&body).Encode(card)
	} else {
		var cal *ical.Calendar
		if ok {
			cal = e.parse(t, o.Data).cal
		} else {
			cal = ical.NewCalendar()
			cal.Props.SetText(ical.PropVersion, "2.0")
			cal.Props.SetText(ical.PropProductID, "-//chainsync tests//EN")
			todo := ical.NewComponent(ical.CompToDo)
			uid := newUID()
			todo.Props.SetText(ical.PropUID, uid)
			todo.Props.SetText(ical.PropContact, email)
			cal.Children = append(cal.Children, todo)
			o.Path = e.path(owner) + uid + ".ics"
		}
		ev := task(cal)
		ev.Props.SetText(ical.PropSummary, name)
		ev.Props.SetDateTime(ical.PropDateTimeStamp, modified.UTC())
		ev.Props.SetDateTime(ical.PropLastModified, modified.UTC())
		if err := ical.NewEncoder(&body).Encode(cal); err != nil {
			t.Fatalf("encoding an event: %v", err)
		}
	}
	e.server.Write(t, o.Path, body.String())
	o.Data = body.String()
	idx.byEmail[email] = o
	idx.token = e.server.Stamp(t, e.path(owner))
}

func task(cal *ical.Calendar) *ical.Component {
	for _, c := range cal.Children {
		if c.Name == ical.CompToDo {
			return c
		}
	}
	return ical.NewComponent(ical.CompToDo)
}

func (e *davEndpoint) Delete(t testing.TB, owner, email string) {
	idx := e.objects(t, owner)
	if o, ok := idx.byEmail[email]; ok {
		e.server.Remove(t, o.Path)
		delete(idx.byEmail, email)
		idx.token = e.server.Stamp(t, e.path(owner))
	}
}

func (e *davEndpoint) Rows(t testing.TB, owner string) []string {
	var rows []string
	for _, o := range e.server.Objects(t, e.path(owner)) {
		p := e.parse(t, o.Data)
		rows = append(rows, p.email+" "+p.name)
	}
	slices.Sort(rows)
	return rows
}

func (e *davEndpoint) Spec() string {
	b, _ := json.Marshal(e)
	return string(b)
}

func (e *davEndpoint) Incremental() bool { return true }

// renamed gives the suite's fields (email, name) the properties that hold them.
type renamed struct {
	*Connector
	names map[string]string
}

func rename(fields map[string]connector.Value, names map[string]string) map[string]connector.Value {
	out := maps.Clone(fields)
	for from, to := range names {
		if v, ok := out[from]; ok {
			delete(out, from)
			out[to] = v
		}
	}
	return out
}

func (r renamed) back() map[string]string {
	out := map[string]string{}
	for k, v := range r.names {
		out[v] = k
	}
	return out
}

func (r renamed) request(req connector.ReadRequest) connector.ReadRequest {
	fields := slices.Clone(req.Fields)
	for i, f := range fields {
		if to, ok := r.names[f]; ok {
			fields[i] = to
		}
	}
	req.Fields = fields
	return req
}

func (r renamed) items(seq iter.Seq2[connector.Item, error]) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		for it, err := range seq {
			it.Fields = rename(it.Fields, r.back())
			if !yield(it, err) {
				return
			}
		}
	}
}

func (r renamed) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return r.items(r.Connector.ReadAll(ctx, r.request(req)))
}

func (r renamed) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	return r.items(r.Connector.ReadChanges(ctx, r.request(req), since))
}

func (r renamed) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	return r.Connector.CurrentWatermark(ctx, r.request(req))
}

func (r renamed) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	req.Writes = slices.Clone(req.Writes)
	for i := range req.Writes {
		req.Writes[i].Fields = rename(req.Writes[i].Fields, r.names)
	}
	res, err := r.Connector.Write(ctx, req)
	for i := range res {
		res[i].Stored = rename(res[i].Stored, r.back())
	}
	return res, err
}
