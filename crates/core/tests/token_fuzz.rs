//! The readers of identity-provider tokens, key sets and offline approval tokens take outside
//! input: whatever they are given they answer with a value or an error, never a panic; and a
//! valid token with any single byte changed never verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use breakglass_core::jose::{header, peek_claims, validate_id_token, verify, IdTokenCheck, Jwks};
use breakglass_core::offline::OfflineApproval;
use breakglass_core::{PublicKey, RequestId, Span, Timestamp};
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use serde_json::json;

const ISSUER: &str = "https://idp.example.test";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn jwks() -> Jwks {
    let x = URL_SAFE_NO_PAD.encode(key().verifying_key().as_bytes());
    Jwks::parse(
        &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]}).to_string(),
    )
    .expect("a valid key set")
}

fn now() -> Timestamp {
    Timestamp::parse_lenient("2026-11-23T12:00:00Z").expect("time")
}

/// A valid EdDSA ID token.
fn token() -> String {
    let secs = now().unix_millis() / 1000;
    let header = json!({"alg": "EdDSA", "kid": "k1"});
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "app", "iat": secs,
        "exp": secs + 300, "auth_time": secs, "nonce": "n"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn check() -> IdTokenCheck<'static> {
    IdTokenCheck {
        issuer: ISSUER,
        client_id: "app",
        nonce: Some("n"),
        now: now(),
        leeway: Span::from_secs(60),
    }
}

fn offline_token() -> String {
    OfflineApproval {
        approver: "bob".into(),
        expires: Timestamp::parse_lenient("2026-11-23T12:10:00Z").expect("time"),
        issued: now(),
        log: "example.test/log".into(),
        request: RequestId::from_random([3; 10]),
        request_digest: "ab".repeat(32),
    }
    .sign(&key())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_never_a_panic(text in "\\PC{0,300}", dots in "[A-Za-z0-9_.-]{0,200}") {
        for t in [&text, &dots] {
            let _ = header(t);
            let _ = peek_claims(t);
            let _ = verify(t, &jwks());
            let _ = validate_id_token(t, &jwks(), &check());
            let _ = Jwks::parse(t);
            let _ = OfflineApproval::decode(t);
        }
    }

    #[test]
    fn arbitrary_json_key_sets_are_read_or_refused(keys in proptest::collection::vec(
        (proptest::sample::select(vec!["RSA", "EC", "OKP", "oct", ""]),
         proptest::sample::select(vec!["P-256", "P-384", "Ed25519", "X25519", ""]),
         "[A-Za-z0-9_-]{0,90}", "[A-Za-z0-9_-]{0,90}"), 0..4)) {
        let keys: Vec<_> = keys
            .into_iter()
            .map(|(kty, crv, x, y)| json!({"kty": kty, "crv": crv, "x": x, "y": y, "n": x, "e": y}))
            .collect();
        if let Ok(set) = Jwks::parse(&json!({ "keys": keys }).to_string()) {
            let _ = verify(&token(), &set);
        }
    }

    #[test]
    fn any_changed_byte_of_a_valid_id_token_is_refused(at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let good = token();
        prop_assert!(validate_id_token(&good, &jwks(), &check()).is_ok());
        let mut bytes = good.into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(validate_id_token(&changed, &jwks(), &check()).is_err());
    }

    #[test]
    fn any_changed_byte_of_an_offline_approval_is_refused(at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let good = offline_token();
        let public = PublicKey(key().verifying_key().to_bytes());
        let mut bytes = good.into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        // Surrounding whitespace is allowed when pasted; anything else must fail to read or to
        // verify.
        prop_assume!(changed.trim() != offline_token());
        if let Ok((approval, sig)) = OfflineApproval::decode(&changed) {
            prop_assert!(!approval.verify(&sig, &public), "a changed token verified: {changed}");
        }
    }
}
