//! The broker loop in real time: its first pass ends every grant that came due while no broker
//! ran, and a wall clock stepped back or forward by an hour never makes a grant outlive its
//! deadline (the broker's clock never runs slower than the monotonic one).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::{Clock, Span, Status, SteadyClock, SystemClock, Timestamp};
use breakglass_engine::{generate, Actor, Engine, NewRequest, SystemKeys, TickReport};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;
use ed25519_dalek::SigningKey;

const POLICY: &str = r#"version = 1
[groups]
admin = ["admin"]
sre = ["bob"]
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 1 }
break_glass = { max_duration = "30m" }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

/// The system clock moved by an offset the test sets: a wall clock an operator or NTP steps.
#[derive(Clone, Default)]
struct SteppedClock(Arc<AtomicI64>);

impl SteppedClock {
    fn step(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        let real = SystemClock.now().unix_millis();
        Timestamp::from_unix_millis(real + self.0.load(Ordering::SeqCst)).expect("in range")
    }
}

struct Log {
    _dir: tempfile::TempDir,
    location: String,
    keys: ([u8; 32], [u8; 32]),
    admin: Actor,
    dana: Actor,
}

fn keys(k: &([u8; 32], [u8; 32])) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new("broker.test/log", SigningKey::from_bytes(&k.0)).unwrap(),
        broker: SigningKey::from_bytes(&k.1),
    }
}

async fn new_log(clock: Arc<dyn Clock>) -> (Log, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("log.db").display().to_string();
    let k = (generate().to_bytes(), generate().to_bytes());
    let admin = Actor::new("admin", generate());
    let store = Store::open(&location).await.unwrap();
    let mut engine = Engine::create(store, clock, keys(&k), &admin)
        .await
        .unwrap();
    engine.apply_policy(&admin, POLICY).await.unwrap();
    let dana = Actor::new("dana", generate());
    engine
        .enrol(&admin, "dana", dana.public_key(), [])
        .await
        .unwrap();
    let log = Log {
        _dir: dir,
        location,
        keys: k,
        admin,
        dana,
    };
    (log, engine)
}

fn break_glass(secs: u64) -> NewRequest {
    NewRequest {
        target: "db".into(),
        role: None,
        duration: Span::from_secs(secs),
        reason: "primary down".into(),
        ticket: None,
        break_glass: true,
        extends: None,
        credential: None,
    }
}

/// Runs the broker loop until `until` says a pass's report is the last one wanted (or 20 s go
/// by), and returns every report.
async fn run_until(
    engine: &mut Engine,
    mut until: impl FnMut(&TickReport) -> bool,
) -> Vec<TickReport> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let mut done_tx = Some(done_tx);
    let mut reports = Vec::new();
    let stop = async move {
        tokio::select! {
            _ = done_rx => {}
            () = tokio::time::sleep(Duration::from_secs(20)) => {}
        }
    };
    engine
        .run_broker(
            Duration::from_millis(200),
            |pass| {
                let report = pass.expect("a pass runs").clone();
                let last = until(&report);
                reports.push(report);
                if last {
                    if let Some(tx) = done_tx.take() {
                        let _ = tx.send(());
                    }
                }
            },
            stop,
        )
        .await;
    reports
}

#[tokio::test]
async fn the_first_pass_ends_every_grant_that_came_due_while_no_broker_ran() {
    let (log, mut engine) = new_log(Arc::new(SystemClock)).await;
    let mut grants = Vec::new();
    for _ in 0..3 {
        let out = engine.request(&log.dana, break_glass(1)).await.unwrap();
        assert_eq!(out.state, Status::Active);
        grants.push(out.request);
    }
    let long = engine.request(&log.dana, break_glass(600)).await.unwrap();
    // The process holding the engine dies without a word; the deadlines pass.
    drop(engine);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let store = Store::open(&log.location).await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new(Arc::new(SystemClock)));
    let mut engine = Engine::open(store, clock, keys(&log.keys)).await.unwrap();
    let reports = run_until(&mut engine, |_| true).await;
    assert_eq!(reports.len(), 1);
    let mut expired = reports[0].expired.clone();
    expired.sort();
    grants.sort();
    assert_eq!(expired, grants, "all three, in the first pass");
    assert!(reports[0].failures.is_empty());
    for id in &grants {
        let r = engine.state().request(id).unwrap();
        assert_eq!(r.status, Status::Expired);
        assert!(r.ended_at.unwrap() >= r.deadline.unwrap());
    }
    assert_eq!(
        engine.state().request(&long.request).unwrap().status,
        Status::Active,
        "a grant still within its window is left alone"
    );
}

