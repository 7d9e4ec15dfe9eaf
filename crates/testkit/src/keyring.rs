//! A private D-Bus session bus with an unlocked gnome-keyring on it: the real Secret Service,
//! started per test in a temporary directory and gone when the test ends, even when it fails.
//!
//! The bus starts the keyring on demand, as a desktop session's bus does: the first client
//! activates it, and should the daemon exit (gnome-keyring 42 has been seen to abort under load
//! when a client goes away), the next call starts a new one on the same unlocked keyring file.
//! Every daemon the bus started is a child of the bus and leaves with it.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The passphrase of the test keyring.
const PASSPHRASE: &str = "test-passphrase";

/// A bus configuration whose only activatable service is the test's keyring (`services/`):
/// nothing from the system's service directories starts behind the test's back.
fn bus_config(socket: &Path, services: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display(),
        services.display()
    )
}

/// The script the bus runs to start the keyring: unlocked with [`PASSPHRASE`], its files and
/// control socket under `root`, its messages appended to `keyring.log` after a line that counts
/// the starts, its process id in `keyring.pid`.
fn keyring_script(root: &Path) -> String {
    let r = root.display();
    format!(
        "#!/bin/sh\n\
         export HOME='{r}' XDG_DATA_HOME='{r}/data' XDG_RUNTIME_DIR='{r}/run'\n\
         echo \"== gnome-keyring-daemon started by the bus (pid $$)\" >> '{r}/keyring.log'\n\
         echo $$ > '{r}/keyring.pid'\n\
         exec gnome-keyring-daemon --foreground --unlock --components=secrets -C '{r}/ctl' \
         >/dev/null 2>> '{r}/keyring.log' <<EOF\n{PASSPHRASE}\nEOF\n"
    )
}

/// A private session bus that starts an unlocked gnome-keyring when a client asks for it.
pub struct SecretService {
    /// The bus; killed in `drop`, which ends every keyring it started.
    bus: Child,
    address: String,
    pub tmp: tempfile::TempDir,
}

impl SecretService {
    pub fn start() -> SecretService {
        let tmp = tempfile::Builder::new()
            .prefix("breakglass-keyring-")
            .tempdir()
            .expect("a temporary directory for the keyring");
        let root = tmp.path().to_owned();
        for dir in ["data", "run", "services"] {
            fs::create_dir(root.join(dir)).expect("create a keyring directory");
            fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o700))
                .expect("keyring directories are private");
        }
        let script = root.join("keyring.sh");
        fs::write(&script, keyring_script(&root)).expect("write the keyring's start script");
        fs::write(
            root.join("services/org.freedesktop.secrets.service"),
            format!(
                "[D-BUS Service]\nName=org.freedesktop.secrets\nExec=/bin/sh {}\n",
                script.display()
            ),
        )
        .expect("write the keyring's service file");
        let config = root.join("bus.conf");
        fs::write(
            &config,
            bus_config(&root.join("bus"), &root.join("services")),
        )
        .expect("write the bus config");

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
        let mut service = SecretService {
            bus,
            address: String::new(),
            tmp,
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the bus address");
        service.address = line.trim().to_owned();
        assert!(
            service.address.starts_with("unix:"),
            "dbus-daemon prints its address first, got {line:?}; its log:\n{}",
            service.logs()
        );

        // Ready when a secret can be stored in the default collection (the first call starts
        // the keyring).
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
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the keyring should accept secrets within 10 s of starting; {}",
                service.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    /// How many keyring daemons the bus has started so far.
    pub fn keyring_starts(&self) -> usize {
        fs::read_to_string(self.tmp.path().join("keyring.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("== gnome-keyring-daemon started"))
            .count()
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, ...) to the keyring daemon the bus started last:
    /// `KILL` ends it as a crash would, and the next call starts another.
    pub fn signal_keyring(&self, signal: &str) {
        let pid = fs::read_to_string(self.tmp.path().join("keyring.pid"))
            .expect("the bus started a keyring");
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal, pid.trim()])
            .status()
            .expect("sh");
        assert!(status.success(), "the keyring was running; {}", self.logs());
    }

    /// The bus's and the keyring's logs, for a failure message.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.tmp.path().join(name)).unwrap_or_default();
        format!(
            "the bus's log:\n{}\nthe keyring's log:\n{}",
            read("bus.log"),
            read("keyring.log")
        )
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
        if std::thread::panicking() {
            eprintln!(
                "the test's keyring ({} daemon start(s)); {}",
                self.keyring_starts(),
                self.logs()
            );
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
