//! The engine's books in PostgreSQL (issue 15, `[storage] backend = "postgres"`): the
//! [`Books`] over a [`PgLedger`], and the handle the payment store shares with them.
//!
//! What differs from sled is what a lost database means. The ledger stops its writer
//! (fail-stop) after a commit whose outcome it could not learn (the connection dropped during
//! COMMIT, as when the primary dies and a standby is promoted). The sled ledger stays stopped
//! until the process restarts; a node on PostgreSQL instead reopens its ledger at the next
//! call once the database answers again ([`PgHandle::ledger`]): the failed call was answered
//! with an error, so its payment is in doubt and recovery reads what was committed, exactly as
//! after a restart. Reopening reads the journal's head and clock from the database, so nothing
//! the stopped writer held in memory is carried over.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    Account, AccountId, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer,
    Timestamp, Transfer, TransferId,
};
use kakehashi_ledger_pg::{Options, PgLedger};

use super::EngineError;
use super::books::{Books, BooksCall, StoreWrites};
use crate::store;

/// After a failed reopen, how long calls fail at once instead of trying again: a database that
/// is down would otherwise cost every caller a connect timeout.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// The PostgreSQL ledger of a node, reopened when its writer stopped (see the module
/// documentation). Shared by the books and the payment store, so both always use the same
/// ledger.
pub struct PgHandle {
    options: Options,
    key: SigningKey,
    current: RwLock<Arc<PgLedger>>,
    /// Held while reopening, so one caller reopens and the others wait for its result.
    reopening: tokio::sync::Mutex<()>,
    /// When the last reopen failed, and why.
    failed: Mutex<Option<(Instant, String)>>,
}

impl fmt::Debug for PgHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgHandle")
            .field("schema", &self.options.schema)
            .finish_non_exhaustive()
    }
}

impl PgHandle {
    /// Opens the ledger of `options` (connecting, migrating the schema, starting the writer),
    /// its records signed with `key`.
    pub async fn open(
        options: Options,
        key: SigningKey,
    ) -> Result<Self, kakehashi_ledger_pg::Error> {
        let ledger = PgLedger::open(&options, key.clone()).await?;
        Ok(Self {
            options,
            key,
            current: RwLock::new(Arc::new(ledger)),
            reopening: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
        })
    }

    /// The ledger to use now: the current one while its writer runs; otherwise a new one,
    /// opened once the database answers.
    pub async fn ledger(&self) -> Result<Arc<PgLedger>, kakehashi_ledger_pg::Error> {
        let current = self.current();
        if current.stopped().is_none() {
            return Ok(current);
        }
        let _reopening = self.reopening.lock().await;
        let current = self.current();
        if current.stopped().is_none() {
            // Another caller reopened it meanwhile.
            return Ok(current);
        }
        let stopped = current.stopped().unwrap_or_default();
        if let Some((at, why)) = &*self.failed.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < REOPEN_BACKOFF
        {
            return Err(kakehashi_ledger_pg::Error::Stopped {
                reason: format!("{stopped}; reopening failed: {why}"),
            });
        }
        tracing::warn!(schema = %self.options.schema, %stopped,
            "the PostgreSQL ledger's writer stopped; reopening it");
        match PgLedger::open(&self.options, self.key.clone()).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
                tracing::info!(schema = %self.options.schema, "the PostgreSQL ledger is open again");
                Ok(fresh)
            }
            Err(error) => {
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), error.to_string()));
                Err(error)
            }
        }
    }

    fn current(&self) -> Arc<PgLedger> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Closes the current ledger (its writer signs the head) once nothing else holds it.
    async fn close(self) -> Result<(), kakehashi_ledger_pg::Error> {
        let ledger = self
            .current
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match Arc::try_unwrap(ledger) {
            Ok(ledger) => ledger.close().await,
            // A call still holds it: it closes (without the final signature) when dropped.
            Err(_) => Ok(()),
        }
    }
}

/// The PostgreSQL ledger as the engine's books.
pub struct PgBooks {
    handle: Arc<PgHandle>,
    /// Encodes the records of [`Books::create_transfers_recorded`]: the payment store's.
    encoder: store::Encoder,
}

impl fmt::Debug for PgBooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBooks")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl PgBooks {
    /// Books over `handle`, encoding records with `encoder` (the payment store's over the same
    /// handle, [`store::Store::encoder`]).
    pub fn new(handle: Arc<PgHandle>, encoder: store::Encoder) -> Self {
        Self { handle, encoder }
    }
}

impl Books for PgBooks {
    fn create_accounts(
        &self,
        accounts: Vec<NewAccount>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateAccountResult>> {
        Box::pin(async move {
            let ledger = self.handle.ledger().await?;
            Ok(ledger.create_accounts(&accounts, now).await?)
        })
    }

    fn create_transfers(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        Box::pin(async move {
            let ledger = self.handle.ledger().await?;
            Ok(ledger.create_transfers(&transfers, now).await?)
        })
    }

    fn create_transfers_recorded(
        &self,
        transfers: Vec<NewTransfer>,
        now: Timestamp,
        records: StoreWrites,
    ) -> BooksCall<'_, Vec<CreateTransferResult>> {
        Box::pin(async move {
            let ledger = self.handle.ledger().await?;
            // As on sled: encoded in the writer once the outcomes are known; the certificates
            // the batch writes count as stored only once it is committed.
            let encoder = self.encoder.clone();
            let written = Arc::new(Mutex::new(store::Written::default()));
            let slot = Arc::clone(&written);
            let results = ledger
                .create_transfers_with(&transfers, now, move |outcomes| {
                    let encoded = encoder.encode(&records(outcomes));
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = encoded.certificates;
                    Ok(encoded.writes)
                })
                .await?;
            let written =
                std::mem::take(&mut *written.lock().unwrap_or_else(PoisonError::into_inner));
            self.encoder.stored(written);
            Ok(results)
        })
    }

    fn lookup_accounts(&self, ids: Vec<AccountId>) -> BooksCall<'_, Vec<Option<Account>>> {
        Box::pin(async move {
            let ledger = self.handle.ledger().await?;
            Ok(ledger.lookup_accounts(&ids).await?)
        })
    }

    fn lookup_transfers(&self, ids: Vec<TransferId>) -> BooksCall<'_, Vec<Option<Transfer>>> {
        Box::pin(async move {
            let ledger = self.handle.ledger().await?;
            Ok(ledger.lookup_transfers(&ids).await?)
        })
    }

    fn close(self: Arc<Self>) -> BooksCall<'static, ()> {
        Box::pin(async move {
            let Ok(books) = Arc::try_unwrap(self) else {
                return Ok(());
            };
            let Ok(handle) = Arc::try_unwrap(books.handle) else {
                // Its last holder drops it later, without the final signature: the records
                // since the last one stay unsigned until the next start signs them.
                tracing::warn!(
                    "the PostgreSQL ledger is still held elsewhere; not closing it cleanly"
                );
                return Ok(());
            };
            Ok(handle.close().await?)
        })
    }
}

impl From<kakehashi_ledger_pg::Error> for EngineError {
    fn from(error: kakehashi_ledger_pg::Error) -> Self {
        match error {
            kakehashi_ledger_pg::Error::Ledger(error) => Self::Ledger(error),
            error => Self::Postgres(Box::new(error)),
        }
    }
}
