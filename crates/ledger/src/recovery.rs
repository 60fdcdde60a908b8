//! Rebuilding the current accounts from the last snapshot and the journal.
//!
//! Accounts live in memory in the writer. sled holds a snapshot of them, exact as of journal
//! record `accounts_seq` (stored in the meta space), refreshed every `checkpoint_interval`
//! records in the same atomic batch as a group commit. A group commit therefore writes only
//! its transfers and journal record, not the thousands of accounts a large batch touches; the
//! journal, which is written and made durable with every group, is the source of truth.
//! Opening replays the records after the snapshot onto it.

use std::collections::BTreeMap;

use crate::codec::{self, decode_account};
use crate::error::Error;
use crate::idhash::{IdMap, IdSet};
use crate::journal::{self, BalancesDigest, Entries, Record, chunk_key, decode_chunk_key};
use crate::ledger::trees::{META_ACCOUNTS_SEQ, Trees};
use crate::model::{Account, AccountId, TransferFlags};

/// Accounts as of the journal head.
pub(crate) struct Loaded {
    pub(crate) accounts: IdMap<AccountId, Account>,
    /// Accounts changed after the snapshot: the next snapshot must write them.
    pub(crate) dirty: IdSet<AccountId>,
    /// The journal record the stored snapshot is exact for.
    pub(crate) accounts_seq: u64,
}

/// The journal record the stored account snapshot is exact for (0: before any record).
pub(crate) fn accounts_seq(trees: &Trees) -> Result<u64, Error> {
    let Some(bytes) = trees
        .meta
        .get(META_ACCOUNTS_SEQ)
        .map_err(Error::storage("reading the snapshot position"))?
    else {
        return Ok(0);
    };
    let mut cursor = codec::Cursor::new(&bytes, "snapshot position");
    let seq = cursor.u64().map_err(Error::corrupt("snapshot position"))?;
    cursor
        .finish()
        .map_err(Error::corrupt("snapshot position"))?;
    Ok(seq)
}

/// Loads the snapshot and replays every later journal record onto it. A record that does
/// not decode, whose hash does not match or whose effects do not apply is an error: a node
/// must not start on a journal it cannot account for (the offline audit says exactly what is
/// wrong).
pub(crate) fn load_accounts(trees: &Trees) -> Result<Loaded, Error> {
    let accounts_seq = accounts_seq(trees)?;
    let mut accounts = IdMap::default();
    for item in trees.accounts.iter() {
        let (_, bytes) = item.map_err(Error::storage("loading accounts"))?;
        let account = decode_account(&bytes).map_err(Error::corrupt("account"))?;
        accounts.insert(account.id, account);
    }
    let mut dirty = IdSet::default();
    let Some(start) = accounts_seq.checked_add(1) else {
        return Ok(Loaded {
            accounts,
            dirty,
            accounts_seq,
        });
    };
    // Record `start` may share a frame with earlier records (see `crate::journal`): read from
    // that frame's key and skip what the snapshot already holds.
    let before = trees
        .journal
        .at_or_before(&chunk_key(start, u32::MAX))
        .map_err(Error::storage("reading the journal"))?;
    let from = match before {
        Some((key, _)) => match decode_chunk_key(&key).map_err(Error::corrupt("journal key"))? {
            (first, 0) if first < start => first,
            _ => start,
        },
        None => start,
    };
    let mut current: Option<(u64, Vec<u8>)> = None;
    let mut finish = |first: u64, frame: &[u8]| -> Result<(), Error> {
        let (records, rest) = journal::frame_records(frame);
        if !rest.is_empty() {
            return Err(Error::Corrupt {
                what: format!("journal frame {first}"),
                source: codec::DecodeError {
                    what: "journal frame",
                    detail: format!(
                        "{} bytes do not split into records; run `kakehashi ledger audit`",
                        rest.len()
                    ),
                },
            });
        }
        for (seq, record) in (first..).zip(records) {
            if seq >= start {
                replay(trees, seq, record, &mut accounts, &mut dirty)?;
            }
        }
        Ok(())
    };
    for item in trees.journal.iter_from(&chunk_key(from, 0)) {
        let (key, chunk) = item.map_err(Error::storage("reading the journal"))?;
        let (seq, _) = decode_chunk_key(&key).map_err(Error::corrupt("journal key"))?;
        match current.as_mut() {
            Some((current_seq, bytes)) if *current_seq == seq => bytes.extend_from_slice(&chunk),
            _ => {
                if let Some((done, bytes)) = current.take() {
                    finish(done, &bytes)?;
                }
                current = Some((seq, chunk.to_vec()));
            }
        }
    }
    if let Some((done, bytes)) = current.take() {
        finish(done, &bytes)?;
    }
    Ok(Loaded {
        accounts,
        dirty,
        accounts_seq,
    })
}

