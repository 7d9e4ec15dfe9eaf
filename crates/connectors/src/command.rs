//! The `command` connector: runs a configured program (an argv, never a shell) per grant and
//! revoke, with the [`Instruction`] as JSON on its standard input, a clean environment and a
//! time-out. Its targets do not enforce the deadline themselves; Breakglass does.

use std::process::Stdio;
use std::time::Duration;

use breakglass_core::policy::CommandSpec;
use breakglass_core::Issued;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::{Access, Action, BoxFuture, Connector, ConnectorError, Instruction};

/// Runs a program per grant and revoke.
#[derive(Debug, Clone)]
pub struct CommandConnector(CommandSpec);

impl CommandConnector {
    /// The connector for `spec`.
    pub fn new(spec: CommandSpec) -> CommandConnector {
        CommandConnector(spec)
    }

    async fn run(&self, action: Action, access: Access<'_>) -> Result<(), ConnectorError> {
        let argv = match action {
            Action::Grant => &self.0.grant,
            Action::Revoke => &self.0.revoke,
        };
        let timeout = Duration::from_secs(self.0.timeout.as_secs());
        run_program(argv, &Instruction::new(action, access), timeout).await
    }
}

impl Connector for CommandConnector {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn enforces_expiry(&self) -> bool {
        false
    }

    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>> {
        Box::pin(async move { self.run(Action::Grant, access).await.map(|()| None) })
    }

    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(self.run(Action::Revoke, access))
    }
}

async fn run_program(
    argv: &[String],
    instruction: &Instruction<'_>,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| ConnectorError::new("the connector has no program configured"))?;
    let input = serde_json::to_vec(instruction)
        .map_err(|e| ConnectorError::new(format!("cannot encode the instruction: {e}")))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ConnectorError::new(format!("cannot start {program}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ConnectorError::new("no stdin"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| ConnectorError::new("no stderr"))?;
    let work = async {
        // A program that exits without reading its input is not an error in itself.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
        // Drained so the program never blocks on a full pipe; never repeated (it may hold
        // credentials).
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(ConnectorError::new(format!(
            "{program} did not finish within {}s and was killed",
            timeout.as_secs()
        ))),
        Ok(Err(e)) => Err(ConnectorError::new(format!("waiting for {program}: {e}"))),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ConnectorError::new(format!(
            "{program} failed with {}",
            status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}"))
        ))),
    }
}
