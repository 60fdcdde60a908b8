//! The receiver's side: a peer's Prepare is decided once per (peer, UETR) (authenticated,
//! checked, credited, answered with a signed receipt), and a status query answers that decision
//! or fences the UETR. Every record is the calling peer's own (the store keys inbound records by
//! sender), so one peer can neither block, fence nor read another peer's payment.

use std::time::Instant;

use kakehashi_ledger::{AccountId, CreateTransferResult, NewTransfer, TransferId};
use kakehashi_pki::Purpose;
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb::{self, Decision, RelayDecision};
use kakehashi_proto::{SIGNING_DOMAIN_INSTRUCTION, SIGNING_DOMAIN_RECEIPT};
use kakehashi_protocol::instruction::{self, Instruction, Uetr};
use kakehashi_protocol::quote;
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::receipt;
use kakehashi_protocol::signed::{self, Signer};
use kakehashi_protocol::transfer::{codes, credit_transfer_id};
use prost::Message;
use tracing::Instrument;

use super::checks::{debtor_agent_signer, ledger_rejection};
use super::{Engine, EngineError, PeerLink};
use crate::metrics::Flow;
use crate::store::{AccountMeta, InboundRecord, InboundState, Write};

/// An instruction of a batch after [`Engine::authenticate_batch`]: decoded (or refused), and
/// its signature verified (or refused). Made only there, so nothing is decided on an
/// instruction whose signature was not checked.
#[derive(Debug)]
pub struct Verified {
    signed: pb::Signed,
    instr: Result<Instruction, Rejection>,
    signer: Option<Result<Signer, Rejection>>,
}

impl Engine {
    /// Handles a peer's Prepare (see the module documentation). `peer` is the jurisdiction the
    /// TLS client certificate was recognized for.
    ///
    /// `Ok(Err(rejection))` is a refusal, not a decision: the instruction did not decode or is
    /// not authenticated as a bank of `peer`'s jurisdiction, and nothing was written. It must not
    /// be a REJECTED decision, on which the sender would void: nothing recorded would stop a
    /// later Prepare of the same bytes (one whose chain verifies once the clock has moved on)
    /// from settling, and money would be created. The sender learns the outcome by status query,
    /// which fences.
    pub async fn prepare(
        &self,
        peer: &str,
        signed: pb::Signed,
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        if let Err(rejection) = self.corridor_peer(peer) {
            return Ok(Err(rejection));
        }
        let instr = instruction::decode(&signed);
        self.prepare_inbound(peer, signed, instr, None).await
    }

    /// Authenticates the instructions of one batch from `peer` (a `Prepares` stream) before
    /// any of them is decided: each is decoded, and the signatures of those that decode are
    /// verified together ([`signed::verify_batch`]: the same signer, or the same refusal, as
    /// one by one). Each result is then decided by [`Engine::prepare_verified`], exactly as
    /// [`Engine::prepare`] decides, with the signature already checked.
    pub fn authenticate_batch(&self, peer: &str, batch: Vec<pb::Signed>) -> Vec<Verified> {
        let corridor = self.corridor_peer(peer);
        let decoded: Vec<Result<Instruction, Rejection>> = batch
            .iter()
            .map(|signed| match &corridor {
                Ok(()) => instruction::decode(signed),
                // Refused before anything is decoded or verified, as Prepare refuses.
                Err(rejection) => Err(rejection.clone()),
            })
            .collect();
        let to_verify: Vec<&pb::Signed> = batch
            .iter()
            .zip(&decoded)
            .filter_map(|(signed, instr)| instr.is_ok().then_some(signed))
            .collect();
        let (_, t) = self.clock().now();
        let mut signers = signed::verify_batch(
            &to_verify,
            SIGNING_DOMAIN_INSTRUCTION,
            self.trust(),
            self.jurisdiction(),
            Purpose::PaymentSigning,
            t,
            &[],
        )
        .into_iter();
        batch
            .into_iter()
            .zip(decoded)
            .map(|(signed, instr)| {
                let signer = match &instr {
                    Ok(instr) => signers
                        .next()
                        .map(|signer| signer.and_then(|s| debtor_agent_signer(s, instr))),
                    Err(_) => None,
                };
                Verified {
                    signed,
                    instr,
                    signer,
                }
            })
            .collect()
    }

