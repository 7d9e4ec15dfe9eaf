//! What to tell the person unprompted — desktop notifications and the tray's summary — worked
//! out from successive overviews, so any front end raises the same notices at the same moments.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use breakglass_core::Status;

use super::view::{Overview, RequestView};

/// How long before a deadline the notices warn, in milliseconds (5 min and 1 min).
pub const WARN_BEFORE_EXPIRY: [i64; 2] = [5 * 60_000, 60_000];

/// Kinds of [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A request this identity may decide arrived.
    NewRequest,
    /// This identity's request was approved (or granted).
    Approved,
    /// This identity's request was denied.
    Denied,
    /// This identity's grant ends soon.
    ExpiresSoon,
    /// This identity's grant ended at its deadline.
    Expired,
    /// This identity's grant was revoked by someone else.
    Revoked,
    /// Revoking a grant failed.
    RevokeFailure,
    /// Someone self-activated break-glass access on a target this identity approves for.
    BreakGlass,
}

/// One notice to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Notice {
    /// What kind.
    pub kind: NoticeKind,
    /// The request concerned.
    pub request: String,
    /// Short title.
    pub title: String,
    /// The words.
    pub body: String,
    /// Whether it must be shown loudly (break-glass, revoke failures).
    pub urgent: bool,
}

#[derive(Debug, Clone)]
struct Seen {
    status: Status,
    revoke_failures: u32,
    /// Deadline warnings already given, by index into [`WARN_BEFORE_EXPIRY`].
    warned: [bool; 2],
}

/// Remembers what the person was already told. The first overview only sets the baseline:
/// opening the app does not replay old news.
#[derive(Debug)]
pub struct Notices {
    seen: HashMap<String, Seen>,
    primed: bool,
    /// The zone times in notices are written in.
    zone: TimeZone,
}

impl Default for Notices {
    fn default() -> Self {
        Notices::in_zone(TimeZone::system())
    }
}

/// `HH:MM` and the zone's abbreviation (`14:05 CET`) of a Unix time in milliseconds, in `zone`:
/// the person reads a notice on their own clock, and the abbreviation says which clock that is.
fn clock(ms: i64, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned_datetime(zone.clone())
            .strftime("%H:%M %Z")
            .to_string(),
        // Outside jiff's range (years beyond ±9999): no real deadline is.
        Err(_) => format!("{ms} ms after 1970"),
    }
}

