//! Rebuilding a log's state from its entries, checking every signature and every rule.

use breakglass_core::{LogState, Refusal, VerifiedEvent};

use crate::bundle::STREAM_BATCH;
use crate::entry::{verify_signatures, Entry, EntryError};
use crate::pipeline::{check_entries, Stop};

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

/// Checks entry lines (log indexes `first_index..`) on every core — that each is a canonical
/// entry whose signature verifies — and replays them onto `state` in log order, calling `each`
/// with every entry right after it is applied. Stops at the first failure in log order: a bad
/// entry or a broken rule (as a [`Violation`]) or an error from `each`. The work is split as
/// in the streamed bundle verifier: signatures a batch at a time on every core, each entry
/// decoded just before it is replayed, so the decoded log is never held whole. On error
/// `state` is unspecified; callers discard it.
pub fn replay_lines<E: From<Violation>>(
    state: &mut LogState,
    lines: &[&[u8]],
    first_index: u64,
    mut each: impl FnMut(u64, &Entry<&[u8]>) -> Result<(), E>,
) -> Result<(), E> {
    let read = |buf: &mut Vec<u8>, i: u64| {
        // `check_entries` reads exactly the indexes below the count it is given.
        let line = usize::try_from(i).ok().and_then(|i| lines.get(i));
        buf.extend_from_slice(line.copied().unwrap_or_default());
        Ok::<(), E>(())
    };
    let apply = |i: u64, entry: &Entry<&[u8]>| {
        let index = first_index + i;
        apply_checked(state, entry, index)?;
        each(index, entry)
    };
    check_entries(lines.len() as u64, STREAM_BATCH, read, apply).map_err(|stop| match stop {
        Stop::Entry { index, error } => E::from(Violation::Entry {
            index: first_index + index,
            error,
        }),
        Stop::Other(e) => e,
    })
}

/// Checks one entry's signature and then its rules, and applies it; on error `state` is
/// unchanged (the rules refuse an event before changing anything), so the caller can stop at
/// the first bad entry of a tail and keep everything before it.
pub fn replay_one<B: AsRef<[u8]> + Sync>(
    state: &mut LogState,
    entry: &Entry<B>,
    index: u64,
) -> Result<(), Violation> {
    verify_signatures(std::slice::from_ref(entry))
        .map_err(|(_, error)| Violation::Entry { index, error })?;
    apply_checked(state, entry, index)
}

/// Applies the event of entry `index`, whose encoding and signature were checked; on a broken
/// rule `state` is unchanged.
pub(crate) fn apply_checked<B: AsRef<[u8]>>(
    state: &mut LogState,
    entry: &Entry<B>,
    index: u64,
) -> Result<(), Violation> {
    let event = entry.event();
    state
        .apply(VerifiedEvent {
            event,
            signer: entry.key(),
            leaf_hash: entry.leaf_hash(),
        })
        .map_err(|refusal| Violation::Rule {
            index,
            kind: event.body.kind(),
            actor: event.actor.clone(),
            refusal: Box::new(refusal),
        })
}
