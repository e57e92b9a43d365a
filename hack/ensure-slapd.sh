#!/usr/bin/env bash
# Installs the OpenLDAP server the ldap connector tests start a throwaway
# slapd from (internal/testutil/ldaptest), when slapd is missing. Debian's
# slapd package puts it in /usr/sbin, its schemas in /etc/ldap/schema; the
# tests run it with a config of their own, never the package's.
set -euo pipefail

if [ -x /usr/sbin/slapd ] || command -v slapd >/dev/null; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "slapd not found and apt-get is not available: install OpenLDAP's slapd and ldap-utils" >&2
  exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
# The package asks for an admin password and starts a service configured by
# debconf; the tests start their own, so skip both.
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null
$SUDO service slapd stop >/dev/null 2>&1 || true
[ -x /usr/sbin/slapd ]
