//! The rules for people of an identity provider, replayed on a log state: enrolment from the
//! provider's ID token, fresh sign-ins behind approvals and break-glass, group membership read
//! from the latest sign-in, provider key rotation, and offline approvals with every misuse
//! refused. A refused event changes nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use breakglass_core::jose::key_bound_nonce;
use breakglass_core::offline::OfflineApproval;
use breakglass_core::{
    Binding, Event, EventBody, IdentityRecord, LogState, OidcBinding, PublicKey, Refusal,
    RequestId, Span, Status, Timestamp, VerifiedEvent, EVENT_FORMAT,
};
use ed25519_dalek::SigningKey;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "test.example/log";
const ISSUER: &str = "https://idp.example.test";
const CLIENT: &str = "breakglass";

const POLICY: &str = r#"
version = 1
max_auth_age = "15m"
[groups]
admin = ["admin"]
sre = ["carol"]
[providers.corp]
issuer = "https://idp.example.test"
client_id = "breakglass"
groups = { "sre-team" = ["sre"] }
[targets.db]
max_duration = "1h"
request_ttl = "30m"
extension_cap = "2h"
approvers = { groups = ["sre"], quorum = 1 }
break_glass = { max_duration = "30m" }
connector = { kind = "command", grant = ["/bin/true"], revoke = ["/bin/true"] }
"#;

/// The identity provider's signing key.
struct Idp {
    key: EcdsaKeyPair,
    kid: String,
}

impl Idp {
    fn new(kid: &str) -> Idp {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Idp {
            key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
            kid: kid.into(),
        }
    }

    fn jwks(&self) -> String {
        let p = self.key.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])}]})
        .to_string()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn secs(t: Timestamp) -> i64 {
    t.unix_millis() / 1000
}

/// Claims of a sign-in by `user` (subject `sub-USER`) for `key`, signed in at `at`.
fn claims(user: &str, key: &SigningKey, at: Timestamp, groups: &[&str]) -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": format!("sub-{user}"),
        "iat": secs(at), "exp": secs(at) + 3600, "auth_time": secs(at),
        "nonce": key_bound_nonce(&public(key), [secs(at) as u8; 16]),
        "preferred_username": user, "groups": groups,
    })
}

