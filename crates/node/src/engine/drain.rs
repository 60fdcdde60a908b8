//! Admission of new payments, and the drain of those in flight when the node stops (issue
//! 11, defect 11).
//!
//! Every submission is admitted before it starts and holds its [`Admitted`] until it ends. A
//! graceful stop first stops admitting (new submissions are answered UNAVAILABLE, while relay
//! calls, status queries and quotes are still served), then waits a bounded time for the
//! submissions in flight to end ([`Engine::drained`]). What is still in flight after that is
//! abandoned ([`Engine::abandon_in_flight`]): its task stops where it is, exactly as a crash
//! there would stop it, and recovery ends the payment after the restart.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use super::Engine;

/// Where the node's admission of payments stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Payments are admitted.
    Open,
    /// The node is stopping: no new payment is admitted; those in flight go on.
    Draining,
    /// The drain ran out of time: the payments still in flight are to stop where they are.
    Abandoned,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    phase: Phase,
    in_flight: usize,
}

/// The admission state of one engine.
#[derive(Debug)]
pub(super) struct Admissions {
    state: Arc<watch::Sender<State>>,
}

impl Default for Admissions {
    fn default() -> Self {
        let (state, _) = watch::channel(State {
            phase: Phase::Open,
            in_flight: 0,
        });
        Self {
            state: Arc::new(state),
        }
    }
}

/// One admitted submission, in flight until dropped.
#[derive(Debug)]
pub struct Admitted {
    state: Arc<watch::Sender<State>>,
}

impl Admitted {
    /// Completes when the node gives up waiting for the payments in flight; the submission
    /// should then stop where it is (its caller is told the outcome is not known yet).
    pub async fn abandoned(&self) {
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|s| s.phase == Phase::Abandoned).await;
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.state
            .send_modify(|s| s.in_flight = s.in_flight.saturating_sub(1));
    }
}

impl Engine {
    /// Admits one new submission, or `None` when the node is stopping.
    pub fn admit(&self) -> Option<Admitted> {
        let mut admitted = false;
        self.admissions.state.send_if_modified(|s| {
            admitted = s.phase == Phase::Open;
            if admitted {
                s.in_flight += 1;
            }
            admitted
        });
        admitted.then(|| Admitted {
            state: Arc::clone(&self.admissions.state),
        })
    }

    /// Stops admitting new submissions (the first step of a graceful stop).
    pub fn stop_admitting(&self) {
        self.admissions.state.send_if_modified(|s| {
            let open = s.phase == Phase::Open;
            if open {
                s.phase = Phase::Draining;
            }
            open
        });
    }

    /// Whether the node has stopped admitting submissions.
    pub fn is_stopping(&self) -> bool {
        self.admissions.state.borrow().phase != Phase::Open
    }

    /// Completes once the node has stopped admitting submissions.
    pub async fn stopping(&self) {
        self.stopping_signal().await;
    }

    /// [`Engine::stopping`] as a future that does not borrow the engine (nor keep it alive:
    /// the node's listeners hold it until they stop, and the ledger closes only after).
    pub fn stopping_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut state = self.admissions.state.subscribe();
        async move {
            let _ = state.wait_for(|s| s.phase != Phase::Open).await;
        }
    }

    /// Submissions in flight.
    pub fn in_flight(&self) -> usize {
        self.admissions.state.borrow().in_flight
    }

    /// Completes when no submission is in flight (after [`Engine::stop_admitting`], once the
    /// last one ended).
    pub async fn drained(&self) {
        let mut state = self.admissions.state.subscribe();
        let _ = state.wait_for(|s| s.in_flight == 0).await;
    }

    /// Gives up on the submissions still in flight: each stops where it is (see
    /// [`Admitted::abandoned`]). Stops admitting too.
    pub fn abandon_in_flight(&self) {
        self.admissions
            .state
            .send_modify(|s| s.phase = Phase::Abandoned);
    }
}
