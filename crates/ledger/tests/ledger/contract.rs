//! The conformance table: every result of `create_accounts` and `create_transfers`, produced
//! by an event that also fails the next check in TigerBeetle 0.17's documented order (where
//! one event can fail both), so that each row pins the result and its precedence. Written
//! from TigerBeetle's reference pages, not from its code; the same table runs against the
//! durable ledger and the in-memory one.
//!
//! A row's event may fail many later checks; the row names the neighbour it was built for.
//! Results no event can combine with the check after them (`id_must_not_be_zero` and
//! `id_must_not_be_int_max`, say) are paired with the next one that can.

use std::collections::BTreeSet;

use super::*;
use kakehashi_ledger::{AMOUNT_MAX, MemoryLedger};

/// One ledger under test, durable or in memory.
trait Books {
    fn accounts(&mut self, events: &[NewAccount], now: Timestamp) -> Vec<CreateAccountResult>;
    fn transfers(&mut self, events: &[NewTransfer], now: Timestamp) -> Vec<CreateTransferResult>;
    fn expire(&mut self, now: Timestamp) -> usize;
    fn account(&mut self, id: u128) -> kakehashi_ledger::Account;
}

impl Books for MemoryLedger {
    fn accounts(&mut self, events: &[NewAccount], now: Timestamp) -> Vec<CreateAccountResult> {
        self.create_accounts(events, now).expect("memory accounts")
    }
    fn transfers(&mut self, events: &[NewTransfer], now: Timestamp) -> Vec<CreateTransferResult> {
        self.create_transfers(events, now)
            .expect("memory transfers")
    }
    fn expire(&mut self, now: Timestamp) -> usize {
        self.expire_pending(now).expect("memory expiry").count
    }
    fn account(&mut self, id: u128) -> kakehashi_ledger::Account {
        let found = self.lookup_accounts(&[AccountId(id)]).expect("lookup");
        found[0].expect("account exists")
    }
}

impl Books for Ledger {
    fn accounts(&mut self, events: &[NewAccount], now: Timestamp) -> Vec<CreateAccountResult> {
        self.create_accounts(events, now).expect("durable accounts")
    }
    fn transfers(&mut self, events: &[NewTransfer], now: Timestamp) -> Vec<CreateTransferResult> {
        self.create_transfers(events, now)
            .expect("durable transfers")
    }
    fn expire(&mut self, now: Timestamp) -> usize {
        self.expire_pending(now).expect("durable expiry").count
    }
    fn account(&mut self, id: u128) -> kakehashi_ledger::Account {
        let found = self.lookup_accounts(&[AccountId(id)]).expect("lookup");
        found[0].expect("account exists")
    }
}

const SECOND: u64 = 1_000_000_000;
/// Half of `u128`'s range, for balances whose sum overflows while each part does not.
const HALF: u128 = 1 << 127;
const A: CreateAccountResult = CreateAccountResult::Ok;

fn at(seconds: u64) -> Timestamp {
    Timestamp(NOW.0 + seconds * SECOND)
}

fn plain(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    transfer(id, debit, credit, amount, JPY)
}

fn with(flags: TransferFlags, event: NewTransfer) -> NewTransfer {
    NewTransfer {
        flags: event.flags.union(flags),
        ..event
    }
}

fn pending(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    with(TransferFlags::PENDING, plain(id, debit, credit, amount))
}

fn resolve(id: u128, pending_id: u128, amount: u128, flags: TransferFlags) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        pending_id: TransferId(pending_id),
        amount,
        flags,
        ..NewTransfer::default()
    }
}

fn post(id: u128, pending_id: u128, amount: u128) -> NewTransfer {
    resolve(id, pending_id, amount, TransferFlags::POST_PENDING_TRANSFER)
}

fn void(id: u128, pending_id: u128) -> NewTransfer {
    resolve(id, pending_id, 0, TransferFlags::VOID_PENDING_TRANSFER)
}

fn imported(timestamp: Timestamp, event: NewTransfer) -> NewTransfer {
    NewTransfer {
        timestamp,
        ..with(TransferFlags::IMPORTED, event)
    }
}

fn imported_account(id: u128, timestamp: Timestamp) -> NewAccount {
    NewAccount {
        timestamp,
        ..account(id, JPY, AccountFlags::IMPORTED)
    }
}

/// A flag bit TigerBeetle reserves.
const RESERVED: TransferFlags = TransferFlags(1 << 9);

