package records

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// takeTurn takes a flock on path (created if missing), exclusive or shared, waiting at most
// timeout, and returns what releases it. The wait is the kernel's own (a blocking flock), so a
// process gets the lock as soon as it is free rather than at its next poll.
func takeTurn(path string, exclusive bool, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	locked := make(chan error, 1)
	go func() { locked <- flockRetryingInterrupts(f, how) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-locked:
		if err != nil {
			f.Close()
			return nil, err
		}
		return func() { f.Close() }, nil // Closing the file releases its lock.
	case <-timer.C:
		// The flock may still be granted later: whoever gets it then lets it go at once.
		go func() {
			<-locked
			f.Close()
		}()
		return nil, fmt.Errorf("%w: %s still held by another cycle after %s", ErrLocked, path, timeout)
	}
}

func flockRetryingInterrupts(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
