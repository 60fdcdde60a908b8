//! A load generator for the relay, behind `kakehashi bench`: two nodes started in this process
//! from their configurations (a sender and its peer) on free loopback ports and a data
//! directory of the caller's choice, payments from the sender's customers to the receiver's
//! over the public API with real mutual TLS and real sled ledgers, and the figures a fintech
//! engineer asks for: settled payments per second, SubmitPayment latency percentiles, answers
//! by status and reason, and a check that every balance moved by exactly the settled sums.
//!
//! Every payment takes the participant flow of `kakehashi_node::participant`: a GetQuote whose
//! quote is verified under the agreement and checked against the amount and destination before
//! the bank signs at it, then a SubmitPayment (or one item of the bidirectional SubmitPayments
//! stream): an ACSC answer means the payment is durable on both ledgers. The client, both nodes
//! and their disks share the machine, so the figures measure one box end to end, not a node
//! alone.
//!
//! Routes come from the configurations, not from code: route `i` pays from the sender's `i`-th
//! customer account to the receiver's `i`-th (modulo their number), signed by the bank that
//! holds the debtor account, whose certificate and key are read from
//! `<certs>/<jurisdiction in lower case>/banks/<BIC>.pem` and `.key.pem` (the layout
//! `kakehashi pki init` writes).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::{SIGNING_DOMAIN_INSTRUCTION, SIGNING_DOMAIN_QUOTE, SIGNING_DOMAIN_RECEIPT};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use kakehashi_node::config::{AccountKind, Config, Peer};
use kakehashi_node::node::{Node, RunningNode};
use kakehashi_node::participant::{self, Participant, ParticipantError, PayError};
use kakehashi_node::server;
use kakehashi_node::tls::TlsIdentity;
use kakehashi_node::{Clock as _, SystemClock};
use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::quote::QuoteAsk;
use kakehashi_protocol::signed::{ParsedCerts, Trust};

pub mod ceiling;
pub mod cpu;
pub mod pace;
pub mod sampler;
pub mod summary;

use ceiling::{PathSizes, SignedSize};
use pace::{Dispatcher, Pace};
use sampler::Sampler;
use summary::{Histogram, Summary};

/// Largest number of instructions one SubmitPayments stream has in flight on the node
/// (service.rs `STREAM_CONCURRENCY`); more only queue in the stream.
pub const STREAM_WINDOW_MAX: usize = 64;

/// Most payments in flight at once: the nodes' default request concurrency
/// (`MAX_CONCURRENT_REQUESTS_DEFAULT`) is 256; more would only queue at the node.
pub const CONCURRENCY_MAX: usize = 256;

/// Most payments one run sends: ten million, which the debtors are funded for up front
/// (`fund_debtors`). The run's own memory does not grow with them: each payment is counted
/// into a [`Summary`] as it ends.
pub const PAYMENTS_MAX: usize = 10_000_000;

/// Longest `--duration`: a day.
pub const DURATION_MAX: Duration = Duration::from_secs(86_400);

/// Highest `--rate`, payments per second.
pub const RATE_MAX: f64 = 1_000_000.0;

/// Payments per second of `--duration` a closed-loop timed run may send at most: its funding
/// is sized by it. Fifty times what a two-core machine does today.
pub const CLOSED_LOOP_RATE_MAX: f64 = 20_000.0;

/// Empty gRPC calls the TLS and HTTP/2 calibration makes after the run
/// ([`cpu::CpuSplit::tls_http2_us`]): enough that the process clock's noise is small per call.
pub const CALIBRATION_CALLS: usize = 2_000;

/// The remittance information of every payment.
const REMITTANCE: &str = "kakehashi bench";

/// What went wrong with a load run (not a payment's outcome: those are [`PaymentOutcome`]s).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options are out of range.
    #[error("{0}")]
    Options(String),
    /// The configurations do not give usable routes.
    #[error("routes: {0}")]
    Routes(String),
    /// A node did not start.
    #[error("the {jurisdiction} node did not start: {message}")]
    Start {
        /// Which node.
        jurisdiction: String,
        /// Why.
        message: String,
    },
    /// Connecting or loading an identity failed.
    #[error(transparent)]
    Participant(#[from] ParticipantError),
    /// A payment stopped without an outcome: a call failed, or the quote does not verify or is
    /// not for the payment asked (then nothing was signed).
    #[error(transparent)]
    Pay(#[from] PayError),
    /// A call failed without a payment outcome.
    #[error("{what}: {status}")]
    Call {
        /// Which call.
        what: String,
        /// What the node or transport said.
        status: Box<tonic::Status>,
    },
    /// Something in the run itself failed (a task, a stream, an answer out of place).
    #[error("{0}")]
    Run(String),
}

fn call(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> LoadError {
    let what = what.into();
    move |status| LoadError::Call {
        what,
        status: Box::new(status),
    }
}

/// How to load the pair.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Payments to send (1 to [`PAYMENTS_MAX`]).
    pub payments: usize,
    /// Payments in flight at once (1 to [`CONCURRENCY_MAX`]): participants for unary calls,
    /// the window for the stream.
    pub concurrency: usize,
    /// Use the bidirectional SubmitPayments stream instead of one SubmitPayment per payment.
    pub stream: bool,
    /// Streams to spread the window over with `stream` (default: enough that none exceeds
    /// [`STREAM_WINDOW_MAX`]).
    pub streams: Option<usize>,
    /// Credit every debtor account with enough for every payment first (operator call with
    /// the sender's TLS identity, which the devnet lists as an operator).
    pub fund: bool,
    /// Each payment, in major units of the sender's currency.
    pub amount: String,
    /// Run for this long instead of for [`Self::payments`]: no payment is sent (or due) after
    /// it; what is in flight then is still answered.
    pub duration: Option<Duration>,
    /// Payments per second, open loop on a fixed schedule ([`pace`]); `None` sends as fast as
    /// the window allows.
    pub rate: Option<f64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            payments: 2_000,
            concurrency: 16,
            stream: false,
            streams: None,
            fund: true,
            amount: "1000".to_owned(),
            duration: None,
            rate: None,
        }
    }
}

impl LoadOptions {
    fn check(&self) -> Result<(), LoadError> {
        if !(1..=PAYMENTS_MAX).contains(&self.payments) {
            return Err(LoadError::Options(format!(
                "payments must be 1 to {PAYMENTS_MAX}, not {}",
                self.payments
            )));
        }
        if !(1..=CONCURRENCY_MAX).contains(&self.concurrency) {
            return Err(LoadError::Options(format!(
                "concurrency must be 1 to {CONCURRENCY_MAX}, not {}",
                self.concurrency
            )));
        }
        if self.streams.is_some_and(|s| s == 0 || s > self.concurrency) {
            return Err(LoadError::Options(
                "streams must be 1 to the concurrency".to_owned(),
            ));
        }
        if self
            .duration
            .is_some_and(|d| d.is_zero() || d > DURATION_MAX)
        {
            return Err(LoadError::Options(format!(
                "duration must be more than 0 and at most {} s",
                DURATION_MAX.as_secs()
            )));
        }
        if self
            .rate
            .is_some_and(|r| Pace::new(r).is_none() || r > RATE_MAX)
        {
            return Err(LoadError::Options(format!(
                "rate must be more than 0 and at most {RATE_MAX} payments/s"
            )));
        }
        Ok(())
    }

