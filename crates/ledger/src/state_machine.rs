//! The deterministic state machine: given the committed state (a [`Store`]), a batch and the
//! caller's `now`, decide each event's result and collect what changes.
//!
//! It performs no I/O of its own beyond reading the store and never reads a clock. Changes
//! accumulate in [`Changes`], an overlay over the store that spans one group commit (several
//! batches). Linked chains are undone through an undo log when one of their events fails.
//! Nothing here writes to sled: the writer turns the overlay into sled batches afterwards.
//!
//! The checks follow TigerBeetle 0.17's documented precedence (see [`crate::result`]): the
//! batch-wide `imported` rule and the event's timestamp, then its flags and id, then whether
//! the id exists (or already failed), then the event's own fields, then the state it needs
//! (accounts, the pending transfer), and the balances last.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::Error;
use crate::idhash::{IdMap, IdSet};
use crate::journal::Entries;
use crate::model::{
    AMOUNT_MAX, Account, AccountBalance, AccountFlags, AccountId, NewAccount, NewTransfer,
    PendingStatus, Timestamp, Transfer, TransferFlags, TransferId,
};
use crate::result::{CreateAccountResult, CreateTransferResult};

/// Imported timestamps must stay below 2^63 nanoseconds, as in TigerBeetle.
const IMPORTED_TIMESTAMP_END: u64 = 1 << 63;

/// Read access to the committed state, as the state machine sees it: what a storage engine
/// implements so that the state machine (through [`crate::engine::GroupBuilder`]) can run a
/// group over its books. Every answer must be the committed state the group builds on.
pub trait Store {
    /// The account `id`, with its committed balances.
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error>;
    /// The transfer `id`, as stored.
    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error>;
    /// Where the pending transfer `id` stands (`None` if it is not a pending transfer).
    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error>;
    /// Whether an event with this transfer id failed with a transient result (see
    /// [`CreateTransferResult::is_transient`]).
    fn transfer_failed(&self, id: TransferId) -> Result<bool, Error>;
    /// Committed expiry-index entries due at or before `up_to`, in order, at most `limit`.
    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error>;
}

/// The ledger's clock: the last timestamp of any event, and of the last account and transfer
/// created (an imported event must follow the last of its kind, and, here, every event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// The last timestamp of any event.
    pub last: Timestamp,
    /// The timestamp of the last account created.
    pub account: Timestamp,
    /// The timestamp of the last transfer applied.
    pub transfer: Timestamp,
}

impl From<Timestamp> for Clock {
    /// A clock that only knows the last timestamp: the kinds are taken to be as recent as it
    /// (which makes `imported_event_timestamp_must_not_regress` the answer where it cannot tell).
    fn from(last: Timestamp) -> Self {
        Self {
            last,
            account: last,
            transfer: last,
        }
    }
}

/// Undo-log entry: the overlay slot's value before a change.
enum Undo {
    Account(AccountId, Option<Account>),
    Transfer(TransferId),
    Pending(TransferId, Option<PendingStatus>),
    Expiry((Timestamp, TransferId), Option<bool>),
}

/// Where to roll back to when a linked chain fails.
struct Savepoint {
    undo: usize,
    history: usize,
    entries: usize,
    clock: Clock,
}

/// Where a refused request is rolled back to (see [`Changes::request_savepoint`]).
pub(crate) struct RequestSavepoint {
    savepoint: Savepoint,
    not_failed: Vec<TransferId>,
    imported: bool,
}

/// The uncommitted changes of one group commit, over the committed store.
#[derive(Default)]
pub(crate) struct Changes {
    /// Latest value of every account created or changed in this group.
    pub(crate) accounts: IdMap<AccountId, Account>,
    /// Committed value (or absence) of each account before this group first touched it; used
    /// to check that the group's debits equal its credits before writing.
    pub(crate) accounts_before: IdMap<AccountId, Option<Account>>,
    /// Transfers created in this group.
    pub(crate) transfers: IdMap<TransferId, Transfer>,
    /// Pending-status changes.
    pub(crate) pending: IdMap<TransferId, PendingStatus>,
    /// Expiry-index changes: `true` inserted, `false` removed.
    pub(crate) expiry: BTreeMap<(Timestamp, TransferId), bool>,
    /// Balance snapshots for `HISTORY` accounts.
    pub(crate) history: Vec<(AccountId, AccountBalance)>,
    /// Transfer ids whose event failed with a transient result in this group. Kept through a
    /// linked chain's rollback: the failure is the event's own outcome, and a retry of the id
    /// must not succeed later.
    pub(crate) failed: IdSet<TransferId>,
    /// The largest timestamp assigned so far (committed or in this group).
    pub(crate) last_timestamp: Timestamp,
    /// The timestamp of the last account created (committed or in this group).
    pub(crate) last_account_timestamp: Timestamp,
    /// The timestamp of the last transfer applied (committed or in this group).
    pub(crate) last_transfer_timestamp: Timestamp,
    undo: Vec<Undo>,
}

/// Linked-chain bookkeeping shared by accounts and transfers.
struct Chain {
    start: Option<usize>,
    broken: bool,
    savepoint: Option<Savepoint>,
}

/// The results the linked-chain loop names, for one kind of event.
struct LinkedResults<R> {
    ok: R,
    chain_open: R,
    failed: R,
    imported_expected: R,
    imported_not_expected: R,
}

impl Changes {
    pub(crate) fn new(clock: impl Into<Clock>) -> Self {
        let clock = clock.into();
        Self {
            last_timestamp: clock.last,
            last_account_timestamp: clock.account,
            last_transfer_timestamp: clock.transfer,
            ..Self::default()
        }
    }

