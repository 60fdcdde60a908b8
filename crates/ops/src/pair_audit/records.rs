//! Each node's payment records against its own ledger: the sender's outbound record against
//! its reservation, the receiver's inbound record against its credit.

use kakehashi_ledger::Transfer;
use kakehashi_node::store::{InboundRecord, InboundState, OutboundRecord, OutboundState};

use kakehashi_protocol::instruction::Uetr;

use super::report::{Amount, DiscrepancyKind, PairReport, inbound_state_name, outbound_state_name};
use super::{Leg, Reserved};

impl Leg<'_> {
    /// The sender's record agrees with its ledger.
    pub(super) fn check_sender_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        out: Option<&OutboundRecord>,
    ) {
        let s = self.sender;
        let Some(out) = out else {
            if let Some(reserved) = reserved {
                report.flag(
                    DiscrepancyKind::RecordMismatch,
                    &s.jurisdiction,
                    Some(uetr),
                    format!(
                        "the ledger holds reservation {} but the payment store has no record of \
                         the payment",
                        reserved.transfer().id.0
                    ),
                );
            }
            return;
        };
        let Some(reserved) = reserved else {
            match out.state {
                OutboundState::Rejected if out.reservation_id == 0 => {}
                OutboundState::Reserving => {}
                _ => report.flag(
                    DiscrepancyKind::RecordMismatch,
                    &s.jurisdiction,
                    Some(uetr),
                    format!(
                        "the record is {} with reservation {} but the ledger holds no \
                         reservation for this UETR",
                        outbound_state_name(out.state),
                        out.reservation_id
                    ),
                ),
            }
            return;
        };
        self.check_reserved_record(report, uetr, out, reserved);
    }

    /// The sender's record of a payment its ledger reserved names that reservation, its
    /// amount and debtor, and a state its ledger agrees with.
    fn check_reserved_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        out: &OutboundRecord,
        reserved: Reserved<'_>,
    ) {
        let s = self.sender;
        let mut mismatch =
            |kind, detail: String| report.flag(kind, &s.jurisdiction, Some(uetr), detail);
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
                    "the record is {} but the ledger's reservation {} is {ledger_state}",
                    outbound_state_name(out.state),
                    t.id.0
                ),
            );
        }
    }

    /// The receiver's record agrees with its ledger; a released reservation has no live
    /// decision on the receiver.
    pub(super) fn check_receiver_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        credit: Option<&Transfer>,
        inb: Option<&InboundRecord>,
    ) {
        match credit {
            Some(credit) => self.check_credited_record(report, uetr, credit, inb),
            None => self.check_uncredited_record(report, uetr, reserved, inb),
        }
    }

    /// The receiver's record of a payment its ledger credited is settled, with that credit.
    fn check_credited_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        c: &Transfer,
        inb: Option<&InboundRecord>,
    ) {
        let r = self.receiver;
        let mut flag =
            |kind, detail: String| report.flag(kind, &r.jurisdiction, Some(uetr), detail);
        let Some(inb) = inb else {
            return flag(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the ledger holds credit {} but the payment store has no record (the record \
                     is written before the credit)",
                    c.id.0
                ),
            );
        };
        match inb.state {
            InboundState::Accepting => flag(
                DiscrepancyKind::ReceiverNotYetRecorded,
                format!(
                    "the ledger holds credit {} but the record is still accepting",
                    c.id.0
                ),
            ),
            state @ (InboundState::Rejected | InboundState::Fenced) => flag(
                DiscrepancyKind::RecordMismatch,
                format!(
                    "the record is {} but the ledger holds credit {} of {}",
                    inbound_state_name(state),
                    c.id.0,
                    Amount::of(r.currency, c.amount)
                ),
            ),
            InboundState::Settled => {
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
        }
    }

    /// The receiver's record of a payment its ledger did not credit is not settled, and is
    /// not a live decision once the sender released the reservation.
    fn check_uncredited_record(
        &self,
        report: &mut PairReport,
        uetr: &Uetr,
        reserved: Option<Reserved<'_>>,
        inb: Option<&InboundRecord>,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let mut flag =
            |kind, detail: String| report.flag(kind, &r.jurisdiction, Some(uetr), detail);
        match inb.map(|i| i.state) {
            Some(InboundState::Settled) => flag(
                DiscrepancyKind::RecordMismatch,
                "the record is settled but the ledger holds no credit for this UETR".to_owned(),
            ),
            Some(InboundState::Accepting)
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
                        s.jurisdiction
                    ),
                );
            }
            Some(state) if reserved.is_none() && !s.outbound.contains_key(uetr) => {
                flag(
                    DiscrepancyKind::RecordMismatch,
                    format!(
                        "the record is {} but {} has no trace of this payment",
                        inbound_state_name(state),
                        s.jurisdiction
                    ),
                );
            }
            _ => {}
        }
    }
}
