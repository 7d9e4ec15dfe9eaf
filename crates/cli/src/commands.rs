//! The commands: each parses its input, calls the engine, prints the result.

use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use breakglass_connectors::postgres::{new_password, ScramVerifier};
use breakglass_core::policy::Policy;
use breakglass_core::{
    Clock, Credential, CredentialKind, Issued, PublicKey, RequestId, Span, Status, SteadyClock,
    SystemClock, Timestamp,
};
use breakglass_engine::findings::Findings;
use breakglass_engine::report::Period;
use breakglass_engine::{
    default_dir, desk, findings, generate, public_key, signin, verify_stored_bundle, write_csv,
    Actor, AtomicFile, BrokerNotice, Code, Engine, EngineError, EventFormat, ExportFilter, Home,
    InitOptions, JoinOptions, KeyLocation, KeyStoreKind, NewRequest,
};
use breakglass_ledger::{
    is_evidence, verify_bundle_stream, verify_evidence, NoteVerifier, VerifyOptions,
};
use breakglass_store::Store;
use zeroize::Zeroizing;

use crate::output::{request_line, status_text};
use crate::{
    ApprovalCmd, Cli, Command, ExportArgs, Format, IdentityCmd, JoinArgs, LogCmd, PolicyCmd,
    ReportArgs, RequestArgs, SystemKeysArg, VerifyArgs,
};

/// A failed command: its message (one line unless it lists policy problems) and exit status.
pub struct Failure {
    pub exit: u8,
    pub message: String,
}

const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const VERIFY_FAILED: u8 = 3;

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let exit = if e.code() == Code::Tampered {
            VERIFY_FAILED
        } else {
            REFUSED
        };
        Failure {
            exit,
            message: format!("error: {e}"),
        }
    }
}

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        exit: REFUSED,
        message: format!("error: {}", message.into()),
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        exit: USAGE,
        message: format!("error: {}", message.into()),
    }
}

type Result<T> = std::result::Result<T, Failure>;

struct Ctx {
    dir: PathBuf,
    as_identity: Option<String>,
    key_file: Option<PathBuf>,
    clock: Arc<dyn Clock>,
}

impl Ctx {
    fn home(&self) -> Result<Home> {
        Ok(Home::open(&self.dir)?)
    }

    /// Opens the log and runs a scheduler pass first, so anything overdue (expiry, lapse,
    /// a grant interrupted by a crash) is handled before the command — unless a broker is
    /// acting on the log: then that is the broker's work.
    async fn engine(&self) -> Result<(Home, Engine)> {
        let home = self.home()?;
        let opened = async {
            let mut engine = home.engine(self.clock.clone()).await?;
            if home.is_member() {
                // A member witnesses the log: it cosigns what it verified.
                if let Ok(actor) = self.member_actor(&home) {
                    engine.set_witness(&actor)?;
                    engine.refresh().await?;
                }
            }
            Ok::<_, EngineError>(engine)
        };
        let mut engine = match opened.await {
            Ok(engine) => engine,
            Err(e) => {
                // A team member's read that fails verification is signed and kept as a finding.
                let actor = self.member_actor(&home);
                return Err(findings::hold(&home, actor, self.clock.now(), e).into());
            }
        };
        let report = engine.tick_unless_brokered().await?;
        for f in &report.failures {
            eprintln!("breakglass: warning: {f}");
        }
        if home.is_member() {
            self.report_findings(&home, &mut engine).await;
        }
        Ok((home, engine))
    }

    /// Who, on a team member's machine, signs findings and cosigns checkpoints: the acting
    /// identity (`--as`, else the data directory's), with its key (`--key-file`, else where the
    /// data directory keeps it). A finding signed with a key that is not the identity's stays
    /// kept (it is appended only under its enrolled key); such a key cosigns nothing.
    fn member_actor(&self, home: &Home) -> std::result::Result<Actor, EngineError> {
        let name = self
            .as_identity
            .clone()
            .unwrap_or_else(|| home.default_identity().to_owned());
        let key = match &self.key_file {
            Some(path) => KeyLocation::File(path.clone()),
            None => home.identity_key(&name),
        };
        Ok(Actor::new(name, key.load()?))
    }

    /// Appends the findings kept while the log failed verification, now that it verified.
    async fn report_findings(&self, home: &Home, engine: &mut Engine) {
        let kept = Findings::of(home);
        if kept.held().is_ok_and(|h| h.is_empty()) {
            return;
        }
        let reported = match self.member_actor(home) {
            Ok(actor) => kept.report(engine, &actor).await,
            Err(e) => Err(e),
        };
        match reported {
            Ok(0) => {}
            Ok(n) => eprintln!(
                "breakglass: appended {n} finding(s) kept here while the log failed verification"
            ),
            Err(e) => eprintln!(
                "breakglass: warning: the findings kept in {} were not appended yet: {e}",
                kept.dir().display()
            ),
        }
    }

    /// The acting identity with, for a person of an identity provider, the ID token of their
    /// sign-in here (refreshed first when it has expired), for decisions.
    async fn signed_actor(&self, home: &Home, engine: &Engine) -> Result<Actor> {
        let actor = self.actor(home, engine)?;
        let (actor, warning) =
            signin::with_current_sign_in(engine, home, self.clock.clone(), actor).await?;
        if let Some(w) = warning {
            eprintln!("breakglass: warning: {w}");
        }
        Ok(actor)
    }

