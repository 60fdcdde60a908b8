//! `kakehashi node run` (one node from its TOML configuration) and `kakehashi devnet` (the JP
//! and SG development nodes in one process, with an optional demo, [`demo`], that sends
//! payments both ways as real participants would).
//!
//! `devnet --storage postgres://…` keeps both nodes' books in one PostgreSQL database, a
//! schema each (`kakehashi_jp`, `kakehashi_sg`, created by the ledger when missing); the URL is
//! never printed with its password.
//!
//! The demo's exit code is 0 when every payment ended as expected, every receipt verified
//! under the agreement and the balances moved by exactly the settled amounts; 1 otherwise;
//! 2 when the nodes could not start.

mod demo;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use kakehashi_node::config::{
    Config, POSTGRES_POOL_SIZE_DEFAULT, PostgresStorage, StorageBackend, default_schema,
};
use kakehashi_node::node::{Node, RunningNode};

use crate::client;
use crate::configs::{SG_PORT_OFFSET, find_configs, load_config};
use crate::output::write_stdout;

/// Where `devnet` keeps its ledgers unless told otherwise (relative to the current
/// directory).
const DEFAULT_DATA_DIR: &str = "devnet-data";

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
    /// Where both nodes keep their books: `sled` (the default: DIR/jp/ledger and
    /// DIR/sg/ledger), or a PostgreSQL URL (`postgres://user@host/db`), both nodes in that
    /// database, schemas kakehashi_jp and kakehashi_sg (created when missing). The server needs
    /// fsync and synchronous_commit on.
    // A String, parsed in `devnet_storage`: clap would echo a refused value, password and all.
    #[arg(long, value_name = "sled|URL", default_value = "sled")]
    storage: String,
}

/// `devnet --storage`.
#[derive(Clone, PartialEq, Eq)]
enum DevnetStorage {
    Sled,
    /// The database's URL.
    Postgres(String),
}

/// Parses `--storage`, never repeating the value in an error (it may hold a password).
fn devnet_storage(given: &str) -> anyhow::Result<DevnetStorage> {
    if given == "sled" {
        return Ok(DevnetStorage::Sled);
    }
    if given.starts_with("postgres://") || given.starts_with("postgresql://") {
        return Ok(DevnetStorage::Postgres(given.to_owned()));
    }
    anyhow::bail!(
        "--storage: use `sled` or a PostgreSQL URL starting with postgres:// or postgresql:// \
         (the value given is not repeated here: it may hold a password)"
    )
}

/// `url` without its password and query parameters (which may hold one), for printing.
fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(the URL given)".to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:****@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

