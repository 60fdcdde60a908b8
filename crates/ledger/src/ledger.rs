//! The durable ledger: sled storage, the writer's two threads and group commit.
//!
//! Callers hand batches to the writer through a bounded queue. Its first thread, the
//! sequencer, takes every batch waiting (up to [`GROUP_EVENTS_MAX`] events), runs them through
//! the state machine over one in-memory overlay, checks that the group's debits equal its
//! credits per ledger, encodes the journal records and prepares the group's writes. Its second
//! thread, the committer, makes them durable and writes them to the state tree, and only then
//! answers every caller of the group. A small group is durable once its record in the ledger's
//! durable log is written and fdatasynced, and is then written to sled key by key, its
//! sequence number last (see [`durable_log`]); a large one (full batches), or one that takes a
//! checkpoint, is written with ONE `Tree::apply_batch` (atomic on crash: sled pins its log for
//! the batch and recovers it whole or not at all) and made durable by `Db::flush` followed by
//! `fdatasync` of sled's log file. One write and one sync are shared by all of the group's
//! callers.
//!
//! The two threads form a pipeline: while the committer writes and flushes group n, the
//! sequencer gathers group n+1 and, once the group is full, runs it too, on top of group n's
//! overlay (see [`overlay::WriterStore`]). Groups are committed and answered strictly in
//! order, one at a time, each only once it is durable: no caller hears of a result before
//! the state it rests on is durable. A group whose events all failed writes nothing (or only the
//! ids of its transient failures, which make no journal record) but still passes through the
//! committer, because its results may rest on a group not yet durable. Groups in flight are
//! numbered by the sequencer and published by number, since such a group has no record.
//!
//! Why one tree rather than a multi-tree transaction: both rely on the same log pinning for
//! atomicity, but the transaction stages every write in its own map first; with thousands of
//! writes per group that staging took about half of the commit time. No transaction closure
//! exists, so nothing can be re-run.
//!
//! Why the extra `fdatasync` after sled's flush: sled 0.34's flush ends in `sync_file_range`,
//! which pushes the pages to the device but neither flushes the device's volatile write cache
//! nor commits file metadata, so it survives a killed process but not necessarily a power loss
//! (sled issues 1351 and 1452). `fdatasync` on the same file closes that gap. The journal is
//! kept inside sled in chunks small enough never to become a sled blob file (see
//! [`crate::journal`]), so that sled's one file and the durable log hold everything
//! acknowledged. Why the durable log: that flush and sync cost nearly twice a raw 4 KiB
//! `fdatasync` for one transfer, mostly in committing the growth of sled's file; the log's
//! record overwrites a pre-zeroed file, one write and one `fdatasync` without metadata. sled is
//! flushed when the log is full, and the log then starts over; opening applies the log's
//! records after the last group sled holds (see [`durable_log`]).
//!
//! Checkpoints are written after their group's batch and before the sled flush that makes
//! that group durable (a group that takes one never goes through the durable log); a crash in
//! between loses only the checkpoint (never acknowledged), and the next open takes it again.
//! Signed heads (see [`crate::journal`]) go into the group's own batch, so a group and the
//! signature over its head are durable together or not at all. The committer signs the head
//! of a group when [`Options::signed_head_records`] records or [`Options::signed_head_interval`]
//! have passed since the last signature, whichever comes first; the sequencer asks for a
//! signature when records stay unsigned and no request has come for an interval; and when the
//! writer stops (`Ledger::close`, or dropping the `Ledger`), the committer takes a checkpoint
//! of the head if none covers it. A node killed between two signatures leaves the records
//! after the last one unsigned, which the audit reports.
//!
//! Why the writer's monotonic clock ([`std::time::Instant`]) paces signed heads rather than the
//! callers' timestamps: a caller's `now` is ledger state and may stand still (a test's
//! constant) or jump (a clock step), which would sign at every group or never; the monotonic
//! clock only decides when a signature is taken, never what it or any record contains.
//!
//! One module per job: [`trees`] (the storage: sled trees, the key spaces of the state tree,
//! the format version, opening and syncing), [`durable_log`] (where small groups are made
//! durable, and their replay at open), [`sequencer`] (the first thread, and the writes
//! of one group), [`overlay`] (the sequencer's view through the groups in flight), [`runs`]
//! (which transfer ids share one key of the transfer index), [`committer`] (the second
//! thread), [`reclaimer`] (freeing the tree nodes sled replaced) and [`invariants`] (what is
//! asserted before every write, and re-checked by the audit).

