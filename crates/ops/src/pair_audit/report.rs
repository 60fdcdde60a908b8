//! What the audit found: the kinds of finding, the per-direction positions and the report,
//! as the CLI prints them and as JSON.

use std::fmt;

use kakehashi_node::store::{InboundState, OutboundState};
use serde::Serialize;

use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Currency};

/// Most discrepancies listed in one report; the count beyond is still reported. Two corrupted
/// databases could otherwise produce several findings per payment and exhaust memory.
pub const DISCREPANCIES_LISTED_MAX: usize = 10_000;

/// Most payments in doubt listed in one report; the count beyond is still reported.
pub const IN_DOUBT_LISTED_MAX: usize = 10_000;

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
    pub(super) fn of(currency: &Currency, minor: u128) -> Self {
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

    pub(super) fn flag(
        &mut self,
        kind: DiscrepancyKind,
        node: &str,
        uetr: Option<&Uetr>,
        detail: String,
    ) {
        self.flag_as(kind, node, uetr, detail, kind.is_repaired_by_recovery());
    }

    pub(super) fn flag_as(
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

/// The record state's name, as the report shows it.
pub(super) fn outbound_state_name(state: OutboundState) -> &'static str {
    match state {
        OutboundState::Reserving => "reserving",
        OutboundState::Forwarded => "forwarded",
        OutboundState::Settled => "settled",
        OutboundState::Rejected => "rejected",
    }
}

/// The record state's name, as the report shows it.
pub(super) fn inbound_state_name(state: InboundState) -> &'static str {
    match state {
        InboundState::Accepting => "accepting",
        InboundState::Settled => "settled",
        InboundState::Rejected => "rejected",
        InboundState::Fenced => "fenced",
    }
}
