//! The state of a log, rebuilt by replaying its events, and every rule of the request lifecycle.
//!
//! [`LogState::apply`] is the single place where the rules live. The engine calls it on a
//! candidate event before signing and appending it (so a refused command changes nothing), and
//! verification calls it while replaying an exported log (so a log that breaks a rule, even one
//! signed with valid keys, is reported as a violation).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::credential::{Credential, Issued};
use crate::error::Refusal;
use crate::event::{
    AlertKind, Event, EventBody, EVENT_FORMAT, MAX_GRANT_RECORD_DELAY_SECS, MAX_TEXT_LEN,
    MAX_TICKET_LEN,
};
use crate::id::RequestId;
use crate::identity::{Binding, IdentityRecord, PublicKey};
use crate::jose::Jwks;
use crate::names::name_problem;
use crate::policy::{ConnectorSpec, Policy, TargetPolicy, ADMIN_GROUP};
use crate::span::Span;
use crate::time::Timestamp;

mod retired;
mod signin;

use signin::SignIn;
pub use signin::{BREAK_GLASS_OFFLINE_QUORUM, SIGN_IN_LEEWAY};

const NO_GROUPS: &BTreeSet<String> = &BTreeSet::new();

/// An event together with facts established outside the state machine: the key whose
/// signature over it was verified, and the leaf hash of its log entry.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedEvent<'a> {
    /// The event.
    pub event: &'a Event,
    /// The public key that signed it (signature already checked by the caller).
    pub signer: &'a PublicKey,
    /// SHA-256 leaf hash of the entry that carries the event.
    pub leaf_hash: &'a [u8; 32],
}

/// Where a request is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals.
    Pending,
    /// Quorum met (or break-glass self-activated); waiting for the broker to grant.
    Approved,
    /// Access granted; ends at the deadline.
    Active,
    /// Revocation ordered; waiting for the connector to confirm.
    Revoking,
    /// Ended at its deadline.
    Expired,
    /// Ended early by revocation.
    Revoked,
    /// Denied by an approver.
    Denied,
    /// Withdrawn by the requester.
    Cancelled,
    /// Not decided within the request TTL.
    Lapsed,
    /// The connector could not grant.
    Failed,
}

impl Status {
    /// True for states a request never leaves.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Expired
                | Status::Revoked
                | Status::Denied
                | Status::Cancelled
                | Status::Lapsed
                | Status::Failed
        )
    }

    /// The name used in output and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Active => "active",
            Status::Revoking => "revoking",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Lapsed => "lapsed",
            Status::Failed => "failed",
        }
    }

    /// Parses [`Status::as_str`] names.
    pub fn parse(s: &str) -> Option<Status> {
        ALL_STATUSES.iter().copied().find(|st| st.as_str() == s)
    }
}

const ALL_STATUSES: [Status; 10] = [
    Status::Pending,
    Status::Approved,
    Status::Active,
    Status::Revoking,
    Status::Expired,
    Status::Revoked,
    Status::Denied,
    Status::Cancelled,
    Status::Lapsed,
    Status::Failed,
];

/// A decision recorded on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Who decided.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// True for an approval, false for a denial.
    pub approved: bool,
    /// Comment or denial reason.
    pub comment: Option<String>,
    /// True for an approval signed offline and imported (the identity provider was not
    /// reachable, so no fresh sign-in backs it).
    pub offline: bool,
}

/// Break-glass review state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Review {
    /// The review is still owed.
    Required,
    /// Reviewed.
    Done {
        /// Reviewer.
        by: String,
        /// When.
        at: Timestamp,
        /// Findings.
        comment: String,
    },
}

/// Everything known about one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Its id.
    pub id: RequestId,
    /// Who asked.
    pub requester: String,
    /// Target name.
    pub target: String,
    /// Role on the target.
    pub role: String,
    /// Requested duration.
    pub duration: Span,
    /// Reason given.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Break-glass self-activation.
    pub break_glass: bool,
    /// The grant this request extends.
    pub extends: Option<RequestId>,
    /// First request of the extension chain (itself when not an extension).
    pub chain: RequestId,
    /// Policy version in force when requested.
    pub policy_version: u64,
    /// When requested.
    pub requested_at: Timestamp,
    /// When a pending request lapses.
    pub lapses_at: Timestamp,
    /// Hex leaf hash of the request entry (what approvals bind to).
    pub digest: String,
    /// Where it is now.
    pub status: Status,
    /// Approvals and denials, in order.
    pub decisions: Vec<Decision>,
    /// Approvals needed.
    pub quorum: u32,
    /// When quorum was reached (or break-glass self-activated).
    pub approved_at: Option<Timestamp>,
    /// When access was granted.
    pub granted_at: Option<Timestamp>,
    /// When access ends.
    pub deadline: Option<Timestamp>,
    /// Whether the target enforces the deadline itself.
    pub enforced_by_target: Option<bool>,
    /// What the requester handed in for the connector (their SSH public key, …).
    pub credential: Option<Credential>,
    /// What the grant handed out (a certificate, a role name).
    pub issued: Option<Issued>,
    /// When it reached a final state.
    pub ended_at: Option<Timestamp>,
    /// Who ordered revocation, if anyone.
    pub revoked_by: Option<String>,
    /// Failed revoke attempts so far (reset never; shown loudly).
    pub revoke_failures: u32,
    /// When the latest revoke attempt failed (retries back off from it).
    pub last_revoke_failure: Option<Timestamp>,
    /// Last error from a connector.
    pub last_error: Option<String>,
    /// Break-glass review, when one is owed or done.
    pub review: Option<Review>,
    /// The requester's ID token from their request, kept until the grant for a connector that
    /// can act for the requester with it (an OAuth target: RFC 8693 token exchange); `None`
    /// otherwise and once granted, so state does not keep every sign-in. It is in the log
    /// already; it is not a credential on its own (an exchange needs the broker's client secret).
    #[serde(skip)]
    pub subject_token: Option<String>,
}

