//! The desk: one person's working surface over a data directory — who they act as, what they
//! see ([`Overview`]), and every command they give, with results shaped for a user interface.
//! The desktop app's commands are thin adapters over it; nothing here knows a window exists.

mod notice;
mod view;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use breakglass_connectors::postgres::{new_password, ScramVerifier};
use breakglass_core::policy::Policy;
use breakglass_core::{
    Clock, Credential as LogCredential, CredentialKind, EventBody, Issued, RequestId, Span, Status,
    Timestamp,
};
use breakglass_idp::{Provider, ProviderConfig};
use breakglass_ledger::{
    is_evidence, verify_bundle, verify_evidence, Entry, NoteVerifier, VerifyOptions,
};

use crate::engine::{Actor, Engine, NewRequest, Outcome};
use crate::error::EngineError;
use crate::export::{write_csv, EventFormat, ExportFilter};
use crate::file::AtomicFile;
use crate::findings::{self, Findings};
use crate::home::{Home, InitOptions, JoinOptions, KeyStoreKind};
use crate::report::Period;
use crate::signin::{self, Method, Prompt};

pub use notice::{Notice, NoticeKind, Notices, TraySummary, WARN_BEFORE_EXPIRY};
pub use view::{
    Alert, AlertKind, Credential, Decided, DecisionView, Discovery, EventRow, ExportDone,
    ExportFormat, ExportPeriod, ExportProgress, HistoryFilter, JoinForm, Me, Needs, OfflineToken,
    Overview, PolicyProblem, ProviderDraft, RequestForm, RequestView, ReviewState, SetupStatus,
    SignedInView, TargetView, VerifyReport,
};

/// `name`, with its key from where `home` keeps it.
fn identity_actor(home: &Home, name: &str) -> Result<Actor, EngineError> {
    let key = home.identity_key(name).load().map_err(|e| {
        EngineError::Invalid(format!(
            "cannot load the signing key of {name}: {e}; sign in again"
        ))
    })?;
    Ok(Actor::new(name, key))
}

/// The policy a first run starts from: one demonstration target whose connector grants nothing.
pub const FIRST_RUN_POLICY: &str = include_str!("first-run-policy.toml");

/// Longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// An open data directory, its verified log, and the identity this front end acts as.
pub struct Desk {
    home: Home,
    engine: Engine,
    clock: Arc<dyn Clock>,
    /// The acting person's provider session, read from the keyring when the identity changes
    /// rather than on every overview (a front end asks every second; a locked keyring would
    /// prompt each time).
    session: Option<breakglass_idp::IdToken>,
    /// The public key (base64) held here for the acting identity when the log has not enrolled
    /// it with that key (a team member who just joined): what to give an administrator.
    key_here: Option<String>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("dir", &self.home.dir())
            .field("me", &self.me())
            .finish_non_exhaustive()
    }
}

/// What one [`Desk::sync`] found.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    /// Whether the log grew (by this process's scheduler or by another process).
    pub changed: bool,
    /// Connector failures the scheduler ran into (also recorded in the log).
    pub failures: Vec<String>,
}

impl Desk {
    /// Opens an initialised data directory, verifying its whole log, and runs a scheduler pass
    /// so anything overdue is handled first.
    pub async fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Desk, EngineError> {
        let home = Home::open(dir)?;
        let engine = match home.engine(clock.clone()).await {
            Ok(engine) => engine,
            Err(e) => {
                let actor = identity_actor(&home, home.default_identity());
                return Err(findings::hold(&home, actor, clock.now(), e));
            }
        };
        let mut desk = Desk {
            home,
            engine,
            clock,
            session: None,
            key_here: None,
        };
        desk.load_session();
        desk.witness_as_me()?;
        desk.sync().await?;
        Ok(desk)
    }

    /// Joins a team's log (see [`Home::join`]) as `name` in `dir`, the identity's key kept in the
    /// OS keyring (made there when absent: until an administrator enrols it, the overview says
    /// which key to enrol).
    pub async fn join(
        dir: &Path,
        form: JoinForm,
        clock: Arc<dyn Clock>,
    ) -> Result<Desk, EngineError> {
        let name = form.name.trim().to_owned();
        let joined = Home::join(
            dir,
            JoinOptions {
                database: form.database.trim().to_owned(),
                log_key: form.log_key.trim().to_owned(),
                identity: name,
                identity_key: None,
                identity_keys: KeyStoreKind::Keyring,
            },
            clock.clone(),
        )
        .await?;
        let mut desk = Desk {
            home: joined.home,
            engine: joined.engine,
            clock,
            session: None,
            key_here: None,
        };
        desk.load_session();
        desk.witness_as_me()?;
        Ok(desk)
    }

