//! Operator accounts: genesis, balances, and opening, funding, closing and reopening accounts.
//!
//! A customer account is closed in the ledger itself, by a closing transfer: a pending
//! transfer of 0 with `closing_debit` from the account to the funding account (the
//! operator's own account, never closed and without limits, so the transfer cannot fail for
//! the funding side; it moves nothing, and the pair audit, which reads only the corridor and
//! liquidity accounts, never sees it). The journal keeps it, so an auditor sees when an
//! account was closed; voiding it reopens the account. Its id derives from the account and
//! the number of closing transfers before it, so a close retried after a crash is the same
//! transfer (`exists`), and the ledger is the one place that says whether an account is
//! closed. The ledger then refuses every transfer of the account but a void; so that no
//! reservation of it is left to post, a close waits for the reservations being made
//! (`Engine::closing`) and is refused while any is pending. Nodes before this kept a `closed`
//! flag in the payment store; start-up carries such a close over to the ledger once.

use std::sync::atomic::Ordering;

use kakehashi_ledger::{
    AMOUNT_MAX, Account, AccountFlags, AccountId, CreateAccountResult, CreateTransferResult,
    NewAccount, NewTransfer, TransferFlags, TransferId,
};
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use kakehashi_protocol::instruction;
use kakehashi_protocol::money;
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::transfer::{codes, transfer_id};

use super::{Engine, EngineError};
use crate::AccountKind;
use crate::store::{AccountMeta, Write};

impl Engine {
    /// Creates the configured accounts and their opening balances (idempotent: a restart finds
    /// them `exists`), and records their metadata unless already known (an operator's close
    /// survives restarts).
    pub async fn genesis(
        &self,
        accounts: Vec<(u128, AccountMeta, u128)>,
    ) -> Result<(), EngineError> {
        let ledger_id = u32::from(self.parts.currency.numeric);
        let new_accounts: Vec<NewAccount> = accounts
            .iter()
            .map(|(id, meta, _)| NewAccount {
                id: AccountId(*id),
                ledger: ledger_id,
                code: meta.kind.ledger_code(),
                flags: account_flags(meta.kind),
                ..NewAccount::default()
            })
            .collect();
        let (ts, _) = self.clock().now();
        let results = self
            .books()
            .create_accounts(new_accounts.clone(), ts)
            .await?;
        for (((id, meta, _), result), new) in accounts.iter().zip(&results).zip(&new_accounts) {
            let closed_since = *result == CreateAccountResult::ExistsWithDifferentFlags
                && self.closed_as_created(new).await?;
            if !result.is_recorded() && !closed_since {
                return Err(EngineError::Config(format!(
                    "account {id} ({}) does not match the ledger: {}",
                    meta.name,
                    result.as_str()
                )));
            }
        }
        let mut writes = Vec::new();
        for (id, meta, _) in &accounts {
            if self.parts.store.account(*id).await?.is_none() {
                writes.push(Write::Account(*id, meta.clone()));
            }
        }
        if !writes.is_empty() {
            self.parts.store.put(writes).await?;
        }
        let funding = self.parts.funding_account;
        let transfers: Vec<NewTransfer> = accounts
            .iter()
            .filter(|(_, _, opening)| *opening > 0)
            .map(|(id, _, opening)| NewTransfer {
                id: TransferId(transfer_id(b"genesis", &id.to_be_bytes())),
                debit_account_id: AccountId(funding),
                credit_account_id: AccountId(*id),
                amount: *opening,
                ledger: ledger_id,
                code: codes::GENESIS,
                ..NewTransfer::default()
            })
            .collect();
        if !transfers.is_empty() {
            let results = self.books().create_transfers(transfers, ts).await?;
            if let Some(bad) = results.iter().find(|r| !r.is_recorded()) {
                return Err(EngineError::Config(format!(
                    "genesis funding refused by the ledger: {} (an opening balance changed \
                     after the first start? fund with `FundAccount` instead)",
                    bad.as_str()
                )));
            }
        }
        self.carry_over_store_closes().await
    }

    /// Whether the ledger's account `new.id` is `new` closed since (its flags `new`'s plus
    /// `closed`, every other field equal): the ledger compares flags first, so a closed
    /// account's creation retried at start answers `exists_with_different_flags`.
    async fn closed_as_created(&self, new: &NewAccount) -> Result<bool, EngineError> {
        let found = self.books().lookup_accounts(vec![new.id]).await?;
        Ok(found.first().copied().flatten().is_some_and(|a| {
            a.is_closed()
                && a.flags == new.flags.union(AccountFlags::CLOSED)
                && a.ledger == new.ledger
                && a.code == new.code
                && (a.user_data_128, a.user_data_64, a.user_data_32)
                    == (new.user_data_128, new.user_data_64, new.user_data_32)
        }))
    }

    /// Closes in the ledger, once, every account that a node before closing transfers closed
    /// with the payment store's `closed` flag, and clears the flag. An account with payments
    /// in flight stays closed by the flag (the checks still honour it) and is carried over at
    /// a later start.
    async fn carry_over_store_closes(&self) -> Result<(), EngineError> {
        let flagged: Vec<u128> = self
            .parts
            .store
            .accounts()
            .await?
            .into_iter()
            .filter(|(_, meta)| meta.closed && meta.kind == AccountKind::Customer)
            .map(|(id, _)| id)
            .collect();
        for id in flagged {
            let _closing = self.closing.write().await;
            match self.close_locked(id, None).await? {
                Ok(()) => tracing::info!(
                    account = %id,
                    "an account closed by the payment store's flag is now closed in the ledger"
                ),
                Err(refusal) => tracing::warn!(
                    account = %id,
                    ?refusal,
                    "an account closed by the payment store's flag could not be closed in the \
                     ledger yet; it stays closed by the flag and is tried again at the next start"
                ),
            }
        }
        Ok(())
    }

