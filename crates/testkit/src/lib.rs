#![forbid(unsafe_code)]
//! Real components for Breakglass's tests, started per test in temporary directories on free
//! loopback ports, and stopped when the test ends (even when it fails):
//!
//! - [`keyring::SecretService`]: a private D-Bus session bus with an unlocked gnome-keyring;
//! - [`desktop::Desktop`]: an Xvfb display with `tauri-driver` (and WebKitWebDriver) on it;
//! - [`notifications::NotificationDaemon`]: dunst, the desktop's notifications as shown;
//! - [`procs`]: process trees and their resident memory, for the desktop benchmark;
//! - [`sshd::Sshd`]: OpenSSH's sshd trusting a user CA and reading a key revocation list;
//! - [`tray`]: the app's tray menu as a panel reads it over D-Bus.
//!
//! Used only by tests; it never mocks what it can start for real.

pub mod desktop;
pub mod fs;
pub mod keyring;
pub mod notifications;
pub mod procs;
pub mod sshd;
pub mod tray;

/// The folder of the package whose test is running, as cargo says when it runs the test.
///
/// Not `env!("CARGO_MANIFEST_DIR")`: cargo's fingerprints do not include where the workspace
/// is, so with a target directory shared between clones (CI's), a test built in one clone can
/// run for another and would read the first clone's files. Falls back to the working
/// directory, which cargo sets to the package's folder too.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("CARGO_MANIFEST_DIR or a working directory")
}

/// The workspace's root: the nearest folder above [`package_dir`] holding `Cargo.lock`.
pub fn workspace_root() -> std::path::PathBuf {
    let dir = package_dir();
    dir.ancestors()
        .find(|a| a.join("Cargo.lock").is_file())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", dir.display()))
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
