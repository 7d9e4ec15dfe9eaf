//! Opening a log: what gets created, and the distinct errors for what cannot be used.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use breakglass_store::testing::PgCluster;
use breakglass_store::{Store, StoreError, StoredCheckpoint};
use sqlx::{Connection, Executor};

async fn sql(url: &str, statements: &str) {
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        conn.execute(statements).await.unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{url}?mode=rwc"))
            .await
            .unwrap();
        conn.execute(statements).await.unwrap();
        conn.close().await.unwrap();
    }
}

async fn append_one(store: &Store, bytes: &[u8]) {
    let mut tx = store.begin_append().await.unwrap();
    let head = tx.size().await.unwrap();
    let checkpoint = StoredCheckpoint {
        size: head + 1,
        note: "note".into(),
    };
    tx.append(head, &[bytes.to_vec()], &checkpoint)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn sqlite_file_and_parent_are_created_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/log.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&dir.path().join("a/b")),
        0o700,
        "the log's directory is private"
    );
    assert_eq!(mode(&path), 0o600, "the log file is private");
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        journal, "wal",
        "appends are durable through the write-ahead log"
    );
    conn.close().await.unwrap();

    let url = format!("sqlite://{}", dir.path().join("c/log.db").display());
    let store = Store::open(&url).await.expect("a sqlite:// URL opens too");
    assert_eq!(store.size().await.unwrap(), 0);
    store.close().await;
}

/// Makes `dir` unwritable, even for root (which ignores permission bits): the immutable
/// attribute when running as root, mode 0500 otherwise. Undone on drop so the dir can be removed.
struct ReadOnly<'a>(&'a Path, bool);

impl<'a> ReadOnly<'a> {
    fn new(dir: &'a Path) -> ReadOnly<'a> {
        let immutable = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !immutable {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        let probe = dir.join("probe");
        assert!(
            std::fs::write(&probe, b"").is_err(),
            "test setup: could not make {} read-only",
            dir.display()
        );
        ReadOnly(dir, immutable)
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(self.0)
                .status();
        }
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o700));
    }
}

/// Several processes opening one fresh file at once: SQLite answers some of them "busy" at once
/// while another switches the file to WAL (it did in about one round in fifteen before the store
/// opened again after a pause). Every open succeeds and they all see one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..60 {
        let location = dir
            .path()
            .join(format!("log{round}.db"))
            .display()
            .to_string();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let location = location.clone();
                tokio::spawn(async move { Store::open(&location).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            let opened = open.await.unwrap();
            stores.push(opened.unwrap_or_else(|e| panic!("round {round}: an open failed: {e}")));
        }
        append_one(&stores[0], b"one").await;
        for store in stores {
            assert_eq!(
                store.size().await.unwrap(),
                1,
                "round {round}: one database"
            );
            store.close().await;
        }
    }
}

#[tokio::test]
async fn read_only_directory_is_a_distinct_error() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = ReadOnly::new(dir.path());
    for path in [dir.path().join("log.db"), dir.path().join("missing/log.db")] {
        match Store::open(path.to_str().unwrap()).await {
            Err(err @ StoreError::Unwritable { .. }) => {
                let message = err.to_string();
                assert!(
                    message.contains(&dir.path().display().to_string()),
                    "{message}"
                );
                assert!(
                    message.contains("writable"),
                    "the message says what to check: {message}"
                );
            }
            other => panic!(
                "opening {} in a read-only directory: {other:?}",
                path.display()
            ),
        }
    }
}

