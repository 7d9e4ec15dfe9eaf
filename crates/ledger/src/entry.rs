//! Signed log entries: one event, the actor's public key and its Ed25519 signature.
//!
//! Wire form (canonical JSON, see [`crate::canonical`]):
//! `{"event":{…},"key":"<base64 public key>","sig":"<base64 signature>"}`.
//! The signature covers `breakglass/event/v1\n` followed by the canonical bytes of the event, so a
//! signature over an event can never be mistaken for a signature over anything else.

use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;

use base64::Engine as _;
use breakglass_core::{Event, PublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::canonical::{first_difference, to_canonical_vec};
use crate::merkle::{leaf_hash, Hash};

/// Domain separation prefix of every event signature.
pub const EVENT_SIGNATURE_CONTEXT: &[u8] = b"breakglass/event/v1\n";

/// Largest entry accepted, in bytes (a policy source may be up to 1 MiB).
pub const MAX_ENTRY_LEN: usize = 2 * 1024 * 1024;

/// Why an entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The bytes are not canonical JSON of the entry schema.
    #[error("entry is not canonical JSON of a signed event: {0}")]
    Malformed(String),
    /// The public key is not a valid Ed25519 point or is a weak key.
    #[error("entry carries an invalid public key")]
    BadKey,
    /// The signature does not verify.
    #[error("signature of {actor}'s {kind} event does not verify")]
    BadSignature {
        /// The actor named in the event.
        actor: String,
        /// The event type.
        kind: &'static str,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    event: Event,
    key: PublicKey,
    sig: Sig,
}

/// An Ed25519 signature written as standard base64 (88 characters).
struct Sig([u8; 64]);

impl Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SigVisitor;

        impl serde::de::Visitor<'_> for SigVisitor {
            type Value = Sig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 Ed25519 signature")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sig, E> {
                let mut out = [0u8; 64];
                match STANDARD.decode_slice(v, &mut out) {
                    Ok(64) => Ok(Sig(out)),
                    _ => Err(E::custom("signature is not 64 bytes of base64")),
                }
            }
        }

        d.deserialize_str(SigVisitor)
    }
}

thread_local! {
    /// Scratch space for re-encoding decoded entries, reused so decoding allocates no buffer.
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A signed event as it sits in the log. `B` holds the canonical bytes: owned by default,
/// borrowed (`&[u8]`) when decoding a buffer that outlives the entries, such as a bundle.
#[derive(Clone, Debug)]
pub struct Entry<B = Vec<u8>> {
    event: Event,
    key: PublicKey,
    sig: Signature,
    bytes: B,
    leaf: Hash,
    /// End of the event's canonical bytes inside `bytes` (they start after `{"event":`).
    event_end: usize,
}

const EVENT_PREFIX: &[u8] = b"{\"event\":";
const KEY_MARKER: &[u8] = b",\"key\":\"";
const SIG_MARKER: &[u8] = b"\",\"sig\":\"";
/// `,"key":"` + 44 base64 characters + `","sig":"` + 88 base64 characters + `"}`.
const TRAILER_LEN: usize = KEY_MARKER.len() + 44 + SIG_MARKER.len() + 88 + 2;

/// Where the event ends inside canonical entry bytes: the canonical layout is
/// `{"event":<event>,"key":"<44>","sig":"<88>"}`, so the event is everything between the fixed
/// prefix and the fixed-length trailer. Only called on bytes already proven canonical.
fn event_end(bytes: &[u8]) -> Result<usize, EntryError> {
    let end = bytes
        .len()
        .checked_sub(TRAILER_LEN)
        .filter(|e| *e > EVENT_PREFIX.len());
    match end {
        Some(end) if bytes.starts_with(EVENT_PREFIX) && bytes[end..].starts_with(KEY_MARKER) => {
            Ok(end)
        }
        _ => Err(EntryError::Malformed("unexpected entry layout".into())),
    }
}

impl Entry {
    /// Signs `event` with `key`.
    pub fn sign(event: Event, key: &SigningKey) -> Result<Entry, EntryError> {
        let message = signed_message(&event)?;
        let sig = key.sign(&message);
        let wire = Wire {
            event,
            key: PublicKey(key.verifying_key().to_bytes()),
            sig: Sig(sig.to_bytes()),
        };
        let bytes = to_canonical_vec(&wire).map_err(|e| EntryError::Malformed(e.to_string()))?;
        debug_assert_eq!(
            serde_json::to_vec(&wire).ok().as_deref(),
            Some(bytes.as_slice()),
            "entry types must declare their fields in byte order: decode relies on it"
        );
        let event_end = event_end(&bytes)?;
        debug_assert_eq!(
            &message[EVENT_SIGNATURE_CONTEXT.len()..],
            &bytes[EVENT_PREFIX.len()..event_end]
        );
        Ok(Entry {
            leaf: leaf_hash(&bytes),
            event: wire.event,
            key: wire.key,
            sig,
            bytes,
            event_end,
        })
    }

    /// Decodes entry bytes, requiring the one canonical encoding. Does not check the signature
    /// (see [`Entry::verify_signature`] and [`verify_signatures`]).
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let borrowed = Entry::decode_borrowed(bytes)?;
        Ok(Entry {
            event: borrowed.event,
            key: borrowed.key,
            sig: borrowed.sig,
            bytes: bytes.to_vec(),
            leaf: borrowed.leaf,
            event_end: borrowed.event_end,
        })
    }
}

