//! What a writer with direct access to the database can do: insert rows behind the engine's
//! back, with a checkpoint signed by whatever key they hold.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::path::Path;

use breakglass_engine::Engine;
use breakglass_ledger::{root_of, Checkpoint, Entry, NoteSigner};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Inserts `entries` at `index…` and, if given, a checkpoint, straight into the SQLite file.
pub async fn raw_insert_all(
    db: &Path,
    index: u64,
    entries: &[&[u8]],
    checkpoint: Option<(u64, String)>,
) {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    for (i, entry) in entries.iter().enumerate() {
        sqlx::query("INSERT INTO log_entries (idx, entry) VALUES (?, ?)")
            .bind((index + i as u64) as i64)
            .bind(*entry)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    if let Some((size, note)) = checkpoint {
        sqlx::query("INSERT INTO checkpoints (size, note) VALUES (?, ?)")
            .bind(size as i64)
            .bind(note)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

/// [`raw_insert_all`] for one entry.
pub async fn raw_insert(db: &Path, index: u64, entry: &[u8], checkpoint: Option<(u64, String)>) {
    raw_insert_all(db, index, &[entry], checkpoint).await;
}

/// A checkpoint over `engine`'s log plus `extra`, signed by `signer`.
pub async fn checkpoint_over(
    engine: &Engine,
    extra: &[Entry],
    signer: &NoteSigner,
    origin: &str,
) -> (u64, String) {
    let mut leaves: Vec<[u8; 32]> = engine
        .entries(0, engine.size())
        .await
        .unwrap()
        .iter()
        .map(|b| breakglass_ledger::leaf_hash(b))
        .collect();
    leaves.extend(extra.iter().map(|e| *e.leaf_hash()));
    let size = leaves.len() as u64;
    let note = signer
        .sign_checkpoint(&Checkpoint {
            origin: origin.into(),
            size,
            root: root_of(&leaves),
            extensions: Vec::new(),
        })
        .unwrap();
    (size, note)
}
pub mod crash;
pub mod history;
