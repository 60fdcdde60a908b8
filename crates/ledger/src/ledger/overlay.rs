//! The sequencer's view of the state while earlier groups are still being committed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};

use super::trees::Trees;
use crate::Error;
use crate::filter::IdFilter;
use crate::idhash::IdMap;
use crate::model::{Account, AccountId, PendingStatus, Timestamp, Transfer, TransferId};
use crate::state_machine::{Changes, Store};

/// A group the sequencer has applied to its view but the committer has not yet written to
/// sled and published: its overlay stands in front of sled and the accounts map.
pub(super) struct InFlight {
    /// The group's number in the writer's sequence of groups that write (see
    /// `Sequencer::groups`): a group that only records failed ids makes no journal record, so
    /// journal sequence numbers cannot tell when it is published.
    pub(super) group: u64,
    pub(super) changes: Arc<Changes>,
}

/// The sequencer's view of the state: the overlays of the groups in flight (newest first),
/// then the committed state (accounts from memory, the rest from sled).
///
/// sled may hold part or all of an in-flight group while the committer writes it; that never
/// matters, because a group's overlay holds every value the group changed and is consulted
/// before sled, and sled's other values are the ones the group left alone.
pub(super) struct WriterStore<'a> {
    pub(super) trees: &'a Trees,
    pub(super) accounts: &'a RwLock<IdMap<AccountId, Account>>,
    pub(super) in_flight: &'a VecDeque<InFlight>,
    /// Every stored transfer id is in it (see [`crate::filter`]); `None` until that holds.
    pub(super) filter: Option<&'a IdFilter>,
}

impl WriterStore<'_> {
    fn overlays(&self) -> impl Iterator<Item = &Changes> {
        self.in_flight.iter().rev().map(|group| &*group.changes)
    }
}

impl Store for WriterStore<'_> {
    fn account(&self, id: AccountId) -> Result<Option<Account>, Error> {
        if let Some(account) = self
            .overlays()
            .find_map(|changes| changes.accounts.get(&id))
        {
            return Ok(Some(*account));
        }
        // Locked per lookup, not per group: the committer publishes a group's accounts while
        // the next group runs, and that group's overlay is still in front of the map then.
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        Ok(accounts.get(&id).copied())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        // The filter holds the in-flight groups' ids too (they enter it when sequenced).
        if self.filter.is_some_and(|filter| !filter.may_contain(id.0)) {
            return Ok(None);
        }
        if let Some(transfer) = self
            .overlays()
            .find_map(|changes| changes.transfers.get(&id))
        {
            return Ok(Some(*transfer));
        }
        self.trees.transfer(id)
    }

    fn pending_status(&self, id: TransferId) -> Result<Option<PendingStatus>, Error> {
        if let Some(status) = self.overlays().find_map(|changes| changes.pending.get(&id)) {
            return Ok(Some(*status));
        }
        self.trees.pending_status(id)
    }

    fn transfer_failed(&self, id: TransferId) -> Result<bool, Error> {
        // Failed ids enter the filter when sequenced, like stored ones.
        if self.filter.is_some_and(|filter| !filter.may_contain(id.0)) {
            return Ok(false);
        }
        if self.overlays().any(|changes| changes.failed.contains(&id)) {
            return Ok(true);
        }
        self.trees.transfer_failed(id)
    }

    fn expiring(
        &self,
        up_to: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, TransferId)>, Error> {
        // sled's entries, with the in-flight groups' insertions and removals applied oldest
        // first; ask sled for enough that removals cannot leave fewer than `limit`.
        let removals = self
            .in_flight
            .iter()
            .flat_map(|group| group.changes.expiry.values())
            .filter(|present| !**present)
            .count();
        let mut due: BTreeMap<(Timestamp, TransferId), bool> = self
            .trees
            .expiring(up_to, limit.saturating_add(removals))?
            .into_iter()
            .map(|key| (key, true))
            .collect();
        for group in self.in_flight {
            for (key, present) in group
                .changes
                .expiry
                .range(..=(up_to, TransferId(u128::MAX)))
            {
                due.insert(*key, *present);
            }
        }
        Ok(due
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(key, _)| key)
            .take(limit)
            .collect())
    }
}
