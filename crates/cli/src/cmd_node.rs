//! `kakehashi node run` (one node from its TOML configuration) and `kakehashi devnet` (the JP
//! and SG development nodes in one process, with an optional demo that sends payments both
//! ways as real participants would: over the public gRPC API and TLS, instructions signed
//! with the committed bank keys).
//!
//! The demo's exit code is 0 when every payment ended as expected, every receipt verified
//! under the agreement and the balances moved by exactly the settled amounts; 1 otherwise;
//! 2 when the nodes could not start.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kakehashi_node::config::Config;
use kakehashi_node::node::{Node, RunningNode};
use kakehashi_node::participant::{Participant, PaymentRequest, VerifiedReceipt};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_protocol::bank::{InstructionOptions, Order};
use kakehashi_protocol::money;
use kakehashi_protocol::status::status_name;

use crate::client::{self, NodeClient};
use crate::cmd_pay::{self, Bank, Sent, amount_text, reason_meaning, write_stdout, write_table};

/// Where `devnet` keeps its ledgers unless told otherwise (relative to the current
/// directory).
const DEFAULT_DATA_DIR: &str = "devnet-data";

/// The devnet configurations, relative to the repository root.
const DEVNET_CONFIGS: &str = "crates/node/devnet";

/// With `--base-port N` the SG node listens this far above the JP node, as in the committed
/// configurations (7100.. and 7200..).
const SG_PORT_OFFSET: u16 = 100;

#[derive(clap::Subcommand)]
pub(crate) enum NodeCommand {
    /// Run one node from its configuration until Ctrl-C, then shut down gracefully.
    Run {
        /// The node's TOML configuration, e.g. `crates/node/devnet/jp.toml`.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Arguments of `kakehashi devnet`.
#[derive(clap::Args)]
pub(crate) struct DevnetArgs {
    /// Where the nodes keep their ledgers: DIR/jp and DIR/sg (default: ./devnet-data).
    /// Re-running on the same directory continues from the balances it holds.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Send sample payments both ways (some settle, some are rejected), print the outcomes,
    /// the balances before and after and the verified receipts, then stop the nodes and exit.
    #[arg(long)]
    demo: bool,
    /// Listen on N, N+1, N+2 (JP public, relay, metrics) and N+100, N+101, N+102 (SG)
    /// instead of the configurations' ports (7100.. and 7200..).
    #[arg(long, value_name = "N")]
    base_port: Option<u16>,
    /// The directory holding jp.toml and sg.toml (default: crates/node/devnet of the
    /// checkout, found from the current directory upwards).
    #[arg(long, value_name = "DIR")]
    configs: Option<PathBuf>,
}

impl DevnetArgs {
    /// The default log filter: node logs while running, quiet while the demo prints.
    pub(crate) fn default_log(&self) -> &'static str {
        if self.demo { "warn" } else { "info" }
    }
}

pub(crate) fn run_node(cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCommand::Run { config } => client::runtime()?.block_on(node_run(&config)),
    }
}

pub(crate) fn run_devnet(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(devnet(args))
}

// ---------------------------------------------------------------------------------------------
// kakehashi node run

async fn node_run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = load_config(path)?;
    let data_dir = config.data_dir.clone();
    let node = Node::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("the node of {} did not start: {e}", path.display()))?;
    let mut out = String::new();
    write_addresses(&mut out, &node);
    let _ = writeln!(out, "  ledger   {}", data_dir.display());
    let _ = writeln!(out, "Press Ctrl-C to stop.");
    write_stdout(&out)?;
    let jurisdiction = node.jurisdiction.clone();
    node.wait()
        .await
        .map_err(|e| anyhow::anyhow!("the {jurisdiction} node stopped with an error: {e}"))?;
    write_stdout(&format!("{jurisdiction} node stopped.\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a node configuration, with an error that points at the complete example.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot use the node configuration {}: {e} (crates/node/devnet/jp.toml is a \
             complete example)",
            path.display()
        )
    })
}

fn write_addresses(out: &mut String, node: &RunningNode) {
    let _ = writeln!(out, "{} node running", node.jurisdiction);
    let _ = writeln!(
        out,
        "  public   https://{}  (Payments, health, reflection; TLS)",
        node.public_addr
    );
    let _ = writeln!(
        out,
        "  relay    https://{}  (Relay; mutual TLS between nodes)",
        node.relay_addr
    );
    if let Some(metrics) = node.metrics_addr {
        let _ = writeln!(out, "  metrics  http://{metrics}/metrics");
    }
}

