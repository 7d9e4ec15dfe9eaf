//! Team mode: members witness the log. Each member cosigns the newest checkpoint it verified
//! (C2SP `tlog-cosignature` v1, with its identity's key, as `<origin>/witness/<identity>`) and
//! keeps its newest cosignature in the shared database; on every read it checks the others'.
//! A cosignature says "as of this time, this is the largest consistent tree I have seen", so a
//! log that showed two members different histories (a fork: possible for whoever holds the
//! log's key, or rewrites the database between their reads) is caught by whichever member reads
//! the other's cosignature: its root at that size is not the one the member verified. A
//! member's own cosignature that goes missing or is replaced is caught by that member.
//!
//! The database is not trusted with cosignatures: each is verified against the witness's
//! enrolled key. One signed with a key the identity no longer has (it re-enrolled) is skipped;
//! one of a size this member has not verified yet is checked once it has.

use std::collections::HashMap;

use breakglass_ledger::{root_of, Checkpoint, CosignatureVerifier, Cosigner, Hash};
use breakglass_store::StoredCosignature;
use ed25519_dalek::VerifyingKey;

use crate::engine::{Actor, Engine};
use crate::error::EngineError;

/// Roots of past sizes kept for checking cosignatures, at most.
const ROOT_CACHE: usize = 1024;

/// What an engine holds for witnessing.
#[derive(Debug, Default)]
pub(crate) struct Witnessing {
    /// This member's cosigner and the identity it belongs to, when it witnesses.
    cosigner: Option<(Cosigner, String)>,
    /// The largest size this process cosigned and stored.
    cosigned: u64,
    /// The newest checkpoint verified here.
    newest: Option<Checkpoint>,
    /// Every leaf hash read, in order (team mode): roots of past sizes are computed from them.
    pub(crate) leaves: Vec<Hash>,
    /// Roots of past sizes computed so far.
    roots: HashMap<u64, Hash>,
    /// Cosignatures found consistent, by witness: (size, signature line).
    checked: HashMap<String, (u64, String)>,
}

impl Witnessing {
    /// Notes a verified checkpoint.
    pub(crate) fn verified(&mut self, cp: Checkpoint) {
        if self.newest.as_ref().is_none_or(|n| n.size < cp.size) {
            self.newest = Some(cp);
        }
    }

    /// Forgets the leaves (the in-memory copy is being read again).
    pub(crate) fn drop_leaves(&mut self) {
        self.leaves.clear();
    }

    /// The root of the first `size` leaves, if they are held here.
    fn root_at(&mut self, size: u64) -> Option<Hash> {
        if let Some(cp) = self.newest.as_ref().filter(|cp| cp.size == size) {
            return Some(cp.root);
        }
        if let Some(root) = self.roots.get(&size) {
            return Some(*root);
        }
        let n = usize::try_from(size).ok()?;
        let root = root_of(self.leaves.get(..n)?);
        if self.roots.len() >= ROOT_CACHE {
            self.roots.clear();
        }
        self.roots.insert(size, root);
        Some(root)
    }
}

/// What checking one stored cosignature found.
enum Found {
    /// It verifies and matches the history verified here.
    Consistent,
    /// It verifies (or cannot be checked yet) but covers more than was verified here.
    Later,
    /// It was signed with a key its identity does not hold now.
    OtherKey,
}

pub use breakglass_ledger::witness_name;

impl Engine {
    /// Makes `actor` this engine's witness: from the next read on, it cosigns the newest
    /// checkpoint it verified (team mode; while `actor` is enrolled with its key).
    pub fn set_witness(&mut self, actor: &Actor) -> Result<(), EngineError> {
        let origin = self.state().origin().unwrap_or_default().to_owned();
        let name = witness_name(&origin, actor.name());
        let cosigner = actor.cosigner(&name)?;
        self.witness.cosigner = Some((cosigner, actor.name().to_owned()));
        // What this process stored was another witness's, or another key's: watched afresh.
        self.witness.cosigned = 0;
        Ok(())
    }

    /// Checks every stored cosignature against the history verified here, then cosigns the
    /// newest checkpoint verified here when it is newer than this witness's stored one.
    pub(crate) async fn witness_pass(&mut self) -> Result<(), EngineError> {
        let rows = self.store().cosignatures().await?;
        for row in &rows {
            if self.witness.checked.get(&row.witness) == Some(&(row.size, row.signature.clone())) {
                continue;
            }
            if let Found::Consistent = self.check_cosignature(row)? {
                self.witness
                    .checked
                    .insert(row.witness.clone(), (row.size, row.signature.clone()));
            }
        }
        self.cosign(&rows).await
    }

