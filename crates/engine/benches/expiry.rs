//! Expiry benchmarks, each compared with its target in the same run:
//!
//! (a) revoke lateness: 10,000 grants through the `command` connector running a no-op (in its
//!     batch form: `sed s/.*/ok/` answering `ok` to every revoke) and
//!     1,000 through the `postgres` connector (a real throwaway cluster), all with deadlines in
//!     the same second, ended by the broker loop; prints the distribution of the time from each
//!     deadline to the start of its revoke (and to the connector's confirmation) — target: every
//!     revoke starts ≤ 1 s after its deadline;
//! (b) restart: a broker starting on a log with 1,000 grants whose deadlines passed while no
//!     broker ran — target: every overdue revoke starts ≤ 1 s after the broker starts (opening
//!     and verifying the log included).
//!
//! Time is the real clock shifted by an offset: the grants are made an hour ahead of their
//! deadlines, then the offset moves "now" to just before them, so the wait costs nothing.
//!
//! `cargo bench -p breakglass-engine --bench expiry`; `-- --enforce` fails on a miss. Sizes:
//! `BREAKGLASS_BENCH_GRANTS` (default 10000), `BREAKGLASS_BENCH_PG_GRANTS` (default 1000),
//! `BREAKGLASS_BENCH_OVERDUE` (default 1000); `BREAKGLASS_BENCH_BATCH=0` runs one revoke program
//! per grant instead of the batch protocol.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::{Clock, RequestId, Span, SystemClock, Timestamp};
use breakglass_engine::{generate, Actor, Engine, NewRequest, RevokeRun, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::testing::PgCluster;
use breakglass_store::Store;
use ed25519_dalek::SigningKey;
use sqlx::{Connection, PgConnection};

const TARGET_MS: i64 = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| usize::from_str(&v).ok())
        .unwrap_or(default)
}

/// The real clock plus an offset the benchmark moves.
#[derive(Clone, Default)]
struct ShiftedClock(Arc<AtomicI64>);

impl ShiftedClock {
    /// Shifts the clock so that it reads `to` now.
    fn set(&self, to: Timestamp) {
        let real = SystemClock.now().unix_millis();
        self.0.store(to.unix_millis() - real, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let real = SystemClock.now().unix_millis();
        Timestamp::from_unix_millis(real + self.0.load(Ordering::SeqCst)).expect("in range")
    }
}

fn plus_ms(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + ms).expect("in range")
}

struct Bench {
    _dir: tempfile::TempDir,
    location: String,
    keys: ([u8; 32], [u8; 32]),
    clock: ShiftedClock,
    engine: Engine,
    dana: Actor,
}

fn keys(k: &([u8; 32], [u8; 32])) -> SystemKeys {
    SystemKeys {
        log: NoteSigner::new("bench.breakglass/expiry", SigningKey::from_bytes(&k.0))
            .expect("log key"),
        broker: SigningKey::from_bytes(&k.1),
    }
}

/// A log (on tmpfs when there is one: durability is not what is measured here) with targets
/// `noop` (the command connector: grants run /bin/true; revokes go in batches to `sed
/// s/.*/ok/`, the no-op of the batch protocol, which answers `ok` to every line, or with
/// `batch = false` run /bin/true each) and, when `pg_url` is given, `db`.
async fn bench_log(pg_url: Option<&str>, batch: bool) -> Bench {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let location = dir.path().join("log.db").display().to_string();
    let clock = ShiftedClock::default();
    let k = (generate().to_bytes(), generate().to_bytes());
    let admin = Actor::new("admin", generate());
    let store = Store::open(&location).await.expect("store");
    let mut engine = Engine::create(store, Arc::new(clock.clone()), keys(&k), &admin)
        .await
        .expect("log");
    let mut policy = String::from(
        r#"version = 1
[groups]
admin = ["admin"]
[targets.noop]
max_duration = "2h"
request_ttl = "30m"
extension_cap = "2h"
approvers = { groups = ["admin"], quorum = 1 }
break_glass = { max_duration = "2h" }
connector = { kind = "command", grant = ["/bin/true"], REVOKE }
"#,
    )
    .replace(
        "REVOKE",
        if batch {
            r#"revoke = ["/usr/bin/sed", "s/.*/ok/"], batch = true"#
        } else {
            r#"revoke = ["/bin/true"]"#
        },
    );
    if let Some(url) = pg_url {
        policy.push_str(&format!(
            r#"[targets.db]
roles = ["read"]
max_duration = "2h"
request_ttl = "30m"
extension_cap = "2h"
approvers = {{ groups = ["admin"], quorum = 1 }}
break_glass = {{ max_duration = "2h" }}
connector = {{ kind = "postgres", url = "{url}", roles = {{ read = "readers" }} }}
"#
        ));
    }
    engine.apply_policy(&admin, &policy).await.expect("policy");
    let dana = Actor::new("dana", generate());
    engine
        .enrol(&admin, "dana", dana.public_key(), [])
        .await
        .expect("dana");
    Bench {
        _dir: dir,
        location,
        keys: k,
        clock,
        engine,
        dana,
    }
}

