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
use breakglass_idp::Provider;

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
        .obtain(now, deadline, &scopes())
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
        .obtain(now, deadline, &scopes())
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
        .obtain(now, deadline, &scopes())
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
        .obtain(now, deadline, &scopes())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("longer than the 1h tokens"), "{error}");
    let (now, deadline) = in_secs(1);
    let error = issuer
        .obtain(now, deadline, &scopes())
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
