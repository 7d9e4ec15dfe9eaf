//! A real OpenID provider for tests (cargo feature `testing`).
//!
//! [`TestIdp::start`] runs the npm package `oidc-provider` (OpenID Certified, pinned by the
//! committed lockfile in `crates/idp/testidp/`) under Node on a free loopback port, with a native
//! public client (`native-app`, PKCE required, loopback redirect on any port), a confidential
//! client (`confidential-app`), the device flow, revocation, introspection, a `groups` claim in
//! ID tokens, `auth_time` always present, and short token lifetimes. Sign-ins are completed
//! headlessly through the provider's own login and consent pages ([`TestIdp::headless_login`],
//! [`TestIdp::approve_device`]). Test-only endpoints under `/__test/` change a user's groups and
//! rotate the signing key. Dropping the value stops the provider; so does the test process
//! dying (the provider exits when its stdin closes).
//!
//! `npm ci` must have been run in `crates/idp/testidp/` (`scripts/test.sh` does it); starting
//! fails with that instruction otherwise.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use breakglass_core::SystemClock;
//! use breakglass_idp::testing::{TestIdp, TestIdpOptions};
//! use breakglass_idp::{LoginOptions, Provider};
//!
//! let idp = TestIdp::start(TestIdpOptions::default()).await?;
//! let provider = Provider::discover(idp.native_client(), Arc::new(SystemClock)).await?;
//! let login = provider.begin_login(LoginOptions::default()).await?;
//! let url = login.url().clone();
//! let (signed_in, browser) = tokio::join!(
//!     login.finish(Duration::from_secs(30)),
//!     idp.headless_login(&url, "alice"),
//! );
//! browser?;
//! assert_eq!(signed_in?.identity.claims.sub, "alice");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

use crate::{ClientSecret, ProviderConfig};

/// The oidc-provider version the tests are written against (pinned in `package.json`).
pub const OIDC_PROVIDER_VERSION: &str = "9.13.3";
/// The public native client's id.
pub const NATIVE_CLIENT_ID: &str = "native-app";
/// The confidential client's id.
pub const CONFIDENTIAL_CLIENT_ID: &str = "confidential-app";
/// The service client (client credentials only), as Breakglass's broker would be registered.
pub const BROKER_CLIENT_ID: &str = "broker";
/// A resource server whose tokens are opaque (introspectable and revocable at the provider).
pub const OPAQUE_RESOURCE: &str = "https://api.test/opaque";
/// A resource server whose tokens are JWTs (checked by the resource server itself).
pub const JWT_RESOURCE: &str = "https://api.test/jwt";
/// The longest token either resource server is issued, in seconds.
pub const RESOURCE_MAX_TTL_SECS: u64 = 3600;
/// The token-request parameter the test provider takes as the lifetime asked for, in seconds.
pub const LIFETIME_PARAMETER: &str = "requested_lifetime";
/// How long the provider may take to print its ready line (about a second when idle).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a provider that prints no ready line is started.
const START_ATTEMPTS: u32 = 2;
/// How much of the provider's stderr an error quotes.
const STDERR_TAIL: usize = 4096;

