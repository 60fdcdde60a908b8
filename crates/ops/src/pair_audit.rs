//! The pair audit: do two nodes' books agree on every payment between them?
//!
//! Each node keeps its own ledger and payment store, and the settlement protocol
//! (ARCHITECTURE.md, "Settlement protocol") promises that no payment is credited on one side
//! and voided on the other. This module checks that promise offline, from what each node
//! stored, for one corridor (a *sender* S and a *receiver* R, in both directions):
//!
//! - every payment R credited (a transfer liquidity\[S\] → creditor carrying the UETR in
//!   `user_data_128`, with a settled record and a signed receipt) has on S a reservation
//!   debtor → corridor\[R\] with the same UETR, posted, and every posted reservation has R's
//!   credit;
//! - the amounts agree: S reserved and posted the instruction's amount (the quote's source),
//!   R credited the quote's target, and the receipt names that credit; the receipt verifies
//!   under the agreement for S, the quote and the instruction verify too, and every transfer
//!   sits in the right currency ledger with the right code, accounts and UETR-derived id;
//! - a voided reservation has no credit, and R's record of it (if any) is a rejection or a
//!   fence;
//! - a reservation still pending is *in doubt* (listed, not a discrepancy), unless R already
//!   settled it: then the sender is not yet resolved, which is what recovery repairs;
//! - the positions reconcile: Σ posted into corridor\[R\] on S equals Σ source amounts of the
//!   payments R settled, Σ pending there equals the payments in doubt, and R's liquidity\[S\]
//!   debits equal Σ target amounts of those payments.
//!
//! Every piece of evidence is verified at the time the receiver settled (the credit's ledger
//! timestamp), the time the receiver relied on it: certificates that expire or are revoked
//! later do not make an old payment wrong.
//!
//! Reading is offline and read-only: [`NodeBooks::load`] runs the ledger's own audit
//! ([`kakehashi_ledger::audit`], its checkpoints pinned to the node's certified signing key),
//! reads the ledger through its JSON Lines export and the payment store without a writer.
//! Each database is opened with sled's exclusive lock, so loading fails cleanly while a node
//! holds it. [`audit_pair`] is pure: it takes the two books and returns a [`PairReport`].
//!
//! Jurisdictions are data: which node is which comes from the configurations, never from
//! code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use kakehashi_ledger::{
    AccountId, AuditOptions, AuditReport, PendingStatus, Timestamp, Transfer, TransferFlags,
    TransferId,
};
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Purpose, UnixTime, pem};
use kakehashi_proto::{SIGNING_DOMAIN_INSTRUCTION, pb};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use kakehashi_node::config::Config;
use kakehashi_node::store::{
    AccountKind, InboundRecord, InboundState, OutboundRecord, OutboundState, Store, StoreError,
};
use kakehashi_protocol::instruction::{self, Instruction, Uetr};
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::quote;
use kakehashi_protocol::receipt;
use kakehashi_protocol::signed::{self, Trust};
use kakehashi_protocol::transfer::{codes, transfer_id};

/// Most discrepancies listed in one report; the count beyond is still reported. Two corrupted
/// databases could otherwise produce several findings per payment and exhaust memory.
pub const DISCREPANCIES_LISTED_MAX: usize = 10_000;

/// Most payments in doubt listed in one report; the count beyond is still reported.
pub const IN_DOUBT_LISTED_MAX: usize = 10_000;

/// Longest line accepted from the ledger export: an account or transfer line is under 1 KiB
/// (about twenty members, u128 values as at most 39 digits), so 64 KiB only stops a runaway.
const EXPORT_LINE_LEN_MAX: usize = 64 * 1024;

/// Why the audit could not run (as opposed to what it found, which is in the report).
#[derive(Debug, thiserror::Error)]
pub enum PairAuditError {
    /// The two configurations are not the two ends of one corridor.
    #[error("the two configurations are not a pair: {0}")]
    NotAPair(String),
    /// The agreement does not name a jurisdiction or its currency.
    #[error("agreement: {0}")]
    Agreement(String),
    /// A file the audit needs is unusable (the node's signing certificate).
    #[error("{jurisdiction}: {what} {path}: {message}")]
    File {
        /// The node.
        jurisdiction: String,
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ledger could not be audited or exported.
    #[error("{jurisdiction}'s ledger {path}: {error}")]
    Ledger {
        /// The node.
        jurisdiction: String,
        /// The ledger directory.
        path: PathBuf,
        /// The ledger's error (in the message, so it is not a `source` too: a chain printer
        /// would show it twice).
        error: kakehashi_ledger::Error,
    },
    /// The ledger export has a line this audit cannot read.
    #[error("{jurisdiction}'s ledger export, line {line}: {detail}")]
    Export {
        /// The node.
        jurisdiction: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// The payment store could not be read.
    #[error("{jurisdiction}'s payment store {path}: {error}{hint}")]
    Store {
        /// The node.
        jurisdiction: String,
        /// The store directory.
        path: PathBuf,
        /// The store's error (in the message only, as for `Ledger`).
        error: StoreError,
        /// What to do, when known.
        hint: &'static str,
    },
}

/// A ledger account's balances as the export shows them (after replaying the journal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountView {
    /// Currency ledger (ISO 4217 numeric).
    pub ledger: u32,
    /// Account code (the node's [`AccountKind::ledger_code`]).
    pub code: u16,
    /// Minor units.
    pub debits_pending: u128,
    /// Minor units.
    pub debits_posted: u128,
    /// Minor units.
    pub credits_pending: u128,
    /// Minor units.
    pub credits_posted: u128,
}

/// A ledger transfer and, for a pending one, how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booked {
    /// The transfer as stored.
    pub transfer: Transfer,
    /// For a pending transfer, its status.
    pub status: Option<PendingStatus>,
}

/// One node's books for one corridor, as read offline.
#[derive(Clone, Debug)]
pub struct NodeBooks {
    /// The node's jurisdiction.
    pub jurisdiction: String,
    /// Its ledger currency.
    pub currency: &'static Currency,
    /// Its data directory (for the report).
    pub data_dir: PathBuf,
    /// The other end of the corridor.
    pub peer: String,
    /// Where payments to `peer` are reserved and posted.
    pub corridor_account: u128,
    /// Where payments from `peer` are credited from.
    pub liquidity_account: u128,
    /// The receiver's allowance for clock differences when it checked quotes and instructions.
    pub clock_skew_secs: u64,
    /// The corridor and liquidity accounts, when they exist.
    pub accounts: BTreeMap<u128, AccountView>,
    /// Every transfer that moves the corridor or the liquidity account.
    pub transfers: Vec<Booked>,
    /// Payments this node sent to `peer`.
    pub outbound: BTreeMap<Uetr, OutboundRecord>,
    /// Payments this node received (or fenced) from `peer`.
    pub inbound: BTreeMap<Uetr, InboundRecord>,
    /// The ledger's own audit, when it was run.
    pub ledger_audit: Option<AuditReport>,
}

impl NodeBooks {
    /// Reads the books of the node configured by `config` for its corridor with `peer`:
    /// runs the ledger audit (checkpoints pinned to the key of the node's signing
    /// certificate), reads the ledger export and the payment store. Read-only; fails while a
    /// node holds either database.
    pub fn load(config: &Config, peer: &str, mra: &Mra) -> Result<Self, PairAuditError> {
        let jurisdiction = config.jurisdiction.clone();
        let link = config.peer(peer).ok_or_else(|| {
            PairAuditError::NotAPair(format!(
                "{jurisdiction}'s configuration has no [[peer]] {peer}"
            ))
        })?;
        let currency = currency_of(mra, &jurisdiction)?;
        let store_dir = config.data_dir.join("node");
        let ledger_dir = config.data_dir.join("ledger");
        let store_error = |error: StoreError| {
            let hint = if error.to_string().contains("lock") {
                " (a running node holds it: stop the node, then audit)"
            } else {
                ""
            };
            PairAuditError::Store {
                jurisdiction: jurisdiction.clone(),
                path: store_dir.clone(),
                error,
                hint,
            }
        };
        // The store first: sled refuses it at once while a node runs, where the ledger's
        // offline open waits a little for the lock.
        let store = Store::open_read_only(&store_dir).map_err(store_error)?;
        let mut outbound = BTreeMap::new();
        for item in store.outbound_records() {
            let (uetr, record) = item.map_err(store_error)?;
            if record.peer == peer {
                outbound.insert(uetr, record);
            }
        }
        let mut inbound = BTreeMap::new();
        for item in store.inbound_records() {
            let (uetr, record) = item.map_err(store_error)?;
            if record.sender == peer {
                inbound.insert(uetr, record);
            }
        }
        drop(store);

        let ledger_error = |error| PairAuditError::Ledger {
            jurisdiction: jurisdiction.clone(),
            path: ledger_dir.clone(),
            error,
        };
        let expected_key = ledger_key(config)?;
        let ledger_audit = kakehashi_ledger::audit(
            &ledger_dir,
            &AuditOptions {
                expected_key: Some(expected_key),
            },
        )
        .map_err(ledger_error)?;
        let mut reader = ExportReader::new([link.corridor_account, link.liquidity_account]);
        let exported = kakehashi_ledger::export(&ledger_dir, &mut reader);
        if let Some((line, detail)) = reader.error.take() {
            return Err(PairAuditError::Export {
                jurisdiction,
                line,
                detail,
            });
        }
        exported.map_err(ledger_error)?;
        Ok(Self {
            jurisdiction: jurisdiction.clone(),
            currency,
            data_dir: config.data_dir.clone(),
            peer: peer.to_owned(),
            corridor_account: link.corridor_account,
            liquidity_account: link.liquidity_account,
            clock_skew_secs: config.limits.clock_skew_secs,
            accounts: reader.accounts,
            transfers: reader.transfers,
            outbound,
            inbound,
            ledger_audit: Some(ledger_audit),
        })
    }
}

/// Loads both ends of the corridor between `a` and `b` (see [`NodeBooks::load`]) after
/// checking that they are one: two jurisdictions, each the other's peer, two data
/// directories.
pub fn load_pair(
    a: &Config,
    b: &Config,
    mra: &Mra,
) -> Result<(NodeBooks, NodeBooks), PairAuditError> {
    if a.jurisdiction == b.jurisdiction {
        return Err(PairAuditError::NotAPair(format!(
            "both are {} nodes; give the configurations of the two ends of a corridor",
            a.jurisdiction
        )));
    }
    if a.data_dir == b.data_dir {
        return Err(PairAuditError::NotAPair(format!(
            "both use the data directory {}",
            a.data_dir.display()
        )));
    }
    for (from, to) in [(a, b), (b, a)] {
        if from.peer(&to.jurisdiction).is_none() {
            return Err(PairAuditError::NotAPair(format!(
                "{}'s configuration has no [[peer]] {}",
                from.jurisdiction, to.jurisdiction
            )));
        }
    }
    Ok((
        NodeBooks::load(a, &b.jurisdiction, mra)?,
        NodeBooks::load(b, &a.jurisdiction, mra)?,
    ))
}

/// The ledger currency of `jurisdiction`, from the agreement and the ISO 4217 table.
fn currency_of(mra: &Mra, jurisdiction: &str) -> Result<&'static Currency, PairAuditError> {
    let party = mra.jurisdiction(jurisdiction).ok_or_else(|| {
        PairAuditError::Agreement(format!("{jurisdiction} is not a party to the agreement"))
    })?;
    money::currency(&party.currency).ok_or_else(|| {
        PairAuditError::Agreement(format!(
            "{jurisdiction}'s currency {} is not an ISO 4217 code kakehashi knows",
            party.currency
        ))
    })
}