impl<'a> Entry<&'a [u8]> {
    /// Like [`Entry::decode`], keeping a reference to `bytes` instead of a copy.
    pub fn decode_borrowed(bytes: &'a [u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::Malformed(format!(
                "{} bytes, more than the {MAX_ENTRY_LEN} allowed",
                bytes.len()
            )));
        }
        let Some((event_end, key, sig)) = signed_parts(bytes) else {
            return Err(not_canonical_entry(bytes));
        };
        let event_bytes = &bytes[EVENT_PREFIX.len()..event_end];
        // UTF-8 is checked once for the whole event, not string by string as the parser would.
        let event_text = std::str::from_utf8(event_bytes)
            .map_err(|e| EntryError::Malformed(format!("the event is not UTF-8: {e}")))?;
        let event: Event =
            serde_json::from_str(event_text).map_err(|e| EntryError::Malformed(e.to_string()))?;
        // Plain serde_json output is canonical for the event types (fields are declared in
        // byte order; `Entry::sign` debug-asserts it), so writing what was read must reproduce
        // the input exactly: this rejects whitespace, reordered, duplicate, defaulted or absent
        // fields, needless escapes and every other second spelling of a signed record. With
        // the fixed prefix and the trailer checked above, the whole entry is then exactly its
        // canonical encoding.
        ENCODE_BUFFER.with_borrow_mut(|buf| {
            buf.clear();
            serde_json::to_writer(&mut *buf, &event)
                .map_err(|e| EntryError::Malformed(e.to_string()))?;
            if buf.as_slice() == event_bytes {
                Ok(())
            } else {
                Err(EntryError::Malformed(format!(
                    "not in canonical form (first difference at byte {})",
                    EVENT_PREFIX.len() + first_difference(buf, event_bytes)
                )))
            }
        })?;
        Ok(Entry {
            leaf: leaf_hash(bytes),
            event,
            key,
            sig: Signature::from_bytes(&sig.0),
            bytes,
            event_end,
        })
    }
}

/// Splits canonical entry bytes `{"event":<event>,"key":"<44>","sig":"<88>"}` at the fixed-length
/// trailer, decoding the key and signature: what checking the signature needs, without parsing
/// the event. `None` if the entry is longer than [`MAX_ENTRY_LEN`] or unless the prefix, the
/// separators and both base64 texts are exactly canonical (padded standard base64 with zero
/// trailing bits, which is the only spelling the encoder produces).
fn signed_parts(bytes: &[u8]) -> Option<(usize, PublicKey, Sig)> {
    if bytes.len() > MAX_ENTRY_LEN {
        return None;
    }
    let end = event_end(bytes).ok()?;
    let trailer = &bytes[end + KEY_MARKER.len()..];
    let (key_text, rest) = trailer.split_at(44);
    let rest = rest.strip_prefix(SIG_MARKER)?;
    let (sig_text, close) = rest.split_at(88);
    if close != b"\"}" {
        return None;
    }
    let key = PublicKey::from_base64(std::str::from_utf8(key_text).ok()?).ok()?;
    let mut sig = [0u8; 64];
    match STANDARD.decode_slice(sig_text, &mut sig) {
        Ok(64) => Some((end, key, Sig(sig))),
        _ => None,
    }
}

