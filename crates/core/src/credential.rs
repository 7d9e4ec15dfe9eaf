//! What a requester hands in with a request so a target can grant them access without any
//! secret travelling ([`Credential`]), and what a grant hands back ([`Issued`]).
//!
//! - SSH: the requester's public key; the grant is a certificate for it (public too).
//! - PostgreSQL: the SCRAM-SHA-256 verifier of a password the requester's machine generated and
//!   kept; the grant is a login role holding that verifier. The password never leaves the
//!   requester's machine and is never logged; the database only ever stores its verifier.
//! - OAuth: the requester's sealing public key ([`crate::seal`]); the grant is an access token
//!   sealed to it, and a copy sealed to the broker (which revokes it), so the log holds the
//!   token only in forms those two alone can open.
//!
//! Core checks their shape (bounded, one line, the right form); the connectors check them in
//! full before a request is recorded.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{RequestId, Timestamp};

/// The longest credential accepted, in bytes: generous for any OpenSSH public key (an RSA-16384
/// key is about 2.8 kB) and a SCRAM verifier (about 130 bytes).
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// What a requester supplies for a grant on a target whose connector needs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA… comment`) to be certified.
    SshPublicKey(String),
    /// A PostgreSQL SCRAM-SHA-256 verifier
    /// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`).
    ScramVerifier(String),
    /// The requester's X25519 public key for sealing ([`crate::seal::SealPublicKey`]), derived
    /// from their identity key: what a granted access token is sealed to.
    SealKey(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither is a secret, but a verifier is password-equivalent for offline guessing of
        // weak passwords: keep it out of debug output all the same.
        match self {
            Credential::SshPublicKey(key) => f.debug_tuple("SshPublicKey").field(key).finish(),
            Credential::ScramVerifier(_) => f.write_str("ScramVerifier(<verifier>)"),
            Credential::SealKey(key) => f.debug_tuple("SealKey").field(key).finish(),
        }
    }
}

/// The kinds of [`Credential`], as a connector asks for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// [`Credential::SshPublicKey`].
    SshPublicKey,
    /// [`Credential::ScramVerifier`].
    ScramVerifier,
    /// [`Credential::SealKey`].
    SealKey,
}

impl CredentialKind {
    /// What it is, for messages ("an SSH public key").
    pub fn describe(self) -> &'static str {
        match self {
            CredentialKind::SshPublicKey => "an SSH public key",
            CredentialKind::ScramVerifier => "a database password verifier",
            CredentialKind::SealKey => "a sealing public key",
        }
    }
}

impl Credential {
    /// Its kind.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::SshPublicKey(_) => CredentialKind::SshPublicKey,
            Credential::ScramVerifier(_) => CredentialKind::ScramVerifier,
            Credential::SealKey(_) => CredentialKind::SealKey,
        }
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        match self {
            Credential::SshPublicKey(s) | Credential::ScramVerifier(s) | Credential::SealKey(s) => {
                s
            }
        }
    }

    /// Why its shape is wrong, if it is: too long, not one line of printable ASCII, or not of
    /// its kind's form.
    pub fn shape_problem(&self) -> Option<String> {
        let text = self.as_str();
        let what = self.kind().describe();
        if text.is_empty() {
            return Some(format!("{what} is empty"));
        }
        if text.len() > MAX_CREDENTIAL_BYTES {
            return Some(format!(
                "{what} is {} bytes long; the limit is {MAX_CREDENTIAL_BYTES}",
                text.len()
            ));
        }
        if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Some(format!("{what} must be one line of printable ASCII"));
        }
        match self {
            Credential::SshPublicKey(key) => {
                let mut parts = key.split(' ');
                let algorithm = parts.next().unwrap_or("");
                let blob = parts.next().unwrap_or("");
                let known = algorithm.starts_with("ssh-")
                    || algorithm.starts_with("ecdsa-sha2-")
                    || algorithm.starts_with("sk-");
                if !known || blob.is_empty() {
                    return Some(
                        "an SSH public key must look like \"ssh-ed25519 AAAA… comment\" (the \
                         .pub file, not the private key)"
                            .into(),
                    );
                }
            }
            Credential::ScramVerifier(v) => {
                if !v.starts_with("SCRAM-SHA-256$") || v.matches('$').count() != 2 {
                    return Some(
                        "a database password verifier must be of the form \
                         SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
                            .into(),
                    );
                }
            }
            Credential::SealKey(key) => {
                if let Err(e) = crate::seal::SealPublicKey::parse(key) {
                    return Some(format!(
                        "a sealing public key must be 43 characters of base64url: {e}"
                    ));
                }
            }
        }
        None
    }
}