// ---------------------------------------------------------------------------------------------
// kakehashi devnet

async fn devnet(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let configs = find_configs(args.configs.as_deref(), "--configs DIR")?;
    let data_dir = std::path::absolute(
        args.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    )
    .context("cannot resolve --data-dir")?;
    let mut jp = load_config(&configs.join("jp.toml"))?.with_data_dir(data_dir.join("jp"));
    let mut sg = load_config(&configs.join("sg.toml"))?.with_data_dir(data_dir.join("sg"));
    if let Some(base) = args.base_port {
        let port = |offset: u16| {
            base.checked_add(offset).with_context(|| {
                format!("--base-port {base}: the SG node's ports would pass 65535; use a lower N")
            })
        };
        jp = jp
            .with_ports(base, port(1)?, port(2)?)
            .with_peer_relay(
                "SG",
                &format!("https://127.0.0.1:{}", port(SG_PORT_OFFSET + 1)?),
            )
            .map_err(|e| anyhow::anyhow!("--base-port {base}: {e}"))?;
        sg = sg
            .with_ports(
                port(SG_PORT_OFFSET)?,
                port(SG_PORT_OFFSET + 1)?,
                port(SG_PORT_OFFSET + 2)?,
            )
            .with_peer_relay("JP", &format!("https://127.0.0.1:{}", port(1)?))
            .map_err(|e| anyhow::anyhow!("--base-port {base}: {e}"))?;
    }
    let certs = jp
        .mra
        .parent()
        .map(Path::to_path_buf)
        .context("the JP configuration's agreement path has no directory")?;
    let mra_path = jp.mra.clone();

    let start_hint = |e: &dyn std::fmt::Display, which: &str| {
        let text = e.to_string();
        let hint = if text.contains("already in use") {
            " (stop the other devnet or node, or pass --base-port N to use other ports)"
        } else if text.contains("lock") {
            " (another devnet is using this --data-dir: stop it, or pass another --data-dir)"
        } else {
            ""
        };
        anyhow::anyhow!("the {which} node did not start: {text}{hint}")
    };
    let jp_node = Node::start(jp).await.map_err(|e| start_hint(&e, "JP"))?;
    let sg_node = match Node::start(sg).await {
        Ok(node) => node,
        Err(e) => {
            let _ = jp_node.shutdown().await;
            return Err(start_hint(&e, "SG"));
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kakehashi devnet: a JP node (JPY ledger) and an SG node (SGD ledger) relaying to each \
         other over mutual TLS"
    );
    let _ = writeln!(out, "  configurations  {}", display_path(&configs));
    let _ = writeln!(
        out,
        "  ledgers         {} (jp/, sg/; delete it to start over)",
        data_dir.display()
    );
    let _ = writeln!(out);
    write_addresses(&mut out, &jp_node);
    write_addresses(&mut out, &sg_node);
    let _ = writeln!(out);
    write_stdout(&out)?;

    let outcome = if args.demo {
        let demo = Demo {
            mra_path,
            certs,
            receipts: data_dir.join("receipts"),
            jp_url: format!("https://{}", jp_node.public_addr),
            sg_url: format!("https://{}", sg_node.public_addr),
        };
        demo.run().await
    } else {
        write_stdout(&try_these(&jp_node, &sg_node))?;
        interrupted().await?;
        write_stdout("\nStopping both nodes...\n")?;
        Ok(ExitCode::SUCCESS)
    };
    let jp_stop = jp_node.shutdown().await;
    let sg_stop = sg_node.shutdown().await;
    jp_stop.map_err(|e| anyhow::anyhow!("the JP node did not shut down cleanly: {e}"))?;
    sg_stop.map_err(|e| anyhow::anyhow!("the SG node did not shut down cleanly: {e}"))?;
    if !args.demo {
        write_stdout("Both nodes stopped; their ledgers are kept for the next run.\n")?;
    }
    outcome
}

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM (what `kill` and service managers send).
async fn interrupted() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}

