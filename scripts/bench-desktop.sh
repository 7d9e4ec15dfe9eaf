#!/usr/bin/env bash
# The desktop app's benchmark (src-tauri/benches/desktop.rs): start to interactive and resident
# memory beside an empty Tauri window measured the same way, and 1,000 live countdowns' frame
# times. Release builds of the app and of the empty window, run under Xvfb through tauri-driver.
# Extra arguments go to the benchmark (--enforce: a missed target fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/breakglass/target}"
if [ -x "$HOME/.cache/breakglass/node/node_modules/.bin/node" ]; then
  export PATH="$HOME/.cache/breakglass/node/node_modules/.bin:$PATH"
fi
# The app embeds the built UI.
scripts/ui.sh
cargo bench --locked -p breakglass-app --features empty-window --bench desktop -- "$@"
