//! A peer served by several processes (issue 15: several node processes per jurisdiction over
//! one database): [`FailoverPeer`] holds one transport per relay address and sends each call
//! to the address that last worked, moving on to the next when a call fails.
//!
//! Why a call may be sent again to another address: both relay calls are answered from the
//! peer's books. A Prepare is decided once per UETR, whichever process is asked, and a second
//! Prepare of the same instruction gets that same decision; a status query reads the decision
//! or fences. So sending a call again, even when the first one may have reached the peer, can
//! never make a second decision, as long as every listed address serves the same books (the
//! configuration says so: [`crate::config::RelayAddress`]).
//!
//! What is not retried: a refusal (the peer answered, with a reason) is the answer; a timeout
//! has used the call's deadline, so the payment stays in doubt as with one address, but the
//! next call starts at the next address (a process that black-holes calls should not take
//! every call's deadline).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kakehashi_proto::pb::{PrepareRequest, RelayDecision, RelayStatusRequest};
use tokio::time::Instant;

use super::transport::{PeerCall, PeerError, PeerTransport};

/// One peer reached through several relay addresses, tried in turn (see the module
/// documentation).
pub struct FailoverPeer {
    /// One transport per relay address, in the configured order.
    addresses: Vec<Arc<dyn PeerTransport>>,
    /// The address calls start at: the one that last answered, or the one after the last that
    /// failed.
    current: AtomicUsize,
    /// The deadline of one call across all its attempts (`[limits] relay_timeout_ms`).
    timeout: Duration,
}

