#!/usr/bin/env bash
# Builds (or reuses) helm, for the chart's tests: built from the module pinned in hack/tools/helm,
# into a cache outside the repository keyed by that module's go.sum, as hack/envtest.sh does.
# The last line printed is the path of the helm binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module="$here/tools/helm"
cache_root="${CHAINSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chainsync}"
key=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-16)
bin="$cache_root/helm/$key/helm"

if [ ! -x "$bin" ]; then
  mkdir -p "$cache_root/helm"
  exec 9>"$cache_root/helm/.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    tmp=$(mktemp -d "$cache_root/helm/.build-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "Building helm into $bin (first run only, a few minutes)" >&2
    (
      cd "$module"
      CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags=-s -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
    ) >&2
    mkdir -p "$(dirname "$bin")"
    mv "$tmp/helm" "$bin"
    trap - EXIT
  fi
fi

echo "$bin"
