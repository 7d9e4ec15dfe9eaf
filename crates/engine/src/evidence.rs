//! The evidence package of one request ([`breakglass_ledger::write_evidence`]): which entries of
//! the log it needs, with their inclusion proofs against the newest checkpoint verified here.

use std::collections::BTreeSet;

use breakglass_core::{EventBody, Refusal, RequestId};
use breakglass_ledger::{
    decode_all, inclusion_proof, verify_evidence, write_evidence, EvidenceEntry, EvidenceReport,
    Hash, VerifyOptions,
};

use crate::engine::Engine;
use crate::error::EngineError;

impl Engine {
    /// The evidence package of request `id` (see [`breakglass_ledger::write_evidence`]) against
    /// the newest checkpoint verified here, checked as an auditor would before it is returned,
    /// with what that check found. The request must be covered by that checkpoint.
    pub async fn evidence(&self, id: &RequestId) -> Result<(Vec<u8>, EvidenceReport), EngineError> {
        let request = self
            .state()
            .request(id)
            .ok_or(Refusal::UnknownRequest(*id))?;
        let (size, note) = self.latest_checkpoint().await?;
        let stored = self.store().entries(0, size).await?;
        let lines: Vec<&[u8]> = stored.iter().map(|s| s.bytes.as_slice()).collect();
        let entries = decode_all(&lines)
            .map_err(|(i, e)| EngineError::Tampered(format!("entry {i} no longer decodes: {e}")))?;
        // The request's chain: the requests it extends and those extending it.
        let chain: BTreeSet<RequestId> = self
            .state()
            .requests()
            .filter(|r| r.chain == request.chain)
            .map(|r| r.id)
            .collect();
        let mut people: BTreeSet<String> = BTreeSet::new();
        for r in chain.iter().filter_map(|c| self.state().request(c)) {
            people.insert(r.requester.clone());
            people.extend(r.decisions.iter().map(|d| d.by.clone()));
            people.extend(r.revoked_by.clone());
            if let Some(breakglass_core::Review::Done { by, .. }) = &r.review {
                people.insert(by.clone());
            }
        }
        let mut include = vec![false; entries.len()];
        let mut about = false;
        for (i, e) in entries.iter().enumerate() {
            let event = e.event();
            // Provider keys come from `provider_keys_recorded` and from the key sets recorded
            // with enrolments an admin or the broker made: sign-ins are checked against them.
            let keys_recorded = match &event.body {
                EventBody::IdentityEnrolled { identity } => {
                    identity.binding.oidc().is_some() && identity.name != event.actor
                }
                _ => false,
            };
            let keep = i == 0
                || keys_recorded
                || event.body.request().is_some_and(|r| chain.contains(r))
                || matches!(
                    event.body,
                    EventBody::PolicyApplied { .. } | EventBody::ProviderKeysRecorded { .. }
                );
            if let (true, EventBody::IdentityEnrolled { identity }) = (keys_recorded, &event.body) {
                people.insert(identity.name.clone());
            }
            if keep {
                include[i] = true;
                people.insert(event.actor.clone());
                about |= event.body.request() == Some(id);
            }
        }
        if !about {
            return Err(EngineError::Invalid(format!(
                "request {id} is not covered by the newest checkpoint yet (the broker covers \
                 members' entries on its next pass); export its evidence then"
            )));
        }
        // Enrolments and revocations of everyone involved, and of whoever enrolled or revoked
        // them, until no one new is named.
        loop {
            let before = people.len();
            for (i, e) in entries.iter().enumerate() {
                let event = e.event();
                let named = match &event.body {
                    EventBody::IdentityEnrolled { identity } => Some(&identity.name),
                    EventBody::IdentityRevoked { name, .. } => Some(name),
                    _ => None,
                };
                if named.is_some_and(|n| people.contains(n)) {
                    include[i] = true;
                    people.insert(event.actor.clone());
                }
            }
            if people.len() == before {
                break;
            }
        }
        let leaves: Vec<Hash> = entries.iter().map(|e| *e.leaf_hash()).collect();
        let proofs = include
            .iter()
            .enumerate()
            .filter(|(_, keep)| **keep)
            .map(|(i, _)| {
                inclusion_proof(&leaves, i as u64)
                    .map(|p| (i, p))
                    .map_err(|e| EngineError::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chosen: Vec<EvidenceEntry<'_>> = proofs
            .iter()
            .map(|(i, proof)| EvidenceEntry {
                index: *i as u64,
                bytes: lines[*i],
                proof,
            })
            .collect();
        let log_key = self.log_verifier().vkey();
        let origin = self.state().origin().unwrap_or_default().to_owned();
        let mut out = Vec::new();
        write_evidence(&mut out, &log_key, &origin, id, size, &chosen, &note)
            .map_err(|e| EngineError::Invalid(format!("writing the evidence: {e}")))?;
        // Checked as the auditor will check it, with the log key this app trusts.
        let report = verify_evidence(
            &out,
            &VerifyOptions {
                log_key: Some(self.log_verifier()),
                earlier_checkpoint: None,
            },
        )
        .map_err(|e| EngineError::Tampered(format!("the evidence of {id} does not verify: {e}")))?;
        Ok((out, report))
    }
}
