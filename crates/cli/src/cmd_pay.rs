//! The payment commands of a participant: `kakehashi quote`, `pay` and `status`.
//!
//! A participant is a bank: it holds a payment-signing certificate and key. `pay` runs the
//! participant flow of `kakehashi_node::participant` (see [`crate::payer`]): it asks the
//! debtor's node for a signed FX quote, verifies the quote under the mutual-recognition
//! agreement and checks that it is for the amount and counterparty asked for, has the protocol
//! library build the pacs.008-style `CreditTransferInstruction` at that verified quote and sign
//! it with the bank's Ed25519 key (`kakehashi_protocol::bank::instruction`, domain
//! `SIGNING_DOMAIN_INSTRUCTION`), submits it, and verifies the receipt of a settled payment;
//! the node answers with a pacs.002-style status report.
//!
//! Exit codes of `pay` and `status`: 0 ACSC (settled), 1 RJCT (rejected, nothing moved),
//! 3 PDNG (reserved and forwarded, outcome in doubt; ask again with `status`), 2 usage or
//! connection error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kakehashi_node::participant::{Participant, PaymentRequest, ReceiptError, VerifiedReceipt};
use kakehashi_proto::pb;
use kakehashi_protocol::bank::{InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::iso20022::pacs002::{self, OriginalMessage, TransactionStatus};
use kakehashi_protocol::iso20022::pacs008;
use kakehashi_protocol::quote::QuoteTerms;
use kakehashi_protocol::signed::Signer;
use kakehashi_protocol::status::status_name;
use serde::Serialize;

use crate::client::{self, ConnectArgs, parse_user_amount};
use crate::output::{
    EXIT_PENDING, SignerJson, amount_text, minor_text, reason_meaning, time_text, write_stdout,
};
use crate::payer::{Bank, new_uetr, pay_error, send_payment, write_receipt_file};

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
    #[arg(
        long = "from",
        value_name = "ACCOUNT",
        required_unless_present = "pacs008"
    )]
    from: Option<u128>,
    /// The creditor bank's BIC, e.g. `KKHASGS0`.
    #[arg(long, value_name = "BIC", required_unless_present = "pacs008")]
    to_bic: Option<String>,
    /// The creditor's account on the receiving node's ledger.
    #[arg(long, value_name = "ACCOUNT", required_unless_present = "pacs008")]
    to_account: Option<u128>,
    /// The creditor's name (default: `account <N> at <BIC>`).
    #[arg(long, value_name = "NAME")]
    to_name: Option<String>,
    /// The creditor's jurisdiction, e.g. `SG`.
    #[arg(long = "to", value_name = "CODE", required_unless_present = "pacs008")]
    counterparty: Option<String>,
    /// What the debtor pays, in major units of the sending node's currency.
    #[arg(long, required_unless_present = "pacs008")]
    amount: Option<String>,
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
    /// Send the one transaction of this ISO 20022 pacs.008.001.08 message instead of the
    /// payment options above (the mapping is in docs/iso20022.md); --bank must be its debtor
    /// agent.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["from", "to_bic", "to_account", "to_name", "counterparty", "amount", "currency", "uetr"]
    )]
    pacs008: Option<PathBuf>,
    /// Write the outcome as an ISO 20022 pacs.002.001.10 status report to this file.
    #[arg(long, value_name = "FILE")]
    pacs002_out: Option<PathBuf>,
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
    /// Print the status as an ISO 20022 pacs.002.001.10 status report instead of text.
    #[arg(long, conflicts_with = "json")]
    pacs002: bool,
}

// ---------------------------------------------------------------------------------------------
// kakehashi quote

pub(crate) fn run_quote(args: QuoteArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(quote(args))
}

