//! OAuth 2.0 tokens: a short-lived access token for the target resource, from the organisation's
//! provider, with an RFC 8707 resource indicator, whose expiry is at or before the grant's
//! deadline — so the token itself stops working then, whoever holds it — and revoked early with
//! RFC 7009.
//!
//! Where the provider offers token exchange (RFC 8693, listed in its discovery document) and the
//! request carries the requester's sign-in (their ID token, still valid), the token is obtained
//! by exchanging it: the token then names the requester (`sub`), so the resource sees who acts.
//! Otherwise — a provider without the grant, a local identity, a sign-in that expired while the
//! request waited for approval — it is the broker client's own token (client credentials,
//! RFC 6749 §4.4). The grant records which (`SealedToken::subject`).
//!
//! Providers differ in how long their tokens live. A connector declares the longest lifetime the
//! provider issues for the resource ([`TokenSettings::max_lifetime`]; a policy's caps may not
//! exceed it) and, where the provider takes one, the token-request parameter that asks for a
//! shorter lifetime ([`TokenSettings::lifetime_parameter`]). Whatever the provider answers, a
//! token that would outlive the deadline is revoked at once and the grant fails: it never reaches
//! the requester.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::policy::OAuthSpec;
use breakglass_core::seal::{seal, SealPublicKey, SealSecretKey};
use breakglass_core::{jose, Clock, Credential, Issued, SealedToken, Span, SystemClock, Timestamp};
use breakglass_idp::{AccessToken, ClientSecret, Provider, ProviderConfig};
use tokio::sync::OnceCell;

use crate::{Access, BoxFuture, Connector, ConnectorError, Secrets};

/// How far before the deadline a token is asked to end, for the time the request takes and
/// clocks that differ slightly.
pub const EXPIRY_MARGIN: Span = Span::from_secs(1);

/// How long a requester's ID token must still be valid to be exchanged: the time the exchange
/// takes and clocks that differ.
pub const SUBJECT_MARGIN: Span = Span::from_secs(10);

/// What to ask the provider for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The resource indicator (RFC 8707): the API the token is for.
    pub resource: String,
    /// The longest lifetime the provider issues tokens for the resource with.
    pub max_lifetime: Span,
    /// The token-request parameter with which the provider takes a shorter lifetime (seconds),
    /// when it has one.
    pub lifetime_parameter: Option<String>,
}

/// An access token obtained for a grant. Its `Debug` does not show the token.
pub struct ObtainedToken {
    /// The token.
    pub token: AccessToken,
    /// When it stops working, at the latest.
    pub expires_at: Timestamp,
    /// Whether it is a JWT (checked by resource servers on their own, so revoking it cannot end
    /// it early: its expiry does).
    pub jwt: bool,
    /// The subject it acts for, when it was obtained by token exchange.
    pub subject: Option<String>,
}

impl fmt::Debug for ObtainedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObtainedToken")
            .field("expires_at", &self.expires_at)
            .field("jwt", &self.jwt)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Obtains and revokes tokens for one resource at one provider.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    provider: Provider,
    settings: TokenSettings,
}

fn provider_error(what: &str) -> impl Fn(breakglass_idp::IdpError) -> ConnectorError + '_ {
    move |e| ConnectorError::new(format!("{what}: {e}"))
}

impl TokenIssuer {
    /// Tokens from `provider` (a confidential client of it) as `settings` say.
    pub fn new(provider: Provider, settings: TokenSettings) -> TokenIssuer {
        TokenIssuer { provider, settings }
    }