    /// An empty overlay sized for `events` events, so that a full group never rehashes
    /// (measured: growing the maps was a tenth of the state machine's time for full batches).
    pub(crate) fn with_capacity(clock: impl Into<Clock>, events: usize) -> Self {
        // A transfer changes two accounts; its undo log holds the two accounts, the transfer
        // and, when pending, its status and expiry.
        let accounts = events.saturating_mul(2);
        Self {
            accounts: IdMap::with_capacity_and_hasher(accounts, Default::default()),
            accounts_before: IdMap::with_capacity_and_hasher(accounts, Default::default()),
            transfers: IdMap::with_capacity_and_hasher(events, Default::default()),
            undo: Vec::with_capacity(events.saturating_mul(3)),
            ..Self::new(clock)
        }
    }

    /// The clock after this group.
    pub(crate) fn clock(&self) -> Clock {
        Clock {
            last: self.last_timestamp,
            account: self.last_account_timestamp,
            transfer: self.last_transfer_timestamp,
        }
    }

    /// A timestamp for the next event: `now`, or one more than the last one if the caller's
    /// clock has not moved past it, so event timestamps are unique and strictly increasing.
    fn next_timestamp(&mut self, now: Timestamp) -> Result<Timestamp, Error> {
        let next = self
            .last_timestamp
            .0
            .checked_add(1)
            .ok_or(Error::TimestampExhausted)?;
        let timestamp = Timestamp(now.0.max(next));
        self.last_timestamp = timestamp;
        Ok(timestamp)
    }

    fn account(&self, store: &dyn Store, id: AccountId) -> Result<Option<Account>, Error> {
        match self.accounts.get(&id) {
            Some(account) => Ok(Some(*account)),
            None => store.account(id),
        }
    }

    fn transfer(&self, store: &dyn Store, id: TransferId) -> Result<Option<Transfer>, Error> {
        match self.transfers.get(&id) {
            Some(transfer) => Ok(Some(*transfer)),
            None => store.transfer(id),
        }
    }

    fn transfer_failed(&self, store: &dyn Store, id: TransferId) -> Result<bool, Error> {
        Ok(self.failed.contains(&id) || store.transfer_failed(id)?)
    }

    fn pending_status(
        &self,
        store: &dyn Store,
        id: TransferId,
    ) -> Result<Option<PendingStatus>, Error> {
        match self.pending.get(&id) {
            Some(status) => Ok(Some(*status)),
            None => store.pending_status(id),
        }
    }
    fn put_account(&mut self, store: &dyn Store, account: Account) -> Result<(), Error> {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            self.accounts_before.entry(account.id)
        {
            slot.insert(store.account(account.id)?);
        }
        let previous = self.accounts.insert(account.id, account);
        self.undo.push(Undo::Account(account.id, previous));
        Ok(())
    }

    fn put_transfer(&mut self, transfer: Transfer) {
        self.transfers.insert(transfer.id, transfer);
        self.undo.push(Undo::Transfer(transfer.id));
    }

    fn put_pending(&mut self, id: TransferId, status: PendingStatus) {
        let previous = self.pending.insert(id, status);
        self.undo.push(Undo::Pending(id, previous));
    }

    fn put_expiry(&mut self, key: (Timestamp, TransferId), present: bool) {
        let previous = self.expiry.insert(key, present);
        self.undo.push(Undo::Expiry(key, previous));
    }

    fn record_history(&mut self, account: &Account, timestamp: Timestamp) {
        if account.flags.contains(AccountFlags::HISTORY) {
            self.history
                .push((account.id, AccountBalance::of(account, timestamp)));
        }
    }

    fn savepoint(&self, entries: usize) -> Savepoint {
        Savepoint {
            undo: self.undo.len(),
            history: self.history.len(),
            entries,
            clock: self.clock(),
        }
    }

    /// Where to roll a whole request back to when its records are refused (see
    /// [`crate::Ledger::create_transfers_with`]): the state machine's undo position, and which
    /// of the request's transfer ids had not failed before it.
    pub(crate) fn request_savepoint(&self, events: &[NewTransfer]) -> RequestSavepoint {
        RequestSavepoint {
            savepoint: self.savepoint(0),
            not_failed: events
                .iter()
                .map(|event| event.id)
                .filter(|id| !self.failed.contains(id))
                .collect(),
            imported: events
                .first()
                .is_some_and(|event| event.flags.contains(TransferFlags::IMPORTED)),
        }
    }

    /// Undoes a whole request (see [`Changes::request_savepoint`]), the transient failures it
    /// recorded included: it was refused, so none of its outcomes stands.
    pub(crate) fn request_rollback(&mut self, save: RequestSavepoint) {
        self.rollback(save.savepoint, save.imported);
        for id in save.not_failed {
            self.failed.remove(&id);
        }
    }

    /// Undoes everything after `savepoint`; returns how many batch entries to keep. The last
    /// account and transfer timestamps go back (no event of the chain was created); the last
    /// timestamp goes back only for imported events, whose timestamps the caller chose: the
    /// ones the ledger handed out are not reused.
    fn rollback(&mut self, savepoint: Savepoint, imported: bool) -> usize {
        while self.undo.len() > savepoint.undo {
            let Some(undo) = self.undo.pop() else { break };
            match undo {
                Undo::Account(id, previous) => restore(&mut self.accounts, id, previous),
                Undo::Transfer(id) => {
                    self.transfers.remove(&id);
                }
                Undo::Pending(id, previous) => restore(&mut self.pending, id, previous),
                Undo::Expiry(key, previous) => restore(&mut self.expiry, key, previous),
            }
        }
        self.history.truncate(savepoint.history);
        self.last_account_timestamp = savepoint.clock.account;
        self.last_transfer_timestamp = savepoint.clock.transfer;
        if imported {
            self.last_timestamp = savepoint.clock.last;
        }
        savepoint.entries
    }

