//! The committed state a group needs, read inside the group's transaction before the state
//! machine runs (the state machine is synchronous and pure; the database is not).
//!
//! The writer prefetches what the group's events name (accounts, transfers, pending ids, then
//! the accounts of the pending transfers found, and the expiry index when the group expires),
//! then runs the group in *probe* mode: a read of anything not prefetched is answered "absent"
//! and noted, and the noted ids are fetched and the group run again from the start, until a
//! run misses nothing. The real run is *strict*: a read of anything not prefetched is an
//! error, never a guess. (A probe runs without the callers' records closures, which are
//! called once, in the real run; a refused request's rollback only makes later events read
//! ids they name themselves, which the first prefetch holds.)

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use kakehashi_ledger::engine::Store;
use kakehashi_ledger::{Account, AccountId, PendingStatus, Timestamp, Transfer, TransferId};

use crate::sql::{Params, Txn};
use crate::{Error, codec};

/// What a run asked for and the prefetch lacked.
#[derive(Debug, Default)]
pub(crate) struct Misses {
    pub(crate) accounts: BTreeSet<u128>,
    pub(crate) transfers: BTreeSet<u128>,
    /// The most expiry entries asked for at once, and up to when.
    pub(crate) expiring: Option<(Timestamp, usize)>,
}

impl Misses {
    pub(crate) fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.transfers.is_empty() && self.expiring.is_none()
    }
}

/// Expiry entries due by `up_to`: the first `limit` asked for (fewer: all of them).
#[derive(Debug)]
struct Expiring {
    up_to: Timestamp,
    limit: usize,
    entries: Vec<(Timestamp, TransferId)>,
}

/// The prefetched state. Transfer ids are fetched together with their pending status and
/// whether they failed, so one miss of a transfer id covers all three.
#[derive(Debug, Default)]
pub(crate) struct Prefetched {
    accounts: HashMap<AccountId, Option<Account>>,
    transfers: HashMap<TransferId, Option<Transfer>>,
    pending: HashMap<TransferId, PendingStatus>,
    failed: BTreeSet<TransferId>,
    /// The expiry entries fetched.
    expiring: Option<Expiring>,
    /// In strict mode a miss is an error.
    pub(crate) strict: bool,
    misses: RefCell<Misses>,
}

impl Prefetched {
    pub(crate) fn take_misses(&self) -> Misses {
        std::mem::take(&mut *self.misses.borrow_mut())
    }

    fn missed(&self, what: &str) -> Result<(), kakehashi_ledger::Error> {
        if self.strict {
            // Never guess: the group is abandoned (the writer stops, nothing written).
            return Err(kakehashi_ledger::Error::InvariantViolated {
                detail: format!("the state machine read {what}, which the writer did not prefetch"),
            });
        }
        Ok(())
    }

    /// Accounts not fetched yet among `ids`.
    pub(crate) fn accounts_missing(&self, ids: impl IntoIterator<Item = u128>) -> Vec<u128> {
        let mut missing: BTreeSet<u128> = BTreeSet::new();
        for id in ids {
            if !self.accounts.contains_key(&AccountId(id)) {
                missing.insert(id);
            }
        }
        missing.into_iter().collect()
    }

    /// Transfers not fetched yet among `ids`.
    pub(crate) fn transfers_missing(&self, ids: impl IntoIterator<Item = u128>) -> Vec<u128> {
        let mut missing: BTreeSet<u128> = BTreeSet::new();
        for id in ids {
            if !self.transfers.contains_key(&TransferId(id)) {
                missing.insert(id);
            }
        }
        missing.into_iter().collect()
    }

    /// The accounts of every fetched transfer (a post, void or expiry reads them).
    pub(crate) fn accounts_of_transfers(&self) -> Vec<u128> {
        let ids = self
            .transfers
            .values()
            .flatten()
            .flat_map(|transfer| [transfer.debit_account_id.0, transfer.credit_account_id.0]);
        self.accounts_missing(ids)
    }

    /// The ids of the fetched expiry entries.
    pub(crate) fn expiring_ids(&self) -> Vec<u128> {
        self.expiring
            .as_ref()
            .map(|expiring| expiring.entries.iter().map(|(_, id)| id.0).collect())
            .unwrap_or_default()
    }