mod awaited;
mod committer;
pub(crate) mod durable_log;
pub(crate) mod idtables;
pub(crate) mod invariants;
mod overlay;
mod reclaimer;
mod runs;
mod sequencer;
pub(crate) mod trees;

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use futures_channel::oneshot;

use self::awaited::ReplyTo;
use self::committer::Committer;
use self::durable_log::DurableLog;
use self::reclaimer::Reclaimer;
pub use self::sequencer::GROUP_EVENTS_MAX;
use self::sequencer::Sequencer;
pub(crate) use self::sequencer::outcomes as sequencer_outcomes;
pub(crate) use self::sequencer::{GroupJournal, run_records_fn};
use self::trees::{
    FORMAT_VERSION, FORMAT_VERSION_DURABLE_LOG, META_ACCOUNTS_SEQ, META_FORMAT, META_HEAD,
    META_LAST_TIMESTAMP, META_VERIFYING_KEY, PREFIX_META, Trees, Writes, check_format,
    make_durable, open_db, sled_log_path,
};
use crate::codec;
use crate::filter::{self, IdFilter};
use crate::idhash::IdMap;
use crate::journal::{self, GENESIS_HASH, decode_chunk_key};
use crate::model::{
    Account, AccountBalance, AccountId, NewAccount, NewTransfer, PendingStatus, Timestamp,
    Transfer, TransferId,
};
use crate::records::{self, RECORDS_PAGE_MAX, Record, RecordWrite, RecordsFn, TransferOutcome};
use crate::recovery;
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::{BATCH_LEN_MAX, Error};

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

/// Default [`Options::signed_head_interval`]: a second bounds what a killed node leaves
/// unsigned to the last second of records, for at most one signature (about 20 µs) and one
/// small key per second, and one flush when records stop arriving.
pub const SIGNED_HEAD_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);

/// Default [`Options::signed_head_records`]: under 64 callers of single transfers (about 30,000
/// records a second here) it signs a few times a second; each signature costs about 20 µs of
/// a group commit that takes hundreds.
pub const SIGNED_HEAD_RECORDS_DEFAULT: u64 = 4096;

/// Default sled page-cache budget: 32 MiB (sled's own default is 1 GiB).
///
/// The cache is the one part of a node's memory that follows the database rather than a named
/// bound, so it sets the node's steady RSS. sled keeps every page it wrote in the cache until
/// the budget evicts it, and a node writes far more than it reads back: the journal and its
/// payment records (several KiB each: the signed instruction and receipt) are read mostly while
/// their payment is under way, seconds after the write. Accounts live in memory (recovery), and
/// the id filter spares the lookups of new ids. So the budget needs to hold only the tree's
/// inner nodes and the last seconds of writes: a payment's records and journal come to about
/// 6 KiB a ledger (heaptrack), so at a thousand payments a second 32 MiB holds some five
/// seconds of writes, longer than a payment is normally under way (SubmitPayment p99 under
/// half a second in the same bench); older pages are read back from the file when asked for
/// (a status query, the recovery of a payment in doubt), which costs time, never correctness.
/// sled counts a page by its size on disk (rounded up to a power of two), not by what it
/// occupies in memory, and frees replaced pages late (see `reclaimer`), so the memory it uses
/// is a multiple of the budget. Measured on `kakehashi bench --stream --concurrency 64
/// --rate 300` for 120 s (two nodes, so two ledgers, in one process): with 256 MiB RSS grew
/// from 132 MiB to 648 MiB and still grew by 3 MiB a second over the second half, sled holding
/// every payment record written (174 of 316 MiB of heap at its peak in a 60 s run, by
/// heaptrack); with 64 MiB it reached 369 MiB, growing by 0.5 MiB a second; with 32 MiB it
/// reached 311 MiB, and 364 MiB after 300 s, growing by 0.17 MiB a second over the second
/// half of that longer run (the bench's own record of each payment and sled's bookkeeping of
/// its growing file). Best throughput (`--stream --concurrency 256`, 30 s, on a shared and
/// loaded machine): 1,070 payments/s at 256 MiB, 1,003 at 64 MiB, 976 at 32 MiB.
pub const CACHE_CAPACITY_DEFAULT: u64 = 32 * 1024 * 1024;

