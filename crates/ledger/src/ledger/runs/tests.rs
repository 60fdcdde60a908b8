//! Run formation and the run index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::super::trees::{PREFIX_TRANSFER, Trees, Writes, open_db};
use super::*;
use crate::codec::{decode_transfer_run, id_key};
use crate::filter;

fn located(ids: &[u128], seq: u64, first_index: u32) -> Vec<(TransferId, u64, u32)> {
    ids.iter()
        .zip(first_index..)
        .map(|(id, index)| (TransferId(*id), seq, index))
        .collect()
}

#[test]
fn consecutive_ids_at_consecutive_entries_form_one_run() {
    let runs = transfer_runs(&located(&[10, 11, 12, 13], 4, 0));
    assert_eq!(
        runs,
        [(
            TransferId(10),
            StoredRun::Packed(TransferRun {
                seq: 4,
                index: 0,
                len: 4
            })
        )]
    );
}

#[test]
fn packed_runs_break_at_id_gaps_descending_ids_and_record_boundaries() {
    let mut locations = located(&[10, 11, 13, 12], 4, 0);
    locations.extend(located(&[14, 15], 5, 0));
    let runs: Vec<(u128, u64, u32, u32)> = packed_runs(&locations)
        .into_iter()
        .map(|(first, run)| (first.0, run.seq, run.index, run.len))
        .collect();
    assert_eq!(
        runs,
        [(10, 4, 0, 2), (13, 4, 2, 1), (12, 4, 3, 1), (14, 5, 0, 2)]
    );
}

#[test]
fn a_skipped_entry_breaks_a_packed_run_even_when_ids_are_consecutive() {
    // A rolled-back linked chain leaves ids 20 and 21 at entries 0 and 2.
    let locations = [(TransferId(20), 1, 0), (TransferId(21), 1, 2)];
    assert_eq!(packed_runs(&locations).len(), 2);
    // The index still stores them as one key, each id with its own entry.
    assert_eq!(
        transfer_runs(&locations),
        [(
            TransferId(20),
            StoredRun::Spread(SpreadRun {
                base_seq: 1,
                entries: vec![(0, 0), (0, 2)]
            })
        )]
    );
}

#[test]
fn a_run_at_the_top_of_the_id_space_does_not_overflow() {
    let top = u128::MAX - 1;
    assert_eq!(packed_runs(&located(&[top, 1], 1, 0)).len(), 2);
    let locations = [(TransferId(top), 1, 0), (TransferId(u128::MAX), 2, 0)];
    let runs = transfer_runs(&locations);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1.location(1), Some((2, 0)));
}

/// Single-transfer records of one group (many callers), ids from one counter but records
/// in arrival order.
fn singles(ids: &[u128], first_seq: u64) -> Vec<(TransferId, u64, u32)> {
    ids.iter()
        .zip(first_seq..)
        .map(|(id, seq)| (TransferId(*id), seq, 0))
        .collect()
}

#[test]
fn single_transfers_of_consecutive_ids_form_one_spread_run_in_id_order() {
    let runs = transfer_runs(&singles(&[12, 10, 13, 11], 7));
    assert_eq!(
        runs,
        [(
            TransferId(10),
            StoredRun::Spread(SpreadRun {
                base_seq: 7,
                entries: vec![(1, 0), (3, 0), (0, 0), (2, 0)]
            })
        )]
    );
}

#[test]
fn spread_runs_break_at_gaps_and_at_their_cap() {
    let ids: Vec<u128> = (1000..1000 + SPREAD_RUN_MAX as u128 + 10)
        .chain([5000, 5002])
        .collect();
    let runs = transfer_runs(&singles(&ids, 1));
    let shape: Vec<(u128, u32, bool)> = runs
        .iter()
        .map(|(first, run)| (first.0, run.len(), matches!(run, StoredRun::Spread(_))))
        .collect();
    assert_eq!(
        shape,
        [
            (1000, SPREAD_RUN_MAX as u32, true),
            (1000 + SPREAD_RUN_MAX as u128, 10, true),
            (5000, 1, false),
            (5002, 1, false),
        ]
    );
}

#[test]
fn long_packed_runs_stay_packed_and_their_short_neighbours_join_up() {
    // One caller's batch of 20 ordered ids, then single transfers around it.
    let mut locations = located(&(100..120).collect::<Vec<_>>(), 3, 0);
    locations.extend(singles(&[121, 120, 99], 4));
    let runs = transfer_runs(&locations);
    let shape: Vec<(u128, u32, bool)> = runs
        .iter()
        .map(|(first, run)| (first.0, run.len(), matches!(run, StoredRun::Spread(_))))
        .collect();
    assert_eq!(shape, [(99, 1, false), (100, 20, false), (120, 2, true)]);
}

