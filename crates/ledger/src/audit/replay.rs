//! The audit's replay of the journal: every record in order, with its own arithmetic.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;

use super::compare::compare_snapshot;
use super::source::{AuditSource, JournalItem};
use super::{AuditReport, Location};
use crate::codec::decode_balance;
use crate::error::Error;
use crate::journal::{Checkpoint, Entries, GENESIS_HASH, Record, SignedHead};
use crate::model::{
    Account, AccountBalance, AccountFlags, AccountId, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId,
};

/// A pending transfer as replayed.
pub(super) struct Reservation {
    pub(super) transfer: Transfer,
    pub(super) status: PendingStatus,
}

/// Replayed state.
pub(super) struct Replay {
    pub(super) accounts: BTreeMap<AccountId, Account>,
    pub(super) reservations: HashMap<TransferId, Reservation>,
    pub(super) history_expected: u64,
    last_timestamp: Timestamp,
}

impl Replay {
    /// The state before the first record.
    pub(super) fn new() -> Self {
        Self {
            accounts: BTreeMap::new(),
            reservations: HashMap::new(),
            history_expected: 0,
            last_timestamp: Timestamp(0),
        }
    }
}

/// Replays the journal in order; returns the last record's sequence number and hash.
pub(super) fn replay_journal(
    source: &dyn AuditSource,
    key: Option<&VerifyingKey>,
    checkpoints: &BTreeMap<u64, Checkpoint>,
    signed_heads: &BTreeMap<u64, SignedHead>,
    snapshot_seq: Option<u64>,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(u64, [u8; 32]), Error> {
    let mut journal = JournalReplay {
        source,
        key,
        checkpoints,
        signed_heads,
        snapshot_seq,
        replay,
        report,
        prev_hash: GENESIS_HASH,
        expected_seq: 1,
        seen_checkpoints: 0,
        seen_signed_heads: 0,
    };
    let mut last_seq = 0;
    source.journal(&mut |item| match item {
        JournalItem::Record { seq, bytes } => {
            last_seq = seq;
            journal.record(seq, bytes)
        }
        JournalItem::Finding { location, detail } => {
            journal.report.flag(location, detail);
            Ok(())
        }
    })?;
    journal.flag_checkpoints_beyond(last_seq);
    Ok((last_seq, journal.prev_hash))
}

/// The replay's walk along the journal's hash chain.
struct JournalReplay<'a> {
    source: &'a dyn AuditSource,
    key: Option<&'a VerifyingKey>,
    checkpoints: &'a BTreeMap<u64, Checkpoint>,
    signed_heads: &'a BTreeMap<u64, SignedHead>,
    snapshot_seq: Option<u64>,
    replay: &'a mut Replay,
    report: &'a mut AuditReport,
    /// The hash stored at the end of the last record replayed.
    prev_hash: [u8; 32],
    expected_seq: u64,
    /// Checkpoints found at a replayed record.
    seen_checkpoints: usize,
    /// Signed heads found at a replayed record.
    seen_signed_heads: usize,
}