/// Commands a newcomer can paste while the devnet runs (from the repository root).
fn try_these(jp: &RunningNode, sg: &RunningNode) -> String {
    let jp_url = format!("https://{}", jp.public_addr);
    let sg_url = format!("https://{}", sg.public_addr);
    let mut out = String::from("Try, from the repository root, in another terminal:\n");
    let _ = writeln!(out, "  kakehashi balance --node {jp_url}");
    let _ = writeln!(
        out,
        "  kakehashi quote --node {jp_url} --to SG --amount 10000"
    );
    let _ = writeln!(
        out,
        "  kakehashi pay --node {jp_url} --bank certs/jp/banks/KKHAJPJ0.pem \\\n      \
         --key certs/jp/banks/KKHAJPJ0.key.pem --from 1001 --to SG --to-bic KKHASGS0 \\\n      \
         --to-account 2001 --amount 10000 --receipt-out receipt.json"
    );
    let _ = writeln!(out, "  kakehashi receipt verify receipt.json --relying JP");
    let _ = writeln!(out, "  kakehashi balance --node {sg_url} 2001");
    let _ = writeln!(out, "Press Ctrl-C to stop both nodes.");
    out
}

/// The directory of jp.toml and sg.toml: `--configs`, else `crates/node/devnet` in the current
/// directory or one above it, else the checkout this binary was built from.
/// The directory of the devnet's jp.toml and sg.toml: `given`, else `crates/node/devnet` in
/// the current directory or one above it, else in the checkout this binary was built from.
/// `instead` says what the user can pass when none is found (e.g. "--configs DIR").
pub(crate) fn find_configs(given: Option<&Path>, instead: &str) -> anyhow::Result<PathBuf> {
    let has_both = |dir: &Path| dir.join("jp.toml").is_file() && dir.join("sg.toml").is_file();
    if let Some(dir) = given {
        if !has_both(dir) {
            bail!("{}: needs jp.toml and sg.toml", dir.display());
        }
        return Ok(dir.to_owned());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/devnet");
    cwd.ancestors()
        .map(|dir| dir.join(DEVNET_CONFIGS))
        .chain(std::iter::once(built))
        .find(|dir| has_both(dir))
        .with_context(|| {
            format!(
                "cannot find the devnet configurations ({DEVNET_CONFIGS}/jp.toml and sg.toml); \
                 run from the kakehashi checkout or pass {instead}"
            )
        })
}

fn display_path(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The demo

/// What the demo needs to act as the banks of both jurisdictions.
struct Demo {
    mra_path: PathBuf,
    certs: PathBuf,
    receipts: PathBuf,
    jp_url: String,
    sg_url: String,
}

/// How much a scenario pays.
#[derive(Clone, Copy)]
enum Amount {
    /// This many major units of the sending node's currency.
    Fixed(&'static str),
    /// One minor unit more than the debtor's available balance (to show AM04 whatever the
    /// balances are after earlier runs).
    AboveAvailable,
}

/// One payment the demo sends, and what should happen to it.
struct Scenario {
    /// The sending (debtor's) jurisdiction; the creditor is in the other one.
    from: &'static str,
    bank: &'static str,
    debtor: u128,
    creditor_bic: &'static str,
    creditor: u128,
    creditor_name: &'static str,
    amount: Amount,
    remittance: &'static str,
    /// `None` for a payment that settles, else the reason code it must be rejected with.
    expect: Option<&'static str>,
    /// What the scenario shows, for the table.
    note: &'static str,
}

/// The demo's payments: three JP→SG and two SG→JP that settle, then four that must be
/// rejected for four different reasons, each decided by a real check on a real input.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1001,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Tan Wei Ming",
        amount: Amount::Fixed("25000"),
        remittance: "Birthday gift",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHBJPJ0",
        debtor: 1101,
        creditor_bic: "KKHBSGS0",
        creditor: 2101,
        creditor_name: "Nur Aisyah",
        amount: Amount::Fixed("120000"),
        remittance: "Rent March",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1002,
        creditor_bic: "KKHASGS0",
        creditor: 2002,
        creditor_name: "Lim Logistics Pte Ltd",
        amount: Amount::Fixed("1500000"),
        remittance: "Invoice 2026-118",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "SG",
        bank: "KKHASGS0",
        debtor: 2001,
        creditor_bic: "KKHAJPJ0",
        creditor: 1001,
        creditor_name: "Aoki Kenji",
        amount: Amount::Fixed("150.00"),
        remittance: "Thank you",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "SG",
        bank: "KKHBSGS0",
        debtor: 2102,
        creditor_bic: "KKHBJPJ0",
        creditor: 1102,
        creditor_name: "Tanaka Hiroshi",
        amount: Amount::Fixed("80.50"),
        remittance: "Books",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHBJPJ0",
        debtor: 1102,
        creditor_bic: "KKHBSGS0",
        creditor: 2102,
        creditor_name: "Raj Kumar",
        amount: Amount::AboveAvailable,
        remittance: "More than he has",
        expect: Some("AM04"),
        note: "one yen more than the debtor has",
    },
    Scenario {
        from: "JP",
        bank: "KKHCJPJ0",
        debtor: 1101,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Tan Wei Ming",
        amount: Amount::Fixed("10000"),
        remittance: "Signed with a revoked key",
        expect: Some("DS0B"),
        note: "signed by a bank whose certificate is revoked",
    },
    Scenario {
        from: "SG",
        bank: "KKHASGS0",
        debtor: 2001,
        creditor_bic: "KKHAJPJ0",
        creditor: 1999,
        creditor_name: "Nobody",
        amount: Amount::Fixed("10.00"),
        remittance: "Wrong account number",
        expect: Some("AC01"),
        note: "to an account the JP ledger does not have",
    },
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1001,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Sanctioned Trading Co",
        amount: Amount::Fixed("5000"),
        remittance: "Screened",
        expect: Some("RR04"),
        note: "to a name on the sanctions list",
    },
];

