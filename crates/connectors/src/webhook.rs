//! Webhooks: each grant and revoke is POSTed as JSON to a URL the policy names, signed with a
//! shared secret (HMAC-SHA256 over the time and the body, so a receiver can refuse forgeries and
//! replays), with a time-out per attempt and retries with backoff. Like the `command` connector,
//! the target does not enforce the deadline itself: "expiry enforced by Breakglass only".
//!
//! Headers sent:
//! - `Breakglass-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`;
//! - `Breakglass-Delivery: <id>`: the same for every attempt of one delivery, so a receiver can
//!   tell a retry from a new event.
//!
//! Error texts name the URL's host and the HTTP status, never a response body (a receiver may
//! echo what it was sent).

use std::time::Duration;

use ring::hmac;
use url::Url;
use zeroize::Zeroizing;

use breakglass_core::policy::WebhookSpec;
use breakglass_core::Issued;

use crate::{Access, Action, BoxFuture, Connector, ConnectorError, Instruction, Secrets};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Breakglass-Signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "Breakglass-Delivery";

/// How a webhook is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Time-out of one attempt (connecting, sending, the response).
    pub timeout: Duration,
    /// The wait before the second attempt; it doubles for each one after, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// A webhook endpoint and its signing secret.
pub struct Webhook {
    url: Url,
    secret: Zeroizing<Vec<u8>>,
    retry: Retry,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("secret", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

/// A delivery that a receiver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's HTTP status (2xx).
    pub status: u16,
    /// How many attempts it took.
    pub attempts: u32,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl Webhook {
    /// The webhook at `url` (https, or http to a loopback address only: a grant is not sent in
    /// clear over a network), signed with `secret` (at least 32 bytes).
    pub fn new(url: &str, secret: &[u8], retry: Retry) -> Result<Webhook, ConnectorError> {
        let url = Url::parse(url)
            .map_err(|e| ConnectorError::new(format!("webhook URL {url:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(ConnectorError::new(format!(
                    "webhook URL {url}: use https (plain http only to this machine)"
                )))
            }
            other => {
                return Err(ConnectorError::new(format!(
                    "webhook URL {url}: scheme {other:?} is not http(s)"
                )))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConnectorError::new(
                "webhook URL: put no credentials in the URL; the body is signed instead",
            ));
        }
        if secret.len() < 32 {
            return Err(ConnectorError::new(
                "a webhook's signing secret must be at least 32 bytes",
            ));
        }
        if retry.attempts == 0 || retry.timeout.is_zero() {
            return Err(ConnectorError::new(
                "a webhook needs at least one attempt and a time-out above zero",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout)
            // A redirect would send the grant somewhere the policy did not name.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("breakglass/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::new(format!("webhook client: {e}")))?;
        Ok(Webhook {
            url,
            secret: Zeroizing::new(secret.to_vec()),
            retry,
            client,
        })
    }

    /// Where it goes.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn host(&self) -> String {
        self.url.host_str().unwrap_or("?").to_owned()
    }

    /// POSTs `body` (JSON) as delivery `delivery_id`, signed at the time of each attempt
    /// (`now_secs()`), until a receiver answers 2xx. A 4xx answer other than 408 and 429 is
    /// final (the receiver refused it; sending again would not help); time-outs, connection
    /// failures, 408, 429 and 5xx are tried again after a backoff, up to the attempts allowed.
    pub async fn send(
        &self,
        delivery_id: &str,
        body: &[u8],
        now_secs: impl Fn() -> u64,
    ) -> Result<Delivered, ConnectorError> {
        let mut wait = self.retry.backoff;
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.retry.max_backoff);
            }
            let signature = signature(&self.secret, now_secs(), body);
            let sent = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .header(DELIVERY_HEADER, delivery_id)
                .body(body.to_vec())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if response.status().is_success() {
                        return Ok(Delivered {
                            status,
                            attempts: attempt,
                        });
                    }
                    last = format!("{} answered HTTP {status}", self.host());
                    let retryable = status == 408 || status == 429 || status >= 500;
                    if !retryable {
                        return Err(ConnectorError::new(format!(
                            "webhook refused: {last} (not retried)"
                        )));
                    }
                }
                Err(e) if e.is_timeout() => {
                    last = format!(
                        "{} did not answer within {} s",
                        self.host(),
                        self.retry.timeout.as_secs_f64()
                    );
                }
                Err(e) if e.is_connect() => {
                    last = format!("could not connect to {}", self.host());
                }
                Err(_) => {
                    last = format!("the request to {} failed", self.host());
                }
            }
        }
        Err(ConnectorError::new(format!(
            "webhook not delivered after {} attempt(s): {last}",
            self.retry.attempts
        )))
    }
}

