#!/usr/bin/env bash
# Runs every check: formatting, lints, the whole test suite (which starts its own PostgreSQL,
# D-Bus and gnome-keyring on loopback / temp dirs), and the benchmarks with their targets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/breakglass/target}"
export CARGO_TERM_COLOR=never
jobs="${BREAKGLASS_TEST_JOBS:-2}"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked -j "$jobs" 2>&1 | tee "$results"
echo "== benchmarks (each figure beside its target; see BENCHMARKS.md)"
cargo bench --locked -p breakglass-engine --bench log

# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results"
