//! The participant's side of the API, as a library: connect to a node's public listener over
//! TLS (verifying the node under the agreement), and pay as a bank does. The CLI (`pay`, the
//! devnet demo, `replay`), the load generator and the end-to-end tests use it, so they all
//! speak to a node exactly as an outside client would, under the same rules.
//!
//! One flow, [`Participant::pay`]:
//!
//! 1. GetQuote for the amount and the creditor's jurisdiction ([`Participant::quote`]);
//! 2. verify the quote under the agreement (signer recognized for receipt-signing by the
//!    participant's jurisdiction, expiry, exact recomputation) and check that it is for the
//!    amount, the jurisdiction and the currency asked (`verify_quote_for`, the only maker of a
//!    [`VerifiedQuote`]);
//! 3. sign the instruction at that quote (`bank::instruction`, which takes only a
//!    [`VerifiedQuote`]);
//! 4. SubmitPayment ([`submit`]);
//! 5. verify the receipt of a settled payment under the agreement
//!    ([`Participant::verify_receipt`]).
//!
//! Callers with their own submission path (the load generator's SubmitPayments stream) compose
//! steps 1–3 themselves: they cannot sign without step 2.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::bank::{self, Bank, BankFileError, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money;
use kakehashi_protocol::quote::{QuoteAsk, QuoteError, VerifiedQuote, verify_quote_for};
use kakehashi_protocol::reason::Rejection;
use kakehashi_protocol::receipt::verify_receipt;
use kakehashi_protocol::signed::{Signer, Trust};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::tls::{TlsIdentity, install_crypto_provider};

/// How long connecting (TCP and TLS) may take before [`connect`] gives up: a node on this
/// machine or a LAN answers in milliseconds, so five seconds only expires when it is down or
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest message [`connect`] encodes or decodes: tonic's own default decoding ceiling (4 MiB),
/// stated here so the limit is explicit and applies to requests too. Nodes accept at most
/// `[limits] max_message_bytes` (64 KiB by default), so a larger request could never succeed.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// Clock difference a participant allows when it checks a quote's expiry: what the devnet
/// nodes allow (`clock_skew_secs`), so a quote the node would still honour is not refused here.
pub const QUOTE_CLOCK_SKEW_SECS: u64 = 30;

/// Why a participant could not connect or load its identity.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    /// A file is unreadable or not what it should be.
    #[error("{what} {path}: {message}")]
    File {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The node's TLS set-up is unusable.
    #[error("connecting to {url}: {message}")]
    Connect {
        /// The node.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node's address does not parse as a URL.
    #[error("{url} is not a valid URL: {message}")]
    InvalidUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The node's certificate cannot be checked as `relying`, which the agreement does not
    /// know.
    #[error("cannot check node certificates as {relying}: {message}")]
    Verifier {
        /// The jurisdiction that was to rely on the agreement.
        relying: String,
        /// What is wrong.
        message: String,
    },
    /// The node answered with a TLS certificate that `relying` does not recognize.
    #[error(
        "refused the node at {url}: its TLS certificate is not recognized by {relying}: {reason}"
    )]
    Refused {
        /// The node.
        url: String,
        /// The jurisdiction that refused it.
        relying: String,
        /// The verifier's explanation.
        reason: String,
    },
    /// The connection failed for any other reason (nothing listening, a timeout, a TLS
    /// failure the verifier did not explain).
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable {
        /// The node.
        url: String,
        /// The transport error and its causes.
        message: String,
    },
}

impl From<BankFileError> for ParticipantError {
    fn from(error: BankFileError) -> Self {
        Self::File {
            what: error.what,
            path: error.path,
            message: error.message,
        }
    }
}

/// How [`connect_with`] reaches a node. [`ConnectOptions::default`] is what [`connect`] uses,
/// apart from the server name it is given.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The name the node's certificate must be valid for; `None` takes the URL's host.
    pub server_name: Option<String>,
    /// A client certificate for the operator RPCs.
    pub identity: Option<Identity>,
    /// How long TCP and TLS may take.
    pub connect_timeout: Duration,
    /// Deadline of every call on the channel; `None` leaves each call to set its own (a
    /// `grpc-timeout` on the request) or to wait for the node's own request deadline.
    pub request_timeout: Option<Duration>,
    /// Largest message encoded or decoded.
    pub message_bytes_max: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            server_name: None,
            identity: None,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: None,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
        }
    }
}

