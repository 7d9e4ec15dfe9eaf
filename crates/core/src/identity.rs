//! Identities: who may act, with which key, in which groups.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ed25519 public key (32 bytes), serialised as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key as standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, String> {
        // 32 bytes are 44 characters of padded base64; checking the length first also keeps
        // the decoder's output within the fixed buffer.
        if s.len() != 44 {
            return Err(format!(
                "public key is {} characters of base64, expected 44 (32 bytes)",
                s.len()
            ));
        }
        let mut out = [0u8; 32];
        match STANDARD.decode_slice(s, &mut out) {
            Ok(32) => Ok(Self(out)),
            Ok(n) => Err(format!("public key is {n} bytes, expected 32")),
            Err(e) => Err(format!("public key is not base64: {e}")),
        }
    }

    /// A short, stable fingerprint for people to compare: the first 8 bytes of SHA-256, hex.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(self.0);
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 44];
        let n = STANDARD
            .encode_slice(self.0, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(&buf[..n]).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::from_str_with(d, "a base64 Ed25519 public key", Self::from_base64)
    }
}

/// How an identity's key was vouched for.
///
/// Serialised internally tagged, `{"kind":"local"}` or `{…,"kind":"oidc",…}`, with every field
/// in byte order of its name (the ledger's canonical form), so it is written by hand.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "BindingRepr")]
#[non_exhaustive]
pub enum Binding {
    /// Enrolled by an administrator of this log, who signed the enrolment.
    Local,
    /// Bound to a person at an OpenID Connect provider: the provider's signed ID token, issued
    /// for a sign-in whose nonce names this key, with the provider's keys that checked it.
    Oidc(Box<OidcBinding>),
}

/// The evidence that binds a key to an identity provider's subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcBinding {
    /// The provider's ID token (compact JWS) from the enrolment sign-in.
    pub id_token: String,
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's JWK set (JSON) that the token was checked against.
    pub jwks: String,
    /// The provider's name in the policy.
    pub provider: String,
    /// The subject (`sub`) the provider knows the person by.
    pub subject: String,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum BindingRepr {
    Local,
    Oidc {
        id_token: String,
        issuer: String,
        jwks: String,
        provider: String,
        subject: String,
    },
}

impl From<BindingRepr> for Binding {
    fn from(repr: BindingRepr) -> Binding {
        match repr {
            BindingRepr::Local => Binding::Local,
            BindingRepr::Oidc {
                id_token,
                issuer,
                jwks,
                provider,
                subject,
            } => Binding::Oidc(Box::new(OidcBinding {
                id_token,
                issuer,
                jwks,
                provider,
                subject,
            })),
        }
    }
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Binding::Local => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("kind", "local")?;
                map.end()
            }
            Binding::Oidc(b) => {
                let mut map = s.serialize_map(Some(6))?;
                map.serialize_entry("id_token", &b.id_token)?;
                map.serialize_entry("issuer", &b.issuer)?;
                map.serialize_entry("jwks", &b.jwks)?;
                map.serialize_entry("kind", "oidc")?;
                map.serialize_entry("provider", &b.provider)?;
                map.serialize_entry("subject", &b.subject)?;
                map.end()
            }
        }
    }
}

impl Binding {
    /// The OpenID Connect evidence, for identities bound to a provider.
    pub fn oidc(&self) -> Option<&OidcBinding> {
        match self {
            Binding::Local => None,
            Binding::Oidc(b) => Some(b),
        }
    }
}

/// One enrolled identity as recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRecord {
    // Fields in byte order of their names (see [`crate::Event`]).
    /// Who vouched for the key.
    pub binding: Binding,
    /// Groups given at enrolment (in addition to policy-listed memberships).
    pub groups: BTreeSet<String>,
    /// The Ed25519 key that signs this identity's events.
    pub key: PublicKey,
    /// The identity's name (see [`crate::names`]).
    pub name: String,
}
