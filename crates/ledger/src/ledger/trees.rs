//! The ledger's storage: its sled trees, the spaces of the state tree (one key prefix per kind
//! of record), the format version, and opening and syncing the database. The writer, the
//! recovery at open, the id filter and the offline tools all read through [`Trees`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::durable_log::{self, RECORD_PAYLOAD_MAX};
use crate::Error;
use crate::codec::{
    self, decode_account, decode_balance, decode_expiry_key, decode_pending_status,
    decode_transfer, decode_transfer_run, expiry_key, id_key,
};
use crate::journal::{self, JOURNAL_CHUNK_LEN, RECORD_HEADER_LEN, chunk_key, decode_chunk_key};
use crate::model::{
    Account, AccountBalance, AccountId, PendingStatus, Timestamp, Transfer, TransferId,
};
use crate::state_machine::{Clock, Store};

/// Ledger format version stored in the meta tree. Version 2 stored, per transfer id, only
/// the transfer's location in the journal instead of a copy of the transfer; version 3 stores
/// one location per run of consecutive ids (see [`PREFIX_TRANSFER`]); version 4 packs short
/// journal records of one group commit into shared chunks (see [`crate::journal`]); version 5
/// adds spread runs to the transfer index (see [`PREFIX_TRANSFER`]); version 6 adds the failed
/// transfer ids ([`PREFIX_FAILED`]), the last account and transfer timestamps
/// ([`META_LAST_EVENT_TIMESTAMPS`]), the flags of issue 13 (balancing, closing, imported,
/// closed), which fit the flag bits records already had, and signed heads (see
/// [`PREFIX_SIGNED_HEAD`]); version 7 adds the id tables of the transfer index (see
/// [`PREFIX_ID_TABLE`]) and the ledger's durable log, a file beside sled's that may hold
/// acknowledged groups sled does not (yet) hold, which the writer and the offline tools apply
/// at open; version 8 adds the callers' records ([`PREFIX_RECORD`]), which a node keeps its
/// payment state in: an older build would open such a ledger, ignore them and start a payment
/// store of its own, losing every payment in flight, so it must refuse it.
pub(crate) const FORMAT_VERSION: u8 = 8;

/// The first version whose ledgers always have a durable log (see [`durable_log::recover`]).
pub(crate) const FORMAT_VERSION_DURABLE_LOG: u8 = 7;

/// Older formats this build still reads: a version 7 database is a version 8 one without
/// records, a version 6 database is a version 7 one without id
/// tables whose durable log is empty (the writer creates the log before it stores the new
/// version), a version 5 database is a version 6 one that no transfer failed in, that holds
/// none of the new flags and no signed head, a version 4 database is a version 5 one without
/// spread runs, and a version 3 journal is a version 4 journal whose frames each hold one
/// record. The writer upgrades the stored version when it opens one (before it writes anything
/// newer), so older builds, which would ignore failed ids and id tables, misread the new flags,
/// write records without ever signing them, or read sled without the groups only the durable
/// log holds, refuse the database from then on.
pub(crate) const FORMAT_VERSIONS_UPGRADABLE: [u8; 5] = [3, 4, 5, 6, 7];

/// The sled tree holding all ledger state. One tree, with a one-byte prefix per kind of
/// record, so that a group commit that sled makes durable is a single `Tree::apply_batch`:
/// sled pins its log for the batch and recovers it whole or not at all, the same mechanism its
/// multi-tree transactions use, without their staging copy of every write (measured: about
/// half the commit time). A group the durable log makes durable is whole through the log
/// instead (see [`durable_log::apply_in_order`]).
pub(crate) const TREE_STATE: &str = "ledger";
/// Signed checkpoints, written after the group they cover (see `Committer::checkpoint`).
pub(crate) const TREE_CHECKPOINTS: &str = "checkpoints";

