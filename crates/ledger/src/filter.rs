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

use crate::ledger::trees::Trees;

/// Bits in the filter: 2^27 bits (16 MiB). With [`HASHES`] probes in one cache line, ten
/// million ids give a false-positive rate of about 0.5 %; beyond that the rate grows smoothly
/// (a hundred million ids: most checks fall through to sled), which costs speed, never
/// correctness.
pub(crate) const FILTER_BITS: usize = 1 << 27;
/// Probes per id: near the optimum for the ten-million-id scale the filter is sized for.
const HASHES: u32 = 4;
/// Bits of one block: a 64-byte cache line.
const BLOCK_BITS: u32 = 512;
const BLOCKS: usize = FILTER_BITS / BLOCK_BITS as usize;

/// Nine bits of one hash pick each probe's bit within a block.
const _: () = assert!(9 * HASHES <= 64 && BLOCK_BITS == 512);

/// One block of the filter: 64 bytes, a cache line. All probes of an id fall in one block (a
/// "blocked" Bloom filter): a check or an insert touches one line of memory instead of
/// [`HASHES`] lines scattered over 16 MiB. Measured, the scattered probes' cache and TLB misses
/// were about a microsecond and a half per transfer on the writer's critical path. (A plain
/// array, so that `vec!` can ask for zeroed pages; the allocation is far larger than a page, so
/// the allocator maps it page-aligned and the blocks sit on cache lines.)
type Block = [u64; 8];

/// The bits of a Bloom filter over u128 ids.
pub(crate) struct IdFilter {
    blocks: Vec<Block>,
}

/// SplitMix64's finalizer: spreads sequential ids over the whole filter.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// The block of `id` and the bit positions of its probes within the block.
fn probes(id: u128) -> (usize, impl Iterator<Item = (usize, u64)>) {
    // Truncations pick the two halves of the id on purpose.
    let low = id as u64;
    let high = (id >> 64) as u64;
    let first = mix(low ^ mix(high));
    let second = mix(first ^ 0x9e37_79b9_7f4a_7c15);
    // BLOCKS is a power of two well below 2^32, so the remainder fits usize.
    let block = (first % BLOCKS as u64) as usize;
    // Nine bits of `second` per probe pick one of the block's 512 bits.
    let bits = (0..HASHES).map(move |i| {
        let bit = (second >> (9 * i)) % u64::from(BLOCK_BITS);
        ((bit / 64) as usize, 1u64 << (bit % 64))
    });
    (block, bits)
}

impl IdFilter {
    /// An empty filter. A zeroed `vec!` asks the allocator for zeroed pages, which the kernel
    /// supplies lazily.
    pub(crate) fn new() -> Self {
        Self {
            blocks: vec![[0; 8]; BLOCKS],
        }
    }

    pub(crate) fn insert(&mut self, id: u128) {
        let (block, bits) = probes(id);
        if let Some(words) = self.blocks.get_mut(block) {
            for (word, mask) in bits {
                if let Some(word) = words.get_mut(word) {
                    *word |= mask;
                }
            }
        }
    }

    /// `false` only if `id` was surely never inserted.
    pub(crate) fn may_contain(&self, id: u128) -> bool {
        let (block, mut bits) = probes(id);
        self.blocks.get(block).is_some_and(|words| {
            bits.all(|(word, mask)| words.get(word).is_some_and(|word| word & mask != 0))
        })
    }

    /// Adds every id of `other`.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.blocks.iter_mut().zip(&other.blocks) {
            for (word, their) in mine.iter_mut().zip(theirs) {
                *word |= *their;
            }
        }
    }
}

/// Builds a filter of every transfer id stored in `trees` (in runs and in id tables) and every
/// failed one (the writer asks it before both lookups), or `None` if stopped or if sled fails
/// (the writer then keeps asking sled, which is always right).
pub(crate) fn build(trees: &Trees, stop: &Arc<AtomicBool>) -> Option<IdFilter> {
    let mut filter = IdFilter::new();
    for item in trees.transfers.iter() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let (key, value) = item.ok()?;
        let first = crate::codec::key_u128(&key, "transfer run key").ok()?;
        let run = crate::codec::decode_transfer_run(&value).ok()?;
        (0..u128::from(run.len())).for_each(|offset| filter.insert(first.wrapping_add(offset)));
    }
    // The writer may merge tables while this scan runs: in this order it still sees every id.
    for item in crate::ledger::idtables::pieces_newest_first(trees) {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let (_, value) = item.ok()?;
        let piece = crate::codec::decode_table_piece(&value).ok()?;
        piece.iter().for_each(|entry| filter.insert(entry.id));
    }
    for item in trees.failed.iter() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let (key, _) = item.ok()?;
        filter.insert(crate::codec::key_u128(&key, "failed transfer id").ok()?);
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
        // 100,000 ids in 2^27 bits with 4 probes in 512-bit blocks: expected rate about one
        // in a hundred million.
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
