//! Recovery passes over a real sled ledger and payment store, with a clock the tests move and
//! peers the tests script (issue 11, defects 6 and 8).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountId, Ledger, NewTransfer, Options, PendingStatus, Timestamp, TransferFlags, TransferId,
};
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb::{Decision, PrepareRequest, RelayDecision, RelayStatusRequest};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Rate};
use kakehashi_protocol::transfer::{codes, transfer_id};
use tokio::sync::watch;

use super::{RecoveryLimits, RecoveryPass, backoff_delay};
use crate::AccountKind;
use crate::engine::{
    Clock, Engine, EngineLimits, EngineParts, PeerCall, PeerError, PeerLink, PeerTransport,
    Sanctions, SledBooks,
};
use crate::metrics::Metrics;
use crate::store::{AccountMeta, OutboundRecord, OutboundState, Store, Write};

/// A clock that moves only when the test moves it.
#[derive(Debug)]
struct TestClock(AtomicU64);

impl TestClock {
    const START_SECS: u64 = 1_798_761_600;

    fn new() -> Self {
        Self(AtomicU64::new(Self::START_SECS * 1_000_000_000))
    }

    fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).expect("a short step");
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }

    fn nanos(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for TestClock {
    fn now(&self) -> (Timestamp, UnixTime) {
        let nanos = self.nanos();
        let secs = i64::try_from(nanos / 1_000_000_000).expect("in range");
        (Timestamp::from_unix_nanos(nanos), UnixTime(secs))
    }
}

/// How a scripted peer answers a status query.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// This decision, at once.
    Decide(Decision),
    /// No answer in time, at once (as a transport reports its deadline passing).
    Timeout,
    /// Never: the call stays pending (a peer that accepted the connection and went silent).
    Never,
}

/// A peer that answers status queries as scripted, by UETR or by default, and counts them.
#[derive(Debug)]
struct ScriptedPeer {
    default: Answer,
    by_uetr: HashMap<Uetr, Answer>,
    queries: AtomicUsize,
}

impl ScriptedPeer {
    fn new(default: Answer) -> Arc<Self> {
        Self::with(default, HashMap::new())
    }