fn public(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

struct World {
    state: LogState,
    time: Timestamp,
    idp: Idp,
    admin: SigningKey,
    broker: SigningKey,
    bob: SigningKey,
    carol: SigningKey,
    dave: SigningKey,
    erin: SigningKey,
    entries: u64,
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn local(name: &str, key: &SigningKey, groups: &[&str]) -> IdentityRecord {
    IdentityRecord {
        binding: Binding::Local,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        key: public(key),
        name: name.into(),
    }
}

impl World {
    /// admin + broker, the policy, carol (local sre), erin (local, no group), then bob and dave
    /// enrolled from the provider (bob in sre-team, dave in no group).
    fn new() -> World {
        let mut w = World {
            state: LogState::new(),
            time: Timestamp::parse_lenient("2026-11-23T12:00:00Z").unwrap(),
            idp: Idp::new("k1"),
            admin: key(1),
            broker: key(2),
            bob: key(3),
            carol: key(4),
            dave: key(5),
            erin: key(6),
            entries: 0,
        };
        let (admin, broker) = (w.admin.clone(), w.broker.clone());
        w.ok(
            "admin",
            &admin,
            EventBody::LogCreated {
                admin: local("admin", &admin, &["admin"]),
                broker: local("broker", &broker, &[]),
                log_key: "unused".into(),
                origin: ORIGIN.into(),
            },
        );
        w.ok(
            "admin",
            &admin,
            EventBody::PolicyApplied {
                source: POLICY.into(),
                version: 1,
            },
        );
        for (name, k) in [("carol", w.carol.clone()), ("erin", w.erin.clone())] {
            w.ok(
                "admin",
                &admin,
                EventBody::IdentityEnrolled {
                    identity: local(name, &k, &[]),
                },
            );
        }
        let (bob, dave) = (w.bob.clone(), w.dave.clone());
        let body = w.enrolment("bob", &bob, &["sre-team"]);
        w.ok("broker", &broker, body);
        let body = w.enrolment("dave", &dave, &[]);
        w.ok("broker", &broker, body);
        w
    }

    fn enrolment(&self, user: &str, key: &SigningKey, groups: &[&str]) -> EventBody {
        let token = self.idp.sign(&claims(user, key, self.time, groups));
        EventBody::IdentityEnrolled {
            identity: IdentityRecord {
                binding: Binding::Oidc(Box::new(OidcBinding {
                    id_token: token,
                    issuer: ISSUER.into(),
                    jwks: self.idp.jwks(),
                    provider: "corp".into(),
                    subject: format!("sub-{user}"),
                })),
                groups: Default::default(),
                key: public(key),
                name: user.into(),
            },
        }
    }

    /// A fresh sign-in token of `user` with `key` at the current time.
    fn sign_in(&self, user: &str, key: &SigningKey, groups: &[&str]) -> String {
        self.idp.sign(&claims(user, key, self.time, groups))
    }

    fn event(&self, actor: &str, body: EventBody) -> Event {
        Event {
            actor: actor.into(),
            body,
            log: ORIGIN.into(),
            time: self.time,
            v: EVENT_FORMAT,
        }
    }

    fn apply(
        &mut self,
        actor: &str,
        key: &SigningKey,
        body: EventBody,
    ) -> Result<[u8; 32], Refusal> {
        let event = self.event(actor, body);
        let leaf: [u8; 32] = Sha256::digest(format!("{}:{event:?}", self.entries)).into();
        self.state.apply(VerifiedEvent {
            event: &event,
            signer: &public(key),
            leaf_hash: &leaf,
        })?;
        self.entries += 1;
        Ok(leaf)
    }

    fn ok(&mut self, actor: &str, key: &SigningKey, body: EventBody) -> [u8; 32] {
        let kind = body.kind();
        self.apply(actor, key, body)
            .unwrap_or_else(|e| panic!("{actor}'s {kind} should be accepted: {e}"))
    }

    /// Applies an event that must be refused, and checks that nothing changed.
    fn refused(&mut self, actor: &str, key: &SigningKey, body: EventBody) -> Refusal {
        let before = snapshot(&self.state);
        let kind = body.kind();
        let err = match self.apply(actor, key, body) {
            Ok(_) => panic!("{actor}'s {kind} should be refused"),
            Err(e) => e,
        };
        assert_eq!(
            snapshot(&self.state),
            before,
            "a refused {kind} changed the state"
        );
        err
    }

    fn later(&mut self, secs: u64) {
        self.time = self.time.checked_add(Span::from_secs(secs)).unwrap();
    }

    /// dave asks for db access; returns the request id and its digest.
    fn request(&mut self, n: u8, break_glass: bool, auth: Option<String>) -> (RequestId, String) {
        let id = RequestId::from_random([n; 10]);
        let dave = self.dave.clone();
        self.ok("dave", &dave, access_request(id, break_glass, auth));
        let digest = self.state.request(&id).unwrap().digest.clone();
        (id, digest)
    }

    fn approval(id: RequestId, digest: &str, auth: Option<String>) -> EventBody {
        EventBody::RequestApproved {
            auth,
            comment: None,
            request: id,
            request_digest: digest.into(),
        }
    }

    fn offline(&self, approver: &str, id: RequestId, digest: &str, ttl: u64) -> OfflineApproval {
        OfflineApproval {
            approver: approver.into(),
            expires: self.time.checked_add(Span::from_secs(ttl)).unwrap(),
            issued: self.time,
            log: ORIGIN.into(),
            request: id,
            request_digest: digest.into(),
        }
    }
}

/// dave's request for 10 minutes of db access.
fn access_request(id: RequestId, break_glass: bool, auth: Option<String>) -> EventBody {
    EventBody::AccessRequested {
        auth,
        break_glass,
        credential: None,
        duration: Span::from_secs(600),
        extends: None,
        policy_version: 1,
        reason: "incident".into(),
        request: id,
        role: "default".into(),
        target: "db".into(),
        ticket: None,
    }
}

fn binding(r: &mut IdentityRecord) -> &mut OidcBinding {
    match &mut r.binding {
        Binding::Oidc(b) => b,
        _ => unreachable!(),
    }
}

fn snapshot(state: &LogState) -> String {
    let identities: Vec<_> = state.identities().collect();
    let requests: Vec<_> = state.requests().collect();
    let keys: Vec<Vec<String>> = ["corp"]
        .iter()
        .map(|p| {
            state
                .provider_keys(p)
                .map(|k| k.kids().map(str::to_owned).collect())
                .unwrap_or_default()
        })
        .collect();
    format!("{} {identities:?} {requests:?} {keys:?}", state.len())
}

#[test]
fn enrolment_binds_a_provider_subject_to_a_key_and_reads_its_groups() {
    let w = World::new();
    let bob = w.state.identity("bob").expect("enrolled");
    let binding = bob.record.binding.oidc().expect("bound to the provider");
    assert_eq!(binding.subject, "sub-bob");
    assert_eq!(bob.enrolled_by, "broker");
    assert_eq!(bob.last_sign_in, Some(w.time));
    assert!(w.state.in_group("bob", "sre"), "sre-team maps to sre");
    assert_eq!(w.state.groups_of("bob"), ["sre".to_owned()].into());
    assert!(w.state.groups_of("dave").is_empty());
    assert_eq!(
        w.state
            .provider_keys("corp")
            .unwrap()
            .kids()
            .collect::<Vec<_>>(),
        ["k1"]
    );
}

#[test]
fn bad_enrolments_are_refused() {
    let mut w = World::new();
    let (admin, broker, carol, frank) =
        (w.admin.clone(), w.broker.clone(), w.carol.clone(), key(7));
    let good = |w: &World| w.enrolment("frank", &frank, &[]);
    let with = |w: &World, f: &dyn Fn(&mut IdentityRecord)| {
        let EventBody::IdentityEnrolled { mut identity } = good(w) else {
            unreachable!()
        };
        f(&mut identity);
        EventBody::IdentityEnrolled { identity }
    };

    // A sign-in made for another key (the nonce names bob's key).
    let other_key = w.idp.sign(&claims("frank", &w.bob, w.time, &[]));
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| binding(r).id_token = other_key.clone()),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("key")),
        "{e}"
    );
    // The name claim is someone else's.
    let e = w.refused("broker", &broker, with(&w, &|r| r.name = "mallory".into()));
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("preferred_username")),
        "{e}"
    );
    // Another subject than the token's.
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| binding(r).subject = "sub-bob".into()),
    );
    assert!(matches!(e, Refusal::InvalidSignIn { .. }), "{e}");
    // Another issuer than the policy's.
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| binding(r).issuer = "https://evil.test".into()),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("issuer")),
        "{e}"
    );
    // Keys that did not sign the token (a forged key set with another key).
    let forged_keys = Idp::new("k1").jwks();
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| binding(r).jwks = forged_keys.clone()),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("signature")),
        "{e}"
    );
    // Groups of its own instead of the provider's.
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| {
            r.groups.insert("sre".into());
        }),
    );
    assert!(matches!(e, Refusal::Malformed(_)), "{e}");
    // Not recorded by an admin or the broker.
    let e = w.refused("carol", &carol, good(&w));
    assert!(matches!(e, Refusal::NotPermitted { .. }), "{e}");
    // A sign-in older than max_auth_age.
    let stale = good(&w);
    w.later(16 * 60);
    let e = w.refused("broker", &broker, stale);
    assert!(matches!(e, Refusal::SignInRequired { .. }), "{e}");
    // The same subject (bob's) under a second name.
    let mut twin = claims("frank", &frank, w.time, &[]);
    twin["sub"] = json!("sub-bob");
    let twin = w.idp.sign(&twin);
    let e = w.refused(
        "broker",
        &broker,
        with(&w, &|r| {
            binding(r).id_token = twin.clone();
            binding(r).subject = "sub-bob".into();
        }),
    );
    assert!(
        matches!(e, Refusal::AlreadyExists(ref why) if why.contains("bob")),
        "{e}"
    );
    // Admins may record an enrolment too.
    let body = good(&w);
    w.ok("admin", &admin, body);
}

