//! Property tests for the Merkle tree: the frontier agrees with the full
//! computation, and proofs verify exactly when they should.

use breakglass_ledger::{
    consistency_proof, inclusion_proof, leaf_hash, root_of, verify_consistency, verify_inclusion,
    Frontier, Hash,
};
use proptest::prelude::*;

// Note: a proof for (index, size) can also verify for a nearby size with the
// same path shape; the tree size is authenticated by the signed checkpoint,
// not by the root, so no property here claims otherwise.

/// Distinct leaves derived from a seed, so failing cases shrink to a size.
fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut h = *h;
    h[(bit / 8) % 32] ^= 1 << (bit % 8);
    h
}

fn config() -> ProptestConfig {
    // Debug builds on 2 cores: each case already checks O(n) proofs.
    ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frontier_root_equals_root_of_every_prefix(n in 1usize..=300, seed: u64) {
        let leaves = leaves(n, seed);
        let mut frontier = Frontier::new();
        prop_assert_eq!(frontier.root(), root_of(&[]));
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            prop_assert_eq!(frontier.size(), i as u64 + 1);
            prop_assert_eq!(
                frontier.root(), root_of(&leaves[..=i]),
                "frontier of {} leaves must give the RFC 6962 root", i + 1
            );
        }
        let rebuilt = Frontier::from_leaves(&leaves);
        prop_assert_eq!(rebuilt.root(), frontier.root());
        prop_assert_eq!(rebuilt.size(), frontier.size());
    }

    #[test]
    fn inclusion_proofs_verify_only_for_their_leaf(n in 1usize..=300, seed: u64, bit in 0usize..256) {
        let leaves = leaves(n, seed);
        let root = root_of(&leaves);
        let size = n as u64;
        for (i, leaf) in leaves.iter().enumerate() {
            let index = i as u64;
            let proof = inclusion_proof(&leaves, index).expect("index < size");
            prop_assert!(verify_inclusion(index, size, leaf, &proof, &root).is_ok(),
                "proof for leaf {} of {} must verify", i, n);
            if n > 1 {
                let other = (index + 1) % size;
                prop_assert!(verify_inclusion(other, size, leaf, &proof, &root).is_err(),
                    "proof for leaf {} must not place it at {}", i, other);
            }
            prop_assert!(verify_inclusion(index, size, &flip(leaf, bit), &proof, &root).is_err(),
                "a different leaf must not verify with leaf {}'s proof", i);
            prop_assert!(verify_inclusion(index, size, leaf, &proof, &flip(&root, bit)).is_err(),
                "leaf {}'s proof must not verify against a different root", i);
        }
        prop_assert!(inclusion_proof(&leaves, size).is_err());
    }

    #[test]
    fn consistency_proofs_detect_rewritten_history(n in 1usize..=300, seed: u64, pick: u64, bit in 0usize..256) {
        let leaves = leaves(n, seed);
        let root2 = root_of(&leaves);
        let size2 = n as u64;
        for m in 0..=n {
            let size1 = m as u64;
            let old = &leaves[..m];
            let root1 = root_of(old);
            let proof = consistency_proof(&leaves, size1).expect("m <= n");
            prop_assert!(verify_consistency(size1, size2, &root1, &root2, &proof).is_ok(),
                "proof from {} to {} must verify", m, n);
            if m == 0 {
                continue;
            }
            // Rewrite one leaf of the old tree: the old checkpoint no longer
            // matches what the new tree says was there.
            let j = (pick.wrapping_add(m as u64) % size1) as usize;
            let mut rewritten = old.to_vec();
            rewritten[j] = flip(&rewritten[j], bit);
            prop_assert!(
                verify_consistency(size1, size2, &root_of(&rewritten), &root2, &proof).is_err(),
                "rewriting leaf {} of the size-{} tree must be detected against size {}", j, m, n
            );
            if !proof.is_empty() {
                prop_assert!(
                    verify_consistency(size1, size2, &root1, &root2, &proof[..proof.len() - 1]).is_err(),
                    "a truncated proof from {} to {} must fail", m, n
                );
            }
            let mut extended = proof.clone();
            extended.push(root1);
            prop_assert!(
                verify_consistency(size1, size2, &root1, &root2, &extended).is_err(),
                "an extended proof from {} to {} must fail", m, n
            );
        }
        prop_assert!(consistency_proof(&leaves, size2 + 1).is_err());
    }

    #[test]
    fn consistency_between_random_prefixes(n in 1usize..=300, seed: u64, a: u64, b: u64) {
        let leaves = leaves(n, seed);
        let (x, y) = ((a % (n as u64 + 1)) as usize, (b % (n as u64 + 1)) as usize);
        let (m, k) = (x.min(y), x.max(y));
        let proof = consistency_proof(&leaves[..k], m as u64).expect("m <= k");
        prop_assert!(verify_consistency(
            m as u64, k as u64, &root_of(&leaves[..m]), &root_of(&leaves[..k]), &proof
        ).is_ok(), "proof from {} to {} must verify", m, k);
    }
}

/// Exhaustive over small trees: every pair of sizes, every rewritten leaf.
#[test]
fn every_rewrite_of_small_trees_is_detected() {
    let all = leaves(24, 7);
    for n in 1..=all.len() {
        let new = &all[..n];
        let root2 = root_of(new);
        for m in 1..=n {
            let proof = consistency_proof(new, m as u64).expect("m <= n");
            let root1 = root_of(&new[..m]);
            verify_consistency(m as u64, n as u64, &root1, &root2, &proof)
                .unwrap_or_else(|e| panic!("proof from {m} to {n} must verify: {e}"));
            for j in 0..m {
                let mut rewritten = new[..m].to_vec();
                rewritten[j] = leaf_hash(b"forged");
                assert!(
                    verify_consistency(m as u64, n as u64, &root_of(&rewritten), &root2, &proof)
                        .is_err(),
                    "rewriting leaf {j} of the size-{m} tree must be detected against size {n}"
                );
            }
            // A proof for one old size must not vouch for another.
            if m < n {
                assert!(
                    verify_consistency(m as u64 + 1, n as u64, &root1, &root2, &proof).is_err(),
                    "proof from {m} to {n} must not verify as a proof from {}",
                    m + 1
                );
            }
        }
    }
}
