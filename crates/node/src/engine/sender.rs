//! The sender's side: a participant's submission is checked, reserved, forwarded to the peer
//! and ended by the receiver's decision (post or void). Payments left in doubt are recovered
//! by status query (`recovery`).

use std::time::Instant;

use kakehashi_ledger::{AccountId, CreateTransferResult, NewTransfer, TransferFlags, TransferId};
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb::{
    self, Decision, PaymentStatusReport, RelayDecision, RelayStatusRequest, TransactionStatus,
};
use kakehashi_protocol::instruction::{self, Instruction, SignedInstruction, Uetr};
use kakehashi_protocol::money;
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::receipt;
use kakehashi_protocol::status::status_name;
use kakehashi_protocol::transfer::{codes, transfer_id};
use prost::Message;
use tracing::Instrument;

use super::checks::ledger_rejection;
use super::{Engine, EngineError, PeerError, PeerLink, Submitted};
use crate::metrics::{Flow, ReceiptAnomaly};
use crate::store::{OutboundRecord, OutboundState, Write};

impl Engine {
    /// Handles one participant submission end to end (see the module documentation).
    pub async fn submit(&self, signed: pb::Signed) -> Result<Submitted, EngineError> {
        let started = Instant::now();
        let decoded = instruction::decode_signed(signed);
        self.submit_timed(started, decoded).await
    }

    /// [`Engine::submit`] of a submission its caller decoded already, given what
    /// [`instruction::decode_signed`] answered: the same outcome, without decoding the envelope
    /// again. The instruction cannot differ from the envelope's payload (only `decode_signed`
    /// pairs them), and the envelope's signature is verified here as `submit` verifies it. An
    /// `Err` is answered as `submit` answers an envelope that does not decode: `Invalid` with
    /// that refusal, nothing written.
    pub async fn submit_decoded(
        &self,
        decoded: Result<SignedInstruction, Rejection>,
    ) -> Result<Submitted, EngineError> {
        self.submit_timed(Instant::now(), decoded).await
    }

    /// A submission from its arrival at `started`, counted in the payment metrics.
    async fn submit_timed(
        &self,
        started: Instant,
        decoded: Result<SignedInstruction, Rejection>,
    ) -> Result<Submitted, EngineError> {
        let outcome = self.submit_inner(decoded).await;
        if let Ok(Submitted::Report(report)) = &outcome {
            let status = report.transaction_status();
            self.parts.metrics.record_payment(
                Flow::Outbound,
                status_name(status),
                &report.status_reason_code,
                started.elapsed().as_secs_f64(),
            );
        }
        if let Ok(Submitted::Invalid(rejection)) = &outcome {
            self.parts.metrics.record_payment(
                Flow::Outbound,
                "RJCT",
                rejection.code.as_str(),
                started.elapsed().as_secs_f64(),
            );
        }
        outcome
    }

    async fn submit_inner(
        &self,
        decoded: Result<SignedInstruction, Rejection>,
    ) -> Result<Submitted, EngineError> {
        let (signed, instr) = match decoded {
            Ok(decoded) => decoded.into_parts(),
            Err(rejection) => return Ok(Submitted::Invalid(rejection)),
        };
        // One span per payment on each node, keyed by UETR, so both nodes' logs of a payment
        // can be joined.
        let span = tracing::info_span!("payment", uetr = %instr.uetr, role = "sender",
            node = %self.parts.jurisdiction);
        self.submit_instruction(signed, instr)
            .instrument(span)
            .await
    }

