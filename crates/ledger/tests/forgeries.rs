//! Forged logs: every entry carries a valid signature by an enrolled key and the checkpoint is
//! genuine, but an entry breaks a rule of the lifecycle. Verification must replay the rules and
//! fail as `Violation::Rule` naming exactly that entry, never accept the log.
//!
//! Also: an entry whose signature is valid but whose bytes are not the canonical encoding (or
//! whose signature is encoded or malleated differently) fails as `Violation::Entry`.

mod support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use breakglass_core::{
    AlertKind, Event, EventBody, Refusal, RequestId, Span, Status, Timestamp, EVENT_FORMAT,
};
use breakglass_ledger::{
    to_canonical_value, verify_bundle, verify_bundle_stream_in_chunks, BundleError, Entry,
    EntryError, VerifyOptions, Violation,
};
use support::{
    derive_key, plus_millis, plus_secs, record, sign, Keys, Log, ADMIN, BOB, BROKER, CAROL, DAVE,
    GENESIS_EVENTS, ORIGIN, PROD_DB, PROD_DB_BG_MAX, PROD_DB_MAX, WIKI, WIKI_MAX,
};

/// Genesis only: log_created, the policy, bob, carol and dave enrolled.
fn base() -> Log {
    Log::genesis(Keys::new(42))
}

fn id(n: u8) -> RequestId {
    RequestId::from_random([n; 10])
}

/// `by` asks for `target` for `secs` (valid).
fn request(log: &mut Log, n: u8, by: &str, target: &str, secs: u64) -> RequestId {
    let id = id(n);
    log.push(by, Log::request_body(&id, target, secs, false));
    id
}

/// `by` approves `id` (valid).
fn approve(log: &mut Log, id: &RequestId, by: &str) -> usize {
    let body = log.approve_body(id);
    log.push(by, body)
}

/// dave's prod-db request for `secs`, approved by bob and carol (valid).
fn approved_request(log: &mut Log, secs: u64) -> RequestId {
    let id = request(log, 1, DAVE, PROD_DB, secs);
    approve(log, &id, BOB);
    approve(log, &id, CAROL);
    id
}

/// Signs `event` with its actor's own key and appends it without checking any rule.
fn forge_event(log: &mut Log, event: Event) -> usize {
    let key = log.keys.of(&event.actor).clone();
    log.push_unchecked(event, &key)
}

/// Forges an event by `actor` one second after the last one.
fn forge(log: &mut Log, actor: &str, body: EventBody) -> usize {
    let event = log.next_event(actor, body);
    forge_event(log, event)
}

/// Forges an event by `actor` at `time`.
fn forge_at(log: &mut Log, time: Timestamp, actor: &str, body: EventBody) -> usize {
    let event = log.event_at(time, actor, body);
    forge_event(log, event)
}

/// The log's bundle must fail as a rule violation at `index`; returns the refusal. Streamed a
/// chunk of one entry at a time — ended requests retired before each next event — it must fail
/// with the very same violation.
fn rule_violation(log: &Log, index: usize, why: &str) -> Refusal {
    let bundle = log.bundle();
    let streamed = verify_bundle_stream_in_chunks(bundle.as_slice(), &VerifyOptions::default(), 1);
    let whole = verify_bundle(&bundle, &VerifyOptions::default());
    assert_eq!(
        format!("{streamed:?}"),
        format!("{whole:?}"),
        "{why}: streamed and in memory, the same verdict"
    );
    match whole {
        Err(BundleError::Violation(Violation::Rule {
            index: got,
            refusal,
            kind,
            actor,
        })) => {
            assert_eq!(
                got, index as u64,
                "{why}: the violation must name entry {index}, not {got} ({kind} by {actor}: {refusal})"
            );
            *refusal
        }
        Err(other) => panic!("{why}: expected a rule violation at entry {index}, got {other:?}"),
        Ok(report) => panic!("{why}: a forged log verified: {report:?}"),
    }
}

