//! The writer's first thread (see [`Sequencer`]) and the writes of one group.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::committer::Committer;
use super::idtables;
use super::invariants::check_group_balanced;
use super::overlay::{InFlight, WriterStore};
use super::runs::transfer_runs;
use super::trees::{
    META_HEAD, META_LAST_EVENT_TIMESTAMPS, META_LAST_TIMESTAMP, PREFIX_EXPIRY, PREFIX_FAILED,
    PREFIX_HISTORY, PREFIX_JOURNAL, PREFIX_META, PREFIX_PENDING, PREFIX_RECORD, PREFIX_TRANSFER,
    Trees, Writes,
};
use super::{EXPIRE_BATCH_LEN_MAX, Expired, Operation, Reply, Request};
use crate::codec::{balance_bytes, expiry_key, history_key, id_key};
use crate::filter::IdFilter;
use crate::idhash::IdMap;
use crate::journal::{self, Entries, JOURNAL_CHUNK_LEN, Record, chunk_key};
use crate::model::{Account, AccountId, NewTransfer, Timestamp, Transfer, TransferId};
use crate::records::{self, RecordWrite, RecordsFn, TransferOutcome};
use crate::result::CreateTransferResult;
use crate::state_machine::{Changes, Clock};
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
pub(super) const BUSY_POLL: Duration = Duration::from_micros(50);

/// Groups the sequencer may have handed to the committer beyond the one being committed. One
/// is enough to keep both threads busy (the sequencer works on group n+1 while group n is
/// written and flushed); more would only let unacknowledged work and the overlays it keeps in
/// memory pile up.
const COMMIT_QUEUE_LEN_MAX: usize = 1;

/// One request's answer: its reply, or why it alone was refused.
pub(super) type Answer = Result<Reply, Error>;

/// A group on its way from the sequencer to the committer.
pub(super) struct Commit {
    pub(super) group: Vec<Request>,
    /// One answer per request: its reply, or why it alone was refused (its records were,
    /// see [`apply`]).
    pub(super) replies: Vec<Answer>,
    /// What the group writes; `None` when every event failed. Such a group still goes
    /// through the committer, because its results may rest on earlier groups that are not yet
    /// durable, and nothing may be answered before the state it rests on is.
    pub(super) write: Option<GroupWrite>,
    /// Set on the sequencer's request to sign the head while no request comes (then `group`
    /// is empty and `write` is `None`).
    pub(super) sign_head: bool,
}

/// The writes of one group and what the committer needs to finish them.
pub(super) struct GroupWrite {
    pub(super) changes: Arc<Changes>,
    pub(super) writes: Writes,
    pub(super) head_seq: u64,
    pub(super) head_hash: [u8; 32],
    /// Events journaled by the group's records.
    pub(super) events: u64,
    /// The group's number (see [`Sequencer::groups`]); the committer publishes it.
    pub(super) group: u64,
    /// Whether the group writes a new id table (then the committer may merge tables after
    /// it, see [`super::idtables`]).
    pub(super) id_table: bool,
}