    /// The most payments the run may send: [`Self::payments`], or with a duration what the
    /// rate sends in it (one more for the slot at the start), capped at [`PAYMENTS_MAX`].
    pub fn payment_bound(&self) -> usize {
        match (self.duration, self.rate) {
            (None, _) => self.payments,
            (Some(d), Some(rate)) => {
                let due = (d.as_secs_f64() * rate).ceil() + 1.0;
                if due >= PAYMENTS_MAX as f64 {
                    PAYMENTS_MAX
                } else {
                    due as usize
                }
            }
            (Some(d), None) => {
                let most = d.as_secs_f64() * CLOSED_LOOP_RATE_MAX;
                if most >= PAYMENTS_MAX as f64 {
                    PAYMENTS_MAX
                } else {
                    most.ceil() as usize
                }
            }
        }
    }

    /// The dispatcher of a run that starts at `start`.
    fn dispatcher(&self, start: Instant) -> Dispatcher {
        Dispatcher::new(
            start,
            self.rate.and_then(Pace::new),
            self.duration.map(|d| start + d),
            u64::try_from(self.payment_bound()).unwrap_or(u64::MAX),
        )
    }

    /// How many streams a stream run uses.
    pub fn stream_count(&self) -> usize {
        self.streams
            .unwrap_or_else(|| self.concurrency.div_ceil(STREAM_WINDOW_MAX))
            .max(1)
    }
}

/// Two running nodes: the sender and its peer.
#[derive(Debug)]
pub struct Pair {
    /// The sending node.
    pub sender: RunningNode,
    /// The receiving node.
    pub receiver: RunningNode,
    /// The sender's configuration, as started (ports and data directory filled in).
    pub sender_config: Config,
    /// The receiver's configuration, as started.
    pub receiver_config: Config,
}

impl Pair {
    /// Stops both nodes.
    pub async fn shutdown(self) -> Result<(), LoadError> {
        let sender = self.sender.shutdown().await;
        let receiver = self.receiver.shutdown().await;
        for (config, result) in [
            (&self.sender_config, sender),
            (&self.receiver_config, receiver),
        ] {
            result.map_err(|e| {
                LoadError::Run(format!(
                    "the {} node did not shut down cleanly: {e}",
                    config.jurisdiction
                ))
            })?;
        }
        Ok(())
    }
}

/// Starts `sender` and `receiver` (each the other's peer) on free loopback ports, with their
/// ledgers under `data_dir/<jurisdiction in lower case>`. Both nodes' listeners are bound on
/// port 0 first ([`server::bind`]), so each configuration names the other's relay port before
/// either node starts ([`Node::start_on`]) and no port is chosen ahead and raced for.
pub async fn start_pair(
    sender: Config,
    receiver: Config,
    data_dir: &Path,
) -> Result<Pair, LoadError> {
    let start_error = |config: &Config, e: &dyn std::fmt::Display| LoadError::Start {
        jurisdiction: config.jurisdiction.clone(),
        message: e.to_string(),
    };
    let bind = |config: &Config| {
        let listen = config.clone().with_ports(0, 0, 0).listen;
        async move { server::bind(&listen).await }
    };
    let sender_bound = bind(&sender).await.map_err(|e| start_error(&sender, &e))?;
    let receiver_bound = bind(&receiver)
        .await
        .map_err(|e| start_error(&receiver, &e))?;
    let configure = |config: &Config, own: server::Addresses, peer: &Config, peer_relay| {
        config
            .clone()
            .with_data_dir(data_dir.join(config.jurisdiction.to_lowercase()))
            .with_ports(own.public.port(), own.relay.port(), own.metrics.port())
            .with_peer_relay(&peer.jurisdiction, &format!("https://{peer_relay}"))
            .map_err(|e| start_error(config, &e))
    };
    let sender_config = configure(
        &sender,
        sender_bound.addresses(),
        &receiver,
        receiver_bound.addresses().relay,
    )?;
    let receiver_config = configure(
        &receiver,
        receiver_bound.addresses(),
        &sender,
        sender_bound.addresses().relay,
    )?;
    let started = Node::start_on(sender_config.clone(), sender_bound)
        .await
        .map_err(|e| start_error(&sender, &e))?;
    match Node::start_on(receiver_config.clone(), receiver_bound).await {
        Ok(node) => Ok(Pair {
            sender: started,
            receiver: node,
            sender_config,
            receiver_config,
        }),
        Err(e) => {
            let _ = started.shutdown().await;
            Err(start_error(&receiver, &e))
        }
    }
}

/// A debtor at the sender and the creditor at the receiver it pays.
#[derive(Clone, Debug)]
pub struct Route {
    /// The debtor's bank (signs the instructions).
    pub bank: Bank,
    /// The bank's participant-TLS identity (`<BIC>-tls.pem` beside its signing chain): a node
    /// takes an instruction only from its debtor agent's connection.
    pub tls: TlsIdentity,
    /// The debtor's and the creditor's accounts and names, and the remittance information.
    pub order: Order,
}

/// The routes between `sender`'s and `receiver`'s customer accounts (see the module
/// documentation), with bank identities from `certs`.
pub fn routes(sender: &Config, receiver: &Config, certs: &Path) -> Result<Vec<Route>, LoadError> {
    let customers = |config: &Config| -> Vec<(u128, String, String)> {
        config
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::Customer && !a.owner_bic.is_empty())
            .map(|a| (a.id, a.owner_bic.clone(), a.name.clone()))
            .collect()
    };
    let debtors = customers(sender);
    let creditors = customers(receiver);
    if debtors.is_empty() || creditors.is_empty() {
        return Err(LoadError::Routes(format!(
            "{} and {} both need customer accounts with an owner_bic",
            sender.jurisdiction, receiver.jurisdiction
        )));
    }
    let banks_dir = banks_dir(certs, &sender.jurisdiction);
    let mut banks: BTreeMap<String, (Bank, TlsIdentity)> = BTreeMap::new();
    let mut out = Vec::with_capacity(debtors.len());
    for (i, (debtor_account, bic, debtor_name)) in debtors.into_iter().enumerate() {
        let (bank, tls) = match banks.get(&bic) {
            Some(bank) => bank.clone(),
            None => {
                let bank = Bank::load(
                    &banks_dir.join(format!("{bic}.pem")),
                    &banks_dir.join(format!("{bic}.key.pem")),
                )
                .map_err(ParticipantError::from)?;
                let tls = TlsIdentity::load(
                    &banks_dir.join(format!("{bic}-tls.pem")),
                    &banks_dir.join(format!("{bic}-tls.key.pem")),
                )
                .map_err(|e| {
                    LoadError::Routes(format!("the participant-TLS identity of {bic}: {e}"))
                })?;
                banks.insert(bic.clone(), (bank.clone(), tls.clone()));
                (bank, tls)
            }
        };
        let (creditor_account, creditor_bic, creditor_name) =
            creditors[i % creditors.len()].clone();
        out.push(Route {
            bank,
            tls,
            order: Order {
                debtor_account,
                debtor_name,
                creditor_agent_bic: creditor_bic,
                creditor_account,
                creditor_name,
                remittance_information: REMITTANCE.to_owned(),
            },
        });
    }
    Ok(out)
}

