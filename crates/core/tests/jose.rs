//! ID token and JWS checks against keys made here: every accepted algorithm verifies, and every
//! way a token can be wrong is refused with the error that names it.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use breakglass_core::jose::{
    header, key_bound_nonce, nonce_binds_key, validate_id_token, verify, IdTokenCheck, JoseError,
    Jwks,
};
use breakglass_core::{PublicKey, Span, Timestamp};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1v15::SigningKey as RsaSigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.test";
const CLIENT: &str = "breakglass";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the test issuer, with its public JWK.
enum TestKey {
    Es256(EcdsaKeyPair),
    Rs256(Box<rsa::RsaPrivateKey>),
    EdDsa(ed25519_dalek::SigningKey),
}

impl TestKey {
    fn es256() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TestKey::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn alg(&self) -> &'static str {
        match self {
            TestKey::Es256(_) => "ES256",
            TestKey::Rs256(_) => "RS256",
            TestKey::EdDsa(_) => "EdDSA",
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            TestKey::Es256(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            TestKey::Rs256(k) => json!({"kty": "RSA", "kid": kid, "alg": "RS256",
                "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())}),
            TestKey::EdDsa(k) => json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": b64(k.verifying_key().as_bytes())}),
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Es256(k) => k
                .sign(&SystemRandom::new(), input)
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Rs256(k) => {
                let signer = RsaSigningKey::<rsa::sha2::Sha256>::new((**k).clone());
                signer
                    .sign_with_rng(&mut rand::thread_rng(), input)
                    .to_vec()
            }
            TestKey::EdDsa(k) => k.sign(input).to_bytes().to_vec(),
        }
    }
}

fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
}

fn jws(key: &TestKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn token(key: &TestKey, kid: &str, claims: &Value) -> String {
    jws(
        key,
        &json!({"alg": key.alg(), "kid": kid, "typ": "JWT"}),
        claims,
    )
}

fn set(keys: &[(&TestKey, &str)]) -> Jwks {
    let keys: Vec<Value> = keys.iter().map(|(k, kid)| k.jwk(kid)).collect();
    Jwks::parse(&json!({ "keys": keys }).to_string()).unwrap()
}

fn now() -> Timestamp {
    Timestamp::parse_lenient("2026-11-23T12:00:00Z").unwrap()
}

fn secs(t: Timestamp) -> i64 {
    t.unix_millis() / 1000
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "alice-123", "aud": CLIENT,
        "iat": secs(now()) - 10, "exp": secs(now()) + 300, "auth_time": secs(now()) - 20,
        "nonce": "n-1", "email": "alice@example.test", "groups": ["sre", "devs"]
    })
}

fn check() -> IdTokenCheck<'static> {
    IdTokenCheck {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: Some("n-1"),
        now: now(),
        leeway: Span::from_secs(60),
    }
}

#[test]
fn every_accepted_algorithm_verifies_and_reads_the_claims() {
    let keys = [
        TestKey::es256(),
        TestKey::Rs256(Box::new(rsa_key().clone())),
        TestKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&[9; 32])),
    ];
    for key in &keys {
        let jwks = set(&[(key, "k1")]);
        let got = validate_id_token(&token(key, "k1", &claims()), &jwks, &check())
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(got.sub, "alice-123");
        assert_eq!(got.aud, vec![CLIENT.to_owned()]);
        assert_eq!(got.auth_time.map(secs), Some(secs(now()) - 20));
        assert_eq!(got.string_claim("email"), Some("alice@example.test"));
        assert_eq!(got.groups("groups").unwrap(), vec!["sre", "devs"]);
        assert_eq!(got.nonce.as_deref(), Some("n-1"));
    }
}

