//! Integration tests of the durable ledger, through its public API only.
//!
//! - `lifecycle`: open, create, close, reopen; node key handling; lookups.
//! - `audit`: a clean audit, and tampering with stored bytes named precisely.
//! - `properties`: proptest over random operation sequences.
//! - `crash`: a writer in a child process killed with SIGKILL at random moments.

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

mod lifecycle {
    use super::*;

    #[test]
    fn every_transfer_of_a_large_batch_reads_back_whole_and_repeats_are_exists() {
        // 100 transfers of 128 bytes span four 4 KiB journal chunks, so some entries straddle
        // a chunk boundary when read back through the transfer index.
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        let accounts = [
            account(1, JPY, AccountFlags::NONE),
            account(2, JPY, AccountFlags::NONE),
        ];
        ledger.create_accounts(&accounts, NOW).expect("accounts");
        let batch: Vec<NewTransfer> = (1..=100u128)
            .map(|id| NewTransfer {
                user_data_128: id * 1_000,
                ..transfer(500 + id, 1, 2, id, JPY)
            })
            .collect();
        let results = ledger.create_transfers(&batch, NOW).expect("transfers");
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
        ledger.close().expect("close");
        let ledger = open(dir.path());
        let ids: Vec<TransferId> = batch.iter().map(|t| t.id).collect();
        let found = ledger.lookup_transfers(&ids).expect("lookup");
        for (event, stored) in batch.iter().zip(&found) {
            let stored = stored.expect("stored");
            assert_eq!(
                (stored.id, stored.amount, stored.user_data_128),
                (event.id, event.amount, event.user_data_128)
            );
        }
        let mut repeat = batch.clone();
        repeat[37].amount += 1;
        let results = ledger.create_transfers(&repeat, NOW).expect("repeat");
        assert_eq!(results[36], CreateTransferResult::Exists);
        assert_eq!(results[37], CreateTransferResult::ExistsWithDifferentAmount);
        assert!(
            results
                .iter()
                .enumerate()
                .all(|(index, r)| index == 37 || *r == CreateTransferResult::Exists)
        );
        ledger.close().expect("close");
        check_clean(dir.path());
    }

