//! The storage-agnostic core of the ledger, for a second storage engine (the PostgreSQL one,
//! `kakehashi-ledger-pg`): what it needs to produce exactly the sled [`crate::Ledger`]'s
//! results and journal without a state machine of its own.
//!
//! - [`Store`]: read access to the committed state, which the engine implements over its
//!   tables;
//! - [`GroupBuilder`]: one group commit's run of the state machine over a [`Store`] —
//!   account batches, transfer batches (with a records closure whose refusal rolls the
//!   request back exactly as the sled sequencer does), records alone and expiry — finished
//!   into typed [`GroupWrites`]: the accounts after, the transfers created, pending-status and
//!   expiry changes, balance history, failed ids, the records, and the journal records
//!   (byte-identical to the sled journal's, chained from the given head), after the group
//!   invariants were checked (fail-stop: on a violation nothing is returned to write);
//! - [`SignedHead`], [`Checkpoint`] and [`BalancesDigest`]: the signatures over the journal,
//!   with their stored encodings;
//! - [`encoding`]: the fixed encodings of accounts, transfers and balances the sled ledger
//!   stores, so that an engine can store the same bytes.
//!
//! The sled ledger's own pipeline (its sequencer thread) runs the same state machine, the same
//! journal encoding and the same invariant checks; a unit test below holds the builder to the
//! sled ledger's journal bytes and to [`crate::MemoryLedger`]'s results.

use crate::idhash::IdMap;
use crate::ledger::invariants::check_group_balanced;
use crate::ledger::{GroupJournal, check_batch_len, run_records_fn, sequencer_outcomes};
use crate::model::{
    Account, AccountBalance, AccountId, NewAccount, NewTransfer, PendingStatus, Timestamp,
    Transfer, TransferId,
};
use crate::records::{RecordWrite, RecordsFn};
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::state_machine::Changes;
use crate::{EXPIRE_BATCH_LEN_MAX, Error, Expired};

pub use crate::journal::{BalancesDigest, Checkpoint, GENESIS_HASH, SignedHead};
pub use crate::state_machine::{Clock, Store};

/// The journal's head: the last record's sequence number and hash (0 and
/// [`GENESIS_HASH`] for an empty journal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHead {
    /// The last record's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

impl Default for JournalHead {
    fn default() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH,
        }
    }
}

/// One journal record as a group writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (also the last 32 bytes of `bytes`).
    pub hash: [u8; 32],
    /// Its encoding, exactly as the sled journal holds it.
    pub bytes: Vec<u8>,
}

/// Where a transfer is in the journal: the record and the entry within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferLocation {
    /// The transfer.
    pub id: TransferId,
    /// The journal record that holds it.
    pub seq: u64,
    /// Its entry in that record.
    pub entry: u32,
}

/// Everything one group writes, typed. A group that wrote nothing (every event failed, none
/// transiently, and no records) is [`GroupWrites::is_empty`]; the engine still answers its
/// callers only once the state their results rest on is committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupWrites {
    /// Every account created or changed, as it stands after the group, in id order.
    pub accounts: Vec<Account>,
    /// The transfers the group created, in id order.
    pub transfers: Vec<Transfer>,
    /// Where each created transfer sits in the journal, in record order.
    pub locations: Vec<TransferLocation>,
    /// Pending-status changes, in id order.
    pub pending: Vec<(TransferId, PendingStatus)>,
    /// Expiry-index changes (`true` inserted, `false` removed), in (expiry, id) order.
    pub expiry: Vec<((Timestamp, TransferId), bool)>,
    /// Balance history of `HISTORY` accounts, in the order it happened.
    pub history: Vec<(AccountId, AccountBalance)>,
    /// Transfer ids that failed transiently in this group, in id order (kept durably: a
    /// retry is `id_already_failed`).
    pub failed: Vec<TransferId>,
    /// The callers' record writes, in request order.
    pub records: Vec<RecordWrite>,
    /// The group's journal records, chained from the head the builder started from.
    pub journal: Vec<JournalRecord>,
    /// The head after the group (the head before it when it journals nothing).
    pub head: JournalHead,
    /// The clock after the group (the clock before it when it journals nothing, as the sled
    /// ledger keeps it).
    pub clock: Clock,
    /// Events journaled by the group's records.
    pub events: u64,
}

impl GroupWrites {
    /// Whether the group writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.journal.is_empty() && self.failed.is_empty() && self.records.is_empty()
    }
}

