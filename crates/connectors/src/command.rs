//! The `command` connector: runs a configured program (an argv, never a shell) per grant and
//! revoke, with the [`Instruction`] as JSON on its standard input, a clean environment and a
//! time-out; exit status 0 means done. Its targets do not enforce the deadline themselves;
//! Breakglass does.
//!
//! With `batch = true`, revokes go to the revoke program many at a time (at most [`MAX_BATCH`]
//! per run): its standard input is JSON Lines, one instruction per line, and it answers on its
//! standard output with one line per instruction, in the same order: `ok` when that grant is
//! revoked, anything else (say `error …`) when it is not. A grant without an `ok` line is not
//! revoked (and is retried); when the run exits non-zero or times out, none is taken as revoked.
//! Starting one program per revoke costs a process each (this
//! project's 2-core machine starts about 2,800 a second); a batch costs one per thousand.
//! Program output is never logged (it may hold credentials): only which grants failed.

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

/// The most revokes one run of a batch program receives.
pub const MAX_BATCH: usize = 1000;

impl CommandConnector {
    /// The connector for `spec`.
    pub fn new(spec: CommandSpec) -> CommandConnector {
        CommandConnector(spec)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.0.timeout.as_secs())
    }

    async fn run(&self, action: Action, access: Access<'_>) -> Result<(), ConnectorError> {
        if action == Action::Revoke && self.0.batch {
            let mut results = self.revoke_batch(&[access]).await;
            return results
                .pop()
                .unwrap_or_else(|| Err(ConnectorError::new("no answer")));
        }
        let argv = match action {
            Action::Grant => &self.0.grant,
            Action::Revoke => &self.0.revoke,
        };
        run_program(argv, &Instruction::new(action, access), self.timeout()).await
    }

    async fn revoke_batch(&self, accesses: &[Access<'_>]) -> Vec<Result<(), ConnectorError>> {
        let mut results = Vec::with_capacity(accesses.len());
        for chunk in accesses.chunks(MAX_BATCH) {
            results.extend(run_batch(&self.0.revoke, chunk, self.timeout()).await);
        }
        results
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

    fn batches(&self) -> bool {
        self.0.batch
    }

    fn revoke_many<'a>(
        &'a self,
        accesses: &'a [Access<'a>],
    ) -> BoxFuture<'a, Vec<Result<(), ConnectorError>>> {
        if !self.0.batch {
            return crate::revoke_each(self, accesses);
        }
        Box::pin(self.revoke_batch(accesses))
    }
}

/// Runs a batch program on `accesses`' revoke instructions; one result each, in order.
async fn run_batch(
    argv: &[String],
    accesses: &[Access<'_>],
    timeout: Duration,
) -> Vec<Result<(), ConnectorError>> {
    let all = |e: ConnectorError| accesses.iter().map(|_| Err(e.clone())).collect();
    let Some(program) = argv.first() else {
        return all(ConnectorError::new(
            "the connector has no program configured",
        ));
    };
    let mut input = Vec::with_capacity(accesses.len() * 320);
    for access in accesses {
        if let Err(e) =
            serde_json::to_writer(&mut input, &Instruction::new(Action::Revoke, *access))
        {
            return all(ConnectorError::new(format!(
                "cannot encode the instruction: {e}"
            )));
        }
        input.push(b'\n');
    }
    let limit = 16 * 1024 + 64 * accesses.len() as u64;
    let out = match run_with_input(argv, &input, Some(limit), timeout).await {
        Ok(out) => out,
        Err(e) => return all(e),
    };
    // Lines end in \n (a \r before it is tolerated); nothing after the last \n is a line.
    let mut answers = out
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| l.strip_suffix(b"\r\n").unwrap_or(&l[..l.len() - 1]));
    accesses
        .iter()
        .map(|_| match answers.next() {
            Some(b"ok") => Ok(()),
            Some(_) => Err(ConnectorError::new(format!(
                "{program} did not answer ok for this grant"
            ))),
            None => Err(ConnectorError::new(format!(
                "{program} gave no answer for this grant"
            ))),
        })
        .collect()
}

async fn run_program(
    argv: &[String],
    instruction: &Instruction<'_>,
    timeout: Duration,
) -> Result<(), ConnectorError> {
    let input = serde_json::to_vec(instruction)
        .map_err(|e| ConnectorError::new(format!("cannot encode the instruction: {e}")))?;
    run_with_input(argv, &input, None, timeout)
        .await
        .map(|_| ())
}

/// Runs `argv` (never a shell; a clean environment) with `input` on its standard input, within
/// `timeout`; exit status 0 is success. Its standard output is returned, up to `out_limit`
/// bytes (discarded when `None`); its standard error is drained and never repeated (it may
/// hold credentials). Input, output and error are handled at once, so a program answering as
/// it reads never blocks on a full pipe.
async fn run_with_input(
    argv: &[String],
    input: &[u8],
    out_limit: Option<u64>,
    timeout: Duration,
) -> Result<Vec<u8>, ConnectorError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| ConnectorError::new("the connector has no program configured"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(if out_limit.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ConnectorError::new(format!("cannot start {program}: {e}")))?;
    let (Some(mut stdin), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
        return Err(ConnectorError::new("the program's pipes are missing"));
    };
    let stdout = child.stdout.take();
    let work = async {
        let write = async {
            // A program that exits without reading its input is not an error in itself.
            let _ = stdin.write_all(input).await;
            drop(stdin);
        };
        let read = async {
            let mut out = Vec::new();
            if let (Some(stdout), Some(limit)) = (stdout, out_limit) {
                let _ = stdout.take(limit).read_to_end(&mut out).await;
            }
            out
        };
        let drain = async {
            let mut err = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        };
        let ((), out, ()) = tokio::join!(write, read, drain);
        (child.wait().await, out)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(ConnectorError::new(format!(
            "{program} did not finish within {}s and was killed",
            timeout.as_secs()
        ))),
        Ok((Err(e), _)) => Err(ConnectorError::new(format!("waiting for {program}: {e}"))),
        Ok((Ok(status), out)) if status.success() => Ok(out),
        Ok((Ok(status), _)) => Err(ConnectorError::new(format!(
            "{program} failed with {}",
            status
                .code()
                .map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}"))
        ))),
    }
}
