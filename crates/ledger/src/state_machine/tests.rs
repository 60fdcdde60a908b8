//! The state machine alone, over an empty committed store: every test state lives in the
//! overlay.

use super::*;
use crate::result::CreateTransferResult as T;

/// A committed store with nothing in it: every test state lives in the overlay, which
/// answers reads first exactly as it does during a group commit.
struct Empty;

impl Store for Empty {
    fn account(&self, _: AccountId) -> Result<Option<Account>, Error> {
        Ok(None)
    }
    fn transfer(&self, _: TransferId) -> Result<Option<Transfer>, Error> {
        Ok(None)
    }
    fn pending_status(&self, _: TransferId) -> Result<Option<PendingStatus>, Error> {
        Ok(None)
    }
    fn transfer_failed(&self, _: TransferId) -> Result<bool, Error> {
        Ok(false)
    }
    fn expiring(&self, _: Timestamp, _: usize) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        Ok(Vec::new())
    }
}

const JPY: u32 = 392;
const SGD: u32 = 702;
const NOW: u64 = 1_000_000_000_000;
const LIMITED_DEBITS: u128 = 4;
const LIMITED_CREDITS: u128 = 5;
const HISTORY: u128 = 6;

struct Fixture {
    changes: Changes,
}

impl Fixture {
    /// Accounts 1, 2 (JPY), 3 (SGD), 4 (JPY, debits ≤ credits), 5 (JPY, credits ≤ debits),
    /// 6 (JPY, history).
    fn new() -> Self {
        let mut fixture = Self {
            changes: Changes::new(Timestamp(0)),
        };
        let flags = [
            AccountFlags::NONE,
            AccountFlags::NONE,
            AccountFlags::NONE,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            AccountFlags::HISTORY,
        ];
        let accounts: Vec<NewAccount> = (1..=6)
            .zip(flags)
            .map(|(id, flags)| NewAccount {
                id: AccountId(id),
                ledger: if id == 3 { SGD } else { JPY },
                code: 1,
                flags,
                ..NewAccount::default()
            })
            .collect();
        assert!(
            fixture
                .accounts(&accounts)
                .iter()
                .all(|r| *r == CreateAccountResult::Ok)
        );
        fixture
    }

    fn accounts(&mut self, events: &[NewAccount]) -> Vec<CreateAccountResult> {
        self.changes
            .create_accounts(&Empty, events, Timestamp(NOW))
            .expect("no error")
            .0
    }

    fn transfers_at(&mut self, events: &[NewTransfer], now: u64) -> Vec<CreateTransferResult> {
        self.changes
            .create_transfers(&Empty, events, Timestamp(now))
            .expect("no error")
            .0
    }

    fn transfers(&mut self, events: &[NewTransfer]) -> Vec<CreateTransferResult> {
        self.transfers_at(events, NOW)
    }

    fn account(&self, id: u128) -> Account {
        *self
            .changes
            .accounts
            .get(&AccountId(id))
            .expect("account exists")
    }

    /// Applies one transfer and asserts its result; a failure must change no balance.
    #[track_caller]
    fn check(&mut self, event: NewTransfer, expected: CreateTransferResult) {
        let before: Vec<Account> = (1..=6).map(|id| self.account(id)).collect();
        assert_eq!(self.transfers(&[event]), [expected]);
        if expected != T::Ok {
            let after: Vec<Account> = (1..=6).map(|id| self.account(id)).collect();
            assert_eq!(before, after, "a rejected transfer changed balances");
        }
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount,
        ledger: JPY,
        code: 1,
        ..NewTransfer::default()
    }
}

fn pending(id: u128, amount: u128, timeout: u32) -> NewTransfer {
    NewTransfer {
        flags: TransferFlags::PENDING,
        timeout,
        ..transfer(id, 1, 2, amount)
    }
}

fn post(id: u128, pending_id: u128, amount: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        pending_id: TransferId(pending_id),
        amount,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..NewTransfer::default()
    }
}

fn void(id: u128, pending_id: u128) -> NewTransfer {
    NewTransfer {
        flags: TransferFlags::VOID_PENDING_TRANSFER,
        ..post(id, pending_id, 0)
    }
}

fn new_account(id: u128) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        ledger: JPY,
        code: 7,
        ..NewAccount::default()
    }
}

// Accounts.

