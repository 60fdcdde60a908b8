//! The hostile-peer suite of the relay (issue 11). Relay calls from a party that is not the
//! corridor's peer (defect 1): the caller's chain is recognized for node TLS, so the handshake
//! succeeds; the node must still refuse the call before it reads or writes anything. Prepares
//! from the genuine peer with forged or replayed instructions (defect 2): refused without a
//! decision, nothing written. Each time the genuine sender's payment under the same UETR then
//! settles as if nothing had happened, and the balances move exactly once. (A status query or a
//! Prepare from another corridor peer about the same UETR is in `third_jurisdiction`, which
//! has three nodes' worth of agreement.)

use kakehashi_node::config::Config;
use kakehashi_node::node::Node;
use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::{self, Decision, TransactionStatus};
use kakehashi_protocol::money;
use tonic::{Code, Status};

use crate::support::*;

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
    // TH recognizes SG's nodes under the committed agreement, but this TH node's configuration
    // has its SG peer taken out: its only corridor is with JP.
    let mut config = Config::load(&repo().join("crates/node/devnet/th.toml"))
        .expect("th.toml")
        .with_data_dir(dir.path().join("th"))
        .with_ports(free_port(), free_port(), free_port())
        // No JP node runs here; nothing is relayed.
        .with_peer_relay("JP", &format!("https://127.0.0.1:{}", free_port()))
        .expect("JP peer");
    let peers = config.peers.len();
    config.peers.retain(|peer| peer.jurisdiction != "SG");
    assert_eq!(config.peers.len(), peers - 1, "th.toml has an SG peer");
    config.validate().expect("valid");
    let th = Node::start(config).await.expect("TH node");

    // SG's node certificate, recognized by TH for node TLS.
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

/// The call was refused with an error status `code` carrying `reason` in its metadata: a
/// refusal, not a decision (a decision would be a `RelayDecision`, which the sender voids on).
#[track_caller]
pub(crate) fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) {
    let status = match result {
        Ok(answer) => panic!("{what}: answered with a decision: {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(
        status
            .metadata()
            .get(REASON_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some(reason),
        "{what}: {status:?}"
    );
}

/// The posted balance of `account` in minor units of `currency`.
fn posted_minor(
    balances: &std::collections::BTreeMap<String, (String, String)>,
    account: &str,
    currency: &str,
) -> u128 {
    let text = posted(balances, account);
    money::parse_amount(&amount(currency, &text))
        .unwrap_or_else(|e| panic!("{account}: {text}: {e}"))
        .1
}

/// Issue 11, defect 2: a Prepare the receiver cannot authenticate used to leave a REJECTED
/// record under its UETR, and the genuine instruction was then refused with that record's
/// reason. Every forgery below comes over the genuine peer's own relay connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_prepares_from_the_peer_are_refused_and_write_nothing() {
    let mut pair = pair().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let (uetr, other_uetr) = (new_uetr(), new_uetr());
    let source = amount("JPY", "10000");
    let q = quote(&mut pair.jp_client, "SG", &source).await;
    let genuine = instruction(&jp_to_sg(&alpha, q, source.clone()), uetr);
    let q = quote(&mut pair.jp_client, "SG", &source).await;
    let other = instruction(&jp_to_sg(&alpha, q, source), other_uetr);
    let mut jp_relay = relay_client_as("jp/node/tls", "SG", pair.sg.relay_addr).await;
    let before = pair.snapshot().await;

    let zeroed = pb::Signed {
        signature: vec![0; genuine.signature.len()],
        ..genuine.clone()
    };
    let one_amount_byte = pb::Signed {
        payload: edited(&genuine, |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "10001"));
        }),
        ..genuine.clone()
    };
    assert_eq!(one_amount_byte.payload.len(), genuine.payload.len());
    // A bank of SG (recognized by SG for payment signing) naming itself the debtor agent: a
    // valid signature, but not from a bank of the jurisdiction the Prepare came from.
    let sg_bank = bank("sg", "KKHASGS0");
    let foreign_signer = sign_payload(
        &sg_bank,
        edited(&genuine, |b| b.debtor_agent_bic = "KKHASGS0".into()),
    );
    // Another payment's signature and chain over this payload.
    let borrowed_signature = pb::Signed {
        payload: genuine.payload.clone(),
        ..other.clone()
    };
    for (what, forged) in [
        ("zeroed signature", &zeroed),
        ("one amount byte changed", &one_amount_byte),
        ("signer of another jurisdiction", &foreign_signer),
        ("another payment's signature", &borrowed_signature),
    ] {
        let answer = prepare(&mut jp_relay, forged).await;
        assert_refused(what, answer, Code::FailedPrecondition, "DS0B");
    }
    let garbage = pb::Signed {
        payload: b"not an instruction".to_vec(),
        ..genuine.clone()
    };
    assert_refused(
        "undecodable payload",
        prepare(&mut jp_relay, &garbage).await,
        Code::InvalidArgument,
        "FF01",
    );
    assert_eq!(pair.snapshot().await, before, "no forgery moved money");

    // The genuine payments settle: no record stood in their way.
    let report = submit(&mut pair.jp_client, genuine.clone()).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    let credited = money::parse_amount(report.credited_amount.as_ref().expect("credited"))
        .expect("amount")
        .1;
    let report_other = submit(&mut pair.jp_client, other.clone()).await;
    assert_eq!(
        report_other.transaction_status(),
        TransactionStatus::Acsc,
        "{report_other:?}"
    );
    let settled = pair.snapshot().await;

    // Replayed: the settled payment's Prepare again gets the same decision and receipt, and
    // credits nothing more; a forgery of a settled payment is still refused.
    let again = prepare(&mut jp_relay, &genuine)
        .await
        .expect("the same instruction gets its decision");
    assert_eq!(again.decision(), Decision::Settled, "{again:?}");
    assert_eq!(again.receipt, report.receipt);
    assert_refused(
        "zeroed signature of a settled payment",
        prepare(&mut jp_relay, &zeroed).await,
        Code::FailedPrecondition,
        "DS0B",
    );
    assert_eq!(pair.snapshot().await, settled, "a replay moved money");

    // Balances moved exactly once per payment.
    let (jp_before, sg_before) = &before;
    let (jp_after, sg_after) = &settled;
    assert_eq!(
        posted_minor(jp_before, "1001", "JPY") - posted_minor(jp_after, "1001", "JPY"),
        20_000
    );
    assert_eq!(
        posted_minor(sg_after, "2001", "SGD") - posted_minor(sg_before, "2001", "SGD"),
        2 * credited
    );
    pair.shutdown().await;
}

