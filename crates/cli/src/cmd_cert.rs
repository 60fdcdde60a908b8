//! `kakehashi cert`: bootstrap placeholder, replaced by the module's owner.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub(crate) enum CertCommand {
    /// Not built yet.
    Pending,
}

pub(crate) fn run(_cmd: CertCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kakehashi cert is not built yet")
}
