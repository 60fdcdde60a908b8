//! Offline audit and export.
//!
//! The audit trusts nothing but the journal and the node's public key. It replays every
//! record from the first, recomputes every balance with its own arithmetic (not the state
//! machine's), and compares with what is stored; it checks the hash chain, the checkpoint
//! signatures and digests, and that debits equal credits in every currency. Each finding
//! names where it is (record, account, transfer, checkpoint) and what was expected.
//!
//! Both functions open the database with sled, which takes sled's exclusive file lock, so they
//! fail cleanly while a node holds it. They issue no writes; sled itself may discard a torn,
//! never-acknowledged tail of its log on open, exactly as a node restart would.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::codec::{
    decode_account, decode_balance, decode_expiry_key, decode_pending_status, decode_transfer_run,
    history_key, id_key, key_u128,
};
use crate::error::Error;
use crate::journal::{Checkpoint, Entries, GENESIS_HASH, Record, decode_chunk_key, frame_records};
use crate::ledger::trees::{Trees, check_format, open_db, sled_log_path};
use crate::model::{
    Account, AccountBalance, AccountFlags, AccountId, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId,
};
use crate::wide::Sum256;

/// Page cache for offline tools: they stream once through the data, so a small cache does.
const OFFLINE_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// Most discrepancies listed in one report; the count beyond is still reported. A corrupted
/// database could otherwise produce one finding per transfer and exhaust memory.
pub const DISCREPANCIES_LISTED_MAX: usize = 10_000;

/// Where a discrepancy was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// An account.
    Account {
        /// Its id (decimal).
        id: String,
    },
    /// A signed checkpoint.
    Checkpoint {
        /// The journal record it covers.
        seq: u64,
    },
    /// A journal record.
    JournalRecord {
        /// Its sequence number.
        seq: u64,
    },
    /// The totals of one currency.
    Ledger {
        /// ISO 4217 numeric code.
        ledger: u32,
    },
    /// The ledger's metadata (head, key, format).
    Meta,
    /// A transfer.
    Transfer {
        /// Its id (decimal).
        id: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account { id } => write!(f, "account {id}"),
            Self::Checkpoint { seq } => write!(f, "checkpoint at record {seq}"),
            Self::JournalRecord { seq } => write!(f, "journal record {seq}"),
            Self::Ledger { ledger } => write!(f, "ledger {ledger}"),
            Self::Meta => f.write_str("meta"),
            Self::Transfer { id } => write!(f, "transfer {id}"),
        }
    }
}

/// One finding: where, and what was expected versus found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    /// Where.
    pub location: Location,
    /// What is wrong, with expected and found values.
    pub detail: String,
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.detail)
    }
}

/// Per-currency totals over the stored accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerTotals {
    /// ISO 4217 numeric code.
    pub ledger: u32,
    /// Accounts in this currency.
    pub accounts: u64,
    /// Σ debits_posted (decimal; may exceed u128).
    pub debits_posted: String,
    /// Σ credits_posted.
    pub credits_posted: String,
    /// Σ debits_pending.
    pub debits_pending: String,
    /// Σ credits_pending.
    pub credits_pending: String,
}

/// The result of [`audit`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Journal records replayed.
    pub records: u64,
    /// Accounts stored.
    pub accounts: u64,
    /// Transfers in the journal.
    pub transfers: u64,
    /// Pending transfers expired in the journal.
    pub expiries: u64,
    /// Checkpoints whose signature and digest were verified.
    pub checkpoints_verified: u64,
    /// Hex of the last record's hash.
    pub head: String,
    /// Hex of the stored node verifying key.
    pub verifying_key: String,
    /// Totals per currency.
    pub ledgers: Vec<LedgerTotals>,
    /// Every finding (at most [`DISCREPANCIES_LISTED_MAX`]).
    pub discrepancies: Vec<Discrepancy>,
    /// Findings beyond those listed.
    pub discrepancies_not_listed: u64,
}

impl AuditReport {
    /// Whether the audit found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty() && self.discrepancies_not_listed == 0
    }

    fn flag(&mut self, location: Location, detail: impl Into<String>) {
        if self.discrepancies.len() < DISCREPANCIES_LISTED_MAX {
            self.discrepancies.push(Discrepancy {
                location,
                detail: detail.into(),
            });
        } else {
            self.discrepancies_not_listed = self.discrepancies_not_listed.saturating_add(1);
        }
    }
}

