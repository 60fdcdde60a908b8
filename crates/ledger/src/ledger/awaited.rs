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
//! full; an awaited caller must not block its executor's thread, so when it finds the queue
//! full it hands its request to a thread of its own (`ledger-queue-wait`) that blocks in
//! `send` instead, and awaits its answer as usual. That costs a thread per caller waiting for
//! room, as the blocking calls did, but only while the queue is full (1,024 batches waiting,
//! by default: overload). Why a thread rather than a list of wakers the sequencer wakes as it
//! takes requests: the channel's own blocking `send` already gets the wake-up right under
//! every interleaving, while a waker list beside the channel would need its own proof against
//! lost wake-ups, for a path taken only under overload. If the writer has ended, the thread's
//! `send` fails and drops the request with its reply: the caller hears that the ledger
//! stopped. The thread holds a sender of the queue, so closing the ledger waits for it, and it
//! ends as soon as the writer, which drains the queue until every sender is gone, takes its
//! request.

use std::sync::mpsc::SyncSender;

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

#[cfg(test)]
pub(crate) mod tests;
