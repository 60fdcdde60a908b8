//! proptest over random batches that mix every feature of the contract (plain, pending, post
//! with partial, zero and full amounts, void, balancing, closing, linked chains, imported
//! batches, expiry, refusals of every kind), run through the durable ledger and the
//! in-memory one side by side. After every batch: both give the same results and the same
//! accounts; every account's balances are the sums of the transfers stored (posted ones, and
//! pending ones still pending); limits hold; a closed account is one created closed or held by
//! a live closing transfer; no id is applied twice; an id that failed transiently never
//! succeeds later.

use std::collections::{BTreeMap, BTreeSet};

use kakehashi_ledger::{AMOUNT_MAX, Account, MemoryLedger, PendingStatus, Transfer};
use proptest::prelude::*;

use super::*;

const ACCOUNTS: u128 = 8;
const IDS: u128 = 48;
const SECOND: u64 = 1_000_000_000;

/// One random transfer event: a shape and the fields it varies.
#[derive(Clone, Debug)]
struct Event {
    id: u128,
    kind: u8,
    debit: u128,
    credit: u128,
    amount: u128,
    pending_id: u128,
    timeout: u32,
    linked: bool,
    extra: u16,
}

#[derive(Clone, Debug)]
enum Call {
    Transfers {
        imported: bool,
        events: Vec<Event>,
    },
    /// Resend an earlier batch (picked by index), as a client retrying after a lost answer.
    Retry(usize),
    Expire,
}

fn event() -> impl Strategy<Value = Event> {
    (
        1..IDS,
        0u8..10,
        (1..=ACCOUNTS, 1..=ACCOUNTS),
        prop_oneof![3 => 0u128..120, 1 => Just(0u128), 1 => Just(AMOUNT_MAX)],
        1..IDS,
        0u32..3,
        prop::bool::weighted(0.15),
        prop_oneof![8 => Just(0u16), 1 => 0u16..1024],
    )
        .prop_map(
            |(id, kind, (debit, credit), amount, pending_id, timeout, linked, extra)| Event {
                id,
                kind,
                debit,
                credit,
                amount,
                pending_id,
                timeout,
                linked,
                extra,
            },
        )
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        6 => prop::collection::vec(event(), 1..6)
            .prop_map(|events| Call::Transfers { imported: false, events }),
        1 => prop::collection::vec(event(), 1..4)
            .prop_map(|events| Call::Transfers { imported: true, events }),
        1 => any::<usize>().prop_map(Call::Retry),
        1 => Just(Call::Expire),
    ]
}

/// The event as a transfer: kinds 0–1 plain, 2–3 pending (3: closing), 4–5 post, 6 void,
/// 7 balancing, 8 pending balancing, 9 anything (raw flags from `extra`). A post or void
/// mostly names one of the pending transfers stored so far (`pendings`), so that most of
/// them find one, live or resolved.
fn new_transfer(event: &Event, timestamp: Timestamp, pendings: &[u128]) -> NewTransfer {
    let pending_id = match pendings.len() {
        0 => event.pending_id,
        _ if event.pending_id.is_multiple_of(5) => event.pending_id,
        len => pendings[(event.pending_id as usize) % len],
    };
    let base = NewTransfer {
        id: TransferId(event.id),
        debit_account_id: AccountId(event.debit),
        credit_account_id: AccountId(event.credit),
        amount: event.amount % 1_000,
        ledger: JPY,
        code: 1,
        timestamp,
        ..NewTransfer::default()
    };
    let resolve = |flags| NewTransfer {
        debit_account_id: AccountId(0),
        credit_account_id: AccountId(0),
        ledger: 0,
        code: 0,
        pending_id: TransferId(pending_id),
        amount: event.amount,
        flags,
        ..base
    };
    let mut transfer = match event.kind {
        0 | 1 => base,
        2 => NewTransfer {
            flags: TransferFlags::PENDING,
            timeout: event.timeout,
            ..base
        },
        3 => NewTransfer {
            flags: TransferFlags::PENDING.union(if event.timeout == 0 {
                TransferFlags::CLOSING_DEBIT
            } else {
                TransferFlags::CLOSING_CREDIT
            }),
            timeout: event.timeout,
            ..base
        },
        4 | 5 => resolve(TransferFlags::POST_PENDING_TRANSFER),
        6 => resolve(TransferFlags::VOID_PENDING_TRANSFER),
        7 => NewTransfer {
            flags: if event.timeout == 0 {
                TransferFlags::BALANCING_DEBIT
            } else {
                TransferFlags::BALANCING_CREDIT
            },
            amount: event.amount,
            ..base
        },
        8 => NewTransfer {
            flags: TransferFlags::PENDING.union(TransferFlags::BALANCING_DEBIT),
            amount: event.amount,
            ..base
        },
        _ => NewTransfer {
            flags: TransferFlags(event.extra),
            pending_id: TransferId(event.pending_id % 3),
            timeout: event.timeout,
            ledger: if event.extra.is_multiple_of(5) {
                SGD
            } else {
                JPY
            },
            ..base
        },
    };
    if event.extra % 7 == 1 {
        transfer.user_data_128 = u128::from(event.extra);
    }
    if event.linked {
        transfer.flags = transfer.flags.union(TransferFlags::LINKED);
    }
    if timestamp.0 != 0 {
        transfer.flags = transfer.flags.union(TransferFlags::IMPORTED);
    }
    transfer
}