pub(crate) const PREFIX_ACCOUNT: u8 = b'a';
pub(crate) const PREFIX_EXPIRY: u8 = b'e';
/// Transfer id → nothing: an event with this id failed with a transient result, so a retry
/// of the id is `id_already_failed`. Written in the same atomic batch as the group whose
/// event failed (even a group that changed nothing else), so the failure is durable exactly
/// when its result is acknowledged. Not journaled: no money moved.
pub(crate) const PREFIX_FAILED: u8 = b'f';
pub(crate) const PREFIX_HISTORY: u8 = b'h';
/// Id table number (u64, big-endian) and fence id (u128, big-endian) → one piece of the
/// table ([`codec::decode_table_piece`]): the entries (id, record seq, entry index) whose
/// ids are at or above the fence and below the next piece's fence, sorted by id. The first
/// piece's fence is 0, so the piece at or before `table || id` always belongs to `table`.
///
/// Why tables: ids that are runs of one (random ids, hashes of a payment reference) cost one
/// index key each in [`PREFIX_TRANSFER`], and sled inserting thousands of scattered keys was
/// most of a full batch's commit time. A group with at least
/// [`TABLE_IDS_MIN`](super::idtables::TABLE_IDS_MIN) such ids stores them instead as one new
/// sorted table, a piece per [`codec::TABLE_PIECE_ENTRIES_MAX`] entries (about 4 KiB), in the
/// group's own atomic batch; the committer merges tables between groups so that few remain
/// (see [`super::idtables`]). Every id is stored once: in a run or in one table.
pub(crate) const PREFIX_ID_TABLE: u8 = b'i';
pub(crate) const PREFIX_JOURNAL: u8 = b'j';
/// Id table number (u64, big-endian) → its entry count (u64, little-endian): the list of the
/// tables of [`PREFIX_ID_TABLE`], written in the same batch as their pieces.
pub(crate) const PREFIX_ID_TABLE_LIST: u8 = b'l';
pub(crate) const PREFIX_META: u8 = b'm';
pub(crate) const PREFIX_PENDING: u8 = b'p';
/// A caller's key → its value: records the caller keeps with its transfers (a node's payment
/// state), written by [`Ledger::create_transfers_with`](crate::Ledger::create_transfers_with)
/// in the group of the transfers they go with, or by
/// [`Ledger::write_records`](crate::Ledger::write_records), and made durable by the same
/// durable log record or sled batch. Not ledger state: not journaled, hashed, signed or
/// exported, and the audit, which checks every space it knows, reads none of them.
pub(crate) const PREFIX_RECORD: u8 = b'r';
/// Journal record seq (big-endian) → the [`SignedHead`](crate::journal::SignedHead) over it,
/// written in the batch of the group whose head it signs (see `Committer::commit`).
pub(crate) const PREFIX_SIGNED_HEAD: u8 = b's';
/// First id of a run of consecutive transfer ids → where the run's transfers sit in the
/// journal. The journal already holds every transfer in full, so the index only locates
/// entries; the rare reads (duplicate ids, post/void, expiry, lookups) fetch the journal chunk
/// that holds the entry. A run is stored one of two ways ([`codec::StoredRun`]):
///
/// - packed: consecutive entries of one record (record seq, entry index of the first id,
///   length; [`codec::TransferRun`]), what one caller's batch of ordered ids gives;
/// - spread: each id's own record and entry, for records of one group commit
///   ([`codec::SpreadRun`]), what many callers drawing ids from one counter give.
///
/// Why runs: sled pays for every key it inserts (a tree descent, a copy of the leaf, a split
/// every eight appends, and the log bytes of all that), and one key per transfer was most of a
/// commit's time, for full batches and for many single-transfer callers alike. Callers that
/// allocate ids in order (TigerBeetle's advice, and what a counter or a time-based id gives)
/// store a whole batch, or a whole group of callers, as one key; random ids make runs of one,
/// which a group with many of them stores in an id table instead (see [`PREFIX_ID_TABLE`]).
/// Runs never overlap, because every id is stored only once, so the run holding an id is the
/// one with the greatest first id at or below it.
pub(crate) const PREFIX_TRANSFER: u8 = b't';

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_VERIFYING_KEY: &[u8] = b"verifying_key";
pub(crate) const META_HEAD: &[u8] = b"head";
pub(crate) const META_LAST_TIMESTAMP: &[u8] = b"last_timestamp";
/// The timestamps of the last account and transfer created (two little-endian u64s): an
/// imported event must follow the last of its kind. Absent before version 6; then both are
/// taken to be the last timestamp.
pub(crate) const META_LAST_EVENT_TIMESTAMPS: &[u8] = b"last_event_timestamps";
/// The journal record the stored account snapshot is exact for (see [`crate::recovery`]).
pub(crate) const META_ACCOUNTS_SEQ: &[u8] = b"accounts_seq";
/// The sequence number of the last group commit written (u64, little-endian), in every
/// group's batch: the durable log's records after it are the groups sled lacks (see
/// [`durable_log`]). Absent before version 7 and before the first group: 0.
pub(crate) const META_LOG_SEQ: &[u8] = b"log_seq";

/// One kind of record inside the state tree: keys are `prefix || key`.
#[derive(Clone)]
pub(crate) struct Space {
    tree: sled::Tree,
    prefix: u8,
}

/// A stored entry with the space prefix stripped from its key.
pub(crate) type Entry = (Vec<u8>, sled::IVec);