/// The writer's first thread: gathers queued batches into groups, runs them through the
/// state machine and encodes their journal records and writes, then hands each group to the
/// [`Committer`]. It runs group n+1 while the committer writes and flushes group n, which puts
/// the second core to work; group n+1 sees group n through the overlays of [`InFlight`]
/// groups, so the two threads never disagree about the state.
pub(super) struct Sequencer {
    pub(super) trees: Trees,
    /// The head after the last group sequenced (ahead of what is durable).
    pub(super) head_seq: u64,
    pub(super) head_hash: [u8; 32],
    pub(super) clock: Clock,
    /// Shared with [`Ledger`](super::Ledger) and the committer, which alone changes it.
    pub(super) accounts: Arc<RwLock<IdMap<AccountId, Account>>>,
    /// Sequenced groups not yet published by the committer, oldest first (at most three:
    /// one being committed, [`COMMIT_QUEUE_LEN_MAX`] queued, one being built).
    pub(super) in_flight: VecDeque<InFlight>,
    /// Groups that write, numbered from 1 as they are sequenced.
    pub(super) groups: u64,
    /// The number of the last group the committer wrote to sled and published.
    pub(super) published_group: Arc<AtomicU64>,
    /// Set by the committer when it stops (fail-stop).
    pub(super) halted: Arc<AtomicBool>,
    /// Groups handed to the committer and not yet durable (see [`BUSY_POLL`]).
    pub(super) commits_pending: Arc<AtomicUsize>,
    /// Holds every transfer id this writer stored, plus, once `filter_ready`, every id stored
    /// before it started (see [`crate::filter`]).
    pub(super) filter: IdFilter,
    pub(super) filter_ready: bool,
    /// The background scan of the ids stored before the writer started.
    pub(super) filter_build: Option<Receiver<Option<IdFilter>>>,
    /// The last record a signature covers, as the committer publishes it.
    pub(super) signed_seq: Arc<AtomicU64>,
    /// See [`Options::signed_head_interval`](super::Options::signed_head_interval).
    pub(super) signed_head_interval: Duration,
    /// The head the sequencer last asked the committer to sign (see [`Sequencer::next`]).
    pub(super) sign_asked_seq: u64,
    /// The number the next id table gets: above every table stored (see
    /// [`super::idtables`]).
    pub(super) next_id_table: u64,
}

/// Answers every request of `group` with `error` (the first) or "stopped" (the rest).
pub(super) fn refuse(group: Vec<Request>, error: Option<Error>, reason: &str) {
    let mut error = error;
    for request in group {
        let answer = error.take().unwrap_or_else(|| Error::Stopped {
            reason: reason.to_string(),
        });
        request.reply.answer(Err(answer));
    }
}