#[test]
fn records_too_far_from_the_group_start_for_a_spread_run_stay_packed() {
    let far = u64::from(u16::MAX) + 1;
    let locations = [(TransferId(1), 10, 0), (TransferId(2), 10 + far, 0)];
    let runs = transfer_runs(&locations);
    assert!(
        runs.iter()
            .all(|(_, run)| matches!(run, StoredRun::Packed(_))),
        "{runs:?}"
    );
    assert_eq!(runs.len(), 2);
}

#[test]
fn the_run_index_finds_every_stored_id_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
    let mut writes = Writes::default();
    let mut locations = located(&[100, 101, 102], 1, 0);
    locations.extend(located(&[200], 1, 3));
    locations.extend(located(&[103], 2, 0));
    // A later group of single transfers: one spread run.
    let spread = singles(&[302, 300, 301], 3);
    for (first, run) in transfer_runs(&locations)
        .into_iter()
        .chain(transfer_runs(&spread))
    {
        writes.insert(PREFIX_TRANSFER, &id_key(first.0), run.to_bytes());
    }
    trees.apply(writes, "test").expect("applied");
    let expected = [
        (99, None),
        (100, Some((1, 0))),
        (101, Some((1, 1))),
        (102, Some((1, 2))),
        (103, Some((2, 0))),
        (104, None),
        (199, None),
        (200, Some((1, 3))),
        (201, None),
        (299, None),
        (300, Some((4, 0))),
        (301, Some((5, 0))),
        (302, Some((3, 0))),
        (303, None),
        (u128::MAX, None),
    ];
    for (id, location) in expected {
        assert_eq!(
            trees.transfer_location(TransferId(id)).expect("read"),
            location,
            "id {id}"
        );
    }
    // The filter built at open from this index holds every stored id, spread or packed.
    let filter = filter::build(&trees, &Arc::new(AtomicBool::new(false))).expect("built");
    for (id, location) in expected {
        if location.is_some() {
            assert!(filter.may_contain(id), "id {id}");
        }
    }
}

/// Located transfers of one group as the sequencer makes them: records in order from
/// `first_seq`, each holding some of `ids` (in the given order) at consecutive entries,
/// with some entries skipped (rolled-back linked events).
fn group_of(
    ids: &[u128],
    sizes: &[usize],
    skips: &[bool],
    first_seq: u64,
) -> Vec<(TransferId, u64, u32)> {
    let mut locations = Vec::new();
    let (mut seq, mut index, mut in_record) = (first_seq, 0u32, 0usize);
    let mut size = sizes.iter().cycle();
    let mut limit = *size.next().unwrap_or(&1);
    for (n, id) in ids.iter().enumerate() {
        if in_record == limit {
            seq += 1;
            (index, in_record) = (0, 0);
            limit = *size.next().unwrap_or(&1);
        }
        if skips.get(n).copied().unwrap_or(false) {
            index += 1;
        }
        locations.push((TransferId(*id), seq, index));
        index += 1;
        in_record += 1;
    }
    locations
}

proptest::proptest! {
    /// Whatever the ids (gaps, shuffles, the top of the id space), record sizes and
    /// skipped entries: every run decodes to itself, runs never overlap, and the run
    /// holding each id (the greatest first id at or below it) gives its exact location.
    #[test]
    fn transfer_runs_locate_every_id_exactly_and_never_overlap(
        start in proptest::prop_oneof![0u128..1_000, (u128::MAX - 600)..=u128::MAX - 300],
        gaps in proptest::collection::vec(proptest::prop_oneof![3 => proptest::strategy::Just(1u128), 1 => 2u128..5], 1..300),
        shuffle in proptest::collection::vec(0usize..300, 0..40),
        sizes in proptest::collection::vec(1usize..20, 1..8),
        skips in proptest::collection::vec(proptest::bool::weighted(0.05), 0..300),
        first_seq in proptest::prop_oneof![1u64..100, (u64::MAX - 100_000)..u64::MAX - 70_000],
    ) {
        let mut ids: Vec<u128> = gaps
            .iter()
            .scan(start, |id, gap| {
                *id = id.checked_add(*gap)?;
                Some(*id)
            })
            .collect();
        for (n, swap) in shuffle.iter().enumerate() {
            let len = ids.len();
            ids.swap(n % len, swap % len);
        }
        let locations = group_of(&ids, &sizes, &skips, first_seq);
        let runs = transfer_runs(&locations);
        let mut by_first = BTreeMap::new();
        for (first, run) in &runs {
            proptest::prop_assert_eq!(&decode_transfer_run(&run.to_bytes()).expect("decodes"), run);
            proptest::prop_assert!(by_first.insert(first.0, run.clone()).is_none());
        }
        let covered: u128 = runs.iter().map(|(_, run)| u128::from(run.len())).sum();
        proptest::prop_assert_eq!(covered, locations.len() as u128);
        for (id, seq, index) in &locations {
            let (first, run) = by_first.range(..=id.0).next_back().expect("a run at or below");
            let offset = u32::try_from(id.0 - first).expect("within a run");
            proptest::prop_assert_eq!(run.location(offset), Some((*seq, *index)), "id {}", id.0);
        }
    }
}
