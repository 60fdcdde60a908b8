//! kakehashi-ledger-pg: PostgreSQL as a second storage engine for a kakehashi node's ledger and
//! payment records, with the same semantics as the sled [`kakehashi_ledger::Ledger`].
//!
//! It has no state machine of its own: every group runs through
//! [`kakehashi_ledger::engine::GroupBuilder`], the sled ledger's state machine, journal
//! encoding and invariant checks, so that results (TigerBeetle's result codes, linked chains,
//! two-phase transfers, idempotency, balance limits) and journal bytes are the sled ledger's.
//! A differential property test (`tests/pg/differential.rs`) holds the two engines to identical
//! results, balances, lookups, pending statuses and journals.
//!
//! It depends on the ledger crate, tokio and the PostgreSQL client only: never on the node,
//! the wire types, gRPC or certificates (the node chooses the engine and converts at its
//! edge), and never on `kakehashi-pgcluster` (a node connects to a server; only tests start
//! one).
//!
//! # Schema
//!
//! One PostgreSQL schema per node ([`Options::schema`], created when missing; every
//! connection's `search_path` names it), so that several nodes share one database. Its tables
//! come from versioned migrations embedded from the crate's `migrations/` directory, applied
//! in one transaction under an advisory lock, recorded in `schema_version`; a schema a newer
//! build migrated is refused ([`Error::SchemaTooNew`]).
//!
//! - `ledger_meta`, one row: the format version, the node's verifying key (reopening with
//!   another key is refused, as on sled), the journal head (sequence number and hash), the
//!   clock (last event, account and transfer timestamps) and the last signed sequence number;
//! - `accounts`, `transfers` (with the journal record and entry that hold each), `pending`,
//!   `expiry`, `history`, `failed` (ids of transient failures): the ledger's state;
//! - `journal` (seq, hash, record bytes: exactly the sled journal's records),
//!   `signed_heads` and `checkpoints` (the sled encodings of both);
//! - `records`: the callers' key → value records (a node's payment state).
//!
//! Ids (u128) are 16-byte big-endian `bytea` and timestamps 8-byte big-endian `bytea`, ordered
//! like the numbers; accounts, transfers and balances are the ledger's own fixed encodings, so
//! every amount is exact and both engines store the same bytes.
//!
//! # The transaction of a group
//!
//! Callers queue requests; one writer task per [`PgLedger`] gathers what is queued into a
//! group (up to [`kakehashi_ledger::GROUP_EVENTS_MAX`] events) and commits it as one
//! transaction (READ COMMITTED):
//!
//! 1. `SELECT … FROM ledger_meta FOR UPDATE`: the head row's lock. Every writer of the schema,
//!    in every process, takes it first, so groups are serialized on the journal's chain and
//!    each group reads the state the previous one committed (its statements start after that
//!    commit). This is what lets several node processes share one ledger.
//! 2. Read the head and the clock, and prefetch the state the group's events name (see
//!    `prefetch`: a probe run of the pure state machine finds anything else it reads, which is
//!    fetched before the group is run again; the real run never guesses).
//! 3. Run the group through the builder (the records closures run here, once), which checks
//!    the group's invariants before returning anything to write (fail-stop).
//! 4. Write everything with one multi-row statement per table, pipelined (each statement
//!    prepared once per connection); sign the head when due ([`Options::signed_head_records`]
//!    records or [`Options::signed_head_interval`] since the last signature, as on sled), or
//!    take a checkpoint (the head and a digest of every account, read in the transaction)
//!    every [`Options::checkpoint_records`] records.
//! 5. COMMIT, with `synchronous_commit = on` on every connection (set at connection start-up
//!    and checked at open: a server where it is off, or `fsync` off, is refused,
//!    [`Error::NotDurable`]); only then are the callers answered.
//!
//! # Unknown outcomes
//!
//! A group that fails before its COMMIT is sent (a statement failed, the connection dropped)
//! changed nothing: its callers get [`Error::NotApplied`] and may retry, and the writer goes
//! on with a fresh connection. If the server answers COMMIT with an error, it rolled back:
//! [`Error::NotApplied`] too. But if the connection is lost while COMMIT is in flight, the
//! group may or may not be committed: its callers get [`Error::OutcomeUnknown`], and the writer
//! stops (fail-stop, like the sled ledger's): every later call is [`Error::Stopped`] until the
//! ledger is reopened, and the caller learns what happened by reading the state. An
//! invariant the group would break stops the writer too, with nothing written.
//!
//! [`PgLedger::open`] refuses books it cannot vouch for, cheaply, as the sled ledger's open
//! does (`Error::Corrupt`): the signatures of the last checkpoint and signed head under the
//! node key, every record from the older of them to the head decoding, hashing to its stored
//! hash and chaining, their signed hashes and the head's those of their records, and the
//! balances the checkpoint signed when it is the head.
//!
//! Readers ([`PgLedger::lookup_accounts`], [`PgLedger::record`], …) read through the pool and
//! see only committed data. [`PgLedger::close`] drains the queue and signs the head with a
//! checkpoint (a digest of every account), so a cleanly closed ledger has every record signed.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod codec;
mod error;
mod lease;
mod prefetch;
mod schema;
mod sql;
mod verify;
mod writer;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use ed25519_dalek::{SigningKey, VerifyingKey};
use kakehashi_ledger::{
    Account, AccountBalance, AccountId, BATCH_LEN_MAX, CreateAccountResult, CreateTransferResult,
    Expired, NewAccount, NewTransfer, PendingStatus, RECORDS_PAGE_MAX, Record, RecordWrite,
    Timestamp, Transfer, TransferId, TransferOutcome,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use crate::error::Error;
use crate::writer::{Operation, Reply, Request, Writer};

/// Options of [`PgLedger::open`].
#[derive(Clone)]
pub struct Options {
    /// The database, as a libpq-style URL or key=value string
    /// (`postgresql://user@host/db`, `host=/run/postgresql dbname=kakehashi`).
    pub url: String,
    /// The node's schema: 1 to 63 lower-case letters, digits and `_`, starting with a letter.
    pub schema: String,
    /// Connections in the pool (readers and the writer's one).
    pub pool_size: usize,
    /// Requests waiting for the writer before callers wait to queue.
    pub queue_len: usize,
    /// Sign the head once this many records follow the last signature.
    pub signed_head_records: u64,
    /// Take a checkpoint (the head and a digest of every account) once this many records
    /// follow the last one, in the group's transaction; and at every clean close.
    pub checkpoint_records: u64,
    /// Sign the head once this long has passed since the last signature while records arrive,
    /// and about this long after they stop.
    pub signed_head_interval: Duration,
    /// Refuse a server with `fsync` off (on by default; tests on a throwaway cluster may turn
    /// it off, never a node).
    pub require_fsync: bool,
    /// Hold the schema's writer lease (on by default): one ledger, in any process, writes the
    /// schema at a time, and another open is refused ([`Error::Held`]) while it runs (see
    /// [`PgLedger::open`]). Off, several ledgers share the schema's one journal (the head
    /// row's lock orders their groups); what a caller builds on top must then serialize its
    /// own read-decide-write steps across processes.
    pub exclusive: bool,
}

impl std::fmt::Debug for Options {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &"<not shown>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Defaults for the database at `url` and the schema `schema`.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: schema.into(),
            pool_size: 8,
            queue_len: kakehashi_ledger::QUEUE_LEN_DEFAULT,
            signed_head_records: kakehashi_ledger::SIGNED_HEAD_RECORDS_DEFAULT,
            // As the sled ledger's single-transfer traffic checkpoints: every 65,536 records.
            checkpoint_records: kakehashi_ledger::CHECKPOINT_INTERVAL_DEFAULT
                * kakehashi_ledger::CHECKPOINT_SMALL_RECORDS_FACTOR,
            signed_head_interval: kakehashi_ledger::SIGNED_HEAD_INTERVAL_DEFAULT,
            require_fsync: true,
            exclusive: true,
        }
    }
}

