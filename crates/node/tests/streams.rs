//! `SubmitPayments` streams on a real JP node have bounded lives (issue 12, item 5): a stream
//! on which nothing arrives is ended after `stream_idle_timeout_secs`, and one older than
//! `max_stream_lifetime_secs` is ended after what it accepted was reported; both with
//! DEADLINE_EXCEEDED and a message that says which bound and what to do. And one connection
//! holds no more streaming calls than `max_concurrent_streams`.

use std::time::Duration;

use kakehashi_node::config::Limits;
use kakehashi_node::node::Node;
use kakehashi_proto::pb::{self, TransactionStatus};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::support::*;

/// How long a test waits for the server before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// A JP node alone (its peer is not started) under `adjust`ed limits, and a client to it.
async fn jp_with(
    adjust: impl FnOnce(&mut Limits),
) -> (
    tempfile::TempDir,
    kakehashi_node::node::RunningNode,
    pb::payments_client::PaymentsClient<tonic::transport::Channel>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config("JP", dir.path(), &Ports::new());
    adjust(&mut config.limits);
    config.validate().expect("adjusted config is valid");
    let node = Node::start(config).await.expect("JP node");
    // As bank KKHAJPJ0: a node takes instructions only from their debtor agent's connection.
    let client = client(node.public_addr, "JP", Some("jp/banks/KKHAJPJ0-tls")).await;
    (dir, node, client)
}

#[tokio::test]
async fn an_idle_submit_payments_stream_is_ended_with_a_clear_status() {
    let (_dir, node, mut client) = jp_with(|l| l.stream_idle_timeout_secs = 1).await;
    // The client keeps its side open and sends nothing.
    let (_input, rx) = tokio::sync::mpsc::channel::<pb::SubmitPaymentRequest>(1);
    let mut reports = client
        .submit_payments(ReceiverStream::new(rx))
        .await
        .expect("stream opened")
        .into_inner();
    let status = tokio::time::timeout(WAIT, reports.message())
        .await
        .expect("the server ends the stream, not the test's wait")
        .expect_err("no report: the stream ends with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("idle") && status.message().contains("stream_idle_timeout_secs"),
        "{status:?}"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_stream_past_its_lifetime_reports_what_it_accepted_then_ends() {
    let (_dir, node, mut client) = jp_with(|l| {
        l.stream_lifetime_secs_max = 2;
        l.stream_idle_timeout_secs = 600;
    })
    .await;
    let (input, rx) = tokio::sync::mpsc::channel::<pb::SubmitPaymentRequest>(1);
    let mut reports = client
        .submit_payments(ReceiverStream::new(rx))
        .await
        .expect("stream opened")
        .into_inner();
    // One instruction the node refuses at once (a signed payload that does not decode).
    let alpha = bank("jp", "KKHAJPJ0");
    input
        .send(pb::SubmitPaymentRequest {
            instruction: Some(sign_payload(&alpha, vec![0xff; 40])),
        })
        .await
        .expect("sent");
    let report = tokio::time::timeout(WAIT, reports.message())
        .await
        .expect("reported")
        .expect("a report, not an error")
        .expect("one report");
    assert_eq!(report.transaction_status(), TransactionStatus::Rjct);
    let status = tokio::time::timeout(WAIT, reports.message())
        .await
        .expect("the server ends the stream, not the test's wait")
        .expect_err("then the stream ends with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("maximum lifetime"), "{status:?}");
    drop(input);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_connection_holds_no_more_streaming_calls_than_max_concurrent_streams() {
    let (_dir, node, client) = jp_with(|l| l.concurrent_streams_max = 2).await;
    let open = |mut client: pb::payments_client::PaymentsClient<tonic::transport::Channel>| async move {
        let (input, rx) = tokio::sync::mpsc::channel::<pb::SubmitPaymentRequest>(1);
        let reports = client
            .submit_payments(ReceiverStream::new(rx))
            .await
            .map(tonic::Response::into_inner);
        (input, reports)
    };
    let (first_input, first) = open(client.clone()).await;
    let mut first = first.expect("first stream");
    let (_second_input, second) = open(client.clone()).await;
    second.expect("second stream");
    // A third streaming call on the same connection waits for one of the two to end: the
    // server's SETTINGS_MAX_CONCURRENT_STREAMS holds for streams that stay open.
    let third = tokio::spawn(open(client.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third stream opened beside two");
    // The client ends its first stream's input; the node ends the stream, and the third opens.
    drop(first_input);
    while let Ok(Some(_)) = first.message().await {}
    let (_third_input, third) = tokio::time::timeout(WAIT, third)
        .await
        .expect("the third stream opens once a slot is free")
        .expect("join");
    third.expect("third stream");
    node.shutdown().await.expect("shutdown");
}