#[test]
fn re_enrolment_of_the_same_subject_replaces_the_key() {
    let mut w = World::new();
    let (broker, old, new) = (w.broker.clone(), w.bob.clone(), key(9));
    w.later(60);
    let body = w.enrolment("bob", &new, &["sre-team"]);
    w.ok("broker", &broker, body);
    assert_eq!(w.state.identity("bob").unwrap().record.key, public(&new));
    let (id, digest) = w.request(1, false, None);
    let stale_key_token = w.sign_in("bob", &old, &["sre-team"]);
    let e = w.refused(
        "bob",
        &old,
        World::approval(id, &digest, Some(stale_key_token)),
    );
    assert!(matches!(e, Refusal::WrongKey { .. }), "{e}");
    let token = w.sign_in("bob", &new, &["sre-team"]);
    w.ok("bob", &new, World::approval(id, &digest, Some(token)));
}

#[test]
fn approvals_by_provider_people_need_a_fresh_sign_in_bound_to_their_key() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let (id, digest) = w.request(1, false, None);
    w.later(20 * 60);

    let e = w.refused("bob", &bob, World::approval(id, &digest, None));
    assert!(matches!(e, Refusal::SignInRequired { .. }), "{e}");
    // The enrolment sign-in is 20 minutes old, older than max_auth_age; so is this one.
    let fresh = w.sign_in("bob", &bob, &["sre-team"]);
    let mut stale = claims("bob", &bob, w.time, &["sre-team"]);
    stale["auth_time"] = json!(secs(w.time) - 16 * 60);
    let e = w.refused(
        "bob",
        &bob,
        World::approval(id, &digest, Some(w.idp.sign(&stale))),
    );
    assert!(
        matches!(e, Refusal::SignInRequired { ref why, .. } if why.contains("max_auth_age")),
        "{e}"
    );
    // dave's token presented by bob.
    let daves = w.sign_in("dave", &w.dave.clone(), &["sre-team"]);
    let e = w.refused("bob", &bob, World::approval(id, &digest, Some(daves)));
    assert!(matches!(e, Refusal::InvalidSignIn { .. }), "{e}");
    // A token signed by a key the log does not know.
    let stranger = Idp::new("k1").sign(&claims("bob", &bob, w.time, &["sre-team"]));
    let e = w.refused("bob", &bob, World::approval(id, &digest, Some(stranger)));
    assert!(matches!(e, Refusal::InvalidSignIn { .. }), "{e}");
    // An audience that is another application's.
    let mut foreign = claims("bob", &bob, w.time, &["sre-team"]);
    foreign["aud"] = json!("other-app");
    let e = w.refused(
        "bob",
        &bob,
        World::approval(id, &digest, Some(w.idp.sign(&foreign))),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("audience")),
        "{e}"
    );

    // A device-flow sign-in (no nonce) where the policy does not accept the device flow.
    let mut no_nonce = claims("bob", &bob, w.time, &["sre-team"]);
    no_nonce.as_object_mut().unwrap().remove("nonce");
    let e = w.refused(
        "bob",
        &bob,
        World::approval(id, &digest, Some(w.idp.sign(&no_nonce))),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("device_flow")),
        "{e}"
    );

    w.ok("bob", &bob, World::approval(id, &digest, Some(fresh)));
    let r = w.state.request(&id).unwrap();
    assert_eq!(r.status, Status::Approved);
    assert!(!r.decisions[0].offline);
    assert_eq!(w.state.identity("bob").unwrap().last_sign_in, Some(w.time));
}

