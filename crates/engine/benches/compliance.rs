//! Compliance benchmark (issue 7): export and verify a log of 1,000,000 events — the time of
//! each export (OCSF, JSON Lines, bundle) and of the offline verification, and the peak memory
//! of each, printed beside the same figures for a log a quarter the size, so that whether memory
//! grows with the event count is measured in the same run.
//!
//! Each phase runs in a child process of its own (this binary, re-run with `--child`), so its
//! peak resident memory (`VmHWM`) is its own, with the system allocator, as in the `breakglass`
//! binary:
//! - generate: a valid history of N events (set-up, then request → two approvals → grant →
//!   expiry cycles), signed on all cores, written a chunk at a time to a SQLite log and to a
//!   bundle file;
//! - export: the engine opens the log (verifying all of it; its replayed state is what the
//!   app and CLI hold anyway) and streams the three exports to files; the export's own memory is
//!   its peak less the memory held once the log was open;
//! - verify: `verify_bundle_stream` over the bundle file, as `breakglass verify FILE` does.
//!
//! Target: memory does not grow with the event count — the exports' own memory and the
//! verification's peak at 1,000,000 events within 10% (plus 8 MB of allocator slack) of the same
//! at 250,000. `BREAKGLASS_BENCH_COMPLIANCE_EVENTS` sets N (default 1000000); `--enforce` makes a
//! missed target fail the run.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use breakglass_core::{
    Binding, Event, EventBody, IdentityRecord, ManualClock, PublicKey, RequestId, Span, Timestamp,
    EVENT_FORMAT,
};
use breakglass_engine::{generate, Engine, EventFormat, ExportFilter, SystemKeys};
use breakglass_ledger::{
    verify_bundle_stream, BundleWriter, Checkpoint, Entry, Frontier, NoteSigner, VerifyOptions,
};
use breakglass_store::Store;
use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod common;

use common::POLICY;

const ORIGIN: &str = "bench.breakglass/compliance";
const CHUNK_CYCLES: u64 = 4096;

const NAMES: [&str; 5] = ["admin", "broker", "bob", "carol", "dave"];

/// The keys of a generated log, kept beside it so each phase can open it.
struct Keys {
    log: SigningKey,
    people: Vec<SigningKey>,
}

impl Keys {
    fn new() -> Self {
        Keys {
            log: generate(),
            people: NAMES.iter().map(|_| generate()).collect(),
        }
    }

    fn save(&self, dir: &Path) {
        let mut bytes = self.log.to_bytes().to_vec();
        for k in &self.people {
            bytes.extend(k.to_bytes());
        }
        std::fs::write(dir.join("keys"), bytes).expect("keys");
    }

    fn load(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("keys")).expect("keys");
        let key = |i: usize| {
            SigningKey::from_bytes(&bytes[i * 32..(i + 1) * 32].try_into().expect("32 bytes"))
        };
        Keys {
            log: key(0),
            people: (1..=NAMES.len()).map(key).collect(),
        }
    }

    fn of(&self, name: &str) -> &SigningKey {
        &self.people[NAMES.iter().position(|n| *n == name).expect("known")]
    }

    fn signer(&self) -> NoteSigner {
        NoteSigner::new(ORIGIN, self.log.clone()).expect("log key")
    }
}

fn event(time: Timestamp, actor: &str, body: EventBody) -> Event {
    Event {
        v: EVENT_FORMAT,
        log: ORIGIN.into(),
        time,
        actor: actor.into(),
        body,
    }
}

/// Writes entries to the SQLite log, the bundle and the tree, in order.
struct Sink {
    bundle: BundleWriter<BufWriter<std::fs::File>>,
    frontier: Frontier,
    rows: Vec<(i64, Vec<u8>)>,
    pool: sqlx::SqlitePool,
}

