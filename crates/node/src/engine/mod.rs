//! The settlement protocol: what a node does with a participant's instruction (as sender) and
//! with a peer's Prepare or status query (as receiver). ARCHITECTURE.md, "Settlement protocol",
//! has the sequence diagram and the invariants; the rules that make it atomic across two
//! ledgers are these:
//!
//! 1. The sender reserves (a pending ledger transfer into the corridor account) and records
//!    `Forwarded` in the same durable commit before Prepare leaves; from then on only the receiver's decision (its
//!    answer, or its answer to a status query) ends the reservation: posted if settled, voided
//!    otherwise. No timeout voids a forwarded payment, and the ledger transfer has no timeout.
//! 2. The receiver decides once per (sending jurisdiction, UETR), under the UETR's lock, and
//!    makes the decision durable (the credit in the ledger and its record, with the signed
//!    receipt, in one commit) before answering; a
//!    repeated Prepare of the same signed envelope gets the same decision. An instruction it
//!    cannot authenticate as a bank of the calling peer is refused without a decision and
//!    without a record.
//! 3. A status query that finds no decision records a fence first; a fenced UETR is refused by
//!    every later Prepare from that sender. So when the sender voids after UNKNOWN_FENCED, no
//!    credit can follow.
//! 4. Every ledger transfer id derives from the UETR (SHA-256; the credit's from the sending
//!    jurisdiction and the UETR), so retrying any step after a crash is idempotent (`exists`).
//!
//! [`Engine`] is one type whose methods are cut along its jobs: `accounts` (genesis, balances,
//! the operator's open, fund, close and reopen), `quoting`, `sender` (submit, reserve, forward, post or
//! void), `recovery` (of payments in doubt: bounded passes, per-peer concurrency and backoff),
//! `drain` (admission of submissions, and their drain when the node stops), `receiver` (Prepare, the status query, credit and receipt) and `checks` (the validations
//! both sides share).
//!
//! Everything outside the engine's own logic is handed to it at construction ([`EngineParts`]),
//! so that the deterministic simulator (crates/sim) drives the engine that production runs: it
//! reads the time only through a [`Clock`], reaches its peers only through a
//! [`PeerTransport`], keeps its books through [`Books`], draws random bytes (quote ids, funding
//! ids) from an [`Entropy`], and its payment store is the ledger's records or memory
//! ([`crate::store::Store::in_memory`]). Production passes [`SystemClock`], [`GrpcPeer`],
//! [`SledBooks`], [`SystemEntropy`] and the store over the ledger's records. A step that moves
//! money writes its records in the transfer's own commit
//! ([`Books::create_transfers_recorded`]): one durable commit per step.

mod accounts;
mod books;
mod checks;
mod clock;
mod drain;
mod entropy;
mod failover;
mod pgbooks;
mod quoting;
mod receiver;
mod recovery;
mod sender;
mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{CreateTransferResult, NewTransfer};
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb::PaymentStatusReport;
use kakehashi_protocol::money::{Currency, Rate};
use kakehashi_protocol::quote::QuoteIssuer;
use kakehashi_protocol::reason::Rejection;
use kakehashi_protocol::signed::{ParsedCerts, Trust};

use crate::locks::UetrLocks;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use crate::screening::Sanctions;
pub use accounts::AccountRefusal;
pub use books::{Books, BooksCall, SledBooks, StoreWrites};
pub use clock::{Clock, SystemClock};
pub use drain::Admitted;
pub use entropy::{Entropy, EntropyError, SystemEntropy};
pub use failover::FailoverPeer;
pub use pgbooks::{PgBooks, PgHandle};
pub use quoting::{QUOTES_HELD_MAX, QUOTES_PER_ASKER_MAX, QuoteAsker};
pub use receiver::Verified;

pub use recovery::{
    RECOVERY_BACKOFF_INITIAL, RECOVERY_BACKOFF_MAX, RecoveryLimits, RecoveryPass, backoff_delay,
};
pub use transport::{
    GrpcPeer, PeerCall, PeerError, PeerTransport, RELAY_BATCH_LINGER, RELAY_BATCH_MAX,
    RELAY_STREAM_IDLE, RELAY_STREAM_IN_FLIGHT, RELAY_STREAM_LIFETIME, RELAY_UNARY_RECHECK,
    relay_reply,
};

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
    /// The PostgreSQL ledger failed (other than refusing the request itself, which is
    /// [`EngineError::Ledger`]).
    #[error("ledger: {0}")]
    Postgres(Box<kakehashi_ledger_pg::Error>),
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

