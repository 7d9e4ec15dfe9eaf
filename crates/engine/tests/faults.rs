//! Faults the engine must ride out without losing or inventing anything: wall-clock jumps
//! during active grants, connectors that hang, a full disk and a data directory that turns
//! read-only. Each fault gives a clear error or a recorded failure, and afterwards the log
//! verifies and holds exactly what was acknowledged.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use breakglass_core::{ManualClock, Span, Status, Timestamp};
use breakglass_engine::{generate, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;
use breakglass_testkit::fs::Tmpfs;
use ed25519_dalek::SigningKey;

fn start() -> Timestamp {
    Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap()
}

fn policy(grant: &[&str], revoke: &[&str], timeout: &str) -> String {
    let argv = |a: &[&str]| {
        a.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"version = 1
[groups]
admin = ["admin"]
sre = ["bob"]
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 1 }}
break_glass = {{ max_duration = "30m" }}
connector = {{ kind = "command", grant = [{}], revoke = [{}], timeout = "{timeout}" }}
"#,
        argv(grant),
        argv(revoke)
    )
}

struct Log {
    location: String,
    keys: ([u8; 32], [u8; 32]),
    clock: ManualClock,
    engine: Engine,
    admin: Actor,
    bob: Actor,
    dana: Actor,
}

fn keys(k: &([u8; 32], [u8; 32])) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new("faults.test/log", SigningKey::from_bytes(&k.0)).unwrap(),
        broker: SigningKey::from_bytes(&k.1),
    }
}

async fn log_at(db: &Path, policy_source: &str) -> Log {
    let location = db.display().to_string();
    let clock = ManualClock::new(start());
    let k = (generate().to_bytes(), generate().to_bytes());
    let store = Store::open(&location).await.unwrap();
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(store, Arc::new(clock.clone()), keys(&k), &admin)
        .await
        .unwrap();
    engine.apply_policy(&admin, policy_source).await.unwrap();
    let bob = Actor::new("bob", generate());
    let dana = Actor::new("dana", generate());
    for (who, groups) in [(&bob, vec!["sre".to_owned()]), (&dana, vec![])] {
        engine
            .enrol(&admin, who.name(), who.public_key(), groups)
            .await
            .unwrap();
    }
    Log {
        location,
        keys: k,
        clock,
        engine,
        admin,
        bob,
        dana,
    }
}

/// The log as a fresh process would find it: every entry verified again.
async fn reopen(location: &str, k: &([u8; 32], [u8; 32]), clock: &ManualClock) -> Engine {
    let store = Store::open(location).await.unwrap();
    Engine::open(store, Arc::new(clock.clone()), keys(k))
        .await
        .expect("the log verifies after the fault")
}

fn ask(break_glass: bool, minutes: u64) -> NewRequest {
    NewRequest {
        target: "db".into(),
        role: None,
        duration: Span::from_secs(minutes * 60),
        reason: "fault drill".into(),
        ticket: None,
        break_glass,
        extends: None,
        credential: None,
    }
}

fn minutes(m: i64) -> Span {
    Span::from_secs(u64::try_from(m).unwrap() * 60)
}

fn back(t: Timestamp, m: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() - m * 60_000).unwrap()
}

