//! The deterministic state machine: given the committed state (a [`Store`]), a batch and the
//! caller's `now`, decide each event's result and collect what changes.
//!
//! It performs no I/O of its own beyond reading the store and never reads a clock. Changes
//! accumulate in [`Changes`], an overlay over the store that spans one group commit (several
//! batches). Linked chains are undone through an undo log when one of their events fails.
//! Nothing here writes to sled: the writer turns the overlay into sled batches afterwards.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::Error;
use crate::idhash::IdMap;
use crate::journal::Entries;
use crate::model::{
    Account, AccountBalance, AccountFlags, AccountId, NewAccount, NewTransfer, PendingStatus,
    Timestamp, Transfer, TransferFlags, TransferId,
};
use crate::result::{CreateAccountResult, CreateTransferResult};

/// Read access to the committed state.
pub(crate) trait Store {
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error>;
    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error>;
    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error>;
    /// Committed expiry-index entries due at or before `up_to`, in order, at most `limit`.
    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error>;
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
    /// The largest timestamp assigned so far (committed or in this group).
    pub(crate) last_timestamp: Timestamp,
    undo: Vec<Undo>,
}

/// Linked-chain bookkeeping shared by accounts and transfers.
struct Chain {
    start: Option<usize>,
    broken: bool,
    savepoint: Option<Savepoint>,
}

/// The three results the linked-chain loop names, for one kind of event.
struct LinkedResults<R> {
    ok: R,
    chain_open: R,
    failed: R,
}

impl Changes {
    pub(crate) fn new(last_timestamp: Timestamp) -> Self {
        Self {
            last_timestamp,
            ..Self::default()
        }
    }

    /// An empty overlay sized for `events` events, so that a full group never rehashes
    /// (measured: growing the maps was a tenth of the state machine's time for full batches).
    pub(crate) fn with_capacity(last_timestamp: Timestamp, events: usize) -> Self {
        // A transfer changes two accounts; its undo log holds the two accounts, the transfer
        // and, when pending, its status and expiry.
        let accounts = events.saturating_mul(2);
        Self {
            accounts: IdMap::with_capacity_and_hasher(accounts, Default::default()),
            accounts_before: IdMap::with_capacity_and_hasher(accounts, Default::default()),
            transfers: IdMap::with_capacity_and_hasher(events, Default::default()),
            undo: Vec::with_capacity(events.saturating_mul(3)),
            ..Self::new(last_timestamp)
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
        }
    }

    /// Undoes everything after `savepoint`; returns how many batch entries to keep.
    fn rollback(&mut self, savepoint: Savepoint) -> usize {
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
        savepoint.entries
    }

