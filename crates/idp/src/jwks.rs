//! The issuer's key set, cached with an expiry and fetched again, at a bounded rate, when a token
//! names a key it does not contain (the issuer rotated its keys).

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::jose::Jwks;
use reqwest::header::{HeaderMap, CACHE_CONTROL};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::http::{Endpoint, Http};
use crate::IdpError;

/// How long a key set is used when the provider gives no `Cache-Control: max-age`.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Bounds on a provider's `max-age`: below, a busy sign-in page would refetch on every token;
/// above, a removed (compromised) key would be trusted for too long.
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// At most one refetch for an unknown key id in this interval, so a stream of tokens naming
/// made-up keys cannot turn into a stream of requests to the provider.
pub(crate) const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) struct JwksCache {
    endpoint: Endpoint,
    state: Mutex<State>,
}

struct State {
    keys: Option<Arc<Jwks>>,
    fresh_until: Instant,
    last_unknown_kid_refetch: Option<Instant>,
}

impl JwksCache {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        JwksCache {
            endpoint,
            state: Mutex::new(State {
                keys: None,
                fresh_until: Instant::now(),
                last_unknown_kid_refetch: None,
            }),
        }
    }

    /// The key set, fetched when absent or expired.
    pub(crate) async fn current(&self, http: &Http) -> Result<Arc<Jwks>, IdpError> {
        let mut state = self.state.lock().await;
        Ok(self.fresh(&mut state, http).await?.0)
    }

    /// A key set containing `kid`: the cached one, or a refetched one when the cached set does
    /// not have it (once per [`UNKNOWN_KID_REFETCH_INTERVAL`]).
    pub(crate) async fn containing(&self, http: &Http, kid: &str) -> Result<Arc<Jwks>, IdpError> {
        // Held across the fetch: concurrent tokens with the same new key cause one request.
        let mut state = self.state.lock().await;
        let (keys, just_fetched) = self.fresh(&mut state, http).await?;
        if keys.contains(kid) {
            return Ok(keys);
        }
        let now = Instant::now();
        let may_refetch = state
            .last_unknown_kid_refetch
            .is_none_or(|t| now.duration_since(t) >= UNKNOWN_KID_REFETCH_INTERVAL);
        let refetched = if just_fetched {
            true
        } else if may_refetch {
            state.last_unknown_kid_refetch = Some(now);
            self.fetch(&mut state, http).await?;
            true
        } else {
            false
        };
        match &state.keys {
            Some(keys) if keys.contains(kid) => Ok(keys.clone()),
            _ => Err(IdpError::UnknownSigningKey {
                issuer: http.issuer().to_owned(),
                kid: kid.to_owned(),
                jwks_uri: self.endpoint.url.to_string(),
                refetched,
            }),
        }
    }

    /// The cached set if still fresh, else a newly fetched one; `true` when fetched now.
    async fn fresh(&self, state: &mut State, http: &Http) -> Result<(Arc<Jwks>, bool), IdpError> {
        if let Some(keys) = &state.keys {
            if Instant::now() < state.fresh_until {
                return Ok((keys.clone(), false));
            }
        }
        Ok((self.fetch(state, http).await?, true))
    }

    async fn fetch(&self, state: &mut State, http: &Http) -> Result<Arc<Jwks>, IdpError> {
        let (doc, reply) = http.get_json::<serde_json::Value>(&self.endpoint).await?;
        let keys = Jwks::parse(&doc.to_string()).map_err(|source| IdpError::Jwks {
            issuer: http.issuer().to_owned(),
            jwks_uri: self.endpoint.url.to_string(),
            source,
        })?;
        let keys = Arc::new(keys);
        state.keys = Some(keys.clone());
        state.fresh_until = Instant::now() + max_age(&reply.headers);
        Ok(keys)
    }
}

/// How long a key set may be used, from its `Cache-Control` header, within sane bounds.
pub(crate) fn max_age(headers: &HeaderMap) -> Duration {
    let Some(value) = headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) else {
        return DEFAULT_MAX_AGE;
    };
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_MAX_AGE;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            age = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age.map_or(DEFAULT_MAX_AGE, |a| a.clamp(MIN_MAX_AGE, MAX_MAX_AGE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn cache_control_is_honoured_within_bounds() {
        assert_eq!(max_age(&HeaderMap::new()), DEFAULT_MAX_AGE, "no header");
        assert_eq!(
            max_age(&with("public, max-age=3600")),
            Duration::from_secs(3600)
        );
        assert_eq!(
            max_age(&with("max-age=1")),
            MIN_MAX_AGE,
            "too short is raised"
        );
        assert_eq!(
            max_age(&with("max-age=31536000")),
            MAX_MAX_AGE,
            "a year is capped at a day"
        );
        assert_eq!(max_age(&with("no-store")), MIN_MAX_AGE);
        assert_eq!(
            max_age(&with("max-age=soon")),
            DEFAULT_MAX_AGE,
            "unparseable means default"
        );
    }
}