/// The most precise reason bytes that failed the fast layout check are not a canonical entry.
fn not_canonical_entry(bytes: &[u8]) -> EntryError {
    match serde_json::from_slice::<Wire>(bytes) {
        Err(e) => EntryError::Malformed(e.to_string()),
        Ok(wire) => {
            let canonical = to_canonical_vec(&wire).unwrap_or_default();
            EntryError::Malformed(format!(
                "not in canonical form (first difference at byte {})",
                first_difference(&canonical, bytes)
            ))
        }
    }
}

impl<B: AsRef<[u8]>> Entry<B> {
    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The key that claims to have signed it.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &Signature {
        &self.sig
    }

    /// The exact bytes the signature covers ([`EVENT_SIGNATURE_CONTEXT`] and the canonical
    /// event).
    pub fn signed_message(&self) -> Vec<u8> {
        let event = self.event_bytes();
        let mut m = Vec::with_capacity(EVENT_SIGNATURE_CONTEXT.len() + event.len());
        m.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
        m.extend_from_slice(event);
        m
    }

    /// The event's canonical bytes inside the entry.
    fn event_bytes(&self) -> &[u8] {
        &self.bytes.as_ref()[EVENT_PREFIX.len()..self.event_end]
    }

    /// The canonical bytes (what the Merkle leaf hashes).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The RFC 6962 leaf hash of the bytes.
    pub fn leaf_hash(&self) -> &Hash {
        &self.leaf
    }

    /// Checks the signature strictly (RFC 8032 with canonical encodings, no weak keys).
    pub fn verify_signature(&self) -> Result<(), EntryError> {
        verify_strictly(&self.key, &self.signed_message(), &self.sig)
            .map_err(|fault| self.signature_error(fault))
    }

    fn bad_signature(&self) -> EntryError {
        EntryError::BadSignature {
            actor: self.event.actor.clone(),
            kind: self.event.body.kind(),
        }
    }

    /// The error for this entry when its signature check found `fault`.
    pub(crate) fn signature_error(&self, fault: SignatureFault) -> EntryError {
        match fault {
            SignatureFault::BadKey => EntryError::BadKey,
            SignatureFault::BadSignature => self.bad_signature(),
            // The entry decoded, so its layout was readable after all: never reached, as
            // decoding and the signature check read the layout with the same function.
            SignatureFault::Unreadable => EntryError::Malformed("unexpected entry layout".into()),
        }
    }
}

/// Checks one signature strictly (RFC 8032 with canonical encodings, no weak keys).
fn verify_strictly(key: &PublicKey, message: &[u8], sig: &Signature) -> Result<(), SignatureFault> {
    let vk = verifying_key(key).map_err(|_| SignatureFault::BadKey)?;
    vk.verify_strict(message, sig)
        .map_err(|_| SignatureFault::BadSignature)
}

fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, EntryError> {
    let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| EntryError::BadKey)?;
    if vk.is_weak() {
        return Err(EntryError::BadKey);
    }
    Ok(vk)
}

fn signed_message(event: &Event) -> Result<Vec<u8>, EntryError> {
    let body = to_canonical_vec(event).map_err(|e| EntryError::Malformed(e.to_string()))?;
    let mut m = Vec::with_capacity(EVENT_SIGNATURE_CONTEXT.len() + body.len());
    m.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
    m.extend_from_slice(&body);
    Ok(m)
}