    /// The linked-chain loop shared by accounts and transfers (TigerBeetle's semantics): each
    /// event is applied in order; the first failure inside a linked chain rolls the whole
    /// chain back and marks every other event of the chain `failed`; a batch whose last event
    /// is still linked leaves the chain open, which fails the chain. The first event decides
    /// whether the batch is imported; an event that disagrees fails with
    /// `imported_event_expected` or `imported_event_not_expected`. Returns one result per event
    /// and the entries that remain applied.
    fn apply_linked<E, R: Copy + PartialEq, T>(
        &mut self,
        events: &[E],
        names: LinkedResults<R>,
        flags: impl Fn(&E) -> (bool, bool),
        mut apply: impl FnMut(&mut Self, &E, &mut Vec<T>) -> Result<R, Error>,
    ) -> Result<(Vec<R>, Vec<T>), Error> {
        let mut results = vec![names.ok; events.len()];
        let mut applied: Vec<T> = Vec::new();
        let batch_imported = events.first().is_some_and(|event| flags(event).1);
        let mut chain = Chain {
            start: None,
            broken: false,
            savepoint: None,
        };
        for (index, event) in events.iter().enumerate() {
            let (linked, imported) = flags(event);
            if linked && chain.start.is_none() {
                chain.start = Some(index);
                chain.broken = false;
                chain.savepoint = Some(self.savepoint(applied.len()));
            }
            // TigerBeetle's precedence: a broken chain's events are `linked_event_failed`,
            // even the last one when it leaves the chain open.
            let result = if chain.broken {
                names.failed
            } else if linked && index + 1 == events.len() {
                names.chain_open
            } else if batch_imported && !imported {
                names.imported_expected
            } else if !batch_imported && imported {
                names.imported_not_expected
            } else {
                apply(self, event, &mut applied)?
            };
            results[index] = result;
            if result != names.ok
                && !chain.broken
                && let (Some(start), Some(savepoint)) = (chain.start, chain.savepoint.take())
            {
                chain.broken = true;
                let keep = self.rollback(savepoint, batch_imported);
                applied.truncate(keep);
                results[start..index].fill(names.failed);
            }
            if !linked {
                chain = Chain {
                    start: None,
                    broken: false,
                    savepoint: None,
                };
            }
        }
        Ok((results, applied))
    }

    /// The timestamp of an event: the ledger's next one, or for an imported event its own,
    /// checked in TigerBeetle's order (`Err` carries the failing check's result).
    fn event_timestamp<R>(
        &mut self,
        now: Timestamp,
        imported: bool,
        given: Timestamp,
        names: &TimestampResults<R>,
    ) -> Result<Result<Timestamp, R>, Error>
    where
        R: Copy,
    {
        if !imported {
            if given.0 != 0 {
                // Consumes a timestamp like every other evaluated event.
                self.next_timestamp(now)?;
                return Ok(Err(names.must_be_zero));
            }
            return self.next_timestamp(now).map(Ok);
        }
        if given.0 == 0 || given.0 >= IMPORTED_TIMESTAMP_END {
            return Ok(Err(names.out_of_range));
        }
        if given > now {
            return Ok(Err(names.must_not_advance));
        }
        Ok(Ok(given))
    }

    /// After an imported event is applied: it is the latest event.
    fn imported_applied(&mut self, timestamp: Timestamp) {
        self.last_timestamp = self.last_timestamp.max(timestamp);
    }
    /// Applies a batch of account creations, returning one result per event and the accounts
    /// created (for the journal).
    pub(crate) fn create_accounts(
        &mut self,
        store: &dyn Store,
        events: &[NewAccount],
        now: Timestamp,
    ) -> Result<(Vec<CreateAccountResult>, Entries), Error> {
        use CreateAccountResult as R;
        let names = LinkedResults {
            ok: R::Ok,
            chain_open: R::LinkedEventChainOpen,
            failed: R::LinkedEventFailed,
            imported_expected: R::ImportedEventExpected,
            imported_not_expected: R::ImportedEventNotExpected,
        };
        let (results, created) = self.apply_linked(
            events,
            names,
            |event| {
                (
                    event.flags.contains(AccountFlags::LINKED),
                    event.flags.contains(AccountFlags::IMPORTED),
                )
            },
            |machine, event, created| machine.create_account(store, event, now, created),
        )?;
        Ok((results, Entries::Accounts(created)))
    }

