//! The team backend: one PostgreSQL database shared by every app, the CLI and the broker.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};

use crate::location::redact;
use crate::schema::{self, Applied};
use crate::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory lock key held (per transaction) by every appender: "bglog" in ASCII.
pub(crate) const APPEND_LOCK: i64 = 0x62_67_6c_6f_67;
/// Advisory lock key held (per session) while checking and migrating the schema: "bgmig".
const MIGRATE_LOCK: i64 = 0x62_67_6d_69_67;

/// How long to wait for the server to answer a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A log kept in a PostgreSQL database (team mode).
///
/// Appends are serialised across every process by a transaction-scoped advisory lock.
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// How to connect (for connections of their own, such as the broker lease's). Holds the
    /// password: never shown. Boxed: it is large and rarely used.
    options: Box<PgConnectOptions>,
    /// The location with its password redacted; the only form of it that is kept.
    location: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    pub(crate) async fn open(url: &str) -> Result<PgStore, StoreError> {
        let location = redact(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidLocation {
            location: location.clone(),
            // sqlx's URL errors describe the syntax, never echo the URL.
            reason: e.to_string(),
        })?;

        // One direct connection first: a single attempt gives a prompt, precise error for a wrong
        // host or password, where a pool would retry until its timeout.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::Unreachable {
                location: location.clone(),
                source: sqlx::Error::PoolTimedOut,
            })?
            .map_err(|e| map_connect_error(&location, e))?;
        let migrated = migrate(&mut conn, &location).await;
        // Closing releases the session advisory lock even if migration failed half-way.
        let _ = conn.close().await;
        migrated?;

        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy_with(options.clone());
        Ok(PgStore {
            pool,
            options: Box::new(options),
            location,
        })
    }

    pub(crate) fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}

fn map_connect_error(location: &str, source: sqlx::Error) -> StoreError {
    let location = location.to_owned();
    match source {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
            StoreError::Unreachable { location, source }
        }
        sqlx::Error::Database(_) | sqlx::Error::Protocol(_) | sqlx::Error::Configuration(_) => {
            StoreError::Rejected { location, source }
        }
        source => StoreError::Database {
            operation: "connecting to PostgreSQL",
            source,
        },
    }
}

/// Checks that the database is (or can become) a Breakglass log and migrates it, holding a
/// session advisory lock so that concurrent openers migrate one at a time.
async fn migrate(conn: &mut PgConnection, location: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("taking the migration lock"))?;

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::db("listing tables"))?;
    let applied = if tables.iter().any(|t| t == schema::MIGRATIONS_TABLE) {
        Some(
            sqlx::query_as::<Postgres, Applied>(schema::APPLIED_QUERY)
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::db("reading the schema version"))?,
        )
    } else {
        None
    };
    schema::check(&MIGRATOR, location, &tables, applied.as_deref())?;
    if !applied
        .as_deref()
        .is_some_and(|a| schema::up_to_date(&MIGRATOR, a))
    {
        // `run_direct` rather than `run`: `run`'s `Acquire` bound makes this future non-`Send`
        // (sqlx's own documented workaround).
        MIGRATOR
            .run_direct(&mut *conn)
            .await
            .map_err(|e| schema::map_migrate_error(&MIGRATOR, location, e))?;
    }

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db("releasing the migration lock"))?;
    Ok(())
}