    /// Balances of `ids` (every known account when empty), only of accounts `owner` holds
    /// when it is given. `Ok(Err(..))` is a refusal (AC01 for an unknown account, and in the
    /// same words for an account of another bank, so a bank cannot learn that it exists);
    /// `Err` an operational fault, which the caller answers without its detail (see
    /// [`EngineError::is_transient`]).
    pub async fn balances(
        &self,
        ids: Vec<u128>,
        owner: Option<&str>,
    ) -> Result<Result<Vec<pb::AccountBalance>, Rejection>, EngineError> {
        let metas = self.parts.store.accounts().await?;
        let visible =
            |meta: &AccountMeta| owner.is_none_or(|bic| meta.owner_bic.as_deref() == Some(bic));
        let wanted: Vec<(u128, Option<AccountMeta>)> = if ids.is_empty() {
            metas
                .into_iter()
                .filter(|(_, m)| visible(m))
                .map(|(id, m)| (id, Some(m)))
                .collect()
        } else {
            ids.iter()
                .map(|id| {
                    (
                        *id,
                        metas
                            .iter()
                            .find(|(m, meta)| m == id && visible(meta))
                            .map(|(_, m)| m.clone()),
                    )
                })
                .collect()
        };
        let lookup: Vec<AccountId> = wanted.iter().map(|(id, _)| AccountId(*id)).collect();
        let found = self.books().lookup_accounts(lookup).await?;
        let (_, t) = self.clock().now();
        let mut out = Vec::new();
        for ((id, meta), account) in wanted.into_iter().zip(found) {
            let (Some(meta), Some(account)) = (meta, account) else {
                return Ok(Err(Rejection::new(
                    ReasonCode::Ac01,
                    format!(
                        "account {id} does not exist on the {} ledger",
                        self.jurisdiction()
                    ),
                )));
            };
            out.push(self.balance_of(id, &meta, &account, t));
        }
        Ok(Ok(out))
    }