/// The world every row runs in (at [`NOW`] to two seconds later):
///
/// - accounts 1, 2 (JPY), 3 (SGD), 4 (debits must not exceed credits), 5 (credits must not
///   exceed debits), 6 (created closed), 7 (closed by the closing transfer 110), 10/11 (debits
///   and credits posted at `u128::MAX`), 12/13 (pending at `u128::MAX`), 14/15 (pending and
///   posted summing to `u128::MAX`);
/// - transfers 100 (pending 1→2, 50, user data 7), 101 (posted 1→2, 5), 102 (pending,
///   posted by 103), 104 (pending, voided by 105), 106 (pending, expired), 107 (pending,
///   expires at 30 s), 108 (pending 1→7), 109 (pending 7→1), 110 (closing 7).
fn world(books: &mut dyn Books) {
    let mut accounts = vec![
        account(1, JPY, AccountFlags::NONE),
        account(2, JPY, AccountFlags::NONE),
        account(3, SGD, AccountFlags::NONE),
        account(4, JPY, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        account(5, JPY, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        account(6, JPY, AccountFlags::CLOSED),
        account(7, JPY, AccountFlags::NONE),
    ];
    accounts.extend((10..=15).map(|id| account(id, JPY, AccountFlags::NONE)));
    let results = books.accounts(&accounts, NOW);
    assert!(results.iter().all(|r| *r == A), "{results:?}");
    let setup = [
        NewTransfer {
            user_data_128: 7,
            ..pending(100, 1, 2, 50)
        },
        plain(101, 1, 2, 5),
        pending(102, 1, 2, 10),
        post(103, 102, 10),
        pending(104, 1, 2, 10),
        void(105, 104),
        NewTransfer {
            timeout: 1,
            ..pending(106, 1, 2, 10)
        },
        NewTransfer {
            timeout: 30,
            ..pending(107, 1, 2, 10)
        },
        pending(108, 1, 7, 5),
        pending(109, 7, 1, 5),
        with(TransferFlags::CLOSING_DEBIT, pending(110, 7, 2, 0)),
        plain(111, 10, 11, u128::MAX),
        pending(112, 12, 13, u128::MAX),
        pending(113, 14, 15, HALF),
        plain(114, 14, 15, HALF - 1),
    ];
    let results = books.transfers(&setup, NOW);
    assert!(
        results.iter().all(|r| *r == CreateTransferResult::Ok),
        "{results:?}"
    );
    assert_eq!(books.expire(at(2)), 1, "106 expires");
}

/// One row: events submitted together at `now`, and the results expected.
struct Row {
    what: &'static str,
    now: Timestamp,
    events: Vec<NewTransfer>,
    expected: Vec<CreateTransferResult>,
}

fn row(
    what: &'static str,
    now: Timestamp,
    events: Vec<NewTransfer>,
    expected: Vec<CreateTransferResult>,
) -> Row {
    Row {
        what,
        now,
        events,
        expected,
    }
}

/// The transfer rows, in the order of the documented results (rows that set state up for a
/// later one come right before it).
fn transfer_rows() -> Vec<Row> {
    use CreateTransferResult as T;
    let t = at(10);
    let mut rows = vec![
        row("ok", t, vec![plain(1000, 1, 2, 1)], vec![T::Ok]),
        row(
            "linked_event_failed over the event's own id_must_not_be_zero",
            t,
            vec![
                with(TransferFlags::LINKED, plain(1001, 99, 2, 1)),
                plain(0, 1, 2, 1),
            ],
            vec![T::DebitAccountNotFound, T::LinkedEventFailed],
        ),
        row(
            "linked_event_failed over linked_event_chain_open",
            t,
            vec![
                with(TransferFlags::LINKED, plain(1057, 99, 2, 1)),
                with(TransferFlags::LINKED, plain(1058, 1, 2, 1)),
            ],
            vec![T::DebitAccountNotFound, T::LinkedEventFailed],
        ),
        row(
            "timestamp_must_be_zero over reserved_flag",
            t,
            vec![NewTransfer {
                timestamp: at(1),
                ..with(RESERVED, plain(1008, 1, 2, 1))
            }],
            vec![T::TimestampMustBeZero],
        ),
        row(
            "reserved_flag over id_must_not_be_zero",
            t,
            vec![with(RESERVED, plain(0, 1, 2, 1))],
            vec![T::ReservedFlag],
        ),
        row(
            "id_must_not_be_zero over flags_are_mutually_exclusive",
            t,
            vec![with(
                TransferFlags::POST_PENDING_TRANSFER,
                pending(0, 1, 2, 1),
            )],
            vec![T::IdMustNotBeZero],
        ),
        row(
            "id_must_not_be_int_max over debit_account_id_must_not_be_zero",
            t,
            vec![plain(u128::MAX, 0, 2, 1)],
            vec![T::IdMustNotBeIntMax],
        ),
        row(
            "exists_with_different_flags over exists_with_different_pending_id",
            t,
            vec![NewTransfer {
                pending_id: TransferId(5),
                ..plain(100, 1, 2, 50)
            }],
            vec![T::ExistsWithDifferentFlags],
        ),
        row(
            "exists_with_different_pending_id over exists_with_different_timeout",
            t,
            vec![NewTransfer {
                timeout: 1,
                ..post(103, 100, 10)
            }],
            vec![T::ExistsWithDifferentPendingId],
        ),
        row(
            "exists_with_different_timeout over exists_with_different_debit_account_id",
            t,
            vec![NewTransfer {
                timeout: 2,
                ..pending(106, 2, 1, 10)
            }],
            vec![T::ExistsWithDifferentTimeout],
        ),
        row(
            "exists_with_different_debit_account_id over ..._credit_account_id",
            t,
            vec![plain(101, 3, 1, 5)],
            vec![T::ExistsWithDifferentDebitAccountId],
        ),
        row(
            "exists_with_different_credit_account_id over exists_with_different_amount",
            t,
            vec![plain(101, 1, 3, 6)],
            vec![T::ExistsWithDifferentCreditAccountId],
        ),
        row(
            "exists_with_different_amount over exists_with_different_user_data_128",
            t,
            vec![NewTransfer {
                user_data_128: 9,
                ..plain(101, 1, 2, 6)
            }],
            vec![T::ExistsWithDifferentAmount],
        ),
        row(
            "exists_with_different_user_data_128 over ..._64",
            t,
            vec![NewTransfer {
                user_data_128: 9,
                user_data_64: 9,
                ..plain(101, 1, 2, 5)
            }],
            vec![T::ExistsWithDifferentUserData128],
        ),
        row(
            "exists_with_different_user_data_64 over ..._32",
            t,
            vec![NewTransfer {
                user_data_64: 9,
                user_data_32: 9,
                ..plain(101, 1, 2, 5)
            }],
            vec![T::ExistsWithDifferentUserData64],
        ),
        row(
            "exists_with_different_user_data_32 over exists_with_different_ledger",
            t,
            vec![NewTransfer {
                user_data_32: 9,
                ..transfer(101, 1, 2, 5, SGD)
            }],
            vec![T::ExistsWithDifferentUserData32],
        ),
        row(
            "exists_with_different_ledger over exists_with_different_code",
            t,
            vec![NewTransfer {
                code: 2,
                ..transfer(101, 1, 2, 5, SGD)
            }],
            vec![T::ExistsWithDifferentLedger],
        ),
        row(
            "exists_with_different_code",
            t,
            vec![NewTransfer {
                code: 2,
                ..plain(101, 1, 2, 5)
            }],
            vec![T::ExistsWithDifferentCode],
        ),
        row(
            "exists over pending_transfer_already_posted (a post retried)",
            t,
            vec![post(103, 102, 10)],
            vec![T::Exists],
        ),
        row(
            "a transient failure",
            t,
            vec![plain(1011, 99, 2, 1)],
            vec![T::DebitAccountNotFound],
        ),
        row(
            "id_already_failed over flags_are_mutually_exclusive",
            t,
            vec![with(
                TransferFlags::VOID_PENDING_TRANSFER,
                pending(1011, 1, 2, 1),
            )],
            vec![T::IdAlreadyFailed],
        ),
        row(
            "flags_are_mutually_exclusive over pending_id_must_not_be_zero",
            t,
            vec![with(TransferFlags::BALANCING_DEBIT, post(1012, 0, 1))],
            vec![T::FlagsAreMutuallyExclusive],
        ),
        row(
            "debit_account_id_must_not_be_zero over credit_account_id_must_not_be_zero",
            t,
            vec![plain(1013, 0, 0, 1)],
            vec![T::DebitAccountIdMustNotBeZero],
        ),
        row(
            "debit_account_id_must_not_be_int_max over credit_account_id_must_not_be_zero",
            t,
            vec![plain(1014, u128::MAX, 0, 1)],
            vec![T::DebitAccountIdMustNotBeIntMax],
        ),
        row(
            "credit_account_id_must_not_be_zero over pending_id_must_be_zero",
            t,
            vec![NewTransfer {
                pending_id: TransferId(5),
                ..plain(1015, 1, 0, 1)
            }],
            vec![T::CreditAccountIdMustNotBeZero],
        ),
        row(
            "credit_account_id_must_not_be_int_max over pending_id_must_be_zero",
            t,
            vec![NewTransfer {
                pending_id: TransferId(5),
                ..plain(1016, 1, u128::MAX, 1)
            }],
            vec![T::CreditAccountIdMustNotBeIntMax],
        ),
        row(
            "accounts_must_be_different over pending_id_must_be_zero",
            t,
            vec![NewTransfer {
                pending_id: TransferId(5),
                ..plain(1017, 1, 1, 1)
            }],
            vec![T::AccountsMustBeDifferent],
        ),
        row(
            "pending_id_must_be_zero over timeout_reserved_for_pending_transfer",
            t,
            vec![NewTransfer {
                pending_id: TransferId(5),
                timeout: 1,
                ..plain(1018, 1, 2, 1)
            }],
            vec![T::PendingIdMustBeZero],
        ),
        row(
            "pending_id_must_not_be_zero over timeout_reserved_for_pending_transfer",
            t,
            vec![NewTransfer {
                timeout: 1,
                ..post(1019, 0, 1)
            }],
            vec![T::PendingIdMustNotBeZero],
        ),
        row(
            "pending_id_must_not_be_int_max over timeout_reserved_for_pending_transfer",
            t,
            vec![NewTransfer {
                timeout: 1,
                ..post(1020, u128::MAX, 1)
            }],
            vec![T::PendingIdMustNotBeIntMax],
        ),
        row(
            "pending_id_must_be_different over timeout_reserved_for_pending_transfer",
            t,
            vec![NewTransfer {
                timeout: 1,
                ..post(1021, 1021, 1)
            }],
            vec![T::PendingIdMustBeDifferent],
        ),
        row(
            "timeout_reserved_for_pending_transfer over closing_transfer_must_be_pending",
            t,
            vec![NewTransfer {
                timeout: 1,
                ..with(TransferFlags::CLOSING_DEBIT, plain(1022, 1, 2, 1))
            }],
            vec![T::TimeoutReservedForPendingTransfer],
        ),
        row(
            "closing_transfer_must_be_pending over ledger_must_not_be_zero",
            t,
            vec![with(
                TransferFlags::CLOSING_CREDIT,
                transfer(1023, 1, 2, 1, 0),
            )],
            vec![T::ClosingTransferMustBePending],
        ),
        row(
            "ledger_must_not_be_zero over code_must_not_be_zero",
            t,
            vec![NewTransfer {
                code: 0,
                ..transfer(1024, 1, 2, 1, 0)
            }],
            vec![T::LedgerMustNotBeZero],
        ),
        row(
            "code_must_not_be_zero over debit_account_not_found",
            t,
            vec![NewTransfer {
                code: 0,
                ..plain(1025, 99, 2, 1)
            }],
            vec![T::CodeMustNotBeZero],
        ),
        row(
            "debit_account_not_found over credit_account_not_found",
            t,
            vec![plain(1026, 99, 98, 1)],
            vec![T::DebitAccountNotFound],
        ),
        row(
            "credit_account_not_found over exceeds_credits",
            t,
            vec![plain(1027, 4, 99, 1)],
            vec![T::CreditAccountNotFound],
        ),
        row(
            "accounts_must_have_the_same_ledger over ..._as_accounts",
            t,
            vec![transfer(1028, 1, 3, 1, SGD)],
            vec![T::AccountsMustHaveTheSameLedger],
        ),
        row(
            "transfer_must_have_the_same_ledger_as_accounts over debit_account_already_closed",
            t,
            vec![transfer(1029, 6, 2, 1, SGD)],
            vec![T::TransferMustHaveTheSameLedgerAsAccounts],
        ),
        row(
            "pending_transfer_not_found",
            t,
            vec![post(1030, 999, 1)],
            vec![T::PendingTransferNotFound],
        ),
        row(
            "pending_transfer_not_pending over pending_transfer_has_different_debit_account_id",
            t,
            vec![NewTransfer {
                debit_account_id: AccountId(5),
                ..post(1031, 101, 1)
            }],
            vec![T::PendingTransferNotPending],
        ),
        row(
            "pending_transfer_has_different_debit_account_id over ..._credit_account_id",
            t,
            vec![NewTransfer {
                debit_account_id: AccountId(5),
                credit_account_id: AccountId(5),
                ..post(1032, 100, 1)
            }],
            vec![T::PendingTransferHasDifferentDebitAccountId],
        ),
        row(
            "pending_transfer_has_different_credit_account_id over ..._ledger",
            t,
            vec![NewTransfer {
                credit_account_id: AccountId(5),
                ledger: SGD,
                ..post(1033, 100, 1)
            }],
            vec![T::PendingTransferHasDifferentCreditAccountId],
        ),
        row(
            "pending_transfer_has_different_ledger over ..._code",
            t,
            vec![NewTransfer {
                ledger: SGD,
                code: 2,
                ..post(1034, 100, 1)
            }],
            vec![T::PendingTransferHasDifferentLedger],
        ),
        row(
            "pending_transfer_has_different_code over exceeds_pending_transfer_amount",
            t,
            vec![NewTransfer {
                code: 2,
                ..post(1035, 100, 51)
            }],
            vec![T::PendingTransferHasDifferentCode],
        ),
        row(
            "exceeds_pending_transfer_amount (a post) over pending_transfer_already_posted",
            t,
            vec![post(1036, 102, 11)],
            vec![T::ExceedsPendingTransferAmount],
        ),
        row(
            "exceeds_pending_transfer_amount (a void) over pending_transfer_already_posted",
            t,
            vec![NewTransfer {
                amount: 11,
                ..void(1037, 102)
            }],
            vec![T::ExceedsPendingTransferAmount],
        ),
        row(
            "pending_transfer_has_different_amount over pending_transfer_already_posted",
            t,
            vec![NewTransfer {
                amount: 5,
                ..void(1038, 102)
            }],
            vec![T::PendingTransferHasDifferentAmount],
        ),
        row(
            "pending_transfer_already_posted",
            t,
            vec![void(1039, 102)],
            vec![T::PendingTransferAlreadyPosted],
        ),
        row(
            "pending_transfer_already_voided",
            t,
            vec![post(1040, 104, AMOUNT_MAX)],
            vec![T::PendingTransferAlreadyVoided],
        ),
        row(
            "pending_transfer_expired (released by expire_pending)",
            t,
            vec![void(1041, 106)],
            vec![T::PendingTransferExpired],
        ),
        row(
            "pending_transfer_expired (due, not yet released)",
            at(40),
            vec![post(1042, 107, 1)],
            vec![T::PendingTransferExpired],
        ),
    ];
    rows.extend([
        row(
            "debit_account_already_closed over credit_account_already_closed",
            t,
            vec![plain(1060, 6, 7, 1)],
            vec![T::DebitAccountAlreadyClosed],
        ),
        row(
            "debit_account_already_closed on a post",
            t,
            vec![post(1061, 109, AMOUNT_MAX)],
            vec![T::DebitAccountAlreadyClosed],
        ),
        row(
            "credit_account_already_closed over overflows_debits_posted",
            t,
            vec![plain(1062, 10, 6, 1)],
            vec![T::CreditAccountAlreadyClosed],
        ),
        row(
            "credit_account_already_closed on a post",
            t,
            vec![post(1063, 108, 1)],
            vec![T::CreditAccountAlreadyClosed],
        ),
        row(
            "overflows_debits_pending over overflows_credits_pending",
            t,
            vec![pending(1064, 12, 13, 1)],
            vec![T::OverflowsDebitsPending],
        ),
        row(
            "overflows_credits_pending over overflows_debits_posted",
            t,
            vec![pending(1065, 10, 13, 1)],
            vec![T::OverflowsCreditsPending],
        ),
        row(
            "overflows_debits_posted over overflows_credits_posted",
            t,
            vec![plain(1066, 10, 11, 1)],
            vec![T::OverflowsDebitsPosted],
        ),
        row(
            "overflows_credits_posted over overflows_credits",
            t,
            vec![plain(1067, 1, 11, 1)],
            vec![T::OverflowsCreditsPosted],
        ),
        row(
            "overflows_debits over overflows_credits",
            t,
            vec![plain(1068, 14, 15, 1)],
            vec![T::OverflowsDebits],
        ),
        row(
            "overflows_credits over exceeds_credits",
            t,
            vec![plain(1069, 4, 15, 1)],
            vec![T::OverflowsCredits],
        ),
        row(
            "exceeds_credits over exceeds_debits",
            t,
            vec![plain(1070, 4, 5, 1)],
            vec![T::ExceedsCredits],
        ),
        row(
            "exceeds_debits",
            t,
            vec![plain(1071, 1, 5, 1)],
            vec![T::ExceedsDebits],
        ),
    ]);
    rows
}

/// The last row: it moves the ledger's clock to the end of its range.
fn overflows_timeout_row() -> Row {
    use CreateTransferResult as T;
    vec![row(
        "overflows_timeout over exceeds_credits",
        Timestamp(u64::MAX - 5 * SECOND),
        vec![NewTransfer {
            timeout: 10,
            ..pending(1072, 4, 2, 1)
        }],
        vec![T::OverflowsTimeout],
    )]
    .pop()
    .expect("one row")
}

/// The rows of imported transfers, in the order they must run (their timestamps must follow
/// one another). Before them, the last transfer is at about 10 s (row 1000), accounts 20 and
/// 21 are created at 55 s and the expiry of 107 at 60 s is the last event.
fn imported_rows() -> Vec<Row> {
    use CreateTransferResult as T;
    let t = at(100);
    vec![
        row(
            "linked_event_chain_open over imported_event_expected",
            t,
            vec![
                with(
                    TransferFlags::LINKED,
                    imported(at(61), plain(1002, 1, 2, 1)),
                ),
                with(TransferFlags::LINKED, plain(1003, 1, 2, 1)),
            ],
            vec![T::LinkedEventFailed, T::LinkedEventChainOpen],
        ),
        row(
            "imported_event_timestamp_must_not_regress over ..._timeout_must_be_zero",
            t,
            vec![imported(
                at(5),
                NewTransfer {
                    timeout: 1,
                    ..pending(1050, 1, 2, 1)
                },
            )],
            vec![T::ImportedEventTimestampMustNotRegress],
        ),
        row(
            "pending_transfer_already_posted over imported_event_timestamp_must_not_regress",
            t,
            vec![imported(at(5), post(1090, 102, AMOUNT_MAX))],
            vec![T::PendingTransferAlreadyPosted],
        ),
        row(
            "pending_transfer_already_voided over imported_event_timestamp_must_not_regress",
            t,
            vec![imported(at(5), void(1091, 104))],
            vec![T::PendingTransferAlreadyVoided],
        ),
        row(
            "pending_transfer_expired over imported_event_timestamp_must_not_regress",
            t,
            vec![imported(at(5), void(1092, 106))],
            vec![T::PendingTransferExpired],
        ),
        row(
            "imported_event_timestamp_must_postdate_debit_account over ..._credit_account",
            t,
            vec![imported(at(54), plain(1051, 20, 21, 1))],
            vec![T::ImportedEventTimestampMustPostdateDebitAccount],
        ),
        row(
            "imported_event_timestamp_must_postdate_credit_account over ..._timeout_must_be_zero",
            t,
            vec![imported(
                at(54),
                NewTransfer {
                    timeout: 1,
                    ..pending(1053, 1, 21, 1)
                },
            )],
            vec![T::ImportedEventTimestampMustPostdateCreditAccount],
        ),
        row(
            "ours: imported_event_timestamp_must_postdate_last_event over ..._timeout_must_be_zero",
            t,
            vec![imported(
                at(58),
                NewTransfer {
                    timeout: 1,
                    ..pending(1054, 1, 2, 1)
                },
            )],
            vec![T::ImportedEventTimestampMustPostdateLastEvent],
        ),
        row(
            "imported_event_timeout_must_be_zero over debit_account_already_closed",
            t,
            vec![imported(
                at(61),
                NewTransfer {
                    timeout: 1,
                    ..pending(1055, 6, 2, 1)
                },
            )],
            vec![T::ImportedEventTimeoutMustBeZero],
        ),
        row(
            "imported_event_timestamp_out_of_range over imported_event_timestamp_must_not_advance",
            at(100),
            vec![imported(Timestamp(1 << 63), plain(1009, 1, 2, 1))],
            vec![T::ImportedEventTimestampOutOfRange],
        ),
        row(
            "imported_event_timestamp_must_not_advance over reserved_flag",
            at(100),
            vec![imported(at(101), with(RESERVED, plain(1010, 1, 2, 1)))],
            vec![T::ImportedEventTimestampMustNotAdvance],
        ),
        row(
            "imported_event_expected over timestamp_must_be_zero",
            t,
            vec![
                imported(at(61), plain(1004, 1, 2, 1)),
                NewTransfer {
                    timestamp: at(61),
                    ..plain(1005, 1, 2, 1)
                },
            ],
            vec![T::Ok, T::ImportedEventExpected],
        ),
        row(
            "an imported transfer",
            t,
            vec![imported(at(62), plain(1056, 1, 2, 1))],
            vec![T::Ok],
        ),
        row(
            "imported_event_not_expected over imported_event_timestamp_out_of_range",
            t,
            vec![
                plain(1006, 1, 2, 1),
                imported(Timestamp(0), plain(1007, 1, 2, 1)),
            ],
            vec![T::Ok, T::ImportedEventNotExpected],
        ),
    ]
}

/// The account rows, in the order they must run: the imported ones first (at 150 s to 170 s,
/// after every event so far), then the others at 200 s.
fn account_rows(books: &mut dyn Books) -> BTreeSet<&'static str> {
    use CreateAccountResult as R;
    let mut seen = BTreeSet::new();
    let t = at(200);
    let reserved = AccountFlags(1 << 6);
    let linked = AccountFlags::LINKED;
    let mut check = |books: &mut dyn Books,
                     what: &str,
                     now: Timestamp,
                     events: Vec<NewAccount>,
                     expected: Vec<R>| {
        assert_eq!(books.accounts(&events, now), expected, "{what}");
        seen.extend(expected.iter().map(|r| r.as_str()));
    };
    check(
        books,
        "linked_event_chain_open over imported_event_expected",
        t,
        vec![
            NewAccount {
                flags: AccountFlags::IMPORTED.union(linked),
                ..imported_account(32, at(150))
            },
            account(33, JPY, linked),
        ],
        vec![R::LinkedEventFailed, R::LinkedEventChainOpen],
    );
    check(
        books,
        "imported_event_expected over timestamp_must_be_zero",
        t,
        vec![
            imported_account(34, at(150)),
            NewAccount {
                timestamp: at(151),
                ..account(35, JPY, AccountFlags::NONE)
            },
        ],
        vec![R::Ok, R::ImportedEventExpected],
    );
    check(
        books,
        "imported_event_timestamp_out_of_range over imported_event_timestamp_must_not_advance",
        t,
        vec![imported_account(39, Timestamp(u64::MAX))],
        vec![R::ImportedEventTimestampOutOfRange],
    );
    check(
        books,
        "imported_event_timestamp_must_not_advance over reserved_flag",
        t,
        vec![NewAccount {
            flags: AccountFlags::IMPORTED.union(reserved),
            ..imported_account(40, at(201))
        }],
        vec![R::ImportedEventTimestampMustNotAdvance],
    );
    check(
        books,
        "code_must_not_be_zero over imported_event_timestamp_must_not_regress",
        t,
        vec![NewAccount {
            code: 0,
            ..imported_account(44, at(1))
        }],
        vec![R::CodeMustNotBeZero],
    );
    check(
        books,
        "imported_event_timestamp_must_not_regress",
        t,
        vec![imported_account(45, at(140))],
        vec![R::ImportedEventTimestampMustNotRegress],
    );
    // A transfer after the last account makes the last event a transfer.
    assert_eq!(
        books.transfers(&[plain(1080, 1, 2, 1)], at(160)),
        [CreateTransferResult::Ok]
    );
    check(
        books,
        "ours: imported_event_timestamp_must_postdate_last_event",
        t,
        vec![imported_account(46, at(155))],
        vec![R::ImportedEventTimestampMustPostdateLastEvent],
    );
    check(
        books,
        "an imported account",
        t,
        vec![imported_account(47, at(170))],
        vec![R::Ok],
    );
    check(
        books,
        "imported_event_not_expected over imported_event_timestamp_out_of_range",
        t,
        vec![
            account(36, JPY, AccountFlags::NONE),
            imported_account(37, Timestamp(0)),
        ],
        vec![R::Ok, R::ImportedEventNotExpected],
    );
    check(
        books,
        "ok",
        t,
        vec![account(30, JPY, AccountFlags::NONE)],
        vec![R::Ok],
    );
    check(
        books,
        "linked_event_failed over the event's own id_must_not_be_zero",
        t,
        vec![account(31, 0, linked), account(0, JPY, AccountFlags::NONE)],
        vec![R::LedgerMustNotBeZero, R::LinkedEventFailed],
    );
    check(
        books,
        "timestamp_must_be_zero over reserved_flag",
        t,
        vec![NewAccount {
            timestamp: at(1),
            ..account(38, JPY, reserved)
        }],
        vec![R::TimestampMustBeZero],
    );
    check(
        books,
        "reserved_flag over id_must_not_be_zero",
        t,
        vec![account(0, JPY, reserved)],
        vec![R::ReservedFlag],
    );
    let both_limits = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
        .union(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    check(
        books,
        "id_must_not_be_zero over flags_are_mutually_exclusive",
        t,
        vec![account(0, JPY, both_limits)],
        vec![R::IdMustNotBeZero],
    );
    check(
        books,
        "id_must_not_be_int_max over flags_are_mutually_exclusive",
        t,
        vec![account(u128::MAX, JPY, both_limits)],
        vec![R::IdMustNotBeIntMax],
    );
    let existing = NewAccount {
        user_data_128: 1,
        user_data_64: 1,
        user_data_32: 1,
        ..account(41, JPY, AccountFlags::NONE)
    };
    check(books, "an account to retry", t, vec![existing], vec![R::Ok]);
    let retries = [
        (
            "exists_with_different_flags over flags_are_mutually_exclusive",
            NewAccount {
                flags: both_limits,
                user_data_128: 2,
                ..existing
            },
            R::ExistsWithDifferentFlags,
        ),
        (
            "exists_with_different_user_data_128 over ..._64",
            NewAccount {
                user_data_128: 2,
                user_data_64: 2,
                ..existing
            },
            R::ExistsWithDifferentUserData128,
        ),
        (
            "exists_with_different_user_data_64 over ..._32",
            NewAccount {
                user_data_64: 2,
                user_data_32: 2,
                ..existing
            },
            R::ExistsWithDifferentUserData64,
        ),
        (
            "exists_with_different_user_data_32 over ..._ledger",
            NewAccount {
                user_data_32: 2,
                ledger: SGD,
                ..existing
            },
            R::ExistsWithDifferentUserData32,
        ),
        (
            "exists_with_different_ledger over ..._code",
            NewAccount {
                ledger: SGD,
                code: 2,
                ..existing
            },
            R::ExistsWithDifferentLedger,
        ),
        (
            "exists_with_different_code over code_must_not_be_zero's place",
            NewAccount {
                code: 2,
                ..existing
            },
            R::ExistsWithDifferentCode,
        ),
        (
            "exists over ledger_must_not_be_zero's place",
            existing,
            R::Exists,
        ),
    ];
    for (what, event, expected) in retries {
        check(books, what, t, vec![event], vec![expected]);
    }
    check(
        books,
        "flags_are_mutually_exclusive over ledger_must_not_be_zero",
        t,
        vec![account(42, 0, both_limits)],
        vec![R::FlagsAreMutuallyExclusive],
    );
    check(
        books,
        "ledger_must_not_be_zero over code_must_not_be_zero",
        t,
        vec![NewAccount {
            code: 0,
            ..account(43, 0, AccountFlags::NONE)
        }],
        vec![R::LedgerMustNotBeZero],
    );
    seen
}

/// Runs the whole table against `books`; returns the names of the results it produced.
fn run_table(books: &mut dyn Books) -> BTreeSet<&'static str> {
    world(books);
    let mut seen = BTreeSet::new();
    let mut run = |books: &mut dyn Books, row: Row| {
        assert_eq!(
            books.transfers(&row.events, row.now),
            row.expected,
            "{}",
            row.what
        );
        seen.extend(row.expected.iter().map(|r| r.as_str()));
    };
    for row in transfer_rows() {
        run(books, row);
    }
    let late = [
        account(20, JPY, AccountFlags::NONE),
        account(21, JPY, AccountFlags::NONE),
    ];
    assert_eq!(books.accounts(&late, at(55)), [A, A]);
    assert_eq!(books.expire(at(60)), 1, "107 expires");
    for row in imported_rows() {
        run(books, row);
    }
    let accounts = account_rows(books);
    run(books, overflows_timeout_row());
    seen.extend(accounts.iter().copied());
    seen
}

#[test]
fn every_transfer_and_account_result_in_its_documented_precedence_in_memory() {
    let seen = run_table(&mut MemoryLedger::new());
    let missing: Vec<&str> = CreateTransferResult::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(CreateAccountResult::ALL.iter().map(|r| r.as_str()))
        .filter(|name| !seen.contains(name))
        .collect();
    assert!(missing.is_empty(), "results without a row: {missing:?}");
}

#[test]
fn every_transfer_and_account_result_in_its_documented_precedence_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = open(dir.path());
    run_table(&mut ledger);
    ledger.close().expect("close");
    check_clean(dir.path());
}