/// Why the test provider could not be started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestIdpError {
    /// `node` is not on `PATH`.
    #[error(
        "`node` is not installed; run scripts/bootstrap.sh (it installs Debian's nodejs and npm)"
    )]
    NodeNotInstalled,
    /// The provider's npm packages are missing or not the pinned version.
    #[error(
        "oidc-provider {OIDC_PROVIDER_VERSION} is not installed in {dir} ({found}); run `npm ci` \
         there (scripts/test.sh does it before the tests)"
    )]
    NotInstalled {
        /// The provider's folder.
        dir: PathBuf,
        /// What was found instead.
        found: String,
    },
    /// Starting `node` failed.
    #[error("cannot start `node provider.mjs` in {dir}: {source}")]
    Spawn {
        /// The provider's folder.
        dir: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The provider exited or did not get ready.
    #[error("the test identity provider did not start: {reason}; its stderr ends with:\n{stderr}")]
    Start {
        /// What happened.
        reason: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// An HTTP request to the provider (or to the app's loopback redirect) failed.
    #[error("test identity provider: {what}: {source}")]
    Request {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// A headless flow met something it did not expect.
    #[error("test identity provider: {step}: {detail}")]
    Flow {
        /// The step of the flow.
        step: &'static str,
        /// What was found.
        detail: String,
    },
}

/// A user of the test provider (any password is accepted).
#[derive(Clone, Debug)]
pub struct TestUser {
    /// The login name, also the `sub` of its tokens.
    pub id: String,
    /// Its `email` claim.
    pub email: String,
    /// Its `groups` claim.
    pub groups: Vec<String>,
}

impl TestUser {
    /// A user `id` with the email `id@example.test` in `groups`.
    pub fn new(id: &str, groups: &[&str]) -> Self {
        TestUser {
            id: id.to_owned(),
            email: format!("{id}@example.test"),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }
}

/// A private signing key of a test provider, to start another provider that signs with it.
#[derive(Clone)]
pub struct TestSigningKey(serde_json::Value);

impl fmt::Debug for TestSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestSigningKey([redacted])")
    }
}

/// How to set up a test provider.
#[derive(Clone, Debug)]
pub struct TestIdpOptions {
    /// Its users; the default is `alice` (groups `approvers`, `devs`) and `bob` (`devs`).
    pub users: Vec<TestUser>,
    /// Lifetime of ID tokens.
    pub id_token_ttl: Duration,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Lifetime of device codes.
    pub device_code_ttl: Duration,
    /// Sign with this key instead of a new one.
    pub signing_key: Option<TestSigningKey>,
    /// Offer token exchange (RFC 8693: a person's ID token for an access token that acts for
    /// them) to the broker client, and list it in discovery; on by default.
    pub token_exchange: bool,
}

impl Default for TestIdpOptions {
    fn default() -> Self {
        TestIdpOptions {
            users: vec![
                TestUser::new("alice", &["approvers", "devs"]),
                TestUser::new("bob", &["devs"]),
            ],
            id_token_ttl: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            device_code_ttl: Duration::from_secs(120),
            signing_key: None,
            token_exchange: true,
        }
    }
}

/// How often the provider's endpoints were called, as counted by the provider.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestCounts {
    /// Requests for the key set.
    pub jwks: u64,
    /// Requests to the token endpoint (code, refresh and device-code exchanges).
    pub token: u64,
    /// Requests to the device authorization endpoint.
    pub device_authorization: u64,
}

#[derive(Deserialize)]
struct Ready {
    issuer: String,
    kid: String,
}

/// A running oidc-provider on 127.0.0.1, stopped on drop.
pub struct TestIdp {
    child: Option<Child>,
    /// Kept open: the provider exits when it closes.
    stdin: Option<ChildStdin>,
    issuer: String,
    issuer_url: Url,
    initial_kid: String,
    confidential_secret: String,
    broker_secret: String,
    stderr: Arc<Mutex<String>>,
    control: reqwest::Client,
}

impl fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIdp")
            .field("issuer", &self.issuer)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

/// The folder holding `provider.mjs`, `package.json` and the lockfile, in the workspace of the
/// test that runs (see `breakglass_testkit::package_dir` for why not `env!`).
pub fn provider_dir() -> PathBuf {
    breakglass_testkit::workspace_root().join("crates/idp/testidp")
}

fn check_installed(dir: &Path) -> Result<(), TestIdpError> {
    let manifest = dir.join("node_modules/oidc-provider/package.json");
    let found = match std::fs::read_to_string(&manifest) {
        Err(_) => "node_modules/oidc-provider is missing".to_owned(),
        Ok(text) => {
            let version = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
            match version {
                Some(v) if v == OIDC_PROVIDER_VERSION => return Ok(()),
                Some(v) => format!("found version {v}"),
                None => "its package.json has no version".to_owned(),
            }
        }
    };
    Err(TestIdpError::NotInstalled {
        dir: dir.to_owned(),
        found,
    })
}