/// The log's bundle must verify (the control for each forgery).
fn verifies(log: &Log) {
    let bundle = log.bundle();
    if let Err(e) = verify_bundle(&bundle, &VerifyOptions::default()) {
        panic!("the unforged log must verify: {e}");
    }
    if let Err(e) = verify_bundle_stream_in_chunks(bundle.as_slice(), &VerifyOptions::default(), 1)
    {
        panic!("the unforged log must verify as a stream: {e}");
    }
}

#[test]
fn self_approval_is_a_violation() {
    let mut log = base();
    // bob is in sre, so he may request prod-db, but the requester never counts towards quorum.
    let id = request(&mut log, 1, BOB, PROD_DB, 3600);
    approve(&mut log, &id, CAROL);
    verifies(&log);
    let body = log.approve_body(&id);
    let bad = forge(&mut log, BOB, body);
    let refusal = rule_violation(&log, bad, "bob approving his own request");
    assert!(
        matches!(refusal, Refusal::SelfDecision { ref actor, .. } if actor == BOB),
        "{refusal:?}"
    );
}

#[test]
fn approval_by_a_non_member_is_a_violation() {
    for (approver, target) in [(DAVE, WIKI), (ADMIN, PROD_DB), (BROKER, PROD_DB)] {
        let mut log = base();
        let id = request(&mut log, 1, BOB, target, 600);
        let body = log.approve_body(&id);
        let bad = forge(&mut log, approver, body);
        let refusal = rule_violation(
            &log,
            bad,
            &format!("{approver} is not in sre, the approver group of {target}"),
        );
        assert!(
            matches!(refusal, Refusal::NotApprover { ref actor, .. } if actor == approver),
            "{approver}: {refusal:?}"
        );
    }
}

#[test]
fn grant_without_quorum_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    approve(&mut log, &id, BOB);
    verifies(&log);
    let t = plus_secs(log.now, 1);
    let bad = forge_at(&mut log, t, BROKER, Log::grant_body(&id, t, 3600));
    // A later entry that would be fine after a real grant: the violation must still name the
    // grant, the first entry that breaks a rule.
    let later = plus_secs(t, 3600);
    forge_at(
        &mut log,
        later,
        BROKER,
        EventBody::AccessExpired { request: id },
    );
    let refusal = rule_violation(&log, bad, "one approval of a quorum of two, then a grant");
    assert!(
        matches!(
            refusal,
            Refusal::WrongState {
                status: Status::Pending,
                ..
            }
        ),
        "{refusal:?}"
    );
}

#[test]
fn grant_exceeding_the_approved_duration_is_a_violation() {
    for extra_millis in [1, 1000, 3_600_000] {
        let mut log = base();
        let id = approved_request(&mut log, 3600);
        let t = plus_secs(log.now, 1);
        let mut control = log.clone();
        control.push_at(t, BROKER, Log::grant_body(&id, t, 3600));
        verifies(&control);

        let deadline = plus_millis(plus_secs(t, 3600), extra_millis);
        let body = EventBody::AccessGranted {
            request: id,
            granted_at: t,
            issued: None,
            deadline,
            enforced_by_target: true,
        };
        let bad = forge_at(&mut log, t, BROKER, body);
        let refusal = rule_violation(
            &log,
            bad,
            &format!("a deadline {extra_millis} ms past granted_at + the approved 1h"),
        );
        assert!(
            matches!(refusal, Refusal::WrongDeadline { stated, .. } if stated == deadline),
            "{refusal:?}"
        );
    }
}

#[test]
fn grant_starting_before_its_approval_is_a_violation() {
    // Backdating granted_at would stretch the window past what was approved.
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let requested_at = log.now;
    approve(&mut log, &id, BOB);
    approve(&mut log, &id, CAROL);
    let t = plus_secs(log.now, 1);
    let bad = forge_at(
        &mut log,
        t,
        BROKER,
        Log::grant_body(&id, requested_at, 3600),
    );
    let refusal = rule_violation(&log, bad, "granted_at before the approval");
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");
}

