//! A fast keyed hash for the writer's maps of account and transfer ids.
//!
//! The writer does a handful of map operations per transfer (the group's overlay, the accounts
//! in memory); with std's SipHash-1-3 hashing the u128 ids was a tenth of the state machine's
//! time for full batches. Ids come from callers, so the hash must not be predictable from
//! outside (a caller choosing colliding ids could make every lookup linear): each map gets
//! fresh random keys from std's `RandomState`, and the 128-bit id is mixed with them by
//! folded 64×64→128-bit multiplications, which spread every input bit over the output.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` keyed by ids, hashed with [`IdHashState`].
pub(crate) type IdMap<K, V> = HashMap<K, V, IdHashState>;
/// A `HashSet` of ids, hashed with [`IdHashState`].
pub(crate) type IdSet<K> = HashSet<K, IdHashState>;

/// Odd constants (from the fractional parts of π) that keep the mix from collapsing when a
/// key word happens to equal an input word.
const PI_0: u64 = 0x243f_6a88_85a3_08d3;
const PI_1: u64 = 0x1319_8a2e_0370_7344;

/// The random keys of one map.
#[derive(Clone)]
pub(crate) struct IdHashState {
    keys: [u64; 3],
}

impl Default for IdHashState {
    fn default() -> Self {
        // `RandomState::new` draws fresh keys for each map from a per-thread random seed;
        // hashing three distinct words through it turns them into three independent keys.
        let random = RandomState::new();
        Self {
            keys: [
                random.hash_one(PI_0),
                random.hash_one(PI_1),
                random.hash_one(PI_0 ^ PI_1),
            ],
        }
    }
}

impl BuildHasher for IdHashState {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.keys[0],
            keys: [self.keys[1], self.keys[2]],
        }
    }
}

/// The hasher built by [`IdHashState`].
pub(crate) struct IdHasher {
    state: u64,
    keys: [u64; 2],
}

/// The high and low halves of the 128-bit product, xored.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    // Truncation picks the low half on purpose.
    (product as u64) ^ ((product >> 64) as u64)
}

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, self.keys[0] ^ PI_1);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn write_u128(&mut self, value: u128) {
        // Truncations pick the two halves of the id on purpose.
        let low = value as u64;
        let high = (value >> 64) as u64;
        self.state = folded_multiply(low ^ self.state, high ^ self.keys[0]);
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.keys[1] ^ PI_0).rotate_left((self.state & 63) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_the_top_and_bottom_bits() {
        let state = IdHashState::default();
        let mut low = HashSet::new();
        let mut high = HashSet::new();
        for id in 0u128..4096 {
            let hash = state.hash_one(id);
            low.insert(hash & 0xfff);
            high.insert(hash >> 57);
        }
        // 4,096 ids into 4,096 low-bit buckets: a good hash fills about 63 % of them.
        assert!(
            low.len() > 2300,
            "only {} of 4096 low buckets used",
            low.len()
        );
        assert_eq!(high.len(), 128, "every 7-bit top value is used");
    }

    #[test]
    fn ids_differing_only_in_the_high_half_hash_differently() {
        let state = IdHashState::default();
        let base = state.hash_one(5u128);
        for shift in 64..128 {
            assert_ne!(
                state.hash_one(5u128 | (1u128 << shift)),
                base,
                "bit {shift}"
            );
        }
    }

    #[test]
    fn maps_get_different_keys() {
        let (first, second) = (IdHashState::default(), IdHashState::default());
        assert_ne!(first.hash_one(1u128), second.hash_one(1u128));
    }
}