/// Options of [`audit`].
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// The node key the auditor expects (for example from the node's certificate). Without
    /// it, signatures are checked against the key stored in the database, which proves
    /// consistency but not whose key it is.
    pub expected_key: Option<VerifyingKey>,
}

/// A pending transfer as replayed.
struct Reservation {
    transfer: Transfer,
    status: PendingStatus,
}

/// Replayed state.
struct Replay {
    accounts: BTreeMap<AccountId, Account>,
    reservations: HashMap<TransferId, Reservation>,
    history_expected: u64,
    last_timestamp: Timestamp,
}

/// Audits the ledger in `path` offline. Returns `Err` only when the audit cannot run (no
/// database, locked, unreadable); everything found wrong is in the report.
pub fn audit(path: &Path, options: &AuditOptions) -> Result<AuditReport, Error> {
    let trees = open_offline(path)?;
    let mut report = AuditReport::default();
    let key = check_key(&trees, options, &mut report)?;
    let checkpoints = load_checkpoints(&trees, &mut report)?;
    let mut replay = Replay {
        accounts: BTreeMap::new(),
        reservations: HashMap::new(),
        history_expected: 0,
        last_timestamp: Timestamp(0),
    };
    let snapshot_seq = match crate::recovery::accounts_seq(&trees) {
        Ok(seq) => Some(seq),
        Err(Error::Corrupt { source, .. }) => {
            report.flag(Location::Meta, format!("snapshot position: {source}"));
            None
        }
        Err(other) => return Err(other),
    };
    if snapshot_seq == Some(0) {
        compare_snapshot(&trees, &replay, &mut report)?;
    }
    let (last_seq, last_hash) = replay_journal(
        &trees,
        key.as_ref(),
        &checkpoints,
        snapshot_seq.filter(|seq| *seq > 0),
        &mut replay,
        &mut report,
    )?;
    if let Some(seq) = snapshot_seq.filter(|seq| *seq > last_seq) {
        report.flag(
            Location::Meta,
            format!("account snapshot claims record {seq}, beyond the journal's last {last_seq}"),
        );
    }
    report.head = hex::encode(last_hash);
    match trees.head()? {
        Some((seq, hash)) if seq == last_seq && hash == last_hash => {}
        Some((seq, hash)) => report.flag(
            Location::Meta,
            format!(
                "head names record {seq} with hash {}, but the journal ends at record {last_seq} \
                 with hash {}",
                hex::encode(hash),
                hex::encode(last_hash)
            ),
        ),
        None => report.flag(Location::Meta, "no journal head stored"),
    }
    final_totals(&replay, &mut report);
    compare_pending(&trees, &replay, &mut report)?;
    compare_counts(&trees, &replay, &mut report)?;
    Ok(report)
}

fn open_offline(path: &Path) -> Result<Trees, Error> {
    if !sled_log_path(path).is_file() {
        return Err(Error::NotFound {
            path: path.to_path_buf(),
        });
    }
    let trees = Trees::open(open_db(path, OFFLINE_CACHE_CAPACITY)?)?;
    check_format(&trees)?;
    Ok(trees)
}

fn check_key(
    trees: &Trees,
    options: &AuditOptions,
    report: &mut AuditReport,
) -> Result<Option<VerifyingKey>, Error> {
    let stored = match trees.verifying_key() {
        Ok(stored) => stored,
        Err(Error::Corrupt { source, .. }) => {
            report.flag(Location::Meta, format!("verifying key: {source}"));
            None
        }
        Err(other) => return Err(other),
    };
    let Some(stored) = stored else {
        report.flag(
            Location::Meta,
            "no node verifying key stored: checkpoints cannot be checked",
        );
        return Ok(options.expected_key);
    };
    report.verifying_key = hex::encode(stored);
    if let Some(expected) = options.expected_key {
        if expected.to_bytes() != stored {
            report.flag(
                Location::Meta,
                format!(
                    "stored node key {} is not the expected key {}",
                    hex::encode(stored),
                    hex::encode(expected.to_bytes())
                ),
            );
        }
        // Verify against the key the auditor trusts, never the stored one.
        return Ok(Some(expected));
    }
    match VerifyingKey::from_bytes(&stored) {
        Ok(key) => Ok(Some(key)),
        Err(_) => {
            report.flag(
                Location::Meta,
                "stored node key is not a valid Ed25519 public key",
            );
            Ok(None)
        }
    }
}

