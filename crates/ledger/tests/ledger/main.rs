//! Integration tests of the durable ledger, through its public API only.
//!
//! - `lifecycle`: open, create, close, reopen; node key handling; lookups.
//! - `audit`: a clean audit, and tampering with stored bytes named precisely.
//! - `contract`: the conformance table of every result and its precedence.
//! - `properties`: proptest over random operation sequences.
//! - `mixed`: proptest over random batches mixing every feature, on both ledgers at once.
//! - `crash`: a writer in a child process killed with SIGKILL at random moments.
//!
//! One binary (one link, one process to run), one file per module; the helpers below are
//! shared by all of them.

mod audit;
mod contract;
mod crash;
mod lifecycle;
mod mixed;
mod properties;
mod workload;

use std::path::Path;

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountFlags, AccountId, AuditOptions, AuditReport, CreateAccountResult, CreateTransferResult,
    Ledger, NewAccount, NewTransfer, Options, Timestamp, TransferFlags, TransferId,
};

const JPY: u32 = 392;
const SGD: u32 = 702;
const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn open(path: &Path) -> Ledger {
    let options = Options {
        checkpoint_interval: 2,
        checkpoint_events_min: 0,
        ..Options::default()
    };
    Ledger::open(path, node_key(), options).expect("ledger opens")
}

fn account(id: u128, ledger: u32, flags: AccountFlags) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        ledger,
        code: 1,
        flags,
        ..NewAccount::default()
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128, ledger: u32) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount,
        ledger,
        code: 1,
        ..NewTransfer::default()
    }
}

/// How many journal chunks the closed ledger at `path` stores (prefix `j` of the state tree).
fn journal_chunks(path: &Path) -> u64 {
    stored_keys(path, b"j")
}

/// Keys of the transfer index: one per run of ids.
fn transfer_index_keys(path: &Path) -> u64 {
    stored_keys(path, b"t")
}

fn stored_keys(path: &Path, prefix: &[u8]) -> u64 {
    // sled releases a closed database's lock from its background threads a few milliseconds
    // after the last handle is dropped; retry for a while, as the ledger does.
    for _ in 0..200 {
        if let Ok(db) = sled::open(path) {
            let tree = db.open_tree("ledger").expect("tree");
            return tree.scan_prefix(prefix).count() as u64;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("sled did not open {}", path.display());
}

/// A new ledger in a temporary directory with JPY accounts `1..=count`, no flags.
fn with_accounts(count: u128) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let accounts: Vec<NewAccount> = (1..=count)
        .map(|id| account(id, JPY, AccountFlags::NONE))
        .collect();
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    (dir, ledger)
}

/// Audits `path` and asserts the report is clean, printing every finding otherwise.
#[track_caller]
fn check_clean(path: &Path) -> AuditReport {
    let report = kakehashi_ledger::audit(path, &AuditOptions::default()).expect("audit runs");
    assert!(
        report.is_clean(),
        "audit found: {:#?}",
        report.discrepancies
    );
    report
}

/// A small ledger with two currencies, pending, posted, voided and expired transfers.
fn populate(ledger: &Ledger) {
    let accounts = [
        account(1, JPY, AccountFlags::NONE),
        account(
            2,
            JPY,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY),
        ),
        account(3, SGD, AccountFlags::NONE),
        account(4, SGD, AccountFlags::NONE),
    ];
    let results = ledger.create_accounts(&accounts, NOW).expect("accounts");
    assert!(
        results.iter().all(|r| *r == CreateAccountResult::Ok),
        "{results:?}"
    );
    let pending = |id, debit, credit, amount, ledger, timeout| NewTransfer {
        flags: TransferFlags::PENDING,
        timeout,
        ..transfer(id, debit, credit, amount, ledger)
    };
    let batches = [
        vec![transfer(10, 1, 2, 1_000, JPY), transfer(11, 3, 4, 250, SGD)],
        vec![
            pending(20, 2, 1, 300, JPY, 0),
            pending(21, 4, 3, 50, SGD, 1),
        ],
        vec![NewTransfer {
            id: TransferId(30),
            pending_id: TransferId(20),
            amount: 200,
            flags: TransferFlags::POST_PENDING_TRANSFER,
            ..NewTransfer::default()
        }],
        vec![
            pending(40, 1, 2, 5, JPY, 0),
            NewTransfer {
                id: TransferId(41),
                pending_id: TransferId(40),
                flags: TransferFlags::VOID_PENDING_TRANSFER,
                ..NewTransfer::default()
            },
        ],
    ];
    for batch in batches {
        let results = ledger.create_transfers(&batch, NOW).expect("transfers");
        assert!(
            results.iter().all(|r| *r == CreateTransferResult::Ok),
            "{results:?}"
        );
    }
    let later = Timestamp(NOW.0 + 5_000_000_000);
    let expired = ledger.expire_pending(later).expect("expiry");
    assert_eq!((expired.count, expired.more), (1, false));
}
