//! A real notification daemon (dunst, from Debian) on a test's X display and session bus, so a
//! test sees the desktop notifications an app raised as the person would.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One notification: its summary (title) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub summary: String,
    pub body: String,
}

/// dunst, owning `org.freedesktop.Notifications` on the bus; killed on drop.
pub struct NotificationDaemon {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

fn bus_name_owned(address: &str, name: &str) -> bool {
    Command::new("dbus-send")
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
}

impl NotificationDaemon {
    /// Starts dunst on X display `display` and the session bus at `bus_address`, and waits
    /// until it serves notifications.
    pub fn start(display: &str, bus_address: &str) -> NotificationDaemon {
        let dir = tempfile::Builder::new()
            .prefix("breakglass-dunst-")
            .tempdir()
            .expect("a temporary directory for dunst");
        let config = dir.path().join("dunstrc");
        // Keep every notification, however many the test raises. Popups sit at the top right of
        // the app's window (1200 px wide at the screen's left edge), inside what screenshots keep.
        fs::write(
            &config,
            "[global]\n    history_length = 1000\n    origin = top-right\n    offset = 90x64\n    \
             width = 320\n    font = DejaVu Sans 10\n    frame_width = 1\n    corner_radius = 4\n",
        )
        .expect("write dunst's config");
        let log = fs::File::create(dir.path().join("dunst.log")).expect("dunst's log");
        let child = Command::new("dunst")
            .arg("-config")
            .arg(&config)
            .env("DISPLAY", display)
            .env("DBUS_SESSION_BUS_ADDRESS", bus_address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dunst's log"))
            .stderr(log)
            .spawn()
            .expect("dunst (Debian package dunst; scripts/bootstrap.sh installs it)");
        let mut daemon = NotificationDaemon {
            child,
            address: bus_address.to_owned(),
            _dir: dir,
        };
        let start = Instant::now();
        while !bus_name_owned(bus_address, "org.freedesktop.Notifications") {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "dunst exited ({status}): {}",
                    fs::read_to_string(daemon._dir.path().join("dunst.log")).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dunst did not take org.freedesktop.Notifications within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn dunstctl(&self, args: &[&str]) -> String {
        let out = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("dunstctl (Debian package dunst)");
        assert!(
            out.status.success(),
            "dunstctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every notification received so far, oldest first (those still on screen are closed
    /// first, which moves them into dunst's history).
    pub fn received(&self) -> Vec<Notification> {
        self.dunstctl(&["close-all"]);
        parse_history(&self.dunstctl(&["history"]))
    }
}

/// `dunstctl history` output: `{"type": "aa{sv}", "data": [[{"summary": {"data": …}, …}]]}`,
/// newest first.
fn parse_history(json: &str) -> Vec<Notification> {
    let v: serde_json::Value = serde_json::from_str(json).expect("dunstctl history is JSON");
    let text =
        |n: &serde_json::Value, key: &str| n[key]["data"].as_str().unwrap_or_default().to_owned();
    let mut all: Vec<Notification> = v["data"][0]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| Notification {
                    summary: text(n, "summary"),
                    body: text(n, "body"),
                })
                .collect()
        })
        .unwrap_or_default();
    all.reverse();
    all
}

impl Drop for NotificationDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_read_oldest_first() {
        let json = r#"{"type":"aa{sv}","data":[[
            {"body":{"type":"s","data":"second body"},"summary":{"type":"s","data":"Second"},"id":{"type":"i","data":2}},
            {"body":{"type":"s","data":"first body"},"summary":{"type":"s","data":"First"},"id":{"type":"i","data":1}}
        ]]}"#;
        assert_eq!(
            parse_history(json),
            [
                Notification {
                    summary: "First".into(),
                    body: "first body".into()
                },
                Notification {
                    summary: "Second".into(),
                    body: "second body".into()
                }
            ]
        );
        assert_eq!(parse_history(r#"{"type":"aa{sv}","data":[[]]}"#), []);
    }
}
