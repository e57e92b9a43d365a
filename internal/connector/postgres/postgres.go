package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/sqlgen"
)

// MaxBatch bounds one Write call: large enough for COPY to pay off, small
// enough that a replay under savepoints after a bad row stays quick.
const MaxBatch = 10_000

// Connector reads and writes the tables and views of one database.
type Connector struct {
	cfg    Config
	pool   *pgxpool.Pool
	tables map[string]table
	caps   connector.Capabilities
	// writesReady is set once chainsync_writes is known to be usable.
	writesMu    sync.Mutex
	writesReady bool
	// now stamps the modification column of written rows; tests replace it.
	now func() time.Time
}

// table is an entity's table with its column types.
type table struct {
	sqlgen.Table
	// schema and name, unquoted, for COPY.
	schema, name string
	// keyTypes are the SQL types of the key columns, for matching keys
	// passed as text.
	keyTypes []string
}

var (
	_ connector.Connector    = (*Connector)(nil)
	_ connector.ChangeReader = (*Connector)(nil)
)

// New validates cfg, connects, and checks that every entity's table or view
// and its configured columns exist, so a misconfigured policy or an
// unreachable server fails before anything is read.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, connector.InvalidConfig(err)
	}
	pcfg, err := poolConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.side()+".postgres", err)
	}
	c := &Connector{cfg: cfg, pool: pool, tables: map[string]table{}, now: time.Now}
	if err := c.inspect(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection pool.
func (c *Connector) Close() error {
	c.pool.Close()
	return nil
}

func poolConfig(cfg Config) (*pgxpool.Config, error) {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.port())), Path: "/" + cfg.Database}
	q := url.Values{}
	q.Set("sslmode", cfg.sslMode())
	q.Set("application_name", "chainsync")
	u.RawQuery = q.Encode()
	pcfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.side()+".postgres", err)
	}
	cc := pcfg.ConnConfig
	cc.User, cc.Password = cfg.User, cfg.Password
	cc.ConnectTimeout = cfg.ConnectTimeout
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 15 * time.Second
	}
	// Times are read in UTC and ISO form, whatever the server's defaults.
	cc.RuntimeParams["timezone"] = "UTC"
	cc.RuntimeParams["datestyle"] = "ISO, YMD"
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	} else {
		pcfg.MaxConns = 4
	}
	if mode := cfg.sslMode(); mode == "verify-ca" || mode == "verify-full" {
		tlsCfg, err := verifyingTLS(cfg)
		if err != nil {
			return nil, err
		}
		cc.TLSConfig = tlsCfg
		cc.Fallbacks = nil
	}
	return pcfg, nil
}

// verifyingTLS checks the server's certificate against the given CA (or the
// system roots); verify-full also checks the host name, verify-ca only the
// chain, as libpq does.
func verifyingTLS(cfg Config) (*tls.Config, error) {
	var roots *x509.CertPool
	if cfg.CAPEM != "" {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(cfg.CAPEM)) {
			return nil, fmt.Errorf("%s: the key holds no PEM certificate", cfg.field("caSecretRef"))
		}
	}
	if cfg.sslMode() == "verify-full" {
		return &tls.Config{ServerName: cfg.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain is checked below, the name is not
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		},
	}, nil
}

// endpointError explains a connection failure in terms of the field that
// fixes it.
func (c *Connector) endpointError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("%s: authentication failed for user %q: %s", c.cfg.field("credentialsSecretRef"), c.cfg.User, pgErr.Message)
		case "3D000":
			return fmt.Errorf("%s: %s", c.cfg.field("database"), pgErr.Message)
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "tls:") || strings.Contains(msg, "SSL"):
		return fmt.Errorf("%s: TLS with %s:%d failed (check sslMode and caSecretRef): %w", c.cfg.field("sslMode"), c.cfg.Host, c.cfg.port(), err)
	case strings.Contains(msg, "password authentication failed"):
		return fmt.Errorf("%s: authentication failed for user %q: %w", c.cfg.field("credentialsSecretRef"), c.cfg.User, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(msg, "dial") || strings.Contains(msg, "connect") {
		return fmt.Errorf("%s: cannot reach %s:%d: %w", c.cfg.field("host"), c.cfg.Host, c.cfg.port(), err)
	}
	return fmt.Errorf("%s: %w", c.cfg.side()+".postgres", err)
}