impl TestIdp {
    /// Starts a provider (about a second). Fails loudly, never skips, when Node or the npm
    /// packages are missing.
    pub async fn start(options: TestIdpOptions) -> Result<TestIdp, TestIdpError> {
        let dir = provider_dir();
        check_installed(&dir)?;
        let confidential_secret = format!("secret-{}", oauth2::CsrfToken::new_random().secret());
        let broker_secret = format!("broker-{}", oauth2::CsrfToken::new_random().secret());
        let users: serde_json::Map<String, serde_json::Value> = options
            .users
            .iter()
            .map(|u| {
                (
                    u.id.clone(),
                    serde_json::json!({ "email": u.email, "groups": u.groups }),
                )
            })
            .collect();
        let settings = serde_json::json!({
            "users": users,
            "idTokenTtl": options.id_token_ttl.as_secs(),
            "accessTokenTtl": options.access_token_ttl.as_secs(),
            "refreshTokenTtl": options.refresh_token_ttl.as_secs(),
            "deviceCodeTtl": options.device_code_ttl.as_secs(),
            "confidentialSecret": confidential_secret,
            "brokerSecret": broker_secret,
            "signingJwk": options.signing_key.as_ref().map(|k| k.0.clone()),
            "tokenExchange": options.token_exchange,
        });
        let mut attempt = 0;
        let (child, stdin, stderr, mut lines, ready) = loop {
            attempt += 1;
            let mut child = Command::new("node")
                .arg("provider.mjs")
                .current_dir(&dir)
                .env("TEST_IDP_CONFIG", settings.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| {
                    if source.kind() == std::io::ErrorKind::NotFound {
                        TestIdpError::NodeNotInstalled
                    } else {
                        TestIdpError::Spawn {
                            dir: dir.clone(),
                            source,
                        }
                    }
                })?;
            let stdin = child.stdin.take();
            let stderr = Arc::new(Mutex::new(String::new()));
            if let Some(pipe) = child.stderr.take() {
                tokio::spawn(collect_tail(pipe, stderr.clone()));
            }
            let stdout = child.stdout.take().ok_or_else(|| TestIdpError::Start {
                reason: "its stdout is not captured".to_owned(),
                stderr: String::new(),
            })?;
            let mut lines = BufReader::new(stdout).lines();
            let ready = tokio::time::timeout(START_TIMEOUT, async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(ready) = serde_json::from_str::<Ready>(&line) {
                        return Some(ready);
                    }
                }
                None
            })
            .await;
            let tail = || stderr.lock().map(|s| s.clone()).unwrap_or_default();
            let ready = match ready {
                Ok(Some(ready)) => ready,
                Ok(None) => {
                    let status = child
                        .wait()
                        .await
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    return Err(TestIdpError::Start {
                        reason: format!("it exited ({status}) before printing its ready line"),
                        stderr: tail(),
                    });
                }
                // A provider that never got ready (seen once on a loaded machine) is killed and
                // started again, once; a second silence is the failure.
                Err(_) if attempt < START_ATTEMPTS => {
                    eprintln!(
                        "test provider: no ready line within {}s; starting it again",
                        START_TIMEOUT.as_secs()
                    );
                    continue;
                }
                Err(_) => {
                    return Err(TestIdpError::Start {
                        reason: format!(
                            "no ready line within {}s, {START_ATTEMPTS} times",
                            START_TIMEOUT.as_secs()
                        ),
                        stderr: tail(),
                    })
                }
            };
            break (child, stdin, stderr, lines, ready);
        };
        // Keep reading stdout so the provider never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let issuer_url = Url::parse(&ready.issuer).map_err(|e| TestIdpError::Start {
            reason: format!("its issuer {:?} is not a URL: {e}", ready.issuer),
            stderr: String::new(),
        })?;
        let control = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| TestIdpError::Request {
                what: "building an HTTP client".to_owned(),
                source,
            })?;
        Ok(TestIdp {
            child: Some(child),
            stdin,
            issuer: ready.issuer,
            issuer_url,
            initial_kid: ready.kid,
            confidential_secret,
            broker_secret,
            stderr,
            control,
        })
    }

    /// The issuer, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The id of the key the provider signed with when it started.
    pub fn initial_kid(&self) -> &str {
        &self.initial_kid
    }

    /// The end of the provider's stderr (Node's warnings, oidc-provider's notices), for
    /// diagnosing a failed test.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Settings for the public native client, asking for `email`, `groups` and
    /// `offline_access`.
    pub fn native_client(&self) -> ProviderConfig {
        let mut config = ProviderConfig::new("test", &self.issuer, NATIVE_CLIENT_ID);
        config.scopes = ["openid", "email", "groups", "offline_access"]
            .map(str::to_owned)
            .to_vec();
        config
    }

    /// Settings for the confidential client (HTTP Basic client authentication).
    pub fn confidential_client(&self) -> ProviderConfig {
        let mut config = self.native_client();
        config.name = "test-confidential".to_owned();
        config.client_id = CONFIDENTIAL_CLIENT_ID.to_owned();
        config.client_secret = Some(ClientSecret::new(self.confidential_secret.clone()));
        config
    }

    /// Settings for the `broker` client: a service using the client-credentials grant for the
    /// resources [`OPAQUE_RESOURCE`] and [`JWT_RESOURCE`] (scopes `api:read`, `api:write`).
    pub fn broker_client(&self) -> ProviderConfig {
        let mut config = ProviderConfig::new("test-broker", &self.issuer, BROKER_CLIENT_ID);
        config.client_secret = Some(ClientSecret::new(self.broker_secret.clone()));
        config
    }

    /// The broker client's secret, as a policy's `keyring:`/`file:` secret would hold it.
    pub fn broker_secret(&self) -> &str {
        &self.broker_secret
    }

    /// Stops the provider (SIGKILL) and waits for it to exit: later requests to it are refused
    /// at once, as with a crashed identity provider.
    pub async fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Replaces a user's groups, as an administrator would in the identity provider; tokens
    /// issued from then on carry the new groups.
    pub async fn set_groups(&self, user: &str, groups: &[&str]) -> Result<(), TestIdpError> {
        let url = self.control_url(&format!("users/{user}/groups"))?;
        let response = self
            .control
            .put(url)
            .json(&groups)
            .send()
            .await
            .map_err(request(format!("setting the groups of {user}")))?;
        expect_success(response, "setting groups").await.map(|_| ())
    }

    /// Rotates the signing key: new tokens are signed with a new key (its id is returned); the
    /// key set keeps the old key when `keep_old`, else drops it.
    pub async fn rotate_signing_key(&self, keep_old: bool) -> Result<String, TestIdpError> {
        #[derive(Deserialize)]
        struct Rotated {
            kid: String,
        }
        let response = self
            .control
            .post(self.control_url("rotate-key")?)
            .json(&serde_json::json!({ "keepOld": keep_old }))
            .send()
            .await
            .map_err(request("rotating the signing key".to_owned()))?;
        let body = expect_success(response, "rotating the signing key").await?;
        let rotated: Rotated = serde_json::from_str(&body).map_err(|e| TestIdpError::Flow {
            step: "rotating the signing key",
            detail: format!("unexpected answer: {e}"),
        })?;
        Ok(rotated.kid)
    }

    /// The provider's current signing key, to start another provider with it.
    pub async fn signing_key(&self) -> Result<TestSigningKey, TestIdpError> {
        let response = self
            .control
            .get(self.control_url("signing-key")?)
            .send()
            .await
            .map_err(request("reading the signing key".to_owned()))?;
        let body = expect_success(response, "reading the signing key").await?;
        serde_json::from_str(&body)
            .map(TestSigningKey)
            .map_err(|e| TestIdpError::Flow {
                step: "reading the signing key",
                detail: e.to_string(),
            })
    }

    /// How often the key set, token and device authorization endpoints were called.
    pub async fn request_counts(&self) -> Result<RequestCounts, TestIdpError> {
        let response = self
            .control
            .get(self.control_url("counts")?)
            .send()
            .await
            .map_err(request("reading the request counts".to_owned()))?;
        let body = expect_success(response, "reading the request counts").await?;
        serde_json::from_str(&body).map_err(|e| TestIdpError::Flow {
            step: "reading the request counts",
            detail: e.to_string(),
        })
    }

    /// Signs `user` in and consents at the provider, as a browser would from
    /// `authorization_url`, then follows the redirect back to the app's loopback listener and
    /// expects it to answer 200 (its "you can close this tab" page).
    pub async fn headless_login(
        &self,
        authorization_url: &Url,
        user: &str,
    ) -> Result<(), TestIdpError> {
        let redirect = self.authorize(authorization_url, user).await?;
        match self.deliver(&redirect).await? {
            (200, _) => Ok(()),
            (status, page) => Err(TestIdpError::Flow {
                step: "returning to the app",
                detail: format!("the app answered {status}: {}", page_text(&page)),
            }),
        }
    }

    /// Signs `user` in and consents, and returns the redirect back to the app without following
    /// it (to tamper with it, or deliver it later with [`TestIdp::deliver`]).
    pub async fn authorize(
        &self,
        authorization_url: &Url,
        user: &str,
    ) -> Result<Url, TestIdpError> {
        let browser = self.browser()?;
        self.walk(&browser, authorization_url.clone(), Some(user))
            .await?
            .ok_or_else(|| TestIdpError::Flow {
                step: "signing in",
                detail: "the provider never redirected back to the app".to_owned(),
            })
    }

    /// Cancels the sign-in at the provider's login page, as a person pressing "cancel" would,
    /// and returns the resulting `error=access_denied` redirect to the app without following it.
    pub async fn cancel(&self, authorization_url: &Url) -> Result<Url, TestIdpError> {
        let browser = self.browser()?;
        let mut next = authorization_url.clone();
        for _ in 0..5 {
            if next.path().starts_with("/interaction/") {
                let abort = self.resolve(&format!("{}/abort", next.path()))?;
                return self
                    .walk(&browser, abort, None)
                    .await?
                    .ok_or_else(|| TestIdpError::Flow {
                        step: "cancelling",
                        detail: "the provider never redirected back to the app".to_owned(),
                    });
            }
            next = self.get_location(&browser, &next).await?;
        }
        Err(TestIdpError::Flow {
            step: "cancelling",
            detail: "no login page was reached".to_owned(),
        })
    }

    /// Requests a redirect URL back to the app (the loopback listener), as the browser would;
    /// returns the app's status and page.
    pub async fn deliver(&self, redirect: &Url) -> Result<(u16, String), TestIdpError> {
        let response = self
            .control
            .get(redirect.clone())
            .send()
            .await
            .map_err(request("returning to the app".to_owned()))?;
        let status = response.status().as_u16();
        let page = response
            .text()
            .await
            .map_err(request("reading the app's page".to_owned()))?;
        Ok((status, page))
    }

    /// Enters `user_code` at the provider's device page, signs `user` in and consents.
    pub async fn approve_device(&self, user_code: &str, user: &str) -> Result<(), TestIdpError> {
        let browser = self.browser()?;
        let location = self
            .submit_user_code(&browser, user_code, "confirm")
            .await?;
        let Some(location) = location else {
            return Err(TestIdpError::Flow {
                step: "confirming the device code",
                detail: "the provider did not continue to its login page".to_owned(),
            });
        };
        match self.walk(&browser, location, Some(user)).await? {
            None => Ok(()),
            Some(left) => Err(TestIdpError::Flow {
                step: "approving the device",
                detail: format!("unexpected redirect away from the provider to {left}"),
            }),
        }
    }

    /// Enters `user_code` at the provider's device page and refuses it.
    pub async fn deny_device(&self, user_code: &str) -> Result<(), TestIdpError> {
        let browser = self.browser()?;
        self.submit_user_code(&browser, user_code, "abort")
            .await
            .map(|_| ())
    }

    async fn submit_user_code(
        &self,
        browser: &reqwest::Client,
        user_code: &str,
        decision: &str,
    ) -> Result<Option<Url>, TestIdpError> {
        let step = "entering the device code";
        let mut page_url = self.resolve("/device")?;
        page_url
            .query_pairs_mut()
            .append_pair("user_code", user_code);
        let page = text(browser.get(page_url).send().await, step).await?;
        let xsrf = hidden_input(&page, "xsrf").ok_or_else(|| TestIdpError::Flow {
            step,
            detail: format!("no xsrf field in the device page: {}", page_text(&page)),
        })?;
        let device = self.resolve("/device")?;
        let confirm_page = text(
            browser
                .post(device.clone())
                .form(&[("xsrf", xsrf.as_str()), ("user_code", user_code)])
                .send()
                .await,
            step,
        )
        .await?;
        let xsrf = hidden_input(&confirm_page, "xsrf").ok_or_else(|| TestIdpError::Flow {
            step,
            detail: format!("no confirmation form: {}", page_text(&confirm_page)),
        })?;
        let response = browser
            .post(device)
            .form(&[
                ("xsrf", xsrf.as_str()),
                ("user_code", user_code),
                (decision, "yes"),
            ])
            .send()
            .await
            .map_err(request(step.to_owned()))?;
        location(&response).map(|l| self.resolve(&l)).transpose()
    }

    /// Follows the provider's redirects and fills its login and consent pages. Returns the first
    /// URL outside the provider (the redirect back to the app), or `None` when the flow ends on
    /// one of the provider's own pages (the device flow's success page).
    async fn walk(
        &self,
        browser: &reqwest::Client,
        start: Url,
        user: Option<&str>,
    ) -> Result<Option<Url>, TestIdpError> {
        let mut next = start;
        for _ in 0..16 {
            if next.origin() != self.issuer_url.origin() {
                return Ok(Some(next));
            }
            let is_interaction =
                next.path().starts_with("/interaction/") && !next.path().ends_with("/abort");
            let response = if is_interaction {
                let page = text(
                    browser.get(next.clone()).send().await,
                    "opening a login page",
                )
                .await?;
                let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                    let user = user.ok_or_else(|| TestIdpError::Flow {
                        step: "signing in",
                        detail: "the provider asks for a login, but no user was given".to_owned(),
                    })?;
                    vec![("prompt", "login"), ("login", user), ("password", "any")]
                } else if page.contains(r#"name="prompt" value="consent""#) {
                    vec![("prompt", "consent")]
                } else {
                    return Err(TestIdpError::Flow {
                        step: "signing in",
                        detail: format!("unexpected interaction page: {}", page_text(&page)),
                    });
                };
                browser
                    .post(next.clone())
                    .form(&form)
                    .send()
                    .await
                    .map_err(request(format!("submitting {next}")))?
            } else {
                browser
                    .get(next.clone())
                    .send()
                    .await
                    .map_err(request(format!("following {next}")))?
            };
            match location(&response) {
                Some(l) => next = self.resolve(&l)?,
                None if response.status().is_success() => return Ok(None),
                None => {
                    let status = response.status();
                    let page = response.text().await.unwrap_or_default();
                    return Err(TestIdpError::Flow {
                        step: "signing in",
                        detail: format!("{next} answered {status}: {}", page_text(&page)),
                    });
                }
            }
        }
        Err(TestIdpError::Flow {
            step: "signing in",
            detail: "too many redirects".to_owned(),
        })
    }

    async fn get_location(
        &self,
        browser: &reqwest::Client,
        url: &Url,
    ) -> Result<Url, TestIdpError> {
        let response = browser
            .get(url.clone())
            .send()
            .await
            .map_err(request(format!("following {url}")))?;
        let l = location(&response).ok_or_else(|| TestIdpError::Flow {
            step: "following redirects",
            detail: format!("{url} answered {} without a redirect", response.status()),
        })?;
        self.resolve(&l)
    }

    /// A fresh browser: its own cookie jar, so every headless sign-in authenticates anew.
    fn browser(&self) -> Result<reqwest::Client, TestIdpError> {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(request("building a browser client".to_owned()))
    }

    fn resolve(&self, location: &str) -> Result<Url, TestIdpError> {
        self.issuer_url
            .join(location)
            .map_err(|e| TestIdpError::Flow {
                step: "following redirects",
                detail: format!("bad location {location:?}: {e}"),
            })
    }

    fn control_url(&self, path: &str) -> Result<Url, TestIdpError> {
        self.resolve(&format!("/__test/{path}"))
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(child) = self.child.as_mut() {
            // kill_on_drop would too; starting the kill here means the process is gone sooner.
            let _ = child.start_kill();
        }
    }
}

