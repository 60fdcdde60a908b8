//! Where the command line finds node configurations: one loader whose errors point at the
//! complete example, and the devnet pair (jp.toml, sg.toml) that `devnet`, `replay` and `bench`
//! share.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kakehashi_node::config::Config;

/// The devnet configurations, relative to the repository root.
const DEVNET_CONFIGS: &str = "crates/node/devnet";

/// With `--base-port N` the devnet's SG node listens this far above the JP node, as in the
/// committed configurations (7100.. and 7200..).
pub(crate) const SG_PORT_OFFSET: u16 = 100;

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