    #[test]
    fn balances_survive_close_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        populate(&ledger);
        let ids: Vec<AccountId> = (1..=4).map(AccountId).collect();
        let before = ledger.lookup_accounts(&ids).expect("lookup");
        ledger.close().expect("close");
        let ledger = open(dir.path());
        assert_eq!(ledger.lookup_accounts(&ids).expect("lookup"), before);
        let one = before[0].expect("account 1");
        // 1,000 posted to 2, then 200 of 300 reserved posted back, 5 reserved then voided.
        assert_eq!(
            (one.debits_posted, one.credits_posted, one.debits_pending),
            (1_000, 200, 0)
        );
        let three = before[2].expect("account 3");
        assert_eq!(three.credits_pending, 0, "expired reservation released");
        assert_eq!(
            ledger.pending_status(TransferId(21)).expect("status"),
            Some(kakehashi_ledger::PendingStatus::Expired)
        );
        // Account 2 was touched by transfers 10, 20, 30, 40 and 41.
        let history = ledger.account_history(AccountId(2)).expect("history");
        assert_eq!(history.len(), 5);
        ledger.close().expect("close");
        check_clean(dir.path());
    }

    #[test]
    fn reopening_replays_the_journal_written_after_the_account_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No snapshot or checkpoint is due within six records: every balance on reopen comes
        // from replaying the journal onto the empty snapshot.
        let rare = Options {
            checkpoint_interval: 1_000,
            ..Options::default()
        };
        let ledger = Ledger::open(dir.path(), node_key(), rare.clone()).expect("opens");
        populate(&ledger);
        let ids: Vec<AccountId> = (1..=4).map(AccountId).collect();
        let before = ledger.lookup_accounts(&ids).expect("lookup");
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.checkpoints_verified, 0);
        let ledger = Ledger::open(dir.path(), node_key(), rare).expect("reopens");
        assert_eq!(ledger.lookup_accounts(&ids).expect("lookup"), before);
        ledger.close().expect("close");
        // Reopening with a short interval takes the overdue snapshot and checkpoint at once.
        open(dir.path()).close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.checkpoints_verified, 1);
    }

    #[test]
    fn retrying_a_batch_after_reopen_returns_exists_and_moves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        populate(&ledger);
        ledger.close().expect("close");
        let ledger = open(dir.path());
        let retry = [transfer(10, 1, 2, 1_000, JPY)];
        assert_eq!(
            ledger.create_transfers(&retry, NOW).expect("retry"),
            [CreateTransferResult::Exists]
        );
        let changed = [transfer(10, 1, 2, 999, JPY)];
        assert_eq!(
            ledger.create_transfers(&changed, NOW).expect("retry"),
            [CreateTransferResult::ExistsWithDifferentAmount]
        );
        let one = ledger.lookup_accounts(&[AccountId(1)]).expect("lookup")[0].expect("exists");
        assert_eq!(one.debits_posted, 1_000);
        ledger.close().expect("close");
        check_clean(dir.path());
    }

    #[test]
    fn reopening_with_another_node_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        open(dir.path()).close().expect("close");
        let other = SigningKey::from_bytes(&[8; 32]);
        let error = Ledger::open(dir.path(), other, Options::default())
            .err()
            .expect("refused");
        assert!(
            matches!(error, kakehashi_ledger::Error::NodeKeyMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn oversized_batch_is_refused_whole_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        let too_many: Vec<NewAccount> = (1..=kakehashi_ledger::BATCH_LEN_MAX as u128 + 1)
            .map(|id| account(id, JPY, AccountFlags::NONE))
            .collect();
        let error = ledger.create_accounts(&too_many, NOW).expect_err("refused");
        assert!(matches!(
            error,
            kakehashi_ledger::Error::BatchTooLong {
                len: 8191,
                len_max: 8190
            }
        ));
        assert_eq!(
            ledger.lookup_accounts(&[AccountId(1)]).expect("lookup"),
            [None]
        );
        let full = &too_many[..kakehashi_ledger::BATCH_LEN_MAX];
        let results = ledger
            .create_accounts(full, NOW)
            .expect("a full batch is fine");
        assert!(results.iter().all(|r| *r == CreateAccountResult::Ok));
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.accounts, 8190);
    }

    #[test]
    fn rejected_events_write_no_journal_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        populate(&ledger);
        let bad = [transfer(99, 1, 1, 5, JPY), transfer(0, 1, 2, 5, JPY)];
        let results = ledger.create_transfers(&bad, NOW).expect("answered");
        assert_eq!(
            results,
            [
                CreateTransferResult::AccountsMustBeDifferent,
                CreateTransferResult::IdMustNotBeZero
            ]
        );
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        // populate: 1 account batch, 4 transfer batches, 1 expiry; the rejected batch adds none.
        assert_eq!(report.records, 6);
    }

    #[test]
    fn concurrent_callers_are_all_answered_and_balanced() {
        let (dir, ledger) = with_accounts(8);
        std::thread::scope(|scope| {
            for caller in 0..16u128 {
                let ledger = &ledger;
                scope.spawn(move || {
                    for n in 0..20u128 {
                        let id = 1_000 + caller * 100 + n;
                        let event = transfer(id, 1 + caller % 8, 1 + (caller + 1) % 8, 1 + n, JPY);
                        let results = ledger.create_transfers(&[event], NOW).expect("answered");
                        assert_eq!(results, [CreateTransferResult::Ok]);
                    }
                });
            }
        });
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.transfers, 320);
    }

    /// 64 callers of single transfers: groups hold many one-transfer records, which share
    /// journal chunks. Every transfer reads back from those shared chunks, before and after a
    /// reopen (which replays them), and the audit splits them back into the same records.
    #[test]
    fn single_transfers_from_many_callers_share_journal_chunks_and_read_back() {
        const CALLERS: u128 = 64;
        const EACH: u128 = 8;
        let (dir, ledger) = with_accounts(4);
        let id = |caller: u128, n: u128| 10_000 + caller * 100 + n;
        std::thread::scope(|scope| {
            for caller in 0..CALLERS {
                let ledger = &ledger;
                scope.spawn(move || {
                    for n in 0..EACH {
                        let event = transfer(
                            id(caller, n),
                            1 + caller % 4,
                            1 + (caller + 1) % 4,
                            1 + n,
                            JPY,
                        );
                        assert_eq!(
                            ledger.create_transfers(&[event], NOW).expect("answered"),
                            [CreateTransferResult::Ok]
                        );
                    }
                });
            }
        });
        let ids: Vec<TransferId> = (0..CALLERS)
            .flat_map(|caller| (0..EACH).map(move |n| TransferId(id(caller, n))))
            .collect();
        let check = |ledger: &Ledger| {
            let found = ledger.lookup_transfers(&ids).expect("lookup");
            for (id, transfer) in ids.iter().zip(found) {
                let transfer = transfer.unwrap_or_else(|| panic!("{id:?} missing"));
                assert_eq!(transfer.amount, 1 + (id.0 - 10_000) % 100);
            }
        };
        check(&ledger);
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.transfers, (CALLERS * EACH) as u64);
        // One record per batch, but fewer journal keys: records of one group shared chunks.
        let chunks = journal_chunks(dir.path());
        assert!(
            chunks < report.records,
            "{chunks} journal chunks for {} records",
            report.records
        );
        let reopened = open(dir.path());
        check(&reopened);
        reopened.close().expect("close");
    }

    /// 64 callers of single transfers drawing ids from one counter: the records of a group
    /// hold consecutive ids, which the index stores as spread runs (far fewer keys than
    /// transfers). Every transfer reads back through them, before and after a reopen, a
    /// repeat of any id is `exists`, and the audit counts every transfer once.
    #[test]
    fn single_transfers_with_ids_from_one_counter_are_indexed_as_spread_runs() {
        use std::sync::atomic::{AtomicU64, Ordering};
        const CALLERS: u64 = 64;
        const EACH: u64 = 8;
        const FIRST_ID: u64 = 70_000;
        let (dir, ledger) = with_accounts(4);
        let next = AtomicU64::new(FIRST_ID);
        let event = |id: u64| {
            let id = u128::from(id);
            transfer(id, 1 + id % 4, 1 + (id + 1) % 4, 1 + id % 100, JPY)
        };
        std::thread::scope(|scope| {
            for _ in 0..CALLERS {
                let (ledger, next) = (&ledger, &next);
                scope.spawn(move || {
                    for _ in 0..EACH {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(
                            ledger
                                .create_transfers(&[event(id)], NOW)
                                .expect("answered"),
                            [CreateTransferResult::Ok]
                        );
                    }
                });
            }
        });
        let ids: Vec<TransferId> = (FIRST_ID..FIRST_ID + CALLERS * EACH)
            .map(|id| TransferId(u128::from(id)))
            .collect();
        let check = |ledger: &Ledger| {
            let found = ledger.lookup_transfers(&ids).expect("lookup");
            for (id, transfer) in ids.iter().zip(found) {
                let transfer = transfer.unwrap_or_else(|| panic!("{id:?} missing"));
                assert_eq!(transfer.id, *id);
                assert_eq!(transfer.amount, 1 + id.0 % 100);
            }
            let around =
                [FIRST_ID - 1, FIRST_ID + CALLERS * EACH].map(|id| TransferId(u128::from(id)));
            assert_eq!(
                ledger.lookup_transfers(&around).expect("lookup"),
                [None, None]
            );
        };
        check(&ledger);
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.transfers, CALLERS * EACH);
        let keys = transfer_index_keys(dir.path());
        assert!(
            keys * 2 < report.transfers,
            "{keys} index keys for {} transfers",
            report.transfers
        );
        // The export walks the index: every transfer once, in id order.
        let mut out = Vec::new();
        let summary = kakehashi_ledger::export(dir.path(), &mut out).expect("exports");
        assert_eq!(summary.transfers, CALLERS * EACH);
        let exported: Vec<u128> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("json"))
            .filter(|line| line["type"] == "transfer")
            .map(|line| line["id"].as_str().expect("id").parse().expect("u128"))
            .collect();
        let expected: Vec<u128> = ids.iter().map(|id| id.0).collect();
        assert_eq!(exported, expected);
        let reopened = open(dir.path());
        check(&reopened);
        let repeats: Vec<NewTransfer> = [FIRST_ID, FIRST_ID + 100, FIRST_ID + CALLERS * EACH - 1]
            .into_iter()
            .map(event)
            .collect();
        assert_eq!(
            reopened.create_transfers(&repeats, NOW).expect("answered"),
            [CreateTransferResult::Exists; 3]
        );
        reopened.close().expect("close");
        check_clean(dir.path());
    }

    /// Pending transfers created, posted, voided, expired and repeated by concurrent callers,
    /// so that later groups decide on transfers of earlier groups that are still being
    /// committed: each pending transfer is resolved at most once, what the callers were told
    /// matches the stored statuses, and the audit is clean.
    #[test]
    fn concurrent_two_phase_callers_resolve_each_pending_transfer_once() {
        use kakehashi_ledger::PendingStatus;
        use std::sync::Mutex;

        const CREATORS: u128 = 4;
        const PER_CREATOR: u128 = 60;
        const RESOLVERS: u128 = 4;
        const SECOND: u64 = 1_000_000_000;
        let (dir, ledger) = with_accounts(6);
        let pending_id = |creator: u128, n: u128| 10_000 + creator * 1_000 + n;
        // (pending id, "posted" or "voided") for every resolution answered `ok`.
        let resolved = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for creator in 0..CREATORS {
                let ledger = &ledger;
                scope.spawn(move || {
                    for n in (0..PER_CREATOR).step_by(3) {
                        let batch: Vec<NewTransfer> = (n..n + 3)
                            .map(|n| NewTransfer {
                                flags: TransferFlags::PENDING,
                                timeout: 1,
                                ..transfer(
                                    pending_id(creator, n),
                                    1 + n % 3,
                                    4 + creator % 3,
                                    5,
                                    JPY,
                                )
                            })
                            .collect();
                        let results = ledger.create_transfers(&batch, NOW).expect("answered");
                        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
                        // The same batch again, at once: every event already exists.
                        let again = ledger.create_transfers(&batch, NOW).expect("answered");
                        assert!(again.iter().all(|r| *r == CreateTransferResult::Exists));
                    }
                });
            }
            for resolver in 0..RESOLVERS {
                let (ledger, resolved) = (&ledger, &resolved);
                scope.spawn(move || {
                    for round in 0..3 * PER_CREATOR {
                        let creator = (round + resolver) % CREATORS;
                        let n = (round / CREATORS + resolver * 7) % PER_CREATOR;
                        let target = pending_id(creator, n);
                        let id = 100_000 + resolver * 10_000 + round;
                        let post = (round + resolver) % 2 == 0;
                        let event = NewTransfer {
                            id: TransferId(id),
                            pending_id: TransferId(target),
                            amount: if post { 5 } else { 0 },
                            flags: if post {
                                TransferFlags::POST_PENDING_TRANSFER
                            } else {
                                TransferFlags::VOID_PENDING_TRANSFER
                            },
                            ..NewTransfer::default()
                        };
                        let result = ledger.create_transfers(&[event], NOW).expect("answered");
                        if result == [CreateTransferResult::Ok] {
                            let what = if post { "posted" } else { "voided" };
                            resolved.lock().expect("lock").push((target, what));
                        }
                    }
                });
            }
            let ledger = &ledger;
            scope.spawn(move || {
                for round in 0..40u64 {
                    // Later and later clocks: the first rounds find little due, the last all.
                    let now = Timestamp(NOW.0 + round * SECOND / 10);
                    ledger.expire_pending(now).expect("answered");
                }
            });
        });
        let resolved = resolved.into_inner().expect("lock");
        let mut targets: Vec<u128> = resolved.iter().map(|(target, _)| *target).collect();
        targets.sort_unstable();
        let before = targets.len();
        targets.dedup();
        assert_eq!(
            targets.len(),
            before,
            "a pending transfer was resolved twice"
        );
        for (target, what) in &resolved {
            let status = ledger.pending_status(TransferId(*target)).expect("status");
            let expected = if *what == "posted" {
                PendingStatus::Posted
            } else {
                PendingStatus::Voided
            };
            assert_eq!(status, Some(expected), "pending {target}");
        }
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(
            report.transfers,
            u64::try_from(CREATORS * PER_CREATOR + before as u128).expect("small")
        );
    }
}