/// One group commit's run of the state machine over a [`Store`] (see the module
/// documentation). Requests are applied in the order they are given, as the sled sequencer
/// applies a group's queued requests; each journaled request becomes one record.
pub struct GroupBuilder<'s> {
    store: &'s dyn Store,
    changes: Changes,
    journal: GroupJournal,
    records: Vec<RecordWrite>,
    head: JournalHead,
    clock: Clock,
}

impl<'s> GroupBuilder<'s> {
    /// A group over `store`, whose committed clock and journal head are `clock` and `head`.
    pub fn new(store: &'s dyn Store, clock: Clock, head: JournalHead) -> Self {
        Self {
            store,
            changes: Changes::new(clock),
            journal: GroupJournal::new(head.seq, head.hash),
            records: Vec::new(),
            head,
            clock,
        }
    }

    /// Applies a batch of account creations ([`crate::Ledger::create_accounts`]). The outer
    /// `Err` is the state machine's own failure: the group must be abandoned (fail-stop); the
    /// inner one refuses this request alone (a batch longer than [`crate::BATCH_LEN_MAX`]),
    /// having changed nothing.
    pub fn create_accounts(
        &mut self,
        events: &[NewAccount],
        now: Timestamp,
    ) -> Result<Result<Vec<CreateAccountResult>, Error>, Error> {
        if let Err(error) = check_batch_len(events.len()) {
            return Ok(Err(error));
        }
        let (results, entries) = self.changes.create_accounts(self.store, events, now)?;
        self.journal.append(now, entries)?;
        Ok(Ok(results))
    }

    /// Applies a batch of transfers ([`crate::Ledger::create_transfers`]), and with `records`
    /// computes the request's records from its outcomes
    /// ([`crate::Ledger::create_transfers_with`]). The outer `Err` is the state machine's own
    /// failure (fail-stop, abandon the group); the inner one refuses this request alone (a
    /// batch too long, or its closure failed or panicked, or a write is too large): the state
    /// machine is rolled back to before it, its transient failures included, and nothing of it
    /// is written.
    pub fn create_transfers(
        &mut self,
        events: &[NewTransfer],
        now: Timestamp,
        records: Option<RecordsFn>,
    ) -> Result<Result<Vec<CreateTransferResult>, Error>, Error> {
        if let Err(error) = check_batch_len(events.len()) {
            return Ok(Err(error));
        }
        let save = records
            .as_ref()
            .map(|_| self.changes.request_savepoint(events));
        let (results, entries) = self.changes.create_transfers(self.store, events, now)?;
        if let (Some(records), Some(save)) = (records, save) {
            let outcomes = sequencer_outcomes(events, &results, &entries);
            match run_records_fn(records, &outcomes) {
                Ok(writes) => self.records.extend(writes),
                Err(refused) => {
                    self.changes.request_rollback(save);
                    return Ok(Err(refused));
                }
            }
        }
        self.journal.append(now, entries)?;
        Ok(Ok(results))
    }

    /// Adds records alone ([`crate::Ledger::write_records`]); they are checked (a refused
    /// write refuses the call and adds nothing).
    pub fn write_records(&mut self, writes: Vec<RecordWrite>) -> Result<(), Error> {
        crate::records::check_writes(&writes)?;
        self.records.extend(writes);
        Ok(())
    }

    /// Releases pending transfers whose timeout passed by `now`
    /// ([`crate::Ledger::expire_pending`], at most [`EXPIRE_BATCH_LEN_MAX`]). An `Err` is
    /// fail-stop, as for [`GroupBuilder::create_accounts`].
    pub fn expire_pending(&mut self, now: Timestamp) -> Result<Expired, Error> {
        let (entries, more) = self
            .changes
            .expire_pending(self.store, now, EXPIRE_BATCH_LEN_MAX)?;
        let expired = Expired {
            count: entries.len(),
            more,
        };
        self.journal.append(now, entries)?;
        Ok(expired)
    }