    fn actor(&self, home: &Home, engine: &Engine) -> Result<Actor> {
        match &self.key_file {
            Some(path) => {
                let key = KeyLocation::File(path.clone())
                    .load()
                    .map_err(EngineError::from)?;
                let pk = public_key(&key);
                let name = match (&self.as_identity, engine.state().identity_by_key(&pk)) {
                    (Some(n), _) => n.clone(),
                    (None, Some(id)) => id.record.name.clone(),
                    (None, None) => {
                        return Err(refused(format!(
                            "the key in {} belongs to no enrolled identity (public key {})",
                            path.display(),
                            pk.to_base64()
                        )))
                    }
                };
                Ok(Actor::new(name, key))
            }
            None => {
                let name = self
                    .as_identity
                    .clone()
                    .unwrap_or_else(|| home.default_identity().to_owned());
                let key = home
                    .identity_key(&name)
                    .load()
                    .map_err(|e| refused(format!("cannot load the key of {name}: {e}")))?;
                Ok(Actor::new(name, key))
            }
        }
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let dir = cli
        .data_dir
        .clone()
        .or_else(default_dir)
        .ok_or_else(|| usage("no data directory: set --data-dir or BREAKGLASS_HOME"))?;
    let ctx = Ctx {
        dir,
        as_identity: cli.as_identity.clone(),
        key_file: cli.key_file.clone(),
        clock: Arc::new(SystemClock),
    };
    match cli.command {
        Command::Init(a) => init(&ctx, &a.name, a.system_keys, a.database, true).await,
        Command::Quickstart(a) => quickstart(&ctx, &a.name, a.system_keys).await,
        Command::Join(a) => join(&ctx, a).await,
        Command::Identity(cmd) => identity(&ctx, cmd).await,
        Command::Policy(cmd) => policy(&ctx, cmd).await,
        Command::Login {
            provider,
            device,
            json,
        } => login(&ctx, provider.as_deref(), device, json).await,
        Command::Logout => logout(&ctx).await,
        Command::Whoami { json } => whoami(&ctx, json).await,
        Command::Request(a) => request(&ctx, a).await,
        Command::Approve {
            id,
            offline: true,
            valid_for,
            ..
        } => offline_approval(&ctx, &id, &valid_for).await,
        Command::Approve { id, comment, .. } => {
            decide(&ctx, &id, |e, a, id| Box::pin(e.approve(a, id, comment))).await
        }
        Command::Approval(ApprovalCmd::Import { token }) => import_approval(&ctx, &token).await,
        Command::Deny { id, reason } => {
            decide(&ctx, &id, |e, a, id| Box::pin(e.deny(a, id, reason))).await
        }
        Command::Cancel { id } => decide(&ctx, &id, |e, a, id| Box::pin(e.cancel(a, id))).await,
        Command::Revoke { id, reason } => {
            decide(&ctx, &id, |e, a, id| Box::pin(e.revoke(a, id, reason))).await
        }
        Command::Review { id, comment } => {
            decide(&ctx, &id, |e, a, id| Box::pin(e.review(a, id, comment))).await
        }
        Command::Issued { id, out } => issued(&ctx, &id, out.as_deref()).await,
        Command::Status { json, all } => status(&ctx, json, all).await,
        Command::Log(LogCmd::Verify { json }) => log_verify(&ctx, json).await,
        Command::Log(LogCmd::Archive { before, json }) => log_archive(&ctx, &before, json).await,
        Command::Export(a) => export(&ctx, a).await,
        Command::Report(a) => report(&ctx, a).await,
        Command::Verify(a) => verify(a),
        Command::Broker { interval } => broker(&ctx, &interval).await,
    }
}

fn system_keys(arg: SystemKeysArg) -> KeyStoreKind {
    match arg {
        SystemKeysArg::Keyring => KeyStoreKind::Keyring,
        SystemKeysArg::File => KeyStoreKind::File,
    }
}

async fn init(
    ctx: &Ctx,
    name: &str,
    keys: SystemKeysArg,
    database: Option<String>,
    say_next: bool,
) -> Result<()> {
    let opts = InitOptions {
        admin: name.to_owned(),
        admin_key: ctx.key_file.clone().map(KeyLocation::File),
        system_keys: system_keys(keys),
        database,
    };
    let (home, engine) = Home::init(&ctx.dir, opts, ctx.clock.clone()).await?;
    println!(
        "Initialised {} with log {}\nFirst administrator: {name}\nCheckpoint key: {}",
        home.dir().display(),
        home.origin(),
        engine.log_verifier().vkey()
    );
    if say_next {
        println!("Next: write a policy and run `breakglass policy apply FILE`.");
    }
    Ok(())
}

async fn join(ctx: &Ctx, a: JoinArgs) -> Result<()> {
    let opts = JoinOptions {
        database: a.database,
        log_key: a.log_key,
        identity: a.name.clone(),
        identity_key: ctx.key_file.clone().map(KeyLocation::File),
        identity_keys: system_keys(a.identity_keys),
    };
    let joined = Home::join(&ctx.dir, opts, ctx.clock.clone()).await?;
    let name = &a.name;
    println!(
        "Joined team log {} in {}: {} entries verified against its checkpoint key",
        joined.home.origin(),
        joined.home.dir().display(),
        joined.engine.size()
    );
    let enrolled = joined.engine.state().identity(name).map(|i| i.record.key);
    let pk = joined.key.to_base64();
    if enrolled == Some(joined.key) {
        println!("Acting as {name} (enrolled with the key held here).");
    } else {
        let what = if joined.created_key {
            "a new key was made for you"
        } else {
            "your key"
        };
        println!(
            "Acting as {name}: {what}; its public key is\n  {pk}\nUntil an administrator \
             enrols it (`breakglass identity add {name} --group GROUP --public-key {pk}`), you \
             can read the log but not sign in it."
        );
    }
    println!(
        "Requests and decisions made here are recorded in the team's log; its broker grants \
         and ends access."
    );
    joined.engine.close().await;
    Ok(())
}

async fn quickstart(ctx: &Ctx, name: &str, keys: SystemKeysArg) -> Result<()> {
    if Home::open(&ctx.dir).is_err() {
        println!(
            "Welcome to Breakglass. Setting up {} …\n",
            ctx.dir.display()
        );
        init(ctx, name, keys, None, false).await?;
    }
    let (home, mut engine) = ctx.engine().await?;
    let actor = ctx.actor(&home, &engine)?;
    if engine.state().policy().is_none() {
        let source = desk::draft_policy(actor.name(), None);
        let path = home.dir().join("policy.toml");
        if !path.exists() {
            fs::write(&path, &source)
                .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))?;
        }
        engine.apply_policy(&actor, &source).await?;
        println!(
            "\nApplied the sample policy (saved as {}; edit it and run `breakglass policy apply` to change it).",
            path.display()
        );
    }
    println!();
    print!(
        "{}",
        status_text(
            engine.state(),
            actor.name(),
            engine.now(),
            false,
            engine.size()
        )
    );
    println!(
        "\nTry:\n  breakglass request --target demo --duration 5m --reason \"try it\" --break-glass\n  breakglass status\n  breakglass log verify\n  breakglass export --format bundle -o audit.bundle && breakglass verify audit.bundle"
    );
    Ok(())
}

