//! The rules for people of identity providers: enrolment from a provider's ID token, the
//! provider keys recorded in the log, fresh sign-ins behind decisions, and offline approvals.

use std::collections::BTreeSet;

use super::{LogState, Status, VerifiedEvent};
use crate::error::Refusal;
use crate::event::{Event, EventBody};
use crate::id::RequestId;
use crate::identity::{IdentityRecord, OidcBinding, PublicKey};
use crate::jose::{nonce_binds_key, validate_id_token, IdTokenCheck, IdTokenClaims, Jwks};
use crate::names::name_problem;
use crate::offline::{OfflineApproval, MAX_OFFLINE_APPROVAL_TTL_SECS};
use crate::policy::ProviderPolicy;
use crate::span::Span;
use crate::time::Timestamp;

/// Approvals a break-glass activation needs when its requester could not present a fresh
/// sign-in (the provider may be down): one, which may be an offline approval.
pub const BREAK_GLASS_OFFLINE_QUORUM: u32 = 1;

/// Allowed clock difference between the log and an identity provider.
pub const SIGN_IN_LEEWAY: Span = Span::from_secs(60);

/// A verified sign-in presented with an event.
#[derive(Debug, Clone)]
pub(super) struct SignIn {
    pub(super) provider: String,
    pub(super) groups: BTreeSet<String>,
    pub(super) auth_time: Timestamp,
}

impl LogState {
    /// Checks a provider's ID token presented with `ev` by its actor: signed by a key recorded
    /// for the actor's provider, for this client, about the actor's subject, issued for a
    /// sign-in bound to the actor's key, and no older than the policy's `max_auth_age`.
    pub(super) fn check_sign_in(
        &self,
        ev: VerifiedEvent<'_>,
        token: &str,
        action: &str,
    ) -> Result<SignIn, Refusal> {
        let e = ev.event;
        let identity = self
            .identities
            .get(&e.actor)
            .ok_or_else(|| Refusal::UnknownIdentity(e.actor.clone()))?;
        let Some(binding) = identity.record.binding.oidc() else {
            return Err(Refusal::Malformed(format!(
                "{} is a local identity; only people enrolled through an identity provider \
                 present sign-in tokens",
                e.actor
            )));
        };
        let provider = self.current_provider(&e.actor, &binding.provider, action)?;
        let invalid = |why: String| Refusal::InvalidSignIn {
            actor: e.actor.clone(),
            provider: binding.provider.clone(),
            why,
        };
        let keys = self
            .provider_keys
            .get(&binding.provider)
            .ok_or_else(|| invalid("no signing keys of the provider are recorded".into()))?;
        let claims = check_token(token, keys, provider, e.time, ev.signer).map_err(invalid)?;
        if claims.sub != binding.subject {
            return Err(invalid(format!(
                "it is about subject {:?}, not {:?}",
                claims.sub, binding.subject
            )));
        }
        let auth_time = claims.auth_time.ok_or_else(|| {
            invalid("it does not say when the person signed in (auth_time)".into())
        })?;
        self.require_recent(&e.actor, action, auth_time, e.time)?;
        let groups = claims
            .groups(&provider.groups_claim)
            .map_err(|err| invalid(err.to_string()))?;
        Ok(SignIn {
            provider: binding.provider.clone(),
            groups: groups.into_iter().collect(),
            auth_time,
        })
    }

    /// The sign-in an approval by `ev`'s actor needs: a provider's person must present a
    /// fresh one; a local identity presents none.
    pub(super) fn approval_sign_in(
        &self,
        ev: VerifiedEvent<'_>,
        auth: Option<&str>,
    ) -> Result<Option<SignIn>, Refusal> {
        let e = ev.event;
        let provider = self
            .identities
            .get(&e.actor)
            .and_then(|i| i.record.binding.oidc())
            .map(|b| b.provider.clone());
        match (auth, provider) {
            (Some(token), _) => self.check_sign_in(ev, token, "approve").map(Some),
            (None, Some(provider)) => Err(Refusal::SignInRequired {
                actor: e.actor.clone(),
                action: "approve".into(),
                why: format!(
                    "approvals by people of provider {provider} need a sign-in no older than \
                     the policy's max_auth_age"
                ),
            }),
            (None, None) => Ok(None),
        }
    }

