package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(pgtest.Main(m))
}

var (
	ann = connector.Scope{Email: "ann@example.com", Name: "Ann", Attributes: map[string]string{"tenant": "t1"}}
	bob = connector.Scope{Email: "bob@example.com", Name: "Bob", Attributes: map[string]string{"tenant": "t1"}}
	ctx = context.Background()
)

// config reaches the test server as its superuser, in a fresh schema.
func config(t *testing.T, entities map[string]collection.Collection) (Config, *pgtest.Server, string) {
	s := pgtest.Current(t)
	schema := s.Schema(t)
	return Config{Side: "target", Host: s.Host, Port: s.Port, Database: s.Database, Schema: schema,
		User: s.User, Password: s.Password, SSLMode: "prefer", Entities: entities}, s, schema
}

func open(t *testing.T, cfg Config) *Connector {
	t.Helper()
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func collect(g Gomega, seq iter.Seq2[connector.Item, error]) map[string]connector.Item {
	out := map[string]connector.Item{}
	for item, err := range seq {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).NotTo(HaveKey(item.ID), "read twice: %s", item.ID)
		out[item.ID] = item
	}
	return out
}

const contactsDDL = `CREATE TABLE %[1]q.contacts (
	id bigserial PRIMARY KEY, owner text NOT NULL, tenant text, name text, email text UNIQUE,
	score double precision, balance numeric, active boolean, photo bytea, born date,
	modified timestamptz, CHECK (name <> 'forbidden'))`

func contacts(mutate func(*collection.Collection)) map[string]collection.Collection {
	c := collection.Collection{Name: "contacts", KeyFields: []string{"id"}, ModifiedField: "modified",
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}
	if mutate != nil {
		mutate(&c)
	}
	return map[string]collection.Collection{"contacts": c}
}

func TestReadTableAndViewWithScopeAndWhere(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, contacts(func(c *collection.Collection) { c.Where = "tenant = @attr_tenant" }))
	s.Exec(t, fmt.Sprintf(contactsDDL, schema))
	s.Exec(t, fmt.Sprintf(`INSERT INTO %q.contacts (id, owner, tenant, name, score, balance, active, photo, born, modified) VALUES
		(1, 'ann@example.com', 't1', 'Carl', 1.5, 10.50, true, '\x0102', '1990-05-06', '2024-03-01 10:00:00.123456+00'),
		(2, 'bob@example.com', 't1', 'Dora', NULL, NULL, false, NULL, NULL, '2024-03-01 10:00:00+00'),
		(3, 'ann@example.com', 't2', 'Eve', 2, NULL, NULL, NULL, NULL, NULL)`, schema))
	c := open(t, cfg)

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(1), "bob's row and ann's row of another tenant are out of scope")
	carl := got["1"].Fields
	g.Expect(carl["id"]).To(Equal(connector.Int(1)))
	g.Expect(carl["score"]).To(Equal(connector.Float(1.5)))
	g.Expect(carl["balance"]).To(Equal(connector.String("10.50")))
	g.Expect(carl["active"]).To(Equal(connector.Bool(true)))
	g.Expect(carl["photo"]).To(Equal(connector.Bytes([]byte{1, 2})))
	g.Expect(carl["born"]).To(Equal(connector.String("1990-05-06")))
	g.Expect(carl["email"].IsNull()).To(BeTrue())
	g.Expect(got["1"].ModTime).To(Equal(time.Date(2024, 3, 1, 10, 0, 0, 123456000, time.UTC)))

	evil := connector.Scope{Email: "x' OR '1'='1", Attributes: map[string]string{"tenant": "t1' OR '1'='1"}}
	g.Expect(collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: evil, Entity: "contacts"}))).To(BeEmpty(),
		"identity values are bound as parameters, never pasted into the SQL")

	// A view reads like a table.
	s.Exec(t, fmt.Sprintf(`CREATE VIEW %[1]q.people AS SELECT id AS person_id, owner, name FROM %[1]q.contacts`, schema))
	cfg.Entities = map[string]collection.Collection{"people": {Name: "people", KeyFields: []string{"person_id"},
		Scope: []collection.ScopeMatch{{Field: "owner", Identity: "email"}}}}
	v := open(t, cfg)
	g.Expect(collect(g, v.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "people"}))).To(And(HaveKey("1"), HaveKey("3"), HaveLen(2)))
	g.Expect(v.Capabilities().Incremental).To(BeFalse())
}