    fn create_account(
        &mut self,
        store: &dyn Store,
        event: &NewAccount,
        now: Timestamp,
        created: &mut Vec<Account>,
    ) -> Result<CreateAccountResult, Error> {
        use CreateAccountResult as R;
        let imported = event.flags.contains(AccountFlags::IMPORTED);
        let names = TimestampResults {
            must_be_zero: R::TimestampMustBeZero,
            out_of_range: R::ImportedEventTimestampOutOfRange,
            must_not_advance: R::ImportedEventTimestampMustNotAdvance,
        };
        let timestamp = match self.event_timestamp(now, imported, event.timestamp, &names)? {
            Ok(timestamp) => timestamp,
            Err(result) => return Ok(result),
        };
        if event.flags.0 & !AccountFlags::KNOWN.0 != 0 {
            return Ok(R::ReservedFlag);
        }
        if event.id.0 == 0 {
            return Ok(R::IdMustNotBeZero);
        }
        if event.id.0 == u128::MAX {
            return Ok(R::IdMustNotBeIntMax);
        }
        if let Some(existing) = self.account(store, event.id)? {
            return Ok(account_exists(event, &existing));
        }
        if event
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && event
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        {
            return Ok(R::FlagsAreMutuallyExclusive);
        }
        if event.ledger == 0 {
            return Ok(R::LedgerMustNotBeZero);
        }
        if event.code == 0 {
            return Ok(R::CodeMustNotBeZero);
        }
        if imported {
            if timestamp <= self.last_account_timestamp {
                return Ok(R::ImportedEventTimestampMustNotRegress);
            }
            if timestamp <= self.last_timestamp {
                return Ok(R::ImportedEventTimestampMustPostdateLastEvent);
            }
            self.imported_applied(timestamp);
        }
        let account = Account::from_new(event, timestamp);
        self.put_account(store, account)?;
        self.last_account_timestamp = timestamp;
        created.push(account);
        Ok(R::Ok)
    }

    /// Applies a batch of transfers, returning one result per event and the transfers applied.
    pub(crate) fn create_transfers(
        &mut self,
        store: &dyn Store,
        events: &[NewTransfer],
        now: Timestamp,
    ) -> Result<(Vec<CreateTransferResult>, Entries), Error> {
        use CreateTransferResult as R;
        let names = LinkedResults {
            ok: R::Ok,
            chain_open: R::LinkedEventChainOpen,
            failed: R::LinkedEventFailed,
            imported_expected: R::ImportedEventExpected,
            imported_not_expected: R::ImportedEventNotExpected,
        };
        let (results, applied) = self.apply_linked(
            events,
            names,
            |event| {
                (
                    event.flags.contains(TransferFlags::LINKED),
                    event.flags.contains(TransferFlags::IMPORTED),
                )
            },
            |machine, event, applied| {
                let result = machine.create_transfer(store, event, now, applied)?;
                if result.is_transient() {
                    machine.failed.insert(event.id);
                }
                Ok(result)
            },
        )?;
        Ok((results, Entries::Transfers(applied)))
    }

    fn create_transfer(
        &mut self,
        store: &dyn Store,
        event: &NewTransfer,
        now: Timestamp,
        applied: &mut Vec<Transfer>,
    ) -> Result<CreateTransferResult, Error> {
        use CreateTransferResult as R;
        let flags = event.flags;
        let imported = flags.contains(TransferFlags::IMPORTED);
        let names = TimestampResults {
            must_be_zero: R::TimestampMustBeZero,
            out_of_range: R::ImportedEventTimestampOutOfRange,
            must_not_advance: R::ImportedEventTimestampMustNotAdvance,
        };
        let timestamp = match self.event_timestamp(now, imported, event.timestamp, &names)? {
            Ok(timestamp) => timestamp,
            Err(result) => return Ok(result),
        };
        if flags.0 & !TransferFlags::KNOWN.0 != 0 {
            return Ok(R::ReservedFlag);
        }
        if event.id.0 == 0 {
            return Ok(R::IdMustNotBeZero);
        }
        if event.id.0 == u128::MAX {
            return Ok(R::IdMustNotBeIntMax);
        }
        if let Some(existing) = self.transfer(store, event.id)? {
            return self.transfer_exists(store, event, &existing);
        }
        if self.transfer_failed(store, event.id)? {
            return Ok(R::IdAlreadyFailed);
        }
        if flags_are_mutually_exclusive(flags) {
            return Ok(R::FlagsAreMutuallyExclusive);
        }
        if flags.resolves_pending() {
            return self.post_or_void(store, event, timestamp, applied);
        }
        if let Some(invalid) = invalid_new_transfer(event) {
            return Ok(invalid);
        }
        let Some(mut debit) = self.account(store, event.debit_account_id)? else {
            return Ok(R::DebitAccountNotFound);
        };
        let Some(mut credit) = self.account(store, event.credit_account_id)? else {
            return Ok(R::CreditAccountNotFound);
        };
        if debit.ledger != credit.ledger {
            return Ok(R::AccountsMustHaveTheSameLedger);
        }
        if event.ledger != debit.ledger {
            return Ok(R::TransferMustHaveTheSameLedgerAsAccounts);
        }
        if imported {
            if timestamp <= self.last_transfer_timestamp {
                return Ok(R::ImportedEventTimestampMustNotRegress);
            }
            if timestamp <= debit.timestamp {
                return Ok(R::ImportedEventTimestampMustPostdateDebitAccount);
            }
            if timestamp <= credit.timestamp {
                return Ok(R::ImportedEventTimestampMustPostdateCreditAccount);
            }
            if timestamp <= self.last_timestamp {
                return Ok(R::ImportedEventTimestampMustPostdateLastEvent);
            }
            if event.timeout != 0 {
                return Ok(R::ImportedEventTimeoutMustBeZero);
            }
        }
        if debit.is_closed() {
            return Ok(R::DebitAccountAlreadyClosed);
        }
        if credit.is_closed() {
            return Ok(R::CreditAccountAlreadyClosed);
        }
        let pending = flags.contains(TransferFlags::PENDING);
        let amount = balanced_amount(event, &debit, &credit);
        let (debits, credits) = match add_amount(&mut debit, &mut credit, amount, pending) {
            Ok(totals) => totals,
            Err(overflow) => return Ok(overflow),
        };
        let transfer = Transfer {
            id: event.id,
            debit_account_id: event.debit_account_id,
            credit_account_id: event.credit_account_id,
            amount,
            pending_id: TransferId(0),
            user_data_128: event.user_data_128,
            user_data_64: event.user_data_64,
            user_data_32: event.user_data_32,
            timeout: event.timeout,
            ledger: event.ledger,
            code: event.code,
            flags,
            timestamp,
        };
        let expires_at = if pending && event.timeout != 0 {
            match transfer.expires_at() {
                Some(at) => Some(at),
                None => return Ok(R::OverflowsTimeout),
            }
        } else {
            None
        };
        if let Some(exceeded) = exceeded_limit(&debit, &credit, debits, credits) {
            return Ok(exceeded);
        }
        if pending && flags.contains(TransferFlags::CLOSING_DEBIT) {
            debit.flags = debit.flags.union(AccountFlags::CLOSED);
        }
        if pending && flags.contains(TransferFlags::CLOSING_CREDIT) {
            credit.flags = credit.flags.union(AccountFlags::CLOSED);
        }
        if imported {
            self.imported_applied(timestamp);
        }
        self.book(store, debit, credit, transfer)?;
        if pending {
            self.put_pending(transfer.id, PendingStatus::Pending);
            if let Some(at) = expires_at {
                self.put_expiry((at, transfer.id), true);
            }
        }
        applied.push(transfer);
        Ok(R::Ok)
    }