    /// Creates a data directory with `admin` as its first administrator, keys in the OS
    /// keyring.
    pub async fn init(dir: &Path, admin: &str, clock: Arc<dyn Clock>) -> Result<Desk, EngineError> {
        Desk::init_with(dir, admin, KeyStoreKind::Keyring, clock).await
    }

    /// [`Desk::init`] with the system keys kept where `keys` says.
    pub async fn init_with(
        dir: &Path,
        admin: &str,
        keys: KeyStoreKind,
        clock: Arc<dyn Clock>,
    ) -> Result<Desk, EngineError> {
        let admin = admin.trim();
        let opts = InitOptions {
            admin: admin.to_owned(),
            admin_key: None,
            system_keys: keys,
            database: None,
        };
        let (home, engine) = Home::init(dir, opts, clock.clone()).await?;
        Ok(Desk {
            home,
            engine,
            clock,
            session: None,
            key_here: None,
        })
    }

    /// The data directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The identity this desk acts as.
    pub fn me(&self) -> &str {
        self.home.default_identity()
    }

    /// Closes the log's database.
    pub async fn close(self) {
        self.engine.close().await;
    }

    /// Picks up entries other processes appended and runs the scheduler (expiry, lapses,
    /// interrupted grants) only while no broker acts on the log, so the app never grants or
    /// revokes beside a broker (a team member's app leaves both to the broker always).
    ///
    /// A team member's read that fails verification is signed and kept as a finding
    /// ([`findings`]); once the log verifies again, kept findings are appended.
    pub async fn sync(&mut self) -> Result<Synced, EngineError> {
        let before = self.engine.size();
        if let Err(e) = self.engine.refresh().await {
            return Err(findings::hold(
                &self.home,
                self.actor(),
                self.clock.now(),
                e,
            ));
        }
        let report = self.engine.tick_unless_brokered().await?;
        let mut failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
        if self.home.is_member() {
            if let Err(e) = self.report_findings().await {
                failures.push(format!("the findings kept here were not appended yet: {e}"));
            }
        }
        Ok(Synced {
            changed: self.engine.size() != before,
            failures,
        })
    }

    /// Appends the findings this identity kept while the log failed verification.
    async fn report_findings(&mut self) -> Result<usize, EngineError> {
        let kept = Findings::of(&self.home);
        if kept.held()?.is_empty() {
            return Ok(0);
        }
        let actor = self.actor()?;
        kept.report(&mut self.engine, &actor).await
    }

    /// Hears of changes other apps, the CLI and the broker commit to a team's log, so the
    /// desk syncs at once; `None` on the embedded log (or when the database refuses it).
    pub async fn listen(&self) -> Option<breakglass_store::LogListener> {
        self.engine.store().listen().await.ok().flatten()
    }

    /// Where the walk-through stands.
    pub fn setup_status(&self) -> SetupStatus {
        let state = self.engine.state();
        let me = self.me().to_owned();
        let provider_person = state
            .identity(&me)
            .is_some_and(|i| i.record.binding.oidc().is_some());
        let signed_in = provider_person && self.session.is_some();
        SetupStatus {
            data_dir: self.home.dir().display().to_string(),
            initialised: true,
            has_policy: state.policy().is_some(),
            providers: state
                .policy()
                .map(|p| p.policy.providers.keys().cloned().collect())
                .unwrap_or_default(),
            admin: state.is_admin(&me),
            me: Some(me),
            signed_in,
        }
    }

