//! `kakehashi`: the one binary. It parses arguments, formats output and maps outcomes to exit
//! codes; the domain logic lives in the library crates (`kakehashi-pki`, `kakehashi-ledger`,
//! `kakehashi-protocol`, `kakehashi-node` with its participant flow, `kakehashi-ops`).
//!
//! Exit codes, as ripgrep's: 0 success (recognized, audit clean), 1 a negative verdict (not
//! recognized, audit found discrepancies, conformance regressions), 2 usage or input error. A
//! broken pipe (for example `| head`) exits 0. `pay`, `status` and `replay` exit 3 for a
//! payment still pending (PDNG).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: the ledger's writer allocates a group's state on one
/// thread and frees it on another, and callers allocate requests on many, a pattern glibc
/// serves slowly (see ARCHITECTURE.md, "Allocation").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
mod cmd_account;
mod cmd_bench;
mod cmd_cert;
mod cmd_conformance;
mod cmd_ledger;
mod cmd_node;
mod cmd_pay;
mod cmd_pki;
mod cmd_receipt;
mod cmd_replay;
mod cmd_sim;
mod configs;
mod output;
mod payer;
mod progress;
mod report;

#[derive(Parser)]
#[command(
    name = "kakehashi",
    version,
    about = "Japan–Singapore payments and certificate mutual recognition"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for diagnostics on stderr (tracing `EnvFilter` syntax), e.g. `info`
    /// (default: `info` for `node run` and `devnet` without `--demo`, else `warn`).
    #[arg(long, global = true, env = "KAKEHASHI_LOG")]
    log: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Operator: open, fund, close or reopen accounts on a node (needs an operator
    /// certificate).
    #[command(subcommand)]
    Account(cmd_account::AccountCommand),
    /// Show account balances on a node.
    Balance(cmd_account::BalanceArgs),
    /// Benchmark the relay: JP→SG payments through two in-process nodes; payments/s,
    /// latency percentiles and an exact balance check (exit 1 if not exact).
    Bench(cmd_bench::BenchArgs),
    /// Inspect and verify certificate chains under the mutual-recognition agreement.
    #[command(subcommand)]
    Cert(cmd_cert::CertCommand),
    /// Run an x509-limbo conformance file through the verifier.
    Conformance(cmd_conformance::ConformanceArgs),
    /// Start the JP and SG development nodes in one process; `--demo` sends sample payments.
    Devnet(cmd_node::DevnetArgs),
    /// Audit and export a node's ledger, and check that two nodes' books agree, offline.
    #[command(subcommand)]
    Ledger(cmd_ledger::LedgerCommand),
    /// Sign and verify the mutual-recognition agreement.
    #[command(subcommand)]
    Mra(cmd_pki::MraCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(cmd_node::NodeCommand),
    /// Send a payment as a bank: quote, sign, submit, and print the pacs.002 outcome
    /// (exit 0 ACSC, 1 RJCT, 3 PDNG, 2 error).
    Pay(Box<cmd_pay::PayArgs>),
    /// Generate the development PKI.
    #[command(subcommand)]
    Pki(cmd_pki::PkiCommand),
    /// Ask a node for a signed FX quote and check it under the agreement.
    Quote(cmd_pay::QuoteArgs),
    /// Verify signed payment receipts offline.
    #[command(subcommand)]
    Receipt(cmd_receipt::ReceiptCommand),
    /// Replay a JSON Lines file of payments against running nodes and check each outcome
    /// against its expectation (exit 0 as expected, 1 not, 2 bad input, 3 still pending).
    Replay(cmd_replay::ReplayArgs),
    /// Run the deterministic simulator of the settlement protocol over a batch of seeds
    /// (exit 0 no violation, 1 violations, 2 setup error).
    Sim(cmd_sim::SimArgs),
    /// The status of a payment by UETR (exit 0 ACSC, 1 RJCT, 3 PDNG, 2 error).
    Status(cmd_pay::StatusArgs),
}

fn main() -> ExitCode {
    kakehashi_node::tls::install_crypto_provider();
    let cli = Cli::parse();
    let default_log = match &cli.command {
        Command::Node(_) => "info",
        Command::Devnet(args) => args.default_log(),
        // The simulated nodes log every fault they are dealt; the run reports what matters.
        Command::Sim(_) => "off",
        _ => "warn",
    };
    init_tracing(cli.log.as_deref().unwrap_or(default_log));
    let result = match cli.command {
        Command::Account(cmd) => cmd_account::run_account(cmd),
        Command::Balance(args) => cmd_account::run_balance(args),
        Command::Bench(args) => cmd_bench::run(args),
        Command::Cert(cmd) => cmd_cert::run(cmd),
        Command::Conformance(args) => cmd_conformance::run(args),
        Command::Devnet(args) => cmd_node::run_devnet(args),
        Command::Ledger(cmd) => cmd_ledger::run(cmd),
        Command::Mra(cmd) => cmd_pki::run_mra(cmd),
        Command::Node(cmd) => cmd_node::run_node(cmd),
        Command::Pay(args) => cmd_pay::run_pay(*args),
        Command::Pki(cmd) => cmd_pki::run_pki(cmd),
        Command::Quote(args) => cmd_pay::run_quote(args),
        Command::Receipt(cmd) => cmd_receipt::run(cmd),
        Command::Replay(args) => cmd_replay::run(args),
        Command::Sim(args) => cmd_sim::run(args),
        Command::Status(args) => cmd_pay::run_status(args),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