#[test]
fn request_over_the_target_cap_is_a_violation() {
    let cases = [
        (PROD_DB, PROD_DB_MAX, false, "2h1s on prod-db (cap 2h)"),
        (WIKI, WIKI_MAX, false, "1h1s on wiki (cap 1h)"),
        (
            PROD_DB,
            PROD_DB_BG_MAX,
            true,
            "30m1s break-glass on prod-db (cap 30m)",
        ),
    ];
    for (target, cap, break_glass, why) in cases {
        let mut log = base();
        let mut control = log.clone();
        control.push(DAVE, Log::request_body(&id(1), target, cap, break_glass));
        verifies(&control);

        let secs = cap + 1;
        let body = Log::request_body(&id(1), target, secs, break_glass);
        let bad = forge(&mut log, DAVE, body);
        let refusal = rule_violation(&log, bad, why);
        assert!(
            matches!(
                refusal,
                Refusal::DurationOverCap { requested, break_glass: bg, .. }
                    if requested == Span::from_secs(secs) && bg == break_glass
            ),
            "{why}: {refusal:?}"
        );
    }
}

#[test]
fn break_glass_where_not_allowed_is_a_violation() {
    let mut log = base();
    let body = Log::request_body(&id(1), WIKI, 600, true);
    let bad = forge(&mut log, DAVE, body);
    let refusal = rule_violation(&log, bad, "wiki has no break_glass rule");
    assert!(
        matches!(refusal, Refusal::BreakGlassNotAllowed { .. }),
        "{refusal:?}"
    );
}

#[test]
fn replayed_approval_re_signed_later_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    approve(&mut log, &id, BOB);
    // bob's approval again, a second later: a fresh signature over a new event, but the same
    // approver cannot count twice towards the quorum.
    let body = log.approve_body(&id);
    let bad = forge(&mut log, BOB, body);
    let t = plus_secs(log.now, 1);
    forge_at(&mut log, t, BROKER, Log::grant_body(&id, t, 3600));
    let refusal = rule_violation(&log, bad, "bob approving twice");
    assert!(
        matches!(refusal, Refusal::AlreadyDecided { ref actor, .. } if actor == BOB),
        "{refusal:?}"
    );
}

#[test]
fn replayed_approval_entry_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let first = approve(&mut log, &id, BOB);
    // The very same entry bytes a second time (Ed25519 is deterministic, so re-signing the same
    // event gives them too).
    let copy = log.entries[first].clone();
    assert_eq!(
        sign(copy.event().clone(), &log.keys.bob).bytes(),
        copy.bytes()
    );
    let bad = log.push_entry_unchecked(copy);
    let refusal = rule_violation(&log, bad, "the same approval entry twice");
    assert!(
        matches!(refusal, Refusal::AlreadyDecided { ref actor, .. } if actor == BOB),
        "{refusal:?}"
    );
}

#[test]
fn approval_of_a_different_version_of_the_request_is_a_violation() {
    // The approvers saw (and signed the digest of) a 30-minute request; the log holds a 2-hour
    // request with the same id: its entry, and so its digest, differs.
    let mut log = base();
    let rid = id(1);
    let seen = log.next_event(DAVE, Log::request_body(&rid, PROD_DB, 1800, false));
    let seen_digest = breakglass_core::hex(sign(seen.clone(), &log.keys.dave).leaf_hash());
    let mut stretched = seen.clone();
    if let EventBody::AccessRequested { duration, .. } = &mut stretched.body {
        *duration = Span::from_secs(2 * 3600);
    }
    let dave = log.keys.dave.clone();
    log.push_event(stretched, &dave);
    assert_ne!(log.digest(&rid), seen_digest);

    let approval = |digest: &str| EventBody::RequestApproved {
        auth: None,
        request: rid,
        request_digest: digest.to_owned(),
        comment: None,
    };
    let bad = forge(&mut log, BOB, approval(&seen_digest));
    let next = plus_secs(log.now, 1);
    forge_at(&mut log, next, CAROL, approval(&seen_digest));
    let refusal = rule_violation(&log, bad, "an approval bound to the 30m request");
    assert!(
        matches!(refusal, Refusal::DigestMismatch(ref r) if r == &rid),
        "{refusal:?}"
    );
}

