//! The typed export against what the ledger was given and what its lookups answer.

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::*;
use crate::codec::StoredRun;
use crate::ledger::trees::{META_FORMAT, PREFIX_META, Trees, Writes, open_db};
use crate::model::{AccountId, NewAccount, NewTransfer, Timestamp};
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::{Ledger, Options};

const JPY: u32 = 392;
const SGD: u32 = 702;
const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
const SECOND: u64 = 1_000_000_000;

fn open(path: &Path) -> Ledger {
    Ledger::open(path, SigningKey::from_bytes(&[7; 32]), Options::default()).expect("opens")
}

fn account(id: u128, ledger: u32, flags: AccountFlags) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        user_data_128: id * 1_000,
        user_data_64: 64,
        user_data_32: 32,
        ledger,
        code: 7,
        flags,
        timestamp: Timestamp(0),
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount,
        user_data_128: id * 1_000,
        user_data_64: 64,
        user_data_32: 32,
        ledger: JPY,
        code: 9,
        ..NewTransfer::default()
    }
}

fn pending(id: u128, debit: u128, credit: u128, amount: u128, timeout: u32) -> NewTransfer {
    NewTransfer {
        flags: TransferFlags::PENDING,
        timeout,
        ..transfer(id, debit, credit, amount)
    }
}

/// A post (with `amount`) or a void (`None`) of `pending_id`; zero fields inherit the pending
/// transfer's.
fn resolve(id: u128, pending_id: u128, amount: Option<u128>) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        pending_id: TransferId(pending_id),
        amount: amount.unwrap_or(0),
        flags: match amount {
            Some(_) => TransferFlags::POST_PENDING_TRANSFER,
            None => TransferFlags::VOID_PENDING_TRANSFER,
        },
        ..NewTransfer::default()
    }
}

#[track_caller]
fn create(ledger: &Ledger, transfers: &[NewTransfer]) {
    let results = ledger.create_transfers(transfers, NOW).expect("transfers");
    assert!(
        results.iter().all(|r| *r == CreateTransferResult::Ok),
        "{results:?}"
    );
}

/// The export of the closed ledger at `path`: its accounts and its transfers.
fn exported(path: &Path) -> (Vec<Account>, Vec<ExportedTransfer>) {
    let export = LedgerExport::open(path).expect("the export opens");
    let accounts = export.accounts().collect();
    let transfers = export
        .transfers()
        .collect::<Result<_, _>>()
        .expect("every transfer reads back");
    (accounts, transfers)
}

/// What the ledger answers for `ids`, as the export should give it.
fn looked_up(ledger: &Ledger, ids: &[u128]) -> Vec<(Transfer, Option<PendingStatus>)> {
    let ids: Vec<TransferId> = ids.iter().copied().map(TransferId).collect();
    let transfers = ledger.lookup_transfers(&ids).expect("lookup");
    transfers
        .into_iter()
        .map(|transfer| {
            let transfer = transfer.expect("stored");
            let status = ledger.pending_status(transfer.id).expect("status");
            (transfer, status)
        })
        .collect()
}