#[test]
fn a_changed_payload_or_signature_does_not_verify() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let good = token(&key, "k1", &claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut forged = claims();
    forged["groups"] = json!(["admin"]);
    let swapped = format!("{head}.{}.{sig}", b64(forged.to_string().as_bytes()));
    assert_eq!(
        validate_id_token(&swapped, &jwks, &check()),
        Err(JoseError::BadSignature)
    );
    // Signed by another key that claims the same id.
    let other = TestKey::es256();
    assert_eq!(
        validate_id_token(&token(&other, "k1", &claims()), &jwks, &check()),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn unknown_key_ids_and_mismatched_key_algorithms_are_refused() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    assert_eq!(
        verify(&token(&key, "k2", &claims()), &jwks),
        Err(JoseError::UnknownKey {
            kid: Some("k2".into())
        })
    );
    // An RSA key published for RS256 only is not used for a PS256 token.
    let rsa = TestKey::Rs256(Box::new(rsa_key().clone()));
    let rsa_set = set(&[(&rsa, "r1")]);
    let ps = jws(&rsa, &json!({"alg": "PS256", "kid": "r1"}), &claims());
    assert_eq!(
        verify(&ps, &rsa_set),
        Err(JoseError::UnknownKey {
            kid: Some("r1".into())
        })
    );
    // Without a key id, a set with one fitting key is unambiguous; with two it is not.
    let no_kid = jws(&key, &json!({"alg": "ES256"}), &claims());
    assert!(verify(&no_kid, &jwks).is_ok());
    let second = TestKey::es256();
    assert_eq!(
        verify(&no_kid, &set(&[(&key, "k1"), (&second, "k2")])),
        Err(JoseError::UnknownKey { kid: None })
    );
}

#[test]
fn none_mac_and_critical_headers_are_refused() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let body = b64(claims().to_string().as_bytes());
    for alg in ["none", "HS256", "ES256K", "RS1"] {
        let t = format!(
            "{}.{body}.{}",
            b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes()),
            b64(b"x")
        );
        assert_eq!(
            verify(&t, &jwks),
            Err(JoseError::UnsupportedAlgorithm(alg.into())),
            "{alg}"
        );
    }
    let crit = jws(
        &key,
        &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1}),
        &claims(),
    );
    assert!(matches!(verify(&crit, &jwks), Err(JoseError::Malformed(m)) if m.contains("critical")));
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let good = token(&key, "k1", &claims());
    let padded = {
        let (h, rest) = good.split_once('.').unwrap();
        let h_std = STANDARD.encode(URL_SAFE_NO_PAD.decode(h).unwrap());
        format!("{h_std}.{rest}")
    };
    for bad in [
        String::new(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{good}."),
        padded,
        good.replacen('.', ".!", 1),
        "x".repeat(70_000),
    ] {
        assert!(
            matches!(verify(&bad, &jwks), Err(JoseError::Malformed(_))),
            "{:.40}",
            bad
        );
    }
    assert!(header(&good).is_ok());
}

#[test]
fn issuer_audience_and_authorised_party_are_checked() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        validate_id_token(&token(&key, "k1", &c), &jwks, &check())
    };
    assert_eq!(
        with(&|c| c["iss"] = json!("https://evil.example.test")),
        Err(JoseError::WrongIssuer {
            expected: ISSUER.into(),
            found: "https://evil.example.test".into()
        })
    );
    assert_eq!(
        with(&|c| c["iss"] = json!(format!("{ISSUER}/"))),
        Err(JoseError::WrongIssuer {
            expected: ISSUER.into(),
            found: format!("{ISSUER}/")
        }),
        "issuers compare exactly"
    );
    assert_eq!(
        with(&|c| c["aud"] = json!("another-app")),
        Err(JoseError::WrongAudience {
            client_id: CLIENT.into(),
            found: vec!["another-app".into()]
        })
    );
    assert_eq!(
        with(&|c| c["aud"] = json!([CLIENT, "another-app"])),
        Err(JoseError::WrongAuthorizedParty {
            client_id: CLIENT.into(),
            found: None
        }),
        "several audiences need azp"
    );
    assert!(with(&|c| {
        c["aud"] = json!([CLIENT, "another-app"]);
        c["azp"] = json!(CLIENT);
    })
    .is_ok());
    assert_eq!(
        with(&|c| c["azp"] = json!("another-app")),
        Err(JoseError::WrongAuthorizedParty {
            client_id: CLIENT.into(),
            found: Some("another-app".into())
        })
    );
    assert_eq!(
        with(&|c| c["sub"] = json!("")),
        Err(JoseError::MissingClaim("sub"))
    );
    assert_eq!(
        with(&|c| c["exp"] = json!("tomorrow")),
        Err(JoseError::MissingClaim("exp"))
    );
}

