#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every reader of outside input:
#   bundle, evidence, entry, note (C2SP checkpoints, vkeys, cosignatures), policy, offline_token,
#   id_token (JOSE/JWKS), deep_link, discovery (OpenID provider metadata).
#
#   scripts/fuzz.sh                 smoke: every target, 20000 runs each (what .ci/run does)
#   scripts/fuzz.sh --runs N        every target, N runs each
#   scripts/fuzz.sh --long [SECS]   every target for SECS seconds (default 600), corpus kept
#   scripts/fuzz.sh TARGET …        only these targets
#
# Builds on stable Rust without a sanitizer (our crates forbid unsafe code; libFuzzer still finds
# panics, overflows, and slow or huge inputs). The seed corpus is in fuzz/corpus/TARGET; new
# inputs found go to a scratch copy, so runs never change the repository. A crash leaves its
# input in fuzz/artifacts/TARGET and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${BREAKGLASS_FUZZ_TARGET_DIR:-$HOME/.cache/breakglass/fuzz-target}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2

all=(bundle evidence entry note policy offline_token id_token deep_link discovery)
mode=(-runs=20000)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) mode=("-runs=$2"); shift 2 ;;
    --long) secs="${2:-600}"; mode=("-max_total_time=$secs"); shift; [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]] && shift ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

build_log="$(mktemp)"
if ! (cd fuzz && cargo fuzz build -O -a -s none) >"$build_log" 2>&1; then
  cat "$build_log" >&2
  echo "fuzz: building the fuzz targets failed" >&2
  exit 1
fi
rm -f "$build_log"
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "fuzz: unknown target $t (targets: ${all[*]})" >&2; exit 2; }
  work="$(mktemp -d)"
  log="$(mktemp)"
  cp -r "fuzz/corpus/$t/." "$work/"
  echo "== fuzz $t (${mode[*]})"
  status=0
  (cd fuzz && cargo fuzz run -O -a -s none "$t" "$work" -- "${mode[@]}" -max_len=65536 -print_final_stats=1) \
    >"$log" 2>&1 || status=$?
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz: target $t failed (its input is in fuzz/artifacts/$t)" >&2
    rm -rf "$work" "$log"
    exit 1
  fi
  rm -rf "$work" "$log"
done
