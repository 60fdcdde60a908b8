//! Indicative throughput of the PostgreSQL engine beside sled: `callers` tasks each send
//! `requests` single-transfer requests, one after another, to a `PgLedger` on a throwaway
//! durable cluster (kakehashi-pgcluster) and to a sled `Ledger`; prints transfers per second
//! and the mean latency of a request. Not a benchmark of record: the machine's other work
//! shows in it.
//!
//! `cargo run --release -p kakehashi-ledger-pg --example throughput -- [callers] [requests]`

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{AccountId, Ledger, NewAccount, NewTransfer, Timestamp, TransferId};
use kakehashi_ledger_pg::{Options, PgLedger};
use kakehashi_pgcluster::{Cluster, ClusterOptions};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

fn transfer(caller: u128, n: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(1 + caller * 1_000_000 + n),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: 1,
        ledger: 392,
        code: 1,
        ..NewTransfer::default()
    }
}

fn accounts() -> Vec<NewAccount> {
    [1, 2]
        .map(|id| NewAccount {
            id: AccountId(id),
            ledger: 392,
            code: 1,
            ..NewAccount::default()
        })
        .to_vec()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let callers: u128 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let requests: u128 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let Some(binaries) = kakehashi_pgcluster::require("throughput") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a directory");
    let cluster = Cluster::start(&binaries, &dir.path().join("pg"), ClusterOptions::default())
        .expect("a cluster");
    let url = cluster.create_database("ledger").expect("a database");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let pg = Arc::new(
            PgLedger::open(
                &Options::new(url.as_str(), "bench"),
                SigningKey::from_bytes(&[7; 32]),
            )
            .await
            .expect("open pg"),
        );
        pg.create_accounts(&accounts(), NOW)
            .await
            .expect("accounts");
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let pg = Arc::clone(&pg);
                tokio::spawn(async move {
                    for n in 0..requests {
                        pg.create_transfers(&[transfer(caller, n)], NOW)
                            .await
                            .expect("transfer");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller");
        }
        report("postgres", callers, requests, started);
        if let Ok(pg) = Arc::try_unwrap(pg) {
            pg.close().await.expect("close");
        }

        let sled_dir = dir.path().join("sled");
        let sled = Arc::new(
            Ledger::open(
                &sled_dir,
                SigningKey::from_bytes(&[7; 32]),
                kakehashi_ledger::Options::default(),
            )
            .expect("open sled"),
        );
        sled.create_accounts(&accounts(), NOW).expect("accounts");
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let sled = Arc::clone(&sled);
                tokio::spawn(async move {
                    for n in 0..requests {
                        sled.create_transfers_async(&[transfer(caller, n)], NOW)
                            .await
                            .expect("transfer");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller");
        }
        report("sled", callers, requests, started);
    });
}

fn report(engine: &str, callers: u128, requests: u128, started: Instant) {
    let elapsed = started.elapsed().as_secs_f64();
    let transfers = (callers * requests) as f64;
    println!(
        "{engine}: {callers} callers x {requests} single-transfer requests: {:.0} transfers/s, \
         {:.2} ms mean per request",
        transfers / elapsed,
        elapsed * 1_000.0 * callers as f64 / transfers
    );
}
