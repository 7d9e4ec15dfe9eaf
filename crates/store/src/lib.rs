#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Durable storage of the Breakglass log, on SQLite (embedded mode) or PostgreSQL (team mode).
//!
//! **Owns**: persistence of log entries (opaque bytes at contiguous indexes starting at 0) and of
//! the signed checkpoints covering them; the schema and its migrations; the single-writer lock
//! that makes "read the head, decide, sign, append" atomic across processes; durability of every
//! acknowledged append.
//!
//! **Never**: interprets, verifies or trusts what it stores. The database is storage, not
//! authority: whoever can write to it can write anything, so the engine verifies every entry and
//! checkpoint it reads. What the store does guarantee is that, through its API, an append lands at
//! exactly the head (no fork: one entry per index), together with the checkpoint for the new size,
//! and is durable when [`AppendTx::commit`] returns.
//!
//! ```
//! use breakglass_store::{Backend, Store, StoredCheckpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data/log.db");
//! let store = Store::open(path.to_str().unwrap()).await?;
//! assert_eq!(store.backend(), Backend::Sqlite);
//!
//! let mut tx = store.begin_append().await?;
//! let head = tx.size().await?;
//! let checkpoint = StoredCheckpoint { size: head + 2, note: "example.org/log\n2\n…".into() };
//! tx.append(head, &[b"first".to_vec(), b"second".to_vec()], &checkpoint).await?;
//! tx.commit().await?;
//!
//! assert_eq!(store.size().await?, 2);
//! assert_eq!(store.entries(1, 2).await?[0].bytes, b"second");
//! assert_eq!(store.latest_checkpoint().await?, Some(checkpoint));
//! store.close().await;
//! # Ok(())
//! # }
//! ```

mod archive;
mod error;
mod lease;
mod listen;
mod location;
mod postgres;
mod schema;
mod sqlite;
#[cfg(all(feature = "testing", unix))]
pub mod testing;

use std::fmt;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt;

pub use archive::StoredArchive;
pub use error::StoreError;
pub use lease::BrokerLease;
pub use listen::{Heard, LogListener};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use archive::{check_file_name, ArchiveFile};
use location::Location;

/// The PostgreSQL `NOTIFY` channel on which every committed append announces the log's new size
/// (as decimal text), so other apps can sync at once instead of polling.
pub const LOG_CHANNEL: &str = "breakglass_log";

/// An opened log database.
///
/// Cloning is not offered; share it behind an `Arc`. Its `Debug` output never contains a password.
#[derive(Debug)]
pub enum Store {
    /// Embedded mode: one SQLite file.
    Sqlite(SqliteStore),
    /// Team mode: a shared PostgreSQL database.
    Postgres(PgStore),
}

/// Which database engine a [`Store`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL, shared.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// One log entry as stored: its index and its bytes, uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// The entry's bytes exactly as appended.
    pub bytes: Vec<u8>,
}

/// A signed checkpoint as stored: the log size it covers and its signed-note text, uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Number of entries the checkpoint covers (at least 1).
    pub size: u64,
    /// The signed note, exactly as appended.
    pub note: String,
}

/// A witness's newest cosignature of a checkpoint, as stored: uninterpreted text, verified by
/// whoever reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCosignature {
    /// The witness's name (its cosigner key name).
    pub witness: String,
    /// The size of the checkpoint cosigned.
    pub size: u64,
    /// The checkpoint body cosigned (origin, size, root).
    pub checkpoint: String,
    /// The cosignature line (`— <witness> <base64>`).
    pub signature: String,
}

#[derive(sqlx::FromRow)]
struct CosignatureRow {
    witness: String,
    size: i64,
    checkpoint: String,
    signature: String,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    idx: i64,
    entry: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct HeadRow {
    entries: i64,
    size: Option<i64>,
    note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    size: i64,
    note: String,
}

impl TryFrom<CheckpointRow> for StoredCheckpoint {
    type Error = StoreError;
    fn try_from(row: CheckpointRow) -> Result<Self, StoreError> {
        Ok(StoredCheckpoint {
            size: from_db(row.size, "checkpoint size")?,
            note: row.note,
        })
    }
}

fn from_db(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        detail: format!("negative {what} {value}"),
    })
}