/// One scenario's result.
struct Row<'a> {
    scenario: &'a Scenario,
    debtor_name: String,
    sent: Sent,
    /// The receipt of a settled payment, verified and written to a file, or why not.
    receipt: Option<Result<ReceiptRow, String>>,
}

struct ReceiptRow {
    signer: String,
    jurisdiction: String,
    clause: String,
    file: PathBuf,
}

impl Demo {
    async fn run(&self) -> anyhow::Result<ExitCode> {
        let mra = Arc::new(client::load_mra(&self.mra_path)?);
        let mut jp = client::connect(&self.jp_url, Arc::clone(&mra), "JP", None, None).await?;
        let mut sg = client::connect(&self.sg_url, Arc::clone(&mra), "SG", None, None).await?;
        std::fs::create_dir_all(&self.receipts)
            .with_context(|| format!("cannot create {}", self.receipts.display()))?;

        let before_jp = cmd_pay::balances(&mut jp, &[]).await?;
        let before_sg = cmd_pay::balances(&mut sg, &[]).await?;

        let mut rows = Vec::with_capacity(SCENARIOS.len());
        for scenario in SCENARIOS {
            let node = if scenario.from == "JP" {
                &mut jp
            } else {
                &mut sg
            };
            rows.push(self.send(&mra, node, scenario).await?);
        }

        let after_jp = cmd_pay::balances(&mut jp, &[]).await?;
        let after_sg = cmd_pay::balances(&mut sg, &[]).await?;

        let mut out = String::new();
        let mismatches = write_outcomes(&mut out, &rows);
        let _ = writeln!(out);
        let unreconciled = write_balances(&mut out, &rows, &before_jp, &after_jp, "JP")
            + write_balances(&mut out, &rows, &before_sg, &after_sg, "SG");
        let bad_receipts = write_receipts(&mut out, &rows);
        write_summary(&mut out, &rows, mismatches, unreconciled, bad_receipts);
        write_stdout(&out)?;
        Ok(if mismatches + unreconciled + bad_receipts == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// Sends one scenario's payment as its bank would and checks the receipt if it settled.
    async fn send<'a>(
        &self,
        mra: &Mra,
        node: &mut NodeClient,
        scenario: &'a Scenario,
    ) -> anyhow::Result<Row<'a>> {
        let dir = scenario.from.to_ascii_lowercase();
        let banks = self.certs.join(&dir).join("banks");
        let bank = Bank::load(
            &banks.join(format!("{}.pem", scenario.bank)),
            &banks.join(format!("{}.key.pem", scenario.bank)),
        )?;
        // Read now, not from the snapshot before the first payment: earlier scenarios may
        // have credited this account.
        let current = cmd_pay::balances(node, &[scenario.debtor]).await?;
        let debtor = current
            .iter()
            .find(|b| b.account == scenario.debtor.to_string())
            .with_context(|| {
                format!(
                    "the {} node has no account {}; did the devnet configuration change?",
                    scenario.from, scenario.debtor
                )
            })?;
        let amount = match scenario.amount {
            Amount::Fixed(value) => pb::ActiveCurrencyAndAmount {
                currency: debtor
                    .posted_balance
                    .as_ref()
                    .map(|a| a.currency.clone())
                    .unwrap_or_default(),
                value: value.to_owned(),
            },
            Amount::AboveAvailable => above(debtor.available_balance.as_ref())?,
        };
        let request = PaymentRequest {
            uetr: cmd_pay::new_uetr()?,
            amount,
            counterparty: other(scenario.from).to_owned(),
            order: Order {
                debtor_account: scenario.debtor,
                debtor_name: debtor.name.clone(),
                creditor_agent_bic: scenario.creditor_bic.to_owned(),
                creditor_account: scenario.creditor,
                creditor_name: scenario.creditor_name.to_owned(),
                remittance_information: scenario.remittance.to_owned(),
            },
            options: InstructionOptions::default(),
        };
        let participant = Participant::new(mra, scenario.from);
        let now = client::now()?;
        let sent = cmd_pay::send_payment(node, &participant, &bank, &request, now).await?;
        let receipt = match &sent.receipt {
            Ok(None) => None,
            Ok(Some(verified)) => Some(self.keep_receipt(&sent.report, verified)),
            Err(e) => Some(Err(e.to_string())),
        };
        Ok(Row {
            scenario,
            debtor_name: debtor.name.clone(),
            sent,
            receipt,
        })
    }
}

