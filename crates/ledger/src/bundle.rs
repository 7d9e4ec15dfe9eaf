//! Export bundles: a whole log prefix that verifies with nothing else.
//!
//! Format (UTF-8 text, one canonical JSON value per line, `\n` after every line):
//!
//! ```text
//! {"format":"breakglass-bundle","log_key":"<vkey>","origin":"<origin>","size":N,"version":1}
//! <entry 0 bytes>
//! …
//! <entry N-1 bytes>
//! {"checkpoint":"<C2SP signed note covering exactly N entries>"}
//! ```
//!
//! The verifier recomputes the RFC 6962 root over all N entries and requires the signed
//! checkpoint to name it, so a dropped, duplicated, reordered or altered entry is detected; it
//! checks every signature, replays every rule (quorum, caps, no self-approval, …) and requires
//! the checkpoint key to be the one recorded, signed by the first administrator, in entry 0.
//! Every line must be byte-for-byte canonical, so no byte of a valid bundle can change without
//! the bundle failing.

use std::io::{self, BufRead, Read, Write};

use breakglass_core::LogState;
use serde::{Deserialize, Serialize};

use crate::canonical::{parse_canonical, to_canonical_vec};
use crate::entry::Entry;
use crate::merkle::{Frontier, Hash};
use crate::note::{Checkpoint, NoteVerifier};
use crate::pipeline::{check_entries, Stop};
use crate::replay::{apply_checked, Violation};
use crate::witness::check_cosignatures;

const FORMAT: &str = "breakglass-bundle";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    log_key: String,
    origin: String,
    size: u64,
    version: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    checkpoint: String,
}

/// Why a bundle failed verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle's structure is broken (truncated, extra data, bad header or trailer).
    #[error("bundle is malformed at line {line}: {why}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// An entry is bad or breaks a rule.
    #[error("{0}")]
    Violation(Violation),
    /// The checkpoint does not verify with the log key.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// The entries do not hash to the checkpoint's root, or their count differs.
    #[error("the entries do not match the signed checkpoint: {0}")]
    RootMismatch(String),
    /// The log key differs from the one recorded in the log or pinned by the verifier.
    #[error("log key mismatch: {0}")]
    KeyMismatch(String),
    /// A consistency check against an earlier checkpoint failed.
    #[error("not consistent with the given checkpoint: {0}")]
    Inconsistent(String),
    /// Writing the bundle failed.
    #[error("writing the bundle failed: {0}")]
    Io(#[from] io::Error),
}

/// What a successful verification established.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The log's origin.
    pub origin: String,
    /// The checkpoint key (C2SP vkey).
    pub log_key: String,
    /// Entries verified.
    pub entries: u64,
    /// Root hash (hex) the checkpoint signs.
    pub root: String,
    /// Identities enrolled.
    pub identities: usize,
    /// Policy versions applied.
    pub policy_versions: usize,
    /// Requests made.
    pub requests: usize,
    /// Requests that were granted.
    pub grants: usize,
    /// Break-glass activations.
    pub break_glass: usize,
    /// Break-glass reviews still owed.
    pub reviews_owed: usize,
    /// Size of the earlier checkpoint this bundle was shown consistent with, if one was given.
    pub consistent_with: Option<u64>,
    /// Members of the log who cosigned its checkpoint as witnesses (team mode), each checked
    /// against their enrolled key.
    pub witnessed_by: Vec<String>,
    /// What was checked, in plain words, one statement each.
    pub checks: Vec<String>,
}

/// Writes a bundle of `entries` (the whole log prefix of the checkpoint's size).
pub fn write_bundle<W: Write>(
    out: W,
    origin: &str,
    log_key: &str,
    entries: impl IntoIterator<Item = impl AsRef<[u8]>>,
    size: u64,
    checkpoint_note: &str,
) -> Result<(), BundleError> {
    let mut bundle = BundleWriter::new(out, origin, log_key, size)?;
    for e in entries {
        bundle.entry(e.as_ref())?;
    }
    bundle.finish(checkpoint_note)?;
    Ok(())
}

