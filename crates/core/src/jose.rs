//! Checks of identity-provider tokens: JWS signatures against a JWK set and OpenID Connect ID
//! token claims, with no I/O.
//!
//! The same functions serve the online sign-in (the `idp` crate fetches the issuer's keys and
//! calls [`validate_id_token`]) and the offline verification of a log, which re-checks the ID
//! tokens recorded in enrolments and decisions against the key sets recorded beside them. One
//! implementation, so what was accepted online is exactly what verifies offline.
//!
//! Accepted: compact JWS (RFC 7515) signed with RS256/384/512, PS256/384/512, ES256, ES384 or
//! EdDSA (Ed25519) by a key of the set. Refused: `none` and every MAC algorithm (a public key
//! must never be usable as an HMAC secret), critical header extensions, padded or non-URL-safe
//! base64, keys marked for encryption, and keys whose own `alg` differs from the token's.
//!
//! ```
//! use breakglass_core::jose::{key_bound_nonce, nonce_binds_key};
//! use breakglass_core::PublicKey;
//!
//! let key = PublicKey([7; 32]);
//! let nonce = key_bound_nonce(&key, [1; 16]);
//! assert!(nonce_binds_key(&nonce, &key));
//! assert!(!nonce_binds_key(&nonce, &PublicKey([8; 32])));
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::identity::PublicKey;
use crate::span::Span;
use crate::time::Timestamp;

/// Largest token accepted, in bytes (ID tokens are a few kilobytes).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Largest key set accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 256 * 1024;

/// Why a token or key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// The text is not a well-formed token or key set.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The token names an algorithm that is not accepted.
    #[error("signing algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// No key of the set matches the token's key id (and algorithm).
    #[error("{}", match kid {
        Some(kid) => format!("no signing key with id {kid:?} is known for the issuer"),
        None => "the token names no key id and the issuer has several keys".to_owned(),
    })]
    UnknownKey {
        /// The key id the token names.
        kid: Option<String>,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The token comes from another issuer.
    #[error("the token was issued by {found:?}, not by {expected:?}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// The token was issued to another client.
    #[error("the token's audience {found:?} does not include the client {client_id:?}")]
    WrongAudience {
        /// The configured client id.
        client_id: String,
        /// The token's `aud`.
        found: Vec<String>,
    },
    /// The token's authorised party is another client.
    #[error("the token's authorised party {found:?} is not the client {client_id:?}")]
    WrongAuthorizedParty {
        /// The configured client id.
        client_id: String,
        /// The token's `azp` (absent where it is required).
        found: Option<String>,
    },
    /// The token has expired.
    #[error("the token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The token claims to be issued in the future.
    #[error("the token claims to be issued at {iat}, after {now}")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The token's `nonce` is not the one this sign-in sent.
    #[error(
        "the token's nonce is not the one this sign-in sent (a replayed or substituted token)"
    )]
    NonceMismatch,
    /// A required claim is absent or has the wrong type.
    #[error("the token has no valid {0:?} claim")]
    MissingClaim(&'static str),
}