/// The semantics behind the results, on both ledgers: zero amounts, the full-post sentinel,
/// retries of posts, balancing and closing transfers.
fn semantics(books: &mut dyn Books) {
    use CreateTransferResult as T;
    world(books);
    let t = at(10);
    let check = |books: &mut dyn Books, event: NewTransfer, expected: T| {
        assert_eq!(books.transfers(&[event], t), [expected], "{event:?}");
    };
    // Zero amounts: a plain and a pending transfer of 0; a post of 0 posts nothing and
    // releases the rest.
    let before = books.account(1);
    check(books, plain(2000, 1, 2, 0), T::Ok);
    check(books, pending(2001, 1, 2, 0), T::Ok);
    check(books, pending(2002, 1, 2, 40), T::Ok);
    check(books, post(2003, 2002, 0), T::Ok);
    let after = books.account(1);
    assert_eq!(
        (after.debits_pending, after.debits_posted),
        (before.debits_pending, before.debits_posted),
        "nothing moved"
    );
    check(books, post(2003, 2002, 0), T::Exists);
    check(
        books,
        post(2003, 2002, AMOUNT_MAX),
        T::ExistsWithDifferentAmount,
    );
    // AMOUNT_MAX posts the whole pending amount; a retry with it, or with anything from the
    // pending amount up, is `exists`.
    check(books, pending(2004, 1, 2, 40), T::Ok);
    check(books, post(2005, 2004, AMOUNT_MAX), T::Ok);
    assert_eq!(books.account(1).debits_posted, before.debits_posted + 40);
    check(books, post(2005, 2004, AMOUNT_MAX), T::Exists);
    check(books, post(2005, 2004, 40), T::Exists);
    check(books, post(2005, 2004, 41), T::Exists);
    check(books, post(2005, 2004, 39), T::ExistsWithDifferentAmount);
    // A retried post's zero fields stand for the pending transfer's values: here the post
    // gave user data of its own, so a retry leaving it zero differs.
    check(
        books,
        NewTransfer {
            user_data_128: 9,
            ..post(2006, 100, 5)
        },
        T::Ok,
    );
    check(books, post(2006, 100, 5), T::ExistsWithDifferentUserData128);
    check(
        books,
        NewTransfer {
            user_data_128: 9,
            debit_account_id: AccountId(1),
            ledger: JPY,
            ..post(2006, 100, 5)
        },
        T::Exists,
    );
    // Balancing: account 30 holds 30 of credits and takes no more debits than that.
    assert_eq!(
        books.accounts(&[account(30, JPY, AccountFlags::NONE)], t),
        [A]
    );
    check(books, plain(2010, 1, 30, 30), T::Ok);
    check(
        books,
        with(TransferFlags::BALANCING_DEBIT, plain(2011, 30, 2, 100)),
        T::Ok,
    );
    let swept = books.account(30);
    assert_eq!(swept.debits_posted, swept.credits_posted, "swept to zero");
    check(
        books,
        with(TransferFlags::BALANCING_DEBIT, plain(2011, 30, 2, 30)),
        T::Exists,
    );
    check(
        books,
        with(TransferFlags::BALANCING_DEBIT, plain(2011, 30, 2, 29)),
        T::ExistsWithDifferentAmount,
    );
    check(
        books,
        with(TransferFlags::BALANCING_DEBIT, plain(2012, 30, 2, 100)),
        T::Ok,
    );
    assert_eq!(books.account(30), swept, "nothing left to move: 0 moved");
    // Closing: a pending closing transfer closes; voiding it reopens; so does its expiry.
    check(
        books,
        with(TransferFlags::CLOSING_CREDIT, pending(2020, 1, 30, 0)),
        T::Ok,
    );
    assert!(books.account(30).is_closed());
    check(books, plain(2021, 1, 30, 1), T::CreditAccountAlreadyClosed);
    check(books, plain(2021, 1, 30, 1), T::IdAlreadyFailed);
    check(
        books,
        post(2022, 2020, AMOUNT_MAX),
        T::CreditAccountAlreadyClosed,
    );
    check(books, void(2023, 2020), T::Ok);
    assert!(!books.account(30).is_closed());
    check(books, plain(2024, 1, 30, 1), T::Ok);
    check(
        books,
        NewTransfer {
            timeout: 1,
            ..with(TransferFlags::CLOSING_DEBIT, pending(2025, 30, 2, 0))
        },
        T::Ok,
    );
    assert!(books.account(30).is_closed());
    assert_eq!(books.expire(at(20)), 1, "2025 expires");
    assert!(!books.account(30).is_closed(), "the expiry reopened it");
}

