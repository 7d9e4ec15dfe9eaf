//! The storage story, told once and run on both backends: SQLite in a temporary file, and a real
//! PostgreSQL server started for the test (`PgCluster`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use breakglass_store::testing::PgCluster;
use breakglass_store::{Backend, Store, StoreError, StoredCheckpoint, StoredEntry};
use futures_util::TryStreamExt;

fn checkpoint(size: u64) -> StoredCheckpoint {
    StoredCheckpoint {
        size,
        note: format!("test.example/log\n{size}\nROOT{size}=\n\n— test.example sig{size}\n"),
    }
}

fn entry(n: u64) -> Vec<u8> {
    format!("entry {n}").into_bytes()
}

/// Appends `entries` at the head in one committed transaction.
async fn append_at_head(store: &Store, entries: &[Vec<u8>]) {
    let mut tx = store.begin_append().await.expect("take the write lock");
    let head = tx.size().await.expect("read the head inside the lock");
    tx.append(head, entries, &checkpoint(head + entries.len() as u64))
        .await
        .expect("an append at the head is accepted");
    tx.commit().await.expect("commit");
}

/// Opens databases for one backend: each call to `fresh` gives a new, empty location.
trait Databases {
    fn fresh(&self) -> impl Future<Output = String>;
}

struct SqliteFiles(tempfile::TempDir);

impl Databases for SqliteFiles {
    async fn fresh(&self) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.0
            .path()
            .join(format!("db{n}/log.db"))
            .to_str()
            .unwrap()
            .to_owned()
    }
}

impl Databases for PgCluster {
    async fn fresh(&self) -> String {
        self.create_database()
            .await
            .expect("create a test database")
    }
}

async fn story(dbs: &impl Databases, backend: Backend) {
    tokio::join!(
        first_append_survives_reopen(dbs.fresh().await, backend),
        refused_appends_write_nothing(dbs.fresh().await),
        concurrent_writers_never_lose_or_fork(dbs.fresh().await),
        the_head_pairs_a_size_with_its_checkpoint_beside_a_writer(dbs.fresh().await),
        concurrent_opens_migrate_once(dbs.fresh().await),
        streaming_reads_everything(dbs.fresh().await),
        one_broker_lease_at_a_time(dbs.fresh().await),
        uncovered_entries_are_covered_or_removed_and_covered_ones_stay(dbs.fresh().await),
    );
}

/// The size the newest checkpoint covers.
async fn covered(store: &Store) -> u64 {
    let latest = store.latest_checkpoint().await.expect("read");
    latest.map_or(0, |c| c.size)
}

/// Team mode's appends: entries without a checkpoint, covered later by one; entries no
/// checkpoint covers may be removed, covered ones never (the schema refuses too).
async fn uncovered_entries_are_covered_or_removed_and_covered_ones_stay(location: String) {
    let store = Store::open(&location).await.expect("open");
    append_at_head(&store, &[entry(0)]).await;
    let mut tx = store.begin_append().await.expect("lock");
    tx.append_uncovered(1, &[entry(1), entry(2)])
        .await
        .expect("appended without a checkpoint");
    tx.commit().await.expect("commit");
    assert_eq!(store.size().await.expect("size"), 3);
    assert_eq!(covered(&store).await, 1);

    let mut tx = store.begin_append().await.expect("lock");
    assert_eq!(tx.covered().await.expect("covered"), 1);
    match tx.remove_uncovered(0).await {
        Err(StoreError::Covered {
            index: 0,
            covered: 1,
        }) => {}
        other => panic!("a covered entry is never removed: {other:?}"),
    }
    match tx.cover(&checkpoint(2)).await {
        Err(StoreError::CheckpointMismatch { .. }) => {}
        other => panic!("a checkpoint covers exactly the log: {other:?}"),
    }
    assert_eq!(tx.remove_uncovered(2).await.expect("removed"), 1);
    tx.cover(&checkpoint(2)).await.expect("covered");
    tx.commit().await.expect("commit");
    assert_eq!(store.size().await.expect("size"), 2);
    assert_eq!(covered(&store).await, 2);
    let mut tx = store.begin_append().await.expect("lock");
    match tx.cover(&checkpoint(2)).await {
        Err(StoreError::CheckpointMismatch { .. }) => {}
        other => panic!("nothing new to cover: {other:?}"),
    }
    drop(tx);

    // The schema itself refuses to remove a covered entry, whoever asks.
    let statement = "DELETE FROM log_entries WHERE idx = 1";
    let refused = match &store {
        Store::Sqlite(_) => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
                "sqlite://{location}"
            ))
            .await
            .expect("connect");
            sqlx::query(statement).execute(&mut conn).await.is_err()
        }
        Store::Postgres(_) => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&location)
                .await
                .expect("connect");
            sqlx::query(statement).execute(&mut conn).await.is_err()
        }
    };
    assert!(refused, "the schema refuses to remove a covered entry");
    assert_eq!(store.entries(0, 2).await.expect("read").len(), 2);
    store.close().await;
}