fn to_db(from: u64, to: u64) -> Result<(i64, i64), StoreError> {
    let invalid = || StoreError::InvalidRange { from, to };
    if from > to {
        return Err(invalid());
    }
    Ok((
        i64::try_from(from).map_err(|_| invalid())?,
        i64::try_from(to).map_err(|_| invalid())?,
    ))
}

#[derive(sqlx::FromRow)]
struct ArchiveRow {
    size: i64,
    file: String,
    sha256: String,
}

impl TryFrom<ArchiveRow> for StoredArchive {
    type Error = StoreError;

    fn try_from(row: ArchiveRow) -> Result<Self, StoreError> {
        Ok(StoredArchive {
            size: from_db(row.size, "archived size")?,
            file: row.file,
            sha256: row.sha256,
        })
    }
}

/// Whether the database's `rows` for `[from, to)` start later than `from`: the entries before
/// them may be archived.
fn starts_late(from: u64, to: u64, rows: &[EntryRow]) -> bool {
    from < to && rows.first().is_none_or(|r| r.idx != from as i64)
}

/// The entries in `[from, to)`: those the archive in force (`record`) holds, read from its file,
/// then the database's `rows`.
async fn with_archived(
    sqlite: &SqliteStore,
    record: Option<StoredArchive>,
    from: u64,
    to: u64,
    rows: Vec<EntryRow>,
) -> Result<Vec<StoredEntry>, StoreError> {
    match record {
        Some(record) if from < record.size => {
            let archived = record.size;
            let mut entries = sqlite.archive_file(record).await?.read(from, to)?;
            if to > archived {
                entries.extend(contiguous(archived, rows)?);
            }
            Ok(entries)
        }
        _ => contiguous(from, rows),
    }
}

/// Converts rows read for `[from, …)` into entries, checking that they are contiguous: a gap means
/// a row was removed behind the store's back, and must not be papered over.
fn contiguous(from: u64, rows: Vec<EntryRow>) -> Result<Vec<StoredEntry>, StoreError> {
    let mut next = from;
    rows.into_iter()
        .map(|row| {
            let entry = checked_entry(next, row)?;
            next += 1;
            Ok(entry)
        })
        .collect()
}

fn checked_entry(expected: u64, row: EntryRow) -> Result<StoredEntry, StoreError> {
    let index = from_db(row.idx, "entry index")?;
    if index != expected {
        return Err(StoreError::Corrupt {
            detail: format!("entry {expected} is missing (the next stored entry is {index})"),
        });
    }
    Ok(StoredEntry {
        index,
        bytes: row.entry,
    })
}

const SIZE_SQL: &str = "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries";
const ENTRIES_SQL: &str =
    "SELECT idx, entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const STREAM_SQL: &str = "SELECT idx, entry FROM log_entries WHERE idx >= $1 ORDER BY idx";
const ARCHIVE_SQL: &str = "SELECT size, file, sha256 FROM archives ORDER BY size DESC LIMIT 1";
/// Entries read at a time while checking an archive file against the log.
const ARCHIVE_BATCH: u64 = 4096;
const LATEST_CHECKPOINT_SQL: &str = "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1";
/// The size and the newest checkpoint in one statement, so both come from one snapshot.
const HEAD_SQL: &str = "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries) AS entries, \
     (SELECT size FROM checkpoints ORDER BY size DESC LIMIT 1) AS size, \
     (SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1) AS note";
const CHECKPOINT_SQL: &str = "SELECT size, note FROM checkpoints WHERE size = $1";
const COSIGNATURES_SQL: &str =
    "SELECT witness, size, checkpoint, signature FROM cosignatures ORDER BY witness";