#[test]
fn someone_removed_from_the_provider_group_can_no_longer_approve() {
    let mut w = World::new();
    let bob = w.bob.clone();
    let (id, digest) = w.request(1, false, None);
    w.later(60);
    let removed = w.sign_in("bob", &bob, &["devs"]);
    let e = w.refused("bob", &bob, World::approval(id, &digest, Some(removed)));
    assert!(matches!(e, Refusal::NotApprover { .. }), "{e}");
    assert!(
        w.state.in_group("bob", "sre"),
        "a refused event records no sign-in"
    );
    // A request with a fresh sign-in records the person's current groups.
    let dave = w.dave.clone();
    let current = w.sign_in("dave", &dave, &["sre-team"]);
    w.request(2, false, Some(current));
    assert!(w.state.in_group("dave", "sre"));
}

#[test]
fn local_identities_approve_without_and_never_with_a_provider_token() {
    let mut w = World::new();
    let carol = w.carol.clone();
    let (id, digest) = w.request(1, false, None);
    let token = w.sign_in("carol", &carol, &["sre-team"]);
    let e = w.refused("carol", &carol, World::approval(id, &digest, Some(token)));
    assert!(matches!(e, Refusal::Malformed(_)), "{e}");
    w.ok("carol", &carol, World::approval(id, &digest, None));
}

