//! A ledger held in memory, with the same state machine and the same invariant checks as the
//! durable [`crate::Ledger`], for a deterministic simulator (issue 11): many nodes in one
//! thread, each with books that a simulated crash can roll back to what was durable.
//!
//! What it shares with [`crate::Ledger`] is everything that decides a result: the state
//! machine ([`crate::state_machine::Changes`]: validation, balances, pending, post and void,
//! linked chains, timestamps, expiry) and the fail-stop check that every group's debits equal
//! its credits. What it leaves out is what makes those results durable and auditable: no
//! threads, no sled, no journal, no checkpoints. Each call is one group, applied at once.
//!
//! Durability is the simulator's to model: [`MemoryLedger`] is `Clone`, so a simulator keeps
//! a copy of the state it calls durable and gives it back to a node it crashes. A
//! differential test below runs the same random workload through both ledgers and compares
//! every result and every balance.

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;
use crate::ledger::check_batch_len;
use crate::ledger::invariants::check_group_balanced;
use crate::ledger::sequencer_outcomes as outcomes;
use crate::model::{
    Account, AccountBalance, AccountId, NewAccount, NewTransfer, PendingStatus, Timestamp,
    Transfer, TransferId,
};
use crate::records::{RecordWrite, TransferOutcome, check_writes};
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::state_machine::{Changes, Clock, Store};
use crate::{EXPIRE_BATCH_LEN_MAX, Expired};

/// Books in memory. Ordered maps, so that iterating them (the simulator's oracles do) is the
/// same on every run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryLedger {
    accounts: BTreeMap<AccountId, Account>,
    transfers: BTreeMap<TransferId, Transfer>,
    pending: BTreeMap<TransferId, PendingStatus>,
    expiry: BTreeSet<(Timestamp, TransferId)>,
    history: BTreeMap<AccountId, Vec<AccountBalance>>,
    /// Transfer ids whose event failed with a transient result.
    failed: BTreeSet<TransferId>,
    clock: Clock,
}

impl Store for MemoryLedger {
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error> {
        Ok(self.accounts.get(&id).copied())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        Ok(self.transfers.get(&id).copied())
    }

    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        Ok(self.pending.get(&id).copied())
    }

    fn transfer_failed(&self, id: TransferId) -> Result<bool, Error> {
        Ok(self.failed.contains(&id))
    }

    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        Ok(self
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= up_to)
            .take(limit)
            .copied()
            .collect())
    }
}

impl MemoryLedger {
    /// Empty books.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates accounts, as [`crate::Ledger::create_accounts`] does.
    pub fn create_accounts(
        &mut self,
        accounts: &[NewAccount],
        now: Timestamp,
    ) -> Result<Vec<CreateAccountResult>, Error> {
        check_batch_len(accounts.len())?;
        let mut changes = Changes::new(self.clock);
        let (results, _) = changes.create_accounts(&*self, accounts, now)?;
        self.commit(changes)?;
        Ok(results)
    }

    /// Applies transfers, as [`crate::Ledger::create_transfers`] does.
    pub fn create_transfers(
        &mut self,
        transfers: &[NewTransfer],
        now: Timestamp,
    ) -> Result<Vec<CreateTransferResult>, Error> {
        check_batch_len(transfers.len())?;
        let mut changes = Changes::new(self.clock);
        let (results, _) = changes.create_transfers(&*self, transfers, now)?;
        self.commit(changes)?;
        Ok(results)
    }

    /// Applies transfers with the records `records` computes from their outcomes, as
    /// [`crate::Ledger::create_transfers_with`] does: the closure sees each event's result and
    /// the timestamp of a transfer the call created; if it fails, or a write is too large, the
    /// call is refused ([`Error::RecordsRefused`]) and nothing is applied. Returns the results
    /// and the checked writes, for the simulator to apply to its memory of the records in the
    /// same step (one commit keeps both or neither).
    pub fn create_transfers_with<F>(
        &mut self,
        transfers: &[NewTransfer],
        now: Timestamp,
        records: F,
    ) -> Result<(Vec<CreateTransferResult>, Vec<RecordWrite>), Error>
    where
        F: FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String>,
    {
        check_batch_len(transfers.len())?;
        let mut changes = Changes::new(self.clock);
        let (results, entries) = changes.create_transfers(&*self, transfers, now)?;
        let writes = records(&outcomes(transfers, &results, &entries))
            .map_err(|detail| Error::RecordsRefused { detail })?;
        check_writes(&writes)?;
        self.commit(changes)?;
        Ok((results, writes))
    }

    /// Releases the reservations whose timeout passed by `now`, as
    /// [`crate::Ledger::expire_pending`] does.
    pub fn expire_pending(&mut self, now: Timestamp) -> Result<Expired, Error> {
        let mut changes = Changes::new(self.clock);
        let (entries, more) = changes.expire_pending(&*self, now, EXPIRE_BATCH_LEN_MAX)?;
        let count = entries.len();
        self.commit(changes)?;
        Ok(Expired { count, more })
    }