#[tokio::test]
async fn a_wall_clock_stepped_back_an_hour_does_not_delay_an_expiry() {
    let wall = SteppedClock::default();
    let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new(Arc::new(wall.clone())));
    let (log, mut engine) = new_log(clock).await;
    let out = engine.request(&log.dana, break_glass(2)).await.unwrap();
    let deadline = out.deadline.unwrap();
    let real_deadline = std::time::Instant::now() + Duration::from_secs(2);
    // An hour back, before the deadline: by the wall clock the grant has an hour left.
    wall.step(-3_600_000);
    let reports = run_until(&mut engine, |r| !r.expired.is_empty()).await;
    let ended = std::time::Instant::now();
    let last = reports.last().unwrap();
    assert_eq!(last.expired, [out.request], "it expired");
    assert!(
        ended < real_deadline + Duration::from_secs(2),
        "within a pass of its real deadline, not an hour later"
    );
    let run = last.revokes[0];
    assert!(run.started >= deadline, "never before the deadline");
    let r = engine.state().request(&out.request).unwrap();
    assert_eq!((r.status, r.deadline), (Status::Expired, Some(deadline)));
}

#[tokio::test]
async fn a_wall_clock_stepped_forward_an_hour_ends_a_grant_early_never_late() {
    let wall = SteppedClock::default();
    let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new(Arc::new(wall.clone())));
    let (log, mut engine) = new_log(clock).await;
    let out = engine.request(&log.dana, break_glass(600)).await.unwrap();
    let deadline = out.deadline.unwrap();
    wall.step(3_600_000);
    let reports = run_until(&mut engine, |r| !r.expired.is_empty()).await;
    assert_eq!(reports.len(), 1, "the first pass after the step ends it");
    assert_eq!(reports[0].expired, [out.request]);
    let r = engine.state().request(&out.request).unwrap();
    assert_eq!(r.deadline, Some(deadline), "the deadline never moved");
    assert_eq!(r.status, Status::Expired);
}

#[tokio::test]
async fn a_batch_connector_gets_every_due_revoke_in_one_run_and_answers_each() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("revoke-many.sh");
    let calls = dir.path().join("calls.jsonl");
    let runs = dir.path().join("runs");
    // Answers each line as it reads it (so the pipes fill both ways at once), and refuses the
    // grants whose reason says so.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {runs}\nwhile IFS= read -r line; do\n  printf '%s\\n' \"$line\" >> {calls}\n  case \"$line\" in *'refuse me'*) echo 'error: refused' ;; *) echo ok ;; esac\ndone\n",
            runs = runs.display(),
            calls = calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let policy = POLICY.replace(
        r#"revoke = ["/bin/true"] }"#,
        &format!(r#"revoke = ["{}"], batch = true }}"#, script.display()),
    );
    assert!(policy.contains("batch = true"));
    let clock = breakglass_core::ManualClock::new(SystemClock.now());
    let (log, mut engine) = new_log(Arc::new(clock.clone())).await;
    // The policy with the batch connector, as version 2.
    let v2 = policy.replace("version = 1", "version = 2");
    engine
        .apply_policy(&log.admin, &v2)
        .await
        .expect("policy v2");
    let mut ids = Vec::new();
    for i in 0..300 {
        let mut ask = break_glass(60);
        if i == 7 {
            ask.reason = "refuse me".into();
        }
        ids.push(engine.request(&log.dana, ask).await.unwrap().request);
    }
    clock.advance(Span::from_secs(61));
    let report = engine.tick().await.unwrap();
    assert_eq!(report.revokes.len(), 300);
    assert_eq!(report.expired.len(), 299);
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(report.failures[0].contains(ids[7].as_str()));
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        1,
        "one run for all 300"
    );
    let sent = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(sent.lines().count(), 300);
    assert!(sent.lines().all(|l| l.contains(r#""action":"revoke""#)));
    assert_eq!(
        engine.state().request(&ids[7]).unwrap().status,
        Status::Active,
        "the refused one stays live and is retried"
    );
    clock.advance(Span::from_secs(1));
    let report = engine.tick().await.unwrap();
    assert_eq!(
        report.revokes.len(),
        1,
        "only the failed one, after its backoff"
    );
}

#[tokio::test]
async fn a_grant_on_a_target_the_new_policy_removed_is_still_revoked_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let revoked = dir.path().join("revoked");
    let script = dir.path().join("revoke.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat >> {}\n", revoked.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let clock = breakglass_core::ManualClock::new(SystemClock.now());
    let (log, mut engine) = new_log(Arc::new(clock.clone())).await;
    let v2 = POLICY.replace("version = 1", "version = 2").replace(
        r#"revoke = ["/bin/true"]"#,
        &format!(r#"revoke = ["{}"]"#, script.display()),
    );
    engine.apply_policy(&log.admin, &v2).await.expect("v2");
    let id = engine
        .request(&log.dana, break_glass(60))
        .await
        .unwrap()
        .request;
    // Version 3 drops the target while the grant is live.
    let v3 = POLICY
        .replace("version = 1", "version = 3")
        .replace("[targets.db]", "[targets.other]");
    engine.apply_policy(&log.admin, &v3).await.expect("v3");
    clock.advance(Span::from_secs(61));
    let report = engine.tick().await.unwrap();
    assert_eq!(report.expired, vec![id], "{:?}", report.failures);
    assert_eq!(engine.state().request(&id).unwrap().status, Status::Expired);
    let sent = std::fs::read_to_string(&revoked).expect("the v2 revoke program ran");
    assert!(sent.contains(id.as_str()));
}
