//! C2SP `signed-note` envelopes carrying C2SP `tlog-checkpoint` bodies, signed
//! with Ed25519.
//!
//! Parsing is strict: anything a conforming signer would not produce (CRLF,
//! non-canonical base64 or decimal, empty lines in a checkpoint, malformed
//! signature lines) is rejected rather than normalised, so a signed note has
//! exactly one reading.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Signature algorithm identifier for Ed25519 in C2SP signed-note key ids and
/// verifier keys.
const ALG_ED25519: u8 = 0x01;

/// Prefix of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Upper bound on signature lines, as in Go's `note.Open`: parsing a note must
/// not cost unbounded work.
pub const MAX_SIGNATURES: usize = 100;

/// How much of an offending input value an error message quotes.
const QUOTE_LIMIT: usize = 40;

/// Errors from parsing, signing or verifying checkpoints and signed notes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note contains a character a signed note may not carry (a control
    /// character other than newline, including `\r` from CRLF line endings).
    #[error("note contains forbidden character {character:?} at byte {offset}")]
    ForbiddenCharacter {
        /// The rejected character.
        character: char,
        /// Byte offset of the character in the note.
        offset: usize,
    },
    /// The note has no blank line separating the text from the signatures, or
    /// nothing after it.
    #[error("note has no signature block (text, a blank line, then signature lines)")]
    MissingSignatures,
    /// A line of the signature block is not `— <name> <base64>`.
    #[error("signature line {line} is malformed: {reason}")]
    MalformedSignatureLine {
        /// 1-based number of the line within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The note has more signature lines than a verifier will look at.
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit that was exceeded.
        max: usize,
    },
    /// A key name is empty or contains whitespace, `+` or control characters.
    #[error("key name {name:?} is invalid: {reason}")]
    InvalidKeyName {
        /// The rejected name (shortened if long).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature line from the verifier's key (same name and key id)
    /// carries a signature that does not verify over the note text.
    #[error("signature by key {name:?} (id {key_id}) does not verify: the note was altered or signed by another key")]
    BadSignature {
        /// Name of the key.
        name: String,
        /// Key id in hex.
        key_id: String,
    },
    /// No signature line comes from the verifier's key.
    #[error("note carries no signature from key {name:?} (id {key_id})")]
    NoSignatureFromKey {
        /// Name of the expected key.
        name: String,
        /// Expected key id in hex.
        key_id: String,
    },
    /// The checkpoint body does not follow the C2SP `tlog-checkpoint` format.
    #[error("checkpoint body line {line} is malformed: {reason}")]
    MalformedCheckpoint {
        /// 1-based line number within the body.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tree size is not a canonical decimal `u64` (digits only, no leading
    /// zeros, no sign, no overflow).
    #[error("tree size {text:?} is not a canonical decimal number")]
    InvalidSize {
        /// The rejected text (shortened if long).
        text: String,
    },
    /// A base64 field is not canonical standard base64 with padding.
    #[error("{field} is not canonical standard base64")]
    InvalidBase64 {
        /// Which field held it.
        field: &'static str,
    },
    /// The checkpoint root hash does not decode to 32 bytes.
    #[error("checkpoint root hash is {len} bytes, expected 32")]
    RootLength {
        /// Decoded length.
        len: usize,
    },
    /// The checkpoint names a different log than the key that signs or
    /// verifies it: a log's key name is its origin, so this is another log's
    /// checkpoint.
    #[error("checkpoint origin {origin:?} does not match log key name {key_name:?}")]
    OriginMismatch {
        /// Origin line of the checkpoint (shortened if long).
        origin: String,
        /// Name of the log key.
        key_name: String,
    },
    /// A verifier key string is not `<name>+<8 hex digits>+<base64 key>`.
    #[error("verifier key is malformed: {reason}")]
    MalformedVerifierKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A verifier key names a signature algorithm other than Ed25519.
    #[error("verifier key uses unsupported algorithm {algorithm:#04x} (only Ed25519, 0x01)")]
    UnsupportedAlgorithm {
        /// The algorithm byte found.
        algorithm: u8,
    },
    /// The key id in a verifier key string is not the one derived from its
    /// name and public key.
    #[error("verifier key id {found} does not match {expected} derived from its name and key")]
    KeyIdMismatch {
        /// Key id written in the string, in hex.
        found: String,
        /// Key id computed from name and key, in hex.
        expected: String,
    },
    /// The public key is not a valid Ed25519 point, or is of small order
    /// (such keys admit signatures that verify for many messages).
    #[error("public key is not a usable Ed25519 key: {reason}")]
    InvalidPublicKey {
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_LIMIT).collect()
}

/// A C2SP `tlog-checkpoint`: the log's origin, size and root hash, plus any
/// extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique name of the log (also the name of the key that signs it).
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree.
    pub root: Hash,
    /// Optional extension lines, without their trailing newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint body as signed: origin, size, base64 root and extension
    /// lines, each ending in `\n`.
    ///
    /// This only formats; use [`Checkpoint::validate`] (as
    /// [`NoteSigner::sign_checkpoint`] does) to check that the fields make an
    /// unambiguous body.
    pub fn to_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Checks that [`Checkpoint::to_body`] yields a body that parses back to
    /// exactly this checkpoint.
    pub fn validate(&self) -> Result<(), NoteError> {
        let parsed = Self::from_body(&self.to_body())?;
        if &parsed == self {
            Ok(())
        } else {
            // Only reachable if a field smuggles in a newline so that the
            // body re-splits differently; report it against the origin line.
            Err(NoteError::MalformedCheckpoint {
                line: 1,
                reason: "fields contain line breaks",
            })
        }
    }

    /// Parses a checkpoint body (the note text, ending in `\n`).
    pub fn from_body(body: &str) -> Result<Self, NoteError> {
        check_characters(body)?;
        let Some(content) = body.strip_suffix('\n') else {
            return Err(NoteError::MalformedCheckpoint {
                line: body.split('\n').count(),
                reason: "body does not end with a newline",
            });
        };
        let lines: Vec<&str> = content.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                return Err(NoteError::MalformedCheckpoint {
                    line: i + 1,
                    reason: "empty line",
                });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(NoteError::MalformedCheckpoint {
                line: lines.len() + 1,
                reason: "missing origin, size or root hash line",
            });
        };
        if origin.trim() != *origin {
            return Err(NoteError::MalformedCheckpoint {
                line: 1,
                reason: "origin has leading or trailing whitespace",
            });
        }
        let size = parse_decimal(size)?;
        let root_bytes = decode_base64(root, "checkpoint root hash")?;
        let root = Hash::try_from(root_bytes.as_slice()).map_err(|_| NoteError::RootLength {
            len: root_bytes.len(),
        })?;
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

/// Parses a `u64` written in canonical decimal: `0`, or digits without a
/// leading zero. `str::parse` would also accept `+7`.
fn parse_decimal(text: &str) -> Result<u64, NoteError> {
    let invalid = || NoteError::InvalidSize { text: quote(text) };
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}

/// Decodes standard padded base64, accepting only the one canonical encoding
/// of the bytes (no stray trailing bits, no missing or extra padding).
fn decode_base64(text: &str, field: &'static str) -> Result<Vec<u8>, NoteError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| NoteError::InvalidBase64 { field })?;
    // The engine already rejects non-canonical trailing bits and padding;
    // re-encoding makes canonicity a checked property, not an assumption.
    if STANDARD.encode(&bytes) != text {
        return Err(NoteError::InvalidBase64 { field });
    }
    Ok(bytes)
}

/// Signed notes are UTF-8 (guaranteed by `&str`) with no control characters
/// other than newline.
fn check_characters(text: &str) -> Result<(), NoteError> {
    match text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n')
    {
        Some((offset, character)) => Err(NoteError::ForbiddenCharacter { character, offset }),
        None => Ok(()),
    }
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    let invalid = |reason| NoteError::InvalidKeyName {
        name: quote(name),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(invalid("contains whitespace"));
    }
    if name.contains('+') {
        return Err(invalid("contains '+'"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    Ok(())
}

/// A verifier's name and key must be usable: a valid key name, and not a small-order point.
fn check_verifier(name: &str, key: &VerifyingKey) -> Result<(), NoteError> {
    check_key_name(name)?;
    if key.is_weak() {
        return Err(NoteError::InvalidPublicKey {
            reason: "small-order point",
        });
    }
    Ok(())
}

/// Signed-note key id of an Ed25519 key of signature type `alg`:
/// `SHA-256(name || 0x0A || alg || public key)[0..4]`.
fn typed_key_id(name: &str, alg: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Ed25519 note signature key id: `SHA-256(name || 0x0A || 0x01 || public key)[0..4]`.
fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, ALG_ED25519, key)
}

/// The log's signing key, named by the log's origin.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only public material: the secret key must never reach logs.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("vkey", &self.verifier().vkey())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer for the key name `name` (the log's origin).
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_key_name(&name)?;
        Ok(Self { name, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs the checkpoint and returns the whole signed note text.
    ///
    /// Refuses checkpoints whose body would not parse back to the same value,
    /// and checkpoints of another log (origin different from the key name):
    /// the log must never sign something a verifier could read two ways.
    pub fn sign_checkpoint(&self, cp: &Checkpoint) -> Result<String, NoteError> {
        cp.validate()?;
        if cp.origin != self.name {
            return Err(NoteError::OriginMismatch {
                origin: quote(&cp.origin),
                key_name: self.name.clone(),
            });
        }
        let body = cp.to_body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(4 + Signature::BYTE_SIZE);
        blob.extend_from_slice(&key_id(&self.name, &self.key.verifying_key()));
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        let key = self.key.verifying_key();
        NoteVerifier {
            key_id: key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }
}

/// Verifies checkpoints signed by one log key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for the key `key` named `name`.
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_verifier(&name, &key)?;
        Ok(Self {
            key_id: key_id(&name, &key),
            name,
            key,
        })
    }

    /// Parses a verifier key string `<name>+<8 hex key id>+<base64(0x01 || key)>`.
    ///
    /// The key id must be lowercase hex and must match the name and key.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedVerifierKey { reason };
        let mut parts = s.splitn(3, '+'); // the base64 key may itself contain '+'
        let (Some(name), Some(id_hex), Some(key_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected exactly three '+'-separated fields"));
        };
        let id_ok = id_hex.len() == 8
            && id_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_ok {
            return Err(malformed("key id is not 8 lowercase hex digits"));
        }
        let key_bytes = decode_base64(key_b64, "verifier key")?;
        let Some((&algorithm, raw_key)) = key_bytes.split_first() else {
            return Err(malformed("key is empty"));
        };
        if algorithm != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm { algorithm });
        }
        let raw_key: [u8; 32] = raw_key
            .try_into()
            .map_err(|_| malformed("Ed25519 public key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw_key).map_err(|_| NoteError::InvalidPublicKey {
            reason: "not a point on the curve",
        })?;
        let verifier = Self::new(name, key)?;
        let expected = hex::encode(verifier.key_id);
        if expected != id_hex {
            return Err(NoteError::KeyIdMismatch {
                found: id_hex.to_owned(),
                expected,
            });
        }
        Ok(verifier)
    }

    /// The verifier key string, as parsed by [`NoteVerifier::from_vkey`].
    pub fn vkey(&self) -> String {
        let mut blob = Vec::with_capacity(33);
        blob.push(ALG_ED25519);
        blob.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(blob)
        )
    }

    /// The 4-byte key id derived from the name and public key.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies a signed note and returns the checkpoint it carries.
    ///
    /// Signature lines from other keys are ignored (they may be witnesses'),
    /// but at least one must come from this key, and every line that claims
    /// to (same name and key id) must verify. The checkpoint origin must equal
    /// this key's name.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint, NoteError> {
        check_characters(note)?;
        // The text ends at the last blank line: the text itself ends with
        // '\n' and signature lines are never empty.
        let split = note.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(NoteError::MissingSignatures);
        };

        let mut verified = false;
        for (i, line) in sigs.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            let (name, id, sig) = parse_signature_line(line, i + 1)?;
            if name != self.name || id != self.key_id {
                continue;
            }
            let bad = || NoteError::BadSignature {
                name: self.name.clone(),
                key_id: hex::encode(self.key_id),
            };
            let signature = Signature::from_slice(&sig).map_err(|_| bad())?;
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| bad())?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::NoSignatureFromKey {
                name: self.name.clone(),
                key_id: hex::encode(self.key_id),
            });
        }

        let cp = Checkpoint::from_body(text)?;
        if cp.origin != self.name {
            return Err(NoteError::OriginMismatch {
                origin: quote(&cp.origin),
                key_name: self.name.clone(),
            });
        }
        Ok(cp)
    }
}

