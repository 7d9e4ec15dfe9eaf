//! Team-mode benchmarks on a real PostgreSQL (a throwaway cluster on loopback), each compared
//! with its target in the same run:
//!
//! (a) propagation: app A (a member engine) files 1,000 requests, one every 10 ms, while app B
//!     (another member, on its own connections) follows the log through `LISTEN` and the broker
//!     runs its loop (verifying and covering A's entries); prints the distribution of the time
//!     from the start of A's `request` call to B holding the verified request — target:
//!     p95 ≤ 1 s;
//! (b) broker grant throughput: 1,000 break-glass activations filed on a member wait for the
//!     broker, which starts and grants them all (the `command` connector running /bin/true per
//!     grant, each grant a durable append); prints grants per second (no target is set for it).
//!
//! `cargo bench -p breakglass-engine --bench team`; `-- --enforce` fails on a miss. Sizes:
//! `BREAKGLASS_BENCH_PROPAGATION` (default 1000), `BREAKGLASS_BENCH_TEAM_GRANTS` (default 1000).

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::{RequestId, Span, Status, SystemClock};
use breakglass_engine::{generate, heard, Actor, Engine, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::testing::PgCluster;
use breakglass_store::Store;
use tokio::sync::{mpsc, oneshot};

const TARGET_P95_MS: f64 = 1000.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| usize::from_str(&v).ok())
        .unwrap_or(default)
}

const POLICY: &str = r#"version = 1
[groups]
admin = ["admin"]
engineers = ["dana"]
[targets.noop]
max_duration = "2h"
request_ttl = "2h"
extension_cap = "2h"
approvers = { groups = ["admin"], quorum = 1 }
break_glass = { max_duration = "2h" }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

struct Team {
    _pg: PgCluster,
    url: String,
    broker: Engine,
    dana: Actor,
}

impl Team {
    async fn start() -> Team {
        let pg = PgCluster::start().await.expect("PostgreSQL starts");
        let url = pg.create_database().await.expect("a database");
        let keys = SystemKeys {
            log: NoteSigner::new("bench.breakglass/team", generate()).expect("log key"),
            broker: generate(),
        };
        let admin = Actor::new("admin", generate());
        let store = Store::open(&url).await.expect("store");
        let mut broker = Engine::create(store, Arc::new(SystemClock), keys, &admin)
            .await
            .expect("the log");
        broker.apply_policy(&admin, POLICY).await.expect("policy");
        let dana = Actor::new("dana", generate());
        broker
            .enrol(&admin, "dana", dana.public_key(), [])
            .await
            .expect("dana");
        Team {
            _pg: pg,
            url,
            broker,
            dana,
        }
    }

    async fn member(&self) -> Engine {
        let store = Store::open(&self.url).await.expect("store");
        Engine::join(store, Arc::new(SystemClock), self.broker.log_verifier())
            .await
            .expect("a member joins")
    }
}

async fn request(a: &mut Engine, dana: &Actor, break_glass: bool) -> RequestId {
    a.request(
        dana,
        NewRequest {
            target: "noop".into(),
            role: None,
            duration: Span::from_secs(3600),
            reason: "benchmark".into(),
            ticket: None,
            break_glass,
            extends: None,
            credential: None,
        },
    )
    .await
    .expect("a request within policy")
    .request
}

