//! The reading side of the two bidirectional streams, `SubmitPayments` and `Prepares`: the next
//! inbound message, or the stream's end with the status that says why. Both end the same way
//! (a stop, their lifetime, idleness, a broken input), and both answer what they read before
//! an ending that follows a stop, the lifetime or a broken input.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::StreamLimits;

/// One stream's input, its bounds and the places of the items in progress.
pub(super) struct Inbound<T> {
    incoming: Streaming<T>,
    idle_max: Duration,
    lifetime: Duration,
    /// One place per item in progress: an item takes its places from here and frees them once
    /// answered, so all of them free means nothing read is unanswered.
    permits: Arc<Semaphore>,
    places: usize,
    too_old: Pin<Box<Sleep>>,
    idle: Pin<Box<Sleep>>,
}

impl<T> Inbound<T> {
    /// `incoming` under `limits`, with `places` items in progress at most; its lifetime and
    /// idle clocks start now.
    pub(super) fn new(incoming: Streaming<T>, limits: StreamLimits, places: usize) -> Self {
        Self {
            incoming,
            idle_max: limits.idle,
            lifetime: limits.lifetime,
            permits: Arc::new(Semaphore::new(places)),
            places,
            too_old: Box::pin(tokio::time::sleep(limits.lifetime)),
            idle: Box::pin(tokio::time::sleep(limits.idle)),
        }
    }

    /// The places of the items in progress, for the loop to take one item's from.
    pub(super) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Waits until every item read so far is answered, then ends the response stream with
    /// `status`.
    pub(super) async fn end<R>(&self, tx: &mpsc::Sender<Result<R, Status>>, status: Status) {
        // The semaphore is never closed, and every place is freed once its item is answered.
        let _ = self.permits.acquire_many(self.places_u32()).await;
        let _ = tx.send(Err(status)).await;
    }

    /// The next inbound item, or `None` once the stream has ended: the client closed its input
    /// (nothing is sent: the response stream ends when the last answer is sent), `stop`
    /// completed (ended with `stop_status()`), the lifetime passed, the stream stayed idle with
    /// nothing in progress, or the input broke (a garbage frame, a message over the size
    /// limit, a reset: ended with its status). Except when idle, what was read is answered
    /// before the ending status.
    pub(super) async fn next<R>(
        &mut self,
        tx: &mpsc::Sender<Result<R, Status>>,
        stop: impl Future<Output = ()>,
        stop_status: fn() -> Status,
    ) -> Option<T> {
        tokio::pin!(stop);
        let item = loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    self.end(tx, stop_status()).await;
                    return None;
                }
                () = self.too_old.as_mut() => {
                    self.end(tx, stream_too_old(self.lifetime)).await;
                    return None;
                }
                () = self.idle.as_mut() => {
                    if self.permits.available_permits() < self.places {
                        // An item is still in progress: not idle yet.
                        self.idle.as_mut().reset(Instant::now() + self.idle_max);
                        continue;
                    }
                    let _ = tx.send(Err(stream_idle(self.idle_max))).await;
                    return None;
                }
                item = self.incoming.next() => break item,
            }
        };
        self.idle.as_mut().reset(Instant::now() + self.idle_max);
        match item? {
            Ok(item) => Some(item),
            Err(status) => {
                self.end(tx, status).await;
                None
            }
        }
    }

    fn places_u32(&self) -> u32 {
        // Both streams' bounds are small constants (64 and 256), far below `u32::MAX`.
        u32::try_from(self.places).unwrap_or(u32::MAX)
    }
}

/// The end of a stream that stayed idle for `idle`.
fn stream_idle(idle: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the stream was idle for {} s (no instruction arrived and none was in progress); open \
         a new stream to submit more ([limits] stream_idle_timeout_secs)",
        idle.as_secs()
    ))
}

/// The end of a stream that reached its lifetime.
fn stream_too_old(lifetime: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the stream reached its maximum lifetime of {} s; every instruction it accepted was \
         reported, later ones were not read: submit them on a new stream \
         ([limits] max_stream_lifetime_secs)",
        lifetime.as_secs()
    ))
}
