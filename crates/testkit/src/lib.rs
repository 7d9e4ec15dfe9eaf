#![forbid(unsafe_code)]
//! Real components for Breakglass's tests, started per test in temporary directories on free
//! loopback ports, and stopped when the test ends (even when it fails):
//!
//! - [`keyring::SecretService`]: a private D-Bus session bus with an unlocked gnome-keyring;
//! - [`desktop::Desktop`]: an Xvfb display with `tauri-driver` (and WebKitWebDriver) on it.
//!
//! Used only by tests; it never mocks what it can start for real.

pub mod desktop;
pub mod keyring;

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
