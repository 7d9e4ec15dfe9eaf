//! What a front end shows, built from the replayed log: plain data with times as Unix
//! milliseconds and spans as seconds, so a UI computes countdowns from deadlines and its clock.

use breakglass_core::policy::TargetPolicy;
use breakglass_core::{
    AlertKind as LogAlertKind, CredentialKind, Issued, LogState, Request, Review, Status, Timestamp,
};
use serde::{Deserialize, Serialize};

/// Where the data directory stands, for the first-run walk-through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SetupStatus {
    /// The data directory.
    pub data_dir: String,
    /// Whether it holds a log.
    pub initialised: bool,
    /// Whether a policy has been applied.
    pub has_policy: bool,
    /// Identity providers the policy names.
    pub providers: Vec<String>,
    /// Who this app acts as, once initialised.
    pub me: Option<String>,
    /// Whether that identity is an administrator.
    pub admin: bool,
    /// Whether that identity is a provider's person with a session here.
    pub signed_in: bool,
}

/// An identity provider's discovery document, as shown before it is added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Discovery {
    /// The issuer, as the provider states it.
    pub issuer: String,
    /// Where the browser signs in.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// RFC 8628 device authorization, when offered.
    pub device_authorization_endpoint: Option<String>,
    /// The signing keys.
    pub jwks_uri: String,
    /// RFC 7009 revocation, when offered.
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 introspection, when offered.
    pub introspection_endpoint: Option<String>,
    /// Scopes the provider lists.
    pub scopes_supported: Vec<String>,
    /// Whether the provider lists PKCE S256 (discovery refuses a provider that lists methods
    /// without it; one that lists none is tried).
    pub pkce_s256: bool,
    /// Whether the device flow is offered.
    pub device_flow: bool,
}

/// The provider section a first run adds to the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ProviderDraft {
    /// Its name in the policy (`[providers.NAME]`).
    pub name: String,
    /// The issuer URL.
    pub issuer: String,
    /// This app's client id at the provider.
    pub client_id: String,
}

/// One problem in a policy, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PolicyProblem {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

/// A completed sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SignedInView {
    /// The identity's name in the log.
    pub name: String,
    /// The provider.
    pub provider: String,
    /// Whether this sign-in enrolled the person (or a new key of theirs).
    pub enrolled: bool,
}

/// Everything the main screens show, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Overview {
    /// The engine's clock (never earlier than the newest event), for skew correction.
    pub now_ms: i64,
    /// Entries in the log.
    pub log_size: u64,
    /// Who this app acts as.
    pub me: Me,
    /// Targets of the policy in force, by name.
    pub targets: Vec<TargetView>,
    /// Every request, newest first.
    pub requests: Vec<RequestView>,
    /// What people must see: break-glass activations, revoke failures, reviews owed.
    pub alerts: Vec<Alert>,
}

/// The identity this app acts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Me {
    /// Name in the log.
    pub name: String,
    /// The identity provider, for a provider's person.
    pub provider: Option<String>,
    /// Policy groups.
    pub groups: Vec<String>,
    /// Whether a provider session is held here.
    pub signed_in: bool,
    /// When the person last authenticated at the provider.
    pub signed_in_at_ms: Option<i64>,
    /// Whether that sign-in is recent enough to approve, deny or self-activate break-glass.
    pub fresh_for_decisions: bool,
    /// How recent a sign-in decisions need.
    pub max_auth_age_secs: u64,
    /// Administrator.
    pub admin: bool,
    /// Approver for at least one target.
    pub approver: bool,
    /// A team member not enrolled yet: the public key (base64) held here, for an administrator
    /// to enrol (`breakglass identity add NAME --group GROUP --public-key KEY`).
    pub to_enrol: Option<String>,
}

/// What joining a team's log takes (see `Desk::join`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct JoinForm {
    /// The team's PostgreSQL URL (`postgres://…`, no password in it).
    pub database: String,
    /// The log's checkpoint key (C2SP vkey), from the team's administrator.
    pub log_key: String,
    /// The identity to act as.
    pub name: String,
}