/// Runs the broker's loop on `broker` until `stop` fires; returns the engine.
fn spawn_broker(
    mut broker: Engine,
    stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Engine> {
    tokio::spawn(async move {
        broker
            .run_broker(
                Duration::from_secs(1),
                |pass| {
                    if let Err(e) = pass {
                        panic!("a broker pass failed: {e}");
                    }
                },
                async {
                    let _ = stop.await;
                },
            )
            .await;
        broker
    })
}

/// (a): returns whether p95 ≤ 1 s.
async fn propagation(team: Team, n: usize) -> (bool, Team) {
    let mut a = team.member().await;
    let mut b = team.member().await;
    let (arrived_tx, mut arrived_rx) = mpsc::unbounded_channel::<(RequestId, Instant)>();
    let (stop_b, mut stop_b_rx) = oneshot::channel::<()>();
    // B follows the log: a look on each notification (and once a second regardless).
    let follower = tokio::spawn(async move {
        let mut listener = b
            .store()
            .listen()
            .await
            .expect("listen")
            .expect("PostgreSQL");
        let mut seen: HashSet<RequestId> = b.state().requests().map(|r| r.id).collect();
        loop {
            tokio::select! {
                _ = heard(Some(&mut listener)) => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut stop_b_rx => return b,
            }
            b.refresh().await.expect("B verifies what it reads");
            let now = Instant::now();
            for r in b.state().requests() {
                if seen.insert(r.id) {
                    let _ = arrived_tx.send((r.id, now));
                }
            }
        }
    });
    let (stop_broker, stop_broker_rx) = oneshot::channel();
    let Team {
        _pg,
        url,
        broker,
        dana,
    } = team;
    let broker = spawn_broker(broker, stop_broker_rx);

    let mut started: HashMap<RequestId, Instant> = HashMap::with_capacity(n);
    let mut arrived: HashMap<RequestId, Instant> = HashMap::with_capacity(n);
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let run = Instant::now();
    for _ in 0..n {
        pace.tick().await;
        let t0 = Instant::now();
        let id = request(&mut a, &dana, false).await;
        started.insert(id, t0);
        while let Ok((id, at)) = arrived_rx.try_recv() {
            arrived.insert(id, at);
        }
    }
    let filed = run.elapsed();
    let wait_until = Instant::now() + Duration::from_secs(30);
    while started.keys().any(|id| !arrived.contains_key(id)) && Instant::now() < wait_until {
        if let Ok(Some((id, at))) =
            tokio::time::timeout(Duration::from_secs(1), arrived_rx.recv()).await
        {
            arrived.insert(id, at);
        }
    }
    let _ = stop_b.send(());
    let b = follower.await.expect("B stops");
    let _ = stop_broker.send(());
    let broker = broker.await.expect("the broker stops");
    let missing = started
        .keys()
        .filter(|id| !arrived.contains_key(id))
        .count();
    let mut ms: Vec<f64> = started
        .iter()
        .filter_map(|(id, t0)| Some(arrived.get(id)?.duration_since(*t0).as_secs_f64() * 1000.0))
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    let covered = broker.covered();
    println!(
        "team (a): {n} requests filed on A in {:.1} s (one every 10 ms); B saw {} of them; the \
         broker covered {covered} of {} entries",
        filed.as_secs_f64(),
        ms.len(),
        broker.size()
    );
    println!("| A's request to B holding it | count | p50 | p95 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let [p50, p95, p99] = [at(0.50), at(0.95), at(0.99)];
    println!(
        "| team (a) propagation | {} | {p50:.1} ms | {p95:.1} ms | {p99:.1} ms | {:.1} ms |",
        ms.len(),
        ms.last().copied().unwrap_or(0.0)
    );
    let met = missing == 0 && p95 <= TARGET_P95_MS;
    println!(
        "team (a): p95 {p95:.1} ms (target ≤ {TARGET_P95_MS:.0} ms, none missing: {missing} \
         missing): {}",
        verdict(met)
    );
    a.close().await;
    b.close().await;
    (
        met,
        Team {
            _pg,
            url,
            broker,
            dana,
        },
    )
}

/// (b): prints the broker's grant throughput.
async fn grant_throughput(team: Team, n: usize) {
    let mut a = team.member().await;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(request(&mut a, &team.dana, true).await);
    }
    a.close().await;
    let Team {
        _pg, mut broker, ..
    } = team;
    let start = Instant::now();
    let mut granted = 0usize;
    let mut passes = 0usize;
    while granted < n && start.elapsed() < Duration::from_secs(600) {
        let report = broker.tick().await.expect("a broker pass");
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        granted += report.granted.len();
        passes += 1;
    }
    let took = start.elapsed().as_secs_f64();
    let active = ids
        .iter()
        .filter(|id| broker.state().request(id).map(|r| r.status) == Some(Status::Active))
        .count();
    println!(
        "team (b): the broker granted {granted} waiting break-glass activations (all {active} \
         active) in {took:.2} s over {passes} pass(es), verifying and covering the members' \
         entries first: {:.0} grants/s (a run of /bin/true and a durable append each)",
        granted as f64 / took
    );
    broker.close().await;
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn main() {
    let enforce = std::env::args().any(|a| a == "--enforce");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let met = runtime.block_on(async {
        let team = Team::start().await;
        let (met, team) = propagation(team, env_usize("BREAKGLASS_BENCH_PROPAGATION", 1000)).await;
        grant_throughput(team, env_usize("BREAKGLASS_BENCH_TEAM_GRANTS", 1000)).await;
        met
    });
    if enforce && !met {
        eprintln!("team: a target was missed");
        std::process::exit(1);
    }
}