fn replay(
    trees: &Trees,
    seq: u64,
    bytes: &[u8],
    accounts: &mut IdMap<AccountId, Account>,
    dirty: &mut IdSet<AccountId>,
) -> Result<(), Error> {
    let what = format!("journal record {seq}");
    let decoded = Record::decode(bytes).map_err(Error::corrupt(what.clone()))?;
    if decoded.computed_hash != decoded.stored_hash || decoded.record.seq != seq {
        return Err(Error::Corrupt {
            what,
            source: codec::DecodeError {
                what: "journal record",
                detail: "its content does not match its hash; run `kakehashi ledger audit`".into(),
            },
        });
    }
    let broken = |detail: String| Error::InvariantViolated {
        detail: format!("{what}: {detail}"),
    };
    match decoded.record.entries {
        Entries::Accounts(created) => {
            for account in created {
                dirty.insert(account.id);
                accounts.insert(account.id, account);
            }
        }
        Entries::Transfers(transfers) => {
            for transfer in transfers {
                let flags = transfer.flags;
                let released = if flags.resolves_pending() {
                    let pending = trees
                        .transfer(transfer.pending_id)?
                        .ok_or_else(|| broken(format!("{} not found", transfer.pending_id)))?;
                    pending.amount
                } else {
                    0
                };
                let posted = !flags.contains(TransferFlags::PENDING)
                    && !flags.contains(TransferFlags::VOID_PENDING_TRANSFER);
                let reserved = flags.contains(TransferFlags::PENDING);
                let amount = transfer.amount;
                let debit = account_mut(accounts, transfer.debit_account_id, &broken)?;
                debit.debits_pending = debit
                    .debits_pending
                    .checked_sub(released)
                    .and_then(|v| v.checked_add(if reserved { amount } else { 0 }))
                    .ok_or_else(|| broken(format!("{} debit pending out of range", transfer.id)))?;
                if posted {
                    debit.debits_posted = debit
                        .debits_posted
                        .checked_add(amount)
                        .ok_or_else(|| broken(format!("{} debit overflows", transfer.id)))?;
                }
                let credit = account_mut(accounts, transfer.credit_account_id, &broken)?;
                credit.credits_pending = credit
                    .credits_pending
                    .checked_sub(released)
                    .and_then(|v| v.checked_add(if reserved { amount } else { 0 }))
                    .ok_or_else(|| {
                        broken(format!("{} credit pending out of range", transfer.id))
                    })?;
                if posted {
                    credit.credits_posted = credit
                        .credits_posted
                        .checked_add(amount)
                        .ok_or_else(|| broken(format!("{} credit overflows", transfer.id)))?;
                }
                dirty.insert(transfer.debit_account_id);
                dirty.insert(transfer.credit_account_id);
            }
        }
        Entries::Expiries(expiries) => {
            for (id, _) in expiries {
                let pending = trees
                    .transfer(id)?
                    .ok_or_else(|| broken(format!("expired {id} not found")))?;
                let debit = account_mut(accounts, pending.debit_account_id, &broken)?;
                debit.debits_pending = debit
                    .debits_pending
                    .checked_sub(pending.amount)
                    .ok_or_else(|| broken(format!("expiring {id} underflows")))?;
                let credit = account_mut(accounts, pending.credit_account_id, &broken)?;
                credit.credits_pending = credit
                    .credits_pending
                    .checked_sub(pending.amount)
                    .ok_or_else(|| broken(format!("expiring {id} underflows")))?;
                dirty.insert(pending.debit_account_id);
                dirty.insert(pending.credit_account_id);
            }
        }
    }
    Ok(())
}

fn account_mut<'a>(
    accounts: &'a mut IdMap<AccountId, Account>,
    id: AccountId,
    broken: &dyn Fn(String) -> Error,
) -> Result<&'a mut Account, Error> {
    accounts
        .get_mut(&id)
        .ok_or_else(|| broken(format!("{id} unknown")))
}

/// The balances digest (see [`BalancesDigest`]) of accounts held in memory, in id order.
pub(crate) fn digest(accounts: &IdMap<AccountId, Account>) -> ([u8; 32], u64) {
    let sorted: BTreeMap<AccountId, &Account> = accounts.iter().map(|(id, a)| (*id, a)).collect();
    let mut digest = BalancesDigest::new();
    sorted.values().for_each(|account| digest.add(account));
    digest.finish()
}
