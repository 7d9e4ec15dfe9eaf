//! Sign-in, refresh, revocation and introspection against the real oidc-provider.

mod common;

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::{Clock, SystemClock};
use breakglass_idp::testing::TestIdpOptions;
use breakglass_idp::{DeviceOptions, IdpError, LoginOptions};
use common::{discover, fast_polling, sign_in, start, start_with, with_nonce};

#[tokio::test]
async fn code_flow_with_pkce_signs_in_with_groups_auth_time_and_nonce() {
    let (idp, provider) = start().await;
    let login = provider
        .begin_login(LoginOptions {
            nonce: Some("nonce-bound-to-a-key".to_owned()),
            max_age: Some(Duration::from_secs(600)),
            ..LoginOptions::default()
        })
        .await
        .unwrap();
    let url = login.url().clone();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        param("code_challenge_method"),
        Some("S256"),
        "PKCE with S256"
    );
    assert_eq!(param("nonce"), Some("nonce-bound-to-a-key"));
    assert_eq!(param("max_age"), Some("600"));
    assert_eq!(
        param("prompt"),
        Some("consent"),
        "offline_access needs consent"
    );
    let redirect = url::Url::parse(param("redirect_uri").unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"), "RFC 8252 loopback");
    assert_eq!(redirect.path(), "/callback");
    let port = redirect.port().expect("an ephemeral port");

    let (signed_in, browser) = tokio::join!(
        login.finish(common::LOGIN_TIMEOUT),
        idp.headless_login(&url, "alice")
    );
    browser.expect("the browser is told it can close the tab");
    let signed_in = signed_in.unwrap();
    let claims = &signed_in.identity.claims;
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss, idp.issuer());
    assert_eq!(claims.aud, ["native-app"]);
    assert_eq!(claims.nonce.as_deref(), Some("nonce-bound-to-a-key"));
    assert_eq!(claims.string_claim("email"), Some("alice@example.test"));
    assert_eq!(signed_in.identity.groups, ["approvers", "devs"]);
    let auth_time = claims.auth_time.expect("auth_time is in the ID token");
    let age = SystemClock.now().millis_since(auth_time);
    assert!(
        (-5_000..60_000).contains(&age),
        "the person authenticated just now, not {age} ms ago"
    );
    assert!(
        signed_in.identity.jwks.contains(idp.initial_kid()),
        "the key set used is recorded with the identity"
    );
    assert!(
        signed_in.tokens.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );
    assert!(signed_in.tokens.expires_at.is_some());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the loopback listener is closed once the sign-in is done"
    );
}

#[tokio::test]
async fn tokens_are_redacted_in_debug_output() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "bob").await;
    let shown = format!("{signed_in:?}");
    let secrets = [
        signed_in.tokens.access_token.expose_secret(),
        signed_in
            .tokens
            .refresh_token
            .as_ref()
            .unwrap()
            .expose_secret(),
        signed_in.identity.id_token.expose_secret(),
    ];
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "a token appears in the Debug output of a sign-in"
        );
    }
    assert!(shown.contains("AccessToken([redacted])"));
    assert!(shown.contains("RefreshToken([redacted])"));
    assert!(shown.contains("IdToken([redacted])"));
    assert!(
        shown.contains("bob"),
        "the claims themselves are not secret"
    );
}

#[tokio::test]
async fn confidential_client_signs_in_and_refreshes_with_its_secret() {
    let (idp, _) = start().await;
    let provider = discover(idp.confidential_client(), Arc::new(SystemClock)).await;
    let signed_in = sign_in(&idp, &provider, with_nonce("n-conf"), "alice").await;
    assert_eq!(signed_in.identity.claims.aud, ["confidential-app"]);
    let refreshed = provider
        .refresh(signed_in.tokens.refresh_token.as_ref().unwrap())
        .await
        .expect("HTTP Basic client authentication is accepted");
    assert!(refreshed.identity.is_some());

    let mut wrong = idp.confidential_client();
    wrong.client_secret = Some(breakglass_idp::ClientSecret::new("not-the-secret"));
    let impostor = discover(wrong, Arc::new(SystemClock)).await;
    let err = impostor
        .refresh(refreshed.tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdpError::GrantRefused { error, .. } if error == "invalid_client"),
        "a wrong client secret is refused by the provider: {err}"
    );
}

