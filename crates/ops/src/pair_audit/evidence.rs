//! Re-verifying what proves a credited payment: the credit's booking, the signed instruction
//! both nodes recorded, its quote and the receipt (both copies), all under the agreement at
//! the time the receiver settled.

use kakehashi_ledger::Transfer;
use kakehashi_node::store::{InboundRecord, InboundState, OutboundRecord, OutboundState};
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::{SIGNING_DOMAIN_INSTRUCTION, pb};
use prost::Message as _;

use kakehashi_protocol::instruction::{self, Instruction, Uetr};
use kakehashi_protocol::money;
use kakehashi_protocol::quote;
use kakehashi_protocol::receipt;
use kakehashi_protocol::signed;
use kakehashi_protocol::transfer::credit_transfer_id;

use super::report::{Amount, DiscrepancyKind, PairReport};
use super::{Credited, Leg, NodeBooks, Reserved};

impl<'p> Credited<'p> {
    /// The evidence of the payment `uetr` that the receiver credited with `credit`.
    pub(super) fn new(
        uetr: &'p Uetr,
        credit: &'p Transfer,
        reserved: Option<Reserved<'p>>,
        out: Option<&'p OutboundRecord>,
        inb: Option<&'p InboundRecord>,
    ) -> Self {
        let settled_at = UnixTime(
            i64::try_from(credit.timestamp.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX),
        );
        Self {
            uetr,
            credit,
            reserved,
            out,
            inb,
            settled_at,
        }
    }
}

