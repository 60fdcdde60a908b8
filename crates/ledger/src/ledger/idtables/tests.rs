//! Id tables: which ids go into one, lookups through their pieces, and merges.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::super::runs::transfer_runs;
use super::super::trees::open_db;
use super::*;
use crate::codec::{TransferRun, decode_table_piece};
use crate::filter;

fn trees(dir: &tempfile::TempDir) -> Trees {
    Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees")
}

/// `n` scattered ids from `from` on, unique (an odd multiplier), none consecutive.
fn scattered(from: u128, n: u128) -> Vec<u128> {
    (from..from + n)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1 << 127)
        .collect()
}

/// Entries for `ids`, at consecutive entries of record `seq`, sorted by id.
fn entries(ids: &[u128], seq: u64) -> Vec<TableEntry> {
    let mut entries: Vec<TableEntry> = ids
        .iter()
        .zip(0u32..)
        .map(|(id, index)| TableEntry {
            id: *id,
            seq,
            index,
        })
        .collect();
    entries.sort_unstable_by_key(|entry| entry.id);
    entries
}

fn write(trees: &Trees, table: u64, entries: &[TableEntry]) {
    let mut writes = Writes::default();
    write_table(&mut writes, table, entries);
    trees.apply(writes, "test").expect("applied");
}

#[test]
fn only_enough_runs_of_one_make_a_table() {
    let located = |ids: &[u128]| -> Vec<(TransferId, u64, u32)> {
        ids.iter()
            .zip(0u32..)
            .map(|(id, index)| (TransferId(*id), 1, index))
            .collect()
    };
    let few = scattered(0, TABLE_IDS_MIN as u128 - 1);
    let (runs, table) = split_runs(transfer_runs(&located(&few)));
    assert_eq!((runs.len(), table.len()), (few.len(), 0));

    // Enough scattered ids, then a batch of ordered ones in the same record: the ordered ones
    // stay one packed run, the scattered ones become the table, sorted.
    let mut ids = scattered(0, TABLE_IDS_MIN as u128);
    ids.extend(10..20);
    let (runs, table) = split_runs(transfer_runs(&located(&ids)));
    assert_eq!(
        runs,
        [(
            TransferId(10),
            StoredRun::Packed(TransferRun {
                seq: 1,
                index: TABLE_IDS_MIN as u32,
                len: 10
            })
        )]
    );
    assert_eq!(table, entries(&ids[..TABLE_IDS_MIN], 1));
}

#[test]
fn a_table_of_several_pieces_finds_each_of_its_ids_and_no_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = trees(&dir);
    let ids = scattered(0, 3 * TABLE_PIECE_ENTRIES_MAX as u128 + 5);
    let table = entries(&ids, 7);
    write(&trees, 3, &table);
    // A table before and one after it, so a probe could stray into a neighbour.
    write(&trees, 2, &entries(&scattered(10_000, 200), 5));
    write(&trees, 4, &entries(&scattered(20_000, 200), 9));
    assert_eq!(trees.id_tables.scan_prefix(&3u64.to_be_bytes()).count(), 4);
    for entry in &table {
        let id = TransferId(entry.id);
        let location = Some((entry.seq, entry.index));
        assert_eq!(trees.table_location(3, id).expect("read"), location);
        assert_eq!(trees.transfer_location(id).expect("read"), location);
        assert_eq!(trees.table_location(2, id).expect("read"), None);
        assert_eq!(trees.table_location(4, id).expect("read"), None);
    }
    for absent in [0, 1, u128::MAX, ids[0] ^ 2, ids[1] - 1, ids[2] + 1] {
        assert_eq!(
            trees.transfer_location(TransferId(absent)).expect("read"),
            None
        );
    }
    assert_eq!(
        trees.id_table_list().expect("listed"),
        [(2, 200), (3, table.len() as u64), (4, 200)]
    );
    // The filter built at open holds every id of every table.
    let filter = filter::build(&trees, &Arc::new(AtomicBool::new(false))).expect("built");
    assert!(table.iter().all(|entry| filter.may_contain(entry.id)));
}