    /// Remembers the groups and time of a verified sign-in.
    pub(super) fn record_sign_in(&mut self, name: &str, sign_in: SignIn) {
        if let Some(identity) = self.identities.get_mut(name) {
            identity.provider_groups = Some(sign_in.groups);
            identity.last_sign_in = Some(sign_in.auth_time);
        }
    }

    fn current_provider(
        &self,
        actor: &str,
        provider: &str,
        action: &str,
    ) -> Result<&ProviderPolicy, Refusal> {
        self.policy()
            .and_then(|p| p.policy.provider(provider))
            .ok_or_else(|| Refusal::SignInRequired {
                actor: actor.to_owned(),
                action: action.to_owned(),
                why: format!("identity provider {provider} is not in the policy in force"),
            })
    }

    fn require_recent(
        &self,
        actor: &str,
        action: &str,
        signed_in: Timestamp,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let max_age = self.max_auth_age();
        let age_ms = now.millis_since(signed_in);
        if age_ms > max_age.as_millis() {
            return Err(Refusal::SignInRequired {
                actor: actor.to_owned(),
                action: action.to_owned(),
                why: format!(
                    "the last sign-in was at {signed_in}, more than max_auth_age {max_age} before \
                     {now}"
                ),
            });
        }
        if age_ms < -SIGN_IN_LEEWAY.as_millis() {
            return Err(Refusal::Malformed(format!(
                "the sign-in time {signed_in} lies after the event time {now}"
            )));
        }
        Ok(())
    }

