//! The forged-approval matrix: each forgery is written straight into the database by someone
//! who holds real keys (an approver's, the broker's, even the log key that signs checkpoints),
//! and each is refused by the engine on its next read and flagged by offline verification of
//! a bundle that carries it, at exactly that entry. The engine's own commands refuse the same
//! acts up front.

mod support;

use std::path::Path;
use std::sync::Arc;

use breakglass_core::{Event, EventBody, ManualClock, RequestId, Span, Timestamp, EVENT_FORMAT};
use breakglass_engine::{generate, public_key, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_ledger::{
    verify_bundle, write_bundle, BundleError, Entry, NoteSigner, VerifyOptions,
};
use breakglass_store::Store;
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "test.breakglass/forged";

fn policy(version: u64, sre: &str) -> String {
    format!(
        r#"version = {version}
[groups]
admin = ["admin"]
sre = [{sre}]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "1h"
extension_cap = "2h"
approvers = {{ groups = ["sre"], quorum = 2 }}
connector = {{ kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }}
"#
    )
}

struct Log {
    engine: Engine,
    log_key: SigningKey,
    broker: SigningKey,
    admin: Actor,
    bob: SigningKey,
    carol: SigningKey,
    dave: SigningKey,
    erin: SigningKey,
}

async fn new_log(db: &Path) -> Log {
    let (log_key, broker) = (generate(), generate());
    let clock = ManualClock::new(Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap());
    let keys = SystemKeys {
        log: NoteSigner::new(ORIGIN, log_key.clone()).unwrap(),
        broker: broker.clone(),
    };
    let store = Store::open(&db.display().to_string()).await.unwrap();
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(store, Arc::new(clock), keys, &admin)
        .await
        .unwrap();
    engine
        .apply_policy(&admin, &policy(1, r#""bob", "carol""#))
        .await
        .unwrap();
    // Memberships come from the policy's lists, so a new policy version can take them away
    // (groups given at enrolment cannot be withdrawn yet; see docs/threat-model.md).
    let (bob, carol, dave, erin) = (generate(), generate(), generate(), generate());
    for (name, key) in [
        ("bob", &bob),
        ("carol", &carol),
        ("dave", &dave),
        ("erin", &erin),
    ] {
        engine
            .enrol(&admin, name, public_key(key), [])
            .await
            .unwrap();
    }
    Log {
        engine,
        log_key,
        broker,
        admin,
        bob,
        carol,
        dave,
        erin,
    }
}

impl Log {
    /// dave asks for 10 minutes; two approvals are needed.
    async fn request(&mut self) -> (RequestId, String) {
        let dave = Actor::new("dave", self.dave.clone());
        let id = self
            .engine
            .request(
                &dave,
                NewRequest {
                    target: "db".into(),
                    role: None,
                    duration: Span::from_secs(600),
                    reason: "maintenance".into(),
                    ticket: None,
                    break_glass: false,
                    extends: None,
                    credential: None,
                },
            )
            .await
            .unwrap()
            .request;
        let digest = self.engine.state().request(&id).unwrap().digest.clone();
        (id, digest)
    }

    fn signed(&self, actor: &str, key: &SigningKey, body: EventBody) -> Entry {
        let event = Event {
            actor: actor.into(),
            body,
            log: ORIGIN.into(),
            time: self.engine.now(),
            v: EVENT_FORMAT,
        };
        Entry::sign(event, key).unwrap()
    }
}

fn approval(id: RequestId, digest: &str) -> EventBody {
    EventBody::RequestApproved {
        auth: None,
        comment: None,
        request: id,
        request_digest: digest.into(),
    }
}

/// Writes `forged` behind the engine's back with a checkpoint signed by the real log key, then
/// checks that the engine refuses it and that offline verification flags the first forged
/// entry, both naming `why`.
async fn refused_and_flagged(db: &Path, log: &mut Log, forged: &[Entry], why: &str) {
    let size = log.engine.size();
    let mut bundle_entries = log.engine.entries(0, size).await.unwrap();
    let signer = NoteSigner::new(ORIGIN, log.log_key.clone()).unwrap();
    let (new_size, note) = support::checkpoint_over(&log.engine, forged, &signer, ORIGIN).await;
    let bytes: Vec<&[u8]> = forged.iter().map(Entry::bytes).collect();
    support::raw_insert_all(db, size, &bytes, Some((new_size, note.clone()))).await;

    match log.engine.tick().await {
        Err(EngineError::Violation(v)) => {
            let message = v.to_string();
            assert!(
                message.contains(why),
                "the engine names the rule ({why}): {message}"
            );
        }
        other => panic!("{why}: the engine must refuse the forged entries, got {other:?}"),
    }

    bundle_entries.extend(forged.iter().map(|e| e.bytes().to_vec()));
    let mut bundle = Vec::new();
    write_bundle(
        &mut bundle,
        ORIGIN,
        &signer.verifier().vkey(),
        &bundle_entries,
        new_size,
        &note,
    )
    .unwrap();
    match verify_bundle(&bundle, &VerifyOptions::default()) {
        Err(BundleError::Violation(v)) => {
            assert!(
                v.to_string().contains(why),
                "verify names the rule ({why}): {v}"
            );
            let first_forged = size + forged.len() as u64 - 1;
            assert!(
                v.index() >= size && v.index() <= first_forged,
                "verify names a forged entry ({}), not an earlier one",
                v.index()
            );
        }
        other => panic!("{why}: verify must flag the forgery, got {other:?}"),
    }
}

#[tokio::test]
async fn an_approval_signed_with_another_key_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let (id, digest) = log.request().await;
    // erin (no approver) signs an approval in bob's name.
    let forged = log.signed("bob", &log.erin.clone(), approval(id, &digest));
    refused_and_flagged(&db, &mut log, &[forged], "bob's enrolled key").await;
}

#[tokio::test]
async fn an_approval_by_a_removed_approver_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let (id, digest) = log.request().await;
    let policy_v2 = policy(2, r#""bob""#);
    log.engine
        .apply_policy(&log.admin, &policy_v2)
        .await
        .unwrap();
    // The engine refuses carol's approval itself…
    let carol = Actor::new("carol", log.carol.clone());
    let err = log.engine.approve(&carol, &id, None).await.unwrap_err();
    assert!(err.to_string().contains("not an approver"), "{err}");
    // …and a signed one written behind its back.
    let forged = log.signed("carol", &log.carol.clone(), approval(id, &digest));
    refused_and_flagged(&db, &mut log, &[forged], "not an approver").await;
}

#[tokio::test]
async fn an_approval_replayed_onto_another_request_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let (first, first_digest) = log.request().await;
    let bob = Actor::new("bob", log.bob.clone());
    log.engine.approve(&bob, &first, None).await.unwrap();
    let (second, _) = log.request().await;
    // bob's approval of the first request, re-pointed at the second.
    let forged = log.signed("bob", &log.bob.clone(), approval(second, &first_digest));
    refused_and_flagged(&db, &mut log, &[forged], "different version").await;
}

#[tokio::test]
async fn a_grant_longer_than_the_approved_duration_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let (id, digest) = log.request().await;
    let bob = Actor::new("bob", log.bob.clone());
    log.engine.approve(&bob, &id, None).await.unwrap();
    // carol's genuine second approval, then the broker key granting an hour instead of ten
    // minutes.
    let approved = log.signed("carol", &log.carol.clone(), approval(id, &digest));
    let now = log.engine.now();
    let grant = log.signed(
        "broker",
        &log.broker.clone(),
        EventBody::AccessGranted {
            deadline: now.checked_add(Span::from_secs(3600)).unwrap(),
            enforced_by_target: false,
            granted_at: now,
            issued: None,
            request: id,
        },
    );
    refused_and_flagged(&db, &mut log, &[approved, grant], "deadline").await;
}

