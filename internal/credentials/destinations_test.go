package credentials

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		annotation, dest string
		want             bool
	}{
		{"crm-db.crm.svc", "crm-db.crm.svc:5432", true},
		{"CRM-DB.crm.svc", "crm-db.crm.svc:5432", true},
		{"crm-db.crm.svc:5432", "crm-db.crm.svc:5432", true},
		{"crm-db.crm.svc:5433", "crm-db.crm.svc:5432", false},
		{"crm-db.crm.svc", "attacker.example.com:5432", false},
		{"crm-db.crm.svc", "crm-db.crm.svc.attacker.example.com:5432", false},
		{"", "crm-db.crm.svc:5432", false},
		{"a.svc, b.svc", "b.svc:5432", true},
		{"a.svc\n b.svc", "b.svc:5432", true},
		{"*.db.internal", "crm.db.internal:5432", true},
		{"*.db.internal", "db.internal:5432", false},
		{"*.db.internal", "crm.db.internal.evil:5432", false},
		{"*.db.internal", "evildb.internal:5432", false},
		{"*.db.internal:6432", "crm.db.internal:5432", false},
		{"10.0.0.7", "10.0.0.7:5432", true},
		{"[::1]:5432", "[::1]:5432", true},
		{"https://api.example.com/v1/", "https://api.example.com/v1/contacts", true},
		{"https://api.example.com/v1", "https://api.example.com/v1/contacts", true},
		{"https://api.example.com/v1", "https://api.example.com/v1-evil/contacts", false},
		{"https://api.example.com/v1/", "https://api.example.com/v1/../admin", false},
		{"https://api.example.com/v1/", "http://api.example.com/v1/contacts", false},
		{"https://api.example.com/v1/", "https://api.example.com.evil/v1/contacts", false},
		{"https://api.example.com/", "https://user@api.example.com/", false},
		{"https://api.example.com/", "api.example.com:443", false},
		{"api.example.com", "https://api.example.com/", false},
	} {
		t.Run(tc.annotation+"→"+tc.dest, func(t *testing.T) {
			g := NewWithT(t)
			d, err := Parse(tc.annotation)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Allows(tc.dest)).To(Equal(tc.want))
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, annotation := range []string{"*", "*evil.com", "a.*.com", "host:99999", "host:http", "ftp://x/", "https://u:p@x/", "https:///path", "a/b"} {
		t.Run(annotation, func(t *testing.T) {
			_, err := Parse(annotation)
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}