fn load_checkpoints(
    trees: &Trees,
    report: &mut AuditReport,
) -> Result<BTreeMap<u64, Checkpoint>, Error> {
    let mut checkpoints = BTreeMap::new();
    for item in &trees.checkpoints {
        let (key, value) = item.map_err(Error::storage("scanning checkpoints"))?;
        let Ok(seq_bytes) = <[u8; 8]>::try_from(key.as_ref()) else {
            report.flag(
                Location::Meta,
                format!("checkpoint key of {} bytes", key.len()),
            );
            continue;
        };
        let seq = u64::from_be_bytes(seq_bytes);
        match Checkpoint::decode(&value) {
            Ok(checkpoint) if checkpoint.seq == seq => {
                checkpoints.insert(seq, checkpoint);
            }
            Ok(checkpoint) => report.flag(
                Location::Checkpoint { seq },
                format!(
                    "stored under record {seq} but names record {}",
                    checkpoint.seq
                ),
            ),
            Err(error) => report.flag(Location::Checkpoint { seq }, error.to_string()),
        }
    }
    Ok(checkpoints)
}

/// Replays the journal in order; returns the last record's sequence number and hash.
fn replay_journal(
    trees: &Trees,
    key: Option<&VerifyingKey>,
    checkpoints: &BTreeMap<u64, Checkpoint>,
    snapshot_seq: Option<u64>,
    replay: &mut Replay,
    report: &mut AuditReport,
) -> Result<(u64, [u8; 32]), Error> {
    let mut prev_hash = GENESIS_HASH;
    let mut expected_seq: u64 = 1;
    let mut last_seq = 0;
    let mut current: Option<(u64, Vec<u8>, u32)> = None;
    let mut seen_checkpoints = 0usize;
    let mut finish = |seq: u64,
                      bytes: Vec<u8>,
                      replay: &mut Replay,
                      report: &mut AuditReport,
                      prev_hash: &mut [u8; 32],
                      expected_seq: &mut u64|
     -> Result<(), Error> {
        if seq != *expected_seq {
            report.flag(
                Location::JournalRecord { seq },
                format!(
                    "expected record {} next: records are missing",
                    *expected_seq
                ),
            );
        }
        *expected_seq = seq.saturating_add(1);
        report.records = report.records.saturating_add(1);
        let stored_hash = tail_hash(&bytes);
        match Record::decode(&bytes) {
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
                if decoded.record.prev_hash != *prev_hash {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!(
                            "chain broken: prev_hash {} but the previous record hashes to {}",
                            hex::encode(decoded.record.prev_hash),
                            hex::encode(*prev_hash)
                        ),
                    );
                }
                if decoded.record.seq != seq {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!("stored under {seq} but numbered {}", decoded.record.seq),
                    );
                }
                apply_record(trees, &decoded.record, replay, report)?;
            }
        }
        if snapshot_seq == Some(seq) {
            compare_snapshot(trees, replay, report)?;
        }
        *prev_hash = stored_hash;
        if let Some(checkpoint) = checkpoints.get(&seq) {
            seen_checkpoints = seen_checkpoints.saturating_add(1);
            check_checkpoint(checkpoint, key, &stored_hash, replay, report);
        }
        Ok(())
    };
    // A frame holds one record or several whole ones (see `crate::journal`); bytes that do
    // not split into records are audited as one more record, which reports why.
    let mut finish_frame = |first: u64,
                            bytes: Vec<u8>,
                            replay: &mut Replay,
                            report: &mut AuditReport,
                            prev_hash: &mut [u8; 32],
                            expected_seq: &mut u64|
     -> Result<u64, Error> {
        let (records, rest) = frame_records(&bytes);
        let mut seq = first;
        let mut parts: Vec<&[u8]> = records;
        if !rest.is_empty() {
            parts.push(rest);
        }
        for (index, part) in parts.into_iter().enumerate() {
            seq = first.saturating_add(u64::try_from(index).unwrap_or(u64::MAX));
            finish(seq, part.to_vec(), replay, report, prev_hash, expected_seq)?;
        }
        Ok(seq)
    };
    for item in trees.journal.iter() {
        let (key_bytes, chunk) = item.map_err(Error::storage("scanning the journal"))?;
        let (seq, index) = match decode_chunk_key(&key_bytes) {
            Ok(parsed) => parsed,
            Err(error) => {
                report.flag(Location::Meta, format!("journal key: {error}"));
                continue;
            }
        };
        match current.as_mut() {
            Some((current_seq, bytes, next_index)) if *current_seq == seq => {
                if index != *next_index {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!("chunk {} missing (found chunk {index})", *next_index),
                    );
                }
                *next_index = index.saturating_add(1);
                bytes.extend_from_slice(&chunk);
            }
            _ => {
                if let Some((done_seq, bytes, _)) = current.take() {
                    last_seq = finish_frame(
                        done_seq,
                        bytes,
                        replay,
                        report,
                        &mut prev_hash,
                        &mut expected_seq,
                    )?;
                }
                if index != 0 {
                    report.flag(
                        Location::JournalRecord { seq },
                        format!("chunk 0 missing (first chunk found is {index})"),
                    );
                }
                current = Some((seq, chunk.to_vec(), index.saturating_add(1)));
            }
        }
    }
    if let Some((done_seq, bytes, _)) = current.take() {
        last_seq = finish_frame(
            done_seq,
            bytes,
            replay,
            report,
            &mut prev_hash,
            &mut expected_seq,
        )?;
    }
    if seen_checkpoints < checkpoints.len() {
        for seq in checkpoints
            .keys()
            .filter(|seq| **seq > last_seq || **seq == 0)
        {
            report.flag(
                Location::Checkpoint { seq: *seq },
                format!("covers record {seq}, which is not in the journal (last is {last_seq})"),
            );
        }
    }
    Ok((last_seq, prev_hash))
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

fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: Option<&VerifyingKey>,
    record_hash: &[u8; 32],
    replay: &Replay,
    report: &mut AuditReport,
) {
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
}

fn apply_record(
    trees: &Trees,
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
                apply_transfer(trees, seq, transfer, replay, report)?;
                match trees.transfer(transfer.id) {
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
                expire(trees, seq, *id, *timestamp, replay, report)?;
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
    trees: &Trees,
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
    if debit.id == credit.id
        || debit.ledger != credit.ledger
        || transfer.ledger != debit.ledger
        || transfer.amount == 0
            && !transfer
                .flags
                .contains(TransferFlags::VOID_PENDING_TRANSFER)
    {
        report.flag(
            at,
            format!("{id} is malformed: same account, mixed ledgers or zero amount"),
        );
        return Ok(());
    }
    let (mut debit, mut credit) = (debit, credit);
    let flags = transfer.flags;
    let arithmetic = if flags.resolves_pending() {
        let Some(reservation) = replay.reservations.get_mut(&transfer.pending_id) else {
            report.flag(
                at,
                format!("{id} resolves unknown pending {}", transfer.pending_id),
            );
            return Ok(());
        };
        let pending = reservation.transfer;
        let post = flags.contains(TransferFlags::POST_PENDING_TRANSFER);
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
                at,
                format!(
                    "{id} resolves pending {} which is {} for {} (resolution amount {})",
                    pending.id,
                    reservation.status.as_str(),
                    pending.amount,
                    transfer.amount
                ),
            );
            return Ok(());
        }
        reservation.status = if post {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        };
        let released = debit
            .debits_pending
            .checked_sub(pending.amount)
            .zip(credit.credits_pending.checked_sub(pending.amount));
        released.and_then(|(debits_pending, credits_pending)| {
            debit.debits_pending = debits_pending;
            credit.credits_pending = credits_pending;
            if post {
                debit.debits_posted = debit.debits_posted.checked_add(transfer.amount)?;
                credit.credits_posted = credit.credits_posted.checked_add(transfer.amount)?;
            }
            Some(())
        })
    } else if flags.contains(TransferFlags::PENDING) {
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
        trees,
        seq,
        &[debit, credit],
        transfer.timestamp,
        replay,
        report,
    )
}

