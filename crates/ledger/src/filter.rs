//! A Bloom filter over transfer ids, used only to skip the sled lookup for ids that are
//! surely new.
//!
//! Every transfer event must be checked against the stored transfers (`exists`,
//! `exists_with_different_*`), and for the new ids that dominate real traffic that check is a
//! sled lookup that finds nothing; measured, it was about a fifth of the writer's time for
//! full batches. A Bloom filter answers "surely absent" or "maybe present", never a wrong
//! "absent" for an id it was given, so the writer still asks sled whenever the filter says
//! "maybe": a false positive costs one lookup, nothing else. Results never depend on it.
//!
//! Soundness rests on one rule: an id is added to the writer's filter before the batch that
//! stores it is written, and the filter is consulted only once it also holds every id stored
//! before the writer started (built by [`build`] on a background thread and merged by
//! [`IdFilter::merge`]). Until then every check goes to sled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ledger::Trees;

/// Bits in the filter: 2^27 bits (16 MiB). With [`HASHES`] probes, ten million ids give a
/// false-positive rate of about 0.4 %; beyond that the rate grows smoothly (a hundred million
/// ids: most checks fall through to sled), which costs speed, never correctness.
pub(crate) const FILTER_BITS: usize = 1 << 27;
/// Probes per id: near the optimum for the ten-million-id scale the filter is sized for.
const HASHES: u64 = 4;
const WORDS: usize = FILTER_BITS / 64;
const MASK: u64 = (FILTER_BITS - 1) as u64;

/// The bits of a Bloom filter over u128 ids.
pub(crate) struct IdFilter {
    words: Vec<u64>,
}

/// SplitMix64's finalizer: spreads sequential ids over the whole filter.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// The filter positions of `id` (double hashing).
fn probes(id: u128) -> impl Iterator<Item = usize> {
    // Truncations pick the two halves of the id on purpose.
    let low = id as u64;
    let high = (id >> 64) as u64;
    let first = mix(low ^ mix(high));
    let step = mix(first ^ 0x9e37_79b9_7f4a_7c15) | 1;
    // `MASK` keeps every position below FILTER_BITS, which fits usize.
    (0..HASHES).map(move |i| (first.wrapping_add(i.wrapping_mul(step)) & MASK) as usize)
}

impl IdFilter {
    /// An empty filter. `vec![0; n]` asks the allocator for zeroed pages, which the kernel
    /// supplies lazily.
    pub(crate) fn new() -> Self {
        Self {
            words: vec![0; WORDS],
        }
    }

    pub(crate) fn insert(&mut self, id: u128) {
        for bit in probes(id) {
            if let Some(word) = self.words.get_mut(bit / 64) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    /// `false` only if `id` was surely never inserted.
    pub(crate) fn may_contain(&self, id: u128) -> bool {
        probes(id).all(|bit| {
            self.words
                .get(bit / 64)
                .is_some_and(|word| word & (1 << (bit % 64)) != 0)
        })
    }

    /// Adds every id of `other`.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word |= *theirs;
        }
    }
}

/// Builds a filter of every transfer id stored in `trees`, or `None` if stopped or if sled
/// fails (the writer then keeps asking sled, which is always right).
pub(crate) fn build(trees: &Trees, stop: &Arc<AtomicBool>) -> Option<IdFilter> {
    let mut filter = IdFilter::new();
    for item in trees.transfers.iter() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let (key, value) = item.ok()?;
        let first = crate::codec::key_u128(&key, "transfer run key").ok()?;
        let run = crate::codec::decode_transfer_run(&value).ok()?;
        (0..u128::from(run.len)).for_each(|offset| filter.insert(first.wrapping_add(offset)));
    }
    Some(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_id_is_always_reported_as_possibly_present() {
        let mut filter = IdFilter::new();
        let ids: Vec<u128> = (1..10_000u128)
            .map(|i| i.wrapping_mul(0x1234_5678_9abc_def1) ^ (i << 70))
            .collect();
        ids.iter().for_each(|id| filter.insert(*id));
        assert!(ids.iter().all(|id| filter.may_contain(*id)));
    }

    #[test]
    fn most_ids_never_inserted_are_reported_absent() {
        let mut filter = IdFilter::new();
        (1..100_000u128).for_each(|id| filter.insert(id));
        let false_positives = (1_000_000..1_100_000u128)
            .filter(|id| filter.may_contain(*id))
            .count();
        // 100,000 ids in 2^27 bits with 4 probes: expected rate below one in a million.
        assert!(false_positives < 100, "{false_positives} false positives");
    }

    #[test]
    fn a_merged_filter_holds_the_ids_of_both() {
        let mut left = IdFilter::new();
        let mut right = IdFilter::new();
        left.insert(7);
        right.insert(u128::MAX - 7);
        assert!(!left.may_contain(u128::MAX - 7));
        left.merge(&right);
        assert!(left.may_contain(7) && left.may_contain(u128::MAX - 7));
    }
}
