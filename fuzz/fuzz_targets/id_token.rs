//! The identity-provider token and key-set readers: JWK sets, JWS headers and ID tokens.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_core::jose::{header, peek_claims, validate_id_token, IdTokenCheck, Jwks};
use breakglass_core::{Span, Timestamp};
use libfuzzer_sys::fuzz_target;

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Jwks::parse(text);
    let _ = header(text);
    let _ = peek_claims(text);
    let jwks = Jwks::parse(JWKS).expect("a valid key set");
    let check = IdTokenCheck {
        issuer: "https://idp.example.test",
        client_id: "app",
        nonce: None,
        now: Timestamp::from_unix_millis(1_790_000_000_000).expect("in range"),
        leeway: Span::from_secs(60),
    };
    let _ = validate_id_token(text, &jwks, &check);
});
