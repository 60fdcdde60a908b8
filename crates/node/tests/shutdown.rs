//! A graceful stop of a node with payments in flight (issue 11, defect 11): the node takes
//! no new payment but still answers its peer, lets the payments in flight end, and waits no
//! longer than `[limits] drain_secs` for them; what is still unanswered is left to recovery.
//!
//! JP reaches SG's relay through a TCP proxy on 127.0.0.1 that can hold SG's answers (the
//! TLS session passes through it untouched), so payments can be kept in flight, decided by
//! SG but not yet answered, for as long as a test needs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kakehashi_node::config::Config;
use kakehashi_node::node::{Node, RunningNode};
use kakehashi_node::store::{InboundState, OutboundState, Store};
use kakehashi_proto::pb::{self, TransactionStatus};
use kakehashi_protocol::instruction::Uetr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{
    self, Ports, amount, bank, bank_client, config, instruction, jp_to_sg, new_uetr, quote,
    quote_and_submit, settled_status, sg_to_jp, start,
};

/// A hang guard for the test's waits, far above anything a passing run takes.
const PATIENCE: Duration = Duration::from_secs(30);

/// A TCP proxy to `target` whose answers (target → client bytes) are held while `hold` is
/// true.
struct Proxy {
    addr: SocketAddr,
    hold: watch::Sender<bool>,
}

async fn proxy(target: SocketAddr) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let (hold, held) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            tokio::spawn(pipe(inbound, outbound, held.clone()));
        }
    });
    Proxy { addr, hold }
}

async fn pipe(client: TcpStream, target: TcpStream, mut held: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut target_read, mut target_write) = target.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut client_read, &mut target_write).await;
        let _ = target_write.shutdown().await;
    };
    let answers = async {
        let mut buf = vec![0; 16 * 1024];
        loop {
            if held.wait_for(|hold| !*hold).await.is_err() {
                return;
            }
            let n = match target_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Bytes read just before the hold began are held too.
            if held.wait_for(|hold| !*hold).await.is_err()
                || client_write.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    };
    tokio::join!(requests, answers);
}

/// JP's configuration: its relay client goes through `proxy`, whose answers may be held; the
/// relay timeout is long (60 s) so that only the drain bounds how long a stop waits.
fn jp_config(dir: &Path, ports: &Ports, proxy: &Proxy, drain_secs: u64) -> Config {
    let mut config = config("JP", dir, ports)
        .with_peer_relay("SG", &format!("https://{}", proxy.addr))
        .expect("proxy address");
    config.limits.relay_timeout_ms = 60_000;
    config.limits.request_timeout_ms = 120_000;
    config.limits.drain_secs = drain_secs;
    config
}

/// Polls `done` until it holds (bounded by [`PATIENCE`]).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether SG has settled `uetr`.
fn sg_settled(sg: &RunningNode, uetr: &Uetr) -> bool {
    matches!(
        sg.engine().store().inbound("JP", uetr),
        Ok(Some(record)) if record.state == InboundState::Settled
    )
}

/// Starts `count` JP→SG payments of 10,000 JPY, each in its own task, and returns their
/// UETRs and tasks (the tasks return the submission's answer).
async fn payments_in_flight(
    jp: SocketAddr,
    count: usize,
) -> Vec<(
    Uetr,
    tokio::task::JoinHandle<Result<pb::PaymentStatusReport, tonic::Status>>,
)> {
    let alpha = bank("jp", "KKHAJPJ0");
    let mut jp_client = bank_client(jp, "JP", "KKHAJPJ0").await;
    let source = amount("JPY", "10000");
    let mut started = Vec::new();
    for _ in 0..count {
        let q = quote(&mut jp_client, "SG", &source).await;
        let uetr = new_uetr();
        let signed = instruction(&jp_to_sg(&alpha, q, source.clone()), uetr);
        let mut submitting = jp_client.clone();
        started.push((
            uetr,
            tokio::spawn(async move {
                submitting
                    .submit_payment(pb::SubmitPaymentRequest {
                        instruction: Some(signed),
                    })
                    .await
                    .map(tonic::Response::into_inner)
            }),
        ));
    }
    started
}