#[test]
fn rotated_provider_keys_count_once_recorded_by_the_broker_or_an_admin() {
    let mut w = World::new();
    let (bob, broker, carol) = (w.bob.clone(), w.broker.clone(), w.carol.clone());
    let (id, digest) = w.request(1, false, None);
    w.idp = Idp::new("k2");
    let token = w.sign_in("bob", &bob, &["sre-team"]);
    let e = w.refused(
        "bob",
        &bob,
        World::approval(id, &digest, Some(token.clone())),
    );
    assert!(
        matches!(e, Refusal::InvalidSignIn { ref why, .. } if why.contains("k2")),
        "{e}"
    );
    let record = EventBody::ProviderKeysRecorded {
        jwks: w.idp.jwks(),
        provider: "corp".into(),
    };
    let e = w.refused("carol", &carol, record.clone());
    assert!(matches!(e, Refusal::NotPermitted { .. }), "{e}");
    let e = w.refused(
        "broker",
        &broker,
        EventBody::ProviderKeysRecorded {
            jwks: "{\"keys\": []}".into(),
            provider: "corp".into(),
        },
    );
    assert!(matches!(e, Refusal::Malformed(_)), "{e}");
    let e = w.refused(
        "broker",
        &broker,
        EventBody::ProviderKeysRecorded {
            jwks: w.idp.jwks(),
            provider: "other".into(),
        },
    );
    assert!(matches!(e, Refusal::SignInRequired { .. }), "{e}");
    w.ok("broker", &broker, record);
    w.ok("bob", &bob, World::approval(id, &digest, Some(token)));
}

#[test]
fn break_glass_without_a_fresh_sign_in_waits_for_one_approval() {
    let mut w = World::new();
    let dave = w.dave.clone();
    let fresh = w.sign_in("dave", &dave, &[]);
    let (active, _) = w.request(1, true, Some(fresh));
    assert_eq!(w.state.request(&active).unwrap().status, Status::Approved);
    w.later(20 * 60);
    let (pending, _) = w.request(2, true, None);
    let r = w.state.request(&pending).unwrap();
    assert_eq!((r.status, r.quorum), (Status::Pending, 1));
    assert_eq!(r.review, Some(breakglass_core::Review::Required));
    let mut stale = claims("dave", &dave, w.time, &[]);
    stale["auth_time"] = json!(secs(w.time) - 16 * 60);
    let id = RequestId::from_random([3; 10]);
    let e = w.refused(
        "dave",
        &dave,
        access_request(id, true, Some(w.idp.sign(&stale))),
    );
    assert!(matches!(e, Refusal::SignInRequired { .. }), "{e}");
}

#[test]
fn offline_approvals_complete_a_break_glass_request_and_every_misuse_is_refused() {
    let mut w = World::new();
    let (bob, carol, dave, erin, broker) = (
        w.bob.clone(),
        w.carol.clone(),
        w.dave.clone(),
        w.erin.clone(),
        w.broker.clone(),
    );
    let (normal, normal_digest) = w.request(1, false, None);
    let (id, digest) = w.request(2, true, None);
    let (other, other_digest) = w.request(3, true, None);
    let import =
        |id: RequestId, token: String| EventBody::OfflineApprovalImported { request: id, token };
    let invalid = |e: &Refusal, what: &str| {
        assert!(
            matches!(e, Refusal::InvalidOfflineApproval(why) if why.contains(what)),
            "{e}"
        );
    };

    // Bound to another request: by id, or by digest.
    let for_other = w.offline("bob", other, &other_digest, 600).sign(&bob);
    let e = w.refused("dave", &dave, import(id, for_other));
    invalid(&e, "approves");
    let wrong_digest = w.offline("bob", id, &other_digest, 600).sign(&bob);
    let e = w.refused("dave", &dave, import(id, wrong_digest));
    assert!(matches!(e, Refusal::DigestMismatch(_)), "{e}");
    // Not a break-glass request.
    let e = w.refused(
        "dave",
        &dave,
        import(
            normal,
            w.offline("bob", normal, &normal_digest, 600).sign(&bob),
        ),
    );
    invalid(&e, "break-glass");
    // Signed by someone other than the named approver.
    let e = w.refused(
        "dave",
        &dave,
        import(id, w.offline("bob", id, &digest, 600).sign(&erin)),
    );
    invalid(&e, "signature");
    // Signed by a non-approver, or by the requester.
    let e = w.refused(
        "dave",
        &dave,
        import(id, w.offline("erin", id, &digest, 600).sign(&erin)),
    );
    assert!(matches!(e, Refusal::NotApprover { .. }), "{e}");
    let e = w.refused(
        "dave",
        &dave,
        import(id, w.offline("dave", id, &digest, 600).sign(&dave)),
    );
    assert!(matches!(e, Refusal::SelfDecision { .. }), "{e}");
    // Valid for too long, or for another log.
    let e = w.refused(
        "dave",
        &dave,
        import(id, w.offline("bob", id, &digest, 3600).sign(&bob)),
    );
    invalid(&e, "at most");
    let mut elsewhere = w.offline("bob", id, &digest, 600);
    elsewhere.log = "other.example/log".into();
    let e = w.refused("dave", &dave, import(id, elsewhere.sign(&bob)));
    invalid(&e, "log");
    // Imported by someone who is neither the requester nor the broker.
    let token = w.offline("bob", id, &digest, 600).sign(&bob);
    let e = w.refused("carol", &carol, import(id, token.clone()));
    assert!(matches!(e, Refusal::NotPermitted { .. }), "{e}");
    // Expired before its import.
    let expiring = w.offline("carol", other, &other_digest, 60).sign(&carol);
    w.later(61);
    let e = w.refused("broker", &broker, import(other, expiring));
    invalid(&e, "expired");
    // Garbage.
    let e = w.refused("dave", &dave, import(id, "bgoa1.AAAA.BBBB".into()));
    invalid(&e, "");

    w.ok("dave", &dave, import(id, token.clone()));
    let r = w.state.request(&id).unwrap();
    assert_eq!(r.status, Status::Approved);
    assert!(r.decisions[0].offline);
    assert_eq!(r.decisions[0].by, "bob");
    // Replayed: the request is no longer pending.
    let e = w.refused("broker", &broker, import(id, token));
    assert!(matches!(e, Refusal::WrongState { .. }), "{e}");
}