    /// One page of balances in account-id order: the accounts after `after` (from the first
    /// when `None`), only those `owner` holds when it is given, at most `limit` of them and no
    /// more than fit in `bytes_max` bytes of encoded `AccountBalance` entries (at least one).
    /// Returns the page and, when accounts remain, the id of the last one on it, from which
    /// the next page starts.
    pub async fn balances_page(
        &self,
        owner: Option<&str>,
        after: Option<u128>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<(Vec<pb::AccountBalance>, Option<u128>), EngineError> {
        use prost::Message as _;
        // The store scans every account's metadata (small records, in id order); the ledger is
        // asked only for the page's accounts.
        let mut candidates = self
            .parts
            .store
            .accounts()
            .await?
            .into_iter()
            .filter(|(id, meta)| {
                after.is_none_or(|a| *id > a)
                    && owner.is_none_or(|bic| meta.owner_bic.as_deref() == Some(bic))
            })
            .peekable();
        let mut page: Vec<(u128, AccountMeta)> = Vec::new();
        while page.len() < limit.max(1) {
            let Some(next) = candidates.next() else {
                break;
            };
            page.push(next);
        }
        let mut more = candidates.peek().is_some();
        let lookup: Vec<AccountId> = page.iter().map(|(id, _)| AccountId(*id)).collect();
        let found = self.books().lookup_accounts(lookup).await?;
        let (_, t) = self.clock().now();
        let mut out = Vec::with_capacity(page.len());
        let mut bytes = 0usize;
        let mut last = None;
        for ((id, meta), account) in page.iter().zip(found) {
            let Some(account) = account else {
                return Err(EngineError::Unexpected {
                    what: "listing balances",
                    result: "an account of the store is missing from the ledger",
                });
            };
            let balance = self.balance_of(*id, meta, &account, t);
            // Field tag, length prefix and body of one repeated entry.
            let entry =
                balance.encoded_len() + 1 + prost::length_delimiter_len(balance.encoded_len());
            if !out.is_empty() && bytes.saturating_add(entry) > bytes_max {
                more = true;
                break;
            }
            bytes = bytes.saturating_add(entry);
            out.push(balance);
            last = Some(*id);
        }
        Ok((out, if more { last } else { None }))
    }

    fn balance_of(
        &self,
        id: u128,
        meta: &AccountMeta,
        account: &Account,
        t: UnixTime,
    ) -> pb::AccountBalance {
        let c = self.parts.currency;
        let (posted, negative) = if account.credits_posted >= account.debits_posted {
            (account.credits_posted - account.debits_posted, false)
        } else {
            (account.debits_posted - account.credits_posted, true)
        };
        let signed_amount = |minor: u128, negative: bool| {
            let mut a = money::format_amount(c, minor);
            if negative && minor > 0 {
                a.value.insert(0, '-');
            }
            a
        };
        let available = if negative {
            (posted.saturating_add(account.debits_pending), true)
        } else if posted >= account.debits_pending {
            (posted - account.debits_pending, false)
        } else {
            (account.debits_pending - posted, true)
        };
        pb::AccountBalance {
            account: id.to_string(),
            owner_bic: meta.owner_bic.clone().unwrap_or_default(),
            name: meta.name.clone(),
            kind: meta.kind.as_str().to_owned(),
            closed: meta.closed || account.is_closed(),
            posted_balance: Some(signed_amount(posted, negative)),
            pending_debits: Some(money::format_amount(c, account.debits_pending)),
            available_balance: Some(signed_amount(available.0, available.1)),
            as_of: Some(prost_types::Timestamp {
                seconds: t.0,
                nanos: 0,
            }),
        }
    }

    /// Operator: opens a customer account. `Ok(Err(..))` is a refusal, `Err` an operational
    /// fault, as for [`Engine::balances`].
    pub async fn open_account(
        &self,
        id: u128,
        owner_bic: String,
        name: String,
    ) -> Result<Result<pb::AccountBalance, Rejection>, EngineError> {
        if id == 0 || id == u128::MAX {
            return Ok(Err(ff01("account: must be a non-zero decimal account id")));
        }
        let owner_bic = match instruction::bic("owner_bic", owner_bic) {
            Ok(bic) => bic,
            Err(rejection) => return Ok(Err(rejection)),
        };
        // Characters 5-6 of a BIC are its ISO 3166 country; a node holds accounts only for
        // banks of its own jurisdiction.
        if owner_bic.get(4..6) != Some(self.jurisdiction()) {
            return Ok(Err(ff01(format!(
                "owner_bic: {owner_bic} is a bank of {}, not of {}; open its accounts on that \
                 jurisdiction's node",
                owner_bic.get(4..6).unwrap_or("?"),
                self.jurisdiction()
            ))));
        }
        // The rules of the instruction's names: what an operator names an account is shown
        // next to them, so it may not hide control or bidirectional formatting characters.
        let name = match instruction::name("name", name) {
            Ok(name) => name,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let ledger_id = u32::from(self.parts.currency.numeric);
        let new = NewAccount {
            id: AccountId(id),
            ledger: ledger_id,
            code: AccountKind::Customer.ledger_code(),
            flags: account_flags(AccountKind::Customer),
            ..NewAccount::default()
        };
        let (ts, _) = self.clock().now();
        let result = self
            .books()
            .create_accounts(vec![new], ts)
            .await?
            .into_iter()
            .next();
        match result {
            Some(CreateAccountResult::Ok) => {}
            Some(other) => {
                return Ok(Err(Rejection::new(
                    ReasonCode::Dupl,
                    format!("account {id}: {}", other.as_str()),
                )));
            }
            None => {
                return Err(EngineError::Unexpected {
                    what: "opening an account",
                    result: "no result",
                });
            }
        }
        let meta = AccountMeta {
            kind: AccountKind::Customer,
            owner_bic: Some(owner_bic),
            name,
            closed: false,
        };
        self.parts.store.put(vec![Write::Account(id, meta)]).await?;
        self.balance(id).await
    }

    /// The balance of the one account `id`, as the operator calls answer it.
    async fn balance(
        &self,
        id: u128,
    ) -> Result<Result<pb::AccountBalance, Rejection>, EngineError> {
        Ok(self
            .balances(vec![id], None)
            .await?
            .map(|mut balances| balances.remove(0)))
    }

    /// Operator: credits `id` from the funding account. `Ok(Err(..))` is a refusal, `Err` an
    /// operational fault, as for [`Engine::balances`].
    pub async fn fund_account(
        &self,
        id: u128,
        amount: &pb::ActiveCurrencyAndAmount,
    ) -> Result<Result<pb::AccountBalance, Rejection>, EngineError> {
        let (currency, minor) = match money::parse_amount(amount) {
            Ok(parsed) => parsed,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if currency.alpha != self.parts.currency.alpha {
            return Ok(Err(ff01(format!(
                "amount: this node's ledger is {}, not {}",
                self.parts.currency.alpha, currency.alpha
            ))));
        }
        if minor == 0 {
            return Ok(Err(ff01("amount: must be greater than zero")));
        }
        let max = self.parts.limits.funding_minor_max;
        if minor > max {
            return Ok(Err(ff01(format!(
                "amount: {} is above the ceiling of one funding call, {} ([admin] max_funding)",
                money::format_amount(self.parts.currency, minor).value,
                money::format_amount(self.parts.currency, max).value
            ))));
        }
        let Some(meta) = self.parts.store.account(id).await? else {
            return Ok(Err(Rejection::new(
                ReasonCode::Ac01,
                format!("account {id} does not exist"),
            )));
        };
        // Corridor and liquidity accounts move only by payments (and their configured opening
        // balance): cash created there would be money a peer can draw that no bank paid in.
        if meta.kind != AccountKind::Customer {
            return Ok(Err(ff01(format!(
                "account: {id} is a {} account; only customer accounts are funded",
                meta.kind.as_str()
            ))));
        }
        if meta.closed {
            return Ok(Err(Rejection::new(
                ReasonCode::Ac04,
                format!("account {id} is closed"),
            )));
        }
        let seq = self.quote_seq.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 16];
        self.parts
            .entropy
            .fill(&mut nonce)
            .map_err(|_| EngineError::Task("the system random source failed".into()))?;
        let transfer = NewTransfer {
            id: TransferId(transfer_id(
                b"funding",
                &[&nonce[..], &seq.to_be_bytes()].concat(),
            )),
            debit_account_id: AccountId(self.parts.funding_account),
            credit_account_id: AccountId(id),
            amount: minor,
            ledger: u32::from(self.parts.currency.numeric),
            code: codes::FUNDING,
            ..NewTransfer::default()
        };
        let (ts, _) = self.clock().now();
        let results = self.books().create_transfers(vec![transfer], ts).await?;
        match results.first().copied() {
            Some(result) if result.is_recorded() => {}
            // The account is in the store but not in the ledger: refused like a payment to it.
            Some(
                CreateTransferResult::DebitAccountNotFound
                | CreateTransferResult::CreditAccountNotFound,
            ) => {
                return Ok(Err(Rejection::new(
                    ReasonCode::Ac01,
                    format!(
                        "account {id} does not exist on the {} ledger",
                        self.jurisdiction()
                    ),
                )));
            }
            // Closed in the ledger: as a payment to it is refused.
            Some(CreateTransferResult::CreditAccountAlreadyClosed) => {
                return Ok(Err(Rejection::new(
                    ReasonCode::Ac04,
                    format!("account {id} is closed"),
                )));
            }
            // The operator's amount is too large for the balances it would move.
            Some(
                CreateTransferResult::OverflowsDebitsPosted
                | CreateTransferResult::OverflowsCreditsPosted
                | CreateTransferResult::OverflowsDebits
                | CreateTransferResult::OverflowsCredits,
            ) => {
                return Ok(Err(ff01(
                    "amount: too large, an account balance would overflow",
                )));
            }
            // Anything else (the funding account has no limit and the id is fresh) is a fault
            // of this node, not of the operator's request: its name stays in the log.
            Some(result) => {
                return Err(EngineError::Unexpected {
                    what: "funding an account",
                    result: result.as_str(),
                });
            }
            None => {
                return Err(EngineError::Unexpected {
                    what: "funding an account",
                    result: "no result",
                });
            }
        }
        self.balance(id).await
    }

    /// Operator: closes the customer account `id` in the ledger (see the module
    /// documentation); payments to or from it are AC04 from then on. With `sweep_to`, its
    /// whole balance moves to that account (an open customer account or the funding account)
    /// in the same linked chain as the closing transfer, so both happen or neither; without,
    /// the balance stays in the closed account and is reported. Closing a closed account
    /// changes nothing (a retry). `Ok(Err(..))` is a refusal, `Err` an operational fault, as
    /// for [`Engine::balances`].
    pub async fn close_account(
        &self,
        id: u128,
        sweep_to: Option<u128>,
    ) -> Result<Result<pb::AccountBalance, AccountRefusal>, EngineError> {
        {
            let _closing = self.closing.write().await;
            if let Err(refusal) = self.close_locked(id, sweep_to).await? {
                return Ok(Err(refusal));
            }
        }
        Ok(self.balance(id).await?.map_err(AccountRefusal::from))
    }

    /// Operator: reopens the customer account `id` by voiding its closing transfer; payments
    /// to and from it settle again. Reopening an open account changes nothing (a retry).
    /// `Ok(Err(..))` is a refusal, `Err` an operational fault, as for [`Engine::balances`].
    pub async fn reopen_account(
        &self,
        id: u128,
    ) -> Result<Result<pb::AccountBalance, AccountRefusal>, EngineError> {
        {
            let _closing = self.closing.write().await;
            if let Err(refusal) = self.reopen_locked(id).await? {
                return Ok(Err(refusal));
            }
        }
        Ok(self.balance(id).await?.map_err(AccountRefusal::from))
    }

    /// [`Engine::close_account`]'s work, with `closing` held for writing.
    async fn close_locked(
        &self,
        id: u128,
        sweep_to: Option<u128>,
    ) -> Result<Result<(), AccountRefusal>, EngineError> {
        let meta = match self.customer_meta(id, "closed").await? {
            Ok(meta) => meta,
            Err(rejection) => return Ok(Err(rejection.into())),
        };
        if let Some(to) = sweep_to
            && let Err(rejection) = self.check_sweep_target(id, to).await?
        {
            return Ok(Err(rejection.into()));
        }
        let lookup: Vec<AccountId> = std::iter::once(id).chain(sweep_to).map(AccountId).collect();
        let found = self.books().lookup_accounts(lookup).await?;
        let Some(account) = found.first().copied().flatten() else {
            return Ok(Err(self.not_in_ledger(id).into()));
        };
        if let Some(to) = sweep_to {
            match found.get(1).copied().flatten() {
                None => return Ok(Err(self.not_in_ledger(to).into())),
                Some(target) if target.is_closed() => {
                    return Ok(Err(Rejection::new(
                        ReasonCode::Ac04,
                        format!("sweep_to: account {to} is closed"),
                    )
                    .into()));
                }
                Some(_) => {}
            }
        }
        if account.is_closed() {
            // Closed already (a close retried after its answer was lost, or another one):
            // nothing to do, unless a sweep is asked for a balance the earlier close left.
            if sweep_to.is_some() && account.credits_posted != account.debits_posted {
                return Ok(Err(Rejection::new(
                    ReasonCode::Ac04,
                    format!(
                        "account {id} is already closed with its balance in it; reopen it to \
                         sweep the balance, then close it again"
                    ),
                )
                .into()));
            }
            self.forget_store_close(id, meta).await?;
            return Ok(Ok(()));
        }
        if account.debits_pending > 0 {
            // The ledger refuses to post a reservation of a closed account, and the receiver
            // may already have credited the payment: close only once every one is decided.
            return Ok(Err(AccountRefusal::NotNow(format!(
                "account {id} has payments in flight ({} {} reserved); close it once they are \
                 decided",
                money::format_amount(self.parts.currency, account.debits_pending).value,
                self.parts.currency.alpha
            ))));
        }
        let n = self.closing_transfers(id).await?;
        let ledger = u32::from(self.parts.currency.numeric);
        let mut chain = Vec::with_capacity(2);
        if let Some(to) = sweep_to {
            chain.push(NewTransfer {
                id: TransferId(closing_step_id(b"sweep", id, n)),
                debit_account_id: AccountId(id),
                credit_account_id: AccountId(to),
                // A balancing debit moves what the account holds, at most this: the balance
                // is read by the ledger in the chain, not by the node before it.
                amount: AMOUNT_MAX,
                user_data_64: n,
                ledger,
                code: codes::SWEEP,
                flags: TransferFlags::LINKED.union(TransferFlags::BALANCING_DEBIT),
                ..NewTransfer::default()
            });
        }
        chain.push(NewTransfer {
            id: TransferId(closing_step_id(b"close", id, n)),
            debit_account_id: AccountId(id),
            credit_account_id: AccountId(self.parts.funding_account),
            amount: 0,
            user_data_64: n,
            ledger,
            code: codes::CLOSING,
            flags: TransferFlags::PENDING.union(TransferFlags::CLOSING_DEBIT),
            // No timeout: an expiry would reopen the account.
            timeout: 0,
            ..NewTransfer::default()
        });
        let len = chain.len();
        let (ts, _) = self.clock().now();
        let results = self.books().create_transfers(chain, ts).await?;
        // In a failed chain the event that failed names the reason; the others are
        // `linked_event_failed`.
        let failed = results
            .iter()
            .copied()
            .find(|r| !r.is_recorded() && *r != CreateTransferResult::LinkedEventFailed)
            .or_else(|| results.iter().copied().find(|r| !r.is_recorded()));
        match failed {
            None if results.len() == len => {}
            None => {
                return Err(EngineError::Unexpected {
                    what: "closing an account",
                    result: "a result missing",
                });
            }
            Some(
                CreateTransferResult::OverflowsCreditsPosted
                | CreateTransferResult::OverflowsCredits,
            ) => {
                return Ok(Err(ff01(
                    "sweep_to: too large, the account's balance would overflow",
                )
                .into()));
            }
            // Everything else was checked above, with `closing` held: a fault of this node.
            Some(result) => {
                return Err(EngineError::Unexpected {
                    what: "closing an account",
                    result: result.as_str(),
                });
            }
        }
        self.forget_store_close(id, meta).await?;
        Ok(Ok(()))
    }

    /// [`Engine::reopen_account`]'s work, with `closing` held for writing.
    async fn reopen_locked(&self, id: u128) -> Result<Result<(), AccountRefusal>, EngineError> {
        let meta = match self.customer_meta(id, "reopened").await? {
            Ok(meta) => meta,
            Err(rejection) => return Ok(Err(rejection.into())),
        };
        let found = self.books().lookup_accounts(vec![AccountId(id)]).await?;
        let Some(account) = found.first().copied().flatten() else {
            return Ok(Err(self.not_in_ledger(id).into()));
        };
        if account.is_closed() {
            let Some(last) = self.closing_transfers(id).await?.checked_sub(1) else {
                return Err(EngineError::Unexpected {
                    what: "reopening an account",
                    result: "closed in the ledger by no closing transfer of this node",
                });
            };
            let void = NewTransfer {
                id: TransferId(closing_step_id(b"reopen", id, last)),
                pending_id: TransferId(closing_step_id(b"close", id, last)),
                flags: TransferFlags::VOID_PENDING_TRANSFER,
                ..NewTransfer::default()
            };
            let result = self.apply_one(void).await?;
            if !result.is_recorded() && result != CreateTransferResult::PendingTransferAlreadyVoided
            {
                return Err(EngineError::Unexpected {
                    what: "reopening an account",
                    result: result.as_str(),
                });
            }
        }
        self.forget_store_close(id, meta).await?;
        Ok(Ok(()))
    }

    /// How many closing transfers account `id` has had: the index of its next one (the
    /// ledger's transfers are the count; a close creates one after the ones before it, with
    /// `closing` held, so they are numbered without gaps).
    async fn closing_transfers(&self, id: u128) -> Result<u64, EngineError> {
        let mut n = 0u64;
        while n < CLOSES_MAX {
            let ids: Vec<TransferId> = (n..n.saturating_add(CLOSES_PROBED))
                .map(|k| TransferId(closing_step_id(b"close", id, k)))
                .collect();
            let found = self.books().lookup_transfers(ids).await?;
            if let Some(free) = found.iter().position(Option::is_none) {
                return Ok(n.saturating_add(free as u64));
            }
            n = n.saturating_add(CLOSES_PROBED);
        }
        Err(EngineError::Unexpected {
            what: "closing an account",
            result: "more closes of one account than the node counts",
        })
    }

    /// The store's metadata of the customer account `id` (AC01 unknown, FF01 another kind:
    /// only customer accounts can be `done`).
    async fn customer_meta(
        &self,
        id: u128,
        done: &str,
    ) -> Result<Result<AccountMeta, Rejection>, EngineError> {
        let Some(meta) = self.parts.store.account(id).await? else {
            return Ok(Err(Rejection::new(
                ReasonCode::Ac01,
                format!("account {id} does not exist"),
            )));
        };
        if meta.kind != AccountKind::Customer {
            return Ok(Err(ff01(format!(
                "account {id} is a {} account; only customer accounts can be {done}",
                meta.kind.as_str()
            ))));
        }
        Ok(Ok(meta))
    }

    /// Whether the balance of `id` may be swept to `to`: another account, an open customer
    /// account or the funding account (a cash-out). Corridor and liquidity accounts move only
    /// by payments.
    async fn check_sweep_target(
        &self,
        id: u128,
        to: u128,
    ) -> Result<Result<(), Rejection>, EngineError> {
        if to == id {
            return Ok(Err(ff01(format!(
                "sweep_to: {to} is the account being closed"
            ))));
        }
        let Some(meta) = self.parts.store.account(to).await? else {
            return Ok(Err(Rejection::new(
                ReasonCode::Ac01,
                format!("sweep_to: account {to} does not exist"),
            )));
        };
        match meta.kind {
            AccountKind::Customer if meta.closed => Ok(Err(Rejection::new(
                ReasonCode::Ac04,
                format!("sweep_to: account {to} is closed"),
            ))),
            AccountKind::Customer | AccountKind::Funding => Ok(Ok(())),
            AccountKind::Corridor | AccountKind::Liquidity => Ok(Err(ff01(format!(
                "sweep_to: {to} is a {} account; a balance is swept to a customer account or \
                 the funding account",
                meta.kind.as_str()
            )))),
        }
    }

    /// Clears the payment store's `closed` flag of `id` (the ledger says now whether it is
    /// closed), if it was set.
    async fn forget_store_close(&self, id: u128, mut meta: AccountMeta) -> Result<(), EngineError> {
        if !meta.closed {
            return Ok(());
        }
        meta.closed = false;
        self.parts.store.put(vec![Write::Account(id, meta)]).await?;
        Ok(())
    }

    fn not_in_ledger(&self, id: u128) -> Rejection {
        Rejection::new(
            ReasonCode::Ac01,
            format!(
                "account {id} does not exist on the {} ledger",
                self.jurisdiction()
            ),
        )
    }

    /// `meta`, the payment store's metadata of customer account `id`, with `closed` set when
    /// the ledger has closed the account, so that the payment checks read one flag. Called
    /// with `closing` held for reading, so the answer holds until the caller's transfer.
    pub(super) async fn closed_in_ledger(
        &self,
        id: u128,
        meta: Option<AccountMeta>,
    ) -> Result<Option<AccountMeta>, EngineError> {
        let Some(mut meta) = meta else {
            return Ok(None);
        };
        // Only an open customer account's answer depends on the ledger.
        if meta.closed || meta.kind != AccountKind::Customer {
            return Ok(Some(meta));
        }
        let found = self.books().lookup_accounts(vec![AccountId(id)]).await?;
        if found
            .first()
            .copied()
            .flatten()
            .is_some_and(|account: Account| account.is_closed())
        {
            meta.closed = true;
        }
        Ok(Some(meta))
    }
}

/// Why the operator's close or reopen of an account was not carried out.
#[derive(Debug)]
pub enum AccountRefusal {
    /// Refused with a reason code, as the other operator calls are (AC01 unknown account, FF01
    /// not a customer account or a bad sweep target, AC04 a closed sweep target).
    Rejected(Rejection),
    /// Not now, and no reason code fits: payments from the account are in flight. The service
    /// answers FAILED_PRECONDITION without a reason code.
    NotNow(String),
}

impl From<Rejection> for AccountRefusal {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

/// Closing transfers of one account the node looks for in one ledger lookup.
const CLOSES_PROBED: u64 = 16;

/// Closes of one account the node counts (each is a ledger transfer an operator made; the
/// bound keeps the count's search finite).
const CLOSES_MAX: u64 = 1 << 20;

/// The id of a step (`close`, `sweep`, `reopen`) of the `n`-th close of account `id`.
fn closing_step_id(step: &[u8], id: u128, n: u64) -> u128 {
    transfer_id(step, &[&id.to_be_bytes()[..], &n.to_be_bytes()].concat())
}

fn account_flags(kind: AccountKind) -> AccountFlags {
    match kind {
        // Customers and liquidity pools can only spend what they hold: the ledger refuses the
        // rest with `exceeds_credits`, which the relay reports as AM04.
        AccountKind::Customer | AccountKind::Liquidity => {
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY)
        }
        AccountKind::Corridor | AccountKind::Funding => AccountFlags::HISTORY,
    }
}

fn ff01(detail: impl Into<String>) -> Rejection {
    Rejection::new(ReasonCode::Ff01, detail)
}

#[cfg(test)]
mod tests {
    use kakehashi_ledger::{Account, AccountId, CreateTransferResult, NewTransfer, TransferFlags};
    use kakehashi_ledger::{Transfer, TransferId};
    use kakehashi_proto::pb::{PaymentStatusReport, TransactionStatus};
    use kakehashi_protocol::reason::ReasonCode;
    use kakehashi_protocol::transfer::{codes, credit_transfer_id};

    use super::{AccountRefusal, closing_step_id};
    use crate::engine::{Engine, Submitted};
    use crate::testing::{jp_to_sg, new_uetr, pair};

    async fn account(engine: &Engine, id: u128) -> Account {
        engine
            .books()
            .lookup_accounts(vec![AccountId(id)])
            .await
            .expect("lookup")
            .remove(0)
            .expect("the account exists")
    }

    async fn transfer(engine: &Engine, id: u128) -> Option<Transfer> {
        engine
            .books()
            .lookup_transfers(vec![TransferId(id)])
            .await
            .expect("lookup")
            .remove(0)
    }

    /// The accounts a JP→SG payment of the devnet moves: the debtor and the corridor on JP,
    /// the liquidity and the creditor on SG.
    async fn books(jp: &Engine, sg: &Engine) -> [Account; 4] {
        [
            account(jp, 1001).await,
            account(jp, 9002).await,
            account(sg, 9103).await,
            account(sg, 2001).await,
        ]
    }

    async fn pay(jp: &Engine) -> PaymentStatusReport {
        match jp.submit(jp_to_sg(jp, new_uetr())).await.expect("no fault") {
            Submitted::Report(report) => *report,
            Submitted::Invalid(rejection) => panic!("invalid: {rejection}"),
        }
    }

    async fn close(engine: &Engine, id: u128, sweep_to: Option<u128>) {
        let closed = engine
            .close_account(id, sweep_to)
            .await
            .expect("no fault")
            .expect("closed");
        assert!(closed.closed, "{closed:?}");
    }

    async fn reopen(engine: &Engine, id: u128) {
        let opened = engine
            .reopen_account(id)
            .await
            .expect("no fault")
            .expect("reopened");
        assert!(!opened.closed, "{opened:?}");
    }

    fn refused(
        outcome: Result<
            Result<kakehashi_proto::pb::AccountBalance, AccountRefusal>,
            crate::engine::EngineError,
        >,
    ) -> AccountRefusal {
        outcome.expect("no fault").expect_err("refused")
    }

    /// Issue 13, item 3: a closed account is AC04 on the sender's side and on the receiver's,
    /// with nothing moved on either ledger; reopened, payments settle again.
    #[tokio::test]
    async fn a_closed_account_is_ac04_both_ways_and_settles_again_once_reopened() {
        let pair = pair().await;
        let (jp, sg) = (pair.jp.engine(), pair.sg.engine());

        close(jp, 1001, None).await;
        assert!(account(jp, 1001).await.is_closed(), "closed in the ledger");
        let before = books(jp, sg).await;
        let report = pay(jp).await;
        assert_eq!(report.transaction_status(), TransactionStatus::Rjct);
        assert_eq!(
            (
                report.status_reason_code.as_str(),
                report.decided_by.as_str()
            ),
            ("AC04", "JP"),
            "{report:?}"
        );
        assert_eq!(books(jp, sg).await, before, "nothing moved");
        reopen(jp, 1001).await;
        assert_eq!(pay(jp).await.transaction_status(), TransactionStatus::Acsc);

        close(sg, 2001, None).await;
        let before = books(jp, sg).await;
        let report = pay(jp).await;
        assert_eq!(report.transaction_status(), TransactionStatus::Rjct);
        assert_eq!(
            (
                report.status_reason_code.as_str(),
                report.decided_by.as_str()
            ),
            ("AC04", "SG"),
            "{report:?}"
        );
        assert_eq!(
            books(jp, sg).await,
            before,
            "nothing moved: JP's reservation voided, nothing credited"
        );
        reopen(sg, 2001).await;
        assert_eq!(pay(jp).await.transaction_status(), TransactionStatus::Acsc);
    }

    /// The close is one closing transfer in the journal, of 0 to the funding account, with an
    /// id derived from the account and the count of closes; a retried close or reopen changes
    /// nothing, and the next close is the next transfer.
    #[tokio::test]
    async fn closing_is_a_closing_transfer_and_a_retry_changes_nothing() {
        let pair = pair().await;
        let jp = pair.jp.engine();
        let balance = account(jp, 1002).await;

        close(jp, 1002, None).await;
        close(jp, 1002, None).await;
        let first = transfer(jp, closing_step_id(b"close", 1002, 0))
            .await
            .expect("the closing transfer");
        assert_eq!(
            (first.debit_account_id.0, first.credit_account_id.0),
            (1002, 9001)
        );
        assert_eq!((first.amount, first.code), (0, codes::CLOSING));
        assert_eq!(
            first.flags,
            TransferFlags::PENDING.union(TransferFlags::CLOSING_DEBIT)
        );
        assert!(
            transfer(jp, closing_step_id(b"close", 1002, 1))
                .await
                .is_none(),
            "the retry made no second closing transfer"
        );
        // The same transfer again is `exists`: what a retry after a crash between the ledger
        // and the answer would send.
        let again = NewTransfer {
            id: first.id,
            debit_account_id: first.debit_account_id,
            credit_account_id: first.credit_account_id,
            amount: 0,
            user_data_64: 0,
            ledger: first.ledger,
            code: first.code,
            flags: first.flags,
            ..NewTransfer::default()
        };
        assert_eq!(
            jp.apply_one(again).await.expect("applied"),
            CreateTransferResult::Exists
        );

        reopen(jp, 1002).await;
        reopen(jp, 1002).await;
        assert!(
            transfer(jp, closing_step_id(b"reopen", 1002, 0))
                .await
                .is_some(),
            "the void that reopened it"
        );
        close(jp, 1002, None).await;
        assert!(
            transfer(jp, closing_step_id(b"close", 1002, 1))
                .await
                .is_some(),
            "the second close is the next transfer"
        );
        let after = account(jp, 1002).await;
        assert_eq!(
            (
                after.debits_posted,
                after.credits_posted,
                after.debits_pending
            ),
            (
                balance.debits_posted,
                balance.credits_posted,
                balance.debits_pending
            ),
            "closing and reopening move nothing"
        );
        // Corridor and liquidity accounts are not closed; nor are unknown ones.
        for (id, code) in [
            (9002, ReasonCode::Ff01),
            (9001, ReasonCode::Ff01),
            (1999, ReasonCode::Ac01),
        ] {
            match refused(jp.close_account(id, None).await) {
                AccountRefusal::Rejected(r) => assert_eq!(r.code, code, "{id}: {r}"),
                other => panic!("{id}: {other:?}"),
            }
        }
    }

    /// `sweep_to` moves the whole balance in the closing transfer's chain, to a customer
    /// account or to the funding account; nowhere else.
    #[tokio::test]
    async fn a_close_with_a_sweep_moves_the_whole_balance_in_the_same_chain() {
        let pair = pair().await;
        let jp = pair.jp.engine();
        // Itself, the corridor, the liquidity account, an unknown account.
        for (from, to, code) in [
            (1101, 1101, ReasonCode::Ff01),
            (1101, 9002, ReasonCode::Ff01),
            (1101, 9003, ReasonCode::Ff01),
            (1101, 1999, ReasonCode::Ac01),
        ] {
            match refused(jp.close_account(from, Some(to)).await) {
                AccountRefusal::Rejected(r) => assert_eq!(r.code, code, "{to}: {r}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        assert!(!account(jp, 1101).await.is_closed(), "refused, not closed");

        let (source, target) = (account(jp, 1101).await, account(jp, 1102).await);
        close(jp, 1101, Some(1102)).await;
        let held = source.credits_posted - source.debits_posted;
        assert!(held > 0);
        let (source_after, target_after) = (account(jp, 1101).await, account(jp, 1102).await);
        assert_eq!(
            source_after.credits_posted, source_after.debits_posted,
            "emptied"
        );
        assert_eq!(
            target_after.credits_posted - target.credits_posted,
            held,
            "all of it moved to 1102"
        );
        let sweep = transfer(jp, closing_step_id(b"sweep", 1101, 0))
            .await
            .expect("the sweep");
        assert_eq!((sweep.amount, sweep.code), (held, codes::SWEEP));
        // A closed account is no sweep target.
        match refused(jp.close_account(1102, Some(1101)).await) {
            AccountRefusal::Rejected(r) => assert_eq!(r.code, ReasonCode::Ac04, "{r}"),
            other => panic!("{other:?}"),
        }
        // Reopened and closed again with the funding account as target: a cash-out.
        reopen(jp, 1101).await;
        let funding = account(jp, 9001).await;
        let paid = account(jp, 1102).await;
        close(jp, 1102, Some(9001)).await;
        let held = paid.credits_posted - paid.debits_posted;
        assert_eq!(
            account(jp, 9001).await.credits_posted - funding.credits_posted,
            held
        );
    }

    /// The ledger refuses to post a reservation of a closed account, so a close waits for
    /// none: while a payment from the account is in flight, it is refused, and nothing changes.
    #[tokio::test]
    async fn an_account_with_a_payment_in_flight_is_not_closed() {
        let pair = pair().await;
        let jp = pair.jp.engine();
        let reservation = NewTransfer {
            id: TransferId(77),
            debit_account_id: AccountId(1001),
            credit_account_id: AccountId(9002),
            amount: 500,
            ledger: 392,
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            ..NewTransfer::default()
        };
        assert!(
            jp.apply_one(reservation)
                .await
                .expect("reserved")
                .is_recorded()
        );
        match refused(jp.close_account(1001, None).await) {
            AccountRefusal::NotNow(detail) => assert!(detail.contains("in flight"), "{detail}"),
            other => panic!("{other:?}"),
        }
        assert!(!account(jp, 1001).await.is_closed());
        let void = NewTransfer {
            id: TransferId(78),
            pending_id: TransferId(77),
            flags: TransferFlags::VOID_PENDING_TRANSFER,
            ..NewTransfer::default()
        };
        assert!(jp.apply_one(void).await.expect("voided").is_recorded());
        close(jp, 1001, None).await;
    }

    /// A close waits for a reservation being made (a submission between the debtor's check
    /// and its reservation holds `closing` for reading), then finds it and is refused: it
    /// never closes the account under a reservation that would then not post.
    #[tokio::test]
    async fn a_close_waits_for_a_reservation_being_made_and_then_sees_it() {
        let pair = pair().await;
        let jp = std::sync::Arc::clone(pair.jp.engine());
        let checked = jp.closing.read().await;
        let close = tokio::spawn({
            let jp = std::sync::Arc::clone(&jp);
            async move { jp.close_account(1001, None).await }
        });
        // The test runs on one thread: each yield lets the close run until it waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !close.is_finished(),
            "closed between a check and its reservation"
        );
        let reservation = NewTransfer {
            id: TransferId(77),
            debit_account_id: AccountId(1001),
            credit_account_id: AccountId(9002),
            amount: 500,
            ledger: 392,
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            ..NewTransfer::default()
        };
        assert!(
            jp.apply_one(reservation)
                .await
                .expect("reserved")
                .is_recorded()
        );
        drop(checked);
        match refused(close.await.expect("close task")) {
            AccountRefusal::NotNow(detail) => assert!(detail.contains("in flight"), "{detail}"),
            other => panic!("{other:?}"),
        }
        assert!(!account(&jp, 1001).await.is_closed());
    }

    /// A credit the ledger refused because its account was closed spends its id (the
    /// ledger's `id_already_failed` on a retry). A Prepare that reaches the credit again
    /// after the account was reopened (its first answer lost with a crash) is refused with
    /// the reason the credit failed for, AC04, never FF01, and nothing moves.
    #[tokio::test]
    async fn a_credit_whose_id_failed_on_a_closed_account_is_ac04_not_ff01() {
        let pair = pair().await;
        let (jp, sg) = (pair.jp.engine(), pair.sg.engine());
        let uetr = new_uetr();
        let signed = jp_to_sg(jp, uetr);
        close(sg, 2001, None).await;
        // The credit as the receiver makes it, refused by the ledger for the closed account.
        let credit = NewTransfer {
            id: TransferId(credit_transfer_id("JP", &uetr.0)),
            debit_account_id: AccountId(9103),
            credit_account_id: AccountId(2001),
            amount: 1,
            user_data_128: u128::from_be_bytes(uetr.0),
            ledger: 702,
            code: codes::INBOUND,
            ..NewTransfer::default()
        };
        assert_eq!(
            sg.apply_one(credit).await.expect("applied"),
            CreateTransferResult::CreditAccountAlreadyClosed
        );
        reopen(sg, 2001).await;
        let before = (account(sg, 9103).await, account(sg, 2001).await);

        let decision = sg
            .prepare("JP", signed.clone())
            .await
            .expect("no fault")
            .expect("a decision");
        assert_eq!(decision.status_reason_code, "AC04", "{decision:?}");
        assert_eq!(
            (account(sg, 9103).await, account(sg, 2001).await),
            before,
            "nothing moved"
        );
        // The decision is recorded: the same Prepare gets it again.
        let again = sg
            .prepare("JP", signed)
            .await
            .expect("no fault")
            .expect("a decision");
        assert_eq!(again.status_reason_code, "AC04", "{again:?}");
    }

    /// An account an older node closed with the payment store's flag is closed in the ledger
    /// at start (once: the flag is cleared), and stays closed by the flag while a payment
    /// from it is in flight.
    #[tokio::test]
    async fn a_store_closed_account_is_carried_over_to_the_ledger_once() {
        let pair = pair().await;
        let jp = pair.jp.engine();
        let flag = |id: u128| async move {
            let mut meta = jp.store().account(id).await.expect("read").expect("known");
            meta.closed = true;
            jp.store()
                .put(vec![crate::store::Write::Account(id, meta)])
                .await
                .expect("written");
        };
        flag(1001).await;
        flag(1002).await;
        let reservation = NewTransfer {
            id: TransferId(77),
            debit_account_id: AccountId(1002),
            credit_account_id: AccountId(9002),
            amount: 500,
            ledger: 392,
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            ..NewTransfer::default()
        };
        assert!(
            jp.apply_one(reservation)
                .await
                .expect("reserved")
                .is_recorded()
        );

        jp.carry_over_store_closes().await.expect("carried over");
        assert!(account(jp, 1001).await.is_closed(), "closed in the ledger");
        assert!(
            !jp.store()
                .account(1001)
                .await
                .expect("read")
                .expect("known")
                .closed
        );
        assert!(
            !account(jp, 1002).await.is_closed(),
            "a payment is in flight"
        );
        assert!(
            jp.store()
                .account(1002)
                .await
                .expect("read")
                .expect("known")
                .closed,
            "still flagged"
        );
        let report = pay(jp).await;
        assert_eq!(report.status_reason_code, "AC04", "{report:?}");
        // Reopened by the operator: cleared from the ledger; a second carry-over does nothing.
        reopen(jp, 1001).await;
        jp.carry_over_store_closes().await.expect("carried over");
        assert!(!account(jp, 1001).await.is_closed(), "closed once only");
        assert_eq!(pay(jp).await.transaction_status(), TransactionStatus::Acsc);
    }
}
