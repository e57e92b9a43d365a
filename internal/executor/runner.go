package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Runner runs a pod's container and waits for it to end.
type Runner interface {
	// Run runs c until it exits and returns its exit code. Cancelling ctx asks the container to
	// stop (SIGTERM for a process) and stops it for good after c.GracePeriod; Run returns only
	// once it has. An error means the container could not be started at all.
	Run(ctx context.Context, c Container) (exitCode int, err error)
}

// Container is a pod's container with every reference resolved, ready to run on this machine.
type Container struct {
	// Args is the container's command followed by its args, with $(VAR) references expanded:
	// Args[0] is the program, as in os.Args.
	Args []string
	// Env is the container's whole environment: nothing is inherited from the executor's.
	Env map[string]string
	// Dir is the local directory standing for the container's working directory.
	Dir string
	// Stdout and Stderr receive the container's output.
	Stdout, Stderr io.Writer
	// GracePeriod is how long a stopped container has between SIGTERM and SIGKILL.
	GracePeriod time.Duration
}

// isChainsync says whether program is chainsync: chainsync, /chainsync or any path ending in
// /chainsync.
func isChainsync(program string) bool {
	return filepath.Base(program) == "chainsync"
}

// exitCodeKilled is what a container stopped by SIGKILL reports, as a shell would.
const exitCodeKilled = 128 + int(syscall.SIGKILL)

// ProcessRunner runs containers as local processes.
type ProcessRunner struct {
	// ChainsyncBinary is run in place of a command named chainsync (chainsync, /chainsync or any
	// path ending in /chainsync), since the image's binary is not on this machine. Other commands
	// are looked up on the PATH the pod's environment gives.
	ChainsyncBinary string
}

// Run starts the process in its own process group, so that stopping it also stops whatever it
// started (`sh -c` children).
func (r ProcessRunner) Run(ctx context.Context, c Container) (int, error) {
	if len(c.Args) == 0 {
		return 0, errors.New("the container has no command")
	}
	program := c.Args[0]
	if r.ChainsyncBinary != "" && isChainsync(program) {
		program = r.ChainsyncBinary
	}
	if filepath.Base(program) == program {
		// exec.LookPath reads the executor's PATH; a container's program is found on its own.
		if found, err := lookPath(program, c.Env["PATH"]); err == nil {
			program = found
		}
	}
	cmd := exec.Command(program, c.Args[1:]...)
	cmd.Args[0] = c.Args[0]
	cmd.Env = envList(c.Env)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.SysProcAttr = processAttributes()
	// A grandchild that keeps an output pipe open must not hold Wait forever once the process
	// itself has exited.
	cmd.WaitDelay = c.GracePeriod + time.Second
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", program, err)
	}

	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		group := -cmd.Process.Pid
		_ = syscall.Kill(group, syscall.SIGTERM)
		grace := time.NewTimer(c.GracePeriod)
		defer grace.Stop()
		select {
		case <-exited:
		case <-grace.C:
			_ = syscall.Kill(group, syscall.SIGKILL)
		}
	}()
	err := cmd.Wait()
	close(exited)

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	case errors.Is(err, exec.ErrWaitDelay):
		return cmd.ProcessState.ExitCode(), nil
	default:
		return 0, fmt.Errorf("waiting for %s: %w", program, err)
	}
}

// InProcessRunner runs containers as calls of a Go function in the executor's process, so tests
// run a cycle without building the binary. args is the container's command followed by its args
// (args[0] is the program); env is the container's whole environment, passed explicitly because
// several pods may run at once (never read it with os.Getenv). The function returns the exit code.
//
// Stopping a container cancels ctx, the in-process SIGTERM. A function that has not returned
// after the grace period is abandoned (a goroutine cannot be killed) and reported as killed.
// There is no working directory of its own: a chainsync command gets the sandbox as --fs-root.
type InProcessRunner func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int

// Run calls the function in a goroutine and turns a panic into exit code 2, as Go's runtime does.
func (f InProcessRunner) Run(ctx context.Context, c Container) (int, error) {
	// Its own context, so the function sees the cancellation only when the executor decides to
	// stop it, and the grace period can be measured from there.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	exited := make(chan int, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(c.Stderr, "panic: %v\n", p)
				exited <- 2
			}
		}()
		exited <- f(runCtx, c.Args, c.Env, c.Stdout, c.Stderr)
	}()
	select {
	case code := <-exited:
		return code, nil
	case <-ctx.Done():
	}
	stop()
	grace := time.NewTimer(c.GracePeriod)
	defer grace.Stop()
	select {
	case code := <-exited:
		return code, nil
	case <-grace.C:
		return exitCodeKilled, nil
	}
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for name, value := range env {
		list = append(list, name+"="+value)
	}
	sort.Strings(list)
	return list
}

// lookPath finds program in the directories of path, the container's PATH.
func lookPath(program, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		candidate := filepath.Join(dir, program)
		if found, err := exec.LookPath(candidate); err == nil {
			return found, nil
		}
	}
	return "", exec.ErrNotFound
}