async fn identity(ctx: &Ctx, cmd: IdentityCmd) -> Result<()> {
    match cmd {
        IdentityCmd::Keygen { out } => {
            let key = generate();
            KeyLocation::File(out.clone())
                .store_new(&key)
                .map_err(EngineError::from)?;
            println!("{}", public_key(&key).to_base64());
            Ok(())
        }
        IdentityCmd::Revoke { name, reason } => {
            let (home, mut engine) = ctx.engine().await?;
            let admin = ctx.actor(&home, &engine)?;
            engine.revoke_identity(&admin, &name, reason).await?;
            println!("Revoked {name}: its key signs nothing from now on");
            Ok(())
        }
        IdentityCmd::List { json } => {
            let (_, engine) = ctx.engine().await?;
            let state = engine.state();
            if json {
                let list: Vec<_> = state
                    .identities()
                    .map(|i| {
                        serde_json::json!({
                            "name": i.record.name,
                            "public_key": i.record.key,
                            "groups": state.groups_of(&i.record.name),
                            "enrolled_at": i.enrolled_at,
                            "enrolled_by": i.enrolled_by,
                            "revoked_at": i.revoked_at,
                        })
                    })
                    .collect();
                print_json(&list)
            } else {
                for i in state.identities() {
                    let groups: Vec<String> = state.groups_of(&i.record.name).into_iter().collect();
                    println!(
                        "{:<20} key {}  groups: {}{}",
                        i.record.name,
                        i.record.key.fingerprint(),
                        if groups.is_empty() {
                            "-".into()
                        } else {
                            groups.join(", ")
                        },
                        i.revoked_at
                            .map(|at| format!("  REVOKED at {at}"))
                            .unwrap_or_default()
                    );
                }
                Ok(())
            }
        }
        IdentityCmd::Add {
            name,
            groups,
            public_key: given,
            key_out,
        } => {
            if let Some(p) = breakglass_core::names::name_problem(&name) {
                return Err(refused(p));
            }
            let (home, mut engine) = ctx.engine().await?;
            let admin = ctx.actor(&home, &engine)?;
            let (pk, new_key) = match given {
                Some(b64) => (PublicKey::from_base64(&b64).map_err(refused)?, None),
                None => {
                    let k = generate();
                    (public_key(&k), Some(k))
                }
            };
            let location = key_out
                .map(KeyLocation::File)
                .unwrap_or_else(|| home.identity_key(&name));
            // Validate against the rules before storing anything, so a refusal leaves no key.
            if engine.state().identity(&name).is_some() {
                return Err(refused(format!("identity {name:?} is already enrolled")));
            }
            if let Some(k) = &new_key {
                location.store_new(k).map_err(EngineError::from)?;
            }
            if let Err(e) = engine.enrol(&admin, &name, pk, groups).await {
                if new_key.is_some() {
                    let _ = location.delete();
                }
                return Err(e.into());
            }
            match new_key {
                Some(_) => println!("Enrolled {name}; private key stored in {location}"),
                None => println!("Enrolled {name} with the given public key"),
            }
            Ok(())
        }
    }
}

fn read_policy(file: &Path) -> Result<String> {
    let meta = fs::metadata(file).map_err(|e| refused(format!("{}: {e}", file.display())))?;
    if meta.len() > 1024 * 1024 {
        return Err(refused(format!("{}: larger than 1 MiB", file.display())));
    }
    fs::read_to_string(file).map_err(|e| refused(format!("{}: {e}", file.display())))
}

fn policy_problems(file: &Path, errs: &breakglass_core::policy::PolicyErrors) -> String {
    let lines: Vec<String> = errs
        .0
        .iter()
        .map(|p| format!("{}:{}:{}: {}", file.display(), p.line, p.column, p.message))
        .collect();
    format!(
        "error: {} has {} problem(s):\n{}",
        file.display(),
        lines.len(),
        lines.join("\n")
    )
}

async fn policy(ctx: &Ctx, cmd: PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Check { file } => {
            let source = read_policy(&file)?;
            match Policy::parse(&source) {
                Ok(p) => {
                    println!(
                        "{}: OK (version {}, {} target(s), {} group(s))",
                        file.display(),
                        p.version,
                        p.targets.len(),
                        p.groups.len()
                    );
                    Ok(())
                }
                Err(errs) => Err(Failure {
                    exit: REFUSED,
                    message: policy_problems(&file, &errs),
                }),
            }
        }
        PolicyCmd::Apply { file } => {
            let source = read_policy(&file)?;
            let errs = Policy::parse(&source).err();
            if let Some(errs) = errs {
                return Err(Failure {
                    exit: REFUSED,
                    message: policy_problems(&file, &errs),
                });
            }
            let (home, mut engine) = ctx.engine().await?;
            let admin = ctx.actor(&home, &engine)?;
            let size = engine.apply_policy(&admin, &source).await?;
            let version = engine.state().policy().map_or(0, |p| p.policy.version);
            println!("Applied policy version {version} (log size {size})");
            Ok(())
        }
        PolicyCmd::Show => {
            let (_, engine) = ctx.engine().await?;
            match engine.state().policy() {
                Some(p) => {
                    print!("{}", p.source);
                    Ok(())
                }
                None => Err(refused("no policy has been applied yet")),
            }
        }
    }
}

fn parse_id(id: &str) -> Result<RequestId> {
    RequestId::parse(id).map_err(refused)
}

