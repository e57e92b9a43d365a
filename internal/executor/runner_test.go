package executor

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func container(script string) Container {
	var out bytes.Buffer
	return Container{
		Args:        []string{"sh", "-c", script},
		Env:         map[string]string{"PATH": os.Getenv("PATH"), "GREETING": "hello"},
		Stdout:      &out,
		Stderr:      &out,
		GracePeriod: time.Second,
	}
}

func TestProcessRunnerReportsExitCodesAndOnlyThePodsEnvironment(t *testing.T) {
	g := NewWithT(t)
	t.Setenv("EXECUTOR_LEAK", "leaked")
	c := container(`echo "$GREETING${EXECUTOR_LEAK}"; exit 7`)
	c.Dir = t.TempDir()
	code, err := ProcessRunner{}.Run(context.Background(), c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(7))
	g.Expect(c.Stdout.(*bytes.Buffer).String()).To(Equal("hello\n"))
}

func TestProcessRunnerMapsChainsyncToTheConfiguredBinary(t *testing.T) {
	g := NewWithT(t)
	binary := t.TempDir() + "/fake-chainsync"
	g.Expect(os.WriteFile(binary, []byte("#!/bin/sh\necho \"ran with $*\"\n"), 0o755)).To(Succeed())
	c := container("")
	c.Args = []string{"/chainsync", "cycle", "--policy=p"}
	code, err := ProcessRunner{ChainsyncBinary: binary}.Run(context.Background(), c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(BeZero())
	g.Expect(c.Stdout.(*bytes.Buffer).String()).To(Equal("ran with cycle --policy=p\n"))
}

func TestProcessRunnerCannotStartAMissingProgram(t *testing.T) {
	c := container("")
	c.Args = []string{"no-such-program-anywhere"}
	if _, err := (ProcessRunner{}).Run(context.Background(), c); err == nil {
		t.Fatal("want an error for a program that does not exist")
	}
}

func TestProcessRunnerKillsWhatIgnoresSIGTERMAfterTheGracePeriod(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := container(`trap '' TERM; echo ready; while true; do sleep 1; done`)
	c.Stdout = &syncBuffer{}
	c.Stderr = c.Stdout
	exited := make(chan int, 1)
	go func() {
		code, _ := ProcessRunner{}.Run(ctx, c)
		exited <- code
	}()
	g.Eventually(func() string { return c.Stdout.(*syncBuffer).String() }, 30*time.Second).Should(ContainSubstring("ready"))
	cancel()
	g.Eventually(exited, 30*time.Second).Should(Receive(Equal(exitCodeKilled)))
}

func TestInProcessRunnerPassesTheEnvironmentAndStopsByCancelling(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	cycle := InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		io.WriteString(stdout, strings.Join(args, " ")+" "+env["GREETING"])
		close(started)
		<-ctx.Done()
		return 143
	})
	c := container("")
	c.Args = []string{"chainsync", "cycle"}
	exited := make(chan int, 1)
	go func() {
		code, _ := cycle.Run(ctx, c)
		exited <- code
	}()
	g.Eventually(started, 30*time.Second).Should(BeClosed())
	g.Expect(c.Stdout.(*bytes.Buffer).String()).To(Equal("chainsync cycle hello"))
	cancel()
	g.Eventually(exited, 30*time.Second).Should(Receive(Equal(143)))
}

func TestInProcessRunnerAbandonsAFunctionThatIgnoresCancellation(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stubborn := InProcessRunner(func(context.Context, []string, map[string]string, io.Writer, io.Writer) int {
		<-release
		return 0
	})
	exited := make(chan int, 1)
	go func() {
		code, _ := stubborn.Run(ctx, container(""))
		exited <- code
	}()
	cancel()
	g.Eventually(exited, 30*time.Second).Should(Receive(Equal(exitCodeKilled)))
}

func TestInProcessRunnerTurnsAPanicIntoExitCode2(t *testing.T) {
	g := NewWithT(t)
	panicking := InProcessRunner(func(context.Context, []string, map[string]string, io.Writer, io.Writer) int {
		panic("boom")
	})
	c := container("")
	code, err := panicking.Run(context.Background(), c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(2))
	g.Expect(c.Stderr.(*bytes.Buffer).String()).To(ContainSubstring("panic: boom"))
}

// syncBuffer is written by a process's output copier while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