func TestBulkWritesAndItemErrors(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, contacts(nil))
	s.Exec(t, fmt.Sprintf(contactsDDL, schema))
	s.Exec(t, fmt.Sprintf(`INSERT INTO %q.contacts (id, owner, name, email) VALUES
		(1, 'ann@example.com', 'Carl', 'carl@x'), (2, 'bob@example.com', 'Dora', 'dora@x'), (3, 'ann@example.com', 'Gus', 'gus@x')`, schema))
	s.Exec(t, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%q.contacts', 'id'), 3)`, schema))
	c := open(t, cfg)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return now }

	// A clean batch: COPY for keyed creates, a batch for the rest.
	var writes []connector.Write
	for i := 100; i < 2100; i++ {
		writes = append(writes, connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{
			"id": connector.Int(int64(i)), "name": connector.String(fmt.Sprintf("tab\there, line\nbreak \\ %d", i)),
			"photo": connector.Bytes([]byte{byte(i)}), "score": connector.Null()}})
	}
	writes = append(writes,
		connector.Write{Op: connector.OpCreate, Fields: map[string]connector.Value{"name": connector.String("server keyed")}},
		connector.Write{Op: connector.OpUpdate, ID: "1", Fields: map[string]connector.Value{"name": connector.String("Carlos")}},
		connector.Write{Op: connector.OpDelete, ID: "3"},
		connector.Write{Op: connector.OpUpdate, ID: "424242", Fields: map[string]connector.Value{"name": connector.String("gone")}},
	)
	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: writes})
	g.Expect(err).NotTo(HaveOccurred())
	for i, r := range res[:len(res)-1] {
		g.Expect(r.Err).NotTo(HaveOccurred(), "write %d", i)
	}
	g.Expect(res[len(res)-1].Err).To(MatchError(connector.ErrNotFound))
	g.Expect(withoutStored(res[0])).To(Equal(connector.WriteResult{ID: "100", ModTime: now}))
	// A missing row must not make the batch replay: a replay would run the
	// create again and the server would hand out the next key.
	g.Expect(res[2000].ID).To(Equal("4"), "the server assigns the key and the connector returns it")
	g.Expect(withoutStored(res[2001])).To(Equal(connector.WriteResult{ID: "1", ModTime: now}))
	g.Expect(res[150-100].Stored).To(HaveKeyWithValue("name", connector.String("tab\there, line\nbreak \\ 150")), "COPYed rows are read back")
	g.Expect(res[2001].Stored).To(HaveKeyWithValue("name", connector.String("Carlos")), "updated rows are returned as stored")

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveLen(2002))
	g.Expect(got["150"].Fields["name"].Text).To(Equal("tab\there, line\nbreak \\ 150"), "COPY escaping round-trips")
	g.Expect(got["150"].Fields["photo"]).To(Equal(connector.Bytes([]byte{150})))
	g.Expect(got["150"].Fields["owner"].Text).To(Equal("ann@example.com"), "a create lands in the user's scope")
	g.Expect(got["150"].ModTime).To(Equal(now))
	g.Expect(got).NotTo(HaveKey("3"))

	// A batch with bad rows: only they fail; the rest is applied.
	res, err = c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "contacts", Writes: []connector.Write{
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.Int(5000), "name": connector.String("ok")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.Int(5001), "email": connector.String("carl@x")}},
		{Op: connector.OpCreate, Fields: map[string]connector.Value{"id": connector.Int(100), "name": connector.String("dup key")}},
		{Op: connector.OpUpdate, ID: "1", Fields: map[string]connector.Value{"name": connector.String("forbidden")}},
		{Op: connector.OpUpdate, ID: "2", Fields: map[string]connector.Value{"name": connector.String("bob's")}},
		{Op: connector.OpUpdate, ID: "101", Fields: map[string]connector.Value{"score": connector.String("not a number")}},
		{Op: connector.OpDelete, ID: "102"},
		{Op: connector.OpDelete, ID: "999999"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res[0].Err).NotTo(HaveOccurred())
	g.Expect(res[1].Err).To(MatchError(ContainSubstring("contacts_email_key")))
	g.Expect(res[2].Err).To(MatchError(ContainSubstring("contacts_pkey")))
	g.Expect(res[3].Err).To(MatchError(ContainSubstring("check constraint")))
	g.Expect(res[4].Err).To(MatchError(connector.ErrNotFound), "bob's row is out of ann's scope")
	g.Expect(res[5].Err).To(MatchError(ContainSubstring("invalid input syntax for type double precision")))
	g.Expect(res[6].Err).NotTo(HaveOccurred())
	g.Expect(res[7].Err).To(MatchError(connector.ErrNotFound))
	for _, i := range []int{1, 2, 3, 4, 5, 7} {
		g.Expect(connector.IsItemError(res[i].Err)).To(BeTrue(), "write %d fails as an item, not the endpoint", i)
	}
	got = collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}))
	g.Expect(got).To(HaveKey("5000"))
	g.Expect(got).NotTo(HaveKey("102"))
	g.Expect(got["1"].Fields["name"].Text).To(Equal("Carlos"))
	g.Expect(got["100"].Fields["name"].Text).NotTo(Equal("dup key"))
}