async fn request(ctx: &Ctx, a: RequestArgs) -> Result<()> {
    let duration =
        Span::parse(&a.duration).map_err(|e| refused(format!("invalid --duration: {e}")))?;
    let extends = a.extends.as_deref().map(parse_id).transpose()?;
    let wait = a
        .wait
        .as_deref()
        .map(|w| Span::parse(w).map_err(|e| usage(format!("invalid --wait: {e}"))))
        .transpose()?;
    let (home, mut engine) = ctx.engine().await?;
    let actor = ctx.signed_actor(&home, &engine).await?;
    let needs = engine
        .state()
        .policy()
        .and_then(|p| p.policy.target(&a.target))
        .and_then(|t| t.connector.credential());
    let (credential, new_password) = request_credential(&a, needs)?;
    let mut outcome = engine
        .request(
            &actor,
            NewRequest {
                target: a.target,
                role: a.role,
                duration,
                reason: a.reason,
                ticket: a.ticket,
                break_glass: a.break_glass,
                extends,
                credential,
            },
        )
        .await?;
    if let Some(w) = &outcome.warning {
        eprintln!("breakglass: warning: {w}");
    }
    // The password first: whatever the wait brings, it is shown once.
    if let Some(password) = new_password.as_ref().filter(|_| !a.json) {
        println!(
            "Password of your database role (shown only now, never stored by Breakglass): {}",
            password.as_str()
        );
    }
    let id = outcome.request;
    let mut waited = None;
    if let Some(limit) = wait {
        if !a.json {
            println!("{}", request_line(current(&engine, &id)?, engine.now()));
        }
        let limit = Duration::from_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        waited = Some(engine.follow(&id, limit).await?);
        let r = current(&engine, &id)?;
        outcome.state = r.status;
        outcome.deadline = r.deadline;
        outcome.log_size = engine.size();
    }
    if a.json {
        print_json(&outcome)?;
    } else {
        println!("{}", request_line(current(&engine, &id)?, engine.now()));
        if a.break_glass {
            println!("Break-glass activated: all approvers are alerted and a review is required.");
        }
    }
    match waited {
        Some(None) => Err(refused(format!(
            "{id} is still {} after waiting {}{}",
            outcome.state.as_str(),
            a.wait.as_deref().unwrap_or_default(),
            if engine.is_member() && outcome.state == Status::Approved {
                " (is the team's broker running?)"
            } else {
                ""
            }
        ))),
        None => Ok(()),
        // Granted, even if a short grant has already ended by the time this looked.
        Some(Some(_)) if current(&engine, &id)?.granted_at.is_some() => Ok(()),
        Some(Some(other)) => Err(refused(format!("{id} was not granted: {}", other.as_str()))),
    }
}

/// Request `id` as the log now has it.
fn current<'e>(engine: &'e Engine, id: &RequestId) -> Result<&'e breakglass_core::Request> {
    engine
        .state()
        .request(id)
        .ok_or_else(|| refused("the request vanished"))
}

/// The credential a request for a target needing `needs` carries, from `--ssh-key` or
/// `--db-password-file`, and the password generated when none was given (shown once).
fn request_credential(
    a: &RequestArgs,
    needs: Option<CredentialKind>,
) -> Result<(Option<Credential>, Option<Zeroizing<String>>)> {
    let read = |path: &std::path::Path, what: &str| -> Result<Zeroizing<String>> {
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| refused(format!("cannot read {what} {}: {e}", path.display())))?,
        );
        if bytes.len() > breakglass_core::MAX_CREDENTIAL_BYTES {
            return Err(refused(format!("{what} {} is too large", path.display())));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| refused(format!("{what} {} is not text", path.display())))?;
        Ok(Zeroizing::new(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    };
    if let Some(path) = &a.ssh_key {
        let key = read(path, "SSH public key")?;
        return Ok((Some(Credential::SshPublicKey(key.trim().to_owned())), None));
    }
    if let Some(path) = &a.db_password_file {
        let password = read(path, "password file")?;
        let ok = (16..=1024).contains(&password.len())
            && password.bytes().all(|b| (0x21..0x7f).contains(&b));
        if !ok {
            return Err(refused(format!(
                "the password in {} must be 16 to 1024 printable ASCII characters without spaces",
                path.display()
            )));
        }
        let verifier = ScramVerifier::of(&password);
        return Ok((
            Some(Credential::ScramVerifier(verifier.as_str().to_owned())),
            None,
        ));
    }
    match needs {
        Some(CredentialKind::SshPublicKey) => Err(refused(format!(
            "target {} grants SSH certificates: give the public key to certify with --ssh-key \
             (e.g. --ssh-key ~/.ssh/id_ed25519.pub)",
            a.target
        ))),
        Some(CredentialKind::ScramVerifier) if a.json => Err(refused(format!(
            "target {} grants database roles: with --json, give the role's password with \
             --db-password-file FILE",
            a.target
        ))),
        Some(CredentialKind::ScramVerifier) => {
            let password = new_password();
            let verifier = ScramVerifier::of(&password);
            Ok((
                Some(Credential::ScramVerifier(verifier.as_str().to_owned())),
                Some(password),
            ))
        }
        // A token is sealed to the requester's own key: the engine adds it.
        Some(CredentialKind::SealKey) | None => Ok((None, None)),
    }
}

/// `breakglass issued ID`: what the grant handed out. An access token is opened with the
/// requester's own key (no one else can) and printed, or written to a new owner-only file.
async fn issued(ctx: &Ctx, id: &str, out: Option<&std::path::Path>) -> Result<()> {
    let id = parse_id(id)?;
    let (home, engine) = ctx.engine().await?;
    let r = engine
        .state()
        .request(&id)
        .ok_or_else(|| refused(format!("no request {id}")))?;
    match (&r.issued, out) {
        (None, _) => Err(refused(format!(
            "{id} has issued nothing (it is {})",
            r.status.as_str()
        ))),
        (Some(Issued::SshCertificate(cert)), Some(path)) => {
            std::fs::write(path, format!("{cert}\n"))
                .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))?;
            println!("Wrote the SSH certificate of {id} to {}", path.display());
            Ok(())
        }
        (Some(Issued::SshCertificate(cert)), None) => {
            println!("{cert}");
            Ok(())
        }
        (Some(Issued::DatabaseRole(_)), Some(_)) => Err(refused(format!(
            "{id} issued a database role, not a certificate; run without --out"
        ))),
        (Some(Issued::DatabaseRole(role)), None) => {
            println!("{role}");
            Ok(())
        }
        (Some(Issued::AccessToken(t)), out) => {
            let actor = ctx.actor(&home, &engine)?;
            if actor.name() != r.requester {
                return Err(refused(format!(
                    "the access token of {id} is sealed to its requester {}; {} cannot open it",
                    r.requester,
                    actor.name()
                )));
            }
            let token = actor.open_token(r)?;
            if !matches!(r.status, Status::Active) {
                eprintln!(
                    "breakglass: warning: {id} is {}: its token no longer works",
                    r.status.as_str()
                );
            }
            match out {
                Some(path) => {
                    write_private(path, token.as_bytes())?;
                    println!(
                        "Wrote the access token of {id} for {} (until {}) to {}",
                        t.resource,
                        t.expires_at,
                        path.display()
                    );
                }
                None => println!("{}", token.as_str()),
            }
            Ok(())
        }
    }
}

