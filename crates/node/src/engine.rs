//! The settlement protocol: what a node does with a participant's instruction (as sender) and
//! with a peer's Prepare or status query (as receiver). ARCHITECTURE.md, "Settlement protocol",
//! has the sequence diagram and the invariants; the rules that make it atomic across two
//! ledgers are these:
//!
//! 1. The sender reserves (a pending ledger transfer into the corridor account) and records
//!    `Forwarded` durably before Prepare leaves; from then on only the receiver's decision (its
//!    answer, or its answer to a status query) ends the reservation: posted if settled, voided
//!    otherwise. No timeout voids a forwarded payment, and the ledger transfer has no timeout.
//! 2. The receiver decides once per UETR, under the UETR's lock, and makes the decision durable
//!    (credit in the ledger, then its record) before answering; a repeated Prepare gets the
//!    same decision.
//! 3. A status query that finds no decision records a fence first; a fenced UETR is refused by
//!    every later Prepare. So when the sender voids after UNKNOWN_FENCED, no credit can follow.
//! 4. Every ledger transfer id derives from the UETR (SHA-256), so retrying any step after a
//!    crash is idempotent (`exists`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountFlags, AccountId, CreateAccountResult, CreateTransferResult, Ledger, NewAccount,
    NewTransfer, Timestamp, TransferFlags, TransferId,
};
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::pb::{
    self, Decision, PaymentStatusReport, RelayDecision, RelayStatusRequest, TransactionStatus,
};
use kakehashi_proto::{SIGNING_DOMAIN_INSTRUCTION, SIGNING_DOMAIN_RECEIPT};
use prost::Message;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::locks::UetrLocks;
use crate::metrics::{Direction, Metrics, ReceiptAnomaly};
use crate::store::{
    AccountKind, AccountMeta, InboundRecord, InboundState, OutboundRecord, OutboundState, Store,
    StoreError, Write,
};
use kakehashi_protocol::instruction::{self, Instruction, Uetr};
use kakehashi_protocol::money::{self, Currency, Rate};
use kakehashi_protocol::quote::{self, QuoteIssuer, QuoteOffer};
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::receipt;
use kakehashi_protocol::signed::{self, ParsedCerts, Trust};
use kakehashi_protocol::status::status_name;
use kakehashi_protocol::transfer::{codes, transfer_id};

/// Why the engine could not do its job for an operational reason (not a rejection of the
/// payment): the caller answers `Unavailable`/`Internal` and nothing is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The payment store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger failed.
    #[error("ledger: {0}")]
    Ledger(#[from] kakehashi_ledger::Error),
    /// A blocking task was lost.
    #[error("internal task failed: {0}")]
    Task(String),
    /// The ledger answered something the protocol does not allow at this step.
    #[error("ledger refused {what}: {result}")]
    Unexpected {
        /// The step.
        what: &'static str,
        /// The ledger's result name.
        result: &'static str,
    },
    /// The configuration does not match the ledger (genesis).
    #[error("configuration: {0}")]
    Config(String),
}

/// The result of handling one submission.
#[derive(Debug)]
pub enum Submitted {
    /// A status report (ACSC, RJCT or PDNG).
    Report(Box<PaymentStatusReport>),
    /// The request is malformed (FF01): the API answers InvalidArgument.
    Invalid(Rejection),
}

/// A peer jurisdiction as the engine uses it.
#[derive(Clone, Debug)]
pub struct PeerLink {
    /// The peer's jurisdiction code.
    pub jurisdiction: String,
    /// The peer's ledger currency.
    pub currency: &'static Currency,
    /// Mid rate: units of the peer's currency per unit of ours.
    pub mid: Rate,
    /// Local account outbound payments to this peer are reserved into.
    pub corridor_account: u128,
    /// Local account inbound payments from this peer are credited from.
    pub liquidity_account: u128,
    /// The Relay client (mutual TLS), connected lazily.
    pub client: pb::relay_client::RelayClient<Channel>,
}

/// Limits the engine enforces (from the configuration).
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Largest payment, minor units of this node's currency (also applied to credits).
    pub max_payment_minor: u128,
    /// Allowed difference between clocks when checking expiry.
    pub clock_skew_secs: u64,
    /// Longest allowed time between an instruction's creation and its expiry.
    pub instruction_max_lifetime_secs: u64,
    /// How long the sender waits for a Prepare or status answer.
    pub relay_timeout: Duration,
}

/// Names, BICs and accounts refused with RR04.
#[derive(Clone, Debug, Default)]
pub struct Sanctions {
    /// Lower-cased, whitespace-collapsed names.
    pub names: Vec<String>,
    /// Upper-case BICs (8 or 11 characters; an 8-character entry covers every branch).
    pub bics: Vec<String>,
    /// Local accounts.
    pub accounts: Vec<u128>,
}

impl Sanctions {
    /// Normalizes a name for screening: lower case, runs of whitespace as one space.
    pub fn normalize(name: &str) -> String {
        name.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }

    fn screen(&self, instr: &Instruction, local_account: u128) -> Result<(), Rejection> {
        for (role, name) in [
            ("debtor", &instr.debtor_name),
            ("creditor", &instr.creditor_name),
        ] {
            let normalized = Self::normalize(name);
            if !normalized.is_empty() && self.names.contains(&normalized) {
                return Err(Rejection::new(
                    ReasonCode::Rr04,
                    format!("{role} name {name:?} is on the sanctions list"),
                ));
            }
        }
        for (role, bic) in [
            ("debtor agent", &instr.debtor_agent_bic),
            ("creditor agent", &instr.creditor_agent_bic),
        ] {
            if self
                .bics
                .iter()
                .any(|b| bic == b || (b.len() == 8 && bic.starts_with(b.as_str())))
            {
                return Err(Rejection::new(
                    ReasonCode::Rr04,
                    format!("{role} {bic} is on the sanctions list"),
                ));
            }
        }
        if self.accounts.contains(&local_account) {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!("account {local_account} is on the sanctions list"),
            ));
        }
        Ok(())
    }
}