/// A target as the request form shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TargetView {
    /// Name in the policy.
    pub name: String,
    /// Description, if given.
    pub description: Option<String>,
    /// Roles, the default first.
    pub roles: Vec<String>,
    /// Longest grant.
    pub max_duration_secs: u64,
    /// Longest break-glass grant; `None` when break-glass is not allowed.
    pub break_glass_max_secs: Option<u64>,
    /// Longest total of a grant and its extensions.
    pub extension_cap_secs: u64,
    /// How long a request waits for approval.
    pub request_ttl_secs: u64,
    /// Groups whose members approve.
    pub approver_groups: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// Connector kind.
    pub connector: String,
    /// Whether the target itself ends access at the deadline (else only Breakglass does).
    pub enforces_expiry: bool,
    /// What a request must bring, if anything.
    pub needs: Option<Needs>,
    /// Whether this app's identity may request it.
    pub can_request: bool,
}

/// What a request for a target must bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Needs {
    /// The requester's SSH public key, pasted into the form, to be certified.
    SshPublicKey,
    /// A password for the grant's database role: made by the app, shown once.
    DatabasePassword,
    /// Nothing to type: the grant's access token is sealed to this app's key and shown once
    /// granted (and on request while the grant lasts).
    AccessToken,
}

/// A request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RequestView {
    /// Id.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// Why.
    pub reason: String,
    /// Ticket.
    pub ticket: Option<String>,
    /// Break-glass self-activation.
    pub break_glass: bool,
    /// Where it stands.
    pub status: Status,
    /// Requested duration.
    pub duration_secs: u64,
    /// When requested.
    pub requested_at_ms: i64,
    /// When a pending request lapses.
    pub lapses_at_ms: i64,
    /// When granted.
    pub granted_at_ms: Option<i64>,
    /// When access ends.
    pub deadline_ms: Option<i64>,
    /// When it reached a final state.
    pub ended_at_ms: Option<i64>,
    /// Approvals, in order.
    pub approvals: Vec<DecisionView>,
    /// Denials.
    pub denials: Vec<DecisionView>,
    /// Approvals needed.
    pub quorum: u32,
    /// The grant this extends.
    pub extends: Option<String>,
    /// First request of its extension chain.
    pub chain: String,
    /// Granted time of the whole chain so far (this request included unless refused).
    pub chain_total_secs: u64,
    /// Whether the target enforces the deadline itself, once known.
    pub enforced_by_target: Option<bool>,
    /// Who ordered revocation.
    pub revoked_by: Option<String>,
    /// Failed revoke attempts.
    pub revoke_failures: u32,
    /// Last connector error.
    pub last_error: Option<String>,
    /// Break-glass review.
    pub review: Option<ReviewState>,
    /// Whether this app's identity asked for it.
    pub mine: bool,
    /// Whether this app's identity may approve or deny it now.
    pub can_decide: bool,
    /// Whether this app's identity may revoke it now (its requester ending it, or an approver).
    pub can_revoke: bool,
    /// Whether this app's identity may record the review it owes.
    pub can_review: bool,
    /// Whether this app's identity can see what the live grant issued (its SSH certificate or
    /// access token) again.
    pub can_show_issued: bool,
}

/// Where a break-glass review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Still owed.
    Required,
    /// Recorded.
    Done,
}

/// One approval or denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct DecisionView {
    /// Who decided.
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// Comment or denial reason.
    pub comment: Option<String>,
    /// Signed offline and imported.
    pub offline: bool,
}

/// Something people must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Alert {
    /// What kind.
    pub kind: AlertKind,
    /// The request concerned.
    pub request: String,
    /// What to tell people.
    pub message: String,
    /// Since when.
    pub at_ms: i64,
}

/// Kinds of [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Break-glass access is active.
    BreakGlass,
    /// A grant could not be revoked.
    RevokeFailure,
    /// A break-glass activation still owes its review.
    ReviewOwed,
}

/// The request form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RequestForm {
    /// Target.
    pub target: String,
    /// Role; the target's default when `None`.
    pub role: Option<String>,
    /// Duration in seconds.
    pub duration_secs: u64,
    /// Why.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Emergency self-activation.
    pub break_glass: bool,
    /// The active grant this extends.
    pub extends: Option<String>,
    /// For a target that grants SSH certificates: the requester's public key (a .pub line).
    pub ssh_public_key: Option<String>,
}

