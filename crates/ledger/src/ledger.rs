//! The durable ledger: sled storage, the writer's two threads and group commit.
//!
//! Callers hand batches to the writer through a bounded queue. Its first thread, the
//! sequencer, takes every batch waiting (up to [`GROUP_EVENTS_MAX`] events), runs them through
//! the state machine over one in-memory overlay, checks that the group's debits equal its
//! credits per ledger, encodes the journal records and prepares the group's writes. Its second
//! thread, the committer, writes them with ONE `Tree::apply_batch` on the state tree (atomic
//! on crash: sled pins its log for the batch and recovers it whole or not at all), then makes
//! them durable with `Db::flush` followed by `fdatasync` of sled's log file, and only then
//! answers every caller of the group. One flush is shared by all of them.
//!
//! The two threads form a pipeline: while the committer writes and flushes group n, the
//! sequencer gathers group n+1 and, once the group is full, runs it too, on top of group n's
//! overlay (see [`WriterStore`]). Groups are committed and answered strictly in order, one at
//! a time, each only after its own flush: no caller hears of a result before the state it
//! rests on is durable. A group whose events all failed writes nothing but still passes
//! through the committer, because its results may rest on a group not yet durable.
//!
//! Why one tree rather than a multi-tree transaction: both rely on the same log pinning for
//! atomicity, but the transaction stages every write in its own map first; with thousands of
//! writes per group that staging took about half of the commit time. No transaction closure
//! exists, so nothing can be re-run.
//!
//! Why the extra `fdatasync`: sled 0.34's flush ends in `sync_file_range`, which pushes the
//! pages to the device but neither flushes the device's volatile write cache nor commits file
//! metadata, so it survives a killed process but not necessarily a power loss (sled issues
//! 1351 and 1452). `fdatasync` on the same file closes that gap. The journal is kept inside
//! sled in chunks small enough never to become a sled blob file (see [`crate::journal`]), so
//! that one file holds everything acknowledged.
//!
//! Checkpoints are written after their group's batch and before the same flush; a crash in
//! between loses only the checkpoint (never acknowledged), and the next open takes it again.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::codec::{
    self, SPREAD_RUN_MAX, SpreadRun, StoredRun, TransferRun, account_bytes, balance_bytes,
    decode_account, decode_balance, decode_expiry_key, decode_pending_status, decode_transfer,
    decode_transfer_run, expiry_key, history_key, id_key,
};
use crate::filter::{self, IdFilter};
use crate::idhash::{IdMap, IdSet};
use crate::journal::{
    self, Checkpoint, Entries, GENESIS_HASH, JOURNAL_CHUNK_LEN, RECORD_HEADER_LEN, Record,
    chunk_key, decode_chunk_key,
};
use crate::model::{
    Account, AccountBalance, AccountFlags, AccountId, NewAccount, NewTransfer, PendingStatus,
    Timestamp, Transfer, TransferId,
};
use crate::recovery;
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::state_machine::{Changes, Store};
use crate::wide::Sum256;
use crate::{BATCH_LEN_MAX, Error};

/// Most events the writer applies in one group commit: eight full batches. It bounds the
/// overlay's memory and the latency a group adds to its first caller, while letting a burst
/// of small batches share one flush.
pub const GROUP_EVENTS_MAX: usize = 8 * BATCH_LEN_MAX;

/// Longest the writer waits for the callers it just answered to submit again before it
/// commits without them. Each commit costs about one flush (0.4–2 ms on this disk); on two
/// cores, 64 woken callers need a few hundred microseconds to queue again, and without the
/// wait they were split over many small groups, each paying a flush (measured 6x instead of
/// 20x). A lone caller never waits: the writer only waits for as many as its last group had.
/// This clock read paces I/O; it never reaches ledger state (timestamps come from callers).
const GATHER_WAIT_MAX: Duration = Duration::from_micros(500);

/// While the committer is busy, the sequencer keeps adding newly queued batches to the group it
/// is gathering, and looks this often (or when the committer wakes it) whether the committer
/// has become free. Sealing a small
/// group early would only make it wait in the queue, and callers who arrive meanwhile would
/// need a flush of their own: measured with 64 callers, groups averaged 21 batches instead of
/// the 30-odd that fit in one commit's time. 50 µs is a tenth of the cheapest commit.
const BUSY_POLL: Duration = Duration::from_micros(50);

/// Default bound of the writer's request queue. 1,024 waiting batches cover 64 busy callers
/// many times over; a full queue blocks callers (back-pressure) rather than growing memory.
pub const QUEUE_LEN_DEFAULT: usize = 1024;

/// Default journal records between signed checkpoints and between account snapshots. Each
/// hashes every account and writes those changed since the last one (100,000 accounts take
/// tens of milliseconds to hash), so it is amortized over many batches; opening replays at
/// most this many records (64 full batches: about half a million transfers).
pub const CHECKPOINT_INTERVAL_DEFAULT: u64 = 64;

/// Default [`Options::checkpoint_events_min`]: eight full batches, so full-batch traffic
/// checkpoints exactly as often as `checkpoint_interval` says and single-transfer traffic
/// every 65,536 transfers; a replay at open stays below a few hundred thousand events.
pub const CHECKPOINT_EVENTS_MIN_DEFAULT: u64 = 8 * BATCH_LEN_MAX as u64;

/// With few events per record, a checkpoint and a snapshot are still taken after this many
/// times `checkpoint_interval` records (65,536 by default), which bounds the records an open
/// replays; a one-transfer record replays in microseconds, so that is well under a second.
/// It was 16 (1,024 records): with 64 callers of single transfers, the snapshot then rewrote
/// about two accounts per transfer and the checkpoint hashed every account every thousand
/// transfers, which together cost about as much as the transfers themselves (measured: 52 to
/// 29 µs per transfer when raised).
pub const CHECKPOINT_SMALL_RECORDS_FACTOR: u64 = 1024;

/// Default sled page-cache budget: 256 MiB keeps the working set of 100,000 accounts and the
/// recent transfers in memory while bounding RSS (sled's own default is 1 GiB).
pub const CACHE_CAPACITY_DEFAULT: u64 = 256 * 1024 * 1024;

/// Most pending transfers one `expire_pending` call releases (one journal record); callers
/// repeat while [`Expired::more`] is set.
pub const EXPIRE_BATCH_LEN_MAX: usize = BATCH_LEN_MAX;

/// Ledger format version stored in the meta tree. Version 2 stored, per transfer id, only
/// the transfer's location in the journal instead of a copy of the transfer; version 3 stores
/// one location per run of consecutive ids (see [`PREFIX_TRANSFER`]); version 4 packs short
/// journal records of one group commit into shared chunks (see [`crate::journal`]); version 5
/// adds spread runs to the transfer index (see [`PREFIX_TRANSFER`]).
pub(crate) const FORMAT_VERSION: u8 = 5;

/// Older formats this build still reads: a version 4 database is a version 5 one without
/// spread runs, and a version 3 journal is a version 4 journal whose frames each hold one
/// record. The writer upgrades the stored version when it opens one (before it writes
/// anything newer), so older builds refuse the database from then on.
pub(crate) const FORMAT_VERSIONS_UPGRADABLE: [u8; 2] = [3, 4];

/// The sled tree holding all ledger state. One tree, with a one-byte prefix per kind of
/// record, so that a group commit is a single `Tree::apply_batch`: sled pins its log for the
/// batch and recovers it whole or not at all, the same mechanism its multi-tree transactions
/// use, without their staging copy of every write (measured: about half the commit time).
pub(crate) const TREE_STATE: &str = "ledger";
/// Signed checkpoints, written after the group they cover (see `Committer::checkpoint`).
pub(crate) const TREE_CHECKPOINTS: &str = "checkpoints";

pub(crate) const PREFIX_ACCOUNT: u8 = b'a';
pub(crate) const PREFIX_EXPIRY: u8 = b'e';
pub(crate) const PREFIX_HISTORY: u8 = b'h';
pub(crate) const PREFIX_JOURNAL: u8 = b'j';
pub(crate) const PREFIX_META: u8 = b'm';
pub(crate) const PREFIX_PENDING: u8 = b'p';
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
/// store a whole batch, or a whole group of callers, as one key; random ids make runs of one
/// and cost what one key per transfer did. Runs never overlap, because every id is stored only
/// once, so the run holding an id is the one with the greatest first id at or below it.
pub(crate) const PREFIX_TRANSFER: u8 = b't';

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_VERIFYING_KEY: &[u8] = b"verifying_key";
pub(crate) const META_HEAD: &[u8] = b"head";
pub(crate) const META_LAST_TIMESTAMP: &[u8] = b"last_timestamp";
/// The journal record the stored account snapshot is exact for (see [`crate::recovery`]).
pub(crate) const META_ACCOUNTS_SEQ: &[u8] = b"accounts_seq";

