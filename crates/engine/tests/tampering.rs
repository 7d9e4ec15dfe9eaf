//! The database is storage, not authority: rows written behind the engine's back, or a whole
//! database swapped for another log, are detected on open and on every refresh.

mod support;

use std::path::Path;
use std::sync::Arc;

use support::raw_insert;

use breakglass_core::{Event, EventBody, ManualClock, RequestId, Span, Timestamp, EVENT_FORMAT};
use breakglass_engine::{generate, Actor, Engine, EngineError, SystemKeys};
use breakglass_ledger::{Entry, NoteSigner};
use breakglass_store::Store;
use ed25519_dalek::SigningKey;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

const ORIGIN: &str = "test.breakglass/tamper";
const POLICY: &str = r#"
version = 1
[groups]
admin = ["admin"]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "1h"
extension_cap = "2h"
approvers = { groups = ["admin"], quorum = 1 }
[targets.db.connector]
kind = "command"
grant = ["/bin/true"]
revoke = ["/bin/true"]
"#;

struct Log {
    engine: Engine,
    log_key: [u8; 32],
    broker_key: [u8; 32],
    dave: SigningKey,
    clock: ManualClock,
}

fn keys(log: &[u8; 32], broker: &[u8; 32]) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new(ORIGIN, SigningKey::from_bytes(log)).unwrap(),
        broker: SigningKey::from_bytes(broker),
    }
}

async fn new_log(db: &Path) -> Log {
    let (log_key, broker_key) = (generate().to_bytes(), generate().to_bytes());
    let clock = ManualClock::new(Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap());
    let store = Store::open(&db.display().to_string()).await.unwrap();
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(
        store,
        Arc::new(clock.clone()),
        keys(&log_key, &broker_key),
        &admin,
    )
    .await
    .unwrap();
    engine.apply_policy(&admin, POLICY).await.unwrap();
    let dave = generate();
    engine
        .enrol(
            &admin,
            "dave",
            breakglass_engine::public_key(&dave),
            ["engineers".to_owned()],
        )
        .await
        .unwrap();
    Log {
        engine,
        log_key,
        broker_key,
        dave,
        clock,
    }
}

/// A correctly signed request by dave, as the next entry of `log`.
fn forged_request(log: &Log) -> Entry {
    let event = Event {
        actor: "dave".into(),
        body: EventBody::AccessRequested {
            auth: None,
            break_glass: false,
            credential: None,
            duration: Span::from_secs(600),
            extends: None,
            policy_version: 1,
            reason: "written straight into the database".into(),
            request: RequestId::from_random([7; 10]),
            role: "default".into(),
            target: "db".into(),
            ticket: None,
        },
        log: ORIGIN.into(),
        time: log.engine.now(),
        v: EVENT_FORMAT,
    };
    Entry::sign(event, &log.dave).unwrap()
}

/// A checkpoint over the log plus `extra`, signed by `signer`: what a writer with direct
/// database access would add to make an inserted row look covered.
async fn checkpoint_with(log: &Log, extra: &Entry, signer: &NoteSigner) -> (u64, String) {
    support::checkpoint_over(&log.engine, std::slice::from_ref(extra), signer, ORIGIN).await
}

async fn reopen(db: &Path, log: &Log) -> Result<Engine, EngineError> {
    Engine::open(
        Store::open(&db.display().to_string()).await.unwrap(),
        Arc::new(log.clock.clone()),
        keys(&log.log_key, &log.broker_key),
    )
    .await
}