/// Exactly one holder of the broker lease, across separately opened stores (as separate
/// processes would); released on drop, confirmed by `check` while held.
async fn one_broker_lease_at_a_time(location: String) {
    let a = Store::open(&location).await.expect("open a");
    let b = Store::open(&location).await.expect("open b");
    let mut first = a
        .try_broker_lease()
        .await
        .expect("try")
        .expect("the lease is free");
    first.check().await.expect("held");
    assert!(
        b.try_broker_lease().await.expect("try").is_none(),
        "a second broker waits"
    );
    assert!(
        a.try_broker_lease().await.expect("try").is_none(),
        "even through the same store"
    );
    first.release().await;
    let mut second = b
        .try_broker_lease()
        .await
        .expect("try")
        .expect("free again once released");
    second.check().await.expect("held");
    drop(second);
    // Dropping frees it too (for PostgreSQL, once the server sees the connection close).
    let mut again = None;
    for _ in 0..50 {
        again = a.try_broker_lease().await.expect("try");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a dropped lease is free again");
}

async fn first_append_survives_reopen(location: String, backend: Backend) {
    let store = Store::open(&location).await.expect("open a fresh log");
    assert_eq!(store.backend(), backend);
    assert_eq!(store.size().await.unwrap(), 0, "a fresh log is empty");
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        None,
        "a fresh log has no checkpoint"
    );
    assert!(store.entries(0, 10).await.unwrap().is_empty());

    append_at_head(&store, &[entry(0), entry(1), entry(2)]).await;
    store.close().await;

    let store = Store::open(&location).await.expect("reopen");
    assert_eq!(
        store.size().await.unwrap(),
        3,
        "a committed append survives reopening"
    );
    let expected: Vec<StoredEntry> = (0..3)
        .map(|i| StoredEntry {
            index: i,
            bytes: entry(i),
        })
        .collect();
    assert_eq!(store.entries(0, 3).await.unwrap(), expected);
    assert_eq!(
        store.entries(1, 100).await.unwrap(),
        expected[1..],
        "a range past the head stops at the head"
    );
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(checkpoint(3))
    );
    assert_eq!(store.checkpoint(3).await.unwrap(), Some(checkpoint(3)));
    assert_eq!(
        store.checkpoint(2).await.unwrap(),
        None,
        "no checkpoint was stored for size 2"
    );
    assert!(matches!(
        store.entries(2, 1).await,
        Err(StoreError::InvalidRange { from: 2, to: 1 })
    ));

    // A second append moves the latest checkpoint; the first stays retrievable.
    append_at_head(&store, &[entry(3)]).await;
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(checkpoint(4))
    );
    assert_eq!(store.checkpoint(3).await.unwrap(), Some(checkpoint(3)));
    store.close().await;
}

async fn refused_appends_write_nothing(location: String) {
    let store = Store::open(&location).await.unwrap();
    append_at_head(&store, &[entry(0), entry(1)]).await;

    let mut tx = store.begin_append().await.unwrap();
    for wrong in [0, 1, 3] {
        match tx.append(wrong, &[entry(9)], &checkpoint(3)).await {
            Err(StoreError::NotAtHead {
                expected: 2,
                actual,
            }) => assert_eq!(actual, wrong),
            other => {
                panic!("an append at {wrong} when the head is 2 must be refused, got {other:?}")
            }
        }
    }
    match tx.append(2, &[entry(2)], &checkpoint(4)).await {
        Err(StoreError::CheckpointMismatch {
            checkpoint: 4,
            new_size: 3,
        }) => {}
        other => panic!("a checkpoint for the wrong size must be refused, got {other:?}"),
    }
    assert!(matches!(
        tx.append(2, &[], &checkpoint(2)).await,
        Err(StoreError::EmptyAppend)
    ));
    // Refusals leave the transaction usable and empty: committing it writes nothing.
    tx.commit()
        .await
        .expect("a transaction with only refused appends commits");
    assert_eq!(
        store.size().await.unwrap(),
        2,
        "refused appends wrote no entry"
    );
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(checkpoint(2)),
        "nor a checkpoint"
    );

    // Dropping an append transaction rolls it back.
    {
        let mut tx = store.begin_append().await.unwrap();
        tx.append(2, &[entry(2)], &checkpoint(3)).await.unwrap();
        assert_eq!(
            tx.size().await.unwrap(),
            3,
            "the append is visible inside its transaction"
        );
        assert_eq!(tx.entries(2, 3).await.unwrap()[0].bytes, entry(2));
    }
    assert_eq!(
        store.size().await.unwrap(),
        2,
        "a dropped append transaction leaves nothing"
    );
    assert_eq!(store.checkpoint(3).await.unwrap(), None);

    // And the lock was released: the next writer gets in and appends where the head really is.
    append_at_head(&store, &[entry(2)]).await;
    assert_eq!(store.size().await.unwrap(), 3);
    store.close().await;
}

