package sqlite

import (
	"context"
	"fmt"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes sqlite connectors from a SyncPolicy endpoint's sqlite block.
var Kind = endpoint.Kind[Config]{
	Decode: func(spec endpoint.Spec) (Config, error) {
		b := spec.Endpoint.SQLite
		if b == nil {
			return Config{}, connector.InvalidConfig(fmt.Errorf("%s.sqlite: must be set for connector sqlite", spec.Side))
		}
		return Config{Side: spec.Side, File: b.File.Path, Entities: spec.Entities}, nil
	},
	Connect: func(ctx context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
		cfg.File = env.Path(spec.Endpoint.SQLite.File)
		return New(ctx, cfg)
	},
}
