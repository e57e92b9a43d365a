package ldap

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// binarySyntaxes are the attribute syntaxes (RFC 4517, RFC 4523, and X.500's binary) whose
// values are octets rather than text: their values are base64 on chainsync's side.
var binarySyntaxes = map[string]bool{
	"1.3.6.1.4.1.1466.115.121.1.4":  true, // Audio
	"1.3.6.1.4.1.1466.115.121.1.5":  true, // Binary
	"1.3.6.1.4.1.1466.115.121.1.8":  true, // Certificate
	"1.3.6.1.4.1.1466.115.121.1.9":  true, // Certificate List
	"1.3.6.1.4.1.1466.115.121.1.10": true, // Certificate Pair
	"1.3.6.1.4.1.1466.115.121.1.23": true, // Fax
	"1.3.6.1.4.1.1466.115.121.1.28": true, // JPEG
	"1.3.6.1.4.1.1466.115.121.1.40": true, // Octet String (objectGUID, userPassword, ...)
	"1.3.6.1.4.1.1466.115.121.1.49": true, // Supported Algorithm
}

var (
	attributeTypeName = regexp.MustCompile(`\bNAME\s+(?:'([^']+)'|\(([^)]*)\))`)
	attributeTypeSup  = regexp.MustCompile(`\bSUP\s+'?([-A-Za-z0-9.;]+)'?`)
	attributeSyntax   = regexp.MustCompile(`\bSYNTAX\s+'?([0-9.]+)`)
	quotedName        = regexp.MustCompile(`'([^']+)'`)
)

// binaryAttributes reads the attribute types of a subschema (RFC 4512 section 4.1.2) and returns
// the names, in lower case, of those of a binary syntax, their own or their supertype's.
func binaryAttributes(definitions []string) map[string]bool {
	type attrType struct {
		names       []string
		syntax, sup string
	}
	byName := map[string]*attrType{}
	var all []*attrType
	for _, def := range definitions {
		at := &attrType{}
		if m := attributeTypeName.FindStringSubmatch(def); m != nil {
			if m[1] != "" {
				at.names = []string{m[1]}
			}
			for _, q := range quotedName.FindAllStringSubmatch(m[2], -1) {
				at.names = append(at.names, q[1])
			}
		}
		if m := attributeSyntax.FindStringSubmatch(def); m != nil {
			at.syntax = m[1]
		}
		if m := attributeTypeSup.FindStringSubmatch(def); m != nil {
			at.sup = strings.ToLower(m[1])
		}
		for _, n := range at.names {
			byName[strings.ToLower(n)] = at
		}
		all = append(all, at)
	}
	syntaxOf := func(at *attrType) string {
		for depth := 0; at != nil && depth < 16; depth++ {
			if at.syntax != "" {
				return at.syntax
			}
			at = byName[at.sup]
		}
		return ""
	}
	binary := map[string]bool{}
	for _, at := range all {
		if binarySyntaxes[syntaxOf(at)] {
			for _, n := range at.names {
				binary[strings.ToLower(n)] = true
			}
		}
	}
	return binary
}

// readBinarySchema finds the directory's binary attributes in its subschema subentry. A
// directory that does not let the account read its schema gives none: the collections'
// binaryAttributes then say which they are.
func (c *Connector) readBinarySchema() (map[string]bool, error) {
	root, err := c.conn.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"subschemaSubentry"}, nil))
	if err != nil || len(root.Entries) == 0 {
		return nil, c.unlessRefused("reading the root DSE", err)
	}
	subschema := root.Entries[0].GetAttributeValue("subschemaSubentry")
	if subschema == "" {
		return nil, nil
	}
	res, err := c.conn.Search(goldap.NewSearchRequest(subschema, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=subschema)", []string{"attributeTypes"}, nil))
	if err != nil || len(res.Entries) == 0 {
		return nil, c.unlessRefused("reading the schema at "+subschema, err)
	}
	return binaryAttributes(res.Entries[0].GetAttributeValues("attributeTypes")), nil
}

// unlessRefused is nil for a server's refusal to show something, and the endpoint failure
// otherwise.
func (c *Connector) unlessRefused(doing string, err error) error {
	if err == nil || goldap.IsErrorAnyOf(err, goldap.LDAPResultInsufficientAccessRights, goldap.LDAPResultNoSuchObject,
		goldap.LDAPResultUnwillingToPerform) {
		return nil
	}
	return c.endpointError(doing, err)
}

// isBinary reports whether an attribute's values are octets: declared so by the collection,
// transferred with the ;binary option, or of a binary syntax in the directory's schema.
func (e entries) isBinary(attr string) bool {
	parts := strings.Split(strings.ToLower(attr), ";")
	for _, opt := range parts[1:] {
		if opt == "binary" {
			return true
		}
	}
	for _, b := range e.class.BinaryAttributes {
		if b = strings.ToLower(b); b == parts[0] || b == strings.ToLower(attr) {
			return true
		}
	}
	return e.schemaBinary[parts[0]]
}

// decodeBase64 reads a binary attribute's value as chainsync holds it.
func decodeBase64(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("a binary attribute takes base64 text, and %q is not: %w", abbreviate(s), err)
	}
	return string(b), nil
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
