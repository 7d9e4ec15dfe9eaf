#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, reason = "a CLI prints its results")]
//! `breakglass`: request, approve and audit time-boxed access from the command line.
//!
//! Exit status: 0 success, 1 refused or failed, 2 usage error, 3 verification failed.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "breakglass",
    version,
    about = "Time-boxed emergency and just-in-time access with a signed, verifiable log"
)]
struct Cli {
    /// Data directory (default: $BREAKGLASS_HOME, else the platform's app-data directory).
    #[arg(long, global = true, env = "BREAKGLASS_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Act as this identity (default: the identity created by `init`).
    #[arg(
        long = "as",
        global = true,
        env = "BREAKGLASS_AS",
        value_name = "IDENTITY"
    )]
    as_identity: Option<String>,
    /// Use the private key in this 0600 PKCS#8 file instead of the OS keyring.
    #[arg(long, global = true, env = "BREAKGLASS_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a data directory, its keys and a new log with you as first administrator.
    Init(InitArgs),
    /// Guided first run: init if needed, apply a sample policy, show the status.
    Quickstart(QuickstartArgs),
    /// Join a team's log on its shared PostgreSQL database as a member: verify it all against
    /// the log's checkpoint key, and make a data directory holding no log key (the team's
    /// broker grants and ends access).
    Join(JoinArgs),
    /// Enrol and list identities.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Check, apply or show the access policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Sign in with an identity provider named in the policy (enrols you on first sign-in).
    Login {
        /// The provider's name in the policy (needed when it names several).
        #[arg(long)]
        provider: Option<String>,
        /// Sign in on another device with a code (for SSH sessions and headless machines).
        #[arg(long)]
        device: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// End your sign-in: revoke the refresh token at the provider and remove it and your key
    /// from the keyring.
    Logout,
    /// Show who you are here: identity, provider, groups and how fresh your sign-in is.
    Whoami {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Request access to a target (or, with --break-glass, self-activate it).
    Request(RequestArgs),
    /// Approve a pending request (or, with --offline, sign an approval of a break-glass request
    /// for the requester to import while the identity provider is unreachable).
    Approve {
        /// Request id.
        id: String,
        /// Comment recorded with the approval.
        #[arg(long, conflicts_with = "offline")]
        comment: Option<String>,
        /// Print a signed offline approval token instead of recording the approval.
        #[arg(long)]
        offline: bool,
        /// How long the offline token may be imported (at most 15m).
        #[arg(long, default_value = "10m", requires = "offline")]
        valid_for: String,
    },
    /// Import approvals signed offline.
    #[command(subcommand)]
    Approval(ApprovalCmd),
    /// Deny a pending request (one denial ends it).
    Deny {
        /// Request id.
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending request.
    Cancel {
        /// Request id.
        id: String,
    },
    /// End an active grant now (idempotent).
    Revoke {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Record the mandatory review of a break-glass activation.
    Review {
        /// Request id.
        id: String,
        /// Findings (required).
        #[arg(long)]
        comment: String,
    },
    /// Print what a grant issued: its SSH certificate (or write it to a file), the name of its
    /// database role, or its access token (opened with the requester's key; or written to a new
    /// owner-only file).
    Issued {
        /// Request id.
        id: String,
        /// Write the certificate (e.g. ~/.ssh/id_ed25519-cert.pub) or token to this file.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show open requests and active grants with their deadlines.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Include ended requests.
        #[arg(long)]
        all: bool,
    },
    /// Work with the local log.
    #[command(subcommand)]
    Log(LogCmd),
    /// Export history: CSV (one row per request), JSON Lines (signed events), OCSF events, a
    /// bundle, or one request's evidence package.
    Export(ExportArgs),
    /// Write the access report for a period: one self-contained HTML page with charts and the
    /// log's verification (and a PDF of it with --pdf, where Chromium is installed).
    Report(ReportArgs),
    /// Verify an exported bundle offline.
    Verify(VerifyArgs),
    /// Run the expiry scheduler until interrupted: first end whatever came due while no broker
    /// ran, then revoke each grant at its deadline (failed revokes are retried with backoff).
    Broker {
        /// Longest sleep between passes (work other processes record is picked up within it).
        #[arg(long, default_value = "1s")]
        interval: String,
    },
}

#[derive(Subcommand, Debug)]
enum ApprovalCmd {
    /// Record an offline approval token (as the requester, or as the broker's machine).
    Import {
        /// The token printed by `breakglass approve ID --offline`, or `-` to read it from
        /// standard input.
        token: String,
    },
}

#[derive(Args, Debug)]
struct InitArgs {
    /// Name of the first administrator.
    #[arg(long, default_value = "admin")]
    name: String,
    /// Where the log's own keys are kept.
    #[arg(long, value_enum, default_value_t = SystemKeysArg::Keyring)]
    system_keys: SystemKeysArg,
    /// Database URL (default: embedded SQLite in the data directory).
    #[arg(long)]
    database: Option<String>,
}

#[derive(Args, Debug)]
struct JoinArgs {
    /// The team's PostgreSQL URL (postgres://…, `sslmode` as libpq knows it). Keep its password
    /// out of it: in ~/.pgpass or PGPASSWORD.
    #[arg(long)]
    database: String,
    /// The log's checkpoint key (the `Checkpoint key:` line `init` printed), from the team's
    /// administrator.
    #[arg(long, value_name = "VKEY")]
    log_key: String,
    /// The identity you act as (its key is created here if absent, for an administrator to
    /// enrol).
    #[arg(long)]
    name: String,
    /// Where identities' keys are kept on this machine.
    #[arg(long, value_enum, default_value_t = SystemKeysArg::Keyring)]
    identity_keys: SystemKeysArg,
}

#[derive(Args, Debug)]
struct QuickstartArgs {
    /// Name of the first administrator.
    #[arg(long, default_value = "admin")]
    name: String,
    /// Where the log's own keys are kept.
    #[arg(long, value_enum, default_value_t = SystemKeysArg::Keyring)]
    system_keys: SystemKeysArg,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SystemKeysArg {
    /// The OS keyring.
    Keyring,
    /// 0600 files in the data directory.
    File,
}

#[derive(Subcommand, Debug)]
enum IdentityCmd {
    /// Enrol an identity (admin only). Creates its key unless --public-key is given.
    Add {
        /// The identity's name.
        name: String,
        /// Groups (declared in the policy, or `admin`).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Enrol this existing public key (base64) instead of creating one.
        #[arg(long, conflicts_with = "key_out")]
        public_key: Option<String>,
        /// Write the new private key to this file (0600) instead of the OS keyring.
        #[arg(long, value_name = "FILE")]
        key_out: Option<PathBuf>,
    },
    /// Revoke an identity (admin only): its key signs nothing from now on, and it loses every
    /// group, enrolment groups included.
    Revoke {
        /// The identity's name.
        name: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// List enrolled identities.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Create a key file and print its public key (to send to an administrator).
    Keygen {
        /// Where to write the private key (0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Report every problem in a policy file, with line and column.
    Check {
        /// Policy file (TOML).
        file: PathBuf,
    },
    /// Apply a policy file (admin only); recorded in the log.
    Apply {
        /// Policy file (TOML).
        file: PathBuf,
    },
    /// Print the policy in force.
    Show,
}

#[derive(Args, Debug)]
struct RequestArgs {
    /// Target name from the policy.
    #[arg(long)]
    target: String,
    /// How long, e.g. 30m, 2h, 1h30m.
    #[arg(long)]
    duration: String,
    /// Why you need access.
    #[arg(long)]
    reason: String,
    /// Ticket reference.
    #[arg(long)]
    ticket: Option<String>,
    /// Role on the target (default: its first role).
    #[arg(long)]
    role: Option<String>,
    /// Emergency self-activation: granted at once, alerts approvers, needs a review.
    #[arg(long)]
    break_glass: bool,
    /// Extend this active grant (a new request that needs approval).
    #[arg(long, value_name = "ID")]
    extends: Option<String>,
    /// For a target that grants SSH certificates: your public key to certify (a .pub file).
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// For a target that grants PostgreSQL roles: a file holding the password your temporary
    /// role will have (only its SCRAM verifier is sent). Without it, one is generated and shown
    /// once.
    #[arg(long, value_name = "FILE")]
    db_password_file: Option<PathBuf>,
    /// Wait until the request is granted or has ended (denied, lapsed, failed …), at most
    /// TIMEOUT (default 10m); exit 0 only if it was granted.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "10m")]
    wait: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum LogCmd {
    /// Verify the whole local log: signatures, rules, Merkle root and checkpoint.
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Move old entries out of the embedded database into a bundle beside it
    /// (`archive/log-SIZE.bundle`): every entry older than `--before`, up to the latest signed
    /// checkpoint among them. The log still reads them from that file, which must stay there;
    /// copies of it verify on their own (`breakglass verify FILE`). A later archive replaces an
    /// earlier one. Not for a team's log on PostgreSQL.
    Archive {
        /// Entries older than this time (RFC 3339 or YYYY-MM-DD) are archived.
        #[arg(long)]
        before: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// One row per request (RFC 4180).
    Csv,
    /// One signed event per line.
    Jsonl,
    /// OCSF 1.8.0 events for SIEMs, one per line: User Access Management (3005) for requests
    /// and grants, Account Change (3001) for identities.
    Ocsf,
    /// The whole log with its signed checkpoint, verifiable offline.
    Bundle,
    /// One request's evidence (`--request ID`): its entries and everything they need, with
    /// inclusion proofs against the signed checkpoint, verifiable offline.
    Evidence,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Earliest time (RFC 3339 or YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Latest time, exclusive.
    #[arg(long)]
    to: Option<String>,
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
    /// Only this requester.
    #[arg(long)]
    requester: Option<String>,
    /// Only requests now in this state (pending, active, expired, …).
    #[arg(long)]
    state: Option<String>,
    /// The request whose evidence to export (`--format evidence`).
    #[arg(long, value_name = "ID")]
    request: Option<String>,
    /// Output file (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Earliest request time (RFC 3339 or YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Latest request time, exclusive.
    #[arg(long)]
    to: Option<String>,
    /// The HTML file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Also print the report to this PDF file (needs Chromium).
    #[arg(long, value_name = "FILE")]
    pdf: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The bundle or evidence package file.
    bundle: PathBuf,
    /// Require this checkpoint key (C2SP vkey) rather than the one the bundle names.
    #[arg(long, value_name = "VKEY")]
    log_key: Option<String>,
    /// An earlier signed checkpoint (file) the bundle must be consistent with.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Clap's error as one line: the README promises one clear line on stderr for every failure,
/// so the usage block and the `--help` hint clap adds are dropped and the rest is joined.
fn one_line_usage_error(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
    {
        if !line.is_empty() {
            let glue = line.ends_with(':') || part.starts_with('[');
            line.push_str(if glue { " " } else { "; " });
        }
        line.push_str(part);
    }
    format!("{line} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version (stdout, exit 0), and a bare `breakglass` (help on stderr).
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!(
                "breakglass: {}",
                one_line_usage_error(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("breakglass: error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("breakglass: {}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}