    /// Everything the main screens show, now.
    pub fn overview(&self) -> Overview {
        let state = self.engine.state();
        let me = self.me();
        let session = self.session.as_ref();
        let signed_in_at = session
            .as_ref()
            .and_then(|t| signin::signed_in_at(t.expose_secret()));
        let targets: Vec<TargetView> = state
            .policy()
            .map(|p| {
                p.policy
                    .targets
                    .values()
                    .map(|t| view::target_view(state, me, t))
                    .collect()
            })
            .unwrap_or_default();
        let approver = state.policy().is_some_and(|p| {
            p.policy
                .targets
                .values()
                .any(|t| state.is_approver_for(me, t))
        });
        let mut requests: Vec<RequestView> = state
            .requests()
            .map(|r| view::request_view(state, me, r))
            .collect();
        requests.sort_by(|a, b| {
            b.requested_at_ms
                .cmp(&a.requested_at_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
        Overview {
            now_ms: self.engine.now().unix_millis(),
            log_size: self.engine.size(),
            me: Me {
                name: me.to_owned(),
                provider: state
                    .identity(me)
                    .and_then(|i| i.record.binding.oidc().map(|b| b.provider.clone())),
                groups: state.groups_of(me).into_iter().collect(),
                signed_in: session.is_some(),
                signed_in_at_ms: signed_in_at.map(|t| t.unix_millis()),
                fresh_for_decisions: session
                    .as_ref()
                    .is_some_and(|t| self.engine.sign_in_is_fresh(t.expose_secret())),
                max_auth_age_secs: state.max_auth_age().as_secs(),
                admin: state.is_admin(me),
                approver,
                to_enrol: self.key_here.clone().filter(|pk| {
                    state
                        .identity(me)
                        .map(|i| i.record.key.to_base64())
                        .as_ref()
                        != Some(pk)
                }),
            },
            targets,
            requests,
            alerts: view::alerts(state),
        }
    }

    /// The policy in force, as applied.
    pub fn current_policy(&self) -> Option<String> {
        self.engine.state().policy().map(|p| p.source.clone())
    }

    /// Applies `source` as the new policy (this desk's identity must be an administrator).
    pub async fn apply_policy(&mut self, source: &str) -> Result<SetupStatus, EngineError> {
        let actor = self.actor()?;
        self.engine.apply_policy(&actor, source).await?;
        Ok(self.setup_status())
    }

    /// Acts as `name` from now on (after a sign-in); remembered in the data directory.
    pub fn act_as(&mut self, name: &str) -> Result<(), EngineError> {
        if self.engine.state().identity(name).is_none() {
            return Err(breakglass_core::Refusal::UnknownIdentity(name.to_owned()).into());
        }
        self.home.set_default_identity(name)?;
        self.load_session();
        self.witness_as_me()
    }

    /// On a team member's machine, makes the acting identity this desk's witness: from the next
    /// sync it cosigns the newest checkpoint it verified (once enrolled with the key held here).
    fn witness_as_me(&mut self) -> Result<(), EngineError> {
        if !self.home.is_member() {
            return Ok(());
        }
        match self.actor() {
            Ok(actor) => self.engine.set_witness(&actor),
            // No key here (yet): nothing to cosign with.
            Err(_) => Ok(()),
        }
    }

    /// Reads the identity's provider session from the keyring; only a person who signs in at a
    /// provider has one, so a local identity costs no keyring round trip (which would delay
    /// the app's start).
    fn load_session(&mut self) {
        let provider_person = self
            .engine
            .state()
            .identity(self.me())
            .is_some_and(|i| i.record.binding.oidc().is_some());
        self.session = if provider_person {
            signin::session_token(&self.home, self.me()).ok().flatten()
        } else {
            None
        };
        // Only a member not enrolled yet costs a look at the key.
        self.key_here =
            if self.engine.is_member() && self.engine.state().identity(self.me()).is_none() {
                self.home
                    .identity_key(self.me())
                    .load()
                    .ok()
                    .map(|k| crate::keys::public_key(&k).to_base64())
            } else {
                None
            };
    }

    /// Enrols a local identity `name` in `groups` (administrators only), with a new signing
    /// key kept where this directory keeps keys; for automation and people without a provider.
    pub async fn enrol_local(&mut self, name: &str, groups: &[String]) -> Result<(), EngineError> {
        let admin = self.actor()?;
        let location = self.home.identity_key(name);
        if location.load().is_ok() {
            return Err(EngineError::Invalid(format!(
                "a signing key for {name} is already kept here"
            )));
        }
        let key = crate::keys::generate();
        location.store_new(&key)?;
        let result = self
            .engine
            .enrol(
                &admin,
                name,
                crate::keys::public_key(&key),
                groups.iter().cloned(),
            )
            .await;
        if let Err(e) = result {
            let _ = location.delete();
            return Err(e);
        }
        Ok(())
    }

    /// Requests access.
    pub async fn request(&mut self, form: RequestForm) -> Result<Decided, EngineError> {
        let reason = form.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(EngineError::Invalid("give a reason for the request".into()));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(EngineError::Invalid(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        if form.duration_secs == 0 {
            return Err(EngineError::Invalid(
                "the duration must be at least one second".into(),
            ));
        }
        let extends = form.extends.as_deref().map(parse_id).transpose()?;
        let ticket = form
            .ticket
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let needs = self
            .engine
            .state()
            .policy()
            .and_then(|p| p.policy.target(&form.target))
            .and_then(|t| t.connector.credential());
        // A database role's password is made here and only its verifier leaves this machine;
        // the password is shown once, below, and kept nowhere.
        let (credential, password) = match needs {
            Some(CredentialKind::SshPublicKey) => {
                let key = form
                    .ssh_public_key
                    .as_deref()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "target {} grants SSH certificates: paste your SSH public key (the \
                             contents of your .pub file)",
                            form.target
                        ))
                    })?;
                (Some(LogCredential::SshPublicKey(key.to_owned())), None)
            }
            Some(CredentialKind::ScramVerifier) => {
                let password = new_password();
                let verifier = ScramVerifier::of(&password);
                (
                    Some(LogCredential::ScramVerifier(verifier.as_str().to_owned())),
                    Some(password),
                )
            }
            // The engine seals the token to this identity's own key.
            Some(CredentialKind::SealKey) | None => (None, None),
        };
        let actor = self.signed_actor().await?;
        let outcome = self
            .engine
            .request(
                &actor,
                NewRequest {
                    target: form.target,
                    role: form.role.filter(|r| !r.is_empty()),
                    duration: Span::from_secs(form.duration_secs),
                    reason,
                    ticket,
                    break_glass: form.break_glass,
                    extends,
                    credential,
                },
            )
            .await?;
        let mut decided = self.decided(outcome)?;
        if let Some(password) = password {
            decided.credential = Some(Credential {
                label: "Password of your database role (shown only now; Breakglass keeps no copy)"
                    .into(),
                value: password.to_string(),
            });
        }
        Ok(decided)
    }

    /// Approves pending request `id`.
    pub async fn approve(
        &mut self,
        id: &str,
        comment: Option<String>,
    ) -> Result<Decided, EngineError> {
        let id = parse_id(id)?;
        let actor = self.signed_actor().await?;
        let outcome = self.engine.approve(&actor, &id, non_empty(comment)).await?;
        self.decided(outcome)
    }

    /// Denies pending request `id`.
    pub async fn deny(&mut self, id: &str, reason: String) -> Result<Decided, EngineError> {
        let id = parse_id(id)?;
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(EngineError::Invalid(
                "give the requester a reason for the denial".into(),
            ));
        }
        let actor = self.signed_actor().await?;
        let outcome = self.engine.deny(&actor, &id, reason).await?;
        self.decided(outcome)
    }

