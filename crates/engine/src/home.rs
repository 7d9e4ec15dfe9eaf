//! The data directory: which log this is, where its database and keys are.
//!
//! `breakglass.toml` in the directory records the log's origin and checkpoint key (public), the
//! database location and where the system keys live. It holds no secret: keys are in the OS
//! keyring or in 0600 files under `keys/`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use breakglass_core::Clock;
use breakglass_ledger::NoteSigner;
use breakglass_store::Store;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::engine::{Actor, Engine, SystemKeys};
use crate::error::EngineError;
use crate::keys::{generate, KeyLocation};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    origin: String,
    log_key: String,
    database: Option<String>,
    system_keys: KeyStoreKind,
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
        if dir.join(CONFIG_FILE).exists() {
            return Err(EngineError::Setup(format!(
                "{} is already initialised",
                dir.display()
            )));
        }
        if let Some(p) = breakglass_core::names::name_problem(&opts.admin) {
            return Err(EngineError::Invalid(p));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| EngineError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let origin = format!("breakglass.local/{}", breakglass_core::hex(&suffix));
        let mut home = Home {
            dir: dir.to_owned(),
            config: Config {
                origin: origin.clone(),
                log_key: String::new(),
                database: opts.database.clone(),
                system_keys: opts.system_keys,
                default_identity: opts.admin.clone(),
            },
        };
        let admin_loc = opts
            .admin_key
            .clone()
            .unwrap_or_else(|| home.identity_key(&opts.admin));
        let mut created: Vec<KeyLocation> = Vec::new();
        let result = async {
            let admin_key = match admin_loc.load() {
                Ok(k) => k,
                Err(crate::keys::KeyError::Missing(_)) => {
                    let k = generate();
                    admin_loc.store_new(&k)?;
                    created.push(admin_loc.clone());
                    k
                }
                Err(crate::keys::KeyError::File { .. }) if matches!(&admin_loc, KeyLocation::File(p) if !p.exists()) => {
                    let k = generate();
                    admin_loc.store_new(&k)?;
                    created.push(admin_loc.clone());
                    k
                }
                Err(e) => return Err(e.into()),
            };
            let log_key = generate();
            let broker_key = generate();
            let (log_loc, broker_loc) = home.system_key_locations();
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

    fn write_config(&self) -> Result<(), EngineError> {
        let text = toml::to_string(&self.config)
            .map_err(|e| EngineError::Setup(format!("cannot encode the config: {e}")))?;
        let path = self.dir.join(CONFIG_FILE);
        let tmp = self.dir.join(format!("{CONFIG_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(
                b"# Breakglass data directory. Holds no secrets; do not edit the log key.\n",
            )?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| EngineError::Setup(format!("cannot write {}: {e}", path.display())))
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
        if let Ok(url) = std::env::var("BREAKGLASS_DATABASE_URL") {
            if !url.is_empty() {
                return url;
            }
        }
        self.config.database.clone().unwrap_or_else(|| {
            self.dir
                .join("breakglass.db")
                .to_string_lossy()
                .into_owned()
        })
    }

    /// Where an identity's key lives by default (the OS keyring, or `keys/NAME.pem` when the
    /// data directory keeps its keys in files).
    pub fn identity_key(&self, name: &str) -> KeyLocation {
        match self.config.system_keys {
            KeyStoreKind::Keyring => KeyLocation::Keyring(format!("{}/{name}", self.config.origin)),
            KeyStoreKind::File => {
                KeyLocation::File(self.dir.join("keys").join(format!("{name}.pem")))
            }
        }
    }

    fn system_key_locations(&self) -> (KeyLocation, KeyLocation) {
        match self.config.system_keys {
            KeyStoreKind::Keyring => (
                KeyLocation::Keyring(format!("{}/#log", self.config.origin)),
                KeyLocation::Keyring(format!("{}/#broker", self.config.origin)),
            ),
            KeyStoreKind::File => (
                KeyLocation::File(self.dir.join("keys/log.pem")),
                KeyLocation::File(self.dir.join("keys/broker.pem")),
            ),
        }
    }

    /// Loads the checkpoint and broker keys.
    pub fn system_keys(&self) -> Result<SystemKeys, EngineError> {
        let (log_loc, broker_loc) = self.system_key_locations();
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

    /// Opens the log with this directory's database and keys.
    pub async fn engine(&self, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        let keys = self.system_keys()?;
        let store = Store::open(&self.database()).await?;
        Engine::open(store, clock, keys).await
    }
}
