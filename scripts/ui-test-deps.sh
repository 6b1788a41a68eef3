#!/usr/bin/env bash
# What the browser tests (tests/ui/) need: Debian's Chromium and chromedriver, installed when
# missing (Playwright drives this binary; its own browser download is never used), and the
# built dashboard. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "ui-test-deps: installing chromium and chromium-driver (Debian packages)" >&2
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
echo "ui-test-deps: $(command -v chromium) ($(chromium --version 2>/dev/null || echo '?'))" >&2
bash scripts/ui-build.sh
