//! Per-request evidence packages: one request's chain (its extensions too), the decisions with
//! their signers' enrolments, the grant and its end, each entry proven in the log by an inclusion
//! proof against the signed checkpoint. The package verifies with nothing else, holds nothing
//! about unrelated requests, and fails on any change.

use std::sync::Arc;

use breakglass_core::{RequestId, Span, Status, SystemClock};
use breakglass_engine::{generate, Actor, Engine, EngineError, NewRequest, SystemKeys};
use breakglass_ledger::{verify_evidence, NoteSigner, VerifyOptions};
use breakglass_store::Store;

const POLICY: &str = r#"
version = 1
[groups]
admin = ["admin"]
engineers = ["dana", "erin"]
sre = ["bob", "carol"]
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = { groups = ["sre"], quorum = 2 }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
[targets.wiki]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
requesters = ["engineers"]
approvers = { groups = ["sre"], quorum = 1 }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

fn request(target: &str, extends: Option<RequestId>) -> NewRequest {
    NewRequest {
        target: target.into(),
        role: None,
        duration: Span::parse("20m").expect("a duration"),
        reason: "disk full on db-1".into(),
        ticket: Some("INC-7".into()),
        break_glass: false,
        extends,
        credential: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_evidence_verifies_alone_holds_only_its_chain_and_fails_on_any_change() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("log.db").display().to_string())
        .await
        .expect("store");
    let keys = SystemKeys {
        log: NoteSigner::new("evidence.test/log", generate()).expect("log key"),
        broker: generate(),
    };
    let log_key = keys.log.verifier();
    let admin = Actor::new("admin", generate());
    let mut engine = Engine::create(store, Arc::new(SystemClock), keys, &admin)
        .await
        .expect("log created");
    engine.apply_policy(&admin, POLICY).await.expect("policy");
    let [dana, erin, bob, carol] =
        ["dana", "erin", "bob", "carol"].map(|n| Actor::new(n, generate()));
    for who in [&dana, &erin, &bob, &carol] {
        engine
            .enrol(&admin, who.name(), who.public_key(), [])
            .await
            .expect("enrolled");
    }

    // dana's request, approved by two, granted, extended (approved again), then revoked.
    let first = engine
        .request(&dana, request("db", None))
        .await
        .expect("requested")
        .request;
    engine.approve(&bob, &first, None).await.expect("bob");
    let out = engine.approve(&carol, &first, None).await.expect("carol");
    assert_eq!(out.state, Status::Active, "two approvals grant it");
    let second = engine
        .request(&dana, request("db", Some(first)))
        .await
        .expect("an extension")
        .request;
    engine.approve(&bob, &second, None).await.expect("bob");
    engine.approve(&carol, &second, None).await.expect("carol");
    engine
        .revoke(&bob, &second, Some("done".into()))
        .await
        .expect("revoked");
    // Something unrelated: erin's wiki access.
    let other = engine
        .request(&erin, request("wiki", None))
        .await
        .expect("requested")
        .request;
    engine.approve(&bob, &other, None).await.expect("approved");

    let (package, report) = engine.evidence(&first).await.expect("the evidence");
    assert_eq!(report.request.id, first);
    assert_eq!(report.log_size, engine.size());
    assert!(
        report.entries < engine.size(),
        "only what the request needs: {} of {} entries",
        report.entries,
        engine.size()
    );
    let text = String::from_utf8(package.clone()).expect("text");
    assert!(text.contains(&second.to_string()), "its extension is in it");
    assert!(
        !text.contains(&other.to_string()) && !text.contains("\"name\":\"erin\""),
        "nothing about erin's unrelated request"
    );

    // An auditor verifies it with nothing else (pinning the log key they were given).
    let pinned = VerifyOptions {
        log_key: Some(log_key.clone()),
        earlier_checkpoint: None,
    };
    let checked = verify_evidence(&package, &pinned).expect("it verifies alone");
    let r = checked.request;
    assert_eq!(r.requester, "dana");
    assert_eq!(
        r.status,
        engine.state().request(&first).expect("held").status,
        "the state the log holds"
    );
    let approvers: Vec<&str> = r.decisions.iter().map(|d| d.by.as_str()).collect();
    assert_eq!(approvers, ["bob", "carol"]);
    assert!(r.deadline.is_some() && r.granted_at.is_some());
    let chained = verify_evidence(
        &engine.evidence(&second).await.expect("the extension's").0,
        &pinned,
    )
    .expect("verifies");
    assert_eq!(chained.request.status, Status::Revoked);

    // Another log key pinned: refused.
    let stranger = NoteSigner::new("evidence.test/log", generate()).expect("a key");
    let wrong = VerifyOptions {
        log_key: Some(stranger.verifier()),
        earlier_checkpoint: None,
    };
    assert!(verify_evidence(&package, &wrong).is_err());

    // Every single-bit change, every byte removed, and every line dropped: refused.
    for i in 0..package.len() {
        let mut flipped = package.clone();
        flipped[i] ^= 0x01;
        assert!(
            verify_evidence(&flipped, &pinned).is_err(),
            "a flipped bit at byte {i} of {} verified",
            package.len()
        );
        let mut cut = package.clone();
        cut.remove(i);
        assert!(
            verify_evidence(&cut, &pinned).is_err(),
            "byte {i} removed verified"
        );
    }
    let lines: Vec<&[u8]> = package.split_inclusive(|b| *b == b'\n').collect();
    for skip in 0..lines.len() {
        let fewer: Vec<u8> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        assert!(
            verify_evidence(&fewer, &pinned).is_err(),
            "line {skip} dropped verified"
        );
    }

    // A request the log does not hold.
    let unknown = RequestId::from_random([9; 10]);
    assert!(matches!(
        engine.evidence(&unknown).await,
        Err(EngineError::Refused(_))
    ));
}
