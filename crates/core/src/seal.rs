//! Sealing a secret to one recipient, so that it can sit in the log — which every auditor reads
//! — and be opened only by whom it is for: an access token to the requester, a copy of it to the
//! broker that must revoke it.
//!
//! The construction is ECIES over X25519 in the shape of HPKE's base mode (RFC 9180), built from
//! `ring` (HKDF-SHA256, ChaCha20-Poly1305) and `x25519-dalek`:
//!
//! 1. the sender makes a fresh X25519 key pair (`e`, `E`) for every seal;
//! 2. `shared = X25519(e, R)` for the recipient's public key `R` (refused if all zero: a
//!    low-order `R`);
//! 3. `key = HKDF-SHA256(salt = E ‖ R, ikm = shared, info = LABEL ‖ 0 ‖ context)`, 32 bytes;
//! 4. `box = ChaCha20-Poly1305(key, nonce = 0¹², aad = context, secret)`; the key is used once,
//!    so the fixed nonce is safe;
//! 5. the sealed text is `bgseal1.` followed by unpadded base64url of `E ‖ box`.
//!
//! The context names what the secret is for (`token req_… requester`): a sealed text moved to
//! another request, or to another recipient's field, does not open.
//!
//! A recipient's key pair is derived from a seed it already keeps secret (the requester's
//! identity key, the broker's signing key) with HKDF under its own label, so nothing new is
//! stored and the signing key itself is never used for key agreement.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The prefix of every sealed text (and the version of the construction).
pub const SEALED_PREFIX: &str = "bgseal1.";

/// The HKDF label of the key agreement.
const LABEL: &[u8] = b"breakglass seal v1";

/// The HKDF salt of a recipient key derived from a seed.
const DERIVE_SALT: &[u8] = b"breakglass seal key v1";

/// The largest secret sealed, in bytes (an access token is a few kilobytes at most); sealed,
/// it is at most 11,000 characters.
pub const MAX_SEALED_SECRET: usize = 8 * 1024;

/// Why a seal could not be made or opened. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text is not a sealed secret of this format.
    #[error("not a sealed secret: {0}")]
    Malformed(&'static str),
    /// A public key that is not 32 bytes of base64url, or one of low order.
    #[error("not a usable X25519 public key: {0}")]
    BadKey(&'static str),
    /// The wrong key or context, or a changed text.
    #[error(
        "the sealed secret does not open with this key for this purpose (wrong key, or altered)"
    )]
    Open,
    /// The secret is too large.
    #[error("a sealed secret may be at most {MAX_SEALED_SECRET} bytes")]
    TooLarge,
    /// The system's random source failed.
    #[error("the system's random number generator failed")]
    Random,
}

/// A recipient's public key: 32 bytes, written as unpadded base64url (43 characters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealPublicKey([u8; 32]);

impl SealPublicKey {
    /// Parses the base64url form.
    pub fn parse(text: &str) -> Result<SealPublicKey, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| SealError::BadKey("not unpadded base64url"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealError::BadKey("not 32 bytes"))?;
        Ok(SealPublicKey(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SealPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SealPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealPublicKey({self})")
    }
}

/// A recipient's private key. Its `Debug` shows only the public key; it is wiped when dropped.
#[derive(Clone)]
pub struct SealSecretKey(StaticSecret);

impl SealSecretKey {
    /// The key derived from a 32-byte secret `seed` the recipient already keeps (an Ed25519
    /// signing key's seed): the same seed always gives the same key.
    pub fn derive(seed: &[u8; 32]) -> SealSecretKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        Salt::new(HKDF_SHA256, DERIVE_SALT)
            .extract(seed)
            .expand(&[b"x25519"], HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes[..]))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SealSecretKey(StaticSecret::from(*bytes))
    }

    /// Its public key.
    pub fn public_key(&self) -> SealPublicKey {
        SealPublicKey(PublicKey::from(&self.0).to_bytes())
    }

    /// Opens `sealed`, made for this key and `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Malformed("it does not start with bgseal1."))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed("not unpadded base64url"))?;
        if bytes.len() < 32 + CHACHA20_POLY1305.tag_len() {
            return Err(SealError::Malformed("too short"));
        }
        let (ephemeral, boxed) = bytes.split_at(32);
        let ephemeral: [u8; 32] = ephemeral.try_into().expect("split at 32");
        let recipient = self.public_key();
        let key = box_key(
            &self.0,
            &SealPublicKey(ephemeral),
            &ephemeral,
            &recipient,
            context,
        )?;
        let mut buf = Zeroizing::new(boxed.to_vec());
        let plain = key
            .open_in_place(nonce(), Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

impl fmt::Debug for SealSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealSecretKey(public {})", self.public_key())
    }
}

