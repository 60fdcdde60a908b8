//! The writer task: group commit, one transaction per group (see the crate documentation).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use ed25519_dalek::SigningKey;
use kakehashi_ledger::engine::{
    BalancesDigest, Checkpoint, Clock, GroupBuilder, GroupWrites, JournalHead, SignedHead,
};
use kakehashi_ledger::{
    CreateAccountResult, CreateTransferResult, Expired, GROUP_EVENTS_MAX, NewAccount, NewTransfer,
    RecordWrite, RecordsFn, Timestamp,
};
use tokio::sync::{mpsc, oneshot};

use crate::prefetch::Prefetched;
use crate::sql::{Params, Txn};
use crate::{Error, codec};

/// Most probe runs of one group before its strict run (each fetches what the last missed; a
/// group converges in one or two).
const PROBE_ROUNDS_MAX: usize = 8;

pub(crate) enum Operation {
    Accounts(Vec<NewAccount>),
    Transfers(Vec<NewTransfer>, Option<RecordsFn>),
    Records(Vec<RecordWrite>),
    Expire,
}

impl Operation {
    fn events(&self) -> usize {
        match self {
            Self::Accounts(events) => events.len(),
            Self::Transfers(events, _) => events.len(),
            Self::Records(writes) => writes.len(),
            Self::Expire => 1,
        }
    }
}

pub(crate) enum Reply {
    Accounts(Vec<CreateAccountResult>),
    Transfers(Vec<CreateTransferResult>),
    Records,
    Expired(Expired),
}

pub(crate) struct Request {
    pub(crate) operation: Operation,
    pub(crate) now: Timestamp,
    pub(crate) reply: oneshot::Sender<Result<Reply, Error>>,
}

/// How a group ended when it did not commit.
enum GroupFailure {
    /// Nothing was committed; the callers may retry. The writer goes on.
    NotApplied(String),
    /// The commit's outcome is unknown: fail-stop.
    Unknown(String),
    /// The state machine or the invariants refused the group: fail-stop, nothing written.
    Stop(String),
    /// The writer lease is no longer this ledger's: fail-stop, nothing written.
    LeaseLost(String),
}

pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) client: Option<Object>,
    pub(crate) key: SigningKey,
    pub(crate) signed_head_records: u64,
    pub(crate) checkpoint_records: u64,
    pub(crate) signed_head_interval: Duration,
    pub(crate) stopped: Arc<Mutex<Option<String>>>,
    /// The head after this writer's last group (to know whether records wait for a signature).
    pub(crate) head_seq: u64,
    pub(crate) signed_seq: u64,
    pub(crate) last_signed_at: Instant,
    /// The writer lease this ledger holds, checked in every group (see `lease`), and the
    /// session that holds it. The writer owns the session, so the lease ends when the writer
    /// does: at close, and at a fail-stop, after which this ledger never writes again and a
    /// reopened one (in this process or another) may take it.
    pub(crate) lease: Option<(deadpool_postgres::ClientWrapper, crate::lease::Held)>,
}