    fn post_or_void(
        &mut self,
        store: &dyn Store,
        event: &NewTransfer,
        timestamp: Timestamp,
        applied: &mut Vec<Transfer>,
    ) -> Result<CreateTransferResult, Error> {
        use CreateTransferResult as R;
        let post = event.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
        if let Some(invalid) = invalid_resolution(event) {
            return Ok(invalid);
        }
        let Some(pending) = self.transfer(store, event.pending_id)? else {
            return Ok(R::PendingTransferNotFound);
        };
        if !pending.flags.contains(TransferFlags::PENDING) {
            return Ok(R::PendingTransferNotPending);
        }
        let (mut debit, mut credit) = self.pending_accounts(store, &pending)?;
        if let Some(mismatch) = resolution_mismatch(event, &pending) {
            return Ok(mismatch);
        }
        let amount = match resolution_amount(event, &pending, post) {
            Ok(amount) => amount,
            Err(refused) => return Ok(refused),
        };
        match self.pending_status(store, pending.id)? {
            Some(PendingStatus::Pending) => {}
            Some(PendingStatus::Posted) => return Ok(R::PendingTransferAlreadyPosted),
            Some(PendingStatus::Voided) => return Ok(R::PendingTransferAlreadyVoided),
            Some(PendingStatus::Expired) => return Ok(R::PendingTransferExpired),
            None => {
                return Err(Error::InvariantViolated {
                    detail: format!("{} is pending but has no pending status", pending.id),
                });
            }
        }
        let expires_at = pending.expires_at();
        if expires_at.is_some_and(|at| at <= timestamp) {
            return Ok(R::PendingTransferExpired);
        }
        let imported = event.flags.contains(TransferFlags::IMPORTED);
        if imported {
            if timestamp <= self.last_transfer_timestamp {
                return Ok(R::ImportedEventTimestampMustNotRegress);
            }
            if timestamp <= self.last_timestamp {
                return Ok(R::ImportedEventTimestampMustPostdateLastEvent);
            }
        }
        // A closed account takes only voids (which may reopen it, below).
        if post && debit.is_closed() {
            return Ok(R::DebitAccountAlreadyClosed);
        }
        if post && credit.is_closed() {
            return Ok(R::CreditAccountAlreadyClosed);
        }
        release_reservation(&mut debit, &mut credit, &pending)?;
        // Posting moves at most the reserved amount from pending to posted, so the totals
        // cannot grow; checked anyway so that a broken invariant is named, not wrapped.
        if post && let Err(overflow) = add_amount(&mut debit, &mut credit, amount, false) {
            return Ok(overflow);
        }
        if !post {
            // Voiding a closing transfer reopens what it closed.
            reopen(&mut debit, &mut credit, &pending);
        }
        if imported {
            self.imported_applied(timestamp);
        }
        let transfer = resolution(event, &pending, amount, timestamp);
        self.book(store, debit, credit, transfer)?;
        let status = if post {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        };
        self.put_pending(pending.id, status);
        if let Some(at) = expires_at {
            self.put_expiry((at, pending.id), false);
        }
        applied.push(transfer);
        Ok(R::Ok)
    }

    /// Compares a retried transfer with the stored one, in TigerBeetle's order. A post or void
    /// left zero in a field means "as in the pending transfer", so that field is compared
    /// with the pending transfer's value.
    fn transfer_exists(
        &self,
        store: &dyn Store,
        event: &NewTransfer,
        existing: &Transfer,
    ) -> Result<CreateTransferResult, Error> {
        use CreateTransferResult as R;
        if event.flags != existing.flags {
            return Ok(R::ExistsWithDifferentFlags);
        }
        if event.pending_id != existing.pending_id {
            return Ok(R::ExistsWithDifferentPendingId);
        }
        if event.timeout != existing.timeout {
            return Ok(R::ExistsWithDifferentTimeout);
        }
        if !event.flags.resolves_pending() {
            return Ok(new_transfer_exists(event, existing));
        }
        let Some(pending) = self.transfer(store, existing.pending_id)? else {
            return Err(Error::InvariantViolated {
                detail: format!(
                    "{} resolves {}, which is not stored",
                    existing.id, existing.pending_id
                ),
            });
        };
        Ok(resolution_exists(event, existing, &pending))
    }
    /// Stores a transfer and the two accounts it changed, with their history.
    fn book(
        &mut self,
        store: &dyn Store,
        debit: Account,
        credit: Account,
        transfer: Transfer,
    ) -> Result<(), Error> {
        self.put_account(store, debit)?;
        self.put_account(store, credit)?;
        self.record_history(&debit, transfer.timestamp);
        self.record_history(&credit, transfer.timestamp);
        self.put_transfer(transfer);
        self.last_transfer_timestamp = transfer.timestamp;
        Ok(())
    }

