package postgres

import (
	"context"
	"fmt"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes postgres connectors from a SyncPolicy endpoint's postgres block.
type Kind struct{}

func (Kind) config(spec endpoint.Spec) (Config, error) {
	b := spec.Endpoint.Postgres
	if b == nil {
		return Config{}, connector.InvalidConfig(fmt.Errorf("%s.postgres: must be set for connector postgres", spec.Side))
	}
	return Config{Side: spec.Side, Host: b.Host, Port: int(b.Port), Database: b.Database, Schema: b.Schema,
		SSLMode: string(b.SSLMode), Entities: spec.Entities}, nil
}

// ValidateSpec checks the block without the Secrets and the server.
func (k Kind) ValidateSpec(spec endpoint.Spec) error {
	cfg, err := k.config(spec)
	if err != nil {
		return err
	}
	return cfg.ValidateSpec()
}

// Open connects with the credentials (and CA) of the Secrets the block names.
func (k Kind) Open(ctx context.Context, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
	cfg, err := k.config(spec)
	if err != nil {
		return nil, err
	}
	b := spec.Endpoint.Postgres
	secret := func(field string, ref syncv1alpha1.SecretKeyReference) (string, error) {
		v, err := env.Secret(ref)
		if err != nil {
			return "", fmt.Errorf("%s.postgres.%s: %w", spec.Side, field, err)
		}
		return v, nil
	}
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
