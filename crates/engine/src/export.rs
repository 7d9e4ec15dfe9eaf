//! Exports for people and tools: CSV (one row per request) and JSON Lines (raw signed events).

use std::io::Write;

use breakglass_core::{LogState, Request, Review, Status, Timestamp};
use breakglass_ledger::{
    verify_bundle_stream, with_cosignatures, BundleError, BundleReport, BundleWriter, Entry,
    VerifyOptions,
};
use breakglass_store::{Store, StoredEntry};

use crate::error::EngineError;
use crate::ocsf::OcsfMapper;
use crate::Engine;

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

/// Formats that hold events rather than requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    /// `{"entry":<signed entry>,"index":N}` per line: each entry exactly as signed.
    Jsonl,
    /// One OCSF 1.8.0 event per line (see [`crate::ocsf`]).
    Ocsf,
}

/// How many lines an event export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCount {
    /// Lines written.
    pub written: u64,
    /// Entries the filter let through that have no form in the format (OCSF only: policy
    /// versions, provider keys, alerts about the log itself).
    pub without_form: u64,
}

/// Writes an event export entry by entry, so a caller can feed it the log in batches and
/// memory stays flat however long the log is. Feed it every entry from index 0, in order.
pub struct EventExport<'s, W: Write> {
    state: &'s LogState,
    filter: &'s ExportFilter,
    format: EventFormat,
    out: W,
    mapper: OcsfMapper,
    next: u64,
    count: EventCount,
}

impl<'s, W: Write> EventExport<'s, W> {
    /// An export of the entries `filter` lets through, in `format`, to `out`.
    pub fn new(state: &'s LogState, filter: &'s ExportFilter, format: EventFormat, out: W) -> Self {
        Self {
            state,
            filter,
            format,
            out,
            mapper: OcsfMapper::new(),
            next: 0,
            count: EventCount::default(),
        }
    }

