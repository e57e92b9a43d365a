package registry

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/collection"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

type noEnv struct{}

func (noEnv) Path(vp syncv1alpha1.VolumePath) string { return "/nowhere/" + vp.Path }
func (noEnv) Secret(syncv1alpha1.SecretKeyReference) (string, error) {
	return "", errors.New("no Secrets here")
}

func TestEveryConnectorOfTheAPIIsRegistered(t *testing.T) {
	g := NewWithT(t)
	for _, name := range []syncv1alpha1.ConnectorType{syncv1alpha1.CSVConnector, syncv1alpha1.SQLiteConnector, syncv1alpha1.PostgresConnector, syncv1alpha1.SCIMConnector, syncv1alpha1.LDAPConnector,
		syncv1alpha1.HTTPConnector, syncv1alpha1.CardDAVConnector, syncv1alpha1.CalDAVConnector} {
		g.Expect(kinds).To(HaveKey(name))
	}
}

func TestEndpointsAreDecodedByTheirConnector(t *testing.T) {
	g := NewWithT(t)
	entities := map[string]collection.Collection{"people": {Name: "people.csv", KeyFields: []string{"id"}}}

	err := ValidateSpec(endpoint.Spec{Side: "source", Entities: entities, Endpoint: syncv1alpha1.Endpoint{Name: "hr",
		Connector: syncv1alpha1.CSVConnector, CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{Path: "hr"}, Delimiter: `"`}}})
	g.Expect(err).To(MatchError(ContainSubstring("source.csv.delimiter")), "csv's own rules, named in the policy's terms")

	err = ValidateSpec(endpoint.Spec{Side: "target", Entities: entities, Endpoint: syncv1alpha1.Endpoint{Name: "x", Connector: "imap"}})
	g.Expect(err).To(MatchError(connector.ErrInvalidConfig))
	g.Expect(err).To(MatchError(ContainSubstring(`target.connector: "imap" is not a connector this version knows`)))

	err = ValidateSpec(endpoint.Spec{Side: "target", Entities: entities, Endpoint: syncv1alpha1.Endpoint{Name: "x", Connector: syncv1alpha1.SQLiteConnector}})
	g.Expect(err).To(MatchError(ContainSubstring("target.sqlite: must be set for connector sqlite")))

	// Opening resolves what the block names through the pod's Env: a postgres password comes
	// from a mounted Secret, and its absence names the field.
	_, err = Open(context.Background(), endpoint.Spec{Side: "source", Entities: entities, Endpoint: syncv1alpha1.Endpoint{Name: "crm",
		Connector: syncv1alpha1.PostgresConnector, Postgres: &syncv1alpha1.PostgresEndpoint{Host: "db", Database: "crm",
			CredentialsSecretRef: syncv1alpha1.CredentialsSecretReference{Name: "crm-db", UsernameKey: "username", PasswordKey: "password"}}}}, noEnv{})
	g.Expect(err).To(MatchError(ContainSubstring("source.postgres.credentialsSecretRef: no Secrets here")))
}