/// Writes `contents` to a new file only its owner can read (refusing to replace one).
fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| refused(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))
}

type Decide<'e> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<breakglass_engine::Outcome, EngineError>,
            > + 'e,
    >,
>;

async fn decide<F>(ctx: &Ctx, id: &str, f: F) -> Result<()>
where
    F: for<'e> FnOnce(&'e mut Engine, &'e Actor, &'e RequestId) -> Decide<'e>,
{
    let id = parse_id(id)?;
    let (home, mut engine) = ctx.engine().await?;
    let actor = ctx.signed_actor(&home, &engine).await?;
    let outcome = f(&mut engine, &actor, &id).await?;
    if let Some(w) = &outcome.warning {
        eprintln!("breakglass: warning: {w}");
    }
    let r = engine
        .state()
        .request(&id)
        .ok_or_else(|| refused("the request vanished"))?;
    if outcome.unchanged {
        println!(
            "{id} had already ended ({}); nothing to do",
            r.status.as_str()
        );
    } else {
        println!("{}", request_line(r, engine.now()));
    }
    Ok(())
}

/// Shows sign-in prompts on the terminal (stderr, so stdout stays machine-readable).
struct TerminalPrompt;

impl signin::Prompt for TerminalPrompt {
    fn open(&self, url: &url::Url) {
        let opened = std::env::var_os("BREAKGLASS_NO_BROWSER").is_none()
            && breakglass_idp::open_browser(url);
        if opened {
            eprintln!("Your browser was opened to sign in. If it did not, open this address:");
        } else {
            eprintln!("Open this address in a browser to sign in:");
        }
        eprintln!("Sign in at: {url}");
    }

    fn show_code(&self, user_code: &str, uri: &url::Url, complete: Option<&url::Url>) {
        eprintln!("On any device, open {uri} and enter the code: {user_code}");
        if let Some(complete) = complete {
            eprintln!("(or open {complete})");
        }
        eprintln!("Waiting for you to confirm there...");
    }
}

async fn login(ctx: &Ctx, provider: Option<&str>, device: bool, json: bool) -> Result<()> {
    let (home, mut engine) = ctx.engine().await?;
    let method = if device {
        signin::Method::Device
    } else {
        signin::Method::Browser
    };
    let done = signin::login(
        &mut engine,
        &home,
        ctx.clock.clone(),
        provider,
        ctx.as_identity.as_deref(),
        method,
        &TerminalPrompt,
    )
    .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&done).map_err(|e| refused(e.to_string()))?
        );
    } else {
        let groups: Vec<String> = engine.state().groups_of(&done.name).into_iter().collect();
        println!(
            "Signed in as {} ({} subject {}){}; groups: {}",
            done.name,
            done.provider,
            done.subject,
            if done.enrolled { ", key enrolled" } else { "" },
            if groups.is_empty() {
                "none".to_owned()
            } else {
                groups.join(", ")
            }
        );
    }
    Ok(())
}

async fn logout(ctx: &Ctx) -> Result<()> {
    let (home, engine) = ctx.engine().await?;
    let name = ctx
        .as_identity
        .clone()
        .unwrap_or_else(|| home.default_identity().to_owned());
    let out = signin::logout(&engine, &home, ctx.clock.clone(), &name).await?;
    if let Some(w) = &out.warning {
        eprintln!("breakglass: warning: {w}");
    }
    println!(
        "Signed out {}{}; the sign-in and the key are removed from this machine",
        out.name,
        if out.revoked {
            ", refresh token revoked"
        } else {
            ""
        }
    );
    Ok(())
}

async fn whoami(ctx: &Ctx, json: bool) -> Result<()> {
    let (home, engine) = ctx.engine().await?;
    // Named, not loaded: whoami works after a logout removed the key.
    let name = match (&ctx.as_identity, &ctx.key_file) {
        (Some(name), _) => name.clone(),
        (None, Some(_)) => ctx.actor(&home, &engine)?.name().to_owned(),
        (None, None) => home.default_identity().to_owned(),
    };
    let identity = engine
        .state()
        .identity(&name)
        .ok_or_else(|| refused(format!("{name} is not enrolled in this log")))?;
    let binding = identity.record.binding.oidc();
    let session = signin::session_token(&home, &name)?;
    let signed_in_at = session
        .as_ref()
        .and_then(|t| signin::signed_in_at(t.expose_secret()));
    let max_age = engine.state().max_auth_age();
    let fresh = session
        .as_ref()
        .is_some_and(|t| engine.sign_in_is_fresh(t.expose_secret()));
    let groups: Vec<String> = engine.state().groups_of(&name).into_iter().collect();
    let report = serde_json::json!({
        "name": name,
        "provider": binding.map(|b| b.provider.clone()),
        "subject": binding.map(|b| b.subject.clone()),
        "groups": groups,
        "key": identity.record.key.to_base64(),
        "signed_in": session.is_some(),
        "signed_in_at": signed_in_at.map(|t| t.to_string()),
        "fresh_for_decisions": fresh,
        "max_auth_age": max_age.to_string(),
    });
    if json {
        println!("{report}");
        return Ok(());
    }
    match binding {
        None => println!("{name}: local identity; groups: {}", groups.join(", ")),
        Some(b) => println!(
            "{name}: {} subject {}; groups: {}; {}",
            b.provider,
            b.subject,
            if groups.is_empty() { "none".to_owned() } else { groups.join(", ") },
            match (session.is_some(), signed_in_at, fresh) {
                (false, _, _) => "not signed in here (run `breakglass login`)".to_owned(),
                (true, Some(at), true) => format!("signed in at {at}, fresh enough to approve"),
                (true, Some(at), false) => format!(
                    "signed in at {at}, older than max_auth_age {max_age}: run `breakglass login` before approving"
                ),
                (true, None, _) => "signed in (time unknown)".to_owned(),
            }
        ),
    }
    Ok(())
}