/// Tunables for [`Ledger::open`]; `Options::default()` suits a node.
#[derive(Clone, Debug)]
pub struct Options {
    /// Journal records between signed checkpoints and account snapshots (at least 1); also
    /// the most records an open replays.
    pub checkpoint_interval: u64,
    /// Bound of the writer's request queue (at least 1).
    pub queue_len: usize,
    /// sled page-cache budget in bytes.
    pub cache_capacity_bytes: u64,
    /// Fewest events (accounts, transfers, expiries) journaled between checkpoints and
    /// between account snapshots, on top of `checkpoint_interval`, unless
    /// [`CHECKPOINT_SMALL_RECORDS_FACTOR`] times `checkpoint_interval` records have passed.
    /// Each checkpoint hashes every account, so without this a stream of one-transfer batches
    /// (64 callers: 64 records per group) took one at nearly every group commit. 0 counts
    /// records only.
    pub checkpoint_events_min: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            queue_len: QUEUE_LEN_DEFAULT,
            cache_capacity_bytes: CACHE_CAPACITY_DEFAULT,
            checkpoint_events_min: CHECKPOINT_EVENTS_MIN_DEFAULT,
        }
    }
}

/// The outcome of [`Ledger::expire_pending`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// Pending transfers released by this call.
    pub count: usize,
    /// Whether more were due than one call releases ([`EXPIRE_BATCH_LEN_MAX`]).
    pub more: bool,
}

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

/// A batch of writes to the state tree, addressed by space.
#[derive(Default)]
pub(crate) struct Writes {
    batch: sled::Batch,
    /// Inserts and removals in `batch`.
    len: usize,
}

impl Writes {
    pub(crate) fn insert(&mut self, prefix: u8, key: &[u8], value: impl Into<sled::IVec>) {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(prefix);
        full.extend_from_slice(key);
        self.batch.insert(full, value);
        self.len = self.len.saturating_add(1);
    }

    pub(crate) fn remove(&mut self, prefix: u8, key: &[u8]) {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(prefix);
        full.extend_from_slice(key);
        self.batch.remove(full);
        self.len = self.len.saturating_add(1);
    }
}

/// The trees of one ledger database, and the spaces of its state tree.
#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) state: sled::Tree,
    pub(crate) accounts: Space,
    pub(crate) transfers: Space,
    pub(crate) pending: Space,
    pub(crate) expiry: Space,
    pub(crate) history: Space,
    pub(crate) journal: Space,
    pub(crate) meta: Space,
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
            pending: space(PREFIX_PENDING),
            expiry: space(PREFIX_EXPIRY),
            history: space(PREFIX_HISTORY),
            journal: space(PREFIX_JOURNAL),
            meta: space(PREFIX_META),
            checkpoints: tree(TREE_CHECKPOINTS)?,
            state,
            db,
        })
    }

    /// Applies one group's writes atomically (see [`TREE_STATE`]).
    pub(crate) fn apply(&self, writes: Writes, context: &str) -> Result<(), Error> {
        self.state
            .apply_batch(writes.batch)
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

    /// The stored run that would hold `id`, if `id` is stored (see [`PREFIX_TRANSFER`]).
    pub(crate) fn transfer_location(&self, id: TransferId) -> Result<Option<(u64, u32)>, Error> {
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

    fn last_timestamp(&self) -> Result<Timestamp, Error> {
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

    fn last_checkpoint_seq(&self) -> Result<u64, Error> {
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

    fn account_history(&self, id: AccountId) -> Result<Vec<AccountBalance>, Error> {
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

/// The sequencer's view of the state: the overlays of the groups in flight (newest first),
/// then the committed state (accounts from memory, the rest from sled).
///
/// sled may hold part or all of an in-flight group while the committer writes it; that never
/// matters, because a group's overlay holds every value the group changed and is consulted
/// before sled, and sled's other values are the ones the group left alone.
struct WriterStore<'a> {
    trees: &'a Trees,
    accounts: &'a RwLock<IdMap<AccountId, Account>>,
    in_flight: &'a VecDeque<InFlight>,
    /// Every stored transfer id is in it (see [`crate::filter`]); `None` until that holds.
    filter: Option<&'a IdFilter>,
}

impl WriterStore<'_> {
    fn overlays(&self) -> impl Iterator<Item = &Changes> {
        self.in_flight.iter().rev().map(|group| &*group.changes)
    }
}

impl Store for WriterStore<'_> {
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error> {
        if let Some(account) = self
            .overlays()
            .find_map(|changes| changes.accounts.get(&id))
        {
            return Ok(Some(*account));
        }
        // Locked per lookup, not per group: the committer publishes a group's accounts while
        // the next group runs, and that group's overlay is still in front of the map then.
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        Ok(accounts.get(&id).copied())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        // The filter holds the in-flight groups' ids too (they enter it when sequenced).
        if self.filter.is_some_and(|filter| !filter.may_contain(id.0)) {
            return Ok(None);
        }
        if let Some(transfer) = self
            .overlays()
            .find_map(|changes| changes.transfers.get(&id))
        {
            return Ok(Some(*transfer));
        }
        self.trees.transfer(id)
    }

    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        if let Some(status) = self.overlays().find_map(|changes| changes.pending.get(&id)) {
            return Ok(Some(*status));
        }
        self.trees.pending_status(id)
    }

    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        // sled's entries, with the in-flight groups' insertions and removals applied oldest
        // first; ask sled for enough that removals cannot leave fewer than `limit`.
        let removals = self
            .in_flight
            .iter()
            .flat_map(|group| group.changes.expiry.values())
            .filter(|present| !**present)
            .count();
        let mut due: BTreeMap<(Timestamp, TransferId), bool> = self
            .trees
            .expiring(up_to, limit.saturating_add(removals))?
            .into_iter()
            .map(|key| (key, true))
            .collect();
        for group in self.in_flight {
            for (key, present) in group
                .changes
                .expiry
                .range(..=(up_to, TransferId(u128::MAX)))
            {
                due.insert(*key, *present);
            }
        }
        Ok(due
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(key, _)| key)
            .take(limit)
            .collect())
    }
}

/// Old tree-node versions one collection step can free: crossbeam-epoch frees up to 8 bags of
/// 64 deferred destructions per step (`COLLECT_STEPS`, `MAX_OBJECTS` in crossbeam-epoch 0.9).
const GARBAGE_FREED_PER_STEP: usize = 8 * 64;
/// Collection steps added to every commit beyond the estimate, so that a backlog left by
/// earlier commits (or by sled's own threads) shrinks instead of holding steady.
const GARBAGE_STEPS_EXTRA: usize = 16;

/// Drives the epoch-based reclamation that frees the node versions sled replaced.
///
/// sled 0.34 retires every replaced tree node to crossbeam-epoch's global collector, which
/// frees a bounded amount only when some thread pins (about every 128th pin). The writer
/// writes about one key per transfer and (thanks to the id filter) reads almost none, so
/// garbage arrived faster than pins collected it: measured, peak RSS grew by about 2 KiB per
/// transfer (3 GB after a million transfers). Flushing a pinned guard after each commit runs
/// a collection step each time, enough steps to free at least what the commit retired.
///
/// Freeing is a large part of a commit's CPU, so a helper thread does it (any thread's
/// collection step frees the global backlog), using the second core while the writer goes
/// on. Its queue is bounded: a writer that outpaces it waits rather than letting garbage grow.
fn collect_garbage(writes: usize) {
    // Each write retires a few node versions (the leaf and, on a split, its parents).
    let steps = writes
        .saturating_mul(4)
        .div_ceil(GARBAGE_FREED_PER_STEP)
        .saturating_add(GARBAGE_STEPS_EXTRA);
    for _ in 0..steps {
        sled::pin().flush();
    }
}

