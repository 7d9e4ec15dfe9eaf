//! Where signing keys live: the OS keyring (default) or a 0600 key file.
//!
//! Key files hold an Ed25519 private key as PKCS#8 PEM (interoperable with OpenSSL). A key file
//! readable by group or others is refused, as OpenSSH refuses such keys. Keys never leave this
//! module except as `SigningKey`s, whose memory is wiped on drop.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use breakglass_connectors::secrets::keyring_call;
use breakglass_core::PublicKey;

/// The keyring service name under which Breakglass stores keys.
pub const KEYRING_SERVICE: &str = "breakglass";

/// Why a key could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The key file is readable by other users.
    #[error(
        "key file {path} is accessible by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OS keyring failed or is unavailable.
    #[error("OS keyring ({what}): {why}")]
    Keyring {
        /// Which key.
        what: String,
        /// What went wrong; for a missing Secret Service, how to proceed.
        why: String,
    },
    /// No key is stored there.
    #[error("no key found for {0}")]
    Missing(String),
}

/// Where one key is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// A PKCS#8 PEM file with mode 0600.
    File(PathBuf),
    /// An entry in the OS keyring (service [`KEYRING_SERVICE`], this user name).
    Keyring(String),
}

impl fmt::Debug for KeyLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyLocation::File(p) => write!(f, "file {}", p.display()),
            KeyLocation::Keyring(u) => write!(f, "keyring {KEYRING_SERVICE}/{u}"),
        }
    }
}

impl fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Makes a new random key.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// The public half in the log's encoding.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

impl KeyLocation {
    /// Loads the key.
    pub fn load(&self) -> Result<SigningKey, KeyError> {
        match self {
            KeyLocation::File(path) => load_file(path),
            KeyLocation::Keyring(user) => {
                let entry = keyring_entry(user)?;
                let secret = keyring_call(|| entry.get_password()).map_err(|e| match e {
                    keyring::Error::NoEntry => KeyError::Missing(format!("{self}")),
                    other => keyring_error(user, other),
                })?;
                let secret = Zeroizing::new(secret);
                SigningKey::from_pkcs8_pem(&secret).map_err(|_| KeyError::Keyring {
                    what: user.clone(),
                    why: "the stored secret is not an Ed25519 PKCS#8 key".into(),
                })
            }
        }
    }

    /// Stores `key`, refusing to overwrite an existing key.
    pub fn store_new(&self, key: &SigningKey) -> Result<(), KeyError> {
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::File {
                path: PathBuf::new(),
                why: format!("cannot encode key: {e}"),
            })?;
        match self {
            KeyLocation::File(path) => write_file(path, pem.as_bytes()),
            KeyLocation::Keyring(user) => {
                let entry = keyring_entry(user)?;
                match keyring_call(|| entry.get_password()) {
                    Ok(_) => {
                        return Err(KeyError::Keyring {
                            what: user.clone(),
                            why: "a key is already stored there; refusing to overwrite it".into(),
                        })
                    }
                    Err(keyring::Error::NoEntry) => {}
                    Err(e) => return Err(keyring_error(user, e)),
                }
                keyring_call(|| entry.set_password(&pem)).map_err(|e| keyring_error(user, e))
            }
        }
    }

    /// Removes the key (used to roll back a failed setup, and to make room for a new one). A
    /// key that is not there is already removed, from a file as from the keyring.
    pub fn delete(&self) -> Result<(), KeyError> {
        match self {
            KeyLocation::File(path) => match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(KeyError::File {
                    path: path.clone(),
                    why: e.to_string(),
                }),
            },
            KeyLocation::Keyring(user) => {
                let entry = keyring_entry(user)?;
                match keyring_call(|| entry.delete_credential()) {
                    Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(keyring_error(user, e)),
                }
            }
        }
    }
}

pub(crate) fn keyring_entry(user: &str) -> Result<keyring::Entry, KeyError> {
    keyring::Entry::new(KEYRING_SERVICE, user).map_err(|e| keyring_error(user, e))
}

pub(crate) fn keyring_error(user: &str, e: keyring::Error) -> KeyError {
    let why = match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => format!(
            "the Secret Service is not reachable ({inner}); start a keyring (e.g. gnome-keyring) in this session, or use key files (--key-file, --system-keys file)"
        ),
        other => other.to_string(),
    };
    KeyError::Keyring {
        what: user.to_owned(),
        why,
    }
}

fn load_file(path: &Path) -> Result<SigningKey, KeyError> {
    let err = |why: String| KeyError::File {
        path: path.to_owned(),
        why,
    };
    let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let pem = Zeroizing::new(fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|_| err("not an Ed25519 private key in PKCS#8 PEM form".into()))
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let err = |why: String| KeyError::File {
        path: path.to_owned(),
        why,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| err(format!("cannot create its directory: {e}")))?;
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                err("already exists; refusing to overwrite a key".into())
            } else {
                err(e.to_string())
            }
        })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let loc = KeyLocation::File(dir.path().join("k/alice.pem"));
        let key = generate();
        loc.store_new(&key).unwrap();
        assert_eq!(loc.load().unwrap().to_bytes(), key.to_bytes());
        let KeyLocation::File(p) = &loc else {
            unreachable!()
        };
        assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(
            loc.store_new(&generate()).is_err(),
            "an existing key must never be overwritten"
        );
    }

    #[test]
    fn deleting_a_key_file_that_is_not_there_is_not_an_error() {
        // A first sign-in on a data directory with key files clears the place for the new key
        // before storing it; it must not fail because nothing was there.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/alice.pem");
        let loc = KeyLocation::File(path.clone());
        loc.delete().expect("nothing there: already deleted");
        loc.store_new(&generate()).unwrap();
        loc.delete().expect("the key file is removed");
        assert!(!path.exists());
        // Anything else that stops the removal is still an error.
        fs::create_dir_all(&path).unwrap();
        assert!(matches!(loc.delete(), Err(KeyError::File { .. })));
    }

    #[test]
    fn wider_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let loc = KeyLocation::File(path.clone());
        loc.store_new(&generate()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            loc.load(),
            Err(KeyError::TooOpen { mode: 0o640, .. })
        ));
    }

    #[test]
    fn garbage_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        fs::write(&path, "not a key").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = KeyLocation::File(path).load().unwrap_err().to_string();
        assert!(e.contains("not an Ed25519 private key"), "{e}");
    }
}