/// The key the node's ledger checkpoints must be signed with: the node signs them with its
/// receipt-signing key (`node.rs`), whose certificate the configuration names.
fn ledger_key(config: &Config) -> Result<VerifyingKey, PairAuditError> {
    let path = &config.signing.cert;
    let error = |message: String| PairAuditError::File {
        jurisdiction: config.jurisdiction.clone(),
        what: "signing certificate",
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let chain = pem::blocks_or_der(&bytes, "CERTIFICATE").map_err(error)?;
    let leaf = chain
        .first()
        .ok_or_else(|| error("no CERTIFICATE block".into()))?;
    let cert = Cert::from_der(leaf).map_err(|e| error(e.to_string()))?;
    VerifyingKey::from_public_key_der(cert.spki().der())
        .map_err(|e| error(format!("not an Ed25519 key: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Reading the ledger export

/// Receives `kakehashi_ledger::export`'s JSON Lines and keeps the accounts and transfers of
/// the corridor. The export is the ledger's public reconciliation format; reading it keeps
/// this audit on the ledger's public interface.
struct ExportReader {
    wanted: [u128; 2],
    partial: Vec<u8>,
    line: u64,
    accounts: BTreeMap<u128, AccountView>,
    transfers: Vec<Booked>,
    error: Option<(u64, String)>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ExportLine {
    Account(AccountLine),
    Transfer(TransferLine),
}

#[derive(Deserialize)]
struct AccountLine {
    id: String,
    ledger: u32,
    code: u16,
    debits_pending: String,
    debits_posted: String,
    credits_pending: String,
    credits_posted: String,
}

#[derive(Deserialize)]
struct TransferLine {
    id: String,
    debit_account_id: String,
    credit_account_id: String,
    amount: String,
    pending_id: String,
    ledger: u32,
    code: u16,
    flags: Vec<String>,
    timeout: u32,
    user_data_128: String,
    user_data_64: u64,
    user_data_32: u32,
    timestamp: u64,
    pending_status: Option<String>,
}

impl ExportReader {
    fn new(wanted: [u128; 2]) -> Self {
        Self {
            wanted,
            partial: Vec::new(),
            line: 0,
            accounts: BTreeMap::new(),
            transfers: Vec::new(),
            error: None,
        }
    }

    fn take_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        let line: ExportLine = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match line {
            ExportLine::Account(a) => {
                let id = number("id", &a.id)?;
                if self.wanted.contains(&id) {
                    self.accounts.insert(
                        id,
                        AccountView {
                            ledger: a.ledger,
                            code: a.code,
                            debits_pending: number("debits_pending", &a.debits_pending)?,
                            debits_posted: number("debits_posted", &a.debits_posted)?,
                            credits_pending: number("credits_pending", &a.credits_pending)?,
                            credits_posted: number("credits_posted", &a.credits_posted)?,
                        },
                    );
                }
            }
            ExportLine::Transfer(t) => {
                let debit = number("debit_account_id", &t.debit_account_id)?;
                let credit = number("credit_account_id", &t.credit_account_id)?;
                if !self.wanted.contains(&debit) && !self.wanted.contains(&credit) {
                    return Ok(());
                }
                let mut flags = TransferFlags::NONE;
                for name in &t.flags {
                    flags = flags.union(match name.as_str() {
                        "linked" => TransferFlags::LINKED,
                        "pending" => TransferFlags::PENDING,
                        "post_pending_transfer" => TransferFlags::POST_PENDING_TRANSFER,
                        "void_pending_transfer" => TransferFlags::VOID_PENDING_TRANSFER,
                        other => return Err(format!("unknown transfer flag {other:?}")),
                    });
                }
                let status = match t.pending_status.as_deref() {
                    None => None,
                    Some("pending") => Some(PendingStatus::Pending),
                    Some("posted") => Some(PendingStatus::Posted),
                    Some("voided") => Some(PendingStatus::Voided),
                    Some("expired") => Some(PendingStatus::Expired),
                    Some(other) => return Err(format!("unknown pending status {other:?}")),
                };
                self.transfers.push(Booked {
                    transfer: Transfer {
                        id: TransferId(number("id", &t.id)?),
                        debit_account_id: AccountId(debit),
                        credit_account_id: AccountId(credit),
                        amount: number("amount", &t.amount)?,
                        pending_id: TransferId(number("pending_id", &t.pending_id)?),
                        user_data_128: number("user_data_128", &t.user_data_128)?,
                        user_data_64: t.user_data_64,
                        user_data_32: t.user_data_32,
                        timeout: t.timeout,
                        ledger: t.ledger,
                        code: t.code,
                        flags,
                        timestamp: Timestamp(t.timestamp),
                    },
                    status,
                });
            }
        }
        Ok(())
    }
}

fn number(field: &str, text: &str) -> Result<u128, String> {
    text.parse()
        .map_err(|_| format!("{field} {text:?} is not a decimal u128"))
}

impl io::Write for ExportReader {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            self.partial.extend_from_slice(head);
            let line = std::mem::take(&mut self.partial);
            self.line = self.line.saturating_add(1);
            if let Err(detail) = self.take_line(&line) {
                self.error = Some((self.line, detail.clone()));
                return Err(io::Error::other(detail));
            }
            rest = tail.get(1..).unwrap_or_default();
        }
        if self.partial.len().saturating_add(rest.len()) > EXPORT_LINE_LEN_MAX {
            let detail = format!("a line longer than {EXPORT_LINE_LEN_MAX} bytes");
            self.error = Some((self.line.saturating_add(1), detail.clone()));
            return Err(io::Error::other(detail));
        }
        self.partial.extend_from_slice(rest);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The report

/// What kind of disagreement a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// Two records of one payment name different amounts (reservation, posting, instruction,
    /// quote, credit, receipt, store record).
    AmountDiffers,
    /// A payment transfer or account is booked wrongly: currency ledger, code, accounts, a
    /// timeout, or an id that does not derive from the UETR.
    BookingWrong,
    /// The receiver credited a payment the sender has no reservation for.
    CreditWithoutReservation,
    /// The receiver credited a payment whose reservation the sender voided (or let expire):
    /// money created on one side.
    CreditedButVoided,
    /// The stored instruction does not decode, verify or match between the two sides.
    InstructionInvalid,
    /// One node's own ledger audit found something.
    LedgerAudit,
    /// The sender posted a reservation the receiver never credited.
    MissingCredit,
    /// The corridor or liquidity balances do not equal the sums of the payments.
    PositionDiffers,
    /// A settled payment's receipt is missing, does not verify under the agreement, or does
    /// not describe the credit.
    ReceiptInvalid,
    /// The receiver credited but its record is still `Accepting`; the next Prepare or status
    /// query of the UETR repairs it.
    ReceiverNotYetRecorded,
    /// A payment store record contradicts its own ledger.
    RecordMismatch,
    /// The receiver settled but the sender's reservation or record is not yet resolved; the
    /// sender's recovery repairs it.
    SenderNotYetResolved,
    /// A transfer moves a corridor or liquidity account without being a payment step or
    /// funding.
    UnexplainedMovement,
}

impl DiscrepancyKind {
    /// The snake_case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AmountDiffers => "amount_differs",
            Self::BookingWrong => "booking_wrong",
            Self::CreditWithoutReservation => "credit_without_reservation",
            Self::CreditedButVoided => "credited_but_voided",
            Self::InstructionInvalid => "instruction_invalid",
            Self::LedgerAudit => "ledger_audit",
            Self::MissingCredit => "missing_credit",
            Self::PositionDiffers => "position_differs",
            Self::ReceiptInvalid => "receipt_invalid",
            Self::ReceiverNotYetRecorded => "receiver_not_yet_recorded",
            Self::RecordMismatch => "record_mismatch",
            Self::SenderNotYetResolved => "sender_not_yet_resolved",
            Self::UnexplainedMovement => "unexplained_movement",
        }
    }

    /// Whether the nodes' own recovery repairs this once they run again.
    pub fn is_repaired_by_recovery(self) -> bool {
        matches!(
            self,
            Self::ReceiverNotYetRecorded | Self::SenderNotYetResolved
        )
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairDiscrepancy {
    /// What kind.
    pub kind: DiscrepancyKind,
    /// The node whose books show it.
    pub node: String,
    /// The payment, when the finding is about one.
    pub uetr: Option<String>,
    /// What differs, with both values.
    pub detail: String,
    /// Whether recovery repairs it (see [`DiscrepancyKind::is_repaired_by_recovery`]).
    pub repaired_by_recovery: bool,
}

impl fmt::Display for PairDiscrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.kind.as_str(), self.node)?;
        if let Some(uetr) = &self.uetr {
            write!(f, ", UETR {uetr}")?;
        }
        write!(f, ": {}", self.detail)?;
        if self.repaired_by_recovery {
            f.write_str(" (the nodes' recovery repairs this once they run)")?;
        }
        Ok(())
    }
}

/// An amount as ISO 20022 writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Amount {
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// Decimal in major units.
    pub value: String,
}

impl Amount {
    fn of(currency: &Currency, minor: u128) -> Self {
        let formatted = money::format_amount(currency, minor);
        Self {
            currency: formatted.currency,
            value: formatted.value,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.currency)
    }
}

/// A payment whose reservation is still pending and that the receiver has not settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InDoubt {
    /// The payment.
    pub uetr: String,
    /// Sending jurisdiction.
    pub sender: String,
    /// Receiving jurisdiction.
    pub receiver: String,
    /// What is reserved on the sender (zero when the record has no reservation yet).
    pub reserved: Amount,
    /// The sender's record state, if any.
    pub sender_record: Option<String>,
    /// The receiver's record state, if any.
    pub receiver_record: Option<String>,
}

/// The balances of one direction (sender → receiver) and the sums they must equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    /// The sender's corridor account for the receiver.
    pub corridor_account: String,
    /// Its posted credits: what the sender owes the receiver.
    pub corridor_posted: Amount,
    /// Σ source amounts of the payments the receiver settled; must equal `corridor_posted`.
    pub settled_source: Amount,
    /// Its pending credits.
    pub corridor_pending: Amount,
    /// Σ reservations still pending; must equal `corridor_pending`.
    pub reserved_in_doubt: Amount,
    /// The receiver's liquidity account for the sender.
    pub liquidity_account: String,
    /// Its posted debits: what the receiver paid out.
    pub liquidity_debited: Amount,
    /// Σ credited (target) amounts of the payments the receiver settled; must equal
    /// `liquidity_debited`.
    pub settled_target: Amount,
    /// Its posted credits (genesis and operator funding), for the reader.
    pub liquidity_funded: Amount,
    /// Whether all three pairs are equal.
    pub reconciled: bool,
}

/// One direction of the corridor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectionReport {
    /// Sending jurisdiction.
    pub sender: String,
    /// Receiving jurisdiction.
    pub receiver: String,
    /// Distinct payments (UETRs) seen in either node's books for this direction.
    pub payments: u64,
    /// Reserved and posted by the sender, credited by the receiver.
    pub settled: u64,
    /// Refused or voided, credited nowhere.
    pub rejected: u64,
    /// Reserved and pending, not credited: waiting for the receiver's answer.
    pub in_doubt: u64,
    /// In none of those states: each one has a discrepancy.
    pub inconsistent: u64,
    /// The balances and the sums they must equal.
    pub position: Position,
}

/// Summary of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSummary {
    /// Its jurisdiction.
    pub jurisdiction: String,
    /// Its ledger currency.
    pub currency: String,
    /// Its data directory.
    pub data_dir: String,
    /// Whether its own ledger audit ran and found nothing.
    pub ledger_audit_clean: Option<bool>,
    /// Journal records the ledger audit replayed.
    pub ledger_records: u64,
    /// Checkpoint signatures the ledger audit verified.
    pub ledger_checkpoints_verified: u64,
    /// Transfers moving the corridor or liquidity account.
    pub corridor_transfers: u64,
    /// Outbound records towards the peer.
    pub outbound_records: u64,
    /// Inbound records from the peer.
    pub inbound_records: u64,
}

/// The verdict for a pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairReport {
    /// Both nodes.
    pub nodes: Vec<NodeSummary>,
    /// Both directions.
    pub directions: Vec<DirectionReport>,
    /// Payments in doubt (at most [`IN_DOUBT_LISTED_MAX`]).
    pub in_doubt: Vec<InDoubt>,
    /// Payments in doubt beyond those listed.
    pub in_doubt_not_listed: u64,
    /// Every finding (at most [`DISCREPANCIES_LISTED_MAX`]).
    pub discrepancies: Vec<PairDiscrepancy>,
    /// Findings beyond those listed.
    pub discrepancies_not_listed: u64,
}

