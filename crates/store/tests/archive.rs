//! Archiving (embedded logs): a checkpointed prefix moves out of the database into a bundle
//! file beside it; every read still sees the whole log, byte for byte; nothing is deleted that
//! the file does not hold; and a missing or altered file is reported, never papered over.

use std::path::{Path, PathBuf};

use breakglass_store::testing::PgCluster;
use breakglass_store::{Store, StoreError, StoredArchive, StoredCheckpoint, StoredEntry};
use sqlx::{Connection, Executor};

fn checkpoint(size: u64) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("test.example/log\n{size}\nROOT{size}=\n\n— test.example sig{size}\n"),
    }
}

fn entry(n: u64) -> Vec<u8> {
    format!("{{\"entry\":{n}}}").into_bytes()
}

/// Appends entries `from..to` at the head in one committed transaction, under one checkpoint.
async fn append(store: &Store, from: u64, to: u64) {
    let mut tx = store.begin_append().await.unwrap();
    let entries: Vec<_> = (from..to).map(entry).collect();
    tx.append(from, &entries, &checkpoint(to)).await.unwrap();
    tx.commit().await.unwrap();
}

/// A log of 10 entries, each appended on its own (so each size has its checkpoint), in `dir`.
async fn log_of_ten(dir: &Path) -> (Store, PathBuf) {
    let path = dir.join("log.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    for n in 0..10 {
        append(&store, n, n + 1).await;
    }
    (store, path)
}

/// Writes a bundle-shaped file (header, the given entries' lines, trailer) at `dir/name`.
fn write_archive(dir: &Path, name: &str, entries: impl IntoIterator<Item = Vec<u8>>) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = b"{\"format\":\"test\"}\n".to_vec();
    for e in entries {
        bytes.extend_from_slice(&e);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(b"{\"checkpoint\":\"test\"}\n");
    std::fs::write(path, bytes).unwrap();
}

async fn archive(store: &Store, size: u64, file: &str) -> Result<StoredArchive, StoreError> {
    let mut tx = store.begin_append().await.unwrap();
    let done = tx.archive(size, file).await?;
    tx.commit().await.unwrap();
    Ok(done)
}

/// How many rows the database itself holds.
async fn rows(path: &Path) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM log_entries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

fn all(n: u64) -> Vec<StoredEntry> {
    (0..n)
        .map(|index| StoredEntry {
            index,
            bytes: entry(index),
        })
        .collect()
}

#[tokio::test]
async fn an_archived_prefix_leaves_the_database_and_every_read_still_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = log_of_ten(dir.path()).await;
    write_archive(dir.path(), "archive/log-6.bundle", (0..6).map(entry));

    let done = archive(&store, 6, "archive/log-6.bundle").await.unwrap();
    assert_eq!(done.size, 6);
    assert_eq!(done.file, "archive/log-6.bundle");
    let sha = sha256_of(&dir.path().join("archive/log-6.bundle"));
    assert_eq!(done.sha256, sha, "the file's own SHA-256 is recorded");
    assert_eq!(store.archive().await.unwrap(), Some(done.clone()));
    assert_eq!(
        rows(&path).await,
        4,
        "the six archived rows left the database"
    );

    assert_eq!(store.size().await.unwrap(), 10, "the log did not shrink");
    assert_eq!(store.entries(0, 10).await.unwrap(), all(10));
    assert_eq!(store.entries(4, 8).await.unwrap(), all(8)[4..].to_vec());
    assert_eq!(store.entries(2, 3).await.unwrap(), all(3)[2..].to_vec());
    let mut tx = store.begin_append().await.unwrap();
    assert_eq!(
        tx.entries(0, 10).await.unwrap(),
        all(10),
        "inside the lock too"
    );
    tx.rollback().await.unwrap();
    append(&store, 10, 11).await;
    store.close().await;

    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(
        store.entries(0, 11).await.unwrap(),
        all(11),
        "reopened, it reads the file again"
    );

    // A later archive takes in more; the earlier file is then no longer read.
    write_archive(dir.path(), "archive/log-9.bundle", (0..9).map(entry));
    archive(&store, 9, "archive/log-9.bundle").await.unwrap();
    std::fs::remove_file(dir.path().join("archive/log-6.bundle")).unwrap();
    assert_eq!(rows(&path).await, 2);
    assert_eq!(store.entries(0, 11).await.unwrap(), all(11));
    store.close().await;
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