#[test]
fn expiry_issue_time_and_nonce_are_checked_with_leeway() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let t = token(&key, "k1", &claims());
    let exp = Timestamp::from_unix_millis((secs(now()) + 300) * 1000).unwrap();
    let at = |s: i64| IdTokenCheck {
        now: Timestamp::from_unix_millis(s * 1000).unwrap(),
        ..check()
    };
    assert!(validate_id_token(&t, &jwks, &at(secs(now()) + 359)).is_ok());
    let late = at(secs(now()) + 360);
    assert_eq!(
        validate_id_token(&t, &jwks, &late),
        Err(JoseError::Expired { exp, now: late.now })
    );
    let early = at(secs(now()) - 71);
    assert!(matches!(
        validate_id_token(&t, &jwks, &early),
        Err(JoseError::IssuedInFuture { .. })
    ));
    let other_nonce = IdTokenCheck {
        nonce: Some("n-2"),
        ..check()
    };
    assert_eq!(
        validate_id_token(&t, &jwks, &other_nonce),
        Err(JoseError::NonceMismatch)
    );
    let mut no_nonce = claims();
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(
        validate_id_token(&token(&key, "k1", &no_nonce), &jwks, &check()),
        Err(JoseError::NonceMismatch)
    );
    let unchecked = IdTokenCheck {
        nonce: None,
        ..check()
    };
    assert!(validate_id_token(&token(&key, "k1", &no_nonce), &jwks, &unchecked).is_ok());
}

#[test]
fn group_claims_must_be_strings() {
    let key = TestKey::es256();
    let jwks = set(&[(&key, "k1")]);
    let mut c = claims();
    c["groups"] = json!("sre");
    let got = validate_id_token(&token(&key, "k1", &c), &jwks, &check()).unwrap();
    assert_eq!(got.groups("groups").unwrap(), vec!["sre"]);
    assert_eq!(got.groups("roles").unwrap(), Vec::<String>::new());
    c["groups"] = json!(["sre", 7]);
    let got = validate_id_token(&token(&key, "k1", &c), &jwks, &check()).unwrap();
    assert_eq!(got.groups("groups"), Err(JoseError::MissingClaim("groups")));
}

#[test]
fn key_sets_skip_foreign_keys_refuse_weak_ones_and_merge_by_id() {
    let key = TestKey::es256();
    let mut enc = key.jwk("e1");
    enc["use"] = json!("enc");
    let symmetric = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h1"});
    let doc = json!({"keys": [key.jwk("k1"), enc, symmetric]}).to_string();
    let jwks = Jwks::parse(&doc).unwrap();
    assert_eq!(jwks.kids().collect::<Vec<_>>(), vec!["k1"]);
    assert_eq!(Jwks::parse(&jwks.to_json()).unwrap(), jwks, "round-trips");

    let small = json!({"keys": [{"kty": "RSA", "kid": "r", "n": b64(&[0xff; 128]), "e": "AQAB"}]});
    assert!(
        matches!(Jwks::parse(&small.to_string()), Err(JoseError::Malformed(m)) if m.contains("2048"))
    );
    for bad in [
        "",
        "[]",
        "{\"keys\": 3}",
        "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"AA\", \"y\": \"AA\"}]}",
    ] {
        assert!(Jwks::parse(bad).is_err(), "{bad}");
    }

    let rotated = TestKey::es256();
    let mut merged = set(&[(&key, "k1"), (&rotated, "k0")]);
    merged.merge(&set(&[(&rotated, "k1"), (&key, "k2")]));
    assert_eq!(merged.kids().collect::<Vec<_>>(), vec!["k1", "k0", "k2"]);
    assert!(
        verify(&token(&rotated, "k1", &claims()), &merged).is_ok(),
        "the newer key replaced the older under the same id"
    );
    assert_eq!(
        verify(&token(&key, "k1", &claims()), &merged),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn nonces_bind_one_key_and_are_fresh() {
    let a = PublicKey([1; 32]);
    let b = PublicKey([2; 32]);
    let n1 = key_bound_nonce(&a, [0; 16]);
    let n2 = key_bound_nonce(&a, [1; 16]);
    assert_ne!(n1, n2);
    assert!(nonce_binds_key(&n1, &a) && nonce_binds_key(&n2, &a));
    assert!(!nonce_binds_key(&n1, &b));
    let tag = n1.split_once('.').unwrap().0;
    for bad in [
        tag.to_owned(),
        format!("{tag}."),
        format!("{tag}.AAAA"),
        "x.y".into(),
    ] {
        assert!(!nonce_binds_key(&bad, &a), "{bad}");
    }
}