/// Writes a bundle a part at a time — its header, each entry in order, then the checkpoint —
/// so a log of any length streams through a fixed amount of memory.
pub struct BundleWriter<W: Write> {
    out: W,
    size: u64,
    written: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle of the log's first `size` entries by writing its header.
    pub fn new(mut out: W, origin: &str, log_key: &str, size: u64) -> Result<Self, BundleError> {
        let header = Header {
            format: FORMAT.into(),
            log_key: log_key.into(),
            origin: origin.into(),
            size,
            version: VERSION,
        };
        out.write_all(&canonical_line(&header)?)?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            size,
            written: 0,
        })
    }

    /// Writes the next entry (its signed bytes, exactly as stored).
    pub fn entry(&mut self, bytes: &[u8]) -> Result<(), BundleError> {
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Writes the checkpoint that covers the entries and flushes; refuses when the entries
    /// written are not exactly the header's size.
    pub fn finish(mut self, checkpoint_note: &str) -> Result<W, BundleError> {
        if self.written != self.size {
            return Err(BundleError::RootMismatch(format!(
                "{} entries written for a checkpoint of size {}",
                self.written, self.size
            )));
        }
        self.out.write_all(&canonical_line(&Trailer {
            checkpoint: checkpoint_note.into(),
        })?)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

pub(crate) fn canonical_line<T: Serialize>(value: &T) -> Result<Vec<u8>, BundleError> {
    to_canonical_vec(value).map_err(|e| BundleError::Malformed {
        line: 0,
        why: e.to_string(),
    })
}

/// Options for [`verify_bundle`].
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// Require this checkpoint key (an auditor's pinned copy), instead of trusting entry 0's.
    pub log_key: Option<NoteVerifier>,
    /// An earlier signed checkpoint the auditor kept: the bundle must extend it.
    pub earlier_checkpoint: Option<String>,
}

/// Verifies a bundle completely, needing nothing but its bytes (and optional pins), as
/// [`verify_bundle_stream`] does. With the whole bundle at hand its checkpoint is checked
/// against its header first, so a bundle whose entry count was changed is refused as not
/// matching its checkpoint before any entry is read.
pub fn verify_bundle(bytes: &[u8], opts: &VerifyOptions) -> Result<BundleReport, BundleError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or_default();
    if let (Some(first), Some(last)) = (memchr::memchr(b'\n', body), memchr::memrchr(b'\n', body)) {
        let header = parse_header(&body[..first]);
        // A last line that is not a checkpoint is reported, with its line number, by the
        // streaming verifier.
        let trailer = parse_trailer(&body[last + 1..], 0);
        if let (Ok(header), Ok(trailer)) = (header, trailer) {
            check_checkpoint(&verifier_for(&header, opts)?, &trailer, &header)?;
        }
    }
    verify_bundle_stream(bytes, opts)
}

fn parse_header(line: &[u8]) -> Result<Header, BundleError> {
    let malformed = |why: String| BundleError::Malformed { line: 1, why };
    let value = parse_canonical(line, 64 * 1024).map_err(|e| malformed(format!("header: {e}")))?;
    let header: Header =
        serde_json::from_value(value).map_err(|e| malformed(format!("header: {e}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(malformed(format!(
            "not a breakglass bundle of version {VERSION} (format {:?}, version {})",
            header.format, header.version
        )));
    }
    if to_canonical_vec(&header).ok().as_deref() != Some(line) {
        return Err(malformed("header is not in canonical form".into()));
    }
    Ok(header)
}

/// The trailer at 1-based line `at`.
fn parse_trailer(line: &[u8], at: usize) -> Result<Trailer, BundleError> {
    parse_canonical(line, 64 * 1024)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .filter(|t: &Trailer| to_canonical_vec(t).ok().as_deref() == Some(line))
        .ok_or_else(|| BundleError::Malformed {
            line: at,
            why: "the last line is not the checkpoint".into(),
        })
}