    /// Decides an instruction of a batch authenticated by [`Engine::authenticate_batch`]: the
    /// same answer [`Engine::prepare`] gives the same instruction.
    pub async fn prepare_verified(
        &self,
        peer: &str,
        verified: Verified,
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        if let Err(rejection) = self.corridor_peer(peer) {
            return Ok(Err(rejection));
        }
        let Verified {
            signed,
            instr,
            signer,
        } = verified;
        self.prepare_inbound(peer, signed, instr, signer).await
    }

    /// [`Engine::prepare`] of the decoded `instr`, with its signer when it was verified
    /// already (`None`: verified here, under the UETR's lock).
    async fn prepare_inbound(
        &self,
        peer: &str,
        signed: pb::Signed,
        instr: Result<Instruction, Rejection>,
        signer: Option<Result<Signer, Rejection>>,
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        let started = Instant::now();
        let instr = match instr {
            Ok(instr) => instr,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let span = tracing::info_span!("payment", uetr = %instr.uetr, role = "receiver",
            node = %self.parts.jurisdiction, peer = %peer);
        let decision = async {
            let _guard = self.locks.lock(instr.uetr).await;
            self.prepare_locked(peer, &signed, &instr, signer).await
        }
        .instrument(span)
        .await?;
        let decision = match decision {
            Ok(decision) => decision,
            Err(rejection) => {
                tracing::warn!(uetr = %instr.uetr, %peer, %rejection,
                    "refused an unauthenticated Prepare; nothing recorded");
                return Ok(Err(rejection));
            }
        };
        let status = match decision.decision() {
            Decision::Settled => "ACSC",
            _ => "RJCT",
        };
        self.parts.metrics.record_payment(
            Flow::Inbound,
            status,
            &decision.status_reason_code,
            started.elapsed().as_secs_f64(),
        );
        Ok(Ok(decision))
    }

    /// The decision on `instr` from `peer`, made under the UETR's lock; `Ok(Err(..))` when the
    /// instruction is refused before it is authenticated (nothing written). `signer` is the
    /// instruction's signer when a batch verified it already.
    async fn prepare_locked(
        &self,
        peer: &str,
        signed: &pb::Signed,
        instr: &Instruction,
        signer: Option<Result<Signer, Rejection>>,
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        // The whole envelope (payload, signature and chain) as it is stored: a payload with a
        // zeroed signature or another chain is not the instruction that was decided.
        let envelope = signed.encode_to_vec();
        let existing = self.parts.store.inbound(peer, &instr.uetr).await?;
        let same = existing
            .as_ref()
            .is_some_and(|record| record.signed_instruction == envelope);
        if let Some(existing) = existing.as_ref().filter(|_| same) {
            // The same instruction again (it was authenticated when it was recorded, and a
            // chain that has expired since must not change the answer): the same decision.
            match existing.state {
                InboundState::Settled | InboundState::Rejected => {
                    return Ok(Ok(self.decision_from(&instr.uetr, existing)));
                }
                InboundState::Accepting => {
                    // A crash between the record and the decision: the ledger knows whether
                    // the credit happened; if not, the instruction is decided again below. The
                    // record holds these very bytes (`same`), so `instr` is its instruction.
                    if let Some(record) = self
                        .settle_if_credited(&instr.uetr, existing.clone(), Some(instr))
                        .await?
                    {
                        return Ok(Ok(self.decision_from(&instr.uetr, &record)));
                    }
                }
                InboundState::Fenced => {}
            }
        }
        // Anything else is authenticated before it gets any decision, stored or new.
        let (_, t) = self.clock().now();
        let link = match self.authenticate_inbound(peer, signed, instr, t, signer) {
            Ok(link) => link,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if let Some(existing) = &existing {
            if existing.state == InboundState::Fenced {
                return Ok(Ok(self.decision_rejected(
                    &instr.uetr,
                    &Rejection::new(
                        ReasonCode::Ab05,
                        "this UETR was fenced by an earlier status query and can never settle",
                    ),
                )));
            }
            if !same {
                // Not the instruction this UETR holds: a permanent answer, since the record
                // that holds it is never removed.
                return Ok(Ok(self.decision_rejected(
                    &instr.uetr,
                    &Rejection::new(
                        ReasonCode::Dupl,
                        "a different instruction with this UETR was already received",
                    ),
                )));
            }
        }
        // Read before the checks so that a failed read propagates, nothing recorded (defect 4).
        let creditor = self.parts.store.account(instr.creditor_account).await?;
        // From the creditor's check to its credit no close of an account lands (see
        // `Engine::closing`), so the credit's id is never spent on an account closed after
        // the check found it open.
        let open = self.closing.read().await;
        let creditor = self
            .closed_in_ledger(instr.creditor_account, creditor)
            .await?;
        let (credited_minor, liquidity) =
            match self.check_inbound(link, instr, t, creditor.as_ref()) {
                Ok(ok) => ok,
                Err(rejection) => {
                    let record =
                        self.inbound_record(instr, envelope, peer, InboundState::Rejected, 0, 0);
                    return self
                        .reject_inbound(&instr.uetr, record, rejection)
                        .await
                        .map(Ok);
                }
            };
        let credit_id = credit_transfer_id(peer, &instr.uetr.0);
        let mut record = self.inbound_record(
            instr,
            envelope,
            peer,
            InboundState::Accepting,
            credited_minor,
            credit_id,
        );
        let credit = NewTransfer {
            id: TransferId(credit_id),
            debit_account_id: AccountId(liquidity),
            credit_account_id: AccountId(instr.creditor_account),
            amount: credited_minor,
            user_data_128: u128::from_be_bytes(instr.uetr.0),
            ledger: u32::from(self.parts.currency.numeric),
            code: codes::INBOUND,
            ..NewTransfer::default()
        };
        if self.parts.planted == Some(super::Planted::RecordBeforeCredit) {
            let mut settled = record.clone();
            settled.state = InboundState::Settled;
            self.parts
                .store
                .put(vec![Write::Inbound(instr.uetr, settled)])
                .await?;
        }
        // The credit and its decision in one commit: `Settled` with the signed receipt, built
        // from the credit's ledger timestamp (Ed25519 signing is deterministic, so a receipt
        // rebuilt from the ledger later is byte-identical), or `Rejected` with the ledger's
        // reason. Only `id_already_failed` (the reason is not known until the ledger is asked,
        // see `failed_credit_reason`) and `exists` (settled from the ledger below) record
        // nothing here.
        let decide = {
            let settler = self.settler();
            let (uetr, instr, mut record) = (instr.uetr, instr.clone(), record.clone());
            let now = self.clock().unix_secs();
            move |outcomes: &[kakehashi_ledger::TransferOutcome]| {
                let Some(outcome) = outcomes.first() else {
                    return Vec::new();
                };
                match (outcome.result, outcome.timestamp) {
                    (CreateTransferResult::Ok, Some(timestamp)) => {
                        record.updated_at = now;
                        let settled =
                            settler.settle(record, &instr, credited_minor, credit_id, timestamp);
                        vec![Write::Inbound(uetr, settled)]
                    }
                    (CreateTransferResult::IdAlreadyFailed, _) => Vec::new(),
                    (result, _) if result.is_recorded() => Vec::new(),
                    (result, _) => {
                        let rejection = ledger_rejection(Some(result), "credit");
                        record.state = InboundState::Rejected;
                        record.reason_code = Some(rejection.code.as_str().to_owned());
                        record.reason_detail = Some(rejection.detail);
                        record.updated_at = now;
                        vec![Write::Inbound(uetr, record)]
                    }
                }
            }
        };
        let result = self.apply_one_recorded(credit, Box::new(decide)).await?;
        crate::fault::crash_point(crate::fault::RECEIVER_AFTER_CREDIT);
        if result == CreateTransferResult::Ok {
            drop(open);
            let Some(record) = self.parts.store.inbound(peer, &instr.uetr).await? else {
                return Err(EngineError::Unexpected {
                    what: "reading back the credit's record",
                    result: "not found",
                });
            };
            return Ok(Ok(self.decision_from(&instr.uetr, &record)));
        }
        if !result.is_recorded() && result != CreateTransferResult::IdAlreadyFailed {
            drop(open);
            let rejection = ledger_rejection(Some(result), "credit");
            return Ok(Ok(self.decision_rejected(&instr.uetr, &rejection)));
        }
        if !result.is_recorded() {
            record.state = InboundState::Rejected;
            let rejection = if result == CreateTransferResult::IdAlreadyFailed {
                self.failed_credit_reason(instr, liquidity, credited_minor)
                    .await?
            } else {
                ledger_rejection(Some(result), "credit")
            };
            drop(open);
            return self
                .reject_inbound(&instr.uetr, record, rejection)
                .await
                .map(Ok);
        }
        drop(open);
        // The record was made here from `signed`, whose instruction `instr` is.
        match self
            .settle_if_credited(&instr.uetr, record, Some(instr))
            .await?
        {
            Some(record) => Ok(Ok(self.decision_from(&instr.uetr, &record))),
            None => Err(EngineError::Unexpected {
                what: "reading back the credit",
                result: "not found",
            }),
        }
    }

    /// Why the credit of `instr` was refused when its id was first tried, for a retry the
    /// ledger answers `id_already_failed`: the ledger remembers that the id failed with a
    /// transient result, not which. No answer was recorded then (a recorded decision is
    /// answered from the store before any credit is tried), so this is the first answer the
    /// sender hears; it must be a refusal with a true reason, never FF01, since the id can
    /// never be credited. A credit fails transiently in three ways: the creditor's account is
    /// missing (AC01), closed (AC04), or the liquidity account does not cover it (AM04). An
    /// account is in the ledger before the node's metadata names it, and a liquidity account
    /// only ever decreases after genesis (funding is refused there); so a creditor missing now
    /// was missing then, a liquidity short now may have been short then, and a credit that
    /// would fit now failed because its account was closed then and has been reopened since.
    async fn failed_credit_reason(
        &self,
        instr: &Instruction,
        liquidity: u128,
        credited_minor: u128,
    ) -> Result<Rejection, EngineError> {
        let creditor = instr.creditor_account;
        let found = self
            .books()
            .lookup_accounts(vec![AccountId(creditor), AccountId(liquidity)])
            .await?;
        let (Some(account), pool) = (
            found.first().copied().flatten(),
            found.get(1).copied().flatten(),
        ) else {
            return Ok(Rejection::new(
                ReasonCode::Ac01,
                format!(
                    "creditor_account {creditor} does not exist on the {} ledger",
                    self.jurisdiction()
                ),
            ));
        };
        let available = pool.map_or(0, |p| {
            p.credits_posted
                .saturating_sub(p.debits_posted.saturating_add(p.debits_pending))
        });
        if !account.is_closed() && available < credited_minor {
            return Ok(Rejection::new(
                ReasonCode::Am04,
                "insufficient funds for the credit (ledger: exceeds_credits)",
            ));
        }
        Ok(Rejection::new(
            ReasonCode::Ac04,
            format!("creditor_account {creditor} is closed"),
        ))
    }

    /// Authenticates an inbound instruction: its signer verifies for payment signing under the
    /// agreement, is the debtor agent it names, and is a bank of `peer`, the jurisdiction the
    /// Prepare came from (DS0B otherwise). Returns the corridor. A failure is a refusal, never
    /// recorded: anyone who can reach the relay could otherwise write under any UETR.
    /// `verified` is the signer a batch verification found (or its refusal); `None` verifies
    /// here.
    fn authenticate_inbound(
        &self,
        peer: &str,
        signed: &pb::Signed,
        instr: &Instruction,
        t: UnixTime,
        verified: Option<Result<Signer, Rejection>>,
    ) -> Result<&PeerLink, Rejection> {
        let Some(link) = self.parts.peers.get(peer) else {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!("{} has no corridor with {peer}", self.jurisdiction()),
            ));
        };
        let signer = match verified {
            Some(verified) => verified?,
            None => self.instruction_signer(signed, instr, t)?,
        };
        if signer.jurisdiction() != peer {
            return Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the debtor agent's certificate is from {}, but the instruction came from {peer}",
                    signer.jurisdiction()
                ),
            ));
        }
        Ok(link)
    }

    /// Checks an authenticated inbound instruction from the corridor `link`; returns the
    /// amount to credit and the liquidity account. A failure here is a recorded decision.
    /// `creditor` is the creditor account's metadata, read by the caller.
    fn check_inbound(
        &self,
        link: &PeerLink,
        instr: &Instruction,
        t: UnixTime,
        creditor: Option<&AccountMeta>,
    ) -> Result<(u128, u128), Rejection> {
        let peer = link.jurisdiction.as_str();
        let (terms, _) = quote::verify_quote(
            &instr.quote,
            self.trust(),
            self.jurisdiction(),
            t,
            self.parts.limits.clock_skew_secs,
            &[],
        )?;
        if terms.issuing != peer || terms.counterparty != self.jurisdiction() {
            return Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the quote is for {} → {}, not {peer} → {}",
                    terms.issuing,
                    terms.counterparty,
                    self.jurisdiction()
                ),
            ));
        }
        self.check_rate_band(link, &terms)?;
        if terms.target.0.alpha != self.parts.currency.alpha
            || terms.source.0.alpha != link.currency.alpha
            || terms.source.0.alpha != instr.currency.alpha
            || terms.source.1 != instr.amount_minor
        {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                "the quote's amounts do not match the instruction or the corridor's currencies",
            ));
        }
        self.check_times(instr, t)?;
        self.parts.sanctions.screen(instr, instr.creditor_account)?;
        self.check_limit(terms.target.1, "credit")?;
        self.check_customer_account(
            creditor,
            instr.creditor_account,
            &instr.creditor_agent_bic,
            "creditor",
        )?;
        Ok((terms.target.1, link.liquidity_account))
    }

    /// The record of `instr`, whose whole envelope encodes to `envelope` (see
    /// `prepare_locked`).
    fn inbound_record(
        &self,
        instr: &Instruction,
        envelope: Vec<u8>,
        peer: &str,
        state: InboundState,
        credited_minor: u128,
        credit_transfer_id: u128,
    ) -> InboundRecord {
        InboundRecord {
            state,
            instruction_sha256: hex::encode(instr.payload_sha256),
            sender: peer.to_owned(),
            reason_code: None,
            reason_detail: None,
            receipt: None,
            creditor_account: instr.creditor_account,
            credited_minor,
            credit_transfer_id,
            signed_instruction: envelope,
            updated_at: self.clock().unix_secs(),
        }
    }

    async fn reject_inbound(
        &self,
        uetr: &Uetr,
        mut record: InboundRecord,
        rejection: Rejection,
    ) -> Result<RelayDecision, EngineError> {
        record.state = InboundState::Rejected;
        record.reason_code = Some(rejection.code.as_str().to_owned());
        record.reason_detail = Some(rejection.detail.clone());
        record.updated_at = self.clock().unix_secs();
        self.parts
            .store
            .put(vec![Write::Inbound(*uetr, record)])
            .await?;
        Ok(self.decision_rejected(uetr, &rejection))
    }

    /// If the credit of `record` is in the ledger, signs the receipt (from the ledger's
    /// timestamp, so a rebuilt receipt is byte-identical) and records the payment as settled.
    /// `decoded` is the instruction of the record's `signed_instruction` when the caller has
    /// it (decoded from the same bytes); `None` decodes the stored bytes.
    async fn settle_if_credited(
        &self,
        uetr: &Uetr,
        mut record: InboundRecord,
        decoded: Option<&Instruction>,
    ) -> Result<Option<InboundRecord>, EngineError> {
        let id = TransferId(record.credit_transfer_id);
        let found = self.books().lookup_transfers(vec![id]).await?;
        let Some(Some(transfer)) = found.into_iter().next() else {
            return Ok(None);
        };
        let stored;
        let instr = match decoded {
            Some(instr) => instr,
            None => {
                stored = stored_instruction(&record)?;
                &stored
            }
        };
        record.updated_at = self.clock().unix_secs();
        let record = self.settler().settle(
            record,
            instr,
            transfer.amount,
            transfer.id.0,
            transfer.timestamp,
        );
        self.parts
            .store
            .put(vec![Write::Inbound(*uetr, record.clone())])
            .await?;
        Ok(Some(record))
    }

    /// What signs this node's receipts, for a settlement computed away from the engine (in
    /// the ledger's writer, see [`Settler`]).
    fn settler(&self) -> Settler {
        Settler {
            jurisdiction: self.jurisdiction().to_owned(),
            currency: self.parts.currency,
            key: self.parts.signing_key.clone(),
            chain: self.parts.signing_chain.clone(),
        }
    }

    /// Answers a peer's status query about its own payment `uetr`, fencing it when there is no
    /// decision. Only `peer`'s record is read or fenced: another peer's payment under the same
    /// UETR is neither revealed nor blocked. A party that is not a corridor peer is refused
    /// (RR04) before anything is read or written.
    pub async fn relay_status(
        &self,
        peer: &str,
        uetr: Uetr,
        instruction_sha256: &[u8],
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        if let Err(rejection) = self.corridor_peer(peer) {
            return Ok(Err(rejection));
        }
        self.relay_status_checked(peer, uetr, instruction_sha256)
            .await
            .map(Ok)
    }

    /// Refuses `peer` (RR04) unless it is one of this node's configured corridor peers.
    fn corridor_peer(&self, peer: &str) -> Result<(), Rejection> {
        if self.is_corridor_peer(peer) {
            return Ok(());
        }
        Err(Rejection::new(
            ReasonCode::Rr04,
            format!("{peer} is not a relay peer of {}", self.jurisdiction()),
        ))
    }

    async fn relay_status_checked(
        &self,
        peer: &str,
        uetr: Uetr,
        instruction_sha256: &[u8],
    ) -> Result<RelayDecision, EngineError> {
        let _guard = self.locks.lock(uetr).await;
        let existing = self.parts.store.inbound(peer, &uetr).await?;
        let record = match existing {
            Some(record) if record.state == InboundState::Accepting => {
                match self.settle_if_credited(&uetr, record.clone(), None).await? {
                    Some(settled) => Some(settled),
                    None => {
                        let mut fenced = record;
                        fenced.state = InboundState::Fenced;
                        fenced.reason_code = Some(ReasonCode::Ab05.as_str().to_owned());
                        fenced.reason_detail = Some("fenced by a status query".to_owned());
                        fenced.updated_at = self.clock().unix_secs();
                        if self.parts.planted != Some(super::Planted::SkipFence) {
                            self.parts
                                .store
                                .put(vec![Write::Inbound(uetr, fenced.clone())])
                                .await?;
                        }
                        Some(fenced)
                    }
                }
            }
            Some(record) => Some(record),
            None => {
                let fence = InboundRecord {
                    state: InboundState::Fenced,
                    instruction_sha256: hex::encode(instruction_sha256),
                    sender: peer.to_owned(),
                    reason_code: Some(ReasonCode::Ab05.as_str().to_owned()),
                    reason_detail: Some("fenced by a status query".to_owned()),
                    receipt: None,
                    creditor_account: 0,
                    credited_minor: 0,
                    credit_transfer_id: 0,
                    signed_instruction: Vec::new(),
                    updated_at: self.clock().unix_secs(),
                };
                if self.parts.planted != Some(super::Planted::SkipFence) {
                    self.parts
                        .store
                        .put(vec![Write::Inbound(uetr, fence.clone())])
                        .await?;
                }
                Some(fence)
            }
        };
        let Some(record) = record else {
            return Err(EngineError::Unexpected {
                what: "status",
                result: "no record",
            });
        };
        if record.state != InboundState::Fenced
            && !instruction_sha256.is_empty()
            && record.instruction_sha256 != hex::encode(instruction_sha256)
        {
            return Ok(self.decision_rejected(
                &uetr,
                &Rejection::new(
                    ReasonCode::Dupl,
                    "a different instruction holds this UETR here; yours never settled",
                ),
            ));
        }
        Ok(self.decision_from(&uetr, &record))
    }

    fn decision_from(&self, uetr: &Uetr, record: &InboundRecord) -> RelayDecision {
        let decision = match record.state {
            InboundState::Settled => Decision::Settled,
            InboundState::Rejected => Decision::Rejected,
            InboundState::Fenced | InboundState::Accepting => Decision::UnknownFenced,
        };
        RelayDecision {
            uetr: uetr.to_string(),
            decision: decision.into(),
            status_reason_code: record.reason_code.clone().unwrap_or_default(),
            status_reason_detail: record.reason_detail.clone().unwrap_or_default(),
            receipt: record
                .receipt
                .as_deref()
                .and_then(|bytes| pb::Signed::decode(bytes).ok()),
            receiving_jurisdiction: self.jurisdiction().to_owned(),
        }
    }

    fn decision_rejected(&self, uetr: &Uetr, rejection: &Rejection) -> RelayDecision {
        RelayDecision {
            uetr: uetr.to_string(),
            decision: Decision::Rejected.into(),
            status_reason_code: rejection.code.as_str().to_owned(),
            status_reason_detail: rejection.detail.clone(),
            receipt: None,
            receiving_jurisdiction: self.jurisdiction().to_owned(),
        }
    }
}