impl Space {
    pub(crate) fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(self.prefix);
        full.extend_from_slice(key);
        full
    }

    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<sled::IVec>> {
        self.tree.get(self.key(key.as_ref()))
    }

    fn strip(item: sled::Result<(sled::IVec, sled::IVec)>) -> sled::Result<Entry> {
        item.map(|(key, value)| (key.get(1..).unwrap_or_default().to_vec(), value))
    }

    /// Every entry of the space in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = sled::Result<Entry>> + use<> {
        self.tree.scan_prefix([self.prefix]).map(Self::strip)
    }

    /// Entries whose key starts with `sub`.
    pub(crate) fn scan_prefix(
        &self,
        sub: &[u8],
    ) -> impl Iterator<Item = sled::Result<Entry>> + use<> {
        self.tree.scan_prefix(self.key(sub)).map(Self::strip)
    }

    /// Entries whose key starts with `sub`, after key `after` (from the first when `None`).
    pub(crate) fn scan_prefix_after(
        &self,
        sub: &[u8],
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = sled::Result<Entry>> + use<> {
        let start = self.key(sub);
        // A key before the prefix's first would stop the scan at once: start at the prefix.
        let from = match after.map(|after| self.key(after)) {
            Some(after) if after >= start => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(start.clone()),
        };
        self.tree
            .range((from, std::ops::Bound::Unbounded))
            .take_while(move |item| {
                item.as_ref()
                    .map_or(true, |(key, _)| key.starts_with(&start))
            })
            .map(Self::strip)
    }

    /// Entries with keys up to and including `end`.
    pub(crate) fn range_through(
        &self,
        end: &[u8],
    ) -> impl Iterator<Item = sled::Result<Entry>> + use<> {
        self.tree
            .range(vec![self.prefix]..=self.key(end))
            .map(Self::strip)
    }

    /// Entries from key `start` (inclusive) to the end of the space.
    pub(crate) fn iter_from(
        &self,
        start: &[u8],
    ) -> impl Iterator<Item = sled::Result<Entry>> + use<> {
        let prefix = self.prefix;
        self.tree
            .range(self.key(start)..)
            .take_while(move |item| {
                item.as_ref()
                    .map_or(true, |(key, _)| key.first() == Some(&prefix))
            })
            .map(Self::strip)
    }

    /// The entry with the greatest key at or before `key`.
    pub(crate) fn at_or_before(&self, key: &[u8]) -> sled::Result<Option<Entry>> {
        self.tree
            .range(vec![self.prefix]..=self.key(key))
            .next_back()
            .transpose()
            .map(|entry| {
                entry.map(|(key, value)| (key.get(1..).unwrap_or_default().to_vec(), value))
            })
    }

    /// The entry with the greatest key strictly before `key`. One step of a fresh iterator,
    /// so one consistent view of the tree: a longer sled scan caches the node it is in, and
    /// may see it as it was before a batch applied meanwhile.
    pub(crate) fn before(&self, key: &[u8]) -> sled::Result<Option<Entry>> {
        self.tree
            .range(vec![self.prefix]..self.key(key))
            .next_back()
            .transpose()
            .map(|entry| {
                entry.map(|(key, value)| (key.get(1..).unwrap_or_default().to_vec(), value))
            })
    }

    pub(crate) fn last(&self) -> sled::Result<Option<Entry>> {
        self.iter().next_back().transpose()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Counts entries by scanning: offline tools only.
    pub(crate) fn count(&self) -> Result<u64, Error> {
        let mut count = 0u64;
        for item in self.iter() {
            item.map_err(Error::storage("counting entries"))?;
            count = count.saturating_add(1);
        }
        Ok(count)
    }
}

/// One write of a group, in the order it was made: a full key (with its space prefix), and
/// the value (`None`: a removal).
pub(crate) type KeyWrite = (Vec<u8>, Option<sled::IVec>);

/// A batch of writes to the state tree, addressed by space. While the writes fit in a durable
/// log record (see [`durable_log`]), they are kept in order and encoded as the record's
/// payload, and no sled batch is built (a logged group is applied key by key); once they do
/// not, they move into a sled batch.
pub(crate) struct Writes {
    /// The writes in order, while they fit in a record.
    ordered: Vec<KeyWrite>,
    /// The writes as a sled batch, once they do not.
    batch: Option<sled::Batch>,
    /// Inserts and removals made.
    pub(super) len: usize,
    /// `ordered` encoded as a durable log record's payload; `None` once the writes do not fit
    /// in one.
    record: Option<Vec<u8>>,
}

impl Default for Writes {
    fn default() -> Self {
        Self {
            ordered: Vec::new(),
            batch: None,
            len: 0,
            record: Some(Vec::new()),
        }
    }
}

impl Writes {
    /// Writes that are never logged (a replay of the log's own records).
    pub(super) fn without_record() -> Self {
        Self {
            batch: Some(sled::Batch::default()),
            record: None,
            ..Self::default()
        }
    }

    pub(crate) fn insert(&mut self, prefix: u8, key: &[u8], value: impl Into<sled::IVec>) {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(prefix);
        full.extend_from_slice(key);
        self.insert_full(full, value.into());
    }

    pub(crate) fn remove(&mut self, prefix: u8, key: &[u8]) {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(prefix);
        full.extend_from_slice(key);
        self.remove_full(full);
    }

    /// Inserts under a key that carries its space prefix.
    pub(super) fn insert_full(&mut self, key: Vec<u8>, value: sled::IVec) {
        self.len = self.len.saturating_add(1);
        if let Some(record) = &mut self.record
            && record.len() + durable_log::insert_len(&key, &value) <= RECORD_PAYLOAD_MAX
        {
            durable_log::encode_insert(record, &key, &value);
            self.ordered.push((key, Some(value)));
            return;
        }
        self.batch().insert(key, value);
    }

    /// Removes a key that carries its space prefix.
    pub(super) fn remove_full(&mut self, key: Vec<u8>) {
        self.len = self.len.saturating_add(1);
        if let Some(record) = &mut self.record
            && record.len() + durable_log::insert_len(&key, &[]) <= RECORD_PAYLOAD_MAX
        {
            durable_log::encode_remove(record, &key);
            self.ordered.push((key, None));
            return;
        }
        self.batch().remove(key);
    }

    /// The sled batch, built from the ordered writes the first time (they no longer fit in a
    /// record, or are applied as a batch).
    fn batch(&mut self) -> &mut sled::Batch {
        self.record = None;
        let ordered = std::mem::take(&mut self.ordered);
        self.batch.get_or_insert_with(|| {
            let mut batch = sled::Batch::default();
            for (key, value) in ordered {
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
            batch
        })
    }

    /// The writes as a durable log record's payload, if they fit in one.
    pub(super) fn record(&self) -> Option<&[u8]> {
        self.record.as_deref()
    }

    /// The record's payload and the writes in order, if they fit in a record; otherwise the
    /// writes as they are.
    pub(super) fn into_logged(self) -> Result<(Vec<u8>, Vec<KeyWrite>), Self> {
        match self.record {
            Some(record) => Ok((record, self.ordered)),
            None => Err(self),
        }
    }
}

/// Key of the piece of id table `table` whose fence is `fence` (see [`PREFIX_ID_TABLE`]).
pub(crate) fn table_piece_key(table: u64, fence: u128) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&table.to_be_bytes());
    key[8..].copy_from_slice(&fence.to_be_bytes());
    key
}

