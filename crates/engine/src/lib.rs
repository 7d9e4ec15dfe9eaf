#![forbid(unsafe_code)]
//! Breakglass engine: the one surface every front end (CLI, desktop app, broker) calls.
//!
//! Owns the command pipeline: check a command against the rules of the replayed log, sign the
//! event with its actor's key, append it with a signed checkpoint under the store's writer lock,
//! and only then run connectors (fail closed). Also owns the expiry scheduler, the data
//! directory and key storage. It never trusts the database: every entry it reads is verified.

mod connector;
mod engine;
mod error;
mod export;
mod home;
mod keys;

pub use connector::{
    connector_for, Action, BoxFuture, CommandConnector, Connector, ConnectorError, Instruction,
};
pub use engine::{Actor, Engine, NewRequest, Outcome, SystemKeys, TickReport};
pub use error::{Code, EngineError};
pub use export::{neutralise_formula, write_csv, write_jsonl, ExportFilter, CSV_COLUMNS};
pub use home::{default_dir, Home, InitOptions, KeyStoreKind, CONFIG_FILE};
pub use keys::{generate, public_key, KeyError, KeyLocation, KEYRING_SERVICE};