async fn offline_approval(ctx: &Ctx, id: &str, valid_for: &str) -> Result<()> {
    let id = parse_id(id)?;
    let ttl = Span::parse(valid_for).map_err(|e| usage(format!("--valid-for: {e}")))?;
    let (home, engine) = ctx.engine().await?;
    let actor = ctx.actor(&home, &engine)?;
    let token = engine.offline_approval(&actor, &id, ttl)?;
    eprintln!(
        "Offline approval of {id} by {}, valid for {ttl}. Give this token to the requester, who \
         runs `breakglass approval import TOKEN`:",
        actor.name()
    );
    println!("{token}");
    Ok(())
}

async fn import_approval(ctx: &Ctx, token: &str) -> Result<()> {
    let token = if token == "-" {
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(io::stdin(), 8192), &mut text)
            .map_err(|e| usage(format!("cannot read the token from standard input: {e}")))?;
        text
    } else {
        token.to_owned()
    };
    let (home, mut engine) = ctx.engine().await?;
    let actor = ctx.actor(&home, &engine)?;
    let outcome = engine.import_offline_approval(&actor, &token).await?;
    if let Some(w) = &outcome.warning {
        eprintln!("breakglass: warning: {w}");
    }
    let r = engine
        .state()
        .request(&outcome.request)
        .ok_or_else(|| refused("the request vanished"))?;
    println!("{}", request_line(r, engine.now()));
    Ok(())
}

async fn status(ctx: &Ctx, json: bool, all: bool) -> Result<()> {
    let (home, engine) = ctx.engine().await?;
    let me = match &ctx.key_file {
        Some(_) => ctx.actor(&home, &engine)?.name().to_owned(),
        None => ctx
            .as_identity
            .clone()
            .unwrap_or_else(|| home.default_identity().to_owned()),
    };
    let state = engine.state();
    if state.identity(&me).is_none() {
        return Err(refused(format!(
            "identity {me:?} is not enrolled in this log"
        )));
    }
    let now = engine.now();
    if json {
        let requests: Vec<_> = state
            .requests()
            .filter(|r| all || !r.status.is_final())
            .collect();
        return print_json(&serde_json::json!({
            "now": now,
            "identity": me,
            "log_size": engine.size(),
            "policy_version": state.policy().map(|p| p.policy.version),
            "requests": requests,
        }));
    }
    print!("{}", status_text(state, &me, now, all, engine.size()));
    Ok(())
}

/// Moves the entries older than `before` out of the database into the archive bundle.
async fn log_archive(ctx: &Ctx, before: &str, json: bool) -> Result<()> {
    let before = parse_time("--before", Some(before))?.expect("a time was given");
    let (_, mut engine) = ctx.engine().await?;
    let done = engine.archive(before).await;
    engine.close().await;
    let done = done?;
    if let Some(old) = done.replaced.as_ref().filter(|_| done.replaced_left) {
        eprintln!(
            "breakglass: warning: the earlier archive {} could not be removed; it is no longer \
             read and may be deleted",
            old.display()
        );
    }
    if json {
        return print_json(&serde_json::json!({
            "archived": done.size,
            "moved": done.moved,
            "file": done.path,
            "sha256": done.sha256,
            "checkpoint": done.checkpoint,
            "replaced": done.replaced,
        }));
    }
    println!(
        "archived: the log's first {} entries ({} moved out of the database now) are in {}",
        done.size,
        done.moved,
        done.path.display()
    );
    println!("sha256: {}", done.sha256);
    println!(
        "keep it there: the log reads those entries from it. A copy verifies on its own: \
         breakglass verify {}",
        done.path.display()
    );
    Ok(())
}

/// Verifies the stored log, without trusting any of it, as the bundle it would export — every
/// entry the newest checkpoint covers, against the log key in the config — without holding it
/// ([`verify_stored_bundle`]). On a team's log, entries members appended since then await the
/// broker's checkpoint and are left out (and said so on stderr); on the embedded log every
/// append carries its checkpoint, so an entry none covers fails verification.
async fn log_verify(ctx: &Ctx, json: bool) -> Result<()> {
    let home = ctx.home()?;
    let pinned = NoteVerifier::from_vkey(home.log_key())
        .map_err(|e| refused(format!("log key in the config: {e}")))?;
    let store = Store::open(&home.database())
        .await
        .map_err(EngineError::from)?;
    let (stored, latest) = store.head().await.map_err(EngineError::from)?;
    let team = store.backend() == breakglass_store::Backend::Postgres;
    let checkpoint = latest
        .filter(|c| team || c.size == stored)
        .ok_or_else(|| Failure {
            exit: VERIFY_FAILED,
            message: format!("error: no signed checkpoint covers the {stored} stored entries"),
        })?;
    let size = checkpoint.size;
    if size < stored {
        eprintln!(
            "note: {} entries appended since the newest checkpoint await the broker's; this \
             covers the {size} it signed",
            stored - size
        );
    }
    let opts = VerifyOptions {
        log_key: Some(pinned),
        earlier_checkpoint: None,
    };
    let verified = verify_stored_bundle(
        &store,
        home.origin(),
        home.log_key(),
        size,
        &checkpoint.note,
        opts,
    )
    .await
    .map_err(|e| refused(format!("cannot read the log: {e}")))?;
    report_bundle(verified, json, "local log")
}

fn report_bundle(
    verified: std::result::Result<breakglass_ledger::BundleReport, breakglass_ledger::BundleError>,
    json: bool,
    what: &str,
) -> Result<()> {
    match verified {
        Ok(r) => {
            if json {
                print_json(&serde_json::json!({"ok": true, "report": r}))?;
            } else {
                println!(
                    "OK: {what} verified — {} entries, {} identities, {} policy version(s), {} requests ({} granted, {} break-glass, {} review(s) owed); checkpoint {} root {}{}",
                    r.entries,
                    r.identities,
                    r.policy_versions,
                    r.requests,
                    r.grants,
                    r.break_glass,
                    r.reviews_owed,
                    r.origin,
                    r.root,
                    r.consistent_with
                        .map(|s| format!("; consistent with the earlier checkpoint of size {s}"))
                        .unwrap_or_default()
                );
                print_checks(&r.checks);
            }
            Ok(())
        }
        Err(e) => verification_failed(&e, json),
    }
}

