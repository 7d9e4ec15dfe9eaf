//! Signing in with an identity provider named in the policy: the sign-in itself (browser with
//! PKCE and a loopback redirect, or the device flow), enrolment or re-enrolment of the person's
//! signing key, the provider's key set recorded in the log, and the session kept in the OS
//! keyring. Front ends supply only the prompt (open a browser, show a code).

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::jose::key_bound_nonce;
use breakglass_core::names::name_problem;
use breakglass_core::{Clock, ProviderPolicy, Timestamp};
use breakglass_idp::{
    DeviceOptions, IdToken, LoginOptions, Provider, ProviderConfig, RefreshToken,
};
use rand::RngCore;
use serde::Serialize;
use url::Url;

use crate::engine::{Actor, Engine};
use crate::error::EngineError;
use crate::home::Home;
use crate::keys::{generate, public_key};
use crate::session::{Session, SessionLocation};

/// How long a browser sign-in may take before it is abandoned.
pub const BROWSER_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// How the person signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Authorization code with PKCE in a browser, redirected to a loopback port.
    Browser,
    /// The device flow: a code entered on another device.
    Device,
}

/// What the front end shows while the person signs in.
pub trait Prompt: Send + Sync {
    /// A browser sign-in is ready at `url`: open it (or print it when no browser can be opened).
    fn open(&self, url: &Url);
    /// A device sign-in waits for `user_code` to be entered at `uri`.
    fn show_code(&self, user_code: &str, uri: &Url, complete: Option<&Url>);
}

/// The result of a sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct SignedIn {
    /// The identity's name in the log.
    pub name: String,
    /// The provider signed in with.
    pub provider: String,
    /// The provider's subject.
    pub subject: String,
    /// True when this sign-in enrolled the identity (or a new key for it).
    pub enrolled: bool,
    /// When the person authenticated.
    pub signed_in_at: Option<Timestamp>,
    /// Whether a refresh token is kept.
    pub refreshable: bool,
}

impl Engine {
    /// The provider `name` from the policy in force, or the only one when `name` is `None`.
    pub fn provider_policy(&self, name: Option<&str>) -> Result<ProviderPolicy, EngineError> {
        let policy = self
            .state()
            .policy()
            .ok_or(breakglass_core::Refusal::NoPolicy)?;
        let providers = &policy.policy.providers;
        let listed = || providers.keys().cloned().collect::<Vec<_>>().join(", ");
        match name {
            Some(n) => providers.get(n).cloned().ok_or_else(|| {
                EngineError::Invalid(format!(
                    "identity provider {n:?} is not in the policy (it names: {})",
                    if providers.is_empty() {
                        "none".to_owned()
                    } else {
                        listed()
                    }
                ))
            }),
            None if providers.len() == 1 => Ok(providers
                .values()
                .next()
                .cloned()
                .unwrap_or_else(|| unreachable!("one provider is listed"))),
            None if providers.is_empty() => Err(EngineError::Invalid(
                "the policy names no identity provider; add a [providers.NAME] table".into(),
            )),
            None => Err(EngineError::Invalid(format!(
                "the policy names several identity providers; choose one with --provider ({})",
                listed()
            ))),
        }
    }
}

/// The client settings for `provider`.
pub fn client_config(provider: &ProviderPolicy) -> ProviderConfig {
    let mut config = ProviderConfig::new(&provider.name, &provider.issuer, &provider.client_id);
    config.scopes.extend(provider.scopes.iter().cloned());
    config.groups_claim = provider.groups_claim.clone();
    config
}

