#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the connector tests start a
# throwaway server from (internal/testutil/pgtest), when initdb is missing.
# Debian's postgresql package puts them in /usr/lib/postgresql/<version>/bin.
set -euo pipefail

if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "initdb not found and apt-get is not available: install the PostgreSQL server binaries," >&2
  echo "or point the tests at a server with CHAINSYNC_TEST_POSTGRES_URL=postgres://user:pass@host:5432/db" >&2
  exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package starts a cluster service on some systems; the tests start their own.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
