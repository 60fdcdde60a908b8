//! What the sender asks of a peer node: Prepare a payment, and the status of a payment in
//! doubt. The engine calls its peers only through [`PeerTransport`], so that a deterministic
//! simulator can connect engines with a network of its own (delays, losses, partitions) and
//! drive the same sender and receiver code that production runs. Production uses [`GrpcPeer`]:
//! the Relay service's tonic client over mutual TLS.
//!
//! The trait is used as a trait object (`Arc<dyn PeerTransport>` in [`super::PeerLink`]), so
//! its calls return boxed futures: `async fn` in a trait cannot be called through `dyn`. A
//! generic engine would avoid the box, but then every holder of the engine (the services, the
//! listeners, the running node, the recovery loop) would carry the type parameter; one
//! allocation per relay call is nothing next to the network round trip it stands for.
//!
//! A transport owns the deadline of its calls: whether an answer came in time is a property of
//! the network, which the simulator decides for itself.
//!
//! Batching ([`GrpcPeer::batching`]): Prepares go to the peer on one long-lived `Prepares`
//! stream, opened at the first call and again after it breaks. A call enqueues its request
//! and waits for its own answer; one task per peer sends whatever is waiting as one batch (at
//! most [`RELAY_BATCH_MAX`] requests within the message size limit). It waits
//! ([`RELAY_BATCH_LINGER`]) for more only while instructions are in flight on the stream, so
//! a lone payment goes out at once, and under load the batches fill while the previous ones
//! are decided. Each call is still bounded by the relay timeout ([`PeerError::Timeout`]); a
//! stream that breaks or ends fails the calls it had not answered ([`PeerError::Failed`]):
//! either way the payment stays in doubt until a status query, exactly as on the unary path.
//! A peer that answers the stream UNIMPLEMENTED is called with the unary Prepare (asked again
//! after [`RELAY_UNARY_RECHECK`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::{
    self, PrepareRequest, RelayDecision, RelayStatusRequest, prepare_answer,
};
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio::time::error::Elapsed;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Most instructions in one `Prepares` batch: a sender sends no more, and a receiver refuses
/// a batch with more (the stream ends, nothing of that batch decided).
pub const RELAY_BATCH_MAX: usize = 64;

/// Instructions in flight on one `Prepares` stream, on each side: the sender waits for
/// answers before sending more, and the receiver stops reading the stream at the bound.
pub const RELAY_STREAM_IN_FLIGHT: usize = 256;

/// How long the sender waits for more requests to join a batch that is not full, only while
/// instructions are already in flight on the stream (with none, a batch goes at once).
pub const RELAY_BATCH_LINGER: Duration = Duration::from_millis(1);

/// A sender's stream with nothing in flight for this long is closed (a new one opens with the
/// next payment): well under a receiver's default idle end (`stream_idle_timeout_secs`, 60
/// s), so that the receiver does not end the stream while a batch is on its way.
pub const RELAY_STREAM_IDLE: Duration = Duration::from_secs(20);

/// A sender's stream older than this takes no new batch (a new one opens): well under a
/// receiver's default lifetime (`max_stream_lifetime_secs`, 3600 s), for the same reason.
pub const RELAY_STREAM_LIFETIME: Duration = Duration::from_secs(1_200);

/// After a peer answered the stream UNIMPLEMENTED, how long it is called with the unary
/// Prepare before the stream is tried again (the peer may have been upgraded).
pub const RELAY_UNARY_RECHECK: Duration = Duration::from_secs(300);

/// Bytes of a batch message besides its requests' (field tags, lengths, ids), counted
/// generously per request so a batch stays under the message limit.
const BATCH_OVERHEAD_PER_REQUEST: usize = 24;

/// A call to a peer in flight, answered by the peer's decision.
pub type PeerCall<'a> = Pin<Box<dyn Future<Output = Result<RelayDecision, PeerError>> + Send + 'a>>;

/// Why a call to a peer brought no decision. Either way the sender cannot know whether the
/// peer decided, so the payment stays in doubt until a later status query answers.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PeerError {
    /// The call failed: no connection, a refused handshake, or an error status from the peer.
    #[error("{0}")]
    Failed(String),
    /// The peer refused the request with a reason code (an instruction it could not
    /// authenticate, a malformed request) and, by the protocol, recorded nothing. Still not a
    /// decision: only a status query's answer (which fences) may end the payment, but the
    /// sender can ask at once and give the participant this reason rather than a timeout's.
    #[error("refused: {0}")]
    Refused(Rejection),
    /// No answer within the transport's deadline.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// A tonic answer to a relay call.