/// Why a payment failed without an answer the bank can use: an error of the run, counted
/// apart from the node's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// GetQuote failed without a reason code, or the quote did not verify (nothing signed).
    Quote,
    /// SubmitPayment failed without a reason code.
    Submit,
    /// The payment is reported settled, but its receipt is missing or does not verify.
    Receipt,
}

impl Failure {
    /// Its name in the answers (`ERROR quote`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Submit => "submit",
            Self::Receipt => "receipt",
        }
    }
}

/// What one payment came back with: counted into the run's [`Summary`] as it ends, not kept.
#[derive(Clone, Debug)]
pub struct PaymentOutcome {
    /// Index into the routes.
    pub route: usize,
    /// The pacs.002 status (RJCT for a refusal with a reason code; unspecified when the
    /// payment failed before an answer).
    pub status: pb::TransactionStatus,
    /// The reason code when rejected.
    pub reason: String,
    /// Minor units credited at the receiver (ACSC only).
    pub credited_minor: u128,
    /// SubmitPayment alone (or the stream item from send to answer); `None` when the payment
    /// never reached it.
    pub submit: Option<Duration>,
    /// From when the payment was due (paced runs: its slot on the schedule, so waiting for the
    /// window counts; otherwise when it started) to its answer or failure: GetQuote, verifying
    /// the quote, signing, SubmitPayment and verifying the receipt.
    pub total: Duration,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
    /// Whether its receipt verified under the agreement (a settled payment's must).
    pub receipt_verified: bool,
    /// When the answer came, from the start of the run (the start of [`LoadReport::wall`]):
    /// what a report's throughput over time counts.
    pub answered: Duration,
}

/// Posted balance and pending debits (minor units) by account; accounts with a negative posted
/// balance (the funding account) report 0.
pub type Balances = BTreeMap<u128, (u128, u128)>;

/// The result of a run.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// The payments, summarized as each ended.
    pub summary: Summary,
    /// From the first submission to the last answer.
    pub wall: Duration,
    /// The sender's currency and each payment's amount in its minor units.
    pub amount: (&'static Currency, u128),
    /// The receiver's currency.
    pub credited_currency: &'static Currency,
    /// Every balance that did not move by exactly the settled sums, and every reservation left
    /// pending; empty when the books are exact.
    pub balance_problems: Vec<String>,
    /// Minor units debited from the sender's customers and credited to the receiver's.
    pub moved: (u128, u128),
    /// CPU time the whole process (client and both nodes) used over [`Self::wall`], user and
    /// system ([`ceiling::process_cpu_time`]).
    pub cpu: Duration,
    /// The sizes of one payment's signed objects, as the run carried them (for the ceiling).
    pub sizes: PathSizes,
    /// Whether payments were due on a schedule (`--rate`): latency then counts from when each
    /// was due.
    pub paced: bool,
    /// Slots of the schedule skipped because the run was behind it ([`pace::CATCH_UP`]).
    pub missed_slots: u64,
    /// Resident set size over the run: (time from the start, bytes), once a second and at the
    /// start and the end.
    pub rss: Vec<(Duration, u64)>,
    /// CPU time of the storage threads over the run, by thread name
    /// ([`cpu`]).
    pub storage_cpu: BTreeMap<String, Duration>,
    /// CPU time of one empty gRPC call over mutual TLS, calibrated after the run; `None` when
    /// the calibration failed.
    pub per_call_cpu: Option<Duration>,
}

impl LoadReport {
    /// How many payments ended (answered or failed).
    pub fn answered(&self) -> usize {
        self.summary.answered
    }

    /// How many payments settled (ACSC) with a receipt that verified.
    pub fn settled(&self) -> usize {
        self.summary.settled
    }

    /// How many receipts verified under the agreement.
    pub fn receipts_verified(&self) -> usize {
        self.summary.receipts_verified
    }

    /// How many payments failed without a usable answer ([`Failure`]).
    pub fn failed(&self) -> usize {
        self.summary.failed
    }

    /// Settled payments per second of wall time.
    pub fn payments_per_sec(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs > 0.0 {
            self.settled() as f64 / secs
        } else {
            0.0
        }
    }

    /// Answers by status and reason, e.g. `{"ACSC": 1998, "RJCT AM04": 2}`; failures as
    /// `ERROR <what>` (`ERROR receipt`: reported settled, receipt not verified).
    pub fn by_status(&self) -> BTreeMap<String, usize> {
        self.summary.answers.clone()
    }

    /// SubmitPayment latencies: every payment that reached SubmitPayment.
    pub fn submit_latency(&self) -> &Histogram {
        &self.summary.submit
    }

    /// Latencies from when each payment was due to its answer or failure: every payment.
    pub fn total_latency(&self) -> &Histogram {
        &self.summary.total
    }

    /// CPU time per settled payment; `None` when none settled.
    pub fn cpu_per_payment(&self) -> Option<Duration> {
        u32::try_from(self.settled())
            .ok()
            .filter(|n| *n > 0)
            .map(|n| self.cpu / n)
    }

    /// Whether every payment settled and every balance moved by exactly the settled sums.
    pub fn is_exact(&self) -> bool {
        self.settled() == self.answered() && self.balance_problems.is_empty()
    }
}

/// The nearest-rank percentile `p` (0 to 100) of `sorted` samples: the smallest value with at
/// least `p` percent of the samples at or below it; zero for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

/// Everything a run needs to pay through the sender as its banks do: where the node is, the
/// trust quotes are verified under (with caches: every payment checks the same node's chain),
/// and what every payment asks a quote for.
struct Target {
    url: String,
    server_name: String,
    mra: Arc<Mra>,
    recognition: RecognitionCache,
    certs: ParsedCerts,
    relying: String,
    ask: QuoteAsk,
    /// The sizes of the first quote, instruction and receipt the run sees.
    sizes: Mutex<PathSizes>,
}

impl Target {
    /// The sender of `pair` paying `amount` (major units of its currency) to the receiver.
    fn new(pair: &Pair, mra: Arc<Mra>, amount: &str) -> Result<Self, LoadError> {
        let sender = &pair.sender_config;
        let receiver = &pair.receiver_config;
        let wire = pb::ActiveCurrencyAndAmount {
            currency: own_currency(&mra, sender)?.alpha.to_owned(),
            value: amount.to_owned(),
        };
        let ask = Participant::new(&*mra, &sender.jurisdiction)
            .ask(&wire, &receiver.jurisdiction)
            .map_err(|e| match e {
                PayError::Amount(r) => LoadError::Options(format!("amount {amount}: {r}")),
                other => LoadError::Routes(other.to_string()),
            })?;
        if ask.source.1 == 0 {
            return Err(LoadError::Options("amount must be positive".to_owned()));
        }
        let recognition = RecognitionCache::new(&mra)
            .map_err(|e| LoadError::Run(format!("the recognition cache: {e}")))?;
        Ok(Self {
            url: format!("https://{}", pair.sender.public_addr),
            server_name: server_name(sender, receiver),
            mra,
            recognition,
            certs: ParsedCerts::new(),
            relying: sender.jurisdiction.clone(),
            ask,
            sizes: Mutex::default(),
        })
    }

