//! Members as witnesses, in bundles: the members of a team's log cosign the checkpoints they
//! verified (C2SP `tlog-cosignature` v1, named `<origin>/witness/<identity>`, with the
//! identity's enrolled key). A bundle carries those cosignatures as extra signature lines of its
//! checkpoint note — verifiers that do not know them ignore them, as signed notes allow — and
//! `verify` checks each one and says who witnessed the checkpoint.

use breakglass_core::LogState;
use ed25519_dalek::VerifyingKey;

use crate::bundle::BundleError;
use crate::note::{parse_signature_line, Checkpoint, CosignatureVerifier, MAX_SIGNATURES};

/// The witness name of `identity` on the log `origin`.
pub fn witness_name(origin: &str, identity: &str) -> String {
    format!("{origin}/witness/{identity}")
}

/// The identity a witness name of `origin` names, if it is one.
fn witness_identity<'a>(origin: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(origin)?.strip_prefix("/witness/")
}

/// The cosignature verifier of `identity`: an enrolled identity of the log, not revoked.
fn member_verifier(state: &LogState, origin: &str, identity: &str) -> Option<CosignatureVerifier> {
    if state.is_revoked(identity) {
        return None;
    }
    let key = VerifyingKey::from_bytes(&state.identity(identity)?.record.key.0).ok()?;
    CosignatureVerifier::new(witness_name(origin, identity), key).ok()
}

/// The note's text (through its blank line) and its signature lines.
fn split_note(note: &str) -> Option<(&str, impl Iterator<Item = &str>)> {
    let split = note.rfind("\n\n")?;
    let sigs = note[split + 2..].strip_suffix('\n')?;
    Some((&note[..=split], sigs.split('\n')))
}

/// `note` with each of `lines` that is a valid cosignature of its checkpoint by an enrolled,
/// unrevoked member added as a signature line (others are left out: a row a database writer
/// put there must not make an export fail), up to the signature lines a note may carry.
pub fn with_cosignatures<'a>(
    state: &LogState,
    note: &str,
    lines: impl IntoIterator<Item = &'a str>,
) -> String {
    let Some((text, sigs)) = split_note(note) else {
        return note.to_owned();
    };
    let Ok(cp) = Checkpoint::from_body(text) else {
        return note.to_owned();
    };
    let mut room = MAX_SIGNATURES.saturating_sub(sigs.count());
    let mut out = note.to_owned();
    for line in lines {
        if room == 0 {
            break;
        }
        let Ok((name, _, _)) = parse_signature_line(line, 1) else {
            continue;
        };
        let valid = witness_identity(&cp.origin, name)
            .and_then(|identity| member_verifier(state, &cp.origin, identity))
            .is_some_and(|v| v.verify(&cp, line).is_ok());
        if valid && !out.contains(line) {
            out.push_str(line);
            out.push('\n');
            room -= 1;
        }
    }
    out
}

/// The members who cosigned the checkpoint `note` (already verified with the log's key), in
/// the order of their lines. Every line named as a witness of this log must be a valid
/// cosignature of exactly this checkpoint by that member's enrolled, unrevoked key; lines of
/// other names (the log's own signature, witnesses from outside the log) are not judged here.
pub fn check_cosignatures(state: &LogState, note: &str) -> Result<Vec<String>, BundleError> {
    let bad = |why: String| BundleError::Checkpoint(why);
    let (text, sigs) = split_note(note).ok_or_else(|| bad("no signature lines".into()))?;
    let cp = Checkpoint::from_body(text).map_err(|e| bad(e.to_string()))?;
    let mut witnesses = Vec::new();
    for (i, line) in sigs.enumerate() {
        let (name, _, _) = parse_signature_line(line, i + 1).map_err(|e| bad(e.to_string()))?;
        let Some(identity) = witness_identity(&cp.origin, name) else {
            continue;
        };
        let verifier = member_verifier(state, &cp.origin, identity).ok_or_else(|| {
            bad(format!(
                "a cosignature names {identity}, who is not an enrolled, unrevoked identity of the log"
            ))
        })?;
        verifier.verify(&cp, line).map_err(|e| {
            bad(format!(
                "the cosignature of {identity} does not verify: {e}"
            ))
        })?;
        if !witnesses.iter().any(|w| w == identity) {
            witnesses.push(identity.to_owned());
        }
    }
    Ok(witnesses)
}