/// A JWS algorithm this module verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// The public material of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point (0x04 ‖ x ‖ y).
    Ec {
        curve: EcCurve,
        point: Vec<u8>,
    },
    Ed25519 {
        x: [u8; 32],
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

/// One signing key of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    material: KeyMaterial,
    /// The key's JSON exactly as published, so a recorded set can be written back.
    json: Value,
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        matches!(
            (&self.material, alg),
            (
                KeyMaterial::Rsa { .. },
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512
            ) | (
                KeyMaterial::Ec {
                    curve: EcCurve::P256,
                    ..
                },
                Alg::Es256
            ) | (
                KeyMaterial::Ec {
                    curve: EcCurve::P384,
                    ..
                },
                Alg::Es384
            ) | (KeyMaterial::Ed25519 { .. }, Alg::EdDsa)
        )
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => {
                let params: &signature::RsaParameters = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            KeyMaterial::Ec { curve, point } => {
                let params = match curve {
                    EcCurve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    EcCurve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::Ed25519 { x } => {
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(x) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                !key.is_weak() && key.verify_strict(message, &sig).is_ok()
            }
        }
    }
}

/// An issuer's signing keys (a JSON Web Key Set, RFC 7517), as used to check its tokens.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWK set. Keys of other types or curves, or marked `"use":"enc"`, are skipped (an
    /// issuer may publish encryption keys too); a malformed key of a supported type is an error.
    pub fn parse(json: &str) -> Result<Jwks, JoseError> {
        if json.len() > MAX_JWKS_LEN {
            return Err(JoseError::Malformed(format!(
                "key set of {} bytes, more than the {MAX_JWKS_LEN} accepted",
                json.len()
            )));
        }
        let doc: Value = serde_json::from_str(json)
            .map_err(|e| JoseError::Malformed(format!("key set is not JSON: {e}")))?;
        let Some(Value::Array(keys)) = doc.get("keys") else {
            return Err(JoseError::Malformed(
                "key set has no \"keys\" array".to_owned(),
            ));
        };
        let mut parsed = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(jwk) =
                parse_jwk(key).map_err(|e| JoseError::Malformed(format!("key {i}: {e}")))?
            {
                parsed.push(jwk);
            }
        }
        Ok(Jwks { keys: parsed })
    }

    /// Whether a key with this id is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The ids of the keys (keys without an id are not listed).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// Number of usable signing keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable signing key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys as a JWK set document, each key as it was published.
    pub fn to_json(&self) -> String {
        let keys: Vec<Value> = self.keys.iter().map(|k| k.json.clone()).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Adds the keys of `newer`, replacing keys with the same id (an issuer's rotation).
    pub fn merge(&mut self, newer: &Jwks) {
        for key in &newer.keys {
            let same_id = key
                .kid
                .as_deref()
                .and_then(|kid| self.keys.iter().position(|k| k.kid.as_deref() == Some(kid)));
            match same_id {
                Some(i) => self.keys[i] = key.clone(),
                None if !self.keys.contains(key) => self.keys.push(key.clone()),
                None => {}
            }
        }
    }

    fn find(&self, kid: Option<&str>, alg: Alg) -> Option<&Jwk> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.fits(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

fn parse_jwk(key: &Value) -> Result<Option<Jwk>, String> {
    let obj = key.as_object().ok_or("not a JSON object")?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{name:?} is not a string")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let s = text(name)?.ok_or_else(|| format!("missing {name:?}"))?;
        b64url(s).map_err(|e| format!("{name:?}: {e}"))
    };
    if text("use")? == Some("enc") {
        return Ok(None);
    }
    let material = match text("kty")?.ok_or("missing \"kty\"")? {
        "RSA" => {
            let n = bytes("n")?;
            let e = bytes("e")?;
            if n.len() < 256 {
                return Err(format!(
                    "RSA modulus of {} bits; at least 2048 are required",
                    n.len() * 8
                ));
            }
            KeyMaterial::Rsa { n, e }
        }
        "EC" => {
            let (curve, len) = match text("crv")? {
                Some("P-256") => (EcCurve::P256, 32),
                Some("P-384") => (EcCurve::P384, 48),
                _ => return Ok(None),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinates of the wrong length".to_owned());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        "OKP" => {
            if text("crv")? != Some("Ed25519") {
                return Ok(None);
            }
            let x: [u8; 32] = bytes("x")?
                .try_into()
                .map_err(|_| "Ed25519 key is not 32 bytes".to_owned())?;
            KeyMaterial::Ed25519 { x }
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        kid: text("kid")?.map(str::to_owned),
        alg: text("alg")?.map(str::to_owned),
        material,
        json: key.clone(),
    }))
}

/// Strict base64url without padding (RFC 7515 §2): no `=`, no `+` or `/`, no stray bits.
fn b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("not unpadded base64url: {e}"))
}

/// A token's protected header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwsHeader {
    /// The signing algorithm.
    pub alg: String,
    /// The signing key's id.
    pub kid: Option<String>,
    /// The token type.
    pub typ: Option<String>,
}

