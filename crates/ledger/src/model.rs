//! The ledger's data model, after TigerBeetle's: accounts, transfers, their flags and ids.
//!
//! Money is an integer number of minor units (`u128`) in the currency named by the `ledger`
//! field (ISO 4217 numeric code: 392 JPY, 702 SGD). Nothing here is floating point.

use std::fmt;

/// Nanoseconds since the Unix epoch, passed in by the caller: the ledger never reads a clock.
///
/// Event timestamps are derived from it and made strictly increasing (see
/// [`crate::Ledger::create_transfers`]), so a clock that steps backwards cannot reorder history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// A timestamp `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> u64 {
        self.0
    }
}

/// An account id. Zero and `u128::MAX` are reserved: the ledger rejects them with a named result
/// (`IdMustNotBeZero`, `IdMustNotBeIntMax`) rather than at construction, so that a batch carrying
/// one gets a per-event answer as in TigerBeetle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub u128);

/// A transfer id. Zero and `u128::MAX` are reserved, as for [`AccountId`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u128);

impl AccountId {
    /// Whether this id may name an account (neither zero nor `u128::MAX`).
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && self.0 != u128::MAX
    }
}

impl TransferId {
    /// Whether this id may name a transfer (neither zero nor `u128::MAX`).
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && self.0 != u128::MAX
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account {}", self.0)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transfer {}", self.0)
    }
}

/// Account flags (a bit set). Unknown bits are rejected with `ReservedFlag`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountFlags(pub u16);

impl AccountFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// This event and the next one in the batch succeed or fail together.
    pub const LINKED: Self = Self(1 << 0);
    /// `debits_pending + debits_posted` may never exceed `credits_posted` (an asset the holder
    /// cannot overdraw, e.g. a customer's balance held by the bank).
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: Self = Self(1 << 1);
    /// `credits_pending + credits_posted` may never exceed `debits_posted`.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: Self = Self(1 << 2);
    /// Keep a balance snapshot after every transfer that touches the account.
    pub const HISTORY: Self = Self(1 << 3);
    /// An imported account: it carries its own creation timestamp
    /// ([`NewAccount::timestamp`]) instead of one the ledger assigns. A batch holds imported
    /// accounts only or none.
    pub const IMPORTED: Self = Self(1 << 4);
    /// The account takes no more transfers, except voids of pending transfers. Set at
    /// creation, or by a pending transfer with `closing_debit`/`closing_credit`, and cleared by
    /// voiding (or the expiry of) that closing transfer.
    pub const CLOSED: Self = Self(1 << 5);
    /// Every bit with a meaning; the others are reserved.
    pub const KNOWN: Self = Self(0b11_1111);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Transfer flags (a bit set). Unknown bits are rejected with `ReservedFlag`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TransferFlags(pub u16);

impl TransferFlags {
    /// No flags: a single-phase transfer, posted at once.
    pub const NONE: Self = Self(0);
    /// This event and the next one in the batch succeed or fail together.
    pub const LINKED: Self = Self(1 << 0);
    /// Reserve the amount (first phase of a two-phase transfer).
    pub const PENDING: Self = Self(1 << 1);
    /// Post (all or part of) the pending transfer named by `pending_id`.
    pub const POST_PENDING_TRANSFER: Self = Self(1 << 2);
    /// Release the reservation of the pending transfer named by `pending_id`.
    pub const VOID_PENDING_TRANSFER: Self = Self(1 << 3);
    /// Move at most `amount`: as much as keeps the debit account's debits (pending and posted)
    /// at or below its posted credits, whatever its flags. The stored transfer carries the
    /// amount moved.
    pub const BALANCING_DEBIT: Self = Self(1 << 4);
    /// Move at most `amount`: as much as keeps the credit account's credits (pending and
    /// posted) at or below its posted debits, whatever its flags.
    pub const BALANCING_CREDIT: Self = Self(1 << 5);
    /// Close the debit account when this pending transfer is applied (voiding it reopens).
    pub const CLOSING_DEBIT: Self = Self(1 << 6);
    /// Close the credit account when this pending transfer is applied (voiding it reopens).
    pub const CLOSING_CREDIT: Self = Self(1 << 7);
    /// An imported transfer: it carries its own timestamp ([`NewTransfer::timestamp`]). A
    /// batch holds imported transfers only or none.
    pub const IMPORTED: Self = Self(1 << 8);
    /// Every bit with a meaning; the others are reserved.
    pub const KNOWN: Self = Self(0b1_1111_1111);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether this transfer resolves a pending one (post or void).
    pub const fn resolves_pending(self) -> bool {
        self.contains(Self::POST_PENDING_TRANSFER) || self.contains(Self::VOID_PENDING_TRANSFER)
    }

