package cycle

import (
	"context"
	"iter"
	"syscall"

	"github.com/chainsync/chainsync/internal/connector"
)

// The crash points, for the tests that kill a cycle process at them.
const (
	CrashBeforeStatus   = crashBeforeStatus
	CrashAfterClear     = crashAfterClear
	CrashForgetDetached = crashForgetDetached
	CrashForgetReleased = crashForgetReleased
)

func kill() {
	_ = syscall.Kill(syscall.Getpid(), syscall.SIGKILL)
	select {} // the signal is not delivered synchronously: nothing else may run meanwhile
}

// CrashAt makes the process kill itself with SIGKILL when it reaches point the nth time.
func CrashAt(point string, nth int) {
	reached := 0
	crashHooks.at = func(p string) {
		if p == point {
			if reached++; reached >= nth {
				kill()
			}
		}
	}
}

// CrashAfterWrites makes the process kill itself with SIGKILL as soon as side's connector has
// carried out n write batches (committed on the endpoint, not yet recorded by the engine), and
// has the connector take batches of at most batch writes, so that kills land between them.
func CrashAfterWrites(side string, n, batch int) {
	crashHooks.wrap = func(s string, c connector.Connector) connector.Connector {
		if s != side {
			return c
		}
		k := &killingConnector{Connector: c, after: n, batch: batch}
		if cr, ok := c.(connector.ChangeReader); ok {
			return killingChangeReader{k, cr}
		}
		return k
	}
}

type killingConnector struct {
	connector.Connector
	after, batch, done int
}

func (k *killingConnector) Capabilities() connector.Capabilities {
	caps := k.Connector.Capabilities()
	caps.MaxBatch = k.batch
	return caps
}

func (k *killingConnector) Write(ctx context.Context, req connector.WriteRequest) ([]connector.WriteResult, error) {
	res, err := k.Connector.Write(ctx, req)
	if k.done++; k.done >= k.after {
		kill()
	}
	return res, err
}

type killingChangeReader struct {
	*killingConnector
	cr connector.ChangeReader
}

func (k killingChangeReader) CurrentWatermark(ctx context.Context, req connector.ReadRequest) (connector.Watermark, error) {
	return k.cr.CurrentWatermark(ctx, req)
}

func (k killingChangeReader) ReadChanges(ctx context.Context, req connector.ReadRequest, since connector.Watermark) iter.Seq2[connector.Item, error] {
	return k.cr.ReadChanges(ctx, req, since)
}