    /// Keeps the sizes of a payment's quote and instruction, once.
    fn note_instruction(&self, quote: &pb::Signed, instruction: &pb::Signed) {
        let mut sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        if sizes.instruction.is_none() {
            sizes.quote = Some(SignedSize::of(SIGNING_DOMAIN_QUOTE, quote));
            sizes.instruction = Some(SignedSize::of(SIGNING_DOMAIN_INSTRUCTION, instruction));
        }
    }

    /// Keeps the size of the receipt `report` carries, once.
    fn note_receipt(&self, report: &pb::PaymentStatusReport) {
        let Some(receipt) = &report.receipt else {
            return;
        };
        let mut sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        if sizes.receipt.is_none() {
            sizes.receipt = Some(SignedSize::of(SIGNING_DOMAIN_RECEIPT, receipt));
        }
    }

    /// The sender's banks as participants.
    fn participant(&self) -> Participant<'_> {
        let trust = Trust::cached(&self.mra, &self.recognition).with_parsed_certs(&self.certs);
        Participant::new(trust, &self.relying)
    }

    /// A new connection to the sender, with `identity` for the operator calls.
    async fn connect(
        &self,
        identity: Option<&TlsIdentity>,
    ) -> Result<PaymentsClient<Channel>, LoadError> {
        Ok(participant::connect(
            &self.url,
            &self.server_name,
            Arc::clone(&self.mra),
            &self.relying,
            identity,
        )
        .await?)
    }
}

/// The name `of`'s TLS certificate carries, as its peer knows it.
fn server_name(of: &Config, peer: &Config) -> String {
    peer.peer(&of.jurisdiction)
        .map_or_else(|| "localhost".to_owned(), Peer::server_name)
}

/// Runs the load on a started pair and checks the balances after. `progress` is called once
/// per answered payment (from several tasks).
pub async fn run(
    pair: &Pair,
    routes: Arc<Vec<Route>>,
    mra: Arc<Mra>,
    options: &LoadOptions,
    progress: Arc<dyn Fn() + Send + Sync>,
) -> Result<LoadReport, LoadError> {
    options.check()?;
    if routes.is_empty() {
        return Err(LoadError::Routes("no routes".to_owned()));
    }
    let sender = &pair.sender_config;
    let receiver = &pair.receiver_config;
    let credited_currency = own_currency(&mra, receiver)?;
    let target = Arc::new(Target::new(pair, Arc::clone(&mra), &options.amount)?);
    if options.fund {
        fund_debtors(&target, sender, &routes, options.payment_bound()).await?;
    }

    // Every account's balance, before and after: the operators' view.
    let mut sender_view = target.connect(Some(&operator_identity(sender)?)).await?;
    let mut receiver_view = participant::connect(
        &format!("https://{}", pair.receiver.public_addr),
        &server_name(receiver, sender),
        Arc::clone(&mra),
        &receiver.jurisdiction,
        Some(&operator_identity(receiver)?),
    )
    .await?;
    let sender_before = balances(&mut sender_view).await?;
    let receiver_before = balances(&mut receiver_view).await?;

    // The sampler's first sample and the process clock are read right before the run, its
    // last sample and the clock right after.
    let sampler = Sampler::start()
        .map_err(|e| LoadError::Run(format!("cannot start the sampler thread: {e}")))?;
    let cpu_before = ceiling::process_cpu_time();
    let sent = if options.stream {
        run_stream(options, &target, &routes, &progress).await
    } else {
        run_unary(options, &target, &routes, &progress).await
    };
    let cpu = ceiling::process_cpu_time().saturating_sub(cpu_before);
    let samples = sampler.stop();
    let (summary, wall, missed_slots) = sent?;
    let (_, storage_cpu) = samples.threads.by_class();
    // The calibration runs after the run's clock stopped, with the nodes still up and idle.
    let per_call_cpu = calibrate_call(&target, &routes[0], options.concurrency)
        .await
        .ok();

    let sender_after = balances(&mut sender_view).await?;
    let receiver_after = balances(&mut receiver_view).await?;
    let corridor = sender
        .peer(&receiver.jurisdiction)
        .map(|p| p.corridor_account)
        .ok_or_else(|| LoadError::Routes(format!("no peer {}", receiver.jurisdiction)))?;
    let liquidity = receiver
        .peer(&sender.jurisdiction)
        .map(|p| p.liquidity_account)
        .ok_or_else(|| LoadError::Routes(format!("no peer {}", sender.jurisdiction)))?;
    let mut report = LoadReport {
        summary,
        wall,
        amount: target.ask.source,
        credited_currency,
        balance_problems: Vec::new(),
        moved: (0, 0),
        cpu,
        sizes: target
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
        paced: options.rate.is_some(),
        missed_slots,
        rss: samples.rss,
        storage_cpu,
        per_call_cpu,
    };
    let sender_side = (
        sender.jurisdiction.as_str(),
        &sender_before,
        &sender_after,
        corridor,
    );
    let receiver_side = (
        receiver.jurisdiction.as_str(),
        &receiver_before,
        &receiver_after,
        liquidity,
    );
    check_balances(&mut report, &routes, sender_side, receiver_side);
    Ok(report)
}

/// The operator identity of the node `config` describes: the first of `[admin]
/// operator_certs` and the key beside it (`<name>.key.pem`, as `kakehashi pki init` writes).
fn operator_identity(config: &Config) -> Result<TlsIdentity, LoadError> {
    let cert = config.admin.operator_certs.first().ok_or_else(|| {
        LoadError::Run(format!(
            "the {} configuration names no [admin] operator_certs",
            config.jurisdiction
        ))
    })?;
    let key = cert
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".pem"))
        .map(|stem| cert.with_file_name(format!("{stem}.key.pem")))
        .ok_or_else(|| LoadError::Run(format!("{}: not a .pem file", cert.display())))?;
    TlsIdentity::load(cert, &key).map_err(|e| {
        LoadError::Run(format!(
            "the operator identity of {}: {e}",
            config.jurisdiction
        ))
    })
}

/// Credits every debtor account of `routes` with enough for `payments` payments, as the
/// sender's operator ([`operator_identity`]).
async fn fund_debtors(
    target: &Target,
    sender: &Config,
    routes: &[Route],
    payments: usize,
) -> Result<(), LoadError> {
    let identity = operator_identity(sender)?;
    let mut operator = target.connect(Some(&identity)).await?;
    let (currency, amount_minor) = target.ask.source;
    let payments = u128::try_from(payments).unwrap_or(u128::MAX);
    let need = amount_minor
        .checked_mul(payments)
        .ok_or_else(|| LoadError::Options("payments × amount overflows the currency".to_owned()))?;
    let ceiling = funding_ceiling(sender, currency)?;
    let mut funded = Vec::new();
    for route in routes {
        let account = route.order.debtor_account;
        if funded.contains(&account) {
            continue;
        }
        funded.push(account);
        for chunk in funding_chunks(need, ceiling) {
            operator
                .fund_account(pb::FundAccountRequest {
                    account: account.to_string(),
                    amount: Some(money::format_amount(currency, chunk)),
                })
                .await
                .map_err(call(format!("funding account {account}")))?;
        }
    }
    Ok(())
}

