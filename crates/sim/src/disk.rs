//! A node's simulated disk: its ledger ([`SimBooks`], the engine's [`Books`] over
//! [`MemoryLedger`]) and its payment records ([`MemoryPayments`]), with the durability and the
//! faults the simulator decides. Transfers and the records computed from them
//! ([`Books::create_transfers_recorded`]) are applied to both in one step, as the node's ledger
//! makes both durable in one group commit: a simulated crash keeps both or neither.
//!
//! Durability. A call to the durable ledger returns only after its group commit is on disk, and
//! a crash before that loses the whole group (sled recovers a batch whole or not at all). The
//! simulated call keeps exactly that contract: it first yields to the executor (the moment
//! the real call spends queued and syncing, when other tasks run), then applies its batch
//! to the memory ledger and answers in the same poll. A crash is the executor dropping the
//! call's task: before the apply nothing happened, after it the batch is durable and the
//! answer may or may not have reached its caller. So the state a crash leaves is always a
//! state the real ledger can leave, and the memory ledger is the node's durable books.
//!
//! Faults. The simulator can make the next calls of a disk fail with a transient error (an
//! I/O error of the kind an operator retries), which the engine must not turn into a decision.
//! Account lookups are not among them: the durable ledger answers them from the accounts it
//! holds in memory (`Ledger::lookup_accounts` reads no disk), so no disk fault reaches them.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kakehashi_ledger::{
    Account, AccountId, CreateAccountResult, CreateTransferResult, MemoryLedger, NewAccount,
    NewTransfer, Timestamp, Transfer, TransferId,
};
use kakehashi_node::engine::{Books, BooksCall, EngineError, StoreWrites};
use kakehashi_node::store::{self, MemoryPayments, YieldOnce};

/// What a node's disk holds and how it is to fail.
#[derive(Debug, Default)]
pub struct Disk {
    /// The durable books.
    pub ledger: MemoryLedger,
    /// Calls still to fail with a transient error.
    pub failures_due: u32,
    /// Transient failures served so far.
    pub failures_served: u64,
}

/// A node's disk, shared by its books and the simulator (which reads it for its oracles and
/// keeps it across the node's crashes).
#[derive(Clone, Debug, Default)]
pub struct SharedDisk(Arc<Mutex<Disk>>);

impl SharedDisk {
    /// A fresh, empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// The disk, locked. The simulator is one thread: the lock is never contended.
    pub fn lock(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The engine's books on a simulated disk.
#[derive(Clone)]
pub struct SimBooks {
    disk: SharedDisk,
    /// The node's payment records (its `Store::in_memory`), written with the transfers.
    payments: MemoryPayments,
}

impl fmt::Debug for SimBooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBooks").finish_non_exhaustive()
    }
}

impl SimBooks {
    /// Books on `disk`, keeping the records that go with transfers in `payments`.
    pub fn new(disk: SharedDisk, payments: MemoryPayments) -> Self {
        Self { disk, payments }
    }

    /// Yields, then runs `work` on the ledger unless a transient failure is due.
    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut MemoryLedger) -> Result<T, kakehashi_ledger::Error> + Send + 'static,
    ) -> BooksCall<'_, T> {
        self.call_on(true, work)
    }

    /// [`SimBooks::call`]; a due failure is served only when `on_disk` (the call reads or
    /// writes what the durable ledger keeps on disk).
    fn call_on<T: Send + 'static>(
        &self,
        on_disk: bool,
        work: impl FnOnce(&mut MemoryLedger) -> Result<T, kakehashi_ledger::Error> + Send + 'static,
    ) -> BooksCall<'_, T> {
        let disk = self.disk.clone();
        Box::pin(async move {
            YieldOnce::default().await;
            let mut disk = disk.lock();
            if on_disk && disk.failures_due > 0 {
                disk.failures_due -= 1;
                disk.failures_served += 1;
                // Timed out: what the ledger classifies as transient (retry, decide nothing).
                return Err(EngineError::Ledger(kakehashi_ledger::Error::Io {
                    context: "a simulated disk".to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "a transient I/O error the simulator injected",
                    ),
                }));
            }
            Ok(work(&mut disk.ledger)?)
        })
    }
}

