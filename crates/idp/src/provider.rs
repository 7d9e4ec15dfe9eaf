//! A discovered provider: its endpoints, keys, and the grants that do not need a browser.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use breakglass_core::jose::{self, IdTokenCheck, IdTokenClaims, Jwks};
use breakglass_core::{Clock, Span, Timestamp};
use oauth2::basic::{BasicErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AuthUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IntrospectionUrl, RequestTokenError,
    TokenIntrospectionResponse, TokenResponse as _, TokenUrl,
};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use crate::config::{require_secure, ProviderConfig};
use crate::http::{Endpoint, EndpointKind, Http, Reply};
use crate::jwks::JwksCache;
use crate::secret::{AccessToken, IdToken, IssuedToken, RefreshToken};
use crate::IdpError;

/// Allowed difference between our clock and the provider's when checking `exp`, `iat` and
/// `auth_time`.
pub const CLOCK_LEEWAY: Span = Span::from_secs(60);

/// The endpoints a provider's discovery document announces.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer (equal to the configured one: discovery refuses anything else).
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: Url,
    /// Where codes, device codes and refresh tokens are exchanged.
    pub token_endpoint: Url,
    /// Where the signing keys are published.
    pub jwks_uri: Url,
    /// RFC 8628 device authorization, if offered.
    pub device_authorization_endpoint: Option<Url>,
    /// RFC 7009 revocation, if offered.
    pub revocation_endpoint: Option<Url>,
    /// RFC 7662 introspection, if offered.
    pub introspection_endpoint: Option<Url>,
    /// Whether authorization responses carry `iss` (RFC 9207); if so, it is required.
    pub authorization_response_iss_parameter_supported: bool,
    /// PKCE methods the provider lists (empty when it lists none).
    pub code_challenge_methods_supported: Vec<String>,
    /// Scopes the provider lists (empty when it lists none).
    pub scopes_supported: Vec<String>,
    /// Grant types the provider lists (empty when it lists none: RFC 8414 then means
    /// `authorization_code` and `implicit`).
    pub grant_types_supported: Vec<String>,
}

/// The token-exchange grant type (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OpenID Connect ID token.
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3: an OAuth access token.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    device_authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    grant_types_supported: Vec<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Tokens from a sign-in or a refresh. Only `Debug` is implemented, and it redacts the tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when one was issued (the `offline_access` scope asks for one). After a
    /// refresh this is the new token: the provider may have invalidated the old one.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token expires, if the provider said.
    pub expires_at: Option<Timestamp>,
    /// The scopes granted, if the provider listed them.
    pub scopes: Vec<String>,
}

/// Who signed in, as proven by a validated ID token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The ID token as received, for the enrolment record.
    pub id_token: IdToken,
    /// Its validated claims.
    pub claims: IdTokenClaims,
    /// The groups named in the configured groups claim (empty when the claim is absent).
    pub groups: Vec<String>,
    /// The key set the token was checked against, for the enrolment record, so the check can be
    /// repeated offline.
    pub jwks: Jwks,
}

/// The result of a completed sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The tokens issued.
    pub tokens: Tokens,
    /// The person, from the validated ID token.
    pub identity: Identity,
}

/// The result of a refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The new tokens; store `tokens.refresh_token` in place of the one used.
    pub tokens: Tokens,
    /// The person, if the provider issued a new ID token (validated like a sign-in's, without a
    /// nonce). Its `sub` should be compared with the stored identity's (OpenID Connect Core
    /// §12.2).
    pub identity: Option<Identity>,
}

/// What the provider says about a token (RFC 7662).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is currently usable (not expired, not revoked).
    pub active: bool,
    /// The person it was issued for.
    pub subject: Option<String>,
    /// The client it was issued to.
    pub client_id: Option<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
}

#[derive(Deserialize, serde::Serialize)]
pub(crate) struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdTokenField([redacted])")
    }
}

impl oauth2::ExtraTokenFields for IdTokenField {}

