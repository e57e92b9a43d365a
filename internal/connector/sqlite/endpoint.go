package sqlite

import (
	"context"
	"fmt"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes sqlite connectors from a SyncPolicy endpoint's sqlite block.
type Kind struct{}

func (Kind) config(spec endpoint.Spec) (Config, error) {
	b := spec.Endpoint.SQLite
	if b == nil {
		return Config{}, connector.InvalidConfig(fmt.Errorf("%s.sqlite: must be set for connector sqlite", spec.Side))
	}
	return Config{Side: spec.Side, File: b.File.Path, Entities: spec.Entities}, nil
}

// ValidateSpec checks the block without the database file.
func (k Kind) ValidateSpec(spec endpoint.Spec) error {
	cfg, err := k.config(spec)
	if err != nil {
		return err
	}
	return cfg.ValidateSpec()
}

// Open opens the database file as the pod mounts it.
func (k Kind) Open(ctx context.Context, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
	cfg, err := k.config(spec)
	if err != nil {
		return nil, err
	}
	cfg.File = env.Path(spec.Endpoint.SQLite.File)
	return New(ctx, cfg)
}
