//! Crash safety of grants and revokes: a process that requests, approves (which grants through
//! a real program as connector) and revokes, over and over, is killed with SIGKILL at random
//! moments — inside a connector's run as often as not. After each kill the log must verify,
//! every grant and revoke that had been acknowledged must be in it, and one broker pass must
//! bring the target and the log into agreement: no access alive at the target that the log
//! does not show as active, and none the log shows active that the target lacks.
//!
//! The worker is this test binary re-run in child mode (`grant_crash_child`).

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use breakglass_core::{Span, Status};
use breakglass_engine::{Actor, Engine, NewRequest};
use support::crash::{create_log, key, moments, open, run_and_kill};

const CHILD_ENV: &str = "BREAKGLASS_GRANT_CRASH_CHILD_DIR";

/// The connector: waits 20 ms (so kills land inside it), then records the instruction in the
/// target's state file. It keeps running when the engine that started it is killed, as a real
/// connector would.
fn write_connector(dir: &Path) -> PathBuf {
    let path = dir.join("connector.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\nd=$(dirname \"$0\")\nin=$(cat)\nsleep 0.02\nprintf '%s\\n' \"$in\" >> \"$d/target.jsonl\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn policy(connector: &Path) -> String {
    let c = connector.display();
    format!(
        r#"
version = 1
[groups]
admin = ["admin"]
sre = ["bob"]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "1h"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
[targets.db.connector]
kind = "command"
grant = ["{c}", "grant"]
revoke = ["{c}", "revoke"]
timeout = "10s"
"#
    )
}

/// Who holds access at the target: the connector's instructions folded in order.
fn target_holds(dir: &Path) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    let text = std::fs::read_to_string(dir.join("target.jsonl")).unwrap_or_default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["request"].as_str().unwrap().to_owned();
        match v["action"].as_str().unwrap() {
            "grant" => held.insert(id),
            "revoke" => held.remove(&id),
            other => panic!("unknown action {other}"),
        };
    }
    held
}

/// Child mode: request, approve (granted), revoke — forever, announcing each grant and revoke
/// only after the engine reported it done.
#[tokio::test]
async fn grant_crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let mut engine = open(&dir).await;
    let dave = Actor::new("dave", key(&dir, "dave").load().unwrap());
    let bob = Actor::new("bob", key(&dir, "bob").load().unwrap());
    #[allow(
        clippy::print_stdout,
        reason = "the parent reads acknowledgements from stdout"
    )]
    for i in 0.. {
        let id = engine
            .request(
                &dave,
                NewRequest {
                    target: "db".into(),
                    role: None,
                    duration: Span::from_secs(3600),
                    reason: format!("crash test {i}"),
                    ticket: None,
                    break_glass: false,
                    extends: None,
                    credential: None,
                },
            )
            .await
            .unwrap()
            .request;
        let out = engine.approve(&bob, &id, None).await.unwrap();
        assert_eq!(out.state, Status::Active, "{out:?}");
        println!("granted {id}");
        let out = engine.revoke(&dave, &id, None).await.unwrap();
        assert_eq!(out.state, Status::Revoked, "{out:?}");
        println!("revoked {id}");
    }
}

#[tokio::test]
async fn sigkill_during_grants_and_revokes_leaves_the_target_and_the_log_in_agreement() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let connector = write_connector(dir);
    create_log(
        dir,
        &policy(&connector),
        &[("bob", "sre"), ("dave", "engineers")],
    )
    .await;

    let (mut granted, mut revoked) = (Vec::new(), Vec::new());
    let mut next = moments(0x2545_f491_4f6c_dd1d);
    let mut recovered = 0;
    for round in 0..30 {
        // Kill somewhere in the 0–200 ms after the first acknowledged grant: in a connector's
        // run (20 ms of every grant and revoke), between appends, or in one.
        let delay = Duration::from_micros(next() % 200_000);
        for line in run_and_kill(
            "grant_crash_child",
            CHILD_ENV,
            dir,
            &["granted ", "revoked "],
            delay,
        ) {
            match line.split_once(' ') {
                Some(("granted", id)) => granted.push(id.to_owned()),
                Some(("revoked", id)) => revoked.push(id.to_owned()),
                _ => {}
            }
        }
        // A connector the killed process started finishes on its own.
        std::thread::sleep(Duration::from_millis(150));

        let mut engine = open(dir).await; // verifies the whole log or fails
        let status = |e: &Engine, id: &str| {
            e.state()
                .requests()
                .find(|r| r.id.to_string() == id)
                .map(|r| r.status)
        };
        for id in &granted {
            let s = status(&engine, id);
            assert!(
                matches!(s, Some(Status::Active | Status::Revoking | Status::Revoked)),
                "round {round}: grant of {id} was acknowledged but the log says {s:?}"
            );
        }
        for id in &revoked {
            assert_eq!(
                status(&engine, id),
                Some(Status::Revoked),
                "round {round}: revoke of {id} was acknowledged"
            );
        }
        if engine
            .state()
            .requests()
            .any(|r| matches!(r.status, Status::Approved | Status::Revoking))
        {
            recovered += 1;
        }
        // One broker pass finishes what the kill interrupted: an approved request is granted,
        // an ordered revocation carried out.
        let report = engine.tick().await.unwrap();
        assert!(report.failures.is_empty(), "round {round}: {report:?}");
        let open: Vec<_> = engine
            .state()
            .requests()
            .filter(|r| matches!(r.status, Status::Approved | Status::Revoking))
            .map(|r| r.id)
            .collect();
        assert!(open.is_empty(), "round {round}: left half-done: {open:?}");
        let active: BTreeSet<String> = engine
            .state()
            .requests()
            .filter(|r| r.status == Status::Active)
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(
            target_holds(dir),
            active,
            "round {round}: the target grants exactly what the log shows active"
        );
        // The next round starts from a clean slate: end what is still active.
        let dave = Actor::new("dave", key(dir, "dave").load().unwrap());
        for id in engine
            .state()
            .requests()
            .filter(|r| r.status == Status::Active)
            .map(|r| r.id)
            .collect::<Vec<_>>()
        {
            engine.revoke(&dave, &id, None).await.unwrap();
        }
        assert!(target_holds(dir).is_empty(), "round {round}");
    }
    assert!(
        granted.len() >= 30,
        "each round acknowledged a grant: {}",
        granted.len()
    );
    assert!(
        recovered > 0,
        "some kill landed between a decision and the connector's confirmation"
    );
}