impl Writer {
    pub(crate) async fn run(mut self, mut receiver: mpsc::Receiver<Request>) {
        loop {
            let first = if self.head_seq > self.signed_seq {
                match tokio::time::timeout(self.signed_head_interval, receiver.recv()).await {
                    Ok(request) => request,
                    Err(_) => {
                        // Records wait for a signature and nothing comes: sign the head. A
                        // failure here loses nothing (the next group or the close signs); the
                        // connection may be broken, so the next group takes a fresh one.
                        if self.sign(false).await.is_err() {
                            self.client = None;
                        }
                        continue;
                    }
                }
            } else {
                receiver.recv().await
            };
            let Some(first) = first else { break };
            let mut events = first.operation.events();
            let mut group = vec![first];
            while events < GROUP_EVENTS_MAX {
                match receiver.try_recv() {
                    Ok(request) => {
                        events = events.saturating_add(request.operation.events());
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            match self.commit_group(&mut group).await {
                Ok(answers) => {
                    for (request, answer) in group.into_iter().zip(answers) {
                        // A caller that went away still had its change committed.
                        let _ = request.reply.send(answer);
                    }
                }
                Err(GroupFailure::NotApplied(detail)) => {
                    // The connection may be broken: take a fresh one for the next group.
                    self.client = None;
                    for request in group {
                        let _ = request.reply.send(Err(Error::NotApplied {
                            detail: detail.clone(),
                        }));
                    }
                }
                Err(GroupFailure::Unknown(detail)) => {
                    self.client = None;
                    self.stop(&format!("a commit's outcome is unknown: {detail}"));
                    for request in group {
                        let _ = request.reply.send(Err(Error::OutcomeUnknown {
                            detail: detail.clone(),
                        }));
                    }
                    refuse_queued(&mut receiver, &self.stopped);
                    return;
                }
                Err(GroupFailure::LeaseLost(detail)) => {
                    self.client = None;
                    self.stop(&format!("the schema's writer lease was lost: {detail}"));
                    for request in group {
                        let _ = request.reply.send(Err(Error::LeaseLost {
                            detail: detail.clone(),
                        }));
                    }
                    refuse_queued(&mut receiver, &self.stopped);
                    return;
                }
                Err(GroupFailure::Stop(detail)) => {
                    self.stop(&detail);
                    for request in group {
                        let _ = request.reply.send(Err(Error::Ledger(
                            kakehashi_ledger::Error::InvariantViolated {
                                detail: detail.clone(),
                            },
                        )));
                    }
                    refuse_queued(&mut receiver, &self.stopped);
                    return;
                }
            }
        }
        // Closing (every sender gone, the queue drained): sign the head with a checkpoint, so
        // that a cleanly closed ledger has every record signed.
        if let Err(error) = self.sign(true).await {
            self.stop(&format!("signing the head at close: {error}"));
        }
    }

    fn stop(&self, reason: &str) {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| reason.to_string());
    }

    async fn client(&mut self) -> Result<&mut Object, Error> {
        if self.client.is_none() {
            let client = self.pool.get().await.map_err(|error| Error::Pool {
                detail: error.to_string(),
            })?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| Error::Pool {
            detail: "no connection".into(),
        })
    }

    async fn commit_group(
        &mut self,
        group: &mut [Request],
    ) -> Result<Vec<Result<Reply, Error>>, GroupFailure> {
        let key = self.key.clone();
        let signed_head_records = self.signed_head_records;
        let checkpoint_records = self.checkpoint_records;
        let interval_passed = self.last_signed_at.elapsed() >= self.signed_head_interval;
        let not_applied = |error: Error| GroupFailure::NotApplied(error.to_string());
        let lease = self.lease.as_ref().map(|(_, held)| held.clone());
        let client = self.client().await.map_err(not_applied)?;
        let txn = Txn::begin(client)
            .await
            .map_err(|error| GroupFailure::NotApplied(error.to_string()))?;
        // The head row's lock serializes every writer of this schema, in every process: the
        // journal is one chain, and each group reads the state the previous one committed.
        let meta = read_meta(&txn, true).await.map_err(not_applied)?;
        if let Some(held) = &lease
            && !crate::lease::still_held(&txn, held)
                .await
                .map_err(not_applied)?
        {
            return Err(GroupFailure::LeaseLost(
                "its session ended; another process may write the schema".into(),
            ));
        }
        let mut store = Prefetched::default();
        prefetch(&txn, &mut store, wanted(group))
            .await
            .map_err(not_applied)?;
        for _ in 0..PROBE_ROUNDS_MAX {
            probe(&store, group, meta.clock, meta.head);
            let misses = store.take_misses();
            if misses.is_empty() {
                break;
            }
            let accounts: Vec<u128> = misses.accounts.into_iter().collect();
            let transfers: Vec<u128> = misses.transfers.into_iter().collect();
            store
                .fetch(&txn, &accounts, &transfers)
                .await
                .map_err(not_applied)?;
            if let Some((up_to, limit)) = misses.expiring {
                store
                    .fetch_expiring(&txn, up_to, limit.saturating_mul(2))
                    .await
                    .map_err(not_applied)?;
            }
            let follow = store.accounts_of_transfers();
            store.fetch(&txn, &follow, &[]).await.map_err(not_applied)?;
        }
        store.strict = true;
        let (answers, writes) = run(&store, group, meta.clock, meta.head)?;
        write(&txn, &writes).await.map_err(not_applied)?;
        let head = writes.head;
        // A checkpoint every `checkpoint_records` records (it hashes every account, so far
        // apart), else a signed head when due; either signs the head.
        let checkpoint = head.seq.saturating_sub(meta.checkpoint_seq) >= checkpoint_records;
        let sign = head.seq > meta.signed_seq
            && (checkpoint || head.seq - meta.signed_seq >= signed_head_records || interval_passed);
        if checkpoint {
            insert_checkpoint(&txn, &key, head)
                .await
                .map_err(not_applied)?;
        } else if sign {
            insert_signed_head(&txn, &key, head)
                .await
                .map_err(not_applied)?;
        }
        match txn.commit().await {
            Ok(()) => {}
            Err(error) => {
                return Err(match commit_outcome(&error) {
                    CommitOutcome::RolledBack => GroupFailure::NotApplied(error.to_string()),
                    CommitOutcome::Unknown => GroupFailure::Unknown(error.to_string()),
                });
            }
        }
        self.head_seq = head.seq;
        if sign {
            self.signed_seq = head.seq;
            self.last_signed_at = Instant::now();
        } else {
            self.signed_seq = meta.signed_seq;
        }
        Ok(answers)
    }

    /// Signs the head if records follow the last signature (with a checkpoint when
    /// `checkpoint`, unless one covers the head already), in a transaction of its own under
    /// the head row's lock.
    async fn sign(&mut self, checkpoint: bool) -> Result<(), Error> {
        let key = self.key.clone();
        let client = self.client().await?;
        let txn = Txn::begin(client)
            .await
            .map_err(Error::database("starting a signing transaction"))?;
        let meta = read_meta(&txn, true).await?;
        let head = meta.head;
        if head.seq > meta.signed_seq {
            insert_signed_head(&txn, &key, head).await?;
        }
        if checkpoint && head.seq > 0 {
            let covered = txn
                .query_opt(
                    "SELECT 1 FROM checkpoints WHERE seq = $1",
                    &[&codec::seq_column(head.seq)],
                )
                .await
                .map_err(Error::database("reading checkpoints"))?
                .is_some();
            if !covered {
                insert_checkpoint(&txn, &key, head).await?;
            }
        }
        txn.commit()
            .await
            .map_err(Error::database("committing a signature"))?;
        self.head_seq = head.seq;
        self.signed_seq = head.seq;
        self.last_signed_at = Instant::now();
        Ok(())
    }
}

/// What a failed COMMIT did.
#[derive(Debug, PartialEq, Eq)]
enum CommitOutcome {
    /// The server answered COMMIT with an error of severity ERROR (a deferred constraint, a
    /// serialization failure): it rolled the transaction back and the session lives on.
    RolledBack,
    /// Anything else: the connection closed or failed while COMMIT was in flight, or the server
    /// ended the session (FATAL, PANIC). The transaction may have committed (a backend
    /// terminated while waiting for a synchronous standby has committed locally and only warns),
    /// so nothing may be assumed.
    Unknown,
}

fn commit_outcome(error: &tokio_postgres::Error) -> CommitOutcome {
    match error.as_db_error() {
        // The non-localized severity (PostgreSQL 9.6 and later).
        Some(db)
            if db.parsed_severity() == Some(tokio_postgres::error::Severity::Error)
                && !error.is_closed() =>
        {
            CommitOutcome::RolledBack
        }
        _ => CommitOutcome::Unknown,
    }
}

fn refuse_queued(receiver: &mut mpsc::Receiver<Request>, stopped: &Mutex<Option<String>>) {
    receiver.close();
    let reason = stopped
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| "the ledger writer stopped".into());
    while let Ok(request) = receiver.try_recv() {
        let _ = request.reply.send(Err(Error::Stopped {
            reason: reason.clone(),
        }));
    }
}

/// The ledger's metadata row.
pub(crate) struct Meta {
    pub(crate) head: JournalHead,
    pub(crate) clock: Clock,
    pub(crate) signed_seq: u64,
    /// The last record a checkpoint covers.
    pub(crate) checkpoint_seq: u64,
}

/// Reads the metadata row, locking it (`FOR UPDATE`) when `lock`.
pub(crate) async fn read_meta(txn: &Txn<'_>, lock: bool) -> Result<Meta, Error> {
    let query = if lock {
        "SELECT head_seq, head_hash, clock_last, clock_account, clock_transfer, signed_seq, \
         (SELECT coalesce(max(seq), 0) FROM checkpoints) FROM ledger_meta FOR UPDATE"
    } else {
        "SELECT head_seq, head_hash, clock_last, clock_account, clock_transfer, signed_seq, \
         (SELECT coalesce(max(seq), 0) FROM checkpoints) FROM ledger_meta"
    };
    let row = txn
        .query_one(query, &[])
        .await
        .map_err(Error::database("reading the journal head"))?;
    let read = Error::database("reading the journal head");
    let head_seq: i64 = row.try_get(0).map_err(read)?;
    let read = |index: usize| -> Result<Vec<u8>, Error> {
        row.try_get(index)
            .map_err(Error::database("reading the journal head"))
    };
    let signed_seq: i64 = row
        .try_get(5)
        .map_err(Error::database("reading the journal head"))?;
    let checkpoint_seq: i64 = row
        .try_get(6)
        .map_err(Error::database("reading the journal head"))?;
    Ok(Meta {
        head: JournalHead {
            seq: codec::seq(head_seq)?,
            hash: codec::hash(&read(1)?)?,
        },
        clock: Clock {
            last: codec::decode_timestamp(&read(2)?)?,
            account: codec::decode_timestamp(&read(3)?)?,
            transfer: codec::decode_timestamp(&read(4)?)?,
        },
        signed_seq: codec::seq(signed_seq)?,
        checkpoint_seq: codec::seq(checkpoint_seq)?,
    })
}

/// The first prefetch: what the group's events name, then the accounts of the transfers
/// found (posts and voids read their pending transfer's accounts), and the expiry index.
async fn prefetch(txn: &Txn<'_>, store: &mut Prefetched, wanted: Wanted) -> Result<(), Error> {
    let Wanted {
        accounts,
        mut transfers,
        expire,
        expires,
    } = wanted;
    if let Some(up_to) = expire {
        // Each expiry call releases at most EXPIRE_BATCH_LEN_MAX and asks for one more.
        let limit = expires.saturating_mul(kakehashi_ledger::EXPIRE_BATCH_LEN_MAX + 1);
        store.fetch_expiring(txn, up_to, limit).await?;
        transfers.extend(store.expiring_ids());
    }
    let transfers = store.transfers_missing(transfers);
    let accounts = store.accounts_missing(accounts);
    store.fetch(txn, &accounts, &transfers).await?;
    // Posts, voids and expiries read their pending transfer's accounts.
    let follow = store.accounts_of_transfers();
    store.fetch(txn, &follow, &[]).await
}

/// The ids a group's events name, and how far its expiry calls look.
struct Wanted {
    accounts: Vec<u128>,
    transfers: Vec<u128>,
    expire: Option<Timestamp>,
    expires: usize,
}

fn wanted(group: &[Request]) -> Wanted {
    let mut accounts = Vec::new();
    let mut transfers = Vec::new();
    let mut expire: Option<Timestamp> = None;
    let mut expires = 0usize;
    for request in group {
        match &request.operation {
            Operation::Accounts(events) => accounts.extend(events.iter().map(|event| event.id.0)),
            Operation::Transfers(events, _) => {
                for event in events {
                    transfers.push(event.id.0);
                    transfers.push(event.pending_id.0);
                    accounts.push(event.debit_account_id.0);
                    accounts.push(event.credit_account_id.0);
                }
            }
            Operation::Records(_) => {}
            Operation::Expire => {
                expire = Some(expire.map_or(request.now, |at| at.max(request.now)));
                expires = expires.saturating_add(1);
            }
        }
    }
    Wanted {
        accounts,
        transfers,
        expire,
        expires,
    }
}

/// A probe run: the group without its records closures, to learn what it reads.
fn probe(store: &Prefetched, group: &[Request], clock: Clock, head: JournalHead) {
    let mut builder = GroupBuilder::new(store, clock, head);
    for request in group {
        let result = match &request.operation {
            Operation::Accounts(events) => builder.create_accounts(events, request.now).map(drop),
            Operation::Transfers(events, _) => builder
                .create_transfers(events, request.now, None)
                .map(drop),
            Operation::Records(_) => Ok(()),
            Operation::Expire => builder.expire_pending(request.now).map(drop),
        };
        if result.is_err() {
            // A probe that read something absent may fail; the misses say what to fetch.
            return;
        }
    }
}

/// The strict run: every request's answer and the group's writes.
fn run(
    store: &Prefetched,
    group: &mut [Request],
    clock: Clock,
    head: JournalHead,
) -> Result<(Vec<Result<Reply, Error>>, GroupWrites), GroupFailure> {
    let stop = |error: kakehashi_ledger::Error| GroupFailure::Stop(error.to_string());
    let mut builder = GroupBuilder::new(store, clock, head);
    let mut answers = Vec::with_capacity(group.len());
    for request in group.iter_mut() {
        let answer = match &mut request.operation {
            Operation::Accounts(events) => builder
                .create_accounts(events, request.now)
                .map_err(stop)?
                .map(Reply::Accounts)
                .map_err(Error::Ledger),
            Operation::Transfers(events, records) => builder
                .create_transfers(events, request.now, records.take())
                .map_err(stop)?
                .map(Reply::Transfers)
                .map_err(Error::Ledger),
            Operation::Records(writes) => builder
                .write_records(std::mem::take(writes))
                .map(|()| Reply::Records)
                .map_err(Error::Ledger),
            Operation::Expire => Ok(Reply::Expired(
                builder.expire_pending(request.now).map_err(stop)?,
            )),
        };
        answers.push(answer);
    }
    let writes = builder.finish().map_err(stop)?;
    Ok((answers, writes))
}

/// One group's writes as the columns of multi-row statements (`unnest` of arrays).
#[derive(Default)]
struct Columns<'a> {
    account_ids: Vec<Vec<u8>>,
    account_bytes: Vec<Vec<u8>>,
    transfer_ids: Vec<Vec<u8>>,
    transfer_bytes: Vec<Vec<u8>>,
    transfer_seqs: Vec<i64>,
    transfer_entries: Vec<i32>,
    pending_ids: Vec<Vec<u8>>,
    pending_status: Vec<i16>,
    expiry_in_at: Vec<Vec<u8>>,
    expiry_in_id: Vec<Vec<u8>>,
    expiry_out_at: Vec<Vec<u8>>,
    expiry_out_id: Vec<Vec<u8>>,
    history_ids: Vec<Vec<u8>>,
    history_at: Vec<Vec<u8>>,
    history_balance: Vec<Vec<u8>>,
    failed: Vec<Vec<u8>>,
    journal_seqs: Vec<i64>,
    journal_hashes: Vec<Vec<u8>>,
    journal_bytes: Vec<&'a [u8]>,
    put_keys: Vec<&'a [u8]>,
    put_values: Vec<&'a [u8]>,
    deleted: Vec<&'a [u8]>,
    head_seq: i64,
    head_hash: Vec<u8>,
    clock: [Vec<u8>; 3],
}