impl Leg<'_> {
    /// Everything that proves a credited payment: the instruction, its quote, the receipt
    /// (both copies), and that they describe the two transfers. Returns the source amount
    /// (what the sender should have posted) for the position.
    pub(super) fn check_evidence(&self, report: &mut PairReport, payment: &Credited<'_>) -> u128 {
        let reserved_amount = payment.reserved.map(|t| t.transfer().amount);
        self.check_credit_booking(report, payment);
        let Some((signed_instr, instr)) = self.stored_instruction(report, payment) else {
            return reserved_amount.unwrap_or(0);
        };
        self.check_instruction(report, payment, &signed_instr, &instr);
        self.check_instruction_against_transfers(report, payment, &instr);
        self.check_quote(report, payment, &instr);
        self.check_receipts(report, payment, &instr);
        instr.amount_minor
    }

    /// The credit's id derives from the sending jurisdiction and the UETR, and it sits in the
    /// receiver's currency ledger.
    fn check_credit_booking(&self, report: &mut PairReport, payment: &Credited<'_>) {
        let r = self.receiver;
        let (uetr, credit) = (payment.uetr, payment.credit);
        let mut wrong = Vec::new();
        if credit.id.0 != credit_transfer_id(&self.sender.jurisdiction, &uetr.0) {
            wrong.push("its id does not derive from the sender and the UETR".to_owned());
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
    }

    /// The signed instruction as the receiver kept it (else as the sender did), decoded;
    /// `None`, flagged, when neither kept one or it does not decode.
    fn stored_instruction(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
    ) -> Option<(pb::Signed, Instruction)> {
        let r = self.receiver;
        let bytes = payment
            .inb
            .map(|i| i.signed_instruction.as_slice())
            .filter(|b| !b.is_empty())
            .or_else(|| payment.out.map(|o| o.signed_instruction.as_slice()));
        let Some(bytes) = bytes else {
            report.flag(
                DiscrepancyKind::InstructionInvalid,
                &r.jurisdiction,
                Some(payment.uetr),
                "neither node kept the signed instruction".to_owned(),
            );
            return None;
        };
        let decoded = pb::Signed::decode(bytes)
            .map_err(|e| e.to_string())
            .and_then(|signed| {
                instruction::decode(&signed)
                    .map(|instr| (signed, instr))
                    .map_err(|r| r.to_string())
            });
        match decoded {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                report.flag(
                    DiscrepancyKind::InstructionInvalid,
                    &r.jurisdiction,
                    Some(payment.uetr),
                    format!("the stored instruction does not decode: {error}"),
                );
                None
            }
        }
    }

    /// The instruction's amount is what the sender reserved, and its debtor and creditor
    /// accounts are the ones the two transfers move.
    fn check_instruction_against_transfers(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
        instr: &Instruction,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let uetr = payment.uetr;
        if let Some(amount) = payment.reserved.map(|t| t.transfer().amount)
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
        if let Some(t) = payment.reserved.map(Reserved::transfer)
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
        if payment.credit.credit_account_id.0 != instr.creditor_account {
            report.flag(
                DiscrepancyKind::BookingWrong,
                &r.jurisdiction,
                Some(uetr),
                format!(
                    "the credit goes to account {} but the instruction's creditor account is {}",
                    payment.credit.credit_account_id.0, instr.creditor_account
                ),
            );
        }
    }

    /// The instruction is the one both nodes recorded, for this corridor, signed by the
    /// debtor agent under the sender's PKI.
    fn check_instruction(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
        signed_instr: &pb::Signed,
        instr: &Instruction,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let uetr = payment.uetr;
        let sha = hex::encode(instr.payload_sha256);
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
        if let Some(inb) = payment.inb
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
        if let Some(out) = payment.out
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
        self.check_instruction_signature(report, payment, signed_instr, instr);
    }

    /// The instruction verifies for the receiver at the settlement time, signed by the debtor
    /// agent under the sender's PKI.
    fn check_instruction_signature(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
        signed_instr: &pb::Signed,
        instr: &Instruction,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let settled_at = payment.settled_at;
        let mut invalid = |detail: String| {
            report.flag(
                DiscrepancyKind::InstructionInvalid,
                &r.jurisdiction,
                Some(payment.uetr),
                detail,
            );
        };
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
                if signer.jurisdiction() != s.jurisdiction
                    || signer.subject_cn() != instr.debtor_agent_bic
                {
                    invalid(format!(
                        "the instruction is signed by {} of {}, not by debtor agent {} of {}",
                        signer.subject_cn(),
                        signer.jurisdiction(),
                        instr.debtor_agent_bic,
                        s.jurisdiction
                    ));
                }
            }
            Err(rejection) => invalid(format!(
                "the instruction's signature does not verify for {} at {}: {rejection}",
                r.jurisdiction,
                settled_at.to_rfc3339()
            )),
        }
    }

    /// The credit is what the sender's signed quote gives for the instruction's amount.
    fn check_quote(&self, report: &mut PairReport, payment: &Credited<'_>, instr: &Instruction) {
        let (s, r) = (self.sender, self.receiver);
        let (uetr, credit, settled_at) = (payment.uetr, payment.credit, payment.settled_at);
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
    fn check_receipts(&self, report: &mut PairReport, payment: &Credited<'_>, instr: &Instruction) {
        let (s, r) = (self.sender, self.receiver);
        let receiver_copy = payment.inb.and_then(|i| i.receipt.as_deref());
        let sender_copy = payment
            .out
            .filter(|o| o.state == OutboundState::Settled)
            .map(|o| o.receipt.as_deref());
        self.check_receipt_copies(report, payment, receiver_copy, sender_copy);
        // Verify the receiver's copy, or the sender's when the receiver kept none.
        let (node, bytes) = match (receiver_copy, sender_copy.flatten()) {
            (Some(bytes), _) => (r, bytes),
            (None, Some(bytes)) => (s, bytes),
            (None, None) => return,
        };
        self.check_receipt(report, payment, instr, node, bytes);
    }

    /// Both nodes hold the receipt their records say they hold, the same one, and the
    /// sender's record credits what the receiver credited. `sender_copy` is `None` unless
    /// the sender's record is settled.
    fn check_receipt_copies(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
        receiver_copy: Option<&[u8]>,
        sender_copy: Option<Option<&[u8]>>,
    ) {
        let (s, r) = (self.sender, self.receiver);
        let (uetr, credit) = (payment.uetr, payment.credit);
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
        if let Some(out) = payment.out
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
        if receiver_copy.is_none()
            && payment
                .inb
                .is_some_and(|i| i.state == InboundState::Settled)
        {
            report.flag(
                DiscrepancyKind::ReceiptInvalid,
                &r.jurisdiction,
                Some(uetr),
                "the record is settled but holds no receipt".to_owned(),
            );
        }
    }

    /// The receipt `node` holds verifies for the sender at the settlement time and describes
    /// this payment and its credit.
    fn check_receipt(
        &self,
        report: &mut PairReport,
        payment: &Credited<'_>,
        instr: &Instruction,
        node: &NodeBooks,
        bytes: &[u8],
    ) {
        let (s, r) = (self.sender, self.receiver);
        let (uetr, credit, settled_at) = (payment.uetr, payment.credit, payment.settled_at);
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
        let differs = self.receipt_differences(payment, instr, &receipt);
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

    /// What a verified receipt names that is not this payment's: UETR, instruction, corridor,
    /// credit transfer, creditor account, settlement time.
    fn receipt_differences(
        &self,
        payment: &Credited<'_>,
        instr: &Instruction,
        receipt: &pb::Receipt,
    ) -> Vec<String> {
        let (s, r) = (self.sender, self.receiver);
        let (uetr, credit) = (payment.uetr, payment.credit);
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
        if settled_text != Some(payment.settled_at) {
            differs.push("settlement time (not the credit's ledger time)".to_owned());
        }
        differs
    }
}

/// The payload of an encoded `Signed`, or the bytes themselves when they do not decode (so
/// two undecodable copies still compare).
fn payload(bytes: &[u8]) -> Vec<u8> {
    pb::Signed::decode(bytes).map_or_else(|_| bytes.to_vec(), |signed| signed.payload)
}
