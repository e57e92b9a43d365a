//go:build !linux

package local

import "github.com/go-logr/logr"

// stopLeftovers finds an earlier run's processes through /proc, which only Linux has; elsewhere
// a killed run's kube-apiserver and etcd must be stopped by hand.
func stopLeftovers(layout, logr.Logger) error { return nil }
