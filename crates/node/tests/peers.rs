//! Relay calls from a party that is not the corridor's peer (issue 11, defect 1). The caller's
//! chain is recognized for node TLS, so the handshake succeeds; the node must still refuse the
//! call before it reads or writes anything, and the genuine sender's payment under the same
//! UETR must settle as if nothing had happened.

use std::net::SocketAddr;

use kakehashi_node::config::{Config, Limits, Peer};
use kakehashi_node::node::Node;
use kakehashi_node::tls::{TlsIdentity, relay_endpoint};
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::{self, TransactionStatus};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

/// A relay client to `addr` presenting the node TLS identity `stem` (under certs/) and checking
/// the server as `relying` does.
async fn relay_client_as(stem: &str, relying: &str, addr: SocketAddr) -> RelayClient<Channel> {
    let certs = repo().join("certs");
    let identity = TlsIdentity::load(
        &certs.join(format!("{stem}.pem")),
        &certs.join(format!("{stem}.key.pem")),
    )
    .expect("identity");
    let peer = Peer {
        jurisdiction: relying.to_owned(),
        relay: format!("https://{addr}").parse().expect("uri"),
        server_name: "localhost".to_owned(),
        corridor_account: 1,
        liquidity_account: 2,
    };
    let endpoint =
        relay_endpoint(&peer, &identity, mra(), relying, &Limits::default()).expect("endpoint");
    let channel = endpoint
        .connect()
        .await
        .expect("the handshake succeeds: the caller's chain is recognized for node TLS");
    RelayClient::new(channel)
}

#[tokio::test]
async fn a_node_of_the_receivers_own_jurisdiction_can_neither_fence_nor_decide_a_payment() {
    let mut pair = pair().await;
    let bank = bank("jp", "KKHAJPJ0");
    let uetr = new_uetr();
    // SG's own node certificate (SG recognizes its own PKI) on SG's relay listener.
    let mut impostor = relay_client_as("sg/node/tls", "SG", pair.sg.relay_addr).await;

    let fence = impostor
        .get_status(pb::RelayStatusRequest {
            uetr: uetr.to_string(),
            instruction_sha256: Vec::new(),
        })
        .await
        .expect_err("a status query from SG itself is refused");
    assert_eq!(fence.code(), Code::PermissionDenied, "{fence:?}");

    let source = amount("JPY", "10000");
    let q = quote(&mut pair.jp_client, "SG", &source).await;
    let genuine = instruction(&jp_to_sg(&bank, q, source), uetr);
    let decide = impostor
        .prepare(pb::PrepareRequest {
            instruction: Some(genuine.clone()),
        })
        .await
        .expect_err("a Prepare from SG itself is refused");
    assert_eq!(decide.code(), Code::PermissionDenied, "{decide:?}");

    // Nothing was fenced or decided: JP's own payment under that UETR settles.
    let report = submit(&mut pair.jp_client, genuine).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    pair.shutdown().await;
}

#[tokio::test]
async fn a_recognized_node_without_a_corridor_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // TH also recognizes SG's nodes, but TH's only corridor is with JP.
    let mra = agreement_variant(dir.path(), |text| {
        let row = "id = \"TH-recognizes-SG\"";
        let start = text.find(row).expect("the TH-recognizes-SG row");
        let purposes = "purposes = [\"payment-signing\", \"receipt-signing\"]";
        let at = start + text[start..].find(purposes).expect("its purposes");
        let mut text = text;
        text.replace_range(
            at..at + purposes.len(),
            "purposes = [\"payment-signing\", \"receipt-signing\", \"node-tls\"]",
        );
        text
    });
    let mut config = Config::load(&repo().join("crates/node/devnet/th.toml"))
        .expect("th.toml")
        .with_data_dir(dir.path().join("th"))
        .with_ports(free_port(), free_port(), free_port())
        // No JP node runs here; nothing is relayed.
        .with_peer_relay("JP", &format!("https://127.0.0.1:{}", free_port()))
        .expect("JP peer");
    config.mra = mra;
    config.validate().expect("valid");
    let th = Node::start(config).await.expect("TH node");

    // SG's node certificate, recognized by TH for node TLS under this agreement.
    let mut stranger = relay_client_as("sg/node/tls", "TH", th.relay_addr).await;
    let fence = stranger
        .get_status(pb::RelayStatusRequest {
            uetr: new_uetr().to_string(),
            instruction_sha256: Vec::new(),
        })
        .await
        .expect_err("a status query from a node without a corridor is refused");
    assert_eq!(fence.code(), Code::PermissionDenied, "{fence:?}");
    let decide = stranger
        .prepare(pb::PrepareRequest {
            instruction: Some(pb::Signed::default()),
        })
        .await
        .expect_err("a Prepare from a node without a corridor is refused");
    assert_eq!(decide.code(), Code::PermissionDenied, "{decide:?}");
    th.shutdown().await.expect("TH shutdown");
}
