#![forbid(unsafe_code)]
//! Connectors: where access is actually granted and revoked, and, wherever the target allows,
//! where the deadline is enforced by the target itself.
//!
//! - [`command`]: runs a configured program (an argv, never a shell) with the grant or revoke as
//!   JSON on its standard input; the deadline is enforced by Breakglass only;
//! - [`ssh`]: SSH user certificates signed by the policy's CA, valid until the deadline (sshd
//!   enforces it), revoked through a key revocation list ([`krl`]);
//! - [`postgres`]: a temporary LOGIN role per grant, a member of the target role, whose password
//!   (known only to the requester; the role holds its SCRAM verifier) expires at the deadline;
//! - [`webhook`]: a signed JSON POST per grant and revoke, retried with backoff; the receiver
//!   does not enforce the deadline, Breakglass does;
//! - [`oauth`]: short-lived access tokens for a resource from the organisation's provider,
//!   expiring at or before the deadline, handed over sealed to the requester (and to the
//!   broker, which revokes them with RFC 7009).
//!
//! Each is a [`Connector`], built from the target's [`ConnectorSpec`] by [`build`] with its
//! secrets read through [`Secrets`]. The engine runs them only after the event that authorises
//! the grant or revoke is durable (fail closed), and records what they report.

use std::future::Future;
use std::pin::Pin;

use breakglass_core::policy::ConnectorSpec;
use breakglass_core::seal::SealSecretKey;
use breakglass_core::{Credential, Issued, Request, Timestamp};
use serde::Serialize;

pub mod command;
pub mod krl;
pub mod oauth;
pub mod postgres;
pub mod secrets;
pub mod ssh;
pub mod webhook;

pub use secrets::{Secrets, SystemSecrets};

/// Why a connector failed. The text is recorded in the signed log, so it never carries a
/// secret (a key, a password, a token, a program's output), only what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectorError(String);

impl ConnectorError {
    /// An error saying `what`.
    pub fn new(what: impl Into<String>) -> ConnectorError {
        ConnectorError(what.into())
    }
}

/// A boxed future, so connectors can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One grant's access window: the request and when access starts and ends.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The approved request (its id names everything the connector creates).
    pub request: &'a Request,
    /// The start of access.
    pub granted_at: Timestamp,
    /// The end of access; it never moves.
    pub deadline: Timestamp,
}

impl<'a> Access<'a> {
    /// The access window of a granted request; `None` before it is granted.
    pub fn of(request: &'a Request) -> Option<Access<'a>> {
        Some(Access {
            request,
            granted_at: request.granted_at?,
            deadline: request.deadline?,
        })
    }
}

/// Grants and revokes access on one kind of target.
pub trait Connector: Send + Sync {
    /// The connector kind as named in the policy.
    fn kind(&self) -> &'static str;

    /// Whether the target itself stops access at the deadline.
    fn enforces_expiry(&self) -> bool;

    /// Gives access until the deadline; returns what the requester needs, if anything (never a
    /// secret in the clear). Granting the same access again (a retry) must be harmless.
    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>>;

    /// Takes the access away. Idempotent: revoking what is already gone succeeds.
    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// Whether [`Connector::revoke_many`] takes many revokes at lower cost than one by one; the
    /// scheduler then hands it every revoke of its target that is due together.
    fn batches(&self) -> bool {
        false
    }

    /// Revokes many grants: one result per access, in order. By default one after the other.
    fn revoke_many<'a>(
        &'a self,
        accesses: &'a [Access<'a>],
    ) -> BoxFuture<'a, Vec<Result<(), ConnectorError>>> {
        revoke_each(self, accesses)
    }
}

/// Revokes `accesses` with `connector` one after the other: one result each, in order.
pub(crate) fn revoke_each<'a, C: Connector + ?Sized>(
    connector: &'a C,
    accesses: &'a [Access<'a>],
) -> BoxFuture<'a, Vec<Result<(), ConnectorError>>> {
    Box::pin(async move {
        let mut results = Vec::with_capacity(accesses.len());
        for access in accesses {
            results.push(connector.revoke(*access).await);
        }
        results
    })
}

/// Builds the connector a policy target names, reading its secrets. `broker` is the broker's
/// sealing key: connectors that hand out secrets keep a copy sealed to it, to revoke them.
pub fn build(
    spec: &ConnectorSpec,
    secrets: &dyn Secrets,
    broker: &SealSecretKey,
) -> Result<Box<dyn Connector>, ConnectorError> {
    Ok(match spec {
        ConnectorSpec::Command(c) => Box::new(command::CommandConnector::new(c.clone())),
        ConnectorSpec::Ssh(s) => Box::new(ssh::SshConnector::new(s, secrets)?),
        ConnectorSpec::Postgres(p) => Box::new(postgres::PostgresConnector::new(p, secrets)?),
        ConnectorSpec::Webhook(w) => Box::new(webhook::WebhookConnector::new(w, secrets)?),
        ConnectorSpec::OAuth(o) => Box::new(oauth::OAuthConnector::new(o, secrets, broker)?),
        other => {
            return Err(ConnectorError::new(format!(
                "this build has no {} connector",
                other.kind()
            )))
        }
    })
}

/// Checks a request's credential in full for the target's connector (core checked its shape):
/// an SSH public key that parses, a SCRAM verifier PostgreSQL will take as it is.
pub fn check_credential(
    spec: &ConnectorSpec,
    credential: Option<&Credential>,
) -> Result<(), ConnectorError> {
    match (spec, credential) {
        (ConnectorSpec::Ssh(_), Some(Credential::SshPublicKey(key))) => {
            ssh::parse_public_key(key).map(|_| ())
        }
        (ConnectorSpec::Postgres(_), Some(Credential::ScramVerifier(v))) => {
            postgres::ScramVerifier::parse(v).map(|_| ())
        }
        (ConnectorSpec::OAuth(_), Some(Credential::SealKey(key))) => {
            breakglass_core::seal::SealPublicKey::parse(key)
                .map(|_| ())
                .map_err(|e| ConnectorError::new(e.to_string()))
        }
        // Whether one is needed at all is core's rule, checked when the request is recorded.
        _ => Ok(()),
    }
}

/// What a connector is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Give access until the deadline.
    Grant,
    /// Take access away (at the deadline or early); must be idempotent.
    Revoke,
}

/// The JSON document the `command` and `webhook` connectors send.
#[derive(Debug, Clone, Serialize)]
pub struct Instruction<'a> {
    /// Grant or revoke.
    pub action: Action,
    /// The request id (stable across retries, so receivers can be idempotent).
    pub request: &'a str,
    /// Who gets access.
    pub requester: &'a str,
    /// Target name.
    pub target: &'a str,
    /// Role on the target.
    pub role: &'a str,
    /// Start of access.
    pub granted_at: Timestamp,
    /// End of access.
    pub deadline: Timestamp,
    /// Reason given by the requester.
    pub reason: &'a str,
    /// Ticket reference.
    pub ticket: Option<&'a str>,
    /// Whether this is a break-glass activation.
    pub break_glass: bool,
}

impl<'a> Instruction<'a> {
    /// The instruction to carry out `action` on `access`.
    pub fn new(action: Action, access: Access<'a>) -> Self {
        let request = access.request;
        Instruction {
            action,
            request: request.id.as_str(),
            requester: &request.requester,
            target: &request.target,
            role: &request.role,
            granted_at: access.granted_at,
            deadline: access.deadline,
            reason: &request.reason,
            ticket: request.ticket.as_deref(),
            break_glass: request.break_glass,
        }
    }
}
