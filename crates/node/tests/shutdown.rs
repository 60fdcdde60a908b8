//! A graceful stop of a node with payments in flight (issue 11, defect 11): the node takes
//! no new payment but still answers its peer, lets the payments in flight end, and waits no
//! longer than `[limits] drain_secs` for them; what is still unanswered is left to recovery.
//!
//! JP reaches SG's relay through the support's holding proxy, so payments can be kept in
//! flight, decided by SG but not yet answered, for as long as a test needs.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kakehashi_node::config::Config;
use kakehashi_node::node::Node;
use kakehashi_node::store::{OutboundState, Store};
use kakehashi_proto::pb::{self, TransactionStatus};
use kakehashi_protocol::instruction::Uetr;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{
    self, PATIENCE, Ports, Proxy, all_answered, amount, bank, bank_client, decided_but_held,
    instruction, jp_config_via, jp_to_sg, jp_to_sg_settles, new_uetr, proxy, quote,
    quote_and_submit, settled_status, sg_to_jp, start, until,
};

/// JP's configuration through `relay` with `[limits] drain_secs` = `drain_secs`: only the drain
/// bounds how long a stop waits for a held answer.
fn jp_config(dir: &Path, ports: &Ports, relay: &Proxy, drain_secs: u64) -> Config {
    let mut config = jp_config_via(dir, ports, relay);
    config.limits.drain_secs = drain_secs;
    config
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
    let mut states = Vec::new();
    for uetr in uetrs {
        states.push(
            store
                .outbound(uetr)
                .await
                .expect("read")
                .expect("recorded")
                .state,
        );
    }
    (states, store.unresolved_count().await)
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
    jp_to_sg_settles(jp_public).await;

    // Three payments decided by SG, their answers held: in flight at JP.
    let in_flight = decided_but_held(&relay, jp_public, &sg, 3).await;

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
    let uetrs = all_answered(in_flight, TransactionStatus::Acsc).await;
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
    jp_to_sg_settles(jp.public_addr).await;

    let in_flight = decided_but_held(&relay, jp.public_addr, &sg, 1).await;

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