/// The result of a command on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Decided {
    /// The request afterwards.
    pub request: RequestView,
    /// A connector problem met after the decision was recorded.
    pub warning: Option<String>,
    /// What the grant handed over (a certificate, credentials), shown once and never stored.
    pub credential: Option<Credential>,
}

/// What a grant handed over, to be shown once.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Credential {
    /// What it is.
    pub label: String,
    /// The secret text.
    pub value: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("label", &self.label)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// An offline approval to hand to the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OfflineToken {
    /// The token (`bgoa1.…`).
    pub token: String,
    /// The token as a QR code, an SVG document.
    pub qr_svg: String,
    /// When it stops being accepted.
    pub expires_at_ms: i64,
}

/// One event of the log, for the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct EventRow {
    /// Position in the log.
    pub index: u64,
    /// When the actor made it.
    pub at_ms: i64,
    /// Event type (`access_requested`, …).
    pub kind: String,
    /// Who signed it.
    pub actor: String,
    /// The request concerned.
    pub request: Option<String>,
    /// What happened, in words.
    pub summary: String,
}

/// Which events the history shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct HistoryFilter {
    /// Text that must appear in the actor, kind, request id or summary (case-insensitive).
    pub text: Option<String>,
    /// Event types to keep; all when empty.
    pub kinds: Vec<String>,
    /// Earliest time.
    pub from_ms: Option<i64>,
    /// First time no longer shown.
    pub to_ms: Option<i64>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One row per request.
    Csv,
    /// The raw signed events.
    Jsonl,
    /// OCSF 1.8.0 events (User Access Management, Account Change), one per line, for SIEMs.
    Ocsf,
    /// The whole log with its checkpoint, verifiable offline.
    Bundle,
    /// The access report: one HTML page with charts and the log's verification.
    Report,
}

/// Which part of the history an export holds: requests made (CSV, report) or events recorded
/// (JSON Lines, OCSF) from `from_ms` (inclusive) until `to_ms` (exclusive), in ms since the
/// epoch; `None` leaves that side open. A bundle always holds the whole log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ExportPeriod {
    /// Earliest time.
    pub from_ms: Option<i64>,
    /// First time no longer included.
    pub to_ms: Option<i64>,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Ocsf => "ocsf.jsonl",
            ExportFormat::Report => "html",
            ExportFormat::Bundle => "bundle",
        }
    }
}

/// A finished export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ExportDone {
    /// Where it was written.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Records written (rows or entries).
    pub records: u64,
}

/// An export's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ExportProgress {
    /// Entries processed.
    pub done: u64,
    /// Entries in all.
    pub total: u64,
}

/// The result of verifying a bundle, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VerifyReport {
    /// Whether everything checked out.
    pub ok: bool,
    /// One sentence.
    pub headline: String,
    /// What was checked, or what failed.
    pub details: Vec<String>,
    /// Entries verified.
    pub entries: u64,
    /// The checkpoint checked against (origin and root), when it verified.
    pub checkpoint: Option<String>,
}

fn ms(t: Timestamp) -> i64 {
    t.unix_millis()
}

pub(crate) fn target_view(state: &LogState, me: &str, t: &TargetPolicy) -> TargetView {
    TargetView {
        name: t.name.clone(),
        description: (!t.description.is_empty()).then(|| t.description.clone()),
        roles: t.roles.clone(),
        max_duration_secs: t.max_duration.as_secs(),
        break_glass_max_secs: t.break_glass.as_ref().map(|b| b.max_duration.as_secs()),
        extension_cap_secs: t.extension_cap.as_secs(),
        request_ttl_secs: t.request_ttl.as_secs(),
        approver_groups: t.approvers.groups.iter().cloned().collect(),
        quorum: t.approvers.quorum,
        connector: t.connector.kind().to_owned(),
        enforces_expiry: t.enforces_expiry_itself(),
        needs: t.connector.credential().map(|kind| match kind {
            CredentialKind::SshPublicKey => Needs::SshPublicKey,
            CredentialKind::ScramVerifier => Needs::DatabasePassword,
            CredentialKind::SealKey => Needs::AccessToken,
        }),
        can_request: t
            .requesters
            .as_ref()
            .is_none_or(|groups| groups.iter().any(|g| state.in_group(me, g))),
    }
}

