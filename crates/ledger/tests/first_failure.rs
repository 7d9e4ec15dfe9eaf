//! A bundle with more than one fault is refused at its first bad entry in log order, whatever
//! kind each fault is (an entry that is not canonical, a signature that fails, a key that is
//! not a strong point, a rule that is broken, a file cut short) and however the verifier splits
//! the work: in memory, streamed, and in batches of one, two, three and seven entries, so the
//! faults fall in one batch or in different ones. The verifier checks the signatures of batches
//! on several threads at once and decodes and replays them in order; none of that may change
//! which fault is named.

mod support;

use breakglass_ledger::{
    verify_bundle, verify_bundle_stream, verify_bundle_stream_in_chunks, BundleError, EntryError,
    VerifyOptions, Violation,
};
use support::{generate, plus_millis, sign, History, Log};

/// A history long enough to put faults several batches apart.
fn history() -> History {
    (0..100)
        .map(|seed| generate(seed, 40))
        .find(|h| h.log.len() >= 30)
        .expect("some seed below 100 gives 30 entries in 40 steps")
}

/// The entry lines of `log`'s bundle.
fn entry_lines(log: &Log) -> Vec<Vec<u8>> {
    log.entries.iter().map(|e| e.bytes().to_vec()).collect()
}

/// What every way of verifying says about `bundle`: they must all refuse it the same way.
fn refusals(bundle: &[u8]) -> Vec<String> {
    let opts = VerifyOptions::default();
    let mut out = vec![
        verify_bundle(bundle, &opts),
        verify_bundle_stream(bundle, &opts),
    ];
    for chunk in [1, 2, 3, 7] {
        out.push(verify_bundle_stream_in_chunks(bundle, &opts, chunk));
    }
    out.into_iter()
        .map(|r| match r {
            Ok(report) => panic!("a bundle with faults verified: {report:?}"),
            Err(e) => describe(&e),
        })
        .collect()
}

/// The entry an error names and what kind of fault it is.
fn describe(e: &BundleError) -> String {
    match e {
        BundleError::Violation(Violation::Entry { index, error }) => match error {
            EntryError::Malformed(_) => format!("entry {index}: malformed"),
            EntryError::BadSignature { .. } => format!("entry {index}: bad signature"),
            EntryError::BadKey => format!("entry {index}: bad key"),
            other => format!("entry {index}: {other}"),
        },
        BundleError::Violation(Violation::Rule { index, .. }) => format!("entry {index}: rule"),
        other => format!("{other}"),
    }
}

/// Entry `i` with another entry's signature: still canonical, no longer verifying.
fn bad_signature(log: &Log, lines: &mut [Vec<u8>], i: usize) {
    let other = if i == 0 { 1 } else { 0 };
    let sig_at = |line: &[u8]| line.len() - 2 - 88;
    let donor = lines[other][sig_at(&lines[other])..].to_vec();
    let line = &mut lines[i];
    let at = sig_at(line);
    line.truncate(at);
    line.extend_from_slice(&donor);
    assert_ne!(
        line.as_slice(),
        log.entries[i].bytes(),
        "the signature changed"
    );
}

/// Entry `i` spelled with a space after its first brace: the same JSON, not canonical.
fn malformed(_: &Log, lines: &mut [Vec<u8>], i: usize) {
    lines[i].insert(1, b' ');
}

/// Entry `i` with a space inside its event: still laid out as an entry, so its signature is
/// checked (over bytes nobody signed) and fails, but it is named for not being canonical.
fn malformed_and_badly_signed(_: &Log, lines: &mut [Vec<u8>], i: usize) {
    let event = b"{\"event\":{".len();
    lines[i].insert(event, b' ');
}

/// Entry `i` claiming a signer whose key is a weak point (all zeros, of small order).
fn bad_key(_: &Log, lines: &mut [Vec<u8>], i: usize) {
    let key_at = lines[i].len() - 2 - 88 - b"\",\"sig\":\"".len() - 44;
    let zero_key = format!("{}=", "A".repeat(43));
    lines[i][key_at..key_at + 44].copy_from_slice(zero_key.as_bytes());
}

/// Entry `i` re-signed by its own actor with a time before the previous entry's: a valid
/// signature on an event that breaks the rule that time never goes back.
fn breaks_a_rule(log: &Log, lines: &mut [Vec<u8>], i: usize) {
    let mut event = log.entries[i].event().clone();
    event.time = plus_millis(log.entries[i - 1].event().time, -1);
    lines[i] = sign(event.clone(), log.keys.of(&event.actor))
        .bytes()
        .to_vec();
}

/// A fault put into entry `i` of a bundle's lines.
type Fault = fn(&Log, &mut [Vec<u8>], usize);

/// Every kind of fault an entry can have, with how a verifier names it.
const FAULTS: [(Fault, &str); 5] = [
    (bad_signature, "bad signature"),
    (malformed, "malformed"),
    (malformed_and_badly_signed, "malformed"),
    (bad_key, "bad key"),
    (breaks_a_rule, "rule"),
];

/// A bundle of `lines` whose checkpoint covers exactly them, so only the entries can fail.
fn bundle(log: &Log, lines: &[Vec<u8>]) -> Vec<u8> {
    support::bundle_of_lines(&log.keys.note_signer(), lines)
}

fn assert_first(bundle: &[u8], expected: &str) {
    for (way, said) in refusals(bundle).iter().enumerate() {
        assert_eq!(
            said, expected,
            "way {way} of verifying names the first fault"
        );
    }
}

#[test]
fn of_two_faults_of_any_kinds_the_earlier_is_named() {
    let h = history();
    // Neighbours (in one batch of 2, 3 or 256 entries), and entries several batches apart.
    for (first, later) in [(6, 7), (6, 20), (9, 25)] {
        for (spoil_first, name) in FAULTS {
            for (spoil_later, _) in FAULTS {
                let mut lines = entry_lines(&h.log);
                spoil_first(&h.log, &mut lines, first);
                spoil_later(&h.log, &mut lines, later);
                assert_first(&bundle(&h.log, &lines), &format!("entry {first}: {name}"));
            }
        }
    }
}

#[test]
fn a_bad_entry_comes_before_the_file_being_cut_short_after_it() {
    let h = history();
    let n = h.log.len();
    for bad in [0, 6, n - 2] {
        let mut lines = entry_lines(&h.log);
        bad_signature(&h.log, &mut lines, bad);
        let whole = bundle(&h.log, &lines);
        // Cut in the middle of the last entry's line: the header still announces every entry.
        let last_entry_ends = whole.len()
            - 1
            - whole[..whole.len() - 1]
                .iter()
                .rev()
                .position(|b| *b == b'\n')
                .expect("a checkpoint line");
        let cut = &whole[..last_entry_ends - 10];
        assert_first(cut, &format!("entry {bad}: bad signature"));
    }
    // Without a bad entry, a cut is reported as a truncated file.
    let whole = bundle(&h.log, &entry_lines(&h.log));
    let cut = &whole[..whole.len() / 2];
    for said in refusals(cut) {
        assert!(said.contains("truncated"), "{said}");
    }
}