#[tokio::test]
async fn wall_clock_jumps_never_extend_or_back_date_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_at(
        &dir.path().join("log.db"),
        &policy(&["/bin/true"], &["/bin/true"], "5s"),
    )
    .await;
    let out = log.engine.request(&log.dana, ask(true, 20)).await.unwrap();
    assert_eq!(out.state, Status::Active);
    let deadline = out.deadline.unwrap();
    assert_eq!(deadline, start().checked_add(minutes(20)).unwrap());

    // The clock steps back an hour (a bad NTP step): nothing expires early, nothing moves the
    // deadline, and new events are not back-dated before the log's newest.
    log.clock.set(back(start(), 60));
    let report = log.engine.tick().await.unwrap();
    assert!(report.expired.is_empty(), "{report:?}");
    let r = log.engine.state().request(&out.request).unwrap();
    assert_eq!((r.status, r.deadline), (Status::Active, Some(deadline)));
    let newest = log.engine.state().last_time().unwrap();
    let other = log.engine.request(&log.dana, ask(false, 10)).await.unwrap();
    let at = log
        .engine
        .state()
        .request(&other.request)
        .unwrap()
        .requested_at;
    assert!(
        at >= newest,
        "an event is never dated before the log's newest ({at} < {newest})"
    );

    // Stepping to one second before the deadline still does not end it; the deadline does.
    log.clock
        .set(Timestamp::from_unix_millis(deadline.unix_millis() - 1000).unwrap());
    assert!(log.engine.tick().await.unwrap().expired.is_empty());
    // A jump forward of an hour past the deadline: the grant ends at once.
    log.clock.set(deadline.checked_add(minutes(60)).unwrap());
    let report = log.engine.tick().await.unwrap();
    assert_eq!(report.expired, vec![out.request]);
    let r = log.engine.state().request(&out.request).unwrap();
    assert_eq!(r.status, Status::Expired);
    assert_eq!(r.deadline, Some(deadline), "the deadline never moved");
    assert!(r.ended_at.unwrap() >= deadline);
    reopen(&log.location, &log.keys, &log.clock).await;
}

#[tokio::test]
async fn a_hanging_connector_fails_the_grant_and_the_revoke_is_retried_loudly() {
    let dir = tempfile::tempdir().unwrap();
    // Grants hang past the time-out; so do revokes.
    let mut log = log_at(
        &dir.path().join("log.db"),
        &policy(&["/bin/sleep", "30"], &["/bin/sleep", "30"], "1s"),
    )
    .await;
    let out = log.engine.request(&log.dana, ask(true, 20)).await.unwrap();
    assert_eq!(out.state, Status::Failed, "a grant that times out fails");
    let r = log.engine.state().request(&out.request).unwrap();
    let error = r.last_error.clone().unwrap();
    assert!(
        error.contains("1s") || error.contains("time"),
        "the failure says it timed out: {error}"
    );
    assert!(out.warning.is_some(), "the requester is told");

    // A grant whose revoke hangs: each attempt at or after the deadline records a failure and
    // raises an alert; the grant stays listed as active until a revoke is confirmed. Attempts
    // back off: 1 s after the first failure, then 2 s, 4 s, … (at most 5 min apart).
    let revoke_hangs =
        policy(&["/bin/true"], &["/bin/sleep", "30"], "1s").replace("version = 1", "version = 2");
    log.engine
        .apply_policy(&log.admin, &revoke_hangs)
        .await
        .unwrap();
    let out = log.engine.request(&log.dana, ask(true, 10)).await.unwrap();
    assert_eq!(out.state, Status::Active);
    log.clock.set(out.deadline.unwrap());
    // (seconds to advance before the pass, whether it attempts, failures recorded after it)
    let passes = [
        (0, true, 1),
        (0, false, 1),
        (1, true, 2),
        (1, false, 2),
        (1, true, 3),
    ];
    for (advance, attempts, failures) in passes {
        log.clock.advance(Span::from_secs(advance));
        let report = log.engine.tick().await.unwrap();
        assert!(report.expired.is_empty());
        assert_eq!(report.revokes.len(), usize::from(attempts), "{report:?}");
        assert_eq!(report.failures.len(), usize::from(attempts), "{report:?}");
        let r = log.engine.state().request(&out.request).unwrap();
        assert_eq!(r.revoke_failures, failures);
        assert_eq!(
            r.status,
            Status::Active,
            "not reported ended while access may remain"
        );
        let failed = r.last_revoke_failure.unwrap();
        let wait = 1u64 << (failures - 1);
        assert_eq!(
            log.engine.next_due(),
            failed.checked_add(Span::from_secs(wait)),
            "the next attempt is due {wait} s after the last failure"
        );
    }
    let alerts = log
        .engine
        .entries(0, log.engine.size())
        .await
        .unwrap()
        .iter()
        .filter(|e| String::from_utf8_lossy(e).contains("revoke_failing"))
        .count();
    assert_eq!(alerts, 3, "each failed attempt raised an alert");
    reopen(&log.location, &log.keys, &log.clock).await;
}