/// A node's ledger in PostgreSQL (see the crate documentation).
pub struct PgLedger {
    pool: Pool,
    sender: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    stopped: Arc<Mutex<Option<String>>>,
    verifying_key: VerifyingKey,
}

impl PgLedger {
    /// Connects, migrates the schema (creating it when missing) and starts the writer. A
    /// ledger created with another node key is refused ([`Error::NodeKeyMismatch`]), as is a
    /// server that could acknowledge a commit before it is durable ([`Error::NotDurable`]).
    /// Must be called within a tokio runtime.
    ///
    /// With [`Options::exclusive`], the schema's writer lease is taken first, on a connection
    /// of its own held until the ledger is dropped, or refused with [`Error::Held`] while
    /// another ledger holds it. Every group's transaction checks, under the head row's lock,
    /// that this session still holds the lease, and stops the writer if it does not (its
    /// connection died: another process may have taken the lease since). The new holder reads
    /// the head under the same row lock, so it starts only after a group the old holder had in
    /// flight committed or rolled back, and sees it. So two ledgers never both write the
    /// schema, even across a lost connection.
    pub async fn open(options: &Options, node_key: SigningKey) -> Result<Self, Error> {
        if options.pool_size < 2 {
            return Err(Error::InvalidOption {
                name: "pool_size",
                detail: "at least 2 (the writer holds one connection)".into(),
            });
        }
        if options.queue_len == 0
            || options.signed_head_records == 0
            || options.checkpoint_records == 0
        {
            return Err(Error::InvalidOption {
                name: "queue_len / signed_head_records / checkpoint_records",
                detail: "must be positive".into(),
            });
        }
        let pool = schema::pool(options)?;
        let verifying_key = node_key.verifying_key();
        let mut client = pool.get().await.map_err(|error| Error::Pool {
            detail: error.to_string(),
        })?;
        schema::check_durability(&client, options.require_fsync).await?;
        schema::migrate(&mut client, &options.schema, &verifying_key).await?;
        let lease = if options.exclusive {
            Some(lease::take(&pool, &options.schema).await?)
        } else {
            None
        };
        let (head_seq, signed_seq) = {
            let txn = sql::Txn::begin(&mut client)
                .await
                .map_err(Error::database("reading the head"))?;
            // Under the head row's lock: a group a previous holder of the lease still had in
            // flight has ended, and is seen.
            let meta = writer::read_meta(&txn, options.exclusive).await?;
            verify::verify_tail(&txn, &verifying_key).await?;
            (meta.head.seq, meta.signed_seq)
        };
        let (sender, receiver) = mpsc::channel(options.queue_len);
        let stopped = Arc::new(Mutex::new(None));
        let writer = Writer {
            pool: pool.clone(),
            client: Some(client),
            key: node_key,
            signed_head_records: options.signed_head_records,
            checkpoint_records: options.checkpoint_records,
            signed_head_interval: options.signed_head_interval,
            stopped: Arc::clone(&stopped),
            head_seq,
            signed_seq,
            last_signed_at: Instant::now(),
            lease,
        };
        let writer = tokio::spawn(writer.run(receiver));
        Ok(Self {
            pool,
            sender: Some(sender),
            writer: Some(writer),
            stopped,
            verifying_key,
        })
    }