/// Commits the reclaimer may lag behind the writer before the writer waits for it.
const RECLAIM_QUEUE_LEN: usize = 2;

/// The helper thread that runs [`collect_garbage`] for the writer's commits.
struct Reclaimer {
    sender: Option<SyncSender<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    fn start() -> Result<Self, Error> {
        let (sender, receiver) = sync_channel::<usize>(RECLAIM_QUEUE_LEN);
        let thread = std::thread::Builder::new()
            .name("ledger-reclaim".into())
            .spawn(move || receiver.iter().for_each(collect_garbage))
            .map_err(Error::io("starting the ledger reclaim thread"))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Asks for the garbage of a commit of `writes` writes to be freed.
    fn after_commit(&self, writes: usize) {
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.send(writes).is_ok());
        if !sent {
            // The helper is gone (it cannot fail, but if it did): free here instead.
            collect_garbage(writes);
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A panicked helper only means less memory was freed.
            let _ = thread.join();
        }
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
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_bytes)
        .flush_every_ms(None)
        // Measured on a 1.5-million-transfer soak over 100,000 accounts: HighThroughput
        // needed 42 CPU-seconds against LowSpace's 73 (segment cleaning), for the same disk
        // use (about 770 MB).
        .mode(sled::Mode::HighThroughput);
    let mut waited = Duration::ZERO;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && waited < LOCK_WAIT_MAX =>
            {
                std::thread::sleep(LOCK_RETRY_PAUSE);
                waited += LOCK_RETRY_PAUSE;
            }
            Err(source) => {
                return Err(Error::Storage {
                    context: format!(
                        "opening {} (is another process, e.g. a running node, holding it?)",
                        path.display()
                    ),
                    source,
                });
            }
        }
    }
}

/// sled keeps its whole log in this one file under the data directory.
pub(crate) fn sled_log_path(path: &Path) -> PathBuf {
    path.join("db")
}

enum Operation {
    Accounts(Vec<NewAccount>),
    Transfers(Vec<NewTransfer>),
    Expire,
}

enum Reply {
    Accounts(Vec<CreateAccountResult>),
    Transfers(Vec<CreateTransferResult>),
    Expired(Expired),
}

struct Request {
    operation: Operation,
    now: Timestamp,
    reply: SyncSender<Result<Reply, Error>>,
}

impl Request {
    fn events(&self) -> usize {
        match &self.operation {
            Operation::Accounts(accounts) => accounts.len(),
            Operation::Transfers(transfers) => transfers.len(),
            Operation::Expire => EXPIRE_BATCH_LEN_MAX,
        }
    }
}

/// A durable double-entry ledger. Cheap to share across threads (`&Ledger` is enough): every
/// call queues to the single writer and blocks until its batch is durable.
pub struct Ledger {
    sender: Option<SyncSender<Request>>,
    writer: Option<JoinHandle<()>>,
    trees: Trees,
    /// Held for writing from the sled commit until the fdatasync returns, so lookups never see
    /// state that is not yet durable.
    visibility: Arc<RwLock<()>>,
    stopped: Arc<Mutex<Option<String>>>,
    verifying_key: VerifyingKey,
    /// Every account as of the last group written to sled (durable once the visibility lock
    /// is free); only the committer changes it, under the visibility lock. The sequencer reads
    /// it behind the overlays of the groups in flight.
    accounts: Arc<RwLock<IdMap<AccountId, Account>>>,
    /// Asks the id-filter scan to stop early (on close).
    filter_stop: Arc<AtomicBool>,
    filter_thread: Option<JoinHandle<()>>,
}

