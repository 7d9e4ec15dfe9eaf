//! Live updates in team mode: PostgreSQL's `LISTEN` on [`crate::LOG_CHANNEL`], on which every
//! committed append, cover and removal is announced.
//!
//! A notification is only a hint to read the store again: anyone who can connect may send one,
//! and its payload is not trusted. What matters is that none is missed silently: when the
//! listening connection is lost, the listener connects again and says so
//! ([`Heard::Reconnected`]), and the reader catches up from the last index it holds.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{StoreError, LOG_CHANNEL};

/// The first wait before connecting again after the listening connection failed; it doubles
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// How long to wait for the server to answer the listening connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a [`LogListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The log changed (an append, a cover or a removal was committed).
    Changed,
    /// The listening connection was lost and is back: changes may have gone unannounced
    /// meanwhile, so read the store again.
    Reconnected,
}

/// Hears of changes other processes commit to a team's log, on a connection of its own, until
/// dropped.
#[derive(Debug)]
pub struct LogListener {
    heard: mpsc::Receiver<Heard>,
    task: JoinHandle<()>,
}

impl Drop for LogListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LogListener {
    /// Connects and listens: once this returns, every change committed afterwards is heard.
    pub(crate) async fn postgres(options: &PgConnectOptions) -> Result<LogListener, StoreError> {
        let listener = listen(options).await?;
        // Room for one of each kind is enough: a queued signal already makes the reader look.
        let (tx, heard) = mpsc::channel(2);
        let options = options.clone();
        let task = tokio::spawn(async move {
            let mut listener = listener;
            let mut retry = RETRY_FIRST;
            loop {
                let said = match listener.try_recv().await {
                    Ok(Some(_)) => Heard::Changed,
                    // sqlx has already connected and listened again.
                    Ok(None) => Heard::Reconnected,
                    Err(_) => loop {
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                        if let Ok(fresh) = listen(&options).await {
                            listener = fresh;
                            break Heard::Reconnected;
                        }
                    },
                };
                retry = RETRY_FIRST;
                match tx.try_send(said) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        Ok(LogListener { heard, task })
    }

    /// Waits until something is heard. Cancel-safe: use it in `tokio::select!`.
    pub async fn next(&mut self) -> Heard {
        match self.heard.recv().await {
            Some(h) => h,
            // The listening task never ends on its own while this is alive.
            None => std::future::pending().await,
        }
    }
}

/// A connection of its own (a pool of one, through which sqlx reconnects) listening on the
/// log's channel.
async fn listen(options: &PgConnectOptions) -> Result<PgListener, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool)
        .await
        .map_err(StoreError::db("connecting to listen for changes"))?;
    listener.ignore_pool_close_event(true);
    listener
        .listen(LOG_CHANNEL)
        .await
        .map_err(StoreError::db("listening for changes"))?;
    Ok(listener)
}
