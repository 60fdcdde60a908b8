//! The gRPC services: thin adapters from tonic requests to the [`Engine`].
//!
//! Error mapping, the same on every RPC:
//! - a malformed request (FF01: garbage bytes, missing fields, bad amounts, unknown currency,
//!   bad UTF-8 — prost refuses that at decode) → `InvalidArgument`, message `"FF01: <detail>"`;
//! - a business refusal of a quote or an operator call (RR04, AC01, AC04, DUPL) →
//!   `FailedPrecondition` (`NotFound` for AC01), same message form; a close of an account
//!   with payments in flight → `FailedPrecondition` without a reason code; a sanctions list reload
//!   that does not load → `FailedPrecondition` with the list's code (`LIST_MALFORMED`, ...) as
//!   reason code and the file, line and fault in the message (the operator's own file);
//! - a payment refused after authentication → a `PaymentStatusReport` with RJCT (the RPC
//!   succeeds: the refusal *is* the answer, and it is recorded under its UETR);
//! - an operational fault → `Unavailable` when it is transient (disk, sled, a failed commit:
//!   retry the same request, see [`EngineError::is_transient`]) and `Internal` otherwise
//!   (stored data that does not decode, a ledger answer the protocol does not allow); nothing
//!   was acknowledged either way. The message carries no internal detail (no paths, storage or
//!   ledger texts) but an error id, unique per occurrence, that the node's log line with the
//!   full error also carries ([`operational`], the one place that answers such faults);
//! - a submission to a node that is stopping → `Unavailable` ("the node is stopping"), and a
//!   submission the stop abandoned halfway → `Unavailable`, its outcome to be asked for.
//!
//! Who may call what (the public listener's client certificate, read per request by
//! [`PaymentsService::caller`]):
//! - GetQuote: anyone (public, signed pricing); health likewise (a separate service);
//! - SubmitPayment(s): a participant bank whose TLS BIC is the instruction's debtor agent
//!   (the engine then checks that the signer is that bank), `Unauthenticated` without a
//!   certificate, `PermissionDenied` for another bank's instruction — a stranger cannot even
//!   learn how far an instruction would get;
//! - GetPaymentStatus: the debtor or creditor agent's bank, `NotFound` in the same words as an
//!   unknown UETR otherwise (a bank must not learn that another's payment exists);
//! - GetBalances: a bank its own accounts, the operator every account, paged;
//! - OpenAccount, FundAccount, CloseAccount, ReopenAccount: the operator only.
//!
//! Every refusal also carries the reason code in the `kakehashi-reason-code` metadata entry, so
//! clients need not parse messages; an operational fault carries none (it is not an outcome).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kakehashi_pki::cert::OID_COMMON_NAME;
use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_OPERATOR, EKU_PARTICIPANT_TLS};
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::{self, payments_server::Payments, relay_server::Relay};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use kakehashi_protocol::signed::Trust;
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::{
    AccountRefusal, Engine, EngineError, QuoteAsker, RELAY_BATCH_MAX, RELAY_STREAM_IN_FLIGHT,
    Submitted,
};
use crate::screening::{ListError, Reloaded};

mod inbound;

use inbound::Inbound;

/// Instructions of one `SubmitPayments` stream processed at once; more wait in the stream
/// (HTTP/2 flow control pushes back on the client). The reports waiting to be sent are bounded
/// separately, by `[limits] stream_queue_len`.
const STREAM_CONCURRENCY: usize = 64;

fn status_for(rejection: &Rejection) -> Status {
    let message = rejection.to_string();
    let mut status = match rejection.code {
        ReasonCode::Ff01 => Status::invalid_argument(message),
        ReasonCode::Ac01 => Status::not_found(message),
        _ => Status::failed_precondition(message),
    };
    if let Ok(value) = rejection.code.as_str().parse() {
        status.metadata_mut().insert(REASON_METADATA, value);
    }
    status
}

/// The answer to a request the node could not complete for an operational reason: logs the
/// full error under a fresh error id and answers `Unavailable` (transient) or `Internal` with
/// only that id, so nothing internal (paths, storage or ledger texts) reaches the caller and an
/// operator can still find the cause from what the caller reports.
fn operational(error: &EngineError) -> Status {
    let id = error_id();
    let transient = error.is_transient();
    tracing::error!(error_id = %id, transient, %error, "request failed for an operational reason");
    if transient {
        Status::unavailable(format!(
            "the node could not complete the request for a temporary reason; nothing was \
             acknowledged: retry it (a payment with the same UETR) [error id {id}]"
        ))
    } else {
        Status::internal(format!(
            "the node could not complete the request because of an internal fault; nothing was \
             acknowledged, and its operator can find the cause in the node's log \
             [error id {id}]"
        ))
    }
}

/// The Relay service's answer to the engine's outcome of a relay call: the decision, a
/// refusal with its reason code, or an operational fault. The deterministic simulator sends
/// the same answer over its network ([`crate::engine::relay_reply`]).
pub(crate) fn relay_answer(
    outcome: Result<Result<pb::RelayDecision, Rejection>, EngineError>,
) -> Result<pb::RelayDecision, Status> {
    match outcome {
        Ok(Ok(decision)) => Ok(decision),
        Ok(Err(rejection)) => Err(status_for(&rejection)),
        Err(e) => Err(operational(&e)),
    }
}

/// A lost engine task (a panic): operational, like the engine's own lost blocking tasks.
fn task_failed(error: &tokio::task::JoinError) -> Status {
    operational(&EngineError::Task(error.to_string()))
}