/// `config` with its books in the default schema of the database at `url`.
fn on_postgres(mut config: Config, url: &str) -> Config {
    config.storage.backend = StorageBackend::Postgres(PostgresStorage {
        url: url.to_owned(),
        schema: default_schema(&config.jurisdiction),
        pool_size: POSTGRES_POOL_SIZE_DEFAULT,
    });
    config
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
    let books = match &config.storage.backend {
        StorageBackend::Sled => config.data_dir.join("ledger").display().to_string(),
        StorageBackend::Postgres(postgres) => format!("PostgreSQL schema {}", postgres.schema),
    };
    let node = Node::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("the node of {} did not start: {e}", path.display()))?;
    let mut out = String::new();
    write_addresses(&mut out, &node);
    let _ = writeln!(out, "  ledger   {books}");
    let _ = writeln!(out, "Press Ctrl-C to stop.");
    write_stdout(&out)?;
    let jurisdiction = node.jurisdiction.clone();
    node.wait()
        .await
        .map_err(|e| anyhow::anyhow!("the {jurisdiction} node stopped with an error: {e}"))?;
    write_stdout(&format!("{jurisdiction} node stopped.\n"))?;
    Ok(ExitCode::SUCCESS)
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
    let storage = devnet_storage(&args.storage)?;
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
        (jp, sg) = on_base_port(jp, sg, base)?;
    }
    if let DevnetStorage::Postgres(url) = &storage {
        jp = on_postgres(jp, url);
        sg = on_postgres(sg, url);
    }
    let certs = jp
        .mra
        .parent()
        .map(Path::to_path_buf)
        .context("the JP configuration's agreement path has no directory")?;
    let mra_path = jp.mra.clone();

    let on_postgres = matches!(storage, DevnetStorage::Postgres(_));
    let jp_node = Node::start(jp)
        .await
        .map_err(|e| start_error(&e, "JP", on_postgres))?;
    let sg_node = match Node::start(sg).await {
        Ok(node) => node,
        Err(e) => {
            let _ = jp_node.shutdown().await;
            return Err(start_error(&e, "SG", on_postgres));
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kakehashi devnet: a JP node (JPY ledger) and an SG node (SGD ledger) relaying to each \
         other over mutual TLS"
    );
    let _ = writeln!(out, "  configurations  {}", display_path(&configs));
    match &storage {
        DevnetStorage::Sled => {
            let _ = writeln!(
                out,
                "  ledgers         {} (jp/, sg/; delete it to start over)",
                data_dir.display()
            );
        }
        DevnetStorage::Postgres(url) => {
            let _ = writeln!(
                out,
                "  ledgers         PostgreSQL {}, schemas {} and {} (drop them to start over)",
                redacted_url(url),
                default_schema("JP"),
                default_schema("SG")
            );
        }
    }
    let _ = writeln!(out);
    write_addresses(&mut out, &jp_node);
    write_addresses(&mut out, &sg_node);
    let _ = writeln!(out);
    write_stdout(&out)?;

    let outcome = if args.demo {
        let demo = demo::Demo {
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
    // Both stop together: each keeps answering the other's relay calls while it drains, so
    // the payments in flight between them end. Asked again, neither waits any longer.
    let again = || async {
        let _ = interrupted().await;
    };
    let (jp_stop, sg_stop) = tokio::join!(
        jp_node.shutdown_or_sooner(again()),
        sg_node.shutdown_or_sooner(again())
    );
    jp_stop.map_err(|e| anyhow::anyhow!("the JP node did not shut down cleanly: {e}"))?;
    sg_stop.map_err(|e| anyhow::anyhow!("the SG node did not shut down cleanly: {e}"))?;
    if !args.demo {
        write_stdout("Both nodes stopped; their ledgers are kept for the next run.\n")?;
    }
    outcome
}

/// The pair moved to `base` (JP public, relay, metrics on base..base+2) and
/// `base + SG_PORT_OFFSET` (SG), each pointing at the other's relay port.
fn on_base_port(jp: Config, sg: Config, base: u16) -> anyhow::Result<(Config, Config)> {
    let port = |offset: u16| {
        base.checked_add(offset).with_context(|| {
            format!("--base-port {base}: the SG node's ports would pass 65535; use a lower N")
        })
    };
    let jp = jp
        .with_ports(base, port(1)?, port(2)?)
        .with_peer_relay(
            "SG",
            &format!("https://127.0.0.1:{}", port(SG_PORT_OFFSET + 1)?),
        )
        .map_err(|e| anyhow::anyhow!("--base-port {base}: {e}"))?;
    let sg = sg
        .with_ports(
            port(SG_PORT_OFFSET)?,
            port(SG_PORT_OFFSET + 1)?,
            port(SG_PORT_OFFSET + 2)?,
        )
        .with_peer_relay("JP", &format!("https://127.0.0.1:{}", port(1)?))
        .map_err(|e| anyhow::anyhow!("--base-port {base}: {e}"))?;
    Ok((jp, sg))
}

/// A node that did not start, with what to do about the usual causes.
fn start_error(e: &dyn std::fmt::Display, which: &str, on_postgres: bool) -> anyhow::Error {
    let text = e.to_string();
    let hint = if on_postgres && text.contains("PostgreSQL") {
        " (check --storage: the server must be running with fsync and synchronous_commit on, \
         and the URL name a database and a role that may log in and create schemas in it)"
    } else if text.contains("already in use") {
        " (stop the other devnet or node, or pass --base-port N to use other ports)"
    } else if text.contains("held by another process") {
        " (another devnet is using this --data-dir: stop it, or pass another --data-dir)"
    } else {
        ""
    };
    anyhow::anyhow!("the {which} node did not start: {text}{hint}")
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

fn display_path(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_sled_or_a_postgres_url_and_a_refused_value_is_not_repeated() {
        assert!(devnet_storage("sled").expect("sled") == DevnetStorage::Sled);
        let url = "postgresql://kk:pw@db.example/books";
        assert!(devnet_storage(url).expect("a URL") == DevnetStorage::Postgres(url.into()));
        let Err(error) = devnet_storage("mysql://kk:s3cret@db/books") else {
            panic!("not PostgreSQL");
        };
        assert!(!format!("{error:#}").contains("s3cret"), "{error:#}");
        assert!(devnet_storage("").is_err());
    }

    #[test]
    fn a_printed_url_shows_no_password_or_query() {
        assert_eq!(
            redacted_url("postgres://kk:s3cret@db.example:5432/books?password=x&sslmode=off"),
            "postgres://kk:****@db.example:5432/books"
        );
        assert_eq!(
            redacted_url("postgresql://kk@db/books"),
            "postgresql://kk@db/books"
        );
        assert_eq!(redacted_url("postgresql://db"), "postgresql://db");
        assert_eq!(
            redacted_url("postgresql://kk:p@ss:w@rd@db/books"),
            "postgresql://kk:****@db/books"
        );
        assert_eq!(redacted_url("not a url"), "(the URL given)");
    }
}
