//! Evidence packages: everything about one request, proven to be in the log by inclusion proofs
//! against one signed checkpoint, verifiable with nothing else.
//!
//! Format (UTF-8 text, one canonical JSON value or entry per line, `\n` after every line):
//!
//! ```text
//! {"format":"breakglass-evidence","log_key":"<vkey>","origin":"<origin>","request":"<id>","size":N,"version":1}
//! {"index":I,"proof":["<base64 hash>",…]}
//! <entry I bytes>
//! … (a proof line and an entry line for each entry, in increasing index order)
//! {"checkpoint":"<C2SP signed note covering exactly N entries>"}
//! ```
//!
//! The entries are a subset of the log's first N that replays on its own: the log's first entry
//! (which names the log key), every policy version, the enrolments and revocations of everyone
//! who acted on the request or decided it (and of whoever enrolled them), the providers'
//! recorded keys, and every entry about the request and the requests it extends or that extend
//! it. The verifier checks the checkpoint with the log key, each entry's inclusion proof
//! against the checkpoint's root, every signature, and replays every rule over the subset in
//! order (quorum, caps, no self-approval, sign-ins); every line must be byte-for-byte
//! canonical, so no byte of a valid package can change without it failing. What a package
//! cannot prove is that it omits nothing: an exporter could leave out a later entry about the
//! request (a bundle of the whole log can).

use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use breakglass_core::{LogState, Request, RequestId};
use serde::{Deserialize, Serialize};

use crate::bundle::{canonical_line, BundleError, VerifyOptions};
use crate::canonical::parse_canonical;
use crate::entry::{decode_all, verify_signatures};
use crate::merkle::{hash_from_slice, verify_inclusion, Hash};
use crate::note::NoteVerifier;
use crate::replay::{replay_one, Violation};

const FORMAT: &str = "breakglass-evidence";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    log_key: String,
    origin: String,
    request: String,
    size: u64,
    version: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofLine {
    index: u64,
    proof: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    checkpoint: String,
}

/// What a verified evidence package holds.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceReport {
    /// The request the package is about.
    pub request: Request,
    /// Entries in the package.
    pub entries: u64,
    /// Entries the checkpoint covers (the log's size when it was exported).
    pub log_size: u64,
    /// The log's origin.
    pub origin: String,
    /// The checkpoint, as signed.
    pub checkpoint: String,
    /// What was checked, in plain words, one statement each.
    pub checks: Vec<String>,
}

/// One entry to put in a package: its index in the log and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceEntry<'a> {
    /// Position in the log.
    pub index: u64,
    /// The entry's bytes.
    pub bytes: &'a [u8],
    /// Its inclusion proof in the tree the checkpoint signs.
    pub proof: &'a [Hash],
}