type Answer = Result<tonic::Response<RelayDecision>, tonic::Status>;

/// The calls the sender makes to one peer node (the Relay service of `kakehashi.v1`).
pub trait PeerTransport: Send + Sync + fmt::Debug {
    /// Relay.Prepare: asks the peer to decide the payment whose signed instruction `request`
    /// carries (the exact bytes the participant signed).
    fn prepare(&self, request: PrepareRequest) -> PeerCall<'_>;

    /// Relay.GetStatus: asks the peer for its decision on a forwarded payment; a peer without
    /// one fences the UETR and answers UNKNOWN_FENCED.
    fn status(&self, request: RelayStatusRequest) -> PeerCall<'_>;
}

/// The production transport: the Relay client over mutual TLS (see [`crate::tls`]), each call
/// bounded by the relay timeout (`[limits] relay_timeout_ms`), which is also sent to the peer as
/// the call's gRPC deadline.
#[derive(Clone, Debug)]
pub struct GrpcPeer {
    client: RelayClient<Channel>,
    timeout: Duration,
    /// The batching of Prepares on a `Prepares` stream; `None`: every Prepare is unary.
    batcher: Option<Arc<Batcher>>,
}

impl GrpcPeer {
    /// A transport over `client` whose calls wait at most `timeout` for an answer, each
    /// Prepare a unary call.
    pub fn new(client: RelayClient<Channel>, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            batcher: None,
        }
    }

    /// The same, sending Prepares in batches on a `Prepares` stream (see the module
    /// documentation), each batch's message at most `message_bytes_max` bytes (the peer's
    /// message limit: `[limits] max_message_bytes`, the same on both nodes of a corridor).
    pub fn batching(
        client: RelayClient<Channel>,
        timeout: Duration,
        message_bytes_max: usize,
    ) -> Self {
        Self {
            batcher: Some(Arc::new(Batcher {
                queue: OnceLock::new(),
                unary_since: Mutex::new(None),
                batch_bytes_max: message_bytes_max.saturating_sub(64).max(1),
            })),
            ..Self::new(client, timeout)
        }
    }

    /// The unary Prepare, answered by `deadline`.
    async fn prepare_unary(
        &self,
        request: PrepareRequest,
        deadline: Instant,
    ) -> Result<RelayDecision, PeerError> {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(request);
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let answer = tokio::time::timeout_at(deadline, client.prepare(request)).await;
        self.answer(answer)
    }

    /// Prepare through the batching task; the unary call when the peer has no `Prepares`.
    async fn prepare_batched(
        &self,
        batcher: &Arc<Batcher>,
        request: PrepareRequest,
    ) -> Result<RelayDecision, PeerError> {
        let deadline = Instant::now() + self.timeout;
        if batcher.unary_only() {
            return self.prepare_unary(request, deadline).await;
        }
        let (reply, answer) = oneshot::channel();
        let queue = batcher.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::unbounded_channel();
            let task = BatchTask {
                client: self.client.clone(),
                timeout: self.timeout,
                batcher: Arc::downgrade(batcher),
                batch_bytes_max: batcher.batch_bytes_max,
                stream: None,
                next_id: 0,
                carry: None,
            };
            tokio::spawn(task.run(waiting));
            queue
        });
        if queue.send(Waiting { request, reply }).is_err() {
            return Err(PeerError::Failed(
                "the relay batching task has stopped".to_owned(),
            ));
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(PeerError::Timeout(self.timeout)),
            Ok(Err(_)) => Err(PeerError::Failed(
                "the relay batching task dropped the call".to_owned(),
            )),
            Ok(Ok(Reply::Answered(answer))) => answer,
            Ok(Ok(Reply::Unary(request))) => self.prepare_unary(request, deadline).await,
        }
    }

    /// `message` as a request that tells the peer the deadline (the `grpc-timeout` header).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// The decision in a tonic answer; an error status or a missed deadline is a
    /// [`PeerError`].
    fn answer(&self, answer: Result<Answer, Elapsed>) -> Result<RelayDecision, PeerError> {
        match answer {
            Ok(answer) => peer_answer(answer.map(tonic::Response::into_inner)),
            Err(_) => Err(PeerError::Timeout(self.timeout)),
        }
    }
}