impl PairReport {
    /// Whether the two nodes agree: no finding at all (payments in doubt are not findings).
    pub fn agrees(&self) -> bool {
        self.discrepancies.is_empty() && self.discrepancies_not_listed == 0
    }

    /// How many findings there are, listed or not.
    pub fn discrepancy_count(&self) -> u64 {
        (self.discrepancies.len() as u64).saturating_add(self.discrepancies_not_listed)
    }

    fn flag(&mut self, kind: DiscrepancyKind, node: &str, uetr: Option<&Uetr>, detail: String) {
        self.flag_as(kind, node, uetr, detail, kind.is_repaired_by_recovery());
    }

    fn flag_as(
        &mut self,
        kind: DiscrepancyKind,
        node: &str,
        uetr: Option<&Uetr>,
        detail: String,
        repaired_by_recovery: bool,
    ) {
        if self.discrepancies.len() < DISCREPANCIES_LISTED_MAX {
            self.discrepancies.push(PairDiscrepancy {
                kind,
                node: node.to_owned(),
                uetr: uetr.map(ToString::to_string),
                detail,
                repaired_by_recovery,
            });
        } else {
            self.discrepancies_not_listed = self.discrepancies_not_listed.saturating_add(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Compares the books of the two ends of a corridor, in both directions, and includes each
/// ledger's own audit. Evidence is verified under `mra`.
pub fn audit_pair(a: &NodeBooks, b: &NodeBooks, mra: &Mra) -> PairReport {
    let cache = RecognitionCache::new(mra).ok();
    let trust = match &cache {
        Some(cache) => Trust::cached(mra, cache),
        None => Trust::from(mra),
    };
    let mut report = PairReport {
        nodes: Vec::new(),
        directions: Vec::new(),
        in_doubt: Vec::new(),
        in_doubt_not_listed: 0,
        discrepancies: Vec::new(),
        discrepancies_not_listed: 0,
    };
    for node in [a, b] {
        report.nodes.push(summary(node));
        if let Some(audit) = &node.ledger_audit {
            for finding in &audit.discrepancies {
                report.flag(
                    DiscrepancyKind::LedgerAudit,
                    &node.jurisdiction,
                    None,
                    finding.to_string(),
                );
            }
            if audit.discrepancies_not_listed > 0 {
                report.flag(
                    DiscrepancyKind::LedgerAudit,
                    &node.jurisdiction,
                    None,
                    format!(
                        "and {} more ledger audit findings not listed",
                        audit.discrepancies_not_listed
                    ),
                );
            }
        }
    }
    if a.peer != b.jurisdiction || b.peer != a.jurisdiction {
        report.flag(
            DiscrepancyKind::BookingWrong,
            &a.jurisdiction,
            None,
            format!(
                "the books are of corridors {}→{} and {}→{}, not one corridor",
                a.jurisdiction, a.peer, b.jurisdiction, b.peer
            ),
        );
        return report;
    }
    for (sender, receiver) in [(a, b), (b, a)] {
        let direction = Direction {
            s: sender,
            r: receiver,
            trust,
        }
        .check(&mut report);
        report.directions.push(direction);
    }
    report
}

fn summary(node: &NodeBooks) -> NodeSummary {
    NodeSummary {
        jurisdiction: node.jurisdiction.clone(),
        currency: node.currency.alpha.to_owned(),
        data_dir: node.data_dir.display().to_string(),
        ledger_audit_clean: node.ledger_audit.as_ref().map(AuditReport::is_clean),
        ledger_records: node.ledger_audit.as_ref().map_or(0, |a| a.records),
        ledger_checkpoints_verified: node
            .ledger_audit
            .as_ref()
            .map_or(0, |a| a.checkpoints_verified),
        corridor_transfers: node.transfers.len() as u64,
        outbound_records: node.outbound.len() as u64,
        inbound_records: node.inbound.len() as u64,
    }
}

/// How the sender's reservation of a payment stands in its ledger.
#[derive(Clone, Copy)]
enum Reserved<'t> {
    Pending(&'t Transfer),
    Posted(&'t Transfer, &'t Transfer),
    Voided(&'t Transfer),
    Expired(&'t Transfer),
}

impl<'t> Reserved<'t> {
    fn transfer(self) -> &'t Transfer {
        match self {
            Self::Pending(t) | Self::Posted(t, _) | Self::Voided(t) | Self::Expired(t) => t,
        }
    }
}

/// A running sum of minor units; `None` once it overflowed (reported, never wrapped).
#[derive(Clone, Copy)]
struct Total(Option<u128>);

impl Total {
    fn add(&mut self, minor: u128) {
        self.0 = self.0.and_then(|sum| sum.checked_add(minor));
    }
}

/// One direction: `s` sends, `r` receives.
struct Direction<'a> {
    s: &'a NodeBooks,
    r: &'a NodeBooks,
    trust: Trust<'a>,
}

/// Sums gathered over one direction's payments.
struct Sums {
    settled_source: Total,
    settled_target: Total,
    reserved_in_doubt: Total,
    /// Σ source amounts of payments the receiver settled whose reservation is still pending:
    /// the part of a corridor difference that the sender's recovery will post.
    unresolved_source: Total,
}

impl<'a> Direction<'a> {
    fn check(&self, report: &mut PairReport) -> DirectionReport {
        let (s, r) = (self.s, self.r);
        self.check_accounts(report);
        let reservations = self.reservations(report);
        let credits = self.credits(report);
        let uetrs: BTreeSet<Uetr> = reservations
            .keys()
            .chain(credits.keys())
            .chain(s.outbound.keys())
            .chain(r.inbound.keys())
            .copied()
            .collect();
        let mut direction = DirectionReport {
            sender: s.jurisdiction.clone(),
            receiver: r.jurisdiction.clone(),
            payments: uetrs.len() as u64,
            settled: 0,
            rejected: 0,
            in_doubt: 0,
            inconsistent: 0,
            position: self.empty_position(),
        };
        let mut sums = Sums {
            settled_source: Total(Some(0)),
            settled_target: Total(Some(0)),
            reserved_in_doubt: Total(Some(0)),
            unresolved_source: Total(Some(0)),
        };
        for uetr in &uetrs {
            let outcome = self.check_payment(
                report,
                uetr,
                reservations.get(uetr).copied(),
                credits.get(uetr).copied(),
                &mut sums,
            );
            match outcome {
                Outcome::Settled => direction.settled += 1,
                Outcome::Rejected => direction.rejected += 1,
                Outcome::InDoubt => direction.in_doubt += 1,
                Outcome::Inconsistent => direction.inconsistent += 1,
            }
        }
        direction.position = self.position(report, &sums);
        direction
    }

    fn empty_position(&self) -> Position {
        let zero_s = Amount::of(self.s.currency, 0);
        let zero_r = Amount::of(self.r.currency, 0);
        Position {
            corridor_account: self.s.corridor_account.to_string(),
            corridor_posted: zero_s.clone(),
            settled_source: zero_s.clone(),
            corridor_pending: zero_s.clone(),
            reserved_in_doubt: zero_s,
            liquidity_account: self.r.liquidity_account.to_string(),
            liquidity_debited: zero_r.clone(),
            settled_target: zero_r.clone(),
            liquidity_funded: zero_r,
            reconciled: false,
        }
    }

    /// The corridor account on the sender and the liquidity account on the receiver exist,
    /// in the node's currency, with the code of their kind.
    fn check_accounts(&self, report: &mut PairReport) {
        for (node, id, kind) in [
            (self.s, self.s.corridor_account, AccountKind::Corridor),
            (self.r, self.r.liquidity_account, AccountKind::Liquidity),
        ] {
            match node.accounts.get(&id) {
                None => report.flag(
                    DiscrepancyKind::BookingWrong,
                    &node.jurisdiction,
                    None,
                    format!(
                        "the {} account {id} for {} is not in the ledger",
                        kind.as_str(),
                        node.peer
                    ),
                ),
                Some(account) => {
                    let numeric = u32::from(node.currency.numeric);
                    if account.ledger != numeric || account.code != kind.ledger_code() {
                        report.flag(
                            DiscrepancyKind::BookingWrong,
                            &node.jurisdiction,
                            None,
                            format!(
                                "the {} account {id} is in ledger {} with code {}; expected \
                                 ledger {numeric} ({}) and code {}",
                                kind.as_str(),
                                account.ledger,
                                account.code,
                                node.currency.alpha,
                                kind.ledger_code()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The sender's reservations into the corridor, by UETR; flags every other movement of
    /// the corridor account.
    fn reservations(&self, report: &mut PairReport) -> BTreeMap<Uetr, Reserved<'a>> {
        let s = self.s;
        let corridor = s.corridor_account;
        let mut resolutions: BTreeMap<u128, &'a Transfer> = BTreeMap::new();
        let mut pending: Vec<&'a Booked> = Vec::new();
        for booked in &s.transfers {
            let t = &booked.transfer;
            if t.debit_account_id.0 != corridor && t.credit_account_id.0 != corridor {
                continue;
            }
            if t.flags.resolves_pending() {
                resolutions.insert(t.pending_id.0, t);
            } else if t.flags.contains(TransferFlags::PENDING) && t.credit_account_id.0 == corridor
            {
                pending.push(booked);
            } else {
                report.flag(
                    DiscrepancyKind::UnexplainedMovement,
                    &s.jurisdiction,
                    None,
                    format!(
                        "transfer {} (code {}) moves {} between accounts {} and {} on the \
                         corridor to {}, but is not a payment reservation",
                        t.id.0,
                        t.code,
                        Amount::of(s.currency, t.amount),
                        t.debit_account_id.0,
                        t.credit_account_id.0,
                        s.peer
                    ),
                );
            }
        }
        let mut reservations = BTreeMap::new();
        for booked in pending {
            let t = &booked.transfer;
            let uetr = Uetr(t.user_data_128.to_be_bytes());
            let state = match resolutions.remove(&t.id.0) {
                Some(r) if r.flags.contains(TransferFlags::POST_PENDING_TRANSFER) => {
                    Reserved::Posted(t, r)
                }
                Some(_) => Reserved::Voided(t),
                None if booked.status == Some(PendingStatus::Expired) => Reserved::Expired(t),
                None => Reserved::Pending(t),
            };
            if let Some(extra) = keep_derived(&mut reservations, uetr, state, b"reserve", |r| {
                r.transfer().id
            }) {
                report.flag(
                    DiscrepancyKind::BookingWrong,
                    &s.jurisdiction,
                    Some(&uetr),
                    format!(
                        "reservation {} also carries this UETR; a payment has one \
                         reservation, {}",
                        extra.0,
                        transfer_id(b"reserve", &uetr.0)
                    ),
                );
            }
        }
        for resolution in resolutions.values() {
            report.flag(
                DiscrepancyKind::UnexplainedMovement,
                &s.jurisdiction,
                None,
                format!(
                    "transfer {} resolves transfer {}, which is not a reservation into the \
                     corridor account {corridor}",
                    resolution.id.0, resolution.pending_id.0
                ),
            );
        }
        reservations
    }

    /// The receiver's credits from the liquidity account, by UETR; flags every other
    /// movement of the liquidity account except funding.
    fn credits(&self, report: &mut PairReport) -> BTreeMap<Uetr, &'a Transfer> {
        let r = self.r;
        let liquidity = r.liquidity_account;
        let mut credits = BTreeMap::new();
        for booked in &r.transfers {
            let t = &booked.transfer;
            let two_phase = t.flags.contains(TransferFlags::PENDING) || t.flags.resolves_pending();
            let is_credit = t.debit_account_id.0 == liquidity && t.code == codes::INBOUND;
            let is_funding = t.credit_account_id.0 == liquidity
                && (t.code == codes::GENESIS || t.code == codes::FUNDING);
            if t.debit_account_id.0 != liquidity && t.credit_account_id.0 != liquidity {
                continue;
            }
            if is_credit && !two_phase {
                let uetr = Uetr(t.user_data_128.to_be_bytes());
                if let Some(extra) = keep_derived(&mut credits, uetr, t, b"credit", |t| t.id) {
                    report.flag(
                        DiscrepancyKind::BookingWrong,
                        &r.jurisdiction,
                        Some(&uetr),
                        format!(
                            "credit {} also carries this UETR; a payment has one credit, {}",
                            extra.0,
                            transfer_id(b"credit", &uetr.0)
                        ),
                    );
                }
            } else if !is_funding || two_phase {
                report.flag(
                    DiscrepancyKind::UnexplainedMovement,
                    &r.jurisdiction,
                    None,
                    format!(
                        "transfer {} (code {}) moves {} between accounts {} and {} on the \
                         liquidity for {}, but is neither a payment credit nor funding",
                        t.id.0,
                        t.code,
                        Amount::of(r.currency, t.amount),
                        t.debit_account_id.0,
                        t.credit_account_id.0,
                        r.peer
                    ),
                );
            }
        }
        credits
    }

    /// Classifies one payment and checks everything both nodes hold about it.
    fn check_payment(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'a>>,
        credit: Option<&'a Transfer>,
        sums: &mut Sums,
    ) -> Outcome {
        let (s, r) = (self.s, self.r);
        let out = s.outbound.get(uetr);
        let inb = r.inbound.get(uetr);
        if let Some(reserved) = reserved {
            self.check_reservation(report, uetr, reserved);
        }
        self.check_sender_record(report, uetr, reserved, out);
        self.check_receiver_record(report, uetr, reserved, credit, inb);
        if let Some(credit) = credit {
            let source = self.check_evidence(report, uetr, reserved, credit, out, inb);
            sums.settled_source.add(source);
            if let Some(Reserved::Pending(_)) = reserved {
                sums.unresolved_source.add(source);
            }
            sums.settled_target.add(credit.amount);
        }
        if let Some(Reserved::Pending(t)) = reserved {
            sums.reserved_in_doubt.add(t.amount);
        }
        let amount = |t: &Transfer| Amount::of(s.currency, t.amount);
        match (reserved, credit) {
            (Some(Reserved::Posted(..)), Some(_)) => Outcome::Settled,
            (Some(Reserved::Posted(t, _)), None) => {
                report.flag(
                    DiscrepancyKind::MissingCredit,
                    &r.jurisdiction,
                    Some(uetr),
                    format!(
                        "{} posted its reservation of {} (transfer {}) but {} holds no credit \
                         from its liquidity account {} for this UETR",
                        s.jurisdiction,
                        amount(t),
                        t.id.0,
                        r.jurisdiction,
                        r.liquidity_account
                    ),
                );
                Outcome::Inconsistent
            }
            (Some(Reserved::Pending(t)), Some(c)) => {
                report.flag(
                    DiscrepancyKind::SenderNotYetResolved,
                    &s.jurisdiction,
                    Some(uetr),
                    format!(
                        "{} settled it (credit transfer {} of {}) but {}'s reservation of {} \
                         (transfer {}) is still pending",
                        r.jurisdiction,
                        c.id.0,
                        Amount::of(r.currency, c.amount),
                        s.jurisdiction,
                        amount(t),
                        t.id.0
                    ),
                );
                Outcome::Inconsistent
            }
            (Some(v @ (Reserved::Voided(_) | Reserved::Expired(_))), Some(c)) => {
                let how = if matches!(v, Reserved::Voided(_)) {
                    "voided"
                } else {
                    "let expire"
                };
                report.flag(
                    DiscrepancyKind::CreditedButVoided,
                    &r.jurisdiction,
                    Some(uetr),
                    format!(
                        "{} credited {} (transfer {}) but {} {how} its reservation of {} \
                         (transfer {})",
                        r.jurisdiction,
                        Amount::of(r.currency, c.amount),
                        c.id.0,
                        s.jurisdiction,
                        amount(v.transfer()),
                        v.transfer().id.0
                    ),
                );
                Outcome::Inconsistent
            }
            (None, Some(c)) => {
                report.flag(
                    DiscrepancyKind::CreditWithoutReservation,
                    &r.jurisdiction,
                    Some(uetr),
                    format!(
                        "{} credited {} to account {} (transfer {}) but {} holds no reservation \
                         into its corridor account {} for this UETR",
                        r.jurisdiction,
                        Amount::of(r.currency, c.amount),
                        c.credit_account_id.0,
                        c.id.0,
                        s.jurisdiction,
                        s.corridor_account
                    ),
                );
                Outcome::Inconsistent
            }
            (Some(Reserved::Voided(_) | Reserved::Expired(_)), None) => Outcome::Rejected,
            (Some(Reserved::Pending(t)), None) => {
                self.list_in_doubt(report, uetr, t.amount, out, inb);
                Outcome::InDoubt
            }
            (None, None) => match out.map(|o| o.state) {
                Some(OutboundState::Rejected) => Outcome::Rejected,
                Some(OutboundState::Reserving) => {
                    self.list_in_doubt(report, uetr, 0, out, inb);
                    Outcome::InDoubt
                }
                // A record that claims more than its ledger shows, or a receiver's record
                // without any trace on the sender: flagged by the record checks.
                _ => Outcome::Inconsistent,
            },
        }
    }

    fn list_in_doubt(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: u128,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
    ) {
        if report.in_doubt.len() < IN_DOUBT_LISTED_MAX {
            report.in_doubt.push(InDoubt {
                uetr: uetr.to_string(),
                sender: self.s.jurisdiction.clone(),
                receiver: self.r.jurisdiction.clone(),
                reserved: Amount::of(self.s.currency, reserved),
                sender_record: out.map(|o| outbound_state_name(o.state).to_owned()),
                receiver_record: inb.map(|i| inbound_state_name(i.state).to_owned()),
            });
        } else {
            report.in_doubt_not_listed = report.in_doubt_not_listed.saturating_add(1);
        }
    }

    /// The reservation and its resolution are booked as the protocol books them.
    fn check_reservation(&self, report: &mut PairReport, uetr: &Uetr, reserved: Reserved<'_>) {
        let s = self.s;
        let t = reserved.transfer();
        let mut wrong = Vec::new();
        if t.id.0 != transfer_id(b"reserve", &uetr.0) {
            wrong.push("its id does not derive from the UETR".to_owned());
        }
        if t.ledger != u32::from(s.currency.numeric) {
            wrong.push(format!(
                "it is in ledger {}, not {} ({})",
                t.ledger, s.currency.numeric, s.currency.alpha
            ));
        }
        if t.code != codes::OUTBOUND {
            wrong.push(format!("its code is {}, not {}", t.code, codes::OUTBOUND));
        }
        if t.timeout != 0 {
            wrong.push(format!(
                "it has a ledger timeout of {} s (a forwarded reservation may only end by the \
                 receiver's decision)",
                t.timeout
            ));
        }
        match reserved {
            Reserved::Posted(_, post) => {
                if post.id.0 != transfer_id(b"post", &uetr.0) {
                    wrong.push(format!(
                        "its posting transfer {} has an id that does not derive from the UETR",
                        post.id.0
                    ));
                }
                if post.amount != t.amount {
                    report.flag(
                        DiscrepancyKind::AmountDiffers,
                        &s.jurisdiction,
                        Some(uetr),
                        format!(
                            "reserved {} but posted {}",
                            Amount::of(s.currency, t.amount),
                            Amount::of(s.currency, post.amount)
                        ),
                    );
                }
            }
            Reserved::Voided(_) => {}
            Reserved::Expired(_) => wrong.push("it expired in the ledger".to_owned()),
            Reserved::Pending(_) => {}
        }
        if !wrong.is_empty() {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &s.jurisdiction,
                Some(uetr),
                format!("reservation {}: {}", t.id.0, wrong.join("; ")),
            );
        }
    }

    /// The sender's record agrees with its ledger.
    fn check_sender_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        out: Option<&OutboundRecord>,
    ) {
        let s = self.s;
        let mut mismatch =
            |kind, detail: String| report.flag(kind, &s.jurisdiction, Some(uetr), detail);
        let Some(out) = out else {
            if let Some(reserved) = reserved {
                mismatch(
                    DiscrepancyKind::RecordMismatch,
                    format!(
                        "the ledger holds reservation {} but the payment store has no record of \
                         the payment",
                        reserved.transfer().id.0
                    ),
                );
            }
            return;
        };
        let state = outbound_state_name(out.state);
        let Some(reserved) = reserved else {
            match out.state {
                OutboundState::Rejected if out.reservation_id == 0 => {}
                OutboundState::Reserving => {}
                _ => mismatch(
                    DiscrepancyKind::RecordMismatch,
                    format!(
                        "the record is {state} with reservation {} but the ledger holds no \
                         reservation for this UETR",
                        out.reservation_id
                    ),
                ),
            }
            return;
        };
        let t = reserved.transfer();
        if out.reservation_id != t.id.0 {
            mismatch(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the record names reservation {} but the ledger's is {}",
                    out.reservation_id, t.id.0
                ),
            );
        }
        if out.amount_minor != t.amount {
            mismatch(
                DiscrepancyKind::AmountDiffers,
                format!(
                    "the record says {} but the ledger reserved {}",
                    Amount::of(s.currency, out.amount_minor),
                    Amount::of(s.currency, t.amount)
                ),
            );
        }
        if out.debtor_account != t.debit_account_id.0 {
            mismatch(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the record's debtor account is {} but the reservation debits {}",
                    out.debtor_account, t.debit_account_id.0
                ),
            );
        }
        let (ledger_state, agrees, lagging) = match reserved {
            Reserved::Posted(..) => (
                "posted",
                out.state == OutboundState::Settled,
                !out.state.is_final(),
            ),
            Reserved::Voided(_) | Reserved::Expired(_) => (
                "released",
                out.state == OutboundState::Rejected,
                !out.state.is_final(),
            ),
            Reserved::Pending(_) => ("pending", !out.state.is_final(), false),
        };
        if !agrees {
            let kind = if lagging {
                DiscrepancyKind::SenderNotYetResolved
            } else {
                DiscrepancyKind::RecordMismatch
            };
            mismatch(
                kind,
                format!(
                    "the record is {state} but the ledger's reservation {} is {ledger_state}",
                    t.id.0
                ),
            );
        }
    }

    /// The receiver's record agrees with its ledger; a released reservation has no live
    /// decision on the receiver.
    fn check_receiver_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        credit: Option<&Transfer>,
        inb: Option<&InboundRecord>,
    ) {
        let r = self.r;
        let mut flag =
            |kind, detail: String| report.flag(kind, &r.jurisdiction, Some(uetr), detail);
        match (credit, inb.map(|i| i.state)) {
            (Some(c), None) => flag(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the ledger holds credit {} but the payment store has no record (the record \
                     is written before the credit)",
                    c.id.0
                ),
            ),
            (Some(c), Some(InboundState::Accepting)) => flag(
                DiscrepancyKind::ReceiverNotYetRecorded,
                format!(
                    "the ledger holds credit {} but the record is still accepting",
                    c.id.0
                ),
            ),
            (Some(c), Some(state @ (InboundState::Rejected | InboundState::Fenced))) => flag(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the record is {} but the ledger holds credit {} of {}",
                    inbound_state_name(state),
                    c.id.0,
                    Amount::of(r.currency, c.amount)
                ),
            ),
            (Some(c), Some(InboundState::Settled)) => {
                let Some(inb) = inb else { return };
                if inb.credited_minor != c.amount {
                    flag(
                        DiscrepancyKind::AmountDiffers,
                        format!(
                            "the record says {} credited but the ledger credited {}",
                            Amount::of(r.currency, inb.credited_minor),
                            Amount::of(r.currency, c.amount)
                        ),
                    );
                }
                if inb.credit_transfer_id != c.id.0 {
                    flag(
                        DiscrepancyKind::RecordMismatch,
                        format!(
                            "the record names credit transfer {} but the ledger's is {}",
                            inb.credit_transfer_id, c.id.0
                        ),
                    );
                }
            }
            (None, Some(InboundState::Settled)) => flag(
                DiscrepancyKind::RecordMismatch,
                "the record is settled but the ledger holds no credit for this UETR".to_owned(),
            ),
            (None, Some(InboundState::Accepting))
                if matches!(
                    reserved,
                    Some(Reserved::Voided(_) | Reserved::Expired(_)) | None
                ) =>
            {
                flag(
                    DiscrepancyKind::RecordMismatch,
                    format!(
                        "the record is still accepting although {} released the reservation; \
                         it should be rejected or fenced",
                        self.s.jurisdiction
                    ),
                );
            }
            (None, Some(state)) if reserved.is_none() && !self.s.outbound.contains_key(uetr) => {
                flag(
                    DiscrepancyKind::RecordMismatch,
                    format!(
                        "the record is {} but {} has no trace of this payment",
                        inbound_state_name(state),
                        self.s.jurisdiction
                    ),
                );
            }
            (None, _) => {}
        }
    }

    /// Everything that proves a credited payment: the instruction, its quote, the receipt
    /// (both copies), and that they describe the two transfers. Returns the source amount
    /// (what the sender should have posted) for the position.
    fn check_evidence(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        credit: &Transfer,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
    ) -> u128 {
        let (s, r) = (self.s, self.r);
        let reserved_amount = reserved.map(|t| t.transfer().amount);
        let fallback = reserved_amount.unwrap_or(0);
        let settled_at = UnixTime(
            i64::try_from(credit.timestamp.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX),
        );

        // The credit itself.
        let mut wrong = Vec::new();
        if credit.id.0 != transfer_id(b"credit", &uetr.0) {
            wrong.push("its id does not derive from the UETR".to_owned());
        }
        if credit.ledger != u32::from(r.currency.numeric) {
            wrong.push(format!(
                "it is in ledger {}, not {} ({})",
                credit.ledger, r.currency.numeric, r.currency.alpha
            ));
        }
        if !wrong.is_empty() {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &r.jurisdiction,
                Some(uetr),
                format!("credit {}: {}", credit.id.0, wrong.join("; ")),
            );
        }

        // The instruction, as the receiver kept it (else as the sender did).
        let bytes = inb
            .map(|i| i.signed_instruction.as_slice())
            .filter(|b| !b.is_empty())
            .or_else(|| out.map(|o| o.signed_instruction.as_slice()));
        let Some(bytes) = bytes else {
            report.flag(
                DiscrepancyKind::InstructionInvalid,
                &r.jurisdiction,
                Some(uetr),
                "neither node kept the signed instruction".to_owned(),
            );
            return fallback;
        };
        let instr = match pb::Signed::decode(bytes)
            .map_err(|e| e.to_string())
            .and_then(|signed| {
                instruction::decode(&signed)
                    .map(|instr| (signed, instr))
                    .map_err(|r| r.to_string())
            }) {
            Ok(decoded) => decoded,
            Err(error) => {
                report.flag(
                    DiscrepancyKind::InstructionInvalid,
                    &r.jurisdiction,
                    Some(uetr),
                    format!("the stored instruction does not decode: {error}"),
                );
                return fallback;
            }
        };
        let (signed_instr, instr) = instr;
        let sha = hex::encode(instr.payload_sha256);
        self.check_instruction(
            report,
            uetr,
            &signed_instr,
            &instr,
            &sha,
            out,
            inb,
            settled_at,
        );
        if let Some(amount) = reserved_amount
            && amount != instr.amount_minor
        {
            report.flag(
                DiscrepancyKind::AmountDiffers,
                &s.jurisdiction,
                Some(uetr),
                format!(
                    "reserved {} but the instruction's amount is {}",
                    Amount::of(s.currency, amount),
                    Amount::of(instr.currency, instr.amount_minor)
                ),
            );
        }
        if let Some(t) = reserved.map(Reserved::transfer)
            && t.debit_account_id.0 != instr.debtor_account
        {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &s.jurisdiction,
                Some(uetr),
                format!(
                    "the reservation debits account {} but the instruction's debtor account is {}",
                    t.debit_account_id.0, instr.debtor_account
                ),
            );
        }
        if credit.credit_account_id.0 != instr.creditor_account {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &r.jurisdiction,
                Some(uetr),
                format!(
                    "the credit goes to account {} but the instruction's creditor account is {}",
                    credit.credit_account_id.0, instr.creditor_account
                ),
            );
        }
        self.check_quote(report, uetr, &instr, credit, settled_at);
        self.check_receipts(report, uetr, &instr, credit, out, inb, settled_at);
        instr.amount_minor
    }

    /// The instruction is the one both nodes recorded, for this corridor, signed by the
    /// debtor agent under the sender's PKI.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pieces of one payment's evidence"
    )]
    fn check_instruction(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        signed_instr: &pb::Signed,
        instr: &Instruction,
        sha: &str,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
        settled_at: UnixTime,
    ) {
        let (s, r) = (self.s, self.r);
        let mut invalid = |node: &str, detail: String| {
            report.flag(
                DiscrepancyKind::InstructionInvalid,
                node,
                Some(uetr),
                detail,
            );
        };
        if instr.uetr != *uetr {
            invalid(
                &r.jurisdiction,
                format!("the stored instruction carries UETR {}", instr.uetr),
            );
        }
        if instr.currency.alpha != s.currency.alpha {
            invalid(
                &r.jurisdiction,
                format!(
                    "the instruction is in {}, not {}'s currency {}",
                    instr.currency.alpha, s.jurisdiction, s.currency.alpha
                ),
            );
        }
        if let Some(inb) = inb
            && inb.instruction_sha256 != sha
        {
            invalid(
                &r.jurisdiction,
                format!(
                    "the record's instruction SHA-256 is {} but its stored instruction hashes to \
                     {sha}",
                    inb.instruction_sha256
                ),
            );
        }
        if let Some(out) = out
            && out.instruction_sha256 != sha
        {
            invalid(
                &s.jurisdiction,
                format!(
                    "{} recorded instruction SHA-256 {} but {} settled instruction {sha}",
                    s.jurisdiction, out.instruction_sha256, r.jurisdiction
                ),
            );
        }
        match signed::verify(
            signed_instr,
            SIGNING_DOMAIN_INSTRUCTION,
            self.trust,
            &r.jurisdiction,
            Purpose::PaymentSigning,
            settled_at,
            &[],
        ) {
            Ok(signer) => {
                if signer.jurisdiction != s.jurisdiction
                    || signer.subject_cn != instr.debtor_agent_bic
                {
                    invalid(
                        &r.jurisdiction,
                        format!(
                            "the instruction is signed by {} of {}, not by debtor agent {} of {}",
                            signer.subject_cn,
                            signer.jurisdiction,
                            instr.debtor_agent_bic,
                            s.jurisdiction
                        ),
                    );
                }
            }
            Err(rejection) => invalid(
                &r.jurisdiction,
                format!(
                    "the instruction's signature does not verify for {} at {}: {rejection}",
                    r.jurisdiction,
                    settled_at.to_rfc3339()
                ),
            ),
        }
    }

    /// The credit is what the sender's signed quote gives for the instruction's amount.
    fn check_quote(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        instr: &Instruction,
        credit: &Transfer,
        settled_at: UnixTime,
    ) {
        let (s, r) = (self.s, self.r);
        let terms = match quote::verify_quote(
            &instr.quote,
            self.trust,
            &r.jurisdiction,
            settled_at,
            r.clock_skew_secs,
            &[],
        ) {
            Ok((terms, _)) => terms,
            Err(rejection) => {
                report.flag(
                    DiscrepancyKind::InstructionInvalid,
                    &r.jurisdiction,
                    Some(uetr),
                    format!(
                        "the instruction's quote does not verify for {} at {}: {rejection}",
                        r.jurisdiction,
                        settled_at.to_rfc3339()
                    ),
                );
                return;
            }
        };
        if terms.issuing != s.jurisdiction
            || terms.counterparty != r.jurisdiction
            || terms.source.0 != s.currency
            || terms.target.0 != r.currency
        {
            report.flag(
                DiscrepancyKind::InstructionInvalid,
                &r.jurisdiction,
                Some(uetr),
                format!(
                    "the quote is {} {} → {} {}, not {} {} → {} {}",
                    terms.issuing,
                    terms.source.0.alpha,
                    terms.counterparty,
                    terms.target.0.alpha,
                    s.jurisdiction,
                    s.currency.alpha,
                    r.jurisdiction,
                    r.currency.alpha
                ),
            );
            return;
        }
        if terms.source.1 != instr.amount_minor {
            report.flag(
                DiscrepancyKind::AmountDiffers,
                &r.jurisdiction,
                Some(uetr),
                format!(
                    "the instruction's amount is {} but its quote's source is {}",
                    Amount::of(s.currency, instr.amount_minor),
                    Amount::of(s.currency, terms.source.1)
                ),
            );
        }
        if terms.target.1 != credit.amount {
            report.flag(
                DiscrepancyKind::AmountDiffers,
                &r.jurisdiction,
                Some(uetr),
                format!(
                    "credited {} but the quote gives {} for {} at rate {}",
                    Amount::of(r.currency, credit.amount),
                    Amount::of(r.currency, terms.target.1),
                    Amount::of(s.currency, terms.source.1),
                    terms.rate
                ),
            );
        }
    }

    /// The receiver's receipt verifies for the sender and describes the credit; the sender
    /// holds the same receipt and the amount it names.
    #[allow(
        clippy::too_many_arguments,
        reason = "the pieces of one payment's evidence"
    )]
    fn check_receipts(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        instr: &Instruction,
        credit: &Transfer,
        out: Option<&OutboundRecord>,
        inb: Option<&InboundRecord>,
        settled_at: UnixTime,
    ) {
        let (s, r) = (self.s, self.r);
        let receiver_copy = inb.and_then(|i| i.receipt.as_deref());
        let sender_copy = out
            .filter(|o| o.state == OutboundState::Settled)
            .map(|o| o.receipt.as_deref());
        if let (Some(Some(theirs)), Some(ours)) = (sender_copy, receiver_copy)
            && payload(theirs) != payload(ours)
        {
            report.flag(
                DiscrepancyKind::ReceiptInvalid,
                &s.jurisdiction,
                Some(uetr),
                format!(
                    "the receipt {} holds is not the one {} signed",
                    s.jurisdiction, r.jurisdiction
                ),
            );
        }
        if let Some(None) = sender_copy {
            report.flag(
                DiscrepancyKind::ReceiptInvalid,
                &s.jurisdiction,
                Some(uetr),
                "the record is settled but holds no receipt".to_owned(),
            );
        }
        if let Some(out) = out
            && out.state == OutboundState::Settled
            && out.credited_minor != Some(credit.amount)
        {
            report.flag(
                DiscrepancyKind::AmountDiffers,
                &s.jurisdiction,
                Some(uetr),
                format!(
                    "the record says {} credited but {} credited {}",
                    out.credited_minor.map_or_else(
                        || "nothing".to_owned(),
                        |m| Amount::of(r.currency, m).to_string()
                    ),
                    r.jurisdiction,
                    Amount::of(r.currency, credit.amount)
                ),
            );
        }
        if receiver_copy.is_none() && inb.is_some_and(|i| i.state == InboundState::Settled) {
            report.flag(
                DiscrepancyKind::ReceiptInvalid,
                &r.jurisdiction,
                Some(uetr),
                "the record is settled but holds no receipt".to_owned(),
            );
        }
        // Verify the receiver's copy, or the sender's when the receiver kept none.
        let (node, bytes) = match (receiver_copy, sender_copy.flatten()) {
            (Some(bytes), _) => (r, bytes),
            (None, Some(bytes)) => (s, bytes),
            (None, None) => return,
        };
        let mut invalid = |detail: String| {
            report.flag(
                DiscrepancyKind::ReceiptInvalid,
                &node.jurisdiction,
                Some(uetr),
                detail,
            );
        };
        let signed = match pb::Signed::decode(bytes) {
            Ok(signed) => signed,
            Err(e) => return invalid(format!("the stored receipt does not decode: {e}")),
        };
        let receipt =
            match receipt::verify_receipt(&signed, self.trust, &s.jurisdiction, settled_at) {
                Ok((receipt, _)) => receipt,
                Err(rejection) => {
                    return invalid(format!(
                        "the receipt does not verify for {} at {}: {rejection}",
                        s.jurisdiction,
                        settled_at.to_rfc3339()
                    ));
                }
            };
        let mut differs = Vec::new();
        if receipt.uetr != uetr.to_string() {
            differs.push(format!("UETR {}", receipt.uetr));
        }
        if receipt.instruction_sha256 != instr.payload_sha256 {
            differs.push(format!(
                "instruction SHA-256 {}",
                hex::encode(&receipt.instruction_sha256)
            ));
        }
        if receipt.receiving_jurisdiction != r.jurisdiction
            || receipt.sending_jurisdiction != s.jurisdiction
        {
            differs.push(format!(
                "corridor {} → {}",
                receipt.sending_jurisdiction, receipt.receiving_jurisdiction
            ));
        }
        if receipt.ledger_transfer_id != credit.id.0.to_string() {
            differs.push(format!("ledger transfer {}", receipt.ledger_transfer_id));
        }
        if receipt.creditor_account != credit.credit_account_id.0.to_string() {
            differs.push(format!("creditor account {}", receipt.creditor_account));
        }
        let settled_text = receipt
            .settled_at
            .as_ref()
            .and_then(|t| instruction::unix_time("settled_at", Some(t)).ok());
        if settled_text != Some(settled_at) {
            differs.push("settlement time (not the credit's ledger time)".to_owned());
        }
        if !differs.is_empty() {
            invalid(format!(
                "the receipt names {} instead of this payment's",
                differs.join(", ")
            ));
        }
        let credited = receipt
            .credited_amount
            .as_ref()
            .and_then(|a| money::parse_amount(a).ok());
        if credited != Some((r.currency, credit.amount)) {
            report.flag(
                DiscrepancyKind::AmountDiffers,
                &node.jurisdiction,
                Some(uetr),
                format!(
                    "the receipt says {} credited but the ledger credited {}",
                    credited.map_or_else(
                        || "nothing".to_owned(),
                        |(c, m)| Amount::of(c, m).to_string()
                    ),
                    Amount::of(r.currency, credit.amount)
                ),
            );
        }
    }

    /// The balances of the corridor and liquidity accounts against the payments' sums.
    fn position(&self, report: &mut PairReport, sums: &Sums) -> Position {
        let (s, r) = (self.s, self.r);
        let corridor = s
            .accounts
            .get(&s.corridor_account)
            .cloned()
            .unwrap_or_default();
        let liquidity = r
            .accounts
            .get(&r.liquidity_account)
            .cloned()
            .unwrap_or_default();
        let mut reconciled = true;
        let unresolved = sums.unresolved_source.0.filter(|gap| *gap > 0);
        let checks = [
            (
                s,
                Some(corridor.credits_posted),
                sums.settled_source.0,
                unresolved,
                format!("corridor account {} posted credits", s.corridor_account),
                format!(
                    "the source amounts of the payments {} settled",
                    r.jurisdiction
                ),
            ),
            (
                s,
                Some(corridor.credits_pending),
                sums.reserved_in_doubt.0,
                None,
                format!("corridor account {} pending credits", s.corridor_account),
                "the reservations still pending".to_owned(),
            ),
            (
                r,
                Some(liquidity.debits_posted),
                sums.settled_target.0,
                None,
                format!("liquidity account {} posted debits", r.liquidity_account),
                format!(
                    "the amounts {} credited for {}",
                    r.jurisdiction, s.jurisdiction
                ),
            ),
        ];
        for (node, balance, sum, repairable_gap, what, against) in checks {
            if balance != sum || sum.is_none() {
                reconciled = false;
                let show = |v: Option<u128>| {
                    v.map_or_else(
                        || "more than 2^128 minor units".to_owned(),
                        |m| Amount::of(node.currency, m).to_string(),
                    )
                };
                // A gap made only of payments the sender has not yet posted closes when its
                // recovery posts them.
                let repairable = matches!(
                    (balance, repairable_gap, sum),
                    (Some(b), Some(gap), Some(total)) if b.checked_add(gap) == Some(total)
                );
                let mut detail = format!(
                    "{} → {}: {what} are {} but {against} sum to {}",
                    s.jurisdiction,
                    r.jurisdiction,
                    show(balance),
                    show(sum)
                );
                if repairable {
                    detail.push_str(&format!(
                        "; the difference is what {} has not yet posted for payments {} settled",
                        s.jurisdiction, r.jurisdiction
                    ));
                }
                report.flag_as(
                    DiscrepancyKind::PositionDiffers,
                    &node.jurisdiction,
                    None,
                    detail,
                    repairable,
                );
            }
        }
        let amount_s = |m: Option<u128>| Amount::of(s.currency, m.unwrap_or(u128::MAX));
        let amount_r = |m: Option<u128>| Amount::of(r.currency, m.unwrap_or(u128::MAX));
        Position {
            corridor_account: s.corridor_account.to_string(),
            corridor_posted: amount_s(Some(corridor.credits_posted)),
            settled_source: amount_s(sums.settled_source.0),
            corridor_pending: amount_s(Some(corridor.credits_pending)),
            reserved_in_doubt: amount_s(sums.reserved_in_doubt.0),
            liquidity_account: r.liquidity_account.to_string(),
            liquidity_debited: amount_r(Some(liquidity.debits_posted)),
            settled_target: amount_r(sums.settled_target.0),
            liquidity_funded: amount_r(Some(liquidity.credits_posted)),
            reconciled,
        }
    }
}

