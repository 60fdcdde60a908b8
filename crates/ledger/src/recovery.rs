//! Rebuilding the current accounts from the last snapshot and the journal.
//!
//! Accounts live in memory in the writer. sled holds a snapshot of them, exact as of journal
//! record `accounts_seq` (stored in the meta space), refreshed every `checkpoint_interval`
//! records in the same atomic batch as a group commit. A group commit therefore writes only
//! its transfers and journal record, not the thousands of accounts a large batch touches; the
//! journal, which is written and made durable with every group, is the source of truth.
//! Opening replays the records after the snapshot onto it.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use crate::codec::{self, decode_account};
use crate::error::Error;
use crate::idhash::{IdMap, IdSet};
use crate::journal::{
    self, BalancesDigest, Checkpoint, Entries, Record, SignedHead, chunk_key, decode_chunk_key,
};
use crate::ledger::trees::{META_ACCOUNTS_SEQ, Trees};
use crate::model::{Account, AccountFlags, AccountId, TransferFlags};

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
    for_each_record(trees, start, |seq, record| {
        replay(trees, seq, record, &mut accounts, &mut dirty)
    })?;
    Ok(Loaded {
        accounts,
        dirty,
        accounts_seq,
    })
}

/// Calls `visit` with every journal record from `start` on, in order: its sequence number and
/// its bytes (not yet decoded). A frame that does not split into records is an error.
fn for_each_record(
    trees: &Trees,
    start: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    // Record `start` may share a frame with earlier records (see `crate::journal`): read from
    // that frame's key and skip what comes before it.
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
                visit(seq, record)?;
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
    Ok(())
}

/// The last signed checkpoint, if any, decoded and stored under the record it names.
pub(crate) fn last_checkpoint(trees: &Trees) -> Result<Option<Checkpoint>, Error> {
    let Some((key, value)) = trees
        .checkpoints
        .last()
        .map_err(Error::storage("reading the last checkpoint"))?
    else {
        return Ok(None);
    };
    let seq = <[u8; 8]>::try_from(key.as_ref())
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("checkpoint key", format!("{} bytes, expected 8", key.len())))?;
    let checkpoint = Checkpoint::decode(&value)
        .map_err(Error::corrupt(format!("checkpoint at record {seq}")))?;
    if checkpoint.seq != seq {
        return Err(corrupt(
            format!("checkpoint at record {seq}"),
            format!("it names record {}", checkpoint.seq),
        ));
    }
    Ok(Some(checkpoint))
}

/// The last signed head, if any, decoded and stored under the record it names.
pub(crate) fn last_signed_head(trees: &Trees) -> Result<Option<SignedHead>, Error> {
    let Some((key, value)) = trees
        .signed_heads
        .last()
        .map_err(Error::storage("reading the last signed head"))?
    else {
        return Ok(None);
    };
    let seq = <[u8; 8]>::try_from(key.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| {
            corrupt(
                "signed head key",
                format!("{} bytes, expected 8", key.len()),
            )
        })?;
    let signed = SignedHead::decode(&value)
        .map_err(Error::corrupt(format!("signed head at record {seq}")))?;
    if signed.seq != seq {
        return Err(corrupt(
            format!("signed head at record {seq}"),
            format!("it names record {}", signed.seq),
        ));
    }
    Ok(Some(signed))
}

/// What vouches for the journal at open: the last checkpoint and the last signed head, both
/// checked by [`check_chain_tail`].
pub(crate) struct Vouched {
    pub(crate) checkpoint: Option<Checkpoint>,
    pub(crate) signed_head: Option<SignedHead>,
}

impl Vouched {
    /// The last record a signature covers (0: none).
    pub(crate) fn last_signed_seq(&self) -> u64 {
        let checkpoint = self.checkpoint.as_ref().map_or(0, |c| c.seq);
        let signed = self.signed_head.as_ref().map_or(0, |s| s.seq);
        checkpoint.max(signed)
    }
}