    /// Whether either balancing flag is set.
    pub const fn balancing(self) -> bool {
        self.contains(Self::BALANCING_DEBIT) || self.contains(Self::BALANCING_CREDIT)
    }

    /// Whether either closing flag is set.
    pub const fn closing(self) -> bool {
        self.contains(Self::CLOSING_DEBIT) || self.contains(Self::CLOSING_CREDIT)
    }
}

/// The `amount` of a post that posts the whole pending amount (TigerBeetle's `AMOUNT_MAX`).
pub const AMOUNT_MAX: u128 = u128::MAX;

/// An account as the caller asks for it: balances start at zero and the timestamp is assigned
/// by the ledger, so neither can be supplied (parse, don't validate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewAccount {
    /// Unique id; zero and `u128::MAX` are reserved.
    pub id: AccountId,
    /// Opaque caller data (e.g. a customer reference).
    pub user_data_128: u128,
    /// Opaque caller data.
    pub user_data_64: u64,
    /// Opaque caller data.
    pub user_data_32: u32,
    /// Currency: ISO 4217 numeric code (392 JPY, 702 SGD). Transfers only move money between
    /// accounts of the same ledger. Must not be zero.
    pub ledger: u32,
    /// Chart-of-accounts code chosen by the operator. Must not be zero.
    pub code: u16,
    /// See [`AccountFlags`].
    pub flags: AccountFlags,
    /// Zero, unless `flags` has [`AccountFlags::IMPORTED`]: then the account's creation time,
    /// which must be in `1 .. 2^63`, not after the ledger's clock and after every event's.
    pub timestamp: Timestamp,
}

/// A stored account with its balances, in minor units of its ledger's currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Account {
    /// Unique id.
    pub id: AccountId,
    /// Sum of pending (reserved) debits.
    pub debits_pending: u128,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of pending (reserved) credits.
    pub credits_pending: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
    /// Opaque caller data.
    pub user_data_128: u128,
    /// Opaque caller data.
    pub user_data_64: u64,
    /// Opaque caller data.
    pub user_data_32: u32,
    /// Currency (ISO 4217 numeric).
    pub ledger: u32,
    /// Chart-of-accounts code.
    pub code: u16,
    /// See [`AccountFlags`].
    pub flags: AccountFlags,
    /// When the ledger created it (unique across all events).
    pub timestamp: Timestamp,
}

impl Account {
    /// Whether the account takes no more transfers (other than voids).
    pub const fn is_closed(&self) -> bool {
        self.flags.contains(AccountFlags::CLOSED)
    }

    pub(crate) fn from_new(new: &NewAccount, timestamp: Timestamp) -> Self {
        Self {
            id: new.id,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            user_data_128: new.user_data_128,
            user_data_64: new.user_data_64,
            user_data_32: new.user_data_32,
            ledger: new.ledger,
            code: new.code,
            flags: new.flags,
            timestamp,
        }
    }
}

/// A transfer as the caller asks for it. One amount, one debit account, one credit account:
/// balanced by construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewTransfer {
    /// Unique id; zero and `u128::MAX` are reserved. Retrying with the same id and fields
    /// returns `Exists` and changes nothing; retrying an id whose event failed with a
    /// transient result returns `IdAlreadyFailed`.
    pub id: TransferId,
    /// The account debited. For post/void, zero means "as in the pending transfer".
    pub debit_account_id: AccountId,
    /// The account credited. For post/void, zero means "as in the pending transfer".
    pub credit_account_id: AccountId,
    /// Minor units; zero is allowed. For a post: at most the pending amount (the rest is
    /// released), or [`AMOUNT_MAX`] for all of it. For a void: zero or the pending amount.
    /// With a balancing flag: the most to move.
    pub amount: u128,
    /// For post/void: the pending transfer resolved. Otherwise zero.
    pub pending_id: TransferId,
    /// Opaque caller data; the relay stores the payment's UETR here.
    pub user_data_128: u128,
    /// Opaque caller data.
    pub user_data_64: u64,
    /// Opaque caller data.
    pub user_data_32: u32,
    /// For pending transfers: seconds after the transfer's timestamp at which it expires
    /// (zero: never). Must be zero otherwise.
    pub timeout: u32,
    /// Currency (ISO 4217 numeric); must match both accounts. Zero for post/void means "as in
    /// the pending transfer".
    pub ledger: u32,
    /// Reason code chosen by the operator. Zero for post/void means "as in the pending transfer".
    pub code: u16,
    /// See [`TransferFlags`].
    pub flags: TransferFlags,
    /// Zero, unless `flags` has [`TransferFlags::IMPORTED`]: then the transfer's time, which
    /// must be in `1 .. 2^63`, not after the ledger's clock and after every event's.
    pub timestamp: Timestamp,
}