    /// Reads `accounts` from the accounts table and `transfers` from the transfers, pending
    /// and failed tables (absent ones noted as absent), in one round trip.
    pub(crate) async fn fetch(
        &mut self,
        client: &Txn<'_>,
        accounts: &[u128],
        transfers: &[u128],
    ) -> Result<(), Error> {
        if accounts.is_empty() && transfers.is_empty() {
            return Ok(());
        }
        let account_keys: Vec<Vec<u8>> = accounts.iter().map(|id| codec::id(*id)).collect();
        let transfer_keys: Vec<Vec<u8>> = transfers.iter().map(|id| codec::id(*id)).collect();
        let account_params: Params<'_> = &[&account_keys];
        let transfer_params: Params<'_> = &[&transfer_keys];
        let (account_rows, transfer_rows, pending, failed) = tokio::try_join!(
            when(
                !accounts.is_empty(),
                client.query(
                    "SELECT account FROM accounts WHERE id = ANY($1)",
                    account_params
                )
            ),
            when(
                !transfers.is_empty(),
                client.query(
                    "SELECT transfer FROM transfers WHERE id = ANY($1)",
                    transfer_params
                )
            ),
            when(
                !transfers.is_empty(),
                client.query(
                    "SELECT id, status FROM pending WHERE id = ANY($1)",
                    transfer_params
                )
            ),
            when(
                !transfers.is_empty(),
                client.query("SELECT id FROM failed WHERE id = ANY($1)", transfer_params)
            ),
        )
        .map_err(Error::database("reading the group's state"))?;
        for id in accounts {
            self.accounts.insert(AccountId(*id), None);
        }
        for id in transfers {
            self.transfers.insert(TransferId(*id), None);
        }
        for row in account_rows {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading accounts"))?;
            let account = codec::account(bytes)?;
            self.accounts.insert(account.id, Some(account));
        }
        for row in transfer_rows {
            let bytes: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading transfers"))?;
            let transfer = codec::transfer(bytes)?;
            self.transfers.insert(transfer.id, Some(transfer));
        }
        for row in pending {
            let id: &[u8] = row.try_get(0).map_err(Error::database("reading pending"))?;
            let status: i16 = row.try_get(1).map_err(Error::database("reading pending"))?;
            self.pending.insert(
                TransferId(codec::decode_id(id)?),
                codec::pending_status(status)?,
            );
        }
        for row in failed {
            let id: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading failed ids"))?;
            self.failed.insert(TransferId(codec::decode_id(id)?));
        }
        Ok(())
    }