/// The checkpoint key to check with: the pinned one (which must be the bundle's), else the
/// header's.
fn verifier_for(header: &Header, opts: &VerifyOptions) -> Result<NoteVerifier, BundleError> {
    match &opts.log_key {
        Some(pinned) => {
            if pinned.vkey() != header.log_key {
                return Err(BundleError::KeyMismatch(format!(
                    "the bundle's log key {} is not the pinned key {}",
                    header.log_key,
                    pinned.vkey()
                )));
            }
            Ok(pinned.clone())
        }
        None => NoteVerifier::from_vkey(&header.log_key).map_err(|e| BundleError::Malformed {
            line: 1,
            why: format!("log key: {e}"),
        }),
    }
}

fn check_checkpoint(
    verifier: &NoteVerifier,
    trailer: &Trailer,
    header: &Header,
) -> Result<Checkpoint, BundleError> {
    let checkpoint = verifier
        .verify_checkpoint(&trailer.checkpoint)
        .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
    if checkpoint.origin != header.origin {
        return Err(BundleError::Checkpoint(format!(
            "checkpoint origin {:?} is not the bundle's {:?}",
            checkpoint.origin, header.origin
        )));
    }
    if checkpoint.size != header.size {
        return Err(BundleError::RootMismatch(format!(
            "checkpoint covers {} entries, the bundle has {}",
            checkpoint.size, header.size
        )));
    }
    Ok(checkpoint)
}

/// Entries a worker of [`verify_bundle_stream`] checks at a time (one signature batch).
pub(crate) const STREAM_BATCH: usize = 256;

/// Entries [`verify_bundle_stream`] replays between two retirements of ended requests.
const RETIRE_EVERY: u64 = 2048;

/// The longest line [`verify_bundle_stream`] reads (an entry holding a policy's source or a
/// provider's key set is a few kilobytes).
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Verifies a bundle read from `input`: its header, every entry's canonical encoding,
/// signature and rules, the Merkle root, the signed checkpoint, the first administrator's
/// log key, any earlier checkpoint it must extend and any witnesses' cosignatures. The entries'
/// signatures are checked on every core while they are read, and each entry is decoded and
/// replayed in order once its batch is checked (see `pipeline`); what it holds at once is a
/// few batches of entry lines, the Merkle tree's frontier and the replayed state of the
/// requests still open (ended ones are retired to their id and outcome,
/// [`LogState::retire_ended`]), never the whole bundle, so memory stays flat as the log grows.
/// The first failure in log order is reported; the checkpoint is read last, so a bundle whose
/// entries fail is reported at the first bad entry before its checkpoint is looked at.
pub fn verify_bundle_stream<R: BufRead>(
    input: R,
    opts: &VerifyOptions,
) -> Result<BundleReport, BundleError> {
    verify_stream(input, opts, STREAM_BATCH, RETIRE_EVERY)
}

/// [`verify_bundle_stream`] checking `chunk` entries at a time and retiring ended requests
/// after every `chunk` (tests use small chunks so that ended requests are retired between a
/// request's events).
#[doc(hidden)]
pub fn verify_bundle_stream_in_chunks<R: BufRead>(
    input: R,
    opts: &VerifyOptions,
    chunk_entries: usize,
) -> Result<BundleReport, BundleError> {
    let chunk_entries = chunk_entries.max(1);
    verify_stream(input, opts, chunk_entries, chunk_entries as u64)
}