fn request(what: String) -> impl FnOnce(reqwest::Error) -> TestIdpError {
    move |source| TestIdpError::Request { what, source }
}

async fn text(
    response: Result<reqwest::Response, reqwest::Error>,
    step: &'static str,
) -> Result<String, TestIdpError> {
    let response = response.map_err(request(step.to_owned()))?;
    let status = response.status();
    let body = response.text().await.map_err(request(step.to_owned()))?;
    if !status.is_success() {
        return Err(TestIdpError::Flow {
            step,
            detail: format!("the provider answered {status}: {}", page_text(&body)),
        });
    }
    Ok(body)
}

async fn expect_success(
    response: reqwest::Response,
    step: &'static str,
) -> Result<String, TestIdpError> {
    text(Ok(response), step).await
}

fn location(response: &reqwest::Response) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// The value of `<input type="hidden" name="NAME" value="…"/>` in one of oidc-provider's forms.
fn hidden_input(page: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

/// The visible text of a page, roughly, on one short line: for error messages.
fn page_text(page: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(if c.is_whitespace() { ' ' } else { c }),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let joined = words.join(" ");
    joined.chars().take(300).collect()
}

async fn collect_tail(mut pipe: tokio::process::ChildStderr, tail: Arc<Mutex<String>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.push_str(&String::from_utf8_lossy(&buf[..n]));
            if t.len() > STDERR_TAIL {
                let cut = t.len() - STDERR_TAIL;
                let cut = (cut..t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                t.drain(..cut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_inputs_are_read_from_forms() {
        let page = r#"<form><input type="hidden" name="xsrf" value="abc123"/><input name="user_code" value="WXYZ"></form>"#;
        assert_eq!(hidden_input(page, "xsrf").as_deref(), Some("abc123"));
        assert_eq!(hidden_input(page, "missing"), None);
    }

    #[test]
    fn page_text_drops_markup() {
        assert_eq!(
            page_text("<html><h1>oops</h1>\n<p>something   failed</p></html>"),
            "oops something failed"
        );
    }
}