/// Signature type of C2SP `tlog-cosignature` v1 (timestamped Ed25519) in key ids.
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Cosignature key id: `SHA-256(name || 0x0A || 0x04 || public key)[0..4]`.
fn cosignature_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, ALG_COSIGNATURE_V1, key)
}

/// The message a v1 cosignature signs: `cosignature/v1`, `time <seconds>`, then the checkpoint
/// body.
fn cosigned_message(cp: &Checkpoint, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{}", cp.to_body())
}

/// A witness: signs C2SP `tlog-cosignature` v1 cosignatures (Ed25519) of checkpoints it
/// verified, each saying that, as of its time, this is the largest consistent tree it has seen
/// of the log.
pub struct Cosigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` (a schema-less URL naming the witness) with `key`. One key must
    /// never serve two names: the signed message does not name the cosigner.
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_key_name(&name)?;
        Ok(Self { name, key })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature line (`— <name> <base64(key id || u64 time || signature)>`, no newline)
    /// cosigning `cp` at `time` (POSIX seconds, below 2^63).
    pub fn cosign(&self, cp: &Checkpoint, time: u64) -> Result<String, NoteError> {
        cp.validate()?;
        if time >= 1 << 63 {
            return Err(NoteError::MalformedSignatureLine {
                line: 1,
                reason: "cosignature time is 2^63 or later",
            });
        }
        let signature = self.key.sign(cosigned_message(cp, time).as_bytes());
        let mut blob = Vec::with_capacity(4 + 8 + Signature::BYTE_SIZE);
        blob.extend_from_slice(&cosignature_key_id(&self.name, &self.key.verifying_key()));
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}",
            self.name,
            STANDARD.encode(blob)
        ))
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        let key = self.key.verifying_key();
        CosignatureVerifier {
            key_id: cosignature_key_id(&self.name, &key),
            name: self.name.clone(),
            key,
        }
    }
}

/// Verifies one witness's v1 cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier of the witness `name` with public key `key`.
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_verifier(&name, &key)?;
        Ok(Self {
            key_id: cosignature_key_id(&name, &key),
            name,
            key,
        })
    }

    /// The 4-byte key id derived from the name and public key.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The witness's public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether the signature line `line` claims to be this witness's (same name and key id):
    /// a line by the same name under another key is not this verifier's to judge. A line that
    /// is not a signature line at all is an error.
    pub fn claims(&self, line: &str) -> Result<bool, NoteError> {
        let (name, id, _) = parse_signature_line(line, 1)?;
        Ok(name == self.name && id == self.key_id)
    }

    /// Verifies the cosignature line `line` over `cp`; returns its time (POSIX seconds).
    pub fn verify(&self, cp: &Checkpoint, line: &str) -> Result<u64, NoteError> {
        let (name, id, blob) = parse_signature_line(line, 1)?;
        if name != self.name || id != self.key_id {
            return Err(NoteError::NoSignatureFromKey {
                name: self.name.clone(),
                key_id: hex::encode(self.key_id),
            });
        }
        let bad = || NoteError::BadSignature {
            name: self.name.clone(),
            key_id: hex::encode(self.key_id),
        };
        let (time, sig) = blob.split_at_checked(8).ok_or_else(bad)?;
        let time = u64::from_be_bytes(time.try_into().map_err(|_| bad())?);
        if time >= 1 << 63 {
            return Err(bad());
        }
        let signature = Signature::from_slice(sig).map_err(|_| bad())?;
        self.key
            .verify_strict(cosigned_message(cp, time).as_bytes(), &signature)
            .map_err(|_| bad())?;
        Ok(time)
    }
}

/// Splits `— <name> <base64(key id || signature)>` into the key name, key id
/// and raw signature bytes.
pub(crate) fn parse_signature_line(
    line: &str,
    number: usize,
) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let malformed = |reason| NoteError::MalformedSignatureLine {
        line: number,
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("does not start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed("no space between key name and signature"))?;
    check_key_name(name).map_err(|_| malformed("invalid key name"))?;
    let blob = decode_base64(b64, "signature")
        .map_err(|_| malformed("signature is not canonical base64"))?;
    // A key id and at least one byte of signature, as Go's note.Open requires.
    if blob.len() < 5 {
        return Err(malformed("signature too short"));
    }
    let (id, sig) = blob.split_at(4);
    let id: [u8; 4] = id
        .try_into()
        .map_err(|_| malformed("signature too short"))?;
    Ok((name, id, sig.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).expect("valid name")
    }

    #[test]
    fn debug_does_not_print_the_secret_key() {
        let s = signer("example.com/log", 7);
        let secret_hex = hex::encode([7u8; 32]);
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains(&secret_hex),
            "Debug leaked the secret seed: {dbg}"
        );
        assert!(
            !dbg.contains("[7, 7"),
            "Debug leaked the secret seed: {dbg}"
        );
    }

    #[test]
    fn cosignatures_round_trip_and_refuse_any_change() {
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 7,
            root: [3; 32],
            extensions: Vec::new(),
        };
        let w = Cosigner::new("example.com/witness", SigningKey::from_bytes(&[9; 32])).unwrap();
        let line = w.cosign(&cp, 1_679_315_147).unwrap();
        // The same line from an independent implementation of the C2SP spec (Python's
        // `cryptography`: key id, timestamp and message built from the spec's text).
        assert_eq!(
            line,
            "\u{2014} example.com/witness waUEQwAAAABkGFDLWSJkZgV84k37RgG+DsyMSVmMZKScekaxjjl1kG+\
             tEbi1PSSejpkUxeYxfYBxwdrWQ6AUfE4nUkRFP2ZRTAdcBA=="
        );
        let v = w.verifier();
        assert_eq!(v.claims(&line), Ok(true));
        assert!(v.claims("not a signature line").is_err());
        assert_eq!(v.verify(&cp, &line), Ok(1_679_315_147));
        let other_root = Checkpoint {
            root: [4; 32],
            ..cp.clone()
        };
        assert!(matches!(
            v.verify(&other_root, &line),
            Err(NoteError::BadSignature { .. })
        ));
        let other_size = Checkpoint {
            size: 8,
            ..cp.clone()
        };
        assert!(v.verify(&other_size, &line).is_err());
        // Another key under the same name: not this verifier's line.
        let other = Cosigner::new("example.com/witness", SigningKey::from_bytes(&[8; 32])).unwrap();
        let theirs = other.cosign(&cp, 1).unwrap();
        assert_eq!(v.claims(&theirs), Ok(false));
        assert!(matches!(
            v.verify(&cp, &theirs),
            Err(NoteError::NoSignatureFromKey { .. })
        ));
        // A log signature (type 0x01) of the same name and key is never a cosignature.
        let log = NoteSigner::new("example.com/witness", SigningKey::from_bytes(&[9; 32])).unwrap();
        assert_ne!(log.verifier().key_id(), v.key_id());
        assert!(w.cosign(&cp, 1 << 63).is_err());
    }

    #[test]
    fn canonical_decimal() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "007",
            "+7",
            "-1",
            " 7",
            "7 ",
            "1_000",
            "18446744073709551616",
            "٣",
        ] {
            assert!(parse_decimal(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