impl Demo {
    /// Writes a verified receipt to the receipts directory, for `kakehashi receipt verify`.
    fn keep_receipt(
        &self,
        report: &pb::PaymentStatusReport,
        verified: &VerifiedReceipt,
    ) -> Result<ReceiptRow, String> {
        let signed = report.receipt.as_ref().ok_or("no receipt to write")?;
        let file = self
            .receipts
            .join(format!("{}.json", verified.receipt.uetr));
        cmd_pay::write_receipt_file(&file, signed).map_err(|e| format!("{e:#}"))?;
        let signer = &verified.signer;
        Ok(ReceiptRow {
            signer: signer.subject_cn.clone(),
            jurisdiction: signer.jurisdiction.clone(),
            clause: signer.verdict.clause.clone().unwrap_or_default(),
            file,
        })
    }
}

fn other(jurisdiction: &str) -> &'static str {
    if jurisdiction == "JP" { "SG" } else { "JP" }
}

/// One minor unit more than `available`.
fn above(
    available: Option<&pb::ActiveCurrencyAndAmount>,
) -> anyhow::Result<pb::ActiveCurrencyAndAmount> {
    let available = available.context("the node reported no available balance")?;
    let (currency, minor) = money::parse_amount(available)
        .map_err(|r| anyhow::anyhow!("the node reported a bad balance: {r}"))?;
    let more = minor
        .checked_add(1)
        .context("balance at the limit of u128")?;
    Ok(money::format_amount(currency, more))
}

/// The first eight hex digits of a UETR, enough to tell the demo's payments apart.
fn short(uetr: &str) -> String {
    uetr.chars().take(8).collect()
}

/// Whether a row ended as its scenario expected.
fn as_expected(row: &Row<'_>) -> bool {
    let status = status_name(row.sent.report.transaction_status());
    match row.scenario.expect {
        None => status == "ACSC" && matches!(row.receipt, Some(Ok(_))),
        Some(code) => status == "RJCT" && row.sent.report.status_reason_code == code,
    }
}

