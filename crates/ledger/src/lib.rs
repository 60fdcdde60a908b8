//! kakehashi-ledger: the persistent double-entry ledger of a kakehashi node, on sled, with a
//! hash-chained journal and signed checkpoints that an auditor can check offline.
//!
//! It owns the money: accounts and transfers modelled on TigerBeetle's (u128 ids, one currency
//! per `ledger` as an ISO 4217 numeric code, debits and credits pending and posted, two-phase
//! transfers with expiry, linked chains applied all-or-nothing, one named result per event),
//! durability (nothing is acknowledged before it is on disk; concurrent callers share flushes
//! through group commit) and the audit trail: [`audit()`] checks a stored ledger offline,
//! [`LedgerExport`] reads every account and transfer of one as typed values, and [`export()`]
//! writes them as JSON Lines.
//!
//! # The contract
//!
//! `create_accounts` and `create_transfers` keep TigerBeetle 0.17's documented contract (its
//! reference pages for both requests): the same results with the same meanings, checked in
//! the documented order ([`CreateTransferResult`] and [`CreateAccountResult`] list them in
//! that order), and the same semantics:
//!
//! - an existing id is compared right after the reserved-flag and id checks, field by field
//!   in TigerBeetle's order; a post or void retried with zero fields compares them with the
//!   pending transfer's values; a balancing transfer's retry matches while its amount is at
//!   least what was moved; a post's while it is what was posted or, when all was posted,
//!   anything from the pending amount up;
//! - a transfer id whose event failed with a transient result
//!   ([`CreateTransferResult::is_transient`]: an account or the pending transfer not found, a
//!   limit exceeded, an account closed) is remembered, durably, and a retry of it is
//!   `id_already_failed`, so one id never has two outcomes;
//! - amounts may be zero; a post of [`AMOUNT_MAX`] posts the whole pending amount, a smaller
//!   one at most the pending amount (zero included) and releases the rest; a void carries
//!   zero or the pending amount, and more is `exceeds_pending_transfer_amount`;
//! - a post or void is checked against its pending transfer only (no account-id checks of its
//!   own); a pending transfer must also fit the posted balances it may be posted to
//!   (`overflows_debits_posted` …);
//! - balancing transfers (`balancing_debit`, `balancing_credit`) move at most their amount,
//!   as much as keeps the account's debits (credits) within its posted credits (debits), and
//!   store the amount moved; closing transfers (`closing_debit`, `closing_credit`, pending
//!   only) set the account's `closed` flag, which refuses every transfer but voids
//!   (`debit_account_already_closed` …) until the closing transfer is voided; accounts may be
//!   created closed;
//! - imported accounts and transfers (`imported`) carry their own timestamps, in batches of
//!   imported events only.
//!
//! Where this ledger differs, deliberately or because it has no such field:
//!
//! - It names the success `ok`, as TigerBeetle did before 0.17 (0.17 calls it `created`), and
//!   returns one result per event without the event's timestamp (0.17 adds it).
//! - Timestamps come from the caller's `now` ([`Timestamp`]; the ledger never reads a clock):
//!   `max(now, last + 1)`, and an imported timestamp must not be after `now`
//!   (`imported_event_timestamp_must_not_advance`) where TigerBeetle uses its cluster clock.
//! - Stricter: an imported event's timestamp must follow the last event of any kind, not only
//!   the last of its own kind, because the journal, its audit and the timestamps the ledger
//!   hands out rest on one strictly increasing sequence. The case TigerBeetle would accept is
//!   refused with this ledger's own result, `imported_event_timestamp_must_postdate_last_event`
//!   (checked where TigerBeetle would have accepted: after `..._must_not_regress` and the
//!   `..._must_postdate_*_account` checks); TigerBeetle's rule that an imported timestamp must
//!   not equal another kind's is covered by it too, under that name.
//! - The expiry of a pending closing transfer reopens the account, as a void does (TigerBeetle
//!   documents expiry as voiding by timeout; it does not say so of closing).
//! - A transient failure inside a linked chain is remembered for the failing event's id even
//!   though its chain is rolled back (the failure is that event's own outcome).
//! - `overflows_timeout` is `timestamp + timeout` beyond `u64` nanoseconds, where TigerBeetle
//!   documents `2^63`.
//! - The results that need fields this API does not have (`reserved_field`,
//!   `debits_pending_must_be_zero` and the other balances of a new account) cannot occur and
//!   are not listed; `amount_must_not_be_zero`, which TigerBeetle returns only to clients older
//!   than 0.16, is gone.
//!
//! `tests/ledger/contract.rs` pins every result and its precedence against its neighbour
//! (written from TigerBeetle's documentation, run on [`Ledger`] and [`MemoryLedger`]), and
//! `tests/ledger/mixed.rs` runs random batches mixing every feature through both.
//!
//! Durability: a call returns only after its batch is on disk. The writer's sequencer thread
//! runs queued batches through the state machine in groups; its committer thread makes each
//! group durable, writes it to sled, and only then answers the group's callers. A small group is durable once its record (the group's sled writes) is
//! written and `fdatasync`ed in the ledger's durable log, a pre-zeroed file beside sled's
//! whose overwrites commit no metadata; a large group (full batches) or one that takes a
//! checkpoint by `Db::flush` and an `fdatasync` of sled's log file (sled's own flush uses
//! `sync_file_range`, which survives a killed process but not necessarily a power loss). sled
//! is flushed when the durable log is full, which then starts over, and opening applies the
//! log's records after the last group sled holds. The sequencer may run the next group while
//! the committer makes one durable, on top of that group's overlay, but groups are written and
//! answered strictly in order, each once durable. After a crash, reopening shows exactly the
//! acknowledged batches plus possibly whole unacknowledged ones, never part of one.
//!
//! Storage (format version 7, checked at open and by the offline tools; 3 to 6 are read and
//! upgraded): the durable log `durable.log` (above), and one sled tree that holds, by key
//! prefix, the journal chunks (a chunk holds a piece of one long record or a frame of short
//! records of one group), signed heads, an account
//! snapshot (refreshed every checkpoint), pending statuses, the expiry index, balance history
//! and a transfer index
//! that maps each run of consecutive transfer ids to where its transfers sit in the journal:
//! the journal is the one full copy of every transfer, and the rare reads (duplicate ids,
//! post/void, expiry, lookups, export) fetch the chunk that holds it. The ids of transfers that
//! failed transiently have a key each, written in the same batch as their group. A run is packed
//! (consecutive entries of one record, as one caller's batch of ordered ids gives) or spread
//! (each id's own record and entry within one group, as many callers drawing ids from one
//! counter give), so ids allocated in order cost one index key per batch or per group. Random
//! ids make runs of one; a group with many of them stores them instead as one sorted id table
//! in pieces of about 4 KiB (a few dozen keys for a full batch), and the writer merges tables
//! between groups so that a lookup probes few of them. A blocked Bloom filter of transfer ids
//! (stored and failed) lets the writer skip the sled lookups for ids that are surely new; it
//! never decides a result (a "maybe" always asks sled).
//! sled's replaced tree nodes are freed by a helper thread after every commit, which keeps
//! memory bounded.
//!
//! Signatures: the node's Ed25519 key vouches for the journal with signed heads (the head
//! record's sequence number and hash, in the batch of the group whose head it is) every
//! [`Options::signed_head_interval`] (1 s) or [`Options::signed_head_records`] (4,096 records),
//! whichever comes first while records arrive, about an interval after they stop, and with a
//! full checkpoint (the head and a digest of every account) every `checkpoint_interval` records
//! and at every clean close ([`Ledger::close`], or dropping the `Ledger`). The interval runs on
//! the writer's monotonic clock, never on the callers' timestamps. So a cleanly closed ledger
//! has every record signed, and a journal rewritten with fresh hashes fails the audit on the
//! signatures; [`AuditReport::records_unsigned`] counts the records after the last one (a node
//! killed since then), which [`AuditReport::require_signed_head`] refuses.
//!
//! Invariants, asserted before every write (fail-stop, nothing written) and re-checked by
//! [`audit()`]: per currency, Σ debits = Σ credits (pending and posted separately); flagged
//! accounts stay within their limits; every committed change is in the hash-chained journal.
//!
//! It must not depend on tonic, tokio, prost or certificate handling: the relay (`node`)
//! builds on it, converts wire types at its edge and owns the network. Time is always an
//! argument ([`Timestamp`]); nothing here reads the system clock.
//!
//! ```no_run
//! use kakehashi_ledger::*;
//! # fn main() -> Result<(), Error> {
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let ledger = Ledger::open(std::path::Path::new("data/jp"), key, Options::default())?;
//! let now = Timestamp::from_unix_nanos(1_764_000_000_000_000_000);
//! let jpy = 392;
//! let accounts = [1, 2].map(|id| NewAccount {
//!     id: AccountId(id), ledger: jpy, code: 1, ..NewAccount::default()
//! });
//! assert!(ledger.create_accounts(&accounts, now)?.iter().all(|r| r.is_recorded()));
//! let transfer = NewTransfer {
//!     id: TransferId(10), debit_account_id: AccountId(1), credit_account_id: AccountId(2),
//!     amount: 5_000, ledger: jpy, code: 1, ..NewTransfer::default()
//! };
//! assert_eq!(ledger.create_transfers(&[transfer], now)?, [CreateTransferResult::Ok]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod codec;
pub mod engine;
mod error;
mod export;
mod filter;
mod idhash;
mod journal;
mod ledger;
mod memory;
mod model;
mod records;
mod recovery;
mod result;
mod state_machine;
mod wide;