impl<'a> Columns<'a> {
    fn new(writes: &'a GroupWrites) -> Result<Self, Error> {
        use kakehashi_ledger::engine::encoding;
        let mut columns = Self {
            account_ids: writes.accounts.iter().map(|a| codec::id(a.id.0)).collect(),
            account_bytes: writes.accounts.iter().map(encoding::account).collect(),
            pending_ids: writes
                .pending
                .iter()
                .map(|(id, _)| codec::id(id.0))
                .collect(),
            pending_status: writes
                .pending
                .iter()
                .map(|(_, status)| codec::pending_status_column(*status))
                .collect(),
            history_ids: writes
                .history
                .iter()
                .map(|(id, _)| codec::id(id.0))
                .collect(),
            history_at: writes
                .history
                .iter()
                .map(|(_, balance)| codec::timestamp(balance.timestamp))
                .collect(),
            history_balance: writes
                .history
                .iter()
                .map(|(_, balance)| encoding::balance(balance))
                .collect(),
            failed: writes.failed.iter().map(|id| codec::id(id.0)).collect(),
            journal_seqs: writes
                .journal
                .iter()
                .map(|r| codec::seq_column(r.seq))
                .collect(),
            journal_hashes: writes.journal.iter().map(|r| r.hash.to_vec()).collect(),
            journal_bytes: writes.journal.iter().map(|r| r.bytes.as_slice()).collect(),
            head_seq: codec::seq_column(writes.head.seq),
            head_hash: writes.head.hash.to_vec(),
            clock: [
                codec::timestamp(writes.clock.last),
                codec::timestamp(writes.clock.account),
                codec::timestamp(writes.clock.transfer),
            ],
            ..Self::default()
        };
        columns.transfers(writes)?;
        for ((at, id), present) in &writes.expiry {
            let (ats, ids) = if *present {
                (&mut columns.expiry_in_at, &mut columns.expiry_in_id)
            } else {
                (&mut columns.expiry_out_at, &mut columns.expiry_out_id)
            };
            ats.push(codec::timestamp(*at));
            ids.push(codec::id(id.0));
        }
        columns.records(writes);
        Ok(columns)
    }