    /// The node key's verifying key (the one stored in the ledger).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying_key
    }

    async fn submit(&self, operation: Operation, now: Timestamp) -> Result<Reply, Error> {
        let stopped = || Error::Stopped {
            reason: self
                .stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "the ledger is closing".into()),
        };
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Request {
                operation,
                now,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Creates accounts ([`kakehashi_ledger::Ledger::create_accounts`]); answered once
    /// committed.
    pub async fn create_accounts(
        &self,
        accounts: &[NewAccount],
        now: Timestamp,
    ) -> Result<Vec<CreateAccountResult>, Error> {
        check_batch_len(accounts.len())?;
        match self
            .submit(Operation::Accounts(accounts.to_vec()), now)
            .await?
        {
            Reply::Accounts(results) => Ok(results),
            _ => Err(unexpected()),
        }
    }

    /// Applies transfers ([`kakehashi_ledger::Ledger::create_transfers`]); answered once
    /// committed.
    pub async fn create_transfers(
        &self,
        transfers: &[NewTransfer],
        now: Timestamp,
    ) -> Result<Vec<CreateTransferResult>, Error> {
        check_batch_len(transfers.len())?;
        match self
            .submit(Operation::Transfers(transfers.to_vec(), None), now)
            .await?
        {
            Reply::Transfers(results) => Ok(results),
            _ => Err(unexpected()),
        }
    }

    /// Applies transfers with the records `records` computes from their outcomes
    /// ([`kakehashi_ledger::Ledger::create_transfers_with`]): the closure runs in the writer,
    /// once, and its writes are committed in the same transaction as the transfers. If it
    /// fails or panics, or a write is too large, the request alone is refused
    /// ([`kakehashi_ledger::Error::RecordsRefused`]) and nothing of it is applied.
    pub async fn create_transfers_with<F>(
        &self,
        transfers: &[NewTransfer],
        now: Timestamp,
        records: F,
    ) -> Result<Vec<CreateTransferResult>, Error>
    where
        F: FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String> + Send + 'static,
    {
        check_batch_len(transfers.len())?;
        match self
            .submit(
                Operation::Transfers(transfers.to_vec(), Some(Box::new(records))),
                now,
            )
            .await?
        {
            Reply::Transfers(results) => Ok(results),
            _ => Err(unexpected()),
        }
    }

    /// Writes records alone ([`kakehashi_ledger::Ledger::write_records`]), committed with
    /// whatever else the writer's group holds.
    pub async fn write_records(&self, writes: Vec<RecordWrite>) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        match self
            .submit(Operation::Records(writes), Timestamp(0))
            .await?
        {
            Reply::Records => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Releases the reservations of pending transfers whose timeout passed by `now`
    /// ([`kakehashi_ledger::Ledger::expire_pending`]).
    pub async fn expire_pending(&self, now: Timestamp) -> Result<Expired, Error> {
        match self.submit(Operation::Expire, now).await? {
            Reply::Expired(expired) => Ok(expired),
            _ => Err(unexpected()),
        }
    }

    /// A reader's query, through the pool and the connection's statement cache.
    async fn reader_query(
        &self,
        context: &str,
        statement: &str,
        params: sql::Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, Error> {
        let client = self.reader().await?;
        sql::query(&client, statement, params)
            .await
            .map_err(Error::database(context))
    }

    /// [`PgLedger::reader_query`] for at most one row.
    async fn reader_query_opt(
        &self,
        context: &str,
        statement: &str,
        params: sql::Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, Error> {
        let mut rows = self.reader_query(context, statement, params).await?;
        if rows.len() > 1 {
            return Err(Error::corrupt(context.to_string(), "more than one row"));
        }
        Ok(rows.pop())
    }

    async fn reader(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|error| Error::Pool {
            detail: error.to_string(),
        })
    }

    /// Looks up accounts by id (`None` where there is no such account), as committed.
    pub async fn lookup_accounts(&self, ids: &[AccountId]) -> Result<Vec<Option<Account>>, Error> {
        check_batch_len(ids.len())?;
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| codec::id(id.0)).collect();
        let rows = self
            .reader_query(
                "looking up accounts",
                "SELECT account FROM accounts WHERE id = ANY($1)",
                &[&keys],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("looking up accounts"))?;
            let account = codec::account(bytes)?;
            found.insert(account.id, account);
        }
        Ok(ids.iter().map(|id| found.get(id).copied()).collect())
    }

    /// Looks up transfers by id (`None` where there is no such transfer), as committed.
    pub async fn lookup_transfers(
        &self,
        ids: &[TransferId],
    ) -> Result<Vec<Option<Transfer>>, Error> {
        check_batch_len(ids.len())?;
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| codec::id(id.0)).collect();
        let rows = self
            .reader_query(
                "looking up transfers",
                "SELECT transfer FROM transfers WHERE id = ANY($1)",
                &[&keys],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("looking up transfers"))?;
            let transfer = codec::transfer(bytes)?;
            found.insert(transfer.id, transfer);
        }
        Ok(ids.iter().map(|id| found.get(id).copied()).collect())
    }

    /// Where a pending transfer stands (`None` if `id` is not a pending transfer).
    pub async fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        let row = self
            .reader_query_opt(
                "reading a pending status",
                "SELECT status FROM pending WHERE id = $1",
                &[&codec::id(id.0)],
            )
            .await?;
        row.map(|row| {
            row.try_get::<_, i16>(0)
                .map_err(Error::database("reading a pending status"))
                .and_then(codec::pending_status)
        })
        .transpose()
    }

    /// The balances after every transfer that touched a `HISTORY` account, oldest first.
    pub async fn account_history(&self, id: AccountId) -> Result<Vec<AccountBalance>, Error> {
        let rows = self
            .reader_query(
                "reading account history",
                "SELECT balance FROM history WHERE account_id = $1 ORDER BY at",
                &[&codec::id(id.0)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                row.try_get::<_, &[u8]>(0)
                    .map_err(Error::database("reading account history"))
                    .and_then(codec::balance)
            })
            .collect()
    }

    /// The record under `key`, as committed.
    pub async fn record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let row = self
            .reader_query_opt(
                "reading a record",
                "SELECT value FROM records WHERE key = $1",
                &[&key],
            )
            .await?;
        row.map(|row| row.try_get(0).map_err(Error::database("reading a record")))
            .transpose()
    }

    /// A page of the records whose key starts with `prefix`, in key order, as committed: those
    /// after key `after` (from the first when `None`), at most `limit` (and at most
    /// [`RECORDS_PAGE_MAX`]), as [`kakehashi_ledger::Ledger::records`] pages them.
    pub async fn records(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let client = self.reader().await?;
        records_page(&client, prefix, after, limit).await
    }

    /// The journal's head as committed: the last record's sequence number and hash.
    pub async fn head(&self) -> Result<kakehashi_ledger::engine::JournalHead, Error> {
        let mut client = self.reader().await?;
        let txn = sql::Txn::begin(&mut client)
            .await
            .map_err(Error::database("reading the head"))?;
        Ok(writer::read_meta(&txn, false).await?.head)
    }

    /// Audits the ledger with the checks of `kakehashi ledger audit` on sled
    /// ([`kakehashi_ledger::audit_source`]: the hash chain, the signed heads and checkpoints
    /// under the node key or `options.expected_key`, the replay of every record against the
    /// stored accounts, transfers, pending statuses, expiry index and history), over one
    /// consistent snapshot of the tables (writers may keep running).
    pub async fn audit(
        &self,
        options: &kakehashi_ledger::AuditOptions,
    ) -> Result<kakehashi_ledger::AuditReport, Error> {
        let mut client = self.reader().await?;
        let snapshot = audit::Snapshot::load(&mut client).await?;
        Ok(kakehashi_ledger::audit_source(&snapshot, options)?)
    }

    /// Writes every account, then every transfer, as JSON Lines, exactly as
    /// `kakehashi ledger export` writes a sled ledger ([`kakehashi_ledger::export_lines`]),
    /// from one consistent snapshot.
    pub async fn export(
        &self,
        out: &mut dyn std::io::Write,
    ) -> Result<kakehashi_ledger::ExportSummary, Error> {
        let mut client = self.reader().await?;
        let snapshot = audit::Snapshot::load(&mut client).await?;
        let accounts = snapshot.export_accounts()?;
        Ok(kakehashi_ledger::export_lines(
            accounts,
            snapshot.export_transfers(),
            out,
        )?)
    }

    /// Every account in id order and every transfer in id order (with its pending status and
    /// journal record), as [`kakehashi_ledger::LedgerExport`] gives them on sled, from one
    /// consistent snapshot.
    pub async fn export_typed(
        &self,
    ) -> Result<(Vec<Account>, Vec<kakehashi_ledger::ExportedTransfer>), Error> {
        let mut client = self.reader().await?;
        let snapshot = audit::Snapshot::load(&mut client).await?;
        let accounts = snapshot.export_accounts()?;
        let transfers = snapshot
            .export_transfers()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok((accounts, transfers))
    }

    /// Why the writer stopped, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the writer after the requests already queued, signs the head with a checkpoint
    /// and waits for it; everything acknowledged is already committed. Returns why the writer
    /// had stopped, if it had.
    pub async fn close(mut self) -> Result<(), Error> {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            writer.await.map_err(|error| Error::Stopped {
                reason: format!("the ledger writer task failed: {error}"),
            })?;
        }
        match self.stopped() {
            Some(reason) => Err(Error::Stopped { reason }),
            None => Ok(()),
        }
    }
}

