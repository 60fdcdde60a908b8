//! The PostgreSQL engine against a real server: the differential property test against the
//! sled ledger, reopening, two ledgers on one schema, and records committed with their
//! transfers.
//!
//! Each test starts a throwaway PostgreSQL cluster of its own (`kakehashi-pgcluster`: durable,
//! on a unix socket) and works in schemas of its own. Without PostgreSQL on the machine, each
//! test says that it did not run and returns (with `KAKEHASHI_REQUIRE_PG=1`, as in CI, it
//! fails instead).

mod differential;
mod lifecycle;
#[path = "../../../ledger/tests/ledger/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::SigningKey;
use kakehashi_ledger_pg::{Options, PgLedger};
use kakehashi_pgcluster::{Cluster, ClusterOptions};

const JPY: u32 = 392;
const NOW: kakehashi_ledger::Timestamp = kakehashi_ledger::Timestamp(1_764_000_000_000_000_000);

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A running cluster with database `ledger`, for one test (stopped when dropped), or `None`
/// after saying why the test does not run.
struct Server {
    url: String,
    // Dropped before the directory: the cluster stops first.
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

fn server(test: &str) -> Option<Server> {
    let binaries = kakehashi_pgcluster::require(test)?;
    // Under target/, as the other PostgreSQL tests keep theirs.
    let dir =
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory for the cluster");
    let cluster = Cluster::start(&binaries, dir.path(), ClusterOptions::default())
        .expect("start a PostgreSQL cluster");
    let url = cluster
        .create_database("ledger")
        .expect("create the database");
    Some(Server {
        url,
        cluster,
        _dir: dir,
    })
}

/// A fresh schema name for `prefix` (dropped if a previous run left it).
async fn fresh_schema(url: &str, prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let schema = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop schema");
    drop(client);
    let _ = connection.await;
    schema
}

fn options(url: &str, schema: &str) -> Options {
    // The test clusters are durable (fsync and synchronous_commit on), as a node's must be.
    Options::new(url, schema)
}

async fn open(url: &str, schema: &str) -> PgLedger {
    PgLedger::open(&options(url, schema), node_key())
        .await
        .expect("open the PostgreSQL ledger")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