    /// Reads the first `limit` expiry entries due by `up_to`.
    pub(crate) async fn fetch_expiring(
        &mut self,
        client: &Txn<'_>,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<(), Error> {
        let rows = client
            .query(
                "SELECT expires_at, id FROM expiry WHERE expires_at <= $1 \
                 ORDER BY expires_at, id LIMIT $2",
                &[
                    &codec::timestamp(up_to),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(Error::database("reading the expiry index"))?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let at: &[u8] = row
                .try_get(0)
                .map_err(Error::database("reading the expiry index"))?;
            let id: &[u8] = row
                .try_get(1)
                .map_err(Error::database("reading the expiry index"))?;
            entries.push((
                codec::decode_timestamp(at)?,
                TransferId(codec::decode_id(id)?),
            ));
        }
        self.expiring = Some(Expiring {
            up_to,
            limit,
            entries,
        });
        Ok(())
    }
}

/// Runs `query` only when `condition` holds (no rows otherwise).
async fn when(
    condition: bool,
    query: impl Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>>,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    if condition {
        query.await
    } else {
        Ok(Vec::new())
    }
}

impl Store for Prefetched {
    fn account(&self, id: AccountId) -> Result<Option<Account>, kakehashi_ledger::Error> {
        match self.accounts.get(&id) {
            Some(account) => Ok(*account),
            None => {
                self.missed(&format!("account {}", id.0))?;
                self.misses.borrow_mut().accounts.insert(id.0);
                Ok(None)
            }
        }
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, kakehashi_ledger::Error> {
        match self.transfers.get(&id) {
            Some(transfer) => Ok(*transfer),
            None => {
                self.missed(&format!("transfer {}", id.0))?;
                self.misses.borrow_mut().transfers.insert(id.0);
                Ok(None)
            }
        }
    }

    fn pending_status(
        &self,
        id: TransferId,
    ) -> Result<Option<PendingStatus>, kakehashi_ledger::Error> {
        if !self.transfers.contains_key(&id) {
            self.missed(&format!("the pending status of {}", id.0))?;
            self.misses.borrow_mut().transfers.insert(id.0);
            return Ok(None);
        }
        Ok(self.pending.get(&id).copied())
    }

    fn transfer_failed(&self, id: TransferId) -> Result<bool, kakehashi_ledger::Error> {
        if !self.transfers.contains_key(&id) {
            self.missed(&format!("whether {} failed", id.0))?;
            self.misses.borrow_mut().transfers.insert(id.0);
            return Ok(false);
        }
        Ok(self.failed.contains(&id))
    }

    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, kakehashi_ledger::Error> {
        if let Some(fetched) = &self.expiring
            && up_to <= fetched.up_to
        {
            let entries = &fetched.entries;
            let due: Vec<(Timestamp, TransferId)> = entries
                .iter()
                .take_while(|(at, _)| *at <= up_to)
                .take(limit)
                .copied()
                .collect();
            // Covered when the fetch returned everything due by its time, holds as many as
            // asked, or reaches past `up_to` (it is a prefix in expiry order).
            if entries.len() < fetched.limit
                || due.len() >= limit
                || entries.last().is_some_and(|(at, _)| *at > up_to)
            {
                return Ok(due);
            }
        }
        self.missed("the expiry index")?;
        let mut misses = self.misses.borrow_mut();
        let (at, most) = misses.expiring.unwrap_or((up_to, limit));
        misses.expiring = Some((at.max(up_to), most.max(limit)));
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_expiring(limit: usize, entries: Vec<(Timestamp, TransferId)>) -> Prefetched {
        Prefetched {
            expiring: Some(Expiring {
                up_to: Timestamp(100),
                limit,
                entries,
            }),
            ..Prefetched::default()
        }
    }

    #[test]
    fn a_probe_notes_what_it_lacked_and_answers_absent() {
        let store = Prefetched::default();
        assert_eq!(store.account(AccountId(7)).expect("probe"), None);
        assert_eq!(store.transfer(TransferId(8)).expect("probe"), None);
        assert!(!store.transfer_failed(TransferId(9)).expect("probe"));
        assert_eq!(store.pending_status(TransferId(10)).expect("probe"), None);
        let misses = store.take_misses();
        assert_eq!(misses.accounts.into_iter().collect::<Vec<_>>(), [7]);
        assert_eq!(misses.transfers.into_iter().collect::<Vec<_>>(), [8, 9, 10]);
        assert!(store.take_misses().is_empty(), "taken");
    }

    #[test]
    fn a_strict_run_never_guesses() {
        let store = Prefetched {
            strict: true,
            ..Prefetched::default()
        };
        assert!(store.account(AccountId(7)).is_err());
        assert!(store.transfer(TransferId(8)).is_err());
        assert!(store.transfer_failed(TransferId(8)).is_err());
        assert!(store.pending_status(TransferId(8)).is_err());
        assert!(store.expiring(Timestamp(1), 1).is_err());
    }

    #[test]
    fn fetched_ids_answer_including_their_absence() {
        let mut store = Prefetched {
            strict: true,
            ..Prefetched::default()
        };
        store.accounts.insert(AccountId(1), None);
        store.transfers.insert(TransferId(2), None);
        store.failed.insert(TransferId(2));
        assert_eq!(store.account(AccountId(1)).expect("fetched"), None);
        assert_eq!(store.transfer(TransferId(2)).expect("fetched"), None);
        assert!(store.transfer_failed(TransferId(2)).expect("fetched"));
        assert_eq!(store.pending_status(TransferId(2)).expect("fetched"), None);
    }

    #[test]
    fn the_expiry_index_answers_only_what_the_fetch_covers() {
        let entries: Vec<(Timestamp, TransferId)> = (1..=4)
            .map(|n| (Timestamp(n * 10), TransferId(u128::from(n))))
            .collect();
        // Fewer than asked: the fetch holds everything due up to 100.
        let complete = with_expiring(10, entries.clone());
        assert_eq!(
            complete.expiring(Timestamp(25), 10).expect("covered").len(),
            2
        );
        assert_eq!(
            complete.expiring(Timestamp(100), 3).expect("covered").len(),
            3
        );
        // Beyond the time fetched: a miss.
        let strict = Prefetched {
            strict: true,
            ..with_expiring(10, entries.clone())
        };
        assert!(strict.expiring(Timestamp(101), 1).is_err());
        // As many as fetched, more due maybe: only a request for at most that many is covered.
        let full = with_expiring(4, entries);
        assert_eq!(full.expiring(Timestamp(100), 4).expect("covered").len(), 4);
        assert!(full.expiring(Timestamp(100), 5).expect("probe").is_empty());
        assert_eq!(full.take_misses().expiring, Some((Timestamp(100), 5)));
        // A full fetch that reaches past the time asked holds everything due by then.
        assert_eq!(full.expiring(Timestamp(25), 5).expect("covered").len(), 2);
        assert!(full.take_misses().is_empty());
    }
}