    /// The linked-chain loop shared by accounts and transfers (TigerBeetle's semantics): each
    /// event gets a timestamp and is applied in order; the first failure inside a linked chain
    /// rolls the whole chain back and marks every other event of the chain `failed`; a
    /// batch whose last event is still linked leaves the chain open, which fails the chain.
    /// Returns one result per event and the entries that remain applied.
    fn apply_linked<E, R: Copy + PartialEq, T>(
        &mut self,
        events: &[E],
        now: Timestamp,
        names: LinkedResults<R>,
        is_linked: impl Fn(&E) -> bool,
        mut apply: impl FnMut(&mut Self, &E, Timestamp, &mut Vec<T>) -> Result<R, Error>,
    ) -> Result<(Vec<R>, Vec<T>), Error> {
        let mut results = vec![names.ok; events.len()];
        let mut applied: Vec<T> = Vec::new();
        let mut chain = Chain {
            start: None,
            broken: false,
            savepoint: None,
        };
        for (index, event) in events.iter().enumerate() {
            let linked = is_linked(event);
            if linked && chain.start.is_none() {
                chain.start = Some(index);
                chain.broken = false;
                chain.savepoint = Some(self.savepoint(applied.len()));
            }
            let result = if linked && index + 1 == events.len() {
                names.chain_open
            } else if chain.broken {
                names.failed
            } else {
                let timestamp = self.next_timestamp(now)?;
                apply(self, event, timestamp, &mut applied)?
            };
            results[index] = result;
            if result != names.ok
                && !chain.broken
                && let (Some(start), Some(savepoint)) = (chain.start, chain.savepoint.take())
            {
                chain.broken = true;
                let keep = self.rollback(savepoint);
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

    /// Applies a batch of account creations, returning one result per event and the accounts
    /// created (for the journal).
    pub(crate) fn create_accounts(
        &mut self,
        store: &dyn Store,
        events: &[NewAccount],
        now: Timestamp,
    ) -> Result<(Vec<CreateAccountResult>, Entries), Error> {
        let names = LinkedResults {
            ok: CreateAccountResult::Ok,
            chain_open: CreateAccountResult::LinkedEventChainOpen,
            failed: CreateAccountResult::LinkedEventFailed,
        };
        let (results, created) = self.apply_linked(
            events,
            now,
            names,
            |event| event.flags.contains(AccountFlags::LINKED),
            |machine, event, timestamp, created| {
                machine.create_account(store, event, timestamp, created)
            },
        )?;
        Ok((results, Entries::Accounts(created)))
    }

    fn create_account(
        &mut self,
        store: &dyn Store,
        event: &NewAccount,
        timestamp: Timestamp,
        created: &mut Vec<Account>,
    ) -> Result<CreateAccountResult, Error> {
        use CreateAccountResult as R;
        if event.flags.0 & !AccountFlags::KNOWN.0 != 0 {
            return Ok(R::ReservedFlag);
        }
        if event.id.0 == 0 {
            return Ok(R::IdMustNotBeZero);
        }
        if event.id.0 == u128::MAX {
            return Ok(R::IdMustNotBeIntMax);
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
        if let Some(existing) = self.account(store, event.id)? {
            return Ok(account_exists(event, &existing));
        }
        let account = Account::from_new(event, timestamp);
        self.put_account(store, account)?;
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
        let names = LinkedResults {
            ok: CreateTransferResult::Ok,
            chain_open: CreateTransferResult::LinkedEventChainOpen,
            failed: CreateTransferResult::LinkedEventFailed,
        };
        let (results, applied) = self.apply_linked(
            events,
            now,
            names,
            |event| event.flags.contains(TransferFlags::LINKED),
            |machine, event, timestamp, applied| {
                machine.create_transfer(store, event, timestamp, applied)
            },
        )?;
        Ok((results, Entries::Transfers(applied)))
    }

    fn create_transfer(
        &mut self,
        store: &dyn Store,
        event: &NewTransfer,
        timestamp: Timestamp,
        applied: &mut Vec<Transfer>,
    ) -> Result<CreateTransferResult, Error> {
        use CreateTransferResult as R;
        if let Some(invalid) = invalid_id_or_flags(event) {
            return Ok(invalid);
        }
        if event.flags.resolves_pending() {
            return self.post_or_void(store, event, timestamp, applied);
        }
        if let Some(invalid) = invalid_new_transfer(event) {
            return Ok(invalid);
        }
        if let Some(existing) = self.transfer(store, event.id)? {
            return Ok(transfer_exists(event, &existing));
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
        let pending = event.flags.contains(TransferFlags::PENDING);
        let (debits, credits) = match add_amount(&mut debit, &mut credit, event.amount, pending) {
            Ok(totals) => totals,
            Err(overflow) => return Ok(overflow),
        };
        let transfer = Transfer {
            id: event.id,
            debit_account_id: event.debit_account_id,
            credit_account_id: event.credit_account_id,
            amount: event.amount,
            pending_id: TransferId(0),
            user_data_128: event.user_data_128,
            user_data_64: event.user_data_64,
            user_data_32: event.user_data_32,
            timeout: event.timeout,
            ledger: event.ledger,
            code: event.code,
            flags: event.flags,
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
        if let Some(invalid) = invalid_resolution(event, post) {
            return Ok(invalid);
        }
        if let Some(existing) = self.transfer(store, event.id)? {
            return Ok(transfer_exists(event, &existing));
        }
        let Some(pending) = self.transfer(store, event.pending_id)? else {
            return Ok(R::PendingTransferNotFound);
        };
        if let Some(mismatch) = resolution_mismatch(event, &pending, post) {
            return Ok(mismatch);
        }
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
        let (mut debit, mut credit) = self.pending_accounts(store, &pending)?;
        let amount = if post { event.amount } else { pending.amount };
        release_reservation(&mut debit, &mut credit, &pending)?;
        // Posting moves at most the reserved amount from pending to posted, so the totals
        // cannot grow; checked anyway so that a broken invariant is named, not wrapped.
        if post && let Err(overflow) = add_amount(&mut debit, &mut credit, amount, false) {
            return Ok(overflow);
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

/// Takes a pending transfer's amount back out of both accounts' pending balances.
/// The first of the checks every transfer goes through (flags, id) that `event` fails.
fn invalid_id_or_flags(event: &NewTransfer) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    let flags = event.flags;
    if flags.0 & !TransferFlags::KNOWN.0 != 0 {
        return Some(R::ReservedFlag);
    }
    if event.id.0 == 0 {
        return Some(R::IdMustNotBeZero);
    }
    if event.id.0 == u128::MAX {
        return Some(R::IdMustNotBeIntMax);
    }
    let kinds = [
        TransferFlags::PENDING,
        TransferFlags::POST_PENDING_TRANSFER,
        TransferFlags::VOID_PENDING_TRANSFER,
    ]
    .into_iter()
    .filter(|kind| flags.contains(*kind))
    .count();
    if kinds > 1 {
        return Some(R::FlagsAreMutuallyExclusive);
    }
    None
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
    if !event.flags.contains(TransferFlags::PENDING) && event.timeout != 0 {
        return Some(R::TimeoutReservedForPendingTransfer);
    }
    if event.ledger == 0 {
        return Some(R::LedgerMustNotBeZero);
    }
    if event.code == 0 {
        return Some(R::CodeMustNotBeZero);
    }
    if event.amount == 0 {
        return Some(R::AmountMustNotBeZero);
    }
    None
}

/// Adds `amount` to the debit's and the credit's pending or posted balance; returns their
/// totals (debits of the debit account, credits of the credit account), or the overflow.
fn add_amount(
    debit: &mut Account,
    credit: &mut Account,
    amount: u128,
    pending: bool,
) -> Result<(u128, u128), CreateTransferResult> {
    use CreateTransferResult as R;
    if pending {
        let debits_pending = debit
            .debits_pending
            .checked_add(amount)
            .ok_or(R::OverflowsDebitsPending)?;
        let credits_pending = credit
            .credits_pending
            .checked_add(amount)
            .ok_or(R::OverflowsCreditsPending)?;
        debit.debits_pending = debits_pending;
        credit.credits_pending = credits_pending;
    } else {
        let debits_posted = debit
            .debits_posted
            .checked_add(amount)
            .ok_or(R::OverflowsDebitsPosted)?;
        let credits_posted = credit
            .credits_posted
            .checked_add(amount)
            .ok_or(R::OverflowsCreditsPosted)?;
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
fn invalid_resolution(event: &NewTransfer, post: bool) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    if event.debit_account_id.0 == u128::MAX {
        return Some(R::DebitAccountIdMustNotBeIntMax);
    }
    if event.credit_account_id.0 == u128::MAX {
        return Some(R::CreditAccountIdMustNotBeIntMax);
    }
    if event.debit_account_id.0 != 0 && event.debit_account_id == event.credit_account_id {
        return Some(R::AccountsMustBeDifferent);
    }
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
    if post && event.amount == 0 {
        return Some(R::AmountMustNotBeZero);
    }
    None
}

/// The first field in which a post or void disagrees with the transfer it resolves (fields
/// left zero take the pending transfer's value).
fn resolution_mismatch(
    event: &NewTransfer,
    pending: &Transfer,
    post: bool,
) -> Option<CreateTransferResult> {
    use CreateTransferResult as R;
    if !pending.flags.contains(TransferFlags::PENDING) {
        return Some(R::PendingTransferNotPending);
    }
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
    if post && event.amount > pending.amount {
        return Some(R::ExceedsPendingTransferAmount);
    }
    if !post && event.amount != 0 && event.amount != pending.amount {
        return Some(R::PendingTransferHasDifferentAmount);
    }
    None
}

/// The transfer a post or void of `pending` records: the pending transfer's accounts, ledger
/// and code, `amount`, and the event's user data where it gives any.
fn resolution(
    event: &NewTransfer,
    pending: &Transfer,
    amount: u128,
    timestamp: Timestamp,
) -> Transfer {
    let inherit = |given: u128, from: u128| if given == 0 { from } else { given };
    Transfer {
        id: event.id,
        debit_account_id: pending.debit_account_id,
        credit_account_id: pending.credit_account_id,
        amount,
        pending_id: pending.id,
        user_data_128: inherit(event.user_data_128, pending.user_data_128),
        user_data_64: if event.user_data_64 == 0 {
            pending.user_data_64
        } else {
            event.user_data_64
        },
        user_data_32: if event.user_data_32 == 0 {
            pending.user_data_32
        } else {
            event.user_data_32
        },
        timeout: 0,
        ledger: pending.ledger,
        code: pending.code,
        flags: event.flags,
        timestamp,
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

/// Compares a retried transfer with the stored one. For post/void, zero fields mean "as in the
/// pending transfer" and were filled in when stored, so only non-zero ones are compared.
fn transfer_exists(event: &NewTransfer, existing: &Transfer) -> CreateTransferResult {
    use CreateTransferResult as R;
    let resolves = event.flags.resolves_pending();
    let differs = |given: u128, stored: u128| (!resolves || given != 0) && given != stored;
    if event.flags != existing.flags {
        R::ExistsWithDifferentFlags
    } else if differs(event.debit_account_id.0, existing.debit_account_id.0) {
        R::ExistsWithDifferentDebitAccountId
    } else if differs(event.credit_account_id.0, existing.credit_account_id.0) {
        R::ExistsWithDifferentCreditAccountId
    } else if differs(event.amount, existing.amount) {
        R::ExistsWithDifferentAmount
    } else if event.pending_id != existing.pending_id {
        R::ExistsWithDifferentPendingId
    } else if differs(event.user_data_128, existing.user_data_128) {
        R::ExistsWithDifferentUserData128
    } else if differs(
        u128::from(event.user_data_64),
        u128::from(existing.user_data_64),
    ) {
        R::ExistsWithDifferentUserData64
    } else if differs(
        u128::from(event.user_data_32),
        u128::from(existing.user_data_32),
    ) {
        R::ExistsWithDifferentUserData32
    } else if event.timeout != existing.timeout {
        R::ExistsWithDifferentTimeout
    } else if differs(u128::from(event.ledger), u128::from(existing.ledger)) {
        R::ExistsWithDifferentLedger
    } else if differs(u128::from(event.code), u128::from(existing.code)) {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

#[cfg(test)]
mod tests;