/// The decision in an answer that arrived; an error status is a [`PeerError`].
fn peer_answer(answer: Result<RelayDecision, tonic::Status>) -> Result<RelayDecision, PeerError> {
    answer.map_err(|status| match refusal(&status) {
        Some(rejection) => PeerError::Refused(rejection),
        None => PeerError::Failed(status.to_string()),
    })
}

/// What a [`GrpcPeer`] caller gets when the peer's engine ends a relay call (Prepare or
/// GetStatus) with `outcome`: the Relay service's answer to it, read back as the caller's
/// transport reads it. The deterministic simulator carries this over its network, so that its
/// engines see exactly what production's would, from the one mapping production uses on each
/// side of the wire.
pub fn relay_reply(
    outcome: Result<Result<RelayDecision, Rejection>, super::EngineError>,
) -> Result<RelayDecision, PeerError> {
    peer_answer(crate::service::relay_answer(outcome))
}

impl PeerTransport for GrpcPeer {
    fn prepare(&self, request: PrepareRequest) -> PeerCall<'_> {
        Box::pin(async move {
            match &self.batcher {
                Some(batcher) => self.prepare_batched(batcher, request).await,
                None => {
                    self.prepare_unary(request, Instant::now() + self.timeout)
                        .await
                }
            }
        })
    }

    fn status(&self, request: RelayStatusRequest) -> PeerCall<'_> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let request = self.request(request);
            let answer = tokio::time::timeout(self.timeout, client.get_status(request)).await;
            self.answer(answer)
        })
    }
}

/// The shared state of a batching [`GrpcPeer`]: the queue into its batching task (started
/// with the first Prepare, inside the runtime) and whether the peer lacks `Prepares`.
#[derive(Debug)]
struct Batcher {
    queue: OnceLock<mpsc::UnboundedSender<Waiting>>,
    /// When the peer answered the stream UNIMPLEMENTED.
    unary_since: Mutex<Option<Instant>>,
    batch_bytes_max: usize,
}

impl Batcher {
    /// Whether Prepares go unary now (the peer answered UNIMPLEMENTED less than
    /// [`RELAY_UNARY_RECHECK`] ago).
    fn unary_only(&self) -> bool {
        self.unary_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|since| since.elapsed() < RELAY_UNARY_RECHECK)
    }

    fn set_unary(&self) {
        *self
            .unary_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }
}

/// A Prepare waiting for the batching task.
#[derive(Debug)]
struct Waiting {
    request: PrepareRequest,
    reply: oneshot::Sender<Reply>,
}

/// What the batching task tells a waiting Prepare.
#[derive(Debug)]
enum Reply {
    /// The peer's answer, or why there is none.
    Answered(Result<RelayDecision, PeerError>),
    /// The peer has no `Prepares`: make the unary call.
    Unary(PrepareRequest),
}

/// A sent request waiting for its answer on a stream.
struct Pending {
    reply: oneshot::Sender<Reply>,
    sent: Instant,
    /// Its place among the stream's [`RELAY_STREAM_IN_FLIGHT`].
    _place: OwnedSemaphorePermit,
}

/// The requests a stream has not answered yet, by id; `None` once the stream has ended
/// (nothing more may be sent on it).
type PendingMap = Arc<Mutex<Option<HashMap<u64, Pending>>>>;

/// Ends every pending request of a stream that ended or broke with `error`, and closes it.
fn fail_pending(pending: &PendingMap, error: &PeerError) {
    let taken = pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    for (_, waiting) in taken.into_iter().flatten() {
        let _ = waiting.reply.send(Reply::Answered(Err(error.clone())));
    }
}

/// One open `Prepares` stream.
struct Stream {
    batches: mpsc::Sender<pb::PrepareBatch>,
    pending: PendingMap,
    places: Arc<Semaphore>,
    opened: Instant,
    reader: tokio::task::JoinHandle<()>,
}

impl Stream {
    /// Instructions sent and not answered.
    fn in_flight(&self) -> usize {
        RELAY_STREAM_IN_FLIGHT.saturating_sub(self.places.available_permits())
    }

