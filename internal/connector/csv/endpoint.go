package csv

import (
	"context"
	"fmt"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/endpoint"
)

// Kind makes csv connectors from a SyncPolicy endpoint's csv block.
var Kind = endpoint.Kind[Config]{
	Decode: func(spec endpoint.Spec) (Config, error) {
		b := spec.Endpoint.CSV
		if b == nil {
			return Config{}, connector.InvalidConfig(fmt.Errorf("%s.csv: must be set for connector csv", spec.Side))
		}
		return Config{Side: spec.Side, Directory: b.Directory.Path, Delimiter: b.Delimiter, Comment: b.Comment,
			Encoding: b.Encoding, Entities: spec.Entities,
			// A target's file that is not there yet is an empty one, to be created.
			MissingFileIsEmpty: spec.Side == "target"}, nil
	},
	Connect: func(_ context.Context, cfg Config, spec endpoint.Spec, env endpoint.Env) (connector.Connector, error) {
		cfg.Directory = env.Path(spec.Endpoint.CSV.Directory)
		if r, ok := env.(RejectedRowsEnv); ok {
			cfg.OnRejectedRow = r.OnRejectedRow(spec.Side)
		}
		return New(cfg)
	},
}

// RejectedRowsEnv is an Env that wants an export's rows that are no one's (the cycle reports
// them); csv asks for it when the Env offers it.
type RejectedRowsEnv interface {
	OnRejectedRow(side string) func(entity string, row RejectedRow)
}
