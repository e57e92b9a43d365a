#!/usr/bin/env bash
# Installs the json-server the http connector's tests start a throwaway REST API from
# (internal/testutil/jsonservertest), pinned to one version, into a cache outside the repository.
# Idempotent: with the version installed it only prints the path. The last line printed is the
# install prefix; json-server's package is in its node_modules.
set -euo pipefail

version=0.17.4
cache_root="${CHAINSYNC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chainsync}"
prefix="$cache_root/json-server/$version"

installed() {
  [ -f "$prefix/node_modules/json-server/package.json" ] &&
    grep -q "\"version\": \"$version\"" "$prefix/node_modules/json-server/package.json"
}

if ! installed; then
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    if ! command -v apt-get >/dev/null; then
      echo "node and npm are needed to install json-server $version: install Node.js" >&2
      exit 1
    fi
    # A fresh Debian machine has neither: take Debian's, as the other test servers come.
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
    echo "Installing Debian's nodejs and npm for json-server (first run only)" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  mkdir -p "$prefix"
  # One install at a time, even when two test binaries race for a cold cache.
  exec 9>"$prefix/.lock"
  flock 9
  if ! installed; then
    echo "Installing json-server $version into $prefix (first run only)" >&2
    npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "json-server@$version" >&2
    installed
  fi
fi
echo "$prefix"
