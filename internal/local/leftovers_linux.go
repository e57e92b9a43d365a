package local

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/chainsync/chainsync/internal/slapd"
)

// stopLeftovers stops the kube-apiserver, etcd and slapd of an earlier run on the same data
// directory that was killed before it could stop them (envtest starts the first two in process
// groups of their own, so they outlive a SIGKILL of chainsync local; slapd is killed with its
// parent, but by a signal the kernel may not send when the thread that started it is gone). They
// are found by the directories in their command lines.
func stopLeftovers(dirs layout, log logr.Logger) error {
	marks := []string{"--data-dir=" + dirs.etcd, "--cert-dir=" + dirs.apiserver, slapd.ConfigDir(newDirectoryFiles(dirs.root).slapd)}
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
			if slices.Contains(marks, arg) {
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