/// Inserts `value` for `uetr`; when the UETR is already there, keeps the transfer whose id
/// derives from the UETR for `step` (the one the protocol made) and returns the other's id.
fn keep_derived<T: Copy>(
    map: &mut BTreeMap<Uetr, T>,
    uetr: Uetr,
    value: T,
    step: &[u8],
    id: impl Fn(T) -> TransferId,
) -> Option<TransferId> {
    let Some(&existing) = map.get(&uetr) else {
        map.insert(uetr, value);
        return None;
    };
    if id(value).0 == transfer_id(step, &uetr.0) {
        map.insert(uetr, value);
        Some(id(existing))
    } else {
        Some(id(value))
    }
}

/// How one payment stands across the pair.
enum Outcome {
    Settled,
    Rejected,
    InDoubt,
    Inconsistent,
}

/// The payload of an encoded `Signed`, or the bytes themselves when they do not decode (so
/// two undecodable copies still compare).
fn payload(bytes: &[u8]) -> Vec<u8> {
    pb::Signed::decode(bytes).map_or_else(|_| bytes.to_vec(), |signed| signed.payload)
}

fn outbound_state_name(state: OutboundState) -> &'static str {
    match state {
        OutboundState::Reserving => "reserving",
        OutboundState::Forwarded => "forwarded",
        OutboundState::Settled => "settled",
        OutboundState::Rejected => "rejected",
    }
}

