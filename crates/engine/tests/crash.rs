//! Crash safety: a process appending events is killed with SIGKILL at random moments, 50 times.
//! After each kill the whole log must verify (signatures, rules, Merkle root against the signed
//! checkpoint) and every request whose append had reported success must be in it.
//!
//! The appending process is this test binary re-run in child mode (`crash_child`), so the test
//! needs no extra program.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use breakglass_core::{RequestId, Span};
use breakglass_engine::{Actor, NewRequest};
use support::crash::{create_log, key, moments, open, run_and_kill};

const CHILD_ENV: &str = "BREAKGLASS_CRASH_CHILD_DIR";
const POLICY: &str = r#"
version = 1
[groups]
admin = ["admin"]
sre = ["bob"]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "1h"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 1 }
[targets.db.connector]
kind = "command"
grant = ["/bin/true"]
revoke = ["/bin/true"]
"#;

/// Child mode: append requests forever, announcing each one only after it was committed.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let mut engine = open(&dir).await;
    let dave = Actor::new("dave", key(&dir, "dave").load().unwrap());
    for i in 0.. {
        let out = engine
            .request(
                &dave,
                NewRequest {
                    target: "db".into(),
                    role: None,
                    duration: Span::from_secs(600),
                    reason: format!("crash test {i}"),
                    ticket: None,
                    break_glass: false,
                    extends: None,
                    credential: None,
                },
            )
            .await
            .unwrap();
        #[allow(
            clippy::print_stdout,
            reason = "the parent reads acknowledgements from stdout"
        )]
        {
            println!("ok {}", out.request);
        }
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    create_log(dir, POLICY, &[("dave", "engineers")]).await;

    let mut acknowledged: Vec<RequestId> = Vec::new();
    let mut next = moments(0x9e37_79b9_7f4a_7c15);
    for round in 0..50 {
        // Kill somewhere in the 0–150 ms after the first acknowledged append, which lands in
        // every phase of an append over 50 rounds.
        let delay = Duration::from_micros(next() % 150_000);
        for line in run_and_kill("crash_child", CHILD_ENV, dir, &["ok "], delay) {
            acknowledged.push(RequestId::parse(&line["ok ".len()..]).unwrap());
        }

        let engine = open(dir).await; // verifies the whole log or fails
        for id in &acknowledged {
            assert!(
                engine.state().request(id).is_some(),
                "round {round}: request {id} was acknowledged before the kill but is missing"
            );
        }
    }
    let engine = open(dir).await;
    assert!(
        acknowledged.len() >= 50,
        "each round acknowledged at least one append"
    );
    assert!(engine.state().requests().count() >= acknowledged.len());
}