    /// Ends grant `id` now (its requester, an approver or an administrator).
    pub async fn revoke(
        &mut self,
        id: &str,
        reason: Option<String>,
    ) -> Result<Decided, EngineError> {
        let id = parse_id(id)?;
        let actor = self.signed_actor().await?;
        let outcome = self.engine.revoke(&actor, &id, non_empty(reason)).await?;
        self.decided(outcome)
    }

    /// Withdraws this desk's own pending request `id`.
    pub async fn cancel(&mut self, id: &str) -> Result<Decided, EngineError> {
        let id = parse_id(id)?;
        let actor = self.actor()?;
        let outcome = self.engine.cancel(&actor, &id).await?;
        self.decided(outcome)
    }

    /// Records the review break-glass request `id` owes.
    pub async fn review(&mut self, id: &str, comment: String) -> Result<Decided, EngineError> {
        let id = parse_id(id)?;
        let comment = comment.trim().to_owned();
        if comment.is_empty() {
            return Err(EngineError::Invalid(
                "a review needs a comment saying what was found".into(),
            ));
        }
        let actor = self.signed_actor().await?;
        let outcome = self.engine.review(&actor, &id, comment).await?;
        self.decided(outcome)
    }

    /// Signs an offline approval of break-glass request `id`, valid for `valid_for_secs`.
    pub fn offline_approval(
        &self,
        id: &str,
        valid_for_secs: u64,
    ) -> Result<OfflineToken, EngineError> {
        let id = parse_id(id)?;
        let actor = self.actor()?;
        let ttl = Span::from_secs(valid_for_secs);
        let token = self.engine.offline_approval(&actor, &id, ttl)?;
        let expires = self
            .engine
            .now()
            .checked_add(ttl)
            .ok_or(breakglass_core::Refusal::TimeOutOfRange)?;
        Ok(OfflineToken {
            qr_svg: qr_svg(&token)?,
            token,
            expires_at_ms: expires.unix_millis(),
        })
    }

