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
//! Durability: a call returns only after its batch is on disk. The writer's sequencer thread
//! runs queued batches through the state machine in groups; its committer thread writes each
//! group with one crash-atomic sled batch, calls `Db::flush` and then `fdatasync`s sled's log
//! file (sled's own flush uses `sync_file_range`, which survives a killed process but not
//! necessarily a power loss), and only then answers the group's callers. The sequencer may
//! run the next group while the committer flushes one, on top of that group's overlay, but
//! groups are written and answered strictly in order, each after its own flush. After a crash,
//! reopening shows exactly the acknowledged batches plus possibly whole unacknowledged ones,
//! never part of one.
//!
//! Storage (format version 6, checked at open and by the offline tools; 3 to 5 are read and
//! upgraded): one sled tree holds, by key prefix, the journal chunks (a chunk holds a piece of
//! one long record or a frame of short records of one group), signed heads, an account
//! snapshot (refreshed every checkpoint), pending statuses, the expiry index, balance history and a transfer index
//! that maps each run of consecutive transfer ids to where its transfers sit in the journal:
//! the journal is the one full copy of every transfer, and the rare reads (duplicate ids,
//! post/void, expiry, lookups, export) fetch the chunk that holds it. A run is packed
//! (consecutive entries of one record, as one caller's batch of ordered ids gives) or spread
//! (each id's own record and entry within one group, as many callers drawing ids from one
//! counter give), so ids allocated in order cost one index key per batch or per group; random
//! ids make runs of one. A blocked Bloom filter of transfer ids lets the writer skip the sled
//! lookup for ids that are surely new; it never decides a result (a "maybe" always asks sled).
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
mod error;
mod export;
mod filter;
mod idhash;
mod journal;
mod ledger;
mod memory;
mod model;
mod recovery;
mod result;
mod state_machine;
mod wide;

pub use audit::{
    AuditOptions, AuditReport, DISCREPANCIES_LISTED_MAX, Discrepancy, LedgerTotals, Location, audit,
};
pub use codec::DecodeError;
pub use error::Error;
pub use export::{
    ExportAccounts, ExportSummary, ExportTransfers, ExportedTransfer, LedgerExport, export,
};
pub use ledger::{
    CACHE_CAPACITY_DEFAULT, CHECKPOINT_EVENTS_MIN_DEFAULT, CHECKPOINT_INTERVAL_DEFAULT,
    CHECKPOINT_SMALL_RECORDS_FACTOR, EXPIRE_BATCH_LEN_MAX, Expired, GROUP_EVENTS_MAX, Ledger,
    Options, QUEUE_LEN_DEFAULT, SIGNED_HEAD_INTERVAL_DEFAULT, SIGNED_HEAD_RECORDS_DEFAULT,
};
pub use memory::MemoryLedger;
pub use model::{
    Account, AccountBalance, AccountFlags, AccountId, NewAccount, NewTransfer, PendingStatus,
    Timestamp, Transfer, TransferFlags, TransferId,
};
pub use result::{CreateAccountResult, CreateTransferResult};

/// Most events in one `create_accounts` or `create_transfers` call. TigerBeetle's batch size:
/// its 1 MiB message minus the header, divided by 128-byte events. Larger batches are refused
/// whole with [`Error::BatchTooLong`].
pub const BATCH_LEN_MAX: usize = 8190;

// A batch's results and journal record count must fit the u32 the record format stores.
const _: () = assert!(BATCH_LEN_MAX <= u16::MAX as usize);