    /// Whether a new batch may go on this stream: it has not ended, is not older than
    /// [`RELAY_STREAM_LIFETIME`], and has no request unanswered for longer than `timeout`
    /// (a stream that stopped answering is dropped and its requests failed: their callers
    /// have timed out already).
    fn usable(&self, timeout: Duration) -> bool {
        if self.opened.elapsed() >= RELAY_STREAM_LIFETIME {
            return false;
        }
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.as_ref().is_some_and(|pending| {
            pending
                .values()
                .all(|waiting| waiting.sent.elapsed() < timeout)
        })
    }

    /// Closes the stream for new batches. Its reader goes on answering what was sent unless
    /// `abort`, which fails those requests at once.
    fn close(self, abort: bool) {
        drop(self.batches);
        if abort {
            self.reader.abort();
            fail_pending(
                &self.pending,
                &PeerError::Failed("the Prepares stream stopped answering".to_owned()),
            );
        }
    }
}

/// The task that sends one peer's Prepares in batches.
struct BatchTask {
    client: RelayClient<Channel>,
    timeout: Duration,
    batcher: std::sync::Weak<Batcher>,
    batch_bytes_max: usize,
    stream: Option<Stream>,
    next_id: u64,
    /// A request taken from the queue that did not fit in the last batch.
    carry: Option<Waiting>,
}

