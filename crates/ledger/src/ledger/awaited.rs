//! How the writer answers its callers, and how a caller that awaits its answer waits for room
//! in the request queue.
//!
//! A blocking call ([`Ledger::create_transfers`](super::Ledger::create_transfers) and the
//! others) parks its thread on a channel until the committer answers. An awaited call
//! ([`Ledger::create_transfers_async`](super::Ledger::create_transfers_async) and the others)
//! gets its answer through a oneshot whose receiver is a plain [`Future`](std::future::Future):
//! the committer completes it, which wakes whatever task awaits it, so an async caller (the
//! node, on tokio) needs no thread of its own while its group commit is made durable. Nothing
//! here needs an async runtime: the oneshot and the wakers are runtime-agnostic, so the crate
//! stays free of tokio.
//!
//! The answer is the same either way and is sent at the same moment: by the committer once
//! the group is durable, or by whoever refuses the request (fail-stop). Dropping an awaited
//! call after its request was queued withdraws nothing: the writer applies the request as if
//! its caller were still there, and its answer is dropped.
//!
//! The request queue is bounded (back-pressure). A blocking caller blocks in `send` while it is
//! full; an awaited caller must not block its executor's thread, so it registers its waker in
//! [`Room`] and returns `Pending`, and the sequencer wakes every registered caller each time it
//! takes a request from the queue (and the writer once more when it ends, so that a caller
//! waiting for room then hears that the ledger stopped).

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, PoisonError};
use std::task::Waker;

use futures_channel::oneshot;

use super::sequencer::Answer;

/// Where the writer sends a request's answer.
pub(super) enum ReplyTo {
    /// A thread blocked in a blocking call.
    Blocking(SyncSender<Answer>),
    /// A task awaiting an awaited call.
    Awaited(oneshot::Sender<Answer>),
}

impl ReplyTo {
    /// Sends `answer`. A caller that gave up waiting (its future dropped, or its thread gone)
    /// is not an error of the ledger: the answer is dropped.
    pub(super) fn answer(self, answer: Answer) {
        match self {
            Self::Blocking(sender) => {
                let _ = sender.send(answer);
            }
            Self::Awaited(sender) => {
                let _ = sender.send(answer);
            }
        }
    }
}

/// Awaited callers waiting for room in the full request queue.
#[derive(Default)]
pub(super) struct Room {
    /// Set while `wakers` holds any: the sequencer's check per request taken is this one load.
    waiting: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Room {
    /// Registers `waker` to be woken when the sequencer next takes a request (the caller tries
    /// the queue again after registering, so room made in between is not missed).
    pub(super) fn wait(&self, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        // A task polled again before it was woken registers once.
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        self.waiting.store(true, Ordering::SeqCst);
        // Pairs with the fence in `made`: either the caller's next try sees the room the
        // sequencer made, or the sequencer sees this flag (the queue's own atomics promise
        // neither order).
        fence(Ordering::SeqCst);
    }

    /// Wakes every registered caller: the sequencer took a request, so there is room (or the
    /// writer ended, and their next try hears it). A caller woken for nothing, because
    /// another took the room first, registers again; while the queue is full the sequencer
    /// keeps taking requests and waking, so no caller waits on a wake that never comes.
    pub(super) fn made(&self) {
        fence(Ordering::SeqCst);
        if !self.waiting.load(Ordering::SeqCst) {
            return;
        }
        let wakers = {
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
pub(crate) mod tests;
