//! Replaying a transaction file against the pair, through the sender `kakehashi replay` uses.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakehashi_node::SystemClock;
use kakehashi_ops::replay::send::{self, Connection, Sender};
use kakehashi_ops::replay::{self, LineError, LineResult, Parties, Payment, UetrKey};
use kakehashi_protocol::bank::Bank;
use kakehashi_protocol::money;
use kakehashi_protocol::reason::ReasonCode;

use crate::Error;
use crate::bank::connect_bank;
use crate::pair::TestPair;

/// How a replay runs; the defaults are `kakehashi replay`'s.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Text mixed into derived UETRs (`--seed`): the same file with another seed is a new set
    /// of payments. Default empty.
    pub seed: String,
    /// Payments in flight at once (`--concurrency`, default 4).
    pub concurrency: usize,
    /// How long to keep asking about a payment still PDNG (`--pending-wait`, default 10 s).
    pub pending_wait: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            seed: String::new(),
            concurrency: 4,
            pending_wait: Duration::from_secs(10),
        }
    }
}

/// The results of a replay, one per line in file order.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// Each line's result.
    pub results: Vec<LineResult>,
    /// How long the run took.
    pub wall: Duration,
}

impl ReplayReport {
    /// Whether every line met its expectation (a line without one: was answered, ACSC or
    /// RJCT, with a receipt that verifies when settled): `kakehashi replay`'s exit 0.
    pub fn all_as_expected(&self) -> bool {
        self.results.iter().all(LineResult::is_fine)
    }

    /// The lines that did not.
    pub fn not_as_expected(&self) -> Vec<&LineResult> {
        self.results.iter().filter(|r| !r.is_fine()).collect()
    }

    /// The result of line `line` (1-based).
    pub fn line(&self, line: usize) -> Option<&LineResult> {
        self.results.iter().find(|r| r.line == line)
    }
}

impl fmt::Display for ReplayReport {
    /// A line per result: number, outcome, expectation, verdict and detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            let expected = r
                .expect
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "line {:>4} {} {:<10} expected {:<10} {:?}: {}",
                r.line,
                r.uetr,
                r.outcome(),
                expected,
                r.verdict(),
                r.detail
            )?;
        }
        Ok(())
    }
}

impl TestPair {
    /// Replays a JSON Lines transaction file (the format of `kakehashi replay`, documented in
    /// `kakehashi_ops::replay`) with the default options. `signer` paths in the file are
    /// relative to its directory.
    pub async fn replay_file(&self, path: impl AsRef<Path>) -> Result<ReplayReport, Error> {
        self.replay_file_with(path, &ReplayOptions::default()).await
    }

    /// [`TestPair::replay_file`] with `options`.
    pub async fn replay_file_with(
        &self,
        path: impl AsRef<Path>,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Setup(format!("replay file {}: {e}", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.replay_bytes(&bytes, &base, options).await
    }

    /// Replays payment lines given as text (one JSON object per line, as in a file) with the
    /// default options; `signer` paths are relative to the current directory.
    pub async fn replay_lines(&self, lines: &str) -> Result<ReplayReport, Error> {
        self.replay_bytes(lines.as_bytes(), Path::new(""), &ReplayOptions::default())
            .await
    }

    /// Validates the whole input first (a bad line is [`Error::ReplayInput`], nothing sent),
    /// then sends it as `kakehashi replay` does.
    async fn replay_bytes(
        &self,
        bytes: &[u8],
        base: &Path,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, Error> {
        let parties: Parties = self
            .mra
            .jurisdictions()
            .iter()
            .filter_map(|j| Some((j.code.clone(), money::currency(&j.currency)?)))
            .collect();
        let payments = replay::parse(bytes, &parties).map_err(Error::ReplayInput)?;
        self.replay(payments, base, options).await
    }

    /// Sends parsed payments (from `kakehashi_ops::replay::parse` or
    /// `kakehashi_ops::replay::parse_pacs008`) and returns their results; derived UETRs are
    /// made here, with the signing banks' keys and `options.seed`.
    pub async fn replay(
        &self,
        mut payments: Vec<Payment>,
        base: &Path,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, Error> {
        let (banks, bank_of) = send::load_banks(&payments, &self.certs, base, |cert, key| {
            Bank::load(cert, key).map_err(|e| e.to_string())
        })
        .map_err(Error::ReplayInput)?;
        let keys: Vec<UetrKey> = banks.iter().map(UetrKey::of).collect();
        replay::key_uetrs(&mut payments, &options.seed, |index| &keys[bank_of[index]]);
        let mut nodes = BTreeMap::new();
        for p in &payments {
            let key = (p.sending.clone(), p.debtor_agent.clone());
            if nodes.contains_key(&key) {
                continue;
            }
            if self.url(&p.sending).is_none() {
                return Err(Error::ReplayInput(vec![LineError {
                    line: p.line,
                    field: Some("debtor_agent".to_owned()),
                    code: ReasonCode::Ff01,
                    detail: format!("the pair has no {} node", p.sending),
                }]));
            }
            let client = connect_bank(self, &p.sending, &p.debtor_agent).await?;
            nodes.insert(
                key,
                Connection {
                    payments: client,
                    url: self.url(&p.sending).unwrap_or_default(),
                },
            );
        }
        let sender = Arc::new(Sender {
            mra: Arc::clone(&self.mra),
            nodes,
            banks,
            pending_wait: options.pending_wait,
            clock: Arc::new(SystemClock),
            on_line: Arc::new(|| {}),
            describe_error: send::describe_error,
        });
        let started = Instant::now();
        let results = sender.send(payments, bank_of, options.concurrency).await?;
        Ok(ReplayReport {
            results,
            wall: started.elapsed(),
        })
    }
}

/// Where the repository's sample transaction file is, for tests in this workspace.
pub fn sample_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/devnet-payments.jsonl")
}
