#!/usr/bin/env bash
# Installs the CalDAV/CardDAV server the dav connector tests start a throwaway
# Radicale from (internal/testutil/radicaletest), when radicale is missing.
# Debian's radicale package puts the server in /usr/bin and its Python module
# beside the system's python3; the tests run it with a config, storage folder
# and users of their own, never the package's service.
set -euo pipefail

if command -v radicale >/dev/null || python3 -c 'import radicale' >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "radicale not found and apt-get is not available: install Radicale (https://radicale.org)" >&2
  exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The tests write their own htpasswd file (plain passwords, for throwaway
# users), so neither apache2-utils nor python3-bcrypt is needed.
$SUDO apt-get install -y -qq --no-install-recommends radicale >/dev/null
$SUDO service radicale stop >/dev/null 2>&1 || true
command -v radicale >/dev/null