#[test]
fn event_signed_with_another_identitys_key_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    approve(&mut log, &id, BOB);
    // Bob signs carol's approval: the signature is valid, but not by carol's key.
    let body = log.approve_body(&id);
    let event = log.next_event(CAROL, body);
    let bob = log.keys.bob.clone();
    let bad = log.push_unchecked(event, &bob);
    let refusal = rule_violation(&log, bad, "carol's approval signed with bob's key");
    assert!(
        matches!(refusal, Refusal::WrongKey { ref actor } if actor == CAROL),
        "{refusal:?}"
    );
}

#[test]
fn event_signed_by_an_unenrolled_key_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let body = log.approve_body(&id);
    let event = log.next_event(BOB, body);
    let bad = log.push_unchecked(event, &derive_key(7, "mallory"));
    let refusal = rule_violation(&log, bad, "bob's approval signed by a stranger");
    assert!(
        matches!(refusal, Refusal::WrongKey { ref actor } if actor == BOB),
        "{refusal:?}"
    );
}

#[test]
fn expiry_before_the_deadline_is_a_violation() {
    let mut log = base();
    let id = approved_request(&mut log, 3600);
    let t = plus_secs(log.now, 1);
    log.push_at(t, BROKER, Log::grant_body(&id, t, 3600));
    let deadline = plus_secs(t, 3600);
    let mut control = log.clone();
    control.push_at(deadline, BROKER, EventBody::AccessExpired { request: id });
    verifies(&control);

    let early = plus_millis(deadline, -1);
    let bad = forge_at(
        &mut log,
        early,
        BROKER,
        EventBody::AccessExpired { request: id },
    );
    let refusal = rule_violation(&log, bad, "expired 1 ms before the deadline");
    assert!(
        matches!(refusal, Refusal::TooEarly { what: "expire", at, .. } if at == deadline),
        "{refusal:?}"
    );
}

#[test]
fn lapse_before_the_request_ttl_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let lapses_at = plus_secs(log.now, 30 * 60);
    let bad = forge_at(
        &mut log,
        plus_millis(lapses_at, -1),
        BROKER,
        EventBody::RequestLapsed { request: id },
    );
    let refusal = rule_violation(&log, bad, "lapsed 1 ms before the 30m TTL");
    assert!(
        matches!(refusal, Refusal::TooEarly { what: "lapse", .. }),
        "{refusal:?}"
    );
}

#[test]
fn event_time_going_backwards_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let last = log.now;
    let body = log.approve_body(&id);
    let bad = forge_at(&mut log, plus_millis(last, -1), BOB, body);
    let refusal = rule_violation(&log, bad, "an approval 1 ms before the request");
    assert!(
        matches!(refusal, Refusal::TimeWentBackwards { time, last: l } if l == last && time < last),
        "{refusal:?}"
    );
}

#[test]
fn event_naming_another_log_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let body = log.approve_body(&id);
    let mut event = log.next_event(BOB, body);
    event.log = "other.example/log".to_owned();
    let bad = forge_event(&mut log, event);
    let refusal = rule_violation(&log, bad, "an approval signed for another log");
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");
}

fn log_created(keys: &Keys, time: Timestamp) -> Event {
    Event {
        v: EVENT_FORMAT,
        log: ORIGIN.to_owned(),
        time,
        actor: ADMIN.to_owned(),
        body: EventBody::LogCreated {
            origin: ORIGIN.to_owned(),
            log_key: keys.vkey(),
            admin: record(ADMIN, &keys.admin, &["admin"]),
            broker: record(BROKER, &keys.broker, &[]),
        },
    }
}