#[tokio::test]
async fn a_full_disk_refuses_the_append_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let tmpfs = Tmpfs::mount(&mnt, "4m");
    let mut log = log_at(
        &mnt.join("log.db"),
        &policy(&["/bin/true"], &["/bin/true"], "5s"),
    )
    .await;
    let acknowledged = log.engine.request(&log.dana, ask(false, 10)).await.unwrap();

    // Fill the disk to the last byte.
    let filler = tmpfs.fill();

    let size = log.engine.size();
    let mut refused = 0;
    for _ in 0..20 {
        match log
            .engine
            .approve(&log.bob, &acknowledged.request, None)
            .await
        {
            Ok(_) => break,
            Err(e) => {
                refused += 1;
                let msg = e.to_string();
                assert!(
                    msg.contains("full") || msg.contains("space"),
                    "the error says the disk is full: {msg}"
                );
            }
        }
    }
    assert!(refused > 0, "the append cannot succeed on a full disk");

    std::fs::remove_file(&filler).unwrap();
    let Log {
        location,
        keys: k,
        clock,
        engine,
        bob,
        ..
    } = log;
    engine.close().await;
    let mut engine = reopen(&location, &k, &clock).await;
    assert!(engine.size() >= size, "nothing acknowledged was lost");
    let r = engine.state().request(&acknowledged.request).unwrap();
    assert_eq!(
        r.status,
        Status::Pending,
        "the refused approval left no trace"
    );
    // With space again, the same command goes through.
    let out = engine
        .approve(&bob, &acknowledged.request, None)
        .await
        .unwrap();
    assert_eq!(out.state, Status::Active);
    engine.close().await;
}

#[tokio::test]
async fn a_read_only_data_directory_refuses_appends_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("log.db");
    let mut log = log_at(&db, &policy(&["/bin/true"], &["/bin/true"], "5s")).await;
    let acknowledged = log.engine.request(&log.dana, ask(false, 10)).await.unwrap();
    let size = log.engine.size();
    let Log {
        location,
        keys: k,
        clock,
        engine,
        dana,
        ..
    } = log;
    // Closed, so SQLite checkpoints and removes its -wal and -shm files.
    engine.close().await;

    // SQLite removes its -wal and -shm files as the last connection closes; wait for that, then
    // freeze the database and the directory.
    let settled = std::time::Instant::now();
    while ["log.db-wal", "log.db-shm"]
        .iter()
        .any(|f| data.join(f).exists())
    {
        assert!(
            settled.elapsed() < std::time::Duration::from_secs(10),
            "SQLite keeps its -wal/-shm files after the last connection closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let frozen = [data.join("log.db"), data.clone()];
    let immutable = frozen.iter().all(|p| {
        Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    });
    if !immutable {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let probe_fails = std::fs::write(data.join("probe"), b"").is_err();
    let result = async {
        let store = Store::open(&location).await.map_err(EngineError::from)?;
        let mut engine = Engine::open(store, Arc::new(clock.clone()), keys(&k)).await?;
        engine.request(&dana, ask(false, 10)).await
    }
    .await;
    for p in &frozen {
        let _ = Command::new("chattr").arg("-i").arg(p).status();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        probe_fails,
        "test setup: could not make {} read-only",
        data.display()
    );
    let err = result.expect_err("nothing can be appended to a read-only data directory");
    let msg = err.to_string();
    assert!(
        msg.contains("writable") || msg.contains("read-only") || msg.contains("readonly"),
        "the error says the data directory is not writable: {msg}"
    );
    let engine = reopen(&location, &k, &clock).await;
    assert_eq!(
        engine.size(),
        size,
        "nothing was lost and nothing half-written"
    );
    assert_eq!(
        engine
            .state()
            .request(&acknowledged.request)
            .map(|r| r.status),
        Some(Status::Pending)
    );
}