impl BatchTask {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Waiting>) {
        loop {
            let first = match self.carry.take() {
                Some(waiting) => waiting,
                None => {
                    let idle = self.stream.as_ref().is_some_and(|s| s.in_flight() == 0);
                    let next = if idle {
                        match tokio::time::timeout(RELAY_STREAM_IDLE, queue.recv()).await {
                            Ok(next) => next,
                            Err(_) => {
                                if let Some(stream) = self.stream.take() {
                                    stream.close(false);
                                }
                                continue;
                            }
                        }
                    } else {
                        queue.recv().await
                    };
                    // Every GrpcPeer of this peer is gone.
                    let Some(next) = next else { return };
                    next
                }
            };
            if first.reply.is_closed() {
                continue;
            }
            if self.batcher.upgrade().is_some_and(|b| b.unary_only()) {
                let _ = first.reply.send(Reply::Unary(first.request));
                continue;
            }
            let batch = self.gather(first, &mut queue).await;
            self.send(batch).await;
        }
    }

    /// A batch starting with `first`: whatever else is waiting, up to the bounds, and while
    /// instructions are in flight, what arrives within [`RELAY_BATCH_LINGER`].
    async fn gather(
        &mut self,
        first: Waiting,
        queue: &mut mpsc::UnboundedReceiver<Waiting>,
    ) -> Vec<Waiting> {
        let mut bytes = first.request.encoded_len() + BATCH_OVERHEAD_PER_REQUEST;
        let mut batch = vec![first];
        let mut take = |waiting: Waiting, batch: &mut Vec<Waiting>| -> bool {
            let size = waiting.request.encoded_len() + BATCH_OVERHEAD_PER_REQUEST;
            if bytes + size > self.batch_bytes_max {
                self.carry = Some(waiting);
                return false;
            }
            bytes += size;
            batch.push(waiting);
            batch.len() < RELAY_BATCH_MAX
        };
        while batch.len() < RELAY_BATCH_MAX {
            match queue.try_recv() {
                Ok(waiting) => {
                    if !take(waiting, &mut batch) {
                        return batch;
                    }
                }
                Err(_) => break,
            }
        }
        let busy = self.stream.as_ref().is_some_and(|s| s.in_flight() > 0);
        if busy && batch.len() < RELAY_BATCH_MAX {
            let linger = tokio::time::sleep(RELAY_BATCH_LINGER);
            tokio::pin!(linger);
            loop {
                tokio::select! {
                    () = &mut linger => break,
                    next = queue.recv() => {
                        let Some(waiting) = next else { break };
                        if !take(waiting, &mut batch) {
                            break;
                        }
                    }
                }
            }
        }
        batch
    }

    /// Sends `batch` on the stream, opening one if there is none (or it cannot take it).
    async fn send(&mut self, batch: Vec<Waiting>) {
        if let Some(stream) = self.stream.take_if(|s| !s.usable(self.timeout)) {
            let abort = stream.opened.elapsed() < RELAY_STREAM_LIFETIME;
            stream.close(abort);
        }
        if self.stream.is_none() {
            match self.open().await {
                Ok(stream) => self.stream = Some(stream),
                Err(Unopened::Unary) => {
                    for waiting in batch {
                        let _ = waiting.reply.send(Reply::Unary(waiting.request));
                    }
                    return;
                }
                Err(Unopened::Failed(error)) => {
                    for waiting in batch {
                        let _ = waiting.reply.send(Reply::Answered(Err(error.clone())));
                    }
                    return;
                }
            }
        }
        let Some(stream) = &self.stream else { return };
        let mut prepares = Vec::with_capacity(batch.len());
        for waiting in batch {
            // At the bound, wait for answers; a stream that gives none within the relay
            // timeout is dropped at the next batch (see `Stream::usable`).
            let place =
                tokio::time::timeout(self.timeout, Arc::clone(&stream.places).acquire_owned())
                    .await;
            let Ok(Ok(place)) = place else {
                let error = PeerError::Timeout(self.timeout);
                let _ = waiting.reply.send(Reply::Answered(Err(error)));
                continue;
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let mut pending = stream
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(pending) = pending.as_mut() else {
                // The stream ended meanwhile: as if it had broken with this request on it.
                let _ = waiting.reply.send(Reply::Answered(Err(PeerError::Failed(
                    "the Prepares stream ended".to_owned(),
                ))));
                continue;
            };
            prepares.push(pb::TaggedPrepare {
                id,
                request: Some(waiting.request),
            });
            pending.insert(
                id,
                Pending {
                    reply: waiting.reply,
                    sent: Instant::now(),
                    _place: place,
                },
            );
        }
        if prepares.is_empty() {
            return;
        }
        if stream
            .batches
            .send(pb::PrepareBatch { prepares })
            .await
            .is_err()
        {
            // The request side is gone (the call ended): the reader fails what is pending.
            if let Some(stream) = self.stream.take() {
                stream.close(true);
            }
        }
    }

    /// Opens a `Prepares` stream and starts its reader. Nothing is sent before the peer
    /// accepted the stream, so a peer without it has read none of the batch, which then goes
    /// unary.
    async fn open(&self) -> Result<Stream, Unopened> {
        let (batches, outgoing) = mpsc::channel(4);
        let mut client = self.client.clone();
        let opened =
            tokio::time::timeout(self.timeout, client.prepares(ReceiverStream::new(outgoing)))
                .await;
        let answers = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!("the peer has no Prepares stream; Prepares go unary to it");
                if let Some(batcher) = self.batcher.upgrade() {
                    batcher.set_unary();
                }
                return Err(Unopened::Unary);
            }
            Ok(Err(status)) => {
                let error = peer_answer(Err(status))
                    .err()
                    .unwrap_or_else(|| PeerError::Failed("no Prepares stream".to_owned()));
                return Err(Unopened::Failed(error));
            }
            Err(_) => return Err(Unopened::Failed(PeerError::Timeout(self.timeout))),
        };
        let pending: PendingMap = Arc::new(Mutex::new(Some(HashMap::new())));
        Ok(Stream {
            batches,
            pending: Arc::clone(&pending),
            places: Arc::new(Semaphore::new(RELAY_STREAM_IN_FLIGHT)),
            opened: Instant::now(),
            reader: tokio::spawn(read_answers(answers, pending)),
        })
    }
}

/// Why no stream could be opened.
enum Unopened {
    /// The peer has no `Prepares`.
    Unary,
    /// Anything else: the batch's calls fail with this (their payments in doubt).
    Failed(PeerError),
}

/// Answers the requests pending on a stream from its answers until it ends; then fails
/// those left unanswered.
async fn read_answers(mut answers: tonic::Streaming<pb::PrepareAnswers>, pending: PendingMap) {
    let error = loop {
        match answers.message().await {
            Ok(Some(message)) => {
                let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                for answer in message.answers {
                    let waiting = pending
                        .as_mut()
                        .and_then(|pending| pending.remove(&answer.id));
                    if let Some(waiting) = waiting {
                        let _ = waiting.reply.send(Reply::Answered(answered(answer)));
                    }
                }
            }
            Ok(None) => {
                break PeerError::Failed(
                    "the peer ended the Prepares stream before answering".to_owned(),
                );
            }
            Err(status) => break PeerError::Failed(status.to_string()),
        }
    };
    fail_pending(&pending, &error);
}