fn verify_stream<R: BufRead>(
    mut input: R,
    opts: &VerifyOptions,
    batch: usize,
    retire_every: u64,
) -> Result<BundleReport, BundleError> {
    let malformed = |line: usize, why: String| BundleError::Malformed { line, why };
    let mut buf = Vec::new();
    let truncated = |line: usize| {
        malformed(
            line,
            "the file is truncated (its last line is incomplete)".into(),
        )
    };
    match read_line(&mut input, &mut buf)? {
        Line::End => return Err(malformed(1, "the file is empty".into())),
        Line::Unterminated => return Err(truncated(1)),
        Line::Whole => {}
    }
    let header = parse_header(&buf)?;
    let verifier = verifier_for(&header, opts)?;
    let earlier = match &opts.earlier_checkpoint {
        None => None,
        Some(note) => {
            let earlier = verifier
                .verify_checkpoint(note)
                .map_err(|e| BundleError::Inconsistent(format!("the earlier checkpoint: {e}")))?;
            if earlier.size > header.size {
                return Err(BundleError::Inconsistent(format!(
                    "the earlier checkpoint covers {} entries, more than the bundle's {} (history was truncated)",
                    earlier.size, header.size
                )));
            }
            Some(earlier)
        }
    };
    let mut state = LogState::new();
    let mut frontier = Frontier::new();
    let mut consistent_with = None;
    let mut check_earlier_at = |frontier: &Frontier| -> Result<(), BundleError> {
        if let Some(e) = earlier.as_ref().filter(|e| e.size == frontier.size()) {
            if frontier.root() != e.root {
                return Err(BundleError::Inconsistent(format!(
                    "the first {} entries do not hash to the earlier checkpoint's root (history was rewritten)",
                    e.size
                )));
            }
            consistent_with = Some(e.size);
        }
        Ok(())
    };
    check_earlier_at(&frontier)?;
    let size = header.size;
    let read = |buf: &mut Vec<u8>, index: u64| {
        let line = usize::try_from(index)
            .unwrap_or(usize::MAX)
            .saturating_add(2);
        match read_line(&mut input, buf)? {
            Line::Whole => Ok(()),
            Line::Unterminated => Err(truncated(line)),
            Line::End => Err(malformed(
                line,
                format!(
                    "the header announces {size} entries but the bundle ends after {index} (truncated)"
                ),
            )),
        }
    };
    let apply = |index: u64, entry: &Entry<&[u8]>| {
        apply_checked(&mut state, entry, index).map_err(BundleError::Violation)?;
        frontier.push(*entry.leaf_hash());
        check_earlier_at(&frontier)?;
        // Requests that ended for good keep only their id and outcome from here on.
        if (index + 1).is_multiple_of(retire_every) {
            state.retire_ended();
        }
        Ok(())
    };
    check_entries(size, batch, read, apply).map_err(|stop| match stop {
        Stop::Entry { index, error } => BundleError::Violation(Violation::Entry { index, error }),
        Stop::Other(e) => e,
    })?;
    let at = usize::try_from(header.size)
        .unwrap_or(usize::MAX)
        .saturating_add(2);
    buf.clear();
    match read_line(&mut input, &mut buf)? {
        Line::Whole => {}
        Line::Unterminated => return Err(truncated(at)),
        Line::End => {
            return Err(malformed(
                at,
                "the checkpoint line is missing (truncated)".into(),
            ))
        }
    }
    let trailer = parse_trailer(&buf, at)?;
    buf.clear();
    match read_line(&mut input, &mut buf)? {
        Line::End => {}
        _ => {
            return Err(malformed(
                at + 1,
                format!(
                    "the header announces {} entries but more lines follow the checkpoint (padded)",
                    header.size
                ),
            ))
        }
    }
    let checkpoint = check_checkpoint(&verifier, &trailer, &header)?;
    let root = frontier.root();
    if root != checkpoint.root {
        return Err(BundleError::RootMismatch(
            "the Merkle root of the entries is not the root the checkpoint signs".into(),
        ));
    }
    check_genesis(&state, &header)?;
    let witnessed_by = check_cosignatures(&state, &trailer.checkpoint)?;
    Ok(report(
        &state,
        header,
        &root,
        consistent_with,
        opts.log_key.is_some(),
        witnessed_by,
    ))
}

enum Line {
    /// A line ending in a newline (appended to the buffer without it).
    Whole,
    /// Bytes without a newline before the end of the input.
    Unterminated,
    /// Nothing more.
    End,
}

