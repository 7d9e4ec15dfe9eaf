//! Every way a sign-in or an ID token must be refused, each with a clear error, against the real
//! oidc-provider.

mod common;

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::jose::JoseError;
use breakglass_core::{Clock, ManualClock, Span, SystemClock};
use breakglass_idp::testing::{TestIdp, TestIdpOptions};
use breakglass_idp::{IdpError, LoginOptions};
use common::{discover, kid_of, sign_in, start, start_with, with_claims, with_header, with_nonce};
use url::Url;

/// `url` with query parameter `name` set to `value`.
fn replace_param(url: &Url, name: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

#[tokio::test]
async fn state_mismatch_is_refused_and_the_code_is_never_exchanged() {
    let (idp, provider) = start().await;
    let login = provider.begin_login(LoginOptions::default()).await.unwrap();
    let url = login.url().clone();
    let forged = async {
        let redirect = idp.authorize(&url, "alice").await.unwrap();
        assert!(
            redirect.query_pairs().any(|(k, _)| k == "code"),
            "a real code"
        );
        idp.deliver(&replace_param(&redirect, "state", "forged-state"))
            .await
            .unwrap()
    };
    let (result, (status, page)) = tokio::join!(login.finish(common::LOGIN_TIMEOUT), forged);
    let err = result.unwrap_err();
    assert!(matches!(err, IdpError::StateMismatch { .. }), "{err}");
    assert!(err.to_string().contains("code was not used"), "{err}");
    assert_eq!(status, 400, "the browser is shown an error page");
    assert!(page.contains("state that does not belong"), "{page}");
    assert_eq!(
        idp.request_counts().await.unwrap().token,
        0,
        "the code was never sent to the token endpoint"
    );
}

#[tokio::test]
async fn redirect_naming_another_issuer_is_refused() {
    let (idp, provider) = start().await;
    let login = provider.begin_login(LoginOptions::default()).await.unwrap();
    let url = login.url().clone();
    let mixed_up = async {
        let redirect = idp.authorize(&url, "alice").await.unwrap();
        assert!(
            redirect.query_pairs().any(|(k, _)| k == "iss"),
            "oidc-provider sends iss (RFC 9207)"
        );
        idp.deliver(&replace_param(&redirect, "iss", "https://evil.example"))
            .await
            .unwrap()
    };
    let (result, (status, _)) = tokio::join!(login.finish(common::LOGIN_TIMEOUT), mixed_up);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, IdpError::CallbackIssuerMismatch { found, .. } if found == "https://evil.example"),
        "{err}"
    );
    assert_eq!(status, 400);
    assert_eq!(idp.request_counts().await.unwrap().token, 0);
}

#[tokio::test]
async fn nonce_mismatch_is_refused() {
    let (idp, provider) = start().await;
    let login = provider
        .begin_login(with_nonce("the-nonce-we-sent"))
        .await
        .unwrap();
    // Someone substitutes the nonce on the way to the provider.
    let url = replace_param(login.url(), "nonce", "a-substituted-nonce");
    let (result, browser) = tokio::join!(
        login.finish(common::LOGIN_TIMEOUT),
        idp.headless_login(&url, "alice")
    );
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            IdpError::IdToken {
                source: JoseError::NonceMismatch,
                ..
            }
        ),
        "{err}"
    );
    assert!(browser.is_err(), "the browser is shown the failure");
}

#[tokio::test]
async fn token_for_another_client_is_refused() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    let other_client = discover(idp.confidential_client(), Arc::new(SystemClock)).await;
    let err = other_client
        .validate_id_token(signed_in.identity.id_token.expose_secret(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            IdpError::IdToken { source: JoseError::WrongAudience { client_id, found }, .. }
                if client_id == "confidential-app" && found == &["native-app"]
        ),
        "{err}"
    );
}

#[tokio::test]
async fn token_from_another_issuer_is_refused_even_when_its_signature_verifies() {
    let (idp, provider) = start().await;
    // A second provider that signs with the same key, so only `iss` tells the tokens apart.
    let key = idp.signing_key().await.unwrap();
    let (other_idp, other) = start_with(TestIdpOptions {
        signing_key: Some(key),
        ..TestIdpOptions::default()
    })
    .await;
    let foreign = sign_in(&other_idp, &other, LoginOptions::default(), "alice").await;
    assert_eq!(
        kid_of(foreign.identity.id_token.expose_secret()),
        idp.initial_kid()
    );
    let err = provider
        .validate_id_token(foreign.identity.id_token.expose_secret(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            IdpError::IdToken { source: JoseError::WrongIssuer { expected, found }, .. }
                if expected == idp.issuer() && found == other_idp.issuer()
        ),
        "{err}"
    );
}

#[tokio::test]
async fn expired_id_token_is_refused_at_a_later_time() {
    let (idp, _) = start_with(TestIdpOptions {
        id_token_ttl: Duration::from_secs(60),
        ..TestIdpOptions::default()
    })
    .await;
    let clock = ManualClock::new(SystemClock.now());
    let provider = discover(idp.native_client(), Arc::new(clock.clone())).await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    let token = signed_in.identity.id_token.expose_secret();
    provider
        .validate_id_token(token, None)
        .await
        .expect("valid now");

    // Well past its 60 s lifetime and the 60 s leeway, however long the sign-in itself took.
    clock.advance(Span::from_secs(300));
    let err = provider.validate_id_token(token, None).await.unwrap_err();
    assert!(
        matches!(&err, IdpError::IdToken { source: JoseError::Expired { now, .. }, .. } if *now == clock.now()),
        "{err}"
    );
}