#[test]
fn creates_accounts_with_zero_balances_and_increasing_timestamps() {
    let fixture = Fixture::new();
    let first = fixture.account(1);
    let second = fixture.account(2);
    assert_eq!(
        first.debits_posted + first.credits_posted + first.debits_pending,
        0
    );
    assert!(first.timestamp.0 >= NOW);
    assert!(second.timestamp > first.timestamp);
}

#[test]
fn account_validation_results_name_the_first_broken_rule() {
    use CreateAccountResult as A;
    let mut fixture = Fixture::new();
    let cases = [
        (
            NewAccount {
                flags: AccountFlags(1 << 9),
                ..new_account(10)
            },
            A::ReservedFlag,
        ),
        (new_account(0), A::IdMustNotBeZero),
        (new_account(u128::MAX), A::IdMustNotBeIntMax),
        (
            NewAccount {
                flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                    .union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
                ..new_account(10)
            },
            A::FlagsAreMutuallyExclusive,
        ),
        (
            NewAccount {
                ledger: 0,
                ..new_account(10)
            },
            A::LedgerMustNotBeZero,
        ),
        (
            NewAccount {
                code: 0,
                ..new_account(10)
            },
            A::CodeMustNotBeZero,
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(fixture.accounts(&[event]), [expected], "{event:?}");
        assert!(!fixture.changes.accounts.contains_key(&AccountId(10)));
    }
    assert_eq!(fixture.accounts(&[new_account(10)]), [A::Ok]);
}

#[test]
fn repeated_account_is_exists_or_names_the_first_different_field() {
    use CreateAccountResult as A;
    let mut fixture = Fixture::new();
    let base = NewAccount {
        user_data_128: 1,
        user_data_64: 2,
        user_data_32: 3,
        ..new_account(10)
    };
    assert_eq!(fixture.accounts(&[base]), [A::Ok]);
    let created = fixture.account(10);
    let cases = [
        (base, A::Exists),
        (
            NewAccount {
                flags: AccountFlags::HISTORY,
                ..base
            },
            A::ExistsWithDifferentFlags,
        ),
        (
            NewAccount {
                user_data_128: 9,
                ..base
            },
            A::ExistsWithDifferentUserData128,
        ),
        (
            NewAccount {
                user_data_64: 9,
                ..base
            },
            A::ExistsWithDifferentUserData64,
        ),
        (
            NewAccount {
                user_data_32: 9,
                ..base
            },
            A::ExistsWithDifferentUserData32,
        ),
        (
            NewAccount {
                ledger: SGD,
                ..base
            },
            A::ExistsWithDifferentLedger,
        ),
        (NewAccount { code: 9, ..base }, A::ExistsWithDifferentCode),
    ];
    for (event, expected) in cases {
        assert_eq!(fixture.accounts(&[event]), [expected]);
    }
    assert_eq!(
        fixture.account(10),
        created,
        "a repeated id changed nothing"
    );
}

#[test]
fn linked_accounts_fail_together_and_an_open_chain_fails() {
    use CreateAccountResult as A;
    let mut fixture = Fixture::new();
    let linked = |id| NewAccount {
        flags: AccountFlags::LINKED,
        ..new_account(id)
    };
    let results = fixture.accounts(&[linked(20), new_account(0), new_account(22)]);
    assert_eq!(results, [A::LinkedEventFailed, A::IdMustNotBeZero, A::Ok]);
    assert!(!fixture.changes.accounts.contains_key(&AccountId(20)));
    assert!(fixture.changes.accounts.contains_key(&AccountId(22)));
    let results = fixture.accounts(&[linked(30), linked(31)]);
    assert_eq!(results, [A::LinkedEventFailed, A::LinkedEventChainOpen]);
    assert!(!fixture.changes.accounts.contains_key(&AccountId(30)));
    let results = fixture.accounts(&[linked(40), new_account(41)]);
    assert_eq!(results, [A::Ok, A::Ok]);
}

// Single-phase transfers.

#[test]
fn posted_transfer_moves_amount_from_debit_to_credit() {
    let mut fixture = Fixture::new();
    fixture.check(transfer(100, 1, 2, 500), T::Ok);
    assert_eq!(fixture.account(1).debits_posted, 500);
    assert_eq!(fixture.account(2).credits_posted, 500);
    assert_eq!(fixture.account(1).credits_posted, 0);
}

#[test]
fn transfer_validation_results_change_nothing() {
    let mut fixture = Fixture::new();
    let ok = transfer(100, 1, 2, 10);
    let cases = [
        (
            NewTransfer {
                flags: TransferFlags(1 << 9),
                ..ok
            },
            T::ReservedFlag,
        ),
        (
            NewTransfer {
                id: TransferId(0),
                ..ok
            },
            T::IdMustNotBeZero,
        ),
        (
            NewTransfer {
                id: TransferId(u128::MAX),
                ..ok
            },
            T::IdMustNotBeIntMax,
        ),
        (
            NewTransfer {
                flags: TransferFlags::PENDING.union(TransferFlags::VOID_PENDING_TRANSFER),
                ..ok
            },
            T::FlagsAreMutuallyExclusive,
        ),
        (transfer(100, 0, 2, 10), T::DebitAccountIdMustNotBeZero),
        (
            transfer(100, u128::MAX, 2, 10),
            T::DebitAccountIdMustNotBeIntMax,
        ),
        (transfer(100, 1, 0, 10), T::CreditAccountIdMustNotBeZero),
        (
            transfer(100, 1, u128::MAX, 10),
            T::CreditAccountIdMustNotBeIntMax,
        ),
        (transfer(100, 1, 1, 10), T::AccountsMustBeDifferent),
        (
            NewTransfer {
                pending_id: TransferId(9),
                ..ok
            },
            T::PendingIdMustBeZero,
        ),
        (
            NewTransfer { timeout: 1, ..ok },
            T::TimeoutReservedForPendingTransfer,
        ),
        (NewTransfer { ledger: 0, ..ok }, T::LedgerMustNotBeZero),
        (NewTransfer { code: 0, ..ok }, T::CodeMustNotBeZero),
        (transfer(97, 99, 2, 10), T::DebitAccountNotFound),
        (transfer(98, 1, 99, 10), T::CreditAccountNotFound),
        (transfer(100, 1, 3, 10), T::AccountsMustHaveTheSameLedger),
        (
            NewTransfer { ledger: SGD, ..ok },
            T::TransferMustHaveTheSameLedgerAsAccounts,
        ),
    ];
    for (event, expected) in cases {
        fixture.check(event, expected);
        assert!(
            !fixture.changes.transfers.contains_key(&TransferId(100)),
            "{expected}"
        );
    }
    fixture.check(ok, T::Ok);
}

#[test]
fn repeated_transfer_is_exists_or_names_the_first_different_field() {
    let mut fixture = Fixture::new();
    let base = NewTransfer {
        user_data_128: 1,
        user_data_64: 2,
        user_data_32: 3,
        ..transfer(100, 1, 2, 10)
    };
    fixture.check(base, T::Ok);
    let cases = [
        (base, T::Exists),
        (
            NewTransfer {
                flags: TransferFlags::PENDING,
                ..base
            },
            T::ExistsWithDifferentFlags,
        ),
        (
            transfer(100, 6, 2, 10),
            T::ExistsWithDifferentDebitAccountId,
        ),
        (
            NewTransfer {
                credit_account_id: AccountId(6),
                ..base
            },
            T::ExistsWithDifferentCreditAccountId,
        ),
        (
            NewTransfer { amount: 11, ..base },
            T::ExistsWithDifferentAmount,
        ),
        (
            NewTransfer {
                user_data_128: 9,
                ..base
            },
            T::ExistsWithDifferentUserData128,
        ),
        (
            NewTransfer {
                user_data_64: 9,
                ..base
            },
            T::ExistsWithDifferentUserData64,
        ),
        (
            NewTransfer {
                user_data_32: 9,
                ..base
            },
            T::ExistsWithDifferentUserData32,
        ),
        (NewTransfer { code: 9, ..base }, T::ExistsWithDifferentCode),
    ];
    for (event, expected) in cases {
        fixture.check(event, expected);
    }
    assert_eq!(
        fixture.account(1).debits_posted,
        10,
        "retries moved no money"
    );
    // Timeout and ledger differences need a pending original to be reachable.
    fixture.check(pending(200, 5, 60), T::Ok);
    fixture.check(pending(200, 5, 61), T::ExistsWithDifferentTimeout);
    let sgd = NewTransfer {
        ledger: SGD,
        ..pending(200, 5, 60)
    };
    fixture.check(sgd, T::ExistsWithDifferentLedger);
    fixture.check(post(300, 200, 5), T::Ok);
    fixture.check(post(300, 201, 5), T::ExistsWithDifferentPendingId);
    fixture.check(post(300, 200, 5), T::Exists);
}

#[test]
fn limits_reject_overdraft_and_overcredit() {
    let mut fixture = Fixture::new();
    fixture.check(transfer(99, LIMITED_DEBITS, 2, 1), T::ExceedsCredits);
    fixture.check(transfer(100, 2, LIMITED_DEBITS, 50), T::Ok);
    fixture.check(transfer(101, LIMITED_DEBITS, 2, 50), T::Ok);
    fixture.check(transfer(102, LIMITED_DEBITS, 2, 1), T::ExceedsCredits);
    fixture.check(transfer(98, 1, LIMITED_CREDITS, 1), T::ExceedsDebits);
    fixture.check(transfer(103, LIMITED_CREDITS, 1, 30), T::Ok);
    fixture.check(transfer(104, 1, LIMITED_CREDITS, 30), T::Ok);
    fixture.check(transfer(105, 1, LIMITED_CREDITS, 1), T::ExceedsDebits);
    // A reservation counts against the limit too.
    fixture.check(transfer(106, 2, LIMITED_DEBITS, 20), T::Ok);
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(107, LIMITED_DEBITS, 2, 15)
        },
        T::Ok,
    );
    fixture.check(transfer(108, LIMITED_DEBITS, 2, 6), T::ExceedsCredits);
    // The id failed for good (a transient failure); a new id may move what is left.
    fixture.check(transfer(108, LIMITED_DEBITS, 2, 5), T::IdAlreadyFailed);
    fixture.check(transfer(109, LIMITED_DEBITS, 2, 5), T::Ok);
}