/// The most one FundAccount call may credit at the node `config` describes, in minor units:
/// `[admin] max_funding`, else `[limits] max_payment` (as the node reads them).
fn funding_ceiling(config: &Config, currency: &'static Currency) -> Result<u128, LoadError> {
    let major = config
        .admin
        .funding_max
        .as_ref()
        .unwrap_or(&config.limits.payment_max);
    let wire = pb::ActiveCurrencyAndAmount {
        currency: currency.alpha.to_owned(),
        value: major.as_str().to_owned(),
    };
    money::parse_amount(&wire)
        .map(|(_, minor)| minor)
        .ok()
        .filter(|minor| *minor > 0)
        .ok_or_else(|| {
            LoadError::Routes(format!(
                "{}: the funding ceiling {} is not a positive amount",
                config.jurisdiction,
                major.as_str()
            ))
        })
}

/// `need` in calls of at most `ceiling` each (a timed run may need more than one call may
/// credit).
fn funding_chunks(need: u128, ceiling: u128) -> impl Iterator<Item = u128> {
    let ceiling = ceiling.max(1);
    let mut left = need;
    std::iter::from_fn(move || {
        (left > 0).then(|| {
            let chunk = left.min(ceiling);
            left -= chunk;
            chunk
        })
    })
}

fn own_currency(mra: &Mra, config: &Config) -> Result<&'static Currency, LoadError> {
    mra.jurisdiction(&config.jurisdiction)
        .and_then(|j| money::currency(&j.currency))
        .ok_or_else(|| {
            LoadError::Routes(format!(
                "{} has no known currency in the agreement",
                config.jurisdiction
            ))
        })
}

/// The participant flow's first steps for one payment on `route`: a quote, verified under the
/// agreement and checked against what the run asks, then the instruction signed at it under a
/// fresh UETR. Nothing is signed at a quote that does not verify.
async fn signed_instruction(
    target: &Target,
    client: &mut PaymentsClient<Channel>,
    route: &Route,
) -> Result<(pb::Signed, Uetr), LoadError> {
    let (_, now) = SystemClock.now();
    let quote = target.participant().quote(client, &target.ask, now).await?;
    let uetr = Uetr::new_v4(&ring::rand::SystemRandom::new())
        .map_err(|_| LoadError::Run("the system random source failed".to_owned()))?;
    let options = InstructionOptions::default();
    let signed = bank::instruction(&route.bank, &route.order, &quote, uetr, now, &options);
    target.note_instruction(quote.signed(), &signed);
    Ok((signed, uetr))
}

/// When a payment's latency is measured: from `due` (when it was due, or when it started in a
/// closed loop) and `started` (the start of the run).
#[derive(Clone, Copy, Debug)]
struct Clocks {
    due: Instant,
    started: Instant,
}

/// The outcome of a payment that ended without a report: a refusal with a reason code is a
/// rejection (RJCT), anything else a [`Failure`] of `step`.
fn unanswered(
    route: usize,
    error: &LoadError,
    step: Failure,
    submit: Option<Duration>,
    clocks: Clocks,
) -> PaymentOutcome {
    let now = Instant::now();
    let (status, reason, failure) = match error {
        LoadError::Pay(PayError::Refused(refusal)) => {
            (pb::TransactionStatus::Rjct, refusal.code.clone(), None)
        }
        _ => (
            pb::TransactionStatus::Unspecified,
            String::new(),
            Some(step),
        ),
    };
    PaymentOutcome {
        route,
        status,
        reason,
        credited_minor: 0,
        submit,
        total: now.saturating_duration_since(clocks.due),
        failure,
        receipt_verified: false,
        answered: now.saturating_duration_since(clocks.started),
    }
}

/// The outcome of a payment the node answered with `report`, after verifying its receipt as a
/// bank does: a settled payment whose receipt is missing or does not verify is a
/// [`Failure::Receipt`].
fn answered(
    target: &Target,
    route: usize,
    report: &pb::PaymentStatusReport,
    submit: Duration,
    clocks: Clocks,
) -> PaymentOutcome {
    target.note_receipt(report);
    let (_, now) = SystemClock.now();
    let (failure, receipt_verified) = check_receipt(&target.participant(), report, now);
    let done = Instant::now();
    let credited_minor = report
        .credited_amount
        .as_ref()
        .and_then(|a| money::parse_amount(a).ok())
        .map_or(0, |(_, minor)| minor);
    PaymentOutcome {
        route,
        status: report.transaction_status(),
        reason: report.status_reason_code.clone(),
        credited_minor,
        submit: Some(submit),
        total: done.saturating_duration_since(clocks.due),
        failure,
        receipt_verified,
        answered: done.saturating_duration_since(clocks.started),
    }
}

/// What the bank makes of `report`'s receipt at `now`: a failure when a receipt is missing
/// from a settled report or does not verify, and whether one verified.
fn check_receipt(
    participant: &Participant<'_>,
    report: &pb::PaymentStatusReport,
    now: kakehashi_pki::UnixTime,
) -> (Option<Failure>, bool) {
    match participant.verify_receipt(report, now) {
        Ok(verified) => (None, verified.is_some()),
        Err(_) => (Some(Failure::Receipt), false),
    }
}

/// One payment over unary calls on `client`: quote, sign, SubmitPayment, verify the receipt.
async fn pay_unary(
    target: &Target,
    client: &mut PaymentsClient<Channel>,
    routes: &[Route],
    route: usize,
    clocks: Clocks,
) -> PaymentOutcome {
    let Some(order) = routes.get(route) else {
        let error = LoadError::Routes("no such route".to_owned());
        return unanswered(route, &error, Failure::Quote, None, clocks);
    };
    let signed = match signed_instruction(target, client, order).await {
        Ok((signed, _)) => signed,
        Err(error) => return unanswered(route, &error, Failure::Quote, None, clocks),
    };
    let t1 = Instant::now();
    match participant::submit(client, signed).await {
        Ok(report) => answered(target, route, &report, t1.elapsed(), clocks),
        Err(error) => {
            let submit = Some(t1.elapsed());
            unanswered(route, &error.into(), Failure::Submit, submit, clocks)
        }
    }
}

/// Counts every finished task's outcome into `summary` without waiting, so a long run holds
/// only what is in flight.
fn reap(tasks: &mut JoinSet<PaymentOutcome>, summary: &mut Summary) -> Result<(), LoadError> {
    while let Some(done) = tasks.try_join_next() {
        summary.record(&done.map_err(|e| LoadError::Run(format!("payment task: {e}")))?);
    }
    Ok(())
}

/// What a run's sending part returns: the payments' summary, the wall time, and the
/// schedule's missed slots.
type Sent = (Summary, Duration, u64);