/// A fresh error id: a random prefix drawn once per process, so ids of different runs or
/// nodes do not collide, and a counter, so each occurrence in this run has its own.
fn error_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
            Ok(()) => hex::encode(bytes),
            // Without randomness the process id still tells runs apart in one log.
            Err(_) => format!("{:08x}", std::process::id()),
        }
    });
    format!("{prefix}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The answer to a submission while the node stops (issue 11, defect 11).
fn stopping() -> Status {
    Status::unavailable(
        "the node is stopping and takes no new payments; nothing was recorded, submit again \
         (same UETR) once it is back",
    )
}

/// The answer to a submission a graceful stop abandoned before its outcome was known.
fn abandoned() -> Status {
    Status::unavailable(
        "the node stopped before this payment's outcome was known; once it is back, ask for \
         its status with the same UETR (its recovery ends the payment)",
    )
}

fn missing(field: &str) -> Status {
    status_for(&Rejection::new(
        ReasonCode::Ff01,
        format!("{field}: missing"),
    ))
}

fn parse_account(field: &str, text: &str) -> Result<u128, Status> {
    kakehashi_protocol::instruction::account(field, text).map_err(|r| status_for(&r))
}

/// Entries of one GetBalances page when the request does not say: small enough that a page of
/// accounts with long names stays well under the default message limit.
pub(crate) const BALANCES_PAGE_SIZE_DEFAULT: usize = 500;
/// Most entries of one GetBalances page, and most accounts one request may name.
pub(crate) const BALANCES_PAGE_SIZE_MAX: usize = 1000;
/// Room left in an answer for everything but the entries (the page token, framing).
const BALANCES_PAGE_OVERHEAD_BYTES: usize = 256;
/// Version prefix of a GetBalances page token, so its form can change without misreading old
/// tokens.
const PAGE_TOKEN_PREFIX: &str = "b1.";

/// Who calls the public listener, read off the connection's TLS client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A participant bank, by the BIC its participant-TLS certificate names.
    Participant(String),
    /// The node's operator.
    Operator,
}

/// The bounds of one `SubmitPayments` or `Prepares` stream (`[limits]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamLimits {
    /// Reports buffered (`stream_queue_len`).
    pub(crate) queue_len: usize,
    /// Longest time with no instruction arriving and none in progress
    /// (`stream_idle_timeout_secs`).
    pub(crate) idle: Duration,
    /// Longest time the stream takes instructions (`max_stream_lifetime_secs`).
    pub(crate) lifetime: Duration,
}

/// The participant API.
#[derive(Clone, Debug)]
pub(crate) struct PaymentsService {
    engine: Arc<Engine>,
    /// DER of the leaf certificates allowed to call the operator RPCs.
    operators: Arc<Vec<Vec<u8>>>,
    /// The bounds of each `SubmitPayments` stream.
    stream: StreamLimits,
    /// Bytes of balance entries one GetBalances answer may carry.
    balances_bytes_max: usize,
}

impl PaymentsService {
    /// A service over `engine`; `operators` are the leaf certificates (DER) of operators;
    /// `stream` bounds each `SubmitPayments` stream; `message_bytes_max` is the listener's
    /// message limit, which a GetBalances page stays under.
    pub(crate) fn new(
        engine: Arc<Engine>,
        operators: Vec<Vec<u8>>,
        stream: StreamLimits,
        message_bytes_max: usize,
    ) -> Self {
        Self {
            engine,
            operators: Arc::new(operators),
            stream: StreamLimits {
                queue_len: stream.queue_len.max(1),
                ..stream
            },
            balances_bytes_max: message_bytes_max
                .saturating_sub(BALANCES_PAGE_OVERHEAD_BYTES)
                .max(1),
        }
    }