    fn pending_accounts(
        &self,
        store: &dyn Store,
        pending: &Transfer,
    ) -> Result<(Account, Account), Error> {
        let debit = self.account(store, pending.debit_account_id)?;
        let credit = self.account(store, pending.credit_account_id)?;
        match (debit, credit) {
            (Some(debit), Some(credit)) => Ok((debit, credit)),
            _ => Err(Error::InvariantViolated {
                detail: format!("an account of pending {} is missing", pending.id),
            }),
        }
    }

    /// Releases the reservation of every pending transfer whose timeout passed by `now`, at
    /// most `limit` of them; returns the expiries and whether more are due.
    pub(crate) fn expire_pending(
        &mut self,
        store: &dyn Store,
        now: Timestamp,
        limit: usize,
    ) -> Result<(Entries, bool), Error> {
        let due = self.due(store, now, limit.saturating_add(1))?;
        let more = due.len() > limit;
        let mut expired = Vec::new();
        for (expires_at, id) in due.into_iter().take(limit) {
            let Some(pending) = self.transfer(store, id)? else {
                return Err(Error::InvariantViolated {
                    detail: format!("expiry index names unknown {id}"),
                });
            };
            if self.pending_status(store, id)? != Some(PendingStatus::Pending) {
                return Err(Error::InvariantViolated {
                    detail: format!("expiry index names {id}, which is no longer pending"),
                });
            }
            let timestamp = self.next_timestamp(now)?;
            let (mut debit, mut credit) = self.pending_accounts(store, &pending)?;
            release_reservation(&mut debit, &mut credit, &pending)?;
            // An expired closing transfer is voided by its timeout: it reopens what it closed.
            reopen(&mut debit, &mut credit, &pending);
            self.put_account(store, debit)?;
            self.put_account(store, credit)?;
            self.record_history(&debit, timestamp);
            self.record_history(&credit, timestamp);
            self.put_pending(id, PendingStatus::Expired);
            self.put_expiry((expires_at, id), false);
            expired.push((id, timestamp));
        }
        Ok((Entries::Expiries(expired), more))
    }

    /// Expiry-index entries due by `now`: the committed ones minus those this group removed,
    /// plus those it added, in expiry order.
    fn due(
        &self,
        store: &dyn Store,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        let removed = self.expiry.iter().filter(|(_, present)| !**present).count();
        let committed = store.expiring(now, limit.saturating_add(removed))?;
        let mut due: Vec<(Timestamp, TransferId)> = committed
            .into_iter()
            .filter(|key| self.expiry.get(key) != Some(&false))
            .chain(
                self.expiry
                    .range(..=(now, TransferId(u128::MAX)))
                    .filter(|(_, present)| **present)
                    .map(|(key, _)| *key),
            )
            .collect();
        due.sort_unstable();
        due.dedup();
        due.truncate(limit);
        Ok(due)
    }
}

fn restore<K: std::hash::Hash + Eq + Ord, V, M: OverlayMap<K, V>>(
    map: &mut M,
    key: K,
    previous: Option<V>,
) {
    match previous {
        Some(value) => map.put(key, value),
        None => map.delete(&key),
    }
}

/// The two map kinds the overlay uses, so one `restore` serves both.
trait OverlayMap<K, V> {
    fn put(&mut self, key: K, value: V);
    fn delete(&mut self, key: &K);
}

