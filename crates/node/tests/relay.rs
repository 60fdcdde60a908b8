//! The settlement protocol end to end inside one test process: a JP and an SG node started
//! from the devnet configurations on real sockets on 127.0.0.1, real mutual TLS, real sled
//! ledgers in temporary directories, and participants who sign with the committed bank keys.
//!
//! Every rejection is checked for "nothing moved": the balances of every account on both
//! ledgers are compared before and after.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_node::node::Node;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::{self as pb, TransactionStatus};
use kakehashi_protocol::money::{self, Rate};
use kakehashi_protocol::quote::{QuoteIssuer, QuoteOffer};
use prost::Message;
use tonic::Code;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_settle_both_ways_and_balance_on_both_ledgers() {
    let mut p = pair().await;
    let (jp_before, sg_before) = p.snapshot().await;

    // JP -> SG: 10,000 JPY from Aoki Kenji (1001 at KKHAJPJ0) to Tan Wei Ming (2001 at KKHASGS0).
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let terms = pb::Quote::decode(q.payload.as_slice()).expect("quote payload");
    assert_eq!(
        terms.target_amount.as_ref().map(|a| a.currency.as_str()),
        Some("SGD")
    );
    // 10,000 × 0.0087 × (1 − 0.0025) = 86.7825 SGD, floored to the cent.
    assert_eq!(
        terms.target_amount.as_ref().map(|a| a.value.as_str()),
        Some("86.78")
    );
    let uetr = new_uetr();
    let report = submit(
        &mut p.jp_client,
        instruction(&jp_to_sg(&alpha_jp, q, source), uetr),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(report.uetr, uetr.to_string());
    assert_eq!(
        report.credited_amount.as_ref().map(|a| a.value.as_str()),
        Some("86.78")
    );
    let receipt = report.receipt.clone().expect("a receipt");
    let (receipt_body, signer) =
        kakehashi_protocol::receipt::verify_receipt(&receipt, &mra(), "JP", now())
            .expect("receipt verifies under the MRA");
    assert_eq!(receipt_body.uetr, uetr.to_string());
    assert_eq!(signer.jurisdiction(), "SG");

    // SG -> JP: 100.00 SGD from Nur Aisyah (2101 at KKHBSGS0) to Suzuki Yui (1101 at KKHBJPJ0).
    let beta_sg = bank("sg", "KKHBSGS0");
    let source = amount("SGD", "100.00");
    let q = quote(&mut p.sg_client, "JP", &source).await;
    let terms = pb::Quote::decode(q.payload.as_slice()).expect("quote payload");
    // 10,000 cents × 114.9 × 0.9975 / 100 = 11,461.275 JPY, floored to the yen.
    assert_eq!(
        terms.target_amount.as_ref().map(|a| a.value.as_str()),
        Some("11461")
    );
    let report = submit_as(
        p.sg.public_addr,
        "SG",
        instruction(&sg_to_jp(&beta_sg, q, source), new_uetr()),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );

    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!(posted(&jp_before, "1001"), "10000000");
    assert_eq!(posted(&jp_after, "1001"), "9990000");
    assert_eq!(
        posted(&jp_after, "9002"),
        "10000",
        "JP's corridor holds what JP owes SG"
    );
    assert_eq!(posted(&sg_after, "2001"), "100086.78");
    assert_eq!(posted(&sg_after, "9103"), "9999913.22");
    assert_eq!(posted(&sg_after, "2101"), "19900.00");
    assert_eq!(posted(&sg_after, "9102"), "100.00");
    assert_eq!(posted(&jp_after, "1101"), "2011461");
    assert_eq!(posted(&jp_after, "9003"), "999988539");
    for (_, (_, pending)) in jp_after.iter().chain(sg_after.iter()) {
        assert!(
            pending == "0" || pending == "0.00",
            "no reservation left: {pending}"
        );
    }
    assert_ne!(sg_before, sg_after);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_moves_nothing() {
    let mut p = pair().await;
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let beta_jp = bank("jp", "KKHBJPJ0");
    let revoked_jp = bank("jp", "KKHCJPJ0");
    let (jp_before, sg_before) = p.snapshot().await;

    let mut cases: Vec<(&str, &str, pb::Signed)> = Vec::new();
    let small = amount("JPY", "1000");
    // AC01: unknown creditor account on SG.
    let q = quote(&mut p.jp_client, "SG", &small).await;
    cases.push((
        "AC01",
        "unknown creditor account",
        instruction(
            &Payment {
                creditor_account: 2999,
                creditor_name: "Nobody",
                ..jp_to_sg(&alpha_jp, q, small.clone())
            },
            new_uetr(),
        ),
    ));
    // AM04: Tanaka Hiroshi (1102) holds 500,000 JPY and sends 600,000.
    let big = amount("JPY", "600000");
    let q = quote(&mut p.jp_client, "SG", &big).await;
    cases.push((
        "AM04",
        "insufficient funds",
        instruction(
            &Payment {
                debtor_account: 1102,
                debtor_name: "Tanaka Hiroshi",
                ..jp_to_sg(&beta_jp, q, big)
            },
            new_uetr(),
        ),
    ));
    // RR04: a sanctioned creditor name.
    let q = quote(&mut p.jp_client, "SG", &small).await;
    cases.push((
        "RR04",
        "sanctioned party",
        instruction(
            &Payment {
                creditor_name: "Sanctioned  Trading CO",
                ..jp_to_sg(&alpha_jp, q, small.clone())
            },
            new_uetr(),
        ),
    ));
    // DS0B: the revoked bank signs.
    let q = quote(&mut p.jp_client, "SG", &small).await;
    cases.push((
        "DS0B",
        "revoked signer",
        instruction(&jp_to_sg(&revoked_jp, q, small.clone()), new_uetr()),
    ));
    // AB05: a quote that expired an hour ago, signed with JP's real receipt key.
    let jp_receipt_key = SigningKey::from_pkcs8_pem(
        &std::fs::read_to_string(repo().join("certs/jp/node/receipt.key.pem")).expect("key"),
    )
    .expect("pkcs8");
    let jp_receipt_chain = pem::blocks_or_der(
        &std::fs::read(repo().join("certs/jp/node/receipt.pem")).expect("chain"),
        "CERTIFICATE",
    )
    .expect("pem");
    let issuer = QuoteIssuer {
        jurisdiction: "JP".into(),
        key: jp_receipt_key,
        chain: jp_receipt_chain,
        ttl_secs: 60,
    };
    let stale = issuer
        .issue(
            &QuoteOffer {
                counterparty: "SG",
                source: (money::currency("JPY").expect("JPY"), 1000),
                target_currency: money::currency("SGD").expect("SGD"),
                mid: Rate::parse("0.0087").expect("rate"),
                spread_bps: 25,
            },
            UnixTime(now().0 - 3600),
            "Q-test-stale".into(),
        )
        .expect("stale quote");
    cases.push((
        "AB05",
        "expired quote",
        instruction(&jp_to_sg(&alpha_jp, stale, small.clone()), new_uetr()),
    ));

    for (code, what, signed) in cases {
        let report = submit_as(p.jp.public_addr, "JP", signed).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Rjct,
            "{what}: {report:?}"
        );
        assert_eq!(report.status_reason_code, code, "{what}: {report:?}");
        assert!(!report.status_reason_detail.is_empty(), "{what}: a detail");
    }
    // FF01: an amount with more decimals than JPY has never reaches a report.
    let err = p
        .jp_client
        .get_quote(pb::QuoteRequest {
            counterparty_jurisdiction: "SG".into(),
            source_amount: Some(amount("JPY", "12.5")),
        })
        .await
        .expect_err("JPY has no minor unit");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.metadata()
            .get(REASON_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("FF01")
    );

    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!(jp_before, jp_after, "JP ledger unchanged");
    assert_eq!(sg_before, sg_after, "SG ledger unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_submission_credits_once_and_is_dupl() {
    let mut p = pair().await;
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "5000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let signed = instruction(
        &Payment {
            bank: &alpha_jp,
            debtor_account: 1002,
            debtor_name: "Sato Trading KK",
            creditor_bic: "KKHASGS0",
            creditor_account: 2002,
            creditor_name: "Lim Logistics Pte Ltd",
            quote: q,
            amount: source,
        },
        new_uetr(),
    );
    let first = submit(&mut p.jp_client, signed.clone()).await;
    assert_eq!(
        first.transaction_status(),
        TransactionStatus::Acsc,
        "{first:?}"
    );
    let (jp_mid, sg_mid) = p.snapshot().await;
    let second = submit(&mut p.jp_client, signed).await;
    assert_eq!(second.transaction_status(), TransactionStatus::Rjct);
    assert_eq!(second.status_reason_code, "DUPL");
    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!((jp_mid, sg_mid), (jp_after, sg_after));
    // The status by UETR is still the first outcome.
    let status = p
        .jp_client
        .get_payment_status(pb::PaymentStatusRequest {
            uetr: first.uetr.clone(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.transaction_status(), TransactionStatus::Acsc);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_in_doubt_while_the_receiver_is_down_is_fenced_and_voided() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let jp_before = balances(&mut jp_operator).await;
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "7000");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        source,
        |q, a| jp_to_sg(&alpha_jp, q, a),
        uetr,
    )
    .await;
    // SG is not running: the outcome is unknown, the funds stay reserved.
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Pdng,
        "{report:?}"
    );
    let reserved = balances(&mut jp_operator).await;
    assert_eq!(reserved.get("1001").map(|b| b.1.as_str()), Some("7000"));

    // SG comes up; JP's recovery asks, SG fences, JP voids.
    let sg = start("SG", dir.path(), &ports).await;
    let final_report = settled_status(&mut jp_client, &uetr.to_string()).await;
    assert_eq!(final_report.transaction_status(), TransactionStatus::Rjct);
    assert_eq!(final_report.status_reason_code, "AB05");
    assert_eq!(
        balances(&mut jp_operator).await,
        jp_before,
        "the reservation is released"
    );
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let sg_balances = balances(&mut sg_operator).await;
    assert_eq!(
        posted(&sg_balances, "2001"),
        "100000.00",
        "nothing credited"
    );
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_payment_whose_receipt_does_not_verify_is_posted_and_counted_as_an_anomaly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    // JP's copy of the agreement no longer recognizes SG's keys for receipt signing (node TLS
    // and payment signing stay), so every receipt SG signs fails to verify at JP.
    let jp_agreement = agreement_variant(dir.path(), |text| {
        let row = "relying = \"JP\"\nissuing = \"SG\"\n\
                   purposes = [\"node-tls\", \"payment-signing\", \"receipt-signing\"]";
        assert_eq!(text.matches(row).count(), 1, "the JP-recognizes-SG row");
        text.replace(
            row,
            "relying = \"JP\"\nissuing = \"SG\"\npurposes = [\"node-tls\", \"payment-signing\"]",
        )
    });
    let mut jp_config = config("JP", dir.path(), &ports);
    jp_config.mra = jp_agreement;
    let jp = Node::start(jp_config).await.expect("JP node");
    let sg = start("SG", dir.path(), &ports).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let anomalies =
        |kind: &str| format!("kakehashi_receipt_anomalies_total{{peer=\"SG\",kind=\"{kind}\"}}");
    let jp_metrics = jp.metrics_addr.expect("JP serves metrics");
    let before = scrape_metrics(jp_metrics).await;
    assert!(
        before.contains(&format!("{} 0", anomalies("invalid"))),
        "{before}"
    );

    let alpha = bank("jp", "KKHAJPJ0");
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        amount("JPY", "10000"),
        |q, a| jp_to_sg(&alpha, q, a),
        new_uetr(),
    )
    .await;
    // SG credited, so JP posts its reservation: the payment settled, with the anomaly noted.
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert!(
        report
            .status_reason_detail
            .contains("the receipt did not verify"),
        "{report:?}"
    );
    let jp_after = balances(&mut jp_operator).await;
    assert_eq!(posted(&jp_after, "1001"), "9990000", "debited");
    assert_eq!(
        jp_after.get("1001").map(|b| b.1.as_str()),
        Some("0"),
        "no reservation left"
    );
    assert_eq!(posted(&jp_after, "9002"), "10000", "owed to SG");
    let sg_after = balances(&mut sg_operator).await;
    assert_eq!(posted(&sg_after, "2001"), "100086.78", "credited");

    let after = scrape_metrics(jp_metrics).await;
    for (kind, count) in [("invalid", 1), ("missing", 0), ("mismatch", 0)] {
        assert!(
            after.contains(&format!("{} {count}\n", anomalies(kind))),
            "{kind} should be {count} in\n{after}"
        );
    }
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");
}

