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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::{PrepareRequest, RelayDecision, RelayStatusRequest};
use kakehashi_protocol::reason::{ReasonCode, Rejection};
use tokio::time::error::Elapsed;
use tonic::transport::Channel;

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
}

impl GrpcPeer {
    /// A transport over `client` whose calls wait at most `timeout` for an answer.
    pub fn new(client: RelayClient<Channel>, timeout: Duration) -> Self {
        Self { client, timeout }
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
        let mut client = self.client.clone();
        Box::pin(async move {
            let request = self.request(request);
            let answer = tokio::time::timeout(self.timeout, client.prepare(request)).await;
            self.answer(answer)
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
}
