//! A provider's settings and the rule for which URLs may be used.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::secret::ClientSecret;
use crate::IdpError;

/// The claim that carries group names unless configured otherwise.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// How to use one identity provider: who it is and which client we are to it.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// A short name people use for it (`--provider NAME`).
    pub name: String,
    /// The issuer URL exactly as the provider states it (the `iss` of its tokens). Its discovery
    /// document is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// The client secret, for a confidential client; `None` for a public (native) client, which
    /// relies on PKCE.
    pub client_secret: Option<ClientSecret>,
    /// Scopes to ask for; `openid` is always asked for, whether listed or not.
    pub scopes: Vec<String>,
    /// The ID token claim that lists the person's groups.
    pub groups_claim: String,
}

impl ProviderConfig {
    /// A public client of `issuer` asking for the `openid` scope, with groups in the
    /// [`DEFAULT_GROUPS_CLAIM`].
    pub fn new(
        name: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        ProviderConfig {
            name: name.into(),
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            scopes: vec!["openid".to_owned()],
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
        }
    }

    /// The scopes to ask for, `openid` first and each once, with `extra` appended.
    pub(crate) fn scopes_with(&self, extra: &[String]) -> Vec<String> {
        let mut scopes = vec!["openid".to_owned()];
        for scope in self.scopes.iter().chain(extra) {
            if !scope.is_empty() && !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes
    }

    pub(crate) fn check(&self) -> Result<Url, IdpError> {
        let config = |reason: String| IdpError::Config {
            provider: self.name.clone(),
            reason,
        };
        if self.client_id.is_empty() {
            return Err(config("the client id is empty".to_owned()));
        }
        if self.groups_claim.is_empty() {
            return Err(config("the groups claim name is empty".to_owned()));
        }
        let issuer = Url::parse(&self.issuer)
            .map_err(|e| config(format!("the issuer {:?} is not a URL: {e}", self.issuer)))?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(config(format!(
                "the issuer {:?} must not have a query or fragment (OpenID Connect Discovery §2)",
                self.issuer
            )));
        }
        require_secure(&self.issuer, "issuer", &issuer)?;
        Ok(issuer)
    }
}

/// Whether `url` names this machine by its loopback address or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// https everywhere; plain http only for a provider on this machine (tests, local development).
pub(crate) fn require_secure(issuer: &str, what: &str, url: &Url) -> Result<(), IdpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(IdpError::InsecureEndpoint {
            issuer: issuer.to_owned(),
            endpoint: format!("{what} {url}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &str) -> ProviderConfig {
        ProviderConfig::new("corp", issuer, "app")
    }

    #[test]
    fn plain_http_is_accepted_only_on_the_loopback() {
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/realms/corp",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert!(config(ok).check().is_ok(), "{ok} is an acceptable issuer");
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.1",
            "http://127.0.0.2",
            "ftp://idp.example.com",
        ] {
            let err = config(bad).check().unwrap_err();
            assert!(
                matches!(err, IdpError::InsecureEndpoint { .. }),
                "{bad} must be refused as insecure, got {err}"
            );
        }
    }

    #[test]
    fn unusable_settings_are_named() {
        let err = config("not a url").check().unwrap_err();
        assert!(
            err.to_string().contains("\"not a url\" is not a URL"),
            "{err}"
        );
        let err = config("https://idp.example.com/?tenant=1")
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
        let mut empty = config("https://idp.example.com");
        empty.client_id.clear();
        assert!(empty
            .check()
            .unwrap_err()
            .to_string()
            .contains("client id is empty"));
    }

    #[test]
    fn openid_is_always_asked_for_once_and_first() {
        let mut c = config("https://idp.example.com");
        c.scopes = vec!["groups".into(), "openid".into(), "email".into()];
        assert_eq!(
            c.scopes_with(&["offline_access".into(), "groups".into()]),
            ["openid", "groups", "email", "offline_access"]
        );
    }
}