fn expire(
    trees: &Trees,
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
    settle(trees, seq, &[debit, credit], timestamp, replay, report)
}

/// Stores replayed accounts, checks their limits and their history entries.
fn settle(
    trees: &Trees,
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
            let stored = trees
                .history
                .get(history_key(account.id, timestamp))
                .map_err(Error::storage("reading history"))?;
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

/// Compares the stored account snapshot with the replayed accounts at the snapshot's record,
/// and checks that its debits equal its credits per currency.
fn compare_snapshot(trees: &Trees, replay: &Replay, report: &mut AuditReport) -> Result<(), Error> {
    let mut totals: BTreeMap<u32, [Sum256; 4]> = BTreeMap::new();
    let mut stored_ids = 0u64;
    for item in trees.accounts.iter() {
        let (key, value) = item.map_err(Error::storage("scanning accounts"))?;
        stored_ids = stored_ids.saturating_add(1);
        let stored = match decode_account(&value) {
            Ok(account) => account,
            Err(error) => {
                let id = key_u128(&key, "account key")
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                report.flag(Location::Account { id }, error.to_string());
                continue;
            }
        };
        let at = Location::Account {
            id: stored.id.0.to_string(),
        };
        if key.as_slice() != id_key(stored.id.0) {
            report.flag(at.clone(), "stored under another id's key");
        }
        match replay.accounts.get(&stored.id) {
            None => report.flag(at, "stored but never created in the journal"),
            Some(expected) if expected != &stored => report.flag(
                at,
                format!(
                    "stored snapshot differs from the journal replay: expected debits \
                     pending/posted {}/{} credits pending/posted {}/{}, found {}/{} and {}/{}",
                    expected.debits_pending,
                    expected.debits_posted,
                    expected.credits_pending,
                    expected.credits_posted,
                    stored.debits_pending,
                    stored.debits_posted,
                    stored.credits_pending,
                    stored.credits_posted
                ),
            ),
            Some(_) => {}
        }
        let sums = totals.entry(stored.ledger).or_default();
        sums[0].add(stored.debits_posted);
        sums[1].add(stored.credits_posted);
        sums[2].add(stored.debits_pending);
        sums[3].add(stored.credits_pending);
    }
    if stored_ids != replay.accounts.len() as u64 {
        report.flag(
            Location::Meta,
            format!(
                "snapshot holds {stored_ids} accounts but the journal created {} by then",
                replay.accounts.len()
            ),
        );
    }
    for (
        ledger,
        [
            debits_posted,
            credits_posted,
            debits_pending,
            credits_pending,
        ],
    ) in totals
    {
        if debits_posted != credits_posted {
            report.flag(
                Location::Ledger { ledger },
                format!(
                    "stored snapshot: Σ debits_posted {debits_posted} != Σ credits_posted \
                     {credits_posted}"
                ),
            );
        }
        if debits_pending != credits_pending {
            report.flag(
                Location::Ledger { ledger },
                format!(
                    "stored snapshot: Σ debits_pending {debits_pending} != Σ credits_pending \
                     {credits_pending}"
                ),
            );
        }
    }
    Ok(())
}

/// Per-currency totals of the replayed accounts at the journal head; debits must equal
/// credits.
fn final_totals(replay: &Replay, report: &mut AuditReport) {
    let mut totals: BTreeMap<u32, (u64, [Sum256; 4])> = BTreeMap::new();
    for account in replay.accounts.values() {
        let (count, sums) = totals.entry(account.ledger).or_default();
        *count = count.saturating_add(1);
        sums[0].add(account.debits_posted);
        sums[1].add(account.credits_posted);
        sums[2].add(account.debits_pending);
        sums[3].add(account.credits_pending);
    }
    report.accounts = replay.accounts.len() as u64;
    for (
        ledger,
        (
            accounts,
            [
                debits_posted,
                credits_posted,
                debits_pending,
                credits_pending,
            ],
        ),
    ) in totals
    {
        if debits_posted != credits_posted {
            report.flag(
                Location::Ledger { ledger },
                format!("Σ debits_posted {debits_posted} != Σ credits_posted {credits_posted}"),
            );
        }
        if debits_pending != credits_pending {
            report.flag(
                Location::Ledger { ledger },
                format!("Σ debits_pending {debits_pending} != Σ credits_pending {credits_pending}"),
            );
        }
        report.ledgers.push(LedgerTotals {
            ledger,
            accounts,
            debits_posted: debits_posted.to_string(),
            credits_posted: credits_posted.to_string(),
            debits_pending: debits_pending.to_string(),
            credits_pending: credits_pending.to_string(),
        });
    }
}

fn compare_pending(trees: &Trees, replay: &Replay, report: &mut AuditReport) -> Result<(), Error> {
    let mut stored_count = 0usize;
    for item in trees.pending.iter() {
        let (key, value) = item.map_err(Error::storage("scanning pending statuses"))?;
        stored_count = stored_count.saturating_add(1);
        let id = key_u128(&key, "pending key").unwrap_or_default();
        let at = Location::Transfer { id: id.to_string() };
        let found = decode_pending_status(&value);
        match (replay.reservations.get(&TransferId(id)), found) {
            (Some(expected), Ok(found)) if expected.status == found => {}
            (Some(expected), found) => report.flag(
                at,
                format!(
                    "pending status should be {}, found {found:?}",
                    expected.status.as_str()
                ),
            ),
            (None, _) => report.flag(
                at,
                "has a pending status but no pending transfer in the journal",
            ),
        }
    }
    if stored_count != replay.reservations.len() {
        report.flag(
            Location::Meta,
            format!(
                "{} pending transfers in the journal but {stored_count} pending statuses stored",
                replay.reservations.len()
            ),
        );
    }
    let mut indexed = 0usize;
    for item in trees.expiry.iter() {
        let (key, _) = item.map_err(Error::storage("scanning the expiry index"))?;
        indexed = indexed.saturating_add(1);
        match decode_expiry_key(&key) {
            Ok((at, id)) => {
                let live = replay.reservations.get(&id).is_some_and(|r| {
                    r.status == PendingStatus::Pending && r.transfer.expires_at() == Some(at)
                });
                if !live {
                    report.flag(
                        Location::Transfer {
                            id: id.0.to_string(),
                        },
                        format!(
                            "expiry index entry at {} but it is not a live pending transfer",
                            at.0
                        ),
                    );
                }
            }
            Err(error) => report.flag(Location::Meta, format!("expiry index: {error}")),
        }
    }
    let live = replay
        .reservations
        .values()
        .filter(|r| r.status == PendingStatus::Pending && r.transfer.expires_at().is_some())
        .count();
    if indexed != live {
        report.flag(
            Location::Meta,
            format!(
                "{live} live pending transfers with a timeout but {indexed} expiry index entries"
            ),
        );
    }
    Ok(())
}

fn compare_counts(trees: &Trees, replay: &Replay, report: &mut AuditReport) -> Result<(), Error> {
    let mut stored = 0u64;
    for item in trees.transfers.iter() {
        let (key, value) = item.map_err(Error::storage("counting transfers"))?;
        match decode_transfer_run(&value) {
            Ok(run) => stored = stored.saturating_add(u64::from(run.len())),
            Err(error) => report.flag(
                Location::Meta,
                format!("transfer index entry {}: {error}", hex::encode(&key)),
            ),
        }
    }
    if stored != report.transfers {
        report.flag(
            Location::Meta,
            format!(
                "{} transfers in the journal but {stored} stored",
                report.transfers
            ),
        );
    }
    let history = trees.history.count()?;
    if history != replay.history_expected {
        report.flag(
            Location::Meta,
            format!(
                "{} history entries expected from the journal but {history} stored",
                replay.history_expected
            ),
        );
    }
    Ok(())
}

/// What [`export`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Account lines.
    pub accounts: u64,
    /// Transfer lines.
    pub transfers: u64,
}

