// Package registry knows the connectors by the name a SyncPolicy endpoint gives
// (spec.source.connector): adding one is its API type, its own package, and one line here.
package registry

import (
	"context"
	"fmt"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/connector/dav"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
	"github.com/chainsync/chainsync/internal/connector/ldap"
	"github.com/chainsync/chainsync/internal/connector/postgres"
	"github.com/chainsync/chainsync/internal/connector/rest"
	"github.com/chainsync/chainsync/internal/connector/scim"
	"github.com/chainsync/chainsync/internal/connector/sqlite"
)

// Kind is one connector type, made from its endpoint block.
type Kind interface {
	// ValidateSpec checks what can be checked without volumes, Secrets or servers, with the rules
	// Open applies, so the operator refuses a policy before any cycle runs.
	ValidateSpec(spec endpoint.Spec) error
	// Open makes the connector for one cycle of one user.
	Open(ctx context.Context, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error)
}

var kinds = map[syncv1alpha1.ConnectorType]Kind{
	syncv1alpha1.CSVConnector:      csv.Kind,
	syncv1alpha1.SQLiteConnector:   sqlite.Kind,
	syncv1alpha1.PostgresConnector: postgres.Kind,
	syncv1alpha1.SCIMConnector:     scim.Kind,
	syncv1alpha1.LDAPConnector:     ldap.Kind,
	syncv1alpha1.HTTPConnector:     rest.Kind,
	syncv1alpha1.CardDAVConnector:  dav.CardDAVKind,
	syncv1alpha1.CalDAVConnector:   dav.CalDAVKind,
}

func kindOf(spec endpoint.Spec) (Kind, error) {
	k, ok := kinds[spec.Endpoint.Connector]
	if !ok {
		return nil, connector.InvalidConfig(fmt.Errorf("%s.connector: %q is not a connector this version knows", spec.Side, spec.Endpoint.Connector))
	}
	return k, nil
}

// ValidateSpec checks an endpoint without its volumes, Secrets or servers.
func ValidateSpec(spec endpoint.Spec) error {
	k, err := kindOf(spec)
	if err != nil {
		return err
	}
	return k.ValidateSpec(spec)
}

// Open makes an endpoint's connector. Close it when the cycle is done.
func Open(ctx context.Context, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
	k, err := kindOf(spec)
	if err != nil {
		return nil, err
	}
	return k.Open(ctx, spec, env)
}
