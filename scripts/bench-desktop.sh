#!/usr/bin/env bash
# The desktop app's benchmark (src-tauri/benches/desktop.rs): start to interactive and resident
# memory beside an empty Tauri window measured the same way, and 1,000 live countdowns' frame
# times. Release builds of the app and of the empty window, run under Xvfb through tauri-driver.
# Extra arguments go to the benchmark (--enforce: a missed target fails the run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
source scripts/env.sh
# The app embeds the built UI.
scripts/ui.sh
cargo bench --locked -p breakglass-app --features empty-window --bench desktop -- "$@"
