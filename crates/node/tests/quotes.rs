//! Quotes tied to the node that issued them (issue 11, defect 7). The sender settles only a
//! quote it issued: its own key, an id it still holds, the terms it signed, once; a key its
//! jurisdiction certified for receipts is not enough. The receiver refuses a rate outside its
//! band around its own mid rate.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_node::node::Node;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::{self, Decision, TransactionStatus};
use kakehashi_protocol::money::{self, Rate};
use kakehashi_protocol::quote::{QuoteIssuer, QuoteOffer, verify_quote};
use prost::Message;
use tonic::transport::Channel;

use crate::support::*;

/// A receipt-signing key of JP other than the JP node's: certified by JP's committed issuing
/// CA, so the agreement recognizes it for JP's quotes exactly as it recognizes the node's.
fn other_jp_signer() -> (SigningKey, Vec<Vec<u8>>) {
    let seed = std::fs::read_to_string(repo().join("certs/dev-seed.txt")).expect("dev seed");
    let (key, chain) = kakehashi_devpki::other_receipt_signer(seed.trim(), "JP", "other-desk")
        .expect("generated")
        .expect("JP is a jurisdiction of the dev PKI");
    (
        SigningKey::from_pkcs8_pem(&key).expect("pkcs8"),
        pem::blocks_or_der(chain.as_bytes(), "CERTIFICATE").expect("chain"),
    )
}

/// The JP node's own receipt- and quote-signing key and chain, as committed.
fn jp_node_signer() -> (SigningKey, Vec<Vec<u8>>) {
    let key = std::fs::read_to_string(repo().join("certs/jp/node/receipt.key.pem")).expect("key");
    let chain = std::fs::read(repo().join("certs/jp/node/receipt.pem")).expect("chain");
    (
        SigningKey::from_pkcs8_pem(&key).expect("pkcs8"),
        pem::blocks_or_der(&chain, "CERTIFICATE").expect("chain"),
    )
}

/// A JP→SG quote of `jpy` yen at `mid` SGD per JPY less 25 bps, issued at `at` under `id`
/// and signed by `signer`.
fn jp_quote_by(
    signer: (SigningKey, Vec<Vec<u8>>),
    mid: &str,
    jpy: u128,
    at: UnixTime,
    id: &str,
) -> pb::Signed {
    let (key, chain) = signer;
    QuoteIssuer {
        jurisdiction: "JP".into(),
        key,
        chain,
        ttl_secs: 60,
    }
    .issue(
        &QuoteOffer {
            counterparty: "SG",
            source: (money::currency("JPY").expect("JPY"), jpy),
            target_currency: money::currency("SGD").expect("SGD"),
            mid: Rate::parse(mid).expect("rate"),
            spread_bps: 25,
        },
        at,
        id.to_owned(),
    )
    .expect("quote")
}

/// The sender's report on the usual JP→SG payment of `source` from `bank` at `quote`, under a
/// new UETR, submitted through `client`.
async fn submit_at(
    client: &mut PaymentsClient<Channel>,
    bank: &Bank,
    quote: pb::Signed,
    source: pb::ActiveCurrencyAndAmount,
) -> pb::PaymentStatusReport {
    submit(
        client,
        instruction(&jp_to_sg(bank, quote, source), new_uetr()),
    )
    .await
}

