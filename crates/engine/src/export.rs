//! Exports for people and tools: CSV (one row per request) and JSON Lines (raw signed events).

use std::io::Write;

use breakglass_core::{LogState, Request, Review, Status, Timestamp};
use breakglass_ledger::Entry;

use crate::error::EngineError;

/// Which records an export includes. Times are compared with the request time (CSV) or the
/// event time (JSON Lines); `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Earliest time included.
    pub from: Option<Timestamp>,
    /// First time no longer included.
    pub to: Option<Timestamp>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this requester.
    pub requester: Option<String>,
    /// Only requests now in this state.
    pub state: Option<Status>,
}

impl ExportFilter {
    fn time_ok(&self, t: Timestamp) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }

    fn request_ok(&self, r: &Request) -> bool {
        self.target.as_ref().is_none_or(|t| &r.target == t)
            && self.requester.as_ref().is_none_or(|q| &r.requester == q)
            && self.state.is_none_or(|s| r.status == s)
    }

    fn scoped(&self) -> bool {
        self.target.is_some() || self.requester.is_some() || self.state.is_some()
    }
}

/// CSV columns, in order.
pub const CSV_COLUMNS: [&str; 20] = [
    "request_id",
    "requester",
    "target",
    "role",
    "reason",
    "ticket",
    "break_glass",
    "duration_seconds",
    "approvers",
    "denied_by",
    "requested_at",
    "granted_at",
    "deadline",
    "ended_at",
    "outcome",
    "revoked_by",
    "enforced_by_target",
    "extends",
    "review",
    "review_comment",
];

/// Writes one RFC 4180 row per matching request, with UTC ISO-8601 times and cells that a
/// spreadsheet will never evaluate as formulas. Returns the number of rows.
pub fn write_csv<W: Write>(
    state: &LogState,
    filter: &ExportFilter,
    out: W,
) -> Result<usize, EngineError> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    let io = |e: csv::Error| EngineError::Invalid(format!("writing CSV: {e}"));
    w.write_record(CSV_COLUMNS).map_err(io)?;
    let mut rows: Vec<&Request> = state
        .requests()
        .filter(|r| filter.time_ok(r.requested_at) && filter.request_ok(r))
        .collect();
    rows.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    for r in &rows {
        let names = |approved: bool| {
            r.decisions
                .iter()
                .filter(|d| d.approved == approved)
                .map(|d| d.by.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (review, review_comment) = match &r.review {
            None => (String::new(), String::new()),
            Some(Review::Required) => ("required".into(), String::new()),
            Some(Review::Done { by, comment, .. }) => (format!("done by {by}"), comment.clone()),
        };
        let record = [
            r.id.to_string(),
            r.requester.clone(),
            r.target.clone(),
            r.role.clone(),
            r.reason.clone(),
            r.ticket.clone().unwrap_or_default(),
            r.break_glass.to_string(),
            r.duration.as_secs().to_string(),
            names(true),
            names(false),
            r.requested_at.to_string(),
            time(r.granted_at),
            time(r.deadline),
            time(r.ended_at),
            r.status.as_str().to_owned(),
            r.revoked_by.clone().unwrap_or_default(),
            r.enforced_by_target
                .map(|b| b.to_string())
                .unwrap_or_default(),
            r.extends
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            review,
            review_comment,
        ];
        w.write_record(record.iter().map(|c| neutralise_formula(c).into_owned()))
            .map_err(io)?;
    }
    w.flush()
        .map_err(|e| EngineError::Invalid(format!("writing CSV: {e}")))?;
    Ok(rows.len())
}

/// Prefixes a cell that a spreadsheet would treat as a formula with `'` (OWASP's advice for
/// CSV injection).
pub fn neutralise_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '|' | '%') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Writes matching events as JSON Lines: `{"entry":<signed entry>,"index":N}` per line, the
/// entry exactly as signed, so each line can be checked on its own. Returns the line count.
pub fn write_jsonl<W: Write>(
    state: &LogState,
    entries: &[Vec<u8>],
    filter: &ExportFilter,
    mut out: W,
) -> Result<usize, EngineError> {
    let mut n = 0;
    for (index, bytes) in entries.iter().enumerate() {
        let entry = Entry::decode(bytes).map_err(|e| EngineError::Tampered(e.to_string()))?;
        let ev = entry.event();
        if !filter.time_ok(ev.time) {
            continue;
        }
        if filter.scoped() {
            let matches = ev
                .body
                .request()
                .and_then(|id| state.request(id))
                .is_some_and(|r| filter.request_ok(r));
            if !matches {
                continue;
            }
        }
        let write = |out: &mut W| -> std::io::Result<()> {
            out.write_all(b"{\"entry\":")?;
            out.write_all(bytes)?;
            writeln!(out, ",\"index\":{index}}}")
        };
        write(&mut out).map_err(|e| EngineError::Invalid(format!("writing JSON Lines: {e}")))?;
        n += 1;
    }
    out.flush()
        .map_err(|e| EngineError::Invalid(format!("writing JSON Lines: {e}")))?;
    Ok(n)
}
