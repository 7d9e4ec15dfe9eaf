//! Sign-in without a browser on this machine: the device authorization grant (RFC 8628).
//!
//! The polling is ours rather than oauth2's: its loop retries transport failures until the code
//! expires, where a provider that is down must fail within seconds; and it cannot tell an
//! `interval` the provider sent from its own default.

use std::fmt;
use std::time::Duration;

use breakglass_core::{Span, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::config::require_secure;
use crate::http::{Endpoint, EndpointKind, Http};
use crate::provider::{Provider, SignIn, TokenResponse};
use crate::IdpError;

/// The polling interval when the provider does not give one (RFC 8628 §3.2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How much a `slow_down` answer adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// How to sign in with the device flow.
#[derive(Clone, Debug)]
pub struct DeviceOptions {
    /// The nonce the ID token must carry. Not part of RFC 8628: a provider that ignores it (as
    /// oidc-provider does) issues ID tokens without one, and the sign-in then fails with a nonce
    /// mismatch. `None` skips the check.
    pub nonce: Option<String>,
    /// `max_age`, as for [`LoginOptions`](crate::LoginOptions): `auth_time` is then required
    /// and checked.
    pub max_age: Option<Duration>,
    /// Scopes to ask for besides the configured ones.
    pub extra_scopes: Vec<String>,
    /// The polling interval used when the provider's answer has none. The provider's own
    /// interval, when given, always wins; tests shorten this one.
    pub interval_when_unspecified: Duration,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            nonce: None,
            max_age: None,
            extra_scopes: Vec::new(),
            interval_when_unspecified: DEFAULT_POLL_INTERVAL,
        }
    }
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// A device sign-in waiting for the person to enter the code on another device.
pub struct PendingDevice {
    provider: Provider,
    device_code: SecretString,
    user_code: String,
    verification_uri: Url,
    verification_uri_complete: Option<Url>,
    expires_at: Timestamp,
    deadline: Instant,
    interval: Duration,
    nonce: Option<String>,
    max_age: Option<Duration>,
}

impl fmt::Debug for PendingDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingDevice")
            .field("issuer", &self.provider.issuer())
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri.as_str())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Starts a device sign-in: asks the provider for a device code and the code the person
    /// enters at the verification URI.
    pub async fn begin_device(&self, options: DeviceOptions) -> Result<PendingDevice, IdpError> {
        let url = self
            .metadata()
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| self.unsupported("the device authorization grant (RFC 8628)"))?;
        let endpoint = Endpoint::new(EndpointKind::DeviceAuthorization, url);
        let scopes = self.config().scopes_with(&options.extra_scopes).join(" ");
        let mut form = vec![("scope", scopes)];
        if let Some(nonce) = &options.nonce {
            form.push(("nonce", nonce.clone()));
        }
        if let Some(max_age) = options.max_age {
            form.push(("max_age", max_age.as_secs().to_string()));
        }
        let reply = self.post_form(&endpoint, form).await?;
        if !reply.status.is_success() {
            return Err(self.request_refused(&endpoint, &reply));
        }
        let http = &self.inner.http;
        let answer: DeviceAuthorization = http.json(&endpoint, &reply)?;
        let parse = |name: &str, value: &str| -> Result<Url, IdpError> {
            let url = Url::parse(value).map_err(|e| {
                http.invalid(&endpoint, &reply, format!("its {name} is not a URL: {e}"))
            })?;
            require_secure(self.issuer(), name, &url)?;
            Ok(url)
        };
        let verification_uri = parse("verification_uri", &answer.verification_uri)?;
        let verification_uri_complete = answer
            .verification_uri_complete
            .as_deref()
            .map(|u| parse("verification_uri_complete", u))
            .transpose()?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let expires_at = self
            .inner
            .clock
            .now()
            .checked_add(Span::from_secs(answer.expires_in))
            .ok_or_else(|| {
                http.invalid(
                    &endpoint,
                    &reply,
                    "its expires_in is out of range".to_owned(),
                )
            })?;
        Ok(PendingDevice {
            provider: self.clone(),
            device_code: SecretString::from(answer.device_code),
            user_code: answer.user_code,
            verification_uri,
            verification_uri_complete,
            expires_at,
            deadline: Instant::now() + lifetime,
            interval: answer
                .interval
                .map(Duration::from_secs)
                .unwrap_or(options.interval_when_unspecified),
            nonce: options.nonce,
            max_age: options.max_age,
        })
    }
}

