//! The engine's story: every lifecycle rule, told once and run on SQLite and on a real
//! PostgreSQL. Time is a `ManualClock`, so deadlines are exact and nothing sleeps.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use breakglass_core::{ManualClock, Refusal, RequestId, Span, Status, Timestamp};
use breakglass_engine::{generate, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;
use ed25519_dalek::SigningKey;

struct World {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    location: String,
    log_key: [u8; 32],
    broker_key: [u8; 32],
    clock: ManualClock,
    engine: Engine,
    admin: Actor,
    bob: Actor,
    carol: Actor,
    dave: Actor,
    erin: Actor,
}

fn start() -> Timestamp {
    Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap()
}

/// A real program as connector: it appends each instruction to calls.jsonl and fails (exit 3)
/// while a file named fail-grant or fail-revoke exists beside it.
fn write_connector(dir: &Path) -> PathBuf {
    let path = dir.join("connector.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\nd=$(dirname \"$0\")\n[ -e \"$d/fail-$1\" ] && exit 3\n{ cat; echo; } >> \"$d/calls.jsonl\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn policy(connector: &Path, version: u64) -> String {
    let c = connector.display();
    format!(
        r#"
version = {version}

[groups]
admin = ["admin"]
sre = ["bob", "carol"]
engineers = ["dave"]

[targets.prod-db]
description = "Production database"
roles = ["read", "write"]
max_duration = "2h"
request_ttl = "30m"
extension_cap = "3h"
requesters = ["engineers", "sre"]
approvers = {{ groups = ["sre"], quorum = 2 }}

[targets.prod-db.break_glass]
max_duration = "30m"

[targets.prod-db.connector]
kind = "command"
grant = ["{c}", "grant"]
revoke = ["{c}", "revoke"]
timeout = "10s"

[targets.staging]
max_duration = "4h"
request_ttl = "1h"
extension_cap = "8h"
approvers = {{ groups = ["sre"], quorum = 1 }}

[targets.staging.connector]
kind = "command"
grant = ["{c}", "grant"]
revoke = ["{c}", "revoke"]
"#
    )
}

async fn world(location: impl FnOnce(&Path) -> String) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let connector = write_connector(&dir);
    let clock = ManualClock::new(start());
    let location = location(&dir);
    let store = Store::open(&location).await.unwrap();
    let (log_key, broker_key) = (generate().to_bytes(), generate().to_bytes());
    let keys = system_keys(&log_key, &broker_key);
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(store, Arc::new(clock.clone()), keys, &admin)
        .await
        .unwrap();
    engine
        .apply_policy(&admin, &policy(&connector, 1))
        .await
        .unwrap();
    let mut people = Vec::new();
    for (name, groups) in [
        ("bob", vec!["sre"]),
        ("carol", vec!["sre"]),
        ("dave", vec!["engineers"]),
        ("erin", vec![]),
    ] {
        let actor = Actor::new(name, generate());
        engine
            .enrol(
                &admin,
                name,
                actor.public_key(),
                groups.into_iter().map(String::from),
            )
            .await
            .unwrap();
        people.push(actor);
    }
    let erin = people.pop().unwrap();
    let dave = people.pop().unwrap();
    let carol = people.pop().unwrap();
    let bob = people.pop().unwrap();
    World {
        _dir: tmp,
        dir,
        location,
        log_key,
        broker_key,
        clock,
        engine,
        admin,
        bob,
        carol,
        dave,
        erin,
    }
}

fn ask(target: &str, duration: &str) -> NewRequest {
    NewRequest {
        target: target.into(),
        role: None,
        duration: Span::parse(duration).unwrap(),
        reason: "investigate INC-42".into(),
        ticket: Some("INC-42".into()),
        break_glass: false,
        extends: None,
        credential: None,
    }
}

fn refusal(e: EngineError) -> Refusal {
    match e {
        EngineError::Refused(r) => r,
        other => panic!("expected a rule refusal, got {other:?}"),
    }
}

fn calls(w: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(w.dir.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn status(w: &World, id: &RequestId) -> Status {
    w.engine.state().request(id).unwrap().status
}

async fn story(location: impl FnOnce(&Path) -> String) {
    let mut w = world(location).await;

    // Quorum: the requester never counts, non-members cannot approve, one approver once.
    let id = w
        .engine
        .request(&w.dave, ask("prod-db", "1h"))
        .await
        .unwrap()
        .request;
    assert_eq!(status(&w, &id), Status::Pending);
    let size = w.engine.size();
    let e = w.engine.approve(&w.dave, &id, None).await.unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::SelfDecision { .. }),
        "self-approval is refused"
    );
    let e = w.engine.approve(&w.erin, &id, None).await.unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::NotApprover { .. }),
        "erin is in no approver group"
    );
    assert_eq!(w.engine.size(), size, "refused decisions append nothing");
    w.engine
        .approve(&w.bob, &id, Some("ok".into()))
        .await
        .unwrap();
    assert_eq!(status(&w, &id), Status::Pending, "one of two approvals");
    let e = w.engine.approve(&w.bob, &id, None).await.unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::AlreadyDecided { .. }),
        "bob counts once"
    );

    // A slow approver does not eat the window: the deadline runs from the grant.
    w.clock.advance(Span::parse("20m").unwrap());
    let granted = w.engine.approve(&w.carol, &id, None).await.unwrap();
    assert_eq!(granted.state, Status::Active);
    let deadline = start().checked_add(Span::parse("1h20m").unwrap()).unwrap();
    assert_eq!(granted.deadline, Some(deadline));
    let c = calls(&w);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["action"], "grant");
    assert_eq!(c[0]["deadline"], deadline.to_string());

    // Expiry: nothing before the deadline, revoke at it.
    w.clock.advance(Span::parse("59m").unwrap());
    let r = w.engine.tick().await.unwrap();
    assert!(r.expired.is_empty(), "one minute remains");
    w.clock.advance(Span::parse("1m").unwrap());
    let r = w.engine.tick().await.unwrap();
    assert_eq!(r.expired, vec![id]);
    assert_eq!(status(&w, &id), Status::Expired);
    assert_eq!(calls(&w).last().unwrap()["action"], "revoke");
    let again = w.engine.revoke(&w.dave, &id, None).await.unwrap();
    assert!(again.unchanged, "revoking an expired grant is a no-op");

    // Caps: over the max is refused with the cap named, never trimmed.
    let size = w.engine.size();
    let e = w
        .engine
        .request(&w.dave, ask("prod-db", "3h"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("3h") && msg.contains("2h") && msg.contains("prod-db"),
        "{msg}"
    );
    let e = w
        .engine
        .request(&w.dave, ask("nowhere", "1h"))
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::UnknownTarget(_)));
    let mut empty_reason = ask("prod-db", "1h");
    empty_reason.reason = "  ".into();
    assert!(w.engine.request(&w.dave, empty_reason).await.is_err());
    let mut long_reason = ask("prod-db", "1h");
    long_reason.reason = "x".repeat(1001);
    assert!(w.engine.request(&w.dave, long_reason).await.is_err());
    let e = w
        .engine
        .request(&w.erin, ask("prod-db", "1h"))
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::NotPermitted { .. }),
        "erin may not request prod-db"
    );
    assert_eq!(w.engine.size(), size, "refused requests append nothing");

    // Deny ends it at once; cancel is the requester's alone.
    let denied = w
        .engine
        .request(&w.dave, ask("prod-db", "1h"))
        .await
        .unwrap()
        .request;
    w.engine
        .deny(&w.bob, &denied, "not during the freeze".into())
        .await
        .unwrap();
    assert_eq!(status(&w, &denied), Status::Denied);
    assert!(w.engine.approve(&w.carol, &denied, None).await.is_err());
    let cancelled = w
        .engine
        .request(&w.dave, ask("prod-db", "1h"))
        .await
        .unwrap()
        .request;
    let e = w.engine.cancel(&w.bob, &cancelled).await.unwrap_err();
    assert!(matches!(refusal(e), Refusal::NotYours { .. }));
    w.engine.cancel(&w.dave, &cancelled).await.unwrap();
    assert_eq!(status(&w, &cancelled), Status::Cancelled);

    // Lapse: a request nobody decides within the TTL.
    let lapsing = w
        .engine
        .request(&w.dave, ask("prod-db", "1h"))
        .await
        .unwrap()
        .request;
    w.clock.advance(Span::parse("30m").unwrap());
    let r = w.engine.tick().await.unwrap();
    assert_eq!(r.lapsed, vec![lapsing]);
    assert!(w.engine.approve(&w.bob, &lapsing, None).await.is_err());

    // Extension: a new, linked request, approved again, within the chain cap.
    let base = w
        .engine
        .request(&w.dave, ask("prod-db", "2h"))
        .await
        .unwrap()
        .request;
    w.engine.approve(&w.bob, &base, None).await.unwrap();
    w.engine.approve(&w.carol, &base, None).await.unwrap();
    let base_deadline = w.engine.state().request(&base).unwrap().deadline;
    let mut too_long = ask("prod-db", "1h30m");
    too_long.extends = Some(base);
    let e = w.engine.request(&w.dave, too_long).await.unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::ChainOverCap { .. }),
        "2h + 1h30m > 3h"
    );
    let mut ext = ask("prod-db", "1h");
    ext.extends = Some(base);
    let ext = w.engine.request(&w.dave, ext).await.unwrap().request;
    assert_eq!(
        status(&w, &ext),
        Status::Pending,
        "an extension needs approval"
    );
    w.engine.approve(&w.bob, &ext, None).await.unwrap();
    w.engine.approve(&w.carol, &ext, None).await.unwrap();
    assert_eq!(status(&w, &ext), Status::Active);
    assert_eq!(
        w.engine.state().request(&base).unwrap().deadline,
        base_deadline,
        "an extension never moves the original deadline"
    );

    // Revoke early: by the requester; idempotent.
    let out = w
        .engine
        .revoke(&w.dave, &base, Some("done".into()))
        .await
        .unwrap();
    assert_eq!(out.state, Status::Revoked);
    assert!(
        w.engine
            .revoke(&w.dave, &base, None)
            .await
            .unwrap()
            .unchanged
    );
    let e = w.engine.revoke(&w.erin, &ext, None).await.unwrap_err();
    assert!(
        matches!(refusal(e), Refusal::NotPermitted { .. }),
        "erin may not revoke"
    );
    w.engine.revoke(&w.bob, &ext, None).await.unwrap();

    // Break-glass: granted at once, alert, shorter cap, review owed and not by the requester.
    let mut bg = ask("prod-db", "45m");
    bg.break_glass = true;
    let e = w.engine.request(&w.dave, bg.clone()).await.unwrap_err();
    assert!(e.to_string().contains("30m"), "break-glass cap named: {e}");
    bg.duration = Span::parse("20m").unwrap();
    let out = w.engine.request(&w.dave, bg.clone()).await.unwrap();
    assert_eq!(out.state, Status::Active);
    let e = w
        .engine
        .review(&w.dave, &out.request, "fine".into())
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::SelfDecision { .. }));
    w.engine
        .review(&w.bob, &out.request, "justified: INC-42 outage".into())
        .await
        .unwrap();
    let mut staging_bg = ask("staging", "10m");
    staging_bg.break_glass = true;
    let e = w.engine.request(&w.dave, staging_bg).await.unwrap_err();
    assert!(matches!(refusal(e), Refusal::BreakGlassNotAllowed { .. }));

    // A failing revoke is loud and retried until it succeeds.
    std::fs::write(w.dir.join("fail-revoke"), "").unwrap();
    w.clock.advance(Span::parse("20m").unwrap());
    let r = w.engine.tick().await.unwrap();
    assert_eq!(r.failures.len(), 1, "the failure is reported: {r:?}");
    assert_eq!(
        status(&w, &out.request),
        Status::Active,
        "still live until revoked"
    );
    assert_eq!(
        w.engine
            .state()
            .request(&out.request)
            .unwrap()
            .revoke_failures,
        1
    );
    std::fs::remove_file(w.dir.join("fail-revoke")).unwrap();
    // Retried once its backoff (a second after the first failure) has passed.
    let r = w.engine.tick().await.unwrap();
    assert!(r.revokes.is_empty(), "not before its backoff: {r:?}");
    w.clock.advance(Span::from_secs(1));
    let r = w.engine.tick().await.unwrap();
    assert_eq!(r.expired, vec![out.request]);

    // A wall clock that jumps back never extends a grant or back-dates the log.
    let staging = w
        .engine
        .request(&w.dave, ask("staging", "1h"))
        .await
        .unwrap()
        .request;
    w.engine.approve(&w.bob, &staging, None).await.unwrap();
    let deadline = w
        .engine
        .state()
        .request(&staging)
        .unwrap()
        .deadline
        .unwrap();
    let before = w.engine.state().last_time().unwrap();
    w.clock.set(start());
    w.engine.tick().await.unwrap();
    assert_eq!(
        w.engine.state().request(&staging).unwrap().deadline,
        Some(deadline)
    );
    w.clock.set(deadline);
    let r = w.engine.tick().await.unwrap();
    assert_eq!(r.expired, vec![staging]);
    assert!(w.engine.state().last_time().unwrap() >= before);

    // Policy changes are admin-only and versioned.
    let connector = w.dir.join("connector.sh");
    let e = w
        .engine
        .apply_policy(&w.bob, &policy(&connector, 2))
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::NotPermitted { .. }));
    let e = w
        .engine
        .apply_policy(&w.admin, &policy(&connector, 1))
        .await
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::StalePolicy { .. }));
    w.engine
        .apply_policy(&w.admin, &policy(&connector, 2))
        .await
        .unwrap();

    // Everything survives a reopen, verified from scratch; another checkpoint key is refused.
    let before: BTreeSet<_> = w
        .engine
        .state()
        .requests()
        .map(|r| (r.id, r.status, r.deadline))
        .collect();
    assert!(w.engine.size() > 40, "the story wrote a real history");
    let reopened = Engine::open(
        Store::open(&w.location).await.unwrap(),
        Arc::new(w.clock.clone()),
        system_keys(&w.log_key, &w.broker_key),
    )
    .await
    .unwrap();
    let after: BTreeSet<_> = reopened
        .state()
        .requests()
        .map(|r| (r.id, r.status, r.deadline))
        .collect();
    assert_eq!(before, after);
    assert_eq!(reopened.size(), w.engine.size());
    let e = Engine::open(
        Store::open(&w.location).await.unwrap(),
        Arc::new(w.clock.clone()),
        system_keys(&generate().to_bytes(), &w.broker_key),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, EngineError::Tampered(_)),
        "a different checkpoint key is not this log's: {e}"
    );
}

fn system_keys(log: &[u8; 32], broker: &[u8; 32]) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new("test.breakglass/story", SigningKey::from_bytes(log)).unwrap(),
        broker: SigningKey::from_bytes(broker),
    }
}

#[tokio::test]
async fn story_on_sqlite() {
    story(|dir| dir.join("log.db").display().to_string()).await;
}

#[tokio::test]
async fn story_on_postgres() {
    let pg = breakglass_store::testing::PgCluster::start().await.unwrap();
    let url = pg.create_database().await.unwrap();
    story(|_| url).await;
}