impl<K: std::hash::Hash + Eq, V, S: BuildHasher> OverlayMap<K, V> for HashMap<K, V, S> {
    fn put(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
    fn delete(&mut self, key: &K) {
        self.remove(key);
    }
}

impl<K: Ord, V> OverlayMap<K, V> for BTreeMap<K, V> {
    fn put(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
    fn delete(&mut self, key: &K) {
        self.remove(key);
    }
}

/// The results of the timestamp checks, for one kind of event.
struct TimestampResults<R> {
    must_be_zero: R,
    out_of_range: R,
    must_not_advance: R,
}

/// Flags that cannot go together: more than one of pending, post and void, or a post or void
/// that also balances or closes.
fn flags_are_mutually_exclusive(flags: TransferFlags) -> bool {
    let kinds = [
        TransferFlags::PENDING,
        TransferFlags::POST_PENDING_TRANSFER,
        TransferFlags::VOID_PENDING_TRANSFER,
    ]
    .into_iter()
    .filter(|kind| flags.contains(*kind))
    .count();
    kinds > 1 || flags.resolves_pending() && (flags.balancing() || flags.closing())
}

/// The first check of its own fields that a posted or pending transfer fails, before any
/// state is read.
fn invalid_new_transfer(event: &NewTransfer) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    if event.debit_account_id.0 == 0 {
        return Some(R::DebitAccountIdMustNotBeZero);
    }
    if event.debit_account_id.0 == u128::MAX {
        return Some(R::DebitAccountIdMustNotBeIntMax);
    }
    if event.credit_account_id.0 == 0 {
        return Some(R::CreditAccountIdMustNotBeZero);
    }
    if event.credit_account_id.0 == u128::MAX {
        return Some(R::CreditAccountIdMustNotBeIntMax);
    }
    if event.debit_account_id == event.credit_account_id {
        return Some(R::AccountsMustBeDifferent);
    }
    if event.pending_id.0 != 0 {
        return Some(R::PendingIdMustBeZero);
    }
    let pending = event.flags.contains(TransferFlags::PENDING);
    if !pending && event.timeout != 0 {
        return Some(R::TimeoutReservedForPendingTransfer);
    }
    if !pending && event.flags.closing() {
        return Some(R::ClosingTransferMustBePending);
    }
    if event.ledger == 0 {
        return Some(R::LedgerMustNotBeZero);
    }
    if event.code == 0 {
        return Some(R::CodeMustNotBeZero);
    }
    None
}

/// The amount a transfer moves: its own, or with a balancing flag at most what keeps the
/// balanced account's debits (credits) at or below its posted credits (debits).
fn balanced_amount(event: &NewTransfer, debit: &Account, credit: &Account) -> u128 {
    let mut amount = event.amount;
    if event.flags.contains(TransferFlags::BALANCING_DEBIT) {
        let debits = debit.debits_pending.saturating_add(debit.debits_posted);
        amount = amount.min(debit.credits_posted.saturating_sub(debits));
    }
    if event.flags.contains(TransferFlags::BALANCING_CREDIT) {
        let credits = credit.credits_pending.saturating_add(credit.credits_posted);
        amount = amount.min(credit.debits_posted.saturating_sub(credits));
    }
    amount
}

/// Adds `amount` to the debit's and the credit's pending or posted balance; returns their
/// totals (debits of the debit account, credits of the credit account), or the overflow. A
/// pending amount must also fit the posted balances, which it may later be posted to.
fn add_amount(
    debit: &mut Account,
    credit: &mut Account,
    amount: u128,
    pending: bool,
) -> Result<(u128, u128), CreateTransferResult> {
    use CreateTransferResult as R;
    if pending {
        debit.debits_pending = debit
            .debits_pending
            .checked_add(amount)
            .ok_or(R::OverflowsDebitsPending)?;
        credit.credits_pending = credit
            .credits_pending
            .checked_add(amount)
            .ok_or(R::OverflowsCreditsPending)?;
    }
    let debits_posted = debit
        .debits_posted
        .checked_add(amount)
        .ok_or(R::OverflowsDebitsPosted)?;
    let credits_posted = credit
        .credits_posted
        .checked_add(amount)
        .ok_or(R::OverflowsCreditsPosted)?;
    if !pending {
        debit.debits_posted = debits_posted;
        credit.credits_posted = credits_posted;
    }
    let debits = debit
        .debits_pending
        .checked_add(debit.debits_posted)
        .ok_or(R::OverflowsDebits)?;
    let credits = credit
        .credits_pending
        .checked_add(credit.credits_posted)
        .ok_or(R::OverflowsCredits)?;
    Ok((debits, credits))
}

/// The limit a transfer would break, given the debit account's total debits and the credit
/// account's total credits after it.
fn exceeded_limit(
    debit: &Account,
    credit: &Account,
    debits: u128,
    credits: u128,
) -> Option<CreateTransferResult> {
    if debit
        .flags
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        && debits > debit.credits_posted
    {
        return Some(CreateTransferResult::ExceedsCredits);
    }
    if credit
        .flags
        .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        && credits > credit.debits_posted
    {
        return Some(CreateTransferResult::ExceedsDebits);
    }
    None
}

/// The first check of its own fields that a post or void fails, before any state is read.
/// Its accounts, ledger and code may be zero ("as in the pending transfer") and are checked
/// against the pending transfer only.
fn invalid_resolution(event: &NewTransfer) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    if event.pending_id.0 == 0 {
        return Some(R::PendingIdMustNotBeZero);
    }
    if event.pending_id.0 == u128::MAX {
        return Some(R::PendingIdMustNotBeIntMax);
    }
    if event.pending_id == event.id {
        return Some(R::PendingIdMustBeDifferent);
    }
    if event.timeout != 0 {
        return Some(R::TimeoutReservedForPendingTransfer);
    }
    None
}

/// The first field in which a post or void disagrees with the transfer it resolves (fields
/// left zero take the pending transfer's value).
fn resolution_mismatch(event: &NewTransfer, pending: &Transfer) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    if event.debit_account_id.0 != 0 && event.debit_account_id != pending.debit_account_id {
        return Some(R::PendingTransferHasDifferentDebitAccountId);
    }
    if event.credit_account_id.0 != 0 && event.credit_account_id != pending.credit_account_id {
        return Some(R::PendingTransferHasDifferentCreditAccountId);
    }
    if event.ledger != 0 && event.ledger != pending.ledger {
        return Some(R::PendingTransferHasDifferentLedger);
    }
    if event.code != 0 && event.code != pending.code {
        return Some(R::PendingTransferHasDifferentCode);
    }
    None
}

/// The amount a post moves to posted ([`AMOUNT_MAX`]: all of it; otherwise at most the
/// pending amount, zero included), or the amount a void releases (zero or the pending amount).
fn resolution_amount(
    event: &NewTransfer,
    pending: &Transfer,
    post: bool,
) -> Result<u128, CreateTransferResult> {
    use CreateTransferResult as R;
    if post {
        if event.amount == AMOUNT_MAX {
            return Ok(pending.amount);
        }
        if event.amount > pending.amount {
            return Err(R::ExceedsPendingTransferAmount);
        }
        return Ok(event.amount);
    }
    if event.amount > pending.amount {
        return Err(R::ExceedsPendingTransferAmount);
    }
    if event.amount != 0 && event.amount != pending.amount {
        return Err(R::PendingTransferHasDifferentAmount);
    }
    Ok(pending.amount)
}