func (c *Connector) inspect(ctx context.Context) error {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return c.endpointError(err)
	}
	defer conn.Release()
	c.caps = connector.Capabilities{Incremental: true, ModTime: true, Origin: true, MaxBatch: MaxBatch}
	var errs []error
	for name, coll := range c.cfg.Entities {
		path := c.cfg.entityPath(name)
		schema, rel := c.cfg.schema(), coll.Name
		if s, r, ok := strings.Cut(coll.Name, "."); ok {
			schema, rel = s, r
		}
		qualified := sqlgen.Quote(schema) + "." + sqlgen.Quote(rel)
		rows, err := conn.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, qualified)
		if err != nil {
			return c.endpointError(err)
		}
		var cols []string
		types := map[string]string{}
		var col, typ string
		if _, err := pgx.ForEachRow(rows, []any{&col, &typ}, func() error {
			cols, types[col] = append(cols, col), typ
			return nil
		}); err != nil {
			return c.endpointError(err)
		}
		hasOrigin := false
		var fields []string
		for _, col := range cols {
			if col == sqlgen.OriginColumn {
				hasOrigin = true
			} else {
				fields = append(fields, col)
			}
		}
		if len(fields) == 0 {
			errs = append(errs, fmt.Errorf("%s.collection: table or view %s.%s does not exist in database %q (or the user cannot see it)", path, schema, rel, c.cfg.Database))
			continue
		}
		if err := sqlgen.CheckColumns(path, fmt.Sprintf("%q", coll.Name), coll, fields); err != nil {
			errs = append(errs, err)
			continue
		}
		where, _ := collection.ParseWhere(coll.Where)
		t := table{
			Table: sqlgen.Table{QualifiedName: qualified, Coll: coll, Where: where, Columns: fields, HasOrigin: hasOrigin,
				Placeholder: func(n int) string { return "$" + strconv.Itoa(n) }, ReturnText: true},
			schema: schema, name: rel,
		}
		if !hasOrigin {
			t.Writes = c.writesTable()
		}
		for _, k := range coll.KeyFields {
			t.keyTypes = append(t.keyTypes, types[k])
		}
		c.tables[name] = t
		c.caps.Incremental = c.caps.Incremental && coll.ModifiedField != ""
		c.caps.ModTime = c.caps.Incremental
	}
	return connector.InvalidConfig(errors.Join(errs...))
}

// Capabilities: incremental with modification times when every entity has a
// modifiedField; always Origin (see the package doc).
func (c *Connector) Capabilities() connector.Capabilities { return c.caps }

func (c *Connector) table(entity string) (table, error) {
	t, ok := c.tables[entity]
	if !ok {
		return table{}, fmt.Errorf("entity %q is not configured for the %s postgres endpoint", entity, c.cfg.side())
	}
	return t, nil
}

func (c *Connector) incrementalTable(entity string) (table, error) {
	t, err := c.table(entity)
	if err == nil && t.Coll.ModifiedField == "" {
		err = fmt.Errorf("%s.modifiedField: incremental reads need a modification column", c.cfg.entityPath(entity))
	}
	return t, err
}

// ReadAll streams the user's rows; pgx reads them off the wire as the
// caller iterates, so memory does not grow with the table.
func (c *Connector) ReadAll(ctx context.Context, req connector.ReadRequest) iter.Seq2[connector.Item, error] {
	return c.read(ctx, req, nil)
}

// CurrentWatermark is the newest modification value among the user's rows,
// in the server's text form, or "" when there are none.
func (c *Connector) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	t, err := c.incrementalTable(req.Entity)
	if err != nil {
		return "", err
	}
	q, args, err := t.MaxModified(req.Scope)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.cfg.entityPath(req.Entity), err)
	}
	var max *string
	if err := c.pool.QueryRow(ctx, "SELECT m::text FROM ("+q+") AS w(m)", args...).Scan(&max); err != nil {
		return "", c.endpointError(fmt.Errorf("reading the watermark of %s: %w", t.Coll.Name, err))
	}
	if max == nil {
		return "", nil
	}
	return connector.Watermark(*max), nil
}

// ReadChanges streams the rows modified at or after the watermark.
func (c *Connector) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	if _, err := c.incrementalTable(req.Entity); err != nil {
		return func(yield func(connector.Item, error) bool) { yield(connector.Item{}, err) }
	}
	if since == "" {
		return c.read(ctx, req, nil)
	}
	// The server parses the text by the column's type.
	return c.read(ctx, req, string(since))
}

func (c *Connector) read(ctx context.Context, req connector.ReadRequest, since any) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		t, err := c.table(req.Entity)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		cols := t.SelectColumns(req.Fields)
		q, args, err := t.Select(req.Scope, cols, since)
		if err != nil {
			yield(connector.Item{}, fmt.Errorf("%s: %w", c.cfg.entityPath(req.Entity), err))
			return
		}
		origins, err := c.recordedOrigins(ctx, t, req.Scope)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		// Text results: every type, including ones pgx has no Go type
		// for, reads the same way.
		rows, err := c.pool.Query(ctx, q, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
		if err != nil {
			yield(connector.Item{}, c.endpointError(fmt.Errorf("reading %s: %w", t.Coll.Name, err)))
			return
		}
		defer rows.Close()
		oids := make([]uint32, len(cols))
		for i, fd := range rows.FieldDescriptions() {
			oids[i] = fd.DataTypeOID
		}
		for rows.Next() {
			item, err := toItem(t, cols, oids, rows.RawValues())
			if err != nil {
				err = connector.NewItemError(item.ID, err)
			}
			if o, ok := origins[item.ID]; ok {
				item.Origin = o
			}
			if !yield(item, err) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(connector.Item{}, c.endpointError(fmt.Errorf("reading %s: %w", t.Coll.Name, err)))
		}
	}
}

func toItem(t table, cols []string, oids []uint32, raw [][]byte) (connector.Item, error) {
	item := connector.Item{Fields: make(map[string]connector.Value, len(cols))}
	var firstErr error
	for i, col := range cols {
		if col == sqlgen.OriginColumn {
			item.Origin = string(raw[i])
			continue
		}
		v, err := textValue(oids[i], raw[i])
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", col, err)
		}
		item.Fields[col] = v
	}
	item.ID, _ = t.Coll.ItemID(item.Fields)
	if m := t.Coll.ModifiedField; m != "" && firstErr == nil {
		mt, err := modTime(item.Fields[m])
		if err != nil {
			return item, fmt.Errorf("%s: %w", m, err)
		}
		item.ModTime = mt
	}
	return item, firstErr
}