impl Bench {
    /// `n` break-glass grants on `target` whose deadlines fall in the second from `at` (the
    /// duration is whole seconds, so it is chosen per grant from the time of its request).
    async fn grants(&mut self, target: &str, n: usize, at: Timestamp) -> Vec<RequestId> {
        let verifier = breakglass_connectors::postgres::ScramVerifier::of(
            &breakglass_connectors::postgres::new_password(),
        );
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let now = self.clock.now();
            let secs = (at.millis_since(now) + 999) / 1000;
            let credential = (target == "db")
                .then(|| breakglass_core::Credential::ScramVerifier(verifier.as_str().to_owned()));
            let out = self
                .engine
                .request(
                    &self.dana,
                    NewRequest {
                        target: target.into(),
                        role: None,
                        duration: Span::from_secs(u64::try_from(secs).expect("ahead")),
                        reason: "benchmark".into(),
                        ticket: None,
                        break_glass: true,
                        extends: None,
                        credential,
                    },
                )
                .await
                .expect("granted");
            assert_eq!(out.warning, None, "the grant worked");
            ids.push(out.request);
        }
        ids
    }

    /// Runs the broker loop until every grant in `ids` has ended (or 5 minutes pass); returns
    /// the revokes run.
    async fn expire(&mut self, ids: &[RequestId]) -> Vec<RevokeRun> {
        let mut left: std::collections::HashSet<RequestId> = ids.iter().copied().collect();
        let mut runs = Vec::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let mut done_tx = Some(done_tx);
        let stop = async move {
            tokio::select! {
                _ = done_rx => {}
                () = tokio::time::sleep(Duration::from_secs(300)) => {}
            }
        };
        self.engine
            .run_broker(
                Duration::from_millis(500),
                |pass| {
                    let report = pass.expect("a pass runs");
                    assert!(report.failures.is_empty(), "{:?}", report.failures);
                    for id in report.expired.iter().chain(&report.revoked) {
                        left.remove(id);
                    }
                    runs.extend(report.revokes.iter().copied());
                    if left.is_empty() {
                        if let Some(tx) = done_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                },
                stop,
            )
            .await;
        assert!(left.is_empty(), "{} grants never ended", left.len());
        runs
    }
}

/// p50, p95, p99 and max of `values` (sorted here).
fn percentiles(values: &mut [i64]) -> [i64; 4] {
    values.sort_unstable();
    let at = |p: f64| {
        let i = ((values.len() as f64 - 1.0) * p).round() as usize;
        values[i]
    };
    [at(0.50), at(0.95), at(0.99), *values.last().unwrap_or(&0)]
}