impl Request {
    /// Distinct approvers so far.
    pub fn approvals(&self) -> usize {
        self.decisions.iter().filter(|d| d.approved).count()
    }
}

/// One applied policy version.
#[derive(Clone, Debug)]
pub struct PolicyVersion {
    /// Parsed policy.
    pub policy: Arc<Policy>,
    /// Its TOML source as recorded.
    pub source: String,
    /// When it was applied.
    pub applied_at: Timestamp,
}

/// An identity as enrolled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The record from the enrolment event.
    pub record: IdentityRecord,
    /// When enrolled.
    pub enrolled_at: Timestamp,
    /// Who enrolled it.
    pub enrolled_by: String,
    /// For a provider's person: their provider groups as of their latest sign-in recorded in
    /// the log (the policy maps them to policy groups). `None` for local identities.
    pub provider_groups: Option<BTreeSet<String>>,
    /// For a provider's person: when they last signed in, per the log.
    pub last_sign_in: Option<Timestamp>,
    /// When an administrator revoked the identity, if one did.
    pub revoked_at: Option<Timestamp>,
}

/// Counts of the requests a log holds (retired ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// Requests made.
    pub requests: usize,
    /// Approvals and denials recorded.
    pub decisions: usize,
    /// Requests that were granted.
    pub grants: usize,
    /// Break-glass activations.
    pub break_glass: usize,
    /// Break-glass reviews still owed.
    pub reviews_owed: usize,
}

impl RequestTally {
    fn add(&mut self, r: &Request) {
        self.requests += 1;
        self.decisions += r.decisions.len();
        self.grants += usize::from(r.granted_at.is_some());
        self.break_glass += usize::from(r.break_glass);
        self.reviews_owed += usize::from(r.review == Some(Review::Required));
    }
}

/// What the rules still need of requests that ended and can never be acted on again: how each
/// ended (so an event about one is refused as about an ended request, and no id is used twice).
#[derive(Clone, Debug, Default)]
struct Retired {
    status: retired::RetiredIds,
    tally: RequestTally,
}

/// The state of a log after replaying its events.
#[derive(Clone, Debug, Default)]
pub struct LogState {
    origin: Option<String>,
    log_key: Option<String>,
    broker: Option<String>,
    identities: BTreeMap<String, Identity>,
    keys: BTreeMap<PublicKey, String>,
    policies: Vec<PolicyVersion>,
    requests: BTreeMap<RequestId, Request>,
    /// Requests dropped by [`LogState::retire_ended`]: how each ended, and their tally.
    retired: Retired,
    /// Provider name → the signing keys recorded for it (enrolments and key records).
    provider_keys: BTreeMap<String, Jwks>,
    last_time: Option<Timestamp>,
    events: u64,
}

impl LogState {
    /// An empty log's state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The log's origin, once created.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The checkpoint verifier key recorded at creation.
    pub fn log_key(&self) -> Option<&str> {
        self.log_key.as_deref()
    }

    /// The broker identity's name.
    pub fn broker(&self) -> Option<&str> {
        self.broker.as_deref()
    }