impl Sink {
    async fn push(&mut self, entries: Vec<Entry>) {
        for e in entries {
            self.bundle.entry(e.bytes()).expect("bundle");
            let index = i64::try_from(self.frontier.size()).expect("index");
            self.frontier.push(*e.leaf_hash());
            self.rows.push((index, e.bytes().to_vec()));
        }
        if self.rows.len() >= 20_000 {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        let mut tx = self.pool.begin().await.expect("tx");
        for (index, bytes) in self.rows.drain(..) {
            sqlx::query("INSERT INTO log_entries (idx, entry) VALUES (?, ?)")
                .bind(index)
                .bind(bytes)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
}

fn sign_all(events: Vec<Event>, keys: &Keys) -> Vec<Entry> {
    events
        .into_par_iter()
        .map(|e| {
            let key = keys.of(&e.actor);
            Entry::sign(e, key).expect("sign")
        })
        .collect()
}

async fn generate_log(n: u64, dir: &Path) {
    let keys = Keys::new();
    keys.save(dir);
    let signer = keys.signer();
    let db = dir.join("log.db");
    drop(
        Store::open(&format!("sqlite://{}", db.display()))
            .await
            .expect("store"),
    );
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&db)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Off),
        )
        .await
        .expect("db");
    let cycles = n.saturating_sub(5) / 5;
    let size = 5 + cycles * 5;
    let file = std::fs::File::create(dir.join("log.bundle")).expect("bundle file");
    let mut sink = Sink {
        bundle: BundleWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            ORIGIN,
            &signer.verifier().vkey(),
            size,
        )
        .expect("bundle"),
        frontier: Frontier::new(),
        rows: Vec::new(),
        pool,
    };
    let record = |name: &str, groups: &[&str]| IdentityRecord {
        name: name.into(),
        key: PublicKey(keys.of(name).verifying_key().to_bytes()),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        binding: Binding::Local,
    };
    let mut time = Timestamp::parse_lenient("2026-01-01T00:00:00Z").expect("time");
    let mut setup = vec![
        event(
            time,
            "admin",
            EventBody::LogCreated {
                origin: ORIGIN.into(),
                log_key: signer.verifier().vkey(),
                admin: record("admin", &["admin"]),
                broker: record("broker", &[]),
            },
        ),
        event(
            time,
            "admin",
            EventBody::PolicyApplied {
                version: 1,
                source: POLICY.into(),
            },
        ),
    ];
    for (name, group) in [("bob", "sre"), ("carol", "sre"), ("dave", "engineers")] {
        setup.push(event(
            time,
            "admin",
            EventBody::IdentityEnrolled {
                identity: record(name, &[group]),
            },
        ));
    }
    sink.push(sign_all(setup, &keys)).await;
    let second = Span::from_secs(1);
    let duration = Span::from_secs(600);
    let mut next = 1u64;
    while next <= cycles {
        let last = (next + CHUNK_CYCLES - 1).min(cycles);
        // Requests first: each approval names its request's leaf hash.
        let mut times = Vec::new();
        let requests: Vec<Event> = (next..=last)
            .map(|i| {
                // One cycle after another: request, approvals a second apart, the grant, and
                // its expiry ten minutes later; the next request a second after that.
                time = time.checked_add(second).expect("time");
                times.push(time);
                let at = time;
                time = at.checked_add(Span::from_secs(2 + 600)).expect("time");
                let mut bytes = [0u8; 10];
                bytes[..8].copy_from_slice(&i.to_be_bytes());
                event(
                    at,
                    "dave",
                    EventBody::AccessRequested {
                        auth: None,
                        request: RequestId::from_random(bytes),
                        target: "db".into(),
                        role: "default".into(),
                        duration,
                        reason: format!("maintenance window {i}"),
                        ticket: Some(format!("OPS-{i}")),
                        break_glass: false,
                        credential: None,
                        extends: None,
                        policy_version: 1,
                    },
                )
            })
            .collect();
        let requests = sign_all(requests, &keys);
        let mut rest = Vec::with_capacity(requests.len() * 4);
        for (r, at) in requests.iter().zip(&times) {
            let id = *r.event().body.request().expect("a request");
            let digest = breakglass_core::hex(r.leaf_hash());
            let a1 = at.checked_add(second).expect("time");
            let a2 = a1.checked_add(second).expect("time");
            let deadline = a2.checked_add(duration).expect("time");
            for (t, who) in [(a1, "bob"), (a2, "carol")] {
                rest.push(event(
                    t,
                    who,
                    EventBody::RequestApproved {
                        auth: None,
                        request: id,
                        request_digest: digest.clone(),
                        comment: None,
                    },
                ));
            }
            rest.push(event(
                a2,
                "broker",
                EventBody::AccessGranted {
                    request: id,
                    granted_at: a2,
                    issued: None,
                    deadline,
                    enforced_by_target: false,
                },
            ));
            rest.push(event(
                deadline,
                "broker",
                EventBody::AccessExpired { request: id },
            ));
        }
        let rest = sign_all(rest, &keys);
        let mut ordered = Vec::with_capacity(requests.len() * 5);
        for (r, others) in requests.into_iter().zip(rest.chunks(4)) {
            ordered.push(r);
            ordered.extend(others.iter().cloned());
        }
        sink.push(ordered).await;
        next = last + 1;
    }
    sink.flush().await;
    let note = signer
        .sign_checkpoint(&Checkpoint {
            origin: ORIGIN.into(),
            size: sink.frontier.size(),
            root: sink.frontier.root(),
            extensions: Vec::new(),
        })
        .expect("checkpoint");
    sqlx::query("INSERT INTO checkpoints (size, note) VALUES (?, ?)")
        .bind(i64::try_from(sink.frontier.size()).expect("size"))
        .bind(&note)
        .execute(&sink.pool)
        .await
        .expect("checkpoint row");
    let mut out = sink.bundle.finish(&note).expect("bundle");
    out.flush().expect("bundle");
    sink.pool.close().await;
}

