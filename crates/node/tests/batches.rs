//! The batched relay link (issue 14, item 2): Prepares travel in batches on one `Prepares`
//! stream per peer. A batch is authenticated whole before anything of it is decided, its
//! signatures verified together; each instruction is answered on its own, with exactly what
//! the unary Prepare would answer. Only a corridor peer may open the stream, and a batch over
//! the bounds is refused whole.

use std::collections::BTreeMap;

use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::{self, Decision, TransactionStatus, prepare_answer::Outcome};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::support::*;

/// What a `Prepares` stream gave back: the answers by id, and how the stream ended.
struct Exchanged {
    answers: BTreeMap<u64, Outcome>,
    end: Result<(), Status>,
}

/// Sends `batches` on one `Prepares` stream of `relay`, then half-closes it, and reads every
/// answer until the stream ends.
async fn exchange(relay: &mut RelayClient<Channel>, batches: Vec<pb::PrepareBatch>) -> Exchanged {
    let mut answers = BTreeMap::new();
    let mut stream = match relay.prepares(tokio_stream::iter(batches)).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return Exchanged {
                answers,
                end: Err(status),
            };
        }
    };
    let end = loop {
        match stream.message().await {
            Ok(Some(message)) => {
                for answer in message.answers {
                    let outcome = answer.outcome.expect("every answer carries an outcome");
                    assert!(
                        answers.insert(answer.id, outcome).is_none(),
                        "id {} answered twice",
                        answer.id
                    );
                }
            }
            Ok(None) => break Ok(()),
            Err(status) => break Err(status),
        }
    };
    Exchanged { answers, end }
}

fn batch(instructions: &[pb::Signed]) -> pb::PrepareBatch {
    pb::PrepareBatch {
        prepares: instructions
            .iter()
            .zip(0..)
            .map(|(signed, id)| pb::TaggedPrepare {
                id,
                request: Some(pb::PrepareRequest {
                    instruction: Some(signed.clone()),
                }),
            })
            .collect(),
    }
}

