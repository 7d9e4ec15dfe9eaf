//! The desk, as the desktop app drives it: a first run, a request approved from a second
//! desk on the same directory, the countdown's notices and the tray, expiry, exports verified,
//! and bad input refused with nothing changed. Time is a `ManualClock`.

use std::path::Path;
use std::sync::Arc;

use breakglass_core::Status;
use breakglass_core::{ManualClock, Span, Timestamp};
use breakglass_engine::desk::{
    self, AlertKind, Desk, ExportFormat, ExportPeriod, HistoryFilter, NoticeKind, Notices,
    RequestForm, TraySummary,
};
use breakglass_engine::{Code, KeyStoreKind};

fn start() -> Timestamp {
    Timestamp::parse_lenient("2026-11-24T09:00:00Z").unwrap()
}

fn form(duration_secs: u64, break_glass: bool) -> RequestForm {
    RequestForm {
        target: "demo".into(),
        role: None,
        duration_secs,
        reason: "primary database is down".into(),
        ticket: Some("INC-42".into()),
        break_glass,
        extends: None,
        ssh_public_key: None,
    }
}

/// A first run: `admin` creates the directory and applies the first-run policy; `bob` is
/// enrolled as an approver and opens his own desk on the same directory.
async fn first_run(dir: &Path, clock: &ManualClock) -> (Desk, Desk) {
    let mut admin = Desk::init_with(dir, "admin", KeyStoreKind::File, Arc::new(clock.clone()))
        .await
        .unwrap();
    let status = admin.setup_status();
    assert!(status.initialised && !status.has_policy && status.admin);
    let source = desk::draft_policy("admin", None);
    assert_eq!(
        desk::check_policy(&source),
        vec![],
        "the first-run policy parses"
    );
    let status = admin.apply_policy(&source).await.unwrap();
    assert!(status.has_policy);
    admin
        .enrol_local("bob", &["approvers".to_owned()])
        .await
        .unwrap();
    let mut bob = Desk::open(dir, Arc::new(clock.clone())).await.unwrap();
    bob.act_as("bob").unwrap();
    (admin, bob)
}

#[tokio::test]
async fn a_request_approved_on_another_desk_counts_down_warns_and_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (mut admin, mut bob) = first_run(tmp.path(), &clock).await;

    let o = admin.overview();
    let demo = &o.targets[0];
    assert_eq!(demo.name, "demo");
    assert!(
        !demo.enforces_expiry,
        "the command connector cannot make the target end access itself"
    );
    assert_eq!(demo.max_duration_secs, 3600);
    assert_eq!(demo.break_glass_max_secs, Some(900));
    let mut notices = Notices::new();
    assert!(
        notices.update(&o).is_empty(),
        "the first overview is the baseline"
    );

    let made = admin.request(form(600, false)).await.unwrap();
    assert_eq!(made.request.status, Status::Pending);
    assert!(
        made.request.mine && !made.request.can_decide,
        "nobody decides their own request"
    );
    let id = made.request.id.clone();

    // Bob's desk sees it at its next sync, may decide it, and is notified of it.
    let mut bob_notices = Notices::new();
    bob_notices.update(&bob.overview());
    assert!(bob.sync().await.unwrap().changed);
    let seen = bob.overview();
    let pending = seen.requests.iter().find(|r| r.id == id).unwrap();
    assert!(pending.can_decide && !pending.mine);
    assert_eq!(TraySummary::of(&seen).pending_approvals, 1);
    let told = bob_notices.update(&seen);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].kind, NoticeKind::NewRequest);
    assert!(told[0].body.contains("INC-42"), "{}", told[0].body);

    let approved = bob.approve(&id, Some("go ahead".into())).await.unwrap();
    assert_eq!(approved.request.status, Status::Active);
    assert!(
        approved.credential.is_none(),
        "the command connector hands nothing over"
    );

    // The requester's desk picks the approval up; the notice and the tray follow.
    assert!(admin.sync().await.unwrap().changed);
    let o = admin.overview();
    let grant = o.requests.iter().find(|r| r.id == id).unwrap();
    let deadline = grant.deadline_ms.unwrap();
    assert_eq!(deadline - grant.granted_at_ms.unwrap(), 600_000);
    assert_eq!(grant.approvals[0].by, "bob");
    let told = notices.update(&o);
    assert_eq!(
        told.iter().map(|n| n.kind).collect::<Vec<_>>(),
        vec![NoticeKind::Approved]
    );
    assert!(
        told[0]
            .body
            .starts_with("Approved by bob. Your access to demo"),
        "the approval notice names its approver: {}",
        told[0].body
    );
    let tray = TraySummary::of(&o);
    assert_eq!((tray.active, tray.nearest_deadline_ms), (1, Some(deadline)));
    assert_eq!(tray.short(o.now_ms), "1 · 00:10:00");

    // Five minutes before the deadline one warning, then one at a minute; never twice.
    clock.advance(Span::from_secs(4 * 60));
    assert!(
        notices.update(&admin.overview()).is_empty(),
        "6 min left: no warning yet"
    );
    clock.advance(Span::from_secs(61));
    let told = notices.update(&admin.overview());
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].kind, NoticeKind::ExpiresSoon);
    assert!(told[0].body.contains("00:04:59"), "{}", told[0].body);
    assert!(notices.update(&admin.overview()).is_empty(), "warned once");
    clock.advance(Span::from_secs(4 * 60));
    let told = notices.update(&admin.overview());
    assert_eq!(told.len(), 1, "the one-minute warning");
    assert!(told[0].body.contains("00:00:59"), "{}", told[0].body);

    // At the deadline the scheduler ends it; the requester is told.
    clock.advance(Span::from_secs(60));
    assert!(admin.sync().await.unwrap().changed);
    let o = admin.overview();
    assert_eq!(
        o.requests.iter().find(|r| r.id == id).unwrap().status,
        Status::Expired
    );
    let told = notices.update(&o);
    assert_eq!(
        told.iter().map(|n| n.kind).collect::<Vec<_>>(),
        vec![NoticeKind::Expired]
    );
    assert_eq!(TraySummary::of(&o).active, 0);
    assert_eq!(
        TraySummary::of(&o).line(o.now_ms),
        "Breakglass: no active access"
    );
}