/// Audits the PostgreSQL ledger of `options` offline, as `kakehashi ledger audit` audits a
/// sled one ([`PgLedger::audit`]), without starting a writer or changing anything (the schema
/// must exist and be of a version this build knows).
pub async fn audit(
    options: &Options,
    audit_options: &kakehashi_ledger::AuditOptions,
) -> Result<kakehashi_ledger::AuditReport, Error> {
    let mut client = offline_client(options).await?;
    let snapshot = audit::Snapshot::load(&mut client).await?;
    Ok(kakehashi_ledger::audit_source(&snapshot, audit_options)?)
}

/// Exports the PostgreSQL ledger of `options` offline as JSON Lines, as `kakehashi ledger
/// export` exports a sled one ([`PgLedger::export`]), changing nothing.
pub async fn export(
    options: &Options,
    out: &mut dyn std::io::Write,
) -> Result<kakehashi_ledger::ExportSummary, Error> {
    let mut client = offline_client(options).await?;
    let snapshot = audit::Snapshot::load(&mut client).await?;
    let accounts = snapshot.export_accounts()?;
    Ok(kakehashi_ledger::export_lines(
        accounts,
        snapshot.export_transfers(),
        out,
    )?)
}

/// Every account and every transfer of the PostgreSQL ledger of `options`, offline, as
/// [`kakehashi_ledger::LedgerExport`] gives them on sled (accounts in id order with their
/// balances at the head; transfers in id order with their pending status and journal record),
/// from one consistent snapshot, changing nothing: what the pair audit reads.
pub async fn export_typed(
    options: &Options,
) -> Result<(Vec<Account>, Vec<kakehashi_ledger::ExportedTransfer>), Error> {
    let mut client = offline_client(options).await?;
    let snapshot = audit::Snapshot::load(&mut client).await?;
    let accounts = snapshot.export_accounts()?;
    let transfers = snapshot
        .export_transfers()
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok((accounts, transfers))
}