pub(crate) type TokenResponse = oauth2::StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A provider whose discovery document was read and checked. Cheap to clone; clones share the
/// key cache.
#[derive(Clone)]
pub struct Provider {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ProviderConfig,
    pub(crate) metadata: ProviderMetadata,
    pub(crate) http: Http,
    jwks: JwksCache,
    pub(crate) clock: Arc<dyn Clock>,
    discovery_url: Url,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.inner.config.name)
            .field("issuer", &self.inner.config.issuer)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Reads and checks the provider's discovery document: its issuer must equal the configured
    /// one exactly, the authorization, token and key-set endpoints must be present, and every
    /// URL must be https (plain http only on the loopback). `clock` is the time ID tokens are
    /// checked at.
    pub async fn discover(
        config: ProviderConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Provider, IdpError> {
        let issuer_url = config.check()?;
        let http = Http::new(&config.issuer)?;
        let discovery_url = discovery_url(&issuer_url);
        let metadata = fetch_metadata(&http, &config.issuer, &discovery_url).await?;
        let jwks = JwksCache::new(Endpoint::new(EndpointKind::Jwks, metadata.jwks_uri.clone()));
        Ok(Provider {
            inner: Arc::new(Inner {
                config,
                metadata,
                http,
                jwks,
                clock,
                discovery_url,
            }),
        })
    }

    /// The settings this provider was discovered with.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// The endpoints from its discovery document.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.inner.metadata
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The provider's current key set (cached; fetched when absent or expired).
    pub async fn jwks(&self) -> Result<Jwks, IdpError> {
        Ok((*self.inner.jwks.current(&self.inner.http).await?).clone())
    }

    /// Validates an ID token: its key from the cached key set (fetched again, at a bounded rate,
    /// when the token names a key the set lacks), then every check of
    /// [`breakglass_core::jose::validate_id_token`] at the provider's clock. With `nonce`, the
    /// token must carry exactly that nonce.
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<Identity, IdpError> {
        let inner = &self.inner;
        let issuer = || inner.config.issuer.clone();
        let header = jose::header(id_token).map_err(|source| IdpError::IdToken {
            issuer: issuer(),
            source,
        })?;
        let jwks = match header.kid.as_deref() {
            Some(kid) => inner.jwks.containing(&inner.http, kid).await?,
            None => inner.jwks.current(&inner.http).await?,
        };
        let check = IdTokenCheck {
            issuer: &inner.config.issuer,
            client_id: &inner.config.client_id,
            nonce,
            now: inner.clock.now(),
            leeway: CLOCK_LEEWAY,
        };
        let claims = jose::validate_id_token(id_token, &jwks, &check).map_err(|source| {
            IdpError::IdToken {
                issuer: issuer(),
                source,
            }
        })?;
        let groups = claims
            .groups(&inner.config.groups_claim)
            .map_err(|source| IdpError::IdToken {
                issuer: issuer(),
                source,
            })?;
        Ok(Identity {
            id_token: IdToken::new(id_token),
            claims,
            groups,
            jwks: (*jwks).clone(),
        })
    }

    /// Exchanges a refresh token for new tokens. Providers that rotate refresh tokens invalidate
    /// the one used: store the returned one in its place.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<Refreshed, IdpError> {
        let client = self.oauth_client();
        let token = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        let call = |request| self.oauth_call(EndpointKind::Token, request);
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&call)
            .await
            .map_err(|e| self.grant_error("refresh token", e))?;
        let tokens = self.tokens(&response);
        let identity = match &response.extra_fields().id_token {
            Some(id_token) => Some(self.validate_id_token(id_token, None).await?),
            None => None,
        };
        Ok(Refreshed { tokens, identity })
    }

    /// Revokes a token (RFC 7009), telling the provider which kind it is. Revoking a refresh
    /// token ends the grant; some providers (oidc-provider) also end the grant when one of its
    /// access tokens is revoked.
    pub async fn revoke<T: IssuedToken>(&self, token: &T) -> Result<(), IdpError> {
        let inner = &self.inner;
        let url = inner
            .metadata
            .revocation_endpoint
            .clone()
            .ok_or_else(|| self.unsupported("token revocation (RFC 7009)"))?;
        let endpoint = Endpoint::new(EndpointKind::Revocation, url);
        let reply = self
            .post_form(
                &endpoint,
                vec![
                    ("token", token.expose_secret().to_owned()),
                    ("token_type_hint", T::TYPE_HINT.to_owned()),
                ],
            )
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        Err(self.request_refused(&endpoint, &reply))
    }

    /// Obtains an access token for this client itself (the client-credentials grant, RFC 6749
    /// §4.4), for `resource` (an RFC 8707 resource indicator) when given, with `scopes`, and any
    /// `extra` form parameters the provider accepts. The client must be confidential.
    pub async fn client_credentials(
        &self,
        resource: Option<&str>,
        scopes: &[String],
        extra: &[(&str, String)],
    ) -> Result<Tokens, IdpError> {
        self.confidential("the client-credentials grant")?;
        let form = vec![("grant_type", "client_credentials".to_owned())];
        self.token_request(form, resource, scopes, extra, None)
            .await
    }

    /// Whether the provider lists the token-exchange grant (RFC 8693) in its discovery
    /// document.
    pub fn supports_token_exchange(&self) -> bool {
        self.inner
            .metadata
            .grant_types_supported
            .iter()
            .any(|g| g == TOKEN_EXCHANGE)
    }

    /// Exchanges `id_token`, an ID token this provider issued to a person, for an access token
    /// that acts for that person (RFC 8693 token exchange), for `resource` (RFC 8707) when given,
    /// with `scopes` and any `extra` form parameters the provider accepts. This client must be
    /// confidential and allowed the grant by the provider.
    pub async fn token_exchange(
        &self,
        id_token: &str,
        resource: Option<&str>,
        scopes: &[String],
        extra: &[(&str, String)],
    ) -> Result<Tokens, IdpError> {
        self.confidential("token exchange (RFC 8693)")?;
        if !self.supports_token_exchange() {
            return Err(self.unsupported("token exchange (RFC 8693)"));
        }
        let form = vec![
            ("grant_type", TOKEN_EXCHANGE.to_owned()),
            ("subject_token", id_token.to_owned()),
            ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
            ("requested_token_type", ACCESS_TOKEN_TYPE.to_owned()),
        ];
        self.token_request(form, resource, scopes, extra, Some(ACCESS_TOKEN_TYPE))
            .await
    }

    fn confidential(&self, what: &str) -> Result<(), IdpError> {
        if self.inner.config.client_secret.is_some() {
            return Ok(());
        }
        Err(IdpError::Config {
            provider: self.inner.config.name.clone(),
            reason: format!("{what} needs a confidential client (a client secret)"),
        })
    }

    /// Posts a token request (`form` plus the resource, scopes and extra parameters) and reads a
    /// Bearer access token from the answer; `issued` is the RFC 8693 `issued_token_type` the
    /// answer must name, for a token exchange.
    async fn token_request(
        &self,
        mut form: Vec<(&str, String)>,
        resource: Option<&str>,
        scopes: &[String],
        extra: &[(&str, String)],
        issued: Option<&str>,
    ) -> Result<Tokens, IdpError> {
        let endpoint = Endpoint::new(
            EndpointKind::Token,
            self.inner.metadata.token_endpoint.clone(),
        );
        if let Some(resource) = resource {
            form.push(("resource", resource.to_owned()));
        }
        if !scopes.is_empty() {
            form.push(("scope", scopes.join(" ")));
        }
        form.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        let reply = self.post_form(&endpoint, form).await?;
        if !reply.status.is_success() {
            return Err(self.request_refused(&endpoint, &reply));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            token_type: String,
            expires_in: Option<u64>,
            scope: Option<String>,
            issued_token_type: Option<String>,
        }
        let invalid = |detail: String| IdpError::InvalidResponse {
            issuer: self.issuer().to_owned(),
            endpoint: endpoint.to_string(),
            detail,
        };
        let answer: Answer = serde_json::from_slice(&reply.body).map_err(|e| {
            // Never the body: it holds a token.
            invalid(format!(
                "not a token response ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(invalid(format!(
                "token type {:?} is not Bearer",
                answer.token_type
            )));
        }
        if let Some(wanted) = issued {
            if answer.issued_token_type.as_deref() != Some(wanted) {
                return Err(invalid(format!(
                    "the exchange issued {:?}, not an access token ({wanted})",
                    answer
                        .issued_token_type
                        .as_deref()
                        .unwrap_or("no issued_token_type")
                )));
            }
        }
        let now = self.inner.clock.now();
        Ok(Tokens {
            access_token: AccessToken::new(answer.access_token),
            refresh_token: None,
            expires_at: answer
                .expires_in
                .and_then(|secs| now.checked_add(Span::from_secs(secs))),
            scopes: answer
                .scope
                .map(|s| s.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    }

    /// Asks the provider whether a token is still active (RFC 7662).
    pub async fn introspect<T: IssuedToken>(&self, token: &T) -> Result<Introspection, IdpError> {
        let client = self.oauth_client();
        let Some(url) = self.inner.metadata.introspection_endpoint.clone() else {
            return Err(self.unsupported("token introspection (RFC 7662)"));
        };
        let endpoint = Endpoint::new(EndpointKind::Introspection, url);
        let secret = oauth2::AccessToken::new(token.expose_secret().to_owned());
        let call = |request| self.oauth_call(EndpointKind::Introspection, request);
        let response = client
            .introspect(&secret)
            .map_err(|_| self.unsupported("token introspection (RFC 7662)"))?
            .set_token_type_hint(T::TYPE_HINT)
            .request_async(&call)
            .await
            .map_err(|e| match e {
                RequestTokenError::Request(e) => e,
                RequestTokenError::ServerResponse(r) => IdpError::RequestRefused {
                    issuer: self.issuer().to_owned(),
                    endpoint: endpoint.to_string(),
                    error: r.error().as_ref().to_owned(),
                    description: r.error_description().cloned(),
                },
                RequestTokenError::Parse(e, _) => IdpError::InvalidResponse {
                    issuer: self.issuer().to_owned(),
                    endpoint: endpoint.to_string(),
                    detail: format!("not an introspection response: {e}"),
                },
                RequestTokenError::Other(detail) => IdpError::InvalidResponse {
                    issuer: self.issuer().to_owned(),
                    endpoint: endpoint.to_string(),
                    detail,
                },
            })?;
        Ok(Introspection {
            active: response.active(),
            subject: response.sub().map(str::to_owned),
            client_id: response.client_id().map(|c| c.as_str().to_owned()),
            scopes: response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect())
                .unwrap_or_default(),
            expires_at: response
                .exp()
                .and_then(|t| Timestamp::from_unix_millis(t.timestamp_millis())),
        })
    }

    /// Reads the discovery document again and checks it still names this issuer: a cheap way to
    /// fail fast, before a browser is opened, when the provider is down.
    pub(crate) async fn check_reachable(&self) -> Result<(), IdpError> {
        let inner = &self.inner;
        fetch_metadata(&inner.http, &inner.config.issuer, &inner.discovery_url)
            .await
            .map(|_| ())
    }

    pub(crate) fn oauth_client(&self) -> OAuthClient {
        let inner = &self.inner;
        let mut client = oauth2::Client::new(oauth2::ClientId::new(inner.config.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(
                inner.metadata.authorization_endpoint.clone(),
            ))
            .set_token_uri(TokenUrl::from_url(inner.metadata.token_endpoint.clone()))
            .set_introspection_url_option(
                inner
                    .metadata
                    .introspection_endpoint
                    .clone()
                    .map(IntrospectionUrl::from_url),
            );
        if let Some(secret) = &inner.config.client_secret {
            client = client
                .set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()));
        }
        client
    }

    /// The HTTP client oauth2 calls: ours, with retries, bounded bodies and named errors.
    pub(crate) async fn oauth_call(
        &self,
        kind: EndpointKind,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, IdpError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string()).map_err(|e| IdpError::Config {
            provider: self.inner.config.name.clone(),
            reason: format!("endpoint URL {} does not parse: {e}", parts.uri),
        })?;
        let endpoint = Endpoint::new(kind, url);
        let reply = self
            .inner
            .http
            .send(&endpoint, parts.method, parts.headers, Some(body))
            .await?;
        if !reply.status.is_success() && Http::oauth_error(&reply).is_none() {
            return Err(self.inner.http.status_error(&endpoint, &reply));
        }
        let mut response = oauth2::HttpResponse::new(reply.body);
        *response.status_mut() = reply.status;
        *response.headers_mut() = reply.headers;
        Ok(response)
    }

    /// POSTs a form with this client's authentication (HTTP Basic with a secret, else its id in
    /// the body), as RFC 6749 §2.3.1 prescribes.
    pub(crate) async fn post_form(
        &self,
        endpoint: &Endpoint,
        mut form: Vec<(&str, String)>,
    ) -> Result<Reply, IdpError> {
        let config = &self.inner.config;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        match &config.client_secret {
            Some(secret) => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    encode(&config.client_id),
                    encode(secret.expose_secret())
                ));
                let mut value =
                    HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|_| {
                        IdpError::Config {
                            provider: config.name.clone(),
                            reason: "the client credentials do not fit an HTTP header".to_owned(),
                        }
                    })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            None => form.push(("client_id", config.client_id.clone())),
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish()
            .into_bytes();
        self.inner
            .http
            .send(endpoint, Method::POST, headers, Some(body))
            .await
    }

    pub(crate) fn tokens(&self, response: &TokenResponse) -> Tokens {
        let now = self.inner.clock.now();
        Tokens {
            access_token: AccessToken::new(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| RefreshToken::new(t.secret().clone())),
            expires_at: response
                .expires_in()
                .and_then(|d| now.checked_add(Span::from_secs(d.as_secs()))),
            scopes: response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// Validates a sign-in's token response: an ID token must be present and carry `nonce`;
    /// with `max_age`, its `auth_time` must be recent enough.
    pub(crate) async fn sign_in(
        &self,
        response: &TokenResponse,
        nonce: Option<&str>,
        max_age: Option<Duration>,
    ) -> Result<SignIn, IdpError> {
        let inner = &self.inner;
        let id_token = response.extra_fields().id_token.as_deref().ok_or_else(|| {
            IdpError::MissingIdToken {
                issuer: inner.config.issuer.clone(),
                client_id: inner.config.client_id.clone(),
            }
        })?;
        let identity = self.validate_id_token(id_token, nonce).await?;
        if let Some(max_age) = max_age {
            let auth_time = identity
                .claims
                .auth_time
                .ok_or_else(|| IdpError::MissingAuthTime {
                    issuer: inner.config.issuer.clone(),
                })?;
            let now = inner.clock.now();
            let allowed = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX / 2)
                + CLOCK_LEEWAY.as_millis();
            if now.millis_since(auth_time) > allowed {
                return Err(IdpError::StaleAuthentication {
                    issuer: inner.config.issuer.clone(),
                    auth_time,
                    max_age,
                    now,
                });
            }
        }
        Ok(SignIn {
            tokens: self.tokens(response),
            identity,
        })
    }

    pub(crate) fn grant_error(
        &self,
        grant: &'static str,
        e: RequestTokenError<IdpError, BasicErrorResponse>,
    ) -> IdpError {
        let endpoint = || {
            Endpoint::new(
                EndpointKind::Token,
                self.inner.metadata.token_endpoint.clone(),
            )
            .to_string()
        };
        match e {
            RequestTokenError::Request(e) => e,
            RequestTokenError::ServerResponse(r) => IdpError::GrantRefused {
                issuer: self.issuer().to_owned(),
                grant,
                error: r.error().as_ref().to_owned(),
                description: r.error_description().cloned(),
            },
            RequestTokenError::Parse(e, _) => IdpError::InvalidResponse {
                issuer: self.issuer().to_owned(),
                endpoint: endpoint(),
                detail: format!("not a token response: {e}"),
            },
            RequestTokenError::Other(detail) => IdpError::InvalidResponse {
                issuer: self.issuer().to_owned(),
                endpoint: endpoint(),
                detail,
            },
        }
    }

    pub(crate) fn request_refused(&self, endpoint: &Endpoint, reply: &Reply) -> IdpError {
        match Http::oauth_error(reply) {
            Some((error, description)) => IdpError::RequestRefused {
                issuer: self.issuer().to_owned(),
                endpoint: endpoint.to_string(),
                error,
                description,
            },
            None => self.inner.http.status_error(endpoint, reply),
        }
    }

    pub(crate) fn unsupported(&self, what: &str) -> IdpError {
        IdpError::Unsupported {
            issuer: self.issuer().to_owned(),
            what: what.to_owned(),
        }
    }
}

