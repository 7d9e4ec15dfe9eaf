//! HTTP to one provider: bounded retries with backoff, bounded bodies, and errors that name the
//! issuer and the endpoint.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::IdpError;

/// Attempts per request when the provider cannot be reached.
const ATTEMPTS: u32 = 3;
/// Pauses between attempts. With connection refused (provider stopped) a request fails in about
/// a second; with a provider that does not answer at all, `ATTEMPTS × CONNECT_TIMEOUT` plus the
/// pauses stays under ten seconds.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(750)];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// For a whole request once connected. Not retried: a token request that timed out may have been
/// processed, and repeating it would reuse a one-time code.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// Largest body read from a provider (discovery documents and key sets are a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;
/// How much of an unexpected body an error quotes.
const EXCERPT_CHARS: usize = 160;

/// One of the provider's endpoints, named in errors.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) kind: EndpointKind,
    pub(crate) url: Url,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    Discovery,
    Jwks,
    Token,
    DeviceAuthorization,
    Revocation,
    Introspection,
}

impl EndpointKind {
    fn name(self) -> &'static str {
        match self {
            EndpointKind::Discovery => "discovery document",
            EndpointKind::Jwks => "key set (jwks_uri)",
            EndpointKind::Token => "token endpoint",
            EndpointKind::DeviceAuthorization => "device authorization endpoint",
            EndpointKind::Revocation => "revocation endpoint",
            EndpointKind::Introspection => "introspection endpoint",
        }
    }

    /// Whether a successful answer may hold tokens, so no part of it may be quoted in errors.
    fn answers_with_secrets(self) -> bool {
        matches!(
            self,
            EndpointKind::Token | EndpointKind::DeviceAuthorization | EndpointKind::Introspection
        )
    }
}

impl Endpoint {
    pub(crate) fn new(kind: EndpointKind, url: Url) -> Self {
        Endpoint { kind, url }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.url)
    }
}

/// A provider's answer, read whole.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    fn is_json(&self) -> bool {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct.to_ascii_lowercase();
                let essence = ct.split(';').next().unwrap_or("").trim();
                essence == "application/json" || essence.ends_with("+json")
            })
            .unwrap_or(false)
    }

    fn content_type(&self) -> String {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_owned()
    }
}

/// The HTTP client for one issuer.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    issuer: String,
}

impl Http {
    pub(crate) fn new(issuer: &str) -> Result<Self, IdpError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Provider endpoints do not redirect; following one could send a code or a secret
            // somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("breakglass/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdpError::Config {
                provider: issuer.to_owned(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Http {
            client,
            issuer: issuer.to_owned(),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sends a request, retrying when the provider cannot be reached (and, for reads, when it
    /// answers 502, 503 or 504), and reads the whole answer.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        method: Method,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, IdpError> {
        let idempotent = method == Method::GET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .request(method.clone(), endpoint.url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_status = idempotent
                        && matches!(
                            status,
                            StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                    if !retry_status || attempt >= ATTEMPTS {
                        return self.read(endpoint, response, attempt).await;
                    }
                }
                Err(e) => {
                    // Only failures before the request reached the provider are safe to repeat
                    // for a POST (a code must never be sent twice).
                    let retry = e.is_connect() || (idempotent && !e.is_timeout());
                    if !retry || attempt >= ATTEMPTS {
                        return Err(self.unreachable(endpoint, &e, attempt));
                    }
                }
            }
            tokio::time::sleep(BACKOFF[(attempt as usize - 1).min(BACKOFF.len() - 1)]).await;
        }
    }

    async fn read(
        &self,
        endpoint: &Endpoint,
        mut response: reqwest::Response,
        attempts: u32,
    ) -> Result<Reply, IdpError> {
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(IdpError::InvalidResponse {
                            issuer: self.issuer.clone(),
                            endpoint: endpoint.to_string(),
                            detail: format!("the answer is larger than {MAX_BODY} bytes"),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.unreachable(endpoint, &e, attempts)),
            }
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn unreachable(&self, endpoint: &Endpoint, e: &reqwest::Error, attempts: u32) -> IdpError {
        IdpError::Unreachable {
            issuer: self.issuer.clone(),
            endpoint: endpoint.to_string(),
            reason: describe(e),
            attempts,
        }
    }

    /// GETs a JSON document: HTTP 200 with a JSON content type and a body that parses.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(T, Reply), IdpError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let reply = self.send(endpoint, Method::GET, headers, None).await?;
        let value = self.json(endpoint, &reply)?;
        Ok((value, reply))
    }

    /// Parses a successful JSON answer, or explains what came instead.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        reply: &Reply,
    ) -> Result<T, IdpError> {
        if reply.status != StatusCode::OK {
            return Err(self.status_error(endpoint, reply));
        }
        if !reply.is_json() {
            return Err(self.invalid(
                endpoint,
                reply,
                format!("expected JSON, got {}", reply.content_type()),
            ));
        }
        serde_json::from_slice(&reply.body).map_err(|e| {
            // serde_json's message names the position and the expected type, never the value
            // of a well-formed string, so it cannot echo a token.
            self.invalid(
                endpoint,
                reply,
                format!("the JSON does not have the expected shape: {e}"),
            )
        })
    }

    /// An error for an answer whose status is not a success and that carries no OAuth error.
    pub(crate) fn status_error(&self, endpoint: &Endpoint, reply: &Reply) -> IdpError {
        IdpError::HttpStatus {
            issuer: self.issuer.clone(),
            endpoint: endpoint.to_string(),
            status: reply.status.as_u16(),
            excerpt: excerpt(&reply.body),
        }
    }

    pub(crate) fn invalid(&self, endpoint: &Endpoint, reply: &Reply, detail: String) -> IdpError {
        let quoted = if endpoint.kind.answers_with_secrets() && reply.status.is_success() {
            String::new()
        } else {
            let e = excerpt(&reply.body);
            if e.is_empty() {
                String::new()
            } else {
                format!(" ({e})")
            }
        };
        IdpError::InvalidResponse {
            issuer: self.issuer.clone(),
            endpoint: endpoint.to_string(),
            detail: format!("{detail}{quoted}"),
        }
    }

    /// An OAuth error body (`{"error": …}`) of a failed answer, if it has one.
    pub(crate) fn oauth_error(reply: &Reply) -> Option<(String, Option<String>)> {
        #[derive(serde::Deserialize)]
        struct OAuthError {
            error: String,
            error_description: Option<String>,
        }
        if reply.status.is_success() || !reply.is_json() {
            return None;
        }
        let e: OAuthError = serde_json::from_slice(&reply.body).ok()?;
        Some((e.error, e.error_description))
    }
}

/// The start of a body, on one line, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if out.chars().count() == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

/// A short reason for a transport failure: the innermost cause, in plain words.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                std::io::ErrorKind::TimedOut => "connection timed out".to_owned(),
                _ => io.to_string(),
            };
        }
        innermost = s.to_string();
        source = s.source();
    }
    innermost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        let html = b"<!DOCTYPE html>\n<html>\n  <body>\tMaintenance</body></html>";
        assert_eq!(
            excerpt(html),
            "<!DOCTYPE html> <html> <body> Maintenance</body></html>"
        );
        let long = "x".repeat(1000);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1, "cut and marked");
        assert!(e.ends_with('…'));
    }

    #[test]
    fn endpoints_are_named_with_their_url() {
        let e = Endpoint::new(
            EndpointKind::Token,
            Url::parse("https://idp.example.com/token").unwrap(),
        );
        assert_eq!(
            e.to_string(),
            "token endpoint https://idp.example.com/token"
        );
    }
}