/// Everything the engine needs; built by [`crate::node`] from the configuration.
pub struct EngineParts {
    /// This node's jurisdiction code.
    pub jurisdiction: String,
    /// This node's ledger currency.
    pub currency: &'static Currency,
    /// The agreement.
    pub mra: Arc<Mra>,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The payment store.
    pub store: Store,
    /// The receipt- and quote-signing key and its chain (DER, leaf first).
    pub signing_key: SigningKey,
    /// Chain of the signing key.
    pub signing_chain: Vec<Vec<u8>>,
    /// Peers by jurisdiction.
    pub peers: BTreeMap<String, PeerLink>,
    /// FX spread in basis points.
    pub spread_bps: u32,
    /// Quote lifetime.
    pub quote_ttl_secs: u64,
    /// Limits.
    pub limits: EngineLimits,
    /// Sanctions.
    pub sanctions: Sanctions,
    /// The funding account (genesis and cash-in).
    pub funding_account: u128,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The node's settlement engine. Shared by the gRPC services and the recovery loop.
pub struct Engine {
    parts: EngineParts,
    /// Recognition verdicts of the chains this node sees again and again (its banks', its
    /// peers' receipt keys); `None` only if the agreement's CRL dates were unreadable.
    recognition: Option<RecognitionCache>,
    /// The certificates of those chains, parsed once.
    certs: ParsedCerts,
    quotes: QuoteIssuer,
    locks: UetrLocks,
    quote_seq: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("jurisdiction", &self.parts.jurisdiction)
            .finish_non_exhaustive()
    }
}

/// The wall clock as a ledger timestamp and a validation time. The node is the one place that
/// reads the clock; pki and ledger take time as an argument.
pub fn now() -> (Timestamp, UnixTime) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    (Timestamp::from_unix_nanos(nanos), UnixTime(secs))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Task(e.to_string()))
}

impl Engine {
    /// Builds the engine.
    pub fn new(parts: EngineParts) -> Self {
        let quotes = QuoteIssuer {
            jurisdiction: parts.jurisdiction.clone(),
            key: parts.signing_key.clone(),
            chain: parts.signing_chain.clone(),
            ttl_secs: parts.quote_ttl_secs,
        };
        for peer in parts.peers.keys() {
            parts.metrics.add_peer(peer);
        }
        let recognition = RecognitionCache::new(&parts.mra)
            .inspect_err(|e| tracing::warn!(error = %e, "recognition verdicts will not be cached"))
            .ok();
        Self {
            parts,
            recognition,
            certs: ParsedCerts::new(),
            quotes,
            locks: UetrLocks::default(),
            quote_seq: AtomicU64::new(0),
        }
    }

    /// This node's jurisdiction.
    pub fn jurisdiction(&self) -> &str {
        &self.parts.jurisdiction
    }

