package postgres

import (
	"context"
	"fmt"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes postgres connectors from a SyncPolicy endpoint's postgres block.
var Kind = endpoint.Kind[Config]{
	Decode: func(spec endpoint.Spec) (Config, error) {
		b := spec.Endpoint.Postgres
		if b == nil {
			return Config{}, connector.InvalidConfig(fmt.Errorf("%s.postgres: must be set for connector postgres", spec.Side))
		}
		return Config{Side: spec.Side, Host: b.Host, Port: int(b.Port), Database: b.Database, Schema: b.Schema,
			SSLMode: string(b.SSLMode), Entities: spec.Entities}, nil
	},
	Connect: connect,
}

// connect reads the credentials (and CA) of the Secrets the block names, then connects.
func connect(ctx context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
	b := spec.Endpoint.Postgres
	secret := func(field string, ref syncv1alpha1.SecretKeyReference) (string, error) {
		v, err := env.Secret(ref)
		if err != nil {
			return "", fmt.Errorf("%s.postgres.%s: %w", spec.Side, field, err)
		}
		return v, nil
	}
	var err error
	creds := b.CredentialsSecretRef
	if cfg.User, err = secret("credentialsSecretRef", syncv1alpha1.SecretKeyReference{Name: creds.Name, Key: creds.UsernameKey}); err != nil {
		return nil, err
	}
	if cfg.Password, err = secret("credentialsSecretRef", syncv1alpha1.SecretKeyReference{Name: creds.Name, Key: creds.PasswordKey}); err != nil {
		return nil, err
	}
	if b.CASecretRef != nil {
		if cfg.CAPEM, err = secret("caSecretRef", *b.CASecretRef); err != nil {
			return nil, err
		}
	}
	return New(ctx, cfg)
}
