//! `kakehashi balance` (a bank's accounts, as the node shows them to the bank whose identity
//! `--identity` presents; every account to the operator) and the operator's
//! `kakehashi account open|fund|close|reopen`, which need the operator's client certificate.
//!
//! Exit codes: 0 done, 1 refused by the node (with a reason code, or a close while payments
//! from the account are in flight), 2 usage or connection error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use kakehashi_node::participant;
use kakehashi_proto::pb;
use serde::Serialize;

use crate::client::{self, ConnectArgs, NodeClient, parse_user_amount};
use crate::output::{amount_text, time_text, write_stdout, write_table};

/// Arguments of `kakehashi balance`.
#[derive(clap::Args)]
pub(crate) struct BalanceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Account ids (default: every account the identity may see).
    accounts: Vec<u128>,
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
    /// Close a customer account in the ledger; payments to or from it are then rejected with
    /// AC04. Its balance stays in it unless --sweep-to says where to move it.
    Close {
        #[command(flatten)]
        operator: OperatorArgs,
        /// The account to close.
        account: u128,
        /// Move the account's whole balance to this account (an open customer account, or the
        /// node's funding account to pay it out) in the same ledger chain as the close.
        #[arg(long, value_name = "ACCOUNT")]
        sweep_to: Option<u128>,
    },
    /// Reopen a closed customer account; payments to and from it settle again.
    Reopen {
        #[command(flatten)]
        operator: OperatorArgs,
        /// The account to reopen.
        account: u128,
    },
}

/// The operator's connection: the node and a client certificate it lists as an operator.
#[derive(clap::Args)]
pub(crate) struct OperatorArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The operator's TLS client certificate chain (PEM) (default: `<agreement
    /// dir>/<jurisdiction>/operator.pem`, e.g. `certs/jp/operator.pem`).
    #[arg(long, value_name = "FILE")]
    operator_cert: Option<PathBuf>,
    /// The operator's private key (PEM) (default: the certificate's `.key.pem` beside it).
    #[arg(long, value_name = "FILE")]
    operator_key: Option<PathBuf>,
}

impl OperatorArgs {
    /// The operator's chain and key: the options, else the committed layout's
    /// `<agreement dir>/<relying>/operator.pem` and the `.key.pem` beside the chain.
    fn files(&self, relying: &str) -> (PathBuf, PathBuf) {
        let cert = self.operator_cert.clone().unwrap_or_else(|| {
            self.connect
                .mra
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(relying.to_ascii_lowercase())
                .join("operator.pem")
        });
        let key = self.operator_key.clone().unwrap_or_else(|| {
            let stem = cert
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
                .unwrap_or("operator");
            cert.with_file_name(format!("{stem}.key.pem"))
        });
        (cert, key)
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi balance

pub(crate) fn run_balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(balance(args))
}

async fn balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    let mra = Arc::new(client::load_mra(&args.connect.mra)?);
    let relying = args.connect.relying(&mra, None)?;
    let mut node = args.connect.connect(&mra, &relying).await?;
    let balances = node.balances(&args.accounts).await?;
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

/// The balances as a table, amounts right-aligned.
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
// kakehashi account open|fund|close

pub(crate) fn run_account(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(account(cmd))
}

async fn account(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    let operator = match &cmd {
        AccountCommand::Open { operator, .. }
        | AccountCommand::Fund { operator, .. }
        | AccountCommand::Close { operator, .. }
        | AccountCommand::Reopen { operator, .. } => operator,
    };
    let mra = Arc::new(client::load_mra(&operator.connect.mra)?);
    let relying = operator.connect.relying(&mra, None)?;
    let (cert, key) = operator.files(&relying);
    let identity = client::read_identity(&cert, &key)?;
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
                None => node
                    .account_balance(*account)
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
        AccountCommand::Close {
            account, sweep_to, ..
        } => {
            let request = pb::CloseAccountRequest {
                account: account.to_string(),
                sweep_to: sweep_to.map(|to| to.to_string()).unwrap_or_default(),
            };
            ("close", node.payments.close_account(request).await)
        }
        AccountCommand::Reopen { account, .. } => {
            let request = pb::ReopenAccountRequest {
                account: account.to_string(),
            };
            ("reopen", node.payments.reopen_account(request).await)
        }
    };
    let balance = match answer {
        Ok(balance) => balance.into_inner(),
        Err(status) if participant::reason_code(&status).is_some() => {
            // The message starts with the reason code, e.g. "DUPL: account 1201: exists".
            eprintln!("refused by the node: {}", status.message());
            return Ok(ExitCode::from(1));
        }
        // A close while payments from the account are in flight: no reason code fits.
        Err(status) if what == "close" && status.code() == tonic::Code::FailedPrecondition => {
            eprintln!("refused by the node: {}", status.message());
            return Ok(ExitCode::from(1));
        }
        Err(status) => return Err(operator_call_error(&node, &cert, what, &status)),
    };
    let done = match what {
        "open" => "opened",
        "fund" => "funded",
        "reopen" => "reopened",
        _ => "closed",
    };
    let mut out = format!("{done} account {}\n", balance.account);
    if let AccountCommand::Close { sweep_to, .. } = &cmd {
        match sweep_to {
            Some(to) => out.push_str(&format!("its balance was swept to account {to}\n")),
            None => {
                out.push_str("its balance, if any, stays in the closed account (posted, below)\n")
            }
        }
    }
    write_balance_table(&mut out, std::slice::from_ref(&balance));
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// An operator call that failed without a reason code, with what to do.
fn operator_call_error(
    node: &NodeClient,
    operator: &Path,
    what: &str,
    status: &tonic::Status,
) -> anyhow::Error {
    if status.message().contains("transport error") {
        return anyhow::anyhow!(
            "the node at {} closed the connection: it probably refused the client certificate \
             {} (operators present a TLS certificate with clientAuth that the node lists in \
             [admin] operator_certs, e.g. certs/jp/operator.pem for the JP devnet node)",
            node.url,
            operator.display()
        );
    }
    client::call_error(&node.url, &format!("{what} account"), status)
}