/// `concurrency` participants, each on its own TLS connection: each payment, when due, takes an
/// idle one (waiting for one when all are busy) and makes its unary calls on it.
async fn run_unary(
    options: &LoadOptions,
    target: &Arc<Target>,
    routes: &Arc<Vec<Route>>,
    progress: &Arc<dyn Fn() + Send + Sync>,
) -> Result<Sent, LoadError> {
    // Participant p sends route p mod routes, so its connection is that route's bank's.
    let (idle_tx, mut idle) = mpsc::channel(options.concurrency);
    for participant in 0..options.concurrency {
        let route = &routes[participant % routes.len()];
        let client = target.connect(Some(&route.tls)).await?;
        idle_tx
            .send((participant, client))
            .await
            .map_err(|_| LoadError::Run("the participant pool closed".to_owned()))?;
    }
    let started = Instant::now();
    let mut dispatcher = options.dispatcher(started);
    let mut tasks = JoinSet::new();
    let mut summary = Summary::default();
    while let Some(due) = dispatcher.next().await {
        let (participant, mut client) = idle
            .recv()
            .await
            .ok_or_else(|| LoadError::Run("the participant pool closed".to_owned()))?;
        dispatcher.sent();
        let clocks = Clocks {
            due: if dispatcher.paced() {
                due
            } else {
                Instant::now()
            },
            started,
        };
        let (routes, target, progress) =
            (Arc::clone(routes), Arc::clone(target), Arc::clone(progress));
        let idle_tx = idle_tx.clone();
        tasks.spawn(async move {
            let route = participant % routes.len();
            let outcome = pay_unary(&target, &mut client, &routes, route, clocks).await;
            // The pool holds every participant, so there is room; a closed pool means the run
            // is over.
            let _ = idle_tx.send((participant, client)).await;
            progress();
            outcome
        });
        reap(&mut tasks, &mut summary)?;
    }
    while let Some(done) = tasks.join_next().await {
        summary.record(&done.map_err(|e| LoadError::Run(format!("payment task: {e}")))?);
    }
    Ok((summary, started.elapsed(), dispatcher.missed()))
}

/// Which stream carries a payment: a bank's payments go round its own `streams` streams in
/// turn, so every stream carries payments. (Stream i mod `streams` for payment i left some of
/// a bank's streams without any when the number of routes and of streams share a factor, two
/// banks and four streams for one, and the node ends a stream idle for
/// `[limits] stream_idle_timeout_secs`, which failed any run longer than that.)
#[derive(Debug)]
struct StreamPicker {
    /// The bank (index) of each route.
    bank_of: Vec<usize>,
    /// Payments sent so far, by bank.
    sent: Vec<usize>,
    streams: usize,
}

impl StreamPicker {
    fn new(bank_of: Vec<usize>, streams: usize) -> Self {
        let banks = bank_of.iter().max().map_or(0, |b| b + 1);
        Self {
            bank_of,
            sent: vec![0; banks],
            streams: streams.max(1),
        }
    }

    /// The slot (bank × streams + stream) of the next payment on `route`.
    fn slot(&mut self, route: usize) -> usize {
        let bank = self.bank_of.get(route).copied().unwrap_or(0);
        let sent = self.sent.get_mut(bank).map_or(0, |sent| {
            let before = *sent;
            *sent = before.wrapping_add(1);
            before
        });
        bank * self.streams + sent % self.streams
    }
}

/// In flight on one stream: its clocks, when the instruction was sent, which route, and the
/// window slot it holds.
type InFlight = HashMap<Uetr, (Clocks, Instant, usize, OwnedSemaphorePermit)>;

/// `concurrency` payments in flight over several bidirectional streams (round robin); quotes
/// come over one unary connection per stream.
async fn run_stream(
    options: &LoadOptions,
    target: &Arc<Target>,
    routes: &Arc<Vec<Route>>,
    progress: &Arc<dyn Fn() + Send + Sync>,
) -> Result<Sent, LoadError> {
    let streams = options.stream_count();
    let window = Arc::new(Semaphore::new(options.concurrency));
    let mut senders = Vec::new();
    let mut quoters = Vec::new();
    let mut readers = Vec::new();
    let started = Instant::now();
    // Each bank of the routes gets its own `streams` streams: a node takes an instruction only
    // from its debtor agent's connection ([`StreamPicker`] spreads each bank's payments).
    let mut bank_of = Vec::with_capacity(routes.len());
    let mut bank_tls: Vec<&TlsIdentity> = Vec::new();
    let mut bank_bics: Vec<&str> = Vec::new();
    for route in routes.iter() {
        let bic = route.bank.bic.as_str();
        let index = match bank_bics.iter().position(|b| *b == bic) {
            Some(index) => index,
            None => {
                bank_bics.push(bic);
                bank_tls.push(&route.tls);
                bank_bics.len() - 1
            }
        };
        bank_of.push(index);
    }
    for slot in 0..streams * bank_tls.len() {
        let identity = bank_tls[slot / streams];
        let mut submitter = target.connect(Some(identity)).await?;
        quoters.push(target.connect(None).await?);
        let (tx, rx) = mpsc::channel::<pb::SubmitPaymentRequest>(options.concurrency);
        let mut answers = submitter
            .submit_payments(ReceiverStream::new(rx))
            .await
            .map_err(call("SubmitPayments"))?
            .into_inner();
        let in_flight: Arc<Mutex<InFlight>> = Arc::default();
        senders.push((tx, Arc::clone(&in_flight)));
        let progress = Arc::clone(progress);
        let target = Arc::clone(target);
        readers.push(tokio::spawn(async move {
            let mut out = Summary::default();
            while let Some(answer) = answers.next().await {
                let report = answer.map_err(call("SubmitPayments answer"))?;
                let t2 = Instant::now();
                let entry = Uetr::parse(&report.uetr).ok().and_then(|uetr| {
                    in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&uetr)
                });
                let Some((clocks, t1, route, permit)) = entry else {
                    return Err(LoadError::Run(format!(
                        "an answer for a UETR not in flight: {}",
                        report.uetr
                    )));
                };
                out.record(&answered(&target, route, &report, t2 - t1, clocks));
                progress();
                drop(permit);
            }
            Ok::<_, LoadError>(out)
        }));
    }
    let mut picker = StreamPicker::new(bank_of, streams);
    let mut dispatcher = options.dispatcher(started);
    let mut producers = JoinSet::new();
    let mut summary = Summary::default();
    let mut i = 0_usize;
    while let Some(due) = dispatcher.next().await {
        let permit = Arc::clone(&window)
            .acquire_owned()
            .await
            .map_err(|_| LoadError::Run("the window closed".to_owned()))?;
        dispatcher.sent();
        let clocks = Clocks {
            due: if dispatcher.paced() {
                due
            } else {
                Instant::now()
            },
            started,
        };
        let route = i % routes.len();
        let slot = picker.slot(route);
        i += 1;
        let (tx, in_flight) = senders[slot].clone();
        let mut quoter = quoters[slot].clone();
        let (routes, target, progress) =
            (Arc::clone(routes), Arc::clone(target), Arc::clone(progress));
        producers.spawn(async move {
            let (signed, uetr) =
                match signed_instruction(&target, &mut quoter, &routes[route]).await {
                    Ok(signed) => signed,
                    Err(error) => {
                        // The window slot is freed with the permit when this returns.
                        progress();
                        return Some(unanswered(route, &error, Failure::Quote, None, clocks));
                    }
                };
            let t1 = Instant::now();
            in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uetr, (clocks, t1, route, permit));
            let request = pb::SubmitPaymentRequest {
                instruction: Some(signed),
            };
            if tx.send(request).await.is_err() {
                // The stream is gone: its reader reports why.
                let _ = in_flight
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&uetr);
                progress();
                let error = LoadError::Run("the stream closed early".to_owned());
                return Some(unanswered(route, &error, Failure::Submit, None, clocks));
            }
            None
        });
        while let Some(done) = producers.try_join_next() {
            let done = done.map_err(|e| LoadError::Run(format!("producer task: {e}")))?;
            if let Some(outcome) = done {
                summary.record(&outcome);
            }
        }
    }
    while let Some(done) = producers.join_next().await {
        let done = done.map_err(|e| LoadError::Run(format!("producer task: {e}")))?;
        if let Some(outcome) = done {
            summary.record(&outcome);
        }
    }
    // Closing every sender ends the request streams; the node then finishes what it accepted
    // and ends each answer stream.
    drop(senders);
    for reader in readers {
        summary.merge(
            &reader
                .await
                .map_err(|e| LoadError::Run(format!("stream reader: {e}")))??,
        );
    }
    Ok((summary, started.elapsed(), dispatcher.missed()))
}