/// A Prepare the receiver refuses without deciding (here: SG no longer recognizes JP's banks
/// for payment signing, while JP, relying on its own PKI, accepted the instruction) is not a
/// decision; the sender asks for the status at once, which fences, and only then voids, with
/// the refusal's reason rather than a timeout's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_prepare_is_fenced_then_voided_with_the_refusals_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mra = agreement_variant(dir.path(), |text| {
        let row = "id = \"SG-recognizes-JP\"";
        let start = text.find(row).expect("the SG-recognizes-JP row");
        let purposes = "purposes = [\"node-tls\", \"payment-signing\", \"receipt-signing\"]";
        let at = start + text[start..].find(purposes).expect("its purposes");
        let mut text = text;
        text.replace_range(
            at..at + purposes.len(),
            "purposes = [\"node-tls\", \"receipt-signing\"]",
        );
        text
    });
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    let mut sg_config = config("SG", dir.path(), &ports);
    sg_config.mra = mra;
    sg_config.validate().expect("valid");
    let sg = Node::start(sg_config).await.expect("SG node");
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let before = (
        balances(&mut jp_operator).await,
        balances(&mut sg_operator).await,
    );

    let alpha = bank("jp", "KKHAJPJ0");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        amount("JPY", "10000"),
        |q, a| jp_to_sg(&alpha, q, a),
        uetr,
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Rjct,
        "{report:?}"
    );
    assert_eq!(report.status_reason_code, "DS0B", "{report:?}");
    assert_eq!(report.decided_by, "SG");
    // Voided, not reserved; SG credited nothing.
    let after = (
        balances(&mut jp_operator).await,
        balances(&mut sg_operator).await,
    );
    assert_eq!(after, before);
    // The fence is durable: the same instruction can never settle there now.
    let mut jp_relay = relay_client_as("jp/node/tls", "SG", sg.relay_addr).await;
    let status = jp_relay
        .get_status(pb::RelayStatusRequest {
            uetr: uetr.to_string(),
            instruction_sha256: Vec::new(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.decision(), Decision::UnknownFenced, "{status:?}");
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");
}