async fn concurrent_writers_never_lose_or_fork(location: String) {
    const PER_WRITER: u64 = 50;
    // Two independent handles, as two processes would have.
    let first = Arc::new(Store::open(&location).await.unwrap());
    let second = Arc::new(Store::open(&location).await.unwrap());
    let writer = |store: Arc<Store>, name: &'static str| {
        tokio::spawn(async move {
            for n in 0..PER_WRITER {
                append_at_head(&store, &[format!("{name} {n}").into_bytes()]).await;
            }
        })
    };
    let (a, b) = tokio::join!(writer(first.clone(), "a"), writer(second.clone(), "b"));
    a.unwrap();
    b.unwrap();

    let entries = first.entries(0, 1000).await.unwrap();
    assert_eq!(
        entries.len() as u64,
        2 * PER_WRITER,
        "every acknowledged append is stored"
    );
    assert!(
        entries.iter().zip(0..).all(|(e, i)| e.index == i),
        "indexes are contiguous from 0"
    );
    let distinct: HashSet<&[u8]> = entries.iter().map(|e| e.bytes.as_slice()).collect();
    assert_eq!(
        distinct.len() as u64,
        2 * PER_WRITER,
        "no append was stored twice"
    );
    assert_eq!(
        first.latest_checkpoint().await.unwrap().map(|c| c.size),
        Some(2 * PER_WRITER),
        "the latest checkpoint covers the whole log"
    );
    for store in [first, second] {
        Arc::into_inner(store).unwrap().close().await;
    }
}

/// Every append here carries its checkpoint, so each head read beside a writer, from another
/// handle (as another process reads), must pair the size with the checkpoint of that size: a
/// size read after the checkpoint, apart from it, could count an entry appended in between
/// (seen as "no signed checkpoint covers the 7 entries" from a command beside another).
async fn the_head_pairs_a_size_with_its_checkpoint_beside_a_writer(location: String) {
    const APPENDS: u64 = 200;
    let writer = Arc::new(Store::open(&location).await.unwrap());
    let reader = Store::open(&location).await.unwrap();
    assert_eq!(reader.head().await.unwrap(), (0, None), "an empty log");
    let appending = {
        let writer = writer.clone();
        tokio::spawn(async move {
            for n in 0..APPENDS {
                append_at_head(&writer, &[entry(n)]).await;
            }
        })
    };
    let mut reads = 0u64;
    while !appending.is_finished() || reads == 0 {
        let (size, latest) = reader.head().await.unwrap();
        assert_eq!(
            latest.as_ref().map_or(0, |c| c.size),
            size,
            "the head's checkpoint covers exactly the entries it counts"
        );
        if let Some(latest) = latest {
            assert_eq!(
                latest,
                checkpoint(size),
                "the note is the one stored with it"
            );
        }
        reads += 1;
        tokio::task::yield_now().await;
    }
    appending.await.unwrap();
    assert_eq!(
        reader.head().await.unwrap(),
        (APPENDS, Some(checkpoint(APPENDS)))
    );
    reader.close().await;
    Arc::into_inner(writer).unwrap().close().await;
}

async fn concurrent_opens_migrate_once(location: String) {
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let location = location.clone();
            tokio::spawn(async move { Store::open(&location).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(
            open.await
                .unwrap()
                .expect("every concurrent open of a fresh database succeeds"),
        );
    }
    append_at_head(&stores[0], &[entry(0)]).await;
    for store in stores {
        assert_eq!(
            store.size().await.unwrap(),
            1,
            "all handles see one database"
        );
        store.close().await;
    }
}

async fn streaming_reads_everything(location: String) {
    let store = Store::open(&location).await.unwrap();
    let batch: Vec<Vec<u8>> = (0..300).map(entry).collect();
    append_at_head(&store, &batch).await;
    let streamed: Vec<StoredEntry> = store.stream_entries(100).try_collect().await.unwrap();
    assert_eq!(streamed.len(), 200);
    assert!(streamed
        .iter()
        .zip(100..)
        .all(|(e, i)| e.index == i && e.bytes == entry(i)));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_sqlite() {
    story(&SqliteFiles(tempfile::tempdir().unwrap()), Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn story_on_postgres() {
    let pg = PgCluster::start()
        .await
        .expect("a PostgreSQL test server (Debian package `postgresql`) is required");
    story(&pg, Backend::Postgres).await;
}
