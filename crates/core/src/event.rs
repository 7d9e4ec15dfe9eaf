//! The events that make up the log.
//!
//! Every state change is one of these, signed by its actor. The serialised form is canonical JSON
//! (see the ledger crate); fields are never skipped when empty, so each event has exactly one
//! encoding. The exceptions are fields added after format 1 was first written (`credential`,
//! `issued`): they are omitted when empty, never `null`, which is again exactly one encoding and
//! keeps earlier logs valid.

use serde::{Deserialize, Serialize};

use crate::credential::{Credential, Issued};
use crate::id::RequestId;
use crate::identity::IdentityRecord;
use crate::span::Span;
use crate::time::Timestamp;

/// Version of the event format written by this build.
pub const EVENT_FORMAT: u32 = 1;

/// Longest reason, comment or error text accepted, in characters.
pub const MAX_TEXT_LEN: usize = 1000;

/// Longest time between a grant's start and the event that records it (connector time-outs
/// are capped well below this).
pub const MAX_GRANT_RECORD_DELAY_SECS: u64 = 15 * 60;

/// Longest ticket id accepted, in characters.
pub const MAX_TICKET_LEN: usize = 64;

/// One signed statement in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    // Fields are declared in byte order of their names, so plain serde_json output is already
    // canonical JSON (the ledger relies on this for fast checks and debug-asserts it).
    /// The identity that signed the event.
    pub actor: String,
    /// What happened.
    pub body: EventBody,
    /// The origin of the log the event belongs to, so it cannot be replayed into another log.
    pub log: String,
    /// When the actor made the statement.
    pub time: Timestamp,
    /// Event format version ([`EVENT_FORMAT`]).
    pub v: u32,
}

/// What an event states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// Serialised externally tagged, `{"access_requested":{…}}`; each variant's fields are declared
/// in byte order of their names (see [`Event`]).
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum EventBody {
    /// The first entry of every log: names the log, its checkpoint key, the first administrator
    /// (the actor) and the broker identity that executes grants.
    LogCreated {
        /// The first administrator.
        admin: IdentityRecord,
        /// The identity that runs connectors and the expiry scheduler.
        broker: IdentityRecord,
        /// The checkpoint verifier key, in C2SP `vkey` form.
        log_key: String,
        /// The log's origin, also the name of its checkpoint key.
        origin: String,
    },
    /// An administrator, or the broker for a person signed in at an identity provider, enrolled
    /// an identity (or re-enrolled a provider's person with a new key).
    IdentityEnrolled {
        /// The new identity.
        identity: IdentityRecord,
    },
    /// An administrator revoked an identity: its key signs nothing from now on and it belongs to
    /// no group (enrolment groups included). A revoked name is never enrolled again.
    IdentityRevoked {
        /// The identity revoked.
        name: String,
        /// Why.
        reason: String,
    },
    /// An administrator or the broker recorded an identity provider's current signing keys, so
    /// later sign-in tokens can be checked offline.
    ProviderKeysRecorded {
        /// The provider's JWK set, as fetched from it.
        jwks: String,
        /// The provider's name in the policy.
        provider: String,
    },
    /// An administrator applied a policy version.
    PolicyApplied {
        /// The policy's full TOML source.
        source: String,
        /// The policy's version number.
        version: u64,
    },
    /// Someone asked for access (or, with `break_glass`, self-activated it).
    AccessRequested {
        /// The requester's fresh identity-provider ID token, when they have one: required for a
        /// break-glass self-activation by a provider's person (without it the activation waits
        /// for one approval, which may be an offline one).
        auth: Option<String>,
        /// Emergency self-activation under the target's break-glass rule.
        break_glass: bool,
        /// What the target's connector needs from the requester (their SSH public key, the
        /// verifier of their database password); `None` for connectors that need nothing.
        /// Added after format 1 was first written: omitted when `None` (never `null`), so
        /// earlier logs keep their one encoding.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<Credential>,
        /// How long access should last once granted.
        duration: Span,
        /// The active grant this request would extend.
        extends: Option<RequestId>,
        /// The policy version the requester saw.
        policy_version: u64,
        /// Why access is needed.
        reason: String,
        /// The new request's id.
        request: RequestId,
        /// The role on the target.
        role: String,
        /// The target's name in the policy.
        target: String,
        /// An optional ticket reference.
        ticket: Option<String>,
    },
    /// An approver approved a pending request.
    RequestApproved {
        /// The approver's fresh identity-provider ID token: required when the approver is a
        /// provider's person, whose groups are read from it.
        auth: Option<String>,
        /// Optional comment.
        comment: Option<String>,
        /// The request.
        request: RequestId,
        /// Hex SHA-256 leaf hash of the request's log entry: binds the approval to exactly it.
        request_digest: String,
    },
    /// The requester or the broker imported an approval an approver signed offline (while the
    /// identity provider was unreachable); accepted for break-glass requests only.
    OfflineApprovalImported {
        /// The request (the token must name the same).
        request: RequestId,
        /// The approval token (see [`crate::offline`]).
        token: String,
    },
    /// An approver denied a pending request.
    RequestDenied {
        /// Why it was denied.
        reason: String,
        /// The request.
        request: RequestId,
        /// Hex leaf hash of the request's log entry.
        request_digest: String,
    },
    /// The requester withdrew a pending request.
    RequestCancelled {
        /// The request.
        request: RequestId,
    },
    /// A pending request outlived its policy's request TTL.
    RequestLapsed {
        /// The request.
        request: RequestId,
    },
    /// The broker granted access; the deadline is fixed here and never moves.
    AccessGranted {
        /// The absolute end of access: `granted_at` plus the requested duration.
        deadline: Timestamp,
        /// Whether the target itself enforces the deadline.
        enforced_by_target: bool,
        /// When the connector was asked to grant: the start of the access window.
        granted_at: Timestamp,
        /// What the connector handed out (a certificate, a role name), when anything. Omitted
        /// when `None`, like `credential` above.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issued: Option<Issued>,
        /// The request.
        request: RequestId,
    },
    /// The broker could not grant access.
    GrantFailed {
        /// What the connector reported.
        error: String,
        /// The request.
        request: RequestId,
    },
    /// Someone entitled to ordered an active grant ended early.
    RevocationOrdered {
        /// Optional reason.
        reason: Option<String>,
        /// The request whose grant ends.
        request: RequestId,
    },
    /// The broker confirmed an ordered revocation with the connector.
    AccessRevoked {
        /// The request.
        request: RequestId,
    },
    /// The broker ended a grant at its deadline and the connector confirmed.
    AccessExpired {
        /// The request.
        request: RequestId,
    },
    /// The connector failed to revoke; the broker retries until it succeeds.
    RevokeFailed {
        /// Attempt number, from 1.
        attempt: u32,
        /// What the connector reported.
        error: String,
        /// The request.
        request: RequestId,
    },
    /// Something people must see at once. The broker records every kind but
    /// [`AlertKind::HistoryRefused`], which any enrolled identity records about itself.
    Alert {
        /// What kind of alert.
        kind: AlertKind,
        /// Human-readable text.
        message: String,
        /// The request concerned, if any.
        request: Option<RequestId>,
    },
    /// The mandatory review after a break-glass activation.
    ReviewRecorded {
        /// The reviewer's findings.
        comment: String,
        /// The break-glass request.
        request: RequestId,
    },
}

