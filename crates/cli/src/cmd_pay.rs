//! The participant commands: `kakehashi quote`, `pay`, `status`, `balance`, `receipt verify`
//! and the operator's `account open|fund|close`.
//!
//! A participant is a bank: it holds a payment-signing certificate and key. `pay` asks the
//! debtor's node for a signed FX quote, checks the quote under the mutual-recognition
//! agreement and that it is for the amount and counterparty asked for, has the node library
//! build the pacs.008-style `CreditTransferInstruction` and sign it with the bank's Ed25519 key
//! (`kakehashi_protocol::bank::instruction`, domain `SIGNING_DOMAIN_INSTRUCTION`), and
//! submits it; the node answers with a pacs.002-style status report. The same code sends the
//! devnet demo's payments ([`send_payment`]).
//!
//! Exit codes of `pay` and `status`: 0 ACSC (settled), 1 RJCT (rejected, nothing moved),
//! 3 PDNG (reserved and forwarded, outcome in doubt; ask again with `status`), 2 usage or
//! connection error. `receipt verify`: 0 valid, 1 invalid, 2 usage or input error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kakehashi_node::participant::{
    self, Answer, Participant, PayError, PaymentRequest, ReceiptError, VerifiedReceipt,
};
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Outcome, UnixTime};
use kakehashi_proto::pb;
use kakehashi_protocol::bank::{self, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::quote::QuoteTerms;
use kakehashi_protocol::reason::ReasonCode;
use kakehashi_protocol::receipt::{ReceiptFile, verify_receipt};
use kakehashi_protocol::signed::Signer;
use kakehashi_protocol::status::status_name;
use serde::Serialize;

use crate::client::{self, ConnectArgs, NodeClient};

/// Exit code of a payment still in doubt (PDNG): neither success (0) nor a refusal (1), and
/// not an error (2); scripts retry `kakehashi status UETR` until it is 0 or 1.
pub(crate) const EXIT_PENDING: u8 = 3;

/// Largest receipt file read: a receipt with an 8-certificate chain is a few tens of KiB.
const RECEIPT_FILE_SIZE_MAX: u64 = 1 << 20;

/// X.520 countryName, read from a bank certificate's subject (RFC 5280 §4.1.2.4).
const OID_COUNTRY: &str = "2.5.4.6";

// ---------------------------------------------------------------------------------------------
// Arguments

/// Arguments of `kakehashi quote`.
#[derive(clap::Args)]
pub(crate) struct QuoteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The creditor's jurisdiction, e.g. `SG`.
    #[arg(long = "to", value_name = "CODE")]
    counterparty: String,
    /// What the debtor pays, in major units of the node's currency, e.g. `10000` or `12.50`.
    #[arg(long)]
    amount: String,
    /// The node's currency (default: learned from the node's accounts).
    #[arg(long, value_name = "ISO4217")]
    currency: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kakehashi pay`.
#[derive(clap::Args)]
pub(crate) struct PayArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The debtor bank's payment-signing certificate chain (PEM, leaf first); its CN is the BIC.
    #[arg(long, value_name = "FILE")]
    bank: PathBuf,
    /// The debtor bank's Ed25519 private key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The debtor's account on the sending node's ledger.
    #[arg(long = "from", value_name = "ACCOUNT")]
    from: u128,
    /// The creditor bank's BIC, e.g. `KKHASGS0`.
    #[arg(long, value_name = "BIC")]
    to_bic: String,
    /// The creditor's account on the receiving node's ledger.
    #[arg(long, value_name = "ACCOUNT")]
    to_account: u128,
    /// The creditor's name (default: `account <N> at <BIC>`).
    #[arg(long, value_name = "NAME")]
    to_name: Option<String>,
    /// The creditor's jurisdiction, e.g. `SG`.
    #[arg(long = "to", value_name = "CODE")]
    counterparty: String,
    /// What the debtor pays, in major units of the sending node's currency.
    #[arg(long)]
    amount: String,
    /// The sending node's currency (default: the debtor account's).
    #[arg(long, value_name = "ISO4217")]
    currency: Option<String>,
    /// The payment's UETR (default: a new random one). A UETR already used is rejected with
    /// DUPL and moves nothing; `kakehashi status UETR` shows the earlier payment's outcome.
    #[arg(long)]
    uetr: Option<String>,
    /// Unstructured remittance information (at most 140 characters).
    #[arg(long, default_value = "")]
    remittance: String,
    /// Write the creditor node's signed receipt to this file when the payment settles.
    #[arg(long, value_name = "FILE")]
    receipt_out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kakehashi status`.
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The payment's UETR.
    uetr: String,
    /// Write the signed receipt to this file if the payment settled.
    #[arg(long, value_name = "FILE")]
    receipt_out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kakehashi balance`.
#[derive(clap::Args)]
pub(crate) struct BalanceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Account ids (default: every account the node knows).
    accounts: Vec<u128>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `kakehashi receipt ...`
#[derive(clap::Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Verify a signed receipt offline under the mutual-recognition agreement and print what
    /// it proves.
    ///
    /// Exit 0 valid, 1 invalid, 2 usage or input error.
    Verify(ReceiptVerifyArgs),
}

/// Arguments of `kakehashi receipt verify`.
#[derive(clap::Args)]
pub(crate) struct ReceiptVerifyArgs {
    /// The receipt file (`kakehashi pay --receipt-out`, or the devnet demo's receipts/).
    file: PathBuf,
    /// The mutual-recognition agreement.
    #[arg(long, default_value = "certs/mra.toml", value_name = "FILE")]
    mra: PathBuf,
    /// The jurisdiction relying on the receipt, e.g. `JP` for the debtor's side.
    #[arg(long, value_name = "CODE")]
    relying: String,
    /// Validation time (RFC 3339, e.g. `2027-01-01T00:00:00Z`); default: now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `kakehashi account ...` (operator only).
#[derive(clap::Subcommand)]
pub(crate) enum AccountCommand {
    /// Open a customer account for a bank.
    Open {
        #[command(flatten)]
        operator: OperatorArgs,
        /// The new account's id.
        account: u128,
        /// The BIC of the bank that holds it.
        #[arg(long, value_name = "BIC")]
        owner_bic: String,
        /// The account holder's name.
        #[arg(long)]
        name: String,
    },
    /// Credit an account from the node's funding account (cash-in).
    Fund {
        #[command(flatten)]
        operator: OperatorArgs,
        /// The account to credit.
        account: u128,
        /// Major units of the node's currency.
        #[arg(long)]
        amount: String,
        /// The node's currency (default: the account's).
        #[arg(long, value_name = "ISO4217")]
        currency: Option<String>,
    },
    /// Close an account; payments to or from it are then rejected with AC04.
    Close {
        #[command(flatten)]
        operator: OperatorArgs,
        /// The account to close.
        account: u128,
    },
}

/// The operator's connection: the node and a client certificate it lists as an operator.
#[derive(clap::Args)]
pub(crate) struct OperatorArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The operator's TLS client certificate chain (PEM), e.g. `certs/jp/node/tls.pem`.
    #[arg(long, value_name = "FILE")]
    operator_cert: PathBuf,
    /// The operator's private key (PEM).
    #[arg(long, value_name = "FILE")]
    operator_key: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// The participant: a bank with its signing key

/// A bank that signs instructions: the node library's participant identity (BIC, key, chain)
/// and the country its certificate names.
pub(crate) struct Bank {
    pub(crate) identity: bank::Bank,
    pub(crate) country: Option<String>,
}

impl Bank {
    /// Reads a payment-signing chain and its key, and checks that the key is the leaf's.
    pub(crate) fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        // Bound the reads first: the library reads whole files.
        client::read_bounded(cert, "bank certificate")?;
        let key_size = std::fs::metadata(key)
            .with_context(|| format!("cannot read the key {}", key.display()))?
            .len();
        anyhow::ensure!(
            key_size <= KEY_FILE_SIZE_MAX,
            "{} is {key_size} bytes; an Ed25519 PKCS#8 key is far smaller",
            key.display()
        );
        let identity = bank::Bank::load(cert, key).map_err(|e| {
            anyhow::anyhow!(
                "{e} (give the bank's payment-signing chain in PEM, leaf first, with --bank and \
                 its Ed25519 PKCS#8 key with --key)"
            )
        })?;
        let leaf = identity
            .chain
            .first()
            .and_then(|der| Cert::from_der(der).ok())
            .with_context(|| format!("{}: no readable certificate", cert.display()))?;
        if leaf.spki().key() != identity.key.verifying_key().as_bytes() {
            bail!(
                "{} is not the key of {} (subject {}); give the matching .key.pem",
                key.display(),
                cert.display(),
                leaf.subject_display()
            );
        }
        let country = leaf
            .subject()
            .attributes(OID_COUNTRY)
            .find_map(|a| a.text());
        Ok(Self { identity, country })
    }

    pub(crate) fn bic(&self) -> &str {
        &self.identity.bic
    }
}

/// Largest private-key file read: an Ed25519 PKCS#8 PEM key is about 120 bytes.
const KEY_FILE_SIZE_MAX: u64 = 64 << 10;

// ---------------------------------------------------------------------------------------------
// Sending a payment (shared by `pay` and the devnet demo)

/// How a payment ended, as the sending node reported it (or as it refused the quote or the
/// instruction before recording a payment), with its receipt verified.
pub(crate) struct Sent {
    /// The quote the instruction settles at, when the node issued one.
    pub(crate) quote: Option<QuoteTerms>,
    pub(crate) report: pb::PaymentStatusReport,
    /// Which call decided: `quote`, `submit`.
    pub(crate) stage: &'static str,
    /// The report's receipt, verified under the agreement.
    pub(crate) receipt: Result<Option<VerifiedReceipt>, ReceiptError>,
}

/// A new random UETR (RFC 4122 version 4).
pub(crate) fn new_uetr() -> anyhow::Result<Uetr> {
    Uetr::new_v4(&ring::rand::SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))
}

/// Pays `request` through the participant flow (quote, verify, check, sign, submit, verify the
/// receipt). A refusal by the node (with a reason code) is an outcome, not an error; errors are
/// a node that cannot be reached, a quote that does not verify or is not what was asked, or an
/// answer without a reason.
pub(crate) async fn send_payment(
    node: &mut NodeClient,
    participant: &Participant<'_>,
    bank: &Bank,
    request: &PaymentRequest,
    now: UnixTime,
) -> anyhow::Result<Sent> {
    let paid = participant
        .pay(&mut node.payments, &bank.identity, request, now)
        .await
        .map_err(|e| pay_error(&node.url, e))?;
    let stage = paid.step().as_str();
    let report = match paid.answer {
        Answer::Report(report) => *report,
        Answer::Refused(refusal) => pb::PaymentStatusReport {
            uetr: request.uetr.to_string(),
            transaction_status: pb::TransactionStatus::Rjct.into(),
            status_reason_code: refusal.code,
            status_reason_detail: refusal.message,
            interbank_settlement_amount: Some(request.amount.clone()),
            ..pb::PaymentStatusReport::default()
        },
    };
    Ok(Sent {
        quote: paid.quote.map(|quote| quote.terms().clone()),
        report,
        stage,
        receipt: paid.receipt,
    })
}

/// An error of the participant flow in the command line's words.
pub(crate) fn pay_error(url: &str, error: PayError) -> anyhow::Error {
    match error {
        PayError::Call { step, status } => client::call_error(url, step.as_str(), &status),
        PayError::Refused(refusal) => anyhow::anyhow!(
            "{} refused at {url}: {}",
            refusal.step.as_str(),
            refusal.message
        ),
        PayError::Quote(error) => {
            anyhow::anyhow!("the node at {url} {error}; nothing was signed or sent")
        }
        other => anyhow::Error::new(other),
    }
}

fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| UnixTime(t.seconds).to_rfc3339())
}

/// `"12.30 SGD"`, or `-` when absent.
pub(crate) fn amount_text(a: Option<&pb::ActiveCurrencyAndAmount>) -> String {
    a.map_or_else(|| "-".to_owned(), |a| format!("{} {}", a.value, a.currency))
}

fn minor_text(currency: &Currency, minor: u128) -> String {
    amount_text(Some(&money::format_amount(currency, minor)))
}

/// What a reason code means, for people.
pub(crate) fn reason_meaning(code: &str) -> &'static str {
    ReasonCode::parse(code).map_or("unknown reason code", ReasonCode::meaning)
}

fn exit_for(report: &pb::PaymentStatusReport) -> ExitCode {
    match status_name(report.transaction_status()) {
        "ACSC" => ExitCode::SUCCESS,
        "RJCT" => ExitCode::from(1),
        "PDNG" => ExitCode::from(EXIT_PENDING),
        _ => ExitCode::from(2),
    }
}

/// The participant's jurisdiction: `--jurisdiction`, else the bank certificate's country, else
/// `fallback`; it must be a party to the agreement.
fn relying_jurisdiction(
    connect: &ConnectArgs,
    mra: &Mra,
    bank: Option<&Bank>,
) -> anyhow::Result<String> {
    let (code, option) = match (&connect.jurisdiction, bank.and_then(|b| b.country.clone())) {
        (Some(code), _) => (code.clone(), "--jurisdiction"),
        (None, Some(country)) => (country, "the bank certificate's country"),
        (None, None) => ("JP".to_owned(), "the default jurisdiction"),
    };
    client::check_party(mra, &code, option)?;
    Ok(code)
}

async fn connect(
    connect: &ConnectArgs,
    mra: &Arc<Mra>,
    relying: &str,
) -> anyhow::Result<NodeClient> {
    client::connect(
        &connect.node,
        Arc::clone(mra),
        relying,
        connect.tls_server_name.as_deref(),
        None,
    )
    .await
}

/// One account's balance from the node.
async fn account_balance(
    node: &mut NodeClient,
    account: u128,
) -> anyhow::Result<pb::AccountBalance> {
    let request = pb::BalancesRequest {
        accounts: vec![account.to_string()],
    };
    let answer = node
        .payments
        .get_balances(request)
        .await
        .map_err(|s| client::call_error(&node.url, &format!("balance of account {account}"), &s))?
        .into_inner();
    answer
        .balances
        .into_iter()
        .find(|b| b.account == account.to_string())
        .with_context(|| format!("the node at {} did not report account {account}", node.url))
}

/// The node's currency: the first account's (every account of a node is in its currency).
async fn node_currency(node: &mut NodeClient) -> anyhow::Result<String> {
    let answer = node
        .payments
        .get_balances(pb::BalancesRequest::default())
        .await
        .map_err(|s| client::call_error(&node.url, "balances", &s))?
        .into_inner();
    answer
        .balances
        .iter()
        .find_map(|b| b.posted_balance.as_ref().map(|a| a.currency.clone()))
        .with_context(|| {
            format!(
                "the node at {} reports no accounts to learn its currency from; pass --currency",
                node.url
            )
        })
}

/// Checks a user-given amount and returns it as the wire type.
fn parse_user_amount(currency: &str, value: &str) -> anyhow::Result<pb::ActiveCurrencyAndAmount> {
    let amount = pb::ActiveCurrencyAndAmount {
        currency: currency.to_owned(),
        value: value.to_owned(),
    };
    let (_, minor) = money::parse_amount(&amount).map_err(|r| {
        anyhow::anyhow!(
            "--amount {value} {currency}: {}; give a positive decimal in major units with at \
             most the currency's minor digits, e.g. 10000 (JPY) or 12.50 (SGD)",
            r.detail
        )
    })?;
    if minor == 0 {
        bail!("--amount {value}: a payment must be more than zero");
    }
    Ok(amount)
}

// ---------------------------------------------------------------------------------------------
// kakehashi quote

pub(crate) fn run_quote(args: QuoteArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(quote(args))
}

async fn quote(args: QuoteArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let relying = relying_jurisdiction(&args.connect, &mra, None)?;
    let mut node = connect(&args.connect, &mra, &relying).await?;
    let currency = match &args.currency {
        Some(c) => c.clone(),
        None => node_currency(&mut node).await?,
    };
    let amount = parse_user_amount(&currency, &args.amount)?;
    let participant = Participant::new(&*mra, &relying);
    let ask = participant
        .ask(&amount, &args.counterparty)
        .map_err(|e| pay_error(&node.url, e))?;
    let now = client::now()?;
    let quote = participant
        .quote(&mut node.payments, &ask, now)
        .await
        .map_err(|e| pay_error(&node.url, e))?;
    let (terms, signer) = (quote.terms(), quote.signer());
    let mut out = String::new();
    if args.json {
        let doc = serde_json::json!({
            "node": node.url,
            "quote": QuoteJson::new(terms),
            "signer": SignerJson::new(signer),
            "relying": relying,
        });
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "quote {} from {} for a payment to {}",
            terms.quote_id, terms.issuing, terms.counterparty
        );
        write_quote(&mut out, terms);
        let _ = writeln!(
            out,
            "  signed by    {} ({}), recognized by {relying} under {}",
            signer.subject_cn,
            signer.jurisdiction,
            signer.verdict.clause.as_deref().unwrap_or("the agreement")
        );
    }
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn write_quote(out: &mut String, terms: &QuoteTerms) {
    let _ = writeln!(
        out,
        "  debtor pays  {}",
        minor_text(terms.source.0, terms.source.1)
    );
    let _ = writeln!(
        out,
        "  credited     {}",
        minor_text(terms.target.0, terms.target.1)
    );
    let _ = writeln!(
        out,
        "  rate         {} {} per {} (mid {}, spread {} bps; rounded down to the {} minor unit)",
        terms.rate,
        terms.target.0.alpha,
        terms.source.0.alpha,
        terms.mid,
        terms.spread_bps,
        terms.target.0.alpha
    );
    let _ = writeln!(
        out,
        "  valid        {} to {}",
        terms.issued_at, terms.expires_at
    );
}

#[derive(Serialize)]
struct QuoteJson {
    quote_id: String,
    issuing_jurisdiction: String,
    counterparty_jurisdiction: String,
    source_amount: String,
    target_amount: String,
    exchange_rate: String,
    mid_rate: String,
    spread_bps: u32,
    issued_at: String,
    expires_at: String,
}

impl QuoteJson {
    fn new(terms: &QuoteTerms) -> Self {
        Self {
            quote_id: terms.quote_id.clone(),
            issuing_jurisdiction: terms.issuing.clone(),
            counterparty_jurisdiction: terms.counterparty.clone(),
            source_amount: minor_text(terms.source.0, terms.source.1),
            target_amount: minor_text(terms.target.0, terms.target.1),
            exchange_rate: terms.rate.to_string(),
            mid_rate: terms.mid.to_string(),
            spread_bps: terms.spread_bps,
            issued_at: terms.issued_at.to_rfc3339(),
            expires_at: terms.expires_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize)]
struct SignerJson {
    subject_cn: String,
    jurisdiction: String,
    leaf_sha256: String,
    clause: Option<String>,
}

impl SignerJson {
    fn new(signer: &Signer) -> Self {
        Self {
            subject_cn: signer.subject_cn.clone(),
            jurisdiction: signer.jurisdiction.clone(),
            leaf_sha256: hex::encode(signer.leaf_sha256),
            clause: signer.verdict.clause.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi pay

pub(crate) fn run_pay(args: PayArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(pay(args))
}

async fn pay(args: PayArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let bank = Bank::load(&args.bank, &args.key)?;
    let relying = relying_jurisdiction(&args.connect, &mra, Some(&bank))?;
    client::check_party(&mra, &args.counterparty, "--to")?;
    let uetr = match &args.uetr {
        Some(text) => Uetr::parse(text).map_err(|r| {
            anyhow::anyhow!(
                "--uetr {text}: {}; give a UUID like 9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
                r.detail
            )
        })?,
        None => new_uetr()?,
    };
    let mut node = connect(&args.connect, &mra, &relying).await?;
    let debtor = account_balance(&mut node, args.from).await?;
    let currency = match &args.currency {
        Some(c) => c.clone(),
        None => debtor
            .posted_balance
            .as_ref()
            .map(|a| a.currency.clone())
            .with_context(|| format!("account {} has no currency; pass --currency", args.from))?,
    };
    let request = PaymentRequest {
        uetr,
        amount: parse_user_amount(&currency, &args.amount)?,
        counterparty: args.counterparty.clone(),
        order: Order {
            debtor_account: args.from,
            debtor_name: debtor.name.clone(),
            creditor_agent_bic: args.to_bic.clone(),
            creditor_account: args.to_account,
            creditor_name: args
                .to_name
                .clone()
                .unwrap_or_else(|| format!("account {} at {}", args.to_account, args.to_bic)),
            remittance_information: args.remittance.clone(),
        },
        options: InstructionOptions::default(),
    };
    let participant = Participant::new(&*mra, &relying);
    let now = client::now()?;
    let sent = send_payment(&mut node, &participant, &bank, &request, now).await?;
    let receipt = keep_receipt(&sent.report, sent.receipt, args.receipt_out.as_deref())?;
    let mut out = String::new();
    if args.json {
        let doc = serde_json::json!({
            "node": node.url,
            "decided_at": sent.stage,
            "quote": sent.quote.as_ref().map(QuoteJson::new),
            "report": ReportJson::new(&sent.report),
            "receipt": receipt.as_ref().map(ReceiptCheckJson::new),
        });
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        let order = &request.order;
        let _ = writeln!(out, "payment {}", request.uetr);
        let _ = writeln!(
            out,
            "  debtor       {} account {} ({})",
            bank.bic(),
            order.debtor_account,
            order.debtor_name
        );
        let _ = writeln!(
            out,
            "  creditor     {} account {} ({}) in {}",
            order.creditor_agent_bic,
            order.creditor_account,
            order.creditor_name,
            request.counterparty
        );
        if let Some(terms) = &sent.quote {
            let _ = writeln!(out, "  quote        {}", terms.quote_id);
            write_quote(&mut out, terms);
        }
        write_report(&mut out, &sent.report, receipt.as_ref());
    }
    write_stdout(&out)?;
    Ok(exit_for(&sent.report))
}

/// A receipt that was checked and possibly written to a file.
pub(crate) struct ReceiptCheck {
    pub(crate) receipt: pb::Receipt,
    pub(crate) signer: Signer,
    pub(crate) file: Option<PathBuf>,
}

/// Keeps the verified receipt of `report` and writes it to `out` if asked. A settled payment
/// without a valid receipt is an error: the node's claim is unproven.
fn keep_receipt(
    report: &pb::PaymentStatusReport,
    verified: Result<Option<VerifiedReceipt>, ReceiptError>,
    out: Option<&Path>,
) -> anyhow::Result<Option<ReceiptCheck>> {
    let verified = verified.map_err(|e| match e {
        ReceiptError::Missing { .. } => anyhow::anyhow!("{e}; ask the node's operator"),
        ReceiptError::Invalid { .. } => anyhow::Error::new(e),
    })?;
    let (Some(VerifiedReceipt { receipt, signer }), Some(signed)) = (verified, &report.receipt)
    else {
        return Ok(None);
    };
    let file = match out {
        Some(path) => {
            write_receipt_file(path, signed)?;
            Some(path.to_owned())
        }
        None => None,
    };
    Ok(Some(ReceiptCheck {
        receipt,
        signer,
        file,
    }))
}

/// Writes a signed receipt as a receipt file (JSON), replacing the file whole.
pub(crate) fn write_receipt_file(path: &Path, signed: &pb::Signed) -> anyhow::Result<()> {
    let file = ReceiptFile::new(signed.clone())
        .map_err(|r| anyhow::anyhow!("cannot encode the receipt for {}: {r}", path.display()))?;
    let json = file.to_json();
    std::fs::write(path, json)
        .with_context(|| format!("cannot write the receipt to {}", path.display()))
}

fn write_report(
    out: &mut String,
    report: &pb::PaymentStatusReport,
    receipt: Option<&ReceiptCheck>,
) {
    let status = status_name(report.transaction_status());
    match status {
        "ACSC" => {
            let _ = writeln!(
                out,
                "  status       ACSC settled: {} debited, {} credited by {}",
                amount_text(report.interbank_settlement_amount.as_ref()),
                amount_text(report.credited_amount.as_ref()),
                report.decided_by
            );
        }
        "RJCT" => {
            let by = if report.decided_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", report.decided_by)
            };
            let _ = writeln!(
                out,
                "  status       RJCT {} ({}){by}; nothing moved",
                report.status_reason_code,
                reason_meaning(&report.status_reason_code)
            );
            let _ = writeln!(out, "  detail       {}", report.status_reason_detail);
        }
        "PDNG" => {
            let _ = writeln!(
                out,
                "  status       PDNG: reserved and forwarded; the outcome is not known yet. \
                 Ask again with `kakehashi status {}`",
                report.uetr
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "  status       {} (unknown to this client)",
                report.transaction_status
            );
        }
    }
    if let Some(check) = receipt {
        let _ = writeln!(
            out,
            "  receipt      signed by {} ({}), verified under {}; transfer {} settled {}",
            check.signer.subject_cn,
            check.signer.jurisdiction,
            check
                .signer
                .verdict
                .clause
                .as_deref()
                .unwrap_or("the agreement"),
            check.receipt.ledger_transfer_id,
            time_text(check.receipt.settled_at.as_ref())
        );
        if let Some(file) = &check.file {
            let _ = writeln!(out, "  receipt file {}", file.display());
        }
    }
}

#[derive(Serialize)]
struct ReportJson {
    uetr: String,
    end_to_end_id: String,
    status: &'static str,
    reason_code: Option<String>,
    reason_meaning: Option<&'static str>,
    reason_detail: Option<String>,
    decided_by: String,
    debited: Option<String>,
    credited: Option<String>,
}

impl ReportJson {
    fn new(report: &pb::PaymentStatusReport) -> Self {
        let code =
            (!report.status_reason_code.is_empty()).then(|| report.status_reason_code.clone());
        Self {
            uetr: report.uetr.clone(),
            end_to_end_id: report.end_to_end_id.clone(),
            status: status_name(report.transaction_status()),
            reason_meaning: code.as_deref().map(reason_meaning),
            reason_code: code,
            reason_detail: (!report.status_reason_detail.is_empty())
                .then(|| report.status_reason_detail.clone()),
            decided_by: report.decided_by.clone(),
            debited: report
                .interbank_settlement_amount
                .as_ref()
                .map(|a| amount_text(Some(a))),
            credited: report
                .credited_amount
                .as_ref()
                .map(|a| amount_text(Some(a))),
        }
    }
}

#[derive(Serialize)]
struct ReceiptCheckJson {
    signer: SignerJson,
    ledger_transfer_id: String,
    settled_at: String,
    file: Option<String>,
}

impl ReceiptCheckJson {
    fn new(check: &ReceiptCheck) -> Self {
        Self {
            signer: SignerJson::new(&check.signer),
            ledger_transfer_id: check.receipt.ledger_transfer_id.clone(),
            settled_at: time_text(check.receipt.settled_at.as_ref()),
            file: check.file.as_ref().map(|f| f.display().to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi status

pub(crate) fn run_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(status(args))
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let uetr = Uetr::parse(&args.uetr).map_err(|r| {
        anyhow::anyhow!(
            "{}: {}; give the payment's UETR (a UUID)",
            args.uetr,
            r.detail
        )
    })?;
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let relying = relying_jurisdiction(&args.connect, &mra, None)?;
    let mut node = connect(&args.connect, &mra, &relying).await?;
    let request = pb::PaymentStatusRequest {
        uetr: uetr.to_string(),
    };
    let report = match node.payments.get_payment_status(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            bail!(
                "{}; `kakehashi status` asks the debtor's node (the one the payment was \
                 submitted to), pass it with --node",
                status.message()
            );
        }
        Err(status) => return Err(client::call_error(&node.url, "the status query", &status)),
    };
    let now = client::now()?;
    let verified = Participant::new(&*mra, &relying).verify_receipt(&report, now);
    let receipt = keep_receipt(&report, verified, args.receipt_out.as_deref())?;
    let mut out = String::new();
    if args.json {
        let doc = serde_json::json!({
            "node": node.url,
            "report": ReportJson::new(&report),
            "receipt": receipt.as_ref().map(ReceiptCheckJson::new),
        });
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "payment {} (end-to-end id {})",
            report.uetr, report.end_to_end_id
        );
        write_report(&mut out, &report, receipt.as_ref());
    }
    write_stdout(&out)?;
    Ok(exit_for(&report))
}

// ---------------------------------------------------------------------------------------------
// kakehashi balance

pub(crate) fn run_balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(balance(args))
}

async fn balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let relying = relying_jurisdiction(&args.connect, &mra, None)?;
    let mut node = connect(&args.connect, &mra, &relying).await?;
    let balances = balances(&mut node, &args.accounts).await?;
    let mut out = String::new();
    if args.json {
        let rows: Vec<BalanceJson> = balances.iter().map(BalanceJson::new).collect();
        out.push_str(&serde_json::to_string_pretty(&rows)?);
        out.push('\n');
    } else {
        write_balance_table(&mut out, &balances);
    }
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Balances of `accounts` (every account when empty).
pub(crate) async fn balances(
    node: &mut NodeClient,
    accounts: &[u128],
) -> anyhow::Result<Vec<pb::AccountBalance>> {
    let request = pb::BalancesRequest {
        accounts: accounts.iter().map(u128::to_string).collect(),
    };
    Ok(node
        .payments
        .get_balances(request)
        .await
        .map_err(|s| client::call_error(&node.url, "the balances query", &s))?
        .into_inner()
        .balances)
}

fn write_balance_table(out: &mut String, balances: &[pb::AccountBalance]) {
    let header = [
        "account",
        "kind",
        "bank",
        "name",
        "posted",
        "pending",
        "available",
    ];
    let rows: Vec<[String; 7]> = balances
        .iter()
        .map(|b| {
            let name = if b.closed {
                format!("{} (closed)", b.name)
            } else {
                b.name.clone()
            };
            [
                b.account.clone(),
                b.kind.clone(),
                if b.owner_bic.is_empty() {
                    "-".to_owned()
                } else {
                    b.owner_bic.clone()
                },
                name,
                amount_text(b.posted_balance.as_ref()),
                amount_text(b.pending_debits.as_ref()),
                amount_text(b.available_balance.as_ref()),
            ]
        })
        .collect();
    // Amounts are right-aligned so their decimal points line up.
    write_table(
        out,
        &header,
        &rows,
        &[false, false, false, false, true, true, true],
    );
}

/// Writes an aligned text table; `right[i]` right-aligns column `i`.
pub(crate) fn write_table<const N: usize>(
    out: &mut String,
    header: &[&str; N],
    rows: &[[String; N]],
    right: &[bool; N],
) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.push(' ');
            if right[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
            text.push(' ');
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    let _ = writeln!(out, "{}", line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[derive(Serialize)]
struct BalanceJson {
    account: String,
    kind: String,
    owner_bic: String,
    name: String,
    closed: bool,
    posted: String,
    pending_debits: String,
    available: String,
    as_of: String,
}

impl BalanceJson {
    fn new(b: &pb::AccountBalance) -> Self {
        Self {
            account: b.account.clone(),
            kind: b.kind.clone(),
            owner_bic: b.owner_bic.clone(),
            name: b.name.clone(),
            closed: b.closed,
            posted: amount_text(b.posted_balance.as_ref()),
            pending_debits: amount_text(b.pending_debits.as_ref()),
            available: amount_text(b.available_balance.as_ref()),
            as_of: time_text(b.as_of.as_ref()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi receipt verify

pub(crate) fn run_receipt(cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptCommand::Verify(args) => receipt_verify(&args),
    }
}

fn receipt_verify(args: &ReceiptVerifyArgs) -> anyhow::Result<ExitCode> {
    let (time, time_source) = match &args.at {
        Some(text) => {
            let time = UnixTime::parse_rfc3339(text).map_err(|e| {
                anyhow::anyhow!(
                    "bad --at `{text}`: {e}; give an RFC 3339 time with an offset, \
                     e.g. 2027-01-01T00:00:00Z"
                )
            })?;
            (time, "--at")
        }
        None => (client::now()?, "the system clock"),
    };
    let mra = client::load_mra(&args.mra)?;
    client::check_party(&mra, &args.relying, "--relying")?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read the receipt {}", args.file.display()))?
        .len();
    if size > RECEIPT_FILE_SIZE_MAX {
        bail!(
            "{} is {size} bytes; a receipt file is far smaller (limit {RECEIPT_FILE_SIZE_MAX})",
            args.file.display()
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the receipt {}", args.file.display()))?;
    if serde_json::from_str::<serde_json::Value>(&text).is_err() {
        bail!(
            "{} is not JSON; give a receipt file written by `kakehashi pay --receipt-out` or \
             the devnet demo",
            args.file.display()
        );
    }
    // From here on the file claims to be a receipt: anything wrong with it is a verdict.
    // Reading it already refuses a readable copy that differs from the signed payload.
    let verdict = match ReceiptFile::from_json(&text) {
        Ok(file) => match verify_receipt(&file.signed, &mra, &args.relying, time) {
            Ok((receipt, signer)) => ReceiptVerdict::Valid {
                receipt,
                signer: Box::new(signer),
            },
            Err(r) => ReceiptVerdict::Invalid {
                code: r.code.as_str(),
                detail: r.detail,
                receipt: Some(file.receipt),
            },
        },
        Err(r) => ReceiptVerdict::Invalid {
            code: r.code.as_str(),
            detail: format!("not a well-formed receipt file: {}", r.detail),
            receipt: None,
        },
    };
    let mut out = String::new();
    if args.json {
        let doc = verdict.json(args, &mra, time, time_source);
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        verdict.write_text(&mut out, args, &mra, time, time_source);
    }
    write_stdout(&out)?;
    Ok(match verdict {
        ReceiptVerdict::Valid { .. } => ExitCode::SUCCESS,
        ReceiptVerdict::Invalid { .. } => ExitCode::from(1),
    })
}

enum ReceiptVerdict {
    Valid {
        receipt: pb::Receipt,
        // Boxed: a verdict with its checks is much larger than the invalid variant.
        signer: Box<Signer>,
    },
    Invalid {
        code: &'static str,
        detail: String,
        /// The payload decoded without trusting it, to show what was claimed.
        receipt: Option<pb::Receipt>,
    },
}

impl ReceiptVerdict {
    fn write_text(
        &self,
        out: &mut String,
        args: &ReceiptVerifyArgs,
        mra: &Mra,
        time: UnixTime,
        time_source: &str,
    ) {
        let _ = writeln!(out, "receipt    {}", args.file.display());
        let _ = writeln!(
            out,
            "agreement  {} ({})",
            mra.agreement_id,
            mra.path().display()
        );
        let _ = writeln!(out, "relying    {}", args.relying);
        let _ = writeln!(out, "time       {time} (from {time_source})");
        let _ = writeln!(out);
        let receipt = match self {
            Self::Valid { receipt, .. } => Some(receipt),
            Self::Invalid { receipt, .. } => receipt.as_ref(),
        };
        if let Some(r) = receipt {
            let heading = match self {
                Self::Valid { .. } => "what it proves",
                Self::Invalid { .. } => "what it claims (NOT proven)",
            };
            let _ = writeln!(out, "{heading}");
            let _ = writeln!(out, "  uetr                 {}", r.uetr);
            let _ = writeln!(out, "  end-to-end id        {}", r.end_to_end_id);
            let _ = writeln!(
                out,
                "  payment              {} {} -> {} {} (creditor account {})",
                r.sending_jurisdiction,
                r.debtor_agent_bic,
                r.receiving_jurisdiction,
                r.creditor_agent_bic,
                r.creditor_account
            );
            let _ = writeln!(
                out,
                "  credited             {}",
                amount_text(r.credited_amount.as_ref())
            );
            let _ = writeln!(out, "  status               {}", r.transaction_status);
            let _ = writeln!(out, "  ledger transfer      {}", r.ledger_transfer_id);
            let _ = writeln!(
                out,
                "  settled at           {}",
                time_text(r.settled_at.as_ref())
            );
            let _ = writeln!(
                out,
                "  instruction sha256   {}",
                hex::encode(&r.instruction_sha256)
            );
            let _ = writeln!(out);
        }
        match self {
            Self::Valid { receipt, signer } => {
                let path = &signer.verdict.path;
                let _ = writeln!(out, "signer's certificate path");
                for (i, c) in path.iter().enumerate() {
                    let role = if i == 0 {
                        "leaf".to_owned()
                    } else if i + 1 == path.len() {
                        format!("trust anchor of {}", signer.jurisdiction)
                    } else {
                        "intermediate".to_owned()
                    };
                    let branch = if i == 0 { "" } else { "└─ " };
                    let _ = writeln!(
                        out,
                        "  {}{branch}[{}] {} (serial {})  <{role}>",
                        "   ".repeat(i),
                        c.position,
                        c.subject,
                        c.serial
                    );
                }
                let _ = writeln!(out);
                let _ = writeln!(
                    out,
                    "checks (✓ pass, ✗ fail, · not applicable; [n] is the position on the path)"
                );
                let _ = writeln!(
                    out,
                    "  ✓     file: the readable fields match the signed payload"
                );
                let _ = writeln!(
                    out,
                    "  ✓ [0] signature: Ed25519 over the receipt domain and the payload"
                );
                for check in &signer.verdict.checks {
                    let on = check
                        .cert
                        .as_ref()
                        .map_or_else(|| "   ".to_owned(), |c| format!("[{}]", c.position));
                    let _ = writeln!(
                        out,
                        "  {} {on} {}: {}  ({})",
                        mark(check.outcome),
                        check.name,
                        check.detail,
                        check.rule
                    );
                }
                let _ = writeln!(
                    out,
                    "  ✓     signer-jurisdiction: the signer's anchor is {}, the receipt's \
                     receiving jurisdiction",
                    receipt.receiving_jurisdiction
                );
                let _ = writeln!(out);
                let _ = writeln!(
                    out,
                    "VALID: {} credited {} to account {} at {}, signed by {} ({}), recognized \
                     by {} for receipt-signing under {}",
                    receipt.receiving_jurisdiction,
                    amount_text(receipt.credited_amount.as_ref()),
                    receipt.creditor_account,
                    receipt.creditor_agent_bic,
                    signer.subject_cn,
                    signer.jurisdiction,
                    args.relying,
                    signer.verdict.clause.as_deref().unwrap_or("the agreement")
                );
            }
            Self::Invalid { code, detail, .. } => {
                let _ = writeln!(out, "INVALID ({code}: {})", reason_meaning(code));
                let _ = writeln!(out, "  why  {detail}");
            }
        }
    }

    fn json(
        &self,
        args: &ReceiptVerifyArgs,
        mra: &Mra,
        time: UnixTime,
        time_source: &str,
    ) -> serde_json::Value {
        let receipt_json = |r: &pb::Receipt| {
            serde_json::json!({
                "uetr": r.uetr,
                "end_to_end_id": r.end_to_end_id,
                "instruction_sha256": hex::encode(&r.instruction_sha256),
                "receiving_jurisdiction": r.receiving_jurisdiction,
                "sending_jurisdiction": r.sending_jurisdiction,
                "debtor_agent_bic": r.debtor_agent_bic,
                "creditor_agent_bic": r.creditor_agent_bic,
                "creditor_account": r.creditor_account,
                "credited_amount": amount_text(r.credited_amount.as_ref()),
                "ledger_transfer_id": r.ledger_transfer_id,
                "settled_at": time_text(r.settled_at.as_ref()),
                "transaction_status": r.transaction_status,
            })
        };
        let mut doc = serde_json::json!({
            "file": args.file.display().to_string(),
            "agreement_id": mra.agreement_id,
            "relying": args.relying,
            "time": time.to_rfc3339(),
            "time_source": time_source,
        });
        if let Some(obj) = doc.as_object_mut() {
            match self {
                Self::Valid { receipt, signer } => {
                    obj.insert("valid".into(), true.into());
                    obj.insert("receipt".into(), receipt_json(receipt));
                    obj.insert("signer".into(), serde_json::json!(SignerJson::new(signer)));
                    obj.insert(
                        "verdict".into(),
                        serde_json::to_value(&signer.verdict).unwrap_or_default(),
                    );
                }
                Self::Invalid {
                    code,
                    detail,
                    receipt,
                } => {
                    obj.insert("valid".into(), false.into());
                    obj.insert("reason_code".into(), (*code).into());
                    obj.insert("reason_detail".into(), detail.clone().into());
                    obj.insert(
                        "claimed_receipt".into(),
                        receipt
                            .as_ref()
                            .map_or(serde_json::Value::Null, receipt_json),
                    );
                }
            }
        }
        doc
    }
}

/// Check marks: pass, fail, not applicable.
fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "✓",
        Outcome::Fail => "✗",
        Outcome::NotApplicable => "·",
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi account open|fund|close

pub(crate) fn run_account(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(account(cmd))
}

async fn account(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    let operator = match &cmd {
        AccountCommand::Open { operator, .. }
        | AccountCommand::Fund { operator, .. }
        | AccountCommand::Close { operator, .. } => operator,
    };
    let mra = Arc::new(client::load_mra(&operator.connect.mra)?);
    let relying = relying_jurisdiction(&operator.connect, &mra, None)?;
    let identity = client::read_identity(&operator.operator_cert, &operator.operator_key)?;
    let mut node = client::connect(
        &operator.connect.node,
        Arc::clone(&mra),
        &relying,
        operator.connect.tls_server_name.as_deref(),
        Some(identity),
    )
    .await?;
    let (what, answer) = match &cmd {
        AccountCommand::Open {
            account,
            owner_bic,
            name,
            ..
        } => {
            let request = pb::OpenAccountRequest {
                account: account.to_string(),
                owner_bic: owner_bic.clone(),
                name: name.clone(),
            };
            ("open", node.payments.open_account(request).await)
        }
        AccountCommand::Fund {
            account,
            amount,
            currency,
            ..
        } => {
            let currency = match currency {
                Some(c) => c.clone(),
                None => account_balance(&mut node, *account)
                    .await?
                    .posted_balance
                    .map(|a| a.currency)
                    .with_context(|| {
                        format!("account {account} has no currency; pass --currency")
                    })?,
            };
            let request = pb::FundAccountRequest {
                account: account.to_string(),
                amount: Some(parse_user_amount(&currency, amount)?),
            };
            ("fund", node.payments.fund_account(request).await)
        }
        AccountCommand::Close { account, .. } => {
            let request = pb::CloseAccountRequest {
                account: account.to_string(),
            };
            ("close", node.payments.close_account(request).await)
        }
    };
    let balance = match answer {
        Ok(balance) => balance.into_inner(),
        Err(status) => {
            if participant::reason_code(&status).is_some() {
                // The message starts with the reason code, e.g. "DUPL: account 1201: exists".
                eprintln!("refused by the node: {}", status.message());
                return Ok(ExitCode::from(1));
            }
            if status.message().contains("transport error") {
                bail!(
                    "the node at {} closed the connection: it probably refused the client \
                     certificate {} (operators present a TLS certificate with clientAuth that \
                     the node lists in [admin] operator_certs, e.g. certs/jp/node/tls.pem for \
                     the JP devnet node)",
                    node.url,
                    operator.operator_cert.display()
                );
            }
            return Err(client::call_error(
                &node.url,
                &format!("{what} account"),
                &status,
            ));
        }
    };
    let done = match what {
        "open" => "opened",
        "fund" => "funded",
        _ => "closed",
    };
    let mut out = format!("{done} account {}\n", balance.account);
    write_balance_table(&mut out, std::slice::from_ref(&balance));
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uetrs_are_version_4_rfc_4122_and_differ() {
        let a = new_uetr().unwrap();
        let b = new_uetr().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(a.0[8] >> 6, 0b10);
        let text = a.to_string();
        assert_eq!(Uetr::parse(&text).unwrap(), a);
    }

    #[test]
    fn table_aligns_columns_and_right_aligns_amounts() {
        let mut out = String::new();
        let rows = [
            ["1".to_owned(), "5.00 SGD".to_owned()],
            ["1001".to_owned(), "12345.67 SGD".to_owned()],
        ];
        write_table(&mut out, &["account", "balance"], &rows, &[false, true]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        let end = lines[0].chars().count();
        assert_eq!(lines[2].chars().count(), end);
        assert_eq!(lines[3].chars().count(), end);
        assert!(lines[2].ends_with(" 5.00 SGD"));
        assert!(lines[2].starts_with("  1 "));
    }
}