#[test]
fn log_created_that_is_not_first_is_a_violation() {
    // A second log_created (same admin, same log key) later in the log.
    let mut log = base();
    request(&mut log, 1, DAVE, PROD_DB, 3600);
    let again = log_created(&log.keys, plus_secs(log.now, 1));
    let bad = forge_event(&mut log, again);
    assert_eq!(bad, GENESIS_EVENTS + 1);
    let refusal = rule_violation(&log, bad, "a second log_created");
    assert!(matches!(refusal, Refusal::Malformed(_)), "{refusal:?}");

    // A log whose first entry is not log_created, with log_created second.
    let keys = Keys::new(42);
    let enrol = Event {
        v: EVENT_FORMAT,
        log: ORIGIN.to_owned(),
        time: support::at(0),
        actor: ADMIN.to_owned(),
        body: EventBody::IdentityEnrolled {
            identity: record(BOB, &keys.bob, &[]),
        },
    };
    let created = log_created(&keys, support::at(1000));
    let bundle = support::bundle_of_events(
        &keys.note_signer(),
        &[(enrol, &keys.admin), (created, &keys.admin)],
    );
    match verify_bundle(&bundle, &VerifyOptions::default()) {
        Err(BundleError::Violation(Violation::Rule { index: 0, .. })) => {}
        other => panic!("a log that does not start with log_created: {other:?}"),
    }
}

#[test]
fn grant_by_someone_other_than_the_broker_is_a_violation() {
    let mut log = base();
    let id = approved_request(&mut log, 3600);
    let t = plus_secs(log.now, 1);
    let bad = forge_at(&mut log, t, ADMIN, Log::grant_body(&id, t, 3600));
    let refusal = rule_violation(&log, bad, "the admin recording a grant");
    assert!(
        matches!(refusal, Refusal::NotPermitted { .. }),
        "{refusal:?}"
    );
}

#[test]
fn a_history_refused_alert_is_a_members_own_about_no_request_and_every_other_alert_the_brokers() {
    let mut log = base();
    let rid = request(&mut log, 1, DAVE, WIKI, 600);
    let finding = |request: Option<RequestId>| EventBody::Alert {
        kind: AlertKind::HistoryRefused,
        message: "the log shrank from 12 to 9 entries".to_owned(),
        request,
    };
    // A member (any enrolled identity) records its own finding.
    log.push(DAVE, finding(None));
    verifies(&log);
    // The broker, whose log it is, may not; nor may a finding name a request.
    for (actor, body, why) in [
        (
            BROKER,
            finding(None),
            "the broker signing a member's finding",
        ),
        (DAVE, finding(Some(rid)), "a finding about a request"),
        (
            DAVE,
            EventBody::Alert {
                kind: AlertKind::EntryRefused,
                message: "entry 3 removed".to_owned(),
                request: None,
            },
            "a member signing the broker's kind of alert",
        ),
    ] {
        let mut forged = log.clone();
        let bad = forge(&mut forged, actor, body);
        let refusal = rule_violation(&forged, bad, why);
        assert!(
            matches!(refusal, Refusal::NotPermitted { .. }),
            "{why}: {refusal:?}"
        );
    }
}

#[test]
fn approval_after_the_request_lapsed_is_a_violation() {
    let mut log = base();
    let id = request(&mut log, 1, DAVE, WIKI, 600);
    let lapses_at = plus_secs(log.now, 15 * 60);
    let body = log.approve_body(&id);
    let bad = forge_at(&mut log, lapses_at, BOB, body);
    let refusal = rule_violation(&log, bad, "an approval at the 15m TTL");
    assert!(matches!(refusal, Refusal::TooLate { .. }), "{refusal:?}");
}

