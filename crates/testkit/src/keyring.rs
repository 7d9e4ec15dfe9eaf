//! A private D-Bus session bus with an unlocked gnome-keyring on it: the real Secret Service,
//! started per test in a temporary directory and killed when the test ends, even when it fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A bus configuration without service directories: nothing is auto-started behind the test's
/// back (a stray gnome-keyring activated by a client that raced ahead would outlive the test).
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// A private session bus with an unlocked gnome-keyring on it.
pub struct SecretService {
    /// Killed in `drop`, keyring first.
    children: Vec<Child>,
    address: String,
    pub tmp: tempfile::TempDir,
}

impl SecretService {
    pub fn start() -> SecretService {
        let tmp = tempfile::Builder::new()
            .prefix("breakglass-keyring-")
            .tempdir()
            .expect("a temporary directory for the keyring");
        let mut service = SecretService {
            children: Vec::new(),
            address: String::new(),
            tmp,
        };
        let root = service.tmp.path().to_owned();
        for dir in ["data", "run"] {
            fs::create_dir(root.join(dir)).expect("create a keyring directory");
            fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o700))
                .expect("keyring directories are private");
        }
        let config = root.join("bus.conf");
        fs::write(&config, bus_config(&root.join("bus"))).expect("write the bus config");

        let mut bus = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(root.join("bus.log")).expect("create the bus log"))
            .spawn()
            .expect("dbus-daemon (Debian package dbus; scripts/bootstrap.sh installs it)");
        let stdout = bus.stdout.take().expect("the bus's stdout");
        service.children.push(bus);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the bus address");
        service.address = line.trim().to_owned();
        assert!(
            service.address.starts_with("unix:"),
            "dbus-daemon prints its address first, got {line:?}; its log:\n{}",
            fs::read_to_string(root.join("bus.log")).unwrap_or_default()
        );

        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets", "-C"])
            .arg(root.join("ctl"))
            .envs(service.env())
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(root.join("keyring.log")).expect("create the keyring log"))
            .spawn()
            .expect("gnome-keyring-daemon (Debian package gnome-keyring)");
        let mut stdin = keyring.stdin.take().expect("the keyring's stdin");
        service.children.push(keyring);
        stdin
            .write_all(b"test-passphrase")
            .expect("send the unlock passphrase");
        drop(stdin);

        // Ready when a secret can be stored in the default collection.
        let start = Instant::now();
        loop {
            let mut probe = service
                .secret_tool(&[
                    "store",
                    "--label=probe",
                    "service",
                    "breakglass-test-probe",
                    "user",
                    "probe",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("secret-tool (Debian package libsecret-tools)");
            if let Some(mut i) = probe.stdin.take() {
                let _ = i.write_all(b"x");
            }
            if probe.wait().is_ok_and(|s| s.success()) {
                break;
            }
            let log = || fs::read_to_string(root.join("keyring.log")).unwrap_or_default();
            if let Ok(Some(status)) = service.children[1].try_wait() {
                panic!(
                    "gnome-keyring-daemon exited early ({status}); its log:\n{}",
                    log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the keyring should accept secrets within 10 s of starting; its log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    /// The session bus's address (the keyring, and the tray and notifications of apps on it).
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The environment that points a client at this keyring.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()),
            ("HOME".into(), self.tmp.path().display().to_string()),
        ]
    }

    pub fn secret_tool(&self, args: &[&str]) -> Command {
        let mut c = Command::new("secret-tool");
        c.args(args).envs(self.env());
        c
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