func TestCompositeKeysAndOrigin(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, map[string]collection.Collection{"lines": {Name: "lines", KeyFields: []string{"ord", "line"}}})
	s.Exec(t, fmt.Sprintf(`CREATE TABLE %q.lines (ord text, line int, qty int, chainsync_origin text, PRIMARY KEY (ord, line))`, schema))
	s.Exec(t, fmt.Sprintf(`INSERT INTO %q.lines VALUES ('A,1', 2, 5, NULL), ('A', 12, 6, NULL)`, schema))
	c := open(t, cfg)
	g.Expect(c.Capabilities()).To(Equal(connector.Capabilities{Origin: true, MaxBatch: MaxBatch}))

	got := collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "lines"}))
	g.Expect(got).To(HaveKey(`["A,1","2"]`))
	g.Expect(got).To(HaveKey(`["A","12"]`))
	g.Expect(got[`["A","12"]`].Fields).NotTo(HaveKey("chainsync_origin"))

	res, err := c.Write(ctx, connector.WriteRequest{Scope: ann, Entity: "lines", Writes: []connector.Write{
		{Op: connector.OpCreate, Origin: "o-B1", Fields: map[string]connector.Value{"ord": connector.String("B"), "line": connector.Int(1), "qty": connector.Int(1)}},
		{Op: connector.OpUpdate, ID: `["A,1","2"]`, Origin: "o-A1", Fields: map[string]connector.Value{"qty": connector.Int(9)}},
		{Op: connector.OpDelete, ID: `["A","12"]`},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(withoutStored(res[0])).To(Equal(connector.WriteResult{ID: `["B","1"]`}))
	g.Expect(res[0].Stored).To(HaveKeyWithValue("qty", connector.Int(1)), "rows with a composite key are read back too")
	g.Expect(withoutStored(res[1])).To(Equal(connector.WriteResult{ID: `["A,1","2"]`}))
	g.Expect(res[2].Err).NotTo(HaveOccurred())
	got = collect(g, c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "lines"}))
	g.Expect(got).To(HaveLen(2))
	g.Expect(got[`["B","1"]`].Origin).To(Equal("o-B1"))
	g.Expect(got[`["A,1","2"]`].Origin).To(Equal("o-A1"))
	g.Expect(got[`["A,1","2"]`].Fields["qty"]).To(Equal(connector.Int(9)))
}