    /// A token with `scopes` for access from `now` until `deadline`: asked to end
    /// [`EXPIRY_MARGIN`] before the deadline, and refused (revoked at once) if the provider's
    /// answer says it would live past the deadline. With `subject` (a person's ID token from
    /// this provider) it is obtained by token exchange and acts for that person; without, it is
    /// this client's own (client credentials).
    pub async fn obtain(
        &self,
        now: Timestamp,
        deadline: Timestamp,
        scopes: &[String],
        subject: Option<&str>,
    ) -> Result<ObtainedToken, ConnectorError> {
        let s = &self.settings;
        let window = deadline.millis_since(now) / 1000 - EXPIRY_MARGIN.as_secs() as i64;
        if window < 1 {
            return Err(ConnectorError::new(format!(
                "the grant ends at {deadline}, too soon for a token"
            )));
        }
        let lifetime = Span::from_secs(window as u64);
        if lifetime > s.max_lifetime {
            return Err(ConnectorError::new(format!(
                "the grant lasts {lifetime}, longer than the {} tokens for {} live",
                s.max_lifetime, s.resource
            )));
        }
        let extra: Vec<(&str, String)> = s
            .lifetime_parameter
            .iter()
            .map(|p| (p.as_str(), lifetime.as_secs().to_string()))
            .collect();
        let resource = Some(s.resource.as_str());
        let (tokens, subject) = match subject {
            Some(id_token) => {
                let sub = jose::peek_claims(id_token)
                    .ok()
                    .and_then(|claims| Some(claims.get("sub")?.as_str()?.to_owned()))
                    .ok_or_else(|| {
                        ConnectorError::new("the requester's ID token names no subject")
                    })?;
                let tokens = self
                    .provider
                    .token_exchange(id_token, resource, scopes, &extra)
                    .await
                    .map_err(provider_error(
                        "exchanging the requester's sign-in for a token",
                    ))?;
                (tokens, Some(sub))
            }
            None => {
                let tokens = self
                    .provider
                    .client_credentials(resource, scopes, &extra)
                    .await
                    .map_err(provider_error("obtaining a token"))?;
                (tokens, None)
            }
        };
        let token = tokens.access_token;
        // A JWT's own `exp` is what resource servers check; `expires_in` (counted from when the
        // answer arrived, so never earlier than the truth) covers opaque tokens. The later of
        // the two is what must not pass the deadline.
        let jwt_exp = expiry_of(token.expose_secret());
        let expires_at = match (tokens.expires_at, jwt_exp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let problem = match expires_at {
            None => Some("the provider did not say when the token expires".to_owned()),
            Some(at) if at > deadline => Some(format!(
                "the provider issued a token valid until {at}, after the grant's deadline \
                 {deadline}"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let revoked = match self.provider.revoke(&token).await {
                Ok(()) => "it was revoked",
                Err(_) => "revoking it failed too",
            };
            let hint = if s.lifetime_parameter.is_some() {
                "check the provider's lifetime settings for the resource"
            } else {
                "name the provider's lifetime parameter (lifetime_parameter) or have it issue \
                 tokens for the resource no longer than the shortest grant"
            };
            return Err(ConnectorError::new(format!(
                "{problem}; {revoked} and not handed out ({hint})"
            )));
        }
        Ok(ObtainedToken {
            jwt: jwt_exp.is_some(),
            subject,
            token,
            expires_at: expires_at.unwrap_or(deadline),
        })
    }

    /// Revokes `token` (RFC 7009). Revoking a token that is already revoked or expired
    /// succeeds, as the RFC says.
    pub async fn revoke(&self, token: &AccessToken) -> Result<(), ConnectorError> {
        self.provider
            .revoke(token)
            .await
            .map_err(provider_error("revoking the token"))
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }
}

/// The `oauth` connector: a token per grant from the policy's provider, handed over sealed —
/// to the requester's sealing key for use and to the broker's for revocation — so the log and
/// the database hold it only in forms those two can open. The token's own expiry, at or before
/// the deadline, ends access even when no Breakglass process runs; revoking ends an opaque
/// token at once (a JWT stays valid until its `exp`: resource servers check it on their own).
pub struct OAuthConnector {
    config: ProviderConfig,
    settings: TokenSettings,
    scopes: std::collections::BTreeMap<String, Vec<String>>,
    timeout: Duration,
    broker: SealSecretKey,
    /// Discovered on first use (building a connector does no network I/O).
    issuer: OnceCell<TokenIssuer>,
}

impl fmt::Debug for OAuthConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConnector")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("resource", &self.settings.resource)
            .finish_non_exhaustive()
    }
}

impl OAuthConnector {
    /// The connector for `spec`, its client secret read through `secrets`; `broker` is the
    /// broker's sealing key.
    pub fn new(
        spec: &OAuthSpec,
        secrets: &dyn Secrets,
        broker: &SealSecretKey,
    ) -> Result<OAuthConnector, ConnectorError> {
        let secret = secrets.read(&spec.client_secret)?;
        let secret = std::str::from_utf8(&secret)
            .map_err(|_| ConnectorError::new("the OAuth client secret is not UTF-8 text"))?
            .trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            return Err(ConnectorError::new("the OAuth client secret is empty"));
        }
        let mut config = ProviderConfig::new("oauth-connector", &spec.issuer, &spec.client_id);
        config.client_secret = Some(ClientSecret::new(secret));
        Ok(OAuthConnector {
            config,
            settings: TokenSettings {
                resource: spec.resource.clone(),
                max_lifetime: spec.max_token_lifetime,
                lifetime_parameter: spec.lifetime_parameter.clone(),
            },
            scopes: spec.scopes.clone(),
            timeout: Duration::from_secs(spec.timeout.as_secs()),
            broker: broker.clone(),
            issuer: OnceCell::new(),
        })
    }

    async fn issuer(&self) -> Result<&TokenIssuer, ConnectorError> {
        self.issuer
            .get_or_try_init(|| async {
                let provider = Provider::discover(self.config.clone(), Arc::new(SystemClock))
                    .await
                    .map_err(provider_error("reading the provider's discovery document"))?;
                Ok(TokenIssuer::new(provider, self.settings.clone()))
            })
            .await
    }