/// A peer listed with two relay addresses, the first of which nothing listens on (a process of
/// the peer that is down): the Prepare that cannot reach it goes to the second address within
/// the same call, and the payment settles at once instead of waiting in doubt for recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_settles_through_the_second_relay_address_when_the_first_is_down() {
    let down = format!("https://127.0.0.1:{}", free_port());
    let mut p = pair_with(|config| {
        if let Some(peer) = config.peers.first() {
            let live = peer.relays[0].to_string();
            let jurisdiction = peer.jurisdiction.clone();
            *config = config
                .clone()
                .with_peer_relays(&jurisdiction, &[&down, &live])
                .expect("two relay addresses");
        }
    })
    .await;
    let (jp_before, sg_before) = p.snapshot().await;
    for _ in 0..2 {
        let source = amount("JPY", "10000");
        let q = quote(&mut p.jp_client, "SG", &source).await;
        let report = submit(
            &mut p.jp_client,
            instruction(&jp_to_sg(&bank("jp", "KKHAJPJ0"), q, source), new_uetr()),
        )
        .await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "{report:?}"
        );
    }
    let (jp_after, sg_after) = p.snapshot().await;
    // Each payment moved once: 10,000 JPY debited and 86.78 SGD credited, twice.
    assert_eq!(
        (
            posted(&jp_before, "1001").as_str(),
            posted(&jp_after, "1001").as_str()
        ),
        ("10000000", "9980000")
    );
    assert_eq!(
        (
            posted(&sg_before, "2001").as_str(),
            posted(&sg_after, "2001").as_str()
        ),
        ("100000.00", "100173.56")
    );
    p.shutdown().await;
}
