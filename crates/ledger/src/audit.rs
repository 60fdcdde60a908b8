//! The offline audit.
//!
//! The audit trusts nothing but the journal and the node's public key. It replays every
//! record from the first, recomputes every balance with its own arithmetic (not the state
//! machine's), and compares with what is stored; it checks the hash chain, the checkpoint
//! signatures and digests, the signed heads' signatures, and that debits equal credits in
//! every currency. Each finding names where it is (record, account, transfer, checkpoint,
//! signed head) and what was expected.
//!
//! It also reports how many records follow the last one a valid signature covers. The writer
//! signs its head every few seconds while records arrive and at every clean close, so those
//! records are what a node killed since its last signature wrote, or a journal whose
//! signatures were removed: nothing vouches for them. [`AuditReport::require_signed_head`]
//! makes them a discrepancy (`kakehashi ledger audit --require-signed-head`).
//!
//! The replay is in `replay`, the comparison of what is stored with what was replayed in
//! `compare`. The database is opened as the export opens it (see [`open_offline`]): with
//! sled's exclusive file lock, so the audit fails cleanly while a node holds it, and without
//! writes.

mod compare;
mod replay;
mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use self::compare::{compare_counts, compare_pending, compare_snapshot, final_totals};
use self::replay::{Replay, replay_journal};
use self::source::SledSource;
pub use self::source::{AuditSource, JournalItem};
use crate::error::Error;
use crate::journal::{Checkpoint, SignedHead};
use crate::ledger::trees::open_offline;

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
    /// A signed head.
    SignedHead {
        /// The journal record it covers.
        seq: u64,
    },
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
            Self::SignedHead { seq } => write!(f, "signed head at record {seq}"),
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
    /// Signed heads whose signature was verified and whose record hashes to what they sign.
    pub signed_heads_verified: u64,
    /// The last journal record a verified checkpoint or signed head covers (0: none).
    pub last_signed_seq: u64,
    /// Journal records after `last_signed_seq`: nothing vouches for them (see the module
    /// documentation).
    pub records_unsigned: u64,
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

    /// Makes the records that follow the last signed head or checkpoint a discrepancy (one,
    /// naming them), for auditors who accept only books the node vouched for: its clean close
    /// signs the head, so an unsigned tail means it was killed since its last signature, or
    /// the signatures were removed.
    pub fn require_signed_head(&mut self) {
        if self.records_unsigned == 0 {
            return;
        }
        let first = self.last_signed_seq.saturating_add(1);
        let last = self.last_signed_seq.saturating_add(self.records_unsigned);
        let records = match self.records_unsigned {
            1 => format!("record {first} follows"),
            _ => format!("records {first} to {last} follow"),
        };
        let since = match self.last_signed_seq {
            0 => "no record is signed".to_string(),
            seq => format!("it covers record {seq}"),
        };
        self.flag(
            Location::JournalRecord { seq: first },
            format!(
                "{records} the last signed head ({since}): nothing vouches for them; the node \
                 that wrote them stopped without closing cleanly, or the signatures were removed"
            ),
        );
    }

    /// Adds a finding (counted beyond [`DISCREPANCIES_LISTED_MAX`]).
    pub fn flag(&mut self, location: Location, detail: impl Into<String>) {
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

/// Audits the ledger in `path` offline. Returns `Err` only when the audit cannot run (no
/// database, locked, unreadable); everything found wrong is in the report.
pub fn audit(path: &Path, options: &AuditOptions) -> Result<AuditReport, Error> {
    let trees = open_offline(path)?;
    audit_source(&SledSource::new(&trees), options)
}

/// Audits a stored ledger read through `source` (the sled ledger's trees, or another engine's
/// tables: see [`AuditSource`]) with exactly the checks of [`audit()`].
pub fn audit_source(
    source: &dyn AuditSource,
    options: &AuditOptions,
) -> Result<AuditReport, Error> {
    let mut report = AuditReport::default();
    for (location, detail) in source.findings() {
        report.flag(location, detail);
    }
    let key = check_key(source, options, &mut report)?;
    let checkpoints = load_checkpoints(source, &mut report)?;
    let signed_heads = load_signed_heads(source, &mut report)?;
    let mut replay = Replay::new();
    let snapshot_seq = match source.snapshot_seq() {
        Ok(seq) => Some(seq),
        Err(Error::Corrupt { source, .. }) => {
            report.flag(Location::Meta, format!("snapshot position: {source}"));
            None
        }
        Err(other) => return Err(other),
    };
    if snapshot_seq == Some(0) {
        compare_snapshot(source, &replay, &mut report)?;
    }
    let (last_seq, last_hash) = replay_journal(
        source,
        key.as_ref(),
        &checkpoints,
        &signed_heads,
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
    report.records_unsigned = last_seq.saturating_sub(report.last_signed_seq);
    match source.head()? {
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
    compare_pending(source, &replay, &mut report)?;
    compare_counts(source, &replay, &mut report)?;
    Ok(report)
}

fn check_key(
    source: &dyn AuditSource,
    options: &AuditOptions,
    report: &mut AuditReport,
) -> Result<Option<VerifyingKey>, Error> {
    let stored = match source.verifying_key() {
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
    source: &dyn AuditSource,
    report: &mut AuditReport,
) -> Result<BTreeMap<u64, Checkpoint>, Error> {
    let mut checkpoints = BTreeMap::new();
    source.checkpoints(&mut |key, value| {
        let Ok(seq_bytes) = <[u8; 8]>::try_from(key) else {
            report.flag(
                Location::Meta,
                format!("checkpoint key of {} bytes", key.len()),
            );
            return;
        };
        let seq = u64::from_be_bytes(seq_bytes);
        match Checkpoint::decode(value) {
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
    })?;
    Ok(checkpoints)
}

fn load_signed_heads(
    source: &dyn AuditSource,
    report: &mut AuditReport,
) -> Result<BTreeMap<u64, SignedHead>, Error> {
    let mut signed_heads = BTreeMap::new();
    source.signed_heads(&mut |key, value| {
        let Ok(seq_bytes) = <[u8; 8]>::try_from(key) else {
            report.flag(
                Location::Meta,
                format!("signed head key of {} bytes", key.len()),
            );
            return;
        };
        let seq = u64::from_be_bytes(seq_bytes);
        match SignedHead::decode(value) {
            Ok(signed) if signed.seq == seq => {
                signed_heads.insert(seq, signed);
            }
            Ok(signed) => report.flag(
                Location::SignedHead { seq },
                format!("stored under record {seq} but names record {}", signed.seq),
            ),
            Err(error) => report.flag(Location::SignedHead { seq }, error.to_string()),
        }
    })?;
    Ok(signed_heads)
}
