//! The PostgreSQL engine against a real server: the differential property test against the
//! sled ledger, reopening, two ledgers on one schema, and records committed with their
//! transfers.
//!
//! PostgreSQL comes from `KAKEHASHI_PG_URL` (a server URL; each test works in schemas of its
//! own, dropped first). Without it, each test says that it did not run and returns.

mod differential;
mod lifecycle;
#[path = "../../../ledger/tests/ledger/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::SigningKey;
use kakehashi_ledger_pg::{Options, PgLedger};

const JPY: u32 = 392;
const NOW: kakehashi_ledger::Timestamp = kakehashi_ledger::Timestamp(1_764_000_000_000_000_000);

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The server's URL, or `None` after saying why the test does not run.
fn server(test: &str) -> Option<String> {
    match std::env::var("KAKEHASHI_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: NOT RUN: no PostgreSQL (set KAKEHASHI_PG_URL to a server's URL)");
            None
        }
    }
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
    Options {
        // A throwaway test cluster may run without fsync; a node never may.
        require_fsync: false,
        ..Options::new(url, schema)
    }
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
