//! Validations both sides share: sanctions screening, instruction times, the per-payment
//! limit, customer accounts, and the reason code of a ledger refusal.

use kakehashi_ledger::CreateTransferResult;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use kakehashi_proto::pb;
use kakehashi_protocol::instruction::Instruction;
use kakehashi_protocol::money;
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::signed::{self, Signer};

use super::Engine;
use crate::AccountKind;
use crate::store::AccountMeta;

impl Engine {
    /// The instruction's signer, verified for payment signing under the agreement as this
    /// node relies on it, and the debtor agent the instruction names (DS0B otherwise). Both
    /// sides check this: the sender before it reserves, the receiver before it credits.
    pub(super) fn instruction_signer(
        &self,
        signed: &pb::Signed,
        instr: &Instruction,
        t: UnixTime,
    ) -> Result<Signer, Rejection> {
        let signer = signed::verify(
            signed,
            SIGNING_DOMAIN_INSTRUCTION,
            self.trust(),
            self.jurisdiction(),
            Purpose::PaymentSigning,
            t,
            &[],
        )?;
        debtor_agent_signer(signer, instr)
    }

    pub(super) fn check_times(&self, instr: &Instruction, t: UnixTime) -> Result<(), Rejection> {
        let skew = i64::try_from(self.parts.limits.clock_skew_secs).unwrap_or(i64::MAX);
        let lifetime = instr.expiry.0.saturating_sub(instr.created.0);
        let max =
            i64::try_from(self.parts.limits.instruction_lifetime_secs_max).unwrap_or(i64::MAX);
        if lifetime > max {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "expiry_date_time: {lifetime} s after creation_date_time; at most {max} s allowed"
                ),
            ));
        }
        if t.0 > instr.expiry.0.saturating_add(skew) {
            return Err(Rejection::new(
                ReasonCode::Ab05,
                format!(
                    "the instruction expired at {} (now {}, clock skew allowed {skew} s)",
                    instr.expiry.to_rfc3339(),
                    t.to_rfc3339()
                ),
            ));
        }
        if instr.created.0 > t.0.saturating_add(skew) {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "creation_date_time {} is in the future (now {}, clock skew allowed {skew} s)",
                    instr.created.to_rfc3339(),
                    t.to_rfc3339()
                ),
            ));
        }
        Ok(())
    }

    /// Whether the instruction's (authenticated) signer may debit its debtor account: the
    /// account exists here, is a customer account and is held by the debtor agent, which
    /// [`Engine::instruction_signer`] has checked is the signer (AC01 otherwise). Checked before
    /// the UETR's record is read and before anything is written, so that a bank can neither
    /// occupy a UETR with another bank's account nor learn whether the UETR is taken. A closed
    /// account is still its holder's: that refusal (AC04) is [`Engine::check_debtor`]'s, and
    /// recorded. `debtor` is the debtor account's metadata as the caller read it.
    pub(super) fn authorize_debtor(
        &self,
        instr: &Instruction,
        debtor: Option<&AccountMeta>,
    ) -> Result<(), Rejection> {
        // `check_customer` checks the holder before whether the account is open, so AC04 means
        // the signer holds it.
        match self.check_customer_account(
            debtor,
            instr.debtor_account,
            &instr.debtor_agent_bic,
            "debtor",
        ) {
            Err(rejection) if rejection.code == ReasonCode::Ac04 => Ok(()),
            other => other,
        }
    }

    /// The sender's checks of the debtor side; `debtor` is the debtor account's metadata as
    /// the caller read it (see [`Engine::check_customer_account`]).
    pub(super) fn check_debtor(
        &self,
        instr: &Instruction,
        debtor: Option<&AccountMeta>,
    ) -> Result<(), Rejection> {
        self.parts.sanctions.screen(instr, instr.debtor_account)?;
        self.check_limit(instr.amount_minor, "amount")?;
        self.check_customer_account(
            debtor,
            instr.debtor_account,
            &instr.debtor_agent_bic,
            "debtor",
        )
    }

    /// RR04 when `minor` (this node's currency) is above the per-payment limit.
    pub(super) fn check_limit(&self, minor: u128, what: &str) -> Result<(), Rejection> {
        if minor <= self.parts.limits.payment_minor_max {
            return Ok(());
        }
        Err(Rejection::new(
            ReasonCode::Rr04,
            format!(
                "{what} above this node's per-payment limit of {} {}",
                money::format_amount(self.parts.currency, self.parts.limits.payment_minor_max)
                    .value,
                self.parts.currency.alpha
            ),
        ))
    }

    /// The `role` ("debtor"/"creditor") account `id` must exist here, be an open customer
    /// account and be held at `bic` (AC01, AC04). `meta` is its metadata, read by the caller
    /// with `?` before the checks, its `closed` from the ledger where the check decides a
    /// payment (see [`Engine::closed_in_ledger`]): a failed read is an operational fault that propagates
    /// (nothing recorded, the request answered `Unavailable`), never a refusal, which would be
    /// recorded under the UETR for good (issue 11, defect 4).
    pub(super) fn check_customer_account(
        &self,
        meta: Option<&AccountMeta>,
        id: u128,
        bic: &str,
        role: &str,
    ) -> Result<(), Rejection> {
        let meta = meta.ok_or_else(|| {
            Rejection::new(
                ReasonCode::Ac01,
                format!(
                    "{role}_account {id} does not exist on the {} ledger",
                    self.jurisdiction()
                ),
            )
        })?;
        check_customer(meta, id, bic, role)
    }
}