#[test]
fn accounts_and_transfers_of_every_kind_come_back_as_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let new_accounts = [
        account(1, JPY, AccountFlags::NONE),
        account(2, JPY, AccountFlags::HISTORY),
        account(3, JPY, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        account(4, JPY, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        account(5, JPY, AccountFlags::LINKED),
        account(6, JPY, AccountFlags::NONE),
        account(7, SGD, AccountFlags::NONE),
        account(8, SGD, AccountFlags::NONE),
    ];
    let results = ledger
        .create_accounts(&new_accounts, NOW)
        .expect("accounts");
    assert!(results.iter().all(|r| *r == CreateAccountResult::Ok));
    // Journal record 2: posted, pending (one with a timeout) and a linked pair.
    create(
        &ledger,
        &[
            transfer(10, 1, 2, 100),
            pending(11, 1, 3, 50, 0),
            pending(12, 4, 1, 30, 1),
            pending(13, 1, 2, 20, 0),
            NewTransfer {
                flags: TransferFlags::LINKED,
                ..transfer(14, 1, 5, 5)
            },
            transfer(15, 5, 6, 5),
            NewTransfer {
                ledger: SGD,
                ..transfer(16, 7, 8, 70)
            },
        ],
    );
    // Record 3: a partial post (user data inherited) and a void; record 4: an expiry.
    create(&ledger, &[resolve(20, 11, Some(40)), resolve(21, 13, None)]);
    let expired = ledger
        .expire_pending(Timestamp(NOW.0 + 2 * SECOND))
        .expect("expiry");
    assert_eq!(expired.count, 1);
    // Record 5.
    create(&ledger, &[transfer(30, 2, 1, 1)]);
    let account_ids: Vec<AccountId> = (1..=8).map(AccountId).collect();
    let accounts: Vec<Account> = ledger
        .lookup_accounts(&account_ids)
        .expect("lookup")
        .into_iter()
        .map(|account| account.expect("stored"))
        .collect();
    let transfer_ids = [10, 11, 12, 13, 14, 15, 16, 20, 21, 30];
    let transfers = looked_up(&ledger, &transfer_ids);
    ledger.close().expect("close");

    let (exported_accounts, exported_transfers) = exported(dir.path());
    assert_eq!(exported_accounts, accounts);
    for (account, new) in exported_accounts.iter().zip(&new_accounts) {
        let as_given = (
            account.id,
            account.user_data_128,
            account.user_data_64,
            account.user_data_32,
            account.ledger,
            account.code,
            account.flags,
        );
        let given = (
            new.id,
            new.user_data_128,
            new.user_data_64,
            new.user_data_32,
            new.ledger,
            new.code,
            new.flags,
        );
        assert_eq!(as_given, given);
    }
    let pairs: Vec<(Transfer, Option<PendingStatus>)> = exported_transfers
        .iter()
        .map(|exported| (exported.transfer, exported.pending_status))
        .collect();
    assert_eq!(pairs, transfers);
    let statuses: Vec<(u128, Option<PendingStatus>, u64)> = exported_transfers
        .iter()
        .map(|exported| {
            let id = exported.transfer.id.0;
            (id, exported.pending_status, exported.journal_seq)
        })
        .collect();
    use PendingStatus::{Expired, Posted, Voided};
    assert_eq!(
        statuses,
        [
            (10, None, 2),
            (11, Some(Posted), 2),
            (12, Some(Expired), 2),
            (13, Some(Voided), 2),
            (14, None, 2),
            (15, None, 2),
            (16, None, 2),
            (20, None, 3),
            (21, None, 3),
            (30, None, 5),
        ]
    );
    let post = exported_transfers[7].transfer;
    assert_eq!(
        (post.pending_id, post.amount, post.user_data_128, post.code),
        (TransferId(11), 40, 11_000, 9)
    );
}

#[test]
fn a_packed_run_and_a_spread_run_export_every_transfer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let accounts = [1, 2].map(|id| account(id, JPY, AccountFlags::NONE));
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    // One caller's batch of ordered ids: one packed run.
    let batch: Vec<NewTransfer> = (100..120).map(|id| transfer(id, 1, 2, id)).collect();
    create(&ledger, &batch);
    // Ids 200–202 at entries 0, 2 and 3 of one record: one spread run; 300 a run of one.
    create(
        &ledger,
        &[
            transfer(200, 1, 2, 1),
            transfer(300, 2, 1, 1),
            pending(201, 1, 2, 5, 0),
            resolve(202, 201, None),
        ],
    );
    let ids: Vec<u128> = (100..120).chain([200, 201, 202, 300]).collect();
    let transfers = looked_up(&ledger, &ids);
    ledger.close().expect("close");

    let export = LedgerExport::open(dir.path()).expect("the export opens");
    let runs: Vec<(u128, u32, bool)> = export
        .trees
        .transfers
        .iter()
        .map(|item| {
            let (key, value) = item.expect("read");
            let first = key_u128(&key, "run key").expect("key");
            let run = decode_transfer_run(&value).expect("run");
            (first, run.len(), matches!(run, StoredRun::Spread(_)))
        })
        .collect();
    assert_eq!(runs, [(100, 20, false), (200, 3, true), (300, 1, false)]);
    let exported: Vec<(Transfer, Option<PendingStatus>)> = export
        .transfers()
        .map(|item| item.map(|exported| (exported.transfer, exported.pending_status)))
        .collect::<Result<_, _>>()
        .expect("every transfer reads back");
    assert_eq!(exported, transfers);
    assert_eq!(exported[21].1, Some(PendingStatus::Voided));
    assert_eq!(export.accounts().len(), 2);
}