    fn with(default: Answer, by_uetr: HashMap<Uetr, Answer>) -> Arc<Self> {
        Arc::new(Self {
            default,
            by_uetr,
            queries: AtomicUsize::new(0),
        })
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl PeerTransport for ScriptedPeer {
    fn prepare(&self, _: PrepareRequest) -> PeerCall<'_> {
        Box::pin(async { Err(PeerError::Failed("recovery never sends Prepare".into())) })
    }

    fn status(&self, request: RelayStatusRequest) -> PeerCall<'_> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .by_uetr
            .iter()
            .find(|(uetr, _)| uetr.to_string() == request.uetr)
            .map_or(self.default, |(_, answer)| *answer);
        Box::pin(async move {
            match answer {
                Answer::Decide(decision) => Ok(RelayDecision {
                    uetr: request.uetr,
                    decision: decision.into(),
                    status_reason_code: "AB05".into(),
                    ..RelayDecision::default()
                }),
                Answer::Timeout => Err(PeerError::Timeout(Duration::from_secs(3))),
                Answer::Never => std::future::pending().await,
            }
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    /// The engine's ledger, for what its books do not offer (pending statuses).
    ledger: Arc<Ledger>,
    clock: Arc<TestClock>,
    stop: watch::Sender<bool>,
}

fn limits(payments_per_pass: usize, queries_per_peer: usize) -> RecoveryLimits {
    RecoveryLimits {
        payments_per_pass,
        queries_per_peer,
        backoff_initial: Duration::from_secs(2),
        backoff_max: Duration::from_secs(30),
    }
}

/// A JP engine on fresh books whose peers are `peers` (jurisdiction, transport).
async fn fixture(peers: &[(&str, Arc<ScriptedPeer>)], recovery: RecoveryLimits) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mra = Arc::new(Mra::load(&repo.join("certs/mra.toml")).expect("certs/mra.toml"));
    let key = SigningKey::from_bytes(&[7; 32]);
    let ledger = Arc::new(
        Ledger::open(&dir.path().join("ledger"), key.clone(), Options::default()).expect("ledger"),
    );
    let store = Store::over_ledger(Arc::clone(&ledger));
    let clock = Arc::new(TestClock::new());
    let peers: BTreeMap<String, PeerLink> = peers
        .iter()
        .enumerate()
        .map(|(i, (code, transport))| {
            let offset = u128::try_from(i).expect("few peers");
            let transport: Arc<dyn PeerTransport> = Arc::clone(transport) as _;
            let link = PeerLink {
                jurisdiction: (*code).to_owned(),
                currency: money::currency("SGD").expect("SGD"),
                mid: Rate::parse("0.0087").expect("rate"),
                corridor_account: 9001 + offset,
                liquidity_account: 9101 + offset,
                transport,
            };
            ((*code).to_owned(), link)
        })
        .collect();
    let engine = Engine::new(EngineParts {
        jurisdiction: "JP".into(),
        currency: money::currency("JPY").expect("JPY"),
        mra,
        books: Arc::new(SledBooks::new(Arc::clone(&ledger), store.encoder())),
        store,
        signing_key: key,
        signing_chain: Vec::new(),
        peers,
        spread_bps: 25,
        rate_band_bps: 100,
        quote_ttl_secs: 60,
        limits: EngineLimits {
            funding_minor_max: u128::MAX,
            payment_minor_max: 1_000_000_000,
            free_quotes_per_asker_max: 10_000,
            clock_skew_secs: 30,
            instruction_lifetime_secs_max: 600,
        },
        recovery,
        sanctions: Sanctions::default(),
        funding_account: 9999,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        entropy: Arc::new(crate::engine::SystemEntropy),
        planted: None,
    });
    let (stop, _) = watch::channel(false);
    Fixture {
        _dir: dir,
        engine: Arc::new(engine),
        ledger,
        clock,
        stop,
    }
}

fn uetr(n: u8) -> Uetr {
    Uetr([n; 16])
}

/// Records a payment in doubt towards `peer`, created at `created_at`.
async fn in_doubt(f: &Fixture, uetr: Uetr, peer: &str, state: OutboundState, created_at: u64) {
    let record = OutboundRecord {
        state,
        signed_instruction: Vec::new(),
        instruction_sha256: hex::encode([1; 32]),
        peer: peer.into(),
        end_to_end_id: "E2E".into(),
        debtor_account: 1001,
        amount_minor: 10_000,
        reservation_id: transfer_id(b"reserve", &uetr.0),
        reason_code: None,
        reason_detail: None,
        decided_by: None,
        receipt: None,
        credited_minor: None,
        created_at,
        updated_at: created_at,
    };
    f.engine
        .store()
        .put(vec![Write::Outbound(uetr, record)])
        .await
        .expect("record");
}

fn state(f: &Fixture, uetr: Uetr) -> OutboundState {
    crate::store::read_now(f.engine.store().outbound(&uetr))
        .expect("read")
        .expect("recorded")
        .state
}

async fn pass(f: &Fixture) -> RecoveryPass {
    f.engine
        .recover(&f.stop.subscribe())
        .await
        .expect("the payments in doubt can be listed")
}

/// Waits until `done` holds, checking after each yield to the runtime (bounded: a test that
/// would hang fails instead).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn a_peer_that_never_answers_does_not_delay_payments_to_another_peer() {
    let silent = ScriptedPeer::new(Answer::Never);
    let answering = ScriptedPeer::new(Answer::Decide(Decision::UnknownFenced));
    let f = fixture(
        &[("SG", Arc::clone(&silent)), ("TH", Arc::clone(&answering))],
        limits(100, 2),
    )
    .await;
    // The silent peer's payments are the oldest, so they are asked first.
    for n in 1..=4 {
        in_doubt(&f, uetr(n), "SG", OutboundState::Forwarded, u64::from(n)).await;
    }
    for n in 11..=14 {
        in_doubt(&f, uetr(n), "TH", OutboundState::Forwarded, u64::from(n)).await;
    }
    let engine = Arc::clone(&f.engine);
    let stop = f.stop.subscribe();
    let running = tokio::spawn(async move { engine.recover(&stop).await });

    until("the answering peer's payments are resolved", || {
        (11..=14).all(|n| state(&f, uetr(n)) == OutboundState::Rejected)
    })
    .await;
    assert!(
        !running.is_finished(),
        "the silent peer's queries are still waiting"
    );
    assert_eq!(
        silent.queries(),
        2,
        "two queries in flight to the silent peer, no more"
    );
    assert_eq!(answering.queries(), 4);
    for n in 1..=4 {
        assert_eq!(state(&f, uetr(n)), OutboundState::Forwarded);
    }

    // Stopping ends the pass at the silent peer's pending answers.
    f.stop.send_replace(true);
    let pass = running.await.expect("task").expect("pass");
    assert!(pass.stopped);
    assert_eq!((pass.resolved, pass.deferred), (4, 4), "{pass:?}");
    assert_eq!(pass.in_doubt, 4);
}

#[tokio::test]
async fn one_failing_payment_does_not_stop_the_pass() {
    // SETTLED for a payment whose reservation is missing: the post fails (a ledger that
    // does not hold what the record says), for the oldest payment, which is taken first.
    let broken = uetr(1);
    let peer = ScriptedPeer::with(
        Answer::Decide(Decision::Rejected),
        HashMap::from([(broken, Answer::Decide(Decision::Settled))]),
    );
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 1)).await;
    for n in 1..=4 {
        in_doubt(&f, uetr(n), "SG", OutboundState::Forwarded, u64::from(n)).await;
    }

    let pass = pass(&f).await;

    assert_eq!((pass.failed, pass.resolved), (1, 3), "{pass:?}");
    assert_eq!(state(&f, broken), OutboundState::Forwarded);
    for n in 2..=4 {
        assert_eq!(state(&f, uetr(n)), OutboundState::Rejected);
    }
    assert_eq!(pass.in_doubt, 1);
}