#[test]
fn overflows_are_named_results_not_panics() {
    let mut fixture = Fixture::new();
    fixture.check(transfer(100, 1, 2, u128::MAX), T::Ok);
    fixture.check(transfer(101, 1, 6, 1), T::OverflowsDebitsPosted);
    fixture.check(transfer(101, 6, 2, 1), T::OverflowsCreditsPosted);
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(99, 6, 5, u128::MAX)
        },
        T::ExceedsDebits,
    );
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(102, 2, 6, u128::MAX)
        },
        T::Ok,
    );
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(103, 1, 6, 1)
        },
        T::OverflowsCreditsPending,
    );
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(103, 1, 3, 1)
        },
        T::AccountsMustHaveTheSameLedger,
    );
    // Account 1 holds u128::MAX posted debits: a pending debit fits its pending field but
    // not its posted one, where a post would take it (TigerBeetle checks that first).
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(104, 1, 5, 1)
        },
        T::OverflowsDebitsPosted,
    );
    // Account 2 holds u128::MAX posted credits; a pending credit overflows them first.
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(105, 6, 2, 1)
        },
        T::OverflowsCreditsPosted,
    );
    // Account 2 holds u128::MAX pending debits.
    fixture.check(
        NewTransfer {
            flags: TransferFlags::PENDING,
            ..transfer(107, 2, 1, 1)
        },
        T::OverflowsDebitsPending,
    );
}

