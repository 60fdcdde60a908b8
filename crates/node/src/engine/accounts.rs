//! Operator accounts: genesis, balances, and opening, funding and closing accounts.

use std::sync::atomic::Ordering;

use kakehashi_ledger::{
    AccountFlags, AccountId, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer,
    TransferId,
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
        let results = self.books().create_accounts(new_accounts, ts).await?;
        for ((id, meta, _), result) in accounts.iter().zip(&results) {
            if !result.is_recorded() {
                return Err(EngineError::Config(format!(
                    "account {id} ({}) does not match the ledger: {}",
                    meta.name,
                    result.as_str()
                )));
            }
        }
        let mut writes = Vec::new();
        for (id, meta, _) in &accounts {
            if self.parts.store.account(*id)?.is_none() {
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
        if transfers.is_empty() {
            return Ok(());
        }
        let results = self.books().create_transfers(transfers, ts).await?;
        if let Some(bad) = results.iter().find(|r| !r.is_recorded()) {
            return Err(EngineError::Config(format!(
                "genesis funding refused by the ledger: {} (an opening balance changed after \
                 the first start? fund with `FundAccount` instead)",
                bad.as_str()
            )));
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
        let metas = self.parts.store.accounts()?;
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
            .accounts()?
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
        account: &kakehashi_ledger::Account,
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
            closed: meta.closed,
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
        let Some(meta) = self.parts.store.account(id)? else {
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

    /// Operator: closes an account (payments to or from it are AC04 from now on). `Ok(Err(..))`
    /// is a refusal, `Err` an operational fault, as for [`Engine::balances`].
    pub async fn close_account(
        &self,
        id: u128,
    ) -> Result<Result<pb::AccountBalance, Rejection>, EngineError> {
        let Some(mut meta) = self.parts.store.account(id)? else {
            return Ok(Err(Rejection::new(
                ReasonCode::Ac01,
                format!("account {id} does not exist"),
            )));
        };
        if meta.kind != AccountKind::Customer {
            return Ok(Err(ff01(format!(
                "account {id} is a {} account; only customer accounts can be closed",
                meta.kind.as_str()
            ))));
        }
        meta.closed = true;
        self.parts.store.put(vec![Write::Account(id, meta)]).await?;
        self.balance(id).await
    }
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