async fn quote(args: QuoteArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let relying = args.connect.relying(&mra, None)?;
    let mut node = args.connect.connect(&mra, &relying).await?;
    // Quotes are open to anyone, balances are not: without an identity the node's currency is
    // the agreement's for the participant's jurisdiction (a participant asks its own node).
    let currency = match (&args.currency, &args.connect.identity) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => node.currency().await?,
        (None, None) => mra
            .jurisdiction(&relying)
            .map(|j| j.currency.clone())
            .with_context(|| {
                format!("{relying} has no currency in the agreement; pass --currency")
            })?,
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
            signer.subject_cn(),
            signer.jurisdiction(),
            signer.verdict().clause().unwrap_or("the agreement")
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

// ---------------------------------------------------------------------------------------------
// kakehashi pay

pub(crate) fn run_pay(args: PayArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(pay(args))
}

async fn pay(args: PayArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let bank = Bank::load(&args.bank, &args.key)?;
    let relying = args.connect.relying(&mra, bank.country.as_deref())?;
    // What the message asks, when the payment comes from a pacs.008 file: read and checked
    // before connecting, so a refused message sends nothing.
    let message = match &args.pacs008 {
        Some(path) => Some(read_pacs008(path, &bank)?),
        None => None,
    };
    // The bank's participant-TLS identity beside its signing chain, unless --identity says
    // otherwise: a node takes an instruction only from its debtor agent's connection.
    let mut node = args
        .connect
        .connect_as(&mra, &relying, client::tls_beside_signing(&args.bank))
        .await?;
    let request = match &message {
        Some((_, transaction)) => {
            let counterparty = transaction
                .creditor_agent
                .get(4..6)
                .unwrap_or_default()
                .to_owned();
            client::check_party(&mra, &counterparty, "CdtrAgt/FinInstnId/BICFI's country")?;
            request_of(transaction, counterparty)
        }
        None => request_from_args(&args, &mra, &mut node).await?,
    };
    let participant = Participant::new(&*mra, &relying);
    let now = client::now()?;
    let sent = send_payment(&mut node, &participant, &bank, &request, now).await?;
    let receipt = keep_receipt(&sent.report, sent.receipt, args.receipt_out.as_deref())?;
    if let Some(path) = &args.pacs002_out {
        let status = TransactionStatus::of_report(
            &sent.report,
            request.uetr,
            message.as_ref().map(|(m, _)| OriginalMessage {
                message_id: m.message_id.clone(),
                name: pacs008::MESSAGE_NAME.to_owned(),
                created: Some(m.created.clone()),
            }),
            request.options.instruction_id.clone(),
            message.as_ref().and_then(|(_, t)| t.transaction_id.clone()),
        );
        let xml = pacs002::write(&pacs002::Report {
            message_id: format!("KKH-STS-{}-{}", now.0, status_id(&status)),
            created: now,
            transactions: vec![status],
        })?;
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
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

/// The payment the options ask for: the debtor's account (its name and, unless --currency,
/// its currency from the node), the creditor, the amount and the UETR (or a new one).
async fn request_from_args(
    args: &PayArgs,
    mra: &kakehashi_pki::mra::Mra,
    node: &mut client::NodeClient,
) -> anyhow::Result<PaymentRequest> {
    // clap requires these without --pacs008.
    let (Some(from), Some(to_bic), Some(to_account), Some(counterparty), Some(amount)) = (
        args.from,
        args.to_bic.as_ref(),
        args.to_account,
        args.counterparty.as_ref(),
        args.amount.as_ref(),
    ) else {
        bail!("give --from, --to-bic, --to-account, --to and --amount, or --pacs008 FILE");
    };
    client::check_party(mra, counterparty, "--to")?;
    let uetr = match &args.uetr {
        Some(text) => Uetr::parse(text).map_err(|r| {
            anyhow::anyhow!(
                "--uetr {text}: {}; give a UUID like 9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
                r.detail
            )
        })?,
        None => new_uetr()?,
    };
    let debtor = node.account_balance(from).await?;
    let currency = match &args.currency {
        Some(c) => c.clone(),
        None => debtor
            .posted_balance
            .as_ref()
            .map(|a| a.currency.clone())
            .with_context(|| format!("account {from} has no currency; pass --currency"))?,
    };
    Ok(PaymentRequest {
        uetr,
        amount: parse_user_amount(&currency, amount)?,
        counterparty: counterparty.clone(),
        order: Order {
            debtor_account: from,
            debtor_name: debtor.name.clone(),
            creditor_agent_bic: to_bic.clone(),
            creditor_account: to_account,
            creditor_name: args
                .to_name
                .clone()
                .unwrap_or_else(|| format!("account {to_account} at {to_bic}")),
            remittance_information: args.remittance.clone(),
        },
        options: InstructionOptions::default(),
    })
}

/// Reads the pacs.008.001.08 message at `path`: it must hold exactly one transaction, whose
/// debtor agent is `bank`. A refused message is an error listing every refusal by path.
fn read_pacs008(
    path: &Path,
    bank: &Bank,
) -> anyhow::Result<(pacs008::Message, pacs008::Transaction)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let today = time::OffsetDateTime::now_utc().date();
    let mut message = pacs008::parse(&bytes, today).map_err(|refusals| {
        let mut text = format!(
            "{}: {} refusal(s); nothing was sent",
            path.display(),
            refusals.len()
        );
        for r in &refusals {
            let _ = write!(text, "\n  {r}");
        }
        anyhow::anyhow!(text)
    })?;
    if message.transactions.len() != 1 {
        bail!(
            "{}: the message holds {} transactions; `pay` sends one (`kakehashi replay {}` sends \
             them all)",
            path.display(),
            message.transactions.len(),
            path.display()
        );
    }
    let transaction = message.transactions.remove(0);
    if transaction.debtor_agent != bank.bic() {
        bail!(
            "{}: the debtor agent is {}, but --bank signs as {}",
            path.display(),
            transaction.debtor_agent,
            bank.bic()
        );
    }
    Ok((message, transaction))
}

/// The payment a pacs.008 transaction asks for, to the creditor agent's `counterparty`.
fn request_of(t: &pacs008::Transaction, counterparty: String) -> PaymentRequest {
    PaymentRequest {
        uetr: t.uetr,
        amount: t.amount(),
        counterparty,
        order: Order {
            debtor_account: t.debtor_account,
            debtor_name: t.debtor_name.clone(),
            creditor_agent_bic: t.creditor_agent.clone(),
            creditor_account: t.creditor_account,
            creditor_name: t.creditor_name.clone(),
            remittance_information: t.remittance_information.clone(),
        },
        options: InstructionOptions {
            end_to_end_id: Some(t.end_to_end_id.clone()),
            instruction_id: t.instruction_id.clone(),
            charge_bearer: Some(t.charge_bearer),
            fault: None,
        },
    }
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
            check.signer.subject_cn(),
            check.signer.jurisdiction(),
            check.signer.verdict().clause().unwrap_or("the agreement"),
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

/// 0 ACSC, 1 RJCT, 3 PDNG; 2 for a report without a status.
fn exit_for(report: &pb::PaymentStatusReport) -> ExitCode {
    match report.transaction_status() {
        pb::TransactionStatus::Acsc => ExitCode::SUCCESS,
        pb::TransactionStatus::Rjct => ExitCode::from(1),
        pb::TransactionStatus::Pdng => ExitCode::from(EXIT_PENDING),
        pb::TransactionStatus::Unspecified => ExitCode::from(2),
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
    let relying = args.connect.relying(&mra, None)?;
    let mut node = args.connect.connect(&mra, &relying).await?;
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
    if args.pacs002 {
        // The original instruction and message references are the sender's; the node's report
        // carries the end-to-end id and the UETR.
        let status = TransactionStatus::of_report(&report, uetr, None, None, None);
        out = pacs002::write(&pacs002::Report {
            message_id: format!("KKH-STS-{}-{}", now.0, status_id(&status)),
            created: now,
            transactions: vec![status],
        })?;
    } else if args.json {
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

/// What makes a status report's `MsgId` unique among those written in the same second: the
/// UETR's first 8 hex digits.
fn status_id(status: &TransactionStatus) -> String {
    status.uetr.to_string().chars().take(8).collect()
}