fn opening_flags() -> impl Strategy<Value = AccountFlags> {
    prop::sample::select(vec![
        AccountFlags::NONE,
        AccountFlags::NONE,
        AccountFlags::HISTORY,
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY),
        AccountFlags::CLOSED,
    ])
}

/// The invariants of the books, from the in-memory ledger's full view.
fn check_books(memory: &MemoryLedger, opened_closed: &BTreeSet<u128>) -> Result<(), String> {
    let transfers: BTreeMap<TransferId, Transfer> =
        memory.transfers().map(|t| (t.id, *t)).collect();
    // (debits_pending, debits_posted, credits_pending, credits_posted) per account.
    let mut sums: BTreeMap<AccountId, [u128; 4]> = BTreeMap::new();
    let mut closed: BTreeSet<u128> = opened_closed.clone();
    for transfer in transfers.values() {
        let flags = transfer.flags;
        let (pending, posted) = if flags.contains(TransferFlags::PENDING) {
            let live = memory.pending(transfer.id) == Some(PendingStatus::Pending);
            if live && flags.contains(TransferFlags::CLOSING_DEBIT) {
                closed.insert(transfer.debit_account_id.0);
            }
            if live && flags.contains(TransferFlags::CLOSING_CREDIT) {
                closed.insert(transfer.credit_account_id.0);
            }
            (if live { transfer.amount } else { 0 }, 0)
        } else if flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
            (0, 0)
        } else {
            (0, transfer.amount)
        };
        let debit = sums.entry(transfer.debit_account_id).or_default();
        debit[0] += pending;
        debit[1] += posted;
        let credit = sums.entry(transfer.credit_account_id).or_default();
        credit[2] += pending;
        credit[3] += posted;
    }
    for account in memory.accounts() {
        let expected = sums.get(&account.id).copied().unwrap_or_default();
        let found = [
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        ];
        if expected != found {
            return Err(format!(
                "{:?}: balances {found:?}, transfers sum to {expected:?}",
                account.id
            ));
        }
        let debits = account.debits_pending + account.debits_posted;
        let credits = account.credits_pending + account.credits_posted;
        if account
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && debits > account.credits_posted
            || account
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && credits > account.debits_posted
        {
            return Err(format!("{:?} is over its limit: {account:?}", account.id));
        }
        if account.is_closed() != closed.contains(&account.id.0) {
            return Err(format!(
                "{:?} closed is {} but its closing transfers say otherwise",
                account.id,
                account.is_closed()
            ));
        }
    }
    Ok(())
}