impl EngineError {
    /// Whether the same request may succeed later without an operator's help: the caller is
    /// answered `Unavailable` (retry with the same UETR) rather than `Internal`. A retry is
    /// safe either way: each step is idempotent per UETR, and a commit whose outcome is unknown
    /// (a failed group commit, a database lost during COMMIT) is read back by the retry or by
    /// recovery. Transient: the payment store's I/O, sled and commit failures and a stopped
    /// store writer (the node restarts it, or reopens a PostgreSQL ledger), a ledger error the
    /// ledger itself calls transient, a database that may answer again, a lost blocking task.
    /// Not transient: stored data that does not decode, a ledger answer the protocol does not
    /// allow, a configuration that does not match the ledger; retrying those gives the same
    /// answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => e.is_transient(),
            Self::Ledger(e) => e.is_transient(),
            // The database may be back after a restart or a failover (an unknown commit outcome
            // included: the step is idempotent per UETR, and a retry reads what was committed);
            // stored data that does not decode, another node key or a newer schema stay so.
            Self::Postgres(e) => !matches!(
                **e,
                kakehashi_ledger_pg::Error::Corrupt { .. }
                    | kakehashi_ledger_pg::Error::NodeKeyMismatch { .. }
                    | kakehashi_ledger_pg::Error::SchemaTooNew { .. }
                    | kakehashi_ledger_pg::Error::NotDurable { .. }
                    | kakehashi_ledger_pg::Error::InvalidOption { .. }
            ),
            Self::Task(_) => true,
            Self::Unexpected { .. } | Self::Config(_) => false,
        }
    }
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
    /// How the sender calls the peer ([`GrpcPeer`] in production).
    pub transport: Arc<dyn PeerTransport>,
}

/// Limits the engine enforces (from the configuration).
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Largest payment, minor units of this node's currency (also applied to credits).
    pub payment_minor_max: u128,
    /// Allowed difference between clocks when checking expiry.
    pub clock_skew_secs: u64,
    /// Longest allowed time between an instruction's creation and its expiry.
    pub instruction_lifetime_secs_max: u64,
    /// Largest amount one FundAccount call may credit, minor units (`[admin] max_funding`).
    pub funding_minor_max: u128,
    /// Most free quotes one asker holds (`[limits] max_free_quotes_per_asker`): each bank,
    /// and everyone without a bank identity together.
    pub free_quotes_per_asker_max: usize,
}

/// Everything the engine needs; built by [`crate::node`] from the configuration.
pub struct EngineParts {
    /// This node's jurisdiction code.
    pub jurisdiction: String,
    /// This node's ledger currency.
    pub currency: &'static Currency,
    /// The agreement.
    pub mra: Arc<Mra>,
    /// The ledger ([`SledBooks`] in production).
    pub books: Arc<dyn Books>,
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
    /// How far, in basis points, the rate of a peer's quote may be from the inverse of this
    /// node's mid rate for the corridor before the receiver refuses it (`[fx] rate_band_bps`).
    pub rate_band_bps: u32,
    /// Quote lifetime.
    pub quote_ttl_secs: u64,
    /// Limits.
    pub limits: EngineLimits,
    /// How recovery paces itself.
    pub recovery: RecoveryLimits,
    /// Sanctions.
    pub sanctions: Sanctions,
    /// The funding account (genesis and cash-in).
    pub funding_account: u128,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where the engine reads the time ([`SystemClock`] in production).
    pub clock: Arc<dyn Clock>,
    /// Where the engine draws random bytes ([`SystemEntropy`] in production).
    pub entropy: Arc<dyn Entropy>,
    /// A known defect the simulator plants to show that it finds it; always `None` outside
    /// the simulator's own tests (no configuration can set it).
    #[doc(hidden)]
    pub planted: Option<Planted>,
}