#[tokio::test]
async fn a_pass_takes_at_most_its_bound_oldest_first() {
    let peer = ScriptedPeer::new(Answer::Decide(Decision::UnknownFenced));
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(2, 4)).await;
    // Created in the reverse order of their UETRs: age, not key order, decides.
    for n in 1..=5 {
        in_doubt(
            &f,
            uetr(n),
            "SG",
            OutboundState::Forwarded,
            u64::from(10 - n),
        )
        .await;
    }

    let first = pass(&f).await;
    assert_eq!((first.resolved, first.deferred, first.more), (2, 3, true));
    assert_eq!(first.in_doubt, 3);
    let resolved: Vec<u8> = (1..=5)
        .filter(|n| state(&f, uetr(*n)) == OutboundState::Rejected)
        .collect();
    assert_eq!(resolved, [4, 5], "the two oldest");

    let second = pass(&f).await;
    assert_eq!((second.resolved, second.deferred), (2, 1));
    let third = pass(&f).await;
    assert_eq!((third.resolved, third.more, third.in_doubt), (1, false, 0));
}

#[tokio::test]
async fn stopping_ends_a_pass_waiting_for_a_peer() {
    let silent = ScriptedPeer::new(Answer::Never);
    let f = fixture(&[("SG", Arc::clone(&silent))], limits(100, 1)).await;
    for n in 1..=3 {
        in_doubt(&f, uetr(n), "SG", OutboundState::Forwarded, u64::from(n)).await;
    }
    let engine = Arc::clone(&f.engine);
    let stop = f.stop.subscribe();
    let running = tokio::spawn(async move { engine.recover(&stop).await });
    until("the first query is in flight", || silent.queries() == 1).await;

    f.stop.send_replace(true);
    let pass = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the pass returns once the node stops")
        .expect("task")
        .expect("pass");

    assert!(pass.stopped);
    assert_eq!((pass.resolved, pass.deferred), (0, 3), "{pass:?}");
    assert_eq!(silent.queries(), 1, "nothing more is asked after the stop");
    for n in 1..=3 {
        assert_eq!(state(&f, uetr(n)), OutboundState::Forwarded);
    }
}