    /// The transfers, each with the journal record and entry that hold it.
    fn transfers(&mut self, writes: &GroupWrites) -> Result<(), Error> {
        let locations: BTreeMap<u128, (u64, u32)> = writes
            .locations
            .iter()
            .map(|location| (location.id.0, (location.seq, location.entry)))
            .collect();
        for transfer in &writes.transfers {
            let Some((seq, entry)) = locations.get(&transfer.id.0) else {
                return Err(Error::Ledger(kakehashi_ledger::Error::InvariantViolated {
                    detail: format!("transfer {} is in no journal record", transfer.id.0),
                }));
            };
            self.transfer_ids.push(codec::id(transfer.id.0));
            self.transfer_bytes
                .push(kakehashi_ledger::engine::encoding::transfer(transfer));
            self.transfer_seqs.push(codec::seq_column(*seq));
            // At most BATCH_LEN_MAX entries per record, far below i32::MAX.
            self.transfer_entries
                .push(i32::try_from(*entry).unwrap_or(i32::MAX));
        }
        Ok(())
    }

    /// The records: the group's last write of each key decides, as applying them in order
    /// would.
    fn records(&mut self, writes: &'a GroupWrites) {
        let mut last: BTreeMap<&'a [u8], Option<&'a [u8]>> = BTreeMap::new();
        for write in &writes.records {
            match write {
                RecordWrite::Put { key, value } => last.insert(key, Some(value)),
                RecordWrite::Delete { key } => last.insert(key, None),
            };
        }
        for (key, value) in last {
            match value {
                Some(value) => {
                    self.put_keys.push(key);
                    self.put_values.push(value);
                }
                None => self.deleted.push(key),
            }
        }
    }
}