#[test]
fn timeout_past_u64_nanoseconds_is_overflows_timeout() {
    let mut fixture = Fixture::new();
    let late = u64::MAX - 5;
    assert_eq!(
        fixture.transfers_at(&[pending(100, 5, u32::MAX)], late),
        [T::OverflowsTimeout]
    );
    assert_eq!(fixture.account(1).debits_pending, 0);
}

// Two-phase transfers.

#[test]
fn pending_reserves_then_full_post_moves_it_to_posted() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 0), T::Ok);
    assert_eq!(fixture.account(1).debits_pending, 70);
    assert_eq!(fixture.account(2).credits_pending, 70);
    fixture.check(post(101, 100, 70), T::Ok);
    let (debit, credit) = (fixture.account(1), fixture.account(2));
    assert_eq!((debit.debits_pending, debit.debits_posted), (0, 70));
    assert_eq!((credit.credits_pending, credit.credits_posted), (0, 70));
    assert_eq!(
        fixture.changes.pending.get(&TransferId(100)),
        Some(&PendingStatus::Posted)
    );
    let stored = fixture.changes.transfers[&TransferId(101)];
    assert_eq!(
        stored.debit_account_id,
        AccountId(1),
        "gaps filled from the pending transfer"
    );
    assert_eq!(stored.ledger, JPY);
}

#[test]
fn partial_post_releases_the_rest() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 0), T::Ok);
    fixture.check(post(101, 100, 71), T::ExceedsPendingTransferAmount);
    fixture.check(post(101, 100, 30), T::Ok);
    let debit = fixture.account(1);
    assert_eq!((debit.debits_pending, debit.debits_posted), (0, 30));
    fixture.check(post(102, 100, 30), T::PendingTransferAlreadyPosted);
    fixture.check(void(102, 100), T::PendingTransferAlreadyPosted);
}