#[tokio::test]
async fn device_flow_signs_in_by_polling_until_the_person_approves() {
    let (idp, provider) = start().await;
    let pending = provider.begin_device(fast_polling()).await.unwrap();
    assert_eq!(
        pending.interval(),
        Duration::from_millis(200),
        "oidc-provider sends no interval, so the configured default applies"
    );
    assert!(pending
        .verification_uri()
        .as_str()
        .starts_with(idp.issuer()));
    let complete = pending.verification_uri_complete().expect("offered");
    assert!(complete.as_str().contains(pending.user_code()));
    assert!(pending.expires_at() > SystemClock.now());

    let user_code = pending.user_code().to_owned();
    let approve = async {
        // Let the app poll a few times first: "authorization_pending" must keep it waiting.
        tokio::time::sleep(Duration::from_millis(700)).await;
        idp.approve_device(&user_code, "alice").await
    };
    let (signed_in, approved) = tokio::join!(pending.finish(), approve);
    approved.expect("the person approves the code");
    let signed_in = signed_in.expect("polling ends with tokens");
    assert_eq!(signed_in.identity.claims.sub, "alice");
    assert_eq!(signed_in.identity.groups, ["approvers", "devs"]);
    assert!(signed_in.identity.claims.auth_time.is_some());
    assert!(signed_in.tokens.refresh_token.is_some());
    let counts = idp.request_counts().await.unwrap();
    assert!(
        counts.token >= 3,
        "several polls were answered authorization_pending before the tokens ({} polls)",
        counts.token
    );
}

#[tokio::test]
async fn device_flow_nonce_is_dropped_by_oidc_provider_so_a_key_binding_cannot_be_proven() {
    let (idp, provider) = start().await;
    let pending = provider
        .begin_device(DeviceOptions {
            nonce: Some("nonce-bound-to-a-key".to_owned()),
            ..fast_polling()
        })
        .await
        .expect("oidc-provider accepts a nonce in the device authorization request");
    let user_code = pending.user_code().to_owned();
    let (signed_in, approved) =
        tokio::join!(pending.finish(), idp.approve_device(&user_code, "alice"));
    approved.unwrap();
    let err = signed_in.unwrap_err();
    assert!(
        matches!(
            err,
            IdpError::IdToken {
                source: breakglass_core::jose::JoseError::NonceMismatch,
                ..
            }
        ),
        "the ID token comes back without the nonce, which must not pass as bound: {err}"
    );
}

#[tokio::test]
async fn device_flow_refused_by_the_person_is_access_denied() {
    let (idp, provider) = start().await;
    let pending = provider.begin_device(fast_polling()).await.unwrap();
    let user_code = pending.user_code().to_owned();
    let (signed_in, denied) = tokio::join!(pending.finish(), idp.deny_device(&user_code));
    denied.unwrap();
    let err = signed_in.unwrap_err();
    assert!(
        matches!(&err, IdpError::Denied { error, .. } if error == "access_denied"),
        "{err}"
    );
    assert!(err.to_string().contains(idp.issuer()), "{err}");
}

