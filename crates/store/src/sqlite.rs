//! The embedded backend: one SQLite file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use crate::archive::{ArchiveFile, StoredArchive};
use crate::schema::{self, Applied};
use crate::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A log kept in one SQLite file (WAL mode, `synchronous=FULL`).
///
/// Reads go through a small pool; appends go through one dedicated writer connection, so appends
/// from this process queue in memory and only appends from other processes wait on SQLite's lock.
pub struct SqliteStore {
    pub(crate) readers: SqlitePool,
    pub(crate) writer: SqlitePool,
    path: PathBuf,
    /// The archive file last opened, checked and indexed, with the record it was checked against.
    archive: Mutex<Option<Arc<ArchiveFile>>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the database, against which archive file names are resolved.
    pub(crate) fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// The archive file `record` names, opened and checked once and then kept.
    pub(crate) async fn archive_file(
        &self,
        record: StoredArchive,
    ) -> Result<Arc<ArchiveFile>, StoreError> {
        let cached = self.cached_archive();
        if let Some(file) = cached.filter(|f| f.record == record) {
            return Ok(file);
        }
        let dir = self.dir().to_owned();
        let file = Arc::new(
            tokio::task::spawn_blocking(move || ArchiveFile::open(&dir, record))
                .await
                .map_err(|e| StoreError::Corrupt {
                    detail: format!("opening the archive stopped: {e}"),
                })??,
        );
        self.keep_archive(file.clone());
        Ok(file)
    }

    fn cached_archive(&self) -> Option<Arc<ArchiveFile>> {
        self.archive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn keep_archive(&self, file: Arc<ArchiveFile>) {
        *self.archive.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    }

    pub(crate) async fn open(url: Option<&str>, path: &Path) -> Result<SqliteStore, StoreError> {
        let options = match url {
            Some(url) => {
                SqliteConnectOptions::from_str(url).map_err(|e| StoreError::InvalidLocation {
                    location: url.to_owned(),
                    reason: e.to_string(),
                })?
            }
            None => SqliteConnectOptions::new().filename(path),
        };
        prepare_file(path)?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        // Opening a fresh file switches it to WAL, which needs SQLite's exclusive lock: when
        // several processes open the same fresh file at once, SQLite answers some of them "busy"
        // at once rather than through the busy timeout (two connections each waiting for the
        // other's lock). Opening again after a pause then finds the file in WAL mode.
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let writer = loop {
            match open_writer(&options, path).await {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                opened => break opened?,
            }
        };
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Ok(SqliteStore {
            readers,
            writer,
            path: path.to_owned(),
            archive: Mutex::new(None),
        })
    }

    pub(crate) async fn close(self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Creates the file's parent directory (0700) and the file itself (0600) if missing, so the log
/// is never world-readable and so a missing or read-only directory is reported as such.
/// The writer connection, with the schema brought up to date.
async fn open_writer(
    options: &SqliteConnectOptions,
    path: &Path,
) -> Result<SqlitePool, StoreError> {
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(120))
        .connect_with(options.clone())
        .await
        .map_err(|source| map_open_error(path, source))?;
    if let Err(e) = migrate(&writer, path).await {
        writer.close().await;
        return Err(e);
    }
    Ok(writer)
}

/// Whether SQLite refused for now because another connection holds a lock (SQLITE_BUSY 5,
/// SQLITE_LOCKED 6, and their extended codes).
fn is_busy(e: &StoreError) -> bool {
    let StoreError::Database {
        source: sqlx::Error::Database(db),
        ..
    } = e
    else {
        return false;
    };
    db.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let unwritable = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Unwritable { path, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(parent).map_err(unwritable(parent))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unwritable(path)(e)),
    }
}

/// Below this many free bytes a failed write is put down to a full disk: SQLite needs room for a
/// page of its file, its write-ahead log and the 32 KiB of its shared-memory index.
const NEARLY_FULL: u64 = 256 * 1024;

/// Bytes available to this user on the filesystem holding `path`, when that can be told.
#[cfg(unix)]
fn available_space(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn available_space(_: &Path) -> Option<u64> {
    None
}

fn map_open_error(path: &Path, source: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &source {
        // Primary result codes: SQLITE_READONLY 8, SQLITE_CANTOPEN 14, SQLITE_NOTADB 26,
        // SQLITE_PERM 3, SQLITE_IOERR 10, SQLITE_FULL 13.
        let primary = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        // A full disk shows as SQLITE_FULL, or as an I/O error when it is the shared-memory
        // index or the write-ahead log that cannot grow: which one depends on the filesystem.
        if matches!(primary, Some(10 | 13)) {
            if let Some(available) = available_space(path).filter(|&n| n < NEARLY_FULL) {
                return StoreError::Full {
                    path: path.to_owned(),
                    available,
                };
            }
        }
        match primary {
            Some(8 | 14 | 3 | 10) => {
                return StoreError::Unwritable {
                    path: path.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        db.message().to_owned(),
                    ),
                }
            }
            Some(26) => {
                return StoreError::NotBreakglass {
                    location: path.display().to_string(),
                    reason: "the file is not a SQLite database".to_owned(),
                }
            }
            _ => {}
        }
    }
    StoreError::Database {
        operation: "opening the SQLite database",
        source,
    }
}

/// Brings the schema up to date. `BEGIN IMMEDIATE` takes SQLite's write lock first, so when several
/// processes open a fresh file at once one migrates and the others wait, then find nothing to do.
async fn migrate(writer: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let location = path.display().to_string();
    let mut conn = writer
        .acquire()
        .await
        .map_err(|e| map_open_error(path, e))?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| map_open_error(path, e))?;

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| map_open_error(path, e))?;
    let applied = if tables.iter().any(|t| t == schema::MIGRATIONS_TABLE) {
        Some(
            sqlx::query_as::<Sqlite, Applied>(schema::APPLIED_QUERY)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::db("reading the schema version"))?,
        )
    } else {
        None
    };
    schema::check(&MIGRATOR, &location, &tables, applied.as_deref())?;

    // `run_direct` rather than `run`: `run`'s `Acquire` bound makes this future non-`Send`
    // (sqlx's own documented workaround).
    MIGRATOR
        .run_direct(&mut *tx)
        .await
        .map_err(|e| schema::map_migrate_error(&MIGRATOR, &location, e))?;
    tx.commit()
        .await
        .map_err(StoreError::db("committing the schema migration"))
}