/// The outcome a stream's answer carries, read as the unary Prepare's answer would be.
fn answered(answer: pb::PrepareAnswer) -> Result<RelayDecision, PeerError> {
    match answer.outcome {
        Some(prepare_answer::Outcome::Decision(decision)) => Ok(decision),
        Some(prepare_answer::Outcome::Error(error)) => {
            let mut status = tonic::Status::new(tonic::Code::from_i32(error.code), error.message);
            if let Ok(value) = error.reason_code.parse() {
                status.metadata_mut().insert(REASON_METADATA, value);
            }
            peer_answer(Err(status))
        }
        None => Err(PeerError::Failed(
            "the peer's answer on the Prepares stream carried no outcome".to_owned(),
        )),
    }
}

/// The refusal an error status stands for: one of the codes a node answers a refused request
/// with, carrying a reason code in its metadata. Anything else (UNAVAILABLE, a deadline, a
/// transport failure, a status without a reason) is no refusal: the peer may not have looked.
fn refusal(status: &tonic::Status) -> Option<Rejection> {
    let refused = matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::FailedPrecondition
    );
    if !refused {
        return None;
    }
    let code = status
        .metadata()
        .get(REASON_METADATA)
        .and_then(|value| value.to_str().ok())
        .and_then(ReasonCode::parse)?;
    // The node's message is "<code>: <detail>".
    let message = status.message();
    let detail = message
        .strip_prefix(code.as_str())
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message);
    Some(Rejection::new(code, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, reason: Option<&str>, message: &str) -> tonic::Status {
        let mut status = tonic::Status::new(code, message);
        if let Some(reason) = reason {
            status
                .metadata_mut()
                .insert(REASON_METADATA, reason.parse().expect("ASCII"));
        }
        status
    }

    #[test]
    fn only_a_refusal_with_a_reason_code_is_a_refusal() {
        let refused = refusal(&status(
            tonic::Code::FailedPrecondition,
            Some("DS0B"),
            "DS0B: the signature does not verify",
        ));
        assert_eq!(
            refused,
            Some(Rejection::new(
                ReasonCode::Ds0b,
                "the signature does not verify"
            ))
        );
        for (code, reason) in [
            (tonic::Code::Unavailable, Some("DS0B")),
            (tonic::Code::DeadlineExceeded, Some("DS0B")),
            (tonic::Code::PermissionDenied, Some("RR04")),
            (tonic::Code::Internal, Some("FF01")),
            (tonic::Code::FailedPrecondition, None),
            (tonic::Code::FailedPrecondition, Some("XX99")),
        ] {
            assert_eq!(
                refusal(&status(code, reason, "x")),
                None,
                "{code:?} {reason:?}"
            );
        }
    }

    /// An answer on the `Prepares` stream reads exactly as the unary Prepare's answer to the
    /// same outcome: the decision, the refusal with its reason, an operational fault as a
    /// failure (in doubt); an answer without an outcome is a failure too.
    #[test]
    fn a_stream_answer_reads_as_the_unary_answer() {
        let decision = RelayDecision {
            uetr: "u".into(),
            decision: pb::Decision::Settled.into(),
            ..RelayDecision::default()
        };
        let refusal = Rejection::new(ReasonCode::Ds0b, "the signature does not verify");
        let outcomes = || {
            vec![
                Ok(Ok(decision.clone())),
                Ok(Err(refusal.clone())),
                Ok(Err(Rejection::new(ReasonCode::Ff01, "payload: garbage"))),
                Err(super::super::EngineError::Task("lost".into())),
            ]
        };
        for (unary, streamed) in outcomes().into_iter().zip(outcomes()) {
            let unary = relay_reply(unary);
            let streamed = answered(crate::service::prepare_answer(
                7,
                crate::service::relay_answer(streamed),
            ));
            match (&unary, &streamed) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(PeerError::Refused(a)), Err(PeerError::Refused(b))) => assert_eq!(a, b),
                (Err(PeerError::Failed(_)), Err(PeerError::Failed(_))) => {}
                _ => panic!("unary {unary:?}, streamed {streamed:?}"),
            }
        }
        assert!(matches!(
            answered(pb::PrepareAnswer {
                id: 1,
                outcome: None
            }),
            Err(PeerError::Failed(_))
        ));
    }
}
