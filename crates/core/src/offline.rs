//! Offline approvals: an approval an approver signs with their own key while the identity
//! provider is unreachable, carried to the requester as text (or a QR code) and imported into
//! the log by the requester or the broker.
//!
//! Token: `bgoa1.` + base64url(payload) + `.` + base64url(Ed25519 signature), where the payload
//! is the canonical JSON of [`OfflineApproval`] and the signature covers
//! [`OFFLINE_APPROVAL_CONTEXT`] followed by the payload. It names one log, one request and its
//! digest, and expires within [`MAX_OFFLINE_APPROVAL_TTL_SECS`]; the log's rules
//! ([`crate::LogState::apply`]) check the approver's key and standing when it is imported.
//!
//! ```
//! use breakglass_core::offline::OfflineApproval;
//! use breakglass_core::{RequestId, Timestamp};
//!
//! let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
//! let issued = Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap();
//! let approval = OfflineApproval {
//!     approver: "bob".into(),
//!     expires: Timestamp::parse_lenient("2026-11-23T10:10:00Z").unwrap(),
//!     issued,
//!     log: "example.com/breakglass".into(),
//!     request: RequestId::from_random([1; 10]),
//!     request_digest: "ab".repeat(32),
//! };
//! let token = approval.sign(&key);
//! let (read, signature) = OfflineApproval::decode(&token).unwrap();
//! assert_eq!(read, approval);
//! assert!(read.verify(&signature, &breakglass_core::PublicKey(key.verifying_key().to_bytes())));
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::RequestId;
use crate::identity::PublicKey;
use crate::time::Timestamp;

/// Domain separation prefix of every offline approval signature.
pub const OFFLINE_APPROVAL_CONTEXT: &[u8] = b"breakglass/offline-approval/v1\n";

/// The longest validity an offline approval may state: 15 minutes.
pub const MAX_OFFLINE_APPROVAL_TTL_SECS: u64 = 15 * 60;

/// The validity given when none is asked for: 10 minutes.
pub const DEFAULT_OFFLINE_APPROVAL_TTL_SECS: u64 = 10 * 60;

/// Largest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 4096;

const PREFIX: &str = "bgoa1.";

/// What an approver states offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineApproval {
    // Fields in byte order of their names: plain serde_json output is the canonical form.
    /// The approving identity.
    pub approver: String,
    /// When the approval stops being importable.
    pub expires: Timestamp,
    /// When the approver signed it.
    pub issued: Timestamp,
    /// The log's origin.
    pub log: String,
    /// The request approved.
    pub request: RequestId,
    /// Hex leaf hash of the request's entry: binds the approval to exactly that request.
    pub request_digest: String,
}

/// Why a token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an offline approval token: {0}")]
pub struct TokenError(String);

impl OfflineApproval {
    fn payload(&self) -> Vec<u8> {
        // Serialising these plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Signs the approval with the approver's key and encodes it as a token.
    pub fn sign(&self, key: &SigningKey) -> String {
        let payload = self.payload();
        let sig = key.sign(&signed_message(&payload));
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    }

    /// Reads a token (surrounding whitespace allowed, as pasted) into the approval and its
    /// signature. The payload must be the canonical encoding; nothing is verified yet.
    pub fn decode(token: &str) -> Result<(OfflineApproval, Signature), TokenError> {
        let err = |why: &str| TokenError(why.to_owned());
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err(err("it is too long"));
        }
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or_else(|| err("it does not start with \"bgoa1.\""))?;
        let (payload, sig) = rest
            .split_once('.')
            .ok_or_else(|| err("it has no signature part"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| err("its payload is not base64url"))?;
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(sig)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| err("its signature is not 64 bytes of base64url"))?;
        let approval: OfflineApproval = serde_json::from_slice(&payload)
            .map_err(|e| TokenError(format!("its payload does not read: {e}")))?;
        if approval.payload() != payload {
            return Err(err("its payload is not in canonical form"));
        }
        Ok((approval, Signature::from_bytes(&sig)))
    }

    /// Whether `signature` is `key`'s strict Ed25519 signature of this approval.
    pub fn verify(&self, signature: &Signature, key: &PublicKey) -> bool {
        VerifyingKey::from_bytes(&key.0).is_ok_and(|vk| {
            !vk.is_weak()
                && vk
                    .verify_strict(&signed_message(&self.payload()), signature)
                    .is_ok()
        })
    }
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(OFFLINE_APPROVAL_CONTEXT.len() + payload.len());
    m.extend_from_slice(OFFLINE_APPROVAL_CONTEXT);
    m.extend_from_slice(payload);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval() -> OfflineApproval {
        OfflineApproval {
            approver: "bob".into(),
            expires: Timestamp::parse_lenient("2026-11-23T10:10:00Z").unwrap(),
            issued: Timestamp::parse_lenient("2026-11-23T10:00:00Z").unwrap(),
            log: "example.com/breakglass".into(),
            request: RequestId::from_random([1; 10]),
            request_digest: "ab".repeat(32),
        }
    }

    #[test]
    fn tokens_round_trip_and_bind_every_field() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let public = PublicKey(key.verifying_key().to_bytes());
        let token = approval().sign(&key);
        assert!(
            token.len() < 600,
            "compact enough for a QR code: {}",
            token.len()
        );
        let (read, sig) = OfflineApproval::decode(&format!("  {token}\n")).unwrap();
        assert!(read.verify(&sig, &public));
        let other = PublicKey(SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes());
        assert!(!read.verify(&sig, &other));
        let mut changed = read.clone();
        changed.request = RequestId::from_random([2; 10]);
        assert!(
            !changed.verify(&sig, &public),
            "the signature covers the request"
        );
        changed = read;
        changed.expires = Timestamp::parse_lenient("2026-11-23T11:00:00Z").unwrap();
        assert!(
            !changed.verify(&sig, &public),
            "the signature covers the expiry"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let token = approval().sign(&key);
        let (payload, sig) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let spaced = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replacen(':', ": ", 1),
        );
        for bad in [
            String::new(),
            "bgoa1.".into(),
            token.replacen("bgoa1.", "bgoa2.", 1),
            format!("{PREFIX}{payload}"),
            format!("{PREFIX}{payload}.{}", &sig[2..]),
            format!("{PREFIX}{spaced}.{sig}"),
            format!("{PREFIX}e30.{sig}"),
            "x".repeat(5000),
        ] {
            assert!(OfflineApproval::decode(&bad).is_err(), "{bad:.40}");
        }
    }
}
