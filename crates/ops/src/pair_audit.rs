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
//! reads the ledger's accounts and transfers through its typed export
//! ([`kakehashi_ledger::LedgerExport`]) and the payment store without a writer.
//! Each database is opened with sled's exclusive lock, so loading fails cleanly while a node
//! holds it. [`audit_pair`] is pure: it takes the two books and returns a [`PairReport`].
//!
//! Jurisdictions are data: which node is which comes from the configurations, never from
//! code.
//!
//! The submodules follow the audit's jobs: `books` loads one node's books; for each direction
//! of the corridor a `Leg` matches the sender's reservations to the receiver's credits by
//! UETR (`matching`), checks each node's payment records against its own ledger (`records`),
//! re-verifies the instruction, quote and receipt of every credited payment (`evidence`) and
//! reconciles the corridor and liquidity balances with the payments (`position`); `report`
//! holds the findings and the report's types.

use kakehashi_ledger::{AuditReport, Transfer};
use kakehashi_node::store::{InboundRecord, OutboundRecord};
use kakehashi_pki::UnixTime;
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;

use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::signed::Trust;

mod books;
mod evidence;
mod matching;
mod position;
mod records;
mod report;

pub use books::{AccountView, Booked, NodeBooks, PairAuditError, ledger_key, load_pair};
pub use report::{
    Amount, DISCREPANCIES_LISTED_MAX, DirectionReport, DiscrepancyKind, IN_DOUBT_LISTED_MAX,
    InDoubt, NodeSummary, PairDiscrepancy, PairReport, Position,
};

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
        let direction = Leg {
            sender,
            receiver,
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

/// One direction of the corridor, checked on its own: `sender` pays, `receiver` credits.
struct Leg<'a> {
    sender: &'a NodeBooks,
    receiver: &'a NodeBooks,
    /// The agreement the evidence is verified under.
    trust: Trust<'a>,
}

/// How one payment stands across the pair.
enum Standing {
    Settled,
    Rejected,
    InDoubt,
    Inconsistent,
}

/// What the two nodes hold about one payment the receiver credited: the evidence the audit
/// re-verifies against that credit.
struct Credited<'p> {
    uetr: &'p Uetr,
    /// The receiver's credit.
    credit: &'p Transfer,
    /// The sender's reservation, if any.
    reserved: Option<Reserved<'p>>,
    /// The sender's record.
    out: Option<&'p OutboundRecord>,
    /// The receiver's record.
    inb: Option<&'p InboundRecord>,
    /// When the receiver settled (the credit's ledger time), the time the evidence is
    /// verified at.
    settled_at: UnixTime,
}

#[cfg(test)]
mod tests;
