//! Keys in the OS keyring, through the real Secret Service: each test starts its own private
//! D-Bus bus and an unlocked gnome-keyring in a temporary directory, and runs the CLI without
//! any key file. Both daemons are killed when the test ends, even when it fails.

mod support;

use std::fs;
use std::path::Path;

use support::SecretService;
use support::{Cli, REFUSED};

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
    let cli = support::keyring_cli(&service);

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
fn a_keyring_daemon_that_dies_mid_call_is_started_again_and_the_command_completes() {
    let service = SecretService::start();
    let cli = support::keyring_cli(&service);
    cli.run(&["init"]).ok("init with keys in the keyring");
    let policy = service.tmp.path().join("policy.toml");
    fs::write(&policy, POLICY).expect("write the policy");
    cli.run(&["policy", "apply", &policy.display().to_string()])
        .ok("apply the policy");
    assert_eq!(service.keyring_starts(), 1);

    // The daemon stops answering; the command's first keyring call waits on it; then the
    // daemon dies without replying, as gnome-keyring does when it aborts.
    service.signal_keyring("STOP");
    let mut args = support::request_args("db", "30m", "keyring restart");
    args.push("--json");
    let mut child = cli.spawn(&args);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().expect("poll the CLI").is_none(),
        "the command waits on the stopped keyring"
    );
    service.signal_keyring("KILL");
    let out = support::Output::from_child(child, &["request"]);
    out.ok("the call that got no reply is made again, and the bus starts a new keyring");
    assert_eq!(out.json()["state"], "pending", "{out:?}");
    assert_eq!(
        service.keyring_starts(),
        2,
        "the bus started the keyring again; {}",
        service.logs()
    );
    cli.run(&["log", "verify"]).ok("the log verifies");
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