struct Parts<'a> {
    header: JwsHeader,
    signing_input: &'a [u8],
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JoseError> {
    let malformed = |why: &str| JoseError::Malformed(format!("token {why}"));
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("is too long"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(malformed(
            "is not a compact JWS (three dot-separated parts)",
        ));
    };
    let header_bytes = b64url(h).map_err(|e| malformed(&format!("header: {e}")))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| malformed(&format!("header is not a JSON object: {e}")))?;
    if header.contains_key("crit") {
        return Err(malformed(
            "header has critical extensions, which are not supported",
        ));
    }
    let field = |name: &str| -> Result<Option<String>, JoseError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed(&format!("header {name:?} is not a string"))),
        }
    };
    let header = JwsHeader {
        alg: field("alg")?.ok_or_else(|| malformed("header has no \"alg\""))?,
        kid: field("kid")?,
        typ: field("typ")?,
    };
    Ok(Parts {
        header,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        payload: b64url(p).map_err(|e| malformed(&format!("payload: {e}")))?,
        signature: b64url(s).map_err(|e| malformed(&format!("signature: {e}")))?,
    })
}

/// Reads a token's protected header without checking anything else (to pick the key set).
pub fn header(token: &str) -> Result<JwsHeader, JoseError> {
    split(token).map(|p| p.header)
}

/// A token's claims WITHOUT checking its signature: for routing and display only (which provider,
/// when it was issued), never for a decision.
pub fn peek_claims(token: &str) -> Result<Map<String, Value>, JoseError> {
    let parts = split(token)?;
    serde_json::from_slice(&parts.payload)
        .map_err(|e| JoseError::Malformed(format!("token payload is not a JSON object: {e}")))
}

/// Checks a token's signature against `jwks` and returns its claims (the payload object).
pub fn verify(token: &str, jwks: &Jwks) -> Result<Map<String, Value>, JoseError> {
    let parts = split(token)?;
    let alg = Alg::parse(&parts.header.alg)
        .ok_or_else(|| JoseError::UnsupportedAlgorithm(parts.header.alg.clone()))?;
    let key = jwks
        .find(parts.header.kid.as_deref(), alg)
        .ok_or_else(|| JoseError::UnknownKey {
            kid: parts.header.kid.clone(),
        })?;
    if !key.verify(alg, parts.signing_input, &parts.signature) {
        return Err(JoseError::BadSignature);
    }
    serde_json::from_slice(&parts.payload)
        .map_err(|e| JoseError::Malformed(format!("token payload is not a JSON object: {e}")))
}

/// The claims of a validated ID token.
#[derive(Clone, Debug, PartialEq)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the issuer's stable id of the person.
    pub sub: String,
    /// Audiences (client ids).
    pub aud: Vec<String>,
    /// Authorised party.
    pub azp: Option<String>,
    /// Expiry.
    pub exp: Timestamp,
    /// Issue time.
    pub iat: Timestamp,
    /// When the person last actually authenticated.
    pub auth_time: Option<Timestamp>,
    /// The sign-in's nonce.
    pub nonce: Option<String>,
    /// Every other claim.
    pub other: Map<String, Value>,
}

impl IdTokenClaims {
    /// A string-valued claim other than the standard ones above.
    pub fn string_claim(&self, name: &str) -> Option<&str> {
        self.other.get(name).and_then(Value::as_str)
    }

    /// The groups in claim `claim`: an array of strings (absent means none; a single string is
    /// one group). Anything else is an error, never silently "no groups".
    pub fn groups(&self, claim: &str) -> Result<Vec<String>, JoseError> {
        match self.other.get(claim) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(JoseError::MissingClaim("groups")),
            Some(_) => Err(JoseError::MissingClaim("groups")),
        }
    }
}

/// What an ID token must satisfy.
#[derive(Clone, Debug)]
pub struct IdTokenCheck<'a> {
    /// The configured issuer; `iss` must equal it exactly.
    pub issuer: &'a str,
    /// The client id; it must be an audience (and the authorised party where one is named).
    pub client_id: &'a str,
    /// The nonce sent with the sign-in, when the token must carry it.
    pub nonce: Option<&'a str>,
    /// The time of the check.
    pub now: Timestamp,
    /// Allowed clock difference with the issuer.
    pub leeway: Span,
}

