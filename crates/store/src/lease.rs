//! The broker lease: exactly one broker acts on a log at a time. Others wait as standbys and
//! take over when the lease is free again.
//!
//! - PostgreSQL (team mode): a session advisory lock held on a connection of its own. When the
//!   acting broker dies, its connection closes and the server frees the lock at once; a standby
//!   polling with `pg_try_advisory_lock` takes it on its next try. Before each pass the holder
//!   checks that the connection still answers: a broker that lost its connection (and so,
//!   perhaps, its lock) stops acting.
//! - SQLite (one machine): an exclusive lock on a file beside the database, freed by the
//!   operating system when the process ends.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use crate::error::StoreError;

/// The advisory lock key of the broker lease ("bgbrk").
pub(crate) const BROKER_LOCK: i64 = 0x62_67_62_72_6b;

/// How long a lease check may take before the lease counts as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for the server when taking the lease.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The right to act as the broker, held until dropped (or the process ends).
pub struct BrokerLease {
    hold: Hold,
}

enum Hold {
    Postgres(PgConnection),
    File { _file: File, path: PathBuf },
}

impl fmt::Debug for BrokerLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hold {
            Hold::Postgres(_) => f.write_str("BrokerLease(PostgreSQL advisory lock)"),
            Hold::File { path, .. } => write!(f, "BrokerLease({})", path.display()),
        }
    }
}

impl BrokerLease {
    /// Takes the PostgreSQL lease on a new connection, or `None` when another broker holds it.
    pub(crate) async fn postgres(
        options: &PgConnectOptions,
    ) -> Result<Option<BrokerLease>, StoreError> {
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
            .await
            .map_err(|_| StoreError::Database {
                operation: "connecting for the broker lease",
                source: sqlx::Error::PoolTimedOut,
            })?
            .map_err(StoreError::db("connecting for the broker lease"))?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(BROKER_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(StoreError::db("taking the broker lease"))?;
        if !taken {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(BrokerLease {
            hold: Hold::Postgres(conn),
        }))
    }

    /// Takes the lease file beside the SQLite database at `db`, or `None` when another broker
    /// holds it.
    pub(crate) fn file(db: &Path) -> Result<Option<BrokerLease>, StoreError> {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".broker-lock");
        let path = db.with_file_name(name);
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|source| StoreError::Unwritable {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(BrokerLease {
                hold: Hold::File { _file: file, path },
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(StoreError::Unwritable { path, source }),
        }
    }

    /// Confirms the lease still holds: for PostgreSQL, that its connection answers (and the
    /// lock is still this session's). An error means the lease may be lost: stop acting.
    pub async fn check(&mut self) -> Result<(), StoreError> {
        match &mut self.hold {
            Hold::File { .. } => Ok(()),
            Hold::Postgres(conn) => {
                let held: bool = tokio::time::timeout(
                    CHECK_TIMEOUT,
                    sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                         AND pid = pg_backend_pid() AND granted \
                         AND ((classid::bigint << 32) | objid::bigint) = $1)",
                    )
                    .bind(BROKER_LOCK)
                    .fetch_one(&mut *conn),
                )
                .await
                .map_err(|_| StoreError::LeaseLost {
                    reason: format!(
                        "the database did not answer within {}s",
                        CHECK_TIMEOUT.as_secs()
                    ),
                })?
                .map_err(|e| StoreError::LeaseLost {
                    reason: e.to_string(),
                })?;
                if held {
                    Ok(())
                } else {
                    Err(StoreError::LeaseLost {
                        reason: "this session no longer holds the lock".into(),
                    })
                }
            }
        }
    }

    /// Gives the lease up now (dropping it does the same, less promptly for PostgreSQL).
    pub async fn release(self) {
        if let Hold::Postgres(mut conn) = self.hold {
            // Unlocked first: closing alone frees the lock only once the server has seen the
            // connection end, and a standby trying right after this returns could be refused.
            // If the unlock fails (the connection is gone), the server frees the lock anyway.
            let unlock = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(BROKER_LOCK)
                .fetch_one(&mut conn);
            let _ = tokio::time::timeout(CHECK_TIMEOUT, unlock).await;
            let _ = conn.close().await;
        }
    }
}
