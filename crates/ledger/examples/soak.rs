//! Soak run: many transfers over many accounts, reporting throughput and peak RSS.
//!
//! ```text
//! cargo run --release -p kakehashi-ledger --example soak -- --transfers 10000000 --accounts 100000
//! ```
//!
//! Options: `--transfers N`, `--accounts N`, `--dir PATH` (default: a temporary directory,
//! removed at the end), `--cache-mb N` (sled's page-cache budget; default the ledger's).
//! Batches are full (8,190 transfers), each committed durably. Peak RSS is the kernel's
//! `VmHWM` from `/proc/self/status`. The allocator is the `kakehashi` binary's (mimalloc).

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountId, BATCH_LEN_MAX, CreateTransferResult, Ledger, NewAccount, NewTransfer, Options,
    Timestamp, TransferId,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const JPY: u32 = 392;
/// Progress lines every this many transfers.
const REPORT_EVERY: u64 = 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut transfers: u64 = 1_000_000;
    let mut accounts: u64 = 100_000;
    let mut dir: Option<PathBuf> = None;
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--transfers" => transfers = value()?.parse()?,
            "--accounts" => accounts = value()?.parse()?,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--cache-mb" => {
                let megabytes: u64 = value()?.parse()?;
                options.cache_capacity_bytes = megabytes.saturating_mul(1024 * 1024);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if accounts < 2 {
        return Err("--accounts must be at least 2".into());
    }
    let temp = tempfile::tempdir()?;
    let path = dir.unwrap_or_else(|| temp.path().to_path_buf());
    let ledger = Ledger::open(&path, SigningKey::from_bytes(&[3; 32]), options)?;
    // The example is the caller, so it may read the clock; the ledger never does.
    #[allow(
        clippy::disallowed_methods,
        reason = "the caller supplies `now`; this is the caller"
    )]
    let now = Timestamp(u64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos(),
    )?);

    let started = Instant::now();
    let ids: Vec<u64> = (1..=accounts).collect();
    for chunk in ids.chunks(BATCH_LEN_MAX) {
        let batch: Vec<NewAccount> = chunk
            .iter()
            .map(|id| NewAccount {
                id: AccountId(u128::from(*id)),
                ledger: JPY,
                code: 1,
                ..NewAccount::default()
            })
            .collect();
        ledger.create_accounts(&batch, now)?;
    }
    println!("{accounts} accounts in {:.1?}", started.elapsed());

    let started = Instant::now();
    let mut done: u64 = 0;
    let mut next_report = REPORT_EVERY;
    while done < transfers {
        let len = (transfers - done).min(BATCH_LEN_MAX as u64);
        let batch: Vec<NewTransfer> = (done + 1..=done + len)
            .map(|id| {
                let debit = 1 + id % accounts;
                let credit = 1 + (debit + 1 + id % (accounts - 1)) % accounts;
                let credit = if credit == debit {
                    1 + debit % accounts
                } else {
                    credit
                };
                NewTransfer {
                    id: TransferId(u128::from(id)),
                    debit_account_id: AccountId(u128::from(debit)),
                    credit_account_id: AccountId(u128::from(credit)),
                    amount: u128::from(1 + id % 10_000),
                    ledger: JPY,
                    code: 1,
                    ..NewTransfer::default()
                }
            })
            .collect();
        let results = ledger.create_transfers(&batch, now)?;
        if let Some(bad) = results.iter().find(|r| **r != CreateTransferResult::Ok) {
            return Err(format!("unexpected result {bad}").into());
        }
        done += len;
        if done >= next_report {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!("{done} transfers, {rate:.0}/s, peak RSS {}", peak_rss());
            next_report += REPORT_EVERY;
        }
    }
    let elapsed = started.elapsed();
    ledger.close()?;
    println!(
        "{transfers} transfers across {accounts} accounts in {elapsed:.1?}: {:.0} transfers/s, \
         peak RSS {}",
        transfers as f64 / elapsed.as_secs_f64(),
        peak_rss()
    );
    Ok(())
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc/self/status)".into())
}