/// Records why the writer stopped (the first reason wins).
pub(super) fn record_stop(stopped: &Mutex<Option<String>>, reason: &str) {
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

    pub(super) fn run(
        mut self,
        receiver: &Receiver<Request>,
        mut committer: Committer,
        stopped: &Arc<Mutex<Option<String>>>,
    ) {
        let (commits, commit_receiver) = sync_channel::<Commit>(COMMIT_QUEUE_LEN_MAX);
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
                refuse_queued(receiver, &reason);
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
        while let Some(first) = self.next(receiver, commits, stopped) {
            let group = self.gather(receiver, first, last_group_len);
            last_group_len = group.len();
            if self.halted.load(Ordering::Acquire) {
                // The committer stopped: nothing more may be applied on top of state whose
                // durability is unknown.
                let reason = stop_reason(stopped);
                refuse(group, None, &reason);
                refuse_queued(receiver, &reason);
                return;
            }
            let mut group = group;
            match self.sequence_group(&mut group) {
                Ok((replies, write)) => {
                    let commit = Commit {
                        group,
                        replies,
                        write,
                        sign_head: false,
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
                    refuse_queued(receiver, &reason);
                    return;
                }
            }
        }
    }

    /// Waits for the next request; `None` once the ledger is closing (every sender gone) or the
    /// committer is gone. While records the sequencer handed over are not yet covered by a
    /// signature, it waits at most a signed-head interval, then asks the committer to sign the
    /// head (once per head): so records that arrive and then stop are signed about an
    /// interval later, not only at the next traffic or at close.
    fn next(
        &mut self,
        receiver: &Receiver<Request>,
        commits: &SyncSender<Commit>,
        stopped: &Mutex<Option<String>>,
    ) -> Option<Request> {
        loop {
            let unsigned = self.head_seq > self.signed_seq.load(Ordering::Acquire)
                && self.head_seq > self.sign_asked_seq;
            if !unsigned {
                return receiver.recv().ok();
            }
            match receiver.recv_timeout(self.signed_head_interval) {
                Ok(request) => return Some(request),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    self.sign_asked_seq = self.head_seq;
                    if self.halted.load(Ordering::Acquire) {
                        // The committer stopped; the next request will be refused.
                        continue;
                    }
                    let request = Commit {
                        group: Vec::new(),
                        replies: Vec::new(),
                        write: None,
                        sign_head: true,
                    };
                    self.commits_pending.fetch_add(1, Ordering::AcqRel);
                    if commits.send(request).is_err() {
                        record_stop(stopped, "the ledger commit thread ended");
                        return None;
                    }
                }
            }
        }
    }

    /// Gathers the group that starts with `first`: the batches queued behind it, up to
    /// [`GROUP_EVENTS_MAX`] events.
    fn gather(
        &self,
        receiver: &Receiver<Request>,
        first: Request,
        last_group_len: usize,
    ) -> Vec<Request> {
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
        group
    }

    /// Runs one group through the state machine on top of the in-flight groups and prepares
    /// its writes; changes nothing stored.
    fn sequence_group(
        &mut self,
        group: &mut [Request],
    ) -> Result<(Vec<Answer>, Option<GroupWrite>), Error> {
        self.poll_filter_build();
        let published = self.published_group.load(Ordering::Acquire);
        while self
            .in_flight
            .front()
            .is_some_and(|group| group.group <= published)
        {
            self.in_flight.pop_front();
        }
        // Sized for the events the group carries; an expiry call reserves room for the most it
        // may release in the gathering bound, but usually releases few, so it is left to grow.
        let events = group
            .iter()
            .map(|request| match &request.operation {
                Operation::Accounts(accounts) => accounts.len(),
                Operation::Transfers(transfers, _) => transfers.len(),
                Operation::Expire | Operation::Records(_) => 0,
            })
            .sum();
        let mut changes = Changes::with_capacity(self.clock, events);
        let store = WriterStore {
            trees: &self.trees,
            accounts: &self.accounts,
            in_flight: &self.in_flight,
            filter: self.filter_ready.then_some(&self.filter),
        };
        let mut replies = Vec::with_capacity(group.len());
        let mut journal = GroupJournal::new(self.head_seq, self.head_hash);
        // The callers' record writes, in request order (see `crate::records`).
        let mut records = Vec::new();
        for request in group.iter_mut() {
            match apply(&mut changes, &store, request, &mut records)? {
                Ok((reply, entries)) => {
                    replies.push(Ok(reply));
                    journal.append(request.now, entries)?;
                }
                Err(refused) => replies.push(Err(refused)),
            }
        }
        if journal.records.is_empty() && changes.failed.is_empty() && records.is_empty() {
            // Every event failed, none transiently: nothing to write, and the overlay is empty.
            return Ok((replies, None));
        }
        // Into the filter before sled holds them (see `crate::filter`).
        for id in &changes.failed {
            self.filter.insert(id.0);
        }
        let group = self.groups.saturating_add(1);
        self.groups = group;
        if journal.records.is_empty() {
            // Only failed ids or records to keep: no journal record, and the clock stays where
            // it was, as for a group that writes nothing.
            let mut writes = Writes::default();
            write_failed(&changes, &mut writes);
            write_records(records, &mut writes);
            let changes = Arc::new(changes);
            self.in_flight.push_back(InFlight {
                group,
                changes: Arc::clone(&changes),
            });
            let write = GroupWrite {
                changes,
                writes,
                head_seq: self.head_seq,
                head_hash: self.head_hash,
                events: 0,
                group,
                id_table: false,
            };
            return Ok((replies, Some(write)));
        }
        check_group_balanced(&changes)?;
        let GroupJournal {
            seq,
            prev_hash,
            records: journal_records,
            locations,
            events,
        } = journal;
        let (mut writes, id_table) = prepare(
            &changes,
            journal_records,
            &locations,
            seq,
            prev_hash,
            self.next_id_table,
        );
        write_records(records, &mut writes);
        if id_table {
            self.next_id_table = self.next_id_table.saturating_add(1);
        }
        // Into the filter before sled holds them (see `crate::filter`).
        for (id, _, _) in &locations {
            self.filter.insert(id.0);
        }
        self.head_seq = seq;
        self.head_hash = prev_hash;
        self.clock = changes.clock();
        let changes = Arc::new(changes);
        self.in_flight.push_back(InFlight {
            group,
            changes: Arc::clone(&changes),
        });
        Ok((
            replies,
            Some(GroupWrite {
                changes,
                writes,
                head_seq: seq,
                head_hash: prev_hash,
                events,
                group,
                id_table,
            }),
        ))
    }
}