/// `<issuer>/.well-known/openid-configuration`, the issuer's path kept (OpenID Connect
/// Discovery §4).
fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

async fn fetch_metadata(
    http: &Http,
    issuer: &str,
    discovery_url: &Url,
) -> Result<ProviderMetadata, IdpError> {
    let endpoint = Endpoint::new(EndpointKind::Discovery, discovery_url.clone());
    let (doc, reply): (DiscoveryDocument, Reply) = http.get_json(&endpoint).await?;
    check_discovery(issuer, discovery_url, doc, |detail| {
        http.invalid(&endpoint, &reply, detail)
    })
}

/// Reads a discovery document fetched from `discovery_url` for the provider `issuer`: the
/// checks [`Provider::discover`] makes, on bytes alone (the fuzz target `discovery` feeds it).
pub fn parse_discovery_document(
    issuer: &str,
    discovery_url: &Url,
    body: &[u8],
) -> Result<ProviderMetadata, IdpError> {
    let invalid = |detail: String| IdpError::InvalidResponse {
        issuer: issuer.to_owned(),
        endpoint: format!("discovery {discovery_url}"),
        detail,
    };
    let doc: DiscoveryDocument = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("it is not a discovery document: {e}")))?;
    check_discovery(issuer, discovery_url, doc, invalid)
}