func TestIncrementalReadsMissNothingAtEqualTimestamps(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, contacts(nil))
	s.Exec(t, fmt.Sprintf(contactsDDL, schema))
	ins := func(id int, owner, name, modified string) {
		mod := "NULL"
		if modified != "" {
			mod = "'" + modified + "'"
		}
		s.Exec(t, fmt.Sprintf(`INSERT INTO %q.contacts (id, owner, name, modified) VALUES ($1, $2, $3, %s)`, schema, mod), id, owner, name)
	}
	ins(1, "ann@example.com", "old", "2024-01-01 00:00:00+00")
	ins(2, "ann@example.com", "a", "2024-01-02 00:00:00.5+00")
	ins(3, "ann@example.com", "b", "2024-01-02 00:00:00.5+00")
	ins(9, "bob@example.com", "bob", "2024-05-01 00:00:00+00")
	c := open(t, cfg)
	g.Expect(c.Capabilities()).To(Equal(connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}))
	req := connector.ReadRequest{Scope: ann, Entity: "contacts"}

	first, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(collect(g, c.ReadChanges(ctx, req, ""))).To(HaveLen(3))

	ins(4, "ann@example.com", "c", "2024-01-02 00:00:00.5+00")
	s.Exec(t, fmt.Sprintf(`UPDATE %q.contacts SET name = 'a2' WHERE id = 2`, schema))
	ins(5, "ann@example.com", "no time", "")

	second, err := c.CurrentWatermark(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	changes := collect(g, c.ReadChanges(ctx, req, first))
	g.Expect(changes).To(HaveKey("4"), "a row with the boundary timestamp committed after the watermark is not missed")
	g.Expect(changes).To(HaveKey("5"), "a row without a modification time is not missed")
	g.Expect(changes["2"].Fields["name"].Text).To(Equal("a2"))
	g.Expect(changes).NotTo(HaveKey("1"), "rows before the watermark are not read again")
	g.Expect(changes).NotTo(HaveKey("9"))

	s.Exec(t, fmt.Sprintf(`UPDATE %q.contacts SET name = 'later', modified = '2024-02-01 00:00:00+00' WHERE id = 3`, schema))
	changes = collect(g, c.ReadChanges(ctx, req, second))
	g.Expect(changes["3"].Fields["name"].Text).To(Equal("later"))
	g.Expect(changes).NotTo(HaveKey("1"))
}

func TestTLS(t *testing.T) {
	s := pgtest.Current(t)
	if !s.Started {
		t.Skipf("the server named by %s has no test CA; TLS is tested against the harness's own server", pgtest.EnvURL)
	}
	g := NewWithT(t)
	cfg, _, schema := config(t, contacts(nil))
	s.Exec(t, fmt.Sprintf(contactsDDL, schema))

	for _, mode := range []string{"verify-full", "verify-ca"} {
		cfg.SSLMode, cfg.CAPEM = mode, s.CAPEM
		c, err := New(ctx, cfg)
		g.Expect(err).NotTo(HaveOccurred(), mode)
		var ssl bool
		g.Expect(c.pool.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)).To(Succeed())
		g.Expect(ssl).To(BeTrue(), "%s connects over TLS", mode)
		c.Close()
	}

	// verify-full checks the name: the certificate is for 127.0.0.1 and
	// localhost, not for this alias.
	cfg.SSLMode, cfg.CAPEM = "verify-full", s.CAPEM
	cfg.Host = "127.0.0.2"
	{
		fwd := forward(t, "127.0.0.2", s.Host, s.Port) // 127.0.0.0/8 is all loopback on Linux
		cfg.Port = fwd
		_, err := New(ctx, cfg)
		g.Expect(err).To(MatchError(ContainSubstring("target.postgres.sslMode: TLS with 127.0.0.2")))
		cfg.SSLMode = "verify-ca"
		c, err := New(ctx, cfg)
		g.Expect(err).NotTo(HaveOccurred(), "verify-ca checks the chain, not the name")
		c.Close()
		cfg.Host, cfg.Port = s.Host, s.Port
	}

	// Another CA's certificate is refused.
	other, err := pgtest.NewCAPEM()
	g.Expect(err).NotTo(HaveOccurred())
	cfg.SSLMode, cfg.CAPEM = "verify-full", other
	_, err = New(ctx, cfg)
	g.Expect(err).To(MatchError(ContainSubstring("target.postgres.sslMode: TLS with")))
	g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
}

