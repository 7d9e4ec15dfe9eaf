//! A provider that is down, or that answers garbage, fails clearly and quickly.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use breakglass_core::SystemClock;
use breakglass_idp::{DeviceOptions, IdpError, LoginOptions, Provider, ProviderConfig};
use common::{sign_in, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The bound the issue sets for failing a sign-in when the provider is stopped.
const FAIL_WITHIN: Duration = Duration::from_secs(10);

fn assert_unreachable(err: &IdpError, issuer: &str, elapsed: Duration, what: &str) {
    assert!(
        elapsed < FAIL_WITHIN,
        "{what} must fail within {FAIL_WITHIN:?}, took {elapsed:?}"
    );
    assert!(
        matches!(err, IdpError::Unreachable { attempts: 3, .. }),
        "{what}: {err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the identity provider {issuer} (")),
        "{what}: {message}"
    );
    assert!(
        message.contains("connection refused after 3 attempts"),
        "{what}: {message}"
    );
}

#[tokio::test]
async fn stopped_provider_fails_every_operation_quickly_naming_the_issuer() {
    let (mut idp, provider) = start().await;
    let signed_in = sign_in(&idp, &provider, LoginOptions::default(), "alice").await;
    let issuer = idp.issuer().to_owned();
    idp.stop().await;

    let started = Instant::now();
    let err = provider
        .begin_login(LoginOptions::default())
        .await
        .unwrap_err();
    assert_unreachable(
        &err,
        &issuer,
        started.elapsed(),
        "starting a browser sign-in",
    );

    let started = Instant::now();
    let err = provider
        .begin_device(DeviceOptions::default())
        .await
        .unwrap_err();
    assert_unreachable(
        &err,
        &issuer,
        started.elapsed(),
        "starting a device sign-in",
    );

    let started = Instant::now();
    let err = provider
        .refresh(signed_in.tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert_unreachable(&err, &issuer, started.elapsed(), "refreshing");

    let started = Instant::now();
    let err = Provider::discover(idp.native_client(), Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert_unreachable(&err, &issuer, started.elapsed(), "discovery");
}

/// A tiny HTTP server that answers each path with a canned response, standing in for a
/// misconfigured or broken provider (a proxy's error page, a half-written config).
async fn garbage_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let me = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let base = me.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => len += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let (status, content_type, body) = answer(&base, &path);
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    base
}

const HTML: &str = "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>";

fn discovery(base: &str, tenant: &str) -> String {
    serde_json::json!({
        "issuer": format!("{base}/{tenant}"),
        "authorization_endpoint": format!("{base}/{tenant}/auth"),
        "token_endpoint": format!("{base}/{tenant}/token"),
        "jwks_uri": format!("{base}/{tenant}/jwks"),
    })
    .to_string()
}

fn answer(base: &str, path: &str) -> (&'static str, &'static str, String) {
    let json = "application/json";
    match path {
        "/html/.well-known/openid-configuration" => ("200 OK", "text/html", HTML.to_owned()),
        "/broken-json/.well-known/openid-configuration" => {
            ("200 OK", json, "{\"issuer\": \"http://127.0.0.1".to_owned())
        }
        "/wrong-issuer/.well-known/openid-configuration" => {
            ("200 OK", json, discovery("https://idp.example.com", "corp"))
        }
        "/no-token-endpoint/.well-known/openid-configuration" => (
            "200 OK",
            json,
            serde_json::json!({
                "issuer": format!("{base}/no-token-endpoint"),
                "authorization_endpoint": format!("{base}/auth"),
                "jwks_uri": format!("{base}/jwks"),
            })
            .to_string(),
        ),
        "/insecure/.well-known/openid-configuration" => (
            "200 OK",
            json,
            serde_json::json!({
                "issuer": format!("{base}/insecure"),
                "authorization_endpoint": "http://idp.example.com/auth",
                "token_endpoint": format!("{base}/token"),
                "jwks_uri": format!("{base}/jwks"),
            })
            .to_string(),
        ),
        "/down/.well-known/openid-configuration" => {
            ("503 Service Unavailable", "text/html", HTML.to_owned())
        }
        "/html-token/.well-known/openid-configuration" => {
            ("200 OK", json, discovery(base, "html-token"))
        }
        "/html-token/token" => ("200 OK", "text/html", HTML.to_owned()),
        "/html-token/jwks" => ("200 OK", json, "{\"keys\": \"none\"}".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found".to_owned()),
    }
}

async fn discover_at(base: &str, tenant: &str) -> Result<Provider, IdpError> {
    let config = ProviderConfig::new("broken", format!("{base}/{tenant}"), "app");
    Provider::discover(config, Arc::new(SystemClock)).await
}

#[tokio::test]
async fn garbage_from_the_provider_is_a_clear_error() {
    let base = garbage_server().await;

    let err = discover_at(&base, "html").await.unwrap_err();
    assert!(matches!(err, IdpError::InvalidResponse { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("{base}/html")),
        "names the issuer: {message}"
    );
    assert!(
        message.contains("expected JSON, got text/html"),
        "{message}"
    );
    assert!(
        message.contains("Welcome to nginx!"),
        "quotes the page: {message}"
    );

    let err = discover_at(&base, "broken-json").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the JSON does not have the expected shape"),
        "{err}"
    );

    let err = discover_at(&base, "wrong-issuer").await.unwrap_err();
    assert!(
        matches!(&err, IdpError::IssuerMismatch { found, .. } if found == "https://idp.example.com/corp"),
        "{err}"
    );

    let err = discover_at(&base, "no-token-endpoint").await.unwrap_err();
    assert!(
        err.to_string().contains("it names no token_endpoint"),
        "{err}"
    );

    let err = discover_at(&base, "insecure").await.unwrap_err();
    assert!(
        matches!(&err, IdpError::InsecureEndpoint { endpoint, .. } if endpoint.contains("http://idp.example.com/auth")),
        "{err}"
    );

    let err = discover_at(&base, "down").await.unwrap_err();
    assert!(
        matches!(err, IdpError::HttpStatus { status: 503, .. }),
        "a 503 is retried, then reported: {err}"
    );

    let provider = discover_at(&base, "html-token")
        .await
        .expect("a well-formed discovery document");
    let err = provider
        .refresh(&breakglass_idp::RefreshToken::new("rt"))
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("text/html"), "{err}");
    assert!(
        !err.to_string().contains("nginx"),
        "a token endpoint's answer is never quoted (it could hold tokens): {err}"
    );

    let err = provider.jwks().await.unwrap_err();
    assert!(matches!(err, IdpError::Jwks { .. }), "{err}");
    assert!(err.to_string().contains("\"keys\" array"), "{err}");
}
