//go:build unix && !linux

package executor

import "syscall"

// processAttributes puts the process in its own group, so stopping it stops its children too.
func processAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
