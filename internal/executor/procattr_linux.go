package executor

import "syscall"

// processAttributes puts the process in its own group and has the kernel kill it if the
// executor dies, so a crashed test leaves no cycle running (best effort: Linux sends the signal
// when the thread that started the process exits).
func processAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
