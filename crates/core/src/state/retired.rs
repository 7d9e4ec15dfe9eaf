//! The requests that ended for good, held compactly for the rules' lookups.

use std::collections::HashMap;

use crate::id::RequestId;
use crate::state::Status;

/// Each ended request's id (its 80 random bits) and how it ended: a sorted array, plus a small
/// unsorted set of the most recent that is merged into it (in place, from the back) once it
/// outgrows an eighth of it. About 13 bytes per request, so that a verifier that keeps only
/// these of the requests it has seen end stays small however long the log.
#[derive(Clone, Debug, Default)]
pub(crate) struct RetiredIds {
    sorted: Vec<([u8; 10], Status)>,
    recent: HashMap<[u8; 10], Status>,
}

impl RetiredIds {
    /// Records how `id` ended.
    pub(crate) fn insert(&mut self, id: &RequestId, status: Status) {
        self.recent.insert(id.to_random(), status);
        if self.recent.len() > (self.sorted.len() / 8).max(1024) {
            self.merge();
        }
    }

    /// How `id` ended, if it is one of these.
    pub(crate) fn get(&self, id: &RequestId) -> Option<Status> {
        let key = id.to_random();
        self.recent.get(&key).copied().or_else(|| {
            self.sorted
                .binary_search_by(|(k, _)| k.cmp(&key))
                .ok()
                .map(|i| self.sorted[i].1)
        })
    }

    /// Whether `id` is one of these.
    pub(crate) fn contains(&self, id: &RequestId) -> bool {
        self.get(id).is_some()
    }

    fn merge(&mut self) {
        let mut tail: Vec<_> = self.recent.drain().collect();
        tail.sort_unstable_by_key(|e| e.0);
        let mut i = self.sorted.len();
        self.sorted.extend_from_slice(&tail);
        // Largest first into the end of the grown array: slots past `i` are free or hold
        // what has already been moved up.
        let mut k = self.sorted.len();
        let mut j = tail.len();
        while j > 0 {
            k -= 1;
            if i > 0 && self.sorted[i - 1].0 > tail[j - 1].0 {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = tail[j - 1];
                j -= 1;
            }
        }
        self.recent.shrink_to(1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> RequestId {
        // Spread over the whole id space, in no order.
        let x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&x.to_be_bytes());
        bytes[8..].copy_from_slice(&(n as u16).to_be_bytes());
        RequestId::from_random(bytes)
    }

    #[test]
    fn every_id_is_found_with_its_status_across_merges_and_no_other() {
        let mut retired = RetiredIds::default();
        let statuses = [
            Status::Expired,
            Status::Denied,
            Status::Revoked,
            Status::Lapsed,
        ];
        for n in 0..20_000u64 {
            retired.insert(&id(n), statuses[(n % 4) as usize]);
            if n % 997 == 0 {
                for m in (0..=n).step_by(89) {
                    assert_eq!(retired.get(&id(m)), Some(statuses[(m % 4) as usize]));
                }
            }
        }
        assert!(retired.sorted.len() > 10_000, "merged more than once");
        assert!(
            retired.sorted.windows(2).all(|w| w[0].0 < w[1].0),
            "kept sorted"
        );
        for n in 0..20_000u64 {
            assert_eq!(retired.get(&id(n)), Some(statuses[(n % 4) as usize]), "{n}");
        }
        for n in 20_000..21_000u64 {
            assert!(!retired.contains(&id(n)), "{n} was never retired");
        }
    }
}
