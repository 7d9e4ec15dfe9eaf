//! A person's sign-in with their identity provider: the ID token (presented with decisions) and
//! the refresh token, kept in the OS keyring only — never in the database, the data directory
//! or a log line.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use breakglass_connectors::secrets::keyring_call;

use crate::keys::{keyring_entry, keyring_error, KeyError, KEYRING_SERVICE};

/// The tokens of one sign-in. `Debug` shows no token; memory is wiped on drop.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The provider's name in the policy.
    pub provider: String,
    /// The ID token of the sign-in.
    pub id_token: String,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("provider", &self.provider)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// Where one identity's session is kept: an OS keyring entry (service
/// [`KEYRING_SERVICE`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionLocation(String);

impl fmt::Debug for SessionLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keyring {KEYRING_SERVICE}/{}", self.0)
    }
}

impl SessionLocation {
    /// The session entry of identity `name` in the log `origin`.
    pub fn new(origin: &str, name: &str) -> Self {
        SessionLocation(format!("{origin}/{name}#session"))
    }

    /// The stored session, if any.
    pub fn load(&self) -> Result<Option<Session>, KeyError> {
        let entry = keyring_entry(&self.0)?;
        let secret = match keyring_call(|| entry.get_password()) {
            Ok(s) => Zeroizing::new(s),
            Err(keyring::Error::NoEntry) => return Ok(None),
            Err(e) => return Err(keyring_error(&self.0, e)),
        };
        serde_json::from_str(&secret)
            .map(Some)
            .map_err(|_| KeyError::Keyring {
                what: self.0.clone(),
                why: "the stored sign-in does not read; run `breakglass login` again".into(),
            })
    }

    /// Stores `session`, replacing any earlier one.
    pub fn store(&self, session: &Session) -> Result<(), KeyError> {
        let json =
            Zeroizing::new(
                serde_json::to_string(session).map_err(|e| KeyError::Keyring {
                    what: self.0.clone(),
                    why: e.to_string(),
                })?,
            );
        let entry = keyring_entry(&self.0)?;
        keyring_call(|| entry.set_password(&json)).map_err(|e| keyring_error(&self.0, e))
    }

    /// Removes the session (nothing to do when there is none).
    pub fn delete(&self) -> Result<(), KeyError> {
        let entry = keyring_entry(&self.0)?;
        match keyring_call(|| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(&self.0, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_token() {
        let s = Session {
            provider: "corp".into(),
            id_token: "eyJ-secret-id-token".into(),
            refresh_token: Some("rt-secret".into()),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("corp"));
    }
}
