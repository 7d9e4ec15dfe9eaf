//! How results look on a terminal.

use breakglass_core::{LogState, Request, Review, Status, Timestamp};

/// "1h02m03s" from milliseconds (negative shows as "0s").
pub fn remaining(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// One line per request, for `status`.
pub fn request_line(r: &Request, now: Timestamp) -> String {
    let what = format!(
        "{} on {} ({}) by {}",
        r.role, r.target, r.duration, r.requester
    );
    let state = match r.status {
        Status::Pending => format!(
            "pending {}/{} approvals, lapses in {}",
            r.approvals(),
            r.quorum,
            remaining(r.lapses_at.millis_since(now))
        ),
        Status::Active | Status::Revoking => {
            let deadline = r.deadline.map_or(String::new(), |d| d.to_string());
            let left = r
                .deadline
                .map_or(String::new(), |d| remaining(d.millis_since(now)));
            let enforced = if r.enforced_by_target == Some(true) {
                "enforced by the target"
            } else {
                "expiry enforced by Breakglass only"
            };
            let revoking = if r.status == Status::Revoking {
                " REVOKING"
            } else {
                ""
            };
            format!("ACTIVE{revoking} until {deadline} ({left} left; {enforced})")
        }
        other => other.as_str().to_owned(),
    };
    let mut line = format!("{}  {what}: {state}", r.id);
    if r.break_glass {
        line.push_str("  [BREAK-GLASS]");
    }
    if r.review == Some(Review::Required) {
        line.push_str("  [REVIEW OWED]");
    }
    if r.revoke_failures > 0 && !r.status.is_final() {
        line.push_str(&format!(
            "  [REVOKE FAILING x{}: {}]",
            r.revoke_failures,
            r.last_error.as_deref().unwrap_or("")
        ));
    }
    line
}

/// Summary block for `status`.
pub fn status_text(state: &LogState, me: &str, now: Timestamp, all: bool, size: u64) -> String {
    let mut out = String::new();
    let policy = state.policy().map_or("none applied".to_owned(), |p| {
        format!("version {}", p.policy.version)
    });
    let groups: Vec<String> = state.groups_of(me).into_iter().collect();
    out.push_str(&format!(
        "Log {} — {size} entries; policy {policy}\nYou are {me} (groups: {})\n",
        state.origin().unwrap_or("?"),
        if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(", ")
        }
    ));
    if let Some(p) = state.policy() {
        out.push_str("\nTargets:\n");
        for t in p.policy.targets.values() {
            out.push_str(&format!(
                "  {:<16} max {}, quorum {} of [{}], break-glass {}{}\n",
                t.name,
                t.max_duration,
                t.approvers.quorum,
                t.approvers
                    .groups
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                t.break_glass
                    .as_ref()
                    .map_or("not allowed".to_owned(), |b| format!(
                        "up to {}",
                        b.max_duration
                    )),
                if t.enforces_expiry_itself() {
                    ""
                } else {
                    ", expiry enforced by Breakglass only"
                }
            ));
        }
    }
    let shown: Vec<&Request> = state
        .requests()
        .filter(|r| all || !r.status.is_final() || r.review == Some(Review::Required))
        .collect();
    out.push_str(if all {
        "\nRequests:\n"
    } else {
        "\nOpen requests and grants:\n"
    });
    if shown.is_empty() {
        out.push_str("  (none)\n");
    }
    for r in shown {
        out.push_str("  ");
        out.push_str(&request_line(r, now));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_rounds_up_and_never_goes_negative() {
        assert_eq!(remaining(3_723_000), "1h02m03s");
        assert_eq!(remaining(61_000), "1m01s");
        assert_eq!(remaining(1), "1s");
        assert_eq!(remaining(-5), "0s");
    }
}