/// Runs one request through the state machine; returns its reply and the entries to journal,
/// and adds its record writes to `records`. The inner `Err` refuses this request alone: its
/// records were refused, and the state machine is rolled back to before it. The outer `Err`
/// is the state machine's own failure (fail-stop).
fn apply(
    changes: &mut Changes,
    store: &WriterStore<'_>,
    request: &mut Request,
    records: &mut Vec<RecordWrite>,
) -> Result<Result<(Reply, Entries), Error>, Error> {
    Ok(Ok(match &mut request.operation {
        Operation::Accounts(events) => {
            let (results, entries) = changes.create_accounts(store, events, request.now)?;
            (Reply::Accounts(results), entries)
        }
        Operation::Transfers(events, records_fn) => {
            let records_fn = records_fn.take();
            let save = records_fn
                .as_ref()
                .map(|_| changes.request_savepoint(events));
            let (results, entries) = changes.create_transfers(store, events, request.now)?;
            if let (Some(records_fn), Some(save)) = (records_fn, save) {
                let outcomes = outcomes(events, &results, &entries);
                match run_records_fn(records_fn, &outcomes) {
                    Ok(writes) => records.extend(writes),
                    Err(refused) => {
                        changes.request_rollback(save);
                        return Ok(Err(refused));
                    }
                }
            }
            (Reply::Transfers(results), entries)
        }
        Operation::Records(writes) => {
            records.append(writes);
            (Reply::Records, Entries::Transfers(Vec::new()))
        }
        Operation::Expire => {
            let (entries, more) =
                changes.expire_pending(store, request.now, EXPIRE_BATCH_LEN_MAX)?;
            let expired = Expired {
                count: entries.len(),
                more,
            };
            (Reply::Expired(expired), entries)
        }
    }))
}

/// One outcome per event: its result and, for a transfer the request created, its timestamp.
/// The applied transfers are the events whose result is `Ok`, in event order.
pub(crate) fn outcomes(
    events: &[NewTransfer],
    results: &[CreateTransferResult],
    entries: &Entries,
) -> Vec<TransferOutcome> {
    let applied: &[Transfer] = match entries {
        Entries::Transfers(transfers) => transfers,
        _ => &[],
    };
    let mut applied = applied.iter().peekable();
    events
        .iter()
        .zip(results)
        .map(|(event, result)| {
            let timestamp = match result {
                CreateTransferResult::Ok => {
                    // Skips nothing when the assumption holds; a mismatch gives `None`
                    // rather than another transfer's timestamp.
                    while applied
                        .next_if(|transfer| transfer.id != event.id)
                        .is_some()
                    {}
                    applied.next().map(|transfer| transfer.timestamp)
                }
                _ => None,
            };
            TransferOutcome {
                result: *result,
                timestamp,
            }
        })
        .collect()
}

/// Runs a request's records closure: its writes, checked, or why the request is refused (the
/// closure failed or panicked, or a write is too large).
pub(crate) fn run_records_fn(
    records_fn: RecordsFn,
    outcomes: &[TransferOutcome],
) -> Result<Vec<RecordWrite>, Error> {
    // A panic in the caller's closure must not take the writer thread down with it.
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| records_fn(outcomes)));
    let writes = match written {
        Ok(Ok(writes)) => writes,
        Ok(Err(detail)) => return Err(Error::RecordsRefused { detail }),
        Err(_) => {
            return Err(Error::RecordsRefused {
                detail: "the records closure panicked".into(),
            });
        }
    };
    records::check_writes(&writes)?;
    Ok(writes)
}