    /// Steps 1 to 8 of the protocol for one decoded instruction: the checks, then, under the
    /// UETR's lock, the record, the reservation, Prepare and the receiver's decision.
    async fn submit_instruction(
        &self,
        signed: pb::Signed,
        instr: Instruction,
    ) -> Result<Submitted, EngineError> {
        let (_, t) = self.clock().now();
        // Authentication first (nothing unauthenticated is ever written or looked up). A
        // malformed envelope (sizes, DER) is FF01, a format error like any other.
        if let Err(rejection) = self.instruction_signer(&signed, &instr, t) {
            return Ok(self.refuse(&instr, rejection));
        }
        // Read before the checks so that a failed read propagates (defect 4).
        let debtor = self.parts.store.account(instr.debtor_account).await?;
        // Authorized before the UETR's record is read or anything written: a bank that does
        // not hold the debtor account can neither occupy this UETR nor learn whether it is
        // taken (issue 11, defect 3).
        if let Err(rejection) = self.authorize_debtor(&instr, debtor.as_ref()) {
            return Ok(self.refuse(&instr, rejection));
        }
        let _guard = self.locks.lock(instr.uetr).await;
        if let Some(existing) = self.parts.store.outbound(&instr.uetr).await? {
            // The earlier payment's status is its submitter's business only.
            let detail = if same_debtor_agent(&existing, &instr) {
                format!(
                    "UETR {} was already submitted (its status: {})",
                    instr.uetr,
                    outbound_status_text(&existing)
                )
            } else {
                format!("UETR {} is already taken by another payment", instr.uetr)
            };
            return Ok(self.refuse(&instr, Rejection::new(ReasonCode::Dupl, detail)));
        }
        // The quote and the times only after the UETR: a resubmission of a payment this node
        // already has (a replay run again after an interruption) must hear DUPL and the
        // payment's status, not that its quote has since expired or been used (by itself).
        let (_, t) = self.clock().now();
        let peer = match self.check_quote_and_times(&instr, t) {
            Ok(peer) => peer,
            Err(rejection) => return Ok(self.refuse(&instr, rejection)),
        };
        let record = self.outbound_record(&signed, &instr, &peer);
        // From the debtor's check to its reservation no close of an account lands (see
        // `Engine::closing`): the account the check finds open is the one reserved from, and a
        // close that follows finds the reservation and is refused until it is decided.
        let open = self.closing.read().await;
        let debtor = self.closed_in_ledger(instr.debtor_account, debtor).await?;
        if let Err(rejection) = self.check_debtor(&instr, debtor.as_ref()) {
            return self.reject_outbound(&instr, record, rejection).await;
        }
        let record = match self.reserve(&instr, &peer, record).await? {
            Ok(record) => record,
            Err(refused) => return Ok(refused),
        };
        drop(open);
        self.forward(signed, &instr, &peer, record).await
    }

    /// A refusal before anything was written: a malformed request (FF01) is `Invalid`, any
    /// other reason a rejected report.
    fn refuse(&self, instr: &Instruction, rejection: Rejection) -> Submitted {
        if rejection.code == ReasonCode::Ff01 {
            Submitted::Invalid(rejection)
        } else {
            Submitted::Report(Box::new(self.rejected_report(instr, &rejection)))
        }
    }

    /// The checks of an authenticated, authorized submission whose UETR is new, made before
    /// anything is written: this node's quote and the instruction's times; then the payment
    /// takes the quote. Returns the peer the payment goes to.
    fn check_quote_and_times(
        &self,
        instr: &Instruction,
        t: UnixTime,
    ) -> Result<PeerLink, Rejection> {
        let (peer, quote_id) = self.check_own_quote(instr, t)?;
        self.check_times(instr, t)?;
        // Last: a quote is single-use, and a payment refused by a check above leaves it free.
        self.take_quote(&quote_id, instr, t)?;
        Ok(peer)
    }

    /// The record of a payment that passed the checks made before the lock: decided here
    /// (`Rejected`) until it is reserved.
    fn outbound_record(
        &self,
        signed: &pb::Signed,
        instr: &Instruction,
        peer: &PeerLink,
    ) -> OutboundRecord {
        OutboundRecord {
            state: OutboundState::Rejected,
            signed_instruction: signed.encode_to_vec(),
            instruction_sha256: hex::encode(instr.payload_sha256),
            peer: peer.jurisdiction.clone(),
            end_to_end_id: instr.end_to_end_id.clone(),
            debtor_account: instr.debtor_account,
            amount_minor: instr.amount_minor,
            reservation_id: 0,
            reason_code: None,
            reason_detail: None,
            decided_by: Some(self.jurisdiction().to_owned()),
            receipt: None,
            credited_minor: None,
            created_at: self.clock().unix_secs(),
            updated_at: self.clock().unix_secs(),
        }
    }