#[test]
fn zero_amounts_full_posts_balancing_and_closing_in_memory() {
    semantics(&mut MemoryLedger::new());
}

#[test]
fn zero_amounts_full_posts_balancing_and_closing_on_disk_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = open(dir.path());
    semantics(&mut ledger);
    ledger.close().expect("close");
    check_clean(dir.path());
    let mut reopened = open(dir.path());
    assert!(!reopened.account(30).is_closed());
    reopened.close().expect("close");
}

/// A failed id is stored with the group that failed it, even a group that journals nothing,
/// and stays failed across a reopen; closed flags survive it too, both from the account
/// snapshot and from the journal replayed after it (closing, voiding a closing transfer and
/// its expiry each replayed).
#[test]
fn failed_ids_and_closed_accounts_survive_reopen() {
    use CreateTransferResult as T;
    for replayed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        // The default options take no account snapshot in a run this short: the reopen
        // replays every record.
        let reopen = |path: &Path| match replayed {
            true => Ledger::open(path, node_key(), Options::default()).expect("opens"),
            false => open(path),
        };
        let ledger = reopen(dir.path());
        let accounts: Vec<NewAccount> = (1..=5)
            .map(|id| account(id, JPY, AccountFlags::NONE))
            .collect();
        ledger.create_accounts(&accounts, NOW).expect("accounts");
        // Alone in its group: no journal record, only the failed id is written.
        assert_eq!(
            ledger
                .create_transfers(&[plain(10, 99, 2, 1)], NOW)
                .expect("transfers"),
            [T::DebitAccountNotFound]
        );
        let closing = |id, account, timeout| NewTransfer {
            timeout,
            ..with(TransferFlags::CLOSING_DEBIT, pending(id, account, 2, 0))
        };
        let batch = [
            closing(11, 3, 0),
            closing(12, 4, 0),
            void(13, 12),
            closing(14, 5, 1),
        ];
        assert_eq!(
            ledger.create_transfers(&batch, NOW).expect("transfers"),
            [T::Ok; 4]
        );
        assert_eq!(ledger.expire_pending(at(2)).expect("expiry").count, 1);
        ledger.close().expect("close");
        let ledger = reopen(dir.path());
        let closed: Vec<bool> = ledger
            .lookup_accounts(&[AccountId(3), AccountId(4), AccountId(5)])
            .expect("lookup")
            .into_iter()
            .map(|account| account.expect("exists").is_closed())
            .collect();
        assert_eq!(closed, [true, false, false], "replayed: {replayed}");
        assert_eq!(
            ledger
                .create_transfers(&[plain(10, 1, 2, 1), plain(15, 3, 1, 1)], at(3))
                .expect("transfers"),
            [T::IdAlreadyFailed, T::DebitAccountAlreadyClosed]
        );
        ledger.close().expect("close");
        check_clean(dir.path());
    }
}