impl Ledger {
    /// Opens (or creates) the ledger in directory `path`, signing checkpoints with `node_key`.
    ///
    /// A new ledger records `node_key`'s verifying key; reopening with another key fails with
    /// [`Error::NodeKeyMismatch`], so one database is vouched for by one key.
    pub fn open(path: &Path, node_key: SigningKey, options: Options) -> Result<Self, Error> {
        if options.checkpoint_interval == 0 {
            return Err(Error::InvalidOption {
                name: "checkpoint_interval",
                detail: "must be at least 1".into(),
            });
        }
        if options.queue_len == 0 {
            return Err(Error::InvalidOption {
                name: "queue_len",
                detail: "must be at least 1".into(),
            });
        }
        let db = open_db(path, options.cache_capacity_bytes)?;
        let trees = Trees::open(db)?;
        let log_file = File::open(sled_log_path(path)).map_err(Error::io(format!(
            "opening {}",
            sled_log_path(path).display()
        )))?;
        let verifying_key = node_key.verifying_key();
        match trees.verifying_key()? {
            Some(stored) if stored != verifying_key.to_bytes() => {
                return Err(Error::NodeKeyMismatch {
                    stored: hex::encode(stored),
                    given: hex::encode(verifying_key.to_bytes()),
                });
            }
            Some(_) => {}
            None => initialize(&trees, &verifying_key, &log_file)?,
        }
        if check_format(&trees)? != FORMAT_VERSION {
            let mut writes = Writes::default();
            writes.insert(PREFIX_META, META_FORMAT, &[FORMAT_VERSION]);
            trees.apply(writes, "upgrading the format version")?;
            make_durable(&trees, &log_file)?;
        }
        let (head_seq, head_hash) = trees.head()?.ok_or_else(|| Error::Corrupt {
            what: "meta tree".into(),
            source: codec::DecodeError {
                what: "journal head",
                detail: "missing".into(),
            },
        })?;
        check_journal_tail(&trees, head_seq)?;
        let loaded = recovery::load_accounts(&trees)?;
        let accounts = Arc::new(RwLock::new(loaded.accounts));
        let published_seq = Arc::new(AtomicU64::new(head_seq));
        let halted = Arc::new(AtomicBool::new(false));
        let commits_pending = Arc::new(AtomicUsize::new(0));
        let mut committer = Committer {
            sequencer: None,
            last_checkpoint_seq: trees.last_checkpoint_seq()?,
            trees: trees.clone(),
            node_key,
            head_seq,
            head_hash,
            checkpoint_interval: options.checkpoint_interval,
            log_file,
            visibility: Arc::new(RwLock::new(())),
            accounts: Arc::clone(&accounts),
            dirty: loaded.dirty,
            accounts_seq: loaded.accounts_seq,
            published_seq: Arc::clone(&published_seq),
            halted: Arc::clone(&halted),
            commits_pending: Arc::clone(&commits_pending),
            reclaimer: Reclaimer::start()?,
            checkpoint_events_min: options.checkpoint_events_min,
            events_since_snapshot: 0,
            events_since_checkpoint: 0,
        };
        // A crash between a group commit and its checkpoint leaves the checkpoint missing,
        // and repeated crashes could keep the snapshot from advancing; catch up now so the
        // interval (and the replay length at the next open) holds across restarts.
        let snapshot_due = committer.snapshot_due(head_seq);
        if snapshot_due {
            let mut writes = Writes::default();
            committer.snapshot_into(&mut writes, &IdMap::default(), head_seq);
            committer
                .trees
                .apply(writes, "writing the account snapshot")?;
            committer.snapshot_done(head_seq);
        }
        let checkpoint_due = committer.checkpoint_due();
        if checkpoint_due {
            committer.checkpoint()?;
        }
        if snapshot_due || checkpoint_due {
            committer.make_durable()?;
        }
        // Every id stored so far is in sled now, and the writer adds each later one itself.
        let filter_stop = Arc::new(AtomicBool::new(false));
        let (filter_sender, filter_receiver) = sync_channel(1);
        let sequencer = Sequencer {
            trees: trees.clone(),
            head_seq,
            head_hash,
            last_timestamp: trees.last_timestamp()?,
            accounts: Arc::clone(&accounts),
            in_flight: VecDeque::new(),
            published_seq,
            halted,
            commits_pending,
            filter: IdFilter::new(),
            filter_ready: false,
            filter_build: Some(filter_receiver),
        };
        let filter_trees = trees.clone();
        let stop = Arc::clone(&filter_stop);
        let filter_thread = std::thread::Builder::new()
            .name("ledger-id-filter".into())
            .spawn(move || {
                // The writer may be gone already; then nobody needs the filter.
                let _ = filter_sender.send(filter::build(&filter_trees, &stop));
            })
            .map_err(Error::io("starting the id filter thread"))?;
        let visibility = Arc::clone(&committer.visibility);
        let stopped = Arc::new(Mutex::new(None));
        let (sender, receiver) = sync_channel(options.queue_len);
        let writer_stopped = Arc::clone(&stopped);
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || sequencer.run(&receiver, committer, &writer_stopped))
            .map_err(Error::io("starting the ledger writer thread"))?;
        Ok(Self {
            sender: Some(sender),
            writer: Some(handle),
            trees,
            visibility,
            stopped,
            verifying_key,
            accounts,
            filter_stop,
            filter_thread: Some(filter_thread),
        })
    }

    /// The public half of the node key that signs this ledger's checkpoints.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }

    /// Creates accounts, returning one result per event once the batch is durable.
    ///
    /// `now` is the caller's clock; each event gets a unique timestamp `>= now`.
    pub fn create_accounts(
        &self,
        accounts: &[NewAccount],
        now: Timestamp,
    ) -> Result<Vec<CreateAccountResult>, Error> {
        check_batch_len(accounts.len())?;
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Operation::Accounts(accounts.to_vec()), now)? {
            Reply::Accounts(results) => Ok(results),
            _ => Err(self.mismatched_reply()),
        }
    }

    /// Applies transfers, returning one result per event once the batch is durable.
    ///
    /// Events carrying the `linked` flag form a chain with the event after them; a chain is
    /// applied whole or not at all (the failing event gets its own result, the others
    /// `linked_event_failed`). `now` is the caller's clock: each event gets a unique timestamp
    /// `>= now`, pending timeouts count from it, and a post or void at or after a pending
    /// transfer's expiry gets `pending_transfer_expired`.
    pub fn create_transfers(
        &self,
        transfers: &[NewTransfer],
        now: Timestamp,
    ) -> Result<Vec<CreateTransferResult>, Error> {
        check_batch_len(transfers.len())?;
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        match self.submit(Operation::Transfers(transfers.to_vec()), now)? {
            Reply::Transfers(results) => Ok(results),
            _ => Err(self.mismatched_reply()),
        }
    }

    /// Releases the reservations of pending transfers whose timeout passed by `now` (at most
    /// [`EXPIRE_BATCH_LEN_MAX`] per call), durably and journaled like any other change.
    pub fn expire_pending(&self, now: Timestamp) -> Result<Expired, Error> {
        match self.submit(Operation::Expire, now)? {
            Reply::Expired(expired) => Ok(expired),
            _ => Err(self.mismatched_reply()),
        }
    }

    /// Looks up accounts by id (`None` where there is no such account).
    pub fn lookup_accounts(&self, ids: &[AccountId]) -> Result<Vec<Option<Account>>, Error> {
        check_batch_len(ids.len())?;
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        Ok(ids.iter().map(|id| accounts.get(id).copied()).collect())
    }

    /// Looks up transfers by id (`None` where there is no such transfer).
    pub fn lookup_transfers(&self, ids: &[TransferId]) -> Result<Vec<Option<Transfer>>, Error> {
        check_batch_len(ids.len())?;
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        ids.iter().map(|id| self.trees.transfer(*id)).collect()
    }

    /// Where a pending transfer stands (`None` if `id` is not a pending transfer).
    pub fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.trees.pending_status(id)
    }

    /// The balances after every transfer that touched a `HISTORY` account, oldest first.
    pub fn account_history(&self, id: AccountId) -> Result<Vec<AccountBalance>, Error> {
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.trees.account_history(id)
    }

    /// Stops the writer after the batches already queued and waits for it; everything
    /// acknowledged is already durable.
    pub fn close(mut self) -> Result<(), Error> {
        self.shutdown();
        match self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(reason) => Err(Error::Stopped { reason }),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        // The scan holds a handle on the database; it must end before the database closes.
        self.filter_stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.filter_thread.take() {
            // A panicked scan only means the filter was never used.
            let _ = handle.join();
        }
        // Dropping the only sender ends the writer's receive loop once the queue drains.
        self.sender = None;
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            stopped.get_or_insert_with(|| "the writer thread panicked".into());
        }
    }

    fn submit(&self, operation: Operation, now: Timestamp) -> Result<Reply, Error> {
        let stopped = || Error::Stopped {
            reason: self
                .stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "the ledger is closing".into()),
        };
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = sync_channel(1);
        sender
            .send(Request {
                operation,
                now,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    fn mismatched_reply(&self) -> Error {
        Error::InvariantViolated {
            detail: "the writer answered a different operation".into(),
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn check_batch_len(len: usize) -> Result<(), Error> {
    if len > BATCH_LEN_MAX {
        return Err(Error::BatchTooLong {
            len,
            max: BATCH_LEN_MAX,
        });
    }
    Ok(())
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

/// Writes the meta of a new ledger and makes it durable.
fn initialize(trees: &Trees, key: &VerifyingKey, log_file: &File) -> Result<(), Error> {
    let journal_empty = trees.journal.is_empty() && trees.accounts.is_empty();
    if !journal_empty {
        return Err(Error::Corrupt {
            what: "meta tree".into(),
            source: codec::DecodeError {
                what: "verifying key",
                detail: "missing although the ledger holds data".into(),
            },
        });
    }
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(&0u64.to_le_bytes());
    head.extend_from_slice(&GENESIS_HASH);
    let mut writes = Writes::default();
    writes.insert(PREFIX_META, META_FORMAT, &[FORMAT_VERSION]);
    writes.insert(PREFIX_META, META_VERIFYING_KEY, &key.to_bytes());
    writes.insert(PREFIX_META, META_HEAD, head);
    writes.insert(PREFIX_META, META_LAST_TIMESTAMP, &0u64.to_le_bytes());
    writes.insert(PREFIX_META, META_ACCOUNTS_SEQ, &0u64.to_le_bytes());
    trees.apply(writes, "initializing the ledger")?;
    make_durable(trees, log_file)
}

/// The last journal record must be the head the meta tree names: both are written in the
/// same atomic batch, so a mismatch means the files were altered.
fn check_journal_tail(trees: &Trees, head_seq: u64) -> Result<(), Error> {
    let last = trees
        .journal
        .last()
        .map_err(Error::storage("reading the journal tail"))?;
    let last_seq = match last {
        None => 0,
        Some((key, value)) => {
            let (first, chunk) = decode_chunk_key(&key).map_err(Error::corrupt("journal key"))?;
            // The last key is a piece of a long record, or a frame of whole records whose
            // last one is the tail (a frame that does not split is left to the replay, which
            // reports it).
            let (records, _) = journal::frame_records(&value);
            let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
            match count {
                0 => first,
                _ if chunk != 0 => first,
                count => first.saturating_add(count - 1),
            }
        }
    };
    if last_seq != head_seq {
        return Err(Error::Corrupt {
            what: "journal".into(),
            source: codec::DecodeError {
                what: "journal tail",
                detail: format!("last record is {last_seq} but the head names {head_seq}"),
            },
        });
    }
    Ok(())
}

/// Groups the sequencer may have handed to the committer beyond the one being committed. One
/// is enough to keep both threads busy (the sequencer works on group n+1 while group n is
/// written and flushed); more would only let unacknowledged work and the overlays it keeps in
/// memory pile up.
const COMMIT_QUEUE_LEN: usize = 1;

/// A group on its way from the sequencer to the committer.
struct Commit {
    group: Vec<Request>,
    replies: Vec<Reply>,
    /// What the group writes; `None` when every event failed. Such a group still goes
    /// through the committer, because its results may rest on earlier groups that are not yet
    /// durable, and nothing may be answered before the state it rests on is.
    write: Option<GroupWrite>,
}

/// The writes of one group and what the committer needs to finish them.
struct GroupWrite {
    changes: Arc<Changes>,
    writes: Writes,
    head_seq: u64,
    head_hash: [u8; 32],
    /// Events journaled by the group's records.
    events: u64,
}

/// A group the sequencer has applied to its view but the committer has not yet written to
/// sled and published: its overlay stands in front of sled and the accounts map.
struct InFlight {
    head_seq: u64,
    changes: Arc<Changes>,
}

/// The writer's first thread: gathers queued batches into groups, runs them through the
/// state machine and encodes their journal records and writes, then hands each group to the
/// [`Committer`]. It runs group n+1 while the committer writes and flushes group n, which puts
/// the second core to work; group n+1 sees group n through the overlays of [`InFlight`]
/// groups, so the two threads never disagree about the state.
struct Sequencer {
    trees: Trees,
    /// The head after the last group sequenced (ahead of what is durable).
    head_seq: u64,
    head_hash: [u8; 32],
    last_timestamp: Timestamp,
    /// Shared with [`Ledger`] and the committer, which alone changes it.
    accounts: Arc<RwLock<IdMap<AccountId, Account>>>,
    /// Sequenced groups not yet published by the committer, oldest first (at most three:
    /// one being committed, [`COMMIT_QUEUE_LEN`] queued, one being built).
    in_flight: VecDeque<InFlight>,
    /// The head of the last group the committer wrote to sled and published.
    published_seq: Arc<AtomicU64>,
    /// Set by the committer when it stops (fail-stop).
    halted: Arc<AtomicBool>,
    /// Groups handed to the committer and not yet durable (see [`BUSY_POLL`]).
    commits_pending: Arc<AtomicUsize>,
    /// Holds every transfer id this writer stored, plus, once `filter_ready`, every id stored
    /// before it started (see [`crate::filter`]).
    filter: IdFilter,
    filter_ready: bool,
    /// The background scan of the ids stored before the writer started.
    filter_build: Option<Receiver<Option<IdFilter>>>,
}

/// The writer's second thread: writes each group to sled in one crash-atomic batch, publishes
/// its accounts, takes snapshots and checkpoints, makes the group durable and only then
/// answers its callers. Groups are committed one at a time in sequence order, so a group is
/// answered only once it and every group before it are durable.
struct Committer {
    /// The sequencer's thread, unparked whenever a group is committed (see [`BUSY_POLL`]).
    sequencer: Option<std::thread::Thread>,
    trees: Trees,
    node_key: SigningKey,
    /// The head of the last group written to sled.
    head_seq: u64,
    head_hash: [u8; 32],
    last_checkpoint_seq: u64,
    checkpoint_interval: u64,
    log_file: File,
    visibility: Arc<RwLock<()>>,
    /// Shared with [`Ledger`] for lookups and with the sequencer; only the committer changes
    /// it, and only with what it writes to sled in the same step.
    accounts: Arc<RwLock<IdMap<AccountId, Account>>>,
    /// Accounts changed since the stored snapshot.
    dirty: IdSet<AccountId>,
    /// The journal record the stored snapshot is exact for.
    accounts_seq: u64,
    published_seq: Arc<AtomicU64>,
    halted: Arc<AtomicBool>,
    commits_pending: Arc<AtomicUsize>,
    reclaimer: Reclaimer,
    /// See [`Options::checkpoint_events_min`].
    checkpoint_events_min: u64,
    /// Events journaled since the last snapshot and since the last checkpoint (counted from
    /// this open; the records cap bounds both across restarts).
    events_since_snapshot: u64,
    events_since_checkpoint: u64,
}

/// Answers every request of `group` with `error` (the first) or "stopped" (the rest).
fn refuse(group: Vec<Request>, error: Option<Error>, reason: &str) {
    let mut error = error;
    for request in group {
        let answer = error.take().unwrap_or_else(|| Error::Stopped {
            reason: reason.to_string(),
        });
        let _ = request.reply.send(Err(answer));
    }
}

/// Records why the writer stopped (the first reason wins).
fn record_stop(stopped: &Mutex<Option<String>>, reason: &str) {
    stopped
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(|| reason.to_string());
}

impl Sequencer {
    /// Merges the background scan once it is done; until then the filter is not consulted.
    fn poll_filter_build(&mut self) {
        let Some(build) = &self.filter_build else {
            return;
        };
        match build.try_recv() {
            Err(TryRecvError::Empty) => {}
            Ok(Some(stored)) => {
                self.filter.merge(&stored);
                self.filter_ready = true;
                self.filter_build = None;
            }
            // A failed or stopped scan leaves the filter unused: sled answers every check.
            Ok(None) | Err(TryRecvError::Disconnected) => self.filter_build = None,
        }
    }

    fn run(
        mut self,
        receiver: &Receiver<Request>,
        mut committer: Committer,
        stopped: &Arc<Mutex<Option<String>>>,
    ) {
        let (commits, commit_receiver) = sync_channel::<Commit>(COMMIT_QUEUE_LEN);
        let committer_stopped = Arc::clone(stopped);
        // The committer wakes this thread when it becomes free (see `BUSY_POLL`).
        committer.sequencer = Some(std::thread::current());
        let spawned = std::thread::Builder::new()
            .name("ledger-commit".into())
            .spawn(move || committer.run(&commit_receiver, &committer_stopped));
        let committer_thread = match spawned {
            Ok(handle) => handle,
            Err(error) => {
                let reason = format!("starting the ledger commit thread: {error}");
                record_stop(stopped, &reason);
                receiver
                    .try_iter()
                    .for_each(|request| refuse(vec![request], None, &reason));
                return;
            }
        };
        self.sequence(receiver, &commits, stopped);
        // The committer finishes the groups already handed over, then sees the channel close.
        drop(commits);
        if committer_thread.join().is_err() {
            record_stop(stopped, "the ledger commit thread panicked");
        }
    }

    fn sequence(
        &mut self,
        receiver: &Receiver<Request>,
        commits: &SyncSender<Commit>,
        stopped: &Mutex<Option<String>>,
    ) {
        // Callers of the last group sent to the committer: once it is durable and they are
        // answered, that many are likely to come straight back.
        let mut last_group_len = 1;
        while let Ok(first) = receiver.recv() {
            let mut events = first.events();
            let mut group = vec![first];
            // While the committer is busy, gather everything that arrives (see `BUSY_POLL`).
            // Once it is free, wait up to `GATHER_WAIT_MAX` for the callers it is answering
            // to come back, so that callers who arrived while it was busy and those it just
            // answered share one flush rather than alternating between two (the first batch
            // is counted as one of those callers: a lone caller never waits).
            let mut target = (self.commits_pending.load(Ordering::Acquire) == 0)
                .then(|| (last_group_len, Instant::now() + GATHER_WAIT_MAX));
            while events < GROUP_EVENTS_MAX {
                let next = match receiver.try_recv() {
                    Ok(request) => Some(request),
                    Err(TryRecvError::Disconnected) => None,
                    Err(TryRecvError::Empty) => match target {
                        None if self.commits_pending.load(Ordering::Acquire) > 0 => {
                            // Park rather than wait on the queue: a waiting receiver makes
                            // every caller's send wake it, one context switch per batch. The
                            // committer unparks this thread as soon as it is free.
                            std::thread::park_timeout(BUSY_POLL);
                            continue;
                        }
                        None => {
                            target = Some((
                                group.len().saturating_add(last_group_len),
                                Instant::now() + GATHER_WAIT_MAX,
                            ));
                            continue;
                        }
                        Some((len, deadline)) if group.len() < len => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            receiver.recv_timeout(left).ok()
                        }
                        Some(_) => None,
                    },
                };
                let Some(request) = next else { break };
                events = events.saturating_add(request.events());
                group.push(request);
            }
            last_group_len = group.len();
            if self.halted.load(Ordering::Acquire) {
                // The committer stopped: nothing more may be applied on top of state whose
                // durability is unknown.
                let reason = stop_reason(stopped);
                refuse(group, None, &reason);
                receiver
                    .try_iter()
                    .for_each(|request| refuse(vec![request], None, &reason));
                return;
            }
            match self.sequence_group(&group) {
                Ok((replies, write)) => {
                    let commit = Commit {
                        group,
                        replies,
                        write,
                    };
                    self.commits_pending.fetch_add(1, Ordering::AcqRel);
                    if let Err(unsent) = commits.send(commit) {
                        // The committer is gone (it cannot end while we hold the sender unless
                        // it panicked): nothing of this group was written.
                        let reason = "the ledger commit thread ended".to_string();
                        record_stop(stopped, &reason);
                        refuse(unsent.0.group, None, &reason);
                        return;
                    }
                }
                Err(error) => {
                    // Fail-stop: nothing of this group is written, and no later batch runs on
                    // top of a state machine that failed. Groups already handed over are
                    // complete and correct; the committer still finishes them.
                    let reason = error.to_string();
                    record_stop(stopped, &reason);
                    refuse(group, Some(error), &reason);
                    receiver
                        .try_iter()
                        .for_each(|request| refuse(vec![request], None, &reason));
                    return;
                }
            }
        }
    }

    /// Runs one group through the state machine on top of the in-flight groups and prepares
    /// its writes; changes nothing stored.
    fn sequence_group(
        &mut self,
        group: &[Request],
    ) -> Result<(Vec<Reply>, Option<GroupWrite>), Error> {
        self.poll_filter_build();
        let published = self.published_seq.load(Ordering::Acquire);
        while self
            .in_flight
            .front()
            .is_some_and(|group| group.head_seq <= published)
        {
            self.in_flight.pop_front();
        }
        // Sized for the events the group carries; an expiry call reserves room for the most it
        // may release in the gathering bound, but usually releases few, so it is left to grow.
        let events = group
            .iter()
            .map(|request| match &request.operation {
                Operation::Accounts(accounts) => accounts.len(),
                Operation::Transfers(transfers) => transfers.len(),
                Operation::Expire => 0,
            })
            .sum();
        let mut changes = Changes::with_capacity(self.last_timestamp, events);
        let store = WriterStore {
            trees: &self.trees,
            accounts: &self.accounts,
            in_flight: &self.in_flight,
            filter: self.filter_ready.then_some(&self.filter),
        };
        let mut replies = Vec::with_capacity(group.len());
        let mut records = Vec::new();
        let mut locations = Vec::new();
        let mut group_events = 0u64;
        let mut seq = self.head_seq;
        let mut prev_hash = self.head_hash;
        for request in group {
            let (reply, entries) = match &request.operation {
                Operation::Accounts(events) => {
                    let (results, entries) =
                        changes.create_accounts(&store, events, request.now)?;
                    (Reply::Accounts(results), entries)
                }
                Operation::Transfers(events) => {
                    let (results, entries) =
                        changes.create_transfers(&store, events, request.now)?;
                    (Reply::Transfers(results), entries)
                }
                Operation::Expire => {
                    let (entries, more) =
                        changes.expire_pending(&store, request.now, EXPIRE_BATCH_LEN_MAX)?;
                    (
                        Reply::Expired(Expired {
                            count: entries.len(),
                            more,
                        }),
                        entries,
                    )
                }
            };
            replies.push(reply);
            if !entries.is_empty() {
                seq = seq.checked_add(1).ok_or_else(|| Error::InvariantViolated {
                    detail: "journal sequence numbers exhausted".into(),
                })?;
                if let Entries::Transfers(transfers) = &entries {
                    for (index, transfer) in transfers.iter().enumerate() {
                        // At most BATCH_LEN_MAX entries per record, far below u32::MAX.
                        let index = u32::try_from(index).unwrap_or(u32::MAX);
                        locations.push((transfer.id, seq, index));
                    }
                }
                group_events =
                    group_events.saturating_add(u64::try_from(entries.len()).unwrap_or(u64::MAX));
                let record = Record {
                    seq,
                    prev_hash,
                    now: request.now,
                    entries,
                };
                let (bytes, hash) = record.encode();
                prev_hash = hash;
                records.push((seq, bytes));
            }
        }
        if records.is_empty() {
            // Every event failed: nothing to write, and the overlay is empty.
            return Ok((replies, None));
        }
        check_group_balanced(&changes)?;
        let writes = prepare(&changes, records, &locations, seq, prev_hash);
        // Into the filter before sled holds them (see `crate::filter`).
        for (id, _, _) in &locations {
            self.filter.insert(id.0);
        }
        self.head_seq = seq;
        self.head_hash = prev_hash;
        self.last_timestamp = changes.last_timestamp;
        let changes = Arc::new(changes);
        self.in_flight.push_back(InFlight {
            head_seq: seq,
            changes: Arc::clone(&changes),
        });
        Ok((
            replies,
            Some(GroupWrite {
                changes,
                writes,
                head_seq: seq,
                head_hash: prev_hash,
                events: group_events,
            }),
        ))
    }
}

fn stop_reason(stopped: &Mutex<Option<String>>) -> String {
    stopped
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| "the ledger writer stopped".into())
}

/// Splits located transfers (in record order) into runs of consecutive ids at consecutive
/// entries of one record (see [`PREFIX_TRANSFER`]).
fn packed_runs(locations: &[(TransferId, u64, u32)]) -> Vec<(TransferId, TransferRun)> {
    let mut runs: Vec<(TransferId, TransferRun)> = Vec::new();
    for &(id, seq, index) in locations {
        if let Some((first, run)) = runs.last_mut() {
            let next_id = first.0.checked_add(u128::from(run.len));
            let next_index = run.index.checked_add(run.len);
            if run.seq == seq && next_id == Some(id.0) && next_index == Some(index) {
                run.len += 1;
                continue;
            }
        }
        runs.push((id, TransferRun { seq, index, len: 1 }));
    }
    runs
}

/// Packed runs this short or shorter may join a spread run: below that a spread run's four
/// bytes per id cost less than a key per packed run; above it one packed key is cheaper.
const SPREAD_PIECE_MAX: u32 = 8;

/// The runs that index one group's transfers (see [`PREFIX_TRANSFER`]): packed runs, with
/// short ones whose ids follow one another (in id order, whatever their records) merged into
/// spread runs of up to [`SPREAD_RUN_MAX`] ids.
fn transfer_runs(locations: &[(TransferId, u64, u32)]) -> Vec<(TransferId, StoredRun)> {
    /// A short packed run waiting to join a spread run: its record as an offset from the
    /// group's first, and its entries `start..end`, all known to fit u16.
    struct Piece {
        first: TransferId,
        run: TransferRun,
        seq_offset: u16,
        start: u16,
        end: u16,
    }
    let mut packed = packed_runs(locations);
    packed.sort_unstable_by_key(|(first, _)| *first);
    let Some(base_seq) = locations.iter().map(|(_, seq, _)| *seq).min() else {
        return Vec::new();
    };
    let mut runs = Vec::with_capacity(packed.len());
    // Short packed runs whose ids follow one another, waiting to become one spread run.
    let mut pending: Vec<Piece> = Vec::new();
    let mut pending_ids = 0usize;
    let flush = |pending: &mut Vec<Piece>, runs: &mut Vec<(TransferId, StoredRun)>| {
        match pending.as_slice() {
            [] => {}
            [piece] => runs.push((piece.first, StoredRun::Packed(piece.run))),
            [first, ..] => {
                let entries = pending
                    .iter()
                    .flat_map(|piece| {
                        (piece.start..piece.end).map(|index| (piece.seq_offset, index))
                    })
                    .collect();
                runs.push((
                    first.first,
                    StoredRun::Spread(SpreadRun { base_seq, entries }),
                ));
            }
        }
        pending.clear();
    };
    for (first, run) in packed {
        let piece = (run.len <= SPREAD_PIECE_MAX)
            .then(|| {
                let seq_offset = u16::try_from(run.seq.checked_sub(base_seq)?).ok()?;
                let start = u16::try_from(run.index).ok()?;
                let end = start.checked_add(u16::try_from(run.len).ok()?)?;
                Some(Piece {
                    first,
                    run,
                    seq_offset,
                    start,
                    end,
                })
            })
            .flatten();
        let Some(piece) = piece else {
            flush(&mut pending, &mut runs);
            pending_ids = 0;
            runs.push((first, StoredRun::Packed(run)));
            continue;
        };
        let len = usize::from(piece.end - piece.start);
        let follows = pending.last().is_some_and(|last| {
            last.first.0.checked_add(u128::from(last.run.len)) == Some(first.0)
        });
        if !follows || pending_ids.saturating_add(len) > SPREAD_RUN_MAX {
            flush(&mut pending, &mut runs);
            pending_ids = 0;
        }
        pending.push(piece);
        pending_ids = pending_ids.saturating_add(len);
    }
    flush(&mut pending, &mut runs);
    runs
}

/// The writes of one group, apart from the account snapshot (the committer adds it).
fn prepare(
    changes: &Changes,
    records: Vec<(u64, Vec<u8>)>,
    locations: &[(TransferId, u64, u32)],
    head_seq: u64,
    head_hash: [u8; 32],
) -> Writes {
    let mut writes = Writes::default();
    // The records hold exactly the transfers of `changes.transfers` (a failed linked chain
    // is rolled back from both), so indexing the records indexes every one.
    for (first, run) in transfer_runs(locations) {
        writes.insert(PREFIX_TRANSFER, &id_key(first.0), run.to_bytes());
    }
    for (id, status) in &changes.pending {
        writes.insert(PREFIX_PENDING, &id_key(id.0), &[status.to_byte()]);
    }
    for ((at, id), present) in &changes.expiry {
        let key = expiry_key(*at, *id);
        if *present {
            writes.insert(PREFIX_EXPIRY, &key, &[]);
        } else {
            writes.remove(PREFIX_EXPIRY, &key);
        }
    }
    for (id, balance) in &changes.history {
        let key = history_key(*id, balance.timestamp);
        writes.insert(PREFIX_HISTORY, &key, balance_bytes(balance));
    }
    for (seq, bytes) in journal::frames(records) {
        for (index, chunk) in bytes.chunks(JOURNAL_CHUNK_LEN).enumerate() {
            // A record is at most a few megabytes (8,190 entries of 128 bytes), so the chunk
            // index never nears u32::MAX.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            writes.insert(PREFIX_JOURNAL, &chunk_key(seq, index), chunk);
        }
    }
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(&head_seq.to_le_bytes());
    head.extend_from_slice(&head_hash);
    writes.insert(PREFIX_META, META_HEAD, head);
    let last_timestamp = changes.last_timestamp.0.to_le_bytes();
    writes.insert(PREFIX_META, META_LAST_TIMESTAMP, &last_timestamp);
    writes
}

impl Committer {
    fn run(mut self, receiver: &Receiver<Commit>, stopped: &Mutex<Option<String>>) {
        while let Ok(commit) = receiver.recv() {
            let written = match commit.write {
                Some(write) => self.commit(write),
                None => Ok(()),
            };
            // Free for the next group from here on (answering takes a little while, and the
            // next group can be gathered meanwhile): wake the sequencer if it is gathering.
            self.commits_pending.fetch_sub(1, Ordering::AcqRel);
            if let Some(sequencer) = &self.sequencer {
                sequencer.unpark();
            }
            match written {
                Ok(()) => {
                    for (request, reply) in commit.group.into_iter().zip(commit.replies) {
                        // A caller that gave up waiting is not an error of the ledger.
                        let _ = request.reply.send(Ok(reply));
                    }
                }
                Err(error) => {
                    // Fail-stop: nothing of this group is acknowledged, and no later group
                    // (already sequenced on top of it) is written.
                    let reason = error.to_string();
                    record_stop(stopped, &reason);
                    self.halted.store(true, Ordering::Release);
                    refuse(commit.group, Some(error), &reason);
                    for commit in receiver.iter() {
                        self.commits_pending.fetch_sub(1, Ordering::AcqRel);
                        refuse(commit.group, None, &reason);
                    }
                    return;
                }
            }
        }
    }

    /// Writes one group, publishes it and makes it durable.
    fn commit(&mut self, write: GroupWrite) -> Result<(), Error> {
        let GroupWrite {
            changes,
            mut writes,
            head_seq,
            head_hash,
            events,
        } = write;
        self.events_since_snapshot = self.events_since_snapshot.saturating_add(events);
        self.events_since_checkpoint = self.events_since_checkpoint.saturating_add(events);
        let snapshot_due = self.snapshot_due(head_seq)
            && (self.events_since_snapshot >= self.checkpoint_events_min
                || self.records_cap_reached(head_seq, self.accounts_seq));
        if snapshot_due {
            self.snapshot_into(&mut writes, &changes.accounts, head_seq);
        }
        let visibility = Arc::clone(&self.visibility);
        let _hidden = visibility.write().unwrap_or_else(PoisonError::into_inner);
        let writes_len = writes.len;
        self.trees.apply(writes, "committing a batch group")?;
        self.reclaimer.after_commit(writes_len);
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(changes.accounts.iter().map(|(id, account)| (*id, *account)));
        self.published_seq.store(head_seq, Ordering::Release);
        if snapshot_due {
            self.snapshot_done(head_seq);
        } else {
            self.dirty.extend(changes.accounts.keys().copied());
        }
        self.head_seq = head_seq;
        self.head_hash = head_hash;
        if self.checkpoint_due()
            && (self.events_since_checkpoint >= self.checkpoint_events_min
                || self.records_cap_reached(self.head_seq, self.last_checkpoint_seq))
        {
            self.checkpoint()?;
        }
        self.make_durable()
    }

    fn snapshot_due(&self, head_seq: u64) -> bool {
        head_seq.saturating_sub(self.accounts_seq) >= self.checkpoint_interval
    }

    /// Adds to `writes` every account changed since the last snapshot (their values after
    /// this group: `changed` first, then memory) and moves the snapshot position to `seq`.
    fn snapshot_into(&self, writes: &mut Writes, changed: &IdMap<AccountId, Account>, seq: u64) {
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        let ids = self
            .dirty
            .iter()
            .chain(changed.keys().filter(|id| !self.dirty.contains(id)));
        for id in ids {
            if let Some(account) = changed.get(id).or_else(|| accounts.get(id)) {
                writes.insert(PREFIX_ACCOUNT, &id_key(id.0), account_bytes(account));
            }
        }
        writes.insert(PREFIX_META, META_ACCOUNTS_SEQ, &seq.to_le_bytes());
    }

    fn snapshot_done(&mut self, seq: u64) {
        self.dirty.clear();
        self.accounts_seq = seq;
        self.events_since_snapshot = 0;
    }

    /// Whether `seq` is so far past `since` that a snapshot or checkpoint is taken however
    /// few events the records hold.
    fn records_cap_reached(&self, seq: u64, since: u64) -> bool {
        seq.saturating_sub(since)
            >= self
                .checkpoint_interval
                .saturating_mul(CHECKPOINT_SMALL_RECORDS_FACTOR)
    }

    fn checkpoint_due(&self) -> bool {
        self.head_seq.saturating_sub(self.last_checkpoint_seq) >= self.checkpoint_interval
    }

    /// Signs the current head and balances. Only the writer changes accounts, so the scan sees
    /// exactly the state after record `head_seq`.
    fn checkpoint(&mut self) -> Result<(), Error> {
        let (digest, accounts) =
            recovery::digest(&self.accounts.read().unwrap_or_else(PoisonError::into_inner));
        let checkpoint = Checkpoint::sign(
            &self.node_key,
            self.head_seq,
            self.head_hash,
            digest,
            accounts,
        );
        self.trees
            .checkpoints
            .insert(self.head_seq.to_be_bytes(), checkpoint.encode())
            .map_err(Error::storage("writing a checkpoint"))?;
        self.last_checkpoint_seq = self.head_seq;
        self.events_since_checkpoint = 0;
        Ok(())
    }

    fn make_durable(&self) -> Result<(), Error> {
        make_durable(&self.trees, &self.log_file)
    }
}

/// Makes everything written to sled so far durable: sled's flush, then `fdatasync` of its
/// log (see the module documentation for why both).
fn make_durable(trees: &Trees, log_file: &File) -> Result<(), Error> {
    trees
        .db
        .flush()
        .map_err(Error::storage("flushing the ledger"))?;
    log_file
        .sync_data()
        .map_err(Error::io("fdatasync of the sled log after flush"))
}

/// Asserts, before anything is written, that in every currency the group's debits moved as
/// much as its credits (pending and posted separately), and that no flagged account is over
/// its limit. The state machine guarantees both; a failure here is a bug, and fail-stop is the
/// only safe answer for money.
fn check_group_balanced(changes: &Changes) -> Result<(), Error> {
    use std::collections::BTreeMap;
    // Per ledger: (new debits + old credits, new credits + old debits), pending and posted.
    let mut sums: BTreeMap<u32, [Sum256; 4]> = BTreeMap::new();
    for (id, after) in &changes.accounts {
        let before = changes
            .accounts_before
            .get(id)
            .copied()
            .flatten()
            .unwrap_or_else(|| Account {
                id: *id,
                ledger: after.ledger,
                ..Account::default()
            });
        if before.ledger != after.ledger {
            return Err(Error::InvariantViolated {
                detail: format!(
                    "{id} changed ledger from {} to {}",
                    before.ledger, after.ledger
                ),
            });
        }
        let entry = sums.entry(after.ledger).or_default();
        entry[0].add(after.debits_posted);
        entry[0].add(before.credits_posted);
        entry[1].add(after.credits_posted);
        entry[1].add(before.debits_posted);
        entry[2].add(after.debits_pending);
        entry[2].add(before.credits_pending);
        entry[3].add(after.credits_pending);
        entry[3].add(before.debits_pending);
        check_limits(after)?;
    }
    for (ledger, [posted_a, posted_b, pending_a, pending_b]) in sums {
        if posted_a != posted_b || pending_a != pending_b {
            return Err(Error::InvariantViolated {
                detail: format!("ledger {ledger}: this group's debits differ from its credits"),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_limits(account: &Account) -> Result<(), Error> {
    let debits = Sum256::of(&[account.debits_pending, account.debits_posted]);
    let credits = Sum256::of(&[account.credits_pending, account.credits_posted]);
    if account
        .flags
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        && debits > Sum256::of(&[account.credits_posted])
    {
        return Err(Error::InvariantViolated {
            detail: format!("{} would have debits exceeding its credits", account.id),
        });
    }
    if account
        .flags
        .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        && credits > Sum256::of(&[account.debits_posted])
    {
        return Err(Error::InvariantViolated {
            detail: format!("{} would have credits exceeding its debits", account.id),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(ids: &[u128], seq: u64, first_index: u32) -> Vec<(TransferId, u64, u32)> {
        ids.iter()
            .zip(first_index..)
            .map(|(id, index)| (TransferId(*id), seq, index))
            .collect()
    }

    use crate::model::TransferFlags;

    const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
    const SECOND: u64 = 1_000_000_000;

    /// Runs one group through the state machine over `in_flight` (nothing written to sled)
    /// and leaves it in flight, as the sequencer does while the committer is busy.
    fn sequence(
        trees: &Trees,
        accounts: &RwLock<IdMap<AccountId, Account>>,
        in_flight: &mut VecDeque<InFlight>,
        run: impl FnOnce(&mut Changes, &WriterStore<'_>) -> Vec<CreateTransferResult>,
    ) -> Vec<CreateTransferResult> {
        let last = in_flight
            .back()
            .map_or(NOW, |group| group.changes.last_timestamp);
        let mut changes = Changes::new(last);
        let results = run(
            &mut changes,
            &WriterStore {
                trees,
                accounts,
                in_flight,
                filter: None,
            },
        );
        let head_seq = in_flight.len() as u64 + 1;
        in_flight.push_back(InFlight {
            head_seq,
            changes: Arc::new(changes),
        });
        results
    }

    fn pending(id: u128, timeout: u32) -> NewTransfer {
        NewTransfer {
            id: TransferId(id),
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(2),
            amount: 10,
            ledger: 392,
            code: 1,
            flags: TransferFlags::PENDING,
            timeout,
            ..NewTransfer::default()
        }
    }

    fn resolve(id: u128, pending_id: u128, flags: TransferFlags) -> NewTransfer {
        let post = flags.contains(TransferFlags::POST_PENDING_TRANSFER);
        NewTransfer {
            id: TransferId(id),
            pending_id: TransferId(pending_id),
            amount: if post { 10 } else { 0 },
            flags,
            ..NewTransfer::default()
        }
    }

    fn one_transfer(id: u128) -> Transfer {
        Transfer {
            id: TransferId(id),
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(2),
            amount: id,
            ledger: 392,
            code: 1,
            timestamp: Timestamp(NOW.0 + u64::try_from(id).expect("small")),
            ..Transfer::default()
        }
    }

    #[test]
    fn transfers_in_shared_and_long_journal_chunks_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
        // Records 1–3 and 5–6 hold one transfer each; record 4 holds forty, more than a chunk.
        let sizes = [(1u64, 1u128), (2, 1), (3, 1), (4, 40), (5, 1), (6, 1)];
        let mut prev_hash = GENESIS_HASH;
        let mut records = Vec::new();
        let mut locations = Vec::new();
        let mut next_id = 100u128;
        for (seq, entries) in sizes {
            let transfers: Vec<Transfer> = (0..entries)
                .map(|n| one_transfer(next_id + n * 2))
                .collect();
            next_id += 1_000;
            for (index, transfer) in transfers.iter().enumerate() {
                locations.push((transfer.id, seq, u32::try_from(index).expect("small")));
            }
            let (bytes, hash) = Record {
                seq,
                prev_hash,
                now: NOW,
                entries: Entries::Transfers(transfers),
            }
            .encode();
            prev_hash = hash;
            records.push((seq, bytes));
        }
        let writes = prepare(&Changes::new(NOW), records, &locations, 6, prev_hash);
        trees.apply(writes, "test").expect("applied");
        let keys: Vec<(u64, u32)> = trees
            .journal
            .iter()
            .map(|item| decode_chunk_key(&item.expect("read").0).expect("key"))
            .collect();
        assert_eq!(keys, [(1, 0), (4, 0), (4, 1), (5, 0)]);
        for (id, seq, index) in &locations {
            let transfer = trees.transfer(*id).expect("read").expect("stored");
            assert_eq!(transfer, one_transfer(id.0), "record {seq} entry {index}");
        }
        assert_eq!(trees.transfer(TransferId(101)).expect("read"), None);
        check_journal_tail(&trees, 6).expect("the tail is record 6");
        assert!(check_journal_tail(&trees, 5).is_err());
    }

    #[test]
    fn later_groups_see_the_groups_still_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
        let accounts = RwLock::new(
            [1u128, 2]
                .map(|id| {
                    let account = Account {
                        id: AccountId(id),
                        ledger: 392,
                        code: 1,
                        ..Account::default()
                    };
                    (account.id, account)
                })
                .into_iter()
                .collect::<IdMap<_, _>>(),
        );
        let mut in_flight = VecDeque::new();
        let transfers = |in_flight: &mut VecDeque<InFlight>, events: Vec<NewTransfer>| {
            sequence(&trees, &accounts, in_flight, |changes, store| {
                changes
                    .create_transfers(store, &events, NOW)
                    .expect("state machine")
                    .0
            })
        };
        use CreateTransferResult as R;
        // Group 1: two pending transfers (one with a timeout); none of it reaches sled.
        let created = transfers(&mut in_flight, vec![pending(10, 1), pending(11, 0)]);
        assert_eq!(created, [R::Ok, R::Ok]);
        // Group 2 finds them only in group 1's overlay: repeats exist, a post resolves.
        let group2 = transfers(
            &mut in_flight,
            vec![
                pending(10, 1),
                resolve(20, 11, TransferFlags::POST_PENDING_TRANSFER),
            ],
        );
        assert_eq!(group2, [R::Exists, R::Ok]);
        // Group 3 sees group 2's post through its overlay (newest first).
        let group3 = transfers(
            &mut in_flight,
            vec![resolve(21, 11, TransferFlags::VOID_PENDING_TRANSFER)],
        );
        assert_eq!(group3, [R::PendingTransferAlreadyPosted]);
        // The overlays carry the balances: 10 pending (transfer 10) and 10 posted (11).
        let store = WriterStore {
            trees: &trees,
            accounts: &accounts,
            in_flight: &in_flight,
            filter: None,
        };
        let debit = store.account(AccountId(1)).expect("read").expect("exists");
        assert_eq!((debit.debits_pending, debit.debits_posted), (10, 10));
        // Expiry sees group 1's index entry; a group that voids it removes it for the next.
        let due = store
            .expiring(Timestamp(NOW.0 + 2 * SECOND), 10)
            .expect("expiring");
        assert_eq!(due.iter().map(|(_, id)| id.0).collect::<Vec<_>>(), [10]);
        let voided = transfers(
            &mut in_flight,
            vec![resolve(22, 10, TransferFlags::VOID_PENDING_TRANSFER)],
        );
        assert_eq!(voided, [R::Ok]);
        let store = WriterStore {
            trees: &trees,
            accounts: &accounts,
            in_flight: &in_flight,
            filter: None,
        };
        let due = store
            .expiring(Timestamp(NOW.0 + 2 * SECOND), 10)
            .expect("expiring");
        assert!(due.is_empty(), "{due:?}");
        assert_eq!(
            store.pending_status(TransferId(10)).expect("read"),
            Some(PendingStatus::Voided)
        );
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
}