#[track_caller]
fn refused(report: &pb::PaymentStatusReport, code: &str, needle: &str) {
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Rjct,
        "{report:?}"
    );
    assert_eq!(report.status_reason_code, code, "{report:?}");
    assert!(
        report.status_reason_detail.contains(needle),
        "{:?} lacks {needle:?}",
        report.status_reason_detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_signed_by_another_key_of_the_senders_jurisdiction_does_not_settle() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    // At JP's own rate and at twice it: the key, not the rate, is what is refused.
    for (n, mid) in ["0.0087", "0.0174"].into_iter().enumerate() {
        let q = jp_quote_by(
            other_jp_signer(),
            mid,
            10_000,
            now(),
            &format!("Q-other-{n}"),
        );
        // The key is recognized for JP's quotes: only "is it this node's own" tells them apart.
        let (_, signer) = verify_quote(&q, &*mra(), "JP", now(), 30, &[]).expect("recognized");
        assert_eq!(signer.jurisdiction(), "JP");
        let report = submit_at(&mut p.jp_client, &bank, q, source.clone()).await;
        refused(
            &report,
            "DS0B",
            "not with this node's own quote-signing key",
        );
    }
    assert_eq!(p.snapshot().await, before, "nothing moved on either ledger");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_of_this_node_re_signed_at_another_rate_is_refused_and_a_quote_is_used_once() {
    let mut p = pair().await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let genuine = quote(&mut p.jp_client, "SG", &source).await;
    let terms = pb::Quote::decode(genuine.payload.as_slice()).expect("quote");
    let issued_at = UnixTime(terms.issued_at.expect("issued_at").seconds);
    let before = p.snapshot().await;

    // The node's quote, its id and time kept, at twice the rate: re-signed by another key of
    // JP, then by the node's own key (as a leaked key would), which the node did not sign.
    let other = jp_quote_by(
        other_jp_signer(),
        "0.0174",
        10_000,
        issued_at,
        &terms.quote_id,
    );
    let report = submit_at(&mut p.jp_client, &bank, other, source.clone()).await;
    refused(
        &report,
        "DS0B",
        "not with this node's own quote-signing key",
    );
    let own = jp_quote_by(
        jp_node_signer(),
        "0.0174",
        10_000,
        issued_at,
        &terms.quote_id,
    );
    let report = submit_at(&mut p.jp_client, &bank, own, source.clone()).await;
    refused(&report, "DS0B", "differs from the quote JP issued");
    // The node's own key at a rate its [fx] never gave, under an id it never issued.
    let unknown = jp_quote_by(jp_node_signer(), "0.0087", 10_000, now(), "Q-never-issued");
    let report = submit_at(&mut p.jp_client, &bank, unknown, source.clone()).await;
    refused(&report, "AB05", "holds no quote Q-never-issued");
    assert_eq!(p.snapshot().await, before, "nothing moved on either ledger");

    // The refusals took nothing: the genuine quote settles its payment, and only that one.
    let first = new_uetr();
    let report = submit(
        &mut p.jp_client,
        instruction(&jp_to_sg(&bank, genuine.clone(), source.clone()), first),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    let settled = p.snapshot().await;
    let report = submit_at(&mut p.jp_client, &bank, genuine, source).await;
    refused(&report, "DUPL", &format!("already carried payment {first}"));
    assert_eq!(
        p.snapshot().await,
        settled,
        "the second payment moved nothing"
    );
    p.shutdown().await;
}

/// The node does not verify again the signature of a quote it holds byte for byte (issue 14):
/// its genuine terms under a signature it did not make, or with another chain, are not that
/// quote, and are refused as before; the genuine quote then settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_quote_with_another_signature_or_chain_is_refused() {
    let mut p = pair().await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let genuine = quote(&mut p.jp_client, "SG", &source).await;
    let before = p.snapshot().await;

    let mut flipped = genuine.clone();
    flipped.signature[0] ^= 1;
    let report = submit_at(&mut p.jp_client, &bank, flipped, source.clone()).await;
    refused(&report, "DS0B", "signature does not verify");

    // The genuine terms signed again by another key JP certified for quotes, its chain sent.
    let (other_key, other_chain) = other_jp_signer();
    let mut other = kakehashi_protocol::signed::sign(
        kakehashi_proto::SIGNING_DOMAIN_QUOTE,
        genuine.payload.clone(),
        &other_key,
        &other_chain,
    );
    let report = submit_at(&mut p.jp_client, &bank, other.clone(), source.clone()).await;
    refused(
        &report,
        "DS0B",
        "not with this node's own quote-signing key",
    );
    // The node's own signature with the other key's chain.
    other.signature.clone_from(&genuine.signature);
    let report = submit_at(&mut p.jp_client, &bank, other, source.clone()).await;
    refused(&report, "DS0B", "signature does not verify");
    assert_eq!(p.snapshot().await, before, "nothing moved on either ledger");

    let report = submit_at(&mut p.jp_client, &bank, genuine, source).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_issued_before_a_restart_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No SG node: every payment here is refused before anything is forwarded.
    let jp = start("JP", dir.path(), &Ports::new()).await;
    let mut participant = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let source = amount("JPY", "10000");
    let q = quote(&mut participant, "SG", &source).await;
    jp.shutdown().await.expect("JP shutdown");

    let jp = start("JP", dir.path(), &Ports::new()).await;
    let mut participant = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let bank = bank("jp", "KKHAJPJ0");
    let report = submit_at(&mut participant, &bank, q, source).await;
    refused(&report, "AB05", "issued before this node restarted");
    jp.shutdown().await.expect("JP shutdown");
}

/// A payment resubmitted after its quote is gone (here by a restart) is still DUPL with its
/// status, so a replay run again after an interruption learns that it settled; the quote's
/// checks come after the UETR's. Before that order, the answer was RJCT AB05 "ask for a new
/// quote", and a replay would have reported a settled payment as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_payment_resubmitted_after_its_quote_is_gone_is_dupl_with_its_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    let sg = start("SG", dir.path(), &ports).await;
    let mut participant = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let q = quote(&mut participant, "SG", &source).await;
    let signed = instruction(&jp_to_sg(&bank, q, source), new_uetr());
    let report = submit(&mut participant, signed.clone()).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    jp.shutdown().await.expect("JP shutdown");

    let jp = start("JP", dir.path(), &ports).await;
    let mut participant = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let again = submit(&mut participant, signed).await;
    refused(&again, "DUPL", "ACSC");
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");
}