impl JournalReplay<'_> {
    /// Checks record `seq`'s place in the chain and its hash, replays its effects, and
    /// checks the snapshot and the checkpoint taken at it.
    fn record(&mut self, seq: u64, bytes: &[u8]) -> Result<(), Error> {
        let report = &mut *self.report;
        if seq != self.expected_seq {
            report.flag(
                Location::JournalRecord { seq },
                format!(
                    "expected record {} next: records are missing",
                    self.expected_seq
                ),
            );
        }
        self.expected_seq = seq.saturating_add(1);
        report.records = report.records.saturating_add(1);
        let stored_hash = tail_hash(bytes);
        match Record::decode(bytes) {
            Err(error) => report.flag(
                Location::JournalRecord { seq },
                format!("does not decode ({error}); its effects cannot be replayed"),
            ),
            Ok(decoded) => {
                if decoded.computed_hash != decoded.stored_hash {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!(
                            "content altered: stored hash {} but the bytes hash to {}",
                            hex::encode(decoded.stored_hash),
                            hex::encode(decoded.computed_hash)
                        ),
                    );
                }
                if decoded.record.prev_hash != self.prev_hash {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!(
                            "chain broken: prev_hash {} but the previous record hashes to {}",
                            hex::encode(decoded.record.prev_hash),
                            hex::encode(self.prev_hash)
                        ),
                    );
                }
                if decoded.record.seq != seq {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!("stored under {seq} but numbered {}", decoded.record.seq),
                    );
                }
                apply_record(self.source, &decoded.record, self.replay, report)?;
            }
        }
        if self.snapshot_seq == Some(seq) {
            compare_snapshot(self.source, self.replay, report)?;
        }
        self.prev_hash = stored_hash;
        if let Some(checkpoint) = self.checkpoints.get(&seq) {
            self.seen_checkpoints = self.seen_checkpoints.saturating_add(1);
            if check_checkpoint(checkpoint, self.key, &stored_hash, self.replay, report) {
                report.last_signed_seq = report.last_signed_seq.max(seq);
            }
        }
        if let Some(signed) = self.signed_heads.get(&seq) {
            self.seen_signed_heads = self.seen_signed_heads.saturating_add(1);
            if check_signed_head(signed, self.key, &stored_hash, report) {
                report.last_signed_seq = report.last_signed_seq.max(seq);
            }
        }
        Ok(())
    }

    /// Flags the checkpoints and signed heads that cover a record the journal does not hold.
    fn flag_checkpoints_beyond(&mut self, last_seq: u64) {
        if self.seen_signed_heads < self.signed_heads.len() {
            for seq in self
                .signed_heads
                .keys()
                .filter(|seq| **seq > last_seq || **seq == 0)
            {
                self.report.flag(
                    Location::SignedHead { seq: *seq },
                    format!(
                        "covers record {seq}, which is not in the journal (last is {last_seq})"
                    ),
                );
            }
        }
        if self.seen_checkpoints < self.checkpoints.len() {
            for seq in self
                .checkpoints
                .keys()
                .filter(|seq| **seq > last_seq || **seq == 0)
            {
                self.report.flag(
                    Location::Checkpoint { seq: *seq },
                    format!(
                        "covers record {seq}, which is not in the journal (last is {last_seq})"
                    ),
                );
            }
        }
    }
}

fn tail_hash(bytes: &[u8]) -> [u8; 32] {
    let mut hash = [0; 32];
    if let Some(tail) = bytes
        .len()
        .checked_sub(32)
        .and_then(|start| bytes.get(start..))
    {
        hash.copy_from_slice(tail);
    }
    hash
}

/// Checks a signed head against the hash of the record it covers and the node key; whether
/// it is sound.
fn check_signed_head(
    signed: &SignedHead,
    key: Option<&VerifyingKey>,
    record_hash: &[u8; 32],
    report: &mut AuditReport,
) -> bool {
    let seq = signed.seq;
    let mut sound = true;
    if signed.head != *record_hash {
        sound = false;
        report.flag(
            Location::SignedHead { seq },
            format!(
                "signs hash {} but record {seq} hashes to {}",
                hex::encode(signed.head),
                hex::encode(record_hash)
            ),
        );
    }
    match key {
        Some(key) if signed.verify(key) => {}
        Some(key) => {
            sound = false;
            report.flag(
                Location::SignedHead { seq },
                format!(
                    "signature does not verify under node key {}",
                    hex::encode(key.to_bytes())
                ),
            );
        }
        None => sound = false,
    }
    if sound {
        report.signed_heads_verified = report.signed_heads_verified.saturating_add(1);
    }
    sound
}