/// The trees of one ledger database, and the spaces of its state tree.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) state: sled::Tree,
    pub(crate) accounts: Space,
    pub(crate) transfers: Space,
    pub(crate) id_tables: Space,
    pub(crate) id_table_list: Space,
    pub(crate) pending: Space,
    pub(crate) records: Space,
    pub(crate) expiry: Space,
    pub(crate) failed: Space,
    pub(crate) history: Space,
    pub(crate) journal: Space,
    pub(crate) meta: Space,
    pub(crate) signed_heads: Space,
    pub(crate) checkpoints: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: sled::Db) -> Result<Self, Error> {
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(Error::storage(format!("opening tree {name}")))
        };
        let state = tree(TREE_STATE)?;
        let space = |prefix| Space {
            tree: state.clone(),
            prefix,
        };
        Ok(Self {
            accounts: space(PREFIX_ACCOUNT),
            transfers: space(PREFIX_TRANSFER),
            id_tables: space(PREFIX_ID_TABLE),
            id_table_list: space(PREFIX_ID_TABLE_LIST),
            pending: space(PREFIX_PENDING),
            records: space(PREFIX_RECORD),
            expiry: space(PREFIX_EXPIRY),
            failed: space(PREFIX_FAILED),
            history: space(PREFIX_HISTORY),
            journal: space(PREFIX_JOURNAL),
            meta: space(PREFIX_META),
            signed_heads: space(PREFIX_SIGNED_HEAD),
            checkpoints: tree(TREE_CHECKPOINTS)?,
            state,
            db,
        })
    }

    /// Applies one group's writes atomically (see [`TREE_STATE`]).
    pub(crate) fn apply(&self, mut writes: Writes, context: &str) -> Result<(), Error> {
        let batch = std::mem::take(writes.batch());
        self.state
            .apply_batch(batch)
            .map_err(Error::storage(context))
    }

    pub(crate) fn account(&self, id: AccountId) -> Result<Option<Account>, Error> {
        let bytes = self
            .accounts
            .get(id_key(id.0))
            .map_err(Error::storage("reading an account"))?;
        bytes
            .map(|bytes| decode_account(&bytes).map_err(Error::corrupt(id.to_string())))
            .transpose()
    }

    /// Where `id` is in the journal, if it is stored: in a run (see [`PREFIX_TRANSFER`]) or
    /// in an id table (see [`PREFIX_ID_TABLE`]).
    pub(crate) fn transfer_location(&self, id: TransferId) -> Result<Option<(u64, u32)>, Error> {
        if let Some(location) = self.run_location(id)? {
            return Ok(Some(location));
        }
        // Newest table first, each found by one read: the newest table below the last one
        // probed. A merge running meanwhile (the committer's, while the sequencer looks up)
        // moves ids only into the oldest table it merges, at or below where they were, so the
        // walk, going down, never passes an id stored when the lookup starts (see
        // `super::idtables`).
        let mut below: Option<u64> = None;
        loop {
            let newest = match below {
                None => self.id_tables.last(),
                Some(0) => return Ok(None),
                Some(table) => self.id_tables.before(&table_piece_key(table, 0)),
            };
            let Some((key, _)) = newest.map_err(Error::storage("reading an id table"))? else {
                return Ok(None);
            };
            let table = key
                .first_chunk::<8>()
                .map(|bytes| u64::from_be_bytes(*bytes))
                .ok_or_else(|| Error::Corrupt {
                    what: "id table key".into(),
                    source: codec::DecodeError {
                        what: "id table key",
                        detail: format!("{} bytes, expected 24", key.len()),
                    },
                })?;
            if let Some(location) = self.table_location(table, id)? {
                return Ok(Some(location));
            }
            below = Some(table);
        }
    }

    /// Where `id` is according to `tables` (number, entries; oldest first), probed newest
    /// first: for a reader beside which nothing writes.
    fn tables_location(
        &self,
        id: TransferId,
        tables: &[(u64, u64)],
    ) -> Result<Option<(u64, u32)>, Error> {
        for (table, _) in tables.iter().rev() {
            if let Some(location) = self.table_location(*table, id)? {
                return Ok(Some(location));
            }
        }
        Ok(None)
    }

    /// Transfer `id`, looked up in the runs and in `tables` as [`Self::id_table_list`] gave
    /// them: for a reader beside which nothing writes (the offline audit), which lists the
    /// tables once rather than at every lookup.
    pub(crate) fn transfer_in_tables(
        &self,
        id: TransferId,
        tables: &[(u64, u64)],
    ) -> Result<Option<Transfer>, Error> {
        let location = match self.run_location(id)? {
            Some(location) => Some(location),
            None => self.tables_location(id, tables)?,
        };
        location
            .map(|(seq, index)| self.transfer_at(id, seq, index))
            .transpose()
    }

    /// The id tables (number, entries), oldest first (see [`PREFIX_ID_TABLE_LIST`]).
    pub(crate) fn id_table_list(&self) -> Result<Vec<(u64, u64)>, Error> {
        self.id_table_list
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(Error::storage("listing id tables"))?;
                let corrupt = |detail: String| Error::Corrupt {
                    what: "id table list".into(),
                    source: codec::DecodeError {
                        what: "id table list",
                        detail,
                    },
                };
                let table = <[u8; 8]>::try_from(key.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| corrupt(format!("key of {} bytes, expected 8", key.len())))?;
                let len = <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_le_bytes)
                    .map_err(|_| corrupt(format!("value of {} bytes, expected 8", value.len())))?;
                Ok((table, len))
            })
            .collect()
    }

    /// Where `id` is according to id table `table` (see [`PREFIX_ID_TABLE`]); `None` if the
    /// table does not hold it or no longer exists.
    pub(crate) fn table_location(
        &self,
        table: u64,
        id: TransferId,
    ) -> Result<Option<(u64, u32)>, Error> {
        let found = self
            .id_tables
            .at_or_before(&table_piece_key(table, id.0))
            .map_err(Error::storage("reading an id table"))?;
        let Some((key, bytes)) = found else {
            return Ok(None);
        };
        // The first piece's fence is 0, so a piece of an earlier table means `table` is gone
        // (merged into an older one).
        if key.get(..8) != Some(&table.to_be_bytes()[..]) {
            return Ok(None);
        }
        let entries = codec::decode_table_piece(&bytes)
            .map_err(Error::corrupt(format!("id table {table}")))?;
        Ok(entries
            .binary_search_by_key(&id.0, |entry| entry.id)
            .ok()
            .and_then(|at| entries.get(at))
            .map(|entry| (entry.seq, entry.index)))
    }

    /// The stored run that would hold `id`, if `id` is stored in one (see
    /// [`PREFIX_TRANSFER`]).
    fn run_location(&self, id: TransferId) -> Result<Option<(u64, u32)>, Error> {
        let key = id_key(id.0);
        // A run that starts at `id` holds it: a point read finds it, cheaper than sled's
        // reverse range scan. Random ids (UETR-derived ones, for instance) are runs of one, so
        // every stored one is found here.
        if let Some(bytes) = self
            .transfers
            .get(key)
            .map_err(Error::storage("reading a transfer"))?
        {
            let run = decode_transfer_run(&bytes).map_err(Error::corrupt(id.to_string()))?;
            return Ok(run.location(0));
        }
        let Some((key, bytes)) = self
            .transfers
            .at_or_before(&key)
            .map_err(Error::storage("reading a transfer"))?
        else {
            return Ok(None);
        };
        let first =
            codec::key_u128(&key, "transfer run key").map_err(Error::corrupt(id.to_string()))?;
        let run = decode_transfer_run(&bytes).map_err(Error::corrupt(id.to_string()))?;
        // Runs never overlap (each id is stored once), so only this run can hold `id`.
        let Some(offset) =
            id.0.checked_sub(first)
                .filter(|offset| *offset < u128::from(run.len()))
        else {
            return Ok(None);
        };
        // Below `run.len()`, a u32.
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        Ok(run.location(offset))
    }

    pub(crate) fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        let Some((seq, index)) = self.transfer_location(id)? else {
            return Ok(None);
        };
        self.transfer_at(id, seq, index).map(Some)
    }

    /// Transfer `id`, which the index places at entry `index` of record `seq`.
    pub(crate) fn transfer_at(
        &self,
        id: TransferId,
        seq: u64,
        index: u32,
    ) -> Result<Transfer, Error> {
        let transfer = self.journal_transfer(seq, index, id)?;
        if transfer.id != id {
            return Err(Error::Corrupt {
                what: id.to_string(),
                source: codec::DecodeError {
                    what: "transfer location",
                    detail: format!(
                        "entry {index} of journal record {seq} is {}, not this transfer",
                        transfer.id
                    ),
                },
            });
        }
        Ok(transfer)
    }

    /// Reads entry `index` of transfer record `seq` from the journal chunks that hold it.
    fn journal_transfer(&self, seq: u64, index: u32, id: TransferId) -> Result<Transfer, Error> {
        let located = |detail: String| Error::Corrupt {
            what: id.to_string(),
            source: codec::DecodeError {
                what: "transfer location",
                detail,
            },
        };
        let start = usize::try_from(index)
            .ok()
            .and_then(|index| index.checked_mul(codec::TRANSFER_LEN))
            .and_then(|offset| offset.checked_add(RECORD_HEADER_LEN))
            .ok_or_else(|| located(format!("entry index {index} is out of range")))?;
        let end = start + codec::TRANSFER_LEN;
        let decode = |bytes: &[u8]| {
            decode_transfer(bytes).map_err(Error::corrupt(format!("{id} in journal record {seq}")))
        };
        let entry = |record: &[u8]| -> Result<Transfer, Error> {
            let bytes = record
                .get(start..end)
                .ok_or_else(|| located(format!("journal record {seq} has no entry {index}")))?;
            decode(bytes)
        };
        let read = |chunk: u32| {
            self.journal
                .get(chunk_key(seq, chunk))
                .map_err(Error::storage("reading a transfer from the journal"))
        };
        // Most records start a key of their own; one that shares a frame with earlier
        // records (see `crate::journal`) is found through the frame.
        let Some(first) = read(0)? else {
            let record = self
                .framed_record(seq)?
                .ok_or_else(|| located(format!("journal record {seq} is not stored")))?;
            return entry(&record);
        };
        let (records, _) = journal::frame_records(&first);
        if let Some(record) = records.first() {
            // The record is whole within its first chunk.
            return entry(record);
        }
        let mut bytes = Vec::with_capacity(codec::TRANSFER_LEN);
        for chunk in start / JOURNAL_CHUNK_LEN..=(end - 1) / JOURNAL_CHUNK_LEN {
            let chunk_index = u32::try_from(chunk)
                .map_err(|_| located(format!("entry index {index} is out of range")))?;
            let value = match chunk_index {
                0 => first.clone(),
                _ => read(chunk_index)?
                    .ok_or_else(|| located(format!("journal record {seq} has no chunk {chunk}")))?,
            };
            let chunk_start = chunk * JOURNAL_CHUNK_LEN;
            let from = start.saturating_sub(chunk_start).min(value.len());
            let to = (end - chunk_start).min(value.len());
            bytes.extend_from_slice(value.get(from..to).unwrap_or_default());
        }
        decode(&bytes)
    }

    /// Record `seq` if it is stored whole within one chunk (alone or in a frame with others,
    /// see [`crate::journal`]); `None` if it spans chunks of its own, or is not stored.
    fn framed_record(&self, seq: u64) -> Result<Option<Vec<u8>>, Error> {
        let corrupt = |detail: String| Error::Corrupt {
            what: format!("journal record {seq}"),
            source: codec::DecodeError {
                what: "journal frame",
                detail,
            },
        };
        let found = self
            .journal
            .at_or_before(&chunk_key(seq, u32::MAX))
            .map_err(Error::storage("reading the journal"))?;
        let Some((key, frame)) = found else {
            return Ok(None);
        };
        let (first, chunk) = decode_chunk_key(&key).map_err(Error::corrupt("journal key"))?;
        if chunk != 0 {
            // A piece of a long record: `seq` is that record or is not stored.
            return Ok(None);
        }
        let (records, rest) = journal::frame_records(&frame);
        if records.is_empty() {
            // Chunk 0 of a record longer than a chunk (or not a record at all).
            return Ok(None);
        }
        if !rest.is_empty() {
            return Err(corrupt(format!(
                "the frame of record {first} has {} bytes that are no record",
                rest.len()
            )));
        }
        let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
        let Some(offset) = seq.checked_sub(first).filter(|offset| *offset < count) else {
            return Ok(None);
        };
        let record = usize::try_from(offset)
            .ok()
            .and_then(|offset| records.get(offset))
            .ok_or_else(|| corrupt(format!("record {seq} is missing from its frame")))?;
        Ok(Some(record.to_vec()))
    }

    pub(crate) fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        let bytes = self
            .pending
            .get(id_key(id.0))
            .map_err(Error::storage("reading a pending status"))?;
        bytes
            .map(|bytes| {
                decode_pending_status(&bytes)
                    .map_err(Error::corrupt(format!("pending status of {id}")))
            })
            .transpose()
    }

    pub(crate) fn head(&self) -> Result<Option<(u64, [u8; 32])>, Error> {
        let Some(bytes) = self
            .meta
            .get(META_HEAD)
            .map_err(Error::storage("reading the head"))?
        else {
            return Ok(None);
        };
        let mut cursor = codec::Cursor::new(&bytes, "journal head");
        let seq = cursor.u64().map_err(Error::corrupt("journal head"))?;
        let hash = cursor
            .take::<32>()
            .map_err(Error::corrupt("journal head"))?;
        cursor.finish().map_err(Error::corrupt("journal head"))?;
        Ok(Some((seq, hash)))
    }

    pub(crate) fn verifying_key(&self) -> Result<Option<[u8; 32]>, Error> {
        let bytes = self
            .meta
            .get(META_VERIFYING_KEY)
            .map_err(Error::storage("reading the verifying key"))?;
        bytes
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_ref()).map_err(|_| Error::Corrupt {
                    what: "verifying key".into(),
                    source: codec::DecodeError {
                        what: "verifying key",
                        detail: format!("{} bytes, expected 32", bytes.len()),
                    },
                })
            })
            .transpose()
    }

    pub(super) fn last_timestamp(&self) -> Result<Timestamp, Error> {
        let Some(bytes) = self
            .meta
            .get(META_LAST_TIMESTAMP)
            .map_err(Error::storage("reading the last timestamp"))?
        else {
            return Ok(Timestamp(0));
        };
        let mut cursor = codec::Cursor::new(&bytes, "last timestamp");
        let nanos = cursor.u64().map_err(Error::corrupt("last timestamp"))?;
        cursor.finish().map_err(Error::corrupt("last timestamp"))?;
        Ok(Timestamp(nanos))
    }

    /// The last group commit sled holds (see [`META_LOG_SEQ`]).
    pub(crate) fn log_seq(&self) -> Result<u64, Error> {
        let Some(bytes) = self
            .meta
            .get(META_LOG_SEQ)
            .map_err(Error::storage("reading the durable log sequence"))?
        else {
            return Ok(0);
        };
        let mut cursor = codec::Cursor::new(&bytes, "durable log sequence");
        let seq = cursor
            .u64()
            .map_err(Error::corrupt("durable log sequence"))?;
        cursor
            .finish()
            .map_err(Error::corrupt("durable log sequence"))?;
        Ok(seq)
    }

    /// Whether an event with transfer id `id` failed with a transient result.
    pub(crate) fn transfer_failed(&self, id: TransferId) -> Result<bool, Error> {
        self.failed
            .get(id_key(id.0))
            .map(|found| found.is_some())
            .map_err(Error::storage("reading a failed transfer id"))
    }

    /// The ledger's clock as stored (see [`META_LAST_EVENT_TIMESTAMPS`]).
    pub(super) fn clock(&self) -> Result<Clock, Error> {
        let last = self.last_timestamp()?;
        let Some(bytes) = self
            .meta
            .get(META_LAST_EVENT_TIMESTAMPS)
            .map_err(Error::storage("reading the last event timestamps"))?
        else {
            return Ok(Clock::from(last));
        };
        let mut cursor = codec::Cursor::new(&bytes, "last event timestamps");
        let account = cursor
            .u64()
            .map_err(Error::corrupt("last event timestamps"))?;
        let transfer = cursor
            .u64()
            .map_err(Error::corrupt("last event timestamps"))?;
        cursor
            .finish()
            .map_err(Error::corrupt("last event timestamps"))?;
        Ok(Clock {
            last,
            account: Timestamp(account),
            transfer: Timestamp(transfer),
        })
    }

    pub(super) fn last_checkpoint_seq(&self) -> Result<u64, Error> {
        let last = self
            .checkpoints
            .last()
            .map_err(Error::storage("reading checkpoints"))?;
        match last {
            None => Ok(0),
            Some((key, _)) => {
                let array: [u8; 8] = key.as_ref().try_into().map_err(|_| Error::Corrupt {
                    what: "checkpoint key".into(),
                    source: codec::DecodeError {
                        what: "checkpoint key",
                        detail: format!("{} bytes, expected 8", key.len()),
                    },
                })?;
                Ok(u64::from_be_bytes(array))
            }
        }
    }

    pub(super) fn account_history(&self, id: AccountId) -> Result<Vec<AccountBalance>, Error> {
        self.history
            .scan_prefix(&id_key(id.0))
            .map(|item| {
                let (_, bytes) = item.map_err(Error::storage("reading history"))?;
                decode_balance(&bytes).map_err(Error::corrupt(format!("history of {id}")))
            })
            .collect()
    }
}

