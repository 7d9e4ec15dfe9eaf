//! Retention: `Engine::archive` moves the log's old entries out of the database into a bundle
//! beside it. The tree continues — the whole log exports to the same bundle, byte for byte;
//! an archived request's evidence still verifies; the log reopens and grows — the archive
//! verifies on its own; a later archive replaces an earlier one; and a failed or pointless
//! archive changes nothing, while a missing or altered archive file stops the log from opening.

mod support;

use std::path::Path;
use std::sync::Arc;

use breakglass_core::{Span, Status};
use breakglass_engine::{Engine, EngineError, EventFormat, ExportFilter};
use breakglass_ledger::{verify_bundle, verify_evidence, VerifyOptions};
use breakglass_store::Store;
use sqlx::Connection;
use support::history::{history_with_keys, start};

/// The history's start plus `span`.
fn after(span: &str) -> breakglass_core::Timestamp {
    start().checked_add(Span::parse(span).unwrap()).unwrap()
}

async fn bundle(e: &Engine) -> Vec<u8> {
    let mut out = Vec::new();
    e.export_bundle(&mut out, &mut |_, _| {}).await.unwrap();
    out
}

async fn jsonl(e: &Engine) -> Vec<u8> {
    let mut out = Vec::new();
    e.export_events(
        EventFormat::Jsonl,
        &ExportFilter::default(),
        &mut out,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    out
}

/// The first `n` entry lines of a bundle.
fn first_entries(bundle: &[u8], n: u64) -> Vec<&[u8]> {
    let lines: Vec<_> = bundle
        .split(|&c| c == b'\n')
        .skip(1)
        .take(n as usize)
        .collect();
    assert_eq!(lines.len() as u64, n);
    lines
}

/// Rows the database itself holds.
async fn rows(db: &Path) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM log_entries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn old_entries_move_to_a_bundle_and_the_log_reads_and_grows_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("log.db");
    let (mut e, keys, clock, admin) = history_with_keys(tmp.path()).await;
    let size = e.size();
    let whole = bundle(&e).await;
    let events = jsonl(&e).await;
    let first = e
        .state()
        .requests()
        .find(|r| r.status == Status::Expired)
        .expect("the history's first grant expired")
        .id;

    // The first grant expired at 11:00; everything before 11:30 goes.
    let cutoff = after("90m");
    let done = e.archive(cutoff).await.unwrap();
    assert!(done.size > 5 && done.size < size, "{done:?}");
    assert_eq!(done.moved, done.size);
    assert_eq!(done.replaced, None);
    assert_eq!(
        done.path,
        tmp.path().join(format!("archive/log-{}.bundle", done.size))
    );
    assert_eq!(rows(&db).await, (size - done.size) as i64);

    // The archive is a bundle any auditor verifies, of exactly the archived entries.
    let archived = std::fs::read(&done.path).unwrap();
    let opts = VerifyOptions {
        log_key: Some(e.log_verifier()),
        earlier_checkpoint: None,
    };
    let report = verify_bundle(&archived, &opts).expect("the archive verifies on its own");
    assert_eq!(report.entries, done.size);
    assert!(archived
        .ends_with(format!("{}\n", serde_json::json!({"checkpoint": done.checkpoint})).as_bytes()));
    assert_eq!(
        first_entries(&archived, done.size),
        first_entries(&whole, done.size),
        "the archive's entries are the log's first, byte for byte"
    );

    // Every read of the log still sees all of it.
    assert_eq!(bundle(&e).await, whole, "the whole log exports as before");
    assert_eq!(jsonl(&e).await, events);
    let (package, report) = e.evidence(&first).await.unwrap();
    assert!(report.entries > 0);
    verify_evidence(&package, &opts).expect("an archived request's evidence verifies");
    e.close().await;

    // Reopened, it replays the archive and the database, and grows.
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    let mut e = Engine::open(store, Arc::new(clock.clone()), keys())
        .await
        .unwrap();
    assert_eq!(e.size(), size);
    assert_eq!(bundle(&e).await, whole);
    clock.advance(Span::parse("1d").unwrap());
    e.revoke_identity(&admin, "dave", "moved teams".into())
        .await
        .unwrap();
    let grown = e.size();
    assert_eq!(grown, size + 1);

    // A later archive takes in more and replaces the first.
    let later = e.archive(after("3h10m")).await.unwrap();
    assert!(later.size > done.size, "{later:?}");
    assert_eq!(later.moved, later.size - done.size);
    assert_eq!(later.replaced.as_deref(), Some(done.path.as_path()));
    assert!(!later.replaced_left);
    assert_eq!(
        files_in(&tmp.path().join("archive")),
        vec![format!("log-{}.bundle", later.size)]
    );
    assert_eq!(rows(&db).await, (grown - later.size) as i64);
    let again = bundle(&e).await;
    assert_eq!(
        first_entries(&again, size),
        first_entries(&whole, size),
        "the tree continued: the log's entries kept their places"
    );
    let report = verify_bundle(&again, &opts).expect("the whole log verifies");
    assert_eq!(report.entries, grown);
    e.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_with_nothing_to_move_or_nowhere_to_go_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("log.db");
    let (mut e, _, _, _) = history_with_keys(tmp.path()).await;
    let size = e.size();
    let whole = bundle(&e).await;

    let nothing = e.archive(start()).await.unwrap_err();
    assert!(matches!(nothing, EngineError::Invalid(_)), "{nothing:?}");
    assert!(
        nothing.to_string().contains("nothing to archive"),
        "{nothing}"
    );

    // The archive directory cannot be made: a file is in its place.
    std::fs::write(tmp.path().join("archive"), b"in the way").unwrap();
    let blocked = e.archive(after("90m")).await.unwrap_err();
    assert!(
        blocked.to_string().contains("cannot write the archive"),
        "{blocked}"
    );
    std::fs::remove_file(tmp.path().join("archive")).unwrap();

    // The database refuses to record it: the bundle already written is removed again.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_archives BEFORE INSERT ON archives \
         BEGIN SELECT RAISE(ABORT, 'refused for the test'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let refused = e.archive(after("90m")).await.unwrap_err();
    assert!(
        refused.to_string().contains("refused for the test"),
        "{refused}"
    );
    assert_eq!(files_in(&tmp.path().join("archive")), Vec::<String>::new());

    assert_eq!(rows(&db).await, size as i64, "no row left the database");
    assert_eq!(e.store().archive().await.unwrap(), None);
    assert_eq!(bundle(&e).await, whole);
    e.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_altered_archive_stops_the_log_from_opening_until_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("log.db");
    let (mut e, keys, clock, _) = history_with_keys(tmp.path()).await;
    let done = e.archive(after("90m")).await.unwrap();
    e.close().await;
    let good = std::fs::read(&done.path).unwrap();
    let open = || async {
        let store = Store::open(db.to_str().unwrap()).await.unwrap();
        Engine::open(store, Arc::new(clock.clone()), keys()).await
    };

    // The header's version altered: same length, another SHA-256.
    let text = String::from_utf8(good.clone()).unwrap();
    let altered = text.replacen("\"version\":1", "\"version\":2", 1);
    assert_ne!(altered, text);
    for (contents, why) in [
        (Some(altered.into_bytes()), "was changed or replaced"),
        (None, "is missing"),
    ] {
        match &contents {
            Some(bytes) => std::fs::write(&done.path, bytes).unwrap(),
            None => std::fs::remove_file(&done.path).unwrap(),
        }
        let err = open()
            .await
            .expect_err("the log does not open without its archive");
        let message = err.to_string();
        assert!(message.contains(why), "{message}");
        assert!(
            message.contains(&done.path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(&done.sha256), "{message}");
    }
    std::fs::write(&done.path, &good).unwrap();
    let e = open().await.expect("restored, the log opens");
    e.close().await;
}
