//! Where `ledger audit`, `ledger export` and `ledger statement` read a node's books: a sled
//! ledger directory (`--data-dir`), or a node configuration (`--config`) whose `[storage]`
//! names either the sled ledger under its `data_dir` or its schema of a PostgreSQL database.
//! Every read is offline and changes nothing: the sled ledger is refused while a node holds it;
//! a PostgreSQL schema is read in committed snapshots, never created or migrated.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kakehashi_ledger::{Account, AuditOptions, AuditReport, ExportSummary, ExportedTransfer};
use kakehashi_node::config::{Config, StorageBackend};
use kakehashi_node::store::Store;

use crate::client;
use crate::configs::load_config;

/// `--data-dir DIR` or `--config FILE`: exactly one.
#[derive(clap::Args, Clone, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct BooksArgs {
    /// The node's ledger directory (the sled database, `<data_dir>/ledger`).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The node's TOML configuration instead of --data-dir: its books wherever its
    /// `[storage]` keeps them (the sled ledger under its `data_dir`, or its PostgreSQL schema).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// A node's books, located.
pub(crate) enum Books {
    /// A sled ledger directory.
    Sled {
        /// The ledger directory.
        ledger: PathBuf,
        /// The node's data directory, when a configuration named it (its payment records are
        /// the ledger's).
        data_dir: Option<PathBuf>,
    },
    /// A node's schema of a PostgreSQL database.
    Postgres(Box<kakehashi_ledger_pg::Options>),
}

impl Books {
    /// The sled ledger in `ledger`.
    pub(crate) fn sled(ledger: &Path) -> Self {
        Self::Sled {
            ledger: ledger.to_owned(),
            data_dir: None,
        }
    }

    /// The books `args` name, and the configuration when `--config` was given.
    pub(crate) fn locate(args: &BooksArgs) -> anyhow::Result<(Self, Option<Config>)> {
        match (&args.data_dir, &args.config) {
            (Some(dir), _) => Ok((Self::sled(dir), None)),
            (None, Some(path)) => {
                let config = load_config(path)?;
                Ok((Self::of_config(&config), Some(config)))
            }
            // clap requires exactly one of them.
            (None, None) => anyhow::bail!("give --data-dir DIR or --config FILE"),
        }
    }

    /// The books of the node configured by `config`.
    pub(crate) fn of_config(config: &Config) -> Self {
        match &config.storage.backend {
            StorageBackend::Sled => Self::Sled {
                ledger: config.data_dir.join("ledger"),
                data_dir: Some(config.data_dir.clone()),
            },
            StorageBackend::Postgres(postgres) => {
                Self::Postgres(Box::new(kakehashi_node::node::postgres_options(postgres)))
            }
        }
    }

    /// Where the books are, for reports and messages: the ledger directory, or `PostgreSQL
    /// schema <name>` (never the URL, which may hold a password).
    pub(crate) fn label(&self) -> PathBuf {
        match self {
            Self::Sled { ledger, .. } => ledger.clone(),
            Self::Postgres(options) => {
                PathBuf::from(format!("PostgreSQL schema {}", options.schema))
            }
        }
    }

    /// The ledger's audit ([`kakehashi_ledger::audit`] on sled, [`kakehashi_ledger_pg::audit`]
    /// on PostgreSQL: the same checks).
    pub(crate) fn audit(&self, options: &AuditOptions) -> anyhow::Result<AuditReport> {
        let what = || format!("cannot audit the ledger in {}", self.label().display());
        match self {
            Self::Sled { ledger, .. } => {
                kakehashi_ledger::audit(ledger, options).with_context(what)
            }
            Self::Postgres(pg) => client::runtime()?
                .block_on(kakehashi_ledger_pg::audit(pg, options))
                .map_err(postgres_error)
                .with_context(what),
        }
    }

    /// Every account and transfer as JSON Lines to `out`, the same lines on either engine.
    pub(crate) fn export(&self, out: &mut dyn std::io::Write) -> anyhow::Result<ExportSummary> {
        let what = || format!("cannot export the ledger in {}", self.label().display());
        match self {
            Self::Sled { ledger, .. } => kakehashi_ledger::export(ledger, out).with_context(what),
            Self::Postgres(pg) => client::runtime()?
                .block_on(kakehashi_ledger_pg::export(pg, out))
                .map_err(postgres_error)
                .with_context(what),
        }
    }

    /// Every account (id order) and every transfer (id order, with its pending status).
    pub(crate) fn accounts_and_transfers(
        &self,
    ) -> anyhow::Result<(Vec<Account>, Vec<ExportedTransfer>)> {
        let what = || format!("cannot read the ledger in {}", self.label().display());
        match self {
            Self::Sled { ledger, .. } => {
                let export = kakehashi_ledger::LedgerExport::open(ledger).with_context(what)?;
                let transfers = export
                    .transfers()
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(what)?;
                Ok((export.accounts().collect(), transfers))
            }
            Self::Postgres(pg) => client::runtime()?
                .block_on(kakehashi_ledger_pg::export_typed(pg))
                .map_err(postgres_error)
                .with_context(what),
        }
    }

    /// The node's payment store, read-only, when these books hold it (a configuration named
    /// them): on sled the records of the ledger in its data directory, on PostgreSQL those of
    /// its schema.
    pub(crate) fn payment_store(&self) -> anyhow::Result<Option<Store>> {
        match self {
            Self::Sled {
                data_dir: Some(dir),
                ..
            } => Store::open_read_only(dir)
                .with_context(|| format!("cannot open the payment store in {}", dir.display()))
                .map(Some),
            Self::Sled { data_dir: None, .. } => Ok(None),
            Self::Postgres(pg) => Ok(Some(Store::open_postgres_read_only((**pg).clone()))),
        }
    }
}

/// A PostgreSQL ledger error, with what to do when that is clear.
fn postgres_error(error: kakehashi_ledger_pg::Error) -> anyhow::Error {
    let hint = match &error {
        kakehashi_ledger_pg::Error::Pool { .. } => {
            " (is the server running, and does [storage] url name it and a role that may log in?)"
        }
        kakehashi_ledger_pg::Error::InvalidOption { name: "schema", .. } => {
            " (the node creates it when it first starts: check [storage] schema, or start the \
             node once)"
        }
        _ => "",
    };
    anyhow::anyhow!("{error}{hint}")
}
