//! OAuth tokens from the real test provider (npm oidc-provider), as the broker's client: an
//! opaque token is active on introspection until it is revoked; a JWT's `exp` is at or before
//! the grant's deadline and a resource server checking it refuses it from then on; a provider
//! answer that would outlive the deadline never reaches anyone.

use std::sync::Arc;
use std::time::Duration;

use breakglass_connectors::oauth::{TokenIssuer, TokenSettings};
use breakglass_core::{jose, Clock, Span, SystemClock, Timestamp};
use breakglass_idp::testing::{
    TestIdp, TestIdpOptions, JWT_RESOURCE, LIFETIME_PARAMETER, OPAQUE_RESOURCE,
    RESOURCE_MAX_TTL_SECS,
};
use breakglass_idp::{LoginOptions, Provider};

async fn issuer_for(idp: &TestIdp, resource: &str, lifetime_parameter: bool) -> TokenIssuer {
    let provider = Provider::discover(idp.broker_client(), Arc::new(SystemClock))
        .await
        .expect("discovery");
    TokenIssuer::new(
        provider,
        TokenSettings {
            resource: resource.to_owned(),
            max_lifetime: Span::from_secs(RESOURCE_MAX_TTL_SECS),
            lifetime_parameter: lifetime_parameter.then(|| LIFETIME_PARAMETER.to_owned()),
        },
    )
}

fn scopes() -> Vec<String> {
    vec!["api:read".to_owned()]
}

fn in_secs(secs: i64) -> (Timestamp, Timestamp) {
    let now = SystemClock.now();
    let deadline = Timestamp::from_unix_millis(now.unix_millis() + secs * 1000).expect("range");
    (now, deadline)
}

async fn idp() -> TestIdp {
    TestIdp::start(TestIdpOptions::default())
        .await
        .expect("the test provider starts")
}

#[tokio::test]
async fn an_opaque_token_is_active_until_revoked_and_ends_by_the_deadline() {
    let idp = idp().await;
    let issuer = issuer_for(&idp, OPAQUE_RESOURCE, true).await;
    let (now, deadline) = in_secs(600);
    let got = issuer
        .obtain(now, deadline, &scopes(), None)
        .await
        .expect("a token");
    assert!(!got.jwt, "this resource's tokens are opaque");
    assert!(
        got.expires_at <= deadline,
        "{} > {deadline}",
        got.expires_at
    );
    assert!(
        got.expires_at.millis_since(now) > 590_000,
        "and it lasts (almost) the whole grant: {}",
        got.expires_at
    );
    let seen = issuer
        .provider()
        .introspect(&got.token)
        .await
        .expect("introspection");
    assert!(seen.active, "active before the revoke");
    issuer.revoke(&got.token).await.expect("revoked");
    let seen = issuer
        .provider()
        .introspect(&got.token)
        .await
        .expect("introspection");
    assert!(!seen.active, "inactive after the revoke");
    issuer
        .revoke(&got.token)
        .await
        .expect("revoking again changes nothing and succeeds");
    assert!(!format!("{got:?}").contains(got.token.expose_secret()));
}

/// What a resource server does with a JWT access token: signature by the provider's key, meant
/// for it, not expired.
fn resource_accepts(token: &str, jwks: &jose::Jwks, now: Timestamp) -> Result<(), String> {
    let claims = jose::verify(token, jwks).map_err(|e| e.to_string())?;
    if claims.get("aud").and_then(|a| a.as_str()) != Some(JWT_RESOURCE) {
        return Err(format!("not for this resource: {:?}", claims.get("aud")));
    }
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .ok_or("no exp")?;
    if now.unix_millis() >= exp * 1000 {
        return Err(format!("expired at {exp}"));
    }
    Ok(())
}

#[tokio::test]
async fn a_jwt_expires_by_the_deadline_and_a_resource_server_refuses_it_after() {
    let idp = idp().await;
    let issuer = issuer_for(&idp, JWT_RESOURCE, true).await;
    let (now, deadline) = in_secs(3);
    let got = issuer
        .obtain(now, deadline, &scopes(), None)
        .await
        .expect("a token");
    assert!(got.jwt, "this resource's tokens are JWTs");
    let claims = jose::peek_claims(got.token.expose_secret()).expect("claims");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(
        exp * 1000 <= deadline.unix_millis(),
        "exp {exp} is at or before the deadline {deadline}"
    );
    let jwks = issuer.provider().jwks().await.expect("the provider's keys");
    resource_accepts(got.token.expose_secret(), &jwks, SystemClock.now())
        .expect("accepted before its exp");
    let wait = exp * 1000 - SystemClock.now().unix_millis() + 200;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let refused = resource_accepts(got.token.expose_secret(), &jwks, SystemClock.now());
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("expired")),
        "refused after its exp: {refused:?}"
    );
    assert!(SystemClock.now() <= deadline.checked_add(Span::from_secs(1)).unwrap());
}

