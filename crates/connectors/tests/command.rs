//! The command connector's batch protocol against real programs: one answer line per
//! instruction, in order; a failed run or a missing answer revokes nothing; runs are split at
//! `MAX_BATCH` and time out.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use breakglass_connectors::command::{CommandConnector, MAX_BATCH};
use breakglass_connectors::{Access, Connector};
use breakglass_core::policy::CommandSpec;
use breakglass_core::{Request, RequestId, Span, Status, Timestamp};

fn request(n: usize) -> Request {
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
    let id = RequestId::from_random(bytes);
    let at = Timestamp::from_unix_millis(1_800_000_000_000).expect("a time");
    Request {
        id,
        requester: "dana".into(),
        target: "bulk".into(),
        role: "default".into(),
        duration: Span::from_secs(60),
        reason: format!("grant {n}"),
        ticket: None,
        break_glass: false,
        extends: None,
        chain: id,
        policy_version: 1,
        requested_at: at,
        lapses_at: at,
        digest: "00".repeat(32),
        status: Status::Active,
        decisions: Vec::new(),
        quorum: 1,
        approved_at: Some(at),
        granted_at: Some(at),
        deadline: Some(at),
        enforced_by_target: Some(false),
        credential: None,
        issued: None,
        ended_at: None,
        revoked_by: None,
        revoke_failures: 0,
        last_revoke_failure: None,
        last_error: None,
        review: None,
        subject_token: None,
    }
}

/// A revoke program from a shell script body; returns the connector.
fn connector(dir: &Path, body: &str, timeout: u64) -> CommandConnector {
    let script = dir.join("revoke.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    CommandConnector::new(CommandSpec {
        grant: vec!["/bin/true".into()],
        revoke: vec![script.display().to_string()],
        timeout: Span::from_secs(timeout),
        batch: true,
    })
}

async fn revoke_all(c: &CommandConnector, requests: &[Request]) -> Vec<Result<(), String>> {
    let accesses: Vec<Access<'_>> = requests
        .iter()
        .map(|r| Access::of(r).expect("granted"))
        .collect();
    c.revoke_many(&accesses)
        .await
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

#[tokio::test]
async fn each_grant_is_revoked_only_by_its_own_ok_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Answers ok, then an error, then ok, then stops answering.
    let c = connector(
        dir.path(),
        "read a; echo ok; read b; echo 'error: locked'; read c; echo ok; cat >/dev/null",
        10,
    );
    assert!(c.batches());
    let requests: Vec<Request> = (0..5).map(request).collect();
    let results = revoke_all(&c, &requests).await;
    assert_eq!(results.len(), 5);
    assert!(results[0].is_ok());
    assert!(results[1]
        .as_ref()
        .unwrap_err()
        .contains("did not answer ok"));
    assert!(results[2].is_ok());
    assert!(results[3].as_ref().unwrap_err().contains("no answer"));
    assert!(results[4].as_ref().unwrap_err().contains("no answer"));
}

#[tokio::test]
async fn a_run_that_fails_or_hangs_revokes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let requests: Vec<Request> = (0..3).map(request).collect();
    let failing = connector(dir.path(), "while read l; do echo ok; done; exit 3", 10);
    let results = revoke_all(&failing, &requests).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.contains("exit status 3"))),
        "{results:?}"
    );
    let hanging = connector(dir.path(), "echo ok; sleep 30", 1);
    let started = std::time::Instant::now();
    let results = revoke_all(&hanging, &requests).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.contains("killed"))),
        "{results:?}"
    );
}

#[tokio::test]
async fn a_large_batch_is_split_into_runs_of_at_most_max_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = dir.path().join("runs");
    let c = connector(
        dir.path(),
        &format!(
            "n=0; while read l; do n=$((n+1)); echo ok; done; echo $n >> {}",
            runs.display()
        ),
        30,
    );
    let requests: Vec<Request> = (0..MAX_BATCH + 5).map(request).collect();
    let results = revoke_all(&c, &requests).await;
    assert_eq!(results.len(), MAX_BATCH + 5);
    assert!(results.iter().all(Result::is_ok));
    let sizes = std::fs::read_to_string(&runs).expect("runs recorded");
    assert_eq!(
        sizes.lines().collect::<Vec<_>>(),
        vec![MAX_BATCH.to_string(), "5".to_owned()]
    );
}

#[tokio::test]
async fn a_single_revoke_of_a_batch_connector_uses_the_same_protocol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = dir.path().join("seen");
    let c = connector(
        dir.path(),
        &format!(
            "while read l; do printf '%s\\n' \"$l\" >> {}; echo ok; done",
            seen.display()
        ),
        10,
    );
    let r = request(1);
    c.revoke(Access::of(&r).expect("granted"))
        .await
        .expect("revoked");
    let line = std::fs::read_to_string(&seen).expect("seen");
    assert_eq!(line.lines().count(), 1);
    assert!(line.contains(r#""action":"revoke""#) && line.contains(r.id.as_str()));
}