/// The payments table; returns how many outcomes differed from expectations.
fn write_outcomes(out: &mut String, rows: &[Row<'_>]) -> usize {
    let _ = writeln!(
        out,
        "Payments (sent as the banks would: quote, sign, submit over TLS)"
    );
    let header = [
        "#",
        "uetr",
        "route",
        "debtor",
        "creditor",
        "sent",
        "credited",
        "outcome",
        "expected?",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let report = &row.sent.report;
            let status = status_name(report.transaction_status());
            let outcome = match status {
                "RJCT" => format!("RJCT {}", report.status_reason_code),
                "ACSC" => "ACSC settled".to_owned(),
                other => other.to_owned(),
            };
            let mark = if as_expected(row) {
                "✓".to_owned()
            } else {
                match row.scenario.expect {
                    None => "✗ expected ACSC".to_owned(),
                    Some(code) => format!("✗ expected RJCT {code}"),
                }
            };
            [
                (i + 1).to_string(),
                short(&report.uetr),
                format!("{}→{}", row.scenario.from, other(row.scenario.from)),
                format!(
                    "{} {} {}",
                    row.scenario.bank, row.scenario.debtor, row.debtor_name
                ),
                format!(
                    "{} {} {}",
                    row.scenario.creditor_bic, row.scenario.creditor, row.scenario.creditor_name
                ),
                amount_text(report.interbank_settlement_amount.as_ref()),
                amount_text(report.credited_amount.as_ref()),
                outcome,
                mark,
            ]
        })
        .collect();
    write_table(
        out,
        &header,
        &cells,
        &[true, false, false, false, false, true, true, false, false],
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Why the rejected ones were rejected (nothing moved for them):"
    );
    for (i, row) in rows.iter().enumerate() {
        let report = &row.sent.report;
        if status_name(report.transaction_status()) != "RJCT" {
            continue;
        }
        let by = if report.decided_by.is_empty() {
            format!("{} (at {})", row.scenario.from, row.sent.stage)
        } else {
            report.decided_by.clone()
        };
        let _ = writeln!(
            out,
            "  #{} {} ({}): {}",
            i + 1,
            report.status_reason_code,
            reason_meaning(&report.status_reason_code),
            row.scenario.note
        );
        let _ = writeln!(
            out,
            "       decided by {by}: {}",
            report.status_reason_detail
        );
    }
    rows.iter().filter(|r| !as_expected(r)).count()
}

