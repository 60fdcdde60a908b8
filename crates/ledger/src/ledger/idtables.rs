//! Id tables: the transfer index's home for ids that are runs of one (see
//! [`PREFIX_ID_TABLE`]).
//!
//! A group with at least [`TABLE_IDS_MIN`] such ids writes them as one new table, sorted by
//! id and cut into pieces of about 4 KiB, in the group's own atomic batch: a full batch of
//! random ids costs a few dozen keys instead of 8,190 scattered ones. Fewer such ids stay
//! runs of one in [`PREFIX_TRANSFER`](super::trees::PREFIX_TRANSFER), where they cost what
//! they always did (a single transfer's group writes no table).
//!
//! A lookup that the id filter lets through probes each table, newest first, so the tables
//! must stay few. After each group that wrote a table, the committer merges the newest
//! tables while the one before them is not more than [`MERGE_RATIO`] times their size (see
//! [`merge_plan`]): table sizes then at least double from the newest to the oldest, so a
//! lookup probes at most about log2(ids / [`TABLE_IDS_MIN`]) tables, and an id is rewritten
//! about that many times over its life, 28 bytes each time. Tables of [`TABLE_MERGE_MAX`]
//! ids or more are left as they are, which bounds the work (and the pause of the committer)
//! one merge can cost to under three times that many ids; past that, lookups probe one more
//! table per [`TABLE_MERGE_MAX`] ids.
//!
//! A merge is one atomic batch: the merged table's pieces under the number of the oldest
//! table merged, the other tables' pieces and list entries removed. A crash before it is
//! durable leaves the tables it read, all of them whole; a crash after leaves the merged one.
//! Either way every id is in exactly one table.
//!
//! The merge runs on the committer's thread while the sequencer may look ids up: it moves ids
//! only into the oldest table it merges, which a lookup (newest first) probes after the
//! others, and a lookup finds each table and probes it by single reads of sled, each of which
//! sees the tree before or after the merge, never a mix (a longer sled scan could: it caches
//! the node it is in); so a lookup that starts before a merge and probes during it still
//! finds every id stored when it started. The id filter's build at
//! open scans the tables newest first for the same reason (see [`pieces_newest_first`]).
//! Public lookups take the visibility lock, which the merge holds too; a merge changes where
//! ids are, never which, so it needs no flush of its own before they see it.

use super::trees::{Entry, PREFIX_ID_TABLE, PREFIX_ID_TABLE_LIST, Trees, Writes, table_piece_key};
use crate::Error;
use crate::codec::{
    self, StoredRun, TABLE_PIECE_ENTRIES_MAX, TableEntry, decode_table_piece, table_piece_bytes,
};
use crate::model::TransferId;

/// Ids of a group that are runs of one, fewest that make a table: below that, their keys in
/// the run index cost little, and a table each would only make work for the merges.
pub(crate) const TABLE_IDS_MIN: usize = 128;

/// A merge takes in the next older table while that table holds at most this many times the
/// ids already being merged.
const MERGE_RATIO: u64 = 2;

/// Ids in a table from which on it is merged no more (see the module documentation).
pub(crate) const TABLE_MERGE_MAX: u64 = 1 << 20;

/// Splits a group's runs into those stored as runs and the entries of a new id table: the
/// runs of one when there are at least [`TABLE_IDS_MIN`] of them (else none). The entries
/// come sorted by id, as the runs do.
pub(super) fn split_runs(
    runs: Vec<(TransferId, StoredRun)>,
) -> (Vec<(TransferId, StoredRun)>, Vec<TableEntry>) {
    let single = |run: &StoredRun| matches!(run, StoredRun::Packed(packed) if packed.len == 1);
    let singles = runs.iter().filter(|(_, run)| single(run)).count();
    if singles < TABLE_IDS_MIN {
        return (runs, Vec::new());
    }
    let mut kept = Vec::with_capacity(runs.len() - singles);
    let mut entries = Vec::with_capacity(singles);
    for (first, run) in runs {
        match run {
            StoredRun::Packed(packed) if packed.len == 1 => entries.push(TableEntry {
                id: first.0,
                seq: packed.seq,
                index: packed.index,
            }),
            run => kept.push((first, run)),
        }
    }
    (kept, entries)
}