    /// Number of events applied.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Time of the newest event.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.last_time
    }

    /// The policy in force, if any was applied.
    pub fn policy(&self) -> Option<&PolicyVersion> {
        self.policies.last()
    }

    /// How fresh a sign-in must be for decisions under the policy in force.
    pub fn max_auth_age(&self) -> Span {
        self.policy()
            .map_or(crate::policy::DEFAULT_MAX_AUTH_AGE, |p| {
                p.policy.max_auth_age
            })
    }

    /// Every applied policy version, oldest first.
    pub fn policies(&self) -> &[PolicyVersion] {
        &self.policies
    }

    /// An enrolled identity.
    pub fn identity(&self, name: &str) -> Option<&Identity> {
        self.identities.get(name)
    }

    /// Every enrolled identity, by name.
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// The identity that holds `key`.
    pub fn identity_by_key(&self, key: &PublicKey) -> Option<&Identity> {
        self.keys.get(key).and_then(|n| self.identities.get(n))
    }

    /// A request.
    pub fn request(&self, id: &RequestId) -> Option<&Request> {
        self.requests.get(id)
    }

    /// Every request, by id (but those [`LogState::retire_ended`] dropped).
    pub fn requests(&self) -> impl Iterator<Item = &Request> {
        self.requests.values()
    }

    /// Counts of every request the log holds, retired ones included.
    pub fn tally(&self) -> RequestTally {
        let mut tally = self.retired.tally;
        for r in self.requests.values() {
            tally.add(r);
        }
        tally
    }

    /// Drops the details of requests that ended and that no later event can act on — no
    /// review owed, and no request of their extension chain still pending, approved or active
    /// — keeping only how each ended and their tally. The rules decide every later event as
    /// before; [`LogState::request`] and [`LogState::requests`] no longer show them. A verifier
    /// of a long log calls this as it goes, so its memory follows the log's open requests, not
    /// its history; the engine, which shows history, does not.
    pub fn retire_ended(&mut self) {
        let live_chains: std::collections::HashSet<RequestId> = self
            .requests
            .values()
            .filter(|r| !r.status.is_final() || r.review == Some(Review::Required))
            .map(|r| r.chain)
            .collect();
        let retired = &mut self.retired;
        self.requests.retain(|id, r| {
            if live_chains.contains(&r.chain) {
                return true;
            }
            retired.status.insert(id, r.status);
            retired.tally.add(r);
            false
        });
    }

    /// The groups `name` belongs to under the policy in force. A local identity: its enrolment
    /// groups plus the policy's member lists. A provider's person: exactly the policy groups
    /// their provider groups (from their latest sign-in in the log) map to.
    pub fn groups_of(&self, name: &str) -> BTreeSet<String> {
        if self.is_revoked(name) {
            return BTreeSet::new();
        }
        let Some(policy) = self.policy() else {
            return self
                .identities
                .get(name)
                .map(|i| i.record.groups.clone())
                .unwrap_or_default();
        };
        if let Some((provider, groups)) = self.provider_membership(name) {
            return policy
                .policy
                .provider(provider)
                .map(|p| p.policy_groups(groups.iter().map(String::as_str)))
                .unwrap_or_default();
        }
        let mut groups = self
            .identities
            .get(name)
            .map(|i| i.record.groups.clone())
            .unwrap_or_default();
        for (g, members) in &policy.policy.groups {
            if members.contains(name) {
                groups.insert(g.clone());
            }
        }
        groups
    }

    /// True when `name` is in `group` under the policy in force (the same membership as
    /// [`LogState::groups_of`], without building the set).
    pub fn in_group(&self, name: &str, group: &str) -> bool {
        if self.is_revoked(name) {
            return false;
        }
        if let Some((provider, groups)) = self.provider_membership(name) {
            return self.provider_maps_to(provider, groups, group);
        }
        self.identities
            .get(name)
            .is_some_and(|i| i.record.groups.contains(group))
            || self.policy().is_some_and(|p| {
                p.policy
                    .groups
                    .get(group)
                    .is_some_and(|members| members.contains(name))
            })
    }

    /// True when `name` was revoked.
    pub fn is_revoked(&self, name: &str) -> bool {
        self.identities
            .get(name)
            .is_some_and(|i| i.revoked_at.is_some())
    }

    /// For a provider's person: the provider's name and their latest provider groups.
    fn provider_membership(&self, name: &str) -> Option<(&str, &BTreeSet<String>)> {
        let identity = self.identities.get(name)?;
        let binding = identity.record.binding.oidc()?;
        Some((
            binding.provider.as_str(),
            identity.provider_groups.as_ref().unwrap_or(NO_GROUPS),
        ))
    }

    /// Whether provider groups `groups` of `provider` map to policy group `group` under the
    /// policy in force.
    fn provider_maps_to(&self, provider: &str, groups: &BTreeSet<String>, group: &str) -> bool {
        self.policy()
            .and_then(|p| p.policy.provider(provider))
            .is_some_and(|p| {
                groups
                    .iter()
                    .filter_map(|g| p.groups.get(g))
                    .any(|mapped| mapped.contains(group))
            })
    }

    /// The signing keys recorded for identity provider `provider`.
    pub fn provider_keys(&self, provider: &str) -> Option<&Jwks> {
        self.provider_keys.get(provider)
    }

    /// True when `name` is an administrator.
    pub fn is_admin(&self, name: &str) -> bool {
        self.in_group(name, ADMIN_GROUP)
    }

    /// True when `name` may approve, deny or review requests on `target` under the policy in
    /// force.
    pub fn is_approver_for(&self, name: &str, target: &TargetPolicy) -> bool {
        target
            .approvers
            .groups
            .iter()
            .any(|g| self.in_group(name, g))
    }

    /// Granted time already used or reserved by the chain `chain` (pending, approved, active or
    /// ended-after-grant requests count; refused ones do not).
    pub fn chain_total(&self, chain: &RequestId) -> Span {
        let secs = self
            .requests
            .values()
            .filter(|r| &r.chain == chain)
            .filter(|r| {
                !matches!(
                    r.status,
                    Status::Denied | Status::Cancelled | Status::Lapsed | Status::Failed
                )
            })
            .map(|r| r.duration.as_secs())
            .sum();
        Span::from_secs(secs)
    }

    /// Checks `ev` against every rule and, only if all hold, applies it. On error nothing changes.
    pub fn apply(&mut self, ev: VerifiedEvent<'_>) -> Result<(), Refusal> {
        let event = ev.event;
        self.check_envelope(ev)?;
        match &event.body {
            EventBody::LogCreated { .. } => self.log_created(ev)?,
            EventBody::IdentityEnrolled { identity } => self.enrol(ev, identity)?,
            EventBody::IdentityRevoked { name, reason } => {
                self.revoke_identity(event, name, reason)?
            }
            EventBody::ProviderKeysRecorded { provider, jwks } => {
                self.provider_keys_recorded(event, provider, jwks)?
            }
            EventBody::OfflineApprovalImported { request, token } => {
                self.offline_approval_imported(event, request, token)?
            }
            EventBody::PolicyApplied { version, source } => {
                self.policy_applied(event, *version, source)?
            }
            EventBody::AccessRequested { .. } => self.requested(ev)?,
            EventBody::RequestApproved {
                auth,
                request,
                request_digest,
                comment,
            } => {
                let fresh = self.approval_sign_in(ev, auth.as_deref())?;
                self.decided(
                    event,
                    request,
                    request_digest,
                    true,
                    comment.as_deref(),
                    fresh,
                )?
            }
            EventBody::RequestDenied {
                request,
                request_digest,
                reason,
            } => self.decided(event, request, request_digest, false, Some(reason), None)?,
            EventBody::RequestCancelled { request } => {
                let r = self.request_in(request, &[Status::Pending], "be cancelled")?;
                if r.requester != event.actor {
                    return Err(Refusal::NotYours {
                        actor: event.actor.clone(),
                        request: *request,
                        action: "cancel",
                    });
                }
                self.finish(request, Status::Cancelled, event.time);
            }
            EventBody::RequestLapsed { request } => {
                self.require_broker(event)?;
                let r = self.request_in(request, &[Status::Pending], "lapse")?;
                if event.time < r.lapses_at {
                    return Err(Refusal::TooEarly {
                        request: *request,
                        what: "lapse",
                        at: r.lapses_at,
                    });
                }
                self.finish(request, Status::Lapsed, event.time);
            }
            EventBody::AccessGranted {
                request,
                granted_at,
                deadline,
                enforced_by_target,
                issued,
            } => {
                self.require_broker(event)?;
                if let Some(problem) = issued.as_ref().and_then(Issued::shape_problem) {
                    return Err(Refusal::Malformed(format!("grant of {request}: {problem}")));
                }
                let r = self.request_in(request, &[Status::Approved], "be granted")?;
                let approved_at = r.approved_at.ok_or(Refusal::Internal)?;
                let latest = granted_at
                    .checked_add(Span::from_secs(MAX_GRANT_RECORD_DELAY_SECS))
                    .ok_or(Refusal::TimeOutOfRange)?;
                if *granted_at < approved_at || *granted_at > event.time || event.time > latest {
                    return Err(Refusal::Malformed(format!(
                        "grant of {request} starts at {granted_at}, which must lie between its approval ({approved_at}) and the grant event ({}), at most {MAX_GRANT_RECORD_DELAY_SECS}s before it",
                        event.time
                    )));
                }
                let expected = granted_at
                    .checked_add(r.duration)
                    .ok_or(Refusal::TimeOutOfRange)?;
                if *deadline != expected {
                    return Err(Refusal::WrongDeadline {
                        request: *request,
                        stated: *deadline,
                        expected,
                    });
                }
                let r = self.requests.get_mut(request).ok_or(Refusal::Internal)?;
                r.status = Status::Active;
                r.granted_at = Some(*granted_at);
                r.deadline = Some(*deadline);
                r.enforced_by_target = Some(*enforced_by_target);
                r.issued = issued.clone();
                r.subject_token = None;
            }
            EventBody::GrantFailed { request, error } => {
                self.require_broker(event)?;
                check_text("error", error, true)?;
                self.request_in(request, &[Status::Approved], "fail to be granted")?;
                self.finish(request, Status::Failed, event.time);
                if let Some(r) = self.requests.get_mut(request) {
                    r.last_error = Some(error.clone());
                }
            }
            EventBody::RevocationOrdered { request, reason } => {
                if let Some(reason) = reason {
                    check_text("reason", reason, true)?;
                }
                let r = self.request_in(request, &[Status::Active], "be revoked")?;
                let may = r.requester == event.actor
                    || self.is_admin(&event.actor)
                    || self
                        .policy_target(&r.target)
                        .is_some_and(|t| self.is_approver_for(&event.actor, t));
                if !may {
                    return Err(Refusal::NotPermitted {
                        actor: event.actor.clone(),
                        action: format!("revoke {request}"),
                        why: "only the requester, an approver of the target or an admin may".into(),
                    });
                }
                let r = self.requests.get_mut(request).ok_or(Refusal::Internal)?;
                r.status = Status::Revoking;
                r.revoked_by = Some(event.actor.clone());
            }
            EventBody::AccessRevoked { request } => {
                self.require_broker(event)?;
                self.request_in(request, &[Status::Revoking], "be marked revoked")?;
                self.finish(request, Status::Revoked, event.time);
            }
            EventBody::AccessExpired { request } => {
                self.require_broker(event)?;
                let r = self.request_in(request, &[Status::Active, Status::Revoking], "expire")?;
                let deadline = r.deadline.ok_or(Refusal::Internal)?;
                if event.time < deadline {
                    return Err(Refusal::TooEarly {
                        request: *request,
                        what: "expire",
                        at: deadline,
                    });
                }
                self.finish(request, Status::Expired, event.time);
            }
            EventBody::RevokeFailed {
                request,
                attempt,
                error,
            } => {
                self.require_broker(event)?;
                check_text("error", error, true)?;
                let r = self.request_in(
                    request,
                    &[Status::Active, Status::Revoking],
                    "record a failed revoke",
                )?;
                if *attempt != r.revoke_failures + 1 {
                    return Err(Refusal::Malformed(format!(
                        "revoke attempt {attempt} of {request} does not follow attempt {}",
                        r.revoke_failures
                    )));
                }
                let r = self.requests.get_mut(request).ok_or(Refusal::Internal)?;
                r.revoke_failures = *attempt;
                r.last_revoke_failure = Some(event.time);
                r.last_error = Some(error.clone());
            }
            EventBody::Alert {
                kind,
                request,
                message,
            } => {
                if *kind == AlertKind::HistoryRefused {
                    // A member's own finding: any enrolled identity (the envelope checked that)
                    // but the broker, whose log it is, and about no request.
                    if self.broker.as_deref() == Some(event.actor.as_str()) || request.is_some() {
                        return Err(Refusal::NotPermitted {
                            actor: event.actor.clone(),
                            action: "alert history_refused".into(),
                            why: "a member records its own finding that the shared log failed \
                                  verification, about no request"
                                .into(),
                        });
                    }
                } else {
                    self.require_broker(event)?;
                }
                check_text("message", message, true)?;
                if let Some(id) = request {
                    if !self.requests.contains_key(id) && !self.retired.status.contains(id) {
                        return Err(Refusal::UnknownRequest(*id));
                    }
                }
            }
            EventBody::ReviewRecorded { request, comment } => {
                check_text("comment", comment, true)?;
                let r = match self.requests.get(request) {
                    Some(r) => r,
                    None if self.retired.status.contains(request) => {
                        return Err(Refusal::NoReviewOwed(*request))
                    }
                    None => return Err(Refusal::UnknownRequest(*request)),
                };
                if r.review != Some(crate::state::Review::Required) {
                    return Err(Refusal::NoReviewOwed(*request));
                }
                if r.requester == event.actor {
                    return Err(Refusal::SelfDecision {
                        actor: event.actor.clone(),
                        request: *request,
                    });
                }
                let may = self.is_admin(&event.actor)
                    || self
                        .policy_target(&r.target)
                        .is_some_and(|t| self.is_approver_for(&event.actor, t));
                if !may {
                    return Err(Refusal::NotPermitted {
                        actor: event.actor.clone(),
                        action: format!("review {request}"),
                        why: "only an approver of the target or an admin may".into(),
                    });
                }
                let r = self.requests.get_mut(request).ok_or(Refusal::Internal)?;
                r.review = Some(Review::Done {
                    by: event.actor.clone(),
                    at: event.time,
                    comment: comment.clone(),
                });
            }
        }
        self.last_time = Some(event.time);
        self.events += 1;
        Ok(())
    }

    fn check_envelope(&self, ev: VerifiedEvent<'_>) -> Result<(), Refusal> {
        let e = ev.event;
        if e.v != EVENT_FORMAT {
            return Err(Refusal::Malformed(format!(
                "event format {} is not supported (this build reads {EVENT_FORMAT})",
                e.v
            )));
        }
        if let Some(last) = self.last_time {
            if e.time < last {
                return Err(Refusal::TimeWentBackwards { time: e.time, last });
            }
        }
        match (&self.origin, &e.body) {
            (None, EventBody::LogCreated { .. }) => return Ok(()),
            (None, _) => {
                return Err(Refusal::Malformed(
                    "the first event of a log must be log_created".into(),
                ))
            }
            (Some(_), EventBody::LogCreated { .. }) => {
                return Err(Refusal::Malformed("the log was already created".into()))
            }
            (Some(origin), _) if &e.log != origin => {
                return Err(Refusal::Malformed(format!(
                    "event is for log {:?}, this is {origin:?}",
                    e.log
                )))
            }
            _ => {}
        }
        if signin::is_own_enrolment(e, ev.signer) {
            // A person enrolling their own key is not enrolled with it yet: the enrolment's
            // rules check the provider's token (`enrol_from_provider`).
            return Ok(());
        }
        let id = self
            .identities
            .get(&e.actor)
            .ok_or_else(|| Refusal::UnknownIdentity(e.actor.clone()))?;
        if &id.record.key != ev.signer {
            return Err(Refusal::WrongKey {
                actor: e.actor.clone(),
            });
        }
        if let Some(at) = id.revoked_at {
            return Err(Refusal::Revoked {
                actor: e.actor.clone(),
                at,
            });
        }
        Ok(())
    }

    fn log_created(&mut self, ev: VerifiedEvent<'_>) -> Result<(), Refusal> {
        let e = ev.event;
        let EventBody::LogCreated {
            origin,
            log_key,
            admin,
            broker,
        } = &e.body
        else {
            return Err(Refusal::Internal);
        };
        if origin.is_empty() || origin.len() > 200 || origin.chars().any(char::is_whitespace) {
            return Err(Refusal::Malformed(format!(
                "log origin {origin:?} must be 1-200 characters without spaces"
            )));
        }
        if &e.log != origin {
            return Err(Refusal::Malformed("log_created names another log".into()));
        }
        if e.actor != admin.name || &admin.key != ev.signer {
            return Err(Refusal::Malformed(
                "log_created must be signed by the first administrator it names".into(),
            ));
        }
        if !admin.groups.contains(ADMIN_GROUP) || admin.groups.len() != 1 {
            return Err(Refusal::Malformed(
                "the first administrator must be in exactly the admin group".into(),
            ));
        }
        if !broker.groups.is_empty() {
            return Err(Refusal::Malformed("the broker belongs to no group".into()));
        }
        for rec in [admin, broker] {
            if let Some(p) = name_problem(&rec.name) {
                return Err(Refusal::InvalidName(p));
            }
        }
        if admin.name == broker.name || admin.key == broker.key {
            return Err(Refusal::Malformed(
                "the administrator and the broker must have distinct names and keys".into(),
            ));
        }
        self.origin = Some(origin.clone());
        self.log_key = Some(log_key.clone());
        self.broker = Some(broker.name.clone());
        for rec in [admin, broker] {
            self.insert_identity(rec, e);
        }
        Ok(())
    }

    fn insert_identity(&mut self, rec: &IdentityRecord, e: &Event) {
        self.keys.insert(rec.key, rec.name.clone());
        self.identities.insert(
            rec.name.clone(),
            Identity {
                record: rec.clone(),
                enrolled_at: e.time,
                enrolled_by: e.actor.clone(),
                provider_groups: None,
                last_sign_in: None,
                revoked_at: None,
            },
        );
    }

    fn enrol(&mut self, ev: VerifiedEvent<'_>, rec: &IdentityRecord) -> Result<(), Refusal> {
        let e = ev.event;
        if let Binding::Oidc(binding) = &rec.binding {
            return self.enrol_from_provider(ev, rec, binding);
        }
        self.require_admin(e, "enrol identities")?;
        if let Some(p) = name_problem(&rec.name) {
            return Err(Refusal::InvalidName(p));
        }
        if self.identities.contains_key(&rec.name) {
            return Err(Refusal::AlreadyExists(format!(
                "identity {:?} is already enrolled",
                rec.name
            )));
        }
        if let Some(holder) = self.keys.get(&rec.key) {
            return Err(Refusal::AlreadyExists(format!(
                "that key already belongs to identity {holder:?}; every identity needs its own key"
            )));
        }
        for g in &rec.groups {
            let declared = g == ADMIN_GROUP
                || self
                    .policy()
                    .is_some_and(|p| p.policy.groups.contains_key(g));
            if !declared {
                return Err(Refusal::UnknownGroup(g.clone()));
            }
        }
        self.insert_identity(rec, e);
        Ok(())
    }

    fn revoke_identity(&mut self, e: &Event, name: &str, reason: &str) -> Result<(), Refusal> {
        self.require_admin(e, "revoke identities")?;
        check_text("reason", reason, true)?;
        if self.broker.as_deref() == Some(name) {
            return Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: format!("revoke {name}"),
                why: "the broker's key is the log's own; it is replaced with the log, not revoked"
                    .into(),
            });
        }
        if e.actor == name {
            return Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: format!("revoke {name}"),
                why: "an administrator cannot revoke themselves; another administrator must".into(),
            });
        }
        let identity = self
            .identities
            .get_mut(name)
            .ok_or_else(|| Refusal::UnknownIdentity(name.to_owned()))?;
        if let Some(at) = identity.revoked_at {
            return Err(Refusal::Revoked {
                actor: name.to_owned(),
                at,
            });
        }
        identity.revoked_at = Some(e.time);
        Ok(())
    }

    fn policy_applied(&mut self, e: &Event, version: u64, source: &str) -> Result<(), Refusal> {
        self.require_admin(e, "apply a policy")?;
        let policy =
            Policy::parse(source).map_err(|errs| Refusal::InvalidPolicy(errs.to_string()))?;
        if policy.version != version {
            return Err(Refusal::Malformed(format!(
                "policy_applied says version {version} but the source says {}",
                policy.version
            )));
        }
        if let Some(cur) = self.policy() {
            if version <= cur.policy.version {
                return Err(Refusal::StalePolicy {
                    version,
                    current: cur.policy.version,
                });
            }
        }
        self.policies.push(PolicyVersion {
            policy: Arc::new(policy),
            source: source.to_owned(),
            applied_at: e.time,
        });
        Ok(())
    }

    fn requested(&mut self, ev: VerifiedEvent<'_>) -> Result<(), Refusal> {
        let e = ev.event;
        let EventBody::AccessRequested {
            auth,
            request,
            target,
            role,
            duration,
            reason,
            ticket,
            break_glass,
            credential,
            extends,
            policy_version,
        } = &e.body
        else {
            return Err(Refusal::Internal);
        };
        let fresh = match auth {
            Some(token) => Some(self.check_sign_in(ev, token, "request access")?),
            None => None,
        };
        if self.broker.as_deref() == Some(e.actor.as_str()) {
            return Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: "request access".into(),
                why: "the broker never requests access".into(),
            });
        }
        if self.requests.contains_key(request) || self.retired.status.contains(request) {
            return Err(Refusal::AlreadyExists(format!(
                "request {request} already exists"
            )));
        }
        let pv = self.policy().ok_or(Refusal::NoPolicy)?;
        if *policy_version != pv.policy.version {
            return Err(Refusal::StalePolicy {
                version: *policy_version,
                current: pv.policy.version,
            });
        }
        let t = pv
            .policy
            .target(target)
            .ok_or_else(|| Refusal::UnknownTarget(target.clone()))?;
        if !t.roles.iter().any(|r| r == role) {
            return Err(Refusal::UnknownRole {
                target: target.clone(),
                role: role.clone(),
                roles: t.roles.clone(),
            });
        }
        check_text("reason", reason, true)?;
        if let Some(ticket) = ticket {
            check_ticket(ticket)?;
        }
        check_credential(t, credential.as_ref())?;
        if let Some(allowed) = &t.requesters {
            let member = |g: &String| match &fresh {
                Some(sign_in) => self.provider_maps_to(&sign_in.provider, &sign_in.groups, g),
                None => self.in_group(&e.actor, g),
            };
            if !allowed.iter().any(member) {
                return Err(Refusal::NotPermitted {
                    actor: e.actor.clone(),
                    action: format!("request access to {target}"),
                    why: format!(
                        "requesters must be in one of: {}",
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let cap = if *break_glass {
            let bg = t
                .break_glass
                .as_ref()
                .ok_or_else(|| Refusal::BreakGlassNotAllowed {
                    target: target.clone(),
                })?;
            if extends.is_some() {
                return Err(Refusal::Malformed(
                    "a break-glass activation cannot extend a grant; request a new one".into(),
                ));
            }
            bg.max_duration
        } else {
            t.max_duration
        };
        if *duration > cap {
            return Err(Refusal::DurationOverCap {
                requested: *duration,
                cap,
                target: target.clone(),
                break_glass: *break_glass,
            });
        }
        let chain = match extends {
            None => *request,
            Some(prev_id) => {
                let prev = match self.requests.get(prev_id) {
                    Some(prev) => prev,
                    None => {
                        return Err(match self.retired.status.get(prev_id) {
                            Some(status) => Refusal::WrongState {
                                request: *prev_id,
                                status,
                                action: "be extended",
                            },
                            None => Refusal::UnknownRequest(*prev_id),
                        })
                    }
                };
                if prev.requester != e.actor || prev.target != *target || prev.role != *role {
                    return Err(Refusal::Malformed(format!(
                        "an extension must be by the same requester for the same target and role as {prev_id}"
                    )));
                }
                if prev.status != Status::Active {
                    return Err(Refusal::WrongState {
                        request: *prev_id,
                        status: prev.status,
                        action: "be extended",
                    });
                }
                if self.requests.values().any(|r| {
                    r.chain == prev.chain && matches!(r.status, Status::Pending | Status::Approved)
                }) {
                    return Err(Refusal::AlreadyExists(format!(
                        "an extension of {prev_id} is already pending"
                    )));
                }
                let used = self.chain_total(&prev.chain);
                let total = used.checked_add(*duration).ok_or(Refusal::TimeOutOfRange)?;
                if total > t.extension_cap {
                    return Err(Refusal::ChainOverCap {
                        target: target.clone(),
                        used,
                        requested: *duration,
                        cap: t.extension_cap,
                    });
                }
                prev.chain
            }
        };
        let lapses_at = e
            .time
            .checked_add(t.request_ttl)
            .ok_or(Refusal::TimeOutOfRange)?;
        // A provider's person self-activates break-glass only with a fresh sign-in; without one
        // (the provider may be down) the activation waits for one approval, which may be
        // signed offline.
        let needs_approval =
            *break_glass && fresh.is_none() && self.provider_membership(&e.actor).is_some();
        let quorum = if needs_approval {
            BREAK_GLASS_OFFLINE_QUORUM
        } else {
            t.approvers.quorum
        };
        let (status, review, approved_at) = match (*break_glass, needs_approval) {
            (true, false) => (Status::Approved, Some(Review::Required), Some(e.time)),
            (true, true) => (Status::Pending, Some(Review::Required), None),
            (false, _) => (Status::Pending, None, None),
        };
        self.requests.insert(
            *request,
            Request {
                id: *request,
                requester: e.actor.clone(),
                target: target.clone(),
                role: role.clone(),
                duration: *duration,
                reason: reason.clone(),
                ticket: ticket.clone(),
                break_glass: *break_glass,
                extends: *extends,
                chain,
                policy_version: *policy_version,
                requested_at: e.time,
                lapses_at,
                digest: hex(ev.leaf_hash),
                status,
                decisions: Vec::new(),
                quorum,
                approved_at,
                granted_at: None,
                deadline: None,
                enforced_by_target: None,
                credential: credential.clone(),
                issued: None,
                ended_at: None,
                revoked_by: None,
                revoke_failures: 0,
                last_revoke_failure: None,
                last_error: None,
                review,
                subject_token: match (&t.connector, auth) {
                    (ConnectorSpec::OAuth(_), Some(token)) => Some(token.clone()),
                    _ => None,
                },
            },
        );
        if let Some(fresh) = fresh {
            self.record_sign_in(&e.actor, fresh);
        }
        Ok(())
    }

    fn decided(
        &mut self,
        e: &Event,
        id: &RequestId,
        digest: &str,
        approve: bool,
        comment: Option<&str>,
        fresh: Option<SignIn>,
    ) -> Result<(), Refusal> {
        if let Some(c) = comment {
            check_text(if approve { "comment" } else { "reason" }, c, true)?;
        }
        self.check_decision(&e.actor, id, digest, e.time, approve, fresh.as_ref())?;
        if let Some(fresh) = fresh {
            self.record_sign_in(&e.actor, fresh);
        }
        self.record_decision(id, &e.actor, e.time, approve, comment, false)
    }

    /// Every rule a decision by `actor` on request `id` must meet; `fresh` are the provider
    /// groups of a sign-in presented with it (used instead of the recorded ones).
    fn check_decision(
        &self,
        actor: &str,
        id: &RequestId,
        digest: &str,
        time: Timestamp,
        approve: bool,
        fresh: Option<&SignIn>,
    ) -> Result<(), Refusal> {
        let r = self.request_in(
            id,
            &[Status::Pending],
            if approve { "be approved" } else { "be denied" },
        )?;
        if r.digest != digest {
            return Err(Refusal::DigestMismatch(*id));
        }
        if time >= r.lapses_at {
            return Err(Refusal::TooLate {
                request: *id,
                lapsed_at: r.lapses_at,
            });
        }
        if r.requester == actor {
            return Err(Refusal::SelfDecision {
                actor: actor.to_owned(),
                request: *id,
            });
        }
        let target = self
            .policy_target(&r.target)
            .ok_or_else(|| Refusal::UnknownTarget(r.target.clone()))?;
        let approver = match fresh {
            Some(sign_in) => target
                .approvers
                .groups
                .iter()
                .any(|g| self.provider_maps_to(&sign_in.provider, &sign_in.groups, g)),
            None => self.is_approver_for(actor, target),
        };
        if !approver {
            return Err(Refusal::NotApprover {
                actor: actor.to_owned(),
                target: r.target.clone(),
                groups: target.approvers.groups.iter().cloned().collect(),
            });
        }
        if r.decisions.iter().any(|d| d.by == actor) {
            return Err(Refusal::AlreadyDecided {
                actor: actor.to_owned(),
                request: *id,
            });
        }
        Ok(())
    }

    fn record_decision(
        &mut self,
        id: &RequestId,
        by: &str,
        at: Timestamp,
        approve: bool,
        comment: Option<&str>,
        offline: bool,
    ) -> Result<(), Refusal> {
        let r = self.requests.get_mut(id).ok_or(Refusal::Internal)?;
        r.decisions.push(Decision {
            by: by.to_owned(),
            at,
            approved: approve,
            comment: comment.map(str::to_owned),
            offline,
        });
        if !approve {
            r.status = Status::Denied;
            r.ended_at = Some(at);
        } else if r.approvals() >= r.quorum as usize {
            r.status = Status::Approved;
            r.approved_at = Some(at);
        }
        Ok(())
    }

    fn policy_target(&self, target: &str) -> Option<&TargetPolicy> {
        self.policy().and_then(|p| p.policy.target(target))
    }

    fn request_in(
        &self,
        id: &RequestId,
        allowed: &[Status],
        action: &'static str,
    ) -> Result<&Request, Refusal> {
        let Some(r) = self.requests.get(id) else {
            return Err(match self.retired.status.get(id) {
                Some(status) => Refusal::WrongState {
                    request: *id,
                    status,
                    action,
                },
                None => Refusal::UnknownRequest(*id),
            });
        };
        if allowed.contains(&r.status) {
            Ok(r)
        } else {
            Err(Refusal::WrongState {
                request: *id,
                status: r.status,
                action,
            })
        }
    }

    fn finish(&mut self, id: &RequestId, status: Status, at: Timestamp) {
        if let Some(r) = self.requests.get_mut(id) {
            r.status = status;
            r.ended_at = Some(at);
            r.subject_token = None;
        }
    }

    fn require_admin(&self, e: &Event, action: &str) -> Result<(), Refusal> {
        if self.is_admin(&e.actor) {
            Ok(())
        } else {
            Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: action.into(),
                why: "only members of the admin group may".into(),
            })
        }
    }

    fn require_broker(&self, e: &Event) -> Result<(), Refusal> {
        if self.broker.as_deref() == Some(e.actor.as_str()) {
            Ok(())
        } else {
            Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: e.body.kind().into(),
                why: "only the broker records grants, expiries and alerts".into(),
            })
        }
    }
}

