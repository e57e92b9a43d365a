#!/usr/bin/env bash
# Builds (or reuses) the control-plane binaries that envtest and `chainsync local` run:
# kube-apiserver and etcd, plus kubectl when the system has none. They are built from the
# modules pinned in hack/tools/controlplane, into a cache outside the repository keyed by that
# module's go.sum, so a version bump rebuilds and everything else reuses.
# The last line printed is the directory to use as KUBEBUILDER_ASSETS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module="$here/tools/controlplane"
cache_root="${CHAINSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chainsync}"
key=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-16)
assets="$cache_root/envtest/$key"

built() { [ -x "$assets/kube-apiserver" ] && [ -x "$assets/etcd" ] && [ -x "$assets/kubectl" ]; }

if ! built; then
  mkdir -p "$cache_root/envtest"
  # One build at a time, even when two make targets race for a cold cache.
  exec 9>"$cache_root/envtest/.lock"
  flock 9
  if ! built; then
    tmp=$(mktemp -d "$cache_root/envtest/.build-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "Building kube-apiserver and etcd into $assets (first run only, about 7 minutes)" >&2
    (
      cd "$module"
      export CGO_ENABLED=0 GOFLAGS=-mod=readonly
      go build -trimpath -ldflags=-s -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
      go build -trimpath -ldflags=-s -o "$tmp/etcd" go.etcd.io/etcd/server/v3
      if command -v kubectl >/dev/null 2>&1; then
        ln -s "$(command -v kubectl)" "$tmp/kubectl"
      else
        echo "No kubectl on PATH: building it too" >&2
        go build -trimpath -ldflags=-s -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
      fi
    ) >&2
    rm -rf "$assets"
    mv "$tmp" "$assets"
    trap - EXIT
  fi
fi

echo "$assets"
