//! The identity provider's discovery document (`.well-known/openid-configuration`): whatever a
//! provider, or someone between it and us, answers, `parse_discovery_document` returns a
//! checked document or an error, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_idp::parse_discovery_document;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

/// Plain http is acceptable only to this machine (written independently of the idp crate's
/// own check, which this target checks).
fn secure(u: &Url) -> bool {
    u.scheme() == "https"
        || (u.scheme() == "http"
            && match u.host() {
                Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
                Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
                Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            })
}

fuzz_target!(|data: &[u8]| {
    let at = Url::parse("https://idp.example.test/.well-known/openid-configuration").expect("a URL");
    if let Ok(m) = parse_discovery_document("https://idp.example.test", &at, data) {
        // What it accepts names the configured issuer and secure endpoints only.
        assert_eq!(m.issuer, "https://idp.example.test");
        for u in [&m.authorization_endpoint, &m.token_endpoint, &m.jwks_uri]
            .into_iter()
            .chain(m.device_authorization_endpoint.iter())
            .chain(m.revocation_endpoint.iter())
            .chain(m.introspection_endpoint.iter())
        {
            assert!(secure(u), "an insecure endpoint was accepted: {u}");
        }
        if !m.code_challenge_methods_supported.is_empty() {
            assert!(m.code_challenge_methods_supported.iter().any(|c| c == "S256"));
        }
    }
});
