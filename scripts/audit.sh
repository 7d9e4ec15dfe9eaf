#!/usr/bin/env bash
# Dependency audit with cargo deny (deny.toml): licences, banned crates and sources, checked
# offline from Cargo.lock and the local registry cache. Part of scripts/test.sh.
#
#   scripts/audit.sh                 licences, bans, sources (offline)
#   scripts/audit.sh --advisories    also the RustSec advisory database (fetched from github.com)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked --version 0.20.2
echo "== cargo deny: licences, bans, sources"
cargo deny --offline --locked check licenses bans sources
if [ "${1:-}" = "--advisories" ]; then
  echo "== cargo deny: advisories (RustSec)"
  cargo deny --locked check advisories
fi