    async fn within<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::new(format!(
                    "{what} took longer than {}s",
                    self.timeout.as_secs()
                )))
            })
    }

    async fn grant_token(&self, access: Access<'_>) -> Result<Issued, ConnectorError> {
        let r = access.request;
        let Some(Credential::SealKey(key)) = &r.credential else {
            return Err(ConnectorError::new(
                "the request carries no sealing key to hand the token over with",
            ));
        };
        let requester =
            SealPublicKey::parse(key).map_err(|e| ConnectorError::new(e.to_string()))?;
        let scopes = self.scopes.get(&r.role).cloned().unwrap_or_default();
        let issuer = self.within("reaching the provider", self.issuer()).await?;
        let now = SystemClock.now();
        let subject = r
            .subject_token
            .as_deref()
            .filter(|_| issuer.provider().supports_token_exchange())
            .filter(|id_token| still_valid(id_token, now));
        let got = self
            .within(
                "obtaining a token",
                issuer.obtain(now, access.deadline, &scopes, subject),
            )
            .await?;
        let sealed = seal(
            &requester,
            &SealedToken::requester_context(&r.id),
            got.token.expose_secret().as_bytes(),
        )
        .and_then(|for_requester| {
            Ok((
                for_requester,
                seal(
                    &self.broker.public_key(),
                    &SealedToken::broker_context(&r.id),
                    got.token.expose_secret().as_bytes(),
                )?,
            ))
        });
        match sealed {
            Ok((for_requester, for_broker)) => Ok(Issued::AccessToken(SealedToken {
                resource: self.settings.resource.clone(),
                expires_at: got.expires_at,
                jwt: got.jwt,
                for_requester,
                for_broker,
                subject: got.subject,
            })),
            Err(e) => {
                let _ = self
                    .within("revoking the token", issuer.revoke(&got.token))
                    .await;
                Err(ConnectorError::new(format!(
                    "the token could not be sealed ({e}); it was revoked"
                )))
            }
        }
    }

    async fn revoke_token(&self, access: Access<'_>) -> Result<(), ConnectorError> {
        let r = access.request;
        let Some(Issued::AccessToken(t)) = &r.issued else {
            // The grant issued nothing (it failed before a token existed): nothing to revoke.
            return Ok(());
        };
        if SystemClock.now() >= t.expires_at {
            // Expired on its own: no provider accepts it any more.
            return Ok(());
        }
        let token = self
            .broker
            .open(&SealedToken::broker_context(&r.id), &t.for_broker)
            .map_err(|e| {
                ConnectorError::new(format!(
                    "the broker's copy of the token does not open ({e}); it expires at {}",
                    t.expires_at
                ))
            })?;
        let token = AccessToken::new(
            String::from_utf8(token.to_vec())
                .map_err(|_| ConnectorError::new("the sealed token is not text"))?,
        );
        let issuer = self.within("reaching the provider", self.issuer()).await?;
        self.within("revoking the token", issuer.revoke(&token))
            .await
            .map_err(|e| {
                if t.jwt {
                    ConnectorError::new(format!(
                        "{e}; the token is a JWT and stays valid until {} regardless",
                        t.expires_at
                    ))
                } else {
                    e
                }
            })
    }
}

/// Whether an ID token's `exp` is at least [`SUBJECT_MARGIN`] after `now` (its signature was
/// checked when its request was recorded; the provider checks it again on exchange).
fn still_valid(id_token: &str, now: Timestamp) -> bool {
    match (expiry_of(id_token), now.checked_add(SUBJECT_MARGIN)) {
        (Some(exp), Some(by)) => exp >= by,
        _ => false,
    }
}

/// The `exp` of a JWT (unverified), if it is one and has one.
fn expiry_of(jwt: &str) -> Option<Timestamp> {
    let secs = jose::peek_claims(jwt).ok()?.get("exp")?.as_i64()?;
    Timestamp::from_unix_millis(secs.checked_mul(1000)?)
}

impl Connector for OAuthConnector {
    fn kind(&self) -> &'static str {
        "oauth"
    }

    fn enforces_expiry(&self) -> bool {
        true
    }

    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>> {
        Box::pin(async move { self.grant_token(access).await.map(Some) })
    }

    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(self.revoke_token(access))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn id_token_expiring(exp_secs: i64) -> String {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"sub": "alice", "exp": exp_secs}))
        )
    }

    #[test]
    fn only_an_id_token_valid_for_the_margin_is_exchanged() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000).expect("range");
        let secs = now.unix_millis() / 1000;
        let margin = SUBJECT_MARGIN.as_secs() as i64;
        assert!(still_valid(&id_token_expiring(secs + 300), now));
        assert!(still_valid(&id_token_expiring(secs + margin), now));
        assert!(!still_valid(&id_token_expiring(secs + margin - 1), now));
        assert!(!still_valid(&id_token_expiring(secs - 60), now), "expired");
        assert!(!still_valid("not a token", now));
        assert!(
            !still_valid(&id_token_expiring(i64::MAX), now),
            "out of range"
        );
    }
}
