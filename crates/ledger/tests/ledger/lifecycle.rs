//! Open, create, close, reopen; node key handling; lookups.

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
    // from replaying the journal onto the empty snapshot (the close signs the head with a
    // checkpoint, which writes no snapshot).
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
    assert_eq!(
        (report.checkpoints_verified, report.last_signed_seq),
        (1, 6)
    );
    let ledger = Ledger::open(dir.path(), node_key(), rare).expect("reopens");
    assert_eq!(ledger.lookup_accounts(&ids).expect("lookup"), before);
    ledger.close().expect("close");
    // Reopening with a short interval takes the overdue snapshot at once; the head is
    // checkpointed already, so closing adds no checkpoint.
    open(dir.path()).close().expect("close");
    let report = check_clean(dir.path());
    assert_eq!(
        (report.checkpoints_verified, report.records_unsigned),
        (1, 0)
    );
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

/// Full batches of scattered ids (hashes of payment references, say): each group stores its
/// ids as one id table of a few dozen keys rather than a key per transfer, and the writer
/// merges the tables as they come. Pending transfers in one table are posted and voided from
/// later batches, every transfer reads back before and after a reopen, a repeat of any id is
/// `exists`, the audit counts every transfer once and the export gives them in id order.
#[test]
fn batches_of_scattered_ids_are_indexed_in_id_tables() {
    const BATCHES: u128 = 6;
    const LEN: u128 = 1_000;
    let scattered = |n: u128| (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) << 64) | n;
    let (dir, ledger) = with_accounts(8);
    let mut ids = Vec::new();
    for batch in 0..BATCHES {
        let events: Vec<NewTransfer> = (batch * LEN..(batch + 1) * LEN)
            .map(|n| {
                let id = scattered(n + 1);
                ids.push(id);
                NewTransfer {
                    // The first batch holds the pending transfers the others resolve.
                    flags: if batch == 0 && n % 10 == 0 {
                        TransferFlags::PENDING
                    } else {
                        TransferFlags::NONE
                    },
                    ..transfer(id, 1 + n % 8, 1 + (n + 1) % 8, 1 + n % 100, JPY)
                }
            })
            .collect();
        let results = ledger.create_transfers(&events, NOW).expect("answered");
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
        if batch > 0 {
            // Post or void one pending transfer of the first batch per later batch.
            let pending = scattered(1 + 10 * batch);
            let resolve = NewTransfer {
                id: TransferId(batch),
                pending_id: TransferId(pending),
                // A post of the whole pending amount; a void of it.
                amount: if batch % 2 == 0 { u128::MAX } else { 0 },
                flags: if batch % 2 == 0 {
                    TransferFlags::POST_PENDING_TRANSFER
                } else {
                    TransferFlags::VOID_PENDING_TRANSFER
                },
                ..NewTransfer::default()
            };
            assert_eq!(
                ledger.create_transfers(&[resolve], NOW).expect("answered"),
                [CreateTransferResult::Ok]
            );
            ids.push(batch);
        }
    }
    let ids: Vec<TransferId> = ids.into_iter().map(TransferId).collect();
    let check = |ledger: &Ledger| {
        let found = ledger.lookup_transfers(&ids).expect("lookup");
        for (id, transfer) in ids.iter().zip(found) {
            let transfer = transfer.unwrap_or_else(|| panic!("{id:?} missing"));
            assert_eq!(transfer.id, *id);
        }
        let absent = [scattered(0), scattered(BATCHES * LEN + 1), u128::MAX - 1];
        assert_eq!(
            ledger
                .lookup_transfers(&absent.map(TransferId))
                .expect("lookup"),
            [None; 3]
        );
    };
    check(&ledger);
    ledger.close().expect("close");
    let report = check_clean(dir.path());
    assert_eq!(report.transfers, ids.len() as u64);
    let keys = transfer_index_keys(dir.path()) + stored_keys(dir.path(), b"i");
    assert!(
        keys * 10 < report.transfers,
        "{keys} index keys for {} transfers",
        report.transfers
    );
    let mut out = Vec::new();
    let summary = kakehashi_ledger::export(dir.path(), &mut out).expect("exports");
    assert_eq!(summary.transfers, ids.len() as u64);
    let exported: Vec<u128> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("json"))
        .filter(|line| line["type"] == "transfer")
        .map(|line| line["id"].as_str().expect("id").parse().expect("u128"))
        .collect();
    let mut expected: Vec<u128> = ids.iter().map(|id| id.0).collect();
    expected.sort_unstable();
    assert_eq!(exported, expected);
    let reopened = open(dir.path());
    check(&reopened);
    // Repeats from every batch, and a second post of a resolved pending transfer.
    let repeats: Vec<NewTransfer> = [scattered(2), scattered(LEN + 7), scattered(BATCHES * LEN)]
        .into_iter()
        .map(|id| {
            let n = id & u128::from(u64::MAX);
            let n = n - 1;
            transfer(id, 1 + n % 8, 1 + (n + 1) % 8, 1 + n % 100, JPY)
        })
        .collect();
    assert_eq!(
        reopened.create_transfers(&repeats, NOW).expect("answered"),
        [CreateTransferResult::Exists; 3]
    );
    let again = NewTransfer {
        id: TransferId(1_000_000),
        pending_id: TransferId(scattered(21)),
        amount: u128::MAX,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..NewTransfer::default()
    };
    assert_eq!(
        reopened.create_transfers(&[again], NOW).expect("answered"),
        [CreateTransferResult::PendingTransferAlreadyPosted]
    );
    reopened.close().expect("close");
    check_clean(dir.path());
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
        let around = [FIRST_ID - 1, FIRST_ID + CALLERS * EACH].map(|id| TransferId(u128::from(id)));
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
                            ..transfer(pending_id(creator, n), 1 + n % 3, 4 + creator % 3, 5, JPY)
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
