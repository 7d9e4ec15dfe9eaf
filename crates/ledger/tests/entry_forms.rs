//! Every kind of event added for identity providers signs into canonical bytes and decodes back
//! to the same event (plain serde output must be the canonical form: `Entry::sign` checks it in
//! debug builds, and decoding relies on it).

use breakglass_core::{
    Binding, Event, EventBody, IdentityRecord, OidcBinding, PublicKey, RequestId, Span, Timestamp,
    EVENT_FORMAT,
};
use breakglass_ledger::{to_canonical_value, Entry};
use ed25519_dalek::SigningKey;

fn event(body: EventBody) -> Event {
    Event {
        actor: "broker".into(),
        body,
        log: "test.example/log".into(),
        time: Timestamp::parse_lenient("2026-11-23T12:00:00Z").unwrap(),
        v: EVENT_FORMAT,
    }
}

#[test]
fn provider_events_round_trip_canonically() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let id = RequestId::from_random([4; 10]);
    let bodies = [
        EventBody::IdentityEnrolled {
            identity: IdentityRecord {
                binding: Binding::Oidc(Box::new(OidcBinding {
                    id_token: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into(),
                    issuer: "https://idp.example.test".into(),
                    jwks: "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k\\\"1\"}]}".into(),
                    provider: "corp".into(),
                    subject: "sub-ünïcode".into(),
                })),
                groups: Default::default(),
                key: PublicKey([7; 32]),
                name: "bob".into(),
            },
        },
        EventBody::ProviderKeysRecorded {
            jwks: "{\"keys\":[]}".into(),
            provider: "corp".into(),
        },
        EventBody::OfflineApprovalImported {
            request: id,
            token: "bgoa1.abc.def".into(),
        },
        EventBody::RequestApproved {
            auth: Some("eyJ.e30.sig".into()),
            comment: None,
            request: id,
            request_digest: "00".repeat(32),
        },
        EventBody::AccessRequested {
            auth: Some("eyJ.e30.sig".into()),
            break_glass: true,
            credential: None,
            duration: Span::from_secs(600),
            extends: None,
            policy_version: 1,
            reason: "incident".into(),
            request: id,
            role: "default".into(),
            target: "db".into(),
            ticket: None,
        },
    ];
    for body in bodies {
        let kind = body.kind();
        let entry = Entry::sign(event(body), &key).unwrap();
        let value: serde_json::Value = serde_json::from_slice(entry.bytes()).unwrap();
        assert_eq!(
            to_canonical_value(&value).unwrap(),
            entry.bytes(),
            "{kind}: the signed bytes are canonical"
        );
        let decoded = Entry::decode(entry.bytes()).unwrap();
        assert_eq!(decoded.event(), entry.event(), "{kind}");
        decoded.verify_signature().unwrap();
    }
}