/// Scattered ids, `n` of them from `from` on: an odd multiplier keeps them unique.
fn scattered(from: u128, n: u128) -> Vec<u128> {
    (from..from + n)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) >> 16)
        .collect()
}

#[test]
fn transfers_in_id_tables_and_runs_export_in_id_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let accounts = [1, 2].map(|id| account(id, JPY, AccountFlags::NONE));
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    // Three batches of scattered ids make three id tables, which the committer merges as
    // they come; a batch of ordered ids in between stays a run, and a pending transfer in a
    // table is posted from another batch.
    let mut ids = Vec::new();
    for (round, batch_ids) in [scattered(1, 300), scattered(301, 200), scattered(501, 400)]
        .into_iter()
        .enumerate()
    {
        let mut batch: Vec<NewTransfer> = batch_ids
            .iter()
            .map(|id| transfer(*id, 1, 2, 1 + *id % 1_000))
            .collect();
        if round == 0
            && let Some(first) = batch.first_mut()
        {
            first.flags = TransferFlags::PENDING;
        }
        create(&ledger, &batch);
        ids.extend(batch_ids);
        create(
            &ledger,
            &(0..5)
                .map(|i| transfer(10 + 5 * round as u128 + i, 2, 1, 1))
                .collect::<Vec<_>>(),
        );
        ids.extend((0..5).map(|i| 10 + 5 * round as u128 + i));
    }
    let pending_id = scattered(1, 1)[0];
    create(&ledger, &[resolve(99, pending_id, Some(1))]);
    ids.push(99);
    ids.sort_unstable();
    let transfers = looked_up(&ledger, &ids);
    assert!(
        transfers
            .iter()
            .any(|(t, status)| t.id.0 == pending_id && *status == Some(PendingStatus::Posted))
    );
    ledger.close().expect("close");

    let export = LedgerExport::open(dir.path()).expect("the export opens");
    let tables = export.trees.id_table_list().expect("listed");
    assert!(!tables.is_empty(), "scattered batches make id tables");
    assert!(tables.len() < 3, "the committer merged tables: {tables:?}");
    let exported: Vec<(Transfer, Option<PendingStatus>)> = export
        .transfers()
        .map(|item| item.map(|exported| (exported.transfer, exported.pending_status)))
        .collect::<Result<_, _>>()
        .expect("every transfer reads back");
    assert_eq!(exported, transfers);
}

#[test]
fn opening_refuses_a_missing_a_locked_and_an_unknown_format_ledger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let error = LedgerExport::open(&missing).err();
    assert!(matches!(error, Some(Error::NotFound { .. })), "{error:?}");
    assert!(!missing.exists(), "the export must not create a database");

    let ledger = open(dir.path());
    let error = LedgerExport::open(dir.path()).err();
    assert!(matches!(error, Some(Error::Locked { .. })), "{error:?}");
    ledger.close().expect("close");

    let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
    let mut writes = Writes::default();
    writes.insert(PREFIX_META, META_FORMAT, &[2]);
    trees.apply(writes, "test").expect("applied");
    trees.db.flush().expect("flushed");
    drop(trees);
    let error = LedgerExport::open(dir.path()).err();
    assert!(
        matches!(&error, Some(Error::UnsupportedFormat { found, .. }) if found == "2"),
        "{error:?}"
    );
}

/// Every flag with a meaning has its TigerBeetle name in the export.
#[test]
fn every_known_flag_is_named() {
    let accounts = account_flag_names(AccountFlags::KNOWN);
    assert_eq!(
        accounts,
        [
            "linked",
            "debits_must_not_exceed_credits",
            "credits_must_not_exceed_debits",
            "history",
            "imported",
            "closed"
        ]
    );
    let transfers = transfer_flag_names(TransferFlags::KNOWN);
    assert_eq!(
        transfers,
        [
            "linked",
            "pending",
            "post_pending_transfer",
            "void_pending_transfer",
            "balancing_debit",
            "balancing_credit",
            "closing_debit",
            "closing_credit",
            "imported"
        ]
    );
}