#[test]
fn revocation_ends_an_identity_for_good() {
    let mut w = World::new();
    let (admin, broker, carol, bob) = (
        w.admin.clone(),
        w.broker.clone(),
        w.carol.clone(),
        w.bob.clone(),
    );
    let revoke = |name: &str| EventBody::IdentityRevoked {
        name: name.into(),
        reason: "left the company".into(),
    };
    let e = w.refused("carol", &carol, revoke("bob"));
    assert!(
        matches!(e, Refusal::NotPermitted { .. }),
        "only admins revoke: {e}"
    );
    let e = w.refused("admin", &admin, revoke("broker"));
    assert!(
        matches!(e, Refusal::NotPermitted { .. }),
        "not the broker: {e}"
    );
    let e = w.refused("admin", &admin, revoke("admin"));
    assert!(
        matches!(e, Refusal::NotPermitted { .. }),
        "not oneself: {e}"
    );
    let e = w.refused("admin", &admin, revoke("nobody"));
    assert!(matches!(e, Refusal::UnknownIdentity(_)), "{e}");
    let e = w.refused(
        "admin",
        &admin,
        EventBody::IdentityRevoked {
            name: "bob".into(),
            reason: " ".into(),
        },
    );
    assert!(
        matches!(e, Refusal::InvalidText { .. }),
        "a reason is required: {e}"
    );

    let (id, digest) = w.request(1, false, None);
    w.ok("admin", &admin, revoke("bob"));
    assert!(!w.state.in_group("bob", "sre") && w.state.groups_of("bob").is_empty());
    // Nothing bob signs counts any more, fresh sign-in or not.
    let token = w.sign_in("bob", &bob, &["sre-team"]);
    let e = w.refused("bob", &bob, World::approval(id, &digest, Some(token)));
    assert!(matches!(e, Refusal::Revoked { .. }), "{e}");
    let e = w.refused("admin", &admin, revoke("bob"));
    assert!(matches!(e, Refusal::Revoked { .. }), "revoked once: {e}");
    // Signing in again does not bring him back, with the old key or a new one.
    let body = w.enrolment("bob", &key(12), &["sre-team"]);
    let e = w.refused("broker", &broker, body);
    assert!(
        matches!(e, Refusal::AlreadyExists(ref why) if why.contains("revoked")),
        "{e}"
    );
    w.ok("carol", &carol, World::approval(id, &digest, None));
}