/// Connects to a node's public listener at `url` (`https://host:port`). The node must present
/// a node-tls certificate that `relying` (the participant's jurisdiction) recognizes under
/// `mra`, valid for `server_name`. `identity` is a client certificate for the operator RPCs.
pub async fn connect(
    url: &str,
    server_name: &str,
    mra: Arc<Mra>,
    relying: &str,
    identity: Option<&TlsIdentity>,
) -> Result<PaymentsClient<Channel>, ParticipantError> {
    let options = ConnectOptions {
        server_name: Some(server_name.to_owned()),
        identity: identity.map(TlsIdentity::tonic_identity),
        ..ConnectOptions::default()
    };
    connect_with(url, mra, relying, &options).await
}

/// [`connect`] with every option explicit. A certificate the verifier refuses is reported as
/// [`ParticipantError::Refused`] with the verifier's explanation (rustls's own error only names
/// the TLS alert).
pub async fn connect_with(
    url: &str,
    mra: Arc<Mra>,
    relying: &str,
    options: &ConnectOptions,
) -> Result<PaymentsClient<Channel>, ParticipantError> {
    let channel = connect_channel(url, mra, relying, options).await?;
    Ok(PaymentsClient::new(channel)
        .max_decoding_message_size(options.message_bytes_max)
        .max_encoding_message_size(options.message_bytes_max))
}

/// The channel [`connect_with`] makes, for a service other than Payments on the same listener
/// (the load generator's health checks calibrate the cost of a call over it).
pub async fn connect_channel(
    url: &str,
    mra: Arc<Mra>,
    relying: &str,
    options: &ConnectOptions,
) -> Result<Channel, ParticipantError> {
    install_crypto_provider();
    // The verifier reports why it refused a certificate through this hook; the handshake error
    // that reaches us is often too terse to act on.
    let refusal: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = Arc::clone(&refusal);
    let verifier = NodeServerCertVerifier::new(mra, relying)
        .map_err(|e| ParticipantError::Verifier {
            relying: relying.to_owned(),
            message: e.to_string(),
        })?
        .with_refusal_hook(Arc::new(move |error| {
            if let Ok(mut slot) = seen.lock() {
                *slot = Some(error.to_string());
            }
        }));
    let mut tls = ClientTlsConfig::new();
    if let Some(name) = &options.server_name {
        tls = tls.domain_name(name.clone());
    }
    if let Some(identity) = &options.identity {
        tls = tls.identity(identity.clone());
    }
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ParticipantError::InvalidUrl {
            url: url.to_owned(),
            message: error_chain(&e),
        })?
        .connect_timeout(options.connect_timeout);
    if let Some(timeout) = options.request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    let endpoint = endpoint
        .tls_config_with_verifier(tls, Arc::new(verifier))
        .map_err(|e| ParticipantError::Connect {
            url: url.to_owned(),
            message: error_chain(&e),
        })?;
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(error) => {
            let why = refusal.lock().ok().and_then(|slot| slot.clone());
            return Err(match why {
                Some(reason) => ParticipantError::Refused {
                    url: url.to_owned(),
                    relying: relying.to_owned(),
                    reason,
                },
                None => ParticipantError::Unreachable {
                    url: url.to_owned(),
                    message: error_chain(&error),
                },
            });
        }
    };
    Ok(channel)
}

// ---------------------------------------------------------------------------------------------
// Paying

/// A participant as the agreement sees it: the trust it verifies quotes and receipts under, and
/// its jurisdiction, which relies on the agreement.
#[derive(Clone, Copy, Debug)]
pub struct Participant<'a> {
    trust: Trust<'a>,
    relying: &'a str,
}

/// One payment a bank asks its node to make.
#[derive(Clone, Debug)]
pub struct PaymentRequest {
    /// The payment's UETR.
    pub uetr: Uetr,
    /// What the debtor pays, in the sending node's currency.
    pub amount: pb::ActiveCurrencyAndAmount,
    /// The creditor's jurisdiction.
    pub counterparty: String,
    /// The debtor, the creditor and the remittance information.
    pub order: Order,
    /// References, charge bearer and test faults of the instruction.
    pub options: InstructionOptions,
}

