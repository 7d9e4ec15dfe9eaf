//! Crash safety: a process appending events is killed with SIGKILL at random moments, 50 times.
//! After each kill the whole log must verify (signatures, rules, Merkle root against the signed
//! checkpoint) and every request whose append had reported success must be in it.
//!
//! The appending process is this test binary re-run in child mode (`crash_child`), so the test
//! needs no extra program.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::{RequestId, Span, SystemClock};
use breakglass_engine::{generate, public_key, Actor, Engine, KeyLocation, NewRequest, SystemKeys};
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;

const CHILD_ENV: &str = "BREAKGLASS_CRASH_CHILD_DIR";
const ORIGIN: &str = "test.breakglass/crash";
const POLICY: &str = r#"
version = 1
[groups]
admin = ["admin"]
sre = ["bob"]
engineers = ["dave"]
[targets.db]
max_duration = "1h"
request_ttl = "1h"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 1 }
[targets.db.connector]
kind = "command"
grant = ["/bin/true"]
revoke = ["/bin/true"]
"#;

fn key(dir: &Path, name: &str) -> KeyLocation {
    KeyLocation::File(dir.join(format!("{name}.pem")))
}

async fn open(dir: &Path) -> Engine {
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

/// Child mode: append requests forever, announcing each one only after it was committed.
#[tokio::test]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let mut engine = open(&dir).await;
    let dave = Actor::new("dave", key(&dir, "dave").load().unwrap());
    for i in 0.. {
        let out = engine
            .request(
                &dave,
                NewRequest {
                    target: "db".into(),
                    role: None,
                    duration: Span::from_secs(600),
                    reason: format!("crash test {i}"),
                    ticket: None,
                    break_glass: false,
                    extends: None,
                    credential: None,
                },
            )
            .await
            .unwrap();
        #[allow(
            clippy::print_stdout,
            reason = "the parent reads acknowledgements from stdout"
        )]
        {
            println!("ok {}", out.request);
        }
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for name in ["log", "broker", "admin", "dave"] {
        key(dir, name).store_new(&generate()).unwrap();
    }
    {
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
        engine.apply_policy(&admin, POLICY).await.unwrap();
        let dave = public_key(&key(dir, "dave").load().unwrap());
        engine
            .enrol(&admin, "dave", dave, ["engineers".to_owned()])
            .await
            .unwrap();
    }

    let mut acknowledged: Vec<RequestId> = Vec::new();
    // A small deterministic generator: the kill moments differ per round but the run repeats.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let exe = std::env::current_exe().unwrap();
    for round in 0..50 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("ok ") {
                    let _ = tx.send(RequestId::parse(id).unwrap());
                }
            }
        });
        // Wait for the first acknowledged append, then kill somewhere in the next 0–150 ms,
        // which lands in every phase of an append over 50 rounds.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the child never appended"));
        acknowledged.push(first);
        let delay = Duration::from_micros(next() % 150_000);
        let until = Instant::now() + delay;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(rx.try_iter());

        let engine = open(dir).await; // verifies the whole log or fails
        for id in &acknowledged {
            assert!(
                engine.state().request(id).is_some(),
                "round {round}: request {id} was acknowledged before the kill but is missing"
            );
        }
    }
    let engine = open(dir).await;
    assert!(
        acknowledged.len() >= 50,
        "each round acknowledged at least one append"
    );
    assert!(engine.state().requests().count() >= acknowledged.len());
}