/// Least [`Options::cache_capacity_bytes`]: sled 0.34 panics on a budget under 256 bytes (one
/// byte for each of its 256 cache shards), and a budget much under a mebibyte would page every
/// access in from the file. An open below it is refused with [`Error::InvalidOption`].
pub const CACHE_CAPACITY_MIN: u64 = 1024 * 1024;

/// Most pending transfers one `expire_pending` call releases (one journal record); callers
/// repeat while [`Expired::more`] is set.
pub const EXPIRE_BATCH_LEN_MAX: usize = BATCH_LEN_MAX;

/// Tunables for [`Ledger::open`]; `Options::default()` suits a node.
#[derive(Clone, Debug)]
pub struct Options {
    /// Journal records between signed checkpoints and account snapshots (at least 1); also
    /// the most records an open replays.
    pub checkpoint_interval: u64,
    /// Bound of the writer's request queue (at least 1).
    pub queue_len: usize,
    /// sled page-cache budget in bytes (at least [`CACHE_CAPACITY_MIN`]); sled's memory is a
    /// multiple of it (see [`CACHE_CAPACITY_DEFAULT`]).
    pub cache_capacity_bytes: u64,
    /// Fewest events (accounts, transfers, expiries) journaled between checkpoints and
    /// between account snapshots, on top of `checkpoint_interval`, unless
    /// [`CHECKPOINT_SMALL_RECORDS_FACTOR`] times `checkpoint_interval` records have passed.
    /// Each checkpoint hashes every account, so without this a stream of one-transfer batches
    /// (64 callers: 64 records per group) took one at nearly every group commit. 0 counts
    /// records only.
    pub checkpoint_events_min: u64,
    /// Longest the journal head stays unsigned while the writer runs: a group commit signs
    /// its head once this long has passed since the last signature (checkpoint or signed
    /// head), and the writer signs the head on its own when records stay unsigned and no
    /// request has come for this long. Measured on the writer's monotonic clock, not on the
    /// callers' timestamps (see the module documentation). `Duration::ZERO` signs every
    /// group's head.
    pub signed_head_interval: Duration,
    /// Most journal records after the last signature before a group commit signs its head
    /// (at least 1), whatever the time.
    pub signed_head_records: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            checkpoint_interval: CHECKPOINT_INTERVAL_DEFAULT,
            queue_len: QUEUE_LEN_DEFAULT,
            cache_capacity_bytes: CACHE_CAPACITY_DEFAULT,
            checkpoint_events_min: CHECKPOINT_EVENTS_MIN_DEFAULT,
            signed_head_interval: SIGNED_HEAD_INTERVAL_DEFAULT,
            signed_head_records: SIGNED_HEAD_RECORDS_DEFAULT,
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

enum Operation {
    Accounts(Vec<NewAccount>),
    /// Transfers, and the closure that computes the records written with them (taken by the
    /// sequencer when it runs the request).
    Transfers(Vec<NewTransfer>, Option<RecordsFn>),
    Expire,
    /// Record writes alone (taken by the sequencer).
    Records(Vec<RecordWrite>),
}

enum Reply {
    Accounts(Vec<CreateAccountResult>),
    Transfers(Vec<CreateTransferResult>),
    Expired(Expired),
    Records,
}

impl Reply {
    fn accounts(self) -> Result<Vec<CreateAccountResult>, Error> {
        match self {
            Self::Accounts(results) => Ok(results),
            _ => Err(mismatched_reply()),
        }
    }

    fn transfers(self) -> Result<Vec<CreateTransferResult>, Error> {
        match self {
            Self::Transfers(results) => Ok(results),
            _ => Err(mismatched_reply()),
        }
    }

    fn expired(self) -> Result<Expired, Error> {
        match self {
            Self::Expired(expired) => Ok(expired),
            _ => Err(mismatched_reply()),
        }
    }