impl fmt::Debug for FailoverPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverPeer")
            .field("addresses", &self.addresses.len())
            .field("current", &self.current.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Which relay call to make.
#[derive(Clone)]
enum Call {
    Prepare(PrepareRequest),
    Status(RelayStatusRequest),
}

impl FailoverPeer {
    /// A peer reached through `addresses` (at least one), each call answered within `timeout`
    /// whatever the number of attempts.
    ///
    /// # Panics
    ///
    /// When `addresses` is empty (the configuration refuses a peer without a relay address).
    pub fn new(addresses: Vec<Arc<dyn PeerTransport>>, timeout: Duration) -> Self {
        assert!(
            !addresses.is_empty(),
            "a peer needs at least one relay address"
        );
        Self {
            addresses,
            current: AtomicUsize::new(0),
            timeout,
        }
    }

    /// The index calls start at now (for tests and logs).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Moves the starting address past `failed`, unless another call already did.
    fn skip(&self, failed: usize) {
        let next = (failed + 1) % self.addresses.len();
        // A lost race means another call moved it already: from this address or another, so
        // leave it where that call put it.
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    async fn call(&self, call: Call) -> Result<RelayDecision, PeerError> {
        let deadline = Instant::now() + self.timeout;
        let attempts = async {
            let start = self.current();
            let count = self.addresses.len();
            let mut failures = Vec::new();
            for step in 0..count {
                let index = (start + step) % count;
                let transport = &self.addresses[index];
                let answer = match call.clone() {
                    Call::Prepare(request) => transport.prepare(request).await,
                    Call::Status(request) => transport.status(request).await,
                };
                match answer {
                    Err(PeerError::Failed(why)) => {
                        self.skip(index);
                        tracing::debug!(address = index, %why, "relay address failed; trying the next");
                        failures.push(format!("address {}: {why}", index + 1));
                    }
                    Err(PeerError::Timeout(waited)) => {
                        self.skip(index);
                        return Err(PeerError::Timeout(waited));
                    }
                    answered => return answered,
                }
            }
            Err(PeerError::Failed(if count == 1 {
                failures.concat()
            } else {
                format!(
                    "all {count} relay addresses failed: {}",
                    failures.join("; ")
                )
            }))
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(answer) => answer,
            Err(_) => Err(PeerError::Timeout(self.timeout)),
        }
    }
}

impl PeerTransport for FailoverPeer {
    fn prepare(&self, request: PrepareRequest) -> PeerCall<'_> {
        Box::pin(self.call(Call::Prepare(request)))
    }

    fn status(&self, request: RelayStatusRequest) -> PeerCall<'_> {
        Box::pin(self.call(Call::Status(request)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kakehashi_proto::pb::{self, RelayDecision};
    use kakehashi_protocol::reason::{ReasonCode, Rejection};

    use super::*;

    /// How a fake address answers.
    #[derive(Clone, Copy, Debug)]
    enum Behaviour {
        Answer,
        Fail,
        Refuse,
        TimeOut,
        Hang,
    }

    /// A transport that answers as told and counts its calls.
    #[derive(Debug)]
    struct Fake {
        behaviour: Mutex<Behaviour>,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(behaviour: Behaviour) -> Arc<Self> {
            Arc::new(Self {
                behaviour: Mutex::new(behaviour),
                calls: AtomicUsize::new(0),
            })
        }

        fn set(&self, behaviour: Behaviour) {
            *self.behaviour.lock().expect("lock") = behaviour;
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::Relaxed)
        }

        fn answer(&self) -> PeerCall<'_> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let behaviour = *self.behaviour.lock().expect("lock");
            Box::pin(async move {
                match behaviour {
                    Behaviour::Answer => {
                        let mut decision = RelayDecision::default();
                        decision.set_decision(pb::Decision::Settled);
                        Ok(decision)
                    }
                    Behaviour::Fail => Err(PeerError::Failed("connection refused".into())),
                    Behaviour::Refuse => Err(PeerError::Refused(Rejection::new(
                        ReasonCode::Ff01,
                        "malformed",
                    ))),
                    Behaviour::TimeOut => Err(PeerError::Timeout(Duration::from_millis(5))),
                    Behaviour::Hang => std::future::pending().await,
                }
            })
        }
    }

    impl PeerTransport for Fake {
        fn prepare(&self, _: PrepareRequest) -> PeerCall<'_> {
            self.answer()
        }

        fn status(&self, _: RelayStatusRequest) -> PeerCall<'_> {
            self.answer()
        }
    }

    fn peer(fakes: &[&Arc<Fake>], timeout: Duration) -> FailoverPeer {
        FailoverPeer::new(
            fakes
                .iter()
                .map(|fake| Arc::clone(*fake) as Arc<dyn PeerTransport>)
                .collect(),
            timeout,
        )
    }

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_failed_address_is_skipped_in_the_same_call_and_the_next_calls() {
        let (a, b) = (Fake::new(Behaviour::Fail), Fake::new(Behaviour::Answer));
        let peer = peer(&[&a, &b], LONG);
        assert!(peer.prepare(PrepareRequest::default()).await.is_ok());
        assert_eq!((a.calls(), b.calls()), (1, 1));
        assert_eq!(
            peer.current(),
            1,
            "calls now start at the address that answered"
        );
        assert!(peer.status(RelayStatusRequest::default()).await.is_ok());
        assert_eq!(
            (a.calls(), b.calls()),
            (1, 2),
            "the failed address is not asked first"
        );
        // The second address fails in turn: the calls go back to the first, which is up again.
        b.set(Behaviour::Fail);
        a.set(Behaviour::Answer);
        assert!(peer.prepare(PrepareRequest::default()).await.is_ok());
        assert_eq!((a.calls(), b.calls()), (2, 3));
        assert_eq!(peer.current(), 0);
    }

    #[tokio::test]
    async fn every_address_failing_fails_the_call_naming_each() {
        let (a, b) = (Fake::new(Behaviour::Fail), Fake::new(Behaviour::Fail));
        let peer = peer(&[&a, &b], LONG);
        match peer.prepare(PrepareRequest::default()).await {
            Err(PeerError::Failed(why)) => {
                assert!(why.contains("all 2 relay addresses failed"), "{why}");
                assert!(
                    why.contains("address 1") && why.contains("address 2"),
                    "{why}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(
            (a.calls(), b.calls()),
            (1, 1),
            "each address tried once per call"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_the_answer_and_is_not_sent_elsewhere() {
        let (a, b) = (Fake::new(Behaviour::Refuse), Fake::new(Behaviour::Answer));
        let peer = peer(&[&a, &b], LONG);
        assert!(matches!(
            peer.prepare(PrepareRequest::default()).await,
            Err(PeerError::Refused(_))
        ));
        assert_eq!((a.calls(), b.calls()), (1, 0));
        assert_eq!(
            peer.current(),
            0,
            "a peer that answers stays the first asked"
        );
    }

    #[tokio::test]
    async fn a_timeout_ends_the_call_and_moves_the_next_calls_on() {
        let (a, b) = (Fake::new(Behaviour::TimeOut), Fake::new(Behaviour::Answer));
        let peer = peer(&[&a, &b], LONG);
        assert!(matches!(
            peer.prepare(PrepareRequest::default()).await,
            Err(PeerError::Timeout(_))
        ));
        assert_eq!(
            (a.calls(), b.calls()),
            (1, 0),
            "no time is left to try another"
        );
        assert!(peer.prepare(PrepareRequest::default()).await.is_ok());
        assert_eq!((a.calls(), b.calls()), (1, 1));
    }

    #[tokio::test]
    async fn attempts_share_one_deadline() {
        // The second address never answers: the call ends at its one deadline, as a timeout,
        // not as the first address's failure.
        let (a, b) = (Fake::new(Behaviour::Fail), Fake::new(Behaviour::Hang));
        let peer = peer(&[&a, &b], Duration::from_millis(50));
        match peer.prepare(PrepareRequest::default()).await {
            Err(PeerError::Timeout(waited)) => assert_eq!(waited, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!((a.calls(), b.calls()), (1, 1));
    }
}