    /// Imports an offline approval token for this desk's own request.
    pub async fn import_offline_approval(&mut self, token: &str) -> Result<Decided, EngineError> {
        let actor = self.actor()?;
        let outcome = self.engine.import_offline_approval(&actor, token).await?;
        self.decided(outcome)
    }

    /// The events of the log that `filter` keeps, newest first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<EventRow>, EngineError> {
        let entries = self.engine.entries(0, self.engine.size()).await?;
        let needle = filter
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase);
        let state = self.engine.state();
        let mut rows = Vec::new();
        for (index, bytes) in entries.iter().enumerate() {
            let entry = Entry::decode(bytes).map_err(|e| EngineError::Tampered(e.to_string()))?;
            let ev = entry.event();
            let at = ev.time.unix_millis();
            if filter.from_ms.is_some_and(|f| at < f) || filter.to_ms.is_some_and(|t| at >= t) {
                continue;
            }
            let kind = ev.body.kind();
            if !filter.kinds.is_empty() && !filter.kinds.iter().any(|k| k == kind) {
                continue;
            }
            let row = EventRow {
                index: index as u64,
                at_ms: at,
                kind: kind.to_owned(),
                actor: ev.actor.clone(),
                request: ev.body.request().map(ToString::to_string),
                summary: summary(state, &ev.body),
            };
            if let Some(needle) = &needle {
                let hay = format!(
                    "{} {} {} {}",
                    row.kind,
                    row.actor,
                    row.request.as_deref().unwrap_or(""),
                    row.summary
                )
                .to_lowercase();
                if !hay.contains(needle.as_str()) {
                    continue;
                }
            }
            rows.push(row);
        }
        rows.reverse();
        Ok(rows)
    }

    /// The folder exports go to when no path is chosen: `exports/` in the data directory.
    pub fn export_dir(&self) -> PathBuf {
        self.home.dir().join("exports")
    }

    /// Writes the history of `period` in `format` to `path` (a new file beside the data
    /// directory's exports when `None`), reporting progress per batch of entries. The file
    /// appears complete or not at all.
    pub async fn export(
        &self,
        format: ExportFormat,
        period: ExportPeriod,
        path: Option<&Path>,
        progress: &mut (dyn FnMut(ExportProgress) + Send),
    ) -> Result<ExportDone, EngineError> {
        let time = |ms: Option<i64>, which: &str| {
            ms.map(|ms| {
                Timestamp::from_unix_millis(ms).ok_or_else(|| {
                    EngineError::Invalid(format!("the period's {which} time is out of range"))
                })
            })
            .transpose()
        };
        let (from, to) = (time(period.from_ms, "start")?, time(period.to_ms, "end")?);
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(EngineError::Invalid(
                    "the period must end after it starts".into(),
                ));
            }
        }
        if format == ExportFormat::Bundle && (from.is_some() || to.is_some()) {
            return Err(EngineError::Invalid(
                "a bundle always holds the whole log, so that it verifies on its own; choose no period"
                    .into(),
            ));
        }
        let path = match path {
            Some(p) => p.to_owned(),
            None => self.new_export_path(
                &format!(
                    "breakglass-{}-{}",
                    self.engine.now().to_string().replace(':', ""),
                    self.engine.size(),
                ),
                format.extension(),
            )?,
        };
        let mut file = AtomicFile::create(&path, false)?;
        let mut report = |done, total| progress(ExportProgress { done, total });
        let filter = ExportFilter {
            from,
            to,
            ..ExportFilter::default()
        };
        let records = match format {
            ExportFormat::Csv => {
                let total = self.engine.size();
                report(0, total);
                let rows = write_csv(self.engine.state(), &filter, &mut file)? as u64;
                report(total, total);
                rows
            }
            ExportFormat::Jsonl | ExportFormat::Ocsf => {
                let format = if format == ExportFormat::Ocsf {
                    EventFormat::Ocsf
                } else {
                    EventFormat::Jsonl
                };
                let count = self
                    .engine
                    .export_events(format, &filter, &mut file, &mut report)
                    .await?;
                count.written
            }
            // What the newest checkpoint covers, so the bundle verifies on its own.
            ExportFormat::Bundle => self.engine.export_bundle(&mut file, &mut report).await?,
            ExportFormat::Report => {
                let total = self.engine.size();
                report(0, total);
                let period = Period { from, to };
                let (html, _, figures) = self.engine.report(&period).await?;
                file.write_all(html.as_bytes()).map_err(|e| {
                    EngineError::Invalid(format!("cannot write {}: {e}", path.display()))
                })?;
                report(total, total);
                figures.requests as u64
            }
        };
        let bytes = file.commit(false)?;
        Ok(ExportDone {
            path: path.display().to_string(),
            bytes,
            records,
        })
    }

    /// Writes request `id`'s evidence package — its entries and what they need, each with an
    /// inclusion proof against the newest checkpoint, checked before it is written — to `path`
    /// (a new file in the data directory's exports when `None`). `records` counts its entries.
    pub async fn export_evidence(
        &self,
        id: &str,
        path: Option<&Path>,
    ) -> Result<ExportDone, EngineError> {
        let id = parse_id(id)?;
        let (bytes, report) = self.engine.evidence(&id).await?;
        let path = match path {
            Some(p) => p.to_owned(),
            None => self.new_export_path(
                &format!(
                    "breakglass-{id}-{}",
                    self.engine.now().to_string().replace(':', "")
                ),
                "evidence",
            )?,
        };
        let mut file = AtomicFile::create(&path, false)?;
        file.write_all(&bytes)
            .map_err(|e| EngineError::Invalid(format!("cannot write {}: {e}", path.display())))?;
        file.commit(false)?;
        Ok(ExportDone {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            records: report.entries,
        })
    }

    /// `name` in the exports folder, which is created when missing.
    /// `STEM.EXT` in the exports folder, or `STEM-2.EXT`, `STEM-3.EXT`, … when an earlier
    /// export took it (two exports in the same millisecond of the same log).
    fn new_export_path(&self, stem: &str, ext: &str) -> Result<PathBuf, EngineError> {
        let dir = self.export_dir();
        fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
        let mut path = dir.join(format!("{stem}.{ext}"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("{stem}-{n}.{ext}"));
        }
        Ok(path)
    }

    /// Ends this desk's provider session: revokes the refresh token at the provider and
    /// removes the session and signing key from the keyring. The desk still names the person,
    /// who signs nothing until they sign in again. Returns why revocation at the provider could
    /// not be confirmed, if it could not.
    pub async fn sign_out(&mut self) -> Result<Option<String>, EngineError> {
        let me = self.me().to_owned();
        let out = signin::logout(&self.engine, &self.home, self.clock.clone(), &me).await;
        self.load_session();
        Ok(out?.warning)
    }

    fn actor(&self) -> Result<Actor, EngineError> {
        identity_actor(&self.home, self.me())
    }

    /// The acting identity with, for a provider's person, the ID token of their sign-in here
    /// (refreshed first when it has expired), for decisions.
    async fn signed_actor(&self) -> Result<Actor, EngineError> {
        let actor = self.actor()?;
        let (actor, _warning) =
            signin::with_current_sign_in(&self.engine, &self.home, self.clock.clone(), actor)
                .await?;
        Ok(actor)
    }

    /// What this identity's grant `id` handed over, to show it: its SSH certificate, or its
    /// access token opened with this identity's key. Nothing is stored or logged.
    pub fn issued(&self, id: &str) -> Result<Credential, EngineError> {
        let id = parse_id(id)?;
        let r = self
            .engine
            .state()
            .request(&id)
            .ok_or(breakglass_core::Refusal::UnknownRequest(id))?;
        if r.requester != self.me() {
            return Err(EngineError::Invalid(format!(
                "{id} is {}'s grant: only they can see what it issued",
                r.requester
            )));
        }
        if r.status != Status::Active {
            return Err(EngineError::Invalid(format!(
                "{id} is {}: what it issued no longer works",
                r.status.as_str()
            )));
        }
        self.credential_of(r)?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "{id} issued nothing to show (see its target's note)"
            ))
        })
    }

    fn credential_of(
        &self,
        r: &breakglass_core::Request,
    ) -> Result<Option<Credential>, EngineError> {
        Ok(match &r.issued {
            // A certificate is no secret, but it is what the requester needs next.
            Some(Issued::SshCertificate(cert)) => Some(Credential {
                label: "SSH certificate: save it beside your key as id_ed25519-cert.pub".into(),
                value: cert.clone(),
            }),
            Some(Issued::AccessToken(t)) => {
                let token = self.actor()?.open_token(r)?;
                Some(Credential {
                    label: format!(
                        "Access token for {}, valid until {}: copy it now; it is not shown in \
                         the log",
                        t.resource, t.expires_at
                    ),
                    value: token.as_str().to_owned(),
                })
            }
            Some(Issued::DatabaseRole(_)) | None => None,
        })
    }

    fn decided(&self, outcome: Outcome) -> Result<Decided, EngineError> {
        let state = self.engine.state();
        let r = state
            .request(&outcome.request)
            .ok_or(breakglass_core::Refusal::UnknownRequest(outcome.request))?;
        // What the requester needs next is shown at once when the grant is theirs.
        let credential = if r.requester == self.me() {
            self.credential_of(r)?
        } else {
            None
        };
        Ok(Decided {
            request: view::request_view(state, self.me(), r),
            warning: outcome.warning,
            credential,
        })
    }
}

