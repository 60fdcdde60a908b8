//! `kakehashi conformance`: bootstrap placeholder, replaced by the module's owner.

use std::process::ExitCode;

#[derive(clap::Args)]
pub(crate) struct ConformanceArgs {
    /// A limbo-format JSON file.
    file: std::path::PathBuf,
}

pub(crate) fn run(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("conformance on {} is not built yet", args.file.display())
}