#[test]
fn void_releases_the_reservation() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 0), T::Ok);
    fixture.check(
        NewTransfer {
            amount: 69,
            ..void(101, 100)
        },
        T::PendingTransferHasDifferentAmount,
    );
    fixture.check(void(101, 100), T::Ok);
    assert_eq!(fixture.account(1).debits_pending, 0);
    assert_eq!(fixture.account(1).debits_posted, 0);
    fixture.check(void(102, 100), T::PendingTransferAlreadyVoided);
    fixture.check(post(102, 100, 1), T::PendingTransferAlreadyVoided);
}

#[test]
fn post_and_void_validation_results() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 0), T::Ok);
    fixture.check(transfer(50, 1, 2, 5), T::Ok);
    let ok = post(101, 100, 10);
    let cases = [
        (post(101, 0, 10), T::PendingIdMustNotBeZero),
        (post(101, u128::MAX, 10), T::PendingIdMustNotBeIntMax),
        (post(101, 101, 10), T::PendingIdMustBeDifferent),
        (
            NewTransfer { timeout: 5, ..ok },
            T::TimeoutReservedForPendingTransfer,
        ),
        // TigerBeetle checks a post's or void's accounts only against the pending transfer.
        (
            NewTransfer {
                debit_account_id: AccountId(u128::MAX),
                ..ok
            },
            T::PendingTransferHasDifferentDebitAccountId,
        ),
        (
            NewTransfer {
                credit_account_id: AccountId(u128::MAX),
                ..ok
            },
            T::PendingTransferHasDifferentCreditAccountId,
        ),
        (
            NewTransfer {
                debit_account_id: AccountId(2),
                credit_account_id: AccountId(2),
                ..ok
            },
            T::PendingTransferHasDifferentDebitAccountId,
        ),
        (post(102, 999, 10), T::PendingTransferNotFound),
        (post(101, 50, 1), T::PendingTransferNotPending),
        (
            NewTransfer {
                debit_account_id: AccountId(6),
                ..ok
            },
            T::PendingTransferHasDifferentDebitAccountId,
        ),
        (
            NewTransfer {
                credit_account_id: AccountId(6),
                ..ok
            },
            T::PendingTransferHasDifferentCreditAccountId,
        ),
        (
            NewTransfer { ledger: SGD, ..ok },
            T::PendingTransferHasDifferentLedger,
        ),
        (
            NewTransfer { code: 2, ..ok },
            T::PendingTransferHasDifferentCode,
        ),
    ];
    for (event, expected) in cases {
        fixture.check(event, expected);
    }
    let explicit = NewTransfer {
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        ledger: JPY,
        code: 1,
        ..ok
    };
    fixture.check(explicit, T::Ok);
}

#[test]
fn post_at_or_after_expiry_is_pending_transfer_expired() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 2), T::Ok);
    let expires = fixture.changes.transfers[&TransferId(100)]
        .expires_at()
        .expect("has timeout");
    assert_eq!(
        fixture.transfers_at(&[post(101, 100, 70)], expires.0),
        [T::PendingTransferExpired]
    );
    assert_eq!(
        fixture.account(1).debits_pending,
        70,
        "reservation held until expired"
    );
    assert_eq!(
        fixture.transfers_at(&[post(101, 100, 70)], expires.0 - 1_000),
        [T::PendingTransferExpired]
    );
}

#[test]
fn expire_pending_releases_due_reservations_only() {
    let mut fixture = Fixture::new();
    fixture.check(pending(100, 70, 1), T::Ok);
    fixture.check(pending(101, 30, 100), T::Ok);
    fixture.check(pending(102, 5, 0), T::Ok);
    let soon = Timestamp(NOW + 2 * 1_000_000_000);
    let (entries, more) = fixture
        .changes
        .expire_pending(&Empty, soon, 10)
        .expect("expires");
    assert!(!more);
    let Entries::Expiries(expired) = entries else {
        panic!("expiry entries")
    };
    assert_eq!(
        expired.iter().map(|(id, _)| id.0).collect::<Vec<_>>(),
        [100]
    );
    assert_eq!(fixture.account(1).debits_pending, 35);
    assert_eq!(
        fixture.changes.pending[&TransferId(100)],
        PendingStatus::Expired
    );
    let late = NOW + 10 * 1_000_000_000;
    assert_eq!(
        fixture.transfers_at(&[post(103, 100, 70)], late),
        [T::PendingTransferExpired]
    );
    let (entries, _) = fixture
        .changes
        .expire_pending(&Empty, soon, 10)
        .expect("expires");
    assert!(entries.is_empty(), "nothing more is due");
}