/// Checks a checkpoint against the hash of the record it covers, the replayed balances and
/// the node key; whether it is sound.
fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: Option<&VerifyingKey>,
    record_hash: &[u8; 32],
    replay: &Replay,
    report: &mut AuditReport,
) -> bool {
    let seq = checkpoint.seq;
    let mut sound = true;
    if checkpoint.head != *record_hash {
        sound = false;
        report.flag(
            Location::Checkpoint { seq },
            format!(
                "signed head {} but record {seq} hashes to {}",
                hex::encode(checkpoint.head),
                hex::encode(record_hash)
            ),
        );
    }
    let mut digest = crate::journal::BalancesDigest::new();
    replay
        .accounts
        .values()
        .for_each(|account| digest.add(account));
    let (digest, accounts) = digest.finish();
    if checkpoint.balances_digest != digest || checkpoint.accounts != accounts {
        sound = false;
        report.flag(
            Location::Checkpoint { seq },
            format!(
                "signed balances digest {} over {} accounts, but the replayed balances give {} \
                 over {accounts}",
                hex::encode(checkpoint.balances_digest),
                checkpoint.accounts,
                hex::encode(digest)
            ),
        );
    }
    match key {
        Some(key) if checkpoint.verify(key) => {}
        Some(key) => {
            sound = false;
            report.flag(
                Location::Checkpoint { seq },
                format!(
                    "signature does not verify under node key {}",
                    hex::encode(key.to_bytes())
                ),
            );
        }
        None => sound = false,
    }
    if sound {
        report.checkpoints_verified = report.checkpoints_verified.saturating_add(1);
    }
    sound
}

fn apply_record(
    source: &dyn AuditSource,
    record: &Record,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let seq = record.seq;
    let at = Location::JournalRecord { seq };
    match &record.entries {
        Entries::Accounts(accounts) => {
            for account in accounts {
                check_timestamp(replay, account.timestamp, &at, report);
                let zero = account.debits_pending == 0
                    && account.debits_posted == 0
                    && account.credits_pending == 0
                    && account.credits_posted == 0;
                if !zero || !account.id.is_valid() || account.ledger == 0 {
                    report.flag(
                        at.clone(),
                        format!(
                            "{} created with non-zero balances or invalid fields",
                            account.id
                        ),
                    );
                }
                if replay.accounts.insert(account.id, *account).is_some() {
                    report.flag(at.clone(), format!("{} created twice", account.id));
                }
            }
        }
        Entries::Transfers(transfers) => {
            for transfer in transfers {
                report.transfers = report.transfers.saturating_add(1);
                check_timestamp(replay, transfer.timestamp, &at, report);
                apply_transfer(source, seq, transfer, replay, report)?;
                match source.transfer(transfer.id) {
                    Ok(Some(stored)) if stored == *transfer => {}
                    Ok(Some(stored)) => report.flag(
                        Location::Transfer {
                            id: transfer.id.0.to_string(),
                        },
                        format!(
                            "stored {stored:?} differs from journal record {seq}: {transfer:?}"
                        ),
                    ),
                    Ok(None) => report.flag(
                        Location::Transfer {
                            id: transfer.id.0.to_string(),
                        },
                        format!("in journal record {seq} but not stored"),
                    ),
                    Err(error) => report.flag(
                        Location::Transfer {
                            id: transfer.id.0.to_string(),
                        },
                        error.to_string(),
                    ),
                }
            }
        }
        Entries::Expiries(expiries) => {
            for (id, timestamp) in expiries {
                report.expiries = report.expiries.saturating_add(1);
                check_timestamp(replay, *timestamp, &at, report);
                expire(source, seq, *id, *timestamp, replay, report)?;
            }
        }
    }
    Ok(())
}

fn check_timestamp(
    replay: &mut Replay,
    timestamp: Timestamp,
    at: &Location,
    report: &mut AuditReport,
) {
    if timestamp <= replay.last_timestamp {
        report.flag(
            at.clone(),
            format!(
                "timestamp {} does not follow the previous event's {}",
                timestamp.0, replay.last_timestamp.0
            ),
        );
    }
    replay.last_timestamp = replay.last_timestamp.max(timestamp);
}