/// What a verification checked, one indented line each.
fn print_checks(checks: &[String]) {
    println!("Checked:");
    for c in checks {
        println!("  - {c}");
    }
}

/// Reports a failed verification (on stdout too with `--json`) and exits with status 3.
fn verification_failed(e: &dyn std::fmt::Display, json: bool) -> Result<()> {
    if json {
        print_json(&serde_json::json!({"ok": false, "error": e.to_string()}))?;
    }
    Err(Failure {
        exit: VERIFY_FAILED,
        message: format!("verification FAILED: {e}"),
    })
}

/// Verifies an evidence package and says what it proves.
fn report_evidence(bytes: &[u8], opts: &VerifyOptions, json: bool, what: &str) -> Result<()> {
    match verify_evidence(bytes, opts) {
        Ok(r) => {
            if json {
                print_json(&serde_json::json!({"ok": true, "evidence": r}))?;
            } else {
                let q = &r.request;
                let approvers: Vec<&str> = q
                    .decisions
                    .iter()
                    .filter(|d| d.approved)
                    .map(|d| d.by.as_str())
                    .collect();
                println!(
                    "OK: {what} verified — evidence of request {} ({} entries, each proven in \
                     the log of {} entries signed by {}): {} asked for {} on {} ({}) for {}{}; \
                     approved by {}; now {}{}",
                    q.id,
                    r.entries,
                    r.log_size,
                    r.origin,
                    q.requester,
                    q.role,
                    q.target,
                    q.reason,
                    q.duration,
                    if q.break_glass { ", break-glass" } else { "" },
                    if approvers.is_empty() {
                        "no one".to_owned()
                    } else {
                        approvers.join(", ")
                    },
                    q.status.as_str(),
                    q.deadline
                        .map(|d| format!("; deadline {d}"))
                        .unwrap_or_default(),
                );
                print_checks(&r.checks);
            }
            Ok(())
        }
        Err(e) => verification_failed(&e, json),
    }
}

fn parse_time(flag: &str, s: Option<&str>) -> Result<Option<Timestamp>> {
    s.map(|s| Timestamp::parse_lenient(s).map_err(|e| refused(format!("invalid {flag}: {e}"))))
        .transpose()
}

async fn export(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    let filter = ExportFilter {
        from: parse_time("--from", a.from.as_deref())?,
        to: parse_time("--to", a.to.as_deref())?,
        target: a.target.clone(),
        requester: a.requester.clone(),
        state: a
            .state
            .as_deref()
            .map(|s| {
                Status::parse(s).ok_or_else(|| {
                    refused(format!(
                        "invalid --state {s:?}; use pending, approved, active, revoking, expired, revoked, denied, cancelled, lapsed or failed"
                    ))
                })
            })
            .transpose()?,
    };
    if let (Some(f), Some(t)) = (filter.from, filter.to) {
        if f >= t {
            return Err(refused("--from must be earlier than --to"));
        }
    }
    let request = match (a.format, a.request.as_deref()) {
        (Format::Evidence, Some(id)) => Some(parse_id(id)?),
        (Format::Evidence, None) => {
            return Err(usage("--format evidence needs --request ID"));
        }
        (_, Some(_)) => {
            return Err(usage("--request applies to --format evidence only"));
        }
        (_, None) => None,
    };
    let scoped = filter.from.is_some()
        || filter.to.is_some()
        || filter.target.is_some()
        || filter.requester.is_some()
        || filter.state.is_some();
    if scoped && a.format == Format::Bundle {
        return Err(refused(
            "a bundle always holds the whole log, so that it verifies on its own; filters apply to csv, jsonl and ocsf",
        ));
    }
    if scoped && a.format == Format::Evidence {
        return Err(refused(
            "an evidence package holds one request (--request); filters apply to csv, jsonl and ocsf",
        ));
    }
    let (_home, engine) = ctx.engine().await?;
    let to_stdout = a.output.as_os_str() == "-";
    let mut file = if to_stdout {
        None
    } else {
        Some(AtomicFile::create(&a.output, true)?)
    };
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let out: &mut dyn Write = match file.as_mut() {
        Some(f) => f,
        None => &mut stdout,
    };
    let bar = Progress::new(!to_stdout);
    let mut progress = |done, total| bar.set(done, total);
    let mut note = None;
    let count = match a.format {
        Format::Csv => write_csv(engine.state(), &filter, &mut *out)? as u64,
        Format::Jsonl | Format::Ocsf => {
            let format = if a.format == Format::Ocsf {
                EventFormat::Ocsf
            } else {
                EventFormat::Jsonl
            };
            let n = engine
                .export_events(format, &filter, &mut *out, &mut progress)
                .await?;
            if n.without_form > 0 {
                note = Some(format!(
                    "{} matching entries have no OCSF form (policy versions, provider keys, alerts about the log itself); the jsonl export and the bundle hold them",
                    n.without_form
                ));
            }
            n.written
        }
        Format::Bundle => {
            let size = engine.export_bundle(&mut *out, &mut progress).await?;
            if size < engine.size() {
                note = Some(format!(
                    "{} entries appended since the newest checkpoint await the broker's; this covers the {size} it signed",
                    engine.size() - size
                ));
            }
            size
        }
        Format::Evidence => {
            let id = request.ok_or_else(|| usage("--format evidence needs --request ID"))?;
            let (bytes, report) = engine.evidence(&id).await?;
            out.write_all(&bytes)
                .map_err(|e| refused(format!("cannot write {}: {e}", a.output.display())))?;
            report.entries
        }
    };
    bar.finish();
    match file {
        Some(f) => {
            f.commit(true)?;
            eprintln!("Wrote {count} record(s) to {}", a.output.display());
        }
        None => stdout
            .flush()
            .map_err(|e| refused(format!("writing to standard output: {e}")))?,
    }
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    Ok(())
}