fn decision(d: &breakglass_core::Decision) -> DecisionView {
    DecisionView {
        by: d.by.clone(),
        at_ms: ms(d.at),
        comment: d.comment.clone(),
        offline: d.offline,
    }
}

pub(crate) fn request_view(state: &LogState, me: &str, r: &Request) -> RequestView {
    let target = state
        .policy()
        .and_then(|p| p.policy.targets.get(&r.target).cloned());
    let approver = target
        .as_ref()
        .is_some_and(|t| state.is_approver_for(me, t));
    let mine = r.requester == me;
    let already_decided = r.decisions.iter().any(|d| d.by == me);
    let review = r.review.as_ref().map(|rv| match rv {
        Review::Required => ReviewState::Required,
        _ => ReviewState::Done,
    });
    RequestView {
        id: r.id.to_string(),
        requester: r.requester.clone(),
        target: r.target.clone(),
        role: r.role.clone(),
        reason: r.reason.clone(),
        ticket: r.ticket.clone(),
        break_glass: r.break_glass,
        status: r.status,
        duration_secs: r.duration.as_secs(),
        requested_at_ms: ms(r.requested_at),
        lapses_at_ms: ms(r.lapses_at),
        granted_at_ms: r.granted_at.map(ms),
        deadline_ms: r.deadline.map(ms),
        ended_at_ms: r.ended_at.map(ms),
        approvals: r
            .decisions
            .iter()
            .filter(|d| d.approved)
            .map(decision)
            .collect(),
        denials: r
            .decisions
            .iter()
            .filter(|d| !d.approved)
            .map(decision)
            .collect(),
        quorum: r.quorum,
        extends: r.extends.map(|e| e.to_string()),
        chain: r.chain.to_string(),
        chain_total_secs: state.chain_total(&r.chain).as_secs(),
        enforced_by_target: r.enforced_by_target,
        revoked_by: r.revoked_by.clone(),
        revoke_failures: r.revoke_failures,
        last_error: r.last_error.clone(),
        review,
        mine,
        can_decide: r.status == Status::Pending && approver && !mine && !already_decided,
        can_revoke: matches!(r.status, Status::Approved | Status::Active)
            && (mine || approver || state.is_admin(me)),
        can_review: review == Some(ReviewState::Required) && approver && !mine,
        can_show_issued: mine
            && r.status == Status::Active
            && matches!(
                r.issued,
                Some(Issued::SshCertificate(_) | Issued::AccessToken(_))
            ),
    }
}

pub(crate) fn alerts(state: &LogState) -> Vec<Alert> {
    let mut out = Vec::new();
    for r in state.requests() {
        let id = r.id.to_string();
        if r.break_glass && r.status == Status::Active {
            out.push(Alert {
                kind: AlertKind::BreakGlass,
                request: id.clone(),
                message: format!(
                    "{} self-activated break-glass access to {} ({}): {}",
                    r.requester, r.target, r.role, r.reason
                ),
                at_ms: ms(r.granted_at.unwrap_or(r.requested_at)),
            });
        }
        if r.revoke_failures > 0 && !r.status.is_final() {
            out.push(Alert {
                kind: AlertKind::RevokeFailure,
                request: id.clone(),
                message: format!(
                    "revoking {}'s access to {} failed {} time(s){}",
                    r.requester,
                    r.target,
                    r.revoke_failures,
                    r.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                at_ms: ms(r.deadline.unwrap_or(r.requested_at)),
            });
        }
        if matches!(r.review, Some(Review::Required)) {
            out.push(Alert {
                kind: AlertKind::ReviewOwed,
                request: id,
                message: format!(
                    "break-glass access of {} to {} owes its review",
                    r.requester, r.target
                ),
                at_ms: ms(r.requested_at),
            });
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
    out
}

/// The words for an alert event kind recorded in the log.
pub(crate) fn log_alert_words(kind: LogAlertKind) -> &'static str {
    match kind {
        LogAlertKind::BreakGlassActivated => "break-glass activated",
        LogAlertKind::RevokeFailing => "revocation failing",
        LogAlertKind::EntryRefused => "forged or broken entry removed",
        LogAlertKind::HistoryRefused => "shared log failed verification",
        _ => "alert",
    }
}
