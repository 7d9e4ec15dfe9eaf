//! A real X display (Xvfb) with `tauri-driver` on it, so a test drives the real desktop app
//! through WebDriver (tauri-driver starts WebKitWebDriver, which starts the app).

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Screen size of the display: comfortably above the app's 1024×640 minimum.
pub const SCREEN: &str = "1280x800x24";

/// An Xvfb display and a tauri-driver on it; both are killed (with their children) on drop.
pub struct Desktop {
    children: Vec<Child>,
    display: String,
    port: u16,
    logs: tempfile::TempDir,
}

fn wait_until(what: &str, timeout: Duration, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < timeout,
            "{what} was not ready within {timeout:?}; its log:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Display numbers this process has handed out: tests in one process run side by side, and two
/// of them must not pick the same number before either Xvfb has written its lock file.
static CLAIMED: std::sync::Mutex<BTreeSet<u32>> = std::sync::Mutex::new(BTreeSet::new());

/// A display number nobody holds (Xvfb's lock files say who does) and this process has not
/// handed out yet.
fn free_display() -> u32 {
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::process::id() % 400;
    let n = (0..400)
        .map(|i| 100 + (seed + i) % 400)
        .find(|n| {
            !claimed.contains(n)
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .expect("a free X display number between 100 and 499");
    claimed.insert(n);
    n
}

/// The process that holds display `n`, as its lock file says.
fn display_holder(n: u32) -> Option<u32> {
    fs::read_to_string(format!("/tmp/.X{n}-lock"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts Xvfb on a free display and waits until that display is this Xvfb's own: its socket is
/// there and its lock file names this Xvfb. Another process may take a number between the check
/// and the start (then this Xvfb exits at once, and the next number is tried), and a socket that
/// appears may be someone else's, so neither alone proves the display is ours.
fn start_xvfb(xlog: &Path) -> (Child, u32) {
    for _ in 0..20 {
        let n = free_display();
        let mut xvfb = Command::new("Xvfb")
            .arg(format!(":{n}"))
            .args(["-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(xlog).expect("create the Xvfb log"))
            .process_group(0)
            .spawn()
            .expect("Xvfb (Debian package xvfb; scripts/bootstrap.sh installs it)");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = xvfb.try_wait() {
                break; // another server holds :n: try the next number
            }
            if socket.exists() && display_holder(n) == Some(xvfb.id()) {
                return (xvfb, n);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "Xvfb :{n} was not ready within 10 s; its log:\n{}",
                fs::read_to_string(xlog).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "no X display could be started in 20 tries; the last Xvfb's log:\n{}",
        fs::read_to_string(xlog).unwrap_or_default()
    )
}

/// Where tauri-driver is: on PATH, or where `cargo install` put it.
pub fn tauri_driver() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/tauri-driver"));
    match cargo_bin {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("tauri-driver"),
    }
}

impl Desktop {
    /// Starts Xvfb and tauri-driver. `env` is passed to tauri-driver and so to the app it
    /// starts (a keyring's bus, the app's data directory, …).
    pub fn start(env: &[(String, String)]) -> Desktop {
        let logs = tempfile::Builder::new()
            .prefix("breakglass-desktop-")
            .tempdir()
            .expect("a temporary directory for the desktop's logs");
        let xlog = logs.path().join("xvfb.log");
        let (xvfb, n) = start_xvfb(&xlog);
        let mut desktop = Desktop {
            children: vec![xvfb],
            display: format!(":{n}"),
            port: 0,
            logs,
        };

        let port = free_port();
        let native = free_port();
        let dlog = desktop.logs.path().join("tauri-driver.log");
        let driver = Command::new(tauri_driver())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &desktop.display)
            // No GPU under Xvfb: WebKit's compositing falls back to software cleanly.
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&dlog).expect("create the tauri-driver log"))
            .stderr(
                fs::OpenOptions::new()
                    .append(true)
                    .open(&dlog)
                    .expect("open the tauri-driver log"),
            )
            .process_group(0)
            .spawn()
            .expect(
                "tauri-driver (cargo install tauri-driver --locked; scripts/bootstrap.sh does)",
            );
        desktop.children.push(driver);
        desktop.port = port;
        // tauri-driver listens at once; WebKitWebDriver behind it a little later, and a
        // session asked for before then fails.
        wait_until(
            "tauri-driver and WebKitWebDriver",
            Duration::from_secs(15),
            &dlog,
            || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", native)).is_ok()
            },
        );
        desktop
    }

    /// The WebDriver address.
    pub fn webdriver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `program` through WebDriver (tauri-driver has WebKitWebDriver start it) and
    /// returns the session; a session that cannot start fails the test with the driver's log.
    pub async fn session(&self, program: &Path) -> fantoccini::Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": program.display().to_string() }),
        );
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.webdriver_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "a WebDriver session with {}: {e}\n{}",
                    program.display(),
                    self.driver_log()
                )
            })
    }

    /// tauri-driver's process id: WebKitWebDriver and the apps it starts run under it.
    pub fn driver_pid(&self) -> u32 {
        self.children[1].id()
    }

    /// The X display (`:N`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// tauri-driver's output (with WebKitWebDriver's and the app's), for failure messages.
    pub fn driver_log(&self) -> String {
        fs::read_to_string(self.logs.path().join("tauri-driver.log")).unwrap_or_default()
    }

    /// A screenshot of the display's top-left `width`×`height` (where the undecorated window
    /// sits, with no window manager), as PNG, taken by ImageMagick's `import` from the X server
    /// itself rather than through WebDriver.
    pub fn screenshot(&self, path: &Path, width: u32, height: u32) -> bool {
        Command::new("import")
            .args([
                "-window",
                "root",
                "-crop",
                &format!("{width}x{height}+0+0"),
                "+repage",
            ])
            .arg(path)
            .env("DISPLAY", &self.display)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // Each child leads its own process group: kill the group, so WebKitWebDriver and
            // the app go with tauri-driver.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests in one process start their displays side by side: each must get its own X server,
    /// not share the first one's (when that one's test ends, the other's app would lose its
    /// display mid-test).
    #[test]
    fn displays_started_at_once_are_each_their_own() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let started: Vec<(Child, u32)> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|i| {
                    let log = dir.path().join(format!("xvfb-{i}.log"));
                    s.spawn(move || start_xvfb(&log))
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("Xvfb starts"))
                .collect()
        });
        let numbers: BTreeSet<u32> = started.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            numbers.len(),
            started.len(),
            "distinct displays: {numbers:?}"
        );
        for (child, n) in &started {
            assert_eq!(
                display_holder(*n),
                Some(child.id()),
                ":{n} is held by its own Xvfb"
            );
        }
        for (mut child, _) in started {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
