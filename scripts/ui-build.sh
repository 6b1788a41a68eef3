#!/usr/bin/env bash
# Build the dashboard (src/shipyard/server/ui) into its dist/ folder, which `shipyard up`
# serves at /. Front-end libraries come from npm at build time (package-lock.json pins them);
# nothing built or downloaded is committed. Quick when nothing changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/../src/shipyard/server/ui"

if ! command -v npm >/dev/null 2>&1; then
  echo "ui-build: npm not found: install Node.js 20+ (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

# Dependencies: reinstall when package-lock.json is newer than the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install --no-save` installs what package-lock.json pins without rewriting it; unlike
  # `npm ci` it accepts a lock made where some platforms' optional packages were unavailable.
  echo "ui-build: npm install (from package-lock.json)" >&2
  npm install --no-save --no-audit --no-fund --loglevel=error
fi

# Build when a source is newer than the last build (or there is none).
stamp=dist/index.html
if [ -f "$stamp" ] && [ -z "$(find src index.html vite.config.js package-lock.json -newer "$stamp" -print -quit)" ]; then
  echo "ui-build: dist/ is up to date" >&2
  exit 0
fi
echo "ui-build: vite build" >&2
npx --no-install vite build --logLevel warn
echo "ui-build: built $(pwd)/dist" >&2
