#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Breakglass's OAuth 2.0 / OpenID Connect client.
//!
//! Owns talking to identity providers: discovery, sign-in in a browser (authorization code with
//! PKCE and a loopback redirect, RFC 7636 and RFC 8252) or on another device (RFC 8628), the
//! issuer's key set (cached, refetched on key rotation), ID token validation, refresh,
//! revocation (RFC 7009) and introspection (RFC 7662).
//!
//! It never checks an ID token itself: [`Provider::validate_id_token`] fetches the keys and
//! hands the token to [`breakglass_core::jose`], the same code that verifies enrolments offline.
//! It never opens a browser on its own ([`open_browser`] is there for callers), never stores
//! tokens (the engine puts them in the OS keyring), and never prints or logs one: tokens are held
//! in types whose `Debug` is redacted and that zeroize on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), breakglass_idp::IdpError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use breakglass_core::SystemClock;
//! use breakglass_idp::{open_browser, LoginOptions, Provider, ProviderConfig};
//!
//! let mut config = ProviderConfig::new("corp", "https://login.example.com", "breakglass");
//! config.scopes.extend(["groups".to_owned(), "offline_access".to_owned()]);
//! let provider = Provider::discover(config, Arc::new(SystemClock)).await?;
//! let login = provider
//!     .begin_login(LoginOptions { nonce: Some("key-bound-nonce".into()), ..Default::default() })
//!     .await?;
//! if !open_browser(login.url()) {
//!     eprintln!("Open {} to sign in", login.url());
//! }
//! let signed_in = login.finish(Duration::from_secs(300)).await?;
//! eprintln!("signed in as {} in groups {:?}", signed_in.identity.claims.sub, signed_in.identity.groups);
//! # Ok(())
//! # }
//! ```
//!
//! Tokens show nothing in `Debug`; reading one takes an explicit call:
//!
//! ```
//! use breakglass_idp::RefreshToken;
//!
//! let token = RefreshToken::new("rt-0123456789");
//! assert_eq!(format!("{token:?}"), "RefreshToken([redacted])");
//! assert_eq!(token.expose_secret(), "rt-0123456789");
//! ```

mod config;
mod device;
mod error;
mod http;
mod jwks;
mod login;
mod provider;
mod secret;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ProviderConfig, DEFAULT_GROUPS_CLAIM};
pub use device::{DeviceOptions, PendingDevice, DEFAULT_POLL_INTERVAL, SLOW_DOWN_STEP};
pub use error::IdpError;
pub use login::{open_browser, LoginOptions, PendingLogin, CALLBACK_PATH};
pub use provider::{
    parse_discovery_document, Identity, Introspection, Provider, ProviderMetadata, Refreshed,
    SignIn, Tokens, CLOCK_LEEWAY, TOKEN_EXCHANGE,
};
pub use secret::{AccessToken, ClientSecret, IdToken, IssuedToken, RefreshToken};
