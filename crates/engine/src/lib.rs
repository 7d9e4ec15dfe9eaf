#![forbid(unsafe_code)]
//! Breakglass engine: the one surface every front end (CLI, desktop app, broker) calls.
//!
//! Owns the command pipeline: check a command against the rules of the replayed log, sign the
//! event with its actor's key, append it with a signed checkpoint under the store's writer lock,
//! and only then run connectors (fail closed). Also owns the expiry scheduler, the data
//! directory and key storage. It never trusts the database: every entry it reads is verified.
//!
//! ```
//! use std::sync::Arc;
//! use breakglass_core::{Span, Status, SystemClock};
//! use breakglass_engine::{generate, Actor, Engine, NewRequest, SystemKeys};
//! use breakglass_ledger::NoteSigner;
//! use breakglass_store::Store;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(&dir.path().join("log.db").display().to_string()).await?;
//! let keys = SystemKeys { log: NoteSigner::new("example.org/log", generate())?, broker: generate() };
//! let admin = Actor::new("admin", generate());
//! let mut engine = Engine::create(store, Arc::new(SystemClock), keys, &admin).await?;
//! engine.apply_policy(&admin, r#"
//!     version = 1
//!     [groups]
//!     admin = ["admin"]
//!     oncall = ["dana"]
//!     [targets.db]
//!     max_duration = "1h"
//!     request_ttl = "30m"
//!     extension_cap = "2h"
//!     approvers = { groups = ["admin"], quorum = 1 }
//!     [targets.db.break_glass]
//!     max_duration = "15m"
//!     [targets.db.connector]
//!     kind = "command"
//!     grant = ["/bin/true"]
//!     revoke = ["/bin/true"]
//! "#).await?;
//! let dana = Actor::new("dana", generate());
//! engine.enrol(&admin, "dana", dana.public_key(), []).await?;
//!
//! // Break-glass: granted at once, with an alert and a review owed.
//! let out = engine.request(&dana, NewRequest {
//!     target: "db".into(), role: None, duration: Span::parse("10m")?,
//!     reason: "primary is down".into(), ticket: Some("INC-7".into()),
//!     break_glass: true, extends: None, credential: None,
//! }).await?;
//! assert_eq!(out.state, Status::Active);
//! assert!(out.deadline.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod archive;
pub mod desk;
mod engine;
mod error;
mod evidence;
mod export;
mod file;
pub mod findings;
mod home;
mod keys;
pub mod ocsf;
mod replica;
pub mod report;
mod scheduler;
mod session;
pub mod signin;
mod witness;

pub use archive::Archived;
pub use breakglass_store::{Heard, LogListener};
pub use engine::{Actor, Engine, NewRequest, Outcome, SystemKeys};
pub use error::{Code, EngineError};
pub use export::{
    neutralise_formula, verify_stored_bundle, write_csv, write_jsonl, write_stored_bundle,
    EventCount, EventExport, EventFormat, ExportFilter, CSV_COLUMNS,
};
pub use file::AtomicFile;
pub use home::{default_dir, Home, InitOptions, JoinOptions, Joined, KeyStoreKind, CONFIG_FILE};
pub use keys::{generate, public_key, KeyError, KeyLocation, KEYRING_SERVICE};
pub use replica::REPLICA_FILE;
pub use scheduler::{
    heard, revoke_due_at, BrokerNotice, RevokeRun, TickReport, REVOKE_CONCURRENCY,
    REVOKE_RETRY_FIRST, REVOKE_RETRY_MAX, STANDBY_POLL,
};
pub use witness::witness_name;