/// Customer balances before and after on one ledger, and whether each moved by exactly what
/// the settled payments say; returns how many accounts did not.
fn write_balances(
    out: &mut String,
    rows: &[Row<'_>],
    before: &[pb::AccountBalance],
    after: &[pb::AccountBalance],
    jurisdiction: &str,
) -> usize {
    // The change each settled payment should have made, in minor units, by account.
    let mut expected: BTreeMap<String, i128> = BTreeMap::new();
    for row in rows {
        if status_name(row.sent.report.transaction_status()) != "ACSC" {
            continue;
        }
        let report = &row.sent.report;
        if row.scenario.from == jurisdiction {
            *expected.entry(row.scenario.debtor.to_string()).or_default() -=
                minor(report.interbank_settlement_amount.as_ref());
        } else {
            *expected
                .entry(row.scenario.creditor.to_string())
                .or_default() += minor(report.credited_amount.as_ref());
        }
    }
    let mut unreconciled = 0;
    let cells: Vec<[String; 7]> = before
        .iter()
        .filter(|b| b.kind == "customer")
        .map(|b| {
            let now = after.iter().find(|a| a.account == b.account);
            let was = minor(b.posted_balance.as_ref());
            let is = now.map_or(was, |a| minor(a.posted_balance.as_ref()));
            let change = is - was;
            let want = expected.get(&b.account).copied().unwrap_or(0);
            let mark = if change == want {
                "✓".to_owned()
            } else {
                unreconciled += 1;
                format!(
                    "✗ expected {}",
                    signed_text(b.posted_balance.as_ref(), want)
                )
            };
            [
                b.account.clone(),
                b.owner_bic.clone(),
                b.name.clone(),
                amount_text(b.posted_balance.as_ref()),
                now.map_or_else(
                    || "-".to_owned(),
                    |a| amount_text(a.posted_balance.as_ref()),
                ),
                signed_text(b.posted_balance.as_ref(), change),
                mark,
            ]
        })
        .collect();
    let _ = writeln!(
        out,
        "{jurisdiction} ledger, customer accounts (posted balances)"
    );
    write_table(
        out,
        &[
            "account",
            "bank",
            "name",
            "before",
            "after",
            "change",
            "reconciled?",
        ],
        &cells,
        &[false, false, false, true, true, true, false],
    );
    let _ = writeln!(out);
    unreconciled
}

/// Minor units of an amount the node reported (0 when absent or unreadable; the reconciliation
/// then flags the account).
fn minor(amount: Option<&pb::ActiveCurrencyAndAmount>) -> i128 {
    amount
        .and_then(|a| money::parse_amount(a).ok())
        .and_then(|(_, m)| i128::try_from(m).ok())
        .unwrap_or(0)
}

/// A signed change in the currency of `like`, e.g. `+217.02 SGD`, `-25000 JPY`, `0`.
fn signed_text(like: Option<&pb::ActiveCurrencyAndAmount>, change: i128) -> String {
    if change == 0 {
        return "0".to_owned();
    }
    let Some(currency) = like.map(|a| a.currency.as_str()).and_then(money::currency) else {
        return change.to_string();
    };
    let sign = if change < 0 { "-" } else { "+" };
    let amount = money::format_amount(currency, change.unsigned_abs());
    format!("{sign}{} {}", amount.value, amount.currency)
}

/// The receipts of the settled payments, verified offline; returns how many failed.
fn write_receipts(out: &mut String, rows: &[Row<'_>]) -> usize {
    let _ = writeln!(
        out,
        "Receipts (signed by the crediting node, verified offline under the MRA by the \
         debtor's jurisdiction)"
    );
    let mut failed = 0;
    for (i, row) in rows.iter().enumerate() {
        match &row.receipt {
            None => {}
            Some(Ok(r)) => {
                let _ = writeln!(
                    out,
                    "  #{} {}  ✓ signed by {} ({}), recognized by {} under {}",
                    i + 1,
                    short(&row.sent.report.uetr),
                    r.signer,
                    r.jurisdiction,
                    row.scenario.from,
                    r.clause
                );
                let _ = writeln!(out, "     {}", r.file.display());
            }
            Some(Err(why)) => {
                failed += 1;
                let _ = writeln!(
                    out,
                    "  #{} {}  ✗ does not verify: {why}",
                    i + 1,
                    short(&row.sent.report.uetr)
                );
            }
        }
    }
    let first = rows.iter().find_map(|r| match &r.receipt {
        Some(Ok(receipt)) => Some((r.scenario.from, &receipt.file)),
        _ => None,
    });
    if let Some((relying, file)) = first {
        let _ = writeln!(
            out,
            "  Check one yourself: kakehashi receipt verify {} --mra certs/mra.toml --relying \
             {relying}",
            file.display()
        );
    }
    let _ = writeln!(out);
    failed
}

fn write_summary(
    out: &mut String,
    rows: &[Row<'_>],
    mismatches: usize,
    unreconciled: usize,
    bad_receipts: usize,
) {
    let settled = |from: &str| {
        rows.iter()
            .filter(|r| {
                r.scenario.from == from && status_name(r.sent.report.transaction_status()) == "ACSC"
            })
            .count()
    };
    let rejected = rows
        .iter()
        .filter(|r| status_name(r.sent.report.transaction_status()) == "RJCT")
        .count();
    let receipts = rows
        .iter()
        .filter(|r| matches!(r.receipt, Some(Ok(_))))
        .count();
    if mismatches + unreconciled + bad_receipts == 0 {
        let _ = writeln!(
            out,
            "All as expected: {} payments settled ({} JP→SG, {} SG→JP) with their {receipts} \
             receipts verified, {rejected} were rejected with nothing moved, and every balance \
             changed by exactly the settled amounts.",
            settled("JP") + settled("SG"),
            settled("JP"),
            settled("SG"),
        );
    } else {
        let _ = writeln!(
            out,
            "NOT as expected: {mismatches} payment outcome(s) differed, {unreconciled} \
             balance(s) did not reconcile and {bad_receipts} receipt(s) did not verify (marked \
             ✗ above)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(currency: &str, value: &str) -> pb::ActiveCurrencyAndAmount {
        pb::ActiveCurrencyAndAmount {
            currency: currency.into(),
            value: value.into(),
        }
    }

    fn row<'a>(
        scenario: &'a Scenario,
        status: pb::TransactionStatus,
        code: &str,
        receipt: bool,
    ) -> Row<'a> {
        let report = pb::PaymentStatusReport {
            uetr: "0b6c1c52-6a0e-4c39-9a3e-2f7e1c0d9b11".into(),
            transaction_status: status.into(),
            status_reason_code: code.into(),
            interbank_settlement_amount: Some(amount("JPY", "25000")),
            credited_amount: (status == pb::TransactionStatus::Acsc)
                .then(|| amount("SGD", "216.95")),
            ..pb::PaymentStatusReport::default()
        };
        Row {
            scenario,
            debtor_name: "Aoki Kenji".into(),
            sent: Sent {
                quote: None,
                report,
                stage: "submit",
                receipt: Ok(None),
            },
            receipt: receipt.then(|| {
                Ok(ReceiptRow {
                    signer: "SG receipts".into(),
                    jurisdiction: "SG".into(),
                    clause: "MRA §recognition.JP-recognizes-SG".into(),
                    file: PathBuf::from("r.json"),
                })
            }),
        }
    }

    #[test]
    fn an_outcome_is_as_expected_only_with_the_expected_status_code_and_receipt() {
        let settles = &SCENARIOS[0];
        let am04 = SCENARIOS.iter().find(|s| s.expect == Some("AM04")).unwrap();
        use pb::TransactionStatus::{Acsc, Pdng, Rjct};
        assert!(as_expected(&row(settles, Acsc, "", true)));
        assert!(!as_expected(&row(settles, Acsc, "", false)), "no receipt");
        assert!(!as_expected(&row(settles, Pdng, "", false)));
        assert!(!as_expected(&row(settles, Rjct, "AM04", false)));
        assert!(as_expected(&row(am04, Rjct, "AM04", false)));
        assert!(!as_expected(&row(am04, Rjct, "AC01", false)), "wrong code");
        assert!(!as_expected(&row(am04, Acsc, "", true)), "settled");
    }

    #[test]
    fn balances_reconcile_only_when_they_moved_by_the_settled_amounts() {
        let scenario = &SCENARIOS[0];
        assert_eq!((scenario.from, scenario.debtor), ("JP", 1001));
        let rows = [row(scenario, pb::TransactionStatus::Acsc, "", true)];
        let balance = |account: &str, value: &str| pb::AccountBalance {
            account: account.into(),
            kind: "customer".into(),
            posted_balance: Some(amount("JPY", value)),
            ..pb::AccountBalance::default()
        };
        let before = [balance("1001", "100000"), balance("1002", "5000")];
        let mut out = String::new();
        let good = [balance("1001", "75000"), balance("1002", "5000")];
        assert_eq!(
            write_balances(&mut out, &rows, &before, &good, "JP"),
            0,
            "{out}"
        );
        let debited_twice = [balance("1001", "50000"), balance("1002", "5000")];
        assert_eq!(
            write_balances(&mut out, &rows, &before, &debited_twice, "JP"),
            1
        );
        let stray = [balance("1001", "75000"), balance("1002", "4999")];
        assert_eq!(write_balances(&mut out, &rows, &before, &stray, "JP"), 1);
        assert!(out.contains("✗ expected -25000 JPY"), "{out}");
    }

    #[test]
    fn scenarios_cover_both_directions_and_four_rejection_reasons() {
        let settles = |from: &str| {
            SCENARIOS
                .iter()
                .filter(|s| s.from == from && s.expect.is_none())
                .count()
        };
        assert!(settles("JP") >= 3);
        assert!(settles("SG") >= 2);
        let mut codes: Vec<&str> = SCENARIOS.iter().filter_map(|s| s.expect).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, ["AC01", "AM04", "DS0B", "RR04"]);
    }

    #[test]
    fn signed_change_uses_the_currency_minor_unit() {
        let sgd = pb::ActiveCurrencyAndAmount {
            currency: "SGD".into(),
            value: "1.00".into(),
        };
        assert_eq!(signed_text(Some(&sgd), 21702), "+217.02 SGD");
        assert_eq!(signed_text(Some(&sgd), -5), "-0.05 SGD");
        assert_eq!(signed_text(Some(&sgd), 0), "0");
    }

    #[test]
    fn above_available_is_one_minor_unit_more() {
        let jpy = pb::ActiveCurrencyAndAmount {
            currency: "JPY".into(),
            value: "500000".into(),
        };
        assert_eq!(above(Some(&jpy)).unwrap().value, "500001");
        let sgd = pb::ActiveCurrencyAndAmount {
            currency: "SGD".into(),
            value: "12.30".into(),
        };
        assert_eq!(above(Some(&sgd)).unwrap().value, "12.31");
    }
}