    /// This node's currency.
    pub fn currency(&self) -> &'static Currency {
        self.parts.currency
    }

    /// The agreement.
    pub fn mra(&self) -> &Mra {
        &self.parts.mra
    }

    /// The agreement with this node's recognition and certificate caches, for signature
    /// checks.
    pub fn trust(&self) -> Trust<'_> {
        let trust = match &self.recognition {
            Some(cache) => Trust::cached(&self.parts.mra, cache),
            None => Trust::from(&*self.parts.mra),
        };
        trust.with_parsed_certs(&self.certs)
    }

    /// The payment store.
    pub fn store(&self) -> &Store {
        &self.parts.store
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.parts.ledger
    }

    /// The peers.
    pub fn peers(&self) -> &BTreeMap<String, PeerLink> {
        &self.parts.peers
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.parts.metrics
    }

    /// Closes the ledger cleanly (joins its writer) when this engine holds its last reference.
    pub async fn close(self) -> Result<(), EngineError> {
        if let Ok(ledger) = Arc::try_unwrap(self.parts.ledger) {
            blocking(move || ledger.close()).await??;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ genesis and accounts

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
        let (ts, _) = now();
        let ledger = Arc::clone(&self.parts.ledger);
        let results = blocking(move || ledger.create_accounts(&new_accounts, ts)).await??;
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
        let ledger = Arc::clone(&self.parts.ledger);
        let results = blocking(move || ledger.create_transfers(&transfers, ts)).await??;
        if let Some(bad) = results.iter().find(|r| !r.is_recorded()) {
            return Err(EngineError::Config(format!(
                "genesis funding refused by the ledger: {} (an opening balance changed after \
                 the first start? fund with `FundAccount` instead)",
                bad.as_str()
            )));
        }
        Ok(())
    }

    /// Balances of `ids` (every known account when empty).
    pub async fn balances(&self, ids: Vec<u128>) -> Result<Vec<pb::AccountBalance>, Submitted> {
        let metas = match self.parts.store.accounts() {
            Ok(metas) => metas,
            Err(e) => return Err(invalid_internal(&e)),
        };
        let wanted: Vec<(u128, Option<AccountMeta>)> = if ids.is_empty() {
            metas.into_iter().map(|(id, m)| (id, Some(m))).collect()
        } else {
            ids.iter()
                .map(|id| {
                    (
                        *id,
                        metas.iter().find(|(m, _)| m == id).map(|(_, m)| m.clone()),
                    )
                })
                .collect()
        };
        let lookup: Vec<AccountId> = wanted.iter().map(|(id, _)| AccountId(*id)).collect();
        let ledger = Arc::clone(&self.parts.ledger);
        let found = match blocking(move || ledger.lookup_accounts(&lookup)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(invalid_internal(&e)),
            Err(e) => return Err(invalid_internal(&e)),
        };
        let (_, t) = now();
        let mut out = Vec::new();
        for ((id, meta), account) in wanted.into_iter().zip(found) {
            let (Some(meta), Some(account)) = (meta, account) else {
                return Err(Submitted::Invalid(Rejection::new(
                    ReasonCode::Ac01,
                    format!(
                        "account {id} does not exist on the {} ledger",
                        self.jurisdiction()
                    ),
                )));
            };
            out.push(self.balance_of(id, &meta, &account, t));
        }
        Ok(out)
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

    /// Operator: opens a customer account.
    pub async fn open_account(
        &self,
        id: u128,
        owner_bic: String,
        name: String,
    ) -> Result<pb::AccountBalance, Submitted> {
        if id == 0 || id == u128::MAX {
            return Err(ff01("account: must be a non-zero decimal account id"));
        }
        let owner_bic = instruction::bic("owner_bic", owner_bic).map_err(Submitted::Invalid)?;
        // Characters 5-6 of a BIC are its ISO 3166 country; a node holds accounts only for
        // banks of its own jurisdiction.
        if owner_bic.get(4..6) != Some(self.jurisdiction()) {
            return Err(ff01(format!(
                "owner_bic: {owner_bic} is a bank of {}, not of {}; open its accounts on that \
                 jurisdiction's node",
                owner_bic.get(4..6).unwrap_or("?"),
                self.jurisdiction()
            )));
        }
        if name.chars().count() > instruction::NAME_CHARS_MAX {
            return Err(ff01(format!(
                "name: longer than {} characters",
                instruction::NAME_CHARS_MAX
            )));
        }
        let ledger_id = u32::from(self.parts.currency.numeric);
        let new = NewAccount {
            id: AccountId(id),
            ledger: ledger_id,
            code: AccountKind::Customer.ledger_code(),
            flags: account_flags(AccountKind::Customer),
            ..NewAccount::default()
        };
        let (ts, _) = now();
        let ledger = Arc::clone(&self.parts.ledger);
        let result = match blocking(move || ledger.create_accounts(&[new], ts)).await {
            Ok(Ok(r)) => r.into_iter().next(),
            Ok(Err(e)) => return Err(invalid_internal(&e)),
            Err(e) => return Err(invalid_internal(&e)),
        };
        match result {
            Some(CreateAccountResult::Ok) => {}
            Some(other) => {
                return Err(Submitted::Invalid(Rejection::new(
                    ReasonCode::Dupl,
                    format!("account {id}: {}", other.as_str()),
                )));
            }
            None => return Err(invalid_internal(&"no result")),
        }
        let meta = AccountMeta {
            kind: AccountKind::Customer,
            owner_bic: Some(owner_bic),
            name,
            closed: false,
        };
        if let Err(e) = self.parts.store.put(vec![Write::Account(id, meta)]).await {
            return Err(invalid_internal(&e));
        }
        self.balances(vec![id]).await.map(|mut b| b.remove(0))
    }

    /// Operator: credits `id` from the funding account.
    pub async fn fund_account(
        &self,
        id: u128,
        amount: &pb::ActiveCurrencyAndAmount,
    ) -> Result<pb::AccountBalance, Submitted> {
        let (currency, minor) = money::parse_amount(amount).map_err(Submitted::Invalid)?;
        if currency.alpha != self.parts.currency.alpha {
            return Err(ff01(format!(
                "amount: this node's ledger is {}, not {}",
                self.parts.currency.alpha, currency.alpha
            )));
        }
        if minor == 0 {
            return Err(ff01("amount: must be greater than zero"));
        }
        let meta = match self.parts.store.account(id) {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                return Err(Submitted::Invalid(Rejection::new(
                    ReasonCode::Ac01,
                    format!("account {id} does not exist"),
                )));
            }
            Err(e) => return Err(invalid_internal(&e)),
        };
        if meta.closed {
            return Err(Submitted::Invalid(Rejection::new(
                ReasonCode::Ac04,
                format!("account {id} is closed"),
            )));
        }
        let seq = self.quote_seq.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| invalid_internal(&"no randomness"))?;
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
        let (ts, _) = now();
        let ledger = Arc::clone(&self.parts.ledger);
        match blocking(move || ledger.create_transfers(&[transfer], ts)).await {
            Ok(Ok(results)) if results.first().is_some_and(|r| r.is_recorded()) => {}
            Ok(Ok(results)) => {
                return Err(Submitted::Invalid(ledger_rejection(
                    results.first().copied(),
                    "funding",
                )));
            }
            Ok(Err(e)) => return Err(invalid_internal(&e)),
            Err(e) => return Err(invalid_internal(&e)),
        }
        self.balances(vec![id]).await.map(|mut b| b.remove(0))
    }

    /// Operator: closes an account (payments to or from it are AC04 from now on).
    pub async fn close_account(&self, id: u128) -> Result<pb::AccountBalance, Submitted> {
        let mut meta = match self.parts.store.account(id) {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                return Err(Submitted::Invalid(Rejection::new(
                    ReasonCode::Ac01,
                    format!("account {id} does not exist"),
                )));
            }
            Err(e) => return Err(invalid_internal(&e)),
        };
        if meta.kind != AccountKind::Customer {
            return Err(ff01(format!(
                "account {id} is a {} account; only customer accounts can be closed",
                meta.kind.as_str()
            )));
        }
        meta.closed = true;
        if let Err(e) = self.parts.store.put(vec![Write::Account(id, meta)]).await {
            return Err(invalid_internal(&e));
        }
        self.balances(vec![id]).await.map(|mut b| b.remove(0))
    }

    // ------------------------------------------------------------------ quotes

    /// Issues a signed quote for paying `source` (this node's currency) to `counterparty`.
    pub fn quote(
        &self,
        counterparty: &str,
        source: &pb::ActiveCurrencyAndAmount,
    ) -> Result<pb::Signed, Rejection> {
        let Some(peer) = self.parts.peers.get(counterparty) else {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "counterparty_jurisdiction: {} has no corridor to {counterparty:?} (peers: {})",
                    self.jurisdiction(),
                    self.parts
                        .peers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let (currency, minor) = money::parse_amount(source)?;
        if currency.alpha != self.parts.currency.alpha {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "source_amount: quotes from {} are in {}, not {}",
                    self.jurisdiction(),
                    self.parts.currency.alpha,
                    currency.alpha
                ),
            ));
        }
        if minor == 0 {
            return Err(Rejection::new(
                ReasonCode::Ff01,
                "source_amount: must be greater than zero",
            ));
        }
        if minor > self.parts.limits.max_payment_minor {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!(
                    "source_amount: above this node's limit of {} {}",
                    money::format_amount(currency, self.parts.limits.max_payment_minor).value,
                    currency.alpha
                ),
            ));
        }
        let (_, t) = now();
        let seq = self.quote_seq.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Rejection::new(ReasonCode::Ff01, "no randomness for a quote id"))?;
        let quote_id = format!("Q-{}-{}-{seq}", self.jurisdiction(), hex::encode(nonce));
        self.quotes.issue(
            &QuoteOffer {
                counterparty: &peer.jurisdiction,
                source: (currency, minor),
                target_currency: peer.currency,
                mid: peer.mid,
                spread_bps: self.parts.spread_bps,
            },
            t,
            quote_id,
        )
    }

    // ------------------------------------------------------------------ sender

    /// Handles one participant submission end to end (see the module documentation).
    pub async fn submit(&self, signed: pb::Signed) -> Result<Submitted, EngineError> {
        let started = Instant::now();
        let outcome = self.submit_inner(signed).await;
        if let Ok(Submitted::Report(report)) = &outcome {
            let status = report.transaction_status();
            self.parts.metrics.record_payment(
                Direction::Outbound,
                status_name(status),
                &report.status_reason_code,
                started.elapsed().as_secs_f64(),
            );
        }
        if let Ok(Submitted::Invalid(rejection)) = &outcome {
            self.parts.metrics.record_payment(
                Direction::Outbound,
                "RJCT",
                rejection.code.as_str(),
                started.elapsed().as_secs_f64(),
            );
        }
        outcome
    }

    async fn submit_inner(&self, signed: pb::Signed) -> Result<Submitted, EngineError> {
        let instr = match instruction::decode(&signed) {
            Ok(instr) => instr,
            Err(rejection) => return Ok(Submitted::Invalid(rejection)),
        };
        // One span per payment on each node, keyed by UETR, so both nodes' logs of a payment
        // can be joined.
        let span = tracing::info_span!("payment", uetr = %instr.uetr, role = "sender",
            node = %self.parts.jurisdiction);
        self.submit_decoded(signed, instr).instrument(span).await
    }

    async fn submit_decoded(
        &self,
        signed: pb::Signed,
        instr: Instruction,
    ) -> Result<Submitted, EngineError> {
        let (_, t) = now();
        let report = |rejection: Rejection| {
            Submitted::Report(Box::new(self.rejected_report(&instr, &rejection)))
        };
        // Authentication first: nothing unauthenticated is ever written.
        let signer = match signed::verify(
            &signed,
            SIGNING_DOMAIN_INSTRUCTION,
            self.trust(),
            self.jurisdiction(),
            Purpose::PaymentSigning,
            t,
            &[],
        ) {
            Ok(signer) => signer,
            // A malformed envelope (sizes, DER) is a format error like any other.
            Err(rejection) if rejection.code == ReasonCode::Ff01 => {
                return Ok(Submitted::Invalid(rejection));
            }
            Err(rejection) => return Ok(report(rejection)),
        };
        if signer.subject_cn != instr.debtor_agent_bic {
            return Ok(report(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the instruction is signed by {} but names debtor agent {}",
                    signer.subject_cn, instr.debtor_agent_bic
                ),
            )));
        }
        if instr.currency.alpha != self.parts.currency.alpha {
            return Ok(Submitted::Invalid(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "interbank_settlement_amount: {} debits in {}, not {}",
                    self.jurisdiction(),
                    self.parts.currency.alpha,
                    instr.currency.alpha
                ),
            )));
        }
        let (terms, _) = match quote::verify_quote(
            &instr.quote,
            self.trust(),
            self.jurisdiction(),
            t,
            self.parts.limits.clock_skew_secs,
            &[],
        ) {
            Ok(q) => q,
            Err(rejection) if rejection.code == ReasonCode::Ff01 => {
                return Ok(Submitted::Invalid(rejection));
            }
            Err(rejection) => return Ok(report(rejection)),
        };
        if terms.issuing != self.jurisdiction() {
            return Ok(report(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the quote was issued by {}, not by this node ({})",
                    terms.issuing,
                    self.jurisdiction()
                ),
            )));
        }
        let Some(peer) = self.parts.peers.get(&terms.counterparty).cloned() else {
            return Ok(Submitted::Invalid(Rejection::new(
                ReasonCode::Ff01,
                format!("quote: no corridor to {}", terms.counterparty),
            )));
        };
        if terms.source.1 != instr.amount_minor || terms.source.0.alpha != instr.currency.alpha {
            return Ok(Submitted::Invalid(Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "interbank_settlement_amount {} {} differs from the quote's source amount {} {}",
                    money::format_amount(instr.currency, instr.amount_minor).value,
                    instr.currency.alpha,
                    money::format_amount(terms.source.0, terms.source.1).value,
                    terms.source.0.alpha
                ),
            )));
        }
        if let Err(rejection) = self.check_times(&instr, t) {
            return Ok(if rejection.code == ReasonCode::Ff01 {
                Submitted::Invalid(rejection)
            } else {
                report(rejection)
            });
        }

        let _guard = self.locks.lock(instr.uetr).await;
        if let Some(existing) = self.parts.store.outbound(&instr.uetr)? {
            return Ok(report(Rejection::new(
                ReasonCode::Dupl,
                format!(
                    "UETR {} was already submitted (its status: {})",
                    instr.uetr,
                    outbound_status_text(&existing)
                ),
            )));
        }
        let mut record = OutboundRecord {
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
            created_at: unix_secs(),
            updated_at: unix_secs(),
        };
        if let Err(rejection) = self.check_debtor(&instr) {
            return self.reject_outbound(&instr, record, rejection).await;
        }

        // Reserve: record the intent, then the pending transfer.
        let reservation = transfer_id(b"reserve", &instr.uetr.0);
        record.state = OutboundState::Reserving;
        record.reservation_id = reservation;
        record.decided_by = None;
        self.put_outbound(instr.uetr, &record).await?;
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
        let result = self.apply_one(pending).await?;
        if !result.is_recorded() {
            record.state = OutboundState::Rejected;
            record.reservation_id = 0;
            record.decided_by = Some(self.jurisdiction().to_owned());
            let rejection = ledger_rejection(Some(result), "reservation");
            return self.reject_outbound(&instr, record, rejection).await;
        }
        record.state = OutboundState::Forwarded;
        record.updated_at = unix_secs();
        self.put_outbound(instr.uetr, &record).await?;

        // Forward the exact bytes the participant signed.
        let mut client = peer.client.clone();
        let mut request = tonic::Request::new(pb::PrepareRequest {
            instruction: Some(signed),
        });
        request.set_timeout(self.parts.limits.relay_timeout);
        let answer =
            tokio::time::timeout(self.parts.limits.relay_timeout, client.prepare(request)).await;
        let decision = match answer {
            Ok(Ok(response)) => {
                let decision = response.into_inner();
                self.parts
                    .metrics
                    .relay_request("Prepare", decision_name(decision.decision()));
                decision
            }
            Ok(Err(status)) => {
                self.parts.metrics.relay_request("Prepare", "ERROR");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction, %status,
                    "Prepare failed; the payment is in doubt until a status query resolves it");
                return Ok(Submitted::Report(Box::new(
                    self.pending_report(&record, &instr.uetr),
                )));
            }
            Err(_) => {
                self.parts.metrics.relay_request("Prepare", "TIMEOUT");
                tracing::warn!(uetr = %instr.uetr, peer = %peer.jurisdiction,
                    "Prepare timed out; the payment is in doubt until a status query resolves it");
                return Ok(Submitted::Report(Box::new(
                    self.pending_report(&record, &instr.uetr),
                )));
            }
        };
        crate::fault::crash_point(crate::fault::SENDER_BEFORE_RESOLVE);
        let record = self.finish(instr.uetr, record, &peer, decision).await?;
        Ok(Submitted::Report(Box::new(
            self.report_from(&instr.uetr, &record),
        )))
    }

    fn check_times(&self, instr: &Instruction, t: UnixTime) -> Result<(), Rejection> {
        let skew = i64::try_from(self.parts.limits.clock_skew_secs).unwrap_or(i64::MAX);
        let lifetime = instr.expiry.0.saturating_sub(instr.created.0);
        let max =
            i64::try_from(self.parts.limits.instruction_max_lifetime_secs).unwrap_or(i64::MAX);
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

    fn check_debtor(&self, instr: &Instruction) -> Result<(), Rejection> {
        self.parts.sanctions.screen(instr, instr.debtor_account)?;
        self.check_limit(instr.amount_minor, "amount")?;
        self.check_customer_account(instr.debtor_account, &instr.debtor_agent_bic, "debtor")
    }

    /// RR04 when `minor` (this node's currency) is above the per-payment limit.
    fn check_limit(&self, minor: u128, what: &str) -> Result<(), Rejection> {
        if minor <= self.parts.limits.max_payment_minor {
            return Ok(());
        }
        Err(Rejection::new(
            ReasonCode::Rr04,
            format!(
                "{what} above this node's per-payment limit of {} {}",
                money::format_amount(self.parts.currency, self.parts.limits.max_payment_minor)
                    .value,
                self.parts.currency.alpha
            ),
        ))
    }

    /// The `role` ("debtor"/"creditor") account must exist here, be an open customer account
    /// and be held at `bic` (AC01, AC04).
    fn check_customer_account(&self, id: u128, bic: &str, role: &str) -> Result<(), Rejection> {
        let meta = self
            .parts
            .store
            .account(id)
            .map_err(|e| Rejection::new(ReasonCode::Ac01, format!("account lookup failed: {e}")))?
            .ok_or_else(|| {
                Rejection::new(
                    ReasonCode::Ac01,
                    format!(
                        "{role}_account {id} does not exist on the {} ledger",
                        self.jurisdiction()
                    ),
                )
            })?;
        check_customer(&meta, id, bic, role)
    }

    async fn reject_outbound(
        &self,
        instr: &Instruction,
        mut record: OutboundRecord,
        rejection: Rejection,
    ) -> Result<Submitted, EngineError> {
        record.state = OutboundState::Rejected;
        record.reason_code = Some(rejection.code.as_str().to_owned());
        record.reason_detail = Some(rejection.detail.clone());
        record.decided_by = Some(self.jurisdiction().to_owned());
        record.updated_at = unix_secs();
        self.put_outbound(instr.uetr, &record).await?;
        Ok(Submitted::Report(Box::new(
            self.report_from(&instr.uetr, &record),
        )))
    }

    async fn put_outbound(&self, uetr: Uetr, record: &OutboundRecord) -> Result<(), EngineError> {
        self.parts
            .store
            .put(vec![Write::Outbound(uetr, record.clone())])
            .await?;
        Ok(())
    }

    async fn apply_one(&self, transfer: NewTransfer) -> Result<CreateTransferResult, EngineError> {
        let (ts, _) = now();
        let ledger = Arc::clone(&self.parts.ledger);
        let results = blocking(move || ledger.create_transfers(&[transfer], ts)).await??;
        results.into_iter().next().ok_or(EngineError::Unexpected {
            what: "a transfer",
            result: "no result",
        })
    }

    /// Applies the receiver's decision to a forwarded payment: post on SETTLED, void on
    /// REJECTED or UNKNOWN_FENCED; records the final state. Called with the UETR's lock held.
    async fn finish(
        &self,
        uetr: Uetr,
        mut record: OutboundRecord,
        peer: &PeerLink,
        decision: RelayDecision,
    ) -> Result<OutboundRecord, EngineError> {
        let resolution = match decision.decision() {
            Decision::Settled => TransferFlags::POST_PENDING_TRANSFER,
            Decision::Rejected | Decision::UnknownFenced => TransferFlags::VOID_PENDING_TRANSFER,
            Decision::Unspecified => {
                tracing::warn!(%uetr, "the receiver answered without a decision; still in doubt");
                return Ok(record);
            }
        };
        let post = resolution == TransferFlags::POST_PENDING_TRANSFER;
        let mut note = None;
        let mut anomaly = None;
        let mut credited = None;
        if post {
            match decision
                .receipt
                .as_ref()
                .map(|r| receipt::verify_receipt(r, self.trust(), self.jurisdiction(), now().1))
            {
                Some(Ok((receipt, signer))) => {
                    if receipt.uetr != uetr.to_string()
                        || receipt.instruction_sha256
                            != hex::decode(&record.instruction_sha256).unwrap_or_default()
                        || signer.jurisdiction != peer.jurisdiction
                    {
                        note = Some("the receipt does not match this payment".to_owned());
                        anomaly = Some(ReceiptAnomaly::Mismatch);
                    }
                    credited = receipt
                        .credited_amount
                        .as_ref()
                        .and_then(|a| money::parse_amount(a).ok())
                        .map(|(_, minor)| minor);
                }
                Some(Err(rejection)) => {
                    note = Some(format!("the receipt did not verify: {rejection}"));
                    anomaly = Some(ReceiptAnomaly::Invalid);
                }
                None => {
                    note = Some("the receiver sent no receipt".to_owned());
                    anomaly = Some(ReceiptAnomaly::Missing);
                }
            }
            if let (Some(note), Some(kind)) = (&note, anomaly) {
                // The receiver says it credited: voiding would create money on the other side,
                // so the reservation is posted and the anomaly raised for the operator (logged
                // and counted in `kakehashi_receipt_anomalies_total`, which alerts can watch).
                tracing::error!(%uetr, %note, "settled without a valid receipt");
                self.parts.metrics.receipt_anomaly(&peer.jurisdiction, kind);
            }
        }
        let resolve = NewTransfer {
            id: TransferId(transfer_id(if post { b"post" } else { b"void" }, &uetr.0)),
            pending_id: TransferId(record.reservation_id),
            amount: if post { record.amount_minor } else { 0 },
            user_data_128: u128::from_be_bytes(uetr.0),
            flags: resolution,
            ..NewTransfer::default()
        };
        let result = self.apply_one(resolve).await?;
        let resolved = result.is_recorded()
            || matches!(
                (post, result),
                (true, CreateTransferResult::PendingTransferAlreadyPosted)
                    | (false, CreateTransferResult::PendingTransferAlreadyVoided)
                    | (false, CreateTransferResult::PendingTransferNotFound)
            );
        if !resolved {
            return Err(EngineError::Unexpected {
                what: if post {
                    "posting a reservation"
                } else {
                    "voiding a reservation"
                },
                result: result.as_str(),
            });
        }
        record.updated_at = unix_secs();
        record.decided_by = Some(if decision.receiving_jurisdiction.is_empty() {
            peer.jurisdiction.clone()
        } else {
            decision.receiving_jurisdiction.clone()
        });
        if post {
            record.state = OutboundState::Settled;
            record.receipt = decision.receipt.as_ref().map(Message::encode_to_vec);
            record.credited_minor = credited;
            record.reason_detail = note;
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
        self.put_outbound(uetr, &record).await?;
        Ok(record)
    }

    /// Resolves every forwarded payment still in doubt by asking its receiver (which fences
    /// when it has no decision). Returns how many remain in doubt.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let unresolved = self.parts.store.unresolved_outbound()?;
        let mut remaining = 0;
        for (uetr, _) in unresolved {
            let _guard = self.locks.lock(uetr).await;
            // Re-read under the lock: a submission may have finished it meanwhile.
            let Some(record) = self.parts.store.outbound(&uetr)? else {
                continue;
            };
            if record.state.is_final() {
                continue;
            }
            let Some(peer) = self.parts.peers.get(&record.peer).cloned() else {
                tracing::error!(%uetr, peer = %record.peer, "in doubt towards a peer no longer configured");
                remaining += 1;
                continue;
            };
            if record.state == OutboundState::Reserving {
                // Prepare is only sent after `Forwarded` is durable, so the receiver never saw
                // this payment: release the reservation if it was made.
                let decision = RelayDecision {
                    uetr: uetr.to_string(),
                    decision: Decision::Rejected.into(),
                    status_reason_code: ReasonCode::Ab05.as_str().to_owned(),
                    status_reason_detail: format!(
                        "{} stopped before forwarding the payment",
                        self.jurisdiction()
                    ),
                    receipt: None,
                    receiving_jurisdiction: self.jurisdiction().to_owned(),
                };
                self.finish(uetr, record, &peer, decision).await?;
                continue;
            }
            let mut client = peer.client.clone();
            let mut request = tonic::Request::new(RelayStatusRequest {
                uetr: uetr.to_string(),
                instruction_sha256: hex::decode(&record.instruction_sha256).unwrap_or_default(),
            });
            request.set_timeout(self.parts.limits.relay_timeout);
            match tokio::time::timeout(self.parts.limits.relay_timeout, client.get_status(request))
                .await
            {
                Ok(Ok(answer)) => {
                    let answer = answer.into_inner();
                    self.parts
                        .metrics
                        .relay_request("GetStatus", decision_name(answer.decision()));
                    let record = self.finish(uetr, record, &peer, answer).await?;
                    tracing::info!(%uetr, state = ?record.state, "in-doubt payment resolved");
                    if !record.state.is_final() {
                        remaining += 1;
                    }
                }
                Ok(Err(status)) => {
                    self.parts.metrics.relay_request("GetStatus", "ERROR");
                    tracing::warn!(%uetr, %status, "status query failed; still in doubt");
                    remaining += 1;
                }
                Err(_) => {
                    self.parts.metrics.relay_request("GetStatus", "TIMEOUT");
                    tracing::warn!(%uetr, "status query timed out; still in doubt");
                    remaining += 1;
                }
            }
        }
        self.parts.metrics.set_in_doubt(remaining as u64);
        Ok(remaining)
    }

    /// The participant's view of a payment this node sent.
    pub fn status(&self, uetr: &Uetr) -> Result<Option<PaymentStatusReport>, EngineError> {
        Ok(self
            .parts
            .store
            .outbound(uetr)?
            .map(|record| self.report_from(uetr, &record)))
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

    fn pending_report(&self, record: &OutboundRecord, uetr: &Uetr) -> PaymentStatusReport {
        self.parts
            .metrics
            .set_in_doubt(self.parts.store.unresolved_count() as u64);
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

    // ------------------------------------------------------------------ receiver

    /// Handles a peer's Prepare (see the module documentation). `peer` is the jurisdiction the
    /// TLS client certificate was recognized for.
    pub async fn prepare(
        &self,
        peer: &str,
        signed: pb::Signed,
    ) -> Result<Result<RelayDecision, Rejection>, EngineError> {
        let started = Instant::now();
        let instr = match instruction::decode(&signed) {
            Ok(instr) => instr,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let span = tracing::info_span!("payment", uetr = %instr.uetr, role = "receiver",
            node = %self.parts.jurisdiction, peer = %peer);
        let decision = async {
            let _guard = self.locks.lock(instr.uetr).await;
            self.prepare_locked(peer, &signed, &instr).await
        }
        .instrument(span)
        .await?;
        let status = match decision.decision() {
            Decision::Settled => "ACSC",
            _ => "RJCT",
        };
        self.parts.metrics.record_payment(
            Direction::Inbound,
            status,
            &decision.status_reason_code,
            started.elapsed().as_secs_f64(),
        );
        Ok(Ok(decision))
    }

    async fn prepare_locked(
        &self,
        peer: &str,
        signed: &pb::Signed,
        instr: &Instruction,
    ) -> Result<RelayDecision, EngineError> {
        let sha = hex::encode(instr.payload_sha256);
        if let Some(existing) = self.parts.store.inbound(&instr.uetr)? {
            match existing.state {
                InboundState::Fenced => {
                    return Ok(self.decision_rejected(
                        &instr.uetr,
                        &Rejection::new(
                            ReasonCode::Ab05,
                            "this UETR was fenced by an earlier status query and can never settle",
                        ),
                    ));
                }
                _ if existing.instruction_sha256 != sha => {
                    return Ok(self.decision_rejected(
                        &instr.uetr,
                        &Rejection::new(
                            ReasonCode::Dupl,
                            "a different instruction with this UETR was already received",
                        ),
                    ));
                }
                InboundState::Settled | InboundState::Rejected => {
                    return Ok(self.decision_from(&instr.uetr, &existing));
                }
                InboundState::Accepting => {
                    // A crash between the record and the decision: the ledger knows whether
                    // the credit happened.
                    if let Some(record) = self.settle_if_credited(&instr.uetr, existing).await? {
                        return Ok(self.decision_from(&instr.uetr, &record));
                    }
                }
            }
        }
        let (_, t) = now();
        let checked = self.check_inbound(peer, signed, instr, t);
        let (credited_minor, liquidity) = match checked {
            Ok(ok) => ok,
            Err(rejection) => {
                let record = self.inbound_record(instr, signed, peer, InboundState::Rejected, 0, 0);
                return self.reject_inbound(&instr.uetr, record, rejection).await;
            }
        };
        let credit_id = transfer_id(b"credit", &instr.uetr.0);
        let mut record = self.inbound_record(
            instr,
            signed,
            peer,
            InboundState::Accepting,
            credited_minor,
            credit_id,
        );
        self.parts
            .store
            .put(vec![Write::Inbound(instr.uetr, record.clone())])
            .await?;
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
        let result = self.apply_one(credit).await?;
        crate::fault::crash_point(crate::fault::RECEIVER_AFTER_CREDIT);
        if !result.is_recorded() {
            record.state = InboundState::Rejected;
            let rejection = ledger_rejection(Some(result), "credit");
            return self.reject_inbound(&instr.uetr, record, rejection).await;
        }
        match self.settle_if_credited(&instr.uetr, record).await? {
            Some(record) => Ok(self.decision_from(&instr.uetr, &record)),
            None => Err(EngineError::Unexpected {
                what: "reading back the credit",
                result: "not found",
            }),
        }
    }

    /// Checks an inbound instruction; returns the amount to credit and the liquidity account.
    fn check_inbound(
        &self,
        peer: &str,
        signed: &pb::Signed,
        instr: &Instruction,
        t: UnixTime,
    ) -> Result<(u128, u128), Rejection> {
        let Some(link) = self.parts.peers.get(peer) else {
            return Err(Rejection::new(
                ReasonCode::Rr04,
                format!("{} has no corridor with {peer}", self.jurisdiction()),
            ));
        };
        let signer = signed::verify(
            signed,
            SIGNING_DOMAIN_INSTRUCTION,
            self.trust(),
            self.jurisdiction(),
            Purpose::PaymentSigning,
            t,
            &[],
        )?;
        if signer.subject_cn != instr.debtor_agent_bic {
            return Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the instruction is signed by {} but names debtor agent {}",
                    signer.subject_cn, instr.debtor_agent_bic
                ),
            ));
        }
        if signer.jurisdiction != peer {
            return Err(Rejection::new(
                ReasonCode::Ds0b,
                format!(
                    "the debtor agent's certificate is from {}, but the instruction came from {peer}",
                    signer.jurisdiction
                ),
            ));
        }
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
            instr.creditor_account,
            &instr.creditor_agent_bic,
            "creditor",
        )?;
        Ok((terms.target.1, link.liquidity_account))
    }

    fn inbound_record(
        &self,
        instr: &Instruction,
        signed: &pb::Signed,
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
            signed_instruction: signed.encode_to_vec(),
            updated_at: unix_secs(),
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
        record.updated_at = unix_secs();
        self.parts
            .store
            .put(vec![Write::Inbound(*uetr, record)])
            .await?;
        Ok(self.decision_rejected(uetr, &rejection))
    }

    /// If the credit of `record` is in the ledger, signs the receipt (from the ledger's
    /// timestamp, so a rebuilt receipt is byte-identical) and records the payment as settled.
    async fn settle_if_credited(
        &self,
        uetr: &Uetr,
        mut record: InboundRecord,
    ) -> Result<Option<InboundRecord>, EngineError> {
        let id = TransferId(record.credit_transfer_id);
        let ledger = Arc::clone(&self.parts.ledger);
        let found = blocking(move || ledger.lookup_transfers(&[id])).await??;
        let Some(Some(transfer)) = found.into_iter().next() else {
            return Ok(None);
        };
        let signed = pb::Signed::decode(record.signed_instruction.as_slice()).map_err(|_| {
            EngineError::Unexpected {
                what: "decoding a stored instruction",
                result: "corrupt",
            }
        })?;
        let instr = instruction::decode(&signed).map_err(|_| EngineError::Unexpected {
            what: "decoding a stored instruction",
            result: "corrupt",
        })?;
        let settled_at = UnixTime(
            i64::try_from(transfer.timestamp.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX),
        );
        let receipt = receipt::build_receipt(
            &instr,
            self.jurisdiction(),
            &record.sender,
            (self.parts.currency, transfer.amount),
            transfer.id.0,
            settled_at,
        );
        let signed_receipt = signed::sign(
            SIGNING_DOMAIN_RECEIPT,
            receipt.encode_to_vec(),
            &self.parts.signing_key,
            &self.parts.signing_chain,
        );
        record.state = InboundState::Settled;
        record.receipt = Some(signed_receipt.encode_to_vec());
        record.credited_minor = transfer.amount;
        record.updated_at = unix_secs();
        self.parts
            .store
            .put(vec![Write::Inbound(*uetr, record.clone())])
            .await?;
        Ok(Some(record))
    }

    /// Answers a peer's status query, fencing the UETR when there is no decision.
    pub async fn relay_status(
        &self,
        peer: &str,
        uetr: Uetr,
        instruction_sha256: &[u8],
    ) -> Result<RelayDecision, EngineError> {
        let _guard = self.locks.lock(uetr).await;
        let existing = self.parts.store.inbound(&uetr)?;
        let record = match existing {
            Some(record) if record.state == InboundState::Accepting => {
                match self.settle_if_credited(&uetr, record.clone()).await? {
                    Some(settled) => Some(settled),
                    None => {
                        let mut fenced = record;
                        fenced.state = InboundState::Fenced;
                        fenced.reason_code = Some(ReasonCode::Ab05.as_str().to_owned());
                        fenced.reason_detail = Some("fenced by a status query".to_owned());
                        fenced.updated_at = unix_secs();
                        self.parts
                            .store
                            .put(vec![Write::Inbound(uetr, fenced.clone())])
                            .await?;
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
                    updated_at: unix_secs(),
                };
                self.parts
                    .store
                    .put(vec![Write::Inbound(uetr, fence.clone())])
                    .await?;
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

fn check_customer(meta: &AccountMeta, id: u128, bic: &str, role: &str) -> Result<(), Rejection> {
    if meta.kind != AccountKind::Customer {
        return Err(Rejection::new(
            ReasonCode::Ac01,
            format!("{role}_account {id} is not a customer account"),
        ));
    }
    if meta.closed {
        return Err(Rejection::new(
            ReasonCode::Ac04,
            format!("{role}_account {id} is closed"),
        ));
    }
    if meta.owner_bic.as_deref() != Some(bic) {
        return Err(Rejection::new(
            ReasonCode::Ac01,
            format!("{role}_account {id} is not held at {role} agent {bic}"),
        ));
    }
    Ok(())
}

/// Maps a ledger refusal to the payment's reason code.
fn ledger_rejection(result: Option<CreateTransferResult>, what: &str) -> Rejection {
    match result {
        Some(CreateTransferResult::ExceedsCredits) => Rejection::new(
            ReasonCode::Am04,
            format!("insufficient funds for the {what} (ledger: exceeds_credits)"),
        ),
        Some(
            r @ (CreateTransferResult::DebitAccountNotFound
            | CreateTransferResult::CreditAccountNotFound),
        ) => Rejection::new(ReasonCode::Ac01, format!("{what}: ledger {}", r.as_str())),
        Some(r) => Rejection::new(ReasonCode::Ff01, format!("{what}: ledger {}", r.as_str())),
        None => Rejection::new(ReasonCode::Ff01, format!("{what}: no ledger result")),
    }
}

fn ff01(detail: impl Into<String>) -> Submitted {
    Submitted::Invalid(Rejection::new(ReasonCode::Ff01, detail))
}

fn invalid_internal(e: &dyn std::fmt::Display) -> Submitted {
    tracing::error!(error = %e, "internal error");
    Submitted::Invalid(Rejection::new(
        ReasonCode::Ff01,
        format!("internal error: {e}"),
    ))
}

/// The metric label of a relay decision.
fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Settled => "SETTLED",
        Decision::Rejected => "REJECTED",
        Decision::UnknownFenced => "UNKNOWN_FENCED",
        Decision::Unspecified => "UNSPECIFIED",
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_ids_differ_by_step_and_uetr() {
        let a = transfer_id(b"reserve", &[1; 16]);
        assert_ne!(a, transfer_id(b"post", &[1; 16]));
        assert_ne!(a, transfer_id(b"reserve", &[2; 16]));
        assert_eq!(a, transfer_id(b"reserve", &[1; 16]));
        assert_ne!(a, 0);
    }

    #[test]
    fn sanction_names_match_after_normalizing_case_and_spaces() {
        assert_eq!(
            Sanctions::normalize("  Sanctioned   Trading CO "),
            "sanctioned trading co"
        );
    }
}