/// Lowercase hex of a hash.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn check_text(field: &'static str, text: &str, required: bool) -> Result<(), Refusal> {
    let len = text.chars().count();
    if required && text.trim().is_empty() {
        return Err(Refusal::InvalidText {
            field,
            why: "it is empty".into(),
        });
    }
    if len > MAX_TEXT_LEN {
        return Err(Refusal::InvalidText {
            field,
            why: format!("it is {len} characters long; the limit is {MAX_TEXT_LEN}"),
        });
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Refusal::InvalidText {
            field,
            why: "it contains control characters".into(),
        });
    }
    Ok(())
}

/// A request carries exactly the credential its target's connector needs, in the right shape.
fn check_credential(t: &TargetPolicy, credential: Option<&Credential>) -> Result<(), Refusal> {
    let refuse = |why: String| Refusal::Credential {
        target: t.name.clone(),
        why,
    };
    match (t.connector.credential(), credential) {
        (None, None) => Ok(()),
        (None, Some(c)) => Err(refuse(format!(
            "its {} connector takes no credential; {} was given",
            t.connector.kind(),
            c.kind().describe()
        ))),
        (Some(kind), None) => Err(refuse(format!(
            "its {} connector needs {} with the request",
            t.connector.kind(),
            kind.describe()
        ))),
        (Some(kind), Some(c)) if c.kind() != kind => Err(refuse(format!(
            "its {} connector needs {}, not {}",
            t.connector.kind(),
            kind.describe(),
            c.kind().describe()
        ))),
        (Some(_), Some(c)) => match c.shape_problem() {
            Some(problem) => Err(refuse(problem)),
            None => Ok(()),
        },
    }
}

fn check_ticket(ticket: &str) -> Result<(), Refusal> {
    let ok = !ticket.is_empty()
        && ticket.chars().count() <= MAX_TICKET_LEN
        && ticket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/#".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Refusal::InvalidText {
            field: "ticket",
            why: format!(
                "tickets are 1-{MAX_TICKET_LEN} characters of letters, digits and - _ . : / #"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