#[tokio::test]
async fn device_code_that_nobody_confirms_expires_with_a_clear_error() {
    let (_idp, provider) = start_with(TestIdpOptions {
        device_code_ttl: Duration::from_secs(2),
        ..TestIdpOptions::default()
    })
    .await;
    let pending = provider
        .begin_device(DeviceOptions {
            interval_when_unspecified: Duration::from_millis(300),
            ..DeviceOptions::default()
        })
        .await
        .unwrap();
    let user_code = pending.user_code().to_owned();
    let err = pending.finish().await.unwrap_err();
    assert!(
        matches!(&err, IdpError::DeviceCodeExpired { user_code: c, .. } if *c == user_code),
        "{err}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_the_old_one_is_refused() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, with_nonce("n-refresh"), "alice").await;
    let old = signed_in.tokens.refresh_token.clone().unwrap();

    let refreshed = provider.refresh(&old).await.expect("refresh succeeds");
    let new = refreshed
        .tokens
        .refresh_token
        .clone()
        .expect("a public client's refresh token is rotated");
    assert_ne!(
        new.expose_secret(),
        old.expose_secret(),
        "the new refresh token replaces the old one"
    );
    assert_ne!(
        refreshed.tokens.access_token.expose_secret(),
        signed_in.tokens.access_token.expose_secret()
    );
    let identity = refreshed.identity.expect("a new ID token, validated");
    assert_eq!(identity.claims.sub, "alice");

    let err = provider.refresh(&old).await.unwrap_err();
    assert!(
        matches!(&err, IdpError::GrantRefused { error, grant: "refresh token", .. } if error == "invalid_grant"),
        "the rotated-out refresh token is refused: {err}"
    );
    // oidc-provider takes the reuse of a rotated-out refresh token for theft and ends the whole
    // grant: the new refresh token stops working too, and the person must sign in again.
    let err = provider.refresh(&new).await.unwrap_err();
    assert!(matches!(err, IdpError::GrantRefused { .. }), "{err}");
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_introspection_then_says_inactive() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, with_nonce("n-logout"), "alice").await;
    let refresh_token = signed_in.tokens.refresh_token.unwrap();

    let before = provider.introspect(&refresh_token).await.unwrap();
    assert!(before.active, "a fresh refresh token is active");
    assert_eq!(before.subject.as_deref(), Some("alice"));
    assert_eq!(before.client_id.as_deref(), Some("native-app"));

    provider
        .revoke(&refresh_token)
        .await
        .expect("revocation succeeds");
    let after = provider.introspect(&refresh_token).await.unwrap();
    assert!(!after.active, "after logout the refresh token is inactive");
    let err = provider.refresh(&refresh_token).await.unwrap_err();
    assert!(matches!(err, IdpError::GrantRefused { .. }), "{err}");
}

#[tokio::test]
async fn revoking_the_access_token_is_reported_inactive_too() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "bob").await;
    let access = &signed_in.tokens.access_token;
    assert!(provider.introspect(access).await.unwrap().active);
    provider.revoke(access).await.unwrap();
    assert!(!provider.introspect(access).await.unwrap().active);
}

#[tokio::test]
async fn removing_someone_from_a_group_shows_in_their_next_sign_in() {
    let (idp, provider) = start().await;
    let first = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    assert!(first.identity.groups.contains(&"approvers".to_owned()));

    idp.set_groups("alice", &["devs"]).await.unwrap();
    let second = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    assert_eq!(
        second.identity.groups,
        ["devs"],
        "an approver removed in the IdP is no longer one in a fresh token"
    );
}

#[tokio::test]
async fn max_age_is_checked_against_auth_time() {
    let (idp, _) = start().await;
    // The app's clock is 170 s ahead: the token is still valid (300 s lifetime) but the
    // authentication is older than 60 s plus the 60 s leeway.
    let clock = breakglass_core::ManualClock::new(SystemClock.now());
    clock.advance(breakglass_core::Span::from_secs(170));
    let provider = discover(idp.native_client(), Arc::new(clock)).await;
    let (signed_in, _browser) = common::try_sign_in(
        &idp,
        &provider,
        LoginOptions {
            max_age: Some(Duration::from_secs(60)),
            ..LoginOptions::default()
        },
        "alice",
    )
    .await;
    let err = signed_in.unwrap_err();
    assert!(
        matches!(&err, IdpError::StaleAuthentication { max_age, .. } if *max_age == Duration::from_secs(60)),
        "{err}"
    );
}

#[tokio::test]
async fn key_set_is_cached_between_sign_ins() {
    let (idp, provider) = start().await;
    sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    sign_in(&idp, &provider, LoginOptions::default(), "bob").await;
    assert_eq!(
        idp.request_counts().await.unwrap().jwks,
        1,
        "the second sign-in uses the cached key set"
    );
}
