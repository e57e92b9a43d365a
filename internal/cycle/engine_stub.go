//go:build benchstub

package cycle

import (
	"context"

	"github.com/chainsync/chainsync/internal/engine"
)

// Only in the binary `make bench-scale BENCHFLAGS=-stub-cycles` builds (go build -tags
// benchstub): every cycle comes back empty without reading or writing either side, so the
// benchmark can measure the operator and the API server with more users than real cycles could
// move in its time. Everything around the engine stays real: the Jobs, the cycle processes, the
// record store's claims, reading the users and writing their status.
func init() {
	engineRun = func(context.Context, engine.Cycle) (engine.Result, error) { return engine.Result{}, nil }
}
