//! OCSF events for SIEMs: each log entry about a person's access or account as one event of the
//! Open Cybersecurity Schema Framework 1.8.0, Identity & Access Management category — User
//! Access Management (class 3005) for a request's life, Account Change (class 3001) for
//! identities. docs/log-format.md lists the mapping; `tests/ocsf.rs` validates the output
//! against the published schema.
//!
//! What an event carries is names, times and the people's own words (reason, comment): never a
//! token, credential or anything a connector issued. Entries that are about neither a person's
//! access nor an account (policy versions, provider keys, an alert about the log itself) have
//! no form here; they are counted, and the JSON Lines export and the bundle hold them.

use std::collections::HashSet;

use breakglass_core::{AlertKind, Event, EventBody, LogState, Request, Timestamp};
use breakglass_ledger::Entry;
use serde_json::{json, Map, Value};

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.8.0";

const IAM: (u64, &str) = (3, "Identity & Access Management");
const ACCOUNT_CHANGE: (u64, &str) = (3001, "Account Change");
const USER_ACCESS: (u64, &str) = (3005, "User Access Management");

/// OCSF `activity_id`s used here, with their captions in the schema.
mod activity {
    pub const OTHER: (u64, &str) = (99, "Other");
    pub const ASSIGN: (u64, &str) = (1, "Assign Privileges");
    pub const REVOKE: (u64, &str) = (2, "Revoke Privileges");
    pub const CREATE: (u64, &str) = (1, "Create");
    pub const DELETE: (u64, &str) = (6, "Delete");
}

/// OCSF `severity_id`s.
mod severity {
    pub const INFORMATIONAL: (u64, &str) = (1, "Informational");
    pub const MEDIUM: (u64, &str) = (3, "Medium");
    pub const HIGH: (u64, &str) = (4, "High");
    pub const CRITICAL: (u64, &str) = (5, "Critical");
}

/// OCSF `status_id`s.
mod status {
    pub const SUCCESS: (u64, &str) = (1, "Success");
    pub const FAILURE: (u64, &str) = (2, "Failure");
}

/// Maps a log's entries, in order, to OCSF events. It remembers which names were enrolled
/// before, so a second enrolment under a name (a new key) is told from a new account.
#[derive(Debug, Default)]
pub struct OcsfMapper {
    enrolled: HashSet<String>,
}

impl OcsfMapper {
    /// A mapper that has seen no entry yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The OCSF event for the entry at `index`, or `None` when the entry has no OCSF form.
    /// Must see every entry of the log in order (enrolments are tracked).
    pub fn map(&mut self, state: &LogState, index: u64, entry: &Entry) -> Option<Value> {
        let ev = entry.event();
        let base = Base {
            index,
            uid: breakglass_core::hex(entry.leaf_hash()),
            event: ev,
            state,
        };
        match &ev.body {
            EventBody::LogCreated { admin, broker, .. } => {
                self.enrolled.insert(admin.name.clone());
                self.enrolled.insert(broker.name.clone());
                let mut e = base.account(
                    activity::CREATE,
                    &admin.name,
                    format!(
                        "{} created the log {} as its first administrator, with broker {}",
                        ev.actor,
                        state.origin().unwrap_or(""),
                        broker.name
                    ),
                );
                e["user"]["groups"] = groups(admin.groups.iter());
                e["unmapped"] = json!({ "broker": broker.name });
                Some(e)
            }
            EventBody::IdentityEnrolled { identity } => {
                let again = !self.enrolled.insert(identity.name.clone());
                let (act, what) = if again {
                    (
                        (activity::OTHER.0, "Re-enrol"),
                        "re-enrolled with a new key",
                    )
                } else {
                    (activity::CREATE, "enrolled")
                };
                let mut e = base.account(act, &identity.name, {
                    let by = if ev.actor == identity.name {
                        "by its own sign-in".to_owned()
                    } else {
                        format!("by {}", ev.actor)
                    };
                    format!("{} {what} {by}", identity.name)
                });
                e["user"]["groups"] = groups(identity.groups.iter());
                if let Some(oidc) = identity.binding.oidc() {
                    e["user"]["uid_alt"] = json!(oidc.subject);
                    e["actor"]["idp"] = json!({ "name": oidc.provider, "issuer": oidc.issuer });
                }
                Some(e)
            }
            EventBody::IdentityRevoked { name, reason } => {
                let mut e = base.account(
                    activity::DELETE,
                    name,
                    format!("{} revoked identity {name}: {reason}", ev.actor),
                );
                e["status_detail"] = json!(reason);
                Some(e)
            }
            EventBody::PolicyApplied { .. } | EventBody::ProviderKeysRecorded { .. } => None,
            EventBody::Alert { request: None, .. } => None,
            body => {
                let id = body.request()?;
                let r = state.request(id)?;
                Some(base.access(r, body))
            }
        }
    }
}