#[tokio::test]
async fn an_archive_that_does_not_hold_the_log_exactly_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = log_of_ten(dir.path()).await;
    // Entries 10 and 11 under one checkpoint: size 11 has none.
    append(&store, 10, 12).await;
    let mut altered: Vec<_> = (0..6).map(entry).collect();
    altered[3] = b"{\"entry\":33}".to_vec();
    write_archive(dir.path(), "altered.bundle", altered);
    write_archive(dir.path(), "short.bundle", (0..5).map(entry));
    write_archive(dir.path(), "eleven.bundle", (0..11).map(entry));
    write_archive(dir.path(), "all.bundle", (0..12).map(entry));
    std::fs::write(dir.path().join("torn.bundle"), b"{}\n{\"entry\":0}\n{}").unwrap();
    let outside = tempfile::tempdir().unwrap();
    write_archive(outside.path(), "six.bundle", (0..6).map(entry));
    let outside = outside.path().join("six.bundle");

    let cases: [(u64, &str, &str); 9] = [
        (6, "altered.bundle", "entry 3 in altered.bundle differs"),
        (6, "short.bundle", "holds 5 entries, not 6"),
        (
            11,
            "eleven.bundle",
            "no checkpoint covers exactly the first 11",
        ),
        (12, "all.bundle", "the newest entry stays in the database"),
        (0, "short.bundle", "at least one entry"),
        (1, "torn.bundle", "whole line"),
        (6, "missing.bundle", "No such file"),
        (6, "../six.bundle", "inside the database's directory"),
        (
            6,
            outside.to_str().unwrap(),
            "inside the database's directory",
        ),
    ];
    for (size, file, why) in cases {
        let mut tx = store.begin_append().await.unwrap();
        match tx.archive(size, file).await {
            Err(e @ StoreError::ArchiveRefused { .. }) => {
                let message = e.to_string();
                assert!(message.contains(why), "{file}: {message}");
                assert!(message.contains("nothing was changed"), "{message}");
            }
            other => panic!("archiving {file} as {size} entries: {other:?}"),
        }
        tx.rollback().await.unwrap();
        assert_eq!(rows(&path).await, 12, "{file}: nothing was deleted");
        assert_eq!(
            store.archive().await.unwrap(),
            None,
            "{file}: nothing recorded"
        );
    }
    assert_eq!(store.entries(0, 12).await.unwrap(), all(12));
    store.close().await;
}

#[tokio::test]
async fn a_missing_or_altered_archive_file_is_reported_and_the_rest_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = log_of_ten(dir.path()).await;
    write_archive(dir.path(), "old.bundle", (0..6).map(entry));
    archive(&store, 6, "old.bundle").await.unwrap();
    store.close().await;
    let file = dir.path().join("old.bundle");
    let good = std::fs::read(&file).unwrap();

    // One byte of an entry changed: same length, same lines, another SHA-256.
    let mut bad = good.clone();
    let at = bad.iter().rposition(|&b| b == b'5').unwrap();
    bad[at] = b'7';
    for (contents, why) in [(Some(bad), "was changed or replaced"), (None, "is missing")] {
        match &contents {
            Some(bytes) => std::fs::write(&file, bytes).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let store = Store::open(path.to_str().unwrap()).await.unwrap();
        match store.entries(0, 10).await {
            Err(e @ StoreError::Archive { .. }) => {
                let message = e.to_string();
                assert!(message.contains(why), "{message}");
                assert!(message.contains("first 6 entries"), "{message}");
                assert!(message.contains(&file.display().to_string()), "{message}");
            }
            other => panic!("reading with the archive {why}: {other:?}"),
        }
        assert_eq!(
            store.entries(6, 10).await.unwrap(),
            all(10)[6..].to_vec(),
            "what the database holds still reads"
        );
        store.close().await;
    }
    std::fs::write(&file, &good).unwrap();
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(
        store.entries(0, 10).await.unwrap(),
        all(10),
        "the file restored, all reads"
    );
    store.close().await;
}

#[tokio::test]
async fn the_database_refuses_to_delete_unarchived_entries_or_rewrite_archive_records() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = log_of_ten(dir.path()).await;
    write_archive(dir.path(), "a.bundle", (0..6).map(entry));
    archive(&store, 6, "a.bundle").await.unwrap();
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for statement in [
        "DELETE FROM log_entries WHERE idx = 6",
        "DELETE FROM log_entries",
        "UPDATE archives SET size = 9",
        "UPDATE archives SET sha256 = '0000000000000000000000000000000000000000000000000000000000000000'",
        "DELETE FROM archives",
        "INSERT INTO archives (size, file, sha256) VALUES (8, 'x', 'short')",
    ] {
        let refused = conn.execute(statement).await;
        assert!(refused.is_err(), "{statement} was accepted");
    }
    conn.close().await.unwrap();
    assert_eq!(rows(&path).await, 4);
}

#[tokio::test]
async fn a_log_on_postgresql_is_not_archived() {
    let pg = PgCluster::start().await.unwrap();
    let url = pg.create_database().await.unwrap();
    let store = Store::open(&url).await.unwrap();
    for n in 0..3 {
        append(&store, n, n + 1).await;
    }
    let mut tx = store.begin_append().await.unwrap();
    let refused = tx.archive(1, "a.bundle").await.unwrap_err();
    assert!(
        matches!(refused, StoreError::ArchiveRefused { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
    tx.rollback().await.unwrap();
    assert_eq!(store.archive().await.unwrap(), None);
    assert_eq!(store.archive_dir(), None);
    assert_eq!(store.entries(0, 3).await.unwrap().len(), 3);
    store.close().await;
}