/// Signs `as_name` (or whoever signs in) in at `provider`, enrolling a new key when the person
/// is not enrolled with one held here, and keeps the session in the OS keyring.
///
/// The key is created before the sign-in so the sign-in's nonce can name it. It is stored only
/// once the sign-in checked out, and removed again if the enrolment is refused.
pub async fn login(
    engine: &mut Engine,
    home: &Home,
    clock: Arc<dyn Clock>,
    provider_name: Option<&str>,
    as_name: Option<&str>,
    method: Method,
    prompt: &dyn Prompt,
) -> Result<SignedIn, EngineError> {
    let policy = engine.provider_policy(provider_name)?;
    let existing = as_name.and_then(|name| home.identity_key(name).load().ok());
    let (key, new_key) = match existing {
        Some(key) => (key, false),
        None => (generate(), true),
    };
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let nonce = key_bound_nonce(&public_key(&key), random);
    let max_age = engine
        .state()
        .policy()
        .map(|p| Duration::from_secs(p.policy.max_auth_age.as_secs()));
    let provider = Provider::discover(client_config(&policy), clock).await?;
    let signed_in = match method {
        Method::Browser => {
            let pending = provider
                .begin_login(LoginOptions {
                    nonce: Some(nonce),
                    max_age,
                    ..LoginOptions::default()
                })
                .await?;
            prompt.open(pending.url());
            pending.finish(BROWSER_SIGN_IN_TIMEOUT).await?
        }
        Method::Device => {
            let pending = provider
                .begin_device(DeviceOptions {
                    // Providers do not echo a nonce in the device flow (RFC 8628 has none);
                    // the policy decides whether such sign-ins count (`device_flow`).
                    nonce: None,
                    max_age,
                    ..DeviceOptions::default()
                })
                .await?;
            prompt.show_code(
                pending.user_code(),
                pending.verification_uri(),
                pending.verification_uri_complete(),
            );
            pending.finish().await?
        }
    };
    let identity = &signed_in.identity;
    let claims = &identity.claims;
    let name = if policy.name_claim == "sub" {
        Some(claims.sub.clone())
    } else {
        claims.string_claim(&policy.name_claim).map(str::to_owned)
    }
    .ok_or_else(|| {
        EngineError::Invalid(format!(
            "the provider's token has no {:?} claim to name the identity by; set name_claim in \
             the policy",
            policy.name_claim
        ))
    })?;
    if let Some(problem) = name_problem(&name) {
        return Err(EngineError::Invalid(format!(
            "the provider names this person {name:?}, which is not a valid identity name \
             ({problem}); set name_claim in the policy to a claim that is"
        )));
    }
    if let Some(expected) = as_name {
        if expected != name {
            return Err(EngineError::Invalid(format!(
                "you signed in as {name}, not {expected}"
            )));
        }
    }
    let jwks = identity.jwks.to_json();
    let pk = public_key(&key);
    let enrolled_key = engine.state().identity(&name).map(|i| i.record.key);
    let mut enrolled = false;
    if engine.is_member() {
        // A team member enrols its own key, which the log accepts only under provider keys the
        // broker recorded: say so before anything is stored.
        check_recorded_key(engine, &policy.name, identity.id_token.expose_secret())?;
    }
    if enrolled_key == Some(pk) {
        if !engine.is_member() {
            engine.record_provider_keys(&policy.name, &jwks).await?;
        }
    } else {
        // Not enrolled with this key: enrol it (a new person, or a new key for a known one).
        let location = home.identity_key(&name);
        // A key held here under that name (from an earlier sign-in) is kept aside and put back
        // if the new key's enrolment is refused, so a refused sign-in loses nothing.
        let previous = if new_key { location.load().ok() } else { None };
        if new_key {
            location.delete().map_err(EngineError::from)?;
            location.store_new(&key).map_err(EngineError::from)?;
        }
        let result = if engine.is_member() {
            let actor = Actor::new(name.clone(), key.clone());
            engine
                .enrol_own(
                    &actor,
                    &policy.name,
                    &claims.sub,
                    identity.id_token.expose_secret(),
                    &jwks,
                )
                .await
        } else {
            engine
                .enrol_from_provider(
                    &policy.name,
                    &name,
                    pk,
                    &claims.sub,
                    identity.id_token.expose_secret(),
                    &jwks,
                )
                .await
        };
        if let Err(e) = result {
            if new_key {
                let _ = location.delete();
                if let Some(previous) = &previous {
                    let _ = location.store_new(previous);
                }
            }
            return Err(e);
        }
        enrolled = true;
    }
    let session = Session {
        provider: policy.name.clone(),
        id_token: identity.id_token.expose_secret().to_owned(),
        refresh_token: signed_in
            .tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
    };
    SessionLocation::new(home.origin(), &name)
        .store(&session)
        .map_err(EngineError::from)?;
    Ok(SignedIn {
        name,
        provider: policy.name,
        subject: claims.sub.clone(),
        enrolled,
        signed_in_at: claims.auth_time,
        refreshable: session.refresh_token.is_some(),
    })
}