/// Keeps a witness's newest cosignature only: an older one never replaces a newer.
const PUT_COSIGNATURE_SQL: &str =
    "INSERT INTO cosignatures (witness, size, checkpoint, signature) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (witness) DO UPDATE SET size = excluded.size, \
     checkpoint = excluded.checkpoint, signature = excluded.signature \
     WHERE cosignatures.size < excluded.size";
const INSERT_CHECKPOINT_SQL: &str = "INSERT INTO checkpoints (size, note) VALUES ($1, $2)";

/// Runs `$body` with `$ex` bound to the executor of whichever backend `$target` holds; the body
/// is written once and type-checked against each backend.
macro_rules! on_backend {
    ($target:expr, $ex:ident => $body:expr) => {
        match $target {
            Store::Sqlite(store) => {
                let $ex = &store.readers;
                $body
            }
            Store::Postgres(store) => {
                let $ex = &store.pool;
                $body
            }
        }
    };
}

macro_rules! on_tx {
    ($tx:expr, $ex:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite(tx) => {
                let $ex = &mut **tx;
                $body
            }
            Tx::Postgres(tx) => {
                let $ex = &mut **tx;
                $body
            }
        }
    };
}

impl Store {
    /// Opens (creating if needed) the log at `location` and brings its schema up to date.
    ///
    /// `location` is a filesystem path to a SQLite file (the file and its parent directory are
    /// created, owner-only, if missing), a `sqlite://` URL, or a `postgres://`/`postgresql://` URL
    /// (its `sslmode` and other parameters are honoured). Several processes may open the same
    /// fresh database at once: migrations run under a lock, exactly once.
    ///
    /// Refuses, with a distinct [`StoreError`] each, a directory that cannot be written, a server
    /// that cannot be reached, a database that belongs to something else, and a database migrated
    /// by a newer Breakglass.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        match Location::parse(location)? {
            Location::Sqlite { url, path } => Ok(Store::Sqlite(
                SqliteStore::open(url.as_deref(), &path).await?,
            )),
            Location::Postgres { url } => Ok(Store::Postgres(PgStore::open(&url).await?)),
        }
    }

    /// Tries to become the one broker acting on this log ([`BrokerLease`]): `None` while another
    /// broker holds the lease.
    pub async fn try_broker_lease(&self) -> Result<Option<BrokerLease>, StoreError> {
        match self {
            Store::Sqlite(s) => BrokerLease::file(s.path()),
            Store::Postgres(p) => BrokerLease::postgres(p.options()).await,
        }
    }

    /// Hears of changes other processes commit (team mode, through PostgreSQL's `LISTEN`), so a
    /// reader can sync at once instead of polling; `None` for the embedded SQLite log, which
    /// has no such channel (its readers poll).
    pub async fn listen(&self) -> Result<Option<LogListener>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(p) => LogListener::postgres(p.options()).await.map(Some),
        }
    }

    /// Which database engine this store uses.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Number of entries in the log (one past the highest index).
    pub async fn size(&self) -> Result<u64, StoreError> {
        let size: i64 = on_backend!(self, ex => sqlx::query_scalar(SIZE_SQL).fetch_one(ex).await)
            .map_err(StoreError::db("reading the log size"))?;
        from_db(size, "log size")
    }

    /// The entries with indexes in `[from, to)`, in order. Indexes at or past the log's size are
    /// simply absent, so the result may be shorter than `to - from`.
    pub async fn entries(&self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        let (lo, hi) = to_db(from, to)?;
        let rows = on_backend!(self, ex => sqlx::query_as::<_, EntryRow>(ENTRIES_SQL)
            .bind(lo)
            .bind(hi)
            .fetch_all(ex)
            .await)
        .map_err(StoreError::db("reading entries"))?;
        if let Store::Sqlite(sqlite) = self {
            if starts_late(from, to, &rows) {
                let record = self.archive().await?;
                return with_archived(sqlite, record, from, to, rows).await;
            }
        }
        contiguous(from, rows)
    }

    /// The archive in force: which file holds the log's first entries, moved out of the database
    /// by [`AppendTx::archive`]. Always `None` on PostgreSQL.
    pub async fn archive(&self) -> Result<Option<StoredArchive>, StoreError> {
        let Store::Sqlite(sqlite) = self else {
            return Ok(None);
        };
        sqlx::query_as::<_, ArchiveRow>(ARCHIVE_SQL)
            .fetch_optional(&sqlite.readers)
            .await
            .map_err(StoreError::db("reading the archive record"))?
            .map(StoredArchive::try_from)
            .transpose()
    }

    /// The directory archive file names are relative to: the SQLite file's. `None` on PostgreSQL.
    pub fn archive_dir(&self) -> Option<&std::path::Path> {
        match self {
            Store::Sqlite(sqlite) => Some(sqlite.dir()),
            Store::Postgres(_) => None,
        }
    }

    /// Every entry from index `from` to the end, streamed in order without holding them all in
    /// memory (for exports of large logs). Holds one database connection until dropped. Reads
    /// the database only: archived entries are not in this stream (see [`Store::entries`]).
    pub fn stream_entries(
        &self,
        from: u64,
    ) -> impl Stream<Item = Result<StoredEntry, StoreError>> + Send + '_ {
        let start = i64::try_from(from).unwrap_or(i64::MAX);
        let rows: futures_core::stream::BoxStream<'_, Result<EntryRow, sqlx::Error>> = on_backend!(self, ex => sqlx::query_as::<_, EntryRow>(STREAM_SQL).bind(start).fetch(ex));
        let mut next = from;
        rows.map(move |row| {
            let entry = checked_entry(next, row.map_err(StoreError::db("streaming entries"))?)?;
            next += 1;
            Ok(entry)
        })
    }

    /// The log's size and its newest checkpoint, read together from one snapshot of the
    /// database: read one after the other, an append committed in between could pair a size
    /// with a checkpoint older than the entries it counts.
    pub async fn head(&self) -> Result<(u64, Option<StoredCheckpoint>), StoreError> {
        let row = on_backend!(self, ex => sqlx::query_as::<_, HeadRow>(HEAD_SQL)
            .fetch_one(ex)
            .await)
        .map_err(StoreError::db("reading the log size and latest checkpoint"))?;
        let checkpoint = match (row.size, row.note) {
            (Some(size), Some(note)) => {
                Some(StoredCheckpoint::try_from(CheckpointRow { size, note })?)
            }
            _ => None,
        };
        Ok((from_db(row.entries, "log size")?, checkpoint))
    }

    /// The checkpoint with the largest size, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_backend!(self, ex => sqlx::query_as::<_, CheckpointRow>(LATEST_CHECKPOINT_SQL)
            .fetch_optional(ex)
            .await)
        .map_err(StoreError::db("reading the latest checkpoint"))?
        .map(StoredCheckpoint::try_from)
        .transpose()
    }

    /// The checkpoint for exactly `size` entries, if one was stored.
    pub async fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let Ok(size) = i64::try_from(size) else {
            return Ok(None);
        };
        on_backend!(self, ex => sqlx::query_as::<_, CheckpointRow>(CHECKPOINT_SQL)
            .bind(size)
            .fetch_optional(ex)
            .await)
        .map_err(StoreError::db("reading a checkpoint"))?
        .map(StoredCheckpoint::try_from)
        .transpose()
    }

    /// The checkpoint with the largest size at most `size`, if any.
    pub async fn checkpoint_at_most(
        &self,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        on_backend!(self, ex => sqlx::query_as::<_, CheckpointRow>(
            "SELECT size, note FROM checkpoints WHERE size <= $1 ORDER BY size DESC LIMIT 1")
            .bind(size)
            .fetch_optional(ex)
            .await)
        .map_err(StoreError::db("reading a checkpoint"))?
        .map(StoredCheckpoint::try_from)
        .transpose()
    }

    /// Every witness's newest cosignature (team mode; none on an embedded log).
    pub async fn cosignatures(&self) -> Result<Vec<StoredCosignature>, StoreError> {
        let rows = on_backend!(self, ex => sqlx::query_as::<_, CosignatureRow>(COSIGNATURES_SQL)
            .fetch_all(ex)
            .await)
        .map_err(StoreError::db("reading cosignatures"))?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredCosignature {
                    size: from_db(r.size, "cosigned size")?,
                    witness: r.witness,
                    checkpoint: r.checkpoint,
                    signature: r.signature,
                })
            })
            .collect()
    }

    /// Stores `cosignature` as its witness's newest, unless the witness already has one of the
    /// same or a larger size; returns whether it was stored. Team mode only: an embedded log has
    /// no witnesses, and stores nothing.
    pub async fn put_cosignature(
        &self,
        cosignature: &StoredCosignature,
    ) -> Result<bool, StoreError> {
        let Store::Postgres(store) = self else {
            return Ok(false);
        };
        let size = i64::try_from(cosignature.size).map_err(|_| StoreError::InvalidRange {
            from: cosignature.size,
            to: cosignature.size,
        })?;
        let done = sqlx::query(PUT_COSIGNATURE_SQL)
            .bind(&cosignature.witness)
            .bind(size)
            .bind(&cosignature.checkpoint)
            .bind(&cosignature.signature)
            .execute(&store.pool)
            .await
            .map_err(StoreError::db("storing a cosignature"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Takes the log's single-writer lock, across every process using this database, and returns
    /// the transaction that holds it.
    ///
    /// Inside it, reading the head, deciding, signing and appending are atomic: no other writer can
    /// append in between. SQLite: `BEGIN IMMEDIATE` on the dedicated writer connection (waiting up
    /// to 30 s for another process). PostgreSQL: a transaction holding
    /// `pg_advisory_xact_lock`. Dropping the [`AppendTx`] without [`AppendTx::commit`] rolls back
    /// and releases the lock.
    pub async fn begin_append(&self) -> Result<AppendTx<'_>, StoreError> {
        let tx = match self {
            Store::Sqlite(store) => Tx::Sqlite(
                SqliteTx::begin(&store.writer)
                    .await
                    .map_err(StoreError::db("taking the write lock"))?,
            ),
            Store::Postgres(store) => {
                let mut tx = store
                    .pool
                    .begin()
                    .await
                    .map_err(StoreError::db("starting the append transaction"))?;
                // Durability must not depend on the server's or role's default.
                sqlx::query("SET LOCAL synchronous_commit TO on")
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("starting the append transaction"))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(postgres::APPEND_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("taking the write lock"))?;
                Tx::Postgres(tx)
            }
        };
        Ok(AppendTx {
            tx,
            poisoned: false,
            store: self,
        })
    }

    /// Closes every connection, waiting for them to finish.
    pub async fn close(self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

enum Tx {
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// SQLite's append transaction, run by hand on the writer connection. A `COMMIT` that fails (a
/// full disk) leaves SQLite inside the transaction; returned to the pool, that connection would
/// refuse every later append. So a transaction that was neither committed nor rolled back
/// closes its connection instead (SQLite then rolls back and releases the lock at once), and
/// the pool opens a fresh one for the next append.
struct SqliteTx {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    open: bool,
}

impl std::ops::Deref for SqliteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.conn
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl SqliteTx {
    async fn begin(writer: &sqlx::SqlitePool) -> Result<SqliteTx, sqlx::Error> {
        let mut conn = writer.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(SqliteTx { conn, open: true })
    }

    async fn finish(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(statement).execute(&mut *self.conn).await?;
        self.open = false;
        Ok(())
    }
}

/// An open append transaction holding the log's single-writer lock. See [`Store::begin_append`].
#[must_use = "an append transaction rolls back unless committed"]
pub struct AppendTx<'s> {
    tx: Tx,
    /// Set when a call failed part-way, so a half-done append can never be committed.
    poisoned: bool,
    store: &'s Store,
}

impl fmt::Debug for AppendTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.tx {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        };
        f.debug_struct("AppendTx")
            .field("backend", &backend)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl AppendTx<'_> {
    /// The log's size as seen inside the lock: the index the next append must start at.
    pub async fn size(&mut self) -> Result<u64, StoreError> {
        self.check()?;
        let size: i64 =
            on_tx!(&mut self.tx, ex => sqlx::query_scalar(SIZE_SQL).fetch_one(ex).await)
                .map_err(StoreError::db("reading the log size"))?;
        from_db(size, "log size")
    }

    /// The entries with indexes in `[from, to)` as seen inside the lock, to catch up before
    /// deciding. Indexes past the log's size are absent.
    pub async fn entries(&mut self, from: u64, to: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.check()?;
        let (lo, hi) = to_db(from, to)?;
        let rows = on_tx!(&mut self.tx, ex => sqlx::query_as::<_, EntryRow>(ENTRIES_SQL)
            .bind(lo)
            .bind(hi)
            .fetch_all(ex)
            .await)
        .map_err(StoreError::db("reading entries"))?;
        if let Store::Sqlite(sqlite) = self.store {
            if starts_late(from, to, &rows) {
                let record = self.archived().await?;
                return with_archived(sqlite, record, from, to, rows).await;
            }
        }
        contiguous(from, rows)
    }

    /// The archive in force, as seen inside the lock (`None` on PostgreSQL).
    pub async fn archived(&mut self) -> Result<Option<StoredArchive>, StoreError> {
        self.check()?;
        let Tx::Sqlite(tx) = &mut self.tx else {
            return Ok(None);
        };
        sqlx::query_as::<_, ArchiveRow>(ARCHIVE_SQL)
            .fetch_optional(&mut **tx)
            .await
            .map_err(StoreError::db("reading the archive record"))?
            .map(StoredArchive::try_from)
            .transpose()
    }

    /// Moves the log's first `size` entries out of the database: records that `file` (a path
    /// relative to the database's directory, a bundle of exactly those entries) holds them, and
    /// deletes their rows. Embedded logs only.
    ///
    /// Refused, with nothing changed, on PostgreSQL; when `size` is not past the archive in
    /// force, reaches the log's newest entry (which stays in the database), or is not the size
    /// of a stored checkpoint; and unless every entry line of the file is byte for byte the
    /// entry the log holds at that index. Nothing is durable until [`commit`](Self::commit).
    pub async fn archive(&mut self, size: u64, file: &str) -> Result<StoredArchive, StoreError> {
        self.check()?;
        let refused = |reason: String| Err(StoreError::ArchiveRefused { reason });
        let Store::Sqlite(sqlite) = self.store else {
            return refused(
                "a log on PostgreSQL keeps its whole history in the shared database \
                 (archiving is for an embedded log)"
                    .into(),
            );
        };
        check_file_name(file)?;
        let head = self.size().await?;
        let before = self.archived().await?.map_or(0, |a| a.size);
        if size == 0 {
            return refused("an archive holds at least one entry".into());
        }
        if size <= before {
            return refused(format!(
                "the log's first {before} entries are archived already"
            ));
        }
        if size >= head {
            return refused(format!(
                "the newest entry stays in the database (the log holds {head} entries)"
            ));
        }
        let (db_size, _) = to_db(size, size)?;
        let checkpointed =
            on_tx!(&mut self.tx, ex => sqlx::query_as::<_, CheckpointRow>(CHECKPOINT_SQL)
            .bind(db_size)
            .fetch_optional(ex)
            .await)
            .map_err(StoreError::db("reading a checkpoint"))?;
        if checkpointed.is_none() {
            return refused(format!(
                "no checkpoint covers exactly the first {size} entries"
            ));
        }
        let (dir, name) = (sqlite.dir().to_owned(), file.to_owned());
        let candidate =
            tokio::task::spawn_blocking(move || ArchiveFile::candidate(&dir, &name, size))
                .await
                .map_err(|e| StoreError::ArchiveRefused {
                    reason: format!("checking the archive file stopped: {e}"),
                })??;
        // No row is deleted unless the file holds its every byte.
        let mut at = 0;
        while at < size {
            let to = (at + ARCHIVE_BATCH).min(size);
            let logged = self.entries(at, to).await?;
            let filed = candidate.read(at, to)?;
            if let Some(index) = (at..to).find(|&i| {
                let i = (i - at) as usize;
                logged.get(i).map(|e| &e.bytes) != filed.get(i).map(|e| &e.bytes)
            }) {
                return refused(format!(
                    "entry {index} in {file} differs from the log's entry {index}"
                ));
            }
            at = to;
        }
        let record = candidate.record.clone();
        self.poisoned = true;
        on_tx!(&mut self.tx, ex => sqlx::query(
            "INSERT INTO archives (size, file, sha256) VALUES ($1, $2, $3)")
            .bind(db_size)
            .bind(&record.file)
            .bind(&record.sha256)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("recording the archive"))?;
        on_tx!(&mut self.tx, ex => sqlx::query("DELETE FROM log_entries WHERE idx < $1")
            .bind(db_size)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("deleting archived entries"))?;
        self.poisoned = false;
        sqlite.keep_archive(Arc::new(candidate));
        Ok(record)
    }

    /// Appends `entries` at indexes `first_index..`, and `checkpoint`, which must cover exactly
    /// the log after them.
    ///
    /// Refused, with nothing written, when `first_index` is not the current size
    /// ([`StoreError::NotAtHead`]), when `entries` is empty, or when `checkpoint.size` is not the
    /// new size ([`StoreError::CheckpointMismatch`]). Nothing is durable until
    /// [`commit`](Self::commit); if this fails for any other reason the transaction can only be
    /// rolled back.
    pub async fn append(
        &mut self,
        first_index: u64,
        entries: &[Vec<u8>],
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.append_entries(first_index, entries, Some(checkpoint))
            .await
    }

    /// Appends `entries` at indexes `first_index..` without a checkpoint: in team mode an app,
    /// which does not hold the log's key, appends events that the broker then verifies and
    /// covers with a checkpoint ([`AppendTx::cover`]). Refused as [`AppendTx::append`] is.
    pub async fn append_uncovered(
        &mut self,
        first_index: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.append_entries(first_index, entries, None).await
    }

    /// Stores `checkpoint` over the log as it is (team mode: the broker covers entries apps
    /// appended). Refused, with nothing written, unless it covers exactly the current size and
    /// that size is larger than the latest checkpoint's.
    pub async fn cover(&mut self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        self.check()?;
        let head = self.size().await?;
        let covered = self.covered().await?;
        if checkpoint.size != head || head <= covered {
            return Err(StoreError::CheckpointMismatch {
                checkpoint: checkpoint.size,
                new_size: head,
            });
        }
        let (size, _) = to_db(head, head)?;
        self.poisoned = true;
        self.insert_checkpoint(size, checkpoint).await?;
        self.notify(size).await?;
        self.poisoned = false;
        Ok(())
    }

    /// Removes the entries at `from` and after that no checkpoint covers yet (team mode: the
    /// broker removes an app's entry that fails verification, with everything appended on top
    /// of it, before it is ever covered). Refused, with nothing removed, when a checkpoint
    /// covers `from` ([`StoreError::Covered`]). Returns how many entries were removed.
    pub async fn remove_uncovered(&mut self, from: u64) -> Result<u64, StoreError> {
        self.check()?;
        let covered = self.covered().await?;
        if from < covered {
            return Err(StoreError::Covered {
                index: from,
                covered,
            });
        }
        let (lo, _) = to_db(from, from)?;
        self.poisoned = true;
        let removed = on_tx!(&mut self.tx, ex => sqlx::query(
            "DELETE FROM log_entries WHERE idx >= $1")
            .bind(lo)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("removing uncovered entries"))?;
        self.notify(lo).await?;
        self.poisoned = false;
        Ok(removed)
    }

    /// The checkpoint with the largest size, as seen inside the lock.
    pub async fn latest_checkpoint(&mut self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.check()?;
        on_tx!(&mut self.tx, ex => sqlx::query_as::<_, CheckpointRow>(LATEST_CHECKPOINT_SQL)
            .fetch_optional(ex)
            .await)
        .map_err(StoreError::db("reading the latest checkpoint"))?
        .map(StoredCheckpoint::try_from)
        .transpose()
    }

    /// The size the latest checkpoint covers (0 with none), as seen inside the lock.
    pub async fn covered(&mut self) -> Result<u64, StoreError> {
        Ok(self.latest_checkpoint().await?.map_or(0, |c| c.size))
    }

    async fn insert_checkpoint(
        &mut self,
        size: i64,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        on_tx!(&mut self.tx, ex => sqlx::query(INSERT_CHECKPOINT_SQL)
            .bind(size)
            .bind(checkpoint.note.as_str())
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))
        .map_err(StoreError::db("appending the checkpoint"))?;
        Ok(())
    }

    async fn notify(&mut self, size: i64) -> Result<(), StoreError> {
        if let Tx::Postgres(tx) = &mut self.tx {
            // Delivered only if and when the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(LOG_CHANNEL)
                .bind(size.to_string())
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db("notifying listeners"))?;
        }
        Ok(())
    }

    async fn append_entries(
        &mut self,
        first_index: u64,
        entries: &[Vec<u8>],
        checkpoint: Option<&StoredCheckpoint>,
    ) -> Result<(), StoreError> {
        self.check()?;
        if entries.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let head = self.size().await?;
        if first_index != head {
            return Err(StoreError::NotAtHead {
                expected: head,
                actual: first_index,
            });
        }
        let new_size = head
            .checked_add(entries.len() as u64)
            .filter(|n| i64::try_from(*n).is_ok())
            .ok_or(StoreError::InvalidRange {
                from: head,
                to: u64::MAX,
            })?;
        if let Some(checkpoint) = checkpoint.filter(|c| c.size != new_size) {
            return Err(StoreError::CheckpointMismatch {
                checkpoint: checkpoint.size,
                new_size,
            });
        }
        // From here on a failure may leave part of the append in the transaction.
        self.poisoned = true;
        // Both values were range-checked against i64 above.
        let (first, size) = to_db(head, new_size)?;
        match &mut self.tx {
            Tx::Sqlite(tx) => {
                for (offset, entry) in (0i64..).zip(entries) {
                    sqlx::query("INSERT INTO log_entries (idx, entry) VALUES ($1, $2)")
                        .bind(first + offset)
                        .bind(entry.as_slice())
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::db("appending entries"))?;
                }
            }
            Tx::Postgres(tx) => {
                // One round trip for the whole batch.
                sqlx::query(
                    "INSERT INTO log_entries (idx, entry) \
                     SELECT $1 + ord - 1, e FROM UNNEST($2::bytea[]) WITH ORDINALITY AS t(e, ord)",
                )
                .bind(first)
                .bind(entries)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db("appending entries"))?;
            }
        }
        if let Some(checkpoint) = checkpoint {
            self.insert_checkpoint(size, checkpoint).await?;
        }
        self.notify(size).await?;
        self.poisoned = false;
        Ok(())
    }

    /// Commits, releasing the lock. On `Ok` the append is durable (SQLite: WAL with
    /// `synchronous=FULL`; PostgreSQL: `synchronous_commit=on`). On `Err` it may or may not have
    /// been stored: read the head again before retrying.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.check()?;
        match self.tx {
            Tx::Sqlite(tx) => tx.finish("COMMIT").await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .map_err(StoreError::db("committing the append"))
    }

    /// Rolls back explicitly (dropping does the same, without waiting).
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.tx {
            Tx::Sqlite(tx) => tx.finish("ROLLBACK").await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
        .map_err(StoreError::db("rolling back the append"))
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.poisoned {
            Err(StoreError::Poisoned)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine shares one store between tasks and holds an append across `.await`s.
    #[test]
    fn handles_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Store>();
        send_sync::<StoreError>();
        send::<AppendTx<'static>>();
    }
}