#[tokio::test]
async fn break_glass_alerts_every_approver_and_owes_a_review() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (mut admin, mut bob) = first_run(tmp.path(), &clock).await;
    let mut bob_notices = Notices::new();
    bob_notices.update(&bob.overview());

    let made = admin.request(form(300, true)).await.unwrap();
    assert_eq!(made.request.status, Status::Active, "granted at once");
    let id = made.request.id;
    bob.sync().await.unwrap();
    let o = bob.overview();
    let told = bob_notices.update(&o);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].kind, NoticeKind::BreakGlass);
    assert!(told[0].urgent);
    let kinds: Vec<AlertKind> = o.alerts.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&AlertKind::BreakGlass) && kinds.contains(&AlertKind::ReviewOwed));
    let r = o.requests.iter().find(|r| r.id == id).unwrap();
    assert!(r.can_review && r.can_revoke);

    let err = bob.review(&id, "   ".into()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidInput);
    let reviewed = bob
        .review(&id, "outage INC-42 confirmed".into())
        .await
        .unwrap();
    assert_eq!(
        reviewed.request.review,
        Some(desk::ReviewState::Done),
        "the review is recorded"
    );
    let revoked = bob.revoke(&id, Some("outage over".into())).await.unwrap();
    assert_eq!(revoked.request.status, Status::Revoked);
    admin.sync().await.unwrap();
    assert!(
        admin.overview().alerts.is_empty(),
        "nothing left to alert about"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (mut admin, mut bob) = first_run(tmp.path(), &clock).await;
    let size = admin.engine().size();

    let mut empty_reason = form(600, false);
    empty_reason.reason = " \n ".into();
    let mut too_long = form(600, false);
    too_long.reason = "x".repeat(desk::MAX_REASON_CHARS + 1);
    let mut bad_extends = form(600, false);
    bad_extends.extends = Some("not-an-id".into());
    let mut unknown_target = form(600, false);
    unknown_target.target = "nope".into();
    for (what, f, code) in [
        ("empty reason", empty_reason, Code::InvalidInput),
        ("reason too long", too_long, Code::InvalidInput),
        ("zero duration", form(0, false), Code::InvalidInput),
        ("over the cap", form(3601, false), Code::Refused),
        ("break-glass over its cap", form(901, true), Code::Refused),
        ("malformed extends", bad_extends, Code::InvalidInput),
        ("unknown target", unknown_target, Code::NotFound),
    ] {
        let err = admin.request(f).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
    }
    let made = admin.request(form(600, false)).await.unwrap();
    let size_after_request = admin.engine().size();
    bob.sync().await.unwrap();
    assert_eq!(
        bob.deny(&made.request.id, "".into())
            .await
            .unwrap_err()
            .code(),
        Code::InvalidInput,
        "a denial tells the requester why"
    );
    assert_eq!(
        bob.approve("zzzz", None).await.unwrap_err().code(),
        Code::InvalidInput
    );
    assert_eq!(
        admin
            .approve(&made.request.id, None)
            .await
            .unwrap_err()
            .code(),
        Code::Refused,
        "never one's own"
    );
    assert_eq!(
        admin
            .apply_policy("version = 1\n[targets.x]\n")
            .await
            .unwrap_err()
            .code(),
        Code::InvalidInput
    );
    assert!(bob
        .apply_policy(&desk::draft_policy("admin", None))
        .await
        .is_err());
    admin.sync().await.unwrap();
    assert_eq!(size + 1, size_after_request);
    assert_eq!(
        admin.engine().size(),
        size_after_request,
        "only the one valid request was recorded"
    );
}