fn accounts_of(ledger: &Ledger) -> Vec<Option<Account>> {
    let ids: Vec<AccountId> = (1..=ACCOUNTS).map(AccountId).collect();
    ledger.lookup_accounts(&ids).expect("durable lookup")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_batches_of_every_feature_keep_the_books_and_agree(
        opening in prop::collection::vec((prop_oneof![9 => Just(JPY), 1 => Just(SGD)], opening_flags()), ACCOUNTS as usize),
        calls in prop::collection::vec(call(), 1..28),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let durable = Ledger::open(dir.path(), node_key(), Options::default()).expect("open");
        let mut memory = MemoryLedger::new();
        let accounts: Vec<NewAccount> = opening
            .iter()
            .zip(1..)
            .map(|(&(ledger, flags), id)| account(id, ledger, flags))
            .collect();
        let opened_closed: BTreeSet<u128> = accounts
            .iter()
            .filter(|a| a.flags.contains(AccountFlags::CLOSED))
            .map(|a| a.id.0)
            .collect();
        prop_assert_eq!(
            memory.create_accounts(&accounts, NOW).expect("memory"),
            durable.create_accounts(&accounts, NOW).expect("durable")
        );
        // Money in: account 1 funds every other account, whatever its limits.
        let funding: Vec<NewTransfer> = (2..=ACCOUNTS)
            .map(|id| NewTransfer {
                ledger: opening[id as usize - 1].0,
                ..transfer(1_000 + id, 1, id, 500, JPY)
            })
            .collect();
        prop_assert_eq!(
            memory.create_transfers(&funding, NOW).expect("memory"),
            durable.create_transfers(&funding, NOW).expect("durable")
        );
        let mut applied: BTreeSet<u128> = memory.transfers().map(|t| t.id.0).collect();
        let mut failed: BTreeSet<u128> = BTreeSet::new();
        let mut sent: Vec<Vec<NewTransfer>> = Vec::new();
        for (step, call) in calls.iter().enumerate() {
            // A second per call: pending timeouts run out mid-sequence, and an imported
            // batch's timestamps (just before `now`) follow every earlier event.
            let now = Timestamp(NOW.0 + (step as u64 + 1) * SECOND);
            match call {
                Call::Transfers { .. } | Call::Retry(_) => {
                    let batch: Vec<NewTransfer> = match call {
                        Call::Transfers { imported, events } => {
                            let pendings: Vec<u128> = memory
                                .transfers()
                                .filter(|t| t.flags.contains(TransferFlags::PENDING))
                                .map(|t| t.id.0)
                                .collect();
                            events
                                .iter()
                                .enumerate()
                                .map(|(index, event)| {
                                    let timestamp = if *imported {
                                        Timestamp(now.0 - SECOND / 2 + index as u64)
                                    } else {
                                        Timestamp(0)
                                    };
                                    new_transfer(event, timestamp, &pendings)
                                })
                                .collect()
                        }
                        Call::Retry(index) if !sent.is_empty() => {
                            sent[index % sent.len()].clone()
                        }
                        _ => continue,
                    };
                    sent.push(batch.clone());
                    let results = memory.create_transfers(&batch, now).expect("memory");
                    prop_assert_eq!(
                        &results,
                        &durable.create_transfers(&batch, now).expect("durable")
                    );
                    for (event, result) in batch.iter().zip(&results) {
                        let id = event.id.0;
                        if failed.contains(&id) {
                            prop_assert!(
                                !result.is_recorded(),
                                "failed id {} recorded: {:?}", id, result
                            );
                        }
                        if *result == CreateTransferResult::Ok {
                            prop_assert!(applied.insert(id), "id {} applied twice", id);
                        }
                        if result.is_transient() {
                            prop_assert!(!applied.contains(&id), "applied id {} failed", id);
                            failed.insert(id);
                        }
                    }
                }
                Call::Expire => {
                    let (a, b) = (
                        memory.expire_pending(now).expect("memory"),
                        durable.expire_pending(now).expect("durable"),
                    );
                    prop_assert_eq!((a.count, a.more), (b.count, b.more));
                }
            }
            let ids: Vec<AccountId> = (1..=ACCOUNTS).map(AccountId).collect();
            prop_assert_eq!(memory.lookup_accounts(&ids).expect("memory"), accounts_of(&durable));
            if let Err(broken) = check_books(&memory, &opened_closed) {
                prop_assert!(false, "after call {}: {}", step, broken);
            }
        }
        let ids: Vec<TransferId> = (0..IDS).chain(1_000..1_000 + ACCOUNTS + 1).map(TransferId).collect();
        prop_assert_eq!(
            memory.lookup_transfers(&ids).expect("memory"),
            durable.lookup_transfers(&ids).expect("durable")
        );
        for id in &ids {
            prop_assert_eq!(memory.pending(*id), durable.pending_status(*id).expect("durable"));
        }
        durable.close().expect("close");
        check_clean(dir.path());
    }
}
