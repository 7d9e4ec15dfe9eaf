//! Crash tests' harness: a log with file keys in a temp dir, and this test binary re-run in
//! child mode as the worker, killed with SIGKILL at a chosen moment.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::SystemClock;
use breakglass_engine::{generate, public_key, Actor, Engine, KeyLocation, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;

pub const ORIGIN: &str = "test.breakglass/crash";

/// The key file of `name` in `dir`.
pub fn key(dir: &Path, name: &str) -> KeyLocation {
    KeyLocation::File(dir.join(format!("{name}.pem")))
}

/// Opens the log in `dir` with its system keys, verifying all of it.
pub async fn open(dir: &Path) -> Engine {
    let keys = SystemKeys {
        log: NoteSigner::new(ORIGIN, key(dir, "log").load().unwrap()).unwrap(),
        broker: key(dir, "broker").load().unwrap(),
    };
    let store = Store::open(&dir.join("log.db").display().to_string())
        .await
        .unwrap();
    Engine::open(store, Arc::new(SystemClock), keys)
        .await
        .unwrap()
}

/// Creates the log in `dir` under `policy`, with `people` (name, group) enrolled; every key is a
/// file in `dir`.
pub async fn create_log(dir: &Path, policy: &str, people: &[(&str, &str)]) {
    for name in ["log", "broker", "admin"]
        .into_iter()
        .chain(people.iter().map(|(n, _)| *n))
    {
        key(dir, name).store_new(&generate()).unwrap();
    }
    let store = Store::open(&dir.join("log.db").display().to_string())
        .await
        .unwrap();
    let keys = SystemKeys {
        log: NoteSigner::new(ORIGIN, key(dir, "log").load().unwrap()).unwrap(),
        broker: key(dir, "broker").load().unwrap(),
    };
    let admin = Actor::new("admin", key(dir, "admin").load().unwrap());
    let mut engine = Engine::create(store, Arc::new(SystemClock), keys, &admin)
        .await
        .unwrap();
    engine.apply_policy(&admin, policy).await.unwrap();
    for (name, group) in people {
        let k = public_key(&key(dir, name).load().unwrap());
        engine
            .enrol(&admin, name, k, [(*group).to_owned()])
            .await
            .unwrap();
    }
}

/// Deterministic kill moments (xorshift): they differ per round but every run repeats.
pub fn moments(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Runs this binary's test `child_test` with `env` set to `dir`, waits for its first stdout
/// line starting with one of `acks`, kills it with SIGKILL `delay` later, and returns every such
/// line it printed before dying (the test harness's own lines are left out).
pub fn run_and_kill(
    child_test: &str,
    env: &str,
    dir: &Path,
    acks: &'static [&'static str],
    delay: Duration,
) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if acks.iter().any(|a| line.starts_with(a)) {
                let _ = tx.send(line);
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the child never acknowledged anything"));
    let until = Instant::now() + delay;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    std::iter::once(first).chain(rx.try_iter()).collect()
}
