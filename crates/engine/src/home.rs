//! The data directory: which log this is, where its database and keys are.
//!
//! `breakglass.toml` in the directory records the log's origin and checkpoint key (public), the
//! database location and where the system keys live. It holds no secret: keys are in the OS
//! keyring or in 0600 files under `keys/`, and a database password in `~/.pgpass`,
//! `PGPASSWORD` or `BREAKGLASS_DATABASE_URL`.
//!
//! A team member's directory (made by [`Home::join`]) names the team's PostgreSQL database and
//! the log's checkpoint key but holds no system key (`system_keys = "none"`): the broker holds
//! them, and the member's engine is opened with [`Engine::join`].

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use breakglass_core::Clock;
use breakglass_ledger::{NoteSigner, NoteVerifier};
use breakglass_store::Store;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::engine::{Actor, Engine, SystemKeys};
use crate::error::EngineError;
use crate::keys::{generate, KeyLocation};
use crate::replica::REPLICA_FILE;

/// The config file's name inside the data directory.
pub const CONFIG_FILE: &str = "breakglass.toml";

/// Where the system keys (checkpoint key, broker key) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStoreKind {
    /// The OS keyring (Secret Service, Keychain, Credential Manager).
    Keyring,
    /// 0600 PKCS#8 files under `keys/` in the data directory.
    File,
}

/// Where a data directory's system keys are: with it, or, for a team member, nowhere (the
/// broker holds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SystemKeysAt {
    Keyring,
    File,
    None,
}

impl From<KeyStoreKind> for SystemKeysAt {
    fn from(kind: KeyStoreKind) -> Self {
        match kind {
            KeyStoreKind::Keyring => SystemKeysAt::Keyring,
            KeyStoreKind::File => SystemKeysAt::File,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    origin: String,
    log_key: String,
    database: Option<String>,
    system_keys: SystemKeysAt,
    /// Where identities' keys are, when not where the system keys are (a member's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity_keys: Option<KeyStoreKind>,
    default_identity: String,
}

/// An opened data directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
    config: Config,
}

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The first administrator's name.
    pub admin: String,
    /// Where the administrator's key is (created if absent).
    pub admin_key: Option<KeyLocation>,
    /// Where the system keys go.
    pub system_keys: KeyStoreKind,
    /// Database URL; the embedded SQLite file when `None`.
    pub database: Option<String>,
}

/// What `join` needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The team's PostgreSQL URL (`postgres://…`), without a password: `breakglass.toml` keeps
    /// it, so one is refused (the password goes in `~/.pgpass` or `PGPASSWORD`).
    pub database: String,
    /// The log's checkpoint key (C2SP vkey), given out of band by the team's administrator:
    /// the whole log is verified against it.
    pub log_key: String,
    /// Who acts here by default.
    pub identity: String,
    /// Where that identity's key is (created if absent); by default where `identity_keys` says.
    pub identity_key: Option<KeyLocation>,
    /// Where identities' keys are kept.
    pub identity_keys: KeyStoreKind,
}

/// A joined team log.
#[derive(Debug)]
pub struct Joined {
    /// The new data directory.
    pub home: Home,
    /// The team's log, verified against the given checkpoint key.
    pub engine: Engine,
    /// The acting identity's public key.
    pub key: breakglass_core::PublicKey,
    /// Whether that key was created now (it then still needs enrolling by an administrator).
    pub created_key: bool,
}

/// `BREAKGLASS_DATABASE_URL` when set, else `configured`, else the embedded SQLite file in `dir`.
fn database_url(configured: Option<&str>, dir: &Path) -> String {
    if let Ok(url) = std::env::var("BREAKGLASS_DATABASE_URL") {
        if !url.is_empty() {
            return url;
        }
    }
    configured.map_or_else(
        || dir.join("breakglass.db").to_string_lossy().into_owned(),
        str::to_owned,
    )
}

