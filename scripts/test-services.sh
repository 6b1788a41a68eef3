#!/usr/bin/env bash
# Services the tests need, installed from Debian's packages when missing.
# Idempotent and quick when everything is already there. Starts nothing: the test session
# starts its own throwaway servers (see tests/pg.py).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

have_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! have_postgres; then
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  echo "test-services: installing PostgreSQL server (Debian package postgresql)" >&2
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends postgresql
  if ! have_postgres; then
    echo "test-services: postgresql installed but no initdb under /usr/lib/postgresql" >&2
    exit 1
  fi
fi

echo "test-services: PostgreSQL $(ls -d /usr/lib/postgresql/*/bin/initdb | head -n1)" >&2
