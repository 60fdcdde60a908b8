//! Recovery of the payments this node sent that are still in doubt: each is resolved by
//! asking its receiver (which fences when it has no decision), or, when it was never
//! forwarded, by releasing what was reserved.
//!
//! A pass is bounded, and neither one peer nor one payment holds up the others (issue 11,
//! defect 6):
//!
//! - it takes at most [`RecoveryLimits::payments_per_pass`] payments, oldest first (by the time
//!   their record was created); the rest wait for the next pass;
//! - each peer has its own queue, worked by up to [`RecoveryLimits::queries_per_peer`] status
//!   queries at once, so a peer that does not answer delays only the payments sent to it;
//! - a peer that does not answer (no connection, an error, no answer in time) is not asked again
//!   until its backoff ends: [`backoff_delay`] doubles with each failure in a row up to
//!   [`RecoveryLimits::backoff_max`], with jitter so that nodes restarted together do not ask
//!   in step. The time is read from the engine's [`super::Clock`] and the jitter derives from
//!   the UETR and the attempt, so a simulator's seeded run repeats exactly;
//! - a payment whose recovery fails (store, ledger) is logged with its UETR and counted, and
//!   the pass goes on;
//! - the pass ends at its next wait once `stop` turns true: waiting for a UETR's lock or for a
//!   peer's answer is abandoned. A local write already started (the record, a post or void) is
//!   let finish: it is short, and whatever state it leaves is one a crash there would leave.
//!
//! A `Reserving` record was never forwarded (Prepare leaves only once `Forwarded` is durable),
//! so no peer is asked: under the UETR's lock the ledger says whether the reservation exists,
//! and the answer cannot change meanwhile (only the submission holding that lock creates it).
//! The payment is recorded rejected with reservation id 0 when it does not exist, and its
//! reservation voided when it does, so that the record always agrees with the ledger, which
//! the pair audit checks strictly (issue 11, defect 8).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use kakehashi_ledger::TransferId;
use kakehashi_proto::pb::{RelayDecision, RelayStatusRequest};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::reason::ReasonCode;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::sender::decision_name;
use super::{Engine, EngineError, PeerError, PeerLink};
use crate::store::{OutboundRecord, OutboundState};

/// Default of [`RecoveryLimits::backoff_initial`]: the recovery loop's own interval, so a peer
/// that failed once is asked again at the next pass but one.
pub const RECOVERY_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// Default of [`RecoveryLimits::backoff_max`]: a peer that has been down for long is asked
/// every 15 to 30 s, so payments are resolved within half a minute of it coming back, while a
/// dead peer costs a few calls a minute.
pub const RECOVERY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How recovery paces itself; `[limits]` sets the first two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryLimits {
    /// Most payments one pass works on (at least 1).
    pub payments_per_pass: usize,
    /// Most status queries in flight to one peer at once (at least 1).
    pub queries_per_peer: usize,
    /// Backoff after a peer's first failure in a row.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

/// What one recovery pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryPass {
    /// Payments the pass brought to their final state (or found already final).
    pub resolved: usize,
    /// Payments asked about that are still in doubt: the peer did not answer, or answered
    /// without a decision.
    pub unanswered: usize,
    /// Payments whose recovery failed for an operational reason (each logged with its UETR).
    pub failed: usize,
    /// Payments left for a later pass: beyond the pass's bound, towards a peer in backoff or
    /// no longer configured, or not reached before a stop.
    pub deferred: usize,
    /// Whether the bound left payments for the next pass.
    pub more: bool,
    /// Whether the pass ended early because the node is stopping.
    pub stopped: bool,
    /// Payments in doubt after the pass (what the in-doubt gauge now shows).
    pub in_doubt: usize,
}

/// How the recovery of one payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Resolved,
    Unanswered,
    Failed,
    Deferred,
    Stopped,
}

impl RecoveryPass {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Resolved => self.resolved += 1,
            Outcome::Unanswered => self.unanswered += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Deferred => self.deferred += 1,
            Outcome::Stopped => {
                self.deferred += 1;
                self.stopped = true;
            }
        }
    }
}