/// What to do after one poll of the token endpoint that did not return tokens.
#[derive(Debug, PartialEq, Eq)]
enum Poll {
    /// Ask again after this interval.
    Wait(Duration),
    /// Stop: the person refused.
    Denied,
    /// Stop: the code expired.
    Expired,
    /// Stop: another error.
    Failed,
}

fn next_poll(error: &str, interval: Duration) -> Poll {
    match error {
        "authorization_pending" => Poll::Wait(interval),
        "slow_down" => Poll::Wait(interval + SLOW_DOWN_STEP),
        "access_denied" => Poll::Denied,
        "expired_token" => Poll::Expired,
        _ => Poll::Failed,
    }
}

impl PendingDevice {
    /// The code the person enters.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the person enters it.
    pub fn verification_uri(&self) -> &Url {
        &self.verification_uri
    }

    /// The verification URI with the code filled in (for a QR code or a link), if offered.
    pub fn verification_uri_complete(&self) -> Option<&Url> {
        self.verification_uri_complete.as_ref()
    }

    /// When the code expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// The interval between polls (the provider's, or the configured default).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Polls the token endpoint until the person confirms (then validates the ID token like a
    /// browser sign-in), refuses, or the code expires. Honours the interval and `slow_down`.
    pub async fn finish(self) -> Result<SignIn, IdpError> {
        let provider = &self.provider;
        let issuer = provider.issuer().to_owned();
        let endpoint = Endpoint::new(
            EndpointKind::Token,
            provider.metadata().token_endpoint.clone(),
        );
        let expired = || IdpError::DeviceCodeExpired {
            issuer: issuer.clone(),
            user_code: self.user_code.clone(),
            expires_at: self.expires_at,
        };
        let mut interval = self.interval;
        loop {
            if Instant::now() + interval >= self.deadline {
                tokio::time::sleep_until(self.deadline).await;
                return Err(expired());
            }
            tokio::time::sleep(interval).await;
            let form = vec![
                ("grant_type", DEVICE_CODE_GRANT.to_owned()),
                ("device_code", self.device_code.expose_secret().to_owned()),
            ];
            let reply = provider.post_form(&endpoint, form).await?;
            if reply.status.is_success() {
                let http: &Http = &provider.inner.http;
                let response: TokenResponse = http.json(&endpoint, &reply)?;
                return provider
                    .sign_in(&response, self.nonce.as_deref(), self.max_age)
                    .await;
            }
            let Some((error, description)) = Http::oauth_error(&reply) else {
                return Err(provider.inner.http.status_error(&endpoint, &reply));
            };
            match next_poll(&error, interval) {
                Poll::Wait(next) => interval = next,
                Poll::Expired => return Err(expired()),
                Poll::Denied => {
                    return Err(IdpError::Denied {
                        issuer,
                        error,
                        description,
                    })
                }
                Poll::Failed => {
                    return Err(IdpError::GrantRefused {
                        issuer,
                        grant: "device code",
                        error,
                        description,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_follows_rfc_8628() {
        let five = Duration::from_secs(5);
        assert_eq!(next_poll("authorization_pending", five), Poll::Wait(five));
        assert_eq!(
            next_poll("slow_down", five),
            Poll::Wait(Duration::from_secs(10)),
            "slow_down adds five seconds"
        );
        assert_eq!(
            next_poll("slow_down", Duration::from_secs(10)),
            Poll::Wait(Duration::from_secs(15)),
            "and keeps adding"
        );
        assert_eq!(next_poll("access_denied", five), Poll::Denied);
        assert_eq!(next_poll("expired_token", five), Poll::Expired);
        assert_eq!(next_poll("invalid_grant", five), Poll::Failed);
    }
}