    fn records(self) -> Result<(), Error> {
        match self {
            Self::Records => Ok(()),
            _ => Err(mismatched_reply()),
        }
    }
}

fn mismatched_reply() -> Error {
    Error::InvariantViolated {
        detail: "the writer answered a different operation".into(),
    }
}

struct Request {
    operation: Operation,
    now: Timestamp,
    reply: ReplyTo,
}

impl Request {
    fn events(&self) -> usize {
        match &self.operation {
            Operation::Accounts(accounts) => accounts.len(),
            Operation::Transfers(transfers, _) => transfers.len(),
            Operation::Expire => EXPIRE_BATCH_LEN_MAX,
            Operation::Records(writes) => writes.len().max(1),
        }
    }
}

/// A durable double-entry ledger. Cheap to share across threads (`&Ledger` is enough): every
/// change queues to the single writer and is answered once its batch is durable. Each change
/// comes in two forms: a blocking call (`create_transfers`), which parks the calling thread
/// until then, for tools and tests; and an awaited one (`create_transfers_async`), whose
/// future the writer completes then, for an async caller, which needs no thread of its own
/// meanwhile (see the `awaited` module). Both queue the same request and get the same
/// answer at the same moment. Lookups take the visibility lock and read memory or sled; they
/// never queue.
pub struct Ledger {
    sender: Option<SyncSender<Request>>,
    /// Tests only: makes the committer fail its next group (fail-stop), as a failed write or
    /// sync would.
    #[cfg(test)]
    fail_commit: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    trees: Trees,
    /// Held for writing from the sled commit until the group is durable (a logged group's
    /// record was synced before), so lookups never see state that is not yet durable.
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
        check_options(&options)?;
        let verifying_key = node_key.verifying_key();
        let Storage {
            trees,
            log_file,
            durable_log,
            log_seq,
        } = open_storage(path, options.cache_capacity_bytes, &verifying_key)?;
        let (head_seq, head_hash) = trees.head()?.ok_or_else(|| Error::Corrupt {
            what: "meta tree".into(),
            source: codec::DecodeError {
                what: "journal head",
                detail: "missing".into(),
            },
        })?;
        check_journal_tail(&trees, head_seq)?;
        // Refuse altered books before anything is served (issue 11, defect 10): the chain from
        // the last signed checkpoint to the head, then the balances it signed when it is the head.
        let vouched = recovery::check_chain_tail(&trees, &verifying_key, head_seq, head_hash)?;
        let loaded = recovery::load_accounts(&trees)?;
        recovery::check_checkpoint_digest(vouched.checkpoint.as_ref(), head_seq, &loaded.accounts)?;
        let signed_seq = Arc::new(AtomicU64::new(vouched.last_signed_seq()));
        let accounts = Arc::new(RwLock::new(loaded.accounts));
        let published_group = Arc::new(AtomicU64::new(0));
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
            durable_log,
            log_seq,
            visibility: Arc::new(RwLock::new(())),
            accounts: Arc::clone(&accounts),
            dirty: loaded.dirty,
            accounts_seq: loaded.accounts_seq,
            published_group: Arc::clone(&published_group),
            halted: Arc::clone(&halted),
            commits_pending: Arc::clone(&commits_pending),
            reclaimer: Reclaimer::start()?,
            checkpoint_events_min: options.checkpoint_events_min,
            events_since_snapshot: 0,
            events_since_checkpoint: 0,
            signed_head_interval: options.signed_head_interval,
            signed_head_records: options.signed_head_records,
            last_signed_seq: vouched.last_signed_seq(),
            last_signed_at: Instant::now(),
            signed_seq: Arc::clone(&signed_seq),
            #[cfg(test)]
            fail_commit: Arc::default(),
        };
        committer.catch_up()?;
        #[cfg(test)]
        let fail_commit = Arc::clone(&committer.fail_commit);
        let clock = trees.clock()?;
        // Every id stored so far is in sled now, and the writer adds each later one itself.
        let filter_build = start_filter_build(&trees)?;
        let sequencer = Sequencer {
            trees: trees.clone(),
            head_seq,
            head_hash,
            clock,
            accounts: Arc::clone(&accounts),
            in_flight: VecDeque::new(),
            groups: 0,
            published_group,
            halted,
            commits_pending,
            filter: IdFilter::new(),
            filter_ready: false,
            filter_build: Some(filter_build.result),
            signed_seq,
            signed_head_interval: options.signed_head_interval,
            sign_asked_seq: 0,
            next_id_table: trees
                .id_table_list()?
                .last()
                .map_or(1, |(table, _)| table.saturating_add(1)),
        };
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
            #[cfg(test)]
            fail_commit,
            writer: Some(handle),
            trees,
            visibility,
            stopped,
            verifying_key,
            accounts,
            filter_stop: filter_build.stop,
            filter_thread: Some(filter_build.thread),
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
        self.submit(Operation::Accounts(accounts.to_vec()), now)?
            .accounts()
    }

    /// [`Ledger::create_accounts`], awaited: the future is ready once the batch is durable,
    /// and no thread waits meanwhile. The batch is copied by this call (the future borrows
    /// only the ledger) and queued when the future is first polled: the queue bounds it as
    /// it bounds a blocking call, without blocking the executor (a full queue is waited for on
    /// a thread of its own). Once queued, or handed to that thread, dropping the future
    /// withdraws nothing: the writer applies the batch and drops its answer (see the `awaited`
    /// module).
    pub fn create_accounts_async<'a>(
        &'a self,
        accounts: &[NewAccount],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<CreateAccountResult>, Error>> + Send + use<'a> {
        let operation = check_batch_len(accounts.len())
            .map(|()| (!accounts.is_empty()).then(|| Operation::Accounts(accounts.to_vec())));
        async move {
            let Some(operation) = operation? else {
                return Ok(Vec::new());
            };
            self.submit_async(operation, now).await?.accounts()
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
        self.submit(Operation::Transfers(transfers.to_vec(), None), now)?
            .transfers()
    }

    /// [`Ledger::create_transfers`], awaited (as [`Ledger::create_accounts_async`] is).
    pub fn create_transfers_async<'a>(
        &'a self,
        transfers: &[NewTransfer],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<CreateTransferResult>, Error>> + Send + use<'a> {
        let operation = check_batch_len(transfers.len()).map(|()| {
            (!transfers.is_empty()).then(|| Operation::Transfers(transfers.to_vec(), None))
        });
        async move {
            let Some(operation) = operation? else {
                return Ok(Vec::new());
            };
            self.submit_async(operation, now).await?.transfers()
        }
    }

    /// Applies transfers as [`Ledger::create_transfers`] does, together with the records
    /// `records` computes from their outcomes: one group commit makes both durable, or
    /// neither (one durable log record or one sled batch; see the `records` module).
    ///
    /// `records` runs in the writer right after the state machine has run this request, with
    /// one [`TransferOutcome`] per event: the result this call returns and, for a transfer the
    /// request created, its ledger timestamp. It must be quick (the writer waits for it) and
    /// must not call the ledger. If it returns `Err`, panics, or returns a write that is too
    /// large (see [`RecordWrite`]), the whole request is refused with
    /// [`Error::RecordsRefused`]: none of its transfers is applied and nothing is written.
    /// The results and the records are visible to readers only once durable.
    pub fn create_transfers_with<F>(
        &self,
        transfers: &[NewTransfer],
        now: Timestamp,
        records: F,
    ) -> Result<Vec<CreateTransferResult>, Error>
    where
        F: FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String> + Send + 'static,
    {
        check_batch_len(transfers.len())?;
        let operation = Operation::Transfers(transfers.to_vec(), Some(Box::new(records)));
        self.submit(operation, now)?.transfers()
    }

    /// [`Ledger::create_transfers_with`], awaited (as [`Ledger::create_accounts_async`] is).
    /// `records` still runs in the writer, whether or not the future is still there.
    pub fn create_transfers_with_async<'a, F>(
        &'a self,
        transfers: &[NewTransfer],
        now: Timestamp,
        records: F,
    ) -> impl Future<Output = Result<Vec<CreateTransferResult>, Error>> + Send + use<'a, F>
    where
        F: FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String> + Send + 'static,
    {
        let operation = check_batch_len(transfers.len()).map(|()| {
            Operation::Transfers(transfers.to_vec(), Some(Box::new(records) as RecordsFn))
        });
        async move { self.submit_async(operation?, now).await?.transfers() }
    }

    /// Writes records alone (see the `records` module), durably, in the next group commit with
    /// whatever else is waiting; returns once they are durable. Every write is checked first:
    /// an empty or oversized key or value refuses the call ([`Error::RecordsRefused`]) and
    /// nothing is written. At most [`BATCH_LEN_MAX`] writes per call.
    pub fn write_records(&self, writes: Vec<RecordWrite>) -> Result<(), Error> {
        check_batch_len(writes.len())?;
        records::check_writes(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.submit(Operation::Records(writes), Timestamp(0))?
            .records()
    }

    /// [`Ledger::write_records`], awaited (as [`Ledger::create_accounts_async`] is).
    pub fn write_records_async(
        &self,
        writes: Vec<RecordWrite>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let operation = check_batch_len(writes.len())
            .and_then(|()| records::check_writes(&writes))
            .map(|()| (!writes.is_empty()).then(|| Operation::Records(writes)));
        async move {
            let Some(operation) = operation? else {
                return Ok(());
            };
            self.submit_async(operation, Timestamp(0)).await?.records()
        }
    }

    /// The record under `key` (see the `records` module), as of the last durable group.
    pub fn record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.trees
            .records
            .get(key)
            .map(|value| value.map(|value| value.to_vec()))
            .map_err(Error::storage("reading a record"))
    }

    /// A page of the records whose key starts with `prefix`, in key order, as of the last
    /// durable group: those after key `after` (from the first when `None`), at most `limit`
    /// of them (and at most [`RECORDS_PAGE_MAX`]). A page shorter than asked is the last one;
    /// the next page starts after the last key returned.
    pub fn records(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let limit = limit.min(RECORDS_PAGE_MAX);
        let _visible = self
            .visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.trees
            .records
            .scan_prefix_after(prefix, after)
            .take(limit)
            .map(|item| {
                item.map(|(key, value)| (key, value.to_vec()))
                    .map_err(Error::storage("scanning records"))
            })
            .collect()
    }

    /// Releases the reservations of pending transfers whose timeout passed by `now` (at most
    /// [`EXPIRE_BATCH_LEN_MAX`] per call), durably and journaled like any other change.
    pub fn expire_pending(&self, now: Timestamp) -> Result<Expired, Error> {
        self.submit(Operation::Expire, now)?.expired()
    }

    /// [`Ledger::expire_pending`], awaited (as [`Ledger::create_accounts_async`] is).
    pub async fn expire_pending_async(&self, now: Timestamp) -> Result<Expired, Error> {
        self.submit_async(Operation::Expire, now).await?.expired()
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
    /// acknowledged is already durable. The writer signs the head on its way out (a checkpoint,
    /// unless one covers the head already), so that the audit finds every record signed;
    /// dropping the `Ledger` does the same but cannot report an error.
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

    /// Why a request cannot be queued or answered: the writer stopped (fail-stop) or the
    /// ledger is closing.
    fn stopped(&self) -> Error {
        Error::Stopped {
            reason: self
                .stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "the ledger is closing".into()),
        }
    }

    /// Queues `operation` and blocks until its answer (a full queue blocks too).
    fn submit(&self, operation: Operation, now: Timestamp) -> Result<Reply, Error> {
        let sender = self.sender.as_ref().ok_or_else(|| self.stopped())?;
        let (reply, answer) = sync_channel(1);
        sender
            .send(Request {
                operation,
                now,
                reply: ReplyTo::Blocking(reply),
            })
            .map_err(|_| self.stopped())?;
        // The writer dropped the request unanswered: it ended before taking it.
        answer.recv().map_err(|_| self.stopped())?
    }

    /// Queues `operation` and awaits its answer. While the queue is full, a thread of its
    /// own waits for room and queues it (see the `awaited` module): the caller's thread never
    /// blocks.
    async fn submit_async(&self, operation: Operation, now: Timestamp) -> Result<Reply, Error> {
        let sender = self.sender.as_ref().ok_or_else(|| self.stopped())?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            operation,
            now,
            reply: ReplyTo::Awaited(reply),
        };
        match sender.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => return Err(self.stopped()),
            Err(TrySendError::Full(request)) => {
                let sender = sender.clone();
                std::thread::Builder::new()
                    .name("ledger-queue-wait".into())
                    // Refused (the writer ended): the request is dropped with its reply, and
                    // the caller hears that the ledger stopped.
                    .spawn(move || drop(sender.send(request)))
                    .map_err(Error::io("starting a thread to wait for room in the queue"))?;
            }
        }
        // The writer dropped the request unanswered: it ended before taking it.
        answer.await.map_err(|_| self.stopped())?
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn check_options(options: &Options) -> Result<(), Error> {
    if options.checkpoint_interval == 0 {
        return Err(Error::InvalidOption {
            name: "checkpoint_interval",
            detail: "must be at least 1".into(),
        });
    }
    if options.signed_head_records == 0 {
        return Err(Error::InvalidOption {
            name: "signed_head_records",
            detail: "must be at least 1".into(),
        });
    }
    if options.queue_len == 0 {
        return Err(Error::InvalidOption {
            name: "queue_len",
            detail: "must be at least 1".into(),
        });
    }
    if options.cache_capacity_bytes < CACHE_CAPACITY_MIN {
        return Err(Error::InvalidOption {
            name: "cache_capacity_bytes",
            detail: format!("must be at least {CACHE_CAPACITY_MIN} bytes"),
        });
    }
    Ok(())
}

