//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package csv

import (
	"context"
	"fmt"
	"runtime"
)

// lockFile fails where flock is not available: writing a shared file
// without the lock could lose other writers' rows without a word.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return nil, fmt.Errorf("locking %s: csv targets need flock, which %s does not offer", path, runtime.GOOS)
}
