//! Connectors: where access is actually granted and revoked.
//!
//! This release ships the `command` connector: it runs a configured program (an argv, never a
//! shell) with the grant or revoke as JSON on stdin and a time-out. Its targets do not enforce
//! the deadline themselves; the expiry scheduler does.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use breakglass_core::policy::{CommandSpec, ConnectorSpec};
use breakglass_core::{Request, Timestamp};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// A boxed future, so connectors can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a connector failed. The text is recorded in the signed log, so it never carries the
/// program's output (which may hold credentials), only what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectorError(pub String);

/// What a connector is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Give access until the deadline.
    Grant,
    /// Take access away (at the deadline or early); must be idempotent.
    Revoke,
}

/// The JSON document a connector receives.
#[derive(Debug, Clone, Serialize)]
pub struct Instruction<'a> {
    /// Grant or revoke.
    pub action: Action,
    /// The request id (stable across retries, so programs can be idempotent).
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
    /// The instruction for `request` with its access window.
    pub fn new(
        action: Action,
        request: &'a Request,
        granted_at: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        Instruction {
            action,
            request: request.id.as_str(),
            requester: &request.requester,
            target: &request.target,
            role: &request.role,
            granted_at,
            deadline,
            reason: &request.reason,
            ticket: request.ticket.as_deref(),
            break_glass: request.break_glass,
        }
    }
}

/// Grants and revokes access on one kind of target.
pub trait Connector: Send + Sync {
    /// The connector kind as named in the policy.
    fn kind(&self) -> &'static str;
    /// Whether the target itself stops access at the deadline.
    fn enforces_expiry(&self) -> bool;
    /// Carries out a grant or revoke.
    fn run<'a>(
        &'a self,
        instruction: &'a Instruction<'a>,
    ) -> BoxFuture<'a, Result<(), ConnectorError>>;
}

/// Builds the connector a policy target names.
pub fn connector_for(spec: &ConnectorSpec) -> Result<Box<dyn Connector>, ConnectorError> {
    match spec {
        ConnectorSpec::Command(c) => Ok(Box::new(CommandConnector(c.clone()))),
        other => Err(ConnectorError(format!(
            "this build has no connector for {other:?}"
        ))),
    }
}

/// Runs a program per grant and revoke.
#[derive(Debug, Clone)]
pub struct CommandConnector(pub CommandSpec);

impl Connector for CommandConnector {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn enforces_expiry(&self) -> bool {
        false
    }

    fn run<'a>(
        &'a self,
        instruction: &'a Instruction<'a>,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            let argv = match instruction.action {
                Action::Grant => &self.0.grant,
                Action::Revoke => &self.0.revoke,
            };
            let timeout = Duration::from_secs(self.0.timeout.as_secs());
            run_program(argv, instruction, timeout).await
        })
    }
}

async fn run_program(
    argv: &[String],
    instruction: &Instruction<'_>,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| ConnectorError("the connector has no program configured".into()))?;
    let input = serde_json::to_vec(instruction)
        .map_err(|e| ConnectorError(format!("cannot encode the instruction: {e}")))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ConnectorError(format!("cannot start {program}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ConnectorError("no stdin".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| ConnectorError("no stderr".into()))?;
    let work = async {
        // A program that exits without reading its input is not an error in itself.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        let status = child.wait().await;
        (status, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(ConnectorError(format!(
            "{program} did not finish within {}s and was killed",
            timeout.as_secs()
        ))),
        Ok((Err(e), _)) => Err(ConnectorError(format!("waiting for {program}: {e}"))),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), _stderr)) => Err(ConnectorError(format!(
            "{program} failed with {}",
            status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}"))
        ))),
    }
}
