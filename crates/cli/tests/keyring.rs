//! Keys in the OS keyring, through the real Secret Service: each test starts its own private
//! D-Bus bus and an unlocked gnome-keyring in a temporary directory, and runs the CLI without
//! any key file. Both daemons are killed when the test ends, even when it fails.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Cli, REFUSED};

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
struct SecretService {
    /// Killed in `drop`, keyring first.
    children: Vec<Child>,
    address: String,
    tmp: tempfile::TempDir,
}

impl SecretService {
    fn start() -> SecretService {
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

    /// The environment that points a client at this keyring.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()),
            ("HOME".into(), self.tmp.path().display().to_string()),
        ]
    }

    fn secret_tool(&self, args: &[&str]) -> Command {
        let mut c = Command::new("secret-tool");
        c.args(args).envs(self.env());
        c
    }

    /// A CLI on a data directory beside the keyring, talking to it.
    fn cli(&self) -> Cli {
        let mut cli = Cli::new(&self.tmp.path().join("breakglass"));
        for (k, v) in self.env() {
            cli.env(&k, &v);
        }
        cli
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

/// Every file under `dir` whose name ends with `.pem`.
fn pem_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)
        .expect("list the data directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            found.extend(pem_files(&path));
        } else if path.extension().is_some_and(|e| e == "pem") {
            found.push(path);
        }
    }
    found
}

const POLICY: &str = r#"version = 1
[groups]
admin = ["admin"]
sre = []
[targets.db]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 1 }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

#[test]
fn keys_live_in_the_secret_service() {
    let service = SecretService::start();
    let cli = service.cli();

    cli.run(&["init"])
        .ok("init keeps the log's keys and the admin's key in the keyring by default");
    let policy = service.tmp.path().join("policy.toml");
    fs::write(&policy, POLICY).expect("write the policy");
    cli.run(&["policy", "apply", &policy.display().to_string()])
        .ok("the admin signs with the key from the keyring");
    cli.run(&["identity", "add", "bob", "--group", "sre"])
        .ok("enrolling bob creates his key")
        .stdout_mentions(
            "keyring",
            "the key is stored in the keyring, and the output says so",
        );

    let out = cli.run(&[
        "request",
        "--target",
        "db",
        "--duration",
        "30m",
        "--reason",
        "keyring test",
        "--json",
    ]);
    out.ok("the admin requests access");
    let v = out.json();
    assert_eq!(v["state"], "pending", "quorum 1 of sre: waits for bob: {v}");
    let id = v["request"].as_str().expect("a request id").to_owned();
    cli.run(&["--as", "bob", "approve", &id])
        .ok("bob approves with his key from the keyring");
    let out = cli.run(&["status", "--json"]);
    out.ok("status");
    let status = out.json();
    let r = support::find_request(&status, &id);
    assert_eq!(r["status"], "active", "approved and granted: {r}");
    cli.run(&["log", "verify"]).ok("the log verifies");

    assert_eq!(
        pem_files(&cli.data_dir),
        Vec::<std::path::PathBuf>::new(),
        "with keyring keys no key file is written to the data directory"
    );
    let out = service
        .secret_tool(&["search", "--all", "service", "breakglass"])
        .output()
        .expect("run secret-tool search");
    // secret-tool prints the attributes on stderr and the rest on stdout.
    let listing = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for who in ["/#log", "/#broker", "/admin", "/bob"] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("attribute.username = ") && l.ends_with(who)),
            "the keyring holds the {who} key under service breakglass:\n{listing}"
        );
    }
}

#[test]
fn init_without_a_secret_service_fails_cleanly() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut cli = Cli::new(&tmp.path().join("breakglass"));
    cli.env(
        "DBUS_SESSION_BUS_ADDRESS",
        &format!("unix:path={}", tmp.path().join("no-bus").display()),
    );
    cli.env("HOME", &tmp.path().display().to_string());

    cli.run(&["init"])
        .code(
            REFUSED,
            "with no Secret Service the keyring cannot hold the keys",
        )
        .one_line_error("no Secret Service")
        .stderr_mentions(
            &["Secret Service", "--system-keys file"],
            "the message names what is missing and the way out",
        );
    assert!(
        !cli.data_dir.join("breakglass.toml").exists(),
        "a failed init leaves no config behind"
    );
    cli.run(&["init", "--system-keys", "file"])
        .ok("a failed init leaves nothing a retry with key files would trip over");
    cli.run(&["log", "verify"])
        .ok("the retried init made a working log");
}