/// A call of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// GetQuote.
    Quote,
    /// SubmitPayment.
    Submit,
}

impl Step {
    /// `quote`, `submit`: the step that decided, as reports name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Submit => "submit",
        }
    }

    /// The RPC: `GetQuote`, `SubmitPayment`.
    pub fn rpc(self) -> &'static str {
        match self {
            Self::Quote => "GetQuote",
            Self::Submit => "SubmitPayment",
        }
    }
}

/// A call the node refused with an ISO 20022 reason code: an outcome (RJCT), nothing moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Which call.
    pub step: Step,
    /// The reason code the node attached.
    pub code: String,
    /// The node's message; it starts with the code (`RR04: source_amount: ...`).
    pub message: String,
}

impl Refusal {
    /// The message without the code it repeats.
    pub fn detail(&self) -> &str {
        self.message
            .strip_prefix(self.code.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(&self.message)
    }
}

/// Why the flow stopped without an outcome (a refusal with a reason code is an outcome, see
/// [`Answer`]; the steps return it as [`PayError::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The amount asked for is not a valid amount.
    #[error("the amount to pay is not valid: {0}")]
    Amount(Rejection),
    /// A call got no answer, or a refusal without a reason code.
    #[error("{} failed: {} ({:?})", .step.rpc(), .status.message(), .status.code())]
    Call {
        /// Which call.
        step: Step,
        /// What the node or the transport said.
        status: Box<tonic::Status>,
    },
    /// The creditor's jurisdiction has no currency under the agreement.
    #[error("{0} is not a party to the agreement with a currency kakehashi knows")]
    Counterparty(String),
    /// The quote does not verify or is not for what was asked: nothing was signed.
    #[error("the node {0}; nothing was signed")]
    Quote(#[from] QuoteError),
    /// The node refused a call with a reason code.
    #[error("{} refused: {}", .0.step.rpc(), .0.message)]
    Refused(Refusal),
}

/// A receipt that verified under the agreement.
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    /// What it proves.
    pub receipt: pb::Receipt,
    /// Who signed it, recognized for receipt-signing.
    pub signer: Signer,
}

/// Why a report's receipt proves nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt does not verify.
    #[error(
        "the receipt of payment {uetr} does not verify under the agreement as {relying}: \
         {rejection}"
    )]
    Invalid {
        /// The payment.
        uetr: String,
        /// The jurisdiction that verified it.
        relying: String,
        /// Why it does not verify.
        rejection: Rejection,
    },
    /// The payment is reported settled without a receipt.
    #[error("payment {uetr} is reported settled but carries no receipt")]
    Missing {
        /// The payment.
        uetr: String,
    },
}

/// What the node answered.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A refusal with a reason code, before a report.
    Refused(Refusal),
    /// A pacs.002 status report (boxed: it is five times the size of a refusal).
    Report(Box<pb::PaymentStatusReport>),
}

/// How [`Participant::pay`] ended.
#[derive(Clone, Debug)]
pub struct Paid {
    /// The quote the instruction was signed at; `None` when the node refused to quote.
    pub quote: Option<VerifiedQuote>,
    /// The node's answer.
    pub answer: Answer,
    /// The report's receipt, verified: `Ok(None)` when there is none and the payment is not
    /// settled.
    pub receipt: Result<Option<VerifiedReceipt>, ReceiptError>,
}

impl Paid {
    /// The call that decided.
    pub fn step(&self) -> Step {
        match &self.answer {
            Answer::Report(_) => Step::Submit,
            Answer::Refused(refusal) => refusal.step,
        }
    }
}

impl<'a> Participant<'a> {
    /// `relying` verifying under `trust`.
    pub fn new(trust: impl Into<Trust<'a>>, relying: &'a str) -> Self {
        Self {
            trust: trust.into(),
            relying,
        }
    }

