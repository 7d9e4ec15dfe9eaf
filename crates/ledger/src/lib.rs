#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Signed log primitives for Breakglass: signed event entries, the RFC 6962 Merkle tree and its
//! inclusion and consistency proofs, C2SP signed-note checkpoints, and the
//! canonical JSON that signed records are encoded in.
//!
//! This crate owns the bytes that get hashed and signed and the rules for
//! checking them. It never does I/O and never reads a clock or the OS random
//! number generator: keys, time and storage are passed in by callers. Its
//! parsers take outside input, so they never panic on it and never accept
//! non-canonical or ambiguous encodings: a signature or a root hash always
//! has exactly one reading.
//!
//! ```
//! use breakglass_ledger::{inclusion_proof, leaf_hash, root_of, verify_inclusion};
//!
//! let leaves: Vec<_> = ["grant", "approve", "expire"]
//!     .iter()
//!     .map(|event| leaf_hash(event.as_bytes()))
//!     .collect();
//! let root = root_of(&leaves);
//!
//! let proof = inclusion_proof(&leaves, 1)?;
//! verify_inclusion(1, 3, &leaves[1], &proof, &root)?;
//! // The same proof does not place another leaf there.
//! assert!(verify_inclusion(1, 3, &leaves[0], &proof, &root).is_err());
//! # Ok::<(), breakglass_ledger::ProofError>(())
//! ```

mod bundle;
mod canonical;
mod entry;
mod evidence;
mod merkle;
mod note;
mod pipeline;
mod replay;
mod witness;

pub use bundle::{
    verify_bundle, verify_bundle_stream, verify_bundle_stream_in_chunks, write_bundle, BundleError,
    BundleReport, BundleWriter, VerifyOptions,
};
pub use canonical::{
    parse_canonical, to_canonical_value, to_canonical_vec, CanonicalError, MAX_JSON_DEPTH,
};
pub use entry::{
    decode_all, verify_signatures, Entry, EntryError, EVENT_SIGNATURE_CONTEXT, MAX_ENTRY_LEN,
};
pub use evidence::{is_evidence, verify_evidence, write_evidence, EvidenceEntry, EvidenceReport};
pub use merkle::{
    consistency_proof, empty_root, hash_from_slice, inclusion_proof, leaf_hash, node_hash, root_of,
    verify_consistency, verify_inclusion, Frontier, Hash, ProofError,
};
pub use note::{
    Checkpoint, CosignatureVerifier, Cosigner, NoteError, NoteSigner, NoteVerifier, MAX_SIGNATURES,
};
pub use replay::{replay_lines, replay_one, Violation};
pub use witness::{check_cosignatures, with_cosignatures, witness_name};