/// A stored transfer: the request with the gaps of a post/void filled in from its pending
/// transfer, and the timestamp the ledger assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// Unique id.
    pub id: TransferId,
    /// The account debited.
    pub debit_account_id: AccountId,
    /// The account credited.
    pub credit_account_id: AccountId,
    /// Minor units moved (posted amount for a post, pending amount for a void).
    pub amount: u128,
    /// For post/void: the pending transfer resolved.
    pub pending_id: TransferId,
    /// Opaque caller data (UETR).
    pub user_data_128: u128,
    /// Opaque caller data.
    pub user_data_64: u64,
    /// Opaque caller data.
    pub user_data_32: u32,
    /// Seconds until a pending transfer expires (zero: never).
    pub timeout: u32,
    /// Currency (ISO 4217 numeric).
    pub ledger: u32,
    /// Reason code.
    pub code: u16,
    /// See [`TransferFlags`].
    pub flags: TransferFlags,
    /// When the ledger applied it (unique across all events).
    pub timestamp: Timestamp,
}

impl Transfer {
    /// When a pending transfer with a timeout stops being postable, if it has one.
    ///
    /// `None` also for a timeout so far away that it does not fit in a `u64` of nanoseconds;
    /// the state machine rejects those with `OverflowsTimeout`, so stored transfers never
    /// hit that case.
    pub fn expires_at(&self) -> Option<Timestamp> {
        if !self.flags.contains(TransferFlags::PENDING) || self.timeout == 0 {
            return None;
        }
        let timeout_nanos = u64::from(self.timeout).checked_mul(NANOS_PER_SECOND)?;
        self.timestamp.0.checked_add(timeout_nanos).map(Timestamp)
    }
}

/// Nanoseconds in one second: `timeout` is in seconds, timestamps in nanoseconds.
pub(crate) const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Where a pending transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PendingStatus {
    /// Reserved, awaiting post or void.
    Pending,
    /// Posted (fully or partially) by a later transfer.
    Posted,
    /// Voided by a later transfer.
    Voided,
    /// Its timeout passed and `expire_pending` released it.
    Expired,
}

impl PendingStatus {
    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            Self::Pending => 1,
            Self::Posted => 2,
            Self::Voided => 3,
            Self::Expired => 4,
        }
    }

    pub(crate) const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Pending),
            2 => Some(Self::Posted),
            3 => Some(Self::Voided),
            4 => Some(Self::Expired),
            _ => None,
        }
    }

    /// The lowercase name, as in exports and audit reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Posted => "posted",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }
}

/// An account's balances right after a transfer touched it (kept for `HISTORY` accounts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountBalance {
    /// The timestamp of the transfer that produced these balances.
    pub timestamp: Timestamp,
    /// Sum of pending debits.
    pub debits_pending: u128,
    /// Sum of posted debits.
    pub debits_posted: u128,
    /// Sum of pending credits.
    pub credits_pending: u128,
    /// Sum of posted credits.
    pub credits_posted: u128,
}

impl AccountBalance {
    pub(crate) fn of(account: &Account, timestamp: Timestamp) -> Self {
        Self {
            timestamp,
            debits_pending: account.debits_pending,
            debits_posted: account.debits_posted,
            credits_pending: account.credits_pending,
            credits_posted: account.credits_posted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_zero_and_int_max_are_invalid() {
        assert!(!AccountId(0).is_valid());
        assert!(!AccountId(u128::MAX).is_valid());
        assert!(AccountId(1).is_valid());
        assert!(!TransferId(0).is_valid());
        assert!(!TransferId(u128::MAX).is_valid());
        assert!(TransferId(7).is_valid());
    }

    #[test]
    fn expires_at_adds_timeout_seconds_to_the_timestamp() {
        let transfer = Transfer {
            flags: TransferFlags::PENDING,
            timeout: 2,
            timestamp: Timestamp(10),
            ..Transfer::default()
        };
        assert_eq!(transfer.expires_at(), Some(Timestamp(2_000_000_010)));
        let no_timeout = Transfer {
            timeout: 0,
            ..transfer
        };
        assert_eq!(no_timeout.expires_at(), None);
        let not_pending = Transfer {
            flags: TransferFlags::NONE,
            ..transfer
        };
        assert_eq!(not_pending.expires_at(), None);
        let overflowing = Transfer {
            timestamp: Timestamp(u64::MAX - 1),
            ..transfer
        };
        assert_eq!(overflowing.expires_at(), None);
    }

    #[test]
    fn pending_status_round_trips_through_its_byte() {
        for status in [
            PendingStatus::Pending,
            PendingStatus::Posted,
            PendingStatus::Voided,
            PendingStatus::Expired,
        ] {
            assert_eq!(PendingStatus::from_byte(status.to_byte()), Some(status));
        }
        assert_eq!(PendingStatus::from_byte(0), None);
        assert_eq!(PendingStatus::from_byte(5), None);
    }
}
