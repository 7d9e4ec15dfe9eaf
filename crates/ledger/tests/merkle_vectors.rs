//! Runs every RFC 6962 proof vector from transparency-dev/merkle (copied with
//! its LICENSE into `tests/fixtures/rfc6962-merkle-vectors`): `wantErr: false`
//! cases must verify and every corruption must be rejected.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use breakglass_ledger::{hash_from_slice, verify_consistency, verify_inclusion, Hash, ProofError};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    breakglass_testkit::package_dir().join("tests/fixtures/rfc6962-merkle-vectors")
}

/// Upstream cases whose expectation depends on Go passing hashes as byte
/// slices of any length. Our API takes 32-byte `Hash`es, so a 12-byte
/// "don't care" root is refused when decoded, before any verification: we
/// reject where upstream accepts. Each entry must still be hit.
const STRICTER_THAN_UPSTREAM: &[&str] =
    &["consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

#[derive(Debug)]
enum Rejected {
    /// Refused while turning the JSON into typed hashes.
    Decode(String),
    /// Refused by the verifier.
    Verify(ProofError),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Decode(why) => write!(f, "rejected while decoding: {why}"),
            Rejected::Verify(e) => write!(f, "rejected by the verifier: {e}"),
        }
    }
}

fn hash(field: &Option<String>) -> Result<Hash, Rejected> {
    let text = field.as_deref().unwrap_or("");
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| Rejected::Decode(format!("base64 {text:?}: {e}")))?;
    hash_from_slice(&bytes).map_err(|e| Rejected::Decode(e.to_string()))
}

fn proof(field: &Option<Vec<String>>) -> Result<Vec<Hash>, Rejected> {
    field
        .iter()
        .flatten()
        .map(|h| hash(&Some(h.clone())))
        .collect()
}

fn run_inclusion(case: &InclusionCase) -> Result<(), Rejected> {
    let root = hash(&case.root)?;
    let leaf = hash(&case.leaf_hash)?;
    let proof = proof(&case.proof)?;
    verify_inclusion(case.leaf_idx, case.tree_size, &leaf, &proof, &root).map_err(Rejected::Verify)
}

fn run_consistency(case: &ConsistencyCase) -> Result<(), Rejected> {
    let root1 = hash(&case.root1)?;
    let root2 = hash(&case.root2)?;
    let proof = proof(&case.proof)?;
    verify_consistency(case.size1, case.size2, &root1, &root2, &proof).map_err(Rejected::Verify)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

struct Tally {
    cases: usize,
    /// Cases per subdirectory of `inclusion/` or `consistency/`.
    per_dir: std::collections::BTreeMap<String, usize>,
    accepted: usize,
    /// Corruptions caught by verification itself rather than by decoding.
    verifier_rejections: usize,
    stricter_hits: Vec<String>,
}

fn run_dir<C: for<'de> Deserialize<'de>>(
    kind: &str,
    run: impl Fn(&C) -> Result<(), Rejected>,
    want_err: impl Fn(&C) -> bool,
    desc: impl Fn(&C) -> &str,
) -> Tally {
    let root = fixtures();
    let mut files = Vec::new();
    json_files(&root.join(kind), &mut files);
    let mut tally = Tally {
        cases: 0,
        per_dir: Default::default(),
        accepted: 0,
        verifier_rejections: 0,
        stricter_hits: Vec::new(),
    };
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .expect("under fixtures")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let case: C = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let result = run(&case);
        tally.cases += 1;
        let dir = rel.split('/').nth(1).unwrap_or_default().to_owned();
        *tally.per_dir.entry(dir).or_default() += 1;
        match (want_err(&case), result) {
            (true, Ok(())) => panic!(
                "{rel} ({}): a corrupted proof was accepted; it must be rejected",
                desc(&case)
            ),
            (true, Err(Rejected::Verify(_))) => tally.verifier_rejections += 1,
            (true, Err(Rejected::Decode(_))) => {}
            (false, Ok(())) => tally.accepted += 1,
            (false, Err(Rejected::Decode(why)))
                if STRICTER_THAN_UPSTREAM.contains(&rel.as_str()) =>
            {
                tally.stricter_hits.push(format!("{rel}: {why}"));
            }
            (false, Err(e)) => panic!("{rel} ({}): a valid proof was {e}", desc(&case)),
        }
    }
    tally
}

/// Guards against a walk that silently skips a folder (renamed, emptied or
/// not copied).
fn assert_each_dir_ran(t: &Tally, dirs: &[&str]) {
    let found: Vec<&str> = t.per_dir.keys().map(String::as_str).collect();
    assert_eq!(found, dirs, "vector folders run");
    for (dir, n) in &t.per_dir {
        assert!(*n > 0, "no cases ran in {dir}");
    }
}

#[test]
fn inclusion_vectors() {
    let t = run_dir::<InclusionCase>("inclusion", run_inclusion, |c| c.want_err, |c| &c.desc);
    assert!(
        t.cases > 50,
        "only {} inclusion cases found: fixtures missing?",
        t.cases
    );
    assert_each_dir_ran(&t, &["0", "1", "2", "3", "4", "additional", "single-entry"]);
    assert!(t.accepted >= 6, "the happy paths of every tree must verify");
    assert!(
        t.verifier_rejections > 40,
        "most corruptions have well-formed hashes and must be caught by verification, got {}",
        t.verifier_rejections
    );
    assert!(t.stricter_hits.is_empty());
}

#[test]
fn consistency_vectors() {
    let t = run_dir::<ConsistencyCase>("consistency", run_consistency, |c| c.want_err, |c| &c.desc);
    assert!(
        t.cases > 50,
        "only {} consistency cases found: fixtures missing?",
        t.cases
    );
    assert_each_dir_ran(&t, &["0", "1", "2", "3", "4", "additional"]);
    assert!(t.accepted >= 5, "the happy paths of every tree must verify");
    assert!(
        t.verifier_rejections > 40,
        "most corruptions have well-formed hashes and must be caught by verification, got {}",
        t.verifier_rejections
    );
    assert_eq!(
        t.stricter_hits.len(),
        STRICTER_THAN_UPSTREAM.len(),
        "every documented deviation must still be exercised: {:?}",
        t.stricter_hits
    );
}

#[test]
fn vector_roots_match_root_of() {
    use breakglass_ledger::{leaf_hash, root_of};
    // The happy-path vectors are built over the CT test leaves; their roots
    // must be the MTH our tree computes for those sizes.
    let inputs: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let leaves: Vec<Hash> = inputs.iter().map(|e| leaf_hash(e)).collect();
    let mut checked = 0;
    for n in 0..=4 {
        let file = fixtures().join(format!("consistency/{n}/happy-path.json"));
        let case: ConsistencyCase =
            serde_json::from_str(&std::fs::read_to_string(file).expect("fixture")).expect("json");
        for (size, root) in [(case.size1, &case.root1), (case.size2, &case.root2)] {
            let want = hash(root).expect("happy-path roots are valid hashes");
            assert_eq!(
                root_of(&leaves[..size as usize]),
                want,
                "root of {size} CT leaves must equal the upstream vector's"
            );
            checked += 1;
        }
    }
    assert_eq!(
        root_of(&leaves),
        hash(&Some("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=".into())).expect("hash"),
        "8-leaf CT root is 5dc9da79..."
    );
    assert_eq!(checked, 10);
}
