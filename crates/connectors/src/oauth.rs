//! OAuth 2.0 tokens: a short-lived access token for the target resource, from the organisation's
//! provider, by the client-credentials grant (RFC 6749 §4.4) with an RFC 8707 resource
//! indicator, whose expiry is at or before the grant's deadline — so the token itself stops
//! working then, whoever holds it — and revoked early with RFC 7009.
//!
//! Providers differ in how long their tokens live. A connector declares the longest lifetime the
//! provider issues for the resource ([`TokenSettings::max_lifetime`]; a policy's caps may not
//! exceed it) and, where the provider takes one, the token-request parameter that asks for a
//! shorter lifetime ([`TokenSettings::lifetime_parameter`]). Whatever the provider answers, a
//! token that would outlive the deadline is revoked at once and the grant fails: it never reaches
//! the requester.

use std::fmt;

use breakglass_core::{jose, Span, Timestamp};
use breakglass_idp::{AccessToken, Provider};

use crate::ConnectorError;

/// How far before the deadline a token is asked to end, for the time the request takes and
/// clocks that differ slightly.
pub const EXPIRY_MARGIN: Span = Span::from_secs(1);

/// What to ask the provider for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The resource indicator (RFC 8707): the API the token is for.
    pub resource: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
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
}

impl fmt::Debug for ObtainedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObtainedToken")
            .field("expires_at", &self.expires_at)
            .field("jwt", &self.jwt)
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

    /// A token for access from `now` until `deadline`: asked to end [`EXPIRY_MARGIN`] before
    /// the deadline, and refused (revoked at once) if the provider's answer says it would live
    /// past the deadline.
    pub async fn obtain(
        &self,
        now: Timestamp,
        deadline: Timestamp,
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
        let tokens = self
            .provider
            .client_credentials(Some(&s.resource), &s.scopes, &extra)
            .await
            .map_err(provider_error("obtaining a token"))?;
        let token = tokens.access_token;
        // A JWT's own `exp` is what resource servers check; `expires_in` (counted from when the
        // answer arrived, so never earlier than the truth) covers opaque tokens. The later of
        // the two is what must not pass the deadline.
        let jwt_exp = jose::peek_claims(token.expose_secret())
            .ok()
            .and_then(|claims| claims.get("exp")?.as_i64())
            .and_then(|secs| Timestamp::from_unix_millis(secs.checked_mul(1000)?));
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
