//! `kakehashi pki` and `kakehashi mra`: bootstrap placeholder, replaced by the module's owner.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub(crate) enum PkiCommand {
    /// Not built yet.
    Pending,
}

#[derive(clap::Subcommand)]
pub(crate) enum MraCommand {
    /// Not built yet.
    Pending,
}

pub(crate) fn run_pki(_cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kakehashi pki is not built yet")
}

pub(crate) fn run_mra(_cmd: MraCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("kakehashi mra is not built yet")
}
