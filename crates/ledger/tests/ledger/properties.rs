//! proptest over random operation sequences: the books stay balanced and within limits,
//! reopening gives the same balances, and the audit is clean.

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