/// What every event of one entry shares.
struct Base<'a> {
    index: u64,
    uid: String,
    event: &'a Event,
    state: &'a LogState,
}

impl Base<'_> {
    fn class(&self, class: (u64, &str), act: (u64, &str), message: String) -> Value {
        // Every activity used here but `Other` is named by its schema caption.
        let known = if act.0 == activity::OTHER.0 {
            activity::OTHER.1
        } else {
            act.1
        };
        json!({
            "activity_id": act.0,
            "activity_name": act.1,
            "category_uid": IAM.0,
            "category_name": IAM.1,
            "class_uid": class.0,
            "class_name": class.1,
            "type_uid": class.0 * 100 + act.0,
            "type_name": format!("{}: {known}", class.1),
            "severity_id": severity::INFORMATIONAL.0,
            "severity": severity::INFORMATIONAL.1,
            "time": millis(self.event.time),
            "timezone_offset": 0,
            "message": message,
            "metadata": {
                "version": OCSF_VERSION,
                "product": {
                    "name": "Breakglass",
                    "vendor_name": "Breakglass",
                    "version": env!("CARGO_PKG_VERSION"),
                },
                "uid": self.uid,
                "log_name": self.state.origin().unwrap_or_default(),
                "sequence": self.index,
                "event_code": self.event.body.kind(),
            },
            "actor": { "user": person(&self.event.actor) },
        })
    }

    fn account(&self, act: (u64, &str), name: &str, message: String) -> Value {
        let mut e = self.class(ACCOUNT_CHANGE, act, message);
        e["user"] = person(name);
        set_status(&mut e, status::SUCCESS);
        e
    }

    fn access(&self, r: &Request, body: &EventBody) -> Value {
        let actor = &self.event.actor;
        let target = &r.target;
        let role = &r.role;
        let mut detail = None;
        let mut outcome = None;
        let mut level = severity::INFORMATIONAL;
        let (act, message) = match body {
            EventBody::AccessRequested { duration, .. } if r.break_glass => (
                (activity::OTHER.0, "Break-glass Activation"),
                format!(
                    "{actor} self-activated {role} on {target} for {duration} under its break-glass rule: {}",
                    r.reason
                ),
            ),
            EventBody::AccessRequested { duration, .. } => (
                (activity::OTHER.0, "Request"),
                format!(
                    "{actor} requested {role} on {target} for {duration}: {}",
                    r.reason
                ),
            ),
            EventBody::RequestApproved { .. } => (
                (activity::OTHER.0, "Approve"),
                format!("{actor} approved {}'s request for {role} on {target}", r.requester),
            ),
            EventBody::OfflineApprovalImported { .. } => (
                (activity::OTHER.0, "Approve Offline"),
                format!(
                    "{actor} imported an approval signed offline for {}'s request for {role} on {target}",
                    r.requester
                ),
            ),
            EventBody::RequestDenied { reason, .. } => {
                detail = Some(reason.clone());
                (
                    (activity::OTHER.0, "Deny"),
                    format!(
                        "{actor} denied {}'s request for {role} on {target}: {reason}",
                        r.requester
                    ),
                )
            }
            EventBody::RequestCancelled { .. } => (
                (activity::OTHER.0, "Cancel"),
                format!("{actor} withdrew the request for {role} on {target}"),
            ),
            EventBody::RequestLapsed { .. } => (
                (activity::OTHER.0, "Lapse"),
                format!(
                    "{}'s request for {role} on {target} lapsed without a decision",
                    r.requester
                ),
            ),
            EventBody::AccessGranted {
                deadline,
                granted_at,
                enforced_by_target,
                ..
            } => {
                outcome = Some(status::SUCCESS);
                let by = if *enforced_by_target {
                    "the target enforces the deadline"
                } else {
                    "expiry enforced by Breakglass only"
                };
                (
                    activity::ASSIGN,
                    format!(
                        "{} was granted {role} on {target} from {granted_at} until {deadline} ({by})",
                        r.requester
                    ),
                )
            }
            EventBody::GrantFailed { error, .. } => {
                outcome = Some(status::FAILURE);
                level = severity::MEDIUM;
                detail = Some(error.clone());
                (
                    activity::ASSIGN,
                    format!(
                        "granting {role} on {target} to {} failed: {error}",
                        r.requester
                    ),
                )
            }
            EventBody::RevocationOrdered { reason, .. } => {
                detail = reason.clone();
                (
                    (activity::OTHER.0, "Order Revocation"),
                    format!(
                        "{actor} ordered {}'s {role} on {target} ended{}",
                        r.requester,
                        reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                )
            }
            EventBody::AccessRevoked { .. } => {
                outcome = Some(status::SUCCESS);
                (
                    activity::REVOKE,
                    format!(
                        "{}'s {role} on {target} was revoked before its deadline",
                        r.requester
                    ),
                )
            }
            EventBody::AccessExpired { .. } => {
                outcome = Some(status::SUCCESS);
                detail = Some("ended at its deadline".into());
                (
                    activity::REVOKE,
                    format!(
                        "{}'s {role} on {target} ended at its deadline",
                        r.requester
                    ),
                )
            }
            EventBody::RevokeFailed { attempt, error, .. } => {
                outcome = Some(status::FAILURE);
                level = severity::HIGH;
                detail = Some(error.clone());
                (
                    activity::REVOKE,
                    format!(
                        "revoking {}'s {role} on {target} failed (attempt {attempt}): {error}",
                        r.requester
                    ),
                )
            }
            EventBody::Alert { kind, message, .. } => {
                level = match kind {
                    AlertKind::RevokeFailing => severity::CRITICAL,
                    _ => severity::HIGH,
                };
                (
                    (
                        activity::OTHER.0,
                        match kind {
                            AlertKind::BreakGlassActivated => "Break-glass Alert",
                            AlertKind::RevokeFailing => "Revoke Failing Alert",
                            _ => "Alert",
                        },
                    ),
                    message.clone(),
                )
            }
            EventBody::ReviewRecorded { comment, .. } => {
                detail = Some(comment.clone());
                (
                    (activity::OTHER.0, "Review"),
                    format!(
                        "{actor} reviewed {}'s break-glass use of {role} on {target}: {comment}",
                        r.requester
                    ),
                )
            }
            other => (
                (activity::OTHER.0, other.kind()),
                format!("{} about {}", other.kind(), r.id),
            ),
        };
        let mut e = self.class(USER_ACCESS, act, message);
        e["severity_id"] = json!(level.0);
        e["severity"] = json!(level.1);
        e["user"] = person(&r.requester);
        e["privileges"] = json!([role]);
        let mut resource = Map::new();
        resource.insert("name".into(), json!(target));
        resource.insert("uid".into(), json!(target));
        if let Some(kind) = self
            .state
            .policies()
            .iter()
            .rev()
            .find(|p| p.policy.version <= r.policy_version)
            .and_then(|p| p.policy.targets.get(target))
            .map(|t| t.connector.kind())
        {
            resource.insert("type".into(), json!(kind));
        }
        e["resources"] = json!([resource]);
        e["metadata"]["correlation_uid"] = json!(r.chain.to_string());
        if let Some(s) = outcome {
            set_status(&mut e, s);
        }
        if let Some(d) = detail {
            e["status_detail"] = json!(d);
        }
        if let EventBody::AccessGranted {
            deadline,
            granted_at,
            ..
        } = body
        {
            e["start_time"] = json!(millis(*granted_at));
            e["end_time"] = json!(millis(*deadline));
            e["duration"] = json!(deadline.millis_since(*granted_at));
        }
        let mut extra = Map::new();
        extra.insert("request".into(), json!(r.id.to_string()));
        extra.insert("break_glass".into(), json!(r.break_glass));
        if let EventBody::AccessRequested {
            duration,
            reason,
            ticket,
            extends,
            ..
        } = body
        {
            extra.insert("reason".into(), json!(reason));
            extra.insert("duration_seconds".into(), json!(duration.as_secs()));
            if let Some(t) = ticket {
                extra.insert("ticket".into(), json!(t));
            }
            if let Some(x) = extends {
                extra.insert("extends".into(), json!(x.to_string()));
            }
        }
        if let EventBody::RequestApproved {
            comment: Some(c), ..
        } = body
        {
            extra.insert("comment".into(), json!(c));
        }
        e["unmapped"] = Value::Object(extra);
        e
    }
}

fn set_status(e: &mut Value, s: (u64, &str)) {
    e["status_id"] = json!(s.0);
    e["status"] = json!(s.1);
}

fn person(name: &str) -> Value {
    json!({ "name": name, "uid": name })
}

fn groups<'a>(names: impl Iterator<Item = &'a String>) -> Value {
    Value::Array(names.map(|g| json!({ "name": g })).collect())
}

fn millis(t: Timestamp) -> i64 {
    t.unix_millis()
}