#[tokio::test]
async fn exports_verify_and_a_changed_byte_is_reported_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (mut admin, _bob) = first_run(tmp.path(), &clock).await;
    admin.request(form(300, true)).await.unwrap();

    let mut seen = Vec::new();
    let done = admin
        .export(
            ExportFormat::Bundle,
            ExportPeriod::default(),
            None,
            &mut |p| seen.push(p),
        )
        .await
        .unwrap();
    assert!(done.path.ends_with(".bundle") && done.path.contains("/exports/"));
    assert_eq!(
        seen.last().map(|p| (p.done, p.total)),
        Some((done.records, done.records))
    );
    let report = desk::verify_file(Path::new(&done.path)).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, admin.engine().size());
    assert!(
        report.details.iter().any(|d| d.starts_with("Merkle tree:"))
            && report.details.iter().any(|d| d.starts_with("policy rules")),
        "says what was checked: {report:?}"
    );
    // A request's evidence package, exported from the app, verifies in the app too, and says
    // what it is.
    let id = admin
        .engine()
        .state()
        .requests()
        .next()
        .expect("a request")
        .id;
    let done = admin.export_evidence(&id.to_string(), None).await.unwrap();
    assert!(done.path.ends_with(".evidence") && done.path.contains("/exports/"));
    assert!(done.records >= 3 && done.records <= admin.engine().size());
    assert!(admin.export_evidence("req_nope", None).await.is_err());
    let report = desk::verify_file(Path::new(&done.path)).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(
        report
            .headline
            .contains(&format!("evidence of request {id}")),
        "{report:?}"
    );
    assert!(report.details.iter().any(|d| d.starts_with("inclusion:")));

    let mut bytes = std::fs::read(&done.path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let changed = tmp.path().join("changed.bundle");
    std::fs::write(&changed, &bytes).unwrap();
    let report = desk::verify_file(&changed).unwrap();
    assert!(!report.ok);
    assert!(report.headline.contains("FAILED"));
    assert!(!report.details.is_empty());

    let csv = tmp.path().join("out.csv");
    let done = admin
        .export(
            ExportFormat::Csv,
            ExportPeriod::default(),
            Some(&csv),
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(done.records, 1, "one row per request");
    let again = admin
        .export(
            ExportFormat::Csv,
            ExportPeriod::default(),
            Some(&csv),
            &mut |_| {},
        )
        .await;
    assert!(again.is_err(), "an export never overwrites a file");
    let nowhere = tmp.path().join("missing/dir/out.jsonl");
    assert!(admin
        .export(
            ExportFormat::Jsonl,
            ExportPeriod::default(),
            Some(&nowhere),
            &mut |_| {}
        )
        .await
        .is_err());
    assert!(!nowhere.with_file_name("out.jsonl.partial").exists());
    let done = admin
        .export(
            ExportFormat::Ocsf,
            ExportPeriod::default(),
            None,
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(done.path.ends_with(".ocsf.jsonl"), "{done:?}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&done.path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len() as u64, done.records);
    assert!(
        events
            .iter()
            .any(|e| e["class_uid"] == 3005 && e["activity_id"] == 1),
        "the break-glass grant is an OCSF Assign Privileges event"
    );

    // A period: the request was made at start(), so a period after it holds none of it.
    let later = start().unix_millis() + 60_000;
    let after = ExportPeriod {
        from_ms: Some(later),
        to_ms: None,
    };
    let done = admin
        .export(ExportFormat::Csv, after, None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(done.records, 0, "no request was made in the period");
    let done = admin
        .export(ExportFormat::Ocsf, after, None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(done.records, 0, "no event was recorded in the period");
    let before = ExportPeriod {
        from_ms: None,
        to_ms: Some(later),
    };
    let done = admin
        .export(ExportFormat::Csv, before, None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(done.records, 1);
    assert!(
        done.path.ends_with("Z-6-2.csv"),
        "a second CSV of the same log in the same millisecond gets a name of its own: {done:?}"
    );
    for (format, period, why) in [
        (ExportFormat::Bundle, before, "whole log"),
        (
            ExportFormat::Csv,
            ExportPeriod {
                from_ms: Some(later),
                to_ms: Some(later),
            },
            "end after it starts",
        ),
        (
            ExportFormat::Csv,
            ExportPeriod {
                from_ms: Some(i64::MAX),
                to_ms: None,
            },
            "out of range",
        ),
    ] {
        let files = std::fs::read_dir(tmp.path().join("exports"))
            .unwrap()
            .count();
        let e = admin
            .export(format, period, None, &mut |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("exports"))
                .unwrap()
                .count(),
            files,
            "a refused export writes nothing"
        );
    }

    // The access report, from the app: the period's figures and the log's verification.
    let done = admin
        .export(ExportFormat::Report, before, None, &mut |_| {})
        .await
        .unwrap();
    assert!(done.path.ends_with(".html"), "{done:?}");
    assert_eq!(done.records, 1, "one request in the period");
    let html = std::fs::read_to_string(&done.path).unwrap();
    assert!(html.contains("Verification: OK") && html.contains("Break-glass activations"));

    let rows = admin
        .history(&HistoryFilter {
            kinds: vec!["access_requested".into()],
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].summary.contains("break-glass"),
        "{}",
        rows[0].summary
    );
    let rows = admin
        .history(&HistoryFilter {
            text: Some("BOB".into()),
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.summary.contains("bob") || r.actor == "bob")
    );
    let all = admin.history(&HistoryFilter::default()).await.unwrap();
    assert_eq!(all.len() as u64, admin.engine().size());
    assert!(
        all.windows(2).all(|w| w[0].index > w[1].index),
        "newest first"
    );
}

#[tokio::test]
async fn offline_approvals_are_only_for_pending_requests_and_short_lived() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let (mut admin, bob) = first_run(tmp.path(), &clock).await;
    // The first-run policy's admin is a local identity, so break-glass is granted at once;
    // an offline approval is refused for a request that is not pending.
    let made = admin.request(form(300, true)).await.unwrap();
    let mut bob = bob;
    bob.sync().await.unwrap();
    assert!(bob.offline_approval(&made.request.id, 600).is_err());
    assert_eq!(
        bob.offline_approval(&made.request.id, 3600)
            .unwrap_err()
            .code(),
        Code::InvalidInput,
        "at most 15 minutes"
    );
}

#[test]
fn check_policy_locates_every_problem() {
    let problems = desk::check_policy("version = 1\n[targets.db]\nmax_duration = \"forever\"\n");
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|p| p.line >= 1 && p.column >= 1));
    assert!(
        problems.iter().any(|p| p.line == 3),
        "the bad duration is on line 3: {problems:?}"
    );
}

#[test]
fn the_draft_policy_names_the_provider_and_parses() {
    let draft = desk::draft_policy(
        "alice",
        Some(&desk::ProviderDraft {
            name: "corp".into(),
            issuer: "https://login.example.com".into(),
            client_id: "breakglass-desktop".into(),
        }),
    );
    assert_eq!(desk::check_policy(&draft), vec![]);
    assert!(draft.contains("[providers.corp]"));
    assert!(draft.contains("admin = [\"alice\"]"));
}

#[test]
fn deep_links_name_a_request_or_are_refused() {
    let id = breakglass_core::RequestId::from_random([7; 10]).to_string();
    assert_eq!(
        desk::parse_deep_link(&format!("breakglass://request/{id}")).unwrap(),
        id
    );
    assert_eq!(
        desk::parse_deep_link(&format!("breakglass://request/{id}/")).unwrap(),
        id,
        "a trailing slash some launchers add is accepted"
    );
    for bad in [
        "",
        "breakglass://request/",
        "breakglass://request/../../etc/passwd",
        "https://request/x",
        "breakglass://approve/x",
        "breakglass://request/x?y",
        "breakglass://request/req_7k2m9x4p1q3r5s6t?approve=1",
        "BREAKGLASS://request/req_7k2m9x4p1q3r5s6t",
    ] {
        assert!(
            desk::parse_deep_link(bad).is_err(),
            "{bad:?} must be refused"
        );
    }
}