/// What [`open_storage`] opens for the writer.
struct Storage {
    trees: Trees,
    /// sled's log file, which every sled flush syncs.
    log_file: File,
    durable_log: DurableLog,
    /// The last group commit sled holds (see [`durable_log`]).
    log_seq: u64,
}

/// Opens the database in `path` for the writer: creates a new ledger vouched for by
/// `verifying_key`, or checks that an existing one is, and upgrades an older format version;
/// applies the groups only the durable log holds and makes sled durable, so the log can start
/// over from its start.
fn open_storage(
    path: &Path,
    cache_capacity_bytes: u64,
    verifying_key: &VerifyingKey,
) -> Result<Storage, Error> {
    let db = open_db(path, cache_capacity_bytes)?;
    let trees = Trees::open(db)?;
    let log_file = File::open(sled_log_path(path)).map_err(Error::io(format!(
        "opening {}",
        sled_log_path(path).display()
    )))?;
    let new = match trees.verifying_key()? {
        Some(stored) if stored != verifying_key.to_bytes() => {
            return Err(Error::NodeKeyMismatch {
                stored: hex::encode(stored),
                given: hex::encode(verifying_key.to_bytes()),
            });
        }
        Some(_) => false,
        None => true,
    };
    // The log exists before the version that says it does is stored (a ledger of version 7
    // or later without one is refused by the recovery below).
    if !durable_log::log_path(path).is_file()
        && (new || check_format(&trees)? < FORMAT_VERSION_DURABLE_LOG)
    {
        DurableLog::create(path)?;
    }
    if new {
        initialize(&trees, verifying_key, &log_file)?;
    }
    let version = check_format(&trees)?;
    if version != FORMAT_VERSION {
        let mut writes = Writes::default();
        writes.insert(PREFIX_META, META_FORMAT, &[FORMAT_VERSION]);
        trees.apply(writes, "upgrading the format version")?;
        make_durable(&trees, &log_file)?;
    }
    let log_seq = durable_log::recover(&trees, path, FORMAT_VERSION)?;
    // What sled recovered after a killed process may still sit in the page cache only; it
    // must be on the device before the log's records are overwritten.
    make_durable(&trees, &log_file)?;
    Ok(Storage {
        trees,
        log_file,
        durable_log: DurableLog::open(path)?,
        log_seq,
    })
}

/// The background scan of the transfer ids stored before the writer started (see
/// [`crate::filter`]).
struct FilterBuild {
    /// Where the scan's filter arrives (`None` if it failed or was stopped).
    result: Receiver<Option<IdFilter>>,
    /// Asks the scan to stop early.
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn start_filter_build(trees: &Trees) -> Result<FilterBuild, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, result) = sync_channel(1);
    let scan_trees = trees.clone();
    let scan_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("ledger-id-filter".into())
        .spawn(move || {
            // The writer may be gone already; then nobody needs the filter.
            let _ = sender.send(filter::build(&scan_trees, &scan_stop));
        })
        .map_err(Error::io("starting the id filter thread"))?;
    Ok(FilterBuild {
        result,
        stop,
        thread,
    })
}

pub(crate) fn check_batch_len(len: usize) -> Result<(), Error> {
    if len > BATCH_LEN_MAX {
        return Err(Error::BatchTooLong {
            len,
            len_max: BATCH_LEN_MAX,
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests;