    /// The jurisdiction that relies on the agreement.
    pub fn relying(&self) -> &'a str {
        self.relying
    }

    /// What to ask a quote for: `amount` to `counterparty`, paid in the counterparty's currency
    /// under the agreement.
    pub fn ask(
        &self,
        amount: &pb::ActiveCurrencyAndAmount,
        counterparty: &str,
    ) -> Result<QuoteAsk, PayError> {
        let source = money::parse_amount(amount).map_err(PayError::Amount)?;
        let target_currency = (self.trust.mra().jurisdiction(counterparty))
            .and_then(|party| money::currency(&party.currency))
            .ok_or_else(|| PayError::Counterparty(counterparty.to_owned()))?;
        Ok(QuoteAsk {
            source,
            counterparty: counterparty.to_owned(),
            target_currency,
        })
    }

    /// Steps 1 and 2: asks `node` for a quote of `ask` and verifies it at `now`.
    pub async fn quote(
        &self,
        node: &mut PaymentsClient<Channel>,
        ask: &QuoteAsk,
        now: UnixTime,
    ) -> Result<VerifiedQuote, PayError> {
        let request = pb::QuoteRequest {
            counterparty_jurisdiction: ask.counterparty.clone(),
            source_amount: Some(money::format_amount(ask.source.0, ask.source.1)),
        };
        let signed = node
            .get_quote(request)
            .await
            .map_err(|status| call_failed(Step::Quote, status))?
            .into_inner();
        Ok(verify_quote_for(
            signed,
            ask,
            self.trust,
            self.relying,
            now,
            QUOTE_CLOCK_SKEW_SECS,
        )?)
    }

    /// The whole flow: quote, verify, check, sign with `bank`, submit, verify the receipt. A
    /// refusal with a reason code is an outcome ([`Answer::Refused`]); errors are a call without
    /// an answer and a quote the bank will not sign at.
    pub async fn pay(
        &self,
        node: &mut PaymentsClient<Channel>,
        bank: &Bank,
        request: &PaymentRequest,
        now: UnixTime,
    ) -> Result<Paid, PayError> {
        let ask = self.ask(&request.amount, &request.counterparty)?;
        let quote = match self.quote(node, &ask, now).await {
            Ok(quote) => quote,
            Err(PayError::Refused(refusal)) => {
                return Ok(Paid {
                    quote: None,
                    answer: Answer::Refused(refusal),
                    receipt: Ok(None),
                });
            }
            Err(error) => return Err(error),
        };
        let instruction = bank::instruction(
            bank,
            &request.order,
            &quote,
            request.uetr,
            now,
            &request.options,
        );
        let (answer, receipt) = match submit(node, instruction).await {
            Ok(report) => {
                let receipt = self.verify_receipt(&report, now);
                (Answer::Report(Box::new(report)), receipt)
            }
            Err(PayError::Refused(refusal)) => (Answer::Refused(refusal), Ok(None)),
            Err(error) => return Err(error),
        };
        Ok(Paid {
            quote: Some(quote),
            answer,
            receipt,
        })
    }

    /// Step 5: verifies the receipt `report` carries at `now`. A settled (ACSC) report must
    /// carry one; any receipt carried must verify.
    pub fn verify_receipt(
        &self,
        report: &pb::PaymentStatusReport,
        now: UnixTime,
    ) -> Result<Option<VerifiedReceipt>, ReceiptError> {
        let Some(signed) = &report.receipt else {
            if report.transaction_status() == pb::TransactionStatus::Acsc {
                return Err(ReceiptError::Missing {
                    uetr: report.uetr.clone(),
                });
            }
            return Ok(None);
        };
        let (receipt, signer) =
            verify_receipt(signed, self.trust, self.relying, now).map_err(|rejection| {
                ReceiptError::Invalid {
                    uetr: report.uetr.clone(),
                    relying: self.relying.to_owned(),
                    rejection,
                }
            })?;
        Ok(Some(VerifiedReceipt { receipt, signer }))
    }
}

/// Balances of `accounts`, or of every account the connection may see when `accounts` is
/// empty (its bank's own; every account of the node for the operator), following the node's
/// page tokens to the end. The node's default page size applies.
pub async fn balances(
    client: &mut PaymentsClient<Channel>,
    accounts: &[u128],
) -> Result<Vec<pb::AccountBalance>, tonic::Status> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .get_balances(pb::BalancesRequest {
                accounts: accounts.iter().map(u128::to_string).collect(),
                page_size: 0,
                page_token: std::mem::take(&mut page_token),
            })
            .await?
            .into_inner();
        out.extend(page.balances);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Step 4: submits a signed instruction and returns the node's report.