/// Adds table `table` holding `entries` (sorted by id, unique) to `writes`: its pieces and
/// its list entry.
pub(super) fn write_table(writes: &mut Writes, table: u64, entries: &[TableEntry]) {
    for (number, piece) in entries.chunks(TABLE_PIECE_ENTRIES_MAX).enumerate() {
        // The first piece's fence is 0 (see `PREFIX_ID_TABLE`).
        let fence = match (number, piece.first()) {
            (0, _) | (_, None) => 0,
            (_, Some(entry)) => entry.id,
        };
        writes.insert(
            PREFIX_ID_TABLE,
            &table_piece_key(table, fence),
            table_piece_bytes(piece),
        );
    }
    let len = u64::try_from(entries.len()).unwrap_or(u64::MAX);
    writes.insert(
        PREFIX_ID_TABLE_LIST,
        &table.to_be_bytes(),
        &len.to_le_bytes(),
    );
}

/// Which tables to merge: the position in `tables` (oldest first) from which on all are
/// merged into one, if that is two tables or more (see the module documentation).
pub(super) fn merge_plan(tables: &[(u64, u64)]) -> Option<usize> {
    let (&(_, newest), older) = tables.split_last()?;
    if newest >= TABLE_MERGE_MAX {
        return None;
    }
    let mut from = tables.len() - 1;
    let mut ids = newest;
    for &(_, len) in older.iter().rev() {
        if len >= TABLE_MERGE_MAX || len > ids.saturating_mul(MERGE_RATIO) {
            break;
        }
        ids = ids.saturating_add(len);
        from -= 1;
    }
    (from + 1 < tables.len()).then_some(from)
}

/// Every piece of every id table, the newest table first, for a scan that the writer's merges
/// may run beside (the id filter's build at open). A merge moves ids only into the oldest
/// table it merges, which this order reaches after the others, and the pieces of a table being
/// merged that the scan has not reached yet hold the merged ids: so the scan sees every id
/// stored when it starts (some perhaps twice).
pub(crate) fn pieces_newest_first(
    trees: &Trees,
) -> impl Iterator<Item = sled::Result<Entry>> + use<> {
    // Each piece by a read of its own (see `Space::before`): a sled iterator caches the node it
    // is in, and could see part of the tree as it was before a merge and part as after.
    let space = trees.id_tables.clone();
    let mut next_before: Option<Vec<u8>> = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let found = match &next_before {
            None => space.last(),
            Some(key) => space.before(key),
        };
        match found {
            Ok(Some((key, value))) => {
                next_before = Some(key.clone());
                Some(Ok((key, value)))
            }
            Ok(None) => {
                done = true;
                None
            }
            Err(error) => {
                done = true;
                Some(Err(error))
            }
        }
    })
}

/// Every entry of table `table` in id order, and the keys of its pieces.
pub(crate) fn read_table(
    trees: &Trees,
    table: u64,
) -> Result<(Vec<TableEntry>, Vec<Vec<u8>>), Error> {
    let mut entries = Vec::new();
    let mut keys = Vec::new();
    for item in trees.id_tables.scan_prefix(&table.to_be_bytes()) {
        let (key, bytes) = item.map_err(Error::storage("reading an id table"))?;
        let piece =
            decode_table_piece(&bytes).map_err(Error::corrupt(format!("id table {table}")))?;
        entries.extend(piece);
        keys.push(key);
    }
    Ok((entries, keys))
}

/// Merges `tables` (oldest first, two or more) into one under the oldest's number, in one
/// atomic batch (see the module documentation).
pub(super) fn merge(trees: &Trees, tables: &[(u64, u64)]) -> Result<Writes, Error> {
    let Some(&(into, _)) = tables.first() else {
        return Ok(Writes::default());
    };
    let mut writes = Writes::default();
    let mut entries = Vec::new();
    for &(table, _) in tables {
        let (table_entries, keys) = read_table(trees, table)?;
        entries.extend(table_entries);
        // Removed first: the merged table's pieces that land on the same keys replace them
        // (a batch keeps the last write of each key).
        for key in keys {
            writes.remove(PREFIX_ID_TABLE, &key);
        }
        if table != into {
            writes.remove(PREFIX_ID_TABLE_LIST, &table.to_be_bytes());
        }
    }
    // Each table is sorted: a stable sort merges the sorted runs in about linear time.
    entries.sort_by_key(|entry| entry.id);
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(Error::Corrupt {
            what: TransferId(pair[0].id).to_string(),
            source: codec::DecodeError {
                what: "id tables",
                detail: "stored in two id tables".into(),
            },
        });
    }
    write_table(&mut writes, into, &entries);
    Ok(writes)
}

#[cfg(test)]
mod tests;
