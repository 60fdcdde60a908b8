//! "Jurisdictions are data": a Thai node (THB, ISO 4217 764, two decimals) relays with a JP
//! node given only a PKI (certs/th/, committed), rows in the mutual-recognition agreement and
//! configuration files (crates/node/devnet/th.toml, and the TH peer of jp.toml). No Rust code
//! of the node names TH or THB: `grep -rnw 'TH\|THB' crates/node/src` finds them only in test
//! code (config/tests.rs), never in the settlement, service, configuration or TLS code.
//! (kakehashi-protocol names them in its ISO 4217 table, an example in an error message and its
//! signed.rs test fixtures.)
//!
//! The committed agreement (certs/mra.toml) has JP, SG and TH recognizing each other for node
//! TLS, payment signing and receipt signing, and the committed configurations have the
//! corridors, so both nodes run on exactly the committed files (ports, data directories and the
//! peers' relay addresses moved). Take the rows that recognize TH out of the agreement (a copy
//! in a temporary directory, signed again by all three authorities with the committed dev keys,
//! certs/mra-keys/) and the same relay is refused at the TLS handshake.
//!
//! FX mids used: JP quotes 1 JPY = 0.2315 THB; TH quotes 1 THB = 4.32 JPY; 25 bps spread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kakehashi_node::config::Config;
use kakehashi_node::node::{Node, RunningNode};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb::{self as pb, Decision, TransactionStatus};
use kakehashi_protocol::instruction;
use kakehashi_protocol::receipt::verify_receipt;
use prost::Message;

use crate::support::*;

/// Writes `dir/mra.toml`: the committed agreement without the rows in which JP and SG
/// recognize TH, signed again by JP, SG and TH. TH is still a party; nobody recognizes it.
fn agreement_without_th(dir: &Path) -> PathBuf {
    agreement_variant(dir, |text| without_rows_recognizing(&text, "TH"))
}

/// The committed jp.toml with its TH peer at `th_relay`, under agreement `mra`, with its own
/// data directory and ports.
fn jp_config(dir: &Path, mra: &Path, ports: [u16; 3], th_relay: u16) -> Config {
    let mut config = Config::load(&repo().join("crates/node/devnet/jp.toml"))
        .expect("jp.toml")
        .with_data_dir(dir.join("jp"))
        .with_ports(ports[0], ports[1], ports[2])
        .with_peer_relay("TH", &format!("https://127.0.0.1:{th_relay}"))
        .expect("TH peer")
        // No SG node runs in these tests.
        .with_peer_relay("SG", &format!("https://127.0.0.1:{}", free_port()))
        .expect("SG peer");
    config.mra = mra.to_owned();
    config.validate().expect("valid");
    config
}

/// The committed th.toml with its JP peer at `jp_relay`, under agreement `mra`, with its own
/// data directory and ports.
fn th_config(dir: &Path, mra: &Path, ports: [u16; 3], jp_relay: u16) -> Config {
    let mut config = Config::load(&repo().join("crates/node/devnet/th.toml"))
        .expect("th.toml")
        .with_data_dir(dir.join("th"))
        .with_ports(ports[0], ports[1], ports[2])
        .with_peer_relay("JP", &format!("https://127.0.0.1:{jp_relay}"))
        .expect("JP peer")
        // No SG node runs in these tests.
        .with_peer_relay("SG", &format!("https://127.0.0.1:{}", free_port()))
        .expect("SG peer");
    config.mra = mra.to_owned();
    config.validate().expect("valid");
    config
}

fn ports() -> [u16; 3] {
    [free_port(), free_port(), free_port()]
}

async fn start_both(dir: &Path, mra: &Path) -> (RunningNode, RunningNode) {
    let (jp_ports, th_ports) = (ports(), ports());
    let jp = Node::start(jp_config(dir, mra, jp_ports, th_ports[1]))
        .await
        .expect("JP node");
    let th = Node::start(th_config(dir, mra, th_ports, jp_ports[1]))
        .await
        .expect("TH node");
    (jp, th)
}

/// The node's metrics exposition.
async fn metrics(node: &RunningNode) -> String {
    scrape_metrics(node.metrics_addr.expect("metrics listener")).await
}

fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// The relay listener's TLS refusal count of `node`.
async fn relay_refusals(node: &RunningNode) -> u64 {
    counter(
        &metrics(node).await,
        "kakehashi_tls_refusals_total{listener=\"relay\"}",
    )
}