    /// Enrolment of a provider's person with the provider's ID token and keys, recorded by an
    /// administrator or the broker, or by the person with the key enrolled (a team member
    /// signing in: [`is_own_enrolment`]). Re-enrolment of the same subject replaces the key.
    ///
    /// The key set an administrator or the broker records with an enrolment is trusted (they
    /// fetched it from the provider) and joins the provider's recorded keys. A person's own
    /// enrolment is their word only: its token must also verify against keys an administrator
    /// or the broker recorded, carry a nonce naming the enrolled key (a browser sign-in), and
    /// its key set is not recorded.
    pub(super) fn enrol_from_provider(
        &mut self,
        ev: VerifiedEvent<'_>,
        rec: &IdentityRecord,
        binding: &OidcBinding,
    ) -> Result<(), Refusal> {
        let e = ev.event;
        let own = is_own_enrolment(e, ev.signer);
        if !own {
            self.require_admin_or_broker(e, "enrol identities")?;
        }
        if let Some(p) = name_problem(&rec.name) {
            return Err(Refusal::InvalidName(p));
        }
        if !rec.groups.is_empty() {
            return Err(Refusal::Malformed(
                "a provider's person has no enrolment groups: the provider's groups apply".into(),
            ));
        }
        let provider = self.current_provider(&rec.name, &binding.provider, "enrol")?;
        let invalid = |why: String| Refusal::InvalidSignIn {
            actor: rec.name.clone(),
            provider: binding.provider.clone(),
            why,
        };
        if binding.issuer != provider.issuer {
            return Err(invalid(format!(
                "the enrolment names issuer {:?}; the policy's is {:?}",
                binding.issuer, provider.issuer
            )));
        }
        let keys = Jwks::parse(&binding.jwks).map_err(|err| invalid(err.to_string()))?;
        let claims =
            check_token(&binding.id_token, &keys, provider, e.time, &rec.key).map_err(invalid)?;
        if own {
            let recorded = self.provider_keys.get(&binding.provider).ok_or_else(|| {
                invalid(
                    "no signing keys of the provider are recorded in the log yet (the broker \
                     records them)"
                        .into(),
                )
            })?;
            check_token(&binding.id_token, recorded, provider, e.time, &rec.key).map_err(
                |why| {
                    invalid(format!(
                        "checked against the provider keys recorded in the log: {why}"
                    ))
                },
            )?;
            if claims.nonce.is_none() {
                return Err(invalid(
                    "a person's own enrolment needs a sign-in whose nonce names the new key (a \
                     browser sign-in; the device flow carries none)"
                        .into(),
                ));
            }
        }
        if claims.sub != binding.subject {
            return Err(invalid(format!(
                "it is about subject {:?}, but the enrolment names {:?}",
                claims.sub, binding.subject
            )));
        }
        let name = if provider.name_claim == "sub" {
            Some(claims.sub.as_str())
        } else {
            claims.string_claim(&provider.name_claim)
        };
        if name != Some(rec.name.as_str()) {
            return Err(invalid(format!(
                "its {:?} claim is {name:?}, not the enrolled name {:?}",
                provider.name_claim, rec.name
            )));
        }
        let signed_in = claims.auth_time.unwrap_or(claims.iat);
        self.require_recent(&rec.name, "enrol", signed_in, e.time)?;
        let groups: BTreeSet<String> = claims
            .groups(&provider.groups_claim)
            .map_err(|err| invalid(err.to_string()))?
            .into_iter()
            .collect();
        if let Some(holder) = self.keys.get(&rec.key) {
            return Err(Refusal::AlreadyExists(format!(
                "that key already belongs to identity {holder:?}; every identity needs its own key"
            )));
        }
        let previous_key = match self.identities.get(&rec.name) {
            None => None,
            Some(existing) if existing.revoked_at.is_some() => {
                return Err(Refusal::AlreadyExists(format!(
                    "identity {:?} was revoked; a revoked name is never enrolled again",
                    rec.name
                )))
            }
            Some(existing) => match existing.record.binding.oidc() {
                Some(b) if b.provider == binding.provider && b.subject == binding.subject => {
                    Some(existing.record.key)
                }
                _ => {
                    return Err(Refusal::AlreadyExists(format!(
                        "identity {:?} is already enrolled for someone else",
                        rec.name
                    )))
                }
            },
        };
        if let Some(other) = self.identities.values().find(|i| {
            i.record.name != rec.name
                && i.record
                    .binding
                    .oidc()
                    .is_some_and(|b| b.provider == binding.provider && b.subject == binding.subject)
        }) {
            return Err(Refusal::AlreadyExists(format!(
                "subject {:?} of provider {} is already enrolled as {:?}",
                binding.subject, binding.provider, other.record.name
            )));
        }
        if let Some(old) = previous_key {
            self.keys.remove(&old);
        }
        self.insert_identity(rec, e);
        if !own {
            self.provider_keys
                .entry(binding.provider.clone())
                .or_default()
                .merge(&keys);
        }
        self.record_sign_in(
            &rec.name,
            SignIn {
                provider: binding.provider.clone(),
                groups,
                auth_time: signed_in,
            },
        );
        Ok(())
    }

    /// An administrator or the broker records a provider's current signing keys.
    pub(super) fn provider_keys_recorded(
        &mut self,
        e: &Event,
        provider: &str,
        jwks: &str,
    ) -> Result<(), Refusal> {
        self.require_admin_or_broker(e, "record identity provider keys")?;
        self.current_provider(&e.actor, provider, "record its keys")?;
        let keys = Jwks::parse(jwks).map_err(|err| Refusal::InvalidSignIn {
            actor: e.actor.clone(),
            provider: provider.to_owned(),
            why: format!("its key set does not read: {err}"),
        })?;
        if keys.is_empty() {
            return Err(Refusal::Malformed(format!(
                "the key set of provider {provider} has no usable signing key"
            )));
        }
        self.provider_keys
            .entry(provider.to_owned())
            .or_default()
            .merge(&keys);
        Ok(())
    }