impl Store for Trees {
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error> {
        Self::account(self, id)
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        Self::transfer(self, id)
    }

    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        Self::pending_status(self, id)
    }

    fn transfer_failed(&self, id: TransferId) -> Result<bool, Error> {
        Self::transfer_failed(self, id)
    }

    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        let end = expiry_key(up_to, TransferId(u128::MAX));
        self.expiry
            .range_through(&end)
            .take(limit)
            .map(|item| {
                let (key, _) = item.map_err(Error::storage("scanning the expiry index"))?;
                decode_expiry_key(&key).map_err(Error::corrupt("expiry index key"))
            })
            .collect()
    }
}

/// How long opening waits for sled's file lock. sled releases the lock of a closed database
/// from its background threads, a few milliseconds after the last handle is dropped, so a
/// close followed at once by an open (a restart, an audit right after shutdown) must wait a
/// little; a lock held longer means another process really owns the database.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(2);
/// Pause between attempts to take the lock.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Opens sled at `path` with the ledger's settings. sled's periodic background flush is
/// turned off: durability comes only from the commit path, so it is one thing to reason about.
/// Offline tools open with the same settings, so they never rewrite the log differently.
pub(crate) fn open_db(path: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, Error> {
    // No `.mode(..)`: sled 0.34.7 stores the mode in its configuration and never reads it
    // (nor persists it), so `HighThroughput` and `LowSpace` run the same code; a CPU gap once
    // measured between two runs set to each cannot have come from the setting.
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_bytes)
        .flush_every_ms(None);
    let mut waited = Duration::ZERO;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled reports its lock failure only as an I/O error with this text.
            Err(sled::Error::Io(error)) if error.to_string().contains("could not acquire lock") => {
                if waited >= LOCK_WAIT_MAX {
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(LOCK_RETRY_PAUSE);
                waited += LOCK_RETRY_PAUSE;
            }
            Err(source) => {
                return Err(Error::Storage {
                    context: format!("opening {}", path.display()),
                    source,
                });
            }
        }
    }
}