/// Writes one group's changes: a multi-row statement per table, pipelined.
async fn write(txn: &Txn<'_>, writes: &GroupWrites) -> Result<(), Error> {
    if writes.is_empty() {
        return Ok(());
    }
    let c = Columns::new(writes)?;
    let journaled = !writes.journal.is_empty();
    let accounts_params: Params<'_> = &[&c.account_ids, &c.account_bytes];
    let transfers_params: Params<'_> = &[
        &c.transfer_ids,
        &c.transfer_bytes,
        &c.transfer_seqs,
        &c.transfer_entries,
    ];
    let pending_params: Params<'_> = &[&c.pending_ids, &c.pending_status];
    let expiry_in_params: Params<'_> = &[&c.expiry_in_at, &c.expiry_in_id];
    let expiry_out_params: Params<'_> = &[&c.expiry_out_at, &c.expiry_out_id];
    let history_params: Params<'_> = &[&c.history_ids, &c.history_at, &c.history_balance];
    let failed_params: Params<'_> = &[&c.failed];
    let journal_params: Params<'_> = &[&c.journal_seqs, &c.journal_hashes, &c.journal_bytes];
    let puts_params: Params<'_> = &[&c.put_keys, &c.put_values];
    let deletes_params: Params<'_> = &[&c.deleted];
    let meta_params: Params<'_> = &[
        &c.head_seq,
        &c.head_hash,
        &c.clock[0],
        &c.clock[1],
        &c.clock[2],
    ];
    // Independent statements of one transaction, pipelined on its connection.
    tokio::try_join!(
        when(
            !c.account_ids.is_empty(),
            txn.execute(
                "INSERT INTO accounts (id, account) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET account = EXCLUDED.account",
                accounts_params,
            )
        ),
        // A plain insert: a transfer id applied twice is an error, never an overwrite.
        when(
            !c.transfer_ids.is_empty(),
            txn.execute(
                "INSERT INTO transfers (id, transfer, seq, entry) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::integer[])",
                transfers_params,
            )
        ),
        when(
            !c.pending_ids.is_empty(),
            txn.execute(
                "INSERT INTO pending (id, status) SELECT * FROM unnest($1::bytea[], $2::smallint[]) \
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status",
                pending_params,
            )
        ),
        when(
            !c.expiry_in_at.is_empty(),
            txn.execute(
                "INSERT INTO expiry (expires_at, id) SELECT * FROM unnest($1::bytea[], $2::bytea[])",
                expiry_in_params,
            )
        ),
        when(
            !c.expiry_out_at.is_empty(),
            txn.execute(
                "DELETE FROM expiry WHERE (expires_at, id) IN \
                 (SELECT * FROM unnest($1::bytea[], $2::bytea[]))",
                expiry_out_params,
            )
        ),
        when(
            !c.history_ids.is_empty(),
            txn.execute(
                "INSERT INTO history (account_id, at, balance) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])",
                history_params,
            )
        ),
        when(
            !c.failed.is_empty(),
            txn.execute(
                "INSERT INTO failed (id) SELECT * FROM unnest($1::bytea[]) ON CONFLICT DO NOTHING",
                failed_params,
            )
        ),
        when(
            journaled,
            txn.execute(
                "INSERT INTO journal (seq, hash, record) \
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
                journal_params,
            )
        ),
        when(
            !c.put_keys.is_empty(),
            txn.execute(
                "INSERT INTO records (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                puts_params,
            )
        ),
        when(
            !c.deleted.is_empty(),
            txn.execute(
                "DELETE FROM records WHERE key = ANY($1::bytea[])",
                deletes_params,
            )
        ),
        when(
            journaled,
            txn.execute(
                "UPDATE ledger_meta SET head_seq = $1, head_hash = $2, clock_last = $3, \
                 clock_account = $4, clock_transfer = $5",
                meta_params,
            )
        ),
    )
    .map_err(Error::database("writing a group"))?;
    Ok(())
}

