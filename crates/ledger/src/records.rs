//! Records: opaque key → value bytes a caller keeps with its transfers, in the ledger's own
//! state tree (see [`PREFIX_RECORD`](crate::ledger::trees::PREFIX_RECORD)), so that they are
//! made durable by the same group commit as the transfers they go with.
//!
//! Why in the ledger: a node keeps, beside every transfer, a record of the payment it belongs
//! to. With the records in a database of their own, each step of a payment paid two group
//! commits, one after the other; here [`Ledger::create_transfers_with`](crate::Ledger::create_transfers_with)
//! computes a request's records from its results in the writer and writes them in the same
//! durable log record or sled batch as its transfers: one crash keeps both or neither, and one
//! `fdatasync` makes both durable. They are not ledger state: not journaled, hashed, signed,
//! exported or audited (the audit reads only the spaces of the ledger's own state).
//!
//! Reads follow the transfers' rule: a record is visible only once its group is durable (the
//! ledger's visibility lock). Offline tools read them with [`LedgerRecords`], which opens the
//! database as the audit does (the groups only the durable log holds applied first).

use std::path::Path;

use crate::Error;
use crate::ledger::trees::{Trees, open_offline};
use crate::model::Timestamp;
use crate::result::CreateTransferResult;

/// Longest record key, in bytes. A node's keys are a kind byte, a jurisdiction code and a
/// UETR (a few dozen bytes).
pub const RECORD_KEY_LEN_MAX: usize = 1024;

/// Longest record value, in bytes. A payment record (its signed instruction and receipt, as
/// JSON) is a few kilobytes; the bound keeps every value far below sled's blob threshold
/// (128 KiB), so that sled's one log file and the ledger's durable log hold every record (the
/// ledger's durability rests on syncing exactly those two files).
pub const RECORD_VALUE_LEN_MAX: usize = 64 * 1024;

/// Most entries one call of [`Ledger::records`](crate::Ledger::records) returns: a page,
/// continued from the last key returned.
pub const RECORDS_PAGE_MAX: usize = 4096;

/// One write to the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordWrite {
    /// Insert or replace `key` with `value`.
    Put {
        /// At most [`RECORD_KEY_LEN_MAX`] bytes, not empty.
        key: Vec<u8>,
        /// At most [`RECORD_VALUE_LEN_MAX`] bytes.
        value: Vec<u8>,
    },
    /// Remove `key` (nothing if absent).
    Delete {
        /// At most [`RECORD_KEY_LEN_MAX`] bytes, not empty.
        key: Vec<u8>,
    },
}

impl RecordWrite {
    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }

    /// Refuses an empty or oversized key or value.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let key = self.key();
        if key.is_empty() || key.len() > RECORD_KEY_LEN_MAX {
            return Err(Error::RecordsRefused {
                detail: format!(
                    "a record key of {} bytes is outside 1..={RECORD_KEY_LEN_MAX}",
                    key.len()
                ),
            });
        }
        if let Self::Put { value, .. } = self
            && value.len() > RECORD_VALUE_LEN_MAX
        {
            return Err(Error::RecordsRefused {
                detail: format!(
                    "a record value of {} bytes exceeds {RECORD_VALUE_LEN_MAX}",
                    value.len()
                ),
            });
        }
        Ok(())
    }
}

/// Checks every write of a request (see [`RecordWrite::check`]).
pub(crate) fn check_writes(writes: &[RecordWrite]) -> Result<(), Error> {
    writes.iter().try_for_each(RecordWrite::check)
}

/// What one transfer event of a request came to, as the records closure of
/// [`Ledger::create_transfers_with`](crate::Ledger::create_transfers_with) sees it: exactly
/// the result the caller is answered with, and the timestamp the ledger assigned to the
/// transfer when this request created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferOutcome {
    /// The event's result.
    pub result: CreateTransferResult,
    /// The created transfer's timestamp (`Some` exactly when `result` is `Ok`).
    pub timestamp: Option<Timestamp>,
}

/// One stored record: its key and its value.
pub type Record = (Vec<u8>, Vec<u8>);

/// The closure that computes a request's records from its outcomes, in the writer (see
/// [`Ledger::create_transfers_with`](crate::Ledger::create_transfers_with)). An `Err` refuses
/// the whole request.
pub type RecordsFn =
    Box<dyn FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String> + Send + 'static>;

/// The records of a ledger opened offline (the tools that read a node's payment state beside
/// its books: the pair audit, statements). Opened as [`crate::audit()`] opens the database:
/// refused while a node holds it, and with the groups only the durable log holds applied.
pub struct LedgerRecords {
    trees: Trees,
}

impl LedgerRecords {
    /// Opens the ledger in directory `path` for reading its records.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            trees: open_offline(path)?,
        })
    }

    /// The value of `key`, if any.
    pub fn record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.trees
            .records
            .get(key)
            .map(|value| value.map(|value| value.to_vec()))
            .map_err(Error::storage("reading a record"))
    }

    /// A page of the records whose key starts with `prefix`, in key order, as
    /// [`crate::Ledger::records`] gives them: those after key `after` (from the first when
    /// `None`), at most `limit` (and at most [`RECORDS_PAGE_MAX`]).
    pub fn records_after(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        self.trees
            .records
            .scan_prefix_after(prefix, after)
            .take(limit.min(RECORDS_PAGE_MAX))
            .map(|item| {
                item.map(|(key, value)| (key, value.to_vec()))
                    .map_err(Error::storage("scanning records"))
            })
            .collect()
    }

    /// Every record whose key starts with `prefix`, in key order, lazily.
    pub fn records(&self, prefix: &[u8]) -> impl Iterator<Item = Result<Record, Error>> + use<> {
        self.trees.records.scan_prefix(prefix).map(|item| {
            item.map(|(key, value)| (key, value.to_vec()))
                .map_err(Error::storage("scanning records"))
        })
    }
}

#[cfg(test)]
mod tests;
