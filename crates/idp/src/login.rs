//! Sign-in in a browser: authorization code with PKCE (RFC 7636) and a loopback redirect on an
//! ephemeral port (RFC 8252 §7.3).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use crate::http::EndpointKind;
use crate::provider::{Provider, SignIn};
use crate::IdpError;

/// The path of the loopback redirect URI (`http://127.0.0.1:PORT/callback`).
pub const CALLBACK_PATH: &str = "/callback";
/// Largest request head the loopback listener reads.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long one browser connection may take to send its request.
const CONNECTION_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How to sign in.
#[derive(Clone, Debug, Default)]
pub struct LoginOptions {
    /// The nonce the ID token must carry (the engine binds it to a signing key). `None` picks a
    /// random one, still checked, which guards against replayed tokens.
    pub nonce: Option<String>,
    /// Ask the provider to re-authenticate the person if they last did longer ago than this
    /// (`max_age`); the ID token's `auth_time` is then required and checked.
    pub max_age: Option<Duration>,
    /// Scopes to ask for besides the configured ones.
    pub extra_scopes: Vec<String>,
    /// The `prompt` parameter. `None` sends `consent` when `offline_access` is asked for (OpenID
    /// Connect Core §11 requires it for a refresh token) and nothing otherwise.
    pub prompt: Option<String>,
}

/// A sign-in waiting for the browser to come back. Dropping it closes the listener.
pub struct PendingLogin {
    provider: Provider,
    listener: TcpListener,
    url: Url,
    redirect_uri: RedirectUrl,
    state: CsrfToken,
    verifier: PkceCodeVerifier,
    nonce: String,
    max_age: Option<Duration>,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("issuer", &self.provider.issuer())
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Starts a sign-in: checks the provider answers (so a provider that is down fails here,
    /// within seconds, before any browser is opened), listens on `127.0.0.1` on a free port, and
    /// builds the authorization URL with PKCE (S256), a random `state` and the nonce.
    pub async fn begin_login(&self, options: LoginOptions) -> Result<PendingLogin, IdpError> {
        self.check_reachable().await?;
        let issuer = self.issuer().to_owned();
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(|source| IdpError::Loopback {
                issuer: issuer.clone(),
                what: "listen",
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| IdpError::Loopback {
                issuer: issuer.clone(),
                what: "read the listening port",
                source,
            })?
            .port();
        let redirect_uri = RedirectUrl::new(format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))
            .map_err(|e| IdpError::Config {
                provider: self.config().name.clone(),
                reason: format!("cannot form the loopback redirect URI: {e}"),
            })?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = options
            .nonce
            .unwrap_or_else(|| CsrfToken::new_random().secret().clone());
        let scopes = self.config().scopes_with(&options.extra_scopes);
        let prompt = options.prompt.or_else(|| {
            scopes
                .iter()
                .any(|s| s == "offline_access")
                .then(|| "consent".to_owned())
        });
        let client = self.oauth_client();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.into_iter().map(Scope::new))
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Borrowed(&redirect_uri))
            .add_extra_param("nonce", nonce.clone());
        if let Some(max_age) = options.max_age {
            request = request.add_extra_param("max_age", max_age.as_secs().to_string());
        }
        if let Some(prompt) = prompt {
            request = request.add_extra_param("prompt", prompt);
        }
        let (url, state) = request.url();
        Ok(PendingLogin {
            provider: self.clone(),
            listener,
            url,
            redirect_uri: redirect_uri.clone(),
            state,
            verifier,
            nonce,
            max_age: options.max_age,
        })
    }
}

impl PendingLogin {
    /// The URL to open in the person's browser.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The loopback redirect URI the browser comes back to.
    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }

    /// The nonce the ID token must carry.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Waits up to `timeout` for the browser to come back, then checks `state` (a mismatch ends
    /// the sign-in and its code is never used), exchanges the code with the PKCE verifier,
    /// validates the ID token, answers the browser with a small page saying how it went, and
    /// closes the listener.
    pub async fn finish(self, timeout: Duration) -> Result<SignIn, IdpError> {
        let PendingLogin {
            provider,
            listener,
            redirect_uri,
            state,
            verifier,
            nonce,
            max_age,
            ..
        } = self;
        let issuer = provider.issuer().to_owned();
        let (tx, mut rx) = mpsc::channel(1);
        let accept = AbortOnDrop(tokio::spawn(accept_callbacks(listener, tx)));
        let received = tokio::time::timeout(timeout, rx.recv()).await;
        // Closes the listening socket: no second redirect is accepted.
        drop(accept);
        let (callback, mut stream) = match received {
            Err(_) => {
                return Err(IdpError::LoginTimedOut {
                    issuer,
                    redirect_uri: redirect_uri.as_str().to_owned(),
                    waited: timeout,
                })
            }
            Ok(None) => {
                return Err(IdpError::Loopback {
                    issuer,
                    what: "accept a connection",
                    source: std::io::Error::other("the listener stopped"),
                })
            }
            Ok(Some(Ok(received))) => received,
            Ok(Some(Err(source))) => {
                return Err(IdpError::Loopback {
                    issuer,
                    what: "accept a connection",
                    source,
                })
            }
        };
        let result = complete(
            &provider,
            &callback,
            &state,
            verifier,
            &redirect_uri,
            &nonce,
            max_age,
        )
        .await;
        let page = match &result {
            Ok(signed_in) => Page::success(signed_in),
            Err(e) => Page::failure(e),
        };
        // The browser may already be gone; the sign-in's outcome does not depend on it.
        let _ = page.write(&mut stream).await;
        result
    }
}