/// Known defects of the settlement protocol, planted one at a time by the simulator's tests
/// (issue 11): a simulator that cannot find them proves nothing. Each breaks one rule of the
/// module documentation.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planted {
    /// Rule 3: a status query that finds no decision answers UNKNOWN_FENCED without writing
    /// the fence, so a late Prepare can still settle after the sender voided.
    SkipFence,
    /// Rule 2: the receiver records the payment settled before its credit is durable.
    RecordBeforeCredit,
    /// Rule 1: the sender posts a reservation the receiver rejected.
    PostRejected,
    /// Rule 1: the sender's reservation commit records `Reserving` instead of `Forwarded`, so
    /// once Prepare has left, a crash leaves a record that says nothing was sent (and recovery
    /// voids a payment the receiver may have settled).
    ForwardUnrecorded,
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
    /// The quotes this node issued and still holds (see `quoting`).
    issued: quoting::IssuedQuotes,
    locks: UetrLocks,
    quote_seq: AtomicU64,
    /// Peers that did not answer recovery's status queries, and when to ask them again.
    backoffs: recovery::Backoffs,
    /// Admission of new submissions, and those in flight (for a graceful stop).
    admissions: drain::Admissions,
    /// Closing and reopening customer accounts (write) against the steps that decide on an
    /// account's being open and then move money in it (read): the sender from the debtor's
    /// check to its reservation, the receiver from the creditor's check to its credit. So a
    /// close never lands between a check and its transfer: a reservation is either made
    /// before the close looks for reservations in flight (and the close waits for its
    /// decision) or checked after it (AC04), and a credit's id is never spent on a closed
    /// account (see `accounts`).
    closing: tokio::sync::RwLock<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("jurisdiction", &self.parts.jurisdiction)
            .finish_non_exhaustive()
    }
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
        let issued =
            quoting::IssuedQuotes::with_asker_share(parts.limits.free_quotes_per_asker_max);
        let recognition = RecognitionCache::new(&parts.mra)
            .inspect_err(|e| tracing::warn!(error = %e, "recognition verdicts will not be cached"))
            .ok();
        Self {
            parts,
            recognition,
            certs: ParsedCerts::new(),
            quotes,
            issued,
            locks: UetrLocks::default(),
            quote_seq: AtomicU64::new(0),
            backoffs: recovery::Backoffs::default(),
            admissions: drain::Admissions::default(),
            closing: tokio::sync::RwLock::new(()),
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
    pub fn books(&self) -> &dyn Books {
        &*self.parts.books
    }

    /// Whether `jurisdiction` is a configured peer of this node, the only party whose relay
    /// requests the node acts on. A chain recognized for node TLS says who the caller is, not
    /// that it may act here: the node's own jurisdiction and a recognized node without a
    /// corridor are refused before anything is read or written (issue 11, defect 1).
    pub fn is_corridor_peer(&self, jurisdiction: &str) -> bool {
        jurisdiction != self.jurisdiction() && self.parts.peers.contains_key(jurisdiction)
    }

    /// The peers.
    pub fn peers(&self) -> &BTreeMap<String, PeerLink> {
        &self.parts.peers
    }

    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.parts.metrics
    }

    /// The sanctions list in force, and its reload.
    pub fn sanctions(&self) -> &Sanctions {
        &self.parts.sanctions
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.parts.clock
    }

    /// Closes the ledger cleanly (joins its writer) when this engine holds its last reference.
    pub async fn close(self) -> Result<(), EngineError> {
        let EngineParts { books, store, .. } = self.parts;
        // On PostgreSQL the payment store holds the books' own handle: let it go first, or the
        // books would not be their handle's last holder and would skip the clean close (and
        // with it the signature of the journal's head).
        drop(store);
        books.close().await
    }

    /// Applies one ledger transfer at the clock's time and returns the ledger's result.
    async fn apply_one(&self, transfer: NewTransfer) -> Result<CreateTransferResult, EngineError> {
        let (ts, _) = self.clock().now();
        let results = self.books().create_transfers(vec![transfer], ts).await?;
        results.into_iter().next().ok_or(EngineError::Unexpected {
            what: "a transfer",
            result: "no result",
        })
    }

    /// Applies one transfer together with the payment records `records` computes from its
    /// outcome, in one durable commit (see [`Books::create_transfers_recorded`]).
    async fn apply_one_recorded(
        &self,
        transfer: NewTransfer,
        records: StoreWrites,
    ) -> Result<CreateTransferResult, EngineError> {
        let (ts, _) = self.clock().now();
        let results = self
            .books()
            .create_transfers_recorded(vec![transfer], ts, records)
            .await?;
        results.into_iter().next().ok_or(EngineError::Unexpected {
            what: "a transfer",
            result: "no result",
        })
    }
}

#[cfg(test)]
mod tests {
    use kakehashi_proto::pb::Decision;
    use kakehashi_protocol::transfer::transfer_id;