/// Kinds of [`EventBody::Alert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A break-glass rule was used.
    BreakGlassActivated,
    /// A grant could not be revoked.
    RevokeFailing,
    /// Team mode: an entry appended to the shared database failed verification (a bad
    /// signature, a broken rule: a row written there directly) and the broker removed it, with
    /// whatever was appended on top of it, before any checkpoint covered it.
    EntryRefused,
    /// Team mode: a member found the shared log failing verification (history rewritten,
    /// truncated or forked; a checkpoint or row without a valid signature). Signed by the member
    /// who found it, never by the broker, with no request: the member keeps it, signed, in its
    /// data directory while the log fails, and appends it once the log verifies again.
    HistoryRefused,
}

impl EventBody {
    /// The event's type name as serialised (`access_requested`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::LogCreated { .. } => "log_created",
            EventBody::IdentityEnrolled { .. } => "identity_enrolled",
            EventBody::IdentityRevoked { .. } => "identity_revoked",
            EventBody::ProviderKeysRecorded { .. } => "provider_keys_recorded",
            EventBody::PolicyApplied { .. } => "policy_applied",
            EventBody::AccessRequested { .. } => "access_requested",
            EventBody::RequestApproved { .. } => "request_approved",
            EventBody::OfflineApprovalImported { .. } => "offline_approval_imported",
            EventBody::RequestDenied { .. } => "request_denied",
            EventBody::RequestCancelled { .. } => "request_cancelled",
            EventBody::RequestLapsed { .. } => "request_lapsed",
            EventBody::AccessGranted { .. } => "access_granted",
            EventBody::GrantFailed { .. } => "grant_failed",
            EventBody::RevocationOrdered { .. } => "revocation_ordered",
            EventBody::AccessRevoked { .. } => "access_revoked",
            EventBody::AccessExpired { .. } => "access_expired",
            EventBody::RevokeFailed { .. } => "revoke_failed",
            EventBody::Alert { .. } => "alert",
            EventBody::ReviewRecorded { .. } => "review_recorded",
        }
    }

    /// The request the event concerns, if any.
    pub fn request(&self) -> Option<&RequestId> {
        match self {
            EventBody::AccessRequested { request, .. }
            | EventBody::RequestApproved { request, .. }
            | EventBody::OfflineApprovalImported { request, .. }
            | EventBody::RequestDenied { request, .. }
            | EventBody::RequestCancelled { request }
            | EventBody::RequestLapsed { request }
            | EventBody::AccessGranted { request, .. }
            | EventBody::GrantFailed { request, .. }
            | EventBody::RevocationOrdered { request, .. }
            | EventBody::AccessRevoked { request }
            | EventBody::AccessExpired { request }
            | EventBody::RevokeFailed { request, .. }
            | EventBody::ReviewRecorded { request, .. } => Some(request),
            EventBody::Alert { request, .. } => request.as_ref(),
            EventBody::LogCreated { .. }
            | EventBody::IdentityEnrolled { .. }
            | EventBody::IdentityRevoked { .. }
            | EventBody::ProviderKeysRecorded { .. }
            | EventBody::PolicyApplied { .. } => None,
        }
    }
}
