#![forbid(unsafe_code)]
//! Connectors: where access is actually granted and revoked, and, wherever the target allows,
//! where the deadline is enforced by the target itself.
//!
//! - [`ssh`]: SSH user certificates signed by the policy's CA, valid until the deadline (sshd
//!   enforces it), revoked through a key revocation list ([`krl`]);
//! - [`postgres`]: a temporary LOGIN role per grant, a member of the target role, whose password
//!   (known only to the requester; the role holds its SCRAM verifier) expires at the deadline;
//! - [`webhook`]: a signed JSON POST per grant and revoke, retried with backoff; the receiver
//!   does not enforce the deadline, Breakglass does.

pub mod krl;
pub mod postgres;
pub mod ssh;
pub mod webhook;

/// Why a connector failed. The text is recorded in the signed log, so it never carries a
/// secret (a key, a password, a token), only what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectorError(String);

impl ConnectorError {
    /// An error saying `what`.
    pub fn new(what: impl Into<String>) -> ConnectorError {
        ConnectorError(what.into())
    }
}
