#!/usr/bin/env bash
# Installs the UI's npm packages from the committed lockfile (when missing or older than it) and
# builds ui/dist, type-checking first; the desktop app embeds ui/dist when it is compiled.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$(dirname "$0")/../ui"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci (ui)"
  npm ci --no-audit --no-fund
fi
echo "== ui: svelte-check and vite build"
npm run build --silent