/// The transfer a post or void of `pending` records: the pending transfer's accounts, ledger
/// and code, `amount`, and the event's user data where it gives any.
fn resolution(
    event: &NewTransfer,
    pending: &Transfer,
    amount: u128,
    timestamp: Timestamp,
) -> Transfer {
    Transfer {
        id: event.id,
        debit_account_id: pending.debit_account_id,
        credit_account_id: pending.credit_account_id,
        amount,
        pending_id: pending.id,
        user_data_128: or_pending(event.user_data_128, pending.user_data_128),
        user_data_64: or_pending(event.user_data_64, pending.user_data_64),
        user_data_32: or_pending(event.user_data_32, pending.user_data_32),
        timeout: 0,
        ledger: pending.ledger,
        code: pending.code,
        flags: event.flags,
        timestamp,
    }
}

/// A post's or void's field: its own, or the pending transfer's where it gave zero.
fn or_pending<T: Default + PartialEq>(given: T, pending: T) -> T {
    if given == T::default() {
        pending
    } else {
        given
    }
}

fn release_reservation(
    debit: &mut Account,
    credit: &mut Account,
    pending: &Transfer,
) -> Result<(), Error> {
    let (Some(debits_pending), Some(credits_pending)) = (
        debit.debits_pending.checked_sub(pending.amount),
        credit.credits_pending.checked_sub(pending.amount),
    ) else {
        return Err(Error::InvariantViolated {
            detail: format!(
                "pending {} of {} exceeds the reservation on its accounts",
                pending.id, pending.amount
            ),
        });
    };
    debit.debits_pending = debits_pending;
    credit.credits_pending = credits_pending;
    Ok(())
}

/// Clears `closed` on the accounts a closing `pending` transfer closed (it is being voided or
/// has expired).
pub(crate) fn reopen(debit: &mut Account, credit: &mut Account, pending: &Transfer) {
    let open = |account: &mut Account| {
        account.flags = AccountFlags(account.flags.0 & !AccountFlags::CLOSED.0);
    };
    if pending.flags.contains(TransferFlags::CLOSING_DEBIT) {
        open(debit);
    }
    if pending.flags.contains(TransferFlags::CLOSING_CREDIT) {
        open(credit);
    }
}

fn account_exists(event: &NewAccount, existing: &Account) -> CreateAccountResult {
    use CreateAccountResult as R;
    if event.flags != existing.flags {
        R::ExistsWithDifferentFlags
    } else if event.user_data_128 != existing.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if event.user_data_64 != existing.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if event.user_data_32 != existing.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if event.ledger != existing.ledger {
        R::ExistsWithDifferentLedger
    } else if event.code != existing.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

/// The rest of the comparison of a retried transfer that is neither post nor void (flags,
/// pending id and timeout are equal). A balancing transfer's `amount` is a maximum: the retry
/// matches if it allows at least what was moved.
fn new_transfer_exists(event: &NewTransfer, existing: &Transfer) -> CreateTransferResult {
    use CreateTransferResult as R;
    let amount_differs = if event.flags.balancing() {
        event.amount < existing.amount
    } else {
        event.amount != existing.amount
    };
    if event.debit_account_id != existing.debit_account_id {
        R::ExistsWithDifferentDebitAccountId
    } else if event.credit_account_id != existing.credit_account_id {
        R::ExistsWithDifferentCreditAccountId
    } else if amount_differs {
        R::ExistsWithDifferentAmount
    } else {
        user_data_ledger_code_exist(event, existing, event.ledger, event.code)
    }
}

/// The rest of the comparison of a retried post or void (flags, pending id and timeout are
/// equal): zero fields stand for the pending transfer's values. A post's amount matches when
/// it is what was posted, or, when all of it was posted, anything from the pending amount up
/// (the full-post sentinel included).
fn resolution_exists(
    event: &NewTransfer,
    existing: &Transfer,
    pending: &Transfer,
) -> CreateTransferResult {
    use CreateTransferResult as R;
    let debit = or_pending(event.debit_account_id, pending.debit_account_id);
    let credit = or_pending(event.credit_account_id, pending.credit_account_id);
    let amount_differs = if event.flags.contains(TransferFlags::POST_PENDING_TRANSFER) {
        if existing.amount < pending.amount {
            event.amount != existing.amount
        } else {
            event.amount < pending.amount
        }
    } else {
        or_pending(event.amount, pending.amount) != existing.amount
    };
    if debit != existing.debit_account_id {
        R::ExistsWithDifferentDebitAccountId
    } else if credit != existing.credit_account_id {
        R::ExistsWithDifferentCreditAccountId
    } else if amount_differs {
        R::ExistsWithDifferentAmount
    } else {
        let expected = NewTransfer {
            user_data_128: or_pending(event.user_data_128, pending.user_data_128),
            user_data_64: or_pending(event.user_data_64, pending.user_data_64),
            user_data_32: or_pending(event.user_data_32, pending.user_data_32),
            ..*event
        };
        user_data_ledger_code_exist(
            &expected,
            existing,
            or_pending(event.ledger, pending.ledger),
            or_pending(event.code, pending.code),
        )
    }
}

/// The last fields of the comparison: user data, ledger, code.
fn user_data_ledger_code_exist(
    event: &NewTransfer,
    existing: &Transfer,
    ledger: u32,
    code: u16,
) -> CreateTransferResult {
    use CreateTransferResult as R;
    if event.user_data_128 != existing.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if event.user_data_64 != existing.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if event.user_data_32 != existing.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if ledger != existing.ledger {
        R::ExistsWithDifferentLedger
    } else if code != existing.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

#[cfg(test)]
mod tests;
