//! Bundles: a valid history always verifies and reports what it holds; no byte, line or entry
//! of it can change without verification failing; earlier checkpoints pin history; pinned log
//! keys are enforced.
//!
//! Histories come from the deterministic generator in `support`, which checks every event it
//! emits against `LogState::apply`, so every "valid" bundle here is valid by construction.

mod support;

use std::ops::Range;

use breakglass_ledger::{
    root_of, verify_bundle, verify_bundle_stream, verify_bundle_stream_in_chunks, BundleError,
    BundleReport, NoteSigner, VerifyOptions, Violation,
};
use proptest::prelude::*;
use support::{derive_key, generate, generate_with, History, Rng, GENESIS_EVENTS, ORIGIN};

fn verify(bytes: &[u8]) -> Result<BundleReport, BundleError> {
    both(bytes, &VerifyOptions::default())
}

fn verify_against(bytes: &[u8], earlier: &str) -> Result<BundleReport, BundleError> {
    both(
        bytes,
        &VerifyOptions {
            earlier_checkpoint: Some(earlier.to_owned()),
            ..VerifyOptions::default()
        },
    )
}

/// Verifies with the whole bundle in memory and as a stream — in its chunks, and in chunks of
/// one and three entries, so that ended requests are retired between any two events: every
/// way must accept it with the same report, or refuse it. Returns the in-memory result;
/// [`streamed_error`] gives the streamed one.
fn both(bytes: &[u8], opts: &VerifyOptions) -> Result<BundleReport, BundleError> {
    let whole = verify_bundle(bytes, opts);
    for streamed in [
        verify_bundle_stream(bytes, opts),
        verify_bundle_stream_in_chunks(bytes, opts, 1),
        verify_bundle_stream_in_chunks(bytes, opts, 3),
    ] {
        match (&whole, &streamed) {
            (Ok(a), Ok(b)) => assert_eq!(
                format!("{a:?}"),
                format!("{b:?}"),
                "both verifiers report the same"
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("the verifiers disagree: in memory {whole:?}, streamed {streamed:?}"),
        }
    }
    whole
}

fn streamed_error(bytes: &[u8]) -> BundleError {
    verify_bundle_stream_in_chunks(bytes, &VerifyOptions::default(), 1)
        .expect_err("refused as a stream too")
}

/// A small history (about a dozen entries: the exhaustive tests mutate every byte of it) that
/// still has a request, two approvals and a grant in it: the first seed that gives one.
fn small() -> History {
    (0..100)
        .map(|seed| generate(seed, 8))
        .find(|h| h.expected.grants >= 1 && h.log.len() <= 13)
        .expect("some seed below 100 grants access within 8 steps")
}

/// Byte ranges of each line, without its `\n`.
fn line_ranges(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            out.push(start..i);
            start = i + 1;
        }
    }
    assert_eq!(start, bytes.len(), "a bundle ends with a newline");
    out
}

fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    line_ranges(bytes)
        .into_iter()
        .map(|r| bytes[r].to_vec())
        .collect()
}

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Where a byte of a bundle sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Header,
    /// Inside entry line `i` (0-based entry index), not its newline.
    Entry(usize),
    Trailer,
    /// A line-ending `\n`.
    Newline,
}

fn region(lines: &[Range<usize>], pos: usize) -> Region {
    let last = lines.len() - 1;
    for (n, r) in lines.iter().enumerate() {
        if r.contains(&pos) {
            return match n {
                0 => Region::Header,
                n if n == last => Region::Trailer,
                n => Region::Entry(n - 1),
            };
        }
        if pos == r.end {
            return Region::Newline;
        }
    }
    panic!("position {pos} is outside the bundle")
}