    /// Steps 2 to 4 in one durable commit: reserves the amount with a pending transfer into the
    /// peer's corridor account and records `Forwarded` (or, if the ledger refuses the
    /// reservation, `Rejected` with the ledger's reason). `Ok(Err(..))` is the answer to a
    /// payment the ledger refused to reserve.
    async fn reserve(
        &self,
        instr: &Instruction,
        peer: &PeerLink,
        mut record: OutboundRecord,
    ) -> Result<Result<OutboundRecord, Submitted>, EngineError> {
        let reservation = transfer_id(b"reserve", &instr.uetr.0);
        let pending = NewTransfer {
            id: TransferId(reservation),
            debit_account_id: AccountId(instr.debtor_account),
            credit_account_id: AccountId(peer.corridor_account),
            amount: instr.amount_minor,
            user_data_128: u128::from_be_bytes(instr.uetr.0),
            ledger: u32::from(self.parts.currency.numeric),
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            // No ledger timeout: once forwarded, only the receiver's decision may end it.
            timeout: 0,
            ..NewTransfer::default()
        };
        record.updated_at = self.clock().unix_secs();
        let mut forwarded = record.clone();
        forwarded.state = OutboundState::Forwarded;
        forwarded.reservation_id = reservation;
        forwarded.decided_by = None;
        if self.parts.planted == Some(super::Planted::ForwardUnrecorded) {
            // The planted defect: what the commit records says nothing was sent.
            forwarded.state = OutboundState::Reserving;
        }
        let rejected_base = record;
        let (uetr, reserved) = (instr.uetr, forwarded.clone());
        let result = self
            .apply_one_recorded(
                pending,
                Box::new(move |outcomes| {
                    let result = outcomes.first().map(|outcome| outcome.result);
                    let record = match result {
                        Some(result) if result.is_recorded() => reserved,
                        result => rejected(rejected_base, &ledger_rejection(result, "reservation")),
                    };
                    vec![Write::Outbound(uetr, record)]
                }),
            )
            .await?;
        if !result.is_recorded() {
            let rejection = ledger_rejection(Some(result), "reservation");
            let record = rejected(forwarded, &rejection);
            let record = OutboundRecord {
                reservation_id: 0,
                decided_by: Some(self.jurisdiction().to_owned()),
                ..record
            };
            return Ok(Err(Submitted::Report(Box::new(
                self.report_from(&instr.uetr, &record),
            ))));
        }
        crate::fault::crash_point(crate::fault::SENDER_AFTER_RESERVATION);
        Ok(Ok(forwarded))
    }

