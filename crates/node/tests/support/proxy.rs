//! Payments kept in flight: JP reaches SG's relay through a TCP proxy on 127.0.0.1 that can hold
//! SG's answers (the TLS session passes through it untouched) or cut the link, so a payment can
//! be decided by SG but not yet answered for as long as a test needs (the `shutdown` and
//! `batches` tests).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kakehashi_node::config::Config;
use kakehashi_node::node::RunningNode;
use kakehashi_node::store::InboundState;
use kakehashi_proto::pb::{self, TransactionStatus};
use kakehashi_protocol::instruction::Uetr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{
    Ports, amount, bank, bank_client, config, instruction, jp_to_sg, new_uetr, quote,
    quote_and_submit,
};

/// A hang guard for the tests' waits, far above anything a passing run takes.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A TCP proxy to a target: its answers (target → client bytes) are held while `hold` is true,
/// and every connection open through it is cut when `cut` changes; connections made after a
/// cut pass again.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) hold: watch::Sender<bool>,
    pub(crate) cut: watch::Sender<u64>,
}

/// A [`Proxy`] to `target`, passing everything until told otherwise.
pub(crate) async fn proxy(target: SocketAddr) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let (hold, held) = watch::channel(false);
    let (cut, cuts) = watch::channel(0);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let mut cuts = cuts.clone();
            cuts.mark_unchanged();
            let held = held.clone();
            tokio::spawn(async move {
                // The cut first: held answers released after a cut never pass.
                tokio::select! {
                    biased;
                    _ = cuts.changed() => {}
                    () = pipe(inbound, outbound, held) => {}
                }
            });
        }
    });
    Proxy { addr, hold, cut }
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

/// JP's configuration with its relay client going to SG through `relay` (a [`Proxy`]); the
/// relay timeout is long (60 s) so that only the proxy's cut, or a test's own bound, ends a
/// call whose answer is held.
pub(crate) fn jp_config_via(dir: &Path, ports: &Ports, relay: &Proxy) -> Config {
    let mut config = config("JP", dir, ports)
        .with_peer_relay("SG", &format!("https://{}", relay.addr))
        .expect("proxy address");
    config.limits.relay_timeout_ms = 60_000;
    config.limits.request_timeout_ms = 120_000;
    config
}

/// Polls `done` until it holds (bounded by [`PATIENCE`]).
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether SG has settled `uetr`.
fn sg_settled(sg: &RunningNode, uetr: &Uetr) -> bool {
    matches!(
        kakehashi_node::store::read_now(sg.engine().store().inbound("JP", uetr)),
        Ok(Some(record)) if record.state == InboundState::Settled
    )
}

/// One JP→SG payment through the JP node at `jp` that settles: before answers are held, it
/// brings JP's relay connection up; after a cut, it shows the link works again.
pub(crate) async fn jp_to_sg_settles(jp: SocketAddr) {
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

/// A submission started in its own task: its UETR, and the task, which returns the answer.
type InFlight = (
    Uetr,
    tokio::task::JoinHandle<Result<pb::PaymentStatusReport, tonic::Status>>,
);

/// Holds SG's answers at `relay`, starts `count` JP→SG payments through the JP node at `jp`
/// and waits until SG has settled them all: they are in flight at JP, decided but unanswered.
pub(crate) async fn decided_but_held(
    relay: &Proxy,
    jp: SocketAddr,
    sg: &RunningNode,
    count: usize,
) -> Vec<InFlight> {
    relay.hold.send_replace(true);
    let in_flight = payments_in_flight(jp, count).await;
    until("SG settled the payments", || {
        in_flight.iter().all(|(uetr, _)| sg_settled(sg, uetr))
    })
    .await;
    in_flight
}

/// Awaits the answer of every payment of `in_flight`, each of which must be `status`; their
/// UETRs, in order.
pub(crate) async fn all_answered(in_flight: Vec<InFlight>, status: TransactionStatus) -> Vec<Uetr> {
    let mut uetrs = Vec::with_capacity(in_flight.len());
    for (uetr, task) in in_flight {
        let report = task.await.expect("task").expect("answered");
        assert_eq!(report.transaction_status(), status, "{report:?}");
        uetrs.push(uetr);
    }
    uetrs
}

/// Starts `count` JP→SG payments of 10,000 JPY through the JP node at `jp`, each in its own
/// task.
async fn payments_in_flight(jp: SocketAddr, count: usize) -> Vec<InFlight> {
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