#[test]
fn a_person_enrols_their_own_key_only_with_a_token_the_recorded_provider_keys_verify() {
    let mut w = World::new();
    let frank = key(10);
    // frank, new to the log, signs his own enrolment with the key it enrols.
    let body = w.enrolment("frank", &frank, &["sre-team"]);
    w.ok("frank", &frank, body);
    let enrolled = w.state.identity("frank").expect("enrolled");
    assert_eq!(enrolled.record.key, public(&frank));
    assert_eq!(enrolled.enrolled_by, "frank");
    assert!(
        w.state.in_group("frank", "sre"),
        "groups come from the token"
    );

    // bob re-enrols himself with a new key (a new machine): the old key signs nothing more.
    let (old, new) = (w.bob.clone(), key(11));
    w.later(60);
    let body = w.enrolment("bob", &new, &["sre-team"]);
    w.ok("bob", &new, body);
    assert_eq!(w.state.identity("bob").unwrap().record.key, public(&new));
    let (id, digest) = w.request(1, false, None);
    let token = w.sign_in("bob", &old, &["sre-team"]);
    let e = w.refused("bob", &old, World::approval(id, &digest, Some(token)));
    assert!(matches!(e, Refusal::WrongKey { .. }), "{e}");

    // A forger with a key set and tokens of their own: the embedded key set is only their
    // word, and the log's recorded keys do not verify the token. Nothing is recorded.
    let honest = w.idp.kid.clone();
    let honest_idp = std::mem::replace(&mut w.idp, Idp::new("forged"));
    let (gina, body) = (key(12), w.enrolment("gina", &key(12), &["sre-team"]));
    let e = w.refused("gina", &gina, body);
    assert!(
        matches!(&e, Refusal::InvalidSignIn { why, .. } if why.contains("recorded in the log")),
        "{e}"
    );
    // The same key set recorded by the broker (after a rotation) does count.
    let broker = w.broker.clone();
    let rotated = EventBody::ProviderKeysRecorded {
        jwks: w.idp.jwks(),
        provider: "corp".into(),
    };
    w.ok("broker", &broker, rotated);
    let body = w.enrolment("gina", &gina, &[]);
    w.ok("gina", &gina, body);
    w.idp = honest_idp;
    assert_eq!(w.idp.kid, honest);

    // A device-flow token (no nonce) never enrols its holder's own key, even where the policy
    // accepts the device flow: the token alone does not name the key.
    let admin = w.admin.clone();
    w.ok(
        "admin",
        &admin,
        EventBody::PolicyApplied {
            source: POLICY.replace("version = 1", "version = 2").replace(
                "client_id = \"breakglass\"",
                "client_id = \"breakglass\"\ndevice_flow = true",
            ),
            version: 2,
        },
    );
    let harry = key(13);
    let mut body = w.enrolment("harry", &harry, &[]);
    if let EventBody::IdentityEnrolled { identity } = &mut body {
        let mut c = claims("harry", &harry, w.time, &[]);
        c.as_object_mut().unwrap().remove("nonce");
        binding(identity).id_token = w.idp.sign(&c);
    }
    let e = w.refused("harry", &harry, body);
    assert!(
        matches!(&e, Refusal::InvalidSignIn { why, .. } if why.contains("nonce names the new key")),
        "{e}"
    );

    // Signed by any key but the one enrolled, it is an enrolment by someone else: only an
    // admin or the broker may record those.
    let body = w.enrolment("harry", &harry, &[]);
    let e = w.refused("harry", &key(14), body.clone());
    assert!(matches!(e, Refusal::UnknownIdentity(_)), "{e}");
    let erin = w.erin.clone();
    let e = w.refused("erin", &erin, body);
    assert!(matches!(e, Refusal::NotPermitted { .. }), "{e}");
    // A token naming another key (its nonce) is refused too.
    let mut body = w.enrolment("harry", &harry, &[]);
    if let EventBody::IdentityEnrolled { identity } = &mut body {
        binding(identity).id_token = w.sign_in("harry", &key(15), &[]);
    }
    let e = w.refused("harry", &harry, body);
    assert!(matches!(e, Refusal::InvalidSignIn { .. }), "{e}");
    // A revoked name stays revoked.
    w.ok(
        "admin",
        &admin,
        EventBody::IdentityRevoked {
            name: "frank".into(),
            reason: "left".into(),
        },
    );
    let again = key(16);
    let body = w.enrolment("frank", &again, &["sre-team"]);
    let e = w.refused("frank", &again, body);
    assert!(matches!(e, Refusal::AlreadyExists(_)), "{e}");
}
