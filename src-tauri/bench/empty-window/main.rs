#![forbid(unsafe_code)]
//! An empty Tauri window: the yardstick the desktop benchmark measures the app against (start
//! to interactive, resident memory), built from the same Tauri with the same features and
//! profile, and started the same way. Built only with the `empty-window` feature, which
//! `scripts/bench-desktop.sh` turns on; never shipped.

fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!(
            "bench/empty-window/tauri.conf.json"
        ))
        .expect("the empty window runs");
}
