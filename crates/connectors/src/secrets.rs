//! Connector secrets (a CA key, an administrative password, a signing secret): the policy only
//! says where each is kept ([`SecretRef`]); the process that runs connectors reads it from there
//! when it needs it, and nothing writes it anywhere else.

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use breakglass_core::policy::{SecretRef, SECRET_KEYRING_SERVICE};
use zeroize::Zeroizing;

use crate::ConnectorError;

/// The largest secret read, in bytes.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Where connectors get their secrets.
pub trait Secrets: Send + Sync {
    /// The secret `at` refers to.
    fn read(&self, at: &SecretRef) -> Result<Zeroizing<Vec<u8>>, ConnectorError>;
}

/// The OS keyring (service [`SECRET_KEYRING_SERVICE`]) and owner-only files.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSecrets;

impl Secrets for SystemSecrets {
    fn read(&self, at: &SecretRef) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
        match at {
            SecretRef::Keyring(name) => {
                let entry = keyring_entry(name)?;
                match keyring_call(|| entry.get_secret()) {
                    Ok(bytes) => Ok(Zeroizing::new(bytes)),
                    Err(keyring::Error::NoEntry) => Err(ConnectorError::new(format!(
                        "secret {at} is not in the keyring; store it with `breakglass secret \
                         set {name}`"
                    ))),
                    Err(e) => Err(keyring_error(at, e)),
                }
            }
            SecretRef::File(path) => read_private_file(path),
        }
    }
}

/// Stores `secret` in the keyring as `keyring:NAME`, replacing what was there.
pub fn store_in_keyring(name: &str, secret: &[u8]) -> Result<(), ConnectorError> {
    let at = SecretRef::Keyring(name.to_owned());
    let entry = keyring_entry(name)?;
    keyring_call(|| entry.set_secret(secret)).map_err(|e| keyring_error(&at, e))
}

/// How long [`keyring_call`] keeps trying after the Secret Service went away mid-call.
const KEYRING_RESTART_WAIT: Duration = Duration::from_secs(5);

/// Runs one keyring operation, once more if the Secret Service went away in the middle of it.
///
/// A keyring daemon can exit while a call is in flight (gnome-keyring 42 aborts now and then
/// when a client disconnects); the session bus starts a new one on the next call. So when a
/// call ends with "no reply" the operation is repeated, every 100 ms while the service is
/// missing, for up to [`KEYRING_RESTART_WAIT`]. Only a call that got no reply quickly is
/// repeated: a missing service, a locked keyring, a refusal or a timed-out call fail at once.
/// Each operation (read, replace, delete) is safe to repeat.
pub fn keyring_call<T>(mut op: impl FnMut() -> keyring::Result<T>) -> keyring::Result<T> {
    let started = Instant::now();
    let mut result = op();
    let went_away = matches!(&result, Err(e) if service_gone(e, true));
    if !went_away || started.elapsed() > KEYRING_RESTART_WAIT {
        return result;
    }
    let deadline = Instant::now() + KEYRING_RESTART_WAIT;
    while matches!(&result, Err(e) if service_gone(e, false)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        result = op();
    }
    result
}

/// Whether `e` says the Secret Service vanished: mid-call (no reply) or, when `mid_call` is
/// false, also not on the bus (yet).
fn service_gone(e: &keyring::Error, mid_call: bool) -> bool {
    use dbus_secret_service::Error;
    let (keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner)) = e
    else {
        return false;
    };
    match inner.downcast_ref::<Error>() {
        Some(Error::Dbus(d)) => match d.name() {
            Some("org.freedesktop.DBus.Error.NoReply") => true,
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner",
            ) => !mid_call,
            _ => false,
        },
        Some(Error::Unavailable) => !mid_call,
        _ => false,
    }
}

fn keyring_entry(name: &str) -> Result<keyring::Entry, ConnectorError> {
    keyring::Entry::new(SECRET_KEYRING_SERVICE, name)
        .map_err(|e| keyring_error(&SecretRef::Keyring(name.to_owned()), e))
}

fn keyring_error(at: &SecretRef, e: keyring::Error) -> ConnectorError {
    let why = match e {
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            format!("the Secret Service is not reachable ({inner})")
        }
        other => other.to_string(),
    };
    ConnectorError::new(format!("reading secret {at}: {why}"))
}

/// A file only its owner can read or write (mode 0600 or 0400; like ssh with private keys, a
/// wider one is refused), at most [`MAX_SECRET_BYTES`] long.
fn read_private_file(path: &str) -> Result<Zeroizing<Vec<u8>>, ConnectorError> {
    let err = |why: String| ConnectorError::new(format!("secret file {path}: {why}"));
    let file = fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "other users may access it (mode {mode:o}); run `chmod 600 {path}`"
            )));
        }
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(err(format!("larger than {MAX_SECRET_BYTES} bytes")));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.is_empty() {
        return Err(err("it is empty".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_read_and_open_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, b"s3cret value").unwrap();
        let at = SecretRef::File(path.display().to_string());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let e = SystemSecrets.read(&at).unwrap_err().to_string();
        assert!(e.contains("mode 640") && e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(&SystemSecrets.read(&at).unwrap()[..], b"s3cret value");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(&SystemSecrets.read(&at).unwrap()[..], b"s3cret value");

        let missing = SecretRef::File(dir.path().join("nope").display().to_string());
        assert!(SystemSecrets.read(&missing).is_err());
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").unwrap();
        fs::set_permissions(&empty, fs::Permissions::from_mode(0o600)).unwrap();
        let e = SystemSecrets
            .read(&SecretRef::File(empty.display().to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}