async fn complete(
    provider: &Provider,
    callback: &Callback,
    state: &CsrfToken,
    verifier: PkceCodeVerifier,
    redirect_uri: &RedirectUrl,
    nonce: &str,
    max_age: Option<Duration>,
) -> Result<SignIn, IdpError> {
    let issuer = provider.issuer().to_owned();
    let params = callback.params(&issuer)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("state") {
        Some(s) if constant_time_eq(s.as_bytes(), state.secret().as_bytes()) => {}
        _ => return Err(IdpError::StateMismatch { issuer }),
    }
    match get("iss") {
        Some(found) if found != issuer => {
            return Err(IdpError::CallbackIssuerMismatch {
                issuer,
                found: found.to_owned(),
            })
        }
        None if provider
            .metadata()
            .authorization_response_iss_parameter_supported =>
        {
            return Err(IdpError::MalformedCallback {
                issuer,
                reason: "it has no iss parameter, though the provider announces one (RFC 9207)"
                    .to_owned(),
            })
        }
        _ => {}
    }
    if let Some(error) = get("error") {
        return Err(IdpError::Denied {
            issuer,
            error: error.to_owned(),
            description: get("error_description").map(str::to_owned),
        });
    }
    let code = get("code").ok_or_else(|| IdpError::MalformedCallback {
        issuer: issuer.clone(),
        reason: "it has neither a code nor an error".to_owned(),
    })?;
    let client = provider.oauth_client();
    let call = |request| provider.oauth_call(EndpointKind::Token, request);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Borrowed(redirect_uri))
        .request_async(&call)
        .await
        .map_err(|e| provider.grant_error("authorization code", e))?;
    provider.sign_in(&response, Some(nonce), max_age).await
}

/// Opens `url` in the person's default browser; `false` when none could be started (then show
/// the URL instead). The crate never calls this itself.
pub fn open_browser(url: &Url) -> bool {
    webbrowser::open(url.as_str()).is_ok()
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request to the callback path, with the connection to answer it on.
type Received = (Callback, TcpStream);

struct Callback {
    query: String,
}

impl Callback {
    /// The query parameters; each may appear once.
    fn params(&self, issuer: &str) -> Result<Vec<(String, String)>, IdpError> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(self.query.as_bytes()) {
            if params.iter().any(|(seen, _)| *seen == k) {
                return Err(IdpError::MalformedCallback {
                    issuer: issuer.to_owned(),
                    reason: format!("the parameter {k:?} appears more than once"),
                });
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        Ok(params)
    }
}

/// Accepts browser connections until one asks for the callback path; other paths (a favicon,
/// a stray request) get a 404 and do not end the wait.
async fn accept_callbacks(listener: TcpListener, tx: mpsc::Sender<std::io::Result<Received>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(received) = read_callback(stream).await {
                        let _ = tx.send(Ok(received)).await;
                    }
                });
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

async fn read_callback(mut stream: TcpStream) -> Option<Received> {
    let head = tokio::time::timeout(CONNECTION_READ_TIMEOUT, read_head(&mut stream))
        .await
        .ok()??;
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method == "GET" && path == CALLBACK_PATH {
        return Some((
            Callback {
                query: query.to_owned(),
            },
            stream,
        ));
    }
    let _ = Page::not_found().write(&mut stream).await;
    None
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The small, self-contained page the browser sees at the end (no scripts, no outside resources).
struct Page {
    status: &'static str,
    title: &'static str,
    message: String,
}

impl Page {
    fn success(signed_in: &SignIn) -> Page {
        let who = signed_in
            .identity
            .claims
            .string_claim("email")
            .unwrap_or(&signed_in.identity.claims.sub);
        Page {
            status: "200 OK",
            title: "Signed in to Breakglass",
            message: format!("Signed in as {who}. You can close this tab."),
        }
    }

    fn failure(error: &IdpError) -> Page {
        Page {
            status: "400 Bad Request",
            title: "Breakglass sign-in failed",
            message: format!("{error}. You can close this tab and try again."),
        }
    }

    fn not_found() -> Page {
        Page {
            status: "404 Not Found",
            title: "Not found",
            message: "This address only receives a Breakglass sign-in.".to_owned(),
        }
    }

    fn html(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36em;\
             margin:4em auto;padding:0 1em;color:#1d1d1f}}h1{{font-size:1.4em}}</style></head>\
             <body><h1>{title}</h1><p>{message}</p></body></html>\n",
            title = escape(self.title),
            message = escape(&self.message),
        )
    }

    async fn write(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let body = self.html();
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; \
             style-src 'unsafe-inline'\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
            self.status,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_escaped_and_self_contained() {
        let page = Page {
            status: "400 Bad Request",
            title: "Breakglass sign-in failed",
            message: "<script>alert(1)</script> & \"quotes\"".to_owned(),
        };
        let html = page.html();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
        assert!(!html.contains("<script"), "no markup from messages");
        assert!(!html.contains("http"), "no outside resources");
    }

    #[test]
    fn state_comparison_needs_equal_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn repeated_callback_parameters_are_refused() {
        let cb = Callback {
            query: "code=a&state=s&code=b".to_owned(),
        };
        let err = cb.params("https://idp.example.com").unwrap_err();
        assert!(
            err.to_string().contains("\"code\" appears more than once"),
            "{err}"
        );
    }
}