/// CPU time of one empty gRPC call (a `grpc.health.v1.Health/Check`) over mutual TLS to the
/// sender's public listener, with the bank identity of `route`: [`CALIBRATION_CALLS`] calls
/// spread over up to `concurrency` connections made for it, the process clock read around
/// them. Both ends are in this process, so the figure holds the client's and the node's side
/// of a call, as the run's calls do.
async fn calibrate_call(
    target: &Target,
    route: &Route,
    concurrency: usize,
) -> Result<Duration, LoadError> {
    let connections = concurrency.clamp(1, 16);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let options = participant::ConnectOptions {
            server_name: Some(target.server_name.clone()),
            identity: Some(route.tls.tonic_identity()),
            ..participant::ConnectOptions::default()
        };
        let channel = participant::connect_channel(
            &target.url,
            Arc::clone(&target.mra),
            &target.relying,
            &options,
        )
        .await?;
        clients.push(HealthClient::new(channel));
    }
    let check = |mut client: HealthClient<Channel>, calls: usize| async move {
        for _ in 0..calls {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(call("Health/Check"))?;
        }
        Ok::<_, LoadError>(())
    };
    // One call on each first, so connection set-up is not in the figure.
    for client in &clients {
        check(client.clone(), 1).await?;
    }
    let per_client = CALIBRATION_CALLS.div_ceil(connections);
    let before = ceiling::process_cpu_time();
    let mut tasks = JoinSet::new();
    for client in clients {
        tasks.spawn(check(client, per_client));
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| LoadError::Run(format!("calibration task: {e}")))??;
    }
    let used = ceiling::process_cpu_time().saturating_sub(before);
    let calls = u32::try_from(per_client * connections).unwrap_or(u32::MAX);
    Ok(used / calls.max(1))
}

/// Posted balance and pending debits (minor units) of every account `client` may see (every
/// account of the node for an operator's connection), page after page.
pub async fn balances(client: &mut PaymentsClient<Channel>) -> Result<Balances, LoadError> {
    let listed = participant::balances(client, &[])
        .await
        .map_err(call("GetBalances"))?;
    let minor = |a: Option<&pb::ActiveCurrencyAndAmount>| -> Result<u128, LoadError> {
        let a = a.ok_or_else(|| LoadError::Run("a balance without an amount".to_owned()))?;
        // The funding account is the only one that goes negative; it is not checked.
        if a.value.starts_with('-') {
            return Ok(0);
        }
        money::parse_amount(a)
            .map(|(_, m)| m)
            .map_err(|r| LoadError::Run(format!("balance {a:?}: {r}")))
    };
    let mut out = BTreeMap::new();
    for b in listed {
        let id: u128 = b
            .account
            .parse()
            .map_err(|_| LoadError::Run(format!("account id {:?}", b.account)))?;
        out.insert(
            id,
            (
                minor(b.posted_balance.as_ref())?,
                minor(b.pending_debits.as_ref())?,
            ),
        );
    }
    Ok(out)
}

/// One node's view for the balance check: its jurisdiction, balances before and after, and the
/// account on the other side of its customers' movements (corridor or liquidity).
type Side<'a> = (&'a str, &'a Balances, &'a Balances, u128);

/// Compares every touched account with what the settled payments must have moved, and looks
/// for reservations left pending.
fn check_balances(report: &mut LoadReport, routes: &[Route], sender: Side<'_>, receiver: Side<'_>) {
    let mut debited: BTreeMap<u128, u128> = BTreeMap::new();
    let mut credited: BTreeMap<u128, u128> = BTreeMap::new();
    let mut total = (0u128, 0u128);
    for (index, (count, credited_minor)) in &report.summary.by_route {
        let Some(route) = routes.get(*index) else {
            continue;
        };
        let debited_minor = report
            .amount
            .1
            .saturating_mul(u128::try_from(*count).unwrap_or(u128::MAX));
        let d = debited.entry(route.order.debtor_account).or_default();
        *d = d.saturating_add(debited_minor);
        let c = credited.entry(route.order.creditor_account).or_default();
        *c = c.saturating_add(*credited_minor);
        total.0 = total.0.saturating_add(debited_minor);
        total.1 = total.1.saturating_add(*credited_minor);
    }
    let mut problems = Vec::new();
    let mut expect = |(node, before, after, _): &Side<'_>, account: u128, delta: i128| {
        let b = before.get(&account).map_or(0, |x| x.0);
        let a = after.get(&account).map_or(0, |x| x.0);
        let moved = i128::try_from(a)
            .unwrap_or(i128::MAX)
            .saturating_sub(i128::try_from(b).unwrap_or(i128::MAX));
        if moved != delta {
            problems.push(format!(
                "{node} account {account}: moved {moved} minor units, expected {delta}"
            ));
        }
    };
    let signed = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    for (account, sum) in &debited {
        expect(&sender, *account, -signed(*sum));
    }
    for (account, sum) in &credited {
        expect(&receiver, *account, signed(*sum));
    }
    // Accounts of the routes that settled nothing must not have moved either.
    for route in routes {
        if !debited.contains_key(&route.order.debtor_account) {
            expect(&sender, route.order.debtor_account, 0);
        }
        if !credited.contains_key(&route.order.creditor_account) {
            expect(&receiver, route.order.creditor_account, 0);
        }
    }
    expect(&sender, sender.3, signed(total.0));
    expect(&receiver, receiver.3, -signed(total.1));
    for (node, _, after, _) in [&sender, &receiver] {
        for (account, (_, pending)) in after.iter() {
            if *pending != 0 {
                problems.push(format!(
                    "{node} account {account}: {pending} minor units still reserved"
                ));
            }
        }
    }
    report.balance_problems = problems;
    report.moved = total;
}

