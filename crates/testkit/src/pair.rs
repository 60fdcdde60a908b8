//! Starting and stopping the pair: configurations, listeners bound on port 0, the nodes, the
//! bank clients, and the audit at teardown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kakehashi_node::config::{AccountKind, Config};
use kakehashi_node::node::RunningNode;
use kakehashi_ops::load;
use kakehashi_ops::pair_audit::{self, PairReport};
use kakehashi_pki::mra::Mra;
use tempfile::TempDir;

use crate::Error;
use crate::bank::BankClient;

/// The committed devnet configurations, relative to this crate.
const DEVNET_CONFIGS: &str = "../node/devnet";

/// The two configurations a default pair starts, in `DEVNET_CONFIGS`.
const DEVNET_PAIR: [&str; 2] = ["jp.toml", "sg.toml"];

/// How to start a pair: which configurations, where the books go.
#[derive(Clone, Debug)]
pub struct PairBuilder {
    configs: [PathBuf; 2],
    data_dir: Option<PathBuf>,
}

impl Default for PairBuilder {
    fn default() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEVNET_CONFIGS);
        Self {
            configs: DEVNET_PAIR.map(|file| dir.join(file)),
            data_dir: None,
        }
    }
}

impl PairBuilder {
    /// Two node configurations that are each other's peer, instead of the devnet's JP and SG.
    /// Their listen addresses and data directories are replaced; the rest (certificates,
    /// agreement, accounts, limits) is used as written.
    pub fn configs(mut self, a: impl Into<PathBuf>, b: impl Into<PathBuf>) -> Self {
        self.configs = [a.into(), b.into()];
        self
    }

    /// Keeps the books in `dir/<jurisdiction in lower case>` (created if missing) instead of a
    /// temporary directory removed with the pair: to read them after the test.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Starts both nodes and connects a client for every bank (see [`TestPair::start`]).
    pub async fn start(self) -> Result<TestPair, Error> {
        let configs = [
            load_config(&self.configs[0])?,
            load_config(&self.configs[1])?,
        ];
        let [a, b] = &configs;
        for (from, to) in [(a, b), (b, a)] {
            if from.jurisdiction == to.jurisdiction || from.peer(&to.jurisdiction).is_none() {
                return Err(Error::Setup(format!(
                    "{} and {} are not a pair: each configuration needs a [[peer]] for the other",
                    from.jurisdiction, to.jurisdiction
                )));
            }
        }
        let mra = Arc::new(
            Mra::load(&a.mra)
                .map_err(|e| Error::Setup(format!("agreement {}: {e}", a.mra.display())))?,
        );
        let certs = a.mra.parent().map(Path::to_path_buf).ok_or_else(|| {
            Error::Setup(format!(
                "the agreement path {} has no directory",
                a.mra.display()
            ))
        })?;
        let (temporary, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("kakehashi-testkit-")
                    .tempdir()
                    .map_err(|e| Error::Setup(format!("no temporary directory: {e}")))?;
                let path = dir.path().to_owned();
                (Some(dir), path)
            }
        };

        // Every listener is bound on a port the kernel picks before either node starts, so each
        // configuration names the other node's relay (the load generator's pair start).
        let [a, b] = configs;
        let started = load::start_pair(a, b, &data_dir)
            .await
            .map_err(|e| match e {
                load::LoadError::Start {
                    jurisdiction,
                    message,
                } => Error::Start {
                    jurisdiction,
                    message,
                },
                other => Error::Setup(other.to_string()),
            })?;
        let nodes = vec![started.sender, started.receiver];
        let started = vec![started.sender_config, started.receiver_config];
        let mut pair = TestPair {
            nodes: Some(nodes),
            configs: started,
            mra,
            certs,
            banks: BTreeMap::new(),
            data_dir,
            _temporary: temporary,
        };
        // A client per bank that holds a customer account; connecting completes a TLS
        // handshake with its node, so the pair is serving when this returns.
        for index in 0..2 {
            let config = &pair.configs[index];
            let mut bics: Vec<&str> = config
                .accounts
                .iter()
                .filter(|a| a.kind == AccountKind::Customer && !a.owner_bic.is_empty())
                .map(|a| a.owner_bic.as_str())
                .collect();
            bics.sort_unstable();
            bics.dedup();
            for bic in bics {
                let accounts = config
                    .accounts
                    .iter()
                    .filter(|a| a.owner_bic == bic)
                    .map(|a| a.id)
                    .collect();
                let client = BankClient::connect(&pair, index, bic, accounts).await?;
                pair.banks.insert(bic.to_owned(), client);
            }
        }
        Ok(pair)
    }
}

/// A running node pair (see the crate documentation). Stop it with [`TestPair::shutdown`],
/// which audits the books; dropping it stops the nodes without the audit.
#[derive(Debug)]
pub struct TestPair {
    /// The two running nodes, in configuration order; `None` once stopped.
    nodes: Option<Vec<RunningNode>>,
    /// Their configurations as started (ports and data directories filled in).
    pub(crate) configs: Vec<Config>,
    /// The agreement.
    pub(crate) mra: Arc<Mra>,
    /// The directory of the agreement, laid out as `kakehashi pki init` writes it: the banks'
    /// identities are under `<certs>/<jurisdiction>/banks/`.
    pub(crate) certs: PathBuf,
    /// A client per bank, by BIC.
    banks: BTreeMap<String, BankClient>,
    data_dir: PathBuf,
    /// Removed with the pair, after the nodes stopped (fields drop after `Drop::drop`).
    _temporary: Option<TempDir>,
}