mod audit {
    use super::*;
    use kakehashi_ledger::Location;

    fn populated() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        populate(&ledger);
        ledger.close().expect("close");
        dir
    }

    /// Rewrites one stored value directly in sled, as an attacker with file access could.
    fn tamper(path: &Path, tree: &str, key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
        // sled releases a closed database's file lock from its background threads a few
        // milliseconds after the last handle is dropped; retry for a while, as the ledger does.
        let mut attempts = 0;
        let db = loop {
            match sled::open(path) {
                Ok(db) => break db,
                Err(error) if attempts < 200 => {
                    attempts += 1;
                    let _ = error;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => panic!("sled opens: {error}"),
            }
        };
        let tree = db.open_tree(tree).expect("tree");
        let mut value = tree.get(key).expect("read").expect("present").to_vec();
        edit(&mut value);
        tree.insert(key, value).expect("write");
        db.flush().expect("flush");
    }

    /// Journal chunks live in the state tree under prefix `j`, then seq and chunk index.
    fn journal_key(seq: u64, chunk: u32) -> Vec<u8> {
        let mut key = vec![b'j'];
        key.extend_from_slice(&seq.to_be_bytes());
        key.extend_from_slice(&chunk.to_be_bytes());
        key
    }

    #[test]
    fn clean_ledger_reports_totals_and_verified_checkpoints() {
        let dir = populated();
        let report = check_clean(dir.path());
        assert_eq!(report.records, 6);
        assert_eq!(report.transfers, 7);
        assert_eq!(report.expiries, 1);
        assert!(report.checkpoints_verified >= 2, "{report:?}");
        let jpy = report
            .ledgers
            .iter()
            .find(|l| l.ledger == JPY)
            .expect("jpy totals");
        assert_eq!(jpy.debits_posted, jpy.credits_posted);
        assert_eq!(jpy.debits_posted, "1200");
    }

    #[test]
    fn one_flipped_byte_in_a_journal_record_is_named() {
        let dir = populated();
        // Record 2 is the first transfer batch; byte 70 lies inside its first transfer's id.
        tamper(dir.path(), "ledger", &journal_key(2, 0), |value| {
            value[70] ^= 0x01
        });
        let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
        assert!(!report.is_clean());
        let altered = report
            .discrepancies
            .iter()
            .find(|d| d.location == Location::JournalRecord { seq: 2 })
            .expect("record 2 named");
        assert!(altered.detail.contains("content altered"), "{altered}");
    }

    #[test]
    fn altered_balance_is_named_with_expected_and_found() {
        let dir = populated();
        // Accounts live in the state tree under prefix `a`, then the big-endian id.
        let mut key = vec![b'a'];
        key.extend_from_slice(&1u128.to_be_bytes());
        // Bytes 32..48 hold debits_posted (after id and debits_pending).
        tamper(dir.path(), "ledger", &key, |value| value[32] ^= 0x04);
        let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
        let finding = report
            .discrepancies
            .iter()
            .find(|d| d.location == Location::Account { id: "1".into() })
            .expect("account 1 named");
        assert!(
            finding
                .detail
                .contains("expected debits pending/posted 0/1000"),
            "{finding}"
        );
        assert!(
            report
                .discrepancies
                .iter()
                .any(|d| d.location == Location::Ledger { ledger: JPY })
        );
    }

    #[test]
    fn forged_checkpoint_signature_is_named() {
        let dir = populated();
        tamper(dir.path(), "checkpoints", &2u64.to_be_bytes(), |value| {
            let last = value.len() - 1;
            value[last] ^= 0x80;
        });
        let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
        let finding = report
            .discrepancies
            .iter()
            .find(|d| d.location == Location::Checkpoint { seq: 2 })
            .expect("checkpoint named");
        assert!(
            finding.detail.contains("signature does not verify"),
            "{finding}"
        );
    }

    #[test]
    fn pinned_key_that_differs_is_a_discrepancy() {
        let dir = populated();
        let pinned = SigningKey::from_bytes(&[9; 32]).verifying_key();
        let options = AuditOptions {
            expected_key: Some(pinned),
        };
        let report = kakehashi_ledger::audit(dir.path(), &options).expect("runs");
        assert!(
            report
                .discrepancies
                .iter()
                .any(|d| d.location == Location::Meta)
        );
        assert_eq!(report.checkpoints_verified, 0);
        let right = AuditOptions {
            expected_key: Some(node_key().verifying_key()),
        };
        assert!(
            kakehashi_ledger::audit(dir.path(), &right)
                .expect("runs")
                .is_clean()
        );
    }

    #[test]
    fn deleted_journal_record_is_named_as_a_gap() {
        let dir = populated();
        {
            let db = sled::open(dir.path()).expect("sled opens");
            let journal = db.open_tree("ledger").expect("tree");
            journal.remove(journal_key(3, 0)).expect("remove");
            db.flush().expect("flush");
        }
        let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
        assert!(
            report
                .discrepancies
                .iter()
                .any(|d| d.location == Location::JournalRecord { seq: 4 }
                    && d.detail.contains("expected record 3")),
            "{:#?}",
            report.discrepancies
        );
    }

    #[test]
    fn audit_and_export_refuse_another_storage_format_before_reading_it() {
        let dir = populated();
        tamper(dir.path(), "ledger", b"mformat", |value| value[0] = 2);
        let error =
            kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect_err("refused");
        assert!(
            matches!(&error, kakehashi_ledger::Error::UnsupportedFormat { found, supported: 5 } if found == "2"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("storage format 2 is not format 5")
        );
        let mut out = Vec::new();
        let error = kakehashi_ledger::export(dir.path(), &mut out).expect_err("refused");
        assert!(matches!(
            error,
            kakehashi_ledger::Error::UnsupportedFormat { .. }
        ));
        assert!(out.is_empty(), "nothing exported");
        let opened = Ledger::open(dir.path(), node_key(), Options::default());
        assert!(matches!(
            opened.err(),
            Some(kakehashi_ledger::Error::UnsupportedFormat { .. })
        ));
    }

    /// A flipped byte in the second record of a shared journal chunk is named as that record,
    /// not as the chunk's first one.
    #[test]
    fn one_flipped_byte_in_a_shared_journal_chunk_names_its_record() {
        // A one-transfer record: header, one 128-byte transfer, hash.
        const RECORD_LEN: usize = 54 + 128 + 32;
        let (dir, ledger) = with_accounts(2);
        std::thread::scope(|scope| {
            for caller in 0..64u128 {
                let ledger = &ledger;
                scope.spawn(move || {
                    for n in 0..4u128 {
                        let event = transfer(1_000 + caller * 10 + n, 1, 2, 1, JPY);
                        ledger.create_transfers(&[event], NOW).expect("answered");
                    }
                });
            }
        });
        ledger.close().expect("close");
        // Find a chunk holding several one-transfer records.
        let mut shared = None;
        for _ in 0..200 {
            if let Ok(db) = sled::open(dir.path()) {
                let tree = db.open_tree("ledger").expect("tree");
                shared = tree
                    .scan_prefix(b"j")
                    .map(|item| item.expect("read"))
                    .find(|(_, value)| value.len() >= 2 * RECORD_LEN)
                    .map(|(key, _)| key.to_vec());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let key = shared.expect("64 callers share at least one journal chunk");
        let first = u64::from_be_bytes(key[1..9].try_into().expect("seq"));
        // Byte 70 of the second record lies inside its transfer's id.
        tamper(dir.path(), "ledger", &key, |value| {
            value[RECORD_LEN + 70] ^= 0x01
        });
        let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
        let altered = report
            .discrepancies
            .iter()
            .find(|d| d.location == Location::JournalRecord { seq: first + 1 })
            .unwrap_or_else(|| panic!("record {} named: {:#?}", first + 1, report.discrepancies));
        assert!(altered.detail.contains("content altered"), "{altered}");
        assert!(
            !report
                .discrepancies
                .iter()
                .any(|d| d.location == Location::JournalRecord { seq: first }),
            "{:#?}",
            report.discrepancies
        );
    }

    /// A format 4 database is a format 5 one without spread runs in its transfer index, and a
    /// format 3 one is a format 4 one whose chunks each hold one record: the audit reads both
    /// as they are, and the writer upgrades the stored version at open.
    #[test]
    fn formats_3_and_4_are_read_and_upgraded_by_the_writer() {
        for version in [3, 4] {
            let dir = populated();
            tamper(dir.path(), "ledger", b"mformat", |value| value[0] = version);
            check_clean(dir.path());
            let ledger = open(dir.path());
            let results = ledger
                .create_transfers(&[transfer(50, 1, 2, 7, JPY)], NOW)
                .expect("transfers");
            assert_eq!(results, [CreateTransferResult::Ok]);
            ledger.close().expect("close");
            let report = check_clean(dir.path());
            assert_eq!(report.transfers, 8);
            let mut format = Vec::new();
            tamper(dir.path(), "ledger", b"mformat", |value| {
                format = value.clone()
            });
            assert_eq!(format, [5], "from format {version}");
        }
    }

    #[test]
    fn audit_of_a_missing_directory_is_an_error_not_a_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nothing-here");
        let error = kakehashi_ledger::audit(&missing, &AuditOptions::default()).expect_err("error");
        assert!(matches!(error, kakehashi_ledger::Error::NotFound { .. }));
        assert!(!missing.exists(), "the audit must not create a database");
    }

    #[test]
    fn audit_refuses_a_ledger_held_by_a_running_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open(dir.path());
        let error = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).err();
        assert!(
            matches!(error, Some(kakehashi_ledger::Error::Storage { .. })),
            "{error:?}"
        );
        ledger.close().expect("close");
    }

    #[test]
    fn export_writes_every_account_and_transfer_as_json_lines() {
        let dir = populated();
        let mut out = Vec::new();
        let summary = kakehashi_ledger::export(dir.path(), &mut out).expect("exports");
        assert_eq!((summary.accounts, summary.transfers), (4, 7));
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("json"))
            .collect();
        assert_eq!(lines.len(), 11);
        let first_transfer = lines
            .iter()
            .find(|l| l["type"] == "transfer")
            .expect("a transfer");
        assert_eq!(first_transfer["id"], "10");
        assert_eq!(first_transfer["amount"], "1000");
        let expired = lines
            .iter()
            .find(|l| l["id"] == "21" && l["type"] == "transfer")
            .expect("21");
        assert_eq!(expired["pending_status"], "expired");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const ACCOUNTS: u128 = 6;

    #[derive(Clone, Debug)]
    enum Op {
        /// A transfer between two accounts (indices into the fixture), pending or posted.
        Transfer {
            debit: u128,
            credit: u128,
            amount: u128,
            pending: bool,
            timeout: u32,
        },
        /// Post a fraction (in 1/4) of an earlier pending transfer, or void it.
        Resolve {
            which: usize,
            quarters: u128,
            void: bool,
        },
        /// Let time pass and expire what is due.
        Expire { seconds: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..=ACCOUNTS, 1..=ACCOUNTS, 1..2_000u128, any::<bool>(), 0..3u32).prop_map(
                |(debit, credit, amount, pending, timeout)| Op::Transfer {
                    debit, credit, amount, pending, timeout
                }
            ),
            2 => (0..16usize, 0..=4u128, any::<bool>())
                .prop_map(|(which, quarters, void)| Op::Resolve { which, quarters, void }),
            1 => (0..4u64).prop_map(|seconds| Op::Expire { seconds }),
        ]
    }

    /// Accounts 1–2 limited (debits ≤ credits, credits ≤ debits), 3–6 free; 6 is SGD.
    fn fixture_accounts() -> Vec<NewAccount> {
        (1..=ACCOUNTS)
            .map(|id| {
                let flags = match id {
                    1 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
                    2 => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS.union(AccountFlags::HISTORY),
                    _ => AccountFlags::NONE,
                };
                account(id, if id == 6 { SGD } else { JPY }, flags)
            })
            .collect()
    }

    fn check_invariants(ledger: &Ledger) {
        let ids: Vec<AccountId> = (1..=ACCOUNTS).map(AccountId).collect();
        let accounts: Vec<_> = ledger
            .lookup_accounts(&ids)
            .expect("lookup")
            .into_iter()
            .flatten()
            .collect();
        for currency in [JPY, SGD] {
            let of = |f: fn(&kakehashi_ledger::Account) -> u128| -> u128 {
                accounts
                    .iter()
                    .filter(|a| a.ledger == currency)
                    .map(f)
                    .sum()
            };
            assert_eq!(
                of(|a| a.debits_posted),
                of(|a| a.credits_posted),
                "ledger {currency}"
            );
            assert_eq!(
                of(|a| a.debits_pending),
                of(|a| a.credits_pending),
                "ledger {currency}"
            );
        }
        for account in &accounts {
            if account
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            {
                assert!(account.debits_pending + account.debits_posted <= account.credits_posted);
            }
            if account
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            {
                assert!(account.credits_pending + account.credits_posted <= account.debits_posted);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_keep_the_books_balanced(
            batches in proptest::collection::vec(proptest::collection::vec(op(), 1..8), 1..6)
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let ledger = open(dir.path());
            ledger.create_accounts(&fixture_accounts(), NOW).expect("accounts");
            let mut now = NOW.0;
            let mut next_id = 100u128;
            let mut pendings: Vec<(u128, u128)> = Vec::new();
            for batch in batches {
                let mut events = Vec::new();
                for op in batch {
                    next_id += 1;
                    match op {
                        Op::Transfer { debit, credit, amount, pending, timeout } => {
                            let ledger_id = if debit == 6 || credit == 6 { SGD } else { JPY };
                            let mut event = transfer(next_id, debit, credit, amount, ledger_id);
                            if pending {
                                event.flags = TransferFlags::PENDING;
                                event.timeout = timeout;
                                pendings.push((next_id, amount));
                            }
                            events.push(event);
                        }
                        Op::Resolve { which, quarters, void } => {
                            let Some(&(pending_id, amount)) = pendings.get(which % pendings.len().max(1)) else {
                                continue;
                            };
                            events.push(NewTransfer {
                                id: TransferId(next_id),
                                pending_id: TransferId(pending_id),
                                amount: if void { 0 } else { amount * quarters / 4 },
                                flags: if void {
                                    TransferFlags::VOID_PENDING_TRANSFER
                                } else {
                                    TransferFlags::POST_PENDING_TRANSFER
                                },
                                ..NewTransfer::default()
                            });
                        }
                        Op::Expire { seconds } => {
                            now += seconds * 1_000_000_000;
                            ledger.expire_pending(Timestamp(now)).expect("expiry");
                        }
                    }
                }
                let results = ledger.create_transfers(&events, Timestamp(now)).expect("answered");
                prop_assert_eq!(results.len(), events.len());
                check_invariants(&ledger);
            }
            let ids: Vec<AccountId> = (1..=ACCOUNTS).map(AccountId).collect();
            let before = ledger.lookup_accounts(&ids).expect("lookup");
            ledger.close().expect("close");
            let reopened = open(dir.path());
            prop_assert_eq!(reopened.lookup_accounts(&ids).expect("lookup"), before);
            reopened.close().expect("close");
            check_clean(dir.path());
        }
    }
}

mod crash {
    //! The parent runs this same test binary as a child writer (selected by an environment
    //! variable), kills it with SIGKILL after a random delay, reopens the ledger and checks
    //! that every transfer the child saw acknowledged is there, that every batch is there
    //! whole or not at all, and that the audit is clean. Repeated on the same database.

    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::*;

    const CHILD_DIR_ENV: &str = "KAKEHASHI_LEDGER_CRASH_CHILD_DIR";
    const CHILD_FIRST_ID_ENV: &str = "KAKEHASHI_LEDGER_CRASH_CHILD_FIRST_ID";
    /// Kill rounds: enough to hit every phase of the commit path many times, few enough to
    /// finish in seconds.
    const ROUNDS: u64 = 12;
    /// Transfer ids each round may use, so rounds never collide.
    const IDS_PER_ROUND: u128 = 1_000_000;
    const CHILD_THREADS: u128 = 4;
    const CHILD_ACCOUNTS: u128 = 10;

    /// xorshift64*: the delays only need to vary, not to be unpredictable.
    fn next_random(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn run_child(dir: &str, first_id: u128) {
        let ledger = open(Path::new(dir));
        let accounts: Vec<NewAccount> = (1..=CHILD_ACCOUNTS)
            .map(|id| account(id, JPY, AccountFlags::NONE))
            .collect();
        ledger.create_accounts(&accounts, NOW).expect("accounts");
        let stdout = std::sync::Mutex::new(std::io::stdout());
        std::thread::scope(|scope| {
            for thread in 0..CHILD_THREADS {
                let (ledger, stdout) = (&ledger, &stdout);
                scope.spawn(move || {
                    let mut id = first_id + thread * (IDS_PER_ROUND / CHILD_THREADS);
                    for round in 0u128.. {
                        // Batch sizes from 1 to 200 so commits range from tiny to large.
                        let len = 1 + (round * 37 + thread * 11) % 200;
                        let batch: Vec<NewTransfer> = (0..len)
                            .map(|n| {
                                let debit = 1 + (id + n) % CHILD_ACCOUNTS;
                                let credit = 1 + (id + n + 1) % CHILD_ACCOUNTS;
                                transfer(id + n, debit, credit, 1 + n, JPY)
                            })
                            .collect();
                        {
                            let mut out = stdout.lock().expect("stdout");
                            writeln!(out, "submit {} {}", id, id + len - 1).expect("write");
                            out.flush().expect("flush");
                        }
                        let results = ledger.create_transfers(&batch, NOW).expect("answered");
                        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
                        let mut out = stdout.lock().expect("stdout");
                        writeln!(out, "ack {} {}", id, id + len - 1).expect("write");
                        out.flush().expect("flush");
                        id += len;
                    }
                });
            }
        });
    }

    fn parse_ranges(output: &str, tag: &str) -> Vec<(u128, u128)> {
        output
            .lines()
            .filter_map(|line| line.strip_prefix(tag))
            .filter_map(|rest| {
                let mut parts = rest.split_whitespace().map(str::parse::<u128>);
                Some((parts.next()?.ok()?, parts.next()?.ok()?))
            })
            .collect()
    }

    #[test]
    fn sigkill_at_random_moments_loses_no_acknowledged_transfer() {
        if let (Ok(dir), Ok(first_id)) = (
            std::env::var(CHILD_DIR_ENV),
            std::env::var(CHILD_FIRST_ID_ENV),
        ) {
            run_child(&dir, first_id.parse().expect("first id"));
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = std::env::current_exe().expect("test binary path");
        let mut random = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::from(std::process::id());
        let mut acknowledged_total = 0usize;
        for round in 0..ROUNDS {
            let first_id = 1_000 + u128::from(round) * IDS_PER_ROUND;
            let mut child = Command::new(&exe)
                .args([
                    "crash::sigkill_at_random_moments_loses_no_acknowledged_transfer",
                    "--exact",
                    "--nocapture",
                ])
                .env(CHILD_DIR_ENV, dir.path())
                .env(CHILD_FIRST_ID_ENV, first_id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("child starts");
            let stdout = child.stdout.take().expect("piped");
            let reader = std::thread::spawn(move || {
                let mut text = String::new();
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            });
            // 20–400 ms: from "still opening sled" to "hundreds of commits in".
            let delay = 20 + next_random(&mut random) % 380;
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            let output = reader.join().expect("reader");
            let acknowledged = parse_ranges(&output, "ack ");
            let submitted = parse_ranges(&output, "submit ");
            acknowledged_total += acknowledged.len();

            let ledger = open(dir.path());
            for (first, last) in &acknowledged {
                let ids: Vec<TransferId> = (*first..=*last).map(TransferId).collect();
                let found = ledger.lookup_transfers(&ids).expect("lookup");
                assert!(
                    found.iter().all(Option::is_some),
                    "round {round}: acknowledged {first}..={last} lost"
                );
            }
            for (first, last) in &submitted {
                let ids: Vec<TransferId> = (*first..=*last).map(TransferId).collect();
                let present = ledger
                    .lookup_transfers(&ids)
                    .expect("lookup")
                    .iter()
                    .filter(|t| t.is_some())
                    .count();
                assert!(
                    present == 0 || present == ids.len(),
                    "round {round}: batch {first}..={last} is partly present ({present} of {})",
                    ids.len()
                );
            }
            ledger.close().expect("close");
            check_clean(dir.path());
        }
        assert!(
            acknowledged_total > 0,
            "no child ever got a batch acknowledged"
        );
    }
}
