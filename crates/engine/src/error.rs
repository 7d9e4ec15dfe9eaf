//! The engine's error, with a stable code for front ends.

use breakglass_core::policy::PolicyErrors;
use breakglass_core::Refusal;
use breakglass_ledger::Violation;
use breakglass_store::StoreError;
use serde::Serialize;

use crate::keys::KeyError;

/// What kind of failure, for front ends to match on (the UI's `{code, message}`; the CLI's
/// exit status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Code {
    /// A rule refused the command; nothing changed.
    Refused,
    /// The input was invalid; nothing changed.
    InvalidInput,
    /// The named thing does not exist.
    NotFound,
    /// The stored log failed verification.
    Tampered,
    /// Storage failed.
    Storage,
    /// A key could not be used.
    Key,
    /// A connector failed.
    Connector,
    /// The identity provider could not be reached or refused the sign-in.
    IdentityProvider,
    /// No data directory is open yet (a front end's first run is not finished).
    SetupRequired,
    /// Something failed inside the front end itself.
    Internal,
}

/// Why an engine command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A lifecycle or policy rule refused the command.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The policy text has problems.
    #[error("the policy has {} problem(s):\n{}", .0.0.len(), .0)]
    Policy(PolicyErrors),
    /// Input was invalid before any rule was consulted.
    #[error("{0}")]
    Invalid(String),
    /// The stored log does not verify: it was altered, truncated or forged.
    #[error("the stored log failed verification: {0}")]
    Tampered(String),
    /// An entry in the stored log breaks a rule or has a bad signature.
    #[error("the stored log failed verification: {0}")]
    Violation(#[from] Violation),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A key could not be loaded or stored.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The log is not initialised, or already is.
    #[error("{0}")]
    Setup(String),
    /// Talking to the identity provider failed (unreachable, refused, or a token that did not
    /// check out).
    #[error("{0}")]
    IdentityProvider(#[from] breakglass_idp::IdpError),
    /// A connector failed to grant or revoke.
    #[error("connector for {target} failed: {error}")]
    Connector {
        /// Target.
        target: String,
        /// What failed.
        error: String,
    },
}

impl EngineError {
    /// The code front ends match on.
    pub fn code(&self) -> Code {
        match self {
            EngineError::Refused(Refusal::UnknownRequest(_))
            | EngineError::Refused(Refusal::UnknownTarget(_))
            | EngineError::Refused(Refusal::UnknownIdentity(_)) => Code::NotFound,
            EngineError::Refused(_) => Code::Refused,
            EngineError::Policy(_) | EngineError::Invalid(_) | EngineError::Setup(_) => {
                Code::InvalidInput
            }
            EngineError::Tampered(_) | EngineError::Violation(_) => Code::Tampered,
            EngineError::Store(_) => Code::Storage,
            EngineError::Key(_) => Code::Key,
            EngineError::Connector { .. } => Code::Connector,
            EngineError::IdentityProvider(_) => Code::IdentityProvider,
        }
    }
}
