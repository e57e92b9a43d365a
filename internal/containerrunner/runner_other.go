//go:build !linux

package containerrunner

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"

	"github.com/chainsync/chainsync/internal/executor"
)

// Runner needs Linux's namespaces, bind mounts and chroot; elsewhere it runs nothing.
type Runner struct {
	Image, User, Scratch string
	Pod                  func(ctx context.Context, pod string) (*corev1.PodSpec, error)
}

// Report is what a container's init saw; there are none off Linux.
type Report struct {
	Pod, Root        string
	Writable, Status map[string]string
}

// Run fails: there is no way to confine a container here.
func (r *Runner) Run(context.Context, executor.Container) (int, error) {
	return 0, errors.New("containerrunner: confining a container needs Linux")
}

// Reports returns none.
func (r *Runner) Reports() []Report { return nil }

// Init does nothing: no container is ever started here.
func Init() {}