    /// The group's writes, after checking its invariants (debits = credits per currency,
    /// limits): an `Err` means the group must not be written (fail-stop).
    pub fn finish(self) -> Result<GroupWrites, Error> {
        let Self {
            changes,
            journal,
            records,
            head,
            clock,
            ..
        } = self;
        let mut failed: Vec<TransferId> = changes.failed.iter().copied().collect();
        failed.sort_unstable();
        if journal.records.is_empty() {
            // Failed ids or records alone (or nothing): no journal record, and the clock and
            // head stay where they were, as the sled sequencer keeps them.
            return Ok(GroupWrites {
                failed,
                records,
                head,
                clock,
                ..GroupWrites::default()
            });
        }
        check_group_balanced(&changes)?;
        let journal_records = journal
            .records
            .into_iter()
            .map(|(seq, bytes)| {
                let mut hash = [0; 32];
                // Every encoded record ends with its 32-byte hash.
                let start = bytes.len().saturating_sub(32);
                hash.copy_from_slice(&bytes[start..]);
                JournalRecord { seq, hash, bytes }
            })
            .collect();
        let locations = journal
            .locations
            .iter()
            .map(|(id, seq, entry)| TransferLocation {
                id: *id,
                seq: *seq,
                entry: *entry,
            })
            .collect();
        Ok(GroupWrites {
            accounts: sorted_values(&changes.accounts),
            transfers: sorted_values(&changes.transfers),
            locations,
            pending: {
                let mut pending: Vec<_> = changes.pending.iter().map(|(k, v)| (*k, *v)).collect();
                pending.sort_unstable_by_key(|(id, _)| *id);
                pending
            },
            expiry: changes.expiry.iter().map(|(k, v)| (*k, *v)).collect(),
            history: changes.history.clone(),
            failed,
            records,
            journal: journal_records,
            head: JournalHead {
                seq: journal.seq,
                hash: journal.prev_hash,
            },
            clock: changes.clock(),
            events: journal.events,
        })
    }
}

fn sorted_values<K: Ord + Copy + std::hash::Hash + Eq, V: Copy>(map: &IdMap<K, V>) -> Vec<V> {
    let mut entries: Vec<(K, V)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort_unstable_by_key(|(k, _)| *k);
    entries.into_iter().map(|(_, v)| v).collect()
}

/// What [`decode_journal_record`] reads from a record's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Its sequence number.
    pub seq: u64,
    /// The hash of the record before it, as it names it.
    pub prev_hash: [u8; 32],
    /// The hash it stores.
    pub stored_hash: [u8; 32],
    /// The hash its bytes compute to (differs from `stored_hash` when they were altered).
    pub computed_hash: [u8; 32],
}

/// Decodes one journal record's bytes (an engine checks its chain at open with it).
pub fn decode_journal_record(bytes: &[u8]) -> Result<RecordHeader, Error> {
    let decoded = crate::journal::Record::decode(bytes).map_err(|source| Error::Corrupt {
        what: "journal record".into(),
        source,
    })?;
    Ok(RecordHeader {
        seq: decoded.record.seq,
        prev_hash: decoded.record.prev_hash,
        stored_hash: decoded.stored_hash,
        computed_hash: decoded.computed_hash,
    })
}

/// The fixed little-endian encodings the sled ledger stores (storage format 8), for an engine
/// that keeps the same bytes.
pub mod encoding {
    use crate::codec;
    use crate::codec::DecodeError;
    use crate::model::{Account, AccountBalance, PendingStatus, Transfer};

    /// An account's encoding (balances included).
    pub fn account(account: &Account) -> Vec<u8> {
        codec::account_bytes(account)
    }

    /// Decodes [`account`]'s bytes.
    pub fn decode_account(bytes: &[u8]) -> Result<Account, DecodeError> {
        codec::decode_account(bytes)
    }

    /// A transfer's encoding.
    pub fn transfer(transfer: &Transfer) -> Vec<u8> {
        codec::transfer_bytes(transfer)
    }

    /// Decodes [`transfer`]'s bytes.
    pub fn decode_transfer(bytes: &[u8]) -> Result<Transfer, DecodeError> {
        codec::decode_transfer(bytes)
    }

    /// A balance snapshot's encoding.
    pub fn balance(balance: &AccountBalance) -> Vec<u8> {
        codec::balance_bytes(balance)
    }

    /// Decodes [`balance`]'s bytes.
    pub fn decode_balance(bytes: &[u8]) -> Result<AccountBalance, DecodeError> {
        codec::decode_balance(bytes)
    }

    /// A pending status's stored byte.
    pub fn pending_status(status: PendingStatus) -> u8 {
        status.to_byte()
    }

    /// Decodes [`pending_status`]'s byte (`None` for an unknown byte).
    pub fn decode_pending_status(byte: u8) -> Option<PendingStatus> {
        PendingStatus::from_byte(byte)
    }
}

#[cfg(test)]
mod tests;