#[test]
fn merges_keep_tables_few_and_at_least_doubling() {
    assert_eq!(merge_plan(&[]), None);
    assert_eq!(merge_plan(&[(1, 500)]), None);
    // The older table holds at most twice the newer: both merge.
    assert_eq!(merge_plan(&[(1, 1_000), (2, 500)]), Some(0));
    assert_eq!(merge_plan(&[(1, 1_001), (2, 500)]), None);
    // A cascade: 128 + 200 = 328, 500 ≤ 656, then 4,000 > 2 × 828.
    assert_eq!(
        merge_plan(&[(1, 4_000), (2, 500), (3, 200), (4, 128)]),
        Some(1)
    );
    // Tables of TABLE_MERGE_MAX ids or more are never merged.
    assert_eq!(
        merge_plan(&[(1, TABLE_MERGE_MAX), (2, TABLE_MERGE_MAX)]),
        None
    );
    assert_eq!(
        merge_plan(&[(1, TABLE_MERGE_MAX), (2, 200), (3, 300)]),
        Some(1)
    );
    // Sequences of full batches: the tables stay at most log2 of the batches, plus one.
    let mut tables: Vec<(u64, u64)> = Vec::new();
    for number in 1..=100u64 {
        tables.push((number, 8_190));
        if let Some(from) = merge_plan(&tables) {
            let ids = tables.drain(from..).map(|(_, len)| len).sum();
            let into = tables.len() as u64;
            tables.push((into, ids));
        }
        assert!(tables.len() <= 8, "{} tables after {number}", tables.len());
        assert!(tables.windows(2).all(|pair| pair[0].1 > 2 * pair[1].1));
    }
}

#[test]
fn a_merge_moves_every_id_into_the_oldest_table_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = trees(&dir);
    let old = entries(&scattered(0, 400), 1);
    let new = entries(&scattered(400, 300), 2);
    write(&trees, 5, &old);
    write(&trees, 6, &new);
    // What a lookup that started before the merge has listed.
    let listed = trees.id_table_list().expect("listed");
    assert_eq!(listed, [(5, 400), (6, 300)]);
    let writes = merge(&trees, &listed).expect("merged");
    trees.apply(writes, "test").expect("applied");
    assert_eq!(trees.id_table_list().expect("listed"), [(5, 700)]);
    assert_eq!(trees.id_tables.scan_prefix(&6u64.to_be_bytes()).count(), 0);
    let (merged, _) = read_table(&trees, 5).expect("read");
    let mut expected = old.clone();
    expected.extend(&new);
    expected.sort_unstable_by_key(|entry| entry.id);
    assert_eq!(merged, expected);
    for entry in &expected {
        let id = TransferId(entry.id);
        // The newer table is gone (a probe of it finds nothing, not another table's piece);
        // the older one, probed last, holds everything.
        assert_eq!(trees.table_location(6, id).expect("read"), None);
        assert_eq!(
            trees.table_location(5, id).expect("read"),
            Some((entry.seq, entry.index))
        );
    }
    // Every piece is whole and within 4 KiB.
    for item in trees.id_tables.iter() {
        let (_, bytes) = item.expect("read");
        assert!(bytes.len() <= 4096);
        decode_table_piece(&bytes).expect("a piece");
    }
}

#[test]
fn a_merge_refuses_an_id_stored_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = trees(&dir);
    let ids = scattered(0, 200);
    write(&trees, 1, &entries(&ids, 1));
    write(&trees, 2, &entries(&ids[..150], 2));
    let listed = trees.id_table_list().expect("listed");
    assert!(matches!(merge(&trees, &listed), Err(Error::Corrupt { .. })));
}

#[test]
fn a_scan_of_the_tables_newest_first_sees_every_id_whatever_merge_lands_during_it() {
    // Tables 1, 2 and 3 of 14, 21 and 21 pieces (over many of sled's nodes: an iterator sees
    // the node it is in as it was); the committer merges 2 and 3 into 2 after the scan has
    // read `read` pieces, for every `read`.
    let tables = [
        (1, scattered(0, 2_000)),
        (2, scattered(10_000, 3_000)),
        (3, scattered(20_000, 3_000)),
    ];
    let pieces: usize = tables
        .iter()
        .map(|(_, ids)| ids.len().div_ceil(TABLE_PIECE_ENTRIES_MAX))
        .sum();
    for read in 0..=pieces {
        let dir = tempfile::tempdir().expect("tempdir");
        let trees = trees(&dir);
        for (table, ids) in &tables {
            write(&trees, *table, &entries(ids, *table));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut scan = pieces_newest_first(&trees);
        let mut take = |item: Option<sled::Result<Entry>>| {
            let Some(item) = item else { return false };
            let (_, bytes) = item.expect("read");
            seen.extend(
                decode_table_piece(&bytes)
                    .expect("a piece")
                    .iter()
                    .map(|e| e.id),
            );
            true
        };
        for _ in 0..read {
            take(scan.next());
        }
        let listed = trees.id_table_list().expect("listed");
        let writes = merge(&trees, listed.get(1..).expect("three tables")).expect("merged");
        trees.apply(writes, "test").expect("applied");
        while take(scan.next()) {}
        for (table, ids) in &tables {
            let missed = ids.iter().filter(|id| !seen.contains(id)).count();
            assert_eq!(
                missed, 0,
                "{missed} ids of table {table} missed after {read} pieces"
            );
        }
    }
}
