//! The engine's ledger, behind [`Books`]: the operations the settlement protocol needs
//! (create accounts, create transfers, alone or with the payment records that go with them,
//! look both up) and a clean close.
//!
//! Production passes [`SledBooks`]: the durable [`Ledger`]. Its changes are answered once
//! their group commit is on disk; the books await the ledger's awaited calls, whose answer the
//! ledger's commit thread sends, so a change in flight holds no thread (its lookups run on
//! tokio's blocking pool, see [`SledBooks::lookup`]). A deterministic simulator
//! passes books of its own over [`kakehashi_ledger::MemoryLedger`] (the same state machine in
//! memory), answering in the order and at the moments it chooses, and crashing by dropping
//! what was not yet answered.
//!
//! As with [`super::PeerTransport`], the calls return boxed futures so that the engine holds
//! `Arc<dyn Books>` rather than carrying a type parameter into every holder of the engine.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use kakehashi_ledger::{
    Account, AccountId, CreateAccountResult, CreateTransferResult, Ledger, NewAccount, NewTransfer,
    Timestamp, Transfer, TransferId, TransferOutcome,
};

use super::EngineError;
use crate::store;

/// The payment records a step writes, computed from its transfers' outcomes (see
/// [`Books::create_transfers_recorded`]).
pub type StoreWrites = Box<dyn FnOnce(&[TransferOutcome]) -> Vec<store::Write> + Send + 'static>;

/// A call to the books in flight.
pub type BooksCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send + 'a>>;

/// The ledger operations the engine makes. Every answer rests on durable state: a result
/// returned is a result a crash keeps.
pub trait Books: Send + Sync + fmt::Debug {
    /// Creates accounts (`now`: the caller's clock), one result per event.
    fn create_accounts(
        &self,
        accounts: Vec<NewAccount>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateAccountResult>>;

    /// Applies transfers (`now`: the caller's clock), one result per event.
    fn create_transfers(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateTransferResult>>;

    /// Applies transfers together with the payment records `records` computes from their
    /// outcomes (one per event: the result, and the ledger timestamp of a transfer this call
    /// created): one durable commit, so a crash keeps both or neither, and a reader sees the
    /// records exactly when it sees the transfers. `records` runs once the transfers' outcomes
    /// are known and before anything is durable; it must be quick and must not call the books.
    /// A failure (the records cannot be encoded or are too large) fails the whole call with
    /// nothing applied.
    fn create_transfers_recorded(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
        records: StoreWrites,
    ) -> BooksCall<'_, Vec<CreateTransferResult>>;

    /// Looks up accounts by id.
    fn lookup_accounts(&self, ids: Vec<AccountId>) -> BooksCall<'_, Vec<Option<Account>>>;

    /// Looks up transfers by id.
    fn lookup_transfers(&self, ids: Vec<TransferId>) -> BooksCall<'_, Vec<Option<Transfer>>>;

    /// Closes the books cleanly once nothing else holds them (the last `Arc`); a no-op
    /// otherwise.
    fn close(self: Arc<Self>) -> BooksCall<'static, ()>;
}

/// The durable ledger as the engine's books.
pub struct SledBooks {
    ledger: Arc<Ledger>,
    /// Encodes the records of [`Books::create_transfers_recorded`]: the payment store's, so
    /// that both learn which certificates the ledger's records hold.
    encoder: store::Encoder,
}

impl fmt::Debug for SledBooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledBooks").finish_non_exhaustive()
    }
}

impl SledBooks {
    /// Books over `ledger`, encoding records with `encoder` (the encoder of the payment store
    /// over the same ledger, [`store::Store::encoder`]).
    pub fn new(ledger: Arc<Ledger>, encoder: store::Encoder) -> Self {
        Self { ledger, encoder }
    }

    /// The ledger under these books (the payment store is a view over its records).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Runs the lookup `work` on the ledger in tokio's blocking pool. A lookup never queues to
    /// the writer, but it takes the ledger's visibility lock, which the commit thread holds
    /// from its sled write until the group is durable: for a large group, a checkpoint or the
    /// durable log starting over, across a sled flush and its fdatasync (milliseconds). Run
    /// inline, a lookup could hold a runtime worker that long. Lookups are off the payment
    /// path's common case (failed credits, recovery, account queries), so the hand-off costs
    /// little.
    fn lookup<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Ledger) -> Result<T, kakehashi_ledger::Error> + Send + 'static,
    ) -> BooksCall<'_, T> {
        let ledger = Arc::clone(&self.ledger);
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || work(&ledger))
                .await
                .map_err(|e| EngineError::Task(e.to_string()))?;
            Ok(answer?)
        })
    }
}

impl Books for SledBooks {
    fn create_accounts(
        &self,
        accounts: Vec<NewAccount>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateAccountResult>> {
        // Awaited, not on the blocking pool: the ledger's commit thread completes the future
        // once the batch is durable. A dropped call is applied all the same (its answer is
        // dropped), as a blocking call whose caller went away was.
        let call = self.ledger.create_accounts_async(&accounts, now);
        Box::pin(async move { Ok(call.await?) })
    }

    fn create_transfers(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        let call = self.ledger.create_transfers_async(&transfers, now);
        Box::pin(async move { Ok(call.await?) })
    }

    fn create_transfers_recorded(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
        records: StoreWrites,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        // `records` runs in the ledger's writer, as the ledger documents; so does their
        // encoding, which needs them. The certificates the batch writes are marked durable
        // only once the call returns, durable.
        let encoder = self.encoder.clone();
        let written = Arc::new(Mutex::new(store::Written::default()));
        let slot = Arc::clone(&written);
        let call = self
            .ledger
            .create_transfers_with_async(&transfers, now, move |outcomes| {
                let encoded = encoder.encode(&records(outcomes));
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = encoded.certificates;
                Ok(encoded.writes)
            });
        let encoder = self.encoder.clone();
        Box::pin(async move {
            let results = call.await?;
            let written =
                std::mem::take(&mut *written.lock().unwrap_or_else(PoisonError::into_inner));
            encoder.stored(written);
            Ok(results)
        })
    }

    fn lookup_accounts(&self, ids: Vec<AccountId>) -> BooksCall<'_, Vec<Option<Account>>> {
        self.lookup(move |ledger| ledger.lookup_accounts(&ids))
    }

    fn lookup_transfers(&self, ids: Vec<TransferId>) -> BooksCall<'_, Vec<Option<Transfer>>> {
        self.lookup(move |ledger| ledger.lookup_transfers(&ids))
    }

    fn close(self: Arc<Self>) -> BooksCall<'static, ()> {
        Box::pin(async move {
            // Only the last holder closes: the writer thread is joined once, after every
            // caller is gone.
            let Ok(books) = Arc::try_unwrap(self) else {
                return Ok(());
            };
            let Ok(ledger) = Arc::try_unwrap(books.ledger) else {
                return Ok(());
            };
            tokio::task::spawn_blocking(move || ledger.close())
                .await
                .map_err(|e| EngineError::Task(e.to_string()))??;
            Ok(())
        })
    }
}
