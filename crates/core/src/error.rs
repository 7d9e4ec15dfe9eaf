//! Why an event was refused.

use crate::id::RequestId;
use crate::span::Span;
use crate::state::Status;
use crate::time::Timestamp;

/// A rule an event broke. Refused events change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The event is not well formed for this log.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The actor is not enrolled.
    #[error("identity {0:?} is not enrolled")]
    UnknownIdentity(String),
    /// The event was signed with a key other than the actor's enrolled key.
    #[error("the event is signed with a key that is not {actor}'s enrolled key")]
    WrongKey {
        /// The claimed actor.
        actor: String,
    },
    /// A name broke the naming rule.
    #[error("{0}")]
    InvalidName(String),
    /// Something with that name or id already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// A group that the policy does not declare.
    #[error("group {0:?} is not declared in the policy in force")]
    UnknownGroup(String),
    /// No policy has been applied yet.
    #[error("no policy has been applied yet; an admin must run `breakglass policy apply FILE`")]
    NoPolicy,
    /// The policy source did not parse.
    #[error("invalid policy:\n{0}")]
    InvalidPolicy(String),
    /// A policy version that is not newer than the one in force, or a request made against an
    /// older one.
    #[error("policy version {version} is not the one in force ({current})")]
    StalePolicy {
        /// The version named.
        version: u64,
        /// The version in force.
        current: u64,
    },
    /// The actor lacks the permission.
    #[error("{actor} may not {action}: {why}")]
    NotPermitted {
        /// Who tried.
        actor: String,
        /// What they tried.
        action: String,
        /// Which rule stops them.
        why: String,
    },
    /// The target does not exist in the policy in force.
    #[error("target {0:?} is not in the policy in force")]
    UnknownTarget(String),
    /// The role is not offered by the target.
    #[error("target {target} has no role {role:?} (roles: {})", roles.join(", "))]
    UnknownRole {
        /// Target.
        target: String,
        /// Role asked for.
        role: String,
        /// Roles it offers.
        roles: Vec<String>,
    },
    /// A text field is empty, too long or has control characters.
    #[error("invalid {field}: {why}")]
    InvalidText {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The duration exceeds the policy cap; never trimmed.
    #[error("duration {requested} exceeds the {cap} {} for {target}", if *break_glass { "break-glass maximum" } else { "maximum" })]
    DurationOverCap {
        /// Asked for.
        requested: Span,
        /// The cap.
        cap: Span,
        /// Target.
        target: String,
        /// Whether the break-glass cap applied.
        break_glass: bool,
    },
    /// The extension would take the chain past its cap.
    #[error("extension of {requested} would bring the chain to more than the {cap} extension cap for {target} ({used} already used)")]
    ChainOverCap {
        /// Target.
        target: String,
        /// Already used by the chain.
        used: Span,
        /// Asked for.
        requested: Span,
        /// The cap.
        cap: Span,
    },
    /// Break-glass is not allowed on this target.
    #[error("break-glass is not allowed on target {target}")]
    BreakGlassNotAllowed {
        /// Target.
        target: String,
    },
    /// The request's credential does not suit the target's connector.
    #[error("target {target}: {why}")]
    Credential {
        /// Target.
        target: String,
        /// What is wrong and what to give instead.
        why: String,
    },
    /// No such request.
    #[error("no request {0}")]
    UnknownRequest(RequestId),
    /// The request is not in a state that allows this.
    #[error("request {request} is {} and cannot {action} now", status.as_str())]
    WrongState {
        /// Request.
        request: RequestId,
        /// Its state.
        status: Status,
        /// The action refused.
        action: &'static str,
    },
    /// Only the requester may do this.
    #[error("{actor} may not {action} {request}: it is not their request")]
    NotYours {
        /// Who tried.
        actor: String,
        /// Request.
        request: RequestId,
        /// Action.
        action: &'static str,
    },
    /// A decision names a different request digest.
    #[error("the decision is bound to a different version of request {0}")]
    DigestMismatch(RequestId),
    /// The requester tried to decide (or review) their own request.
    #[error("{actor} cannot approve, deny or review their own request {request}")]
    SelfDecision {
        /// Who tried.
        actor: String,
        /// Request.
        request: RequestId,
    },
    /// The actor is not in an approver group of the target.
    #[error("{actor} is not an approver for {target} (approver groups: {})", groups.join(", "))]
    NotApprover {
        /// Who tried.
        actor: String,
        /// Target.
        target: String,
        /// The target's approver groups.
        groups: Vec<String>,
    },
    /// The approver already decided this request.
    #[error("{actor} has already decided request {request}")]
    AlreadyDecided {
        /// Who.
        actor: String,
        /// Request.
        request: RequestId,
    },
    /// The request lapsed before the decision.
    #[error("request {request} lapsed at {lapsed_at}")]
    TooLate {
        /// Request.
        request: RequestId,
        /// When it lapsed.
        lapsed_at: Timestamp,
    },
    /// A time-triggered transition before its time.
    #[error("request {request} cannot {what} before {at}")]
    TooEarly {
        /// Request.
        request: RequestId,
        /// Transition.
        what: &'static str,
        /// Earliest time.
        at: Timestamp,
    },
    /// A grant's deadline is not granted_at + duration.
    #[error("grant of {request} states deadline {stated}, but its duration gives {expected}")]
    WrongDeadline {
        /// Request.
        request: RequestId,
        /// Deadline in the event.
        stated: Timestamp,
        /// Deadline the rules give.
        expected: Timestamp,
    },
    /// No break-glass review is owed.
    #[error("request {0} owes no break-glass review")]
    NoReviewOwed(RequestId),
    /// Event time earlier than the previous event's.
    #[error("event time {time} is before the previous event's {last}")]
    TimeWentBackwards {
        /// This event's time.
        time: Timestamp,
        /// The previous event's time.
        last: Timestamp,
    },
    /// A time computation left the supported range.
    #[error("time out of range")]
    TimeOutOfRange,
    /// The actor's identity was revoked.
    #[error("identity {actor:?} was revoked at {at}; its key signs nothing any more")]
    Revoked {
        /// The revoked identity.
        actor: String,
        /// When it was revoked.
        at: Timestamp,
    },
    /// A decision that needs a fresh sign-in with the identity provider came without one.
    #[error("{actor} must sign in again to {action}: {why}")]
    SignInRequired {
        /// Who acted.
        actor: String,
        /// What they tried.
        action: String,
        /// Why the sign-in they presented (if any) is not enough.
        why: String,
    },
    /// An identity provider's token in an event did not check out.
    #[error("the {provider} sign-in token of {actor} is not valid: {why}")]
    InvalidSignIn {
        /// Whose token.
        actor: String,
        /// The provider.
        provider: String,
        /// What is wrong.
        why: String,
    },
    /// An offline approval token did not check out.
    #[error("offline approval refused: {0}")]
    InvalidOfflineApproval(String),
    /// An internal inconsistency (a bug).
    #[error("internal error in the state machine")]
    Internal,
}