    /// The caller's identity: `Unauthenticated` without a client certificate; the operator
    /// when the leaf is one of `[admin] operator_certs` and is recognized by this node's
    /// jurisdiction for the operator purpose; a participant when the chain is recognized for
    /// participant TLS and the leaf names a BIC; `PermissionDenied` otherwise. The listener's
    /// verifier checked the chain at the handshake; checking again here (through the
    /// recognition cache) refuses a certificate that expired or was revoked since, and does
    /// not rest authorization on the listener's configuration alone.
    pub(crate) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let certs = request.peer_certs().unwrap_or_default();
        let Some((leaf_der, intermediates)) = certs.split_first() else {
            return Err(Status::unauthenticated(
                "this call needs a TLS client certificate: the bank's participant-TLS \
                 certificate (or the operator's)",
            ));
        };
        // A bank presents the same chain on every request of its connection, and on every
        // connection: parsed once through the engine's cache (parsing was as much CPU per
        // payment as an Ed25519 verification), and shared rather than copied.
        let trust = self.engine.trust();
        let leaf = trust
            .parse_shared(leaf_der.as_ref())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let intermediates = intermediates
            .iter()
            .map(|c| {
                trust
                    .parse_shared(c.as_ref())
                    .map_err(|e| Status::unauthenticated(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = self.engine.clock().now().1;
        let relying = self.engine.jurisdiction();
        let recognized = |purpose: Purpose| {
            trust
                .recognize(relying, purpose, &leaf, &intermediates, &[], time)
                .recognized()
        };
        let ekus = leaf.extended_key_usage().unwrap_or(&[]);
        let asserts = |oid: &str| ekus.iter().any(|e| e == oid);
        if !asserts(EKU_CLIENT_AUTH) {
            return Err(not_a_client());
        }
        if self
            .operators
            .iter()
            .any(|o| o.as_slice() == leaf_der.as_ref())
        {
            if asserts(EKU_OPERATOR) && recognized(Purpose::Operator) {
                return Ok(Caller::Operator);
            }
            return Err(not_a_client());
        }
        // A certificate that claims both identities is neither: an operator certificate not
        // listed in [admin] is not a way to act as a bank.
        if asserts(EKU_PARTICIPANT_TLS)
            && !asserts(EKU_OPERATOR)
            && recognized(Purpose::ParticipantTls)
        {
            let bic = leaf
                .subject()
                .attributes(OID_COMMON_NAME)
                .next()
                .and_then(|attribute| attribute.text())
                .and_then(|cn| kakehashi_protocol::instruction::bic("subject CN", cn).ok());
            if let Some(bic) = bic {
                return Ok(Caller::Participant(bic));
            }
        }
        Err(not_a_client())
    }

    /// The caller when it is the operator.
    fn require_operator<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match self.caller(request)? {
            Caller::Operator => Ok(()),
            Caller::Participant(_) => Err(Status::permission_denied(
                "operator calls need the operator's TLS client certificate (listed in [admin] \
                 operator_certs)",
            )),
        }
    }

    /// The caller's BIC when it is a participant bank.
    fn require_participant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        match self.caller(request)? {
            Caller::Participant(bic) => Ok(bic),
            Caller::Operator => Err(Status::permission_denied(
                "payments are submitted by the bank that signs them, with its participant-TLS \
                 certificate; the operator certificate does not submit payments",
            )),
        }
    }

    async fn submit_one(
        &self,
        request: pb::SubmitPaymentRequest,
        bic: &str,
    ) -> Result<pb::PaymentStatusReport, Status> {
        let Some(signed) = request.instruction else {
            return Err(missing("instruction"));
        };
        // The connection's bank must be the instruction's debtor agent (the engine then holds
        // the signer to the same BIC, DS0B). An instruction that does not decode is the
        // engine's to refuse (FF01), as before: decoding tells the caller nothing about others.
        // The engine takes the instruction decoded here, paired with its envelope, so the
        // payload is decoded once.
        let decoded = kakehashi_protocol::instruction::decode_signed(signed);
        if let Ok(decoded) = &decoded
            && decoded.instruction().debtor_agent_bic != bic
        {
            return Err(Status::permission_denied(format!(
                "this connection is bank {bic}'s; an instruction of debtor agent {} must be \
                 submitted by that bank",
                decoded.instruction().debtor_agent_bic
            )));
        }
        let Some(admitted) = self.engine.admit() else {
            return Err(stopping());
        };
        // The engine runs in its own task: a client that cancels (deadline, reset) drops this
        // future, and the protocol's locked sections must still run to their durable end.
        // Only a graceful stop that ran out of time abandons it, where a crash would.
        let engine = Arc::clone(&self.engine);
        let outcome = tokio::spawn(async move {
            tokio::select! {
                outcome = engine.submit_decoded(decoded) => Some(outcome),
                () = admitted.abandoned() => None,
            }
        })
        .await
        .map_err(|e| task_failed(&e))?;
        let Some(outcome) = outcome else {
            return Err(abandoned());
        };
        match outcome {
            Ok(Submitted::Report(report)) => Ok(*report),
            Ok(Submitted::Invalid(rejection)) => Err(status_for(&rejection)),
            Err(e) => Err(operational(&e)),
        }
    }

    /// GetBalances for `caller`: a bank's own accounts, the operator's every account.
    async fn balances_for(
        &self,
        caller: &Caller,
        request: pb::BalancesRequest,
    ) -> Result<pb::BalancesResponse, Status> {
        let owner = match caller {
            Caller::Operator => None,
            Caller::Participant(bic) => Some(bic.as_str()),
        };
        if request.accounts.len() > BALANCES_PAGE_SIZE_MAX {
            return Err(status_for(&Rejection::new(
                ReasonCode::Ff01,
                format!(
                    "accounts: {} named; at most {BALANCES_PAGE_SIZE_MAX} per request",
                    request.accounts.len()
                ),
            )));
        }
        if !request.accounts.is_empty() {
            let ids = request
                .accounts
                .iter()
                .map(|a| parse_account("accounts", a))
                .collect::<Result<Vec<_>, _>>()?;
            return match self.engine.balances(ids, owner).await {
                Ok(Ok(balances)) => Ok(pb::BalancesResponse {
                    balances,
                    next_page_token: String::new(),
                }),
                Ok(Err(rejection)) => Err(status_for(&rejection)),
                Err(e) => Err(operational(&e)),
            };
        }
        let size = usize::try_from(request.page_size).unwrap_or(usize::MAX);
        let size = match size {
            0 => BALANCES_PAGE_SIZE_DEFAULT,
            n if n > BALANCES_PAGE_SIZE_MAX => {
                return Err(status_for(&Rejection::new(
                    ReasonCode::Ff01,
                    format!("page_size: {n}; at most {BALANCES_PAGE_SIZE_MAX}"),
                )));
            }
            n => n,
        };
        let after = parse_page_token(&request.page_token)?;
        match self
            .engine
            .balances_page(owner, after, size, self.balances_bytes_max)
            .await
        {
            Ok((balances, next)) => Ok(pb::BalancesResponse {
                balances,
                next_page_token: next.map(page_token).unwrap_or_default(),
            }),
            Err(e) => Err(operational(&e)),
        }
    }
}

type ReportStream = Pin<Box<dyn Stream<Item = Result<pb::PaymentStatusReport, Status>> + Send>>;

#[tonic::async_trait]
impl Payments for PaymentsService {
    async fn get_quote(
        &self,
        request: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::Signed>, Status> {
        // Anyone may ask (a quote is public pricing), but a bank's quotes count against its own
        // share of the free quotes a node holds, apart from everyone without a bank identity,
        // so no caller can use up the quotes the others need.
        let asker = match request.peer_certs() {
            Some(certs) if !certs.is_empty() => match self.caller(&request) {
                Ok(Caller::Participant(bic)) => QuoteAsker::Bank(bic.into()),
                Ok(Caller::Operator) | Err(_) => QuoteAsker::Anonymous,
            },
            _ => QuoteAsker::Anonymous,
        };
        let request = request.into_inner();
        let Some(source) = request.source_amount else {
            return Err(missing("source_amount"));
        };
        self.engine
            .quote(&asker, &request.counterparty_jurisdiction, &source)
            .map(Response::new)
            .map_err(|r| status_for(&r))
    }

    async fn submit_payment(
        &self,
        request: Request<pb::SubmitPaymentRequest>,
    ) -> Result<Response<pb::PaymentStatusReport>, Status> {
        let bic = self.require_participant(&request)?;
        self.submit_one(request.into_inner(), &bic)
            .await
            .map(Response::new)
    }

    type SubmitPaymentsStream = ReportStream;

    async fn submit_payments(
        &self,
        request: Request<Streaming<pb::SubmitPaymentRequest>>,
    ) -> Result<Response<Self::SubmitPaymentsStream>, Status> {
        let bic: Arc<str> = self.require_participant(&request)?.into();
        let incoming = request.into_inner();
        let limits = self.stream;
        let (tx, rx) = mpsc::channel(limits.queue_len);
        let service = self.clone();
        tokio::spawn(async move {
            let mut inbound = Inbound::new(incoming, limits, STREAM_CONCURRENCY);
            // The node is stopping: what was accepted finishes and is reported, then the
            // stream ends UNAVAILABLE, the rest of its input not taken.
            while let Some(request) = inbound.next(&tx, service.engine.stopping(), stopping).await {
                let Ok(permit) = Arc::clone(inbound.permits()).acquire_owned().await else {
                    break;
                };
                let service = service.clone();
                let tx = tx.clone();
                let bic = Arc::clone(&bic);
                tokio::spawn(async move {
                    let report = match service.submit_one(request, &bic).await {
                        Ok(report) => Ok(report),
                        // Not a refusal but an outcome not known (the node is stopping, or its
                        // storage failed): reporting it in band as a rejection would be wrong,
                        // so the stream ends with it and the client asks again. Another bank's
                        // instruction on this stream ends it too: it is no payment outcome.
                        Err(status)
                            if matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::PermissionDenied
                            ) =>
                        {
                            Err(status)
                        }
                        // One bad instruction must not end the stream: report it in band.
                        Err(status) => Ok(in_band(&status)),
                    };
                    let _ = tx.send(report).await;
                    drop(permit);
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_payment_status(
        &self,
        request: Request<pb::PaymentStatusRequest>,
    ) -> Result<Response<pb::PaymentStatusReport>, Status> {
        let caller = self.caller(&request)?;
        let text = request.into_inner().uetr;
        let uetr = Uetr::parse(&text).map_err(|r| status_for(&r))?;
        let found = match &caller {
            Caller::Operator => self.engine.status(&uetr).await,
            Caller::Participant(bic) => self.engine.status_for_bank(&uetr, bic).await,
        };
        match found {
            Ok(Some(report)) => Ok(Response::new(report)),
            // The same answer whether no payment has the UETR or it is another bank's.
            Ok(None) => Err(Status::not_found(format!(
                "no payment with UETR {uetr} of yours was submitted to {}",
                self.engine.jurisdiction()
            ))),
            Err(e) => Err(operational(&e)),
        }
    }

    async fn get_balances(
        &self,
        request: Request<pb::BalancesRequest>,
    ) -> Result<Response<pb::BalancesResponse>, Status> {
        let caller = self.caller(&request)?;
        self.balances_for(&caller, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn open_account(
        &self,
        request: Request<pb::OpenAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        self.require_operator(&request)?;
        let request = request.into_inner();
        let id = parse_account("account", &request.account)?;
        admin_answer(
            self.engine
                .open_account(id, request.owner_bic, request.name)
                .await,
        )
    }

    async fn fund_account(
        &self,
        request: Request<pb::FundAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        self.require_operator(&request)?;
        let request = request.into_inner();
        let id = parse_account("account", &request.account)?;
        let Some(amount) = request.amount else {
            return Err(missing("amount"));
        };
        admin_answer(self.engine.fund_account(id, &amount).await)
    }

    async fn close_account(
        &self,
        request: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        self.require_operator(&request)?;
        let request = request.into_inner();
        let id = parse_account("account", &request.account)?;
        let sweep_to = match request.sweep_to.as_str() {
            "" => None,
            text => Some(parse_account("sweep_to", text)?),
        };
        account_change_answer(self.engine.close_account(id, sweep_to).await)
    }

    async fn reopen_account(
        &self,
        request: Request<pb::ReopenAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        self.require_operator(&request)?;
        let id = parse_account("account", &request.into_inner().account)?;
        account_change_answer(self.engine.reopen_account(id).await)
    }

    async fn reload_sanctions(
        &self,
        request: Request<pb::ReloadSanctionsRequest>,
    ) -> Result<Response<pb::ReloadSanctionsResponse>, Status> {
        self.require_operator(&request)?;
        // Preparing a long list takes a while: off the runtime's threads.
        let sanctions = self.engine.sanctions().clone();
        let outcome = tokio::task::spawn_blocking(move || sanctions.reload())
            .await
            .map_err(|e| task_failed(&e))?;
        reload_answer(outcome)
    }
}

/// The answer to a sanctions list reload: the list now in force, or the reason the file did
/// not load (FAILED_PRECONDITION, the list's reason code in the reason metadata).
fn reload_answer(
    outcome: Result<Reloaded, ListError>,
) -> Result<Response<pb::ReloadSanctionsResponse>, Status> {
    match outcome {
        Ok(reloaded) => Ok(Response::new(pb::ReloadSanctionsResponse {
            entries: reloaded.entries as u64,
            names: reloaded.names as u64,
            generation: reloaded.generation,
        })),
        Err(error) => {
            let mut status = Status::failed_precondition(error.to_string());
            if let Ok(value) = error.reason.code().parse() {
                status.metadata_mut().insert(REASON_METADATA, value);
            }
            Err(status)
        }
    }
}

/// The refusal of a client certificate that is neither a recognized participant's nor a
/// configured operator's (the same words for every such case).
fn not_a_client() -> Status {
    Status::permission_denied(
        "the client certificate is neither a participant bank's (participant-TLS, recognized \
         by this node's jurisdiction) nor one of this node's operator certificates",
    )
}

/// The page token that resumes a GetBalances listing after account `last`. Opaque to clients:
/// a version prefix and the id in hexadecimal, which they must not build or read.
fn page_token(last: u128) -> String {
    format!("{PAGE_TOKEN_PREFIX}{last:032x}")
}

/// The account after which a page starts: `None` for an empty token (the first page).
fn parse_page_token(token: &str) -> Result<Option<u128>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(PAGE_TOKEN_PREFIX)
        .filter(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Some)
        .ok_or_else(|| {
            status_for(&Rejection::new(
                ReasonCode::Ff01,
                "page_token: not a token this node issued; pass next_page_token unchanged",
            ))
        })
}

fn admin_answer(
    outcome: Result<Result<pb::AccountBalance, Rejection>, EngineError>,
) -> Result<Response<pb::AccountBalance>, Status> {
    match outcome {
        Ok(Ok(balance)) => Ok(Response::new(balance)),
        Ok(Err(rejection)) => Err(status_for(&rejection)),
        Err(e) => Err(operational(&e)),
    }
}

/// The answer to a close or reopen: as [`admin_answer`]'s, and FAILED_PRECONDITION without a
/// reason code when the account's state does not allow it now (payments in flight).
fn account_change_answer(
    outcome: Result<Result<pb::AccountBalance, AccountRefusal>, EngineError>,
) -> Result<Response<pb::AccountBalance>, Status> {
    match outcome {
        Ok(Ok(balance)) => Ok(Response::new(balance)),
        Ok(Err(AccountRefusal::Rejected(rejection))) => Err(status_for(&rejection)),
        Ok(Err(AccountRefusal::NotNow(detail))) => Err(Status::failed_precondition(detail)),
        Err(e) => Err(operational(&e)),
    }
}

/// The in-band report of a `SubmitPayments` instruction that got an error instead of a report:
/// a refusal (reason code in the metadata) is RJCT with that code; an operational fault has no
/// outcome (nothing was acknowledged and a retry may succeed), so it is neither RJCT nor
/// PDNG but UNSPECIFIED without a reason code, with the message and its error id as detail.
fn in_band(status: &Status) -> pb::PaymentStatusReport {
    let code = status
        .metadata()
        .get(REASON_METADATA)
        .and_then(|v| v.to_str().ok());
    let (transaction_status, code) = match (code, status.code()) {
        (Some(code), _) => (pb::TransactionStatus::Rjct, code),
        (None, tonic::Code::Unavailable | tonic::Code::Internal) => {
            (pb::TransactionStatus::Unspecified, "")
        }
        (None, _) => (pb::TransactionStatus::Rjct, "FF01"),
    };
    pb::PaymentStatusReport {
        transaction_status: transaction_status.into(),
        status_reason_code: code.to_owned(),
        status_reason_detail: status.message().to_owned(),
        ..pb::PaymentStatusReport::default()
    }
}

/// The node-to-node API. The peer's jurisdiction is the one its TLS client certificate was
/// recognized for (the handshake already refused everything else).
#[derive(Clone, Debug)]
pub(crate) struct RelayService {
    engine: Arc<Engine>,
    /// The bounds of each `Prepares` stream: the same `[limits]` as a `SubmitPayments`
    /// stream's (answers buffered, idle time, lifetime).
    stream: StreamLimits,
    /// Becomes true when the listeners stop (after a graceful stop's drain): the `Prepares`
    /// streams then end. Not the engine's stopping, during which the relay still serves.
    closing: watch::Receiver<bool>,
}

impl RelayService {
    /// A service over `engine`; `stream` bounds each `Prepares` stream, and `closing` ends
    /// them when it becomes true.
    pub(crate) fn new(
        engine: Arc<Engine>,
        stream: StreamLimits,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            engine,
            stream: StreamLimits {
                queue_len: stream.queue_len.max(1),
                ..stream
            },
            closing,
        }
    }

    /// The caller's jurisdiction, when its TLS chain is recognized for node TLS *and* it is a
    /// configured corridor peer of this node; PERMISSION_DENIED before anything is read or
    /// written otherwise (a node of this node's own jurisdiction, or a recognized node without
    /// a corridor, could otherwise fence or decide another party's UETR: issue 11, defect 1).
    fn peer_jurisdiction<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let certs = request.peer_certs().unwrap_or_default();
        let peer = recognized_peer(
            self.engine.trust(),
            self.engine.jurisdiction(),
            &certs,
            self.engine.clock().now().1,
        )?;
        if self.engine.is_corridor_peer(&peer) {
            return Ok(peer);
        }
        tracing::warn!(%peer, "refused a relay call from a node that is not a corridor peer");
        Err(Status::permission_denied(format!(
            "{peer} is not a relay peer of {}",
            self.engine.jurisdiction()
        )))
    }
}

/// The jurisdiction whose anchor `relying` recognizes the peer's TLS chain `certs` (leaf
/// first) under for node TLS at `time`. Recognition goes through the engine's cache
/// ([`Engine::trust`]), whose verdicts hold only inside the window the chain's, the agreement's
/// and the CRLs' dates allow, so a peer whose certificate expires or is revoked mid-connection
/// is refused from then on.
fn recognized_peer(
    trust: Trust<'_>,
    relying: &str,
    certs: &[CertificateDer<'_>],
    time: UnixTime,
) -> Result<String, Status> {
    let Some((leaf, intermediates)) = certs.split_first() else {
        return Err(Status::unauthenticated(
            "the relay needs a TLS client certificate",
        ));
    };
    // Parsed through the engine's cache: the peer presents the same chain on every call.
    let parse = |der: &[u8]| {
        trust
            .parse_shared(der)
            .map_err(|e| Status::unauthenticated(e.to_string()))
    };
    let leaf = parse(leaf.as_ref())?;
    let intermediates = intermediates
        .iter()
        .map(|c| parse(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let verdict = trust.recognize(relying, Purpose::NodeTls, &leaf, &intermediates, &[], time);
    match verdict.anchor_jurisdiction() {
        Some(jurisdiction) if verdict.recognized() => Ok(jurisdiction.to_owned()),
        _ => Err(Status::permission_denied(
            "the peer certificate is not recognized",
        )),
    }
}

/// The end of a `Prepares` stream when the node's listeners stop.
fn relay_closing() -> Status {
    Status::unavailable(
        "the node is stopping: every instruction read on this stream was answered; send the \
         rest on a new stream once it is back",
    )
}

/// The end of a `Prepares` stream whose batch carried more instructions than a batch may.
fn batch_too_large(size: usize) -> Status {
    Status::invalid_argument(format!(
        "a Prepares batch carries at most {RELAY_BATCH_MAX} instructions; this one carried \
         {size}: none of them was read or decided, and the stream ends (send them again in \
         smaller batches on a new stream)"
    ))
}

/// The answer to one instruction of a `Prepares` batch: what the unary Prepare would have
/// answered, the decision or the error status (code, message and reason code).
pub(crate) fn prepare_answer(
    id: u64,
    answer: Result<pb::RelayDecision, Status>,
) -> pb::PrepareAnswer {
    let outcome = match answer {
        Ok(decision) => pb::prepare_answer::Outcome::Decision(decision),
        Err(status) => pb::prepare_answer::Outcome::Error(pb::PrepareError {
            code: status.code() as i32,
            message: status.message().to_owned(),
            reason_code: status
                .metadata()
                .get(REASON_METADATA)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }),
    };
    pb::PrepareAnswer {
        id,
        outcome: Some(outcome),
    }
}

/// Answers one batch of a `Prepares` stream: authenticates every instruction first (their
/// signatures verified together), then decides them concurrently, each in a task of its own
/// that finishes even if the stream is gone (as Prepare's decision does), and sends each
/// answer as soon as it is decided. `permit` holds one in-flight place per instruction.
async fn answer_batch(
    engine: Arc<Engine>,
    peer: Arc<str>,
    batch: Vec<pb::TaggedPrepare>,
    mut permit: tokio::sync::OwnedSemaphorePermit,
    tx: mpsc::Sender<Result<pb::PrepareAnswers, Status>>,
) {
    let mut ids = Vec::with_capacity(batch.len());
    let mut envelopes = Vec::with_capacity(batch.len());
    for tagged in batch {
        match tagged.request.and_then(|request| request.instruction) {
            Some(signed) => {
                ids.push(tagged.id);
                envelopes.push(signed);
            }
            None => {
                let answer = prepare_answer(tagged.id, Err(missing("instruction")));
                let _ = tx
                    .send(Ok(pb::PrepareAnswers {
                        answers: vec![answer],
                    }))
                    .await;
                drop(permit.split(1));
            }
        }
    }
    let verified = engine.authenticate_batch(&peer, envelopes);
    let mut deciding = tokio::task::JoinSet::new();
    let mut by_task = std::collections::HashMap::with_capacity(ids.len());
    for (id, verified) in ids.into_iter().zip(verified) {
        let engine = Arc::clone(&engine);
        let peer = Arc::clone(&peer);
        let handle = deciding.spawn(async move { engine.prepare_verified(&peer, verified).await });
        by_task.insert(handle.id(), id);
    }
    while let Some(joined) = deciding.join_next_with_id().await {
        let (task, outcome) = match joined {
            Ok((task, outcome)) => (task, Ok(outcome)),
            Err(error) => (error.id(), Err(task_failed(&error))),
        };
        let Some(id) = by_task.remove(&task) else {
            continue;
        };
        let answer = outcome.and_then(|outcome| {
            if let Ok(Ok(decision)) = &outcome {
                tracing::info!(uetr = %decision.uetr, %peer, decision = ?decision.decision(),
                    reason = %decision.status_reason_code, "decided inbound payment");
            }
            relay_answer(outcome)
        });
        let _ = tx
            .send(Ok(pb::PrepareAnswers {
                answers: vec![prepare_answer(id, answer)],
            }))
            .await;
        drop(permit.split(1));
    }
}

#[tonic::async_trait]
impl Relay for RelayService {
    type PreparesStream =
        Pin<Box<dyn Stream<Item = Result<pb::PrepareAnswers, Status>> + Send + 'static>>;

    async fn prepares(
        &self,
        request: Request<Streaming<pb::PrepareBatch>>,
    ) -> Result<Response<Self::PreparesStream>, Status> {
        // Refused before anything of the stream is read, as Prepare is.
        let peer: Arc<str> = self.peer_jurisdiction(&request)?.into();
        let incoming = request.into_inner();
        let limits = self.stream;
        let (tx, rx) = mpsc::channel(limits.queue_len);
        let engine = Arc::clone(&self.engine);
        let mut closing = self.closing.clone();
        let closed = async move {
            let _ = closing.wait_for(|closing| *closing).await;
        };
        tokio::spawn(async move {
            tokio::pin!(closed);
            let mut inbound = Inbound::new(incoming, limits, RELAY_STREAM_IN_FLIGHT);
            // A stopping node still decides its peers' payments while it drains its own; the
            // stream ends only when the listeners stop.
            while let Some(batch) = inbound.next(&tx, &mut closed, relay_closing).await {
                let batch = batch.prepares;
                let size = batch.len();
                if size > RELAY_BATCH_MAX {
                    tracing::warn!(%peer, size, "refused a Prepares batch over the maximum count");
                    inbound.end(&tx, batch_too_large(size)).await;
                    break;
                }
                if size == 0 {
                    continue;
                }
                engine.metrics().relay_batch(size);
                // Back-pressure: at the bound, the stream is not read until answers free
                // places (HTTP/2 flow control then holds the sender).
                let Ok(permit) = Arc::clone(inbound.permits())
                    .acquire_many_owned(u32::try_from(size).unwrap_or(u32::MAX))
                    .await
                else {
                    break;
                };
                tokio::spawn(answer_batch(
                    Arc::clone(&engine),
                    Arc::clone(&peer),
                    batch,
                    permit,
                    tx.clone(),
                ));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn prepare(
        &self,
        request: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::RelayDecision>, Status> {
        let peer = self.peer_jurisdiction(&request)?;
        let Some(signed) = request.into_inner().instruction else {
            return Err(missing("instruction"));
        };
        // As in submit: the decision must complete even if the sender gives up waiting, or a
        // status query could fence a UETR whose credit is still being applied.
        let engine = Arc::clone(&self.engine);
        let task_peer = peer.clone();
        let outcome = tokio::spawn(async move { engine.prepare(&task_peer, signed).await })
            .await
            .map_err(|e| task_failed(&e))?;
        if let Ok(Ok(decision)) = &outcome {
            tracing::info!(uetr = %decision.uetr, %peer, decision = ?decision.decision(),
                reason = %decision.status_reason_code, "decided inbound payment");
        }
        relay_answer(outcome).map(Response::new)
    }

    async fn get_status(
        &self,
        request: Request<pb::RelayStatusRequest>,
    ) -> Result<Response<pb::RelayDecision>, Status> {
        let peer = self.peer_jurisdiction(&request)?;
        let request = request.into_inner();
        let uetr = Uetr::parse(&request.uetr).map_err(|r| status_for(&r))?;
        if !(request.instruction_sha256.is_empty() || request.instruction_sha256.len() == 32) {
            return Err(status_for(&Rejection::new(
                ReasonCode::Ff01,
                "instruction_sha256: must be empty or 32 bytes",
            )));
        }
        let engine = Arc::clone(&self.engine);
        let task_peer = peer.clone();
        let sha = request.instruction_sha256;
        let outcome =
            tokio::spawn(async move { engine.relay_status(&task_peer, uetr, &sha).await })
                .await
                .map_err(|e| task_failed(&e))?;
        if let Ok(Ok(decision)) = &outcome {
            tracing::info!(%uetr, %peer, decision = ?decision.decision(), "answered status query");
        }
        relay_answer(outcome).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use kakehashi_pki::cache::RecognitionCache;
    use kakehashi_pki::cert::Cert;
    use kakehashi_pki::mra::Mra;
    use kakehashi_pki::pem;

    use super::*;

    fn certs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs")
    }

    /// What the unit tests of this crate log, from every thread. A scoped (per-thread)
    /// subscriber would miss events: tracing caches a call site's interest globally, and a test
    /// on another thread without a subscriber can leave it disabled. So one global subscriber
    /// writes into one buffer, and a test looks for its own error id there (ids are unique).
    #[derive(Clone, Default)]
    struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn capture() -> Self {
            static LOGS: OnceLock<Logs> = OnceLock::new();
            LOGS.get_or_init(|| {
                let logs = Self::default();
                let writer = logs.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_writer(move || writer.clone())
                    .with_ansi(false)
                    .finish();
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber in the unit tests");
                logs
            })
            .clone()
        }

        fn text(&self) -> String {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    /// The error id an operational fault's message ends with.
    fn error_id_in(message: &str) -> Option<&str> {
        message
            .rsplit_once("[error id ")
            .and_then(|(_, rest)| rest.strip_suffix(']'))
    }

    /// `status` answers an operational fault: no reason code, no internal detail, an error id
    /// that the node's log line with the full error (the injected store fault) also carries.
    /// Returns the id.
    fn assert_answered_without_detail(status: &Status, logs: &Logs) -> String {
        let message = status.message();
        for detail in [
            "injected",
            "/secret/path",
            "sled",
            "payment store",
            "reading a record",
        ] {
            assert!(!message.contains(detail), "{detail:?} leaked: {message}");
        }
        assert!(
            status.metadata().get(REASON_METADATA).is_none(),
            "{status:?}"
        );
        let id = error_id_in(message).expect("an error id").to_owned();
        let log = logs.text();
        let line = log
            .lines()
            .find(|line| line.contains(&id))
            .unwrap_or_else(|| panic!("no log line with error id {id} in:\n{log}"));
        assert!(
            line.contains("injected read failure in /secret/path"),
            "the log line lacks the full error: {line}"
        );
        id
    }

    /// Issue 11, defect 4: a payment store read that fails while a submission is checked is
    /// not a refusal (AC01, recorded under the UETR for good) but UNAVAILABLE with nothing
    /// recorded, and the same request settles once the store reads again. An operator call
    /// (balances) that fails the same way says no more than that either.
    #[tokio::test]
    async fn a_failed_store_read_is_unavailable_records_nothing_and_the_retry_settles() {
        let logs = Logs::capture();
        let pair = crate::testing::pair().await;
        let jp = Arc::clone(pair.jp.engine());
        let service = PaymentsService::new(
            Arc::clone(&jp),
            Vec::new(),
            StreamLimits {
                queue_len: 16,
                idle: Duration::from_secs(60),
                lifetime: Duration::from_secs(3_600),
            },
            65536,
        );
        let uetr = crate::testing::new_uetr();
        let signed = crate::testing::jp_to_sg(&jp, uetr);
        let submit = || pb::SubmitPaymentRequest {
            instruction: Some(signed.clone()),
        };

        jp.store().fail_account_reads(true);
        let failed = service
            .submit_one(submit(), "KKHAJPJ0")
            .await
            .expect_err("failed read");
        assert_eq!(failed.code(), tonic::Code::Unavailable, "{failed:?}");
        let first = assert_answered_without_detail(&failed, &logs);
        assert_eq!(
            jp.store().outbound(&uetr).await.unwrap(),
            None,
            "nothing recorded"
        );
        let balances = service
            .balances_for(&Caller::Operator, pb::BalancesRequest::default())
            .await
            .expect_err("failed scan");
        assert_eq!(balances.code(), tonic::Code::Unavailable, "{balances:?}");
        let second = assert_answered_without_detail(&balances, &logs);
        assert_ne!(first, second, "an error id names one occurrence");

        jp.store().fail_account_reads(false);
        let report = service
            .submit_one(submit(), "KKHAJPJ0")
            .await
            .expect("retry");
        assert_eq!(
            report.transaction_status(),
            pb::TransactionStatus::Acsc,
            "{report:?}"
        );
        drop(service);
        drop(jp);
        pair.jp.shutdown().await.expect("JP shutdown");
        pair.sg.shutdown().await.expect("SG shutdown");
    }

    #[test]
    fn a_fault_that_is_not_transient_is_internal_with_only_an_error_id() {
        let unexpected = EngineError::Unexpected {
            what: "posting a reservation",
            result: "exceeds_credits",
        };
        assert!(!unexpected.is_transient());
        let status = operational(&unexpected);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("exceeds_credits"), "{status:?}");
        assert!(!status.message().contains("reservation"), "{status:?}");
        let id = error_id_in(status.message()).expect("an error id");
        let again = operational(&unexpected);
        assert_ne!(error_id_in(again.message()), Some(id));
    }

    #[test]
    fn an_operational_fault_in_a_stream_is_no_rejection() {
        let report = in_band(&operational(&EngineError::Task("lost".into())));
        assert_eq!(
            report.transaction_status(),
            pb::TransactionStatus::Unspecified
        );
        assert!(report.status_reason_code.is_empty(), "{report:?}");
        let refused = in_band(&status_for(&Rejection::new(ReasonCode::Ff01, "bad")));
        assert_eq!(refused.transaction_status(), pb::TransactionStatus::Rjct);
        assert_eq!(refused.status_reason_code, "FF01");
    }

    fn chain(name: &str) -> Vec<CertificateDer<'static>> {
        let bytes = std::fs::read(certs().join(name)).expect("certificate file");
        pem::blocks_or_der(&bytes, "CERTIFICATE")
            .expect("PEM")
            .into_iter()
            .map(CertificateDer::from)
            .collect()
    }

    fn agreement() -> (Mra, RecognitionCache) {
        let mra = Mra::load(&certs().join("mra.toml")).expect("certs/mra.toml");
        let cache = RecognitionCache::new(&mra).expect("cache");
        (mra, cache)
    }

    /// 2027-01-01T00:00:00Z: inside the committed certificates' validity (2025-06 to 2035-06
    /// for the node leaves), the agreement's rows (2026 to 2036) and the CRLs' (2025 to 2044).
    const INSIDE: UnixTime = UnixTime(1_798_761_600);

    fn leaf_not_after(chain: &[CertificateDer<'_>]) -> UnixTime {
        Cert::from_der(chain[0].as_ref()).expect("leaf").not_after()
    }

    #[test]
    fn a_recognized_peer_is_named_by_its_anchor_and_its_verdict_is_cached() {
        let (mra, cache) = agreement();
        let sg = chain("sg/node/tls.pem");
        let time = INSIDE;
        let trust = Trust::cached(&mra, &cache);
        assert_eq!(recognized_peer(trust, "JP", &sg, time).expect("SG"), "SG");
        assert_eq!(cache.cache().len(), 1);
        assert_eq!(recognized_peer(trust, "JP", &sg, time).expect("SG"), "SG");
        assert_eq!(cache.cache().len(), 1, "the second call is a cache hit");
    }

    #[test]
    fn a_peer_recognized_once_is_refused_after_its_certificate_expires() {
        let (mra, cache) = agreement();
        let trust = Trust::cached(&mra, &cache);
        let sg = chain("sg/node/tls.pem");
        assert_eq!(recognized_peer(trust, "JP", &sg, INSIDE).expect("SG"), "SG");
        // Still inside the agreement's rows, which end in 2036.
        let after = UnixTime(leaf_not_after(&sg).0 + 1);
        let refused = recognized_peer(trust, "JP", &sg, after).expect_err("expired");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(refused.message(), "the peer certificate is not recognized");
    }

    #[test]
    fn a_bank_signing_certificate_is_not_a_relay_peer() {
        let (mra, cache) = agreement();
        let bank = chain("jp/banks/KKHAJPJ0.pem");
        let refused = recognized_peer(Trust::cached(&mra, &cache), "SG", &bank, INSIDE)
            .expect_err("wrong purpose");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn no_certificate_or_an_undecodable_one_is_unauthenticated() {
        let (mra, cache) = agreement();
        let trust = Trust::cached(&mra, &cache);
        let none = recognized_peer(trust, "JP", &[], UnixTime(0)).expect_err("none");
        assert_eq!(none.code(), tonic::Code::Unauthenticated);
        let garbage = [CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff])];
        let bad = recognized_peer(trust, "JP", &garbage, UnixTime(0)).expect_err("garbage");
        assert_eq!(bad.code(), tonic::Code::Unauthenticated);
        assert!(
            cache.cache().is_empty(),
            "nothing recognized, nothing cached"
        );
    }
}