/// `hh:mm:ss` of a span in milliseconds (hours may exceed 24).
pub fn hhmmss(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

impl Notices {
    /// A tracker with nothing seen yet, writing times in the system's time zone (UTC when it
    /// cannot be found).
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker writing times in `zone`.
    pub fn in_zone(zone: TimeZone) -> Self {
        Notices {
            seen: HashMap::new(),
            primed: false,
            zone,
        }
    }

    /// The notices `now` brings, given the overview at that moment.
    pub fn update(&mut self, o: &Overview) -> Vec<Notice> {
        let mut out = Vec::new();
        let now = o.now_ms;
        for r in &o.requests {
            let fresh = Seen {
                status: r.status,
                revoke_failures: r.revoke_failures,
                warned: warned_by(r, now),
            };
            let Some(prev) = self.seen.get_mut(&r.id) else {
                if self.primed {
                    out.extend(arrived(r, o, &self.zone));
                }
                self.seen.insert(r.id.clone(), fresh);
                continue;
            };
            if !self.primed {
                continue;
            }
            if prev.status != r.status {
                out.extend(moved(prev.status, r, &self.zone));
                prev.status = r.status;
            }
            if r.revoke_failures > prev.revoke_failures {
                if r.mine || o.me.approver || o.me.admin {
                    out.push(Notice {
                        kind: NoticeKind::RevokeFailure,
                        request: r.id.clone(),
                        title: "Revocation failed".into(),
                        body: format!(
                            "{}'s access to {} could not be revoked ({} attempt(s)){}",
                            r.requester,
                            r.target,
                            r.revoke_failures,
                            r.last_error
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ),
                        urgent: true,
                    });
                }
                prev.revoke_failures = r.revoke_failures;
            }
            if r.mine && r.status == Status::Active {
                if let Some(deadline) = r.deadline_ms {
                    // The nearest threshold first: a grant found one minute from its end gets
                    // the one-minute warning only.
                    for (i, before) in WARN_BEFORE_EXPIRY.iter().enumerate().rev() {
                        let due = deadline - now <= *before && deadline > now;
                        if due && !prev.warned[i..].iter().any(|w| *w) {
                            out.push(Notice {
                                kind: NoticeKind::ExpiresSoon,
                                request: r.id.clone(),
                                title: format!("Access to {} ends soon", r.target),
                                body: format!(
                                    "Your access to {} ({}) ends in {} (at {}). More time needs a new, approved request.",
                                    r.target,
                                    r.role,
                                    hhmmss(deadline - now),
                                    clock(deadline, &self.zone)
                                ),
                                urgent: false,
                            });
                        }
                        if due {
                            prev.warned[i] = true;
                        }
                    }
                }
            }
        }
        self.seen
            .retain(|id, _| o.requests.iter().any(|r| &r.id == id));
        self.primed = true;
        out
    }
}

/// The warnings that would already have been given for `r` at `now` (so a baseline taken
/// three minutes before a deadline does not warn about five minutes).
fn warned_by(r: &RequestView, now: i64) -> [bool; 2] {
    let mut warned = [false; 2];
    if let Some(deadline) = r.deadline_ms {
        for (i, before) in WARN_BEFORE_EXPIRY.iter().enumerate() {
            warned[i] = deadline - now <= *before;
        }
    }
    warned
}

/// Notices for a request first seen now.
fn arrived(r: &RequestView, o: &Overview, zone: &TimeZone) -> Vec<Notice> {
    let mut out = Vec::new();
    if r.mine && !r.break_glass && r.status != Status::Pending {
        // Decided before this front end saw it pending (another process, between two looks).
        return moved(Status::Pending, r, zone);
    }
    if r.break_glass && !r.mine && o.me.approver {
        out.push(Notice {
            kind: NoticeKind::BreakGlass,
            request: r.id.clone(),
            title: "Break-glass access activated".into(),
            body: format!(
                "{} self-activated access to {} ({}) for {}: {}. A review is owed.",
                r.requester,
                r.target,
                r.role,
                hhmmss(r.duration_secs as i64 * 1000),
                r.reason
            ),
            urgent: true,
        });
    } else if r.status == Status::Pending && r.can_decide {
        out.push(Notice {
            kind: NoticeKind::NewRequest,
            request: r.id.clone(),
            title: format!("{} asks for {}", r.requester, r.target),
            body: format!(
                "{} ({}) for {}: {}{}. Lapses at {} if undecided.",
                r.target,
                r.role,
                hhmmss(r.duration_secs as i64 * 1000),
                r.reason,
                r.ticket
                    .as_deref()
                    .map(|t| format!(" [{t}]"))
                    .unwrap_or_default(),
                clock(r.lapses_at_ms, zone)
            ),
            urgent: false,
        });
    }
    out
}

/// "Approved by bob and carol. ", or nothing when the request shows no approvals.
fn approved_by(r: &RequestView) -> String {
    let names: Vec<&str> = r.approvals.iter().map(|a| a.by.as_str()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => format!("Approved by {last}. "),
        Some((last, rest)) => format!("Approved by {} and {last}. ", rest.join(", ")),
    }
}

/// Notices for a request whose state changed from `before`.
fn moved(before: Status, r: &RequestView, zone: &TimeZone) -> Vec<Notice> {
    if !r.mine {
        return Vec::new();
    }
    let notice = |kind, title: String, body: String| Notice {
        kind,
        request: r.id.clone(),
        title,
        body,
        urgent: false,
    };
    match r.status {
        Status::Approved | Status::Active if before == Status::Pending => {
            vec![notice(
                NoticeKind::Approved,
                format!("Access to {} approved", r.target),
                format!(
                    "{}{}",
                    approved_by(r),
                    match r.deadline_ms {
                        Some(d) => format!(
                            "Your access to {} ({}) is active until {}.",
                            r.target,
                            r.role,
                            clock(d, zone)
                        ),
                        None => format!("Your request for {} ({}) was approved.", r.target, r.role),
                    }
                ),
            )]
        }
        Status::Denied => vec![notice(
            NoticeKind::Denied,
            format!("Request for {} denied", r.target),
            match r.denials.last() {
                Some(d) => format!(
                    "{} denied your request{}",
                    d.by,
                    d.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
                None => "Your request was denied.".into(),
            },
        )],
        Status::Expired => vec![notice(
            NoticeKind::Expired,
            format!("Access to {} ended", r.target),
            format!(
                "Your access to {} ({}) reached its deadline and was removed.",
                r.target, r.role
            ),
        )],
        Status::Revoked if r.revoked_by.as_deref() != Some(r.requester.as_str()) => {
            vec![notice(
                NoticeKind::Revoked,
                format!("Access to {} revoked", r.target),
                format!(
                    "{} ended your access to {} early.",
                    r.revoked_by.as_deref().unwrap_or("Someone"),
                    r.target
                ),
            )]
        }
        _ => Vec::new(),
    }
}

/// What the tray icon shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TraySummary {
    /// This identity's grants that are active (or about to be).
    pub active: u32,
    /// The nearest deadline among them.
    pub nearest_deadline_ms: Option<i64>,
    /// The target of that grant.
    pub nearest_target: Option<String>,
    /// Requests waiting for this identity's decision.
    pub pending_approvals: u32,
}

impl TraySummary {
    /// The summary of overview `o`.
    pub fn of(o: &Overview) -> TraySummary {
        let mine_active = o
            .requests
            .iter()
            .filter(|r| r.mine && matches!(r.status, Status::Active | Status::Approved));
        let nearest = mine_active
            .clone()
            .filter_map(|r| r.deadline_ms.map(|d| (d, &r.target)))
            .min();
        TraySummary {
            active: mine_active.count() as u32,
            nearest_deadline_ms: nearest.map(|(d, _)| d),
            nearest_target: nearest.map(|(_, t)| t.clone()),
            pending_approvals: o.requests.iter().filter(|r| r.can_decide).count() as u32,
        }
    }

    /// A few characters beside the tray icon at `now_ms`: grants and the time left on the
    /// nearest, then requests waiting (`2 · 04:59 · 1 waiting`); empty when there is nothing.
    pub fn short(&self, now_ms: i64) -> String {
        let mut parts = Vec::new();
        if self.active > 0 {
            parts.push(self.active.to_string());
            if let Some(d) = self.nearest_deadline_ms {
                parts.push(hhmmss(d - now_ms));
            }
        }
        if self.pending_approvals > 0 {
            parts.push(format!("{} waiting", self.pending_approvals));
        }
        parts.join(" · ")
    }

    /// One line for the tray's tooltip or title at `now_ms`.
    pub fn line(&self, now_ms: i64) -> String {
        let mut parts = Vec::new();
        match (self.active, self.nearest_deadline_ms, &self.nearest_target) {
            (0, _, _) => parts.push("no active access".to_owned()),
            (n, Some(d), Some(t)) => parts.push(format!(
                "{n} active grant{}; {t} ends in {}",
                if n == 1 { "" } else { "s" },
                hhmmss(d - now_ms)
            )),
            (n, _, _) => parts.push(format!("{n} active grant{}", if n == 1 { "" } else { "s" })),
        }
        if self.pending_approvals > 0 {
            parts.push(format!(
                "{} request{} awaiting your approval",
                self.pending_approvals,
                if self.pending_approvals == 1 { "" } else { "s" }
            ));
        }
        format!("Breakglass: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-15T12:30:00Z and 2026-07-15T12:30:00Z.
    const WINTER: i64 = 1_768_480_200_000;
    const SUMMER: i64 = 1_784_118_600_000;

    #[test]
    fn times_are_written_on_the_readers_clock_and_name_it() {
        assert_eq!(clock(WINTER, &TimeZone::UTC), "12:30 UTC");
        let berlin = TimeZone::get("Europe/Berlin").expect("the system's time zone database");
        assert_eq!(clock(WINTER, &berlin), "13:30 CET");
        assert_eq!(clock(SUMMER, &berlin), "14:30 CEST");
        let fixed = TimeZone::fixed(jiff::tz::offset(-5));
        assert_eq!(clock(WINTER, &fixed), "07:30 -05");
    }

    #[test]
    fn a_time_beyond_the_calendar_is_still_written() {
        assert_eq!(
            clock(i64::MAX, &TimeZone::UTC),
            format!("{} ms after 1970", i64::MAX)
        );
    }
}