/// Signs in at `provider` (the policy's only one when `None`) from the data directory `home`,
/// enrolling the person's key on first sign-in. It opens its own connection to the log, so a
/// desk stays usable while the browser is open; the caller then makes the desk act as the
/// person ([`Desk::act_as`]).
pub async fn sign_in(
    home: &Home,
    clock: Arc<dyn Clock>,
    provider: Option<&str>,
    method: Method,
    prompt: &dyn Prompt,
) -> Result<SignedInView, EngineError> {
    let mut engine = home.engine(clock.clone()).await?;
    let result = signin::login(&mut engine, home, clock, provider, None, method, prompt).await;
    engine.close().await;
    let signed = result?;
    Ok(SignedInView {
        name: signed.name,
        provider: signed.provider,
        enrolled: signed.enrolled,
    })
}

/// The request a deep link (`breakglass://request/ID`) opens; anything else is refused.
pub fn parse_deep_link(url: &str) -> Result<String, EngineError> {
    RequestId::from_link(url)
        .map(|id| id.to_string())
        .map_err(EngineError::Invalid)
}

/// Fetches `issuer`'s discovery document, for a first run to show before the provider is added.
pub async fn discover(issuer: &str, clock: Arc<dyn Clock>) -> Result<Discovery, EngineError> {
    let issuer = issuer.trim();
    // The client id is not needed to read the discovery document.
    let provider = Provider::discover(ProviderConfig::new("new", issuer, "-"), clock).await?;
    let m = provider.metadata();
    Ok(Discovery {
        issuer: m.issuer.clone(),
        authorization_endpoint: m.authorization_endpoint.to_string(),
        token_endpoint: m.token_endpoint.to_string(),
        device_authorization_endpoint: m
            .device_authorization_endpoint
            .as_ref()
            .map(ToString::to_string),
        jwks_uri: m.jwks_uri.to_string(),
        revocation_endpoint: m.revocation_endpoint.as_ref().map(ToString::to_string),
        introspection_endpoint: m.introspection_endpoint.as_ref().map(ToString::to_string),
        scopes_supported: m.scopes_supported.clone(),
        pkce_s256: m
            .code_challenge_methods_supported
            .iter()
            .any(|c| c == "S256"),
        device_flow: m.device_authorization_endpoint.is_some(),
    })
}

