//! The store's error type.

use std::path::PathBuf;

/// Everything that can go wrong while opening or using a [`Store`](crate::Store).
///
/// Locations in messages are always shown with any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The location is neither a filesystem path, a `sqlite://` URL nor a `postgres://` URL, or it
    /// is malformed.
    #[error("invalid log location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given, password redacted.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The SQLite file or its directory cannot be created or written (missing parent that cannot
    /// be created, read-only directory or filesystem, permission denied).
    #[error(
        "cannot create or write the log database at {}: {source} \
         (check that the directory exists and is writable)",
        path.display()
    )]
    Unwritable {
        /// The file or directory that could not be created or written.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },

    /// The filesystem holding the SQLite file has no space left, so SQLite could not open or
    /// write it. Nothing was written.
    #[error(
        "the disk holding the log database at {} is full ({available} bytes free): \
         free some space and retry; nothing was written",
        path.display()
    )]
    Full {
        /// The database file.
        path: PathBuf,
        /// Bytes available to this user on its filesystem when the failure was seen.
        available: u64,
    },

    /// The file holding the log's archived entries is missing, unreadable, or not the file the
    /// database recorded.
    #[error(
        "the log's first {size} entries are archived in {}, which {reason}; restore that file \
         (SHA-256 {sha256})",
        path.display()
    )]
    Archive {
        /// Where the file should be.
        path: PathBuf,
        /// How many entries it holds.
        size: u64,
        /// Its recorded SHA-256.
        sha256: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An archive could not be recorded. Nothing was changed.
    #[error("archive refused: {reason}; nothing was changed")]
    ArchiveRefused {
        /// Why.
        reason: String,
    },

    /// The PostgreSQL server could not be reached (connection refused, DNS failure, timeout, TLS
    /// handshake failure).
    #[error("cannot reach the PostgreSQL server at {location}: {source}")]
    Unreachable {
        /// The location, password redacted.
        location: String,
        /// The underlying failure.
        #[source]
        source: sqlx::Error,
    },

    /// The database server was reached but rejected the connection (authentication failed, no
    /// such database, no permission).
    #[error("the database server at {location} rejected the connection: {source}")]
    Rejected {
        /// The location, password redacted.
        location: String,
        /// The server's answer.
        #[source]
        source: sqlx::Error,
    },

    /// The database exists but was not created by Breakglass (it holds other tables, or it is not a
    /// database at all), so it is left untouched.
    #[error("{location} is not a Breakglass log database: {reason}")]
    NotBreakglass {
        /// The location, password redacted.
        location: String,
        /// What was found instead.
        reason: String,
    },

    /// The database schema was upgraded by a newer Breakglass than this one; this build refuses to
    /// use it rather than misread it.
    #[error(
        "the log database at {location} has schema version {found}, newer than the newest this \
         build knows ({supported}); upgrade Breakglass"
    )]
    NewerSchema {
        /// The location, password redacted.
        location: String,
        /// The newest schema version applied to the database.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },

    /// Applying or checking the schema migrations failed for another reason (for example an
    /// applied migration differs from this build's copy of it).
    #[error("cannot prepare the schema of the log database at {location}: {source}")]
    Migration {
        /// The location, password redacted.
        location: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// An append did not start at the head of the log: someone else appended first, or the caller
    /// is out of date. Nothing was written.
    #[error("append refused: it starts at index {actual} but the log's head is at {expected}")]
    NotAtHead {
        /// The current size of the log, where the append had to start.
        expected: u64,
        /// The index the append asked for.
        actual: u64,
    },

    /// The checkpoint handed to an append does not cover exactly the log after the append.
    /// Nothing was written.
    #[error(
        "append refused: the checkpoint is for size {checkpoint} but the log would have {new_size} entries"
    )]
    CheckpointMismatch {
        /// The size the checkpoint claims.
        checkpoint: u64,
        /// The size the log would have after the append.
        new_size: u64,
    },

    /// A removal of uncovered entries reached into entries a signed checkpoint covers. Nothing
    /// was removed.
    #[error("removal refused: entry {index} is covered by the checkpoint of size {covered}")]
    Covered {
        /// The first entry to be removed.
        index: u64,
        /// The size the latest checkpoint covers.
        covered: u64,
    },

    /// An append carried no entries. Nothing was written.
    #[error("append refused: no entries to append")]
    EmptyAppend,

    /// An earlier call on this append transaction failed, so it can only be rolled back.
    #[error("the append transaction failed earlier and can only be rolled back")]
    Poisoned,

    /// A requested range is empty the wrong way round or exceeds what the database can index.
    #[error("invalid range of log indexes [{from}, {to})")]
    InvalidRange {
        /// First index asked for.
        from: u64,
        /// One past the last index asked for.
        to: u64,
    },

    /// What is stored breaks the store's own invariants (a gap in the indexes, a negative value):
    /// the database was altered outside Breakglass.
    #[error("the log database is inconsistent: {detail}")]
    Corrupt {
        /// What was found.
        detail: String,
    },

    /// Another writer stored a row where this append wanted to write one, bypassing the
    /// single-writer lock. Nothing was written.
    #[error("append conflict: {detail}")]
    Conflict {
        /// Which row collided.
        detail: String,
    },

    /// The broker lease could not be confirmed: another broker may be acting now.
    #[error("the broker lease is lost: {reason}")]
    LeaseLost {
        /// Why.
        reason: String,
    },

    /// Any other database failure while doing `operation`.
    #[error("log database error while {operation}: {source}")]
    Database {
        /// What the store was doing, e.g. "reading entries".
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| {
            if let sqlx::Error::Database(db) = &source {
                if db.is_unique_violation() {
                    return StoreError::Conflict {
                        detail: format!("{operation}: {}", db.message()),
                    };
                }
            }
            StoreError::Database { operation, source }
        }
    }
}
