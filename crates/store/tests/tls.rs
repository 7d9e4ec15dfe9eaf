//! Team mode over TLS: a real PostgreSQL serving a test CA's certificate. A `sslmode` URL as
//! libpq spells it is honoured by every connection the store makes (its pool, its listener and
//! the broker lease's); a server whose certificate the given CA did not issue is refused, and
//! nothing is written.

use std::time::Duration;

use breakglass_store::testing::PgCluster;
use breakglass_store::{Heard, Store, StoreError, StoredCheckpoint};
use sqlx::{Connection, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_uses_tls_when_the_url_asks_and_an_unknown_ca_is_refused() {
    let pg = PgCluster::start()
        .await
        .expect("a PostgreSQL test server (Debian package `postgresql`) is required");
    let ca = pg.enable_tls().await.expect("TLS on the test server");
    let url = pg.create_database().await.expect("a database");
    let tls_url = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());

    let store = Store::open(&tls_url).await.expect("opens over TLS");
    let mut listener = store
        .listen()
        .await
        .expect("listens")
        .expect("a PostgreSQL log");
    let mut tx = store.begin_append().await.unwrap();
    tx.append(
        0,
        &[b"genesis".to_vec()],
        &StoredCheckpoint {
            size: 1,
            note: "note".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), listener.next())
            .await
            .ok(),
        Some(Heard::Changed),
        "the listener hears the append over its own TLS connection"
    );
    let lease = store
        .try_broker_lease()
        .await
        .expect("the broker lease's connection")
        .expect("free");
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let (connections, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        connections >= 3,
        "the pool's, the listener's and the broker lease's connections are open: {connections}"
    );
    assert_eq!(encrypted, connections, "every one of them is encrypted");
    drop(listener);
    lease.release().await;
    store.close().await;

    // A CA that did not issue the server's certificate: refused before anything is written.
    let other = ca.with_file_name("other-ca.pem");
    let wrong = format!("{url}?sslmode=verify-full&sslrootcert={}", other.display());
    let e = Store::open(&wrong)
        .await
        .expect_err("an untrusted server certificate is refused");
    assert!(
        matches!(
            e,
            StoreError::Unreachable { .. } | StoreError::Rejected { .. }
        ),
        "{e:?}"
    );
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM log_entries")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(entries, 1);
    admin.close().await.unwrap();
}
