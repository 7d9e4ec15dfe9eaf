#!/usr/bin/env bash
# Runs every check: formatting, lints, the whole test suite (which starts its own PostgreSQL,
# D-Bus and gnome-keyring on loopback / temp dirs), and the benchmarks with their targets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/breakglass/target}"
export CARGO_TERM_COLOR=never
jobs="${BREAKGLASS_TEST_JOBS:-2}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked -j "$jobs"
echo "== benchmarks"
# Prints each figure beside its target; see BENCHMARKS.md for which targets are met.
cargo bench --locked -p breakglass-engine --bench log