/// The instruction an inbound record holds, decoded from its stored envelope.
fn stored_instruction(record: &InboundRecord) -> Result<Instruction, EngineError> {
    pb::Signed::decode(record.signed_instruction.as_slice())
        .ok()
        .and_then(|signed| instruction::decode(&signed).ok())
        .ok_or(EngineError::Unexpected {
            what: "decoding a stored instruction",
            result: "corrupt",
        })
}

/// Signs the receipt of a credit and makes its record `Settled`: in the ledger's writer, for a
/// credit and its record made durable in one commit, and from the ledger after a crash (the
/// same inputs give the same bytes: the receipt's time is the credit's ledger timestamp, and
/// Ed25519 signing is deterministic).
struct Settler {
    jurisdiction: String,
    currency: &'static kakehashi_protocol::money::Currency,
    key: ed25519_dalek::SigningKey,
    chain: Vec<Vec<u8>>,
}

impl Settler {
    /// `record` settled by the credit `credit_id` of `amount`, applied at `timestamp`.
    fn settle(
        &self,
        mut record: InboundRecord,
        instr: &Instruction,
        amount: u128,
        credit_id: u128,
        timestamp: kakehashi_ledger::Timestamp,
    ) -> InboundRecord {
        let settled_at =
            UnixTime(i64::try_from(timestamp.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX));
        let receipt = receipt::build_receipt(
            instr,
            &self.jurisdiction,
            &record.sender,
            (self.currency, amount),
            credit_id,
            settled_at,
        );
        let signed_receipt = signed::sign(
            SIGNING_DOMAIN_RECEIPT,
            receipt.encode_to_vec(),
            &self.key,
            &self.chain,
        );
        record.state = InboundState::Settled;
        record.receipt = Some(signed_receipt.encode_to_vec());
        record.credited_minor = amount;
        record
    }
}