/// A group's record writes (see [`PREFIX_RECORD`]), in order.
fn write_records(records: Vec<RecordWrite>, writes: &mut Writes) {
    for write in records {
        match write {
            RecordWrite::Put { key, value } => writes.insert(PREFIX_RECORD, &key, value),
            RecordWrite::Delete { key } => writes.remove(PREFIX_RECORD, &key),
        }
    }
}

/// The journal records of one group, as the sequencer encodes them, and where each of their
/// transfers is.
pub(crate) struct GroupJournal {
    /// The last record's sequence number (the head before the group while it has none).
    pub(crate) seq: u64,
    /// The last record's hash.
    pub(crate) prev_hash: [u8; 32],
    pub(crate) records: Vec<(u64, Vec<u8>)>,
    /// Each transfer's id, record and entry, in record order.
    pub(crate) locations: Vec<(TransferId, u64, u32)>,
    /// Events journaled by the records.
    pub(crate) events: u64,
}

impl GroupJournal {
    pub(crate) fn new(head_seq: u64, head_hash: [u8; 32]) -> Self {
        Self {
            seq: head_seq,
            prev_hash: head_hash,
            records: Vec::new(),
            locations: Vec::new(),
            events: 0,
        }
    }

    /// Chains one request's entries on as the next record; a request that changed nothing
    /// makes no record.
    pub(crate) fn append(&mut self, now: Timestamp, entries: Entries) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| Error::InvariantViolated {
                detail: "journal sequence numbers exhausted".into(),
            })?;
        if let Entries::Transfers(transfers) = &entries {
            for (index, transfer) in transfers.iter().enumerate() {
                // At most BATCH_LEN_MAX entries per record, far below u32::MAX.
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                self.locations.push((transfer.id, seq, index));
            }
        }
        self.events = self
            .events
            .saturating_add(u64::try_from(entries.len()).unwrap_or(u64::MAX));
        let record = Record {
            seq,
            prev_hash: self.prev_hash,
            now,
            entries,
        };
        let (bytes, hash) = record.encode();
        self.seq = seq;
        self.prev_hash = hash;
        self.records.push((seq, bytes));
        Ok(())
    }
}

/// Refuses every request waiting in the queue, with `reason`.
fn refuse_queued(receiver: &Receiver<Request>, reason: &str) {
    receiver
        .try_iter()
        .for_each(|request| refuse(vec![request], None, reason));
}

fn stop_reason(stopped: &Mutex<Option<String>>) -> String {
    stopped
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| "the ledger writer stopped".into())
}

/// The writes of one group, apart from the account snapshot (the committer adds it), and
/// whether they include a new id table, numbered `id_table` (see [`super::idtables`]).
pub(super) fn prepare(
    changes: &Changes,
    records: Vec<(u64, Vec<u8>)>,
    locations: &[(TransferId, u64, u32)],
    head_seq: u64,
    head_hash: [u8; 32],
    id_table: u64,
) -> (Writes, bool) {
    let mut writes = Writes::default();
    // The records hold exactly the transfers of `changes.transfers` (a failed linked chain
    // is rolled back from both), so indexing the records indexes every one.
    let (runs, table) = idtables::split_runs(transfer_runs(locations));
    for (first, run) in runs {
        writes.insert(PREFIX_TRANSFER, &id_key(first.0), run.to_bytes());
    }
    let wrote_table = !table.is_empty();
    if wrote_table {
        idtables::write_table(&mut writes, id_table, &table);
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
    write_failed(changes, &mut writes);
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
    let mut kinds = Vec::with_capacity(16);
    kinds.extend_from_slice(&changes.last_account_timestamp.0.to_le_bytes());
    kinds.extend_from_slice(&changes.last_transfer_timestamp.0.to_le_bytes());
    writes.insert(PREFIX_META, META_LAST_EVENT_TIMESTAMPS, kinds);
    (writes, wrote_table)
}

/// The failed transfer ids of one group (see `PREFIX_FAILED`).
fn write_failed(changes: &Changes, writes: &mut Writes) {
    for id in &changes.failed {
        writes.insert(PREFIX_FAILED, &id_key(id.0), &[]);
    }
}
