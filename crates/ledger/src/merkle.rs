//! RFC 6962 / RFC 9162 Merkle tree: hashing, a compact range for appends,
//! and inclusion and consistency proofs.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 in the formulation of
//! transparency-dev/merkle's `proof` package, whose test vectors this crate runs.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefixes from RFC 6962 §2.1: without them a leaf could be
/// passed off as an interior node (second-preimage attack).
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Errors from building or verifying Merkle proofs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index does not name a leaf of the tree (indices start at 0).
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The number of leaves in the tree.
        size: u64,
    },
    /// A consistency proof was asked for from a larger tree to a smaller one:
    /// an append-only log never shrinks.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOrder {
        /// The size claimed for the older tree.
        old_size: u64,
        /// The size claimed for the newer tree.
        new_size: u64,
    },
    /// The proof has the wrong number of hashes for the given index and sizes,
    /// so it cannot be the proof the verifier expects (padding or truncation).
    #[error("proof has {got} hashes but {want} are required")]
    WrongProofLength {
        /// Number of hashes supplied.
        got: usize,
        /// Number of hashes the tree shape requires.
        want: usize,
    },
    /// The proof is well formed but does not reproduce the expected root of the
    /// tree of this size: the leaf is not in the tree, or the trees diverge.
    #[error("proof does not reproduce the expected root of the tree of size {tree_size}")]
    RootMismatch {
        /// Size of the tree whose root did not match.
        tree_size: u64,
    },
    /// A byte string that should be a SHA-256 hash has the wrong length.
    #[error("hash is {len} bytes long, expected 32")]
    HashLength {
        /// Length of the rejected byte string.
        len: usize,
    },
}

/// Converts a byte slice from outside input into a [`Hash`](type@Hash), rejecting any
/// other length instead of truncating or padding it.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::HashLength { len: bytes.len() })
}

/// Hash of a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves.
///
/// Runs in O(n) time and O(log n) memory without recursion, so it is safe for
/// trees of any size.
pub fn root_of(leaves: &[Hash]) -> Hash {
    Frontier::from_leaves(leaves).root()
}

