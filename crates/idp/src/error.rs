//! The one error type of this crate.

use std::io;
use std::time::Duration;

use breakglass_core::jose::JoseError;
use breakglass_core::Timestamp;

/// Why talking to an identity provider, or signing in with it, failed.
///
/// Every variant names the issuer (or the configured provider) and the step that failed, so the
/// message can be shown to the person as it is. No variant carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// The provider's settings cannot be used: the issuer is not a URL, or the client id is empty.
    #[error("identity provider {provider:?}: {reason}")]
    Config {
        /// The configured provider's name.
        provider: String,
        /// What is wrong with its settings.
        reason: String,
    },

    /// No answer came back: the provider is down, unreachable, or did not answer in time.
    /// Connection failures are retried with backoff before this is returned.
    #[error(
        "cannot reach the identity provider {issuer} ({endpoint}): {reason} after {attempts} \
         attempt{}",
        if *attempts == 1 { "" } else { "s" }
    )]
    Unreachable {
        /// The issuer.
        issuer: String,
        /// The endpoint and its URL.
        endpoint: String,
        /// What went wrong on the last attempt ("connection refused").
        reason: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The provider answered with an HTTP error status and no OAuth error in the body.
    #[error(
        "the identity provider {issuer} answered HTTP {status} from its {endpoint}{}",
        excerpt_suffix(excerpt)
    )]
    HttpStatus {
        /// The issuer.
        issuer: String,
        /// The endpoint and its URL.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body (never of a body that may hold tokens), or empty.
        excerpt: String,
    },

    /// The provider's answer is not what the protocol prescribes: HTML or invalid JSON where
    /// JSON was due, or a required field missing.
    #[error("the identity provider {issuer} sent an invalid answer from its {endpoint}: {detail}")]
    InvalidResponse {
        /// The issuer.
        issuer: String,
        /// The endpoint and its URL.
        endpoint: String,
        /// What is wrong with the answer.
        detail: String,
    },

    /// The discovery document names an issuer other than the configured one (OpenID Connect
    /// Discovery §4.3: they must be identical).
    #[error(
        "the discovery document at {url} names the issuer {found:?}, not the configured \
         {configured:?}; the configured issuer must match it exactly (scheme, host, port, path \
         and trailing slash)"
    )]
    IssuerMismatch {
        /// The configured issuer.
        configured: String,
        /// The issuer the document names.
        found: String,
        /// Where the document was read.
        url: String,
    },

    /// An endpoint (or the issuer itself) uses plain http on a host other than the loopback.
    #[error(
        "identity provider {issuer}: the {endpoint} must use https (plain http is allowed only \
         on 127.0.0.1, ::1 and localhost)"
    )]
    InsecureEndpoint {
        /// The issuer.
        issuer: String,
        /// The endpoint and its URL.
        endpoint: String,
    },

    /// The provider does not offer something this operation needs (device flow, revocation,
    /// introspection, PKCE with S256).
    #[error("the identity provider {issuer} does not offer {what}")]
    Unsupported {
        /// The issuer.
        issuer: String,
        /// What is missing ("the device authorization grant (RFC 8628)").
        what: String,
    },

    /// The loopback listener that receives the browser's redirect failed.
    #[error("sign-in with {issuer}: cannot {what} on the loopback interface: {source}")]
    Loopback {
        /// The issuer.
        issuer: String,
        /// What was being done ("listen", "accept a connection").
        what: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },

    /// The browser did not come back to the loopback redirect in time.
    #[error(
        "sign-in with {issuer} timed out: the browser did not come back to {redirect_uri} within \
         {}s",
        waited.as_secs()
    )]
    LoginTimedOut {
        /// The issuer.
        issuer: String,
        /// The loopback redirect URI that was waited on.
        redirect_uri: String,
        /// How long was waited.
        waited: Duration,
    },

    /// The redirect carried a `state` that is not this sign-in's: a forged or stale redirect.
    /// Its authorization code, if any, was not used.
    #[error(
        "sign-in with {issuer} refused: the browser came back with a state that does not belong \
         to this sign-in (a forged or stale redirect); its authorization code was not used"
    )]
    StateMismatch {
        /// The issuer.
        issuer: String,
    },

    /// The redirect names another issuer in its `iss` parameter (RFC 9207): a mix-up between
    /// providers. Its authorization code was not used.
    #[error(
        "sign-in with {issuer} refused: the redirect says it comes from {found:?} (a mix-up \
         between identity providers); its authorization code was not used"
    )]
    CallbackIssuerMismatch {
        /// The issuer this sign-in was started with.
        issuer: String,
        /// The redirect's `iss` parameter.
        found: String,
    },

    /// The redirect back to the app is malformed (no code, repeated parameters).
    #[error("sign-in with {issuer}: the redirect back to the app is malformed: {reason}")]
    MalformedCallback {
        /// The issuer.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The person or the provider refused the sign-in: an `error=` redirect (`access_denied`
    /// when the person cancels) or a denied device code.
    #[error(
        "the identity provider {issuer} refused the sign-in: {error}{}",
        description_suffix(description)
    )]
    Denied {
        /// The issuer.
        issuer: String,
        /// The OAuth error code.
        error: String,
        /// The provider's explanation, if any.
        description: Option<String>,
    },

    /// The token endpoint refused a grant: `invalid_grant` for a used, revoked or expired
    /// refresh token or code, `invalid_client` for a wrong client secret, and so on.
    #[error(
        "the identity provider {issuer} refused the {grant}: {error}{}",
        description_suffix(description)
    )]
    GrantRefused {
        /// The issuer.
        issuer: String,
        /// Which grant ("authorization code", "refresh token", "device code").
        grant: &'static str,
        /// The OAuth error code.
        error: String,
        /// The provider's explanation, if any.
        description: Option<String>,
    },

    /// Another request to the provider (revocation, introspection, device authorization) was
    /// refused with an OAuth error.
    #[error(
        "the identity provider {issuer} refused the request to its {endpoint}: {error}{}",
        description_suffix(description)
    )]
    RequestRefused {
        /// The issuer.
        issuer: String,
        /// The endpoint and its URL.
        endpoint: String,
        /// The OAuth error code.
        error: String,
        /// The provider's explanation, if any.
        description: Option<String>,
    },

    /// The device code expired before the person confirmed it.
    #[error(
        "device sign-in with {issuer} expired: the code {user_code} was not confirmed before \
         {expires_at}"
    )]
    DeviceCodeExpired {
        /// The issuer.
        issuer: String,
        /// The code the person was asked to enter.
        user_code: String,
        /// When it expired.
        expires_at: Timestamp,
    },

    /// A sign-in's token response carried no ID token.
    #[error(
        "the identity provider {issuer} returned no ID token to client {client_id:?}; the \
         \"openid\" scope must be allowed for it"
    )]
    MissingIdToken {
        /// The issuer.
        issuer: String,
        /// The client id.
        client_id: String,
    },

    /// The ID token failed a check (signature, issuer, audience, authorised party, expiry,
    /// issue time, nonce, claims).
    #[error("ID token from {issuer} rejected: {source}")]
    IdToken {
        /// The issuer.
        issuer: String,
        /// The failed check.
        #[source]
        source: JoseError,
    },

    /// The ID token is signed with a key the provider does not publish, even after its key set
    /// was fetched again.
    #[error(
        "ID token from {issuer} rejected: it is signed with key {kid:?}, which the provider's key \
         set ({jwks_uri}) does not contain{}",
        if *refetched { " even after fetching it again" } else { " (the key set was fetched again moments ago; it is not fetched again so soon)" }
    )]
    UnknownSigningKey {
        /// The issuer.
        issuer: String,
        /// The key id the token names.
        kid: String,
        /// Where the key set is published.
        jwks_uri: String,
        /// Whether the key set was fetched again for this token (false when rate-limited).
        refetched: bool,
    },

    /// The sign-in asked for `max_age` but the ID token has no `auth_time`.
    #[error(
        "the identity provider {issuer} did not say when the person authenticated (no auth_time \
         in the ID token), though the sign-in asked for a maximum authentication age"
    )]
    MissingAuthTime {
        /// The issuer.
        issuer: String,
    },

    /// The person authenticated longer ago than the sign-in's `max_age` allows.
    #[error(
        "sign-in with {issuer} is not fresh: the person authenticated at {auth_time}, more than \
         {}s before {now}",
        max_age.as_secs()
    )]
    StaleAuthentication {
        /// The issuer.
        issuer: String,
        /// When the person authenticated.
        auth_time: Timestamp,
        /// The maximum age asked for.
        max_age: Duration,
        /// The time of the check.
        now: Timestamp,
    },

    /// The provider's key set cannot be used.
    #[error("the key set of {issuer} at {jwks_uri} is unusable: {source}")]
    Jwks {
        /// The issuer.
        issuer: String,
        /// Where the key set is published.
        jwks_uri: String,
        /// What is wrong with it.
        #[source]
        source: JoseError,
    },
}

fn description_suffix(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}