/// The start-up check of the journal's end, cheap because it reads only what follows the last
/// checkpoint or signed head (at most a few checkpoint intervals of records), never the whole
/// history (that is `kakehashi ledger audit`): the last checkpoint and the last signed head are
/// signed with `key`, and every record from the older of the two to the head decodes, hashes to
/// the hash it stores, names the hash of the record before it, and the signed hashes and the
/// head's are those of their records. An edit of any of those bytes, or of the head, is refused
/// before the node serves anything. Returns both, so that [`load_accounts`]'s caller can check
/// the checkpoint's balances digest.
pub(crate) fn check_chain_tail(
    trees: &Trees,
    key: &VerifyingKey,
    head_seq: u64,
    head_hash: [u8; 32],
) -> Result<Vouched, Error> {
    let checkpoint = last_checkpoint(trees)?;
    let signed_head = last_signed_head(trees)?;
    // Both sign (seq, hash of record seq); only the message differs.
    let mut signatures: Vec<(String, u64, [u8; 32])> = Vec::with_capacity(2);
    if let Some(checkpoint) = &checkpoint {
        let what = format!("checkpoint at record {}", checkpoint.seq);
        if !checkpoint.verify(key) {
            return Err(corrupt(
                what,
                "its signature does not verify with the node key; run `kakehashi ledger audit`",
            ));
        }
        signatures.push((what, checkpoint.seq, checkpoint.head));
    }
    if let Some(signed) = &signed_head {
        let what = format!("signed head at record {}", signed.seq);
        if !signed.verify(key) {
            return Err(corrupt(
                what,
                "its signature does not verify with the node key; run `kakehashi ledger audit`",
            ));
        }
        signatures.push((what, signed.seq, signed.head));
    }
    for (what, seq, _) in &signatures {
        if *seq > head_seq {
            return Err(corrupt(
                what.clone(),
                format!("it is beyond the journal head, record {head_seq}"),
            ));
        }
    }
    // Record 0 does not exist: the chain starts at record 1, after the genesis hash.
    let start = signatures
        .iter()
        .map(|(_, seq, _)| *seq)
        .min()
        .map_or(1, |seq| seq.max(1));
    let mut previous: Option<(u64, [u8; 32])> = (start == 1).then_some((0, journal::GENESIS_HASH));
    for_each_record(trees, start, |seq, bytes| {
        let what = format!("journal record {seq}");
        let decoded = Record::decode(bytes).map_err(Error::corrupt(what.clone()))?;
        if decoded.computed_hash != decoded.stored_hash || decoded.record.seq != seq {
            return Err(corrupt(
                what,
                "its content does not match its hash; run `kakehashi ledger audit`",
            ));
        }
        if let Some((_, hash)) = previous
            && decoded.record.prev_hash != hash
        {
            return Err(corrupt(
                what,
                "it does not name the hash of the record before it; run `kakehashi ledger audit`",
            ));
        }
        for (what, _, head) in signatures.iter().filter(|(_, at, _)| *at == seq) {
            if *head != decoded.stored_hash {
                return Err(corrupt(
                    what.clone(),
                    "it signs another hash than the record's; run `kakehashi ledger audit`",
                ));
            }
        }
        previous = Some((seq, decoded.stored_hash));
        Ok(())
    })?;
    let end = previous.unwrap_or((0, journal::GENESIS_HASH));
    if end != (head_seq, head_hash) {
        return Err(corrupt(
            "journal head",
            format!(
                "the head names record {head_seq} with hash {}, but the journal ends at record {} \
                 with hash {}; run `kakehashi ledger audit`",
                hex::encode(head_hash),
                end.0,
                hex::encode(end.1)
            ),
        ));
    }
    Ok(Vouched {
        checkpoint,
        signed_head,
    })
}

/// When the last checkpoint covers the journal head, the accounts loaded at open must digest
/// to what it signed: an edit of a stored balance is refused at start-up, not only by the
/// audit. (A checkpoint older than the head would need the accounts as of its record, which
/// only a replay from an older snapshot gives; that is the audit's job.)
pub(crate) fn check_checkpoint_digest(
    checkpoint: Option<&Checkpoint>,
    head_seq: u64,
    accounts: &IdMap<AccountId, Account>,
) -> Result<(), Error> {
    let Some(checkpoint) = checkpoint.filter(|c| c.seq == head_seq) else {
        return Ok(());
    };
    let (balances_digest, count) = digest(accounts);
    if (balances_digest, count) != (checkpoint.balances_digest, checkpoint.accounts) {
        return Err(corrupt(
            format!("accounts as of record {head_seq}"),
            format!(
                "{count} accounts digest to {}, but the checkpoint at that record signs {} \
                 accounts digesting to {}; run `kakehashi ledger audit`",
                hex::encode(balances_digest),
                checkpoint.accounts,
                hex::encode(checkpoint.balances_digest)
            ),
        ));
    }
    Ok(())
}

fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        what: what.into(),
        source: codec::DecodeError {
            what: "start-up check",
            detail: detail.into(),
        },
    }
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
                // What a closing transfer closed, its void reopens (see `state_machine`).
                let closed_by = if flags.resolves_pending() {
                    trees
                        .transfer(transfer.pending_id)?
                        .map(|pending| pending.flags)
                } else {
                    None
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
                let voided = flags.contains(TransferFlags::VOID_PENDING_TRANSFER);
                let reopens = |closing| voided && closed_by.is_some_and(|f| f.contains(closing));
                let closes = |closing| reserved && flags.contains(closing);
                let debit = account_mut(accounts, transfer.debit_account_id, &broken)?;
                set_closed(debit, TransferFlags::CLOSING_DEBIT, closes, reopens);
                let credit = account_mut(accounts, transfer.credit_account_id, &broken)?;
                set_closed(credit, TransferFlags::CLOSING_CREDIT, closes, reopens);
                dirty.insert(transfer.debit_account_id);
                dirty.insert(transfer.credit_account_id);
            }
        }
        Entries::Expiries(expiries) => {
            for (id, _) in expiries {
                let pending = trees
                    .transfer(id)?
                    .ok_or_else(|| broken(format!("expired {id} not found")))?;
                let reopens = |closing| pending.flags.contains(closing);
                let debit = account_mut(accounts, pending.debit_account_id, &broken)?;
                set_closed(debit, TransferFlags::CLOSING_DEBIT, |_| false, reopens);
                debit.debits_pending = debit
                    .debits_pending
                    .checked_sub(pending.amount)
                    .ok_or_else(|| broken(format!("expiring {id} underflows")))?;
                let credit = account_mut(accounts, pending.credit_account_id, &broken)?;
                set_closed(credit, TransferFlags::CLOSING_CREDIT, |_| false, reopens);
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

/// Sets or clears an account's `closed` flag as a journaled transfer did: `closes` or
/// `reopens` says whether the transfer's (or its pending transfer's) flags hold `closing`,
/// the closing flag for this side of the transfer.
fn set_closed(
    account: &mut Account,
    closing: TransferFlags,
    closes: impl Fn(TransferFlags) -> bool,
    reopens: impl Fn(TransferFlags) -> bool,
) {
    if closes(closing) {
        account.flags = account.flags.union(AccountFlags::CLOSED);
    } else if reopens(closing) {
        account.flags = AccountFlags(account.flags.0 & !AccountFlags::CLOSED.0);
    }
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
