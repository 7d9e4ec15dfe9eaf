//! Rebuilding a log's state from its entries, checking every signature and every rule.

use breakglass_core::{LogState, Refusal, VerifiedEvent};

use crate::entry::{verify_signatures, Entry, EntryError};

/// The first entry that broke the log, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// The entry's signature or encoding is bad.
    #[error("entry {index}: {error}")]
    Entry {
        /// Position in the log.
        index: u64,
        /// What is wrong.
        error: EntryError,
    },
    /// The entry is well signed but breaks a rule of the lifecycle or the policy in force.
    #[error("entry {index} ({kind} by {actor}) breaks a rule: {refusal}")]
    Rule {
        /// Position in the log.
        index: u64,
        /// Event type.
        kind: &'static str,
        /// Who signed it.
        actor: String,
        /// The rule it broke.
        refusal: Box<Refusal>,
    },
}

impl Violation {
    /// Position of the offending entry.
    pub fn index(&self) -> u64 {
        match self {
            Violation::Entry { index, .. } | Violation::Rule { index, .. } => *index,
        }
    }
}

/// Verifies all signatures (batched, on every core) and then replays the events in order.
pub fn replay(entries: &[Entry]) -> Result<LogState, Violation> {
    let mut state = LogState::new();
    replay_onto(&mut state, entries, 0)?;
    Ok(state)
}

/// Like [`replay`], continuing from `state`, where `entries[0]` sits at `first_index`.
/// On error `state` holds the events before the offending one.
pub fn replay_onto(
    state: &mut LogState,
    entries: &[Entry],
    first_index: u64,
) -> Result<(), Violation> {
    let sig_failure = verify_signatures(entries).err();
    for (i, entry) in entries.iter().enumerate() {
        let index = first_index + i as u64;
        if let Some((bad, error)) = &sig_failure {
            if *bad == i {
                return Err(Violation::Entry {
                    index,
                    error: error.clone(),
                });
            }
        }
        let ev = VerifiedEvent {
            event: entry.event(),
            signer: entry.key(),
            leaf_hash: entry.leaf_hash(),
        };
        state.apply(ev).map_err(|refusal| Violation::Rule {
            index,
            kind: entry.event().body.kind(),
            actor: entry.event().actor.clone(),
            refusal: Box::new(refusal),
        })?;
    }
    Ok(())
}