    /// Looks up accounts by id.
    pub fn lookup_accounts(&self, ids: &[AccountId]) -> Result<Vec<Option<Account>>, Error> {
        check_batch_len(ids.len())?;
        Ok(ids
            .iter()
            .map(|id| self.accounts.get(id).copied())
            .collect())
    }

    /// Looks up transfers by id.
    pub fn lookup_transfers(&self, ids: &[TransferId]) -> Result<Vec<Option<Transfer>>, Error> {
        check_batch_len(ids.len())?;
        Ok(ids
            .iter()
            .map(|id| self.transfers.get(id).copied())
            .collect())
    }

    /// Where a pending transfer stands.
    pub fn pending(&self, id: TransferId) -> Option<PendingStatus> {
        self.pending.get(&id).copied()
    }

    /// The balances after every transfer that touched a `HISTORY` account, oldest first.
    pub fn account_history(&self, id: AccountId) -> Vec<AccountBalance> {
        self.history.get(&id).cloned().unwrap_or_default()
    }

    /// Every account, in id order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Every transfer, in id order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// Applies one group's changes after the same fail-stop check the durable ledger makes
    /// before it writes: on an invariant violation nothing is applied.
    fn commit(&mut self, changes: Changes) -> Result<(), Error> {
        // Failed ids are kept even when nothing else changed, as the durable ledger keeps them.
        self.failed.extend(changes.failed.iter().copied());
        if changes.accounts.is_empty() && changes.transfers.is_empty() {
            // Every event failed (or there were none): the state machine changed nothing but
            // may have handed out timestamps, which a durable ledger does not keep either.
            return Ok(());
        }
        check_group_balanced(&changes)?;
        self.clock = changes.clock();
        self.accounts.extend(changes.accounts);
        self.transfers.extend(changes.transfers);
        self.pending.extend(changes.pending);
        for (key, present) in changes.expiry {
            if present {
                self.expiry.insert(key);
            } else {
                self.expiry.remove(&key);
            }
        }
        for (id, balance) in changes.history {
            self.history.entry(id).or_default().push(balance);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    use super::*;
    use crate::model::{AccountFlags, TransferFlags};
    use crate::{Ledger, Options};

    pub(crate) const NOW: u64 = 1_764_000_000_000_000_000;
    pub(crate) const SECOND: u64 = 1_000_000_000;
    pub(crate) const ACCOUNTS: u128 = 6;

    /// One call of a random workload: small ids and amounts, so that ids collide, balances
    /// run out and posts and voids find (or miss) their pending transfers.
    #[derive(Clone, Debug)]
    pub(crate) enum Call {
        Accounts(Vec<(u128, u32, u16)>),
        Transfers(Vec<(u128, u128, u128, u128, u128, u16, u32)>),
        Expire,
    }

    /// Flags of the accounts every workload opens with: no linked chain, so they all exist,
    /// and balance limits and history often enough to matter.
    pub(crate) fn opening_flags() -> impl Strategy<Value = u16> {
        prop::sample::select(vec![
            0,
            0,
            AccountFlags::HISTORY.0,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.0,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS.0,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.0 | AccountFlags::HISTORY.0,
        ])
    }

    pub(crate) fn account_flags(bits: u16) -> AccountFlags {
        // LINKED, DEBITS_MUST_NOT_EXCEED_CREDITS, CREDITS_MUST_NOT_EXCEED_DEBITS, HISTORY:
        // the flags whose effects the state machine decides.
        AccountFlags(bits & 0b1111)
    }

    pub(crate) type Fields = (u128, u128, u128, u128, u128, u16, u32);

    /// A transfer's fields (id, debit, credit, amount, pending id, flags, timeout): mostly the
    /// shapes the protocol uses (plain, pending, post, void, each possibly linked) with
    /// coherent fields, sometimes any values at all, so that refusals are drawn too.
    fn transfer() -> impl Strategy<Value = Fields> {
        let id = 1u128..40;
        let account = 1..=ACCOUNTS;
        let linked = prop::bool::weighted(0.15).prop_map(u16::from);
        let plain = (
            id.clone(),
            account.clone(),
            account.clone(),
            1u128..200,
            linked.clone(),
        )
            .prop_map(|(id, debit, credit, amount, linked)| {
                (id, debit, credit, amount, 0, linked, 0)
            });
        let pending = (
            id.clone(),
            account.clone(),
            account,
            1u128..200,
            linked.clone(),
            0u32..3,
        )
            .prop_map(|(id, debit, credit, amount, linked, timeout)| {
                (
                    id,
                    debit,
                    credit,
                    amount,
                    0,
                    TransferFlags::PENDING.0 | linked,
                    timeout,
                )
            });
        let post = (id.clone(), 1u128..40, 0u128..200, linked.clone()).prop_map(
            |(id, pending, amount, linked)| {
                (
                    id,
                    0,
                    0,
                    amount,
                    pending,
                    TransferFlags::POST_PENDING_TRANSFER.0 | linked,
                    0,
                )
            },
        );
        let void = (id.clone(), 1u128..40, linked).prop_map(|(id, pending, linked)| {
            (
                id,
                0,
                0,
                0,
                pending,
                TransferFlags::VOID_PENDING_TRANSFER.0 | linked,
                0,
            )
        });
        let any = (
            id,
            0..=ACCOUNTS,
            0..=ACCOUNTS,
            0u128..200,
            0u128..40,
            0u16..32,
            0u32..3,
        );
        prop_oneof![3 => plain, 3 => pending, 2 => post, 2 => void, 1 => any]
    }

    pub(crate) fn call() -> impl Strategy<Value = Call> {
        let account = (
            1..=ACCOUNTS,
            prop_oneof![4 => Just(392u32), 1 => Just(702u32)],
            0u16..16,
        );
        let transfer = transfer();
        prop_oneof![
            1 => prop::collection::vec(account, 1..4).prop_map(Call::Accounts),
            5 => prop::collection::vec(transfer, 1..5).prop_map(Call::Transfers),
            1 => Just(Call::Expire),
        ]
    }

    pub(crate) fn new_transfer(
        (id, debit, credit, amount, pending, flags, timeout): Fields,
    ) -> NewTransfer {
        NewTransfer {
            id: TransferId(id),
            debit_account_id: AccountId(debit),
            credit_account_id: AccountId(credit),
            amount,
            pending_id: TransferId(pending),
            ledger: 392,
            code: 1,
            flags: TransferFlags(flags),
            timeout,
            ..NewTransfer::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The same calls give the same results and the same books in memory as on disk.
        /// Every workload opens the accounts first (with random flags and ledgers), so that
        /// most transfers have accounts to move money between.
        #[test]
        fn memory_and_durable_ledgers_agree(
            opening in prop::collection::vec((prop_oneof![4 => Just(392u32), 1 => Just(702u32)], opening_flags()), ACCOUNTS as usize),
            rest in prop::collection::vec(call(), 1..32),
        ) {
            let mut calls = vec![Call::Accounts(
                opening.into_iter().zip(1..).map(|((ledger, flags), id)| (id, ledger, flags)).collect(),
            )];
            calls.extend(rest);
            let dir = tempfile::tempdir().expect("temp dir");
            let durable = Ledger::open(
                dir.path(),
                SigningKey::from_bytes(&[7; 32]),
                Options::default(),
            )
            .expect("open");
            let mut memory = MemoryLedger::new();
            for (step, call) in calls.iter().enumerate() {
                // A second between every other call, so that pending timeouts run out
                // mid-workload and calls within one second take timestamps after the last one.
                let now = Timestamp(NOW + step as u64 / 2 * SECOND);
                match call {
                    Call::Accounts(events) => {
                        let events: Vec<NewAccount> = events
                            .iter()
                            .map(|&(id, ledger, flags)| NewAccount {
                                id: AccountId(id),
                                ledger,
                                code: 1,
                                flags: account_flags(flags),
                                ..NewAccount::default()
                            })
                            .collect();
                        prop_assert_eq!(
                            memory.create_accounts(&events, now).expect("memory"),
                            durable.create_accounts(&events, now).expect("durable")
                        );
                    }
                    Call::Transfers(events) => {
                        let events: Vec<NewTransfer> =
                            events.iter().copied().map(new_transfer).collect();
                        prop_assert_eq!(
                            memory.create_transfers(&events, now).expect("memory"),
                            durable.create_transfers(&events, now).expect("durable")
                        );
                    }
                    Call::Expire => {
                        let (a, b) = (
                            memory.expire_pending(now).expect("memory"),
                            durable.expire_pending(now).expect("durable"),
                        );
                        prop_assert_eq!((a.count, a.more), (b.count, b.more));
                    }
                }
            }
            let accounts: Vec<AccountId> = (0..=ACCOUNTS).map(AccountId).collect();
            prop_assert_eq!(
                memory.lookup_accounts(&accounts).expect("memory"),
                durable.lookup_accounts(&accounts).expect("durable")
            );
            let transfers: Vec<TransferId> = (0..40).map(TransferId).collect();
            prop_assert_eq!(
                memory.lookup_transfers(&transfers).expect("memory"),
                durable.lookup_transfers(&transfers).expect("durable")
            );
            for id in &transfers {
                prop_assert_eq!(memory.pending(*id), durable.pending_status(*id).expect("durable"));
            }
            for id in &accounts {
                prop_assert_eq!(
                    memory.account_history(*id),
                    durable.account_history(*id).expect("durable")
                );
            }
            durable.close().expect("close");
        }
    }

    #[test]
    fn a_batch_longer_than_the_limit_is_refused_whole() {
        let mut memory = MemoryLedger::new();
        let events = vec![NewTransfer::default(); crate::BATCH_LEN_MAX + 1];
        assert!(matches!(
            memory.create_transfers(&events, Timestamp(NOW)),
            Err(Error::BatchTooLong { .. })
        ));
        assert_eq!(memory, MemoryLedger::new());
    }
}
