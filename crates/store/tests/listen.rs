//! Live updates: a team's log announces every committed change to its listeners, and a listener
//! whose connection is cut says so once it is back, so its reader catches up.

use std::time::Duration;

use breakglass_store::testing::PgCluster;
use breakglass_store::{Heard, LogListener, Store, StoredCheckpoint};
use sqlx::{Connection, PgConnection};

/// Appends one entry at the head with or without its checkpoint, in one committed transaction.
async fn append(store: &Store, covered: bool) {
    let mut tx = store.begin_append().await.unwrap();
    let head = tx.size().await.unwrap();
    let bytes = [format!("entry {head}").into_bytes()];
    if covered {
        let checkpoint = StoredCheckpoint {
            size: head + 1,
            note: format!("note {head}"),
        };
        tx.append(head, &bytes, &checkpoint).await.unwrap();
    } else {
        tx.append_uncovered(head, &bytes).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// What the listener hears next, or `None` when nothing comes within `within`.
async fn heard(listener: &mut LogListener, within: Duration) -> Option<Heard> {
    tokio::time::timeout(within, listener.next()).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_change_is_heard_and_a_lost_connection_is_reported_once_back() {
    let pg = PgCluster::start()
        .await
        .expect("a PostgreSQL test server (Debian package `postgresql`) is required");
    let url = pg.create_database().await.unwrap();
    let writer = Store::open(&url).await.unwrap();
    let reader = Store::open(&url).await.unwrap();
    let mut listener = reader
        .listen()
        .await
        .unwrap()
        .expect("a PostgreSQL log can be listened to");
    assert_eq!(heard(&mut listener, Duration::from_millis(300)).await, None);

    // An append with its checkpoint, an uncovered one, its cover, and a removal: each is heard.
    append(&writer, true).await;
    assert_eq!(
        heard(&mut listener, Duration::from_secs(10)).await,
        Some(Heard::Changed)
    );
    append(&writer, false).await;
    assert_eq!(
        heard(&mut listener, Duration::from_secs(10)).await,
        Some(Heard::Changed)
    );
    append(&writer, false).await;
    let mut tx = writer.begin_append().await.unwrap();
    tx.remove_uncovered(2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        heard(&mut listener, Duration::from_secs(10)).await,
        Some(Heard::Changed)
    );
    // (Signals coalesce: whatever is still queued is one more look, never a lost one.)
    while heard(&mut listener, Duration::from_millis(300))
        .await
        .is_some()
    {}
    let mut tx = writer.begin_append().await.unwrap();
    tx.cover(&StoredCheckpoint {
        size: 2,
        note: "note 2".into(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        heard(&mut listener, Duration::from_secs(10)).await,
        Some(Heard::Changed)
    );

    // A rolled-back append is not announced.
    let mut tx = writer.begin_append().await.unwrap();
    tx.append_uncovered(2, &[b"never".to_vec()]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(heard(&mut listener, Duration::from_millis(500)).await, None);

    // The server ends the listening connection: the listener connects again and says so, and
    // hears changes as before.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(ended, vec![true], "one listening connection was ended");
    admin.close().await.unwrap();
    assert_eq!(
        heard(&mut listener, Duration::from_secs(20)).await,
        Some(Heard::Reconnected)
    );
    append(&writer, true).await;
    assert_eq!(
        heard(&mut listener, Duration::from_secs(10)).await,
        Some(Heard::Changed)
    );

    drop(listener);
    writer.close().await;
    reader.close().await;
}

#[tokio::test]
async fn the_embedded_log_has_no_channel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("log.db").to_str().unwrap())
        .await
        .unwrap();
    assert!(store.listen().await.unwrap().is_none());
    store.close().await;
}