fn check_customer(meta: &AccountMeta, id: u128, bic: &str, role: &str) -> Result<(), Rejection> {
    if meta.kind != AccountKind::Customer {
        return Err(Rejection::new(
            ReasonCode::Ac01,
            format!("{role}_account {id} is not a customer account"),
        ));
    }
    // Who holds it before whether it is open: a closed account (AC04) is only reported to
    // its holder's bank (see `Engine::authorize_debtor`).
    if meta.owner_bic.as_deref() != Some(bic) {
        return Err(Rejection::new(
            ReasonCode::Ac01,
            format!("{role}_account {id} is not held at {role} agent {bic}"),
        ));
    }
    if meta.closed {
        return Err(Rejection::new(
            ReasonCode::Ac04,
            format!("{role}_account {id} is closed"),
        ));
    }
    Ok(())
}

/// Maps a ledger refusal to the payment's reason code.
pub(super) fn ledger_rejection(result: Option<CreateTransferResult>, what: &str) -> Rejection {
    match result {
        Some(CreateTransferResult::ExceedsCredits) => Rejection::new(
            ReasonCode::Am04,
            format!("insufficient funds for the {what} (ledger: exceeds_credits)"),
        ),
        Some(
            r @ (CreateTransferResult::DebitAccountNotFound
            | CreateTransferResult::CreditAccountNotFound),
        ) => Rejection::new(ReasonCode::Ac01, format!("{what}: ledger {}", r.as_str())),
        // The checks read the ledger's flag before the transfer, under `Engine::closing`, so
        // this is only a backstop: the ledger's own refusal means the same AC04.
        Some(
            r @ (CreateTransferResult::DebitAccountAlreadyClosed
            | CreateTransferResult::CreditAccountAlreadyClosed),
        ) => Rejection::new(
            ReasonCode::Ac04,
            format!("{what}: the account is closed (ledger: {})", r.as_str()),
        ),
        Some(r) => Rejection::new(ReasonCode::Ff01, format!("{what}: ledger {}", r.as_str())),
        None => Rejection::new(ReasonCode::Ff01, format!("{what}: no ledger result")),
    }
}

/// `signer` when it is the debtor agent `instr` names (DS0B otherwise): an instruction is
/// signed by the bank that sends it.
pub(super) fn debtor_agent_signer(
    signer: Signer,
    instr: &Instruction,
) -> Result<Signer, Rejection> {
    if signer.subject_cn() != instr.debtor_agent_bic {
        return Err(Rejection::new(
            ReasonCode::Ds0b,
            format!(
                "the instruction is signed by {} but names debtor agent {}",
                signer.subject_cn(),
                instr.debtor_agent_bic
            ),
        ));
    }
    Ok(signer)
}