/// The `webhook` connector: the [`Instruction`] of each grant and revoke, POSTed and signed.
#[derive(Debug)]
pub struct WebhookConnector {
    hook: Webhook,
}

impl WebhookConnector {
    /// The connector for `spec`, its signing secret read through `secrets`.
    pub fn new(
        spec: &WebhookSpec,
        secrets: &dyn Secrets,
    ) -> Result<WebhookConnector, ConnectorError> {
        let secret = secrets.read(&spec.secret)?;
        let retry = Retry {
            attempts: spec.attempts,
            timeout: Duration::from_secs(spec.timeout.as_secs()),
            ..Retry::default()
        };
        Ok(WebhookConnector {
            hook: Webhook::new(&spec.url, &secret, retry)?,
        })
    }

    async fn deliver(&self, action: Action, access: Access<'_>) -> Result<(), ConnectorError> {
        let instruction = Instruction::new(action, access);
        let body = serde_json::to_vec(&instruction)
            .map_err(|e| ConnectorError::new(format!("cannot encode the instruction: {e}")))?;
        let name = match action {
            Action::Grant => "grant",
            Action::Revoke => "revoke",
        };
        let delivery = format!("{}-{name}", instruction.request);
        self.hook.send(&delivery, &body, unix_now).await.map(|_| ())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Connector for WebhookConnector {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn enforces_expiry(&self) -> bool {
        false
    }

    fn grant<'a>(
        &'a self,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Issued>, ConnectorError>> {
        Box::pin(async move { self.deliver(Action::Grant, access).await.map(|()| None) })
    }

    fn revoke<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(self.deliver(Action::Revoke, access))
    }
}

/// The `Breakglass-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// What a receiver checks: that `header` is a signature of `body` with `secret`, made no more
/// than `tolerance_secs` away from `now` (so a captured request cannot be replayed later).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), ConnectorError> {
    let bad = |why: &str| ConnectorError::new(format!("webhook signature refused: {why}"));
    let mut timestamp = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => mac = hex::decode(v).ok(),
            _ => return Err(bad("unknown part")),
        }
    }
    let (Some(timestamp), Some(mac)) = (timestamp, mac) else {
        return Err(bad("it needs t= and v1="));
    };
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(bad("its time is too far from now"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &mac).map_err(|_| bad("it does not match the body"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"action":"grant"}"#;
        let header = signature(SECRET, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="));
        verify(SECRET, &header, body, 1_800_000_010, 300).expect("verifies");
        assert!(verify(
            SECRET,
            &header,
            br#"{"action":"revoke"}"#,
            1_800_000_010,
            300
        )
        .is_err());
        assert!(verify(
            b"another secret of thirty-two bytes",
            &header,
            body,
            1_800_000_010,
            300
        )
        .is_err());
        assert!(
            verify(SECRET, &header, body, 1_800_000_400, 300).is_err(),
            "too old"
        );
        let moved = header.replace("t=1800000000", "t=1800000100");
        assert!(
            verify(SECRET, &moved, body, 1_800_000_100, 300).is_err(),
            "time is signed"
        );
        assert!(verify(SECRET, "v1=00", body, 1_800_000_000, 300).is_err());
    }

    #[test]
    fn unsafe_endpoints_and_weak_secrets_are_refused() {
        let ok = |url: &str| Webhook::new(url, SECRET, Retry::default()).is_ok();
        assert!(ok("https://hooks.example.org/breakglass"));
        assert!(ok("http://127.0.0.1:8080/hook"));
        assert!(ok("http://[::1]:8080/hook"));
        assert!(ok("http://localhost:8080/hook"));
        assert!(
            !ok("http://hooks.example.org/breakglass"),
            "plain http over a network"
        );
        assert!(!ok("ftp://127.0.0.1/x"));
        assert!(!ok("https://user:pass@hooks.example.org/"));
        assert!(!ok("not a url"));
        assert!(Webhook::new("https://h.example/", b"short", Retry::default()).is_err());
        let none = Retry {
            attempts: 0,
            ..Retry::default()
        };
        assert!(Webhook::new("https://h.example/", SECRET, none).is_err());
        let debug = format!(
            "{:?}",
            Webhook::new("https://h.example/", SECRET, Retry::default())
        );
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }
}