#[tokio::test]
async fn a_peer_that_does_not_answer_is_left_alone_for_a_growing_capped_backoff() {
    let peer = ScriptedPeer::new(Answer::Timeout);
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 4)).await;
    for n in 1..=3 {
        in_doubt(&f, uetr(n), "SG", OutboundState::Forwarded, u64::from(n)).await;
    }

    // Once the peer failed to answer, the pass asks it nothing more.
    let first = pass(&f).await;
    assert_eq!((first.unanswered, first.deferred), (1, 2), "{first:?}");
    assert_eq!(peer.queries(), 1);
    let (failures, retry_at) = f.engine.peer_backoff("SG").expect("backing off");
    assert_eq!(failures, 1);
    let mut delay = retry_at - f.clock.nanos();
    assert!((1_000_000_000..=2_000_000_000).contains(&delay), "{delay}");

    // Within the backoff nothing is asked.
    f.clock.advance(Duration::from_nanos(delay - 1));
    let waiting = pass(&f).await;
    assert_eq!((waiting.deferred, waiting.unanswered), (3, 0));
    assert_eq!(peer.queries(), 1);

    let mut delays = vec![delay];
    for round in 2..=8 {
        f.clock.advance(Duration::from_nanos(1));
        let again = pass(&f).await;
        assert_eq!(again.unanswered, 1, "round {round}: {again:?}");
        assert_eq!(peer.queries(), usize::try_from(round).expect("small"));
        let (failures, retry_at) = f.engine.peer_backoff("SG").expect("backing off");
        assert_eq!(failures, round);
        delay = retry_at - f.clock.nanos();
        delays.push(delay);
        f.clock.advance(Duration::from_nanos(delay - 1));
    }
    // Below the cap each step's shortest delay is the longest of the step before.
    assert!(delays[..4].windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
    assert!(delays[3] > delays[0], "it grows: {delays:?}");
    assert!(
        delays.iter().all(|d| *d <= 30_000_000_000),
        "capped at 30 s: {delays:?}"
    );
    assert!(delays[7] >= 15_000_000_000, "at the cap: {delays:?}");
}

#[tokio::test]
async fn an_answer_ends_the_backoff() {
    let uetr_1 = uetr(1);
    let peer = ScriptedPeer::with(
        Answer::Decide(Decision::UnknownFenced),
        HashMap::from([(uetr_1, Answer::Timeout)]),
    );
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 1)).await;
    in_doubt(&f, uetr_1, "SG", OutboundState::Forwarded, 1).await;
    assert_eq!(pass(&f).await.unanswered, 1);
    assert!(f.engine.peer_backoff("SG").is_some());

    in_doubt(&f, uetr(2), "SG", OutboundState::Forwarded, 0).await;
    f.clock.advance(Duration::from_secs(30));
    let pass = pass(&f).await;
    assert_eq!((pass.resolved, pass.unanswered), (1, 1), "{pass:?}");
    // The answer to the older payment ended the backoff; the newer one's timeout began a new
    // one from its first step.
    let (failures, _) = f.engine.peer_backoff("SG").expect("backing off again");
    assert_eq!(failures, 1);
}

#[test]
fn the_backoff_doubles_to_its_cap_with_jitter_from_the_uetr_and_the_attempt() {
    let limits = limits(1, 1);
    for n in 0..32u8 {
        let id = Uetr([n; 16]);
        let delays: Vec<Duration> = (1..=12).map(|k| backoff_delay(&limits, k, &id)).collect();
        for (k, delay) in (1u32..).zip(&delays) {
            let ceiling = (Duration::from_secs(2) * 2u32.pow(k - 1)).min(Duration::from_secs(30));
            assert!(
                *delay >= ceiling / 2 && *delay <= ceiling,
                "attempt {k}: {delay:?}"
            );
        }
        // Below the cap each step's shortest delay is the longest of the step before.
        assert!(delays[..4].windows(2).all(|w| w[1] >= w[0]), "{delays:?}");
        assert_eq!(backoff_delay(&limits, 3, &id), delays[2], "deterministic");
        assert!(backoff_delay(&limits, u32::MAX, &id) <= Duration::from_secs(30));
    }
    let spread: std::collections::BTreeSet<Duration> = (0..32u8)
        .map(|n| backoff_delay(&limits, 5, &Uetr([n; 16])))
        .collect();
    assert!(spread.len() > 16, "jitter spreads the peers: {spread:?}");
}