    /// Takes the next entry of the log (its signed bytes).
    pub fn entry(&mut self, bytes: &[u8]) -> Result<(), EngineError> {
        let index = self.next;
        let entry = Entry::decode(bytes).map_err(|e| EngineError::Tampered(e.to_string()))?;
        self.next += 1;
        // The OCSF mapper sees every entry (it tracks enrolments), whatever the filter says.
        let ocsf = match self.format {
            EventFormat::Ocsf => Some(self.mapper.map(self.state, index, &entry)),
            EventFormat::Jsonl => None,
        };
        let ev = entry.event();
        if !self.filter.time_ok(ev.time) {
            return Ok(());
        }
        if self.filter.scoped() {
            let matches = ev
                .body
                .request()
                .and_then(|id| self.state.request(id))
                .is_some_and(|r| self.filter.request_ok(r));
            if !matches {
                return Ok(());
            }
        }
        let out = &mut self.out;
        let written = match ocsf {
            None => out
                .write_all(b"{\"entry\":")
                .and_then(|()| out.write_all(bytes))
                .and_then(|()| writeln!(out, ",\"index\":{index}}}")),
            Some(None) => {
                self.count.without_form += 1;
                return Ok(());
            }
            Some(Some(event)) => serde_json::to_writer(&mut *out, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
        };
        written.map_err(|e| self.failed(&e))?;
        self.count.written += 1;
        Ok(())
    }

    /// Flushes the output and says how many lines were written.
    pub fn finish(mut self) -> Result<EventCount, EngineError> {
        self.out.flush().map_err(|e| self.failed(&e))?;
        Ok(self.count)
    }

    fn failed(&self, e: &std::io::Error) -> EngineError {
        let what = match self.format {
            EventFormat::Jsonl => "JSON Lines",
            EventFormat::Ocsf => "OCSF events",
        };
        EngineError::Invalid(format!("writing {what}: {e}"))
    }
}

/// Writes matching events as JSON Lines: `{"entry":<signed entry>,"index":N}` per line, the
/// entry exactly as signed, so each line can be checked on its own. Returns the line count.
pub fn write_jsonl<W: Write>(
    state: &LogState,
    entries: &[Vec<u8>],
    filter: &ExportFilter,
    out: W,
) -> Result<usize, EngineError> {
    let mut export = EventExport::new(state, filter, EventFormat::Jsonl, out);
    for bytes in entries {
        export.entry(bytes)?;
    }
    Ok(usize::try_from(export.finish()?.written).unwrap_or(usize::MAX))
}

/// Entries read from the store at a time by [`Engine::export_events`].
const BATCH: u64 = 4096;

impl Engine {
    /// Streams the log's entries, a batch at a time, through an event export in `format` to
    /// `out`, calling `progress(done, total)` after each batch.
    pub async fn export_events<W: Write>(
        &self,
        format: EventFormat,
        filter: &ExportFilter,
        out: W,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<EventCount, EngineError> {
        let total = self.size();
        let mut export = EventExport::new(self.state(), filter, format, out);
        progress(0, total);
        self.each_batch(|batch| {
            for e in batch {
                export.entry(&e.bytes)?;
            }
            progress(batch.last().map_or(0, |e| e.index + 1), total);
            Ok(true)
        })
        .await?;
        export.finish()
    }

    /// Reads the log's entries in order, [`BATCH`] at a time, handing each batch to `f` until
    /// `f` answers false or the log ends.
    pub(crate) async fn each_batch(
        &self,
        f: impl FnMut(&[StoredEntry]) -> Result<bool, EngineError>,
    ) -> Result<(), EngineError> {
        let total = self.size();
        each_stored_batch(
            self.store(),
            total,
            &format!("the log's {total} entries"),
            f,
        )
        .await
    }

    /// Streams the log as a bundle — every entry the newest verified checkpoint covers, then
    /// that checkpoint — to `out`, a batch at a time, calling `progress(done, total)` after
    /// each batch. Returns the number of entries, which on a team's log may be fewer than
    /// [`Engine::size`] while members' newest entries await the broker's checkpoint.
    pub async fn export_bundle<W: Write>(
        &self,
        out: W,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, EngineError> {
        let (covered, checkpoint) = self.bundle_checkpoint().await?;
        let (origin, log_key) = self.origin_and_key()?;
        write_stored_bundle(
            self.store(),
            origin,
            log_key,
            covered,
            &checkpoint,
            out,
            progress,
        )
        .await?;
        Ok(covered)
    }

    /// What a bundle of this log closes with: how many entries the newest verified checkpoint
    /// covers, and its signed note — with the members' cosignatures of this very checkpoint as
    /// extra signature lines when the state here is the bundle's (no member entry awaits the
    /// checkpoint), so that each is checked against the keys the bundle itself enrols.
    pub(crate) async fn bundle_checkpoint(&self) -> Result<(u64, String), EngineError> {
        let (covered, checkpoint) = self.latest_checkpoint().await?;
        if covered != self.size() {
            return Ok((covered, checkpoint));
        }
        let rows = self.store().cosignatures().await?;
        let note = with_cosignatures(
            self.state(),
            &checkpoint,
            rows.iter()
                .filter(|r| r.size == covered)
                .map(|r| r.signature.as_str()),
        );
        Ok((covered, note))
    }

    /// The log's origin and checkpoint key, from its first entry.
    pub(crate) fn origin_and_key(&self) -> Result<(&str, &str), EngineError> {
        let state = self.state();
        match (state.origin(), state.log_key()) {
            (Some(origin), Some(log_key)) => Ok((origin, log_key)),
            _ => Err(EngineError::Invalid("the log has no first entry".into())),
        }
    }
}

/// Verifies the bundle [`write_stored_bundle`] writes of the first `size` entries of `store`,
/// closed by `note`, without holding it: it is written a batch at a time into a pipe whose other
/// end [`verify_bundle_stream`] reads on a thread of its own. Returns the verifier's verdict; a
/// failure to read the store is the error, unless the verifier found one first.
pub async fn verify_stored_bundle(
    store: &Store,
    origin: &str,
    log_key: &str,
    size: u64,
    note: &str,
    opts: VerifyOptions,
) -> Result<Result<BundleReport, BundleError>, EngineError> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| EngineError::Invalid(format!("cannot verify the log: {e}")))?;
    let verifier = std::thread::spawn(move || {
        verify_bundle_stream(std::io::BufReader::with_capacity(1 << 20, reader), &opts)
    });
    let written = write_stored_bundle(
        store,
        origin,
        log_key,
        size,
        note,
        std::io::BufWriter::with_capacity(1 << 20, writer),
        &mut |_, _| {},
    )
    .await;
    // The writer is closed here (finished, or dropped on an error), so the verifier ends.
    let verified = verifier
        .join()
        .map_err(|_| EngineError::Invalid("the verifier stopped unexpectedly".into()))?;
    match (written, verified) {
        (Err(e), Ok(_)) => Err(e),
        (_, verified) => Ok(verified),
    }
}

/// Writes the bundle of the first `size` entries of `store`, read a batch at a time, closed by
/// the signed checkpoint `note` (which must cover exactly them), calling `progress(done, size)`
/// before the first batch and after each.
pub async fn write_stored_bundle<W: Write>(
    store: &Store,
    origin: &str,
    log_key: &str,
    size: u64,
    note: &str,
    out: W,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), EngineError> {
    let failed = |e: BundleError| EngineError::Invalid(format!("writing the bundle: {e}"));
    let mut bundle = BundleWriter::new(out, origin, log_key, size).map_err(failed)?;
    progress(0, size);
    let expected = format!("the {size} entries its checkpoint covers");
    each_stored_batch(store, size, &expected, |batch| {
        for e in batch {
            bundle.entry(&e.bytes).map_err(failed)?;
        }
        progress(batch.last().map_or(0, |e| e.index + 1), size);
        Ok(true)
    })
    .await?;
    bundle.finish(note).map_err(failed)?;
    Ok(())
}

/// Reads the first `total` entries of `store` in order, [`BATCH`] at a time, handing each batch
/// to `f` until `f` answers false. A store that holds fewer (described by `expected`) was
/// tampered with.
async fn each_stored_batch(
    store: &Store,
    total: u64,
    expected: &str,
    mut f: impl FnMut(&[StoredEntry]) -> Result<bool, EngineError>,
) -> Result<(), EngineError> {
    let mut done = 0;
    while done < total {
        let batch = store.entries(done, (done + BATCH).min(total)).await?;
        if batch.is_empty() {
            return Err(EngineError::Tampered(format!(
                "the store holds {done} of {expected}"
            )));
        }
        if !f(&batch)? {
            break;
        }
        done += batch.len() as u64;
    }
    Ok(())
}