/// A page of the records of the PostgreSQL ledger of `options` whose key starts with `prefix`,
/// offline, as [`PgLedger::records`] pages them (what [`kakehashi_ledger::LedgerRecords`]
/// reads on sled), changing nothing.
pub async fn records_offline(
    options: &Options,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Record>, Error> {
    let client = offline_client(options).await?;
    records_page(&client, prefix, after, limit).await
}

/// A page of records (see [`PgLedger::records`]).
async fn records_page(
    client: &deadpool_postgres::Object,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Record>, Error> {
    let limit = i64::try_from(limit.min(RECORDS_PAGE_MAX)).unwrap_or(i64::MAX);
    let end = codec::prefix_end(prefix);
    let rows = sql::query(
        client,
        "SELECT key, value FROM records WHERE key >= $1 \
         AND ($2::bytea IS NULL OR key > $2) AND ($3::bytea IS NULL OR key < $3) \
         ORDER BY key LIMIT $4",
        &[&prefix, &after, &end, &limit],
    )
    .await
    .map_err(Error::database("reading records"))?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(Error::database("reading records"))?,
                row.try_get(1).map_err(Error::database("reading records"))?,
            ))
        })
        .collect()
}

/// A connection for the offline tools: the schema must exist at a version this build knows;
/// nothing is created or migrated.
/// Drops the schema of `options` with everything in it: for tools that made a schema for a run
/// of their own (`kakehashi bench --storage`) and remove it after. Refuses a schema that is not
/// a ledger's (no `ledger_meta` table), so a mistyped name never drops someone else's tables.
pub async fn drop_schema(options: &Options) -> Result<(), Error> {
    schema::check_schema_name(&options.schema)?;
    let client = offline_client(options).await?;
    let table = format!("{}.ledger_meta", options.schema);
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(Error::database("looking for the ledger's tables"))?;
    let is_ledger: bool = row
        .try_get(0)
        .map_err(Error::database("looking for the ledger's tables"))?;
    if !is_ledger {
        return Err(Error::Corrupt {
            what: format!("schema {}", options.schema),
            detail: "holds no ledger (no ledger_meta table); not dropped".into(),
        });
    }
    // The name was checked above: lower-case letters, digits and `_` only, no quoting needed.
    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", options.schema))
        .await
        .map_err(Error::database("dropping the schema"))
}

async fn offline_client(options: &Options) -> Result<deadpool_postgres::Object, Error> {
    let pool = schema::pool(options)?;
    let client = pool.get().await.map_err(|error| Error::Pool {
        detail: error.to_string(),
    })?;
    schema::check_version(&client, &options.schema).await?;
    Ok(client)
}

fn check_batch_len(len: usize) -> Result<(), Error> {
    if len > BATCH_LEN_MAX {
        return Err(Error::Ledger(kakehashi_ledger::Error::BatchTooLong {
            len,
            len_max: BATCH_LEN_MAX,
        }));
    }
    Ok(())
}

fn unexpected() -> Error {
    Error::Stopped {
        reason: "the writer answered another kind of request".into(),
    }
}
