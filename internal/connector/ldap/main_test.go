package ldap

import (
	_ "embed"
	"os"
	"testing"

	"github.com/chainsync/chainsync/internal/engine/enginetest"
	"github.com/chainsync/chainsync/internal/testutil/ldaptest"
)

func TestMain(m *testing.M) {
	if enginetest.IsChild() {
		os.Exit(enginetest.RunChild(fixture))
	}
	os.Exit(ldaptest.Main(m, originSchema+"\n"+testSchema))
}

// originSchema is the schema chainsync ships for provable creates.
//
//go:embed schema/chainsync.ldif
var originSchema string

// testSchema is what the tests' entries are made of: contacts named by
// their email, with an owner and a modification time of their own, so the
// tests can date an edit as the engine's scenarios need, and binary
// attributes: an octet string that can key an entry (as objectGUID does on
// Active Directory), and one that inherits its syntax from it.
const testSchema = `dn: cn=chainsync-test,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: chainsync-test
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.1 NAME 'contactOwner'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.2 NAME 'modified'
  EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.3 NAME 'contactScore'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.4 NAME 'contactBadge'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.5 NAME 'contactPortrait' SUP contactBadge )
olcObjectClasses: ( 1.3.6.1.4.1.99999.2.1 NAME 'chainsyncContact' SUP top STRUCTURAL
  MUST email MAY ( name $ contactOwner $ modified $ contactScore $ telephoneNumber $ description $ jpegPhoto $
  userCertificate $ contactBadge $ contactPortrait ) )
`