fn assert_tampered(result: Result<impl std::fmt::Debug, EngineError>, why: &str) {
    match result {
        Err(EngineError::Tampered(_)) | Err(EngineError::Violation(_)) => {}
        other => panic!("{why}: expected a verification failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_swapped_for_another_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = new_log(&dir.path().join("ours.db")).await;
    let theirs = new_log(&dir.path().join("theirs.db")).await;
    drop(theirs.engine);
    let store = Store::open(&dir.path().join("theirs.db").display().to_string())
        .await
        .unwrap();
    let result = Engine::open(
        store,
        Arc::new(ours.clock.clone()),
        keys(&ours.log_key, &ours.broker_key),
    )
    .await;
    assert_tampered(
        result,
        "a valid log made with another checkpoint key is not this data directory's log",
    );
}

#[tokio::test]
async fn rows_inserted_behind_the_engines_back_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let size = log.engine.size();
    let entry = forged_request(&log);

    // A validly signed entry with no checkpoint covering it.
    raw_insert(&db, size, entry.bytes(), None).await;
    assert_tampered(
        log.engine.tick().await,
        "an entry no signed checkpoint covers must not be taken",
    );
    assert_eq!(
        log.engine.size(),
        0,
        "the engine forgot its unverifiable copy"
    );
    assert_tampered(
        reopen(&db, &log).await,
        "reopening does not launder the row",
    );
}

#[tokio::test]
async fn a_log_truncated_after_a_failed_read_is_still_caught() {
    // After a failure the engine drops its in-memory copy and re-reads everything; a log cut
    // back to an older, validly checkpointed prefix in the meantime must still be caught.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let size = log.engine.size();
    let entry = forged_request(&log);
    raw_insert(&db, size, entry.bytes(), None).await;
    assert_tampered(log.engine.tick().await, "an uncovered row is refused");

    let mut conn = SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    for sql in [
        "DROP TRIGGER log_entries_only_uncovered_or_archived_removed",
        "DROP TRIGGER checkpoints_no_delete",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::query("DELETE FROM log_entries WHERE idx >= ?")
        .bind(size as i64 - 1)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM checkpoints WHERE size >= ?")
        .bind(size as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let err = log.engine.tick().await.unwrap_err();
    assert!(
        err.to_string().contains("shrank"),
        "the store now holds fewer entries than this engine once verified: {err}"
    );
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let size = log.engine.size();
    let entry = forged_request(&log);
    let intruder = NoteSigner::new(ORIGIN, generate()).unwrap();
    let checkpoint = checkpoint_with(&log, &entry, &intruder).await;
    raw_insert(&db, size, entry.bytes(), Some(checkpoint)).await;
    assert_tampered(
        log.engine.tick().await,
        "a checkpoint not signed by this log's key proves nothing",
    );
    let requests = log.engine.state().requests().count();
    assert_eq!(requests, 0, "the forged request never reaches the state");
}

#[tokio::test]
async fn a_signed_event_that_breaks_a_rule_is_refused_even_with_a_good_checkpoint() {
    // Someone holding the log key (say, a stolen broker host) still cannot make a rule-breaking
    // event count: dave "approving" his own request is refused on replay.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let dave = Actor::new("dave", log.dave.clone());
    let id = log
        .engine
        .request(
            &dave,
            breakglass_engine::NewRequest {
                target: "db".into(),
                role: None,
                duration: Span::from_secs(600),
                reason: "real".into(),
                ticket: None,
                break_glass: false,
                extends: None,
                credential: None,
            },
        )
        .await
        .unwrap()
        .request;
    let digest = log.engine.state().request(&id).unwrap().digest.clone();
    let size = log.engine.size();
    let approval = Entry::sign(
        Event {
            actor: "dave".into(),
            body: EventBody::RequestApproved {
                auth: None,
                comment: None,
                request: id,
                request_digest: digest,
            },
            log: ORIGIN.into(),
            time: log.engine.now(),
            v: EVENT_FORMAT,
        },
        &log.dave,
    )
    .unwrap();
    let log_signer = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&log.log_key)).unwrap();
    let checkpoint = checkpoint_with(&log, &approval, &log_signer).await;
    raw_insert(&db, size, approval.bytes(), Some(checkpoint)).await;
    let err = log.engine.tick().await.unwrap_err();
    assert!(
        matches!(err, EngineError::Violation(_)),
        "self-approval is a rule violation: {err}"
    );
    assert!(err.to_string().contains("own request"), "{err}");
}