/// Refuses a database URL carrying a password, for `breakglass.toml` must hold no secret.
fn check_storable(database: &str) -> Result<(), EngineError> {
    let Ok(url) = url::Url::parse(database) else {
        return Ok(());
    };
    let in_query = url
        .query_pairs()
        .any(|(k, _)| k.to_ascii_lowercase().contains("password"));
    if url.password().is_some() || in_query {
        return Err(EngineError::Invalid(
            "the database URL holds a password, which breakglass.toml must not keep: give the URL \
             without it and keep the password in ~/.pgpass (0600) or PGPASSWORD, or set the whole \
             URL in BREAKGLASS_DATABASE_URL instead"
                .into(),
        ));
    }
    Ok(())
}

/// Refuses a `dir` that is already initialised, or `name` for its first identity when invalid.
fn check_new(dir: &Path, name: &str) -> Result<(), EngineError> {
    if dir.join(CONFIG_FILE).exists() {
        return Err(EngineError::Setup(format!(
            "{} is already initialised",
            dir.display()
        )));
    }
    match breakglass_core::names::name_problem(name) {
        Some(p) => Err(EngineError::Invalid(p)),
        None => Ok(()),
    }
}

/// Writes `contents` to `path` whole or not at all: an owner-only temporary file beside it,
/// flushed to disk, renamed over it, and the rename made durable.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Creates `dir` and its parents, owner-only.
fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EngineError::Setup(format!("cannot create {}: {e}", dir.display())))
}

/// Loads the key at `loc`, creating it when it does not exist yet; says whether it was created.
fn load_or_create(loc: &KeyLocation) -> Result<(ed25519_dalek::SigningKey, bool), EngineError> {
    match loc.load() {
        Ok(k) => Ok((k, false)),
        Err(crate::keys::KeyError::Missing(_)) => {
            let k = generate();
            loc.store_new(&k)?;
            Ok((k, true))
        }
        Err(crate::keys::KeyError::File { .. }) if matches!(loc, KeyLocation::File(p) if !p.exists()) =>
        {
            let k = generate();
            loc.store_new(&k)?;
            Ok((k, true))
        }
        Err(e) => Err(e.into()),
    }
}

/// The platform's app-data directory for Breakglass (`$BREAKGLASS_HOME` wins when set).
pub fn default_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("BREAKGLASS_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(x).join("breakglass"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/breakglass"))
}