    /// Steps 5 to 8: sends Prepare with the exact bytes the participant signed and applies the
    /// receiver's decision. Without an answer the payment is in doubt (PDNG) until recovery
    /// resolves it.
    async fn forward(
        &self,
        signed: pb::Signed,
        instr: &Instruction,
        peer: &PeerLink,
        record: OutboundRecord,
    ) -> Result<Submitted, EngineError> {
        let answer = peer
            .transport
            .prepare(pb::PrepareRequest {
                instruction: Some(signed),
            })
            .await;
        let decision = match answer {
            Ok(decision) => {
                self.parts
                    .metrics
                    .relay_request("Prepare", decision_name(decision.decision()));
                decision
            }
            Err(PeerError::Failed(status)) => {
                self.parts.metrics.relay_request("Prepare", "ERROR");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction, %status,
                    "Prepare failed; the payment is in doubt until a status query resolves it");
                return Ok(Submitted::Report(Box::new(
                    self.pending_report(&record, &instr.uetr).await,
                )));
            }
            Err(PeerError::Refused(refusal)) => {
                self.parts.metrics.relay_request("Prepare", "REFUSED");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction, %refusal,
                    "Prepare refused without a decision; asking for the status, which fences");
                match self
                    .status_after_refusal(instr, peer, &record, refusal)
                    .await
                {
                    Some(decision) => decision,
                    None => {
                        return Ok(Submitted::Report(Box::new(
                            self.pending_report(&record, &instr.uetr).await,
                        )));
                    }
                }
            }
            Err(PeerError::Timeout(_)) => {
                self.parts.metrics.relay_request("Prepare", "TIMEOUT");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction,
                    "Prepare timed out; the payment is in doubt until a status query resolves it");
                return Ok(Submitted::Report(Box::new(
                    self.pending_report(&record, &instr.uetr).await,
                )));
            }
        };
        crate::fault::crash_point(crate::fault::SENDER_BEFORE_RESOLVE);
        let record = self.finish(instr.uetr, record, peer, decision).await?;
        Ok(Submitted::Report(Box::new(
            self.report_from(&instr.uetr, &record),
        )))
    }

    /// The decision on a payment whose Prepare the receiver refused without deciding (it
    /// recorded nothing): its answer to a status query, which fences the UETR when it has no
    /// decision. A fence ends the payment as rejected with the refusal's reason, so the
    /// participant learns why (DS0B, FF01...) rather than a timeout's AB05; a void follows
    /// only that durable fence, never the refusal alone. `None` when the query brought no
    /// answer: still in doubt, for recovery.
    async fn status_after_refusal(
        &self,
        instr: &Instruction,
        peer: &PeerLink,
        record: &OutboundRecord,
        refusal: Rejection,
    ) -> Option<RelayDecision> {
        let request = RelayStatusRequest {
            uetr: instr.uetr.to_string(),
            instruction_sha256: hex::decode(&record.instruction_sha256).unwrap_or_default(),
        };
        match peer.transport.status(request).await {
            Ok(answer) => {
                self.parts
                    .metrics
                    .relay_request("GetStatus", decision_name(answer.decision()));
                if answer.decision() != Decision::UnknownFenced {
                    return Some(answer);
                }
                Some(RelayDecision {
                    decision: Decision::Rejected.into(),
                    status_reason_code: refusal.code.as_str().to_owned(),
                    status_reason_detail: refusal.detail,
                    receipt: None,
                    ..answer
                })
            }
            Err(error) => {
                self.parts.metrics.relay_request("GetStatus", "ERROR");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction, %error,
                    "status query after a refused Prepare failed; still in doubt");
                None
            }
        }
    }

    async fn reject_outbound(
        &self,
        instr: &Instruction,
        mut record: OutboundRecord,
        rejection: Rejection,
    ) -> Result<Submitted, EngineError> {
        record.decided_by = Some(self.jurisdiction().to_owned());
        record.updated_at = self.clock().unix_secs();
        let record = rejected(record, &rejection);
        self.put_outbound(instr.uetr, &record).await?;
        Ok(Submitted::Report(Box::new(
            self.report_from(&instr.uetr, &record),
        )))
    }

    pub(super) async fn put_outbound(
        &self,
        uetr: Uetr,
        record: &OutboundRecord,
    ) -> Result<(), EngineError> {
        self.parts
            .store
            .put(vec![Write::Outbound(uetr, record.clone())])
            .await?;
        Ok(())
    }

    /// Applies the receiver's decision to a forwarded payment: post on SETTLED, void on
    /// REJECTED or UNKNOWN_FENCED; records the final state. Called with the UETR's lock held.
    pub(super) async fn finish(
        &self,
        uetr: Uetr,
        mut record: OutboundRecord,
        peer: &PeerLink,
        decision: RelayDecision,
    ) -> Result<OutboundRecord, EngineError> {
        let post = match decision.decision() {
            Decision::Settled => true,
            Decision::Rejected | Decision::UnknownFenced => {
                self.parts.planted == Some(super::Planted::PostRejected)
            }
            Decision::Unspecified => {
                tracing::warn!(%uetr, "the receiver answered without a decision; still in doubt");
                return Ok(record);
            }
        };
        let mut receipt = ReceiptCheck::default();
        if post {
            receipt = self.check_receipt(uetr, &record, peer, decision.receipt.as_ref());
            if let Some((kind, note)) = &receipt.anomaly {
                // The receiver says it credited: voiding would create money on the other side,
                // so the reservation is posted and the anomaly raised for the operator (logged
                // and counted in `kakehashi_receipt_anomalies_total`, which alerts can watch).
                tracing::error!(%uetr, %note, "settled without a valid receipt");
                self.parts
                    .metrics
                    .receipt_anomaly(&peer.jurisdiction, *kind);
            }
        }
        let reservation = record.clone();
        record.updated_at = self.clock().unix_secs();
        record.decided_by = Some(if decision.receiving_jurisdiction.is_empty() {
            peer.jurisdiction.clone()
        } else {
            decision.receiving_jurisdiction.clone()
        });
        if post {
            record.state = OutboundState::Settled;
            record.receipt = decision.receipt.as_ref().map(Message::encode_to_vec);
            record.credited_minor = receipt.credited;
            record.reason_detail = receipt.anomaly.map(|(_, note)| note);
        } else {
            record.state = OutboundState::Rejected;
            let (code, detail) = if decision.decision() == Decision::UnknownFenced {
                (
                    ReasonCode::Ab05.as_str().to_owned(),
                    format!(
                        "{} never received the payment in time and has fenced it",
                        peer.jurisdiction
                    ),
                )
            } else {
                (
                    decision.status_reason_code.clone(),
                    decision.status_reason_detail.clone(),
                )
            };
            record.reason_code = Some(code);
            record.reason_detail = Some(detail);
        }
        // The post or void and the final record in one commit.
        self.resolve_reservation_recorded(uetr, &reservation, post, Some(record.clone()))
            .await?;
        Ok(record)
    }

    /// Verifies the receipt of a payment the receiver settled: it must verify under the
    /// agreement, come from the peer and name this payment (UETR and instruction digest).
    fn check_receipt(
        &self,
        uetr: Uetr,
        record: &OutboundRecord,
        peer: &PeerLink,
        receipt: Option<&pb::Signed>,
    ) -> ReceiptCheck {
        let Some(receipt) = receipt else {
            return ReceiptCheck::anomaly(ReceiptAnomaly::Missing, "the receiver sent no receipt");
        };
        let t = self.clock().now().1;
        let (receipt, signer) =
            match receipt::verify_receipt(receipt, self.trust(), self.jurisdiction(), t) {
                Ok(verified) => verified,
                Err(rejection) => {
                    return ReceiptCheck::anomaly(
                        ReceiptAnomaly::Invalid,
                        format!("the receipt did not verify: {rejection}"),
                    );
                }
            };
        let mut check = ReceiptCheck::default();
        if receipt.uetr != uetr.to_string()
            || receipt.instruction_sha256
                != hex::decode(&record.instruction_sha256).unwrap_or_default()
            || signer.jurisdiction() != peer.jurisdiction
        {
            check = ReceiptCheck::anomaly(
                ReceiptAnomaly::Mismatch,
                "the receipt does not match this payment",
            );
        }
        check.credited = receipt
            .credited_amount
            .as_ref()
            .and_then(|a| money::parse_amount(a).ok())
            .map(|(_, minor)| minor);
        check
    }

    /// Posts (`post`) or voids the reservation of `record`. Already posted, already voided and,
    /// for a void, never reserved are what a retry after a crash finds: done. A void retried
    /// after one that found no reservation is `id_already_failed` (the ledger remembers the
    /// transient failure of that id); a void's only transient failure is a missing pending
    /// transfer (voids are allowed on closed accounts and never exceed a limit), so that is
    /// "never reserved" again.
    pub(super) async fn resolve_reservation(
        &self,
        uetr: Uetr,
        record: &OutboundRecord,
        post: bool,
    ) -> Result<(), EngineError> {
        self.resolve_reservation_recorded(uetr, record, post, None)
            .await
    }

    /// [`Engine::resolve_reservation`], recording `then` (the payment's final record) in the
    /// same commit when the reservation is resolved; nothing is recorded when it is not (the
    /// call then fails, and the payment stays in doubt).
    pub(super) async fn resolve_reservation_recorded(
        &self,
        uetr: Uetr,
        record: &OutboundRecord,
        post: bool,
        then: Option<OutboundRecord>,
    ) -> Result<(), EngineError> {
        let resolve = NewTransfer {
            id: TransferId(transfer_id(if post { b"post" } else { b"void" }, &uetr.0)),
            pending_id: TransferId(record.reservation_id),
            amount: if post { record.amount_minor } else { 0 },
            user_data_128: u128::from_be_bytes(uetr.0),
            flags: if post {
                TransferFlags::POST_PENDING_TRANSFER
            } else {
                TransferFlags::VOID_PENDING_TRANSFER
            },
            ..NewTransfer::default()
        };
        let result = match then {
            None => self.apply_one(resolve).await?,
            Some(then) => {
                let records =
                    move |outcomes: &[kakehashi_ledger::TransferOutcome]| match outcomes.first() {
                        Some(outcome) if resolved(post, outcome.result) => {
                            vec![Write::Outbound(uetr, then)]
                        }
                        _ => Vec::new(),
                    };
                self.apply_one_recorded(resolve, Box::new(records)).await?
            }
        };
        if !resolved(post, result) {
            return Err(EngineError::Unexpected {
                what: if post {
                    "posting a reservation"
                } else {
                    "voiding a reservation"
                },
                result: result.as_str(),
            });
        }
        Ok(())
    }

    /// The participant's view of a payment this node sent. Read under the UETR's lock, so it
    /// is never a state in the middle of a step (issue 11, defect 5): what it reports is a
    /// state the payment rests in, and (the store showing only durable records) one a crash
    /// cannot take back.
    pub async fn status(&self, uetr: &Uetr) -> Result<Option<PaymentStatusReport>, EngineError> {
        let _guard = self.locks.lock(*uetr).await;
        Ok(self
            .parts
            .store
            .outbound(uetr)
            .await?
            .map(|record| self.report_from(uetr, &record)))
    }

    /// [`Engine::status`] as bank `bic` may see it: `None` both when no payment has the UETR
    /// and when the payment is neither from nor to `bic` (its instruction names `bic` neither
    /// as debtor agent nor as creditor agent), so a bank cannot tell another's payment from
    /// none at all. A stored instruction that no longer decodes is shown to nobody.
    pub async fn status_for_bank(
        &self,
        uetr: &Uetr,
        bic: &str,
    ) -> Result<Option<PaymentStatusReport>, EngineError> {
        let _guard = self.locks.lock(*uetr).await;
        let Some(record) = self.parts.store.outbound(uetr).await? else {
            return Ok(None);
        };
        let parties = pb::Signed::decode(record.signed_instruction.as_slice())
            .ok()
            .and_then(|signed| instruction::decode(&signed).ok());
        let visible = parties
            .is_some_and(|instr| instr.debtor_agent_bic == bic || instr.creditor_agent_bic == bic);
        Ok(visible.then(|| self.report_from(uetr, &record)))
    }

    fn rejected_report(&self, instr: &Instruction, rejection: &Rejection) -> PaymentStatusReport {
        PaymentStatusReport {
            uetr: instr.uetr.to_string(),
            end_to_end_id: instr.end_to_end_id.clone(),
            transaction_status: TransactionStatus::Rjct.into(),
            status_reason_code: rejection.code.as_str().to_owned(),
            status_reason_detail: rejection.detail.clone(),
            interbank_settlement_amount: Some(money::format_amount(
                instr.currency,
                instr.amount_minor,
            )),
            credited_amount: None,
            receipt: None,
            decided_by: self.jurisdiction().to_owned(),
        }
    }

    async fn pending_report(&self, record: &OutboundRecord, uetr: &Uetr) -> PaymentStatusReport {
        self.parts
            .metrics
            .set_in_doubt(self.parts.store.unresolved_count().await as u64);
        self.report_from(uetr, record)
    }

    fn report_from(&self, uetr: &Uetr, record: &OutboundRecord) -> PaymentStatusReport {
        let status = match record.state {
            OutboundState::Settled => TransactionStatus::Acsc,
            OutboundState::Rejected => TransactionStatus::Rjct,
            OutboundState::Reserving | OutboundState::Forwarded => TransactionStatus::Pdng,
        };
        let receipt = record
            .receipt
            .as_deref()
            .and_then(|bytes| pb::Signed::decode(bytes).ok());
        let credited = match (&receipt, record.credited_minor) {
            (Some(_), Some(minor)) => self
                .parts
                .peers
                .get(&record.peer)
                .map(|p| money::format_amount(p.currency, minor)),
            _ => None,
        };
        PaymentStatusReport {
            uetr: uetr.to_string(),
            end_to_end_id: record.end_to_end_id.clone(),
            transaction_status: status.into(),
            status_reason_code: record.reason_code.clone().unwrap_or_default(),
            status_reason_detail: match record.state {
                OutboundState::Reserving | OutboundState::Forwarded => format!(
                    "forwarded to {}; the outcome is in doubt and is being resolved by status query",
                    record.peer
                ),
                _ => record.reason_detail.clone().unwrap_or_default(),
            },
            interbank_settlement_amount: Some(money::format_amount(
                self.parts.currency,
                record.amount_minor,
            )),
            credited_amount: credited,
            receipt,
            decided_by: record.decided_by.clone().unwrap_or_default(),
        }
    }
}