/// What a grant handed out, recorded with it. Never a secret in plain: a secret (a token) is
/// recorded only sealed to the requester and to the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Issued {
    /// An OpenSSH user certificate (`ssh-ed25519-cert-v01@openssh.com AAAA…`), valid until the
    /// deadline, for the requester's key.
    SshCertificate(String),
    /// The database login role created for the grant; its password is the requester's.
    DatabaseRole(String),
    /// An OAuth access token, sealed.
    AccessToken(SealedToken),
}

/// An access token as recorded: sealed to the requester (who uses it) and to the broker (which
/// revokes it), with what may be said of it in the open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedToken {
    // Fields in byte order of their names: the canonical encoding (see docs/log-format.md).
    /// When it stops working at the latest: at or before the grant's deadline.
    pub expires_at: Timestamp,
    /// The token sealed to the broker's sealing key, context [`SealedToken::broker_context`].
    pub for_broker: String,
    /// The token sealed to the requester's [`Credential::SealKey`], context
    /// [`SealedToken::requester_context`].
    pub for_requester: String,
    /// A JWT, which resource servers check on their own: revoking it at the provider does not
    /// stop it before `expires_at`.
    pub jwt: bool,
    /// The resource (RFC 8707 indicator) it is for.
    pub resource: String,
    /// The provider's subject (`sub`) the token acts for, when it was obtained by token exchange
    /// (RFC 8693) for the requester's sign-in; `None` for a token of the broker's own client
    /// (client credentials). Omitted when `None` (never `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl SealedToken {
    /// The sealing context of the requester's copy of request `request`'s token.
    pub fn requester_context(request: &RequestId) -> String {
        format!("access token {request} requester")
    }

    /// The sealing context of the broker's copy of request `request`'s token.
    pub fn broker_context(request: &RequestId) -> String {
        format!("access token {request} broker")
    }
}

