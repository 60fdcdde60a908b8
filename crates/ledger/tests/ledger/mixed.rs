//! proptest over random batches that mix every feature of the contract (plain, pending, post
//! with partial, zero and full amounts, void, balancing, closing, linked chains, imported
//! batches, expiry, refusals of every kind), run through the durable ledger and the
//! in-memory one side by side. After every batch: both give the same results and the same
//! accounts; every account's balances are the sums of the transfers stored (posted ones, and
//! pending ones still pending); limits hold; a closed account is one created closed or held by
//! a live closing transfer; no id is applied twice; an id that failed transiently never
//! succeeds later.

use std::collections::{BTreeMap, BTreeSet};

use kakehashi_ledger::{Account, MemoryLedger, PendingStatus, Transfer};
use proptest::prelude::*;

use super::workload::{
    self, ACCOUNTS, Call, IDS, SECOND, call, funding, opening_accounts, opening_flags,
};
use super::*;

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
        let accounts = opening_accounts(&opening);
        let opened_closed: BTreeSet<u128> = accounts
            .iter()
            .filter(|a| a.flags.contains(AccountFlags::CLOSED))
            .map(|a| a.id.0)
            .collect();
        prop_assert_eq!(
            memory.create_accounts(&accounts, NOW).expect("memory"),
            durable.create_accounts(&accounts, NOW).expect("durable")
        );
        let funding = funding(&opening);
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
                    let Some(batch) = workload::batch(call, now, &memory, &mut sent) else {
                        continue;
                    };
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