/// The metric label of a relay decision.
pub(super) fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Settled => "SETTLED",
        Decision::Rejected => "REJECTED",
        Decision::UnknownFenced => "UNKNOWN_FENCED",
        Decision::Unspecified => "UNSPECIFIED",
    }
}

/// Whether the payment `record` holds was submitted by the bank that signed `instr` (the
/// debtor agent, which both signatures were checked against). A record whose instruction no
/// longer decodes is nobody's.
fn same_debtor_agent(record: &OutboundRecord, instr: &Instruction) -> bool {
    pb::Signed::decode(record.signed_instruction.as_slice())
        .ok()
        .and_then(|signed| instruction::decode(&signed).ok())
        .is_some_and(|stored| stored.debtor_agent_bic == instr.debtor_agent_bic)
}

fn outbound_status_text(record: &OutboundRecord) -> String {
    match record.state {
        OutboundState::Settled => "ACSC".to_owned(),
        OutboundState::Rejected => {
            format!("RJCT {}", record.reason_code.as_deref().unwrap_or_default())
        }
        OutboundState::Reserving | OutboundState::Forwarded => "PDNG".to_owned(),
    }
}

/// What the sender made of the receipt of a payment the receiver settled.
#[derive(Debug, Default)]
struct ReceiptCheck {
    /// The amount the receipt says was credited, minor units of the peer's currency.
    credited: Option<u128>,
    /// What is wrong with the receipt, and the note recorded with the payment.
    anomaly: Option<(ReceiptAnomaly, String)>,
}

impl ReceiptCheck {
    fn anomaly(kind: ReceiptAnomaly, note: impl Into<String>) -> Self {
        Self {
            credited: None,
            anomaly: Some((kind, note.into())),
        }
    }
}

/// Whether a post (`post`) or void answered `result` leaves the reservation resolved as asked:
/// applied now, or before (a retry), or (a void) nothing left to release.
fn resolved(post: bool, result: CreateTransferResult) -> bool {
    result.is_recorded()
        || matches!(
            (post, result),
            (true, CreateTransferResult::PendingTransferAlreadyPosted)
                | (false, CreateTransferResult::PendingTransferAlreadyVoided)
                | (false, CreateTransferResult::PendingTransferNotFound)
                | (false, CreateTransferResult::IdAlreadyFailed)
        )
}

/// `record` rejected for `rejection`.
fn rejected(mut record: OutboundRecord, rejection: &Rejection) -> OutboundRecord {
    record.state = OutboundState::Rejected;
    record.reason_code = Some(rejection.code.as_str().to_owned());
    record.reason_detail = Some(rejection.detail.clone());
    record
}