    fn check_cosignature(&mut self, row: &StoredCosignature) -> Result<Found, EngineError> {
        let origin = self.state().origin().unwrap_or_default().to_owned();
        let prefix = witness_name(&origin, "");
        let tampered = |why: String| {
            Err(EngineError::Tampered(format!(
                "the cosignature of {:?} in the shared database {why}",
                row.witness
            )))
        };
        let Some(name) = row.witness.strip_prefix(&prefix) else {
            return tampered(format!("names no witness of log {origin}"));
        };
        let Some(identity) = self.state().identity(name) else {
            if row.size > self.covered() {
                // Its enrolment may lie in what this member has not read yet.
                return Ok(Found::Later);
            }
            return tampered(format!("is by {name}, who is not enrolled in the log"));
        };
        let key = VerifyingKey::from_bytes(&identity.record.key.0)
            .map_err(|e| EngineError::Tampered(format!("{name}'s enrolled key: {e}")))?;
        let verifier = CosignatureVerifier::new(row.witness.clone(), key)
            .map_err(|e| EngineError::Tampered(format!("{name}'s witness key: {e}")))?;
        match verifier.claims(&row.signature) {
            Ok(true) => {}
            Ok(false) => return Ok(Found::OtherKey),
            Err(e) => return tampered(format!("is malformed: {e}")),
        }
        let cp = match Checkpoint::from_body(&row.checkpoint) {
            Ok(cp) if cp.size == row.size && cp.origin == origin => cp,
            Ok(_) => return tampered(format!("does not cosign log {origin} at {}", row.size)),
            Err(e) => return tampered(format!("holds no checkpoint: {e}")),
        };
        if let Err(e) = verifier.verify(&cp, &row.signature) {
            return tampered(format!("does not verify: {e}"));
        }
        if cp.size > self.covered() {
            return Ok(Found::Later);
        }
        match self.witness.root_at(cp.size) {
            None => Ok(Found::Later),
            Some(root) if root == cp.root => Ok(Found::Consistent),
            Some(_) => tampered(format!(
                "says {name} verified the log at size {} with a root other than the one this \
                 app verified at that size: the log showed {name} another history (a fork)",
                cp.size
            )),
        }
    }

    /// Cosigns the newest checkpoint verified here and stores it, unless this witness's stored
    /// cosignature is as new; and checks that this witness's stored cosignature is still the
    /// one this process stored, or a newer one of its own.
    async fn cosign(&mut self, rows: &[StoredCosignature]) -> Result<(), EngineError> {
        let Some((cosigner, identity)) = &self.witness.cosigner else {
            return Ok(());
        };
        let verifier = cosigner.verifier();
        let enrolled = self.state().identity(identity).is_some_and(|i| {
            i.record.key.0 == *verifier.verifying_key().as_bytes() && i.revoked_at.is_none()
        });
        if !enrolled {
            return Ok(());
        }
        let stored = rows.iter().find(|r| r.witness == cosigner.name());
        let stored_size = stored.map_or(0, |r| r.size);
        let own = stored.is_some_and(|r| {
            verifier.claims(&r.signature) == Ok(true)
                && Checkpoint::from_body(&r.checkpoint)
                    .is_ok_and(|cp| verifier.verify(&cp, &r.signature).is_ok())
        });
        if self.witness.cosigned > 0 && (stored_size < self.witness.cosigned || !own) {
            return Err(EngineError::Tampered(format!(
                "this app's cosignature of the log at size {} was removed from the shared \
                 database or replaced",
                self.witness.cosigned
            )));
        }
        let Some(cp) = self.witness.newest.clone() else {
            return Ok(());
        };
        if cp.size <= stored_size.max(self.witness.cosigned) {
            return Ok(());
        }
        let time = u64::try_from(self.now().unix_millis() / 1000).unwrap_or(0);
        let signature = cosigner
            .cosign(&cp, time)
            .map_err(|e| EngineError::Invalid(format!("cosigning checkpoint {}: {e}", cp.size)))?;
        let row = StoredCosignature {
            witness: cosigner.name().to_owned(),
            size: cp.size,
            checkpoint: cp.to_body(),
            signature,
        };
        if self.store().put_cosignature(&row).await? {
            self.witness.cosigned = cp.size;
        }
        Ok(())
    }
}