/// SG's decision on a Prepare sent as JP through `jp`: the usual JP→SG payment of `source`
/// from `bank`, at `quote`, under a new UETR.
async fn prepare_at(
    jp: &mut RelayClient<Channel>,
    bank: &Bank,
    quote: pb::Signed,
    source: pb::ActiveCurrencyAndAmount,
) -> pb::RelayDecision {
    let signed = instruction(&jp_to_sg(bank, quote, source), new_uetr());
    prepare(jp, &signed).await.expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_refuses_a_rate_outside_its_band_and_accepts_one_inside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let mut config = config("SG", dir.path(), &ports);
    // SG's mid is 114.9 JPY per SGD; JP's 0.0087 less 25 bps is 28.7 bps below its inverse.
    config.fx.rate_band_bps = 50;
    let sg = Node::start(config).await.expect("SG node");
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let mut jp = relay_client_as("jp/node/tls", "JP", sg.relay_addr).await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let before = balances(&mut sg_operator).await;

    // 0.0095 less 25 bps × 114.9 is 888 bps above the inverse of SG's mid.
    let high = jp_quote_by(jp_node_signer(), "0.0095", 10_000, now(), "Q-high");
    let decision = prepare_at(&mut jp, &bank, high, source.clone()).await;
    assert_eq!(decision.decision(), Decision::Rejected, "{decision:?}");
    assert_eq!(decision.status_reason_code, "RR04", "{decision:?}");
    assert!(
        decision
            .status_reason_detail
            .contains("888 bps above the inverse of this node's mid rate"),
        "{decision:?}"
    );
    // 0.0085 less 25 bps: 257 bps below.
    let low = jp_quote_by(jp_node_signer(), "0.0085", 10_000, now(), "Q-low");
    let decision = prepare_at(&mut jp, &bank, low, source.clone()).await;
    assert_eq!(decision.status_reason_code, "RR04", "{decision:?}");
    assert!(
        decision.status_reason_detail.contains("257 bps below"),
        "{decision:?}"
    );
    assert_eq!(balances(&mut sg_operator).await, before, "nothing credited");

    // JP's configured rate is inside the band: credited.
    let fair = jp_quote_by(jp_node_signer(), "0.0087", 10_000, now(), "Q-fair");
    let decision = prepare_at(&mut jp, &bank, fair, source).await;
    assert_eq!(decision.decision(), Decision::Settled, "{decision:?}");
    let after = balances(&mut sg_operator).await;
    // 10,000 JPY × 0.00867825 = 86.7825 SGD, floored: 86.78 to Tan Wei Ming (2001).
    assert_eq!(posted(&before, "2001"), "100000.00", "{before:?}");
    assert_eq!(posted(&after, "2001"), "100086.78", "{after:?}");
    sg.shutdown().await.expect("SG shutdown");
}

/// GetQuote answers anyone, but each asker has its own share of the free quotes
/// (`[limits] max_free_quotes_per_asker`): callers without a bank identity share one, each bank
/// has its own, so a stranger that fills its share leaves every bank its quotes; a bank at its
/// share is refused RR04 while another bank is not; a quote taken by a payment frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_asker_has_its_own_share_of_free_quotes() {
    let pair = pair_with(|c| c.limits.free_quotes_per_asker_max = 2).await;
    let addr = pair.jp.public_addr;
    let source = amount("JPY", "10000");
    let ask = |client: PaymentsClient<Channel>| {
        let source = source.clone();
        async move {
            let mut client = client;
            client
                .get_quote(pb::QuoteRequest {
                    counterparty_jurisdiction: "SG".into(),
                    source_amount: Some(source),
                })
                .await
        }
    };
    let refused_rr04 = |answer: Result<tonic::Response<pb::Signed>, tonic::Status>, who: &str| {
        let status = answer.expect_err(who);
        let code = status
            .metadata()
            .get(kakehashi_proto::codec::REASON_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(code.as_deref(), Some("RR04"), "{who}: {status:?}");
        assert!(
            status.message().contains("the share of one asker"),
            "{who}: {status:?}"
        );
    };

    // A stranger (no client certificate) uses up the anonymous share.
    let stranger = client(addr, "JP", None).await;
    for _ in 0..2 {
        ask(stranger.clone())
            .await
            .expect("within the anonymous share");
    }
    refused_rr04(ask(stranger.clone()).await, "a third anonymous quote");

    // Banks are not affected, each has its own share.
    let bank_a = bank_client(addr, "JP", "KKHAJPJ0").await;
    let first = ask(bank_a.clone())
        .await
        .expect("bank A's share is its own")
        .into_inner();
    ask(bank_a.clone()).await.expect("bank A's second quote");
    refused_rr04(ask(bank_a.clone()).await, "bank A's third quote");
    let bank_b = bank_client(addr, "JP", "KKHBJPJ0").await;
    ask(bank_b).await.expect("bank B's share is its own");

    // Bank A pays under its first quote: taken, it frees a place in A's share.
    let mut paying = bank_a.clone();
    let bank = bank("jp", "KKHAJPJ0");
    let report = submit(
        &mut paying,
        instruction(&jp_to_sg(&bank, first, source.clone()), new_uetr()),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    ask(bank_a).await.expect("room again once a quote is taken");
    refused_rr04(ask(stranger).await, "the stranger is still at its share");
}