/// Every problem in policy `source`, with its line and column; empty when it parses.
pub fn check_policy(source: &str) -> Vec<PolicyProblem> {
    match Policy::parse(source) {
        Ok(_) => Vec::new(),
        Err(errs) => errs
            .0
            .iter()
            .map(|p| PolicyProblem {
                line: u32::try_from(p.line).unwrap_or(u32::MAX),
                column: u32::try_from(p.column).unwrap_or(u32::MAX),
                message: p.message.clone(),
            })
            .collect(),
    }
}

/// A starting policy for a first run: the sample target with `admin` as its administrator and
/// approver, and `provider` (when given) as its identity provider.
pub fn draft_policy(admin: &str, provider: Option<&ProviderDraft>) -> String {
    let mut source = FIRST_RUN_POLICY.replace("\"admin\"]", &format!("{admin:?}]"));
    if let Some(p) = provider {
        source.push_str(&format!(
            "\n# People signing in at {issuer} are named by their preferred_username; map their\n\
             # provider groups to policy groups below (for example \"sre\" = [\"approvers\"]).\n\
             [providers.{name}]\nissuer = {issuer:?}\nclient_id = {client:?}\n\n\
             [providers.{name}.groups]\n",
            name = toml_key(&p.name),
            issuer = p.issuer.trim(),
            client = p.client_id.trim(),
        ));
    }
    source
}

fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// Verifies the bundle at `path` on its own (no log key pinned: the bundle's own key is
/// checked against every checkpoint in it) and says what was found in plain words.
pub fn verify_file(path: &Path) -> Result<VerifyReport, EngineError> {
    let bytes = fs::read(path)
        .map_err(|e| EngineError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(verify_bytes(&bytes, None))
}

/// Verifies `bytes` — a bundle of the whole log or one request's evidence package (told apart by
/// their header) — pinning the log key `pinned` when given, and says what was checked.
pub fn verify_bytes(bytes: &[u8], pinned: Option<NoteVerifier>) -> VerifyReport {
    let opts = VerifyOptions {
        log_key: pinned,
        earlier_checkpoint: None,
    };
    if is_evidence(bytes) {
        return match verify_evidence(bytes, &opts) {
            Ok(r) => VerifyReport {
                ok: true,
                headline: format!(
                    "Verified: the evidence of request {} — {} entries, each proven to be in the signed log of {} entries, signed and following the log's rules.",
                    r.request.id, r.entries, r.log_size
                ),
                details: r.checks,
                entries: r.entries,
                checkpoint: Some(format!("{} ({} entries)", r.origin, r.log_size)),
            },
            Err(e) => verification_failed(&e),
        };
    }
    match verify_bundle(bytes, &opts) {
        Ok(r) => VerifyReport {
            ok: true,
            headline: format!(
                "Verified: all {} entries are signed, follow the log's rules, and match the signed checkpoint.",
                r.entries
            ),
            details: r.checks,
            entries: r.entries,
            checkpoint: Some(format!("{} root {}", r.origin, r.root)),
        },
        Err(e) => verification_failed(&e),
    }
}

fn verification_failed(e: &dyn std::fmt::Display) -> VerifyReport {
    VerifyReport {
        ok: false,
        headline: "Verification FAILED: this file cannot be trusted as a record of what happened."
            .into(),
        details: vec![e.to_string()],
        entries: 0,
        checkpoint: None,
    }
}

fn parse_id(id: &str) -> Result<RequestId, EngineError> {
    RequestId::parse(id.trim()).map_err(EngineError::Invalid)
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn qr_svg(text: &str) -> Result<String, EngineError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| EngineError::Invalid(format!("cannot encode the token as a QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// A base64 data URL of an SVG document, for front ends that show it as an image.
pub fn svg_data_url(svg: &str) -> String {
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// The history's words for an event.
fn summary(state: &breakglass_core::LogState, body: &EventBody) -> String {
    let about = |id: &RequestId| {
        state
            .request(id)
            .map(|r| format!(" {} → {} ({})", r.requester, r.target, r.role))
            .unwrap_or_default()
    };
    match body {
        EventBody::LogCreated { admin, origin, .. } => {
            format!("log {origin} created; first administrator {}", admin.name)
        }
        EventBody::IdentityEnrolled { identity } => format!("enrolled {}", identity.name),
        EventBody::IdentityRevoked { name, reason } => format!("revoked identity {name}: {reason}"),
        EventBody::ProviderKeysRecorded { provider, .. } => {
            format!("recorded the signing keys of provider {provider}")
        }
        EventBody::PolicyApplied { version, .. } => format!("applied policy version {version}"),
        EventBody::AccessRequested {
            break_glass,
            duration,
            target,
            role,
            reason,
            ..
        } => format!(
            "{} {target} ({role}) for {duration}: {reason}",
            if *break_glass {
                "break-glass self-activation of"
            } else {
                "requested"
            }
        ),
        EventBody::RequestApproved { request, .. } => format!("approved{}", about(request)),
        EventBody::OfflineApprovalImported { request, .. } => {
            format!("imported an offline approval{}", about(request))
        }
        EventBody::RequestDenied { request, .. } => format!("denied{}", about(request)),
        EventBody::RequestCancelled { request } => format!("withdrew{}", about(request)),
        EventBody::RequestLapsed { request } => format!("lapsed undecided{}", about(request)),
        EventBody::AccessGranted { request, .. } => format!("granted{}", about(request)),
        EventBody::GrantFailed { request, .. } => format!("grant failed{}", about(request)),
        EventBody::RevocationOrdered { request, .. } => {
            format!("revocation ordered{}", about(request))
        }
        EventBody::AccessRevoked { request } => format!("revoked{}", about(request)),
        EventBody::AccessExpired { request } => format!("expired{}", about(request)),
        EventBody::RevokeFailed { request, error, .. } => {
            format!("revoke failed{}: {error}", about(request))
        }
        EventBody::Alert { kind, message, .. } => {
            format!("{}: {message}", view::log_alert_words(*kind))
        }
        EventBody::ReviewRecorded { request, comment } => {
            format!("reviewed{}: {comment}", about(request))
        }
        other => other.kind().replace('_', " "),
    }
}