/// A line of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets the process's peak resident memory to what it holds now (Linux `clear_refs` 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs");
}

fn far_future() -> Timestamp {
    Timestamp::parse_lenient("2100-01-01T00:00:00Z").expect("time")
}

async fn export_phase(dir: &Path) {
    let keys = Keys::load(dir);
    let store = Store::open(&format!("sqlite://{}", dir.join("log.db").display()))
        .await
        .expect("store");
    let t = Instant::now();
    let engine = Engine::open(
        store,
        Arc::new(ManualClock::new(far_future())),
        SystemKeys {
            log: keys.signer(),
            broker: keys.of("broker").clone(),
        },
    )
    .await
    .expect("the generated log opens");
    let open_s = t.elapsed().as_secs_f64();
    let held = status_mb("VmRSS:");
    reset_peak();
    let mut line = format!("open={open_s:.3} held={held:.1}");
    for (name, format) in [
        ("ocsf", Some(EventFormat::Ocsf)),
        ("jsonl", Some(EventFormat::Jsonl)),
        ("bundle", None),
    ] {
        let path = dir.join(format!("export.{name}"));
        let mut out =
            BufWriter::with_capacity(1 << 16, std::fs::File::create(&path).expect("file"));
        let t = Instant::now();
        let n = match format {
            Some(f) => {
                engine
                    .export_events(f, &ExportFilter::default(), &mut out, &mut |_, _| {})
                    .await
                    .expect("export")
                    .written
            }
            None => engine
                .export_bundle(&mut out, &mut |_, _| {})
                .await
                .expect("bundle"),
        };
        out.flush().expect("flush");
        let secs = t.elapsed().as_secs_f64();
        let mb = std::fs::metadata(&path).expect("file").len() as f64 / 1e6;
        line.push_str(&format!(
            " {name}={secs:.3} {name}_lines={n} {name}_mb={mb:.1}"
        ));
        std::fs::remove_file(&path).expect("remove");
    }
    line.push_str(&format!(" peak={:.1}", status_mb("VmHWM:")));
    println!("RESULT {line}");
}

fn verify_phase(dir: &Path) {
    let keys = Keys::load(dir);
    let t = Instant::now();
    let input = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(dir.join("log.bundle")).expect("bundle"),
    );
    let report = verify_bundle_stream(
        input,
        &VerifyOptions {
            log_key: Some(keys.signer().verifier()),
            earlier_checkpoint: None,
        },
    )
    .expect("the generated bundle verifies");
    println!(
        "RESULT verify={:.3} entries={} peak={:.1}",
        t.elapsed().as_secs_f64(),
        report.entries,
        status_mb("VmHWM:")
    );
}