/// Polls `node`'s relay refusal count until it exceeds `before` (bounded: 5 s); returns the
/// last count seen, which the caller asserts on.
async fn relay_refusals_above(node: &RunningNode, before: u64) -> u64 {
    let mut refusals = before;
    for _ in 0..50 {
        refusals = relay_refusals(node).await;
        if refusals > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refusals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thai_node_relays_both_ways_with_jp_under_the_committed_agreement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let committed = repo().join("certs/mra.toml");
    let agreement = mra();
    let (jp, th) = start_both(dir.path(), &committed).await;
    // The participants verify each node's server certificate as its own jurisdiction does.
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut th_client = bank_client(th.public_addr, "TH", "KKHATHB0").await;
    let mut th_operator = operator_client(th.public_addr, "TH").await;
    assert_eq!(
        posted(&balances(&mut th_operator).await, "3002"),
        "5000000.00"
    );

    // JP -> TH: 10,000 JPY from Aoki Kenji (1001 at KKHAJPJ0) to Siam Rice Export Co (3002 at
    // KKHATHB0). 10,000 × 0.2315 × 0.9975 = 2,309.2125 THB, floored to the satang: 2,309.21.
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let q = quote(&mut jp_client, "TH", &source).await;
    let terms = pb::Quote::decode(q.payload.as_slice()).expect("quote");
    assert_eq!(terms.target_amount, Some(amount("THB", "2309.21")));
    let uetr = new_uetr();
    let report = submit(
        &mut jp_client,
        instruction(&jp_to_th(&alpha_jp, q, source), uetr),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(report.decided_by, "TH");
    assert_eq!(report.credited_amount, Some(amount("THB", "2309.21")));
    let receipt = report.receipt.expect("receipt");
    let (body, signer) =
        verify_receipt(&receipt, &agreement, "JP", now()).expect("TH's receipt verifies for JP");
    assert_eq!(body.uetr, uetr.to_string());
    assert_eq!(signer.jurisdiction(), "TH");
    assert_eq!(body.credited_amount, Some(amount("THB", "2309.21")));
    // Under an agreement in which nobody recognizes TH, JP does not recognize its receipt key.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let without_th =
        Mra::load(&agreement_without_th(elsewhere.path())).expect("the agreement without TH");
    let refused = verify_receipt(&receipt, &without_th, "JP", now()).expect_err("not recognized");
    assert_eq!(refused.code.as_str(), "DS0B", "{refused}");

    // TH -> JP: 1,000.00 THB from Somchai Jaidee (3001 at KKHATHB0) to Suzuki Yui (1101 at
    // KKHBJPJ0). 1,000 × 4.32 × 0.9975 = 4,309.2 JPY, floored to the yen: 4,309.
    let thai = bank("th", "KKHATHB0");
    let source = amount("THB", "1000.00");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut th_client,
        "JP",
        source,
        |q, a| th_to_jp(&thai, q, a),
        uetr,
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(report.decided_by, "JP");
    assert_eq!(report.credited_amount, Some(amount("JPY", "4309")));
    let (body, signer) = verify_receipt(&report.receipt.expect("receipt"), &agreement, "TH", now())
        .expect("JP's receipt verifies for TH");
    assert_eq!((body.uetr, signer.jurisdiction()), (uetr.to_string(), "JP"));

    // Both ledgers balance: each side moved exactly the quoted amounts.
    let jp_after = balances(&mut jp_operator).await;
    let th_after = balances(&mut th_operator).await;
    assert_eq!(posted(&jp_after, "1001"), "9990000");
    assert_eq!(posted(&jp_after, "9004"), "10000", "what JP owes TH");
    assert_eq!(posted(&jp_after, "1101"), "2004309");
    assert_eq!(posted(&jp_after, "9005"), "499995691");
    assert_eq!(posted(&th_after, "3002"), "5002309.21");
    assert_eq!(posted(&th_after, "9303"), "99997690.79");
    assert_eq!(posted(&th_after, "3001"), "999000.00");
    assert_eq!(posted(&th_after, "9302"), "1000.00", "what TH owes JP");
    for (account, (_, pending)) in jp_after.iter().chain(th_after.iter()) {
        assert!(
            pending == "0" || pending == "0.00",
            "{account}: no reservation left: {pending}"
        );
    }
    jp.shutdown().await.expect("JP");
    th.shutdown().await.expect("TH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nobody_recognizes_th_its_relay_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let without_th = agreement_without_th(dir.path());
    let (jp, th) = start_both(dir.path(), &without_th).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut th_client = bank_client(th.public_addr, "TH", "KKHATHB0").await;
    let mut th_operator = operator_client(th.public_addr, "TH").await;
    let th_before = balances(&mut th_operator).await;
    let refusals_before = relay_refusals(&th).await;

    let alpha_jp = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut jp_client,
        "TH",
        source,
        |q, a| jp_to_th(&alpha_jp, q, a),
        uetr,
    )
    .await;
    // JP cannot reach a TH node it does not recognize: the outcome is in doubt, the funds stay
    // reserved (never released by a timeout), and nothing reached TH's ledger.
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Pdng,
        "{report:?}"
    );
    let jp_now = balances(&mut jp_operator).await;
    assert_eq!(jp_now.get("1001").map(|b| b.1.as_str()), Some("10000"));
    assert_eq!(posted(&jp_now, "1001"), "10000000");
    // TH's relay listener saw the handshake fail (JP aborted on TH's certificate).
    let refusals = relay_refusals_above(&th, refusals_before).await;
    assert!(
        refusals > refusals_before,
        "TH counted a refused relay handshake"
    );
    // The recovery loop keeps asking and keeps being refused: still PDNG, TH untouched.
    let status = jp_client
        .get_payment_status(pb::PaymentStatusRequest {
            uetr: uetr.to_string(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.transaction_status(), TransactionStatus::Pdng);
    assert_eq!(balances(&mut th_operator).await, th_before);

    // The other way, JP refuses TH's client certificate: JP's relay listener counts the
    // refused handshake and TH's payment stays in doubt.
    let jp_refusals_before = relay_refusals(&jp).await;
    let jp_before = balances(&mut jp_operator).await;
    let thai = bank("th", "KKHATHB0");
    let source = amount("THB", "1000.00");
    let report = quote_and_submit(
        &mut th_client,
        "JP",
        source,
        |q, a| th_to_jp(&thai, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Pdng,
        "{report:?}"
    );
    let th_now = balances(&mut th_operator).await;
    assert_eq!(th_now.get("3001").map(|b| b.1.as_str()), Some("1000.00"));
    let refusals = relay_refusals_above(&jp, jp_refusals_before).await;
    assert!(
        refusals > jp_refusals_before,
        "JP counted a refused relay handshake"
    );
    assert_eq!(
        balances(&mut jp_operator).await,
        jp_before,
        "nothing reached JP"
    );
    jp.shutdown().await.expect("JP");
    th.shutdown().await.expect("TH");
}

/// A status query or a Prepare from one corridor peer about a UETR another peer uses (issue
/// 11): JP has corridors with TH and SG, and SG's node asks about, then relays, the UETR of
/// TH's payment. Inbound records are kept per sending jurisdiction, so SG's query fences only
/// SG's own key and reveals nothing of TH's, SG cannot pass TH's instruction off as its own,
/// and TH's payment settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_peer_can_neither_fence_nor_read_nor_take_a_peers_uetr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (jp, th) = start_both(dir.path(), &repo().join("certs/mra.toml")).await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut th_client = bank_client(th.public_addr, "TH", "KKHATHB0").await;
    // SG's node certificate: a corridor peer of JP (no SG node runs here).
    let mut sg_relay = relay_client_as("sg/node/tls", "JP", jp.relay_addr).await;

    let thai = bank("th", "KKHATHB0");
    let source = amount("THB", "1000.00");
    let q = quote(&mut th_client, "JP", &source).await;
    let uetr = new_uetr();
    let genuine = instruction(&th_to_jp(&thai, q, source), uetr);
    let sha = instruction::decode(&genuine)
        .expect("instruction")
        .payload_sha256
        .to_vec();
    let status_from_sg = |sha: Vec<u8>| pb::RelayStatusRequest {
        uetr: uetr.to_string(),
        instruction_sha256: sha,
    };

    // Before TH's payment: SG relays TH's signed instruction as its own: refused (the signer
    // is TH's), unrecorded; then SG's status query fences SG's key only.
    let replayed = prepare(&mut sg_relay, &genuine).await;
    crate::peers::assert_refused(
        "TH's instruction from SG",
        replayed,
        tonic::Code::FailedPrecondition,
        "DS0B",
    );
    let fenced = sg_relay
        .get_status(status_from_sg(Vec::new()))
        .await
        .expect("SG may ask about its own payments")
        .into_inner();
    assert_eq!(fenced.decision(), Decision::UnknownFenced, "{fenced:?}");

    let jp_before = balances(&mut jp_operator).await;
    let report = submit(&mut th_client, genuine.clone()).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(report.credited_amount, Some(amount("JPY", "4309")));

    // After it: SG, asking with the instruction's digest, still sees only its own fence, not
    // TH's settled payment or its receipt.
    let seen = sg_relay
        .get_status(status_from_sg(sha))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(seen.decision(), Decision::UnknownFenced, "{seen:?}");
    assert!(seen.receipt.is_none());
    // SG's Prepare of it is still refused, fence or not, and credits nothing.
    let replayed = prepare(&mut sg_relay, &genuine).await;
    crate::peers::assert_refused(
        "TH's settled instruction from SG",
        replayed,
        tonic::Code::FailedPrecondition,
        "DS0B",
    );
    let jp_after = balances(&mut jp_operator).await;
    assert_eq!(
        posted(&jp_after, "1101"),
        (posted(&jp_before, "1101").parse::<u64>().expect("JPY") + 4309).to_string(),
        "credited once"
    );
    jp.shutdown().await.expect("JP");
    th.shutdown().await.expect("TH");
}