#[tokio::test]
async fn a_token_that_would_outlive_the_deadline_is_revoked_and_the_grant_fails() {
    let idp = idp().await;
    // Without the lifetime parameter the provider issues its full hour.
    let issuer = issuer_for(&idp, OPAQUE_RESOURCE, false).await;
    let (now, deadline) = in_secs(120);
    let error = issuer
        .obtain(now, deadline, &scopes(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("after the grant's deadline")
            && error.contains("it was revoked and not handed out")
            && error.contains("lifetime_parameter"),
        "{error}"
    );
}

#[tokio::test]
async fn a_grant_longer_than_the_provider_issues_or_too_short_is_refused_before_asking() {
    let idp = idp().await;
    let issuer = issuer_for(&idp, JWT_RESOURCE, true).await;
    let (now, deadline) = in_secs(2 * 3600);
    let error = issuer
        .obtain(now, deadline, &scopes(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("longer than the 1h tokens"), "{error}");
    let (now, deadline) = in_secs(1);
    let error = issuer
        .obtain(now, deadline, &scopes(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("too soon"), "{error}");
    assert_eq!(
        idp.request_counts().await.expect("counts").token,
        0,
        "the provider was not asked"
    );
}

/// Alice's ID token from a real sign-in (code + PKCE through the provider's own pages).
async fn alice_id_token(idp: &TestIdp) -> String {
    let app = Provider::discover(idp.native_client(), Arc::new(SystemClock))
        .await
        .expect("discovery");
    let login = app
        .begin_login(LoginOptions::default())
        .await
        .expect("a login");
    let url = login.url().clone();
    let (signed_in, browser) = tokio::join!(
        login.finish(Duration::from_secs(30)),
        idp.headless_login(&url, "alice")
    );
    browser.expect("the browser gets the success page");
    let id_token = signed_in.expect("alice signs in").identity.id_token;
    id_token.expose_secret().to_owned()
}

#[tokio::test]
async fn a_token_exchanged_for_a_sign_in_acts_for_that_person_and_a_forged_one_is_refused() {
    let idp = idp().await;
    let issuer = issuer_for(&idp, OPAQUE_RESOURCE, true).await;
    assert!(issuer.provider().supports_token_exchange());
    let id_token = alice_id_token(&idp).await;
    let (now, deadline) = in_secs(300);
    let got = issuer
        .obtain(now, deadline, &scopes(), Some(&id_token))
        .await
        .expect("an exchanged token");
    assert_eq!(got.subject.as_deref(), Some("alice"));
    assert!(got.expires_at <= deadline, "{}", got.expires_at);
    let seen = issuer
        .provider()
        .introspect(&got.token)
        .await
        .expect("introspection");
    assert!(seen.active);
    assert_eq!(seen.subject.as_deref(), Some("alice"), "it acts for alice");
    assert_eq!(seen.scopes, scopes());

    // The same token with its subject changed to bob: the signature no longer holds.
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    let mut claims = jose::peek_claims(&id_token).expect("claims");
    claims["sub"] = "bob".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&claims).expect("json"),
    );
    let forged = parts.join(".");
    let error = issuer
        .obtain(now, deadline, &scopes(), Some(&forged))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("exchanging the requester's sign-in") && error.contains("invalid_grant"),
        "{error}"
    );
}

#[tokio::test]
async fn without_token_exchange_at_the_provider_it_is_not_attempted() {
    let idp = TestIdp::start(TestIdpOptions {
        token_exchange: false,
        ..TestIdpOptions::default()
    })
    .await
    .expect("the test provider starts");
    let issuer = issuer_for(&idp, OPAQUE_RESOURCE, true).await;
    assert!(!issuer.provider().supports_token_exchange());
    let error = issuer
        .provider()
        .token_exchange("a.b.c", Some(OPAQUE_RESOURCE), &scopes(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("token exchange (RFC 8693)"), "{error}");
    assert_eq!(
        idp.request_counts().await.expect("counts").token,
        0,
        "the provider was not asked"
    );
}