/// Page cache for offline tools: they stream once through the data, so a small cache does.
const OFFLINE_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// Opens the database in `path` for an offline tool (the audit, the export): refuses a
/// missing database rather than creating one, takes sled's exclusive file lock (so it fails
/// cleanly while a node holds it) and checks the format version before anything is read. It
/// writes nothing of its own: sled itself may discard a torn, never-acknowledged tail of its
/// log on open, and the groups that only the ledger's durable log holds are applied to sled
/// (see [`durable_log::replay`]), exactly as a node restart would.
pub(crate) fn open_offline(path: &Path) -> Result<Trees, Error> {
    if !sled_log_path(path).is_file() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
        });
    }
    let trees = Trees::open(open_db(path, OFFLINE_CACHE_CAPACITY)?)?;
    let version = check_format(&trees)?;
    // The acknowledged groups only the durable log holds, applied as the writer's open would.
    durable_log::recover(&trees, path, version)?;
    Ok(trees)
}

/// sled keeps its whole log in this one file under the data directory.
pub(crate) fn sled_log_path(path: &Path) -> PathBuf {
    path.join("db")
}

/// Makes everything written to sled so far durable: sled's flush, then `fdatasync` of its
/// log (see the module documentation for why both). The writer then starts its durable log
/// over (see [`durable_log`]).
pub(super) fn make_durable(trees: &Trees, log_file: &File) -> Result<(), Error> {
    trees
        .db
        .flush()
        .map_err(Error::storage("flushing the ledger"))?;
    log_file
        .sync_data()
        .map_err(Error::io("fdatasync of the sled log after flush"))
}

/// Refuses a database written in another layout (see [`FORMAT_VERSION`]) rather than
/// misreading it: the node at open, the offline audit and export before reading anything.
pub(crate) fn check_format(trees: &Trees) -> Result<u8, Error> {
    let stored = trees
        .meta
        .get(META_FORMAT)
        .map_err(Error::storage("reading the format version"))?;
    match stored.as_deref() {
        Some([version])
            if *version == FORMAT_VERSION || FORMAT_VERSIONS_UPGRADABLE.contains(version) =>
        {
            Ok(*version)
        }
        other => Err(Error::UnsupportedFormat {
            found: match other {
                None => "none".into(),
                Some([version]) => version.to_string(),
                Some(bytes) => format!("of {} bytes {}", bytes.len(), hex::encode(bytes)),
            },
            supported: FORMAT_VERSION,
        }),
    }
}