/// Applies one journaled transfer to the replayed balances, checking what the state machine
/// promised: known accounts in one currency, a live reservation for post/void, no overflow,
/// limits kept.
fn apply_transfer(
    source: &dyn AuditSource,
    seq: u64,
    transfer: &Transfer,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let at = Location::JournalRecord { seq };
    let id = transfer.id;
    let (Some(debit), Some(credit)) = (
        replay.accounts.get(&transfer.debit_account_id).copied(),
        replay.accounts.get(&transfer.credit_account_id).copied(),
    ) else {
        report.flag(at, format!("{id} names an account not created before it"));
        return Ok(());
    };
    if debit.id == credit.id || debit.ledger != credit.ledger || transfer.ledger != debit.ledger {
        report.flag(
            at,
            format!("{id} is malformed: same account or mixed ledgers"),
        );
        return Ok(());
    }
    let flags = transfer.flags;
    // A closed account takes only voids.
    if !flags.contains(TransferFlags::VOID_PENDING_TRANSFER)
        && (debit.is_closed() || credit.is_closed())
    {
        report.flag(at, format!("{id} moves money on a closed account"));
        return Ok(());
    }
    let (mut debit, mut credit) = (debit, credit);
    let arithmetic = if flags.resolves_pending() {
        let Some(pending) = resolve_reservation(replay, transfer, &at, report) else {
            return Ok(());
        };
        let posted = flags
            .contains(TransferFlags::POST_PENDING_TRANSFER)
            .then_some(transfer.amount);
        if posted.is_none() {
            crate::state_machine::reopen(&mut debit, &mut credit, &pending);
        }
        release_reservation(&mut debit, &mut credit, pending.amount, posted)
    } else if flags.contains(TransferFlags::PENDING) {
        if flags.contains(TransferFlags::CLOSING_DEBIT) {
            debit.flags = debit.flags.union(AccountFlags::CLOSED);
        }
        if flags.contains(TransferFlags::CLOSING_CREDIT) {
            credit.flags = credit.flags.union(AccountFlags::CLOSED);
        }
        replay.reservations.insert(
            id,
            Reservation {
                transfer: *transfer,
                status: PendingStatus::Pending,
            },
        );
        debit
            .debits_pending
            .checked_add(transfer.amount)
            .zip(credit.credits_pending.checked_add(transfer.amount))
            .map(|(debits_pending, credits_pending)| {
                debit.debits_pending = debits_pending;
                credit.credits_pending = credits_pending;
            })
    } else {
        debit
            .debits_posted
            .checked_add(transfer.amount)
            .zip(credit.credits_posted.checked_add(transfer.amount))
            .map(|(debits_posted, credits_posted)| {
                debit.debits_posted = debits_posted;
                credit.credits_posted = credits_posted;
            })
    };
    if arithmetic.is_none() {
        report.flag(
            at,
            format!("{id} overflows or underflows a balance when replayed"),
        );
        return Ok(());
    }
    settle(
        source,
        seq,
        &[debit, credit],
        transfer.timestamp,
        replay,
        report,
    )
}

/// Marks the reservation a post or void resolves as posted or voided and returns the pending
/// transfer; flags the resolution instead when the reservation is unknown or no longer
/// pending, or when its amount or accounts differ.
fn resolve_reservation(
    replay: &mut Replay,
    transfer: &Transfer,
    at: &Location,
    report: &mut AuditReport,
) -> Option<Transfer> {
    let id = transfer.id;
    let Some(reservation) = replay.reservations.get_mut(&transfer.pending_id) else {
        report.flag(
            at.clone(),
            format!("{id} resolves unknown pending {}", transfer.pending_id),
        );
        return None;
    };
    let pending = reservation.transfer;
    let post = transfer
        .flags
        .contains(TransferFlags::POST_PENDING_TRANSFER);
    let amount_ok = if post {
        transfer.amount <= pending.amount
    } else {
        transfer.amount == pending.amount
    };
    if reservation.status != PendingStatus::Pending
        || !amount_ok
        || pending.debit_account_id != transfer.debit_account_id
        || pending.credit_account_id != transfer.credit_account_id
    {
        report.flag(
            at.clone(),
            format!(
                "{id} resolves pending {} which is {} for {} (resolution amount {})",
                pending.id,
                reservation.status.as_str(),
                pending.amount,
                transfer.amount
            ),
        );
        return None;
    }
    reservation.status = if post {
        PendingStatus::Posted
    } else {
        PendingStatus::Voided
    };
    Some(pending)
}