/// The value of the sample `series` in an exposition, which must have it.
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Fresh JP → SG instructions of 10,000 JPY each, signed by KKHAJPJ0, each with its own quote.
async fn instructions(pair: &mut Pair, n: usize) -> Vec<pb::Signed> {
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let q = quote(&mut pair.jp_client, "SG", &source).await;
        out.push(instruction(
            &jp_to_sg(&alpha, q, source.clone()),
            new_uetr(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_payments_settle_in_batches() {
    let mut pair = pair().await;
    let signed = instructions(&mut pair, 48).await;
    // All submitted at once (spawned before any is awaited).
    let submissions: Vec<_> = signed
        .into_iter()
        .map(|signed| {
            let mut client = pair.jp_client.clone();
            tokio::spawn(async move { submit(&mut client, signed).await })
        })
        .collect();
    for report in futures_join(submissions.into_iter()).await {
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "{report:?}"
        );
    }
    let text = scrape_metrics(pair.sg.metrics_addr.expect("SG serves metrics")).await;
    let batches = value(&text, "kakehashi_relay_batch_size_count");
    let instructions = value(&text, "kakehashi_relay_batch_size_sum");
    assert_eq!(instructions, 48.0, "every Prepare went on the stream");
    assert!(
        batches < instructions,
        "some batch carried more than one Prepare: {batches} batches for {instructions}"
    );
    pair.shutdown().await;
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn a_forgery_in_a_batch_is_refused_alone_as_prepare_refuses_it_and_the_rest_settle() {
    let mut pair = pair().await;
    let mut sent = instructions(&mut pair, 6).await;
    // One amount byte changed: the signature no longer verifies.
    let forged = pb::Signed {
        payload: edited(&sent[2], |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "10001"));
        }),
        ..sent[2].clone()
    };
    let genuine_of_forged = std::mem::replace(&mut sent[2], forged.clone());
    let mut jp_relay = relay_client_as("jp/node/tls", "SG", pair.sg.relay_addr).await;

    let exchanged = exchange(&mut jp_relay, vec![batch(&sent)]).await;
    exchanged
        .end
        .expect("the stream ends cleanly once everything is answered");
    assert_eq!(
        exchanged.answers.len(),
        sent.len(),
        "one answer per instruction"
    );
    let unary = prepare(&mut jp_relay, &forged)
        .await
        .expect_err("the unary Prepare refuses the forgery");
    for (id, outcome) in &exchanged.answers {
        match (id, outcome) {
            (2, Outcome::Error(error)) => {
                assert_eq!(error.code, unary.code() as i32, "{error:?}");
                assert_eq!(error.code, Code::FailedPrecondition as i32);
                assert_eq!(error.reason_code, "DS0B");
                assert_eq!(error.message, unary.message(), "the same words as Prepare");
            }
            (2, other) => panic!("the forgery was decided: {other:?}"),
            (_, Outcome::Decision(decision)) => {
                assert_eq!(decision.decision(), Decision::Settled, "{decision:?}");
            }
            (id, other) => panic!("instruction {id} was not decided: {other:?}"),
        }
    }

    // The forgery recorded nothing: the genuine instruction under its UETR settles, through
    // JP (whose own Prepares go on its stream); the others' Prepares from JP get the decisions
    // they already had, so JP posts them and the books balance.
    let before_jp = pair.snapshot().await;
    let mut all = sent.clone();
    all[2] = genuine_of_forged;
    for signed in all {
        let report = submit(&mut pair.jp_client, signed).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "{report:?}"
        );
    }
    assert_ne!(pair.snapshot().await, before_jp, "JP posted the payments");
    let text = scrape_metrics(pair.sg.metrics_addr.expect("SG serves metrics")).await;
    assert!(
        value(&text, "kakehashi_relay_batch_size_bucket{le=\"4.0\"}")
            < value(&text, "kakehashi_relay_batch_size_bucket{le=\"8.0\"}"),
        "the test's batch of 6 was counted:\n{text}"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn only_a_corridor_peer_may_open_the_stream() {
    let mut pair = pair().await;
    let signed = instructions(&mut pair, 1).await;
    // SG's own node certificate on SG's relay: recognized for node TLS, but no corridor.
    let mut impostor = relay_client_as("sg/node/tls", "SG", pair.sg.relay_addr).await;
    let exchanged = exchange(&mut impostor, vec![batch(&signed)]).await;
    let refused = exchanged.end.expect_err("refused");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(exchanged.answers.is_empty());
    // Nothing was decided: the payment settles.
    let report = submit(&mut pair.jp_client, signed[0].clone()).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn a_batch_over_the_count_or_the_size_is_refused_whole() {
    let mut pair = pair().await;
    let signed = instructions(&mut pair, 2).await;
    let mut jp_relay = relay_client_as("jp/node/tls", "SG", pair.sg.relay_addr).await;

    // 65 requests, one real and 64 empty ones (so that the batch stays under the size limit).
    let mut too_many = batch(&signed[..1]);
    too_many
        .prepares
        .extend((1..65).map(|id| pb::TaggedPrepare { id, request: None }));
    let exchanged = exchange(&mut jp_relay, vec![too_many]).await;
    let refused = exchanged.end.expect_err("over the count");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("at most 64"), "{refused:?}");
    assert!(exchanged.answers.is_empty(), "nothing of it answered");

    // About 30 instructions of a few KiB: over the 64 KiB message limit.
    let too_big = batch(&vec![signed[1].clone(); 30]);
    let exchanged = exchange(&mut jp_relay, vec![too_big]).await;
    let refused = exchanged.end.expect_err("over the size");
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(exchanged.answers.is_empty(), "nothing of it answered");

    // Neither was decided: a status query finds no decision (and fences them).
    for signed in &signed {
        let uetr = kakehashi_protocol::instruction::decode(signed)
            .expect("decodes")
            .uetr;
        let status = jp_relay
            .get_status(pb::RelayStatusRequest {
                uetr: uetr.to_string(),
                instruction_sha256: Vec::new(),
            })
            .await
            .expect("status")
            .into_inner();
        assert_eq!(status.decision(), Decision::UnknownFenced, "{status:?}");
    }
    pair.shutdown().await;
}

/// A stream cut with a batch decided by SG but not yet answered: the payments are in doubt at
/// JP (PDNG, never decided by the break), and recovery's status queries settle them as SG
/// decided; both ledgers then show every payment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_mid_batch_leaves_its_payments_in_doubt_for_recovery() {
    use kakehashi_node::node::Node;

    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let sg = start("SG", dir.path(), &ports).await;
    let relay = proxy(sg.relay_addr).await;
    // Only the cut may end the calls, not their deadline.
    let jp = Node::start(jp_config_via(dir.path(), &ports, &relay))
        .await
        .expect("JP node");
    // The stream is open and answering.
    jp_to_sg_settles(jp.public_addr).await;

    let in_flight = decided_but_held(&relay, jp.public_addr, &sg, 6).await;
    // SG decided them all; the answers are held. Cut the link, then let new connections pass.
    relay.cut.send_modify(|n| *n += 1);
    relay.hold.send_replace(false);
    // The break decided nothing: every payment is in doubt.
    let uetrs = all_answered(in_flight, TransactionStatus::Pdng).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    for uetr in &uetrs {
        let report = settled_status(&mut jp_client, &uetr.to_string()).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "recovery settled it as SG decided: {report:?}"
        );
    }
    // And the stream works again.
    jp_to_sg_settles(jp.public_addr).await;
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");
}