/// Compact range ("frontier") for O(log n) appends: keeps the roots of the
/// perfect subtrees that make up the tree, one per set bit of its size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect-subtree roots, largest (leftmost) first.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of the tree with exactly these leaves.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut f = Self::new();
        for leaf in leaves {
            f.push(*leaf);
        }
        f
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        // Like incrementing a binary counter: each trailing 1 bit of the old
        // size is a perfect subtree of the same height that the carry merges.
        let mut carry = leaf;
        let mut bits = self.size;
        while bits & 1 == 1 {
            match self.subtrees.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                // Unreachable while `subtrees` matches the bits of `size`,
                // which only this method changes.
                None => break,
            }
            bits >>= 1;
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    /// Root of the tree of the leaves appended so far.
    pub fn root(&self) -> Hash {
        // MTH splits at the largest power of two below n, which is exactly the
        // leftmost perfect subtree; folding from the right reproduces that.
        let mut iter = self.subtrees.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// Largest power of two strictly smaller than `n` (requires `n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Inclusion proof (RFC 9162 §2.1.3.1 `PATH`) for the leaf at `index` in the
/// tree made of all of `leaves`, ordered from the leaf upwards.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    let mut m = usize::try_from(index)
        .ok()
        .filter(|&i| i < leaves.len())
        .ok_or(ProofError::IndexOutOfRange { index, size })?;
    // Walk down from the root; each step contributes the sibling subtree.
    let (mut lo, mut hi) = (0usize, leaves.len());
    let mut proof = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < k {
            proof.push(root_of(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            proof.push(root_of(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof (RFC 9162 §2.1.4.1 `PROOF`) that the tree of the first
/// `old_size` leaves is a prefix of the tree made of all of `leaves`.
///
/// For `old_size == 0` and `old_size == leaves.len()` the proof is empty, as
/// [`verify_consistency`] expects.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = leaves.len() as u64;
    let mut m = usize::try_from(old_size)
        .ok()
        .filter(|&m| m <= leaves.len())
        .ok_or(ProofError::SizeOrder { old_size, new_size })?;
    if m == 0 {
        return Ok(Vec::new());
    }
    let (mut lo, mut hi) = (0usize, leaves.len());
    // `whole_old_tree` is RFC 9162's `b`: true while the current subtree's
    // old part is the entire old tree, whose root the verifier already has.
    let mut whole_old_tree = true;
    let mut proof = Vec::new();
    while m != hi - lo {
        let k = split_point(hi - lo);
        if m <= k {
            proof.push(root_of(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            proof.push(root_of(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
            whole_old_tree = false;
        }
    }
    if !whole_old_tree {
        proof.push(root_of(&leaves[lo..hi]));
    }
    proof.reverse();
    Ok(proof)
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose_inclusion(index, size);
    check_len(proof.len(), inner + border)?;
    let (inner_part, border_part) = proof.split_at(inner);
    let computed = chain_border_right(chain_inner(*leaf, inner_part, index), border_part);
    check_root(&computed, root, size)
}

/// Verifies that the tree of `size1` leaves with root `root1` is a prefix of
/// the tree of `size2` leaves with root `root2` (RFC 9162 §2.1.4.2).
///
/// Edge cases follow transparency-dev/merkle: equal sizes need an empty proof
/// and equal roots; `size1 == 0` needs an empty proof. Stricter than that
/// package, a size-0 root must be the empty-tree root, since no other root
/// describes an empty tree.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizeOrder {
            old_size: size1,
            new_size: size2,
        });
    }
    if size1 == 0 {
        check_len(proof.len(), 0)?;
        check_root(root1, &empty_root(), 0)?;
        if size2 == 0 {
            check_root(root2, &empty_root(), 0)?;
        }
        return Ok(());
    }
    if size1 == size2 {
        check_len(proof.len(), 0)?;
        return check_root(root2, root1, size2);
    }
    if proof.is_empty() {
        // Reported as a length error so callers see the same shape of failure
        // as for any other wrongly sized proof.
        let (inner, border) = decompose_inclusion(size1 - 1, size2);
        return Err(ProofError::WrongProofLength {
            got: 0,
            want: inner + border,
        });
    }

    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    // shift < inner whenever size1 < size2; checked rather than assumed.
    let inner = inner
        .checked_sub(shift)
        .ok_or(ProofError::RootMismatch { tree_size: size1 })?;

    // If size1 is itself a perfect subtree, the verifier already holds its
    // root; otherwise the proof starts with the root of the largest perfect
    // subtree ending at leaf size1-1.
    let (seed, rest) = match proof.split_first() {
        _ if size1 == 1u64 << shift => (*root1, proof),
        Some((first, tail)) => (*first, tail),
        None => (*root1, proof), // rejected by the length check below
    };
    let start = proof.len() - rest.len();
    check_len(proof.len(), start + inner + border)?;
    let (inner_part, border_part) = rest.split_at(inner);

    let mask = (size1 - 1) >> shift;
    let hash1 = chain_border_right(chain_inner_right(seed, inner_part, mask), border_part);
    check_root(&hash1, root1, size1)?;
    let hash2 = chain_border_right(chain_inner(seed, inner_part, mask), border_part);
    check_root(&hash2, root2, size2)
}

fn check_len(got: usize, want: usize) -> Result<(), ProofError> {
    if got == want {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength { got, want })
    }
}

fn check_root(computed: &Hash, expected: &Hash, tree_size: u64) -> Result<(), ProofError> {
    if computed == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch { tree_size })
    }
}

/// Splits the inclusion proof for `index` in a tree of `size` (`index < size`)
/// into the part below the point where the paths to `index` and `size - 1`
/// diverge, and the part along the right border above it.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    // `inner` can be 64, where a plain shift would overflow.
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

fn bit(index: u64, level: usize) -> u64 {
    index.checked_shr(level as u32).unwrap_or(0) & 1
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (level, h) in proof.iter().enumerate() {
        seed = if bit(index, level) == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

/// Like [`chain_inner`] but only uses siblings to the left of the path, which
/// yields the root of the older, smaller version of the subtree.
fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (level, h) in proof.iter().enumerate() {
        if bit(index, level) == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct_leaves() -> Vec<Hash> {
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
        inputs.iter().map(|e| leaf_hash(e)).collect()
    }

    fn hex_hash(s: &str) -> Hash {
        hash_from_slice(&hex::decode(s).expect("test hex")).expect("test hash length")
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root(),
            hex_hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(root_of(&[]), empty_root());
    }

    #[test]
    fn certificate_transparency_roots_for_every_prefix() {
        // Roots of the first n CT test leaves, from RFC 6962 reference data
        // (the Go and C++ CT implementations share them).
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = ct_leaves();
        for (n, root) in want.iter().enumerate() {
            assert_eq!(
                root_of(&leaves[..=n]),
                hex_hash(root),
                "root of the first {} CT leaves must match the RFC 6962 reference",
                n + 1
            );
        }
    }

    #[test]
    fn consistency_proof_matches_rfc_shape() {
        // RFC 9162 §2.1.5 example: PROOF(3, D[7]) = [c, d, g, l].
        let leaves = ct_leaves();
        let proof = consistency_proof(&leaves[..7], 3).expect("3 <= 7");
        assert_eq!(proof.len(), 4, "RFC 9162 example proof has four hashes");
        assert_eq!(proof[0], leaves[2], "first element is leaf c");
        assert_eq!(proof[1], leaves[3], "second element is leaf d");
        assert_eq!(
            proof[2],
            node_hash(&leaves[0], &leaves[1]),
            "g = hash(a, b)"
        );
        verify_consistency(3, 7, &root_of(&leaves[..3]), &root_of(&leaves[..7]), &proof)
            .expect("proof from the RFC example verifies");
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let h = leaf_hash(b"x");
        for (index, size) in [(0, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
            assert!(verify_inclusion(index, size, &h, &[], &h).is_err());
        }
        assert!(verify_consistency(1, u64::MAX, &h, &h, &[h]).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &h, &h, &[h]).is_err());
    }
}
