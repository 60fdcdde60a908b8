//! `kakehashi`: the one binary. It parses arguments, formats output and maps outcomes to exit
//! codes; the domain logic lives in the library crates (`kakehashi-pki`, `kakehashi-ledger`).
//!
//! Exit codes, as ripgrep's: 0 success (recognized, audit clean), 1 a negative verdict (not
//! recognized, audit found discrepancies, conformance regressions), 2 usage or input error. A
//! broken pipe (for example `| head`) exits 0.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_cert;
mod cmd_conformance;
mod cmd_ledger;
mod cmd_pki;

#[derive(Parser)]
#[command(
    name = "kakehashi",
    version,
    about = "Japan–Singapore payments and certificate mutual recognition"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter for diagnostics on stderr (tracing `EnvFilter` syntax), e.g. `info`.
    #[arg(long, global = true, env = "KAKEHASHI_LOG", default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and verify certificate chains under the mutual-recognition agreement.
    #[command(subcommand)]
    Cert(cmd_cert::CertCommand),
    /// Run an x509-limbo conformance file through the verifier.
    Conformance(cmd_conformance::ConformanceArgs),
    /// Audit and export a node's ledger offline.
    #[command(subcommand)]
    Ledger(cmd_ledger::LedgerCommand),
    /// Sign and verify the mutual-recognition agreement.
    #[command(subcommand)]
    Mra(cmd_pki::MraCommand),
    /// Generate the development PKI.
    #[command(subcommand)]
    Pki(cmd_pki::PkiCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let result = match cli.command {
        Command::Cert(cmd) => cmd_cert::run(cmd),
        Command::Conformance(args) => cmd_conformance::run(args),
        Command::Ledger(cmd) => cmd_ledger::run(cmd),
        Command::Mra(cmd) => cmd_pki::run_mra(cmd),
        Command::Pki(cmd) => cmd_pki::run_pki(cmd),
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