/// How often a broker on a team's log fetches the key sets of the policy's identity
/// providers and records any key not yet recorded (members' own enrolments and sign-ins are
/// checked against recorded keys only).
pub const PROVIDER_KEYS_EVERY: Duration = Duration::from_secs(600);

/// Refuses, with what to do, a team member's sign-in whose ID token was signed with a provider
/// key the log has not recorded (the broker records them when it starts and every
/// [`PROVIDER_KEYS_EVERY`]).
fn check_recorded_key(engine: &Engine, provider: &str, id_token: &str) -> Result<(), EngineError> {
    let kid = breakglass_core::jose::header(id_token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default();
    let recorded = engine
        .state()
        .provider_keys(provider)
        .is_some_and(|keys| keys.contains(&kid));
    if recorded {
        return Ok(());
    }
    Err(EngineError::Invalid(format!(
        "provider {provider} signed this sign-in with key {kid:?}, which the team's log has not \
         recorded yet; the broker records the providers' keys when it starts and every {} \
         minutes: sign in again once it has (or ask the administrator to run the broker)",
        PROVIDER_KEYS_EVERY.as_secs() / 60
    )))
}

/// The current key set of each identity provider in the policy, fetched from the providers
/// (the broker records the new keys in it: [`Engine::record_provider_keys`]). A provider that
/// cannot be reached is listed with why.
pub async fn fetch_provider_keys(
    providers: Vec<ProviderPolicy>,
    clock: Arc<dyn Clock>,
) -> Vec<(String, Result<String, EngineError>)> {
    let mut out = Vec::with_capacity(providers.len());
    for policy in providers {
        let fetched = async {
            let provider = Provider::discover(client_config(&policy), clock.clone()).await?;
            Ok::<_, EngineError>(provider.jwks().await?.to_json())
        }
        .await;
        out.push((policy.name.clone(), fetched));
    }
    out
}

/// What `logout` did.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedOut {
    /// Whose session ended.
    pub name: String,
    /// Whether the provider confirmed revoking the refresh token.
    pub revoked: bool,
    /// Why revocation could not be confirmed, if it could not.
    pub warning: Option<String>,
}

/// Ends `name`'s session: revokes the refresh token at the provider (RFC 7009), then removes
/// the session and the identity's signing key from the keyring. Local removal happens even when
/// the provider cannot be reached, which is reported.
pub async fn logout(
    engine: &Engine,
    home: &Home,
    clock: Arc<dyn Clock>,
    name: &str,
) -> Result<LoggedOut, EngineError> {
    let location = SessionLocation::new(home.origin(), name);
    let session = location
        .load()
        .map_err(EngineError::from)?
        .ok_or_else(|| EngineError::Invalid(format!("{name} is not signed in on this machine")))?;
    let mut warning = None;
    let mut revoked = false;
    if let Some(refresh) = &session.refresh_token {
        let outcome = async {
            let policy = engine.provider_policy(Some(&session.provider))?;
            let provider = Provider::discover(client_config(&policy), clock).await?;
            provider.revoke(&RefreshToken::new(refresh.clone())).await?;
            Ok::<(), EngineError>(())
        }
        .await;
        match outcome {
            Ok(()) => revoked = true,
            Err(e) => warning = Some(format!("the refresh token could not be revoked: {e}")),
        }
    }
    location.delete().map_err(EngineError::from)?;
    home.identity_key(name)
        .delete()
        .map_err(EngineError::from)?;
    Ok(LoggedOut {
        name: name.to_owned(),
        revoked,
        warning,
    })
}

