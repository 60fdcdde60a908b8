//! The builder against the two ledgers it must agree with: [`MemoryLedger`]'s results and
//! books, and the sled [`Ledger`]'s results, records and journal (its head hash chains every
//! record's bytes, so equal heads mean byte-identical journals).

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::ledger::trees::open_offline;
use crate::memory::tests::{
    ACCOUNTS, Call, NOW, SECOND, account_flags, call, new_transfer, opening_flags,
};
use crate::{Ledger, MemoryLedger, Options, TransferOutcome};

/// Committed state applied from [`GroupWrites`]: the model of what a storage engine does
/// with them.
#[derive(Default)]
struct Applied {
    accounts: BTreeMap<AccountId, Account>,
    transfers: BTreeMap<TransferId, Transfer>,
    pending: BTreeMap<TransferId, PendingStatus>,
    expiry: BTreeSet<(Timestamp, TransferId)>,
    history: BTreeMap<AccountId, Vec<AccountBalance>>,
    failed: BTreeSet<TransferId>,
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    clock: Clock,
    head: JournalHead,
}

impl Store for Applied {
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

impl Applied {
    fn apply(&mut self, writes: GroupWrites) {
        assert_eq!(
            writes.journal.first().map(|record| record.seq),
            (!writes.journal.is_empty()).then_some(self.head.seq + 1),
            "the group's records follow the head"
        );
        for account in writes.accounts {
            self.accounts.insert(account.id, account);
        }
        for transfer in writes.transfers {
            self.transfers.insert(transfer.id, transfer);
        }
        self.pending.extend(writes.pending);
        for (key, present) in writes.expiry {
            if present {
                self.expiry.insert(key);
            } else {
                self.expiry.remove(&key);
            }
        }
        for (id, balance) in writes.history {
            self.history.entry(id).or_default().push(balance);
        }
        self.failed.extend(writes.failed);
        for write in writes.records {
            match write {
                RecordWrite::Put { key, value } => {
                    self.records.insert(key, value);
                }
                RecordWrite::Delete { key } => {
                    self.records.remove(&key);
                }
            }
        }
        self.clock = writes.clock;
        self.head = writes.head;
    }
}

/// A records closure that writes one record per successful event, and refuses the request
/// when `refuse` is set and some event failed (so that request-level rollbacks are drawn).
fn records_fn(step: usize, refuse: bool) -> RecordsFn {
    Box::new(move |outcomes: &[TransferOutcome]| {
        if refuse && outcomes.iter().any(|outcome| outcome.timestamp.is_none()) {
            return Err("an event failed".into());
        }
        Ok(outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| {
                outcome.timestamp.map(|at| RecordWrite::Put {
                    key: format!("r{step}-{index}").into_bytes(),
                    value: at.0.to_le_bytes().to_vec(),
                })
            })
            .collect())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The same calls give the same results through the builder as through the memory
    /// ledger (plain calls) and the sled ledger (every call, records included), the same
    /// books, and the same journal as sled's.
    #[test]
    fn the_builder_agrees_with_the_memory_and_sled_ledgers(
        opening in prop::collection::vec((prop_oneof![4 => Just(392u32), 1 => Just(702u32)], opening_flags()), ACCOUNTS as usize),
        rest in prop::collection::vec((call(), 0u8..3), 1..32),
    ) {
        let mut calls = vec![(Call::Accounts(
            opening.into_iter().zip(1..).map(|((ledger, flags), id)| (id, ledger, flags)).collect(),
        ), 0)];
        calls.extend(rest);
        let dir = tempfile::tempdir().expect("temp dir");
        let sled = Ledger::open(dir.path(), SigningKey::from_bytes(&[7; 32]), Options::default())
            .expect("open");
        let mut memory = MemoryLedger::new();
        let mut applied = Applied::default();
        for (step, (call, with_records)) in calls.iter().enumerate() {
            let now = Timestamp(NOW + step as u64 / 2 * SECOND);
            let mut builder = GroupBuilder::new(&applied, applied.clock, applied.head);
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
                    let built = builder.create_accounts(&events, now).expect("builder").expect("not refused");
                    prop_assert_eq!(&built, &memory.create_accounts(&events, now).expect("memory"));
                    prop_assert_eq!(&built, &sled.create_accounts(&events, now).expect("sled"));
                }
                Call::Transfers(events) => {
                    let events: Vec<NewTransfer> = events.iter().copied().map(new_transfer).collect();
                    if *with_records == 0 {
                        let built = builder.create_transfers(&events, now, None).expect("builder").expect("no records");
                        prop_assert_eq!(&built, &memory.create_transfers(&events, now).expect("memory"));
                        prop_assert_eq!(&built, &sled.create_transfers(&events, now).expect("sled"));
                    } else {
                        let refuse = *with_records == 2;
                        let built = builder.create_transfers(&events, now, Some(records_fn(step, refuse))).expect("builder");
                        let on_sled = sled.create_transfers_with(&events, now, records_fn(step, refuse));
                        match (&built, &on_sled) {
                            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                            (Err(Error::RecordsRefused { .. }), Err(Error::RecordsRefused { .. })) => {}
                            other => prop_assert!(false, "builder and sled differ: {:?}", other),
                        }
                        // The memory ledger refuses the same calls whole: keep it in step.
                        let in_memory = memory.create_transfers_with(&events, now, records_fn(step, refuse));
                        prop_assert_eq!(built.is_ok(), in_memory.is_ok());
                    }
                }
                Call::Expire => {
                    let built = builder.expire_pending(now).expect("builder");
                    let in_memory = memory.expire_pending(now).expect("memory");
                    let on_sled = sled.expire_pending(now).expect("sled");
                    prop_assert_eq!(built, in_memory);
                    prop_assert_eq!(built, on_sled);
                }
            }
            applied.apply(builder.finish().expect("finish"));
        }
        let accounts: Vec<AccountId> = (0..=ACCOUNTS).map(AccountId).collect();
        let in_memory = memory.lookup_accounts(&accounts).expect("memory");
        prop_assert_eq!(&in_memory, &sled.lookup_accounts(&accounts).expect("sled"));
        let built: Vec<Option<Account>> = accounts.iter().map(|id| applied.accounts.get(id).copied()).collect();
        prop_assert_eq!(&built, &in_memory);
        for id in (0..40).map(TransferId) {
            prop_assert_eq!(applied.transfers.get(&id).copied(), sled.lookup_transfers(&[id]).expect("sled")[0]);
            prop_assert_eq!(applied.pending.get(&id).copied(), sled.pending_status(id).expect("sled"));
        }
        for id in &accounts {
            prop_assert_eq!(
                applied.history.get(id).cloned().unwrap_or_default(),
                sled.account_history(*id).expect("sled")
            );
        }
        for (key, value) in &applied.records {
            prop_assert_eq!(Some(value.clone()), sled.record(key).expect("sled"));
        }
        prop_assert_eq!(applied.records.len(), sled.records(b"r", None, 4096).expect("sled").len());
        sled.close().expect("close");
        let trees = open_offline(dir.path()).expect("offline");
        let head = trees.head().expect("head").unwrap_or((0, GENESIS_HASH));
        prop_assert_eq!((applied.head.seq, applied.head.hash), head);
    }
}

#[test]
fn an_unbalanced_group_is_refused_before_anything_is_returned() {
    // A store whose account already breaks its limit: the group that touches it fails the
    // invariant check in `finish`, so nothing is handed out to write.
    let mut applied = Applied::default();
    let account = Account {
        id: AccountId(1),
        ledger: 392,
        code: 1,
        flags: crate::AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        debits_posted: 5,
        ..Account::default()
    };
    applied.accounts.insert(AccountId(1), account);
    applied.accounts.insert(
        AccountId(2),
        Account {
            id: AccountId(2),
            ledger: 392,
            code: 1,
            ..Account::default()
        },
    );
    let mut builder = GroupBuilder::new(&applied, applied.clock, applied.head);
    let transfer = NewTransfer {
        id: TransferId(9),
        debit_account_id: AccountId(2),
        credit_account_id: AccountId(1),
        amount: 1,
        ledger: 392,
        code: 1,
        ..NewTransfer::default()
    };
    let results = builder
        .create_transfers(&[transfer], Timestamp(NOW), None)
        .expect("state machine")
        .expect("no records");
    assert_eq!(results, [CreateTransferResult::Ok]);
    assert!(matches!(
        builder.finish(),
        Err(Error::InvariantViolated { .. })
    ));
}