impl Home {
    /// Opens an initialised data directory.
    pub fn open(dir: &Path) -> Result<Home, EngineError> {
        let path = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::Setup(format!(
                    "{} is not a Breakglass data directory (no {CONFIG_FILE}); run `breakglass init`",
                    dir.display()
                ))
            } else {
                EngineError::Setup(format!("cannot read {}: {e}", path.display()))
            }
        })?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| EngineError::Setup(format!("{}: {e}", path.display())))?;
        Ok(Home {
            dir: dir.to_owned(),
            config,
        })
    }

    /// Creates a data directory, its keys and a new log whose first entry `admin` signs.
    /// On failure nothing is left behind that a retry would trip over.
    pub async fn init(
        dir: &Path,
        opts: InitOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<(Home, Engine), EngineError> {
        check_new(dir, &opts.admin)?;
        if let Some(db) = &opts.database {
            check_storable(db)?;
        }
        create_private_dir(dir)?;
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let origin = format!("breakglass.local/{}", breakglass_core::hex(&suffix));
        let mut home = Home {
            dir: dir.to_owned(),
            config: Config {
                origin: origin.clone(),
                log_key: String::new(),
                database: opts.database.clone(),
                system_keys: opts.system_keys.into(),
                identity_keys: None,
                default_identity: opts.admin.clone(),
            },
        };
        let admin_loc = opts
            .admin_key
            .clone()
            .unwrap_or_else(|| home.identity_key(&opts.admin));
        let mut created: Vec<KeyLocation> = Vec::new();
        let result = async {
            let (admin_key, created_now) = load_or_create(&admin_loc)?;
            if created_now {
                created.push(admin_loc.clone());
            }
            let log_key = generate();
            let broker_key = generate();
            let (log_loc, broker_loc) = home.system_key_locations()?;
            log_loc.store_new(&log_key)?;
            created.push(log_loc);
            broker_loc.store_new(&broker_key)?;
            created.push(broker_loc);
            let signer = NoteSigner::new(origin.clone(), log_key)
                .map_err(|e| EngineError::Setup(e.to_string()))?;
            home.config.log_key = signer.verifier().vkey();
            let store = Store::open(&home.database()).await?;
            let engine = Engine::create(
                store,
                clock,
                SystemKeys {
                    log: signer,
                    broker: broker_key,
                },
                &Actor::new(opts.admin.clone(), admin_key),
            )
            .await?;
            home.write_config()?;
            Ok(engine)
        }
        .await;
        match result {
            Ok(engine) => Ok((home, engine)),
            Err(e) => {
                for loc in created {
                    let _ = loc.delete();
                }
                Err(e)
            }
        }
    }

    /// Joins a team's log as a member: verifies the whole log in the team's PostgreSQL database
    /// against the checkpoint key given out of band, then records both in a new data directory
    /// that holds no system key, and makes sure the acting identity has a key here (created if
    /// absent: an administrator then enrols its public key). On failure nothing is left behind.
    pub async fn join(
        dir: &Path,
        opts: JoinOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Joined, EngineError> {
        check_new(dir, &opts.identity)?;
        let lower = opts.database.to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            return Err(EngineError::Invalid(
                "joining a team needs its shared PostgreSQL database: give a postgres://… URL"
                    .into(),
            ));
        }
        check_storable(&opts.database)?;
        let verifier = NoteVerifier::from_vkey(opts.log_key.trim()).map_err(|e| {
            EngineError::Invalid(format!("the log key is not a checkpoint key (vkey): {e}"))
        })?;
        let origin = verifier.name().to_owned();
        let replica = dir.join(REPLICA_FILE);
        if replica.exists() {
            return Err(EngineError::Setup(format!(
                "{} already holds a copy of a log; choose another directory",
                dir.display()
            )));
        }
        let store = Store::open(&opts.database).await?;
        // What a failed join leaves behind is removed: the directory if it made it, else the
        // copy's files.
        let fresh = !dir.exists();
        let undo = || {
            if fresh {
                let _ = fs::remove_dir_all(dir);
            } else {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = fs::remove_file(dir.join(format!("{REPLICA_FILE}{suffix}")));
                }
            }
        };
        let result = async {
            create_private_dir(dir)?;
            let engine =
                Engine::join_with_replica(store, clock, verifier.clone(), &replica).await?;
            if engine.state().origin() != Some(origin.as_str()) {
                let found = engine.state().origin().unwrap_or("none").to_owned();
                engine.close().await;
                return Err(EngineError::Tampered(format!(
                    "the database holds log {found}, not {origin} whose key was given"
                )));
            }
            let home = Home {
                dir: dir.to_owned(),
                config: Config {
                    origin: origin.clone(),
                    log_key: verifier.vkey(),
                    database: Some(opts.database.clone()),
                    system_keys: SystemKeysAt::None,
                    identity_keys: Some(opts.identity_keys),
                    default_identity: opts.identity.clone(),
                },
            };
            let loc = opts
                .identity_key
                .clone()
                .unwrap_or_else(|| home.identity_key(&opts.identity));
            let written = load_or_create(&loc).and_then(|(key, created_key)| {
                home.write_config().inspect_err(|_| {
                    if created_key {
                        let _ = loc.delete();
                    }
                })?;
                Ok((key, created_key))
            });
            match written {
                Ok((key, created_key)) => Ok(Joined {
                    home,
                    engine,
                    key: crate::keys::public_key(&key),
                    created_key,
                }),
                Err(e) => {
                    engine.close().await;
                    Err(e)
                }
            }
        }
        .await;
        result.inspect_err(|_| undo())
    }

    /// Whether this is a team member's data directory (the broker holds the log's keys).
    pub fn is_member(&self) -> bool {
        self.config.system_keys == SystemKeysAt::None
    }

    fn write_config(&self) -> Result<(), EngineError> {
        let text = toml::to_string(&self.config)
            .map_err(|e| EngineError::Setup(format!("cannot encode the config: {e}")))?;
        let path = self.dir.join(CONFIG_FILE);
        let mut contents =
            b"# Breakglass data directory. Holds no secrets; do not edit the log key.\n".to_vec();
        contents.extend_from_slice(text.as_bytes());
        write_private(&path, &contents)
            .map_err(|e| EngineError::Setup(format!("cannot write {}: {e}", path.display())))
    }

    /// Makes `name` the identity commands act as by default, and records it in the config.
    pub fn set_default_identity(&mut self, name: &str) -> Result<(), EngineError> {
        if let Some(p) = breakglass_core::names::name_problem(name) {
            return Err(EngineError::Invalid(p));
        }
        let previous = std::mem::replace(&mut self.config.default_identity, name.to_owned());
        self.write_config().inspect_err(|_| {
            self.config.default_identity = previous;
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.config.origin
    }

    /// The checkpoint key (C2SP vkey) recorded at init.
    pub fn log_key(&self) -> &str {
        &self.config.log_key
    }

    /// The identity commands act as by default.
    pub fn default_identity(&self) -> &str {
        &self.config.default_identity
    }

    /// The database location: `BREAKGLASS_DATABASE_URL` when set, else the configured one, else
    /// the embedded SQLite file.
    pub fn database(&self) -> String {
        database_url(self.config.database.as_deref(), &self.dir)
    }

    /// Where an identity's key lives by default (the OS keyring, or `keys/NAME.pem` when the
    /// data directory keeps its keys in files).
    pub fn identity_key(&self, name: &str) -> KeyLocation {
        let kind = self
            .config
            .identity_keys
            .unwrap_or(match self.config.system_keys {
                SystemKeysAt::File => KeyStoreKind::File,
                SystemKeysAt::Keyring | SystemKeysAt::None => KeyStoreKind::Keyring,
            });
        match kind {
            KeyStoreKind::Keyring => KeyLocation::Keyring(format!("{}/{name}", self.config.origin)),
            KeyStoreKind::File => {
                KeyLocation::File(self.dir.join("keys").join(format!("{name}.pem")))
            }
        }
    }

    fn system_key_locations(&self) -> Result<(KeyLocation, KeyLocation), EngineError> {
        match self.config.system_keys {
            SystemKeysAt::Keyring => Ok((
                KeyLocation::Keyring(format!("{}/#log", self.config.origin)),
                KeyLocation::Keyring(format!("{}/#broker", self.config.origin)),
            )),
            SystemKeysAt::File => Ok((
                KeyLocation::File(self.dir.join("keys/log.pem")),
                KeyLocation::File(self.dir.join("keys/broker.pem")),
            )),
            SystemKeysAt::None => Err(EngineError::Invalid(format!(
                "{} is a team member's data directory: the log's keys are the broker's",
                self.dir.display()
            ))),
        }
    }

    /// Loads the checkpoint and broker keys (refused in a team member's directory).
    pub fn system_keys(&self) -> Result<SystemKeys, EngineError> {
        let (log_loc, broker_loc) = self.system_key_locations()?;
        let log = NoteSigner::new(self.config.origin.clone(), log_loc.load()?)
            .map_err(|e| EngineError::Setup(e.to_string()))?;
        if log.verifier().vkey() != self.config.log_key {
            return Err(EngineError::Tampered(
                "the stored checkpoint key does not match the log key in breakglass.toml".into(),
            ));
        }
        Ok(SystemKeys {
            log,
            broker: broker_loc.load()?,
        })
    }

    /// Opens the log with this directory's database and keys (a team member's with the log's
    /// checkpoint key only: [`Engine::join`]).
    pub async fn engine(&self, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        if self.is_member() {
            let verifier = NoteVerifier::from_vkey(&self.config.log_key).map_err(|e| {
                EngineError::Setup(format!("the log key in {CONFIG_FILE} is not a vkey: {e}"))
            })?;
            let store = Store::open(&self.database()).await?;
            return Engine::join_with_replica(store, clock, verifier, &self.dir.join(REPLICA_FILE))
                .await;
        }
        let keys = self.system_keys()?;
        let store = Store::open(&self.database()).await?;
        Engine::open(store, clock, keys).await
    }
}