async fn report(ctx: &Ctx, a: ReportArgs) -> Result<()> {
    let period = Period {
        from: parse_time("--from", a.from.as_deref())?,
        to: parse_time("--to", a.to.as_deref())?,
    };
    if let (Some(f), Some(t)) = (period.from, period.to) {
        if f >= t {
            return Err(refused("--from must be earlier than --to"));
        }
    }
    if a.output.as_os_str() == "-" {
        return Err(usage("the report is a file: give -o FILE.html"));
    }
    if a.pdf.is_some() && breakglass_engine::report::find_chromium().is_none() {
        return Err(refused(
            "--pdf needs Chromium to print the report: install chromium (or set BREAKGLASS_CHROMIUM); nothing was written",
        ));
    }
    let (_home, engine) = ctx.engine().await?;
    let (html, verification, _) = engine.report(&period).await?;
    let mut file = AtomicFile::create(&a.output, true)?;
    file.write_all(html.as_bytes())
        .map_err(|e| refused(format!("cannot write {}: {e}", a.output.display())))?;
    file.commit(true)?;
    eprintln!("Wrote the report to {}", a.output.display());
    if let Some(pdf) = &a.pdf {
        breakglass_engine::report::print_pdf(&a.output, pdf).await?;
        eprintln!("Wrote its PDF to {}", pdf.display());
    }
    if verification.ok {
        Ok(())
    } else {
        Err(Failure {
            exit: VERIFY_FAILED,
            message: format!(
                "error: the log failed verification ({}); the report shows it",
                verification.headline
            ),
        })
    }
}

/// A progress bar on standard error for long exports; drawn only when standard error is a
/// terminal (indicatif's own check), so scripts and pipes see nothing of it.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(shown: bool) -> Self {
        Self(shown.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "exporting {bar:40} {pos}/{len} entries ({percent}%, {eta} left)",
                )
                .expect("a valid template"),
            );
            bar
        }))
    }

    fn set(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn verify(a: VerifyArgs) -> Result<()> {
    let file =
        fs::File::open(&a.bundle).map_err(|e| refused(format!("{}: {e}", a.bundle.display())))?;
    let mut input = io::BufReader::with_capacity(1 << 20, file);
    let log_key = a
        .log_key
        .as_deref()
        .map(|k| NoteVerifier::from_vkey(k).map_err(|e| usage(format!("invalid --log-key: {e}"))))
        .transpose()?;
    let earlier_checkpoint = a
        .checkpoint
        .as_ref()
        .map(|p| fs::read_to_string(p).map_err(|e| refused(format!("{}: {e}", p.display()))))
        .transpose()?;
    let opts = VerifyOptions {
        log_key,
        earlier_checkpoint,
    };
    let what = a.bundle.display().to_string();
    let read_failed = |e: io::Error| refused(format!("{}: {e}", a.bundle.display()));
    // An evidence package holds one request's entries: read whole. A bundle of the whole log
    // streams through a bounded buffer, however long the log.
    if is_evidence(input.fill_buf().map_err(read_failed)?) {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).map_err(read_failed)?;
        return report_evidence(&bytes, &opts, a.json, &what);
    }
    report_bundle(verify_bundle_stream(input, &opts), a.json, &what)
}

async fn broker(ctx: &Ctx, interval: &str) -> Result<()> {
    let interval = Span::parse(interval).map_err(|e| usage(format!("invalid --interval: {e}")))?;
    if interval.as_secs() == 0 {
        return Err(usage("--interval must be at least 1s"));
    }
    let home = ctx.home()?;
    if home.is_member() {
        return Err(refused(format!(
            "{} is a team member's data directory: the log's keys are the broker's; run the \
             broker where the log was initialised",
            home.dir().display()
        )));
    }
    // A wall clock stepped back never delays an expiry: the broker's time never runs slower
    // than the monotonic clock.
    let clock: Arc<dyn Clock> = Arc::new(SteadyClock::new(ctx.clock.clone()));
    let stop = shutdown();
    let mut engine = home.engine(clock).await?;
    eprintln!(
        "breakglass broker: started; once it holds the broker lease it ends whatever came due \
         while no broker ran, then each grant at its deadline (Ctrl-C or SIGTERM to stop)"
    );
    // Set on taking the lease, so the pass after each takeover reports as the first.
    let first = std::cell::Cell::new(true);
    let max_sleep = Duration::from_millis(u64::try_from(interval.as_millis()).unwrap_or(1000));
    engine
        .run_leased_broker(
            max_sleep,
            |notice| match notice {
                BrokerNotice::Standby => eprintln!(
                    "breakglass broker: standby: another broker is acting on this log; taking \
                     over when it stops"
                ),
                BrokerNotice::Acting => {
                    first.set(true);
                    eprintln!("breakglass broker: acting (holds the broker lease)");
                }
                BrokerNotice::Lost(e) => {
                    eprintln!("breakglass broker: warning: {e}; stopped acting, waiting as a standby")
                }
                BrokerNotice::LeaseError(e) => {
                    eprintln!("breakglass broker: warning: cannot take the broker lease: {e}; trying again")
                }
            },
            |pass| {
                match pass {
                    Ok(report) => {
                        for run in &report.revokes {
                            let late = run.started.millis_since(run.deadline).max(0);
                            let what = if run.ok {
                                "revoked"
                            } else {
                                "revoke failed for"
                            };
                            eprintln!("{what} {} ({late} ms after its deadline)", run.request);
                        }
                        for id in &report.lapsed {
                            eprintln!("lapsed {id}");
                        }
                        for id in &report.granted {
                            eprintln!("granted {id}");
                        }
                        for p in &report.provider_keys {
                            eprintln!("recorded new signing keys of identity provider {p}");
                        }
                        for f in &report.failures {
                            eprintln!("warning: {f}");
                        }
                        if first.get() {
                            eprintln!(
                                "breakglass broker: first pass done: {} overdue grant(s) ended, {} \
                                 failure(s)",
                                report.expired.len() + report.revoked.len(),
                                report.failures.len()
                            );
                        }
                    }
                    Err(e) => eprintln!("breakglass broker: warning: {e}; trying again"),
                }
                first.set(false);
            },
            stop,
        )
        .await;
    eprintln!("breakglass broker: stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (how service managers stop the broker). Both are caught from
/// the moment this is called, not from when the future is first awaited: a signal that comes
/// while the broker is still opening the log or in a pass stops it cleanly once it gets there,
/// instead of killing the process.
fn shutdown() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let caught = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match caught {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| refused(e.to_string()))?;
    println!("{text}");
    Ok(())
}