/// Runs `statement` only when `condition` holds.
async fn when(
    condition: bool,
    statement: impl Future<Output = Result<u64, tokio_postgres::Error>>,
) -> Result<u64, tokio_postgres::Error> {
    if condition { statement.await } else { Ok(0) }
}

/// Signs a checkpoint of the head: the head and a digest of every account, read in id order
/// inside the transaction (so with the group's own writes), and counts it as a signature.
async fn insert_checkpoint(
    txn: &Txn<'_>,
    key: &SigningKey,
    head: JournalHead,
) -> Result<(), Error> {
    let rows = txn
        .query("SELECT account FROM accounts ORDER BY id", &[])
        .await
        .map_err(Error::database("reading accounts"))?;
    let mut digest = BalancesDigest::new();
    for row in rows {
        let bytes: &[u8] = row
            .try_get(0)
            .map_err(Error::database("reading accounts"))?;
        digest.add(&codec::account(bytes)?);
    }
    let (digest, accounts) = digest.finish();
    let checkpoint = Checkpoint::sign(key, head.seq, head.hash, digest, accounts);
    let seq = codec::seq_column(head.seq);
    txn.execute(
        "INSERT INTO checkpoints (seq, checkpoint) VALUES ($1, $2)",
        &[&seq, &checkpoint.encode()],
    )
    .await
    .map_err(Error::database("writing a checkpoint"))?;
    txn.execute(
        "UPDATE ledger_meta SET signed_seq = greatest(signed_seq, $1)",
        &[&seq],
    )
    .await
    .map_err(Error::database("writing a checkpoint"))?;
    Ok(())
}

async fn insert_signed_head(
    txn: &Txn<'_>,
    key: &SigningKey,
    head: JournalHead,
) -> Result<(), Error> {
    let signed = SignedHead::sign(key, head.seq, head.hash);
    let seq = codec::seq_column(head.seq);
    txn.execute(
        "INSERT INTO signed_heads (seq, signed_head) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING",
        &[&seq, &signed.encode()],
    )
    .await
    .map_err(Error::database("writing a signed head"))?;
    txn.execute(
        "UPDATE ledger_meta SET signed_seq = greatest(signed_seq, $1)",
        &[&seq],
    )
    .await
    .map_err(Error::database("writing a signed head"))?;
    Ok(())
}
