//! Shared steps of the tests against the real provider.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use breakglass_core::{Clock, SystemClock};
use breakglass_idp::testing::{TestIdp, TestIdpOptions};
use breakglass_idp::{IdpError, LoginOptions, Provider, ProviderConfig, SignIn};

/// Generous: the provider answers in milliseconds, but two cores may be busy compiling.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn start() -> (TestIdp, Provider) {
    start_with(TestIdpOptions::default()).await
}

pub async fn start_with(options: TestIdpOptions) -> (TestIdp, Provider) {
    let idp = TestIdp::start(options)
        .await
        .unwrap_or_else(|e| panic!("the test provider must start: {e}"));
    let provider = discover(idp.native_client(), Arc::new(SystemClock)).await;
    (idp, provider)
}

pub async fn discover(config: ProviderConfig, clock: Arc<dyn Clock>) -> Provider {
    Provider::discover(config, clock)
        .await
        .unwrap_or_else(|e| panic!("discovery of the running test provider must succeed: {e}"))
}

/// Runs a browser sign-in of `user` to completion; the headless browser must get the app's
/// success page.
pub async fn sign_in(
    idp: &TestIdp,
    provider: &Provider,
    options: LoginOptions,
    user: &str,
) -> SignIn {
    let (signed_in, browser) = try_sign_in(idp, provider, options, user).await;
    browser.unwrap_or_else(|e| panic!("the headless browser must get the success page: {e}"));
    signed_in.unwrap_or_else(|e| panic!("the sign-in must succeed: {e}"))
}

/// Runs a browser sign-in and returns both what the app concluded and what the browser saw.
pub async fn try_sign_in(
    idp: &TestIdp,
    provider: &Provider,
    options: LoginOptions,
    user: &str,
) -> (
    Result<SignIn, IdpError>,
    Result<(), breakglass_idp::testing::TestIdpError>,
) {
    let login = provider
        .begin_login(options)
        .await
        .expect("a sign-in can start");
    let url = login.url().clone();
    tokio::join!(login.finish(LOGIN_TIMEOUT), idp.headless_login(&url, user))
}

/// Device sign-in options that poll every 200 ms (oidc-provider names no interval, and the
/// default of 5 s would make the tests crawl).
pub fn fast_polling() -> breakglass_idp::DeviceOptions {
    breakglass_idp::DeviceOptions {
        interval_when_unspecified: Duration::from_millis(200),
        ..breakglass_idp::DeviceOptions::default()
    }
}

pub fn with_nonce(nonce: &str) -> LoginOptions {
    LoginOptions {
        nonce: Some(nonce.to_owned()),
        ..LoginOptions::default()
    }
}

/// The token with its payload (claims) replaced by `edit(claims)`, header and signature kept.
pub fn with_claims(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS has three parts");
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The token with its protected header replaced by `header`, payload and signature kept.
pub fn with_header(token: &str, header: serde_json::Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    format!("{header}.{}.{}", parts[1], parts[2])
}

/// The `kid` of a token's header.
pub fn kid_of(token: &str) -> String {
    breakglass_core::jose::header(token)
        .expect("a well-formed token")
        .kid
        .expect("oidc-provider names the key")
}
