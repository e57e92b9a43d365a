//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package csv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock on the lock file at path, creating it,
// and waits for it as long as ctx allows. The lock belongs to the open file,
// so the kernel drops it when the holder dies, even by SIGKILL.
//
// flock rather than fcntl locks: fcntl locks belong to the process, so two
// cycles of one Job (goroutines) would not exclude each other. On NFS, Linux
// maps flock to the server's byte-range locks, so the lock holds across
// nodes too.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file %s: %w", path, err)
	}
	// Polled rather than blocking, so that a cancelled cycle stops
	// waiting: a blocked flock cannot be interrupted.
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another writer's lock on %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
	}
}