#[test]
fn review_by_the_break_glass_requester_is_a_violation() {
    let mut log = base();
    let rid = id(1);
    log.push(DAVE, Log::request_body(&rid, PROD_DB, 600, true));
    log.push(
        BROKER,
        EventBody::Alert {
            request: Some(rid),
            kind: AlertKind::BreakGlassActivated,
            message: "break-glass".to_owned(),
        },
    );
    verifies(&log);
    let body = EventBody::ReviewRecorded {
        request: rid,
        comment: "I reviewed myself".to_owned(),
    };
    let bad = forge(&mut log, DAVE, body);
    let refusal = rule_violation(&log, bad, "dave reviewing his own break-glass");
    assert!(
        matches!(refusal, Refusal::SelfDecision { .. }),
        "{refusal:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Validly signed, but not the one encoding.

/// Replaces entry `index`'s bytes with `bytes` (the checkpoint covers the new bytes, so only the
/// entry itself can be at fault) and expects `Violation::Entry` at `index`.
fn entry_violation(log: &Log, index: usize, bytes: Vec<u8>, why: &str) -> EntryError {
    let mut lines: Vec<Vec<u8>> = log.entries.iter().map(|e| e.bytes().to_vec()).collect();
    assert_ne!(lines[index], bytes, "{why}: the bytes must change");
    lines[index] = bytes;
    let bundle = support::bundle_of_lines(&log.keys.note_signer(), &lines);
    match verify_bundle(&bundle, &VerifyOptions::default()) {
        Err(BundleError::Violation(Violation::Entry { index: got, error })) => {
            assert_eq!(got, index as u64, "{why}: wrong entry named ({error})");
            error
        }
        other => panic!("{why}: expected an entry violation at {index}, got {other:?}"),
    }
}

#[test]
fn non_canonical_entry_bytes_are_a_violation() {
    let mut log = base();
    let rid = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let i = approve(&mut log, &rid, BOB);
    approve(&mut log, &rid, CAROL);
    verifies(&log);
    let canonical = String::from_utf8(log.entries[i].bytes().to_vec()).expect("utf-8");
    let value: serde_json::Value = serde_json::from_str(&canonical).expect("json");
    let field = |k: &str| serde_json::to_string(&value[k]).expect("json");

    let variants = [
        (
            "a space after the first colon",
            canonical.replacen(':', ": ", 1),
        ),
        ("a trailing space", format!("{canonical} ")),
        ("a leading space", format!(" {canonical}")),
        (
            "keys out of order",
            format!(
                "{{\"sig\":{},\"key\":{},\"event\":{}}}",
                field("sig"),
                field("key"),
                field("event")
            ),
        ),
        (
            "an escaped letter in the actor",
            canonical.replacen("\"actor\":\"bob\"", "\"actor\":\"\\u0062ob\"", 1),
        ),
        (
            "an escaped slash in the log origin",
            canonical.replacen("test.breakglass/props", "test.breakglass\\/props", 1),
        ),
        (
            "a non-minimal number",
            canonical.replacen("\"v\":1", "\"v\":1.0", 1),
        ),
        (
            "a duplicated key",
            canonical.replacen("{\"event\":", "{\"event\":{},\"event\":", 1),
        ),
        (
            "an absent optional field",
            canonical.replacen("\"comment\":null,", "", 1),
        ),
    ];
    for (why, bytes) in variants {
        // The signature still covers the same event: only the encoding differs (1.0 reads
        // back as a float and an absent optional field as none, so those two are the same
        // event under the entry schema, not as plain JSON values).
        let parsed = serde_json::from_str::<serde_json::Value>(&bytes);
        let same_json = !why.contains("number") && !why.contains("absent");
        if let (Ok(v), true) = (parsed, same_json) {
            assert_eq!(
                v["event"], value["event"],
                "{why}: the same event is encoded"
            );
        }
        let error = entry_violation(&log, i, bytes.into_bytes(), why);
        assert!(
            matches!(error, EntryError::Malformed(_)),
            "{why}: {error:?}"
        );
    }
}

#[test]
fn second_encoding_of_a_public_key_is_a_violation() {
    let mut log = base();
    let rid = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let i = approve(&mut log, &rid, BOB);
    let key = log.entries[i].key().to_base64();
    assert!(
        key.ends_with('='),
        "32 bytes encode with one padding character"
    );
    // The last data character carries 4 bits of the key and 2 bits that must be zero.
    let last = key.len() - 2;
    let pos = ALPHABET
        .iter()
        .position(|c| *c == key.as_bytes()[last])
        .expect("base64");
    let mut trailing = key.clone().into_bytes();
    trailing[last] = ALPHABET[pos ^ 1];
    let mut value: serde_json::Value =
        serde_json::from_slice(log.entries[i].bytes()).expect("json");
    value["key"] = serde_json::Value::String(String::from_utf8(trailing).expect("ascii"));
    let bytes = to_canonical_value(&value).expect("canonical");
    let error = entry_violation(&log, i, bytes, "non-zero trailing bits in the key");
    assert!(matches!(error, EntryError::Malformed(_)), "{error:?}");
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The entry with its `sig` field replaced by `sig` (canonically encoded otherwise).
fn with_sig(entry: &Entry, sig: String) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(entry.bytes()).expect("json");
    value["sig"] = serde_json::Value::String(sig);
    to_canonical_value(&value).expect("canonical")
}

#[test]
fn second_encoding_of_a_signature_is_a_violation() {
    let mut log = base();
    let rid = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let i = approve(&mut log, &rid, BOB);
    let sig = STANDARD.encode(log.entries[i].signature().to_bytes());
    assert!(
        sig.ends_with("=="),
        "64 bytes encode with two padding characters"
    );
    // The last data character carries 2 bits of the signature and 4 bits that must be zero:
    // setting one of those gives the same 64 bytes under a lax decoder.
    let last = sig.len() - 3;
    let pos = ALPHABET
        .iter()
        .position(|c| *c == sig.as_bytes()[last])
        .expect("base64");
    let mut trailing = sig.clone().into_bytes();
    trailing[last] = ALPHABET[pos ^ 1];
    let trailing = String::from_utf8(trailing).expect("ascii");
    let unpadded = sig.trim_end_matches('=').to_owned();
    for (why, s) in [
        ("non-zero trailing bits", trailing),
        ("missing padding", unpadded),
    ] {
        let error = entry_violation(&log, i, with_sig(&log.entries[i], s), why);
        assert!(
            matches!(error, EntryError::Malformed(_)),
            "{why}: {error:?}"
        );
    }
}

#[test]
fn malleated_signature_is_a_violation() {
    // (R, S + ℓ) verifies under lax Ed25519 rules; strict verification refuses it.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut log = base();
    let rid = request(&mut log, 1, DAVE, PROD_DB, 3600);
    let i = approve(&mut log, &rid, BOB);
    approve(&mut log, &rid, CAROL);
    let mut sig = log.entries[i].signature().to_bytes();
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(ELL) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + ℓ < 2^256");
    let bytes = with_sig(&log.entries[i], STANDARD.encode(sig));
    let decoded = Entry::decode(&bytes).expect("the malleated entry is canonical JSON");
    assert_eq!(decoded.event(), log.entries[i].event());
    let error = entry_violation(&log, i, bytes, "S + ℓ");
    assert!(
        matches!(error, EntryError::BadSignature { ref actor, .. } if actor == BOB),
        "{error:?}"
    );
}

#[test]
fn a_request_id_used_again_after_its_request_ended_is_a_violation() {
    // Also once a streaming verifier has retired the ended request to its id and outcome.
    let mut log = base();
    let id = request(&mut log, 7, DAVE, PROD_DB, 600);
    log.push(DAVE, EventBody::RequestCancelled { request: id });
    verifies(&log);
    let bad = forge(&mut log, DAVE, Log::request_body(&id, PROD_DB, 600, false));
    let refusal = rule_violation(&log, bad, "a second request under a used id");
    assert!(matches!(refusal, Refusal::AlreadyExists(_)), "{refusal:?}");

    // An ended request cannot be approved, ended again or extended: refused as ended.
    let mut log = base();
    let id = request(&mut log, 7, DAVE, PROD_DB, 600);
    log.push(DAVE, EventBody::RequestCancelled { request: id });
    let body = log.approve_body(&id);
    let bad = forge(&mut log, BOB, body);
    let refusal = rule_violation(&log, bad, "approving a cancelled request");
    assert!(
        matches!(
            refusal,
            Refusal::WrongState {
                status: Status::Cancelled,
                ..
            }
        ),
        "{refusal:?}"
    );
}
