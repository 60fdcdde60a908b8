//! Per-event results of `create_accounts` and `create_transfers`, named as TigerBeetle names
//! them so that engineers who know its client libraries read them without a glossary.
//!
//! The variants are listed in the order the state machine checks them (the first failing check
//! names the result), not alphabetically: TigerBeetle 0.17 documents that precedence (its
//! reference pages for `create_accounts` and `create_transfers`) and we keep it. The crate
//! documentation lists where this ledger differs; one result,
//! `imported_event_timestamp_must_postdate_last_event`, is ours and not TigerBeetle's.

use std::fmt;

macro_rules! named_results {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every result, in precedence order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The snake_case name (as in TigerBeetle and in JSON output).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Whether the event took effect (`Ok`) or had already taken effect with identical
            /// fields (`Exists`): both mean the caller's intent is recorded.
            pub const fn is_recorded(self) -> bool {
                matches!(self, Self::Ok | Self::Exists)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_results! {
    /// The outcome of one event of `create_accounts`.
    CreateAccountResult {
        /// Created (TigerBeetle 0.17 calls it `created`).
        Ok => "ok",
        /// Another event of its linked chain failed, so this one was not applied.
        LinkedEventFailed => "linked_event_failed",
        /// The batch ended with the `linked` flag set: the chain was never closed.
        LinkedEventChainOpen => "linked_event_chain_open",
        /// The batch's first account is imported and this one is not.
        ImportedEventExpected => "imported_event_expected",
        /// The batch's first account is not imported and this one is.
        ImportedEventNotExpected => "imported_event_not_expected",
        /// A timestamp on an account that is not imported (the ledger assigns it).
        TimestampMustBeZero => "timestamp_must_be_zero",
        /// An imported account's timestamp is zero or not below 2^63.
        ImportedEventTimestampOutOfRange => "imported_event_timestamp_out_of_range",
        /// An imported account's timestamp is after the caller's `now`.
        ImportedEventTimestampMustNotAdvance => "imported_event_timestamp_must_not_advance",
        /// A flag bit without a meaning was set.
        ReservedFlag => "reserved_flag",
        /// The id is zero.
        IdMustNotBeZero => "id_must_not_be_zero",
        /// The id is `u128::MAX`.
        IdMustNotBeIntMax => "id_must_not_be_int_max",
        /// The id exists with different flags.
        ExistsWithDifferentFlags => "exists_with_different_flags",
        /// The id exists with a different `user_data_128`.
        ExistsWithDifferentUserData128 => "exists_with_different_user_data_128",
        /// The id exists with a different `user_data_64`.
        ExistsWithDifferentUserData64 => "exists_with_different_user_data_64",
        /// The id exists with a different `user_data_32`.
        ExistsWithDifferentUserData32 => "exists_with_different_user_data_32",
        /// The id exists with a different ledger.
        ExistsWithDifferentLedger => "exists_with_different_ledger",
        /// The id exists with a different code.
        ExistsWithDifferentCode => "exists_with_different_code",
        /// The id exists with identical fields; nothing changed.
        Exists => "exists",
        /// Both balance-limit flags were set.
        FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
        /// The ledger (currency) is zero.
        LedgerMustNotBeZero => "ledger_must_not_be_zero",
        /// The code is zero.
        CodeMustNotBeZero => "code_must_not_be_zero",
        /// An imported account's timestamp is not after the last account's.
        ImportedEventTimestampMustNotRegress => "imported_event_timestamp_must_not_regress",
        /// Not a TigerBeetle result (a stricter rule of this ledger): an imported account's
        /// timestamp follows the last account's but not the last event's (a transfer's or an
        /// expiry's). The journal, its audit and the timestamps the ledger hands out rely on
        /// one strictly increasing sequence of event timestamps.
        ImportedEventTimestampMustPostdateLastEvent =>
            "imported_event_timestamp_must_postdate_last_event",
    }
}

named_results! {
    /// The outcome of one event of `create_transfers`.
    CreateTransferResult {
        /// Applied (TigerBeetle 0.17 calls it `created`).
        Ok => "ok",
        /// Another event of its linked chain failed, so this one was not applied.
        LinkedEventFailed => "linked_event_failed",
        /// The batch ended with the `linked` flag set: the chain was never closed.
        LinkedEventChainOpen => "linked_event_chain_open",
        /// The batch's first transfer is imported and this one is not.
        ImportedEventExpected => "imported_event_expected",
        /// The batch's first transfer is not imported and this one is.
        ImportedEventNotExpected => "imported_event_not_expected",
        /// A timestamp on a transfer that is not imported (the ledger assigns it).
        TimestampMustBeZero => "timestamp_must_be_zero",
        /// An imported transfer's timestamp is zero or not below 2^63.
        ImportedEventTimestampOutOfRange => "imported_event_timestamp_out_of_range",
        /// An imported transfer's timestamp is after the caller's `now`.
        ImportedEventTimestampMustNotAdvance => "imported_event_timestamp_must_not_advance",
        /// A flag bit without a meaning was set.
        ReservedFlag => "reserved_flag",
        /// The id is zero.
        IdMustNotBeZero => "id_must_not_be_zero",
        /// The id is `u128::MAX`.
        IdMustNotBeIntMax => "id_must_not_be_int_max",
        /// The id exists with different flags.
        ExistsWithDifferentFlags => "exists_with_different_flags",
        /// The id exists with a different `pending_id`.
        ExistsWithDifferentPendingId => "exists_with_different_pending_id",
        /// The id exists with a different timeout.
        ExistsWithDifferentTimeout => "exists_with_different_timeout",
        /// The id exists with a different debit account.
        ExistsWithDifferentDebitAccountId => "exists_with_different_debit_account_id",
        /// The id exists with a different credit account.
        ExistsWithDifferentCreditAccountId => "exists_with_different_credit_account_id",
        /// The id exists with a different amount (for a balancing transfer: one below the
        /// amount moved; for a post: see [`crate::AMOUNT_MAX`]).
        ExistsWithDifferentAmount => "exists_with_different_amount",
        /// The id exists with a different `user_data_128`.
        ExistsWithDifferentUserData128 => "exists_with_different_user_data_128",
        /// The id exists with a different `user_data_64`.
        ExistsWithDifferentUserData64 => "exists_with_different_user_data_64",
        /// The id exists with a different `user_data_32`.
        ExistsWithDifferentUserData32 => "exists_with_different_user_data_32",
        /// The id exists with a different ledger.
        ExistsWithDifferentLedger => "exists_with_different_ledger",
        /// The id exists with a different code.
        ExistsWithDifferentCode => "exists_with_different_code",
        /// The id exists with identical fields; nothing changed.
        Exists => "exists",
        /// An earlier event with this id failed with a transient result
        /// ([`CreateTransferResult::is_transient`]); the id stays failed.
        IdAlreadyFailed => "id_already_failed",
        /// More than one of `pending`, `post_pending_transfer`, `void_pending_transfer`, or a
        /// post or void with a balancing or closing flag.
        FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
        /// The debit account id is zero.
        DebitAccountIdMustNotBeZero => "debit_account_id_must_not_be_zero",
        /// The debit account id is `u128::MAX`.
        DebitAccountIdMustNotBeIntMax => "debit_account_id_must_not_be_int_max",
        /// The credit account id is zero.
        CreditAccountIdMustNotBeZero => "credit_account_id_must_not_be_zero",
        /// The credit account id is `u128::MAX`.
        CreditAccountIdMustNotBeIntMax => "credit_account_id_must_not_be_int_max",
        /// Debit and credit account are the same.
        AccountsMustBeDifferent => "accounts_must_be_different",
        /// A transfer that is neither post nor void carries a `pending_id`.
        PendingIdMustBeZero => "pending_id_must_be_zero",
        /// A post or void without a `pending_id`.
        PendingIdMustNotBeZero => "pending_id_must_not_be_zero",
        /// The `pending_id` is `u128::MAX`.
        PendingIdMustNotBeIntMax => "pending_id_must_not_be_int_max",
        /// A post or void names itself as its pending transfer.
        PendingIdMustBeDifferent => "pending_id_must_be_different",
        /// A timeout on a transfer that is not pending.
        TimeoutReservedForPendingTransfer => "timeout_reserved_for_pending_transfer",
        /// A closing flag on a transfer that is not pending.
        ClosingTransferMustBePending => "closing_transfer_must_be_pending",
        /// The ledger (currency) is zero.
        LedgerMustNotBeZero => "ledger_must_not_be_zero",
        /// The code is zero.
        CodeMustNotBeZero => "code_must_not_be_zero",
        /// No account has the debit account id (transient).
        DebitAccountNotFound => "debit_account_not_found",
        /// No account has the credit account id (transient).
        CreditAccountNotFound => "credit_account_not_found",
        /// The two accounts hold different currencies.
        AccountsMustHaveTheSameLedger => "accounts_must_have_the_same_ledger",
        /// The transfer's ledger differs from its accounts' ledger.
        TransferMustHaveTheSameLedgerAsAccounts => "transfer_must_have_the_same_ledger_as_accounts",
        /// No transfer has the `pending_id` (transient).
        PendingTransferNotFound => "pending_transfer_not_found",
        /// The transfer named by `pending_id` is not a pending transfer.
        PendingTransferNotPending => "pending_transfer_not_pending",
        /// The post/void names a debit account other than the pending transfer's.
        PendingTransferHasDifferentDebitAccountId => "pending_transfer_has_different_debit_account_id",
        /// The post/void names a credit account other than the pending transfer's.
        PendingTransferHasDifferentCreditAccountId =>
            "pending_transfer_has_different_credit_account_id",
        /// The post/void names a ledger other than the pending transfer's.
        PendingTransferHasDifferentLedger => "pending_transfer_has_different_ledger",
        /// The post/void names a code other than the pending transfer's.
        PendingTransferHasDifferentCode => "pending_transfer_has_different_code",
        /// A post (other than [`crate::AMOUNT_MAX`]) or a void for more than the pending amount.
        ExceedsPendingTransferAmount => "exceeds_pending_transfer_amount",
        /// A void whose non-zero amount is below the pending amount.
        PendingTransferHasDifferentAmount => "pending_transfer_has_different_amount",
        /// The pending transfer was already posted.
        PendingTransferAlreadyPosted => "pending_transfer_already_posted",
        /// The pending transfer was already voided.
        PendingTransferAlreadyVoided => "pending_transfer_already_voided",
        /// The pending transfer's timeout has passed.
        PendingTransferExpired => "pending_transfer_expired",
        /// An imported transfer's timestamp is not after the last transfer's.
        ImportedEventTimestampMustNotRegress => "imported_event_timestamp_must_not_regress",
        /// An imported transfer's timestamp is not after its debit account's.
        ImportedEventTimestampMustPostdateDebitAccount =>
            "imported_event_timestamp_must_postdate_debit_account",
        /// An imported transfer's timestamp is not after its credit account's.
        ImportedEventTimestampMustPostdateCreditAccount =>
            "imported_event_timestamp_must_postdate_credit_account",
        /// Not a TigerBeetle result (a stricter rule of this ledger): an imported transfer's
        /// timestamp follows the last transfer's but not the last event's (an account's or an
        /// expiry's). The journal, its audit and the timestamps the ledger hands out rely on
        /// one strictly increasing sequence of event timestamps.
        ImportedEventTimestampMustPostdateLastEvent =>
            "imported_event_timestamp_must_postdate_last_event",
        /// An imported pending transfer carries a timeout.
        ImportedEventTimeoutMustBeZero => "imported_event_timeout_must_be_zero",
        /// The debit account is closed (transient).
        DebitAccountAlreadyClosed => "debit_account_already_closed",
        /// The credit account is closed (transient).
        CreditAccountAlreadyClosed => "credit_account_already_closed",
        /// `debits_pending` of the debit account would overflow a `u128`.
        OverflowsDebitsPending => "overflows_debits_pending",
        /// `credits_pending` of the credit account would overflow a `u128`.
        OverflowsCreditsPending => "overflows_credits_pending",
        /// `debits_posted + amount` of the debit account would overflow a `u128` (checked for
        /// pending transfers too, which may be posted later).
        OverflowsDebitsPosted => "overflows_debits_posted",
        /// `credits_posted + amount` of the credit account would overflow a `u128`.
        OverflowsCreditsPosted => "overflows_credits_posted",
        /// `debits_pending + debits_posted` of the debit account would overflow a `u128`.
        OverflowsDebits => "overflows_debits",
        /// `credits_pending + credits_posted` of the credit account would overflow a `u128`.
        OverflowsCredits => "overflows_credits",
        /// The expiry time (timestamp + timeout) would not fit a `u64` of nanoseconds.
        OverflowsTimeout => "overflows_timeout",
        /// The debit account has `debits_must_not_exceed_credits` and this would break it
        /// (transient).
        ExceedsCredits => "exceeds_credits",
        /// The credit account has `credits_must_not_exceed_debits` and this would break it
        /// (transient).
        ExceedsDebits => "exceeds_debits",
    }
}

impl CreateTransferResult {
    /// Whether the result depends on the state at the time rather than on the event: such a
    /// failure is remembered, and a retry of the id is `IdAlreadyFailed` (TigerBeetle's
    /// transient errors), so that one id never has two outcomes.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::DebitAccountNotFound
                | Self::CreditAccountNotFound
                | Self::PendingTransferNotFound
                | Self::ExceedsCredits
                | Self::ExceedsDebits
                | Self::DebitAccountAlreadyClosed
                | Self::CreditAccountAlreadyClosed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names_are_unique_snake_case() {
        let mut names: Vec<&str> = CreateTransferResult::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len);
        for name in names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        let mut names: Vec<&str> = CreateAccountResult::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
    }

    #[test]
    fn only_ok_and_exists_count_as_recorded() {
        assert!(CreateTransferResult::Ok.is_recorded());
        assert!(CreateTransferResult::Exists.is_recorded());
        assert!(!CreateTransferResult::ExistsWithDifferentAmount.is_recorded());
        assert!(!CreateAccountResult::LinkedEventFailed.is_recorded());
    }
}