impl TestPair {
    /// Starts the devnet's JP and SG nodes in this process on free loopback ports, their books
    /// in a new temporary directory, and connects a [`BankClient`] for every bank that holds
    /// an account. Needs a multi-threaded tokio runtime (`#[tokio::test(flavor =
    /// "multi_thread")]`): the nodes serve on it while the test waits for their answers.
    pub async fn start() -> Result<Self, Error> {
        PairBuilder::default().start().await
    }

    /// Options for another pair of configurations or a kept data directory.
    pub fn builder() -> PairBuilder {
        PairBuilder::default()
    }

    /// The jurisdictions, in configuration order (`["JP", "SG"]`).
    pub fn jurisdictions(&self) -> Vec<&str> {
        self.configs
            .iter()
            .map(|c| c.jurisdiction.as_str())
            .collect()
    }

    /// The configuration `jurisdiction`'s node runs with (its ports and data directory as
    /// started).
    pub fn config(&self, jurisdiction: &str) -> Option<&Config> {
        self.configs.iter().find(|c| c.jurisdiction == jurisdiction)
    }

    /// `https://127.0.0.1:PORT`, the public listener of `jurisdiction`'s node.
    pub fn url(&self, jurisdiction: &str) -> Option<String> {
        self.public_addr(jurisdiction)
            .map(|addr| format!("https://{addr}"))
    }

    /// The public listener's address of `jurisdiction`'s node.
    pub fn public_addr(&self, jurisdiction: &str) -> Option<SocketAddr> {
        self.config(jurisdiction).map(|c| c.listen.public)
    }

    /// The running node of `jurisdiction` (its engine, for tests that look inside), until the
    /// pair stops.
    pub fn node(&self, jurisdiction: &str) -> Option<&RunningNode> {
        self.nodes
            .as_ref()?
            .iter()
            .find(|n| n.jurisdiction == jurisdiction)
    }

    /// The agreement both nodes run under.
    pub fn mra(&self) -> &Arc<Mra> {
        &self.mra
    }

    /// Where the books are: `<dir>/<jurisdiction in lower case>`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The client of bank `bic`.
    pub fn bank(&self, bic: &str) -> Result<&BankClient, Error> {
        self.banks.get(bic).ok_or_else(|| {
            Error::NoSuchBank(
                bic.to_owned(),
                self.banks.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    /// Every bank client, by BIC.
    pub fn banks(&self) -> impl Iterator<Item = &BankClient> {
        self.banks.values()
    }

    /// The directory of `jurisdiction`'s bank identities.
    pub(crate) fn banks_dir(&self, jurisdiction: &str) -> PathBuf {
        load::banks_dir(&self.certs, jurisdiction)
    }

    /// Stops both nodes gracefully (each keeps answering the other's relay calls while it
    /// drains its payments in flight), then audits the two books against each other
    /// (`kakehashi ledger pair-audit`): every credit matched by a posted reservation with the
    /// same amounts, every receipt verifying, the corridor and liquidity balances equal to the
    /// settled sums, and each ledger's own audit clean. Returns the report when the books
    /// agree, [`Error::Disagree`] with it when they do not.
    pub async fn shutdown(mut self) -> Result<PairReport, Error> {
        self.banks.clear();
        if let Some(nodes) = self.nodes.take() {
            let jurisdictions: Vec<String> = nodes.iter().map(|n| n.jurisdiction.clone()).collect();
            let mut stops = Vec::with_capacity(nodes.len());
            for node in nodes {
                stops.push(tokio::spawn(node.shutdown()));
            }
            for (jurisdiction, stop) in jurisdictions.into_iter().zip(stops) {
                let stopped = stop
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                stopped.map_err(|message| Error::Shutdown {
                    jurisdiction,
                    message,
                })?;
            }
        }
        let (a, b) = pair_audit::load_pair(&self.configs[0], &self.configs[1], &self.mra).await?;
        let report = pair_audit::audit_pair(&a, &b, &self.mra);
        if report.agrees() {
            Ok(report)
        } else {
            Err(Error::Disagree(Box::new(report)))
        }
    }
}

impl Drop for TestPair {
    /// Stops the nodes without waiting for them: dropping a running node closes its stop
    /// signals, so its listeners stop accepting and its recovery loop ends; its ledger closes
    /// when the last connection task lets go of the engine. The books are not audited (that
    /// needs [`TestPair::shutdown`], which is async); a temporary data directory is removed.
    fn drop(&mut self) {
        self.banks.clear();
        drop(self.nodes.take());
    }
}

/// Loads a node configuration, naming the file on failure.
fn load_config(path: &Path) -> Result<Config, Error> {
    Config::load(path).map_err(|e| Error::Setup(format!("configuration {}: {e}", path.display())))
}
