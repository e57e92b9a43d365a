// Package postgres is the connector for tables and views of a PostgreSQL
// database, with github.com/jackc/pgx/v5.
//
// One user's rows are those matching the collection's scope columns and its
// where clause, with the identity values bound as parameters. Values are
// written as canonical text that the server parses by column type, and read
// in text format and mapped to canonical values by type, so that the same
// data hashes the same from every connector. The server keeps many values in
// a text form of its own ("5" into numeric(10,2) reads back "5.00", a time
// into timestamptz in UTC, json into jsonb re-ordered), so a batch reads the
// rows it wrote back, in its transaction, and returns them as
// WriteResult.Stored.
//
// Writes go in one transaction per batch: creates by COPY (text format, so
// the server parses every value as it would an INSERT), updates and deletes
// as one pipelined batch of statements. When a row breaks a constraint the
// transaction is rolled back and the batch is replayed row by row under
// savepoints, so that only the offending rows fail, as item errors.
//
// With a modifiedField the connector is incremental. The watermark is the
// newest modification value among the user's rows; a change read takes the
// rows at or after it (and rows with none), so rows sharing the boundary
// timestamp, including ones committed later, are read again rather than
// missed; the engine ignores re-read items that did not change. A row
// committed with a modification time older than a watermark already taken
// (a long transaction stamping now() at its start) is not seen until a full
// read; stamp with clock_timestamp() in a trigger to avoid that. Deletes are
// not visible to change reads (no tombstones); the engine finds them in
// full reads.
//
// Every create is provable after a crash (the Origin capability): a table
// with a chainsync_origin column stores the engine's origin token in it; for
// any other table the connector keeps the tokens of each Write's creates in
// a chainsync_writes table in the endpoint's schema, written in the Write's
// transaction (see sqlgen.WritesTable), so the user's table needs no change.
// The connector creates that table on its first write; a user who may not
// create tables in the schema is told what to grant, or to add the column.
package postgres

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chainsync/chainsync/internal/connector/collection"
)

// SSL modes, as libpq names them.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// Config configures a postgres endpoint from resolved values: the
// credentials and CA are the contents of the Secret keys, not references.
type Config struct {
	// Side is "source" or "target", for error messages in the policy's
	// terms (source.postgres.host).
	Side     string
	Host     string
	Port     int
	Database string
	// Schema qualifies collections that name none; "" means public.
	Schema   string
	User     string
	Password string
	// SSLMode is libpq's sslmode; "" means require.
	SSLMode string
	// CAPEM is the PEM certificate authority verify-ca and verify-full
	// check the server's certificate against; "" means the system's roots.
	CAPEM string
	// Entities maps entity names to their tables or views.
	Entities map[string]collection.Collection
	// MaxConns bounds the connection pool; 0 means 4.
	MaxConns int32
	// ConnectTimeout bounds each connection attempt; 0 means 15s.
	ConnectTimeout time.Duration
}

func (c Config) side() string {
	if c.Side == "" {
		return "endpoint"
	}
	return c.Side
}

func (c Config) field(name string) string { return c.side() + ".postgres." + name }

func (c Config) entityPath(entity string) string {
	return fmt.Sprintf("entities[%s].%s", entity, c.side())
}

func (c Config) sslMode() string {
	if c.SSLMode == "" {
		return "require"
	}
	return c.SSLMode
}

func (c Config) schema() string {
	if c.Schema == "" {
		return "public"
	}
	return c.Schema
}

func (c Config) port() int {
	if c.Port == 0 {
		return 5432
	}
	return c.Port
}

// Validate checks the configuration, credentials included, without connecting.
func (c Config) Validate() error {
	errs := []error{c.ValidateSpec()}
	if c.User == "" {
		errs = append(errs, fmt.Errorf("%s: the user name is empty", c.field("credentialsSecretRef")))
	}
	if c.CAPEM != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CAPEM)) {
			errs = append(errs, fmt.Errorf("%s: the key holds no PEM certificate", c.field("caSecretRef")))
		}
	}
	return errors.Join(errs...)
}

// ValidateSpec checks what can be checked without the Secrets and the server, so
// the operator can refuse a policy before any cycle runs.
func (c Config) ValidateSpec() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("host")))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s: %d is not a TCP port", c.field("port"), c.Port))
	}
	if c.Database == "" {
		errs = append(errs, fmt.Errorf("%s: must be set", c.field("database")))
	}
	mode := c.sslMode()
	valid := false
	for _, m := range sslModes {
		valid = valid || m == mode
	}
	if !valid {
		errs = append(errs, fmt.Errorf("%s: %q is not one of %s", c.field("sslMode"), mode, strings.Join(sslModes, ", ")))
	}
	if len(c.Entities) == 0 {
		errs = append(errs, errors.New("entities: at least one entity is required"))
	}
	for name, coll := range c.Entities {
		if err := coll.Validate(c.entityPath(name), true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