pub use audit::{
    AuditOptions, AuditReport, AuditSource, DISCREPANCIES_LISTED_MAX, Discrepancy, JournalItem,
    LedgerTotals, Location, audit, audit_source,
};
pub use codec::DecodeError;
pub use error::Error;
pub use export::{
    ExportAccounts, ExportSummary, ExportTransfers, ExportedTransfer, LedgerExport, export,
    export_lines,
};
pub use ledger::{
    CACHE_CAPACITY_DEFAULT, CACHE_CAPACITY_MIN, CHECKPOINT_EVENTS_MIN_DEFAULT,
    CHECKPOINT_INTERVAL_DEFAULT, CHECKPOINT_SMALL_RECORDS_FACTOR, EXPIRE_BATCH_LEN_MAX, Expired,
    GROUP_EVENTS_MAX, Ledger, Options, QUEUE_LEN_DEFAULT, SIGNED_HEAD_INTERVAL_DEFAULT,
    SIGNED_HEAD_RECORDS_DEFAULT,
};
pub use memory::MemoryLedger;
pub use model::{
    AMOUNT_MAX, Account, AccountBalance, AccountFlags, AccountId, NewAccount, NewTransfer,
    PendingStatus, Timestamp, Transfer, TransferFlags, TransferId,
};
pub use records::{
    LedgerRecords, RECORD_KEY_LEN_MAX, RECORD_VALUE_LEN_MAX, RECORDS_PAGE_MAX, Record, RecordWrite,
    RecordsFn, TransferOutcome,
};
pub use result::{CreateAccountResult, CreateTransferResult};

/// Most events in one `create_accounts` or `create_transfers` call. TigerBeetle's batch size:
/// its 1 MiB message minus the header, divided by 128-byte events. Larger batches are refused
/// whole with [`Error::BatchTooLong`].
pub const BATCH_LEN_MAX: usize = 8190;

// A batch's results and journal record count must fit the u32 the record format stores.
const _: () = assert!(BATCH_LEN_MAX <= u16::MAX as usize);