/// Writes every account, then every transfer, as JSON Lines (one object per line with a
/// `"type"` of `"account"` or `"transfer"`), for reconciliation. `u128` values are decimal
/// strings because common JSON tools hold numbers as 64-bit floats.
pub fn export(path: &Path, out: &mut dyn Write) -> Result<ExportSummary, Error> {
    let trees = open_offline(path)?;
    let mut summary = ExportSummary::default();
    let write_line = |out: &mut dyn Write, value: serde_json::Value| -> Result<(), Error> {
        serde_json::to_writer(&mut *out, &value).map_err(|error| Error::Io {
            context: "writing the export".into(),
            source: error.into(),
        })?;
        out.write_all(b"\n")
            .map_err(Error::io("writing the export"))
    };
    // Stored accounts are a snapshot; the current balances are that plus the journal since.
    let loaded = crate::recovery::load_accounts(&trees)?;
    let accounts: BTreeMap<AccountId, Account> = loaded.accounts.into_iter().collect();
    for account in accounts.values() {
        write_line(out, account_json(account))?;
        summary.accounts = summary.accounts.saturating_add(1);
    }
    for item in trees.transfers.iter() {
        let (key, value) = item.map_err(Error::storage("scanning transfers"))?;
        let first = key_u128(&key, "transfer run key").map_err(Error::corrupt("transfer"))?;
        let run = decode_transfer_run(&value).map_err(Error::corrupt("transfer run"))?;
        for offset in 0..run.len() {
            let id = TransferId(first.wrapping_add(u128::from(offset)));
            // The index names where the transfer is in the journal; read it from there.
            let (seq, index) = run.location(offset).ok_or_else(|| Error::Corrupt {
                what: id.to_string(),
                source: crate::codec::DecodeError {
                    what: "transfer run",
                    detail: format!("no location for offset {offset} of a run of {}", run.len()),
                },
            })?;
            let transfer = trees.transfer_at(id, seq, index)?;
            let status = if transfer.flags.contains(TransferFlags::PENDING) {
                trees.pending_status(transfer.id)?
            } else {
                None
            };
            write_line(out, transfer_json(&transfer, status))?;
            summary.transfers = summary.transfers.saturating_add(1);
        }
    }
    out.flush().map_err(Error::io("writing the export"))?;
    Ok(summary)
}