/// A changed entry line fails naming that entry (it no longer decodes, or its signature no
/// longer verifies: the signature covers the whole event) or as a root mismatch (the bundle
/// checks the root before or after replaying; either order is sound). The header, the line count
/// and the checkpoint are intact, so nothing else may be reported.
fn assert_entry_error(err: &BundleError, index: usize, what: &str) {
    match err {
        BundleError::Violation(v) => assert_eq!(
            v.index(),
            index as u64,
            "{what}: the error must name entry {index}: {err}"
        ),
        BundleError::RootMismatch(_) => {}
        other => panic!("{what}: expected an entry or root error for entry {index}, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("entr") || msg.contains("checkpoint") || msg.contains("root"),
        "{what}: the message must point at an entry or the checkpoint: {msg}"
    );
}

/// Validly signed entries in the wrong order, under the original checkpoint: caught by the root,
/// or (when rules are replayed first) as a rule violation within `first..=last`, the moved
/// positions (times strictly increase in a generated log, so some moved event goes back in time
/// or breaks a rule).
fn is_reorder_error(err: &BundleError, first: usize, last: usize) -> bool {
    match err {
        BundleError::RootMismatch(_) => true,
        BundleError::Violation(Violation::Rule { index, .. }) => {
            (first as u64..=last as u64).contains(index)
        }
        _ => false,
    }
}

/// A mutated bundle must fail; an entry-line mutation must fail as that entry or the root.
fn assert_rejected(bytes: &[u8], region: Region, what: &str) {
    match verify(bytes) {
        Ok(report) => panic!("{what} ({region:?}) verified: {report:?}"),
        Err(err) => {
            if let Region::Entry(i) = region {
                assert_entry_error(&err, i, what);
                assert_entry_error(&streamed_error(bytes), i, what);
            }
        }
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Valid bundles verify, and report what the generator made.

fn check_report(h: &History) {
    let bundle = h.log.bundle();
    let report = verify(&bundle).unwrap_or_else(|e| panic!("a valid bundle must verify: {e}"));
    let e = &h.expected;
    assert_eq!(report.origin, ORIGIN);
    assert_eq!(report.log_key, h.log.keys.vkey());
    assert_eq!(report.entries, e.entries);
    assert_eq!(report.entries, h.log.len() as u64);
    assert_eq!(report.root, breakglass_core::hex(&root_of(&h.log.leaves())));
    assert_eq!(report.identities, e.identities, "identities");
    assert_eq!(report.policy_versions, e.policy_versions, "policy versions");
    assert_eq!(report.requests, e.requests, "requests");
    assert_eq!(report.grants, e.grants, "grants");
    assert_eq!(report.break_glass, e.break_glass, "break-glass activations");
    assert_eq!(report.reviews_owed, e.reviews_owed, "reviews owed");
    assert_eq!(report.consistent_with, None);
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn valid_history_verifies_and_reports_its_counts(seed: u64, steps in 0usize..70) {
        check_report(&generate(seed, steps));
    }
}

#[test]
fn genesis_alone_verifies() {
    let h = generate(0, 0);
    assert_eq!(h.log.len(), GENESIS_EVENTS);
    check_report(&h);
}

#[test]
fn generator_is_deterministic_and_covers_every_event_kind() {
    assert_eq!(
        generate(11, 40).log.bundle(),
        generate(11, 40).log.bundle(),
        "same seed, same bytes"
    );
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let h = generate(seed, 150);
        check_report(&h);
        seen.extend(h.kinds.keys().copied());
    }
    let all = [
        "log_created",
        "identity_enrolled",
        "policy_applied",
        "access_requested",
        "request_approved",
        "request_denied",
        "request_cancelled",
        "request_lapsed",
        "access_granted",
        "grant_failed",
        "revocation_ordered",
        "access_revoked",
        "access_expired",
        "revoke_failed",
        "alert",
        "review_recorded",
    ];
    for kind in all {
        assert!(seen.contains(kind), "the generator never made {kind}");
    }
}

// ---------------------------------------------------------------------------------------------
// Every byte matters.

#[test]
fn every_single_bit_flip_is_rejected() {
    let bundle = small().log.bundle();
    let lines = line_ranges(&bundle);
    let mut mutated = bundle.clone();
    for pos in 0..bundle.len() {
        mutated[pos] ^= 0x01;
        assert_rejected(
            &mutated,
            region(&lines, pos),
            &format!("flipping bit 0 of byte {pos}"),
        );
        mutated[pos] ^= 0x01;
    }
    assert_eq!(mutated, bundle);
}

#[test]
fn every_byte_deletion_is_rejected() {
    let bundle = small().log.bundle();
    let lines = line_ranges(&bundle);
    for pos in 0..bundle.len() {
        let mut mutated = bundle.clone();
        mutated.remove(pos);
        assert_rejected(
            &mutated,
            region(&lines, pos),
            &format!("deleting byte {pos}"),
        );
    }
}

#[test]
fn every_truncation_is_rejected() {
    let bundle = small().log.bundle();
    for len in 0..bundle.len() {
        assert!(
            verify(&bundle[..len]).is_err(),
            "the first {len} of {} bytes verified",
            bundle.len()
        );
    }
}

#[test]
fn appended_data_is_rejected() {
    let bundle = small().log.bundle();
    let lines = split_lines(&bundle);
    let extras: [&[u8]; 5] = [b"\n", b" ", b"x", b"{}\n", &lines[1]];
    for extra in extras {
        let mut mutated = bundle.clone();
        mutated.extend_from_slice(extra);
        assert!(
            verify(&mutated).is_err(),
            "appending {:?} verified",
            String::from_utf8_lossy(extra)
        );
    }
}

#[test]
fn duplicated_deleted_and_swapped_lines_are_rejected() {
    let bundle = small().log.bundle();
    let lines = split_lines(&bundle);
    let n = lines.len();
    for i in 0..n {
        let mut dup = lines.clone();
        dup.insert(i, lines[i].clone());
        assert!(verify(&join_lines(&dup)).is_err(), "duplicating line {i}");

        let mut del = lines.clone();
        del.remove(i);
        assert!(verify(&join_lines(&del)).is_err(), "deleting line {i}");
    }
    for i in 0..n - 1 {
        let mut swapped = lines.clone();
        swapped.swap(i, i + 1);
        let err =
            verify(&join_lines(&swapped)).expect_err(&format!("swapping lines {i} and {}", i + 1));
        if i >= 1 && i + 1 < n - 1 {
            // Two entry lines: the header still counts them and the checkpoint still verifies,
            // so only the Merkle root or the rules can (and must) catch it.
            assert!(
                is_reorder_error(&err, i - 1, i),
                "swapping entries {} and {}: expected a root mismatch or a rule violation there, got {err:?}",
                i - 1,
                i
            );
        }
    }
}

#[test]
fn dropping_an_entry_and_fixing_the_header_count_is_rejected() {
    let h = small();
    let bundle = h.log.bundle();
    let lines = split_lines(&bundle);
    let n = h.log.len();
    let header = String::from_utf8(lines[0].clone()).expect("utf-8");
    let fixed = header.replace(&format!("\"size\":{n}"), &format!("\"size\":{}", n - 1));
    assert_ne!(fixed, header);
    for i in 1..=n {
        let mut del = lines.clone();
        del.remove(i);
        del[0] = fixed.clone().into_bytes();
        let err = verify(&join_lines(&del)).expect_err("a dropped entry");
        assert!(
            matches!(err, BundleError::RootMismatch(_)),
            "dropping entry {}: the checkpoint still covers {n} entries: {err:?}",
            i - 1
        );
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn random_byte_replacements_in_larger_bundles_are_rejected(
        seed: u64,
        steps in 20usize..90,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..24),
    ) {
        let bundle = generate(seed, steps).log.bundle();
        let lines = line_ranges(&bundle);
        for (pos, xor) in edits {
            let pos = pos.index(bundle.len());
            let mut mutated = bundle.clone();
            mutated[pos] ^= xor;
            // A new line break changes the structure, not one entry.
            let region = if mutated[pos] == b'\n' { Region::Newline } else { region(&lines, pos) };
            assert_rejected(
                &mutated,
                region,
                &format!("replacing byte {pos} ({:#04x}) with {:#04x}", bundle[pos], mutated[pos]),
            );
        }
    }

    #[test]
    fn reordered_entries_are_rejected(seed: u64, steps in 0usize..40, shuffle: u64) {
        let h = generate(seed, steps);
        let n = h.log.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng::new(shuffle);
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        prop_assume!(order.iter().enumerate().any(|(i, o)| i != *o));
        let first_moved = order.iter().enumerate().position(|(i, o)| i != *o).unwrap_or(0);

        // With the original checkpoint, the root (or the rules) give it away.
        let bundle = h.log.bundle();
        let lines = split_lines(&bundle);
        let mut reordered = vec![lines[0].clone()];
        reordered.extend(order.iter().map(|&o| lines[o + 1].clone()));
        reordered.push(lines[n + 1].clone());
        let err = verify(&join_lines(&reordered)).expect_err("reordered entries");
        prop_assert!(is_reorder_error(&err, first_moved, n - 1), "{err:?}");

        // Even if the log key signs a checkpoint over the new order, replay refuses it: times
        // strictly increase in a generated log, so some event now goes back in time (or breaks
        // a rule earlier), at or after the first moved entry.
        let entries: Vec<_> = order.iter().map(|&o| h.log.entries[o].clone()).collect();
        let resigned = support::bundle_of_entries(&h.log.keys.note_signer(), &entries);
        match verify(&resigned) {
            Err(BundleError::Violation(Violation::Rule { index, .. })) => {
                prop_assert!(index as usize >= first_moved, "index {index} < {first_moved}");
            }
            other => prop_assert!(false, "reordered and re-checkpointed: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Earlier checkpoints: extension verifies, rewriting and truncation do not.

#[test]
fn bundle_is_consistent_with_every_earlier_checkpoint() {
    for (seed, steps) in [(5, 25), (6, 10)] {
        let h = generate(seed, steps);
        let bundle = h.log.bundle();
        for k in 0..=h.log.len() {
            let report = verify_against(&bundle, &h.log.note_for_prefix(k))
                .unwrap_or_else(|e| panic!("prefix {k} of seed {seed}: {e}"));
            assert_eq!(report.consistent_with, Some(k as u64));
        }
    }
}

#[test]
fn truncated_log_is_inconsistent_with_a_later_checkpoint() {
    let h = small();
    let n = h.log.len();
    for m in 0..n {
        let truncated = h.log.bundle_prefix(m);
        if m >= 1 {
            verify(&truncated).unwrap_or_else(|e| panic!("a prefix of {m} entries is valid: {e}"));
        }
        for k in m + 1..=n {
            match verify_against(&truncated, &h.log.note_for_prefix(k)) {
                Err(BundleError::Inconsistent(msg)) => {
                    assert!(msg.contains("truncated"), "{m} entries vs {k}: {msg}")
                }
                other => panic!("{m} entries against a checkpoint of {k}: {other:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn rewritten_history_is_inconsistent_with_earlier_checkpoints(
        seed: u64,
        steps in 1usize..30,
        at: prop::sample::Index,
    ) {
        let original = generate(seed, steps);
        let n = original.log.len();
        let j = at.index(n);
        let rewritten = generate_with(seed, steps, Some(j));
        prop_assert_eq!(&rewritten.log.keys.vkey(), &original.log.keys.vkey());
        prop_assert_eq!(
            &rewritten.log.leaves()[..j],
            &original.log.leaves()[..j],
            "the histories agree before the rewritten entry"
        );
        prop_assert_ne!(rewritten.log.leaves()[j], original.log.leaves()[j]);
        let bundle = rewritten.log.bundle();
        // The rewritten log is itself valid and signed by the same log key...
        prop_assert!(verify(&bundle).is_ok());
        for k in 0..=n {
            let result = verify_against(&bundle, &original.log.note_for_prefix(k));
            if k <= j {
                // ...it extends every checkpoint taken before the rewrite...
                prop_assert!(result.is_ok(), "checkpoint {k} predates the rewrite at {j}: {result:?}");
            } else {
                // ...and contradicts every checkpoint taken after it.
                prop_assert!(
                    matches!(result, Err(BundleError::Inconsistent(_))),
                    "checkpoint {k} covers the rewritten entry {j}: {result:?}"
                );
            }
        }
    }
}

#[test]
fn earlier_checkpoint_must_be_signed_by_the_log_key() {
    let h = small();
    let n = h.log.len();
    let other = NoteSigner::new(ORIGIN, derive_key(99, "other-log")).expect("key name");
    let forged = support::checkpoint_note(&other, &h.log.leaves()[..n - 1]);
    match verify_against(&h.log.bundle(), &forged) {
        Err(BundleError::Inconsistent(msg)) => assert!(msg.contains("earlier checkpoint"), "{msg}"),
        other => panic!("an earlier checkpoint by another key: {other:?}"),
    }
    match verify_against(&h.log.bundle(), "not a checkpoint\n") {
        Err(BundleError::Inconsistent(_)) => {}
        other => panic!("garbage as the earlier checkpoint: {other:?}"),
    }
}

#[test]
fn log_keys_whose_base64_contains_plus_round_trip() {
    // Half of all Ed25519 keys have a '+' in their base64; the vkey must still parse (the name
    // cannot contain '+', so only the first two '+' separate fields, as in Go's note package).
    let (seed, signer) = (0..64)
        .map(|seed| {
            (
                seed,
                NoteSigner::new(ORIGIN, derive_key(seed, "log")).expect("name"),
            )
        })
        .find(|(_, s)| s.verifier().vkey().matches('+').count() > 2)
        .expect("a key with '+' in its base64");
    let v = signer.verifier();
    assert_eq!(
        breakglass_ledger::NoteVerifier::from_vkey(&v.vkey()),
        Ok(v.clone()),
        "seed {seed}: {}",
        v.vkey()
    );
    check_report(&generate(seed, 10));
}

// ---------------------------------------------------------------------------------------------
// Pinned log keys and checkpoints by other keys.

#[test]
fn pinned_log_key_is_enforced() {
    let h = small();
    let bundle = h.log.bundle();
    let pinned = |v| VerifyOptions {
        log_key: Some(v),
        ..VerifyOptions::default()
    };
    verify_bundle(&bundle, &pinned(h.log.keys.verifier())).expect("the right pin verifies");

    let other_same_name = NoteSigner::new(ORIGIN, derive_key(99, "other-log"))
        .expect("key name")
        .verifier();
    let other_name = NoteSigner::new("elsewhere.example/log", h.log.keys.log.clone())
        .expect("key name")
        .verifier();
    for (what, v) in [
        ("another key with the same name", other_same_name),
        ("the same key under another name", other_name),
    ] {
        match verify_bundle(&bundle, &pinned(v)) {
            Err(BundleError::KeyMismatch(_)) => {}
            other => panic!("pinning {what}: {other:?}"),
        }
    }
}

#[test]
fn checkpoint_signed_by_another_key_is_rejected() {
    let h = small();
    let other = NoteSigner::new(ORIGIN, derive_key(99, "other-log")).expect("key name");
    let lines = split_lines(&h.log.bundle());
    let n = h.log.len();
    let foreign_note = support::checkpoint_note(&other, &h.log.leaves());

    // Header names the real log key; the checkpoint is by another key.
    let mut swapped = lines.clone();
    swapped[n + 1] =
        serde_json::to_vec(&serde_json::json!({ "checkpoint": foreign_note })).expect("json");
    match verify(&join_lines(&swapped)) {
        Err(BundleError::Checkpoint(_)) => {}
        other => panic!("checkpoint by another key: {other:?}"),
    }

    // Header and checkpoint both by the other key: consistent with each other, but entry 0
    // (signed by the first administrator) records the real key.
    let rekeyed = support::bundle_of_entries(&other, &h.log.entries);
    match verify(&rekeyed) {
        Err(BundleError::KeyMismatch(msg)) => assert!(msg.contains("entry 0"), "{msg}"),
        other => panic!("a bundle re-signed by another log key: {other:?}"),
    }
    // The same, with the auditor pinning that other key: still refused.
    match verify_bundle(
        &rekeyed,
        &VerifyOptions {
            log_key: Some(other.verifier()),
            ..VerifyOptions::default()
        },
    ) {
        Err(BundleError::KeyMismatch(_)) => {}
        other => panic!("a bundle re-signed by the pinned other key: {other:?}"),
    }
}