/// Where `kakehashi pki init` puts a jurisdiction's banks under `certs`.
pub fn banks_dir(certs: &Path, jurisdiction: &str) -> PathBuf {
    certs.join(jurisdiction.to_lowercase()).join("banks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_of_every_bank_carries_payments() {
        // Two routes of two banks, four streams each: payment i on stream i mod 4 left
        // streams 1 and 3 of the first bank and 0 and 2 of the second without any.
        let mut picker = StreamPicker::new(vec![0, 1], 4);
        let slots: Vec<usize> = (0..16).map(|i| picker.slot(i % 2)).collect();
        let mut used = slots.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used, (0..8).collect::<Vec<_>>(), "{slots:?}");
        // Each bank's payments stay on that bank's streams, in turn.
        assert_eq!(slots[..8], [0, 4, 1, 5, 2, 6, 3, 7]);
        // Three routes of one bank over two streams: alternate.
        let mut one_bank = StreamPicker::new(vec![0, 0, 0], 2);
        let slots: Vec<usize> = (0..6).map(|i| one_bank.slot(i % 3)).collect();
        assert_eq!(slots, [0, 1, 0, 1, 0, 1]);
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentile_is_the_nearest_rank() {
        let sorted = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(5));
        assert_eq!(percentile(&sorted, 90.0), Duration::from_millis(9));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(10));
        assert_eq!(percentile(&sorted, 100.0), Duration::from_millis(10));
        assert_eq!(percentile(&sorted, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let bad = [
            LoadOptions {
                payments: 0,
                ..LoadOptions::default()
            },
            LoadOptions {
                concurrency: 0,
                ..LoadOptions::default()
            },
            LoadOptions {
                concurrency: CONCURRENCY_MAX + 1,
                ..LoadOptions::default()
            },
            LoadOptions {
                streams: Some(0),
                ..LoadOptions::default()
            },
            LoadOptions {
                duration: Some(Duration::ZERO),
                ..LoadOptions::default()
            },
            LoadOptions {
                duration: Some(DURATION_MAX + Duration::from_secs(1)),
                ..LoadOptions::default()
            },
            LoadOptions {
                rate: Some(0.0),
                ..LoadOptions::default()
            },
            LoadOptions {
                rate: Some(f64::NAN),
                ..LoadOptions::default()
            },
            LoadOptions {
                rate: Some(RATE_MAX * 2.0),
                ..LoadOptions::default()
            },
        ];
        for options in bad {
            assert!(options.check().is_err(), "{options:?}");
        }
        LoadOptions::default().check().unwrap();
    }

    #[test]
    fn a_timed_run_is_bounded_by_what_its_schedule_holds() {
        let timed = |duration: u64, rate: Option<f64>| LoadOptions {
            duration: Some(Duration::from_secs(duration)),
            rate,
            ..LoadOptions::default()
        };
        assert_eq!(LoadOptions::default().payment_bound(), 2_000);
        assert_eq!(timed(60, Some(100.0)).payment_bound(), 6_001);
        assert_eq!(timed(60, None).payment_bound(), 1_200_000);
        assert_eq!(timed(3_600, None).payment_bound(), PAYMENTS_MAX);
        assert_eq!(timed(86_400, Some(RATE_MAX)).payment_bound(), PAYMENTS_MAX);
    }

    #[test]
    fn a_settled_payment_without_a_receipt_that_verifies_is_a_failure() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../certs/mra.toml");
        let mra = Mra::load(&path).expect("certs/mra.toml loads");
        let jp = Participant::new(&mra, "JP");
        let now = kakehashi_pki::UnixTime(1_798_761_600);
        let report = |status: pb::TransactionStatus, receipt| pb::PaymentStatusReport {
            uetr: "eb6305c9-1f7f-49de-aed0-16487c27b42d".into(),
            transaction_status: status.into(),
            receipt,
            ..pb::PaymentStatusReport::default()
        };
        let acsc = pb::TransactionStatus::Acsc;
        assert_eq!(
            check_receipt(&jp, &report(acsc, None), now),
            (Some(Failure::Receipt), false)
        );
        let forged = Some(pb::Signed::default());
        assert_eq!(
            check_receipt(&jp, &report(acsc, forged), now),
            (Some(Failure::Receipt), false)
        );
        let rejected = report(pb::TransactionStatus::Rjct, None);
        assert_eq!(check_receipt(&jp, &rejected, now), (None, false));
    }

    #[test]
    fn failures_are_answers_of_their_own_and_stay_in_the_percentiles() {
        let jpy = money::currency("JPY").expect("JPY");
        let outcome = |failure, submit: Option<u64>, total| PaymentOutcome {
            route: 0,
            status: if failure == Some(Failure::Receipt) {
                pb::TransactionStatus::Acsc
            } else {
                pb::TransactionStatus::Unspecified
            },
            reason: String::new(),
            credited_minor: 0,
            submit: submit.map(Duration::from_millis),
            total: Duration::from_millis(total),
            failure,
            receipt_verified: false,
            answered: Duration::ZERO,
        };
        let report = LoadReport {
            summary: Summary::of(&[
                outcome(Some(Failure::Quote), None, 5),
                outcome(Some(Failure::Receipt), Some(7), 9),
                outcome(Some(Failure::Submit), Some(30), 31),
            ]),
            wall: Duration::from_secs(1),
            amount: (jpy, 1),
            credited_currency: jpy,
            balance_problems: Vec::new(),
            moved: (0, 0),
            cpu: Duration::ZERO,
            sizes: PathSizes::default(),
            paced: false,
            missed_slots: 0,
            rss: Vec::new(),
            storage_cpu: BTreeMap::new(),
            per_call_cpu: None,
        };
        assert_eq!(
            report.settled(),
            0,
            "a receipt that does not verify is not settled"
        );
        assert_eq!(report.failed(), 3);
        assert!(!report.is_exact());
        let answers: Vec<(String, usize)> = report.by_status().into_iter().collect();
        assert_eq!(
            answers,
            [
                ("ERROR quote".to_owned(), 1),
                ("ERROR receipt".to_owned(), 1),
                ("ERROR submit".to_owned(), 1)
            ]
        );
        let range = |h: &Histogram| (h.len(), h.min(), h.max());
        let ms = Duration::from_millis;
        assert_eq!(range(report.submit_latency()), (2, ms(7), ms(30)));
        assert_eq!(range(report.total_latency()), (3, ms(5), ms(31)));
    }

    #[test]
    fn funding_goes_in_calls_the_node_accepts() {
        assert_eq!(funding_chunks(12, 5).collect::<Vec<_>>(), [5, 5, 2]);
        assert_eq!(funding_chunks(5, 5).collect::<Vec<_>>(), [5]);
        assert_eq!(funding_chunks(0, 5).count(), 0);
        assert_eq!(funding_chunks(3, 0).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn streams_cover_the_window_in_blocks_of_the_node_limit() {
        let options = |concurrency| LoadOptions {
            concurrency,
            ..LoadOptions::default()
        };
        assert_eq!(options(1).stream_count(), 1);
        assert_eq!(options(STREAM_WINDOW_MAX).stream_count(), 1);
        assert_eq!(options(STREAM_WINDOW_MAX + 1).stream_count(), 2);
    }
}