// forward relays connections from addr:0 to the server, so the server is
// reached under a name its certificate does not have.
func forward(t *testing.T, addr, host string, port int) int {
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				in.Close()
				continue
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestEndpointFailuresNameTheField(t *testing.T) {
	g := NewWithT(t)
	cfg, s, schema := config(t, contacts(nil))
	s.Exec(t, fmt.Sprintf(contactsDDL, schema))

	bad := cfg
	bad.Password = "wrong"
	_, err := New(ctx, bad)
	g.Expect(err).To(MatchError(ContainSubstring(`target.postgres.credentialsSecretRef: authentication failed for user "` + s.User + `"`)))

	bad = cfg
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	bad.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	bad.ConnectTimeout = 3 * time.Second
	_, err = New(ctx, bad)
	g.Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("target.postgres.host: cannot reach 127.0.0.1:%d", bad.Port))))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeFalse(), "a server down is an outage, not a wrong spec")

	bad = cfg
	bad.Database = "no_such_db"
	_, err = New(ctx, bad)
	g.Expect(err).To(MatchError(ContainSubstring(`target.postgres.database: database "no_such_db" does not exist`)))

	bad = cfg
	bad.Entities = map[string]collection.Collection{
		"contacts": {Name: "contacts", KeyFields: []string{"emp_id"}, ModifiedField: "changed"},
		"accounts": {Name: "accounts", KeyFields: []string{"id"}},
	}
	_, err = New(ctx, bad)
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].target.keyFields: column "emp_id" does not exist in "contacts"`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[contacts].target.modifiedField: column "changed" does not exist`)))
	g.Expect(err).To(MatchError(ContainSubstring(`entities[accounts].target.collection: table or view ` + schema + `.accounts does not exist`)))
	g.Expect(errors.Is(err, connector.ErrInvalidConfig)).To(BeTrue(), "a missing table or column is the spec's fault")

	_, err = New(ctx, Config{Side: "source", SSLMode: "sometimes", CAPEM: "not pem", Entities: contacts(func(c *collection.Collection) { c.Where = "x = @who" })})
	g.Expect(err).To(MatchError(ContainSubstring("source.postgres.host: must be set")))
	g.Expect(err).To(MatchError(ContainSubstring("source.postgres.database: must be set")))
	g.Expect(err).To(MatchError(ContainSubstring(`source.postgres.sslMode: "sometimes" is not one of`)))
	g.Expect(err).To(MatchError(ContainSubstring("source.postgres.caSecretRef: the key holds no PEM certificate")))
	g.Expect(err).To(MatchError(ContainSubstring("entities[contacts].source.where: unknown parameter @who")))

	// A server that goes away mid-cycle is an endpoint failure on read.
	c := open(t, cfg)
	c.pool.Close()
	for _, err := range c.ReadAll(ctx, connector.ReadRequest{Scope: ann, Entity: "contacts"}) {
		g.Expect(connector.IsEndpointFailure(err)).To(BeTrue())
		break
	}
}

// withoutStored drops what a write read back, for comparing the rest.
func withoutStored(r connector.WriteResult) connector.WriteResult {
	r.Stored = nil
	return r
}