/// Decodes many entries on every core, borrowing their bytes. Returns the position of the first
/// bad one, with why.
pub fn decode_all<'a>(lines: &[&'a [u8]]) -> Result<Vec<Entry<&'a [u8]>>, (usize, EntryError)> {
    // Collected straight into the result: entries are large, and a second vector would double
    // the memory touched.
    lines
        .par_iter()
        .map(|l| Entry::decode_borrowed(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            // Some entry failed; the parallel collect may have stopped at any failure, so name
            // the first one.
            lines
                .iter()
                .enumerate()
                .find_map(|(i, l)| Entry::decode_borrowed(l).err().map(|e| (i, e)))
                .expect("a failed decode fails again")
        })
}

/// Entries whose signatures are checked together (one Ed25519 batch verification).
const SIGNATURE_BATCH: usize = 256;

/// Verifies every entry's signature, in batches spread over all cores. Returns the position of
/// the first entry whose signature fails, with why.
///
/// Batch verification accepts exactly the signatures that individual verification accepts
/// except for deliberately crafted small-order components; a failing batch is re-checked entry
/// by entry with strict verification, and weak keys are refused up front, so the first bad
/// entry is always named precisely.
pub fn verify_signatures<B: AsRef<[u8]> + Sync>(
    entries: &[Entry<B>],
) -> Result<(), (usize, EntryError)> {
    // A log has few distinct signers: decompress each key once, not once per entry.
    let mut keys = KeyCache::unbounded();
    for e in entries {
        keys.get(&e.key);
    }
    let failures: Vec<(usize, EntryError)> = entries
        .par_chunks(SIGNATURE_BATCH)
        .enumerate()
        .filter_map(|(chunk_no, chunk)| {
            Claims::with(|claims| {
                for e in chunk {
                    claims.push(e.event_bytes(), e.key, e.sig);
                }
                claims.first_bad(|k| keys.cached(k))
            })
            .map(|(i, fault)| {
                (
                    chunk_no * SIGNATURE_BATCH + i,
                    chunk[i].signature_error(fault),
                )
            })
        })
        .collect();
    match failures.into_iter().min_by_key(|(i, _)| *i) {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Why an entry line's signature check failed. Found without parsing the event, so the caller
/// names the actor from the decoded entry (see [`Entry::signature_error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignatureFault {
    /// The line's layout is not that of a canonical entry, so there is no signature to check
    /// (decoding it fails too, and says why).
    Unreadable,
    /// The public key is not a valid, strong Ed25519 point.
    BadKey,
    /// The signature does not verify.
    BadSignature,
}

/// Checks the signatures of a run of entry lines straight from their bytes, with `keys`
/// caching the signers' decompressed keys from one run to the next. Returns the position in
/// the run of the first line whose signature fails, or of the first whose layout cannot be read
/// (every signature before it is checked, as a failing one comes first in log order).
///
/// Nothing is parsed or allocated per entry: the signed messages are laid out back to back in
/// one buffer. Whether each event is canonical is for decoding to say.
pub(crate) fn first_bad_signature_of_lines<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    keys: &mut KeyCache,
) -> Option<(usize, SignatureFault)> {
    Claims::with(|claims| {
        let mut unreadable = None;
        for (i, line) in lines.into_iter().enumerate() {
            match signed_parts(line) {
                Some((end, key, sig)) => {
                    claims.push(
                        &line[EVENT_PREFIX.len()..end],
                        key,
                        Signature::from_bytes(&sig.0),
                    );
                }
                None => {
                    unreadable = Some(i);
                    break;
                }
            }
        }
        claims
            .first_bad(|k| keys.get(k))
            .or(unreadable.map(|i| (i, SignatureFault::Unreadable)))
    })
}

/// Signatures to check together: each signed message ([`EVENT_SIGNATURE_CONTEXT`] and an
/// event's canonical bytes) laid out back to back in one buffer, with its claimed signer and
/// signature.
#[derive(Default)]
struct Claims {
    messages: Vec<u8>,
    /// Where each message ends in `messages`.
    ends: Vec<usize>,
    keys: Vec<PublicKey>,
    sigs: Vec<Signature>,
}

