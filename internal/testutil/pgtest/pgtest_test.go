package pgtest

import (
	"context"
	"os"
	"testing"

	. "github.com/onsi/gomega"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestServerIsRealAndSchemasAreIsolated(t *testing.T) {
	g := NewWithT(t)
	s := Current(t)
	schema := s.Schema(t)
	s.Exec(t, `CREATE TABLE "`+schema+`".probe (id int primary key)`)
	conn := s.Connect(t)
	defer conn.Close(context.Background())
	var version string
	g.Expect(conn.QueryRow(context.Background(), "SHOW server_version").Scan(&version)).To(Succeed())
	g.Expect(version).NotTo(BeEmpty())
	var n int
	g.Expect(conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1`, schema).Scan(&n)).To(Succeed())
	g.Expect(n).To(Equal(1))
}