pub async fn submit(
    node: &mut PaymentsClient<Channel>,
    instruction: pb::Signed,
) -> Result<pb::PaymentStatusReport, PayError> {
    let request = pb::SubmitPaymentRequest {
        instruction: Some(instruction),
    };
    node.submit_payment(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| call_failed(Step::Submit, status))
}

/// The reason code a node attached to a refused call, if any (nodes put the ISO 20022 code in
/// the `kakehashi-reason-code` metadata entry so clients need not parse messages).
pub fn reason_code(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(REASON_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A failed call of `step`: a refusal when the node gave a reason code.
fn call_failed(step: Step, status: tonic::Status) -> PayError {
    match reason_code(&status) {
        Some(code) => PayError::Refused(Refusal {
            step,
            code,
            message: status.message().to_owned(),
        }),
        None => PayError::Call {
            step,
            status: Box::new(status),
        },
    }
}

/// An error and its sources on one line (tonic's transport errors nest the useful part), each
/// cause once: some wrappers repeat their source's text in their own.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use kakehashi_protocol::reason::ReasonCode;

    use super::*;

    fn mra() -> Mra {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../certs/mra.toml");
        Mra::load(&path).expect("certs/mra.toml loads")
    }

    fn jpy(value: &str) -> pb::ActiveCurrencyAndAmount {
        pb::ActiveCurrencyAndAmount {
            currency: "JPY".into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_quote_is_asked_in_the_counterpartys_currency_under_the_agreement() {
        let mra = mra();
        let jp = Participant::new(&mra, "JP");
        let ask = jp.ask(&jpy("10000"), "SG").expect("a JPY payment to SG");
        assert_eq!(ask.source.0.alpha, "JPY");
        assert_eq!(ask.source.1, 10_000);
        assert_eq!(ask.counterparty, "SG");
        assert_eq!(ask.target_currency.alpha, "SGD");
        assert_eq!(
            jp.ask(&jpy("10000"), "TH").unwrap().target_currency.alpha,
            "THB"
        );
        assert!(matches!(
            jp.ask(&jpy("10000"), "XX"),
            Err(PayError::Counterparty(code)) if code == "XX"
        ));
        assert!(matches!(
            jp.ask(&jpy("1.5"), "SG"),
            Err(PayError::Amount(r)) if r.code == ReasonCode::Ff01
        ));
    }

    #[test]
    fn a_settled_report_must_carry_a_receipt_that_verifies() {
        let mra = mra();
        let jp = Participant::new(&mra, "JP");
        let now = UnixTime(1_798_761_600);
        let report =
            |status: pb::TransactionStatus, receipt: Option<pb::Signed>| pb::PaymentStatusReport {
                uetr: "eb6305c9-1f7f-49de-aed0-16487c27b42d".into(),
                transaction_status: status.into(),
                receipt,
                ..pb::PaymentStatusReport::default()
            };
        let rejected = report(pb::TransactionStatus::Rjct, None);
        assert!(matches!(jp.verify_receipt(&rejected, now), Ok(None)));
        let bare = report(pb::TransactionStatus::Acsc, None);
        let missing = jp.verify_receipt(&bare, now).unwrap_err();
        assert!(matches!(missing, ReceiptError::Missing { .. }), "{missing}");
        let forged = report(pb::TransactionStatus::Acsc, Some(pb::Signed::default()));
        let invalid = jp.verify_receipt(&forged, now).unwrap_err();
        assert!(
            matches!(&invalid, ReceiptError::Invalid { relying, .. } if relying == "JP"),
            "{invalid}"
        );
    }

    #[test]
    fn a_refusal_detail_drops_the_code_the_message_repeats() {
        let refusal = Refusal {
            step: Step::Quote,
            code: "RR04".into(),
            message: "RR04: source_amount: above this node's limit".into(),
        };
        assert_eq!(refusal.detail(), "source_amount: above this node's limit");
        let plain = Refusal {
            message: "no code here".into(),
            ..refusal
        };
        assert_eq!(plain.detail(), "no code here");
        assert_eq!(Step::Quote.rpc(), "GetQuote");
        assert_eq!(Step::Submit.as_str(), "submit");
    }
}