/// Seals `secret` for `recipient` and `context`.
pub fn seal(recipient: &SealPublicKey, context: &str, secret: &[u8]) -> Result<String, SealError> {
    if secret.len() > MAX_SEALED_SECRET {
        return Err(SealError::TooLarge);
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut seed[..])
        .map_err(|_| SealError::Random)?;
    let ephemeral = StaticSecret::from(*seed);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let key = box_key(&ephemeral, recipient, &ephemeral_public, recipient, context)?;
    let mut out = Vec::with_capacity(32 + secret.len() + CHACHA20_POLY1305.tag_len());
    out.extend_from_slice(&ephemeral_public);
    let mut buf = secret.to_vec();
    key.seal_in_place_append_tag(nonce(), Aad::from(context.as_bytes()), &mut buf)
        .map_err(|_| SealError::TooLarge)?;
    out.extend_from_slice(&buf);
    Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// The one-time AEAD key of a seal: X25519 between `mine` and `theirs`, then HKDF over both
/// public keys and the context.
fn box_key(
    mine: &StaticSecret,
    theirs: &SealPublicKey,
    ephemeral: &[u8; 32],
    recipient: &SealPublicKey,
    context: &str,
) -> Result<LessSafeKey, SealError> {
    let shared = mine.diffie_hellman(&PublicKey::from(theirs.0));
    if !shared.was_contributory() {
        return Err(SealError::BadKey("a low-order point"));
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(&recipient.0);
    let info: [&[u8]; 3] = [LABEL, &[0], context.as_bytes()];
    let key: UnboundKey = Salt::new(HKDF_SHA256, &salt)
        .extract(shared.as_bytes())
        .expand(&info, &CHACHA20_POLY1305)
        .map_err(|_| SealError::Malformed("context too long"))?
        .into();
    Ok(LessSafeKey::new(key))
}

fn nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; aead::NONCE_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SealSecretKey, SealSecretKey) {
        (
            SealSecretKey::derive(&[7u8; 32]),
            SealSecretKey::derive(&[8u8; 32]),
        )
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let (alice, bob) = keys();
        let sealed = seal(&alice.public_key(), "token req_1 requester", b"s3cret").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            &alice.open("token req_1 requester", &sealed).unwrap()[..],
            b"s3cret"
        );
        assert_eq!(
            bob.open("token req_1 requester", &sealed),
            Err(SealError::Open)
        );
        assert_eq!(
            alice.open("token req_2 requester", &sealed),
            Err(SealError::Open)
        );
        assert_eq!(
            alice.open("token req_1 broker", &sealed),
            Err(SealError::Open)
        );
    }

    #[test]
    fn every_changed_byte_is_detected() {
        let (alice, _) = keys();
        let sealed = seal(&alice.public_key(), "c", b"a token of some length").unwrap();
        let raw = URL_SAFE_NO_PAD
            .decode(&sealed[SEALED_PREFIX.len()..])
            .unwrap();
        for i in 0..raw.len() {
            let mut changed = raw.clone();
            changed[i] ^= 0x01;
            let text = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&changed));
            assert!(alice.open("c", &text).is_err(), "byte {i}");
        }
        let truncated = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw[..40]));
        assert!(alice.open("c", &truncated).is_err());
        assert!(alice.open("c", "bgseal1.!!").is_err());
        assert!(alice.open("c", "plain").is_err());
    }

    #[test]
    fn each_seal_is_fresh_and_derivation_is_stable() {
        let (alice, bob) = keys();
        let a = seal(&alice.public_key(), "c", b"x").unwrap();
        let b = seal(&alice.public_key(), "c", b"x").unwrap();
        assert_ne!(a, b, "a fresh ephemeral key each time");
        assert_eq!(
            SealSecretKey::derive(&[7u8; 32]).public_key(),
            alice.public_key()
        );
        assert_ne!(alice.public_key(), bob.public_key());
        let text = alice.public_key().to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(SealPublicKey::parse(&text).unwrap(), alice.public_key());
        assert!(!format!("{alice:?}").contains(&hex(&[7u8; 32])));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(SealPublicKey::parse("short").is_err());
        assert!(SealPublicKey::parse(&"A".repeat(44)).is_err());
        // The all-zero point has low order: nothing may be sealed to it.
        let zero = SealPublicKey([0u8; 32]);
        assert_eq!(
            seal(&zero, "c", b"x"),
            Err(SealError::BadKey("a low-order point"))
        );
        assert_eq!(
            seal(
                &SealSecretKey::derive(&[1; 32]).public_key(),
                "c",
                &[0; MAX_SEALED_SECRET + 1]
            ),
            Err(SealError::TooLarge)
        );
    }
}
