package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// stopLeftovers stops the kube-apiserver and etcd of an earlier run on the same data directory
// that was killed before it could stop them (envtest starts them in process groups of their
// own, so they outlive a SIGKILL of chainsync local). They are found by the directories in their
// command lines.
func stopLeftovers(dirs layout, log logr.Logger) error {
	marks := []string{"--data-dir=" + dirs.etcd, "--cert-dir=" + dirs.apiserver}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return err
	}
	var pids []int
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.Split(string(raw), "\x00")
		for _, arg := range args {
			if arg == marks[0] || arg == marks[1] {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				pids = append(pids, pid)
				log.Info("Stopping a control-plane process left by an earlier run", "pid", pid, "command", filepath.Base(args[0]))
				break
			}
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, pid := range pids {
		for i := 0; syscall.Kill(pid, 0) == nil; i++ {
			if i == 50 {
				return fmt.Errorf("process %d, left by an earlier run on %s, does not stop", pid, dirs.root)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