/// Runs this binary's `phase` in a child process and returns its `RESULT` fields.
fn child(phase: &str, n: u64, dir: &Path) -> std::collections::BTreeMap<String, f64> {
    let out = Command::new(std::env::current_exe().expect("this binary"))
        .args(["--child", phase, &n.to_string(), &dir.display().to_string()])
        .output()
        .expect("the child phase runs");
    assert!(
        out.status.success(),
        "phase {phase} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

struct Run {
    events: u64,
    bundle_mb: f64,
    export: std::collections::BTreeMap<String, f64>,
    verify: std::collections::BTreeMap<String, f64>,
}

fn run(n: u64) -> Run {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir: PathBuf = tmp.path().to_owned();
    let t = Instant::now();
    child("generate", n, &dir);
    let generated = t.elapsed();
    let bundle_mb = std::fs::metadata(dir.join("log.bundle"))
        .expect("bundle")
        .len() as f64
        / 1e6;
    let export = child("export", n, &dir);
    // The verification's peak varies from run to run with what the allocator still holds of
    // the chunks before; the highest of three runs is the figure, and the fastest time.
    let runs: Vec<_> = (0..3).map(|_| child("verify", n, &dir)).collect();
    let mut verify = runs[0].clone();
    for r in &runs[1..] {
        let peak = verify["peak"].max(r["peak"]);
        let time = verify["verify"].min(r["verify"]);
        verify.insert("peak".into(), peak);
        verify.insert("verify".into(), time);
    }
    let events = verify["entries"] as u64;
    println!("  {events} events ({bundle_mb:.0} MB as a bundle; generated in {generated:.1?}):");
    let rate = |secs: f64| events as f64 / secs;
    println!(
        "    engine opens the log (verifying it): {:.1} s; then holds {:.0} MB",
        export["open"], export["held"]
    );
    for name in ["ocsf", "jsonl", "bundle"] {
        println!(
            "    export {name:<6}: {:>6.2} s ({:>7.0} events/s), {:.0} MB written",
            export[name],
            rate(export[name]),
            export[&format!("{name}_mb")]
        );
    }
    println!(
        "    exports' peak {:.0} MB: {:.0} MB of their own beside the open log",
        export["peak"],
        export["peak"] - export["held"]
    );
    println!(
        "    verify (streamed, pinned key; best time, highest peak of 3): {:.2} s ({:.0} events/s), peak {:.0} MB",
        verify["verify"],
        rate(verify["verify"]),
        verify["peak"]
    );
    Run {
        events,
        bundle_mb,
        export,
        verify,
    }
}

fn flat(what: &str, small: f64, large: f64, small_n: u64, large_n: u64) -> bool {
    let limit = small * 1.10 + 8.0;
    let met = large <= limit;
    println!(
        "    {what}: {small:.0} MB at {small_n} events, {large:.0} MB at {large_n} (limit {limit:.0} MB): {}",
        if met { "met" } else { "MISSED" }
    );
    met
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (phase, n, dir) = (&args[i + 1], &args[i + 2], Path::new(&args[i + 3]));
        let n: u64 = n.parse().expect("a count");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        match phase.as_str() {
            "generate" => runtime.block_on(generate_log(n, dir)),
            "export" => runtime.block_on(export_phase(dir)),
            "verify" => verify_phase(dir),
            other => panic!("no phase {other}"),
        }
        return;
    }
    let enforce = args.iter().any(|a| a == "--enforce");
    let n: u64 = std::env::var("BREAKGLASS_BENCH_COMPLIANCE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("compliance: export and verify, memory against the event count");
    let small = run(n / 4);
    let large = run(n);
    println!("  does memory grow with the event count?");
    let exports = flat(
        "exports' own memory",
        small.export["peak"] - small.export["held"],
        large.export["peak"] - large.export["held"],
        small.events,
        large.events,
    );
    let verify = flat(
        "verification's peak",
        small.verify["peak"],
        large.verify["peak"],
        small.events,
        large.events,
    );
    println!(
        "    (the bundle grew from {:.0} MB to {:.0} MB)",
        small.bundle_mb, large.bundle_mb
    );
    if enforce && !(exports && verify) {
        eprintln!("benchmark target missed");
        std::process::exit(1);
    }
}