/// Validates an ID token (OpenID Connect Core §3.1.3.7): signature by a key of `jwks`, issuer,
/// audience and authorised party, expiry and issue time (with `leeway`), and the nonce.
pub fn validate_id_token(
    token: &str,
    jwks: &Jwks,
    check: &IdTokenCheck<'_>,
) -> Result<IdTokenClaims, JoseError> {
    let mut claims = verify(token, jwks)?;
    let mut take_str = |name: &'static str| match claims.remove(name) {
        Some(Value::String(s)) => Ok(Some(s)),
        None => Ok(None),
        Some(_) => Err(JoseError::MissingClaim(name)),
    };
    let iss = take_str("iss")?.ok_or(JoseError::MissingClaim("iss"))?;
    let sub = take_str("sub")?
        .filter(|s| !s.is_empty())
        .ok_or(JoseError::MissingClaim("sub"))?;
    let azp = take_str("azp")?;
    let nonce = take_str("nonce")?;
    let aud = match claims.remove("aud") {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(JoseError::MissingClaim("aud"))?,
        _ => return Err(JoseError::MissingClaim("aud")),
    };
    let mut take_time = |name: &'static str| match claims.remove(name) {
        None => Ok(None),
        Some(v) => numeric_date(&v)
            .map(Some)
            .ok_or(JoseError::MissingClaim(name)),
    };
    let exp = take_time("exp")?.ok_or(JoseError::MissingClaim("exp"))?;
    let iat = take_time("iat")?.ok_or(JoseError::MissingClaim("iat"))?;
    let auth_time = take_time("auth_time")?;

    if iss != check.issuer {
        return Err(JoseError::WrongIssuer {
            expected: check.issuer.to_owned(),
            found: iss,
        });
    }
    if !aud.iter().any(|a| a == check.client_id) {
        return Err(JoseError::WrongAudience {
            client_id: check.client_id.to_owned(),
            found: aud,
        });
    }
    // With several audiences the authorised party must be named; where named it must be us.
    if (aud.len() > 1 || azp.is_some()) && azp.as_deref() != Some(check.client_id) {
        return Err(JoseError::WrongAuthorizedParty {
            client_id: check.client_id.to_owned(),
            found: azp,
        });
    }
    let leeway_ms = check.leeway.as_millis();
    if check.now.millis_since(exp) >= leeway_ms {
        return Err(JoseError::Expired {
            exp,
            now: check.now,
        });
    }
    if iat.millis_since(check.now) > leeway_ms {
        return Err(JoseError::IssuedInFuture {
            iat,
            now: check.now,
        });
    }
    if let Some(expected) = check.nonce {
        if nonce.as_deref() != Some(expected) {
            return Err(JoseError::NonceMismatch);
        }
    }
    Ok(IdTokenClaims {
        iss,
        sub,
        aud,
        azp,
        exp,
        iat,
        auth_time,
        nonce,
        other: claims,
    })
}

/// A JWT NumericDate (seconds since the epoch, possibly fractional) as a timestamp.
fn numeric_date(v: &Value) -> Option<Timestamp> {
    let millis = if let Some(secs) = v.as_i64() {
        secs.checked_mul(1000)?
    } else {
        let secs = v.as_f64()?;
        if !secs.is_finite() {
            return None;
        }
        // Bounded by the range check below; the cast saturates.
        (secs * 1000.0).floor() as i64
    };
    Timestamp::from_unix_millis(millis)
}

const NONCE_CONTEXT: &[u8] = b"breakglass/oidc-nonce/v1\n";

/// A sign-in nonce bound to `key`: the key's tag (base64url of SHA-256 over a context string and
/// the key), a dot, and 16 fresh random bytes so no two sign-ins share a nonce. An ID token that
/// carries it proves the sign-in was made for this key.
pub fn key_bound_nonce(key: &PublicKey, random: [u8; 16]) -> String {
    format!("{}.{}", key_tag(key), URL_SAFE_NO_PAD.encode(random))
}

/// Whether `nonce` was made by [`key_bound_nonce`] for `key`.
pub fn nonce_binds_key(nonce: &str, key: &PublicKey) -> bool {
    match nonce.split_once('.') {
        Some((tag, random)) => tag == key_tag(key) && b64url(random).is_ok_and(|r| r.len() == 16),
        None => false,
    }
}

fn key_tag(key: &PublicKey) -> String {
    let mut h = Sha256::new();
    h.update(NONCE_CONTEXT);
    h.update(key.0);
    URL_SAFE_NO_PAD.encode(h.finalize())
}