    fn require_admin_or_broker(&self, e: &Event, action: &str) -> Result<(), Refusal> {
        if self.is_admin(&e.actor) || self.broker.as_deref() == Some(e.actor.as_str()) {
            Ok(())
        } else {
            Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: action.into(),
                why: "only an admin or the broker may".into(),
            })
        }
    }

    /// The requester or the broker imports an approval an approver signed offline.
    pub(super) fn offline_approval_imported(
        &mut self,
        e: &Event,
        request: &RequestId,
        token: &str,
    ) -> Result<(), Refusal> {
        let invalid = |why: String| Refusal::InvalidOfflineApproval(why);
        let (approval, signature) =
            OfflineApproval::decode(token).map_err(|err| invalid(err.to_string()))?;
        if approval.request != *request {
            return Err(invalid(format!(
                "the token approves {}, not {request}",
                approval.request
            )));
        }
        if self.origin.as_deref() != Some(approval.log.as_str()) {
            return Err(invalid(format!(
                "the token is for log {:?}, not this one",
                approval.log
            )));
        }
        let r = self
            .requests
            .get(request)
            .ok_or(Refusal::UnknownRequest(*request))?;
        let importer_may = r.requester == e.actor || self.broker.as_deref() == Some(&e.actor);
        if !importer_may {
            return Err(Refusal::NotPermitted {
                actor: e.actor.clone(),
                action: format!("import an offline approval of {request}"),
                why: "only the requester or the broker imports offline approvals".into(),
            });
        }
        if !r.break_glass {
            return Err(invalid(format!(
                "{request} is not a break-glass request; offline approvals are accepted for \
                 break-glass requests only"
            )));
        }
        let approver = self
            .identities
            .get(&approval.approver)
            .ok_or_else(|| invalid(format!("approver {:?} is not enrolled", approval.approver)))?;
        if !approval.verify(&signature, &approver.record.key) {
            return Err(invalid(format!(
                "the signature is not {}'s (a forged token, or one signed with a replaced key)",
                approval.approver
            )));
        }
        let lifetime_ms = approval.expires.millis_since(approval.issued);
        let max_ttl = Span::from_secs(MAX_OFFLINE_APPROVAL_TTL_SECS);
        if lifetime_ms <= 0 || lifetime_ms > max_ttl.as_millis() {
            return Err(invalid(format!(
                "it is valid from {} to {}; offline approvals may last at most {}",
                approval.issued, approval.expires, max_ttl
            )));
        }
        if approval.issued.millis_since(e.time) > SIGN_IN_LEEWAY.as_millis() {
            return Err(invalid(format!(
                "it claims to be signed at {}, after its import at {}",
                approval.issued, e.time
            )));
        }
        if e.time >= approval.expires {
            return Err(invalid(format!(
                "it expired at {} (imported at {})",
                approval.expires, e.time
            )));
        }
        self.check_decision(
            &approval.approver,
            request,
            &approval.request_digest,
            e.time,
            true,
            None,
        )?;
        debug_assert_eq!(
            self.requests.get(request).map(|r| r.status),
            Some(Status::Pending)
        );
        self.record_decision(request, &approval.approver, e.time, true, None, true)
    }
}

/// The checks common to every provider token: signature, issuer, audience, expiry at `now`, and
/// a nonce bound to `key`.
/// Whether `e` is a person enrolling their own key from a provider sign-in: an
/// `identity_enrolled` event with a provider binding whose actor is the identity enrolled and
/// whose signer is the key enrolled (a team member signing in, who holds no system key).
pub(super) fn is_own_enrolment(e: &Event, signer: &PublicKey) -> bool {
    matches!(
        &e.body,
        EventBody::IdentityEnrolled { identity }
            if identity.name == e.actor
                && identity.key == *signer
                && identity.binding.oidc().is_some()
    )
}

fn check_token(
    token: &str,
    keys: &Jwks,
    provider: &ProviderPolicy,
    now: Timestamp,
    key: &PublicKey,
) -> Result<IdTokenClaims, String> {
    let claims = validate_id_token(
        token,
        keys,
        &IdTokenCheck {
            issuer: &provider.issuer,
            client_id: &provider.client_id,
            nonce: None,
            now,
            leeway: SIGN_IN_LEEWAY,
        },
    )
    .map_err(|err| err.to_string())?;
    match &claims.nonce {
        Some(nonce) if nonce_binds_key(nonce, key) => Ok(claims),
        None if provider.device_flow => Ok(claims),
        None => Err(format!(
            "it carries no nonce binding it to this identity's key (a device-flow sign-in, which \
             provider {} does not accept: see device_flow in the policy)",
            provider.name
        )),
        Some(_) => Err("it was not issued for a sign-in bound to this identity's key".into()),
    }
}