/// The peers that did not answer, and when each may be asked again.
#[derive(Debug, Default)]
pub(super) struct Backoffs {
    peers: Mutex<HashMap<String, PeerBackoff>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PeerBackoff {
    /// Failures in a row (each backoff counts one, however many queries failed during it).
    failures: u32,
    /// Ledger time (Unix nanoseconds) before which the peer is not asked.
    retry_at: u64,
}

impl Backoffs {
    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerBackoff>> {
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `peer` may be asked at `now`.
    fn ready(&self, peer: &str, now: u64) -> bool {
        self.peers().get(peer).is_none_or(|b| now >= b.retry_at)
    }

    /// `peer` answered: its backoff ends.
    fn answered(&self, peer: &str) {
        self.peers().remove(peer);
    }

    /// `peer` did not answer the query about `uetr` at `now`; returns how long it is left
    /// alone. Queries in flight together fail together: only the first failure after a
    /// backoff ended counts, so the backoff grows by one step per round, not per query.
    fn failed(&self, peer: &str, uetr: &Uetr, now: u64, limits: &RecoveryLimits) -> Duration {
        let mut peers = self.peers();
        let entry = peers.entry(peer.to_owned()).or_insert(PeerBackoff {
            failures: 0,
            retry_at: 0,
        });
        if now < entry.retry_at {
            return Duration::from_nanos(entry.retry_at - now);
        }
        entry.failures = entry.failures.saturating_add(1);
        let delay = backoff_delay(limits, entry.failures, uetr);
        entry.retry_at = now.saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
        delay
    }

    /// The backoff of `peer`: failures in a row and the time it may be asked again.
    #[cfg(test)]
    fn of(&self, peer: &str) -> Option<(u32, u64)> {
        self.peers().get(peer).map(|b| (b.failures, b.retry_at))
    }
}

/// The backoff after a peer's `failures`-th failure in a row, the query about `uetr` being
/// the one that failed: a ceiling of `backoff_initial × 2^(failures − 1)`, capped at
/// `backoff_max`, and a delay between half the ceiling and the ceiling. The jitter derives
/// from the UETR and the attempt (SHA-256), not from a random source, so the same run gives
/// the same delays. The lower bound of each step is the ceiling of the step before, so the
/// delay never shrinks while it grows.
pub fn backoff_delay(limits: &RecoveryLimits, failures: u32, uetr: &Uetr) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let ceiling = limits
        .backoff_initial
        .checked_mul(1 << doublings)
        .unwrap_or(limits.backoff_max)
        .min(limits.backoff_max);
    let half = ceiling / 2;
    let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    let digest = Sha256::new()
        .chain_update(b"kakehashi recovery backoff")
        .chain_update(uetr.0)
        .chain_update(failures.to_be_bytes())
        .finalize();
    let mut word = [0; 8];
    word.copy_from_slice(&digest[..8]);
    let jitter = u64::from_be_bytes(word) % span.saturating_add(1);
    half + Duration::from_nanos(jitter)
}

/// Completes when `stop` turns true, or at once if its sender is gone (nobody can stop the
/// pass any more, which only happens when the node is being torn down).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs `futures` concurrently on the current task until all complete. The pass's workers run
/// this way rather than as spawned tasks: they borrow the engine, and one task keeps a
/// simulator's schedule its own.
async fn join_all(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>>) {
    std::future::poll_fn(|cx| {
        futures.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The payments of one peer chosen for a pass, taken in order by the peer's workers.
struct Lane {
    /// `None` when the peer is no longer configured (only unforwarded payments are taken).
    peer: Option<PeerLink>,
    queue: Mutex<VecDeque<Uetr>>,
}

impl Lane {
    fn next(&self) -> Option<Uetr> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front()
    }
}

impl Engine {
    /// One recovery pass over the payments in doubt (see the module documentation). Fails
    /// only when the payments in doubt cannot be listed; the failure of one payment is logged
    /// and counted in the pass. Ends early, at its next wait, once `stop` turns true.
    pub async fn recover(&self, stop: &watch::Receiver<bool>) -> Result<RecoveryPass, EngineError> {
        let mut pass = RecoveryPass::default();
        let mut unresolved = self.parts.store.unresolved_outbound().await?;
        unresolved.sort_by_key(|(uetr, record)| (record.created_at, uetr.0));
        let limits = &self.parts.recovery;
        let now = self.clock().now().0.unix_nanos();
        let mut lanes: BTreeMap<&str, Lane> = BTreeMap::new();
        let mut taken = 0;
        for (uetr, record) in &unresolved {
            let peer = self.parts.peers.get(&record.peer);
            // Unforwarded payments are settled locally, whatever the state of their peer.
            let local = record.state == OutboundState::Reserving;
            if !local {
                let Some(peer) = peer else {
                    tracing::error!(%uetr, peer = %record.peer,
                        "in doubt towards a peer no longer configured");
                    pass.count(Outcome::Deferred);
                    continue;
                };
                if !self.backoffs.ready(&peer.jurisdiction, now) {
                    pass.count(Outcome::Deferred);
                    continue;
                }
            }
            if taken >= limits.payments_per_pass.max(1) {
                pass.count(Outcome::Deferred);
                pass.more = true;
                continue;
            }
            taken += 1;
            lanes
                .entry(record.peer.as_str())
                .or_insert_with(|| Lane {
                    peer: peer.cloned(),
                    queue: Mutex::new(VecDeque::new()),
                })
                .queue
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push_back(*uetr);
        }
        let tally = Mutex::new(pass);
        let mut workers: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
        for lane in lanes.values() {
            let queued = lane
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .len();
            for _ in 0..queued.min(limits.queries_per_peer.max(1)) {
                workers.push(Box::pin(self.work_lane(lane, &tally, stop.clone())));
            }
        }
        join_all(workers).await;
        let mut pass = tally
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pass.in_doubt = self.parts.store.unresolved_count().await;
        self.parts.metrics.set_in_doubt(pass.in_doubt as u64);
        Ok(pass)
    }

    /// One worker of a peer's lane: takes its payments in order until the lane is empty or
    /// the node stops; what is left in the lane at a stop is counted as deferred.
    async fn work_lane(
        &self,
        lane: &Lane,
        tally: &Mutex<RecoveryPass>,
        mut stop: watch::Receiver<bool>,
    ) {
        let count = |outcome| {
            tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .count(outcome);
        };
        while let Some(uetr) = lane.next() {
            if *stop.borrow() {
                count(Outcome::Stopped);
                continue;
            }
            count(self.recover_one(uetr, lane.peer.as_ref(), &mut stop).await);
        }
    }

    /// Recovers one payment under its UETR's lock.
    async fn recover_one(
        &self,
        uetr: Uetr,
        peer: Option<&PeerLink>,
        stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let _guard = tokio::select! {
            biased;
            () = stopped(stop) => return Outcome::Stopped,
            guard = self.locks.lock(uetr) => guard,
        };
        // Re-read under the lock: a submission may have finished it meanwhile.
        let record = match self.parts.store.outbound(&uetr).await {
            Ok(Some(record)) if !record.state.is_final() => record,
            Ok(_) => return Outcome::Resolved,
            Err(error) => {
                tracing::error!(%uetr, %error, "recovery could not read the payment; trying again later");
                return Outcome::Failed;
            }
        };
        if record.state == OutboundState::Reserving {
            return match self.release_unforwarded(uetr, record).await {
                Ok(()) => Outcome::Resolved,
                Err(error) => {
                    tracing::error!(%uetr, %error, "recovery could not release an unforwarded payment; trying again later");
                    Outcome::Failed
                }
            };
        }
        let Some(peer) = peer else {
            // Forwarded payments towards an unknown peer are not taken into a pass.
            return Outcome::Deferred;
        };
        let now = self.clock().now().0.unix_nanos();
        if !self.backoffs.ready(&peer.jurisdiction, now) {
            // Another query to this peer failed while this one waited for its turn.
            return Outcome::Deferred;
        }
        let request = RelayStatusRequest {
            uetr: uetr.to_string(),
            instruction_sha256: hex::decode(&record.instruction_sha256).unwrap_or_default(),
        };
        let answer = tokio::select! {
            biased;
            () = stopped(stop) => return Outcome::Stopped,
            answer = peer.transport.status(request) => answer,
        };
        let (label, failure) = match answer {
            Ok(answer) => {
                self.backoffs.answered(&peer.jurisdiction);
                return self.apply_answer(uetr, record, peer, answer).await;
            }
            Err(PeerError::Failed(status)) => ("ERROR", status),
            // A refusal of a status query (the peer does not take this node for the payment's
            // sender) answers nothing about the payment: still in doubt, and retried later.
            Err(PeerError::Refused(refusal)) => ("REFUSED", refusal.to_string()),
            Err(PeerError::Timeout(waited)) => (
                "TIMEOUT",
                format!("no answer within {} ms", waited.as_millis()),
            ),
        };
        self.parts.metrics.relay_request("GetStatus", label);
        let now = self.clock().now().0.unix_nanos();
        let backoff = self
            .backoffs
            .failed(&peer.jurisdiction, &uetr, now, &self.parts.recovery);
        tracing::warn!(%uetr, peer = %peer.jurisdiction, error = %failure,
            retry_in_ms = backoff.as_millis() as u64,
            "status query failed; still in doubt");
        Outcome::Unanswered
    }

    /// Applies a peer's answer to a status query.
    async fn apply_answer(
        &self,
        uetr: Uetr,
        record: OutboundRecord,
        peer: &PeerLink,
        answer: RelayDecision,
    ) -> Outcome {
        self.parts
            .metrics
            .relay_request("GetStatus", decision_name(answer.decision()));
        match self.finish(uetr, record, peer, answer).await {
            Ok(record) if record.state.is_final() => {
                tracing::info!(%uetr, state = ?record.state, "in-doubt payment resolved");
                Outcome::Resolved
            }
            Ok(_) => Outcome::Unanswered,
            Err(error) => {
                tracing::error!(%uetr, %error,
                    "recovery could not apply the receiver's decision; trying again later");
                Outcome::Failed
            }
        }
    }

    /// Ends a payment that was never forwarded: voids its reservation if the ledger has one,
    /// and records it rejected (AB05) naming the reservation only when there is one. Called
    /// with the UETR's lock held, so no submission can create the reservation meanwhile.
    async fn release_unforwarded(
        &self,
        uetr: Uetr,
        mut record: OutboundRecord,
    ) -> Result<(), EngineError> {
        let reserved = record.reservation_id != 0 && {
            let id = TransferId(record.reservation_id);
            self.books()
                .lookup_transfers(vec![id])
                .await?
                .into_iter()
                .next()
                .flatten()
                .is_some()
        };
        if reserved {
            self.resolve_reservation(uetr, &record, false).await?;
        } else {
            record.reservation_id = 0;
        }
        record.state = OutboundState::Rejected;
        record.reason_code = Some(ReasonCode::Ab05.as_str().to_owned());
        record.reason_detail = Some(format!(
            "{} stopped before forwarding the payment",
            self.jurisdiction()
        ));
        record.decided_by = Some(self.jurisdiction().to_owned());
        record.updated_at = self.clock().unix_secs();
        self.put_outbound(uetr, &record).await?;
        tracing::info!(%uetr, reserved, "unforwarded payment released");
        Ok(())
    }

    /// The backoff of `peer` (failures in a row, time it may be asked again), for tests.
    #[cfg(test)]
    pub(crate) fn peer_backoff(&self, peer: &str) -> Option<(u32, u64)> {
        self.backoffs.of(peer)
    }
}

#[cfg(test)]
mod tests;
