//! `breakglass broker` as a process: killed with SIGKILL while grants are active, it ends every
//! grant whose deadline passed while it was down in the first pass after it is started again,
//! before anything else; SIGTERM stops it cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use support::{request_args, World};

/// Its standard error, a line at a time, read on a thread.
fn lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines up to and including the first one containing `marker` (within 20 s).
fn until(rx: &Receiver<String>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line with {marker:?} came; saw {seen:#?}"));
        let done = line.contains(marker);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

#[test]
fn a_killed_broker_ends_every_overdue_grant_in_its_first_pass_when_restarted() {
    let w = World::sqlite();
    let calls = w.path("revokes.jsonl");
    let script = w.path("revoke.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{{ cat; echo; }} >> {}\n", calls.display()),
    )
    .expect("write the revoke program");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let policy = format!(
        r#"{}
[targets.timed]
max_duration = "1h"
request_ttl = "10m"
extension_cap = "1h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "10m" }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["{}"] }}
"#,
        support::policy(2),
        script.display()
    );
    let file = w.path("policy-2.toml");
    std::fs::write(&file, policy).expect("write the policy");
    w.by(&w.admin, &["policy", "apply", &file.display().to_string()])
        .ok("the policy applies");

    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    until(&rx, "first pass done");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut args = request_args("timed", "2s", "primary is down");
        args.extend(["--break-glass", "--json"]);
        let out = w.by(&w.dave, &args);
        out.ok("break-glass on timed");
        ids.push(out.json()["request"].as_str().expect("an id").to_owned());
    }
    broker.kill().expect("SIGKILL the broker");
    broker.wait().expect("it is gone");

    // The deadlines pass with no broker (and no other command) running.
    std::thread::sleep(Duration::from_millis(3000));
    assert!(!calls.exists(), "nothing revoked them while no broker ran");

    let mut broker = w.cli.spawn(&["broker", "--interval", "1s"]);
    let rx = lines(&mut broker);
    let first = until(&rx, "first pass done");
    let summary = first.last().expect("the summary line");
    assert!(
        summary.contains("3 overdue grant(s) ended, 0 failure(s)"),
        "{first:#?}"
    );
    for id in &ids {
        assert!(
            first
                .iter()
                .any(|l| l.starts_with(&format!("revoked {id} ("))),
            "{id} is revoked in the first pass: {first:#?}"
        );
    }
    let revoked = std::fs::read_to_string(&calls).expect("the revoke program ran");
    for id in &ids {
        assert_eq!(
            revoked
                .lines()
                .filter(|l| l.contains(&format!("\"request\":\"{id}\"")))
                .count(),
            1,
            "{id} revoked exactly once: {revoked}"
        );
    }

    let stopped = Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let status = broker.wait().expect("the broker exits");
    assert!(status.success(), "SIGTERM stops it cleanly: {status:?}");
    until(&rx, "breakglass broker: stopped");
    for id in &ids {
        assert_eq!(w.state_of(id), "expired");
    }
}