/// Releases a reservation of `reserved` from the replayed balances and posts `posted`, if
/// any; `None` when a balance would underflow or overflow.
fn release_reservation(
    debit: &mut Account,
    credit: &mut Account,
    reserved: u128,
    posted: Option<u128>,
) -> Option<()> {
    let released = debit
        .debits_pending
        .checked_sub(reserved)
        .zip(credit.credits_pending.checked_sub(reserved));
    released.and_then(|(debits_pending, credits_pending)| {
        debit.debits_pending = debits_pending;
        credit.credits_pending = credits_pending;
        if let Some(amount) = posted {
            debit.debits_posted = debit.debits_posted.checked_add(amount)?;
            credit.credits_posted = credit.credits_posted.checked_add(amount)?;
        }
        Some(())
    })
}

fn expire(
    source: &dyn AuditSource,
    seq: u64,
    id: TransferId,
    timestamp: Timestamp,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let at = Location::JournalRecord { seq };
    let Some(reservation) = replay.reservations.get_mut(&id) else {
        report.flag(at, format!("expires unknown pending {id}"));
        return Ok(());
    };
    let pending = reservation.transfer;
    let due = pending
        .expires_at()
        .is_some_and(|expires_at| expires_at <= timestamp);
    if reservation.status != PendingStatus::Pending || !due {
        report.flag(
            at,
            format!(
                "expires {id} which is {} and due at {:?}, at {}",
                reservation.status.as_str(),
                pending.expires_at().map(|t| t.0),
                timestamp.0
            ),
        );
        return Ok(());
    }
    reservation.status = PendingStatus::Expired;
    let (Some(mut debit), Some(mut credit)) = (
        replay.accounts.get(&pending.debit_account_id).copied(),
        replay.accounts.get(&pending.credit_account_id).copied(),
    ) else {
        report.flag(at, format!("accounts of expired {id} are unknown"));
        return Ok(());
    };
    let (Some(debits_pending), Some(credits_pending)) = (
        debit.debits_pending.checked_sub(pending.amount),
        credit.credits_pending.checked_sub(pending.amount),
    ) else {
        report.flag(at, format!("expiring {id} underflows a pending balance"));
        return Ok(());
    };
    debit.debits_pending = debits_pending;
    credit.credits_pending = credits_pending;
    crate::state_machine::reopen(&mut debit, &mut credit, &pending);
    settle(source, seq, &[debit, credit], timestamp, replay, report)
}

/// Stores replayed accounts, checks their limits and their history entries.
fn settle(
    source: &dyn AuditSource,
    seq: u64,
    accounts: &[Account],
    timestamp: Timestamp,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    for account in accounts {
        if crate::ledger::invariants::check_limits(account).is_err() {
            report.flag(
                Location::Account {
                    id: account.id.0.to_string(),
                },
                format!("breaks its balance limit after journal record {seq}: {account:?}"),
            );
        }
        if account.flags.contains(AccountFlags::HISTORY) {
            replay.history_expected = replay.history_expected.saturating_add(1);
            let expected = AccountBalance::of(account, timestamp);
            let stored = source.history(account.id, timestamp)?;
            let found = stored.map(|bytes| decode_balance(&bytes));
            if found != Some(Ok(expected)) {
                report.flag(
                    Location::Account {
                        id: account.id.0.to_string(),
                    },
                    format!(
                        "history at {} should be {expected:?}, found {found:?} (record {seq})",
                        timestamp.0
                    ),
                );
            }
        }
        replay.accounts.insert(account.id, *account);
    }
    Ok(())
}