fn line(label: &str, mut values: Vec<i64>) -> String {
    let [p50, p95, p99, max] = percentiles(&mut values);
    format!(
        "| {label} | {} | {p50} ms | {p95} ms | {p99} ms | {max} ms |",
        values.len()
    )
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

async fn lateness(grants: usize, pg_grants: usize, batch: bool) -> bool {
    let pg = if pg_grants > 0 {
        let pg = PgCluster::start().await.expect("PostgreSQL starts");
        let url = pg.create_database().await.expect("a database");
        let mut admin = PgConnection::connect(&url).await.expect("connects");
        sqlx::raw_sql("CREATE ROLE readers NOLOGIN")
            .execute(&mut admin)
            .await
            .expect("the target role");
        Some((pg, url))
    } else {
        None
    };
    let mut b = bench_log(pg.as_ref().map(|(_, url)| url.as_str()), batch).await;
    println!(
        "expiry (a): command revokes {}",
        if batch {
            "in batches (one run of `sed s/.*/ok/` per batch)"
        } else {
            "one run of /bin/true each"
        }
    );
    let setup = Instant::now();
    // Deadlines an hour ahead, in one second; the grants take a while to make.
    let at = plus_ms(b.clock.now(), 3_600_000);
    let mut kind: HashMap<RequestId, &str> = HashMap::new();
    for id in b.grants("noop", grants, at).await {
        kind.insert(id, "command");
    }
    for id in b.grants("db", pg_grants, at).await {
        kind.insert(id, "postgres");
    }
    let ids: Vec<RequestId> = kind.keys().copied().collect();
    let deadlines: Vec<Timestamp> = ids
        .iter()
        .filter_map(|id| b.engine.state().request(id).and_then(|r| r.deadline))
        .collect();
    let first = deadlines.iter().min().copied().expect("deadlines");
    let last = deadlines.iter().max().copied().expect("deadlines");
    println!(
        "expiry (a): {} grants made in {:.1} s; deadlines from {first} to {last} ({} ms apart)",
        ids.len(),
        setup.elapsed().as_secs_f64(),
        last.millis_since(first)
    );
    // Now is two seconds before the first deadline: the broker sleeps until it.
    b.clock.set(plus_ms(first, -2000));
    let run = Instant::now();
    let runs = b.expire(&ids).await;
    println!(
        "expiry (a): all ended in {:.2} s after the broker started (2 s before the first deadline)",
        run.elapsed().as_secs_f64()
    );
    let mut started: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in &runs {
        let late = r.started.millis_since(r.deadline);
        started.entry(kind[&r.request]).or_default().push(late);
    }
    let worst = runs
        .iter()
        .map(|r| r.started.millis_since(r.deadline))
        .max()
        .unwrap_or(0);
    let early = runs.iter().filter(|r| r.started < r.deadline).count();
    println!("| revokes | count | p50 | p95 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for k in ["command", "postgres"] {
        if let Some(v) = started.remove(k) {
            println!("{}", line(&format!("{k}: deadline to start"), v));
        }
        let done: Vec<i64> = runs
            .iter()
            .filter(|r| kind[&r.request] == k)
            .map(|r| r.finished.millis_since(r.deadline))
            .collect();
        if !done.is_empty() {
            println!("{}", line(&format!("{k}: deadline to confirmed"), done));
        }
    }
    assert_eq!(early, 0, "no revoke starts before its deadline");
    let met = worst <= TARGET_MS;
    println!(
        "(a) latest revoke start {worst} ms after its deadline (target ≤ {TARGET_MS} ms): {}",
        verdict(met)
    );
    drop(pg);
    met
}

async fn restart(overdue: usize) -> bool {
    let mut b = bench_log(None, true).await;
    let at = plus_ms(b.clock.now(), 60_000);
    let ids = b.grants("noop", overdue, at).await;
    let Bench {
        _dir,
        location,
        keys: k,
        clock,
        engine,
        ..
    } = b;
    // The broker dies; the deadlines pass.
    drop(engine);
    clock.set(plus_ms(at, 30_000));
    let start = Instant::now();
    let start_at = clock.now();
    let store = Store::open(&location).await.expect("store");
    let mut engine = Engine::open(store, Arc::new(clock.clone()), keys(&k))
        .await
        .expect("opens");
    let opened = start.elapsed();
    let mut runs = Vec::new();
    engine
        .run_broker(
            Duration::from_secs(1),
            |pass| runs.extend(pass.expect("a pass").revokes.iter().copied()),
            async {},
        )
        .await;
    let recorded = start.elapsed();
    assert_eq!(
        runs.len(),
        ids.len(),
        "every overdue grant in the first pass"
    );
    let worst = runs
        .iter()
        .map(|r| r.started.millis_since(start_at))
        .max()
        .unwrap_or(0);
    let met = worst <= TARGET_MS;
    println!(
        "expiry (b): broker start on {} overdue grants: log opened and verified in {} ms, last \
         revoke started {worst} ms after start, all recorded at {} ms",
        ids.len(),
        opened.as_millis(),
        recorded.as_millis()
    );
    println!(
        "(b) every overdue revoke started ≤ {TARGET_MS} ms after the broker started: {}",
        verdict(met)
    );
    met
}

fn main() {
    let enforce = std::env::args().any(|a| a == "--enforce");
    let grants = env_usize("BREAKGLASS_BENCH_GRANTS", 10_000);
    let pg_grants = env_usize("BREAKGLASS_BENCH_PG_GRANTS", 1_000);
    let overdue = env_usize("BREAKGLASS_BENCH_OVERDUE", 1_000);
    let batch = env_usize("BREAKGLASS_BENCH_BATCH", 1) != 0;
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let a = runtime.block_on(lateness(grants, pg_grants, batch));
    let b = runtime.block_on(restart(overdue));
    if enforce && !(a && b) {
        std::process::exit(1);
    }
}