fn account_json(account: &Account) -> serde_json::Value {
    serde_json::json!({
        "type": "account",
        "id": account.id.0.to_string(),
        "ledger": account.ledger,
        "code": account.code,
        "flags": account_flag_names(account.flags),
        "debits_pending": account.debits_pending.to_string(),
        "debits_posted": account.debits_posted.to_string(),
        "credits_pending": account.credits_pending.to_string(),
        "credits_posted": account.credits_posted.to_string(),
        "user_data_128": account.user_data_128.to_string(),
        "user_data_64": account.user_data_64,
        "user_data_32": account.user_data_32,
        "timestamp": account.timestamp.0,
    })
}

fn transfer_json(transfer: &Transfer, status: Option<PendingStatus>) -> serde_json::Value {
    serde_json::json!({
        "type": "transfer",
        "id": transfer.id.0.to_string(),
        "debit_account_id": transfer.debit_account_id.0.to_string(),
        "credit_account_id": transfer.credit_account_id.0.to_string(),
        "amount": transfer.amount.to_string(),
        "pending_id": transfer.pending_id.0.to_string(),
        "ledger": transfer.ledger,
        "code": transfer.code,
        "flags": transfer_flag_names(transfer.flags),
        "timeout": transfer.timeout,
        "user_data_128": transfer.user_data_128.to_string(),
        "user_data_64": transfer.user_data_64,
        "user_data_32": transfer.user_data_32,
        "timestamp": transfer.timestamp.0,
        "pending_status": status.map(PendingStatus::as_str),
    })
}

fn account_flag_names(flags: AccountFlags) -> Vec<&'static str> {
    [
        (AccountFlags::LINKED, "linked"),
        (
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            "debits_must_not_exceed_credits",
        ),
        (
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            "credits_must_not_exceed_debits",
        ),
        (AccountFlags::HISTORY, "history"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

fn transfer_flag_names(flags: TransferFlags) -> Vec<&'static str> {
    [
        (TransferFlags::LINKED, "linked"),
        (TransferFlags::PENDING, "pending"),
        (
            TransferFlags::POST_PENDING_TRANSFER,
            "post_pending_transfer",
        ),
        (
            TransferFlags::VOID_PENDING_TRANSFER,
            "void_pending_transfer",
        ),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}
