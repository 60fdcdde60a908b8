//! `kakehashi ledger`: bootstrap placeholder, replaced by the module's owner.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub(crate) enum LedgerCommand {
    /// Not built yet.
    Pending,
}

pub(crate) fn run(_cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kakehashi ledger is not built yet")
}