    /// Issue 11, defect 4, the receiver's side: a payment store read that fails while a
    /// Prepare is checked propagates as a transient error with nothing recorded (it was an
    /// AC01 decision, stored under the UETR for good), and the same Prepare then settles.
    #[tokio::test]
    async fn a_failed_store_read_on_prepare_records_nothing_and_the_same_prepare_settles() {
        let pair = crate::testing::pair().await;
        let (jp, sg) = (pair.jp.engine(), pair.sg.engine());
        let uetr = crate::testing::new_uetr();
        let signed = crate::testing::jp_to_sg(jp, uetr);

        sg.store().fail_account_reads(true);
        let failed = sg
            .prepare("JP", signed.clone())
            .await
            .expect_err("the read failed");
        assert!(failed.is_transient(), "{failed:?}");
        sg.store().fail_account_reads(false);
        assert_eq!(
            sg.store().inbound("JP", &uetr).await.unwrap(),
            None,
            "nothing recorded"
        );

        let decision = sg
            .prepare("JP", signed)
            .await
            .expect("no fault")
            .expect("a decision");
        assert_eq!(decision.decision(), Decision::Settled, "{decision:?}");
    }

    /// Issue 11, defect 5: a participant's status query waits for the step in progress on its
    /// UETR (every step holds the UETR's lock), so it never reports a state in the middle of
    /// one.
    #[tokio::test]
    async fn a_status_query_waits_for_the_step_in_progress() {
        let pair = crate::testing::pair().await;
        let jp = std::sync::Arc::clone(pair.jp.engine());
        let uetr = crate::testing::new_uetr();
        let step = jp.locks.lock(uetr).await;
        let status = tokio::spawn({
            let jp = std::sync::Arc::clone(&jp);
            async move { jp.status(&uetr).await }
        });
        // The test runs on one thread: each yield lets the status task run until it waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!status.is_finished(), "answered while a step held the UETR");
        drop(step);
        assert!(
            status
                .await
                .expect("status task")
                .expect("status")
                .is_none()
        );
    }

    /// Issue 14, item 4: a submission the participant API decoded already is taken with its
    /// decoding, and the envelope it came from is still authenticated: an altered signature is
    /// refused (DS0B) with nothing recorded, a refused decoding is answered as `submit`
    /// answers, and a genuine one settles.
    #[tokio::test]
    async fn a_decoded_submission_is_still_authenticated_and_settles() {
        use kakehashi_proto::pb::TransactionStatus;
        use kakehashi_protocol::instruction::decode_signed;
        use kakehashi_protocol::reason::ReasonCode;

        use super::Submitted;

        let pair = crate::testing::pair().await;
        let jp = pair.jp.engine();
        let report = |submitted: Submitted| match submitted {
            Submitted::Report(report) => *report,
            Submitted::Invalid(rejection) => panic!("invalid: {rejection}"),
        };

        let uetr = crate::testing::new_uetr();
        let mut forged = crate::testing::jp_to_sg(jp, uetr);
        if let Some(byte) = forged.signature.first_mut() {
            *byte ^= 1;
        }
        let refused = report(
            jp.submit_decoded(decode_signed(forged))
                .await
                .expect("no fault"),
        );
        assert_eq!(refused.transaction_status(), TransactionStatus::Rjct);
        assert_eq!(refused.status_reason_code, ReasonCode::Ds0b.as_str());
        assert!(
            jp.store().outbound(&uetr).await.unwrap().is_none(),
            "nothing recorded"
        );

        let mut garbled = crate::testing::jp_to_sg(jp, crate::testing::new_uetr());
        garbled.payload = vec![0xff; 4];
        let by_submit = jp.submit(garbled.clone()).await.expect("no fault");
        let by_decoded = jp
            .submit_decoded(decode_signed(garbled))
            .await
            .expect("no fault");
        match (by_submit, by_decoded) {
            (Submitted::Invalid(a), Submitted::Invalid(b)) => {
                assert_eq!(a, b);
                assert_eq!(a.code, ReasonCode::Ff01);
            }
            other => panic!("both must be invalid: {other:?}"),
        }

        let settled = report(
            jp.submit_decoded(decode_signed(crate::testing::jp_to_sg(jp, uetr)))
                .await
                .expect("no fault"),
        );
        assert_eq!(
            settled.transaction_status(),
            TransactionStatus::Acsc,
            "{settled:?}"
        );
    }

    #[test]
    fn transfer_ids_differ_by_step_and_uetr() {
        let a = transfer_id(b"reserve", &[1; 16]);
        assert_ne!(a, transfer_id(b"post", &[1; 16]));
        assert_ne!(a, transfer_id(b"reserve", &[2; 16]));
        assert_eq!(a, transfer_id(b"reserve", &[1; 16]));
        assert_ne!(a, 0);
    }
}