thread_local! {
    /// Each thread's claims buffer, reused so that checking a batch allocates nothing once the
    /// buffer has grown to a batch's size.
    static CLAIMS: std::cell::RefCell<Claims> = std::cell::RefCell::new(Claims::default());
}

/// The most message bytes a thread keeps room for between batches: a batch of ordinary entries
/// needs about 120 KB; one of large entries (a policy's source, up to [`MAX_ENTRY_LEN`]) gets
/// its room back once it is checked.
const CLAIMS_KEPT: usize = 1 << 20;

impl Claims {
    /// Runs `f` with this thread's claims buffer, emptied.
    fn with<T>(f: impl FnOnce(&mut Claims) -> T) -> T {
        CLAIMS.with_borrow_mut(|claims| {
            claims.messages.clear();
            claims.ends.clear();
            claims.keys.clear();
            claims.sigs.clear();
            let out = f(claims);
            if claims.messages.capacity() > CLAIMS_KEPT {
                claims.messages = Vec::new();
            }
            out
        })
    }

    fn push(&mut self, event: &[u8], key: PublicKey, sig: Signature) {
        self.messages.extend_from_slice(EVENT_SIGNATURE_CONTEXT);
        self.messages.extend_from_slice(event);
        self.ends.push(self.messages.len());
        self.keys.push(key);
        self.sigs.push(sig);
    }

    fn message(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.messages[start..self.ends[i]]
    }

    /// The first claim whose signature fails, with why: one batch verification per
    /// [`SIGNATURE_BATCH`] claims, and claim by claim (strictly) only when a batch fails.
    fn first_bad(
        &self,
        mut key: impl FnMut(&PublicKey) -> Option<VerifyingKey>,
    ) -> Option<(usize, SignatureFault)> {
        let n = self.ends.len();
        (0..n).step_by(SIGNATURE_BATCH).find_map(|start| {
            let batch = start..n.min(start + SIGNATURE_BATCH);
            if self.batch_verifies(batch.clone(), &mut key) {
                return None;
            }
            batch.into_iter().find_map(|i| {
                verify_strictly(&self.keys[i], self.message(i), &self.sigs[i])
                    .err()
                    .map(|fault| (i, fault))
            })
        })
    }

    fn batch_verifies(
        &self,
        batch: std::ops::Range<usize>,
        key: &mut impl FnMut(&PublicKey) -> Option<VerifyingKey>,
    ) -> bool {
        let mut messages = Vec::with_capacity(batch.len());
        let mut vks = Vec::with_capacity(batch.len());
        for i in batch.clone() {
            messages.push(self.message(i));
            match key(&self.keys[i]) {
                Some(vk) => vks.push(vk),
                None => return false,
            }
        }
        ed25519_dalek::verify_batch(&messages, &self.sigs[batch], &vks).is_ok()
    }
}

/// Signers' Ed25519 keys, decompressed once each (a log has few signers; decompressing is the
/// costliest part of reading a key). `None` marks a key that is not a valid, strong point.
pub(crate) struct KeyCache {
    keys: HashMap<PublicKey, Option<VerifyingKey>>,
    /// Keys kept at most: past it the cache starts afresh rather than growing without bound.
    max: usize,
}

impl Default for KeyCache {
    /// A cache of at most 4,096 keys, for a verifier whose memory must not grow with the log.
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            max: 4096,
        }
    }
}

impl KeyCache {
    /// A cache that keeps every key it is given.
    fn unbounded() -> Self {
        Self {
            keys: HashMap::new(),
            max: usize::MAX,
        }
    }

    /// The verifying key of `key`, decompressing it if it is not cached yet.
    fn get(&mut self, key: &PublicKey) -> Option<VerifyingKey> {
        if self.keys.len() >= self.max && !self.keys.contains_key(key) {
            self.keys.clear();
        }
        *self
            .keys
            .entry(*key)
            .or_insert_with(|| verifying_key(key).ok())
    }

    /// The verifying key of `key` if it was cached and is valid.
    fn cached(&self, key: &PublicKey) -> Option<VerifyingKey> {
        self.keys.get(key).copied().flatten()
    }
}