#[test]
fn expire_pending_respects_its_limit_and_reports_more() {
    let mut fixture = Fixture::new();
    for id in 100..105 {
        fixture.check(pending(id, 1, 1), T::Ok);
    }
    let later = Timestamp(NOW + 5 * 1_000_000_000);
    let (entries, more) = fixture
        .changes
        .expire_pending(&Empty, later, 3)
        .expect("expires");
    assert_eq!((entries.len(), more), (3, true));
    let (entries, more) = fixture
        .changes
        .expire_pending(&Empty, later, 3)
        .expect("expires");
    assert_eq!((entries.len(), more), (2, false));
    assert_eq!(fixture.account(1).debits_pending, 0);
}

// Linked chains.

#[test]
fn linked_transfers_fail_as_a_whole() {
    let mut fixture = Fixture::new();
    let linked = |event: NewTransfer| NewTransfer {
        flags: event.flags.union(TransferFlags::LINKED),
        ..event
    };
    let results = fixture.transfers(&[
        linked(transfer(100, 1, 2, 10)),
        linked(transfer(101, 2, 6, 10)),
        transfer(102, 6, 3, 10),
        transfer(103, 1, 2, 1),
    ]);
    assert_eq!(
        results,
        [
            T::LinkedEventFailed,
            T::LinkedEventFailed,
            T::AccountsMustHaveTheSameLedger,
            T::Ok
        ]
    );
    assert_eq!(fixture.account(1).debits_posted, 1);
    assert_eq!(fixture.account(6).credits_posted, 0);
    assert!(
        fixture
            .changes
            .history
            .iter()
            .all(|(id, _)| id.0 != HISTORY),
        "history undone"
    );
    assert!(!fixture.changes.transfers.contains_key(&TransferId(100)));
}

#[test]
fn linked_chain_left_open_fails() {
    let mut fixture = Fixture::new();
    let linked = |event: NewTransfer| NewTransfer {
        flags: TransferFlags::LINKED,
        ..event
    };
    let results = fixture.transfers(&[
        transfer(99, 1, 2, 1),
        linked(transfer(100, 1, 2, 10)),
        linked(transfer(101, 1, 2, 10)),
    ]);
    assert_eq!(
        results,
        [T::Ok, T::LinkedEventFailed, T::LinkedEventChainOpen]
    );
    assert_eq!(fixture.account(1).debits_posted, 1);
}

#[test]
fn linked_chain_of_valid_transfers_applies_all() {
    let mut fixture = Fixture::new();
    let linked = |event: NewTransfer| NewTransfer {
        flags: TransferFlags::LINKED,
        ..event
    };
    let results = fixture.transfers(&[
        linked(transfer(100, 2, LIMITED_DEBITS, 10)),
        transfer(101, LIMITED_DEBITS, 1, 10),
    ]);
    assert_eq!(results, [T::Ok, T::Ok]);
    assert_eq!(fixture.account(LIMITED_DEBITS).debits_posted, 10);
}

#[test]
fn history_accounts_record_balances_after_each_transfer() {
    let mut fixture = Fixture::new();
    fixture.check(transfer(100, 1, HISTORY, 10), T::Ok);
    fixture.check(transfer(101, HISTORY, 1, 4), T::Ok);
    let history: Vec<_> = fixture
        .changes
        .history
        .iter()
        .filter(|(id, _)| id.0 == HISTORY)
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].credits_posted, history[0].debits_posted),
        (10, 0)
    );
    assert_eq!(
        (history[1].credits_posted, history[1].debits_posted),
        (10, 4)
    );
    assert!(
        fixture
            .changes
            .history
            .iter()
            .all(|(id, _)| id.0 == HISTORY)
    );
}

#[test]
fn timestamps_stay_strictly_increasing_when_the_clock_steps_back() {
    let mut fixture = Fixture::new();
    assert_eq!(
        fixture.transfers_at(&[transfer(100, 1, 2, 1)], NOW + 50),
        [T::Ok]
    );
    assert_eq!(
        fixture.transfers_at(&[transfer(101, 1, 2, 1)], NOW),
        [T::Ok]
    );
    let first = fixture.changes.transfers[&TransferId(100)].timestamp;
    let second = fixture.changes.transfers[&TransferId(101)].timestamp;
    assert!(second > first);
}
