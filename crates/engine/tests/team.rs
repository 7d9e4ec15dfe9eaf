//! Team mode on a real PostgreSQL: two apps (member engines, holding none of the log's keys)
//! and the broker on one shared database. A member appends its people's signed events; the
//! broker verifies and covers them with its checkpoint, and alone grants and ends access. Rows
//! written into the database directly are refused, removed and alerted before any checkpoint
//! covers them, and never lead to a grant; rewritten, truncated or forged history is detected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::{AlertKind, Event, EventBody, Span, Status, SystemClock, EVENT_FORMAT};
use breakglass_engine::{generate, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_ledger::{
    decode_all, verify_bundle, write_bundle, Entry, NoteSigner, VerifyOptions,
};
use breakglass_store::testing::PgCluster;
use breakglass_store::Store;
use ed25519_dalek::SigningKey;
use sqlx::{Connection, PgConnection};

struct Team {
    _pg: PgCluster,
    dir: tempfile::TempDir,
    url: String,
    broker: Engine,
    a: Engine,
    b: Engine,
    keys: ([u8; 32], [u8; 32]),
    dana: Actor,
    dana_key: SigningKey,
    bob: Actor,
    bob_key: SigningKey,
}

/// A command target whose programs append the JSON they are given to `grants` and `revokes`.
fn policy(dir: &Path) -> String {
    let record = |file: &str| {
        format!(
            r#"["/bin/sh", "-c", "cat >> {}; echo >> {}"]"#,
            dir.join(file).display(),
            dir.join(file).display()
        )
    };
    format!(
        r#"version = 1
[groups]
admin = ["admin"]
engineers = ["dana"]
sre = ["bob"]
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = {{ groups = ["sre"], quorum = 1 }}
connector = {{ kind = "command", grant = {grant}, revoke = {revoke} }}
"#,
        grant = record("grants"),
        revoke = record("revokes"),
    )
}

impl Team {
    async fn start() -> Team {
        let pg = PgCluster::start().await.expect("PostgreSQL starts");
        let url = pg.create_database().await.expect("a database");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key_bytes = (generate().to_bytes(), generate().to_bytes());
        let keys = system_keys(&key_bytes);
        let admin = Actor::new("admin", generate());
        let store = Store::open(&url).await.expect("store");
        let mut broker = Engine::create(store, Arc::new(SystemClock), keys, &admin)
            .await
            .expect("the log is created");
        broker
            .apply_policy(&admin, &policy(dir.path()))
            .await
            .expect("policy");
        let dana_key = generate();
        let dana = Actor::new("dana", dana_key.clone());
        let bob_key = generate();
        let bob = Actor::new("bob", bob_key.clone());
        broker
            .enrol(&admin, "dana", dana.public_key(), [])
            .await
            .expect("dana");
        broker
            .enrol(&admin, "bob", bob.public_key(), [])
            .await
            .expect("bob");
        let a = Team::member(&url, &broker).await;
        let b = Team::member(&url, &broker).await;
        Team {
            _pg: pg,
            dir,
            url,
            broker,
            keys: key_bytes,
            a,
            b,
            dana,
            dana_key,
            bob,
            bob_key,
        }
    }

    /// An app joining the team's log with only the log's checkpoint verifier.
    async fn member(url: &str, broker: &Engine) -> Engine {
        let store = Store::open(url).await.expect("store");
        Engine::join(store, Arc::new(SystemClock), broker.log_verifier())
            .await
            .expect("a member opens the log")
    }

    fn lines(&self, file: &str) -> usize {
        std::fs::read_to_string(self.path(file))
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    async fn db(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }
}

fn system_keys(bytes: &([u8; 32], [u8; 32])) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new("team.test/log", SigningKey::from_bytes(&bytes.0)).expect("log key"),
        broker: SigningKey::from_bytes(&bytes.1),
    }
}

