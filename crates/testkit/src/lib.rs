//! kakehashi-testkit: a node pair for Rust integration tests, in one call.
//!
//! [`TestPair::start`] starts the devnet's two nodes (the committed `crates/node/devnet`
//! configurations, JP and SG, under the committed development PKI and agreement) in this
//! process, on ports the kernel picks and with their books in a temporary directory. They talk
//! real gRPC over real mutual TLS on 127.0.0.1, with real sled ledgers and real signatures.
//! Then:
//!
//! - [`TestPair::bank`] gives a [`BankClient`] for each bank that holds an account in a
//!   configuration: quote, pay, status and balances, each through the participant flow of
//!   `kakehashi_node::participant` (the one `kakehashi pay` and `replay` use), so a test pays
//!   exactly as a bank's own client would;
//! - [`TestPair::replay_file`] and [`TestPair::replay_lines`] send a transaction file (the JSON
//!   Lines format of `kakehashi replay`, `kakehashi_ops::replay`) through the same sender as
//!   `kakehashi replay` and return a typed result per line;
//! - [`TestPair::shutdown`] stops both nodes gracefully and runs the pair audit
//!   (`kakehashi_ops::pair_audit`, as `kakehashi ledger pair-audit`) over their books, and fails
//!   when the books disagree. Dropping a pair without it stops the nodes too, without the audit.
//!
//! ```no_run
//! use kakehashi_testkit::{Outcome, Transfer, TestPair};
//!
//! # async fn example() -> Result<(), kakehashi_testkit::Error> {
//! let pair = TestPair::start().await?;
//! let paid = pair
//!     .bank("KKHAJPJ0")?
//!     .pay(&Transfer::new(1001, "KKHASGS0", 2001, "25000"))
//!     .await?;
//! assert!(matches!(paid.outcome, Outcome::Settled { .. }));
//! let replay = pair.replay_file(kakehashi_testkit::sample_file()).await?;
//! assert!(replay.all_as_expected(), "{replay}");
//! let audit = pair.shutdown().await?; // Err when the two nodes' books disagree
//! assert!(audit.agrees());
//! # Ok(())
//! # }
//! ```
//!
//! **Why in-process.** The nodes run as tasks of the test's own tokio runtime
//! (`kakehashi_ops::load::start_pair`, on `kakehashi_node::node::Node::start_on`), not as child
//! processes of the `kakehashi` binary:
//! the test kit binds all six listening sockets on port 0 first, so that each node's
//! configuration can name the other's relay port before either starts. No port is chosen
//! ahead and released (another process could take it), nothing waits for a log line or polls
//! a port: a node is serving once `start_on` returns, and every bank client's TLS handshake
//! with its node has completed before [`TestPair::start`] returns. Nor does a test need the
//! binary built first.
//!
//! Tests that need real processes (killed with SIGKILL and restarted, or the command line run
//! as a user would) use [`process`]: the built `kakehashi` binary, free ports, a devnet
//! process, and a JP and an SG `kakehashi node run` process ([`process::pair`]); the
//! repository's end-to-end tests (`tests/`) are built on it.
//!
//! A pair is the JP and SG nodes (their configurations also name a TH peer, which no pair
//! runs and nothing dials); [`PairBuilder::configs`] starts any other two configurations that
//! are each other's peer.
#![forbid(unsafe_code)]

mod bank;
mod pair;
pub mod process;
mod replay;

pub use bank::{BankClient, Outcome, Paid, Transfer};
pub use kakehashi_ops::pair_audit::PairReport;
pub use kakehashi_ops::replay::{LineResult, LineStatus, Verdict};
pub use kakehashi_protocol::instruction::Uetr;
pub use pair::{PairBuilder, TestPair};
pub use replay::{ReplayOptions, ReplayReport, sample_file};

/// What went wrong in the test kit (not a payment's outcome: a refusal is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration, the agreement or an identity file is unusable.
    #[error("{0}")]
    Setup(String),
    /// A node did not start.
    #[error("the {jurisdiction} node did not start: {message}")]
    Start {
        /// Which node.
        jurisdiction: String,
        /// Why.
        message: String,
    },
    /// A client could not connect to its node.
    #[error(transparent)]
    Connect(Box<kakehashi_node::participant::ParticipantError>),
    /// No bank of that BIC holds an account in the pair's configurations.
    #[error("no bank {0} in the pair (banks: {1})")]
    NoSuchBank(String, String),
    /// A payment stopped without an outcome (no answer, or a quote that did not verify).
    #[error(transparent)]
    Pay(Box<kakehashi_node::participant::PayError>),
    /// A settled payment's receipt does not verify under the agreement.
    #[error(transparent)]
    Receipt(#[from] kakehashi_node::participant::ReceiptError),
    /// A call other than the payment flow's failed.
    #[error("{what} failed: {status}")]
    Call {
        /// Which call.
        what: String,
        /// What the node or the transport said.
        status: Box<tonic::Status>,
    },
    /// The replay input does not validate; nothing was sent.
    #[error("{} bad line(s), nothing sent: {}", .0.len(), lines(.0))]
    ReplayInput(Vec<kakehashi_ops::replay::LineError>),
    /// A replay run failed as a whole.
    #[error(transparent)]
    Replay(#[from] kakehashi_ops::replay::send::SendError),
    /// A node did not stop cleanly.
    #[error("the {jurisdiction} node did not shut down cleanly: {message}")]
    Shutdown {
        /// Which node.
        jurisdiction: String,
        /// Why.
        message: String,
    },
    /// The pair audit could not read the books.
    #[error("the pair audit could not read the books: {0}")]
    AuditRead(Box<kakehashi_ops::pair_audit::PairAuditError>),
    /// The pair audit found the books in disagreement.
    #[error("the pair audit found {} discrepancies: {}", .0.discrepancy_count(), findings(.0))]
    Disagree(Box<PairReport>),
}

/// The large errors are boxed, so that every `Result` of the kit stays small.
macro_rules! boxed_from {
    ($($source:ty => $variant:ident),* $(,)?) => {$(
        impl From<$source> for Error {
            fn from(error: $source) -> Self {
                Self::$variant(Box::new(error))
            }
        }
    )*};
}

boxed_from! {
    kakehashi_node::participant::ParticipantError => Connect,
    kakehashi_node::participant::PayError => Pay,
    kakehashi_ops::pair_audit::PairAuditError => AuditRead,
}

fn lines(errors: &[kakehashi_ops::replay::LineError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn findings(report: &PairReport) -> String {
    report
        .discrepancies
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