impl Books for SimBooks {
    fn create_accounts(
        &self,
        accounts: Vec<NewAccount>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateAccountResult>> {
        self.call(move |ledger| ledger.create_accounts(&accounts, now))
    }

    fn create_transfers(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        self.call(move |ledger| ledger.create_transfers(&transfers, now))
    }

    fn create_transfers_recorded(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
        records: StoreWrites,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        let payments = self.payments.clone();
        self.call(move |ledger| {
            let mut certificates = store::Written::default();
            let (results, writes) = ledger.create_transfers_with(&transfers, now, |outcomes| {
                let encoded = payments.encoder().encode(&records(outcomes));
                certificates = encoded.certificates;
                Ok(encoded.writes)
            })?;
            // In the same step as the transfers: no yield in between.
            payments.apply_records(store::Encoded {
                writes,
                certificates,
            });
            Ok(results)
        })
    }

    fn lookup_accounts(&self, ids: Vec<AccountId>) -> BooksCall<'_, Vec<Option<Account>>> {
        self.call_on(false, move |ledger| ledger.lookup_accounts(&ids))
    }

    fn lookup_transfers(&self, ids: Vec<TransferId>) -> BooksCall<'_, Vec<Option<Transfer>>> {
        self.call(move |ledger| ledger.lookup_transfers(&ids))
    }

    fn close(self: Arc<Self>) -> BooksCall<'static, ()> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use kakehashi_ledger::AccountFlags;

    use super::*;
    use crate::executor::Executor;

    const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

    fn account(id: u128) -> NewAccount {
        NewAccount {
            id: AccountId(id),
            ledger: 392,
            code: 1,
            flags: AccountFlags::NONE,
            ..NewAccount::default()
        }
    }

    #[test]
    fn a_call_applies_only_when_polled_past_its_sync_and_a_crash_before_loses_it() {
        let disk = SharedDisk::new();
        let books = Arc::new(SimBooks::new(disk.clone(), MemoryPayments::new()));
        let mut executor = Executor::new();
        let task_books = Arc::clone(&books);
        let id = executor.spawn(0u8, async move {
            let _ = task_books.create_accounts(vec![account(1)], NOW).await;
        });
        assert!(!executor.poll(id), "the first poll parks at the sync point");
        assert_eq!(disk.lock().ledger.accounts().count(), 0);
        executor.kill(0);
        assert_eq!(
            disk.lock().ledger.accounts().count(),
            0,
            "crashed before its sync"
        );

        let task_books = Arc::clone(&books);
        let id = executor.spawn(0u8, async move {
            let _ = task_books.create_accounts(vec![account(1)], NOW).await;
        });
        assert!(!executor.poll(id));
        assert_eq!(executor.runnable(), [id], "it woke itself to finish");
        assert!(executor.poll(id));
        assert_eq!(disk.lock().ledger.accounts().count(), 1);
    }

    #[test]
    fn an_injected_failure_is_transient_and_changes_nothing() {
        let disk = SharedDisk::new();
        disk.lock().failures_due = 1;
        let books = Arc::new(SimBooks::new(disk.clone(), MemoryPayments::new()));
        let mut executor = Executor::new();
        let answers = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..2 {
            let (books, answers) = (Arc::clone(&books), Arc::clone(&answers));
            executor.spawn(0u8, async move {
                let answer = books.create_accounts(vec![account(1)], NOW).await;
                answers.lock().unwrap().push(answer.map_err(|e| match e {
                    EngineError::Ledger(e) => e.is_transient(),
                    _ => false,
                }));
            });
        }
        while let Some(id) = executor.runnable().first().copied() {
            executor.poll(id);
        }
        assert_eq!(
            *answers.lock().unwrap(),
            [Err(true), Ok(vec![CreateAccountResult::Ok])]
        );
        assert_eq!(disk.lock().failures_served, 1);
        assert_eq!(disk.lock().ledger.accounts().count(), 1);
    }
}