/// Reads one line and appends it to `buf` without its newline.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> Result<Line, BundleError> {
    let n = input.by_ref().take(MAX_LINE + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 > MAX_LINE {
            return Err(BundleError::Malformed {
                line: 0,
                why: format!("a line is longer than {MAX_LINE} bytes"),
            });
        }
        return Ok(Line::Unterminated);
    }
    buf.pop();
    Ok(Line::Whole)
}

/// Plain statements of what replaying `entries` events into `state` checked.
pub(crate) fn state_checks(state: &LogState, entries: u64) -> Vec<String> {
    let identities: Vec<_> = state.identities().collect();
    let providers = identities
        .iter()
        .filter(|i| i.record.binding.oidc().is_some())
        .count();
    let tally = state.tally();
    let (decisions, granted) = (tally.decisions, tally.grants);
    vec![
        format!(
            "signatures: all {entries} events are signed by their actor's enrolled, unrevoked \
             Ed25519 key"
        ),
        format!(
            "enrolments: {} identities, {providers} of them bound to an identity provider by an \
             ID token checked against the provider keys recorded in the log and bound to their \
             key by its nonce",
            identities.len()
        ),
        format!(
            "policy rules, replayed under {} policy version(s): {} requests within their \
             targets' caps and extension caps; {decisions} decisions, each by an approver of the \
             target who is not the requester, bound to the request's exact entry; {granted} \
             grants, each made by the broker once its quorum approved (or a break-glass rule \
             allowed it), with a deadline of the grant time plus the duration asked for; every \
             expiry recorded no earlier than its deadline",
            state.policies().len(),
            tally.requests,
        ),
    ]
}

fn check_genesis(state: &LogState, header: &Header) -> Result<(), BundleError> {
    if state.origin() != Some(header.origin.as_str()) {
        return Err(BundleError::KeyMismatch(
            "entry 0 names a different log origin than the bundle header".into(),
        ));
    }
    if state.log_key() != Some(header.log_key.as_str()) {
        return Err(BundleError::KeyMismatch(
            "the checkpoint key is not the one recorded in entry 0".into(),
        ));
    }
    Ok(())
}

fn report(
    state: &LogState,
    header: Header,
    root: &Hash,
    consistent_with: Option<u64>,
    pinned: bool,
    witnessed_by: Vec<String>,
) -> BundleReport {
    let tally = state.tally();
    let root_hex = breakglass_core::hex(root);
    let mut checks = vec![
        format!(
            "checkpoint: signed by the log key of {} ({}), covering exactly the {} entries",
            header.origin,
            if pinned {
                "the key you pinned with --log-key"
            } else {
                "recorded in entry 0, signed by the first administrator"
            },
            header.size
        ),
        format!(
            "Merkle tree: the RFC 6962 root of the {} entries is the signed root {root_hex}, so \
             none was altered, added, dropped or reordered",
            header.size
        ),
        "encoding: every line is in its one canonical form".to_owned(),
    ];
    checks.extend(state_checks(state, header.size));
    checks.push(match consistent_with {
        Some(size) => format!(
            "consistency: the first {size} entries hash to the earlier checkpoint you gave, so \
             the history it covered was neither rewritten nor truncated"
        ),
        None => "consistency: not checked (give an earlier checkpoint with --checkpoint to prove \
                 this log extends it)"
            .to_owned(),
    });
    checks.push(if witnessed_by.is_empty() {
        "witnesses: no member of the log cosigned this checkpoint".to_owned()
    } else {
        format!(
            "witnesses: {} cosigned this checkpoint (C2SP tlog-cosignature v1), each with their \
             enrolled key, so they saw this same tree",
            witnessed_by.join(", ")
        )
    });
    BundleReport {
        checks,
        origin: header.origin,
        log_key: header.log_key,
        entries: header.size,
        root: breakglass_core::hex(root),
        identities: state.identities().count(),
        policy_versions: state.policies().len(),
        requests: tally.requests,
        grants: tally.grants,
        break_glass: tally.break_glass,
        reviews_owed: tally.reviews_owed,
        consistent_with,
        witnessed_by,
    }
}