/// When the person authenticated, per the `auth_time` of `token` (not verified: for display and
/// for deciding whether to present it; the log's rules check it).
pub fn signed_in_at(token: &str) -> Option<Timestamp> {
    breakglass_core::jose::peek_claims(token)
        .ok()?
        .get("auth_time")?
        .as_i64()
        .and_then(|secs| Timestamp::from_unix_millis(secs.saturating_mul(1000)))
}

/// How close to its expiry an ID token is refreshed before it is presented.
const REFRESH_MARGIN_MS: i64 = 30_000;

/// The ID token `name` presents with a decision: their session's, refreshed first when it has
/// expired (or is about to) and a refresh token is kept. A refresh keeps the sign-in time
/// (`auth_time`), so it extends how long the token is valid, never how long the sign-in counts
/// as fresh. When the provider cannot be reached the stored token is returned with the reason,
/// and the log's rules judge it.
pub async fn current_sign_in(
    engine: &Engine,
    home: &Home,
    clock: Arc<dyn Clock>,
    name: &str,
) -> Result<(Option<String>, Option<String>), EngineError> {
    let location = SessionLocation::new(home.origin(), name);
    let Some(session) = location.load().map_err(EngineError::from)? else {
        return Ok((None, None));
    };
    let expires = breakglass_core::jose::peek_claims(&session.id_token)
        .ok()
        .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64))
        .unwrap_or(0)
        .saturating_mul(1000);
    let now = clock.now().unix_millis();
    let Some(refresh) = session.refresh_token.clone() else {
        return Ok((Some(session.id_token.clone()), None));
    };
    if expires - now > REFRESH_MARGIN_MS {
        return Ok((Some(session.id_token.clone()), None));
    }
    let subject = engine
        .state()
        .identity(name)
        .and_then(|i| i.record.binding.oidc())
        .map(|b| b.subject.clone());
    let refreshed = async {
        let policy = engine.provider_policy(Some(&session.provider))?;
        let provider = Provider::discover(client_config(&policy), clock).await?;
        Ok::<_, EngineError>(provider.refresh(&RefreshToken::new(refresh)).await?)
    }
    .await;
    let refreshed = match refreshed {
        Ok(r) => r,
        Err(e) => {
            return Ok((
                Some(session.id_token.clone()),
                Some(format!("the expired sign-in could not be refreshed: {e}")),
            ))
        }
    };
    let Some(identity) = refreshed.identity else {
        return Ok((Some(session.id_token.clone()), None));
    };
    if Some(&identity.claims.sub) != subject.as_ref() {
        return Err(EngineError::Invalid(format!(
            "the provider refreshed the sign-in of {name} for another subject ({}); run \
             `breakglass login` again",
            identity.claims.sub
        )));
    }
    let updated = Session {
        provider: session.provider.clone(),
        id_token: identity.id_token.expose_secret().to_owned(),
        refresh_token: refreshed
            .tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .or_else(|| session.refresh_token.clone()),
    };
    location.store(&updated).map_err(EngineError::from)?;
    Ok((Some(updated.id_token.clone()), None))
}

/// `actor` with, for a provider's person, the ID token of their sign-in here (refreshed first
/// when it has expired), as decisions need; and why a refresh failed, if one did.
pub async fn with_current_sign_in(
    engine: &Engine,
    home: &Home,
    clock: Arc<dyn Clock>,
    actor: crate::engine::Actor,
) -> Result<(crate::engine::Actor, Option<String>), EngineError> {
    let provider_person = engine
        .state()
        .identity(actor.name())
        .is_some_and(|i| i.record.binding.oidc().is_some());
    if !provider_person {
        return Ok((actor, None));
    }
    let name = actor.name().to_owned();
    let (token, warning) = current_sign_in(engine, home, clock, &name).await?;
    Ok((
        match token {
            Some(token) => actor.with_sign_in(token),
            None => actor,
        },
        warning,
    ))
}

/// The ID token of `name`'s session, if they are signed in here.
pub fn session_token(home: &Home, name: &str) -> Result<Option<IdToken>, EngineError> {
    Ok(SessionLocation::new(home.origin(), name)
        .load()
        .map_err(EngineError::from)?
        .map(|s| IdToken::new(s.id_token.clone())))
}