#[tokio::test]
async fn a_self_approval_under_another_name_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    let (id, digest) = log.request().await;
    // dave's key cannot be enrolled under a second name…
    let err = log
        .engine
        .enrol(
            &log.admin,
            "dave2",
            public_key(&log.dave),
            ["sre".to_owned()],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already belongs to identity"),
        "{err}"
    );
    // …and his own approval under his name is a self-approval.
    let dave = Actor::new("dave", log.dave.clone());
    let err = log.engine.approve(&dave, &id, None).await.unwrap_err();
    assert!(err.to_string().contains("own request"), "{err}");
    // Written behind the engine's back under an unenrolled name with his key:
    let forged = log.signed("dave2", &log.dave.clone(), approval(id, &digest));
    refused_and_flagged(&db, &mut log, &[forged], "not enrolled").await;
}

#[tokio::test]
async fn an_approval_by_a_revoked_approver_is_refused_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let mut log = new_log(&db).await;
    // frank is an approver by enrolment group, which no policy change can take away…
    let frank = generate();
    log.engine
        .enrol(&log.admin, "frank", public_key(&frank), ["sre".to_owned()])
        .await
        .unwrap();
    let (id, digest) = log.request().await;
    // …so he is revoked.
    log.engine
        .revoke_identity(&log.admin, "frank", "left the company".into())
        .await
        .unwrap();
    assert!(!log.engine.state().in_group("frank", "sre"));
    let err = log
        .engine
        .approve(&Actor::new("frank", frank.clone()), &id, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    let forged = log.signed("frank", &frank, approval(id, &digest));
    refused_and_flagged(&db, &mut log, &[forged], "revoked").await;
}