fn inbound_state_name(state: InboundState) -> &'static str {
    match state {
        InboundState::Accepting => "accepting",
        InboundState::Settled => "settled",
        InboundState::Rejected => "rejected",
        InboundState::Fenced => "fenced",
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use kakehashi_ledger::{Ledger, NewAccount, NewTransfer, Options};

    use super::*;
    use crate::test_support::{at_2027, certs, chain, key, mra};
    use kakehashi_node::store::Write;
    use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
    use kakehashi_protocol::money::Rate;
    use kakehashi_protocol::quote::{QuoteAsk, QuoteIssuer, QuoteOffer};

    /// One end of the test corridor, as the committed dev PKI and devnet configs have it.
    struct Side {
        code: &'static str,
        dir: &'static str,
        currency: &'static str,
        bank: &'static str,
        customer: u128,
        corridor: u128,
        liquidity: u128,
        mid_to_peer: &'static str,
    }

    const JP: Side = Side {
        code: "JP",
        dir: "jp",
        currency: "JPY",
        bank: "KKHAJPJ0",
        customer: 1001,
        corridor: 9002,
        liquidity: 9003,
        mid_to_peer: "0.0087",
    };

    const SG: Side = Side {
        code: "SG",
        dir: "sg",
        currency: "SGD",
        bank: "KKHASGS0",
        customer: 2001,
        corridor: 9102,
        liquidity: 9103,
        mid_to_peer: "114.9",
    };

    /// Funds in each liquidity account before any payment.
    const FUNDED: u128 = 1_000_000_000;

    fn currency(side: &Side) -> &'static Currency {
        money::currency(side.currency).expect("known currency")
    }

    fn books(side: &Side, peer: &Side) -> NodeBooks {
        let numeric = u32::from(currency(side).numeric);
        let mut accounts = BTreeMap::new();
        accounts.insert(
            side.corridor,
            AccountView {
                ledger: numeric,
                code: AccountKind::Corridor.ledger_code(),
                ..AccountView::default()
            },
        );
        accounts.insert(
            side.liquidity,
            AccountView {
                ledger: numeric,
                code: AccountKind::Liquidity.ledger_code(),
                credits_posted: FUNDED,
                ..AccountView::default()
            },
        );
        NodeBooks {
            jurisdiction: side.code.to_owned(),
            currency: currency(side),
            data_dir: PathBuf::from(side.dir),
            peer: peer.code.to_owned(),
            corridor_account: side.corridor,
            liquidity_account: side.liquidity,
            clock_skew_secs: 30,
            accounts,
            transfers: vec![Booked {
                transfer: Transfer {
                    id: TransferId(transfer_id(b"genesis", &side.liquidity.to_be_bytes())),
                    debit_account_id: AccountId(1),
                    credit_account_id: AccountId(side.liquidity),
                    amount: FUNDED,
                    ledger: numeric,
                    code: codes::GENESIS,
                    ..transfer()
                },
                status: None,
            }],
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            ledger_audit: None,
        }
    }

    fn transfer() -> Transfer {
        Transfer {
            id: TransferId(0),
            debit_account_id: AccountId(0),
            credit_account_id: AccountId(0),
            amount: 0,
            pending_id: TransferId(0),
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timeout: 0,
            ledger: 0,
            code: 0,
            flags: TransferFlags::NONE,
            timestamp: Timestamp(0),
        }
    }

    /// A version-4 UETR made from `n`.
    fn uetr(n: u8) -> Uetr {
        let mut bytes = [n; 16];
        bytes[6] = 0x40 | (n & 0x0f);
        bytes[8] = 0x80 | (n & 0x3f);
        Uetr(bytes)
    }

    /// The pair's books and the payments in them, in the state the protocol leaves them.
    struct Fixture {
        jp: NodeBooks,
        sg: NodeBooks,
        mra: Mra,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                jp: books(&JP, &SG),
                sg: books(&SG, &JP),
                mra: mra(),
            }
        }

        fn books_mut(&mut self, side: &Side) -> &mut NodeBooks {
            if side.code == "JP" {
                &mut self.jp
            } else {
                &mut self.sg
            }
        }

        /// Sends `amount` (minor units) from `from` to `to` and settles it on both books,
        /// with a real signed quote, instruction and receipt. Returns the UETR and the
        /// amount credited.
        fn settle(&mut self, from: &Side, to: &Side, n: u8, amount: u128) -> (Uetr, u128) {
            let id = uetr(n);
            let t = at_2027();
            let issuer = QuoteIssuer {
                jurisdiction: from.code.to_owned(),
                key: key(&format!("{}/node/receipt.key.pem", from.dir)),
                chain: chain(&format!("{}/node/receipt.pem", from.dir)),
                ttl_secs: 60,
            };
            let quote = issuer
                .issue(
                    &QuoteOffer {
                        counterparty: to.code,
                        source: (currency(from), amount),
                        target_currency: currency(to),
                        mid: Rate::parse(from.mid_to_peer).expect("rate"),
                        spread_bps: 25,
                    },
                    t,
                    format!("Q-{n}"),
                )
                .expect("quote");
            let asked = QuoteAsk {
                source: (currency(from), amount),
                counterparty: to.code.to_owned(),
                target_currency: currency(to),
            };
            let quote = quote::verify_quote_for(quote, &asked, &self.mra, from.code, t, 30)
                .expect("quote verifies");
            let target = quote.terms().target.1;
            let bank = Bank::load(
                &certs(&format!("{}/banks/{}.pem", from.dir, from.bank)),
                &certs(&format!("{}/banks/{}.key.pem", from.dir, from.bank)),
            )
            .expect("bank");
            let order = Order {
                debtor_account: from.customer,
                debtor_name: "Debtor".into(),
                creditor_agent_bic: to.bank.into(),
                creditor_account: to.customer,
                creditor_name: "Creditor".into(),
                remittance_information: String::new(),
            };
            let options = InstructionOptions::default();
            let signed_instr = bank::instruction(&bank, &order, &quote, id, t, &options);
            let instr = instruction::decode(&signed_instr).expect("decodes");
            let stamp = Timestamp::from_unix_nanos(
                u64::try_from(t.0).expect("positive") * 1_000_000_000 + u64::from(n),
            );
            let reservation = Transfer {
                id: TransferId(transfer_id(b"reserve", &id.0)),
                debit_account_id: AccountId(from.customer),
                credit_account_id: AccountId(from.corridor),
                amount,
                user_data_128: u128::from_be_bytes(id.0),
                ledger: u32::from(currency(from).numeric),
                code: codes::OUTBOUND,
                flags: TransferFlags::PENDING,
                timestamp: stamp,
                ..transfer()
            };
            let post = Transfer {
                id: TransferId(transfer_id(b"post", &id.0)),
                pending_id: reservation.id,
                flags: TransferFlags::POST_PENDING_TRANSFER,
                ..reservation
            };
            let credit = Transfer {
                id: TransferId(transfer_id(b"credit", &id.0)),
                debit_account_id: AccountId(to.liquidity),
                credit_account_id: AccountId(to.customer),
                amount: target,
                user_data_128: u128::from_be_bytes(id.0),
                ledger: u32::from(currency(to).numeric),
                code: codes::INBOUND,
                timestamp: stamp,
                ..transfer()
            };
            let receipt = receipt::build_receipt(
                &instr,
                to.code,
                from.code,
                (currency(to), target),
                credit.id.0,
                t,
            );
            let signed_receipt = receipt::sign_receipt(
                &receipt,
                &key(&format!("{}/node/receipt.key.pem", to.dir)),
                &chain(&format!("{}/node/receipt.pem", to.dir)),
            )
            .encode_to_vec();
            let sha = hex::encode(instr.payload_sha256);
            let sender = self.books_mut(from);
            sender.transfers.push(Booked {
                transfer: reservation,
                status: Some(PendingStatus::Posted),
            });
            sender.transfers.push(Booked {
                transfer: post,
                status: None,
            });
            sender.outbound.insert(
                id,
                OutboundRecord {
                    state: OutboundState::Settled,
                    signed_instruction: signed_instr.encode_to_vec(),
                    instruction_sha256: sha.clone(),
                    peer: to.code.into(),
                    end_to_end_id: instr.end_to_end_id.clone(),
                    debtor_account: from.customer,
                    amount_minor: amount,
                    reservation_id: reservation.id.0,
                    reason_code: None,
                    reason_detail: None,
                    decided_by: Some(to.code.into()),
                    receipt: Some(signed_receipt.clone()),
                    credited_minor: Some(target),
                    created_at: 1,
                    updated_at: 1,
                },
            );
            let corridor = sender.accounts.get_mut(&from.corridor).expect("corridor");
            corridor.credits_posted += amount;
            let receiver = self.books_mut(to);
            receiver.transfers.push(Booked {
                transfer: credit,
                status: None,
            });
            receiver.inbound.insert(
                id,
                InboundRecord {
                    state: InboundState::Settled,
                    instruction_sha256: sha,
                    sender: from.code.into(),
                    reason_code: None,
                    reason_detail: None,
                    receipt: Some(signed_receipt),
                    creditor_account: to.customer,
                    credited_minor: target,
                    credit_transfer_id: credit.id.0,
                    signed_instruction: signed_instr.encode_to_vec(),
                    updated_at: 1,
                },
            );
            let liquidity = receiver.accounts.get_mut(&to.liquidity).expect("liquidity");
            liquidity.debits_posted += target;
            (id, target)
        }

        fn audit(&self) -> PairReport {
            audit_pair(&self.jp, &self.sg, &self.mra)
        }
    }

    fn kinds(report: &PairReport, uetr: &Uetr) -> Vec<DiscrepancyKind> {
        let text = uetr.to_string();
        report
            .discrepancies
            .iter()
            .filter(|d| d.uetr.as_deref() == Some(text.as_str()))
            .map(|d| d.kind)
            .collect()
    }

    fn has(report: &PairReport, kind: DiscrepancyKind) -> bool {
        report.discrepancies.iter().any(|d| d.kind == kind)
    }

    fn remove_transfer(books: &mut NodeBooks, id: u128) {
        let before = books.transfers.len();
        books.transfers.retain(|b| b.transfer.id.0 != id);
        assert_eq!(books.transfers.len(), before - 1, "transfer {id} was there");
    }

    #[test]
    fn settled_payments_both_ways_agree_and_reconcile() {
        let mut f = Fixture::new();
        let (_, to_sg) = f.settle(&JP, &SG, 1, 100_000);
        f.settle(&JP, &SG, 2, 2_500);
        let (_, to_jp) = f.settle(&SG, &JP, 3, 12_345);
        let report = f.audit();
        assert!(report.agrees(), "{:#?}", report.discrepancies);
        let [jp_sg, sg_jp] = &report.directions[..] else {
            panic!("two directions: {:?}", report.directions)
        };
        assert_eq!(
            (jp_sg.sender.as_str(), jp_sg.receiver.as_str()),
            ("JP", "SG")
        );
        assert_eq!((jp_sg.settled, jp_sg.rejected, jp_sg.in_doubt), (2, 0, 0));
        assert_eq!((sg_jp.settled, sg_jp.rejected, sg_jp.in_doubt), (1, 0, 0));
        assert!(jp_sg.position.reconciled && sg_jp.position.reconciled);
        assert_eq!(jp_sg.position.corridor_posted.to_string(), "102500 JPY");
        assert_eq!(
            jp_sg.position.settled_source,
            jp_sg.position.corridor_posted
        );
        assert_ne!(to_sg, 0);
        assert_eq!(sg_jp.position.corridor_posted.to_string(), "123.45 SGD");
        assert_eq!(
            sg_jp.position.liquidity_debited,
            Amount::of(currency(&JP), to_jp)
        );
        assert!(report.in_doubt.is_empty());
    }

    #[test]
    fn a_posted_reservation_without_the_receivers_credit_is_a_missing_credit() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.sg, transfer_id(b"credit", &id.0));
        f.sg.inbound.remove(&id);
        let report = f.audit();
        assert!(!report.agrees());
        assert_eq!(kinds(&report, &id), [DiscrepancyKind::MissingCredit]);
        // The books no longer reconcile either: JP owes for a payment SG never paid out.
        assert!(has(&report, DiscrepancyKind::PositionDiffers));
        assert_eq!(report.directions[0].inconsistent, 1);
    }

    #[test]
    fn a_credit_that_differs_from_the_quote_and_receipt_is_an_amount_difference() {
        let mut f = Fixture::new();
        let (id, target) = f.settle(&JP, &SG, 1, 100_000);
        let credit_id = transfer_id(b"credit", &id.0);
        for booked in &mut f.sg.transfers {
            if booked.transfer.id.0 == credit_id {
                booked.transfer.amount = target + 1;
            }
        }
        let report = f.audit();
        let found = kinds(&report, &id);
        assert!(found.contains(&DiscrepancyKind::AmountDiffers), "{found:?}");
        let detail = report
            .discrepancies
            .iter()
            .find(|d| d.detail.contains("the quote gives"))
            .expect("the quote comparison is reported");
        assert_eq!(detail.node, "SG");
        assert!(has(&report, DiscrepancyKind::PositionDiffers));
    }

    #[test]
    fn a_credit_without_any_reservation_is_an_orphan() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.jp, transfer_id(b"reserve", &id.0));
        remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
        f.jp.outbound.remove(&id);
        let report = f.audit();
        assert!(
            kinds(&report, &id).contains(&DiscrepancyKind::CreditWithoutReservation),
            "{:#?}",
            report.discrepancies
        );
    }

    #[test]
    fn an_extra_credit_carrying_a_settled_uetr_is_found() {
        let mut f = Fixture::new();
        let (id, target) = f.settle(&JP, &SG, 1, 100_000);
        f.sg.transfers.push(Booked {
            transfer: Transfer {
                id: TransferId(77),
                debit_account_id: AccountId(SG.liquidity),
                credit_account_id: AccountId(SG.customer),
                amount: target,
                user_data_128: u128::from_be_bytes(id.0),
                ledger: 702,
                code: codes::INBOUND,
                ..transfer()
            },
            status: None,
        });
        // Whatever the order the ledger lists them in, the protocol's credit is the one kept.
        f.sg.transfers.rotate_right(1);
        f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted += target;
        let report = f.audit();
        assert_eq!(kinds(&report, &id), [DiscrepancyKind::BookingWrong]);
        assert!(
            report.discrepancies[0]
                .detail
                .contains("credit 77 also carries")
        );
        // SG paid out twice for one payment: the liquidity position is off by one credit.
        assert!(has(&report, DiscrepancyKind::PositionDiffers));
    }

    #[test]
    fn a_receipt_whose_signature_was_altered_is_unverifiable() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        let tamper = |bytes: &mut Vec<u8>| {
            let mut signed = pb::Signed::decode(bytes.as_slice()).expect("decodes");
            signed.signature[0] ^= 1;
            *bytes = signed.encode_to_vec();
        };
        tamper(f.sg.inbound.get_mut(&id).unwrap().receipt.as_mut().unwrap());
        tamper(
            f.jp.outbound
                .get_mut(&id)
                .unwrap()
                .receipt
                .as_mut()
                .unwrap(),
        );
        let report = f.audit();
        assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
        assert!(report.discrepancies[0].detail.contains("does not verify"));
        // The payment still settled on both ledgers.
        assert_eq!(report.directions[0].settled, 1);
    }

    #[test]
    fn a_settled_record_without_its_receipt_is_found_even_when_the_sender_holds_one() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        f.sg.inbound.get_mut(&id).unwrap().receipt = None;
        let report = f.audit();
        assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
        assert_eq!(report.discrepancies[0].node, "SG");
    }

    #[test]
    fn a_sender_copy_of_the_receipt_that_differs_is_found() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        let (other, _) = f.settle(&JP, &SG, 2, 5_000);
        let wrong = f.jp.outbound[&other].receipt.clone();
        f.jp.outbound.get_mut(&id).unwrap().receipt = wrong;
        let report = f.audit();
        assert_eq!(kinds(&report, &id), [DiscrepancyKind::ReceiptInvalid]);
    }

    #[test]
    fn a_pending_reservation_the_receiver_settled_is_sender_not_yet_resolved() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
        for booked in &mut f.jp.transfers {
            if booked.transfer.id.0 == transfer_id(b"reserve", &id.0) {
                booked.status = Some(PendingStatus::Pending);
            }
        }
        let record = f.jp.outbound.get_mut(&id).unwrap();
        record.state = OutboundState::Forwarded;
        record.receipt = None;
        record.credited_minor = None;
        let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
        corridor.credits_posted -= 100_000;
        corridor.credits_pending += 100_000;
        let report = f.audit();
        let found = kinds(&report, &id);
        assert_eq!(
            found,
            [DiscrepancyKind::SenderNotYetResolved],
            "{report:#?}"
        );
        assert!(report.discrepancies[0].repaired_by_recovery);
        assert!(
            report.in_doubt.is_empty(),
            "settled by the receiver: not merely in doubt"
        );
    }

    #[test]
    fn a_pending_reservation_without_a_credit_is_in_doubt_and_not_a_discrepancy() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
        remove_transfer(&mut f.sg, transfer_id(b"credit", &id.0));
        f.sg.inbound.remove(&id);
        f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted = 0;
        let record = f.jp.outbound.get_mut(&id).unwrap();
        record.state = OutboundState::Forwarded;
        record.receipt = None;
        let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
        corridor.credits_posted = 0;
        corridor.credits_pending = 100_000;
        let report = f.audit();
        assert!(report.agrees(), "{:#?}", report.discrepancies);
        assert_eq!(report.directions[0].in_doubt, 1);
        assert_eq!(report.in_doubt.len(), 1);
        assert_eq!(report.in_doubt[0].uetr, id.to_string());
        assert_eq!(report.in_doubt[0].reserved.to_string(), "100000 JPY");
        assert_eq!(
            report.in_doubt[0].sender_record.as_deref(),
            Some("forwarded")
        );
    }

    #[test]
    fn a_crash_between_credit_and_record_on_both_sides_is_reported_as_repairable() {
        // The receiver credited and crashed before recording the decision; the sender's
        // reservation is still pending: exactly what the next status query and recovery fix.
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
        let record = f.jp.outbound.get_mut(&id).unwrap();
        record.state = OutboundState::Forwarded;
        record.receipt = None;
        record.credited_minor = None;
        let corridor = f.jp.accounts.get_mut(&JP.corridor).unwrap();
        corridor.credits_posted = 0;
        corridor.credits_pending = 100_000;
        let inbound = f.sg.inbound.get_mut(&id).unwrap();
        inbound.state = InboundState::Accepting;
        inbound.receipt = None;
        let report = f.audit();
        let mut found = kinds(&report, &id);
        found.sort();
        assert_eq!(
            found,
            [
                DiscrepancyKind::ReceiverNotYetRecorded,
                DiscrepancyKind::SenderNotYetResolved
            ],
            "{report:#?}"
        );
        // Including the corridor position, short by exactly the unposted payment.
        assert!(has(&report, DiscrepancyKind::PositionDiffers));
        assert!(
            report.discrepancies.iter().all(|d| d.repaired_by_recovery),
            "{report:#?}"
        );
    }

    #[test]
    fn a_sender_that_stopped_before_reserving_is_in_doubt() {
        let mut f = Fixture::new();
        let (id, target) = f.settle(&JP, &SG, 1, 100_000);
        remove_transfer(&mut f.jp, transfer_id(b"reserve", &id.0));
        remove_transfer(&mut f.jp, transfer_id(b"post", &id.0));
        remove_transfer(&mut f.sg, transfer_id(b"credit", &id.0));
        f.sg.inbound.remove(&id);
        f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted = 0;
        f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted -= target;
        let record = f.jp.outbound.get_mut(&id).unwrap();
        record.state = OutboundState::Reserving;
        record.receipt = None;
        record.credited_minor = None;
        let report = f.audit();
        assert!(report.agrees(), "{:#?}", report.discrepancies);
        assert_eq!(report.in_doubt.len(), 1);
        assert_eq!(report.in_doubt[0].reserved.to_string(), "0 JPY");
        assert_eq!(
            report.in_doubt[0].sender_record.as_deref(),
            Some("reserving")
        );
    }

    /// Turns the settled payment `id` of JP → SG into one JP voided, SG having `inbound`.
    fn void(f: &mut Fixture, id: Uetr, amount: u128) {
        let post = transfer_id(b"post", &id.0);
        for booked in &mut f.jp.transfers {
            if booked.transfer.id.0 == post {
                booked.transfer.id = TransferId(transfer_id(b"void", &id.0));
                booked.transfer.flags = TransferFlags::VOID_PENDING_TRANSFER;
            }
        }
        let record = f.jp.outbound.get_mut(&id).unwrap();
        record.state = OutboundState::Rejected;
        record.receipt = None;
        record.credited_minor = None;
        f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted -= amount;
    }

    #[test]
    fn a_voided_reservation_the_receiver_credited_is_credited_but_voided() {
        let mut f = Fixture::new();
        let (id, _) = f.settle(&JP, &SG, 1, 100_000);
        void(&mut f, id, 100_000);
        let report = f.audit();
        assert!(
            kinds(&report, &id).contains(&DiscrepancyKind::CreditedButVoided),
            "{:#?}",
            report.discrepancies
        );
    }

    #[test]
    fn a_voided_reservation_the_receiver_fenced_is_a_clean_rejection() {
        let mut f = Fixture::new();
        let (id, target) = f.settle(&JP, &SG, 1, 100_000);
        void(&mut f, id, 100_000);
        remove_transfer(&mut f.sg, transfer_id(b"credit", &id.0));
        f.sg.accounts.get_mut(&SG.liquidity).unwrap().debits_posted -= target;
        let record = f.sg.inbound.get_mut(&id).unwrap();
        record.state = InboundState::Fenced;
        record.receipt = None;
        let report = f.audit();
        assert!(report.agrees(), "{:#?}", report.discrepancies);
        assert_eq!(report.directions[0].rejected, 1);
        // But a receiver still accepting it could yet credit: that is flagged.
        f.sg.inbound.get_mut(&id).unwrap().state = InboundState::Accepting;
        assert_eq!(kinds(&f.audit(), &id), [DiscrepancyKind::RecordMismatch]);
    }

    #[test]
    fn a_transfer_into_the_corridor_that_is_no_reservation_is_unexplained() {
        let mut f = Fixture::new();
        f.settle(&JP, &SG, 1, 100_000);
        f.jp.transfers.push(Booked {
            transfer: Transfer {
                id: TransferId(5),
                debit_account_id: AccountId(JP.customer),
                credit_account_id: AccountId(JP.corridor),
                amount: 10,
                ledger: 392,
                code: codes::FUNDING,
                ..transfer()
            },
            status: None,
        });
        f.jp.accounts.get_mut(&JP.corridor).unwrap().credits_posted += 10;
        let report = f.audit();
        assert!(has(&report, DiscrepancyKind::UnexplainedMovement));
        assert!(has(&report, DiscrepancyKind::PositionDiffers));
    }

    #[test]
    fn a_corridor_account_in_the_wrong_currency_is_a_booking_error() {
        let mut f = Fixture::new();
        f.jp.accounts.get_mut(&JP.corridor).unwrap().ledger = 702;
        let report = f.audit();
        assert!(has(&report, DiscrepancyKind::BookingWrong));
    }

    #[test]
    fn the_export_reader_joins_lines_split_across_writes_and_keeps_the_corridor() {
        let mut reader = ExportReader::new([9002, 9003]);
        let account = r#"{"type":"account","id":"9002","ledger":392,"code":2,"flags":[],"debits_pending":"0","debits_posted":"0","credits_pending":"5","credits_posted":"7","user_data_128":"0","user_data_64":0,"user_data_32":0,"timestamp":1}"#;
        let other = account.replace("\"9002\"", "\"1001\"");
        let transfer = r#"{"type":"transfer","id":"11","debit_account_id":"1001","credit_account_id":"9002","amount":"5","pending_id":"0","ledger":392,"code":201,"flags":["pending"],"timeout":0,"user_data_128":"42","user_data_64":0,"user_data_32":0,"timestamp":3,"pending_status":"pending"}"#;
        let text = format!("{account}\n{other}\n{transfer}\n");
        let (head, tail) = text.as_bytes().split_at(100);
        reader.write_all(head).unwrap();
        reader.write_all(tail).unwrap();
        assert_eq!(reader.accounts.len(), 1);
        assert_eq!(reader.accounts[&9002].credits_posted, 7);
        assert_eq!(reader.transfers.len(), 1);
        let booked = &reader.transfers[0];
        assert_eq!(booked.transfer.user_data_128, 42);
        assert!(booked.transfer.flags.contains(TransferFlags::PENDING));
        assert_eq!(booked.status, Some(PendingStatus::Pending));
    }

    #[test]
    fn the_export_reader_refuses_unknown_flags_and_runaway_lines() {
        let mut reader = ExportReader::new([1, 2]);
        let bad = r#"{"type":"transfer","id":"11","debit_account_id":"1","credit_account_id":"2","amount":"5","pending_id":"0","ledger":392,"code":201,"flags":["sideways"],"timeout":0,"user_data_128":"0","user_data_64":0,"user_data_32":0,"timestamp":3,"pending_status":null}"#;
        assert!(reader.write_all(format!("{bad}\n").as_bytes()).is_err());
        assert_eq!(reader.error.as_ref().map(|e| e.0), Some(1));
        let mut reader = ExportReader::new([1, 2]);
        assert!(
            reader
                .write_all(&vec![b' '; EXPORT_LINE_LEN_MAX + 1])
                .is_err()
        );
    }

    /// A JP node's data directory with a ledger and a store, written through the real APIs.
    fn jp_data_dir() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&certs("../crates/node/devnet/jp.toml"))
            .expect("devnet config")
            .with_data_dir(dir.path());
        let ledger = Ledger::open(
            &dir.path().join("ledger"),
            key("jp/node/receipt.key.pem"),
            Options::default(),
        )
        .unwrap();
        let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
        let accounts = [(1001, 1), (9001, 4), (9002, 2), (9003, 3)].map(|(id, code)| NewAccount {
            id: AccountId(id),
            ledger: 392,
            code,
            ..NewAccount::default()
        });
        assert!(
            ledger
                .create_accounts(&accounts, now)
                .unwrap()
                .iter()
                .all(|r| r.is_recorded())
        );
        let id = uetr(9);
        let transfers = [
            NewTransfer {
                id: TransferId(1),
                debit_account_id: AccountId(9001),
                credit_account_id: AccountId(1001),
                amount: 500,
                ledger: 392,
                code: codes::GENESIS,
                ..NewTransfer::default()
            },
            NewTransfer {
                id: TransferId(transfer_id(b"reserve", &id.0)),
                debit_account_id: AccountId(1001),
                credit_account_id: AccountId(9002),
                amount: 200,
                user_data_128: u128::from_be_bytes(id.0),
                ledger: 392,
                code: codes::OUTBOUND,
                flags: TransferFlags::PENDING,
                ..NewTransfer::default()
            },
        ];
        assert!(
            ledger
                .create_transfers(&transfers, now)
                .unwrap()
                .iter()
                .all(|r| r.is_recorded())
        );
        ledger.close().unwrap();
        (dir, config)
    }

    #[tokio::test]
    async fn load_reads_the_corridor_from_the_ledger_and_store_and_runs_the_ledger_audit() {
        let (dir, config) = jp_data_dir();
        let id = uetr(9);
        {
            let store = Store::open(&dir.path().join("node")).unwrap();
            let record = OutboundRecord {
                state: OutboundState::Forwarded,
                signed_instruction: vec![1],
                instruction_sha256: "ab".into(),
                peer: "SG".into(),
                end_to_end_id: "E2E".into(),
                debtor_account: 1001,
                amount_minor: 200,
                reservation_id: transfer_id(b"reserve", &id.0),
                reason_code: None,
                reason_detail: None,
                decided_by: None,
                receipt: None,
                credited_minor: None,
                created_at: 1,
                updated_at: 1,
            };
            store.put(vec![Write::Outbound(id, record)]).await.unwrap();
            // While a node holds the store, loading refuses with what to do.
            let held = NodeBooks::load(&config, "SG", &mra()).unwrap_err();
            assert!(held.to_string().contains("stop the node"), "{held}");
        }
        // The writer thread releases the database once its queue closes.
        let books = loop {
            match NodeBooks::load(&config, "SG", &mra()) {
                Ok(books) => break books,
                Err(PairAuditError::Store { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(other) => panic!("{other}"),
            }
        };
        assert_eq!(books.currency.alpha, "JPY");
        assert_eq!(books.outbound.len(), 1);
        assert_eq!(books.accounts[&9002].credits_pending, 200);
        // The genesis transfer touches neither the corridor nor the liquidity account.
        assert_eq!(books.transfers.len(), 1);
        assert_eq!(books.transfers[0].status, Some(PendingStatus::Pending));
        let audit = books.ledger_audit.as_ref().expect("ran");
        assert!(audit.is_clean(), "{:?}", audit.discrepancies);
        assert!(matches!(
            NodeBooks::load(&config, "TH", &mra()),
            Err(PairAuditError::NotAPair(_))
        ));
    }

    #[test]
    fn load_of_a_directory_without_a_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load(&certs("../crates/node/devnet/jp.toml"))
            .unwrap()
            .with_data_dir(dir.path());
        let error = NodeBooks::load(&config, "SG", &mra()).unwrap_err();
        assert!(error.to_string().contains("no payment store"), "{error}");
    }
}