#[tokio::test]
async fn a_full_disk_is_a_distinct_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = breakglass_testkit::fs::Tmpfs::mount(dir.path(), "4m");
    let path = dir.path().join("log.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    append_one(&store, b"before").await;
    store.close().await;
    let filler = tmpfs.fill();
    // Whether SQLite fails at open (its shared-memory index cannot grow: an I/O error) or at the
    // write (SQLITE_FULL) depends on the filesystem; either way the error says the disk is full.
    let failed = match Store::open(path.to_str().unwrap()).await {
        Err(StoreError::Full {
            path: at,
            available,
        }) => {
            assert_eq!(at, path);
            assert!(available < 256 * 1024, "{available} bytes free");
            format!("the disk holding {} is full", at.display())
        }
        Err(other) => panic!("opening on a full disk: {other:?}"),
        Ok(store) => {
            let mut tx = store.begin_append().await.unwrap();
            let checkpoint = StoredCheckpoint {
                size: 2,
                note: "note".into(),
            };
            let err = match tx.append(1, &[vec![7; 64 * 1024]], &checkpoint).await {
                Err(err) => err,
                Ok(()) => tx.commit().await.expect_err("no room for the entry"),
            };
            store.close().await;
            err.to_string()
        }
    };
    assert!(failed.contains("full"), "{failed}");
    std::fs::remove_file(filler).unwrap();
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(store.size().await.unwrap(), 1, "nothing was lost or added");
    append_one(&store, b"after").await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_refuses_foreign_and_newer_databases() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    let err = Store::open(garbage.to_str().unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotBreakglass { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0x42; 8192],
        "left untouched"
    );

    let foreign = dir.path().join("foreign.db");
    sql(
        foreign.to_str().unwrap(),
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY)",
    )
    .await;
    let err = Store::open(foreign.to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotBreakglass { reason, .. } if reason.contains("invoices")),
        "{err:?}"
    );

    let newer = dir.path().join("newer.db");
    Store::open(newer.to_str().unwrap())
        .await
        .unwrap()
        .close()
        .await;
    sql(
        newer.to_str().unwrap(),
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', TRUE, X'00', 0)",
    )
    .await;
    let err = Store::open(newer.to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99991231000000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn history_cannot_be_rewritten_and_gaps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let location = path.to_str().unwrap();
    let store = Store::open(location).await.unwrap();
    for n in 0..3u8 {
        append_one(&store, &[n]).await;
    }
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{location}"))
        .await
        .unwrap();
    let rewrite = conn
        .execute("UPDATE log_entries SET entry = X'FF' WHERE idx = 1")
        .await;
    assert!(rewrite.is_err(), "the schema refuses to rewrite an entry");
    assert!(
        conn.execute("DELETE FROM checkpoints").await.is_err(),
        "or drop checkpoints"
    );

    // Someone with full access removes the guard rail and an entry: reads say so, loudly.
    conn.execute(
        "DROP TRIGGER log_entries_only_uncovered_or_archived_removed; \
         DELETE FROM log_entries WHERE idx = 1",
    )
    .await
    .unwrap();
    let err = store.entries(0, 3).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    // The first entry removed too, with no archive recorded to hold it.
    conn.execute("DELETE FROM log_entries WHERE idx = 0")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = store.entries(0, 3).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { detail } if detail.contains("entry 0 is missing")),
        "{err:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn postgres_errors_are_distinct_and_never_show_the_password() {
    let pg = PgCluster::start()
        .await
        .expect("a PostgreSQL test server is required");

    // Trust authentication ignores the password, so this opens; it must still never be shown.
    let url = pg.create_database().await.unwrap();
    let with_password = url.replacen("postgres@", "postgres:s3cret-pw@", 1);
    let store = Store::open(&with_password).await.unwrap();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("s3cret-pw"),
        "Debug shows the password: {shown}"
    );
    assert!(
        shown.contains("127.0.0.1"),
        "Debug still says where the log is: {shown}"
    );
    store.close().await;

    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("postgres://alice:s3cret-pw@127.0.0.1:{port}/log?password=s3cret-pw");
    let err = Store::open(&unreachable).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            !shown.contains("s3cret-pw"),
            "the error shows the password: {shown}"
        );
    }

    let missing = pg.url("no_such_database");
    let err = Store::open(&missing).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");

    let foreign = pg.create_database().await.unwrap();
    sql(&foreign, "CREATE TABLE invoices (id BIGINT PRIMARY KEY)").await;
    let err = Store::open(&foreign).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotBreakglass { reason, .. } if reason.contains("invoices")),
        "{err:?}"
    );

    let newer = pg.create_database().await.unwrap();
    Store::open(&newer).await.unwrap().close().await;
    sql(
        &newer,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', TRUE, '\\x00', 0)",
    )
    .await;
    let err = Store::open(&newer).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99991231000000,
                ..
            }
        ),
        "{err:?}"
    );
}