#[tokio::test]
async fn tampered_payload_is_refused_as_a_bad_signature() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "bob").await;
    let promoted = with_claims(signed_in.identity.id_token.expose_secret(), |claims| {
        claims["groups"] = serde_json::json!(["approvers", "admins"]);
    });
    let err = provider
        .validate_id_token(&promoted, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdpError::IdToken {
                source: JoseError::BadSignature,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn rotated_key_is_fetched_on_first_sight_and_a_dropped_key_is_refused() {
    let (idp, provider) = start().await;
    let before = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    let old_token = before.identity.id_token.expose_secret().to_owned();
    assert_eq!(kid_of(&old_token), idp.initial_kid());

    let new_kid = idp.rotate_signing_key(false).await.unwrap();
    let after = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    assert_eq!(kid_of(after.identity.id_token.expose_secret()), new_kid);
    assert_eq!(
        idp.request_counts().await.unwrap().jwks,
        2,
        "the unknown key id caused exactly one refetch"
    );

    let err = provider
        .validate_id_token(&old_token, None)
        .await
        .unwrap_err();
    match &err {
        IdpError::UnknownSigningKey { kid, .. } => assert_eq!(kid, idp.initial_kid()),
        other => panic!("the dropped key must be refused, got {other}"),
    }
    assert!(err.to_string().contains(idp.initial_kid()), "{err}");
}

#[tokio::test]
async fn unknown_kid_is_refused_after_one_refetch_and_refetches_are_rate_limited() {
    let (idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    assert_eq!(idp.request_counts().await.unwrap().jwks, 1);
    let unknown = with_header(
        signed_in.identity.id_token.expose_secret(),
        serde_json::json!({ "alg": "RS256", "kid": "k-in-neither-set" }),
    );

    let err = provider
        .validate_id_token(&unknown, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdpError::UnknownSigningKey { kid, refetched: true, .. } if kid == "k-in-neither-set"),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"k-in-neither-set\""),
        "the kid is named: {err}"
    );
    assert!(
        err.to_string().contains("even after fetching it again"),
        "{err}"
    );
    assert_eq!(
        idp.request_counts().await.unwrap().jwks,
        2,
        "refetched once"
    );

    for _ in 0..5 {
        let err = provider
            .validate_id_token(&unknown, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IdpError::UnknownSigningKey {
                    refetched: false,
                    ..
                }
            ),
            "{err}"
        );
    }
    assert_eq!(
        idp.request_counts().await.unwrap().jwks,
        2,
        "a stream of bad tokens does not hammer the provider"
    );
}

#[tokio::test]
async fn cancelled_sign_in_is_a_clear_access_denied() {
    let (idp, provider) = start().await;
    let login = provider.begin_login(LoginOptions::default()).await.unwrap();
    let url = login.url().clone();
    let cancel = async {
        let redirect = idp.cancel(&url).await.unwrap();
        idp.deliver(&redirect).await.unwrap()
    };
    let (result, (status, page)) = tokio::join!(login.finish(common::LOGIN_TIMEOUT), cancel);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, IdpError::Denied { error, .. } if error == "access_denied"),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(idp.issuer()), "{message}");
    assert!(
        message.contains("End-User aborted interaction"),
        "{message}"
    );
    assert_eq!(status, 400);
    assert!(page.contains("access_denied"), "{page}");
    assert_eq!(idp.request_counts().await.unwrap().token, 0);
}

#[tokio::test]
async fn sign_in_times_out_when_the_browser_never_comes_back() {
    let (_idp, provider) = start().await;
    let login = provider.begin_login(LoginOptions::default()).await.unwrap();
    let redirect = login.redirect_uri().to_owned();
    let err = login.finish(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        matches!(&err, IdpError::LoginTimedOut { redirect_uri, .. } if *redirect_uri == redirect),
        "{err}"
    );
}

#[tokio::test]
async fn stray_requests_to_the_listener_do_not_end_the_sign_in() {
    let (idp, provider) = start().await;
    let login = provider.begin_login(LoginOptions::default()).await.unwrap();
    let url = login.url().clone();
    let redirect = Url::parse(login.redirect_uri()).unwrap();
    let browser = async {
        let favicon = redirect.join("/favicon.ico").unwrap();
        let (status, _) = idp.deliver(&favicon).await.unwrap();
        assert_eq!(status, 404);
        idp.headless_login(&url, "alice").await
    };
    let (result, browser) = tokio::join!(login.finish(common::LOGIN_TIMEOUT), browser);
    browser.unwrap();
    assert_eq!(result.unwrap().identity.claims.sub, "alice");
}

#[tokio::test]
async fn discovery_refuses_an_issuer_spelled_differently() {
    let idp = TestIdp::start(TestIdpOptions::default()).await.unwrap();
    let mut config = idp.native_client();
    // Same server, other spelling: the document says 127.0.0.1.
    config.issuer = idp.issuer().replace("127.0.0.1", "localhost");
    let err = breakglass_idp::Provider::discover(config, Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, IdpError::IssuerMismatch { found, .. } if found == idp.issuer()),
        "{err}"
    );
}