fn request(duration: &str) -> NewRequest {
    NewRequest {
        target: "db".into(),
        role: None,
        duration: Span::parse(duration).expect("a duration"),
        reason: "replica lag".into(),
        ticket: None,
        break_glass: false,
        extends: None,
        credential: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_on_one_app_is_approved_on_another_granted_by_the_broker_and_expires_for_both() {
    let mut t = Team::start().await;
    assert!(t.a.is_member() && !t.broker.is_member());

    let out =
        t.a.request(&t.dana, request("3s"))
            .await
            .expect("requested on A");
    let id = out.request;
    assert_eq!(out.state, Status::Pending);
    assert!(
        t.a.covered() < t.a.size(),
        "a member's entry awaits the broker's checkpoint"
    );
    // An export meanwhile holds what the newest checkpoint covers, and verifies on its own.
    let (covered, note) =
        t.a.latest_checkpoint()
            .await
            .expect("the newest checkpoint");
    assert_eq!(covered, t.a.covered());
    let entries = t.a.entries(0, covered).await.expect("the covered entries");
    let log = t.a.log_verifier();
    let mut bundle = Vec::new();
    write_bundle(
        &mut bundle,
        log.name(),
        &log.vkey(),
        &entries,
        covered,
        &note,
    )
    .expect("a bundle of the covered prefix");
    let report = verify_bundle(&bundle, &VerifyOptions::default()).expect("it verifies");
    assert_eq!(report.entries, covered);

    t.b.refresh().await.expect("B reads it");
    assert_eq!(
        t.b.state().request(&id).map(|r| r.status),
        Some(Status::Pending)
    );
    let out = t.b.approve(&t.bob, &id, None).await.expect("approved on B");
    assert_eq!(out.state, Status::Approved, "a member never grants");
    assert_eq!(t.lines("grants"), 0);

    let report = t.broker.tick().await.expect("a broker pass");
    assert_eq!(report.granted, [id], "{report:?}");
    assert!(report.refused.is_empty());
    assert_eq!(t.lines("grants"), 1, "granted once, by the broker");
    for app in [&mut t.a, &mut t.b] {
        app.refresh().await.expect("the app reads the grant");
        assert_eq!(
            app.state().request(&id).map(|r| r.status),
            Some(Status::Active)
        );
        assert_eq!(
            app.covered(),
            app.size(),
            "the broker's checkpoint covers it all"
        );
    }

    // A member ticking does nothing the broker does; only the broker ends the grant.
    let deadline =
        t.a.state()
            .request(&id)
            .and_then(|r| r.deadline)
            .expect("deadline");
    let wait = deadline.millis_since(t.a.now()).max(0) as u64 + 500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    t.a.tick().await.expect("a member's pass");
    assert_eq!(t.lines("revokes"), 0, "members never revoke");
    let report = t.broker.tick().await.expect("a broker pass");
    assert_eq!(report.expired, [id]);
    for app in [&mut t.a, &mut t.b] {
        app.refresh().await.expect("the app reads the expiry");
        assert_eq!(
            app.state().request(&id).map(|r| r.status),
            Some(Status::Expired)
        );
    }
    assert_eq!((t.lines("grants"), t.lines("revokes")), (1, 1));

    let refused =
        t.a.integrate()
            .await
            .expect_err("a member holds no log key");
    assert!(refused.to_string().contains("the broker's"), "{refused}");
}

/// An approval of `id` by bob, signed with a key that is not bob's, as a database writer would
/// forge it.
fn forged_approval(origin: &str, engine: &Engine, id: breakglass_core::RequestId) -> Vec<u8> {
    let r = engine.state().request(&id).expect("the request");
    let event = Event {
        v: EVENT_FORMAT,
        log: origin.to_owned(),
        time: engine.now(),
        actor: "bob".into(),
        body: EventBody::RequestApproved {
            auth: None,
            comment: None,
            request: id,
            request_digest: r.digest.clone(),
        },
    };
    Entry::sign(event, &generate())
        .expect("signed")
        .bytes()
        .to_vec()
}

async fn insert(db: &mut PgConnection, index: u64, bytes: &[u8]) {
    sqlx::query("INSERT INTO log_entries (idx, entry) VALUES ($1, $2)")
        .bind(index as i64)
        .bind(bytes)
        .execute(db)
        .await
        .expect("a row written directly");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_approval_row_is_refused_removed_and_alerted_and_never_granted() {
    let mut t = Team::start().await;
    let id =
        t.a.request(&t.dana, request("10m"))
            .await
            .expect("requested")
            .request;
    t.broker
        .tick()
        .await
        .expect("the broker covers the request");
    t.b.refresh().await.expect("B reads it");

    let mut db = t.db().await;
    let origin = t.broker.log_verifier().name().to_owned();
    let size = t.broker.size();
    insert(&mut db, size, &forged_approval(&origin, &t.b, id)).await;

    // Apps refuse it on their next read: a bad signature is never shown as valid.
    let error = t.b.refresh().await.expect_err("B refuses the forged row");
    assert!(
        matches!(error, EngineError::Violation(_)),
        "a verification failure: {error}"
    );

    // A broker (re)starting meanwhile still opens the log: it reads the covered prefix, and its
    // first pass removes the row, records why, and grants nothing.
    let store = Store::open(&t.url).await.expect("store");
    t.broker = Engine::open(store, Arc::new(SystemClock), system_keys(&t.keys))
        .await
        .expect("a forged row past the checkpoint does not keep the broker from starting");
    let report = t.broker.tick().await.expect("a broker pass");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(
        report.refused[0].contains(&format!("entry {size}")),
        "{report:?}"
    );
    assert!(report.granted.is_empty());
    assert_eq!(t.lines("grants"), 0, "the forged approval led to no grant");
    let stored = t.broker.entries(size, size + 1).await.expect("entries");
    let entries = decode_all(&[stored[0].as_slice()]).expect("decodes");
    assert!(
        matches!(
            &entries[0].event().body,
            EventBody::Alert {
                kind: AlertKind::EntryRefused,
                ..
            }
        ),
        "the broker's alert took the forged row's place"
    );
    for app in [&mut t.a, &mut t.b] {
        app.refresh()
            .await
            .expect("the apps read on, past the removed row");
        assert_eq!(
            app.state().request(&id).map(|r| r.status),
            Some(Status::Pending)
        );
        assert_eq!(app.covered(), app.size());
    }

    // A row that breaks a rule (well signed, by the requester approving herself) fares the same.
    let event = Event {
        v: EVENT_FORMAT,
        log: origin.clone(),
        time: t.a.now(),
        actor: "dana".into(),
        body: EventBody::RequestApproved {
            auth: None,
            comment: None,
            request: id,
            request_digest: t.a.state().request(&id).expect("request").digest.clone(),
        },
    };
    let size = t.broker.size();
    insert(
        &mut db,
        size,
        Entry::sign(event, &t.dana_key).expect("signed").bytes(),
    )
    .await;
    let report = t.broker.tick().await.expect("a broker pass");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.granted.is_empty());
    assert_eq!(t.lines("grants"), 0);
}

/// Overwrites entry `index` directly (the append-only guard switched off for this session).
async fn set_entry(db: &mut PgConnection, index: u64, bytes: &[u8]) {
    sqlx::query("UPDATE log_entries SET entry = $1 WHERE idx = $2")
        .bind(bytes)
        .bind(index as i64)
        .execute(db)
        .await
        .expect("a row rewritten directly");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_altered_or_rewritten_history_is_detected_by_the_apps_and_the_broker() {
    let mut t = Team::start().await;
    t.a.request(&t.dana, request("10m"))
        .await
        .expect("requested");
    t.broker.tick().await.expect("covered");
    t.a.request(&t.dana, request("10m"))
        .await
        .expect("requested");
    t.broker.tick().await.expect("covered");
    for app in [&mut t.a, &mut t.b] {
        app.refresh().await.expect("read");
    }
    let size = t.broker.size();
    let mut db = t.db().await;
    // The schema's append-only guard is a guard rail, not a security boundary: a superuser (or
    // the tables' owner) can switch it off, as an attacker with the database would.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut db)
        .await
        .expect("triggers off for this session");

    // An altered event: a fresh app and the broker reopening read the whole log and refuse it.
    let row: Vec<u8> = sqlx::query_scalar("SELECT entry FROM log_entries WHERE idx = $1")
        .bind((size - 1) as i64)
        .fetch_one(&mut db)
        .await
        .expect("the newest row");
    let altered = String::from_utf8(row.clone())
        .expect("text")
        .replace("replica lag", "replica lab");
    set_entry(&mut db, size - 1, altered.as_bytes()).await;
    let store = Store::open(&t.url).await.expect("store");
    let error = Engine::join(store, Arc::new(SystemClock), t.broker.log_verifier())
        .await
        .expect_err("a fresh app refuses the altered log");
    assert!(
        matches!(error, EngineError::Violation(_) | EngineError::Tampered(_)),
        "{error}"
    );
    set_entry(&mut db, size - 1, &row).await;

    // The newest entries and their checkpoint deleted: the running apps and broker see the log
    // shrink below what a checkpoint they verified covered.
    sqlx::query("DELETE FROM log_entries WHERE idx >= $1")
        .bind((size - 1) as i64)
        .execute(&mut db)
        .await
        .expect("deleted");
    sqlx::query("DELETE FROM checkpoints WHERE size >= $1")
        .bind(size as i64)
        .execute(&mut db)
        .await
        .expect("deleted");
    for engine in [&mut t.a, &mut t.b, &mut t.broker] {
        let error = engine.refresh().await.expect_err("truncation is detected");
        assert!(
            matches!(&error, EngineError::Tampered(m) if m.contains("shrank") || m.contains("went back")),
            "{error}"
        );
    }

    // History rewritten whole, with a fresh log key and valid-looking signatures: the apps
    // check checkpoints with the key they joined with, never one the database names.
    sqlx::query("TRUNCATE log_entries, checkpoints")
        .execute(&mut db)
        .await
        .expect("emptied");
    let forger = SystemKeys {
        log: NoteSigner::new("team.test/log", generate()).expect("log key"),
        broker: generate(),
    };
    let store = Store::open(&t.url).await.expect("store");
    Engine::create(
        store,
        Arc::new(SystemClock),
        forger,
        &Actor::new("admin", generate()),
    )
    .await
    .expect("a forged log is written");
    let store = Store::open(&t.url).await.expect("store");
    let error = Engine::join(store, Arc::new(SystemClock), t.broker.log_verifier())
        .await
        .expect_err("the forged log is refused");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("different checkpoint key")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_with_its_local_copy_refuses_history_rewritten_even_under_the_log_key() {
    let mut t = Team::start().await;
    let copy = t.path("a-replica.db");
    let log_verifier = t.broker.log_verifier();
    let join_with_copy = |url: String| {
        let copy = copy.clone();
        let verifier = log_verifier.clone();
        async move {
            let store = Store::open(&url).await.expect("store");
            Engine::join_with_replica(store, Arc::new(SystemClock), verifier, &copy).await
        }
    };
    let mut a = join_with_copy(t.url.clone()).await.expect("A joins");
    a.request(&t.dana, request("10m")).await.expect("requested");
    t.broker.tick().await.expect("the broker covers it");
    a.refresh().await.expect("A reads the checkpoint");
    let size = t.broker.size();
    assert_eq!(a.covered(), size);
    a.close().await;

    // Restarted on the honest database, A goes on from its copy.
    let a = join_with_copy(t.url.clone()).await.expect("A reopens");
    assert_eq!(a.size(), size);
    a.close().await;

    // Whoever stole the log's key writes another history, signed with it, in the database A
    // is pointed at. A fresh app, with nothing to compare, cannot tell; A can.
    let url = t._pg.create_database().await.expect("another database");
    let admin = Actor::new("admin", generate());
    let mut forged = Engine::create(
        Store::open(&url).await.expect("store"),
        Arc::new(SystemClock),
        system_keys(&t.keys),
        &admin,
    )
    .await
    .expect("a forged log under the real key");
    let error = join_with_copy(url.clone())
        .await
        .expect_err("a shorter forged history is refused");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("shrank")),
        "{error}"
    );
    forged
        .apply_policy(&admin, &policy(t.dir.path()))
        .await
        .expect("policy");
    for i in 0..size {
        forged
            .enrol(
                &admin,
                &format!("p{i}"),
                Actor::new("x", generate()).public_key(),
                [],
            )
            .await
            .expect("enrolled");
    }
    assert!(forged.size() > size);
    let store = Store::open(&url).await.expect("store");
    Engine::join(store, Arc::new(SystemClock), t.broker.log_verifier())
        .await
        .expect("a fresh app accepts a history signed with the log's key")
        .close()
        .await;
    let error = join_with_copy(url.clone())
        .await
        .expect_err("a longer forged history is refused");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("rewritten")),
        "{error}"
    );
    forged.close().await;

    // And the honest database still opens.
    join_with_copy(t.url.clone())
        .await
        .expect("A reopens on the honest log")
        .close()
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_own_entry_removed_by_a_database_writer_is_reported_once() {
    let mut t = Team::start().await;
    let id =
        t.a.request(&t.dana, request("10m"))
            .await
            .expect("requested on A")
            .request;
    let index = t.a.size() - 1;
    t.b.refresh().await.expect("B reads it");

    // The schema lets uncovered entries be removed (the broker's way with a failing one), so a
    // database writer can drop A's request before the broker covers it.
    let mut db = t.db().await;
    sqlx::query("DELETE FROM log_entries WHERE idx = $1")
        .bind(index as i64)
        .execute(&mut db)
        .await
        .expect("deleted");
    let error = t.a.refresh().await.expect_err("A notices");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains(&format!("entry {index}, which this app appended, was removed"))),
        "{error}"
    );
    assert!(
        t.a.state().request(&id).is_none(),
        "A now shows what the database holds"
    );
    t.a.refresh().await.expect("reported once");
    t.b.refresh()
        .await
        .expect("B, which did not append it, reads the log as it now is");
    assert!(t.b.state().request(&id).is_none());

    // A's next request is covered as usual, and A reads the checkpoint without complaint.
    t.a.request(&t.dana, request("10m"))
        .await
        .expect("requested again");
    t.broker.tick().await.expect("covered");
    t.a.refresh().await.expect("A reads the checkpoint");
    assert_eq!(t.a.covered(), t.a.size());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_still_ends_at_its_deadline_while_the_log_fails_verification_and_is_recorded_once_it_verifies(
) {
    let mut t = Team::start().await;
    let id =
        t.a.request(&t.dana, request("3s"))
            .await
            .expect("requested")
            .request;
    t.broker.tick().await.expect("covered");
    t.b.refresh().await.expect("B reads it");
    t.b.approve(&t.bob, &id, None).await.expect("approved on B");
    let report = t.broker.tick().await.expect("a broker pass");
    assert_eq!(report.granted, [id]);
    let deadline = t
        .broker
        .state()
        .request(&id)
        .and_then(|r| r.deadline)
        .expect("a deadline");

    // Someone with the database (the append-only guard switched off) writes an entry and a
    // checkpoint over it past the broker's: its next pass fails verification, and it holds no
    // verified copy of the log any more.
    let mut db = t.db().await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut db)
        .await
        .expect("triggers off for this session");
    let size = t.broker.size();
    insert(&mut db, size, b"{\"forged\":true}").await;
    sqlx::query("INSERT INTO checkpoints (size, note) VALUES ($1, $2)")
        .bind((size + 1) as i64)
        .bind("team.test/log\n1\nAAAA\n\n— team.test/log AAAA\n")
        .execute(&mut db)
        .await
        .expect("a forged checkpoint");
    let error = t.broker.tick().await.expect_err("the forgery is detected");
    assert!(
        matches!(error, EngineError::Tampered(_) | EngineError::Violation(_)),
        "{error}"
    );
    assert!(t.broker.state().is_empty(), "nothing unverified is held");
    let before = t.broker.end_due_unrecorded().await;
    assert!(
        before.revokes.is_empty() && t.lines("revokes") == 0,
        "nothing is due before the deadline: {before:?}"
    );

    // The broker's loop, its longest sleep 30 s, with the log still failing: it wakes for the
    // deadline of the grant it last read and revokes it anyway, once, saying it is not
    // recorded.
    let revokes = t.path("revokes");
    let count = move || {
        std::fs::read_to_string(&revokes)
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0)
    };
    let stop = {
        let count = count.clone();
        async move {
            while count() == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // A few more passes' time, to see that it is not revoked again.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    };
    let mut passes = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        t.broker.run_broker(
            Duration::from_secs(30),
            |pass| passes.push(pass.cloned().map_err(|e| e.to_string())),
            stop,
        ),
    )
    .await
    .expect("the grant is revoked though the log fails verification");
    assert_eq!(count(), 1, "revoked once");
    assert!(
        passes.iter().all(|p| p
            .as_ref()
            .is_err_and(|e| e.contains("verif") || e.contains("tamper"))
            || p.as_ref()
                .is_ok_and(|r| r.failures.iter().any(|f| f.contains("not recorded")))),
        "every pass fails verification, and the fail-safe says what it did not record: {passes:#?}"
    );
    let runs: Vec<_> = passes
        .iter()
        .flatten()
        .flat_map(|r| r.revokes.iter())
        .collect();
    assert_eq!(runs.len(), 1, "{passes:#?}");
    let run = *runs[0];
    assert!(run.request == id && run.ok);
    let late = run.started.millis_since(deadline);
    assert!(
        (0..1000).contains(&late),
        "it woke for the deadline, not at its 30 s interval: {late} ms late"
    );
    let again = t.broker.end_due_unrecorded().await;
    assert!(again.revokes.is_empty(), "revoked once: {again:?}");

    // The forgery is removed: the next pass records the expiry without a second revoke, and
    // every app reads it.
    for sql in [
        "DELETE FROM log_entries WHERE idx >= $1",
        "DELETE FROM checkpoints WHERE size > $1",
    ] {
        sqlx::query(sql)
            .bind(size as i64)
            .execute(&mut db)
            .await
            .expect("the forgery removed");
    }
    let report = t.broker.tick().await.expect("the log verifies again");
    assert_eq!(report.expired, [id], "{report:?}");
    assert_eq!(
        report.revokes,
        [run],
        "the recorded revoke is the one made while the log failed, with its times"
    );
    assert_eq!(t.lines("revokes"), 1, "not revoked a second time");
    for app in [&mut t.a, &mut t.b] {
        app.refresh().await.expect("the app reads the expiry");
        assert_eq!(
            app.state().request(&id).map(|r| r.status),
            Some(Status::Expired)
        );
    }
    let later = t.broker.tick().await.expect("a quiet pass");
    assert!(later.revokes.is_empty() && later.expired.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_signs_what_it_finds_wrong_with_the_log_and_appends_it_once_the_log_verifies() {
    use breakglass_engine::desk::Desk;
    use breakglass_engine::findings::Findings;
    use breakglass_engine::{Home, JoinOptions, KeyLocation, KeyStoreKind};
    use std::os::unix::fs::PermissionsExt;

    let mut t = Team::start().await;
    let dir = t.path("dana-app");
    // Where a data directory that keeps keys in files keeps dana's.
    let dana_pem = KeyLocation::File(dir.join("keys/dana.pem"));
    dana_pem.store_new(&t.dana_key).expect("dana's key file");
    let joined = Home::join(
        &dir,
        JoinOptions {
            database: t.url.clone(),
            log_key: t.broker.log_verifier().vkey(),
            identity: "dana".into(),
            identity_key: Some(dana_pem),
            identity_keys: KeyStoreKind::File,
        },
        Arc::new(SystemClock),
    )
    .await
    .expect("dana's app joins");
    joined.engine.close().await;
    let mut desk = Desk::open(&dir, Arc::new(SystemClock))
        .await
        .expect("the app opens");
    for _ in 0..2 {
        t.a.request(&t.dana, request("10m"))
            .await
            .expect("requested");
        t.broker.tick().await.expect("covered");
    }
    desk.sync().await.expect("the app reads the covered log");
    let size = t.broker.size();
    assert_eq!(desk.engine().covered(), size);
    let kept = Findings::of(desk.home());
    assert!(kept.held().expect("read").is_empty());

    // A database writer deletes the newest entries and their checkpoint (kept aside here).
    let mut db = t.db().await;
    for sql in [
        "SET session_replication_role = replica",
        "CREATE TABLE saved_entries AS SELECT * FROM log_entries WHERE idx >= $1",
        "CREATE TABLE saved_checkpoints AS SELECT * FROM checkpoints WHERE size > $1",
        "DELETE FROM log_entries WHERE idx >= $1",
        "DELETE FROM checkpoints WHERE size > $1",
    ] {
        let query = sqlx::query(sql);
        let query = if sql.contains("$1") {
            query.bind((size - 1) as i64)
        } else {
            query
        };
        query.execute(&mut db).await.expect(sql);
    }

    // The app refuses it, signs the finding as dana and keeps it, once however often it looks.
    let error = desk.sync().await.expect_err("the truncation is refused");
    let text = error.to_string();
    assert!(text.contains("shrank"), "{text}");
    assert!(
        text.contains("signed by dana is kept in") && text.contains("findings"),
        "{text}"
    );
    let again = desk.sync().await.expect_err("still refused");
    assert_eq!(again.to_string(), text, "the same finding, the same words");
    let held = kept.held().expect("read");
    assert_eq!(held.len(), 1, "one finding, kept once");
    let finding = &held[0];
    assert_eq!(finding.entry.event().actor, "dana");
    assert_eq!(*finding.entry.key(), t.dana.public_key());
    finding
        .entry
        .verify_signature()
        .expect("signed with dana's key");
    let EventBody::Alert {
        kind: AlertKind::HistoryRefused,
        message,
        request: None,
    } = &finding.entry.event().body
    else {
        panic!("not a finding: {:?}", finding.entry.event().body);
    };
    assert!(
        message.starts_with("dana found the shared log failing verification at ")
            && message.contains(&format!(
                "the log shrank from {size} to {} entries",
                size - 1
            )),
        "{message}"
    );
    let mode = std::fs::metadata(&finding.path)
        .expect("the file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only");
    desk.close().await;
    // Reopened on the tampered log, the app refuses it again and keeps no second copy.
    let error = Desk::open(&dir, Arc::new(SystemClock))
        .await
        .expect_err("refused on opening");
    assert!(
        error.to_string().contains("signed by dana is kept in"),
        "{error}"
    );
    assert_eq!(kept.held().expect("read").len(), 1);

    // The rows are put back: the log verifies again, and the app appends the finding.
    for sql in [
        "INSERT INTO log_entries SELECT * FROM saved_entries",
        "INSERT INTO checkpoints SELECT * FROM saved_checkpoints",
    ] {
        sqlx::query(sql).execute(&mut db).await.expect(sql);
    }
    let mut desk = Desk::open(&dir, Arc::new(SystemClock))
        .await
        .expect("the app opens on the restored log and appends its finding");
    assert!(kept.held().expect("read").is_empty(), "appended, not kept");
    assert_eq!(desk.engine().size(), size + 1);
    t.broker
        .tick()
        .await
        .expect("the broker covers the finding");
    desk.sync().await.expect("read");
    assert_eq!(desk.engine().covered(), size + 1);
    t.b.refresh().await.expect("the other app reads it");
    let stored = t.b.store().entries(size, size + 1).await.expect("read");
    let entries = decode_all(&[stored[0].bytes.as_slice()]).expect("an entry");
    let event = entries[0].event();
    assert_eq!(event.actor, "dana");
    assert_eq!(
        event.body,
        finding.entry.event().body,
        "the finding, as kept"
    );
    assert!(event.time >= finding.entry.event().time);
    desk.sync().await.expect("nothing more to append");
    assert_eq!(desk.engine().size(), size + 1);
    desk.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_cosign_what_they_verified_and_catch_a_fork_or_a_tampered_cosignature() {
    use breakglass_engine::witness_name;
    use breakglass_ledger::{Checkpoint, CosignatureVerifier, Cosigner};
    use ed25519_dalek::VerifyingKey;

    let mut t = Team::start().await;
    t.a.set_witness(&t.dana).expect("dana witnesses on A");
    t.b.set_witness(&t.bob).expect("bob witnesses on B");
    t.a.request(&t.dana, request("10m"))
        .await
        .expect("requested");
    t.broker.tick().await.expect("covered");
    for app in [&mut t.a, &mut t.b] {
        app.refresh().await.expect("read and cosign");
    }
    let size = t.broker.size();
    let signed = t
        .broker
        .store()
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("a checkpoint");
    let root = t
        .broker
        .log_verifier()
        .verify_checkpoint(&signed.note)
        .expect("the broker's checkpoint")
        .root;
    let rows = t.a.store().cosignatures().await.expect("read");
    assert_eq!(rows.len(), 2, "each member cosigned: {rows:?}");
    let verifier = |actor: &Actor| {
        let name = witness_name("team.test/log", actor.name());
        let key = VerifyingKey::from_bytes(&actor.public_key().0).expect("a key");
        CosignatureVerifier::new(name, key).expect("a verifier")
    };
    for (row, actor) in rows.iter().zip([&t.bob, &t.dana]) {
        assert_eq!(row.witness, witness_name("team.test/log", actor.name()));
        assert_eq!(row.size, size);
        let cp = Checkpoint::from_body(&row.checkpoint).expect("a checkpoint body");
        assert_eq!((cp.size, cp.root), (size, root), "the broker's checkpoint");
        verifier(actor)
            .verify(&cp, &row.signature)
            .expect("signed with the member's enrolled key");
    }
    for app in [&mut t.a, &mut t.b] {
        app.refresh()
            .await
            .expect("each reads the other's cosignature: consistent");
    }

    // The broker's bundle carries both cosignatures in its checkpoint note; verify names the
    // witnesses, and refuses a bundle whose cosignature was altered.
    let mut bundle = Vec::new();
    t.broker
        .export_bundle(&mut bundle, &mut |_, _| {})
        .await
        .expect("a bundle");
    let opts = breakglass_ledger::VerifyOptions::default();
    let report = breakglass_ledger::verify_bundle(&bundle, &opts).expect("it verifies");
    assert_eq!(report.witnessed_by, ["bob", "dana"], "{report:?}");
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.starts_with("witnesses: bob, dana cosigned")),
        "{:?}",
        report.checks
    );
    let streamed =
        breakglass_ledger::verify_bundle_stream(bundle.as_slice(), &opts).expect("streamed too");
    assert_eq!(streamed.witnessed_by, report.witnessed_by);
    let text = String::from_utf8(bundle.clone()).expect("text");
    let dana_line = rows
        .iter()
        .find(|r| r.witness.ends_with("/dana"))
        .expect("dana's row")
        .signature
        .clone();
    // The trailer is JSON: the note's lines are escaped there. Change a byte of dana's
    // signature in it: the bundle must fail, naming her cosignature.
    let sig_b64 = dana_line.rsplit(' ').next().expect("base64");
    let mut altered = sig_b64.to_owned().into_bytes();
    let at = altered.len() - 6;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let tampered = text.replacen(sig_b64, std::str::from_utf8(&altered).expect("ascii"), 1);
    assert_ne!(tampered, text, "dana's cosignature is in the trailer");
    let err = breakglass_ledger::verify_bundle(tampered.as_bytes(), &opts)
        .expect_err("an altered cosignature fails the bundle");
    assert!(err.to_string().contains("dana"), "{err}");
    breakglass_ledger::verify_bundle_stream(tampered.as_bytes(), &opts)
        .expect_err("as a stream too");

    let mut db = t.db().await;
    let row_of = |who: &str| {
        rows.iter()
            .find(|r| r.witness.ends_with(&format!("/{who}")))
            .expect("a row")
            .clone()
    };
    let (dana_row, bob_row) = (row_of("dana"), row_of("bob"));
    async fn set(db: &mut PgConnection, witness: &str, checkpoint: &str, signature: &str) {
        sqlx::query("UPDATE cosignatures SET checkpoint = $1, signature = $2 WHERE witness = $3")
            .bind(checkpoint)
            .bind(signature)
            .bind(witness)
            .execute(db)
            .await
            .expect("a row rewritten directly");
    }
    let cp = Checkpoint::from_body(&dana_row.checkpoint).expect("a body");
    let now = 1_800_000_000;

    // A signature changed in the database, or not a signature line at all: refused by the
    // member reading it.
    let mut chars: Vec<char> = dana_row.signature.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let broken: String = chars.into_iter().collect();
    for (line, why) in [
        (broken.as_str(), "does not verify"),
        ("garbage", "is malformed"),
    ] {
        set(&mut db, &dana_row.witness, &dana_row.checkpoint, line).await;
        let error =
            t.b.refresh()
                .await
                .expect_err("B refuses a broken cosignature");
        assert!(
            matches!(&error, EngineError::Tampered(m) if m.contains("team.test/log/witness/dana") && m.contains(why)),
            "{error}"
        );
    }
    set(
        &mut db,
        &dana_row.witness,
        &dana_row.checkpoint,
        &dana_row.signature,
    )
    .await;
    t.b.refresh().await.expect("restored");

    // Signed with a key dana does not hold now (as after re-enrolling elsewhere): not hers to
    // judge, so B skips it; A, whose cosignature it replaced, refuses it.
    let stranger = Cosigner::new(dana_row.witness.clone(), generate()).expect("a cosigner");
    let theirs = stranger.cosign(&cp, now).expect("cosigned");
    set(&mut db, &dana_row.witness, &dana_row.checkpoint, &theirs).await;
    t.b.refresh()
        .await
        .expect("B skips a cosignature under another key");
    let error =
        t.a.refresh()
            .await
            .expect_err("A's own cosignature was replaced");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("this app's cosignature") && m.contains("replaced")),
        "{error}"
    );
    set(
        &mut db,
        &dana_row.witness,
        &dana_row.checkpoint,
        &dana_row.signature,
    )
    .await;
    t.a.refresh().await.expect("restored");

    // A cosignature by no one enrolled.
    let mallory =
        Cosigner::new(witness_name("team.test/log", "mallory"), generate()).expect("a cosigner");
    sqlx::query(
        "INSERT INTO cosignatures (witness, size, checkpoint, signature) VALUES ($1, $2, $3, $4)",
    )
    .bind(mallory.name())
    .bind(size as i64)
    .bind(&dana_row.checkpoint)
    .bind(mallory.cosign(&cp, now).expect("cosigned"))
    .execute(&mut db)
    .await
    .expect("inserted");
    let error = t.b.refresh().await.expect_err("B refuses it");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("not enrolled")),
        "{error}"
    );
    sqlx::query("DELETE FROM cosignatures WHERE witness = $1")
        .bind(mallory.name())
        .execute(&mut db)
        .await
        .expect("deleted");
    t.b.refresh().await.expect("gone");

    // A fork: bob's key cosigned another history of the same size (the log showed him one).
    // A, which verified this one, catches it.
    let fork = Checkpoint {
        root: [7; 32],
        ..cp.clone()
    };
    let bob_witness =
        Cosigner::new(bob_row.witness.clone(), t.bob_key.clone()).expect("bob's cosigner");
    set(
        &mut db,
        &bob_row.witness,
        &fork.to_body(),
        &bob_witness.cosign(&fork, now).expect("cosigned"),
    )
    .await;
    let error = t.a.refresh().await.expect_err("A catches the fork");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("another history (a fork)") && m.contains("bob")),
        "{error}"
    );

    // bob's cosignature deleted: B, which stored it, notices.
    sqlx::query("DELETE FROM cosignatures WHERE witness = $1")
        .bind(&bob_row.witness)
        .execute(&mut db)
        .await
        .expect("deleted");
    let error =
        t.b.refresh()
            .await
            .expect_err("B's own cosignature is gone");
    assert!(
        matches!(&error, EngineError::Tampered(m) if m.contains("this app's cosignature") && m.contains("removed")),
        "{error}"
    );
}
