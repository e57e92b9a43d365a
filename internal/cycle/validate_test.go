package cycle

import (
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

func TestValidateSpecNamesTheFieldAtFault(t *testing.T) {
	valid := func() *syncv1alpha1.SyncPolicy {
		return &syncv1alpha1.SyncPolicy{Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector,
				CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{Path: "hr"}, Delimiter: ";"}},
			Target: syncv1alpha1.Endpoint{Name: "crm", Connector: syncv1alpha1.PostgresConnector,
				Postgres: &syncv1alpha1.PostgresEndpoint{Host: "db", Database: "crm", SSLMode: "require"}},
			Entities: []syncv1alpha1.Entity{{Name: "people",
				Source: syncv1alpha1.Collection{Collection: "people.csv", KeyFields: []string{"id"},
					Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}},
				Target: syncv1alpha1.Collection{Collection: "people", KeyFields: []string{"id"}, Where: "owner = @email",
					Scope: []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}},
				Fields: []syncv1alpha1.FieldMapping{{Source: "name", Target: "name"}}}},
		}}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*syncv1alpha1.SyncPolicy)
		want   string
	}{
		{"valid", func(*syncv1alpha1.SyncPolicy) {}, ""},
		{"a quote as delimiter", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Source.CSV.Delimiter = `"` },
			`source.csv.delimiter: "\"" cannot separate fields`},
		{"a path as csv collection", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Entities[0].Source.Collection = "../secrets.csv" },
			`entities[people].source.collection: "../secrets.csv" must be a file name`},
		{"a where clause escaping its parentheses", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Entities[0].Target.Where = "owner = @email) OR (1=1" },
			`entities[people].target.where: unexpected ")"`},
		{"an unknown identity parameter", func(p *syncv1alpha1.SyncPolicy) { p.Spec.Entities[0].Target.Where = "owner = @mail" },
			`entities[people].target.where: `},
		{"a sqlite where", func(p *syncv1alpha1.SyncPolicy) {
			p.Spec.Target = syncv1alpha1.Endpoint{Name: "dir", Connector: syncv1alpha1.SQLiteConnector,
				SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: "d.db"}}}
			p.Spec.Entities[0].Target.Where = "owner = @email; DROP TABLE people"
		}, `entities[people].target.where: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := valid()
			tc.mutate(p)
			err := ValidateSpec(p)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}
