#!/usr/bin/env bash
# Runs every check: formatting, lints, the whole test suite (which starts its own PostgreSQL,
# D-Bus and gnome-keyring on loopback / temp dirs), and the benchmarks with their targets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
source scripts/env.sh
scripts/prune-target.sh
export CARGO_TERM_COLOR=never
# No incremental compilation: a run builds each crate once, and incremental state written for
# every clone's path piled up to 21 GB in the shared target directory (disk full, session 5).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
jobs="${BREAKGLASS_TEST_JOBS:-2}"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

# The desktop app embeds the built UI, so the UI is installed, checked, tested and built first.
scripts/ui.sh
echo "== ui: vitest"
(cd ui && npm test --silent)
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked --features breakglass-app/empty-window -- -D warnings
scripts/audit.sh
# The idp tests start the real OpenID provider from crates/idp/testidp: install its npm packages
# from the committed lockfile when they are missing or older than the lockfile.
testidp=crates/idp/testidp
if [ ! -f "$testidp/node_modules/.package-lock.json" ] \
  || [ "$testidp/package-lock.json" -nt "$testidp/node_modules/.package-lock.json" ]; then
  echo "== npm ci ($testidp)"
  (cd "$testidp" && npm ci --no-audit --no-fund)
fi
echo "== cargo test"
cargo test --workspace --locked -j "$jobs" 2>&1 | tee "$results"
echo "== fuzz smoke (every reader of outside input; see docs/fuzzing.md)"
scripts/fuzz.sh
echo "== benchmarks (each figure beside its target; see BENCHMARKS.md)"
cargo bench --locked -p breakglass-engine --bench log
cargo bench --locked -p breakglass-engine --bench expiry
cargo bench --locked -p breakglass-engine --bench team
cargo bench --locked -p breakglass-engine --bench compliance
# The desktop app beside an empty Tauri window (scripts/bench-desktop.sh, without its rebuild of
# the UI, which is built above).
cargo bench --locked -p breakglass-app --features empty-window --bench desktop

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results"