/// Writes the evidence package for `request`: `entries` (in increasing index order, each with
/// its inclusion proof) of the log `origin` whose `checkpoint` (signed by `log_key`) covers
/// `size` entries.
pub fn write_evidence<W: Write>(
    mut out: W,
    log_key: &str,
    origin: &str,
    request: &RequestId,
    size: u64,
    entries: &[EvidenceEntry<'_>],
    checkpoint: &str,
) -> Result<(), BundleError> {
    let header = Header {
        format: FORMAT.into(),
        log_key: log_key.into(),
        origin: origin.into(),
        request: request.to_string(),
        size,
        version: VERSION,
    };
    out.write_all(&canonical_line(&header)?)?;
    out.write_all(b"\n")?;
    for e in entries {
        let proof = ProofLine {
            index: e.index,
            proof: e.proof.iter().map(|h| STANDARD.encode(h)).collect(),
        };
        out.write_all(&canonical_line(&proof)?)?;
        out.write_all(b"\n")?;
        out.write_all(e.bytes)?;
        out.write_all(b"\n")?;
    }
    let trailer = Trailer {
        checkpoint: checkpoint.into(),
    };
    out.write_all(&canonical_line(&trailer)?)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Whether `bytes` start like an evidence package (rather than a bundle).
pub fn is_evidence(bytes: &[u8]) -> bool {
    bytes.starts_with(b"{\"format\":\"breakglass-evidence\"")
}

/// Verifies an evidence package with nothing else: see the module docs. With
/// `opts.log_key`, the package's log key must be that one. A package carries no consistency
/// proof, so `opts.earlier_checkpoint` is refused.
pub fn verify_evidence(bytes: &[u8], opts: &VerifyOptions) -> Result<EvidenceReport, BundleError> {
    if opts.earlier_checkpoint.is_some() {
        return Err(BundleError::Inconsistent(
            "an evidence package carries no consistency proof; check a bundle of the whole log \
             against an earlier checkpoint instead"
                .into(),
        ));
    }
    let text = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| malformed(0, "it does not end with a newline"))?;
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    if lines.len() < 4 || !lines.len().is_multiple_of(2) {
        return Err(malformed(
            lines.len(),
            "a header, a proof line and an entry line for each entry, and a checkpoint are \
             required",
        ));
    }
    let header: Header = parse_line(lines[0], 1)?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(malformed(
            1,
            format!("not a {FORMAT} version {VERSION} header"),
        ));
    }
    let request =
        RequestId::parse(&header.request).map_err(|e| malformed(1, format!("request id: {e}")))?;
    let verifier = NoteVerifier::from_vkey(&header.log_key)
        .map_err(|e| BundleError::KeyMismatch(format!("the package's log key: {e}")))?;
    if let Some(pinned) = &opts.log_key {
        if pinned != &verifier {
            return Err(BundleError::KeyMismatch(
                "the package is signed with another log key than the one given".into(),
            ));
        }
    }
    if verifier.name() != header.origin {
        return Err(BundleError::KeyMismatch(format!(
            "the log key is named {}, the package's log {}",
            verifier.name(),
            header.origin
        )));
    }
    let last = lines.len();
    let trailer: Trailer = parse_line(lines[last - 1], last)?;
    let cp = verifier
        .verify_checkpoint(&trailer.checkpoint)
        .map_err(|e| BundleError::Checkpoint(e.to_string()))?;
    if cp.size != header.size {
        return Err(BundleError::RootMismatch(format!(
            "the header says {} entries, the checkpoint covers {}",
            header.size, cp.size
        )));
    }
    let pairs = &lines[1..last - 1];
    let mut indexes = Vec::with_capacity(pairs.len() / 2);
    let mut proofs = Vec::with_capacity(pairs.len() / 2);
    for (n, pair) in pairs.chunks(2).enumerate() {
        let at = 2 + 2 * n;
        let p: ProofLine = parse_line(pair[0], at)?;
        if indexes.last().is_some_and(|&prev| p.index <= prev) || p.index >= header.size {
            return Err(malformed(
                at,
                format!(
                    "entry index {} is out of order or past the checkpoint's {} entries",
                    p.index, header.size
                ),
            ));
        }
        if n == 0 && p.index != 0 {
            return Err(malformed(
                at,
                "the first entry must be the log's first (it names the log key)",
            ));
        }
        let proof = p
            .proof
            .iter()
            .map(|h| {
                STANDARD
                    .decode(h)
                    .ok()
                    .filter(|bytes| STANDARD.encode(bytes) == *h)
                    .and_then(|bytes| hash_from_slice(&bytes).ok())
                    .ok_or_else(|| {
                        malformed(at, "a proof hash is not canonical base64 of 32 bytes")
                    })
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        indexes.push(p.index);
        proofs.push(proof);
    }
    let entry_lines: Vec<&[u8]> = pairs.chunks(2).map(|pair| pair[1]).collect();
    let entries = decode_all(&entry_lines).map_err(|(i, error)| {
        BundleError::Violation(Violation::Entry {
            index: indexes[i],
            error,
        })
    })?;
    verify_signatures(&entries).map_err(|(i, error)| {
        BundleError::Violation(Violation::Entry {
            index: indexes[i],
            error,
        })
    })?;
    let mut state = LogState::new();
    for ((entry, &index), proof) in entries.iter().zip(&indexes).zip(&proofs) {
        verify_inclusion(index, header.size, entry.leaf_hash(), proof, &cp.root).map_err(|e| {
            BundleError::RootMismatch(format!("entry {index} is not in the signed log: {e}"))
        })?;
        replay_one(&mut state, entry, index).map_err(BundleError::Violation)?;
    }
    if state.log_key() != Some(header.log_key.as_str()) || state.origin() != Some(&header.origin) {
        return Err(BundleError::KeyMismatch(
            "the log's first entry names another log or log key than the package".into(),
        ));
    }
    let found = state
        .request(&request)
        .cloned()
        .ok_or_else(|| BundleError::Malformed {
            line: 1,
            why: format!("the package holds no entry of request {request}"),
        })?;
    let count = entries.len() as u64;
    let mut checks = vec![
        format!(
            "checkpoint: signed by the log key of {} ({}), covering {} entries",
            header.origin,
            if opts.log_key.is_some() {
                "the key you pinned with --log-key"
            } else {
                "recorded in the log's first entry, which the package holds"
            },
            header.size
        ),
        format!(
            "inclusion: each of the {count} entries is proven, by its RFC 6962 inclusion proof, \
             to be the entry at its index in the signed tree"
        ),
        "encoding: every line is in its one canonical form".to_owned(),
    ];
    checks.extend(crate::bundle::state_checks(&state, count));
    checks.push(
        "completeness: not provable from a package (a later entry about the request could be \
         left out); a bundle of the whole log proves it"
            .to_owned(),
    );
    Ok(EvidenceReport {
        checks,
        request: found,
        entries: count,
        log_size: header.size,
        origin: header.origin,
        checkpoint: trailer.checkpoint,
    })
}

fn malformed(line: usize, why: impl Into<String>) -> BundleError {
    BundleError::Malformed {
        line,
        why: why.into(),
    }
}

fn parse_line<T: serde::de::DeserializeOwned>(bytes: &[u8], line: usize) -> Result<T, BundleError> {
    // An entry line is at most MAX_ENTRY_LEN; the package's own lines are far smaller, but a
    // checkpoint's note may carry witnesses' lines.
    let value = parse_canonical(bytes, 64 * 1024).map_err(|e| malformed(line, e.to_string()))?;
    serde_json::from_value(value).map_err(|e| malformed(line, e.to_string()))
}