impl Issued {
    /// Why it is malformed, if it is (bounded, one line of printable ASCII).
    pub fn shape_problem(&self) -> Option<String> {
        let texts: Vec<&str> = match self {
            Issued::SshCertificate(s) | Issued::DatabaseRole(s) => vec![s],
            Issued::AccessToken(t) => [&t.resource, &t.for_requester, &t.for_broker]
                .into_iter()
                .chain(&t.subject)
                .map(String::as_str)
                .collect(),
        };
        for text in texts {
            if text.is_empty() || text.len() > 2 * MAX_CREDENTIAL_BYTES {
                return Some("an issued credential must be 1 to 16384 bytes long".into());
            }
            if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Some("an issued credential must be one line of printable ASCII".into());
            }
        }
        if let Issued::AccessToken(t) = self {
            if ![&t.for_requester, &t.for_broker]
                .iter()
                .all(|s| s.starts_with(crate::seal::SEALED_PREFIX))
            {
                return Some("an issued access token must be sealed".into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        let key = Credential::SshPublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@host".into());
        assert_eq!(key.shape_problem(), None);
        for bad in [
            "",
            "AAAAC3NzaC1lZDI1NTE5",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519",
            "ssh-ed25519 AAAA\nssh-rsa AAAA",
        ] {
            assert!(
                Credential::SshPublicKey(bad.into())
                    .shape_problem()
                    .is_some(),
                "{bad:?}"
            );
        }
        let long = format!("ssh-ed25519 {}", "A".repeat(MAX_CREDENTIAL_BYTES));
        assert!(Credential::SshPublicKey(long).shape_problem().is_some());
        let verifier = Credential::ScramVerifier("SCRAM-SHA-256$4096:c2FsdA==$YQ==:Yg==".into());
        assert_eq!(verifier.shape_problem(), None);
        assert!(Credential::ScramVerifier("md5abc".into())
            .shape_problem()
            .is_some());
        assert!(
            !format!("{verifier:?}").contains("c2FsdA"),
            "not in debug output"
        );
    }

    #[test]
    fn an_empty_credential_is_omitted_so_earlier_events_keep_their_encoding() {
        use crate::event::EventBody;
        let body = |credential| EventBody::AccessRequested {
            auth: None,
            break_glass: false,
            credential,
            duration: crate::Span::from_secs(60),
            extends: None,
            policy_version: 1,
            reason: "r".into(),
            request: crate::RequestId::parse("req_aaaaaaaaaaaaaaaa").unwrap(),
            role: "default".into(),
            target: "t".into(),
            ticket: None,
        };
        let without = serde_json::to_string(&body(None)).unwrap();
        assert!(!without.contains("credential"), "{without}");
        assert_eq!(
            serde_json::from_str::<EventBody>(&without).unwrap(),
            body(None)
        );
        let with = serde_json::to_string(&body(Some(Credential::SshPublicKey(
            "ssh-ed25519 AAAA".into(),
        ))))
        .unwrap();
        assert!(
            with.contains(r#""break_glass":false,"credential":{"ssh_public_key":"ssh-ed25519 AAAA"},"duration""#),
            "in byte order of the names: {with}"
        );
    }

    #[test]
    fn a_sealed_token_encodes_its_fields_in_byte_order() {
        let t = Issued::AccessToken(SealedToken {
            expires_at: Timestamp::from_unix_millis(1_800_000_000_000).unwrap(),
            for_broker: "bgseal1.b".into(),
            for_requester: "bgseal1.r".into(),
            jwt: false,
            resource: "https://api".into(),
            subject: None,
        });
        let text = serde_json::to_string(&t).unwrap();
        assert!(!text.contains("subject"), "omitted when None: {text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&value).unwrap(),
            "already canonical"
        );
        assert_eq!(serde_json::from_str::<Issued>(&text).unwrap(), t);
        assert_eq!(t.shape_problem(), None);
        let mut plain = t.clone();
        if let Issued::AccessToken(p) = &mut plain {
            p.for_requester = "eyJhbGciOi".into();
        }
        assert!(
            plain.shape_problem().is_some(),
            "an unsealed token is refused"
        );
        let mut exchanged = t.clone();
        if let Issued::AccessToken(p) = &mut exchanged {
            p.subject = Some("alice".into());
        }
        let text = serde_json::to_string(&exchanged).unwrap();
        assert!(
            text.ends_with(r#""resource":"https://api","subject":"alice"}}"#),
            "after resource: {text}"
        );
        assert_eq!(serde_json::from_str::<Issued>(&text).unwrap(), exchanged);
        if let Issued::AccessToken(p) = &mut exchanged {
            p.subject = Some("alice\nbob".into());
        }
        assert!(exchanged.shape_problem().is_some(), "a subject is one line");
    }

    #[test]
    fn serialises_externally_tagged() {
        let c = Credential::SshPublicKey("ssh-ed25519 AAAA".into());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"ssh_public_key":"ssh-ed25519 AAAA"}"#
        );
        let i = Issued::DatabaseRole("bg_x".into());
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"database_role":"bg_x"}"#
        );
        assert!(serde_json::from_str::<Issued>(r#"{"other":"x"}"#).is_err());
    }
}
