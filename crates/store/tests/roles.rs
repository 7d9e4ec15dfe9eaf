//! The database privileges README.md's team setup gives each party, on a real PostgreSQL: the
//! broker's role owns the schema; an app's (a member's) role may read the log and append to it,
//! and nothing else — it opens the log, appends uncovered entries and listens, while writing a
//! checkpoint, removing an entry or changing the schema is refused by the server itself.

use breakglass_store::testing::{grant_apps, team_roles, PgCluster};
use breakglass_store::{Store, StoreError, StoredCheckpoint, StoredCosignature};
use sqlx::{Connection, Executor, PgConnection};

fn denied(e: &StoreError) -> bool {
    e.to_string().contains("permission denied") || format!("{e:?}").contains("42501")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_role_reads_and_appends_and_nothing_more() {
    let pg = PgCluster::start()
        .await
        .expect("a PostgreSQL test server (Debian package `postgresql`) is required");
    let url = pg.create_database().await.expect("a database");
    let (broker_url, app_url) = team_roles(&url).await.expect("README's roles");
    // The broker's role creates the schema on first open (as `breakglass init` does).
    let broker = Store::open(&broker_url)
        .await
        .expect("the broker's role migrates a fresh database");
    let mut tx = broker.begin_append().await.unwrap();
    tx.append(
        0,
        &[b"genesis".to_vec()],
        &StoredCheckpoint {
            size: 1,
            note: "note 1".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    grant_apps(&broker_url).await.expect("README's grants");

    let member = Store::open(&app_url)
        .await
        .expect("an app's role opens the migrated log");
    assert_eq!(member.size().await.unwrap(), 1);
    assert_eq!(member.latest_checkpoint().await.unwrap().unwrap().size, 1);
    assert!(member.listen().await.unwrap().is_some(), "it may listen");
    let mut tx = member.begin_append().await.unwrap();
    tx.append_uncovered(1, &[b"a request".to_vec()])
        .await
        .expect("an app appends entries");
    tx.commit().await.unwrap();

    let mut tx = member.begin_append().await.unwrap();
    let e = tx
        .cover(&StoredCheckpoint {
            size: 2,
            note: "forged".into(),
        })
        .await
        .expect_err("an app's role cannot write a checkpoint");
    assert!(denied(&e), "refused by the server: {e}");
    tx.rollback().await.unwrap();
    let mut tx = member.begin_append().await.unwrap();
    let e = tx
        .remove_uncovered(1)
        .await
        .expect_err("an app's role cannot remove entries");
    assert!(denied(&e), "refused by the server: {e}");
    tx.rollback().await.unwrap();
    // An app keeps its witness's newest cosignature; an older one never replaces it.
    let cosignature = |size: u64, signature: &str| StoredCosignature {
        witness: "log/witness/dana".into(),
        size,
        checkpoint: format!("log\n{size}\nroot\n"),
        signature: signature.into(),
    };
    assert!(member
        .put_cosignature(&cosignature(1, "first"))
        .await
        .expect("stored"));
    assert!(member
        .put_cosignature(&cosignature(2, "second"))
        .await
        .expect("stored"));
    assert!(!member
        .put_cosignature(&cosignature(1, "older"))
        .await
        .expect("kept the newer"));
    assert_eq!(
        member.cosignatures().await.unwrap(),
        [cosignature(2, "second")]
    );
    let mut conn = PgConnection::connect(&app_url).await.unwrap();
    for sql in [
        "DELETE FROM cosignatures",
        "UPDATE log_entries SET entry = 'x' WHERE idx = 1",
        "CREATE TABLE t (x int)",
        "DROP TRIGGER log_entries_no_update ON log_entries",
    ] {
        let e = conn.execute(sql).await.expect_err(sql);
        assert!(
            e.to_string().contains("permission denied") || e.to_string().contains("must be owner"),
            "{sql}: {e}"
        );
    }
    conn.close().await.unwrap();

    // The broker covers what the app appended.
    let mut tx = broker.begin_append().await.unwrap();
    tx.cover(&StoredCheckpoint {
        size: 2,
        note: "note 2".into(),
    })
    .await
    .expect("the broker's role covers");
    tx.commit().await.unwrap();
    assert_eq!(member.latest_checkpoint().await.unwrap().unwrap().size, 2);
    member.close().await;
    broker.close().await;
}