#[tokio::test]
async fn an_unforwarded_payment_without_a_reservation_is_rejected_naming_none() {
    // Issue 11, defect 8: the record names the reservation before the ledger holds it; a crash
    // in between leaves `Reserving` and no reservation. Recovery must not keep the id.
    let peer = ScriptedPeer::new(Answer::Never);
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 1)).await;
    in_doubt(&f, uetr(1), "SG", OutboundState::Reserving, 1).await;

    let pass = pass(&f).await;

    assert_eq!((pass.resolved, pass.in_doubt), (1, 0), "{pass:?}");
    let record = f
        .engine
        .store()
        .outbound(&uetr(1))
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(record.state, OutboundState::Rejected);
    assert_eq!(record.reservation_id, 0, "no reservation exists");
    assert_eq!(record.reason_code.as_deref(), Some("AB05"));
    assert_eq!(peer.queries(), 0, "nothing was sent, so nobody is asked");
}

#[tokio::test]
async fn an_unforwarded_payment_with_a_reservation_has_it_voided_and_named() {
    let peer = ScriptedPeer::new(Answer::Never);
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 1)).await;
    let meta = |kind, name: &str| AccountMeta {
        kind,
        owner_bic: None,
        name: name.into(),
        closed: false,
    };
    f.engine
        .genesis(vec![
            (9999, meta(AccountKind::Funding, "funding"), 0),
            (9001, meta(AccountKind::Corridor, "corridor SG"), 0),
            (1001, meta(AccountKind::Customer, "debtor"), 50_000),
        ])
        .await
        .expect("genesis");
    let id = uetr(1);
    in_doubt(&f, id, "SG", OutboundState::Reserving, 1).await;
    let reservation = transfer_id(b"reserve", &id.0);
    let made = f
        .engine
        .apply_one(NewTransfer {
            id: TransferId(reservation),
            debit_account_id: AccountId(1001),
            credit_account_id: AccountId(9001),
            amount: 10_000,
            ledger: 392,
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            ..NewTransfer::default()
        })
        .await
        .expect("reserve");
    assert!(made.is_recorded(), "{made:?}");

    let pass = pass(&f).await;

    assert_eq!((pass.resolved, pass.in_doubt), (1, 0), "{pass:?}");
    let record = f
        .engine
        .store()
        .outbound(&id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(record.state, OutboundState::Rejected);
    assert_eq!(record.reservation_id, reservation, "the voided reservation");
    let status = f
        .ledger
        .pending_status(TransferId(reservation))
        .expect("lookup");
    assert_eq!(status, Some(PendingStatus::Voided));
    assert_eq!(peer.queries(), 0);
}

/// A void of a reservation that was never made is done, and so is its retry, which the
/// ledger answers `id_already_failed` (it remembers the void's transient failure).
#[tokio::test]
async fn voiding_a_reservation_never_made_twice_is_done_both_times() {
    let peer = ScriptedPeer::new(Answer::Never);
    let f = fixture(&[("SG", Arc::clone(&peer))], limits(100, 1)).await;
    let id = uetr(2);
    in_doubt(&f, id, "SG", OutboundState::Reserving, 1).await;
    let record = f
        .engine
        .store()
        .outbound(&id)
        .await
        .expect("read")
        .expect("recorded");
    let record = OutboundRecord {
        reservation_id: transfer_id(b"reserve", &id.0),
        ..record
    };
    for attempt in 0..2 {
        f.engine
            .resolve_reservation(id, &record, false)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error}"));
    }
}