/// One JP→SG payment that settles, so that JP's relay connection through the proxy is up
/// before answers are held.
async fn warm_up(jp: SocketAddr) {
    let alpha = bank("jp", "KKHAJPJ0");
    let mut jp_client = bank_client(jp, "JP", "KKHAJPJ0").await;
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        amount("JPY", "1000"),
        |q, a| jp_to_sg(&alpha, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
}

/// The states of `uetrs` in a stopped node's payment store, and how many payments it has in
/// doubt.
async fn outbound_states(data_dir: &Path, uetrs: &[Uetr]) -> (Vec<OutboundState>, usize) {
    // The ledger's threads let the database go just after the node stopped.
    let started = std::time::Instant::now();
    let store = loop {
        match Store::open_read_only(data_dir) {
            Ok(store) => break store,
            Err(e) if started.elapsed() < PATIENCE => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the stopped node did not release its payment store: {e}"),
        }
    };
    let states = uetrs
        .iter()
        .map(|uetr| store.outbound(uetr).expect("read").expect("recorded").state)
        .collect();
    (states, store.unresolved_count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_the_payments_in_flight_settle_and_still_answers_the_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let sg = start("SG", dir.path(), &ports).await;
    let relay = proxy(sg.relay_addr).await;
    let jp = Node::start(jp_config(dir.path(), &ports, &relay, 30))
        .await
        .expect("JP node");
    let jp_public = jp.public_addr;
    warm_up(jp_public).await;

    // Three payments decided by SG, their answers held: in flight at JP.
    relay.hold.send_replace(true);
    let in_flight = payments_in_flight(jp_public, 3).await;
    until("SG settled the payments", || {
        in_flight.iter().all(|(uetr, _)| sg_settled(&sg, uetr))
    })
    .await;

    let jp_engine = std::sync::Arc::clone(jp.engine());
    let stopping = tokio::spawn(jp.shutdown());
    until("JP began to stop", || jp_engine.is_stopping()).await;
    // The engine must be JP's alone again for the stop to close its ledger.
    drop(jp_engine);

    // Health tells load balancers to send payments elsewhere (set just after the stop began).
    let mut health = HealthClient::new(support::channel(jp_public, "JP", None).await);
    let started = std::time::Instant::now();
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: "kakehashi.v1.Payments".into(),
            })
            .await
            .expect("health is still served")
            .into_inner()
            .status();
        if status == ServingStatus::NotServing {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "Payments still {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A new payment is refused, and says why.
    let alpha = bank("jp", "KKHAJPJ0");
    let mut jp_client = bank_client(jp_public, "JP", "KKHAJPJ0").await;
    let source = amount("JPY", "10000");
    let q = quote(&mut jp_client, "SG", &source).await;
    let refused = jp_client
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(instruction(&jp_to_sg(&alpha, q, source), new_uetr())),
        })
        .await
        .expect_err("a stopping node takes no new payment");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("the node is stopping"),
        "{refused:?}"
    );

    // SG's payments to JP are still answered while JP drains.
    let beta = bank("sg", "KKHBSGS0");
    let mut sg_client = bank_client(sg.public_addr, "SG", "KKHBSGS0").await;
    let inbound = new_uetr();
    let report = quote_and_submit(
        &mut sg_client,
        "JP",
        amount("SGD", "100"),
        |q, a| sg_to_jp(&beta, q, a),
        inbound,
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );

    // SG's answers reach JP: the payments in flight end settled, and then JP stops.
    relay.hold.send_replace(false);
    let mut uetrs = Vec::new();
    for (uetr, task) in in_flight {
        let report = task.await.expect("task").expect("answered");
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "{report:?}"
        );
        uetrs.push(uetr);
    }
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("JP stops once drained")
        .expect("task")
        .expect("a clean stop");

    let (states, in_doubt) = outbound_states(&dir.path().join("jp"), &uetrs).await;
    assert!(
        states.iter().all(|s| *s == OutboundState::Settled),
        "{states:?}"
    );
    assert_eq!(in_doubt, 0, "nothing is left in doubt");
    sg.shutdown().await.expect("SG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_waits_for_a_silent_peer_no_longer_than_the_drain() {
    stop_with_a_silent_peer(1, std::future::pending()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_to_stop_ends_the_drain_at_once() {
    // A ten-minute drain, cut short at once (as `wait` does on a second Ctrl-C or SIGTERM).
    stop_with_a_silent_peer(600, async {}).await;
}

/// Stops JP, with `[limits] drain_secs` = `drain_secs`, while a payment it sent is decided by
/// SG but the answer is held for good; the stop's wait also ends when `sooner` completes.
async fn stop_with_a_silent_peer(drain_secs: u64, sooner: impl Future<Output = ()>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let sg = start("SG", dir.path(), &ports).await;
    let relay = proxy(sg.relay_addr).await;
    let jp = Node::start(jp_config(dir.path(), &ports, &relay, drain_secs))
        .await
        .expect("JP node");
    warm_up(jp.public_addr).await;

    relay.hold.send_replace(true);
    let in_flight = payments_in_flight(jp.public_addr, 1).await;
    until("SG settled the payment", || {
        in_flight.iter().all(|(uetr, _)| sg_settled(&sg, uetr))
    })
    .await;

    // The peer's answer is held for good; the relay timeout (60 s) is longer than the hang
    // guard, so only the end of the drain can end the stop in time.
    tokio::time::timeout(PATIENCE, jp.shutdown_or_sooner(sooner))
        .await
        .expect("the stop ends after the drain, not after the relay timeout")
        .expect("a clean stop");
    let (uetr, task) = in_flight.into_iter().next().expect("one payment");
    let answer = task.await.expect("task").expect_err("no outcome yet");
    assert_eq!(answer.code(), tonic::Code::Unavailable, "{answer:?}");
    assert!(answer.message().contains("same UETR"), "{answer:?}");

    // Left to recovery: forwarded, in doubt.
    let (states, in_doubt) = outbound_states(&dir.path().join("jp"), &[uetr]).await;
    assert_eq!((states[0], in_doubt), (OutboundState::Forwarded, 1));

    // After the restart recovery learns that SG settled it.
    relay.hold.send_replace(false);
    let jp = Node::start(jp_config(dir.path(), &ports, &relay, drain_secs))
        .await
        .expect("JP restarts");
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let report = settled_status(&mut jp_client, &uetr.to_string()).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");
}