/// A discovery document must name the configured issuer exactly, every endpoint must be a URL
/// over https (plain http only on the loopback), the three a sign-in needs must be there, and a
/// provider that lists its PKCE methods must offer S256.
fn check_discovery(
    issuer: &str,
    discovery_url: &Url,
    doc: DiscoveryDocument,
    invalid: impl Fn(String) -> IdpError,
) -> Result<ProviderMetadata, IdpError> {
    if doc.issuer != issuer {
        return Err(IdpError::IssuerMismatch {
            configured: issuer.to_owned(),
            found: doc.issuer,
            url: discovery_url.to_string(),
        });
    }
    let url = |name: &str, value: Option<String>| -> Result<Option<Url>, IdpError> {
        let Some(value) = value else { return Ok(None) };
        let parsed = Url::parse(&value)
            .map_err(|e| invalid(format!("its {name} {value:?} is not a URL: {e}")))?;
        require_secure(issuer, name, &parsed)?;
        Ok(Some(parsed))
    };
    let required = |name: &str, value: Option<String>| -> Result<Url, IdpError> {
        url(name, value)?.ok_or_else(|| invalid(format!("it names no {name}")))
    };
    if let Some(methods) = &doc.code_challenge_methods_supported {
        if !methods.iter().any(|m| m == "S256") {
            return Err(IdpError::Unsupported {
                issuer: issuer.to_owned(),
                what: "PKCE with S256 (RFC 7636)".to_owned(),
            });
        }
    }
    Ok(ProviderMetadata {
        issuer: doc.issuer.clone(),
        authorization_endpoint: required("authorization_endpoint", doc.authorization_endpoint)?,
        token_endpoint: required("token_endpoint", doc.token_endpoint)?,
        jwks_uri: required("jwks_uri", doc.jwks_uri)?,
        device_authorization_endpoint: url(
            "device_authorization_endpoint",
            doc.device_authorization_endpoint,
        )?,
        revocation_endpoint: url("revocation_endpoint", doc.revocation_endpoint)?,
        introspection_endpoint: url("introspection_endpoint", doc.introspection_endpoint)?,
        authorization_response_iss_parameter_supported: doc
            .authorization_response_iss_parameter_supported,
        code_challenge_methods_supported: doc.code_challenge_methods_supported.unwrap_or_default(),
        scopes_supported: doc.scopes_supported,
        grant_types_supported: doc.grant_types_supported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovery_document_is_read_only_when_every_check_holds() {
        let issuer = "https://idp.example.com";
        let at = Url::parse("https://idp.example.com/.well-known/openid-configuration").unwrap();
        let good = r#"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/auth","token_endpoint":"https://idp.example.com/token","jwks_uri":"https://idp.example.com/jwks","code_challenge_methods_supported":["S256"]}"#;
        let m = parse_discovery_document(issuer, &at, good.as_bytes()).unwrap();
        assert_eq!(m.token_endpoint.as_str(), "https://idp.example.com/token");
        for (bad, why) in [
            ("", "not a discovery document"),
            ("[]", "not a discovery document"),
            (
                &good.replace("idp.example.com\",", "evil.example\","),
                "issuer",
            ),
            (
                &good.replace(
                    "https://idp.example.com/token",
                    "http://idp.example.com/token",
                ),
                "token_endpoint",
            ),
            (
                &good.replace("https://idp.example.com/jwks", "not a url"),
                "jwks_uri",
            ),
            (
                &good.replace(r#","jwks_uri":"https://idp.example.com/jwks""#, ""),
                "names no jwks_uri",
            ),
            (&good.replace(r#"["S256"]"#, r#"["plain"]"#), "S256"),
        ] {
            let e = parse_discovery_document(issuer, &at, bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn discovery_keeps_the_issuer_path() {
        let at = |issuer: &str| discovery_url(&Url::parse(issuer).unwrap()).to_string();
        assert_eq!(
            at("https://idp.example.com"),
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            at("https://idp.example.com/realms/corp/"),
            "https://idp.example.com/realms/corp/.well-known/openid-configuration"
        );
    }
}
