//! Hostile inputs on the public Payments API of a real node (JP and SG started in-process on
//! loopback with real mutual TLS and sled): garbage bytes, bad UTF-8, missing fields, a signed
//! payload of the wrong kind, an oversized message, bad amounts and currencies, bad UETRs.
//!
//! Every malformed request is answered `InvalidArgument` with a message that starts "FF01" and
//! the reason in the `kakehashi-reason-code` metadata, and changes nothing: the balances of
//! every account on both ledgers are compared before and after, and a UETR the request carried
//! is unknown to `GetPaymentStatus` afterwards (a malformed request leaves no record).

use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::{self as pb, TransactionStatus};

use crate::support::*;

// ------------------------------------------------------------------ raw gRPC

/// A codec that sends and receives message bytes as they are, so a test can put any bytes in
/// a gRPC frame (the generated client can only send well-formed messages).
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

const SUBMIT_PAYMENT: &str = "/kakehashi.v1.Payments/SubmitPayment";
const SUBMIT_PAYMENTS: &str = "/kakehashi.v1.Payments/SubmitPayments";
const GET_QUOTE: &str = "/kakehashi.v1.Payments/GetQuote";
const GET_PAYMENT_STATUS: &str = "/kakehashi.v1.Payments/GetPaymentStatus";

/// One unary call with `body` as the request message's bytes.
async fn raw_unary(
    channel: &Channel,
    method: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    grpc.unary(
        Request::new(body),
        PathAndQuery::from_static(method),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

// ------------------------------------------------------------------ assertions

/// The call was refused as malformed: `InvalidArgument`, "FF01: <detail>" naming `mentions`,
/// and the reason code in the metadata.
#[track_caller]
fn assert_ff01<T: std::fmt::Debug>(what: &str, mentions: &str, result: Result<T, Status>) {
    let err = match result {
        Ok(answer) => panic!("{what}: accepted: {answer:?}"),
        Err(err) => err,
    };
    assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    assert!(
        err.message().starts_with("FF01: ") && err.message().len() > "FF01: ".len(),
        "{what}: {}",
        err.message()
    );
    assert!(
        err.message().contains(mentions),
        "{what}: the detail should mention {mentions:?}: {}",
        err.message()
    );
    assert_eq!(
        err.metadata()
            .get(REASON_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("FF01"),
        "{what}: reason metadata"
    );
}

/// `GetPaymentStatus` knows nothing of `uetr`.
async fn assert_unknown(client: &mut PaymentsClient<Channel>, uetr: &str) {
    let err = client
        .get_payment_status(pb::PaymentStatusRequest { uetr: uetr.into() })
        .await
        .expect_err("no record of a refused request");
    assert_eq!(err.code(), Code::NotFound, "{uetr}: {err:?}");
}

async fn submit_result(
    client: &mut PaymentsClient<Channel>,
    instruction: Option<pb::Signed>,
) -> Result<pb::PaymentStatusReport, Status> {
    client
        .submit_payment(pb::SubmitPaymentRequest { instruction })
        .await
        .map(tonic::Response::into_inner)
}

/// A correctly quoted and signed JP→SG instruction under `uetr` with 100 KiB of remittance
/// text: far over the node's `limits.max_message_bytes` (64 KiB).
async fn oversized_instruction(
    p: &mut Pair,
    uetr: kakehashi_protocol::instruction::Uetr,
) -> pb::Signed {
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "1000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let mut body = instruction_body(&jp_to_sg(&alpha, q, source), uetr);
    body.remittance_information = "x".repeat(100 * 1024);
    sign_payload(&alpha, body.encode_to_vec())
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_instructions_and_quotes_are_ff01_and_change_nothing() {
    let mut p = pair().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let before = p.snapshot().await;
    let source = amount("JPY", "1000");
    let q = quote(&mut p.jp_client, "SG", &source).await;

    // Instructions signed by a recognized bank with one field wrong: each is a format error.
    type Alter = fn(&mut pb::CreditTransferInstruction);
    let cases: Vec<(&str, &str, Alter)> = vec![
        ("no quote", "quote", |b| b.quote = None),
        ("no amount", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = None
        }),
        ("zero amount", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "0"))
        }),
        ("40-digit amount", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", &"9".repeat(40)))
        }),
        ("39-digit amount", "interbank_settlement_amount", |b| {
            // One digit over the 38 an ISO 20022 amount may have.
            b.interbank_settlement_amount = Some(amount("JPY", &"9".repeat(39)))
        }),
        ("negative amount", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "-1000"))
        }),
        ("exponent", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "1e3"))
        }),
        (
            "decimals JPY does not have",
            "interbank_settlement_amount",
            |b| b.interbank_settlement_amount = Some(amount("JPY", "1000.5")),
        ),
        ("unknown currency", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("XXX", "1000"))
        }),
        ("another node's currency", "JPY", |b| {
            b.interbank_settlement_amount = Some(amount("SGD", "10.00"))
        }),
        ("bad UETR text", "uetr", |b| b.uetr = "not-a-uetr".into()),
        ("nil UUID as UETR", "uetr", |b| {
            b.uetr = "00000000-0000-0000-0000-000000000000".into()
        }),
        ("UETR without the RFC 4122 variant", "uetr", |b| {
            b.uetr = "6f1c2a9e-3b4d-4e5f-0a7b-8c9d0e1f2a3b".into()
        }),
        ("plus sign", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "+1000"))
        }),
        ("full-width digits", "interbank_settlement_amount", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "\u{ff11}\u{ff10}\u{ff10}\u{ff10}"))
        }),
        ("amount other than the quote's", "quote", |b| {
            b.interbank_settlement_amount = Some(amount("JPY", "2000"))
        }),
        ("36-character end_to_end_id", "end_to_end_id", |b| {
            b.end_to_end_id = "E".repeat(36)
        }),
        ("141-character creditor name", "creditor_name", |b| {
            b.creditor_name = "N".repeat(141)
        }),
        ("141-character remittance", "remittance_information", |b| {
            b.remittance_information = "r".repeat(141)
        }),
        ("lower-case BIC", "creditor_agent_bic", |b| {
            b.creditor_agent_bic = "kkhasgs0".into()
        }),
        ("9-character BIC", "debtor_agent_bic", |b| {
            b.debtor_agent_bic = "KKHAJPJ0X".into()
        }),
        ("account zero", "creditor_account", |b| {
            b.creditor_account = "0".into()
        }),
        ("negative account", "debtor_account", |b| {
            b.debtor_account = "-1001".into()
        }),
        ("40-digit account", "creditor_account", |b| {
            b.creditor_account = "1".repeat(40)
        }),
        ("unknown charge bearer", "charge_bearer", |b| {
            b.charge_bearer = "ALL".into()
        }),
        ("no creation time", "creation_date_time", |b| {
            b.creation_date_time = None
        }),
        ("expiry before creation", "expiry_date_time", |b| {
            b.expiry_date_time = b.creation_date_time.map(|mut t| {
                t.seconds -= 1;
                t
            })
        }),
        ("a lifetime over the 600 s limit", "expiry_date_time", |b| {
            if let Some(t) = b.expiry_date_time.as_mut() {
                t.seconds += 3600;
            }
        }),
        ("created an hour from now", "creation_date_time", |b| {
            for t in [b.creation_date_time.as_mut(), b.expiry_date_time.as_mut()]
                .into_iter()
                .flatten()
            {
                t.seconds += 3600;
            }
        }),
        ("nanoseconds out of range", "creation_date_time", |b| {
            if let Some(t) = b.creation_date_time.as_mut() {
                t.nanos = 1_000_000_000;
            }
        }),
    ];
    let mut uetrs = Vec::new();
    for (what, mentions, alter) in cases {
        let uetr = new_uetr();
        let mut body = instruction_body(&jp_to_sg(&alpha, q.clone(), source.clone()), uetr);
        alter(&mut body);
        let signed = sign_payload(&alpha, body.encode_to_vec());
        assert_ff01(
            what,
            mentions,
            submit_result(&mut p.jp_client, Some(signed)).await,
        );
        uetrs.push(uetr.to_string());
    }

    // Invalid UTF-8 inside a string field of the signed payload (prost refuses it at decode).
    let uetr = new_uetr();
    let mut payload =
        instruction_body(&jp_to_sg(&alpha, q.clone(), source.clone()), uetr).encode_to_vec();
    let at = payload
        .windows(b"Aoki Kenji".len())
        .position(|w| w == b"Aoki Kenji")
        .expect("the debtor name is in the encoding");
    payload[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    assert_ff01(
        "bad UTF-8 in debtor_name",
        "CreditTransferInstruction",
        submit_result(&mut p.jp_client, Some(sign_payload(&alpha, payload))).await,
    );
    uetrs.push(uetr.to_string());

    // A signed payload that is not an instruction: the quote itself, and random bytes.
    assert_ff01(
        "a quote signed as an instruction",
        "CreditTransferInstruction",
        submit_result(
            &mut p.jp_client,
            Some(sign_payload(&alpha, q.payload.clone())),
        )
        .await,
    );
    let mut junk = vec![0u8; 200];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut junk)
        .expect("randomness");
    junk[0] = 0xff; // a field key whose varint never ends within the first bytes
    junk[1..11].copy_from_slice(&[0xff; 10]);
    assert_ff01(
        "random bytes signed as an instruction",
        "CreditTransferInstruction",
        submit_result(&mut p.jp_client, Some(sign_payload(&alpha, junk))).await,
    );
    assert_ff01(
        "no instruction",
        "instruction",
        submit_result(&mut p.jp_client, None).await,
    );

    // Quotes: the same amount rules, and the node's own currency only.
    let bad_sources = [
        ("zero", amount("JPY", "0")),
        ("40 digits", amount("JPY", &"9".repeat(40))),
        ("negative", amount("JPY", "-5")),
        ("exponent", amount("JPY", "5E2")),
        ("decimals", amount("JPY", "12.5")),
        ("unknown currency", amount("XXX", "100")),
        ("SGD on JP", amount("SGD", "100.00")),
        ("lower-case currency", amount("jpy", "100")),
        ("grouping", amount("JPY", "1,000")),
        ("space", amount("JPY", " 1000")),
        ("empty", amount("JPY", "")),
    ];
    for (what, source) in bad_sources {
        let answer = p
            .jp_client
            .get_quote(pb::QuoteRequest {
                counterparty_jurisdiction: "SG".into(),
                source_amount: Some(source),
            })
            .await;
        assert_ff01(what, "", answer);
    }
    assert_ff01(
        "quote without an amount",
        "source_amount",
        p.jp_client
            .get_quote(pb::QuoteRequest {
                counterparty_jurisdiction: "SG".into(),
                source_amount: None,
            })
            .await,
    );
    // The status query refuses a malformed UETR as FF01 too (not NotFound).
    for counterparty in ["JP", "XX", "", "sg"] {
        assert_ff01(
            "quote to a jurisdiction without a corridor",
            "counterparty_jurisdiction",
            p.jp_client
                .get_quote(pb::QuoteRequest {
                    counterparty_jurisdiction: counterparty.into(),
                    source_amount: Some(amount("JPY", "1000")),
                })
                .await,
        );
    }
    for account in ["abc", "0", "-1", &"9".repeat(40), " 1001"] {
        assert_ff01(
            "balance of a malformed account id",
            "accounts",
            p.jp_client
                .get_balances(pb::BalancesRequest {
                    accounts: vec![account.into()],
                    ..pb::BalancesRequest::default()
                })
                .await,
        );
    }
    for text in ["not-a-uetr", "00000000-0000-0000-0000-000000000000", ""] {
        assert_ff01(
            "status of a malformed UETR",
            "",
            p.jp_client
                .get_payment_status(pb::PaymentStatusRequest { uetr: text.into() })
                .await,
        );
    }

    for uetr in &uetrs {
        assert_unknown(&mut p.jp_client, uetr).await;
    }
    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_bytes_are_ff01_and_change_nothing() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let channel = channel(p.jp.public_addr, "JP", Some(&bank_tls("KKHAJPJ0"))).await;

    let garbage: Vec<(&str, &'static str, Vec<u8>)> = vec![
        // A varint key that runs past ten bytes.
        ("overlong varint", SUBMIT_PAYMENT, vec![0xff; 32]),
        // Field 1 (instruction), length-delimited, claiming 2^28 bytes that are not there.
        (
            "truncated length",
            SUBMIT_PAYMENT,
            vec![0x0a, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01],
        ),
        // Wire type 7 does not exist.
        ("bad wire type", SUBMIT_PAYMENT, vec![0x0f, 0x00]),
        // Field number 0 is reserved.
        ("field number zero", SUBMIT_PAYMENT, vec![0x02, 0x00]),
        (
            "text instead of protobuf",
            SUBMIT_PAYMENT,
            b"{\"uetr\": \"hello\"}".to_vec(),
        ),
        // QuoteRequest.counterparty_jurisdiction (field 1, string) holding invalid UTF-8.
        (
            "bad UTF-8 in a string field",
            GET_QUOTE,
            vec![0x0a, 0x02, 0xff, 0xfe],
        ),
        // PaymentStatusRequest.uetr, a lone continuation byte then an overlong encoding.
        (
            "bad UTF-8 in the UETR",
            GET_PAYMENT_STATUS,
            vec![0x0a, 0x03, 0x80, 0xc0, 0xaf],
        ),
        // SubmitPaymentRequest{instruction: Signed{payload: 1 byte}} cut short.
        (
            "nested message cut short",
            SUBMIT_PAYMENT,
            vec![0x0a, 0x05, 0x0a, 0x01, 0x00],
        ),
    ];
    for (what, method, body) in garbage {
        // The decoder names the message type it expected.
        assert_ff01(
            what,
            "kakehashi.v1.",
            raw_unary(&channel, method, body).await,
        );
    }
    // Well-formed protobuf of the right type still works on the same connection.
    let valid = pb::QuoteRequest {
        counterparty_jurisdiction: "SG".into(),
        source_amount: Some(amount("JPY", "1000")),
    };
    let answer = raw_unary(&channel, GET_QUOTE, valid.encode_to_vec())
        .await
        .expect("a valid request over the raw codec");
    assert!(pb::Signed::decode(answer.as_slice()).is_ok());

    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_and_changes_nothing() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let uetr = new_uetr();
    let signed = oversized_instruction(&mut p, uetr).await;
    let err = submit_result(&mut p.jp_client, Some(signed))
        .await
        .expect_err("over the message limit");
    // tonic's decoder refuses a frame above max_decoding_message_size with OutOfRange
    // ("decoded message length too large") before any kakehashi code sees it.
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_unknown(&mut p.jp_client, &uetr.to_string()).await;
    // The node still serves, and nothing moved.
    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_item_in_a_payment_stream_is_reported_in_band_and_the_others_settle() {
    let mut p = pair().await;
    let (jp_before, sg_before) = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let mut requests = Vec::new();
    let mut good = Vec::new();
    for i in 0..5 {
        if i == 2 {
            // A signed payload that does not decode: refused in band, the stream goes on.
            requests.push(pb::SubmitPaymentRequest {
                instruction: Some(sign_payload(&alpha, vec![0xff; 40])),
            });
            continue;
        }
        let q = quote(&mut p.jp_client, "SG", &source).await;
        let uetr = new_uetr();
        good.push(uetr.to_string());
        requests.push(pb::SubmitPaymentRequest {
            instruction: Some(instruction(&jp_to_sg(&alpha, q, source.clone()), uetr)),
        });
    }
    let mut reports = p
        .jp_client
        .submit_payments(tokio_stream::iter(requests))
        .await
        .expect("stream accepted")
        .into_inner();
    let mut settled = Vec::new();
    let mut refused = Vec::new();
    while let Some(report) = reports.message().await.expect("no stream error") {
        match report.transaction_status() {
            TransactionStatus::Acsc => settled.push(report.uetr.clone()),
            _ => refused.push(report),
        }
    }
    settled.sort();
    good.sort();
    assert_eq!(settled, good, "every good payment settled and was reported");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].transaction_status(), TransactionStatus::Rjct);
    assert_eq!(refused[0].status_reason_code, "FF01");
    assert!(
        refused[0].status_reason_detail.starts_with("FF01: "),
        "{}",
        refused[0].status_reason_detail
    );

    // Exactly the four good payments moved: 4 × 10,000 JPY out of 1001, 4 × 86.78 SGD into
    // 2001 (10,000 × 0.0087 × 0.9975 = 86.7825, floored to the cent).
    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!(posted(&jp_before, "1001"), "10000000");
    assert_eq!(posted(&jp_after, "1001"), "9960000");
    assert_eq!(posted(&jp_after, "9002"), "40000");
    assert_eq!(posted(&sg_before, "2001"), "100000.00");
    assert_eq!(posted(&sg_after, "2001"), "100347.12");
    assert_eq!(posted(&sg_after, "9103"), "9999652.88");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_frame_ends_a_payment_stream_with_ff01_and_what_follows_never_runs() {
    let mut p = pair().await;
    let (jp_before, _) = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let q1 = quote(&mut p.jp_client, "SG", &source).await;
    let q2 = quote(&mut p.jp_client, "SG", &source).await;
    let (first, after) = (new_uetr(), new_uetr());
    let frame = |signed: pb::Signed| {
        pb::SubmitPaymentRequest {
            instruction: Some(signed),
        }
        .encode_to_vec()
    };
    let frames = vec![
        frame(instruction(&jp_to_sg(&alpha, q1, source.clone()), first)),
        vec![0xff; 16],
        frame(instruction(&jp_to_sg(&alpha, q2, source.clone()), after)),
    ];
    let channel = channel(p.jp.public_addr, "JP", Some(&bank_tls("KKHAJPJ0"))).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let outcome = grpc
        .streaming(
            Request::new(tokio_stream::iter(frames)),
            PathAndQuery::from_static(SUBMIT_PAYMENTS),
            RawCodec,
        )
        .await;
    // The stream ends with FF01 (the frame cannot be matched to any UETR, so it cannot be
    // reported in band); a frame after it is never read.
    let mut reports = Vec::new();
    let end = match outcome {
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(bytes)) => reports
                        .push(pb::PaymentStatusReport::decode(bytes.as_slice()).expect("a report")),
                    Ok(None) => break Ok(()),
                    Err(status) => break Err(status),
                }
            }
        }
        Err(status) => Err(status),
    };
    assert_ff01("garbage frame in a stream", "kakehashi.v1.", end);
    // The payment read before the garbage still completes, although the broken stream ended
    // before it was even recorded (its status by UETR is NotFound, then PDNG, then ACSC).
    let mut status = None;
    for _ in 0..100 {
        let answer = p
            .jp_client
            .get_payment_status(pb::PaymentStatusRequest {
                uetr: first.to_string(),
            })
            .await;
        match answer {
            Ok(report) if report.get_ref().transaction_status() != TransactionStatus::Pdng => {
                status = Some(report.into_inner());
                break;
            }
            Ok(_) => {}
            Err(e) => assert_eq!(e.code(), Code::NotFound, "{e:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = status.expect("the first payment resolved within 10 s");
    assert_eq!(
        status.transaction_status(),
        TransactionStatus::Acsc,
        "{status:?}"
    );
    assert!(
        reports.iter().all(|r| r.uetr == first.to_string()),
        "{reports:?}"
    );
    // The payment accepted before the garbage frame is reported before the error ends the
    // response stream.
    assert_eq!(
        reports.len(),
        1,
        "the accepted payment is reported before the error"
    );
    assert_unknown(&mut p.jp_client, &after.to_string()).await;
    let (jp_after, _) = p.snapshot().await;
    assert_eq!(posted(&jp_before, "1001"), "10000000");
    assert_eq!(
        posted(&jp_after, "1001"),
        "9990000",
        "only the first payment moved"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_ds0b_with_the_verifiers_explanation_and_change_nothing() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let thai = bank("th", "KKHATHB0");
    let source = amount("JPY", "1000");

    // A signature with one bit flipped.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let tampered_uetr = new_uetr();
    let mut tampered = instruction(&jp_to_sg(&alpha, q, source.clone()), tampered_uetr);
    tampered.signature[17] ^= 0x04;
    // A TH bank (whose payment signatures JP recognizes, but which is not a JP participant)
    // signs a JP payment in its own name.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let thai_uetr = new_uetr();
    let mut payment = jp_to_sg(&thai, q, source.clone());
    payment.debtor_name = "Somchai Trading";
    let from_th = instruction(&payment, thai_uetr);
    // Another bank's key under KKHAJPJ0's chain.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let swapped_uetr = new_uetr();
    let mut swapped = instruction(&jp_to_sg(&alpha, q, source.clone()), swapped_uetr);
    swapped.signer_chain = bank("jp", "KKHBJPJ0").chain;

    let cases = [
        (
            "tampered signature",
            tampered_uetr,
            tampered,
            "signature does not verify",
        ),
        (
            "key of another chain",
            swapped_uetr,
            swapped,
            "signature does not verify",
        ),
    ];
    for (what, uetr, signed, explanation) in cases {
        let report = submit(&mut p.jp_client, signed).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Rjct,
            "{what}: {report:?}"
        );
        assert_eq!(report.status_reason_code, "DS0B", "{what}: {report:?}");
        assert_eq!(report.decided_by, "JP", "{what}: refused by the sender");
        assert!(
            report.status_reason_detail.contains(explanation),
            "{what}: {}",
            report.status_reason_detail
        );
        // Nothing unauthenticated is written: the UETR stays unknown.
        assert_unknown(&mut p.jp_client, &uetr.to_string()).await;
    }
    // The TH bank's instruction does not even reach the signature check: no JP bank's
    // connection may submit another bank's instruction (issue 12), and the TH bank has no
    // identity JP's public listener takes.
    let refused = submit_result(&mut p.jp_client, Some(from_th))
        .await
        .expect_err("another bank's instruction");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_unknown(&mut p.jp_client, &thai_uetr.to_string()).await;

    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_signature_envelope_is_ff01_and_changes_nothing() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "1000");
    let q = quote(&mut p.jp_client, "SG", &source).await;

    type Alter = fn(&mut pb::Signed);
    let cases: Vec<(&str, &str, Alter)> = vec![
        ("empty signature", "64", |s| s.signature.clear()),
        ("63-byte signature", "64", |s| {
            s.signature.pop();
        }),
        ("65-byte signature", "64", |s| s.signature.push(0)),
        ("no signer chain", "signer_chain", |s| {
            s.signer_chain.clear()
        }),
        ("nine certificates", "8", |s| {
            let leaf = s.signer_chain[0].clone();
            s.signer_chain = vec![leaf; 9];
        }),
        ("a certificate that is not DER", "", |s| {
            s.signer_chain[0] = b"-----BEGIN CERTIFICATE-----".to_vec()
        }),
        ("a 17 KiB certificate", "", |s| {
            s.signer_chain[1] = vec![0x30; 17 * 1024]
        }),
    ];
    let mut uetrs = Vec::new();
    for (what, mentions, alter) in cases {
        let uetr = new_uetr();
        let mut signed = instruction(&jp_to_sg(&alpha, q.clone(), source.clone()), uetr);
        alter(&mut signed);
        let answer = submit_result(&mut p.jp_client, Some(signed)).await;
        assert_ff01(what, mentions, answer);
        uetrs.push(uetr.to_string());
    }
    for uetr in &uetrs {
        assert_unknown(&mut p.jp_client, uetr).await;
    }
    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_instruction_twice_in_one_stream_credits_once() {
    let mut p = pair().await;
    let (_, sg_before) = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let uetr = new_uetr();
    let signed = instruction(&jp_to_sg(&alpha, q, source), uetr);
    // Both copies are read before either finishes, so they race for the UETR's lock.
    let requests = vec![
        pb::SubmitPaymentRequest {
            instruction: Some(signed.clone()),
        },
        pb::SubmitPaymentRequest {
            instruction: Some(signed),
        },
    ];
    let mut stream = p
        .jp_client
        .submit_payments(tokio_stream::iter(requests))
        .await
        .expect("stream")
        .into_inner();
    let mut codes = Vec::new();
    while let Some(report) = stream.message().await.expect("no stream error") {
        assert_eq!(report.uetr, uetr.to_string());
        codes.push(match report.transaction_status() {
            TransactionStatus::Acsc => "ACSC".to_owned(),
            _ => report.status_reason_code.clone(),
        });
    }
    codes.sort();
    assert_eq!(codes, ["ACSC", "DUPL"]);
    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!(posted(&jp_after, "1001"), "9990000", "debited once");
    assert_eq!(posted(&sg_before, "2001"), "100000.00");
    assert_eq!(posted(&sg_after, "2001"), "100086.78", "credited once");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_item_ends_a_payment_stream_and_changes_nothing() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let uetr = new_uetr();
    let requests = vec![pb::SubmitPaymentRequest {
        instruction: Some(oversized_instruction(&mut p, uetr).await),
    }];
    let outcome = p
        .jp_client
        .submit_payments(tokio_stream::iter(requests))
        .await;
    let end = match outcome {
        Ok(response) => match response.into_inner().message().await {
            Ok(Some(report)) => panic!("an oversized item was processed: {report:?}"),
            Ok(None) => None,
            Err(status) => Some(status),
        },
        Err(status) => Some(status),
    };
    // As on the unary call, tonic refuses the frame with OutOfRange.
    let end = end.expect("the stream ends with an error");
    assert_eq!(end.code(), Code::OutOfRange, "{end:?}");
    assert_unknown(&mut p.jp_client, &uetr.to_string()).await;
    assert_eq!(p.snapshot().await, before, "both ledgers unchanged");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_gives_up_mid_payment_leaves_both_ledgers_consistent() {
    let mut p = pair().await;
    let (jp_before, sg_before) = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    // Deadlines from "before anything is read" to "after the relay answered", so the server's
    // handler is cancelled (grpc-timeout, then the stream reset when the client drops the
    // call) at different points of the settlement. On this 2-core machine the short ones end
    // RJCT AB05 through recovery ("JP stopped before forwarding the payment": reserved, then
    // voided), a middle one RJCT AB05 fenced by SG's answer to the status query (forwarded,
    // the Prepare reset), the long ones ACSC.
    let deadlines_ms = [1u64, 3, 10, 20, 40, 80, 150, 300, 600, 1200];
    let mut uetrs = Vec::new();
    for ms in deadlines_ms {
        let q = quote(&mut p.jp_client, "SG", &source).await;
        let uetr = new_uetr();
        let mut request = Request::new(pb::SubmitPaymentRequest {
            instruction: Some(instruction(&jp_to_sg(&alpha, q, source.clone()), uetr)),
        });
        let deadline = std::time::Duration::from_millis(ms);
        request.set_timeout(deadline);
        let mut client = p.jp_client.clone();
        // Whatever the call answers (or not) is not the test: the ledgers are.
        let _ = tokio::time::timeout(deadline, client.submit_payment(request)).await;
        uetrs.push(uetr.to_string());
    }
    // Each payment ends settled, rejected, or never recorded; none stays in doubt.
    let mut settled = 0u32;
    for uetr in &uetrs {
        let mut outcome = None;
        for _ in 0..150 {
            let answer = p
                .jp_client
                .get_payment_status(pb::PaymentStatusRequest { uetr: uetr.clone() })
                .await;
            match answer {
                Ok(report) if report.get_ref().transaction_status() != TransactionStatus::Pdng => {
                    outcome = Some(report.into_inner().transaction_status());
                    break;
                }
                Ok(_) => {}
                Err(e) if e.code() == Code::NotFound => {
                    outcome = Some(TransactionStatus::Unspecified);
                    break;
                }
                Err(e) => panic!("{uetr}: {e:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        match outcome.unwrap_or_else(|| panic!("{uetr} still PDNG after 15 s")) {
            TransactionStatus::Acsc => settled += 1,
            TransactionStatus::Rjct | TransactionStatus::Unspecified => {}
            TransactionStatus::Pdng => unreachable!("loop exits on non-PDNG only"),
        }
    }
    // Debited on JP exactly when credited on SG, and no reservation left behind.
    let (jp_after, sg_after) = p.snapshot().await;
    let minor = |map: &std::collections::BTreeMap<String, (String, String)>, id: &str| {
        posted(map, id)
            .replace('.', "")
            .parse::<i128>()
            .expect("decimal")
    };
    let settled = i128::from(settled);
    assert_eq!(
        minor(&jp_before, "1001") - minor(&jp_after, "1001"),
        settled * 10_000
    );
    assert_eq!(
        minor(&jp_after, "9002") - minor(&jp_before, "9002"),
        settled * 10_000
    );
    assert_eq!(
        minor(&sg_after, "2001") - minor(&sg_before, "2001"),
        settled * 8_678
    );
    assert_eq!(
        minor(&sg_before, "9103") - minor(&sg_after, "9103"),
        settled * 8_678
    );
    for (account, (_, pending)) in jp_after.iter().chain(sg_after.iter()) {
        assert!(
            pending == "0" || pending == "0.00",
            "{account}: a reservation left behind: {pending}"
        );
    }
    p.shutdown().await;
}

/// Issue 11, defect 3: an authenticated bank whose instruction debits an account it does not
/// hold used to leave a rejected record (AC01) under the UETR, and the account holder's own
/// payment with that UETR was then DUPL. Authorization now comes before the UETR is looked at:
/// the squatter's refusal writes nothing and says nothing about the UETR, and a DUPL tells the
/// earlier payment's status only to the bank that submitted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_can_neither_squat_nor_read_another_banks_uetr() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let beta = bank("jp", "KKHBJPJ0");
    let source = amount("JPY", "1000");
    let uetr = new_uetr();

    let mut beta_client = bank_client(p.jp.public_addr, "JP", "KKHBJPJ0").await;
    // KKHBJPJ0 signs (validly, in its own name) a debit of 1001, an account of KKHAJPJ0's, and
    // of an account that does not exist, under the UETR KKHAJPJ0 is about to use.
    for (what, account) in [("another bank's account", 1001), ("no such account", 1999)] {
        let q = quote(&mut p.jp_client, "SG", &source).await;
        let squat = Payment {
            debtor_account: account,
            ..jp_to_sg(&beta, q, source.clone())
        };
        let report = submit(&mut beta_client, instruction(&squat, uetr)).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Rjct,
            "{what}: {report:?}"
        );
        assert_eq!(report.status_reason_code, "AC01", "{what}: {report:?}");
        assert_unknown(&mut p.jp_client, &uetr.to_string()).await;
    }

    // The holder's payment under that UETR settles.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let genuine = instruction(&jp_to_sg(&alpha, q, source.clone()), uetr);
    let report = submit(&mut p.jp_client, genuine).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );

    // Now taken: KKHBJPJ0, with its own customer's account (1101), learns only that.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let late = Payment {
        debtor_account: 1101,
        debtor_name: "Suzuki Yui",
        ..jp_to_sg(&beta, q, source.clone())
    };
    let report = submit(&mut beta_client, instruction(&late, uetr)).await;
    assert_eq!(report.status_reason_code, "DUPL", "{report:?}");
    // Issue 12: KKHBJPJ0 cannot read KKHAJPJ0's payment by its UETR either, and the refusal
    // is word for word the one for a UETR no payment has, so it does not reveal existence.
    let hidden = beta_client
        .get_payment_status(pb::PaymentStatusRequest {
            uetr: uetr.to_string(),
        })
        .await
        .expect_err("another bank's payment");
    let unknown_uetr = new_uetr();
    let unknown = beta_client
        .get_payment_status(pb::PaymentStatusRequest {
            uetr: unknown_uetr.to_string(),
        })
        .await
        .expect_err("no such payment");
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(
        hidden.message().replace(&uetr.to_string(), "<uetr>"),
        unknown
            .message()
            .replace(&unknown_uetr.to_string(), "<uetr>"),
    );
    // The debtor's bank sees it.
    let seen = p
        .jp_client
        .get_payment_status(pb::PaymentStatusRequest {
            uetr: uetr.to_string(),
        })
        .await
        .expect("KKHAJPJ0's own payment")
        .into_inner();
    assert_eq!(seen.transaction_status(), TransactionStatus::Acsc);
    assert!(
        report.status_reason_detail.contains("already taken")
            && !report.status_reason_detail.contains("ACSC"),
        "{}",
        report.status_reason_detail
    );
    // KKHAJPJ0 itself is told its payment's status.
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let again = instruction(&jp_to_sg(&alpha, q, source), uetr);
    let report = submit(&mut p.jp_client, again).await;
    assert_eq!(report.status_reason_code, "DUPL", "{report:?}");
    assert!(
        report.status_reason_detail.contains("its status: ACSC"),
        "{}",
        report.status_reason_detail
    );

    // One payment moved money, once.
    let after = p.snapshot().await;
    assert_ne!(after, before);
    assert_eq!(posted(&after.0, "1001"), "9999000");
    assert_eq!(posted(&after.0, "1101"), posted(&before.0, "1101"));
    p.shutdown().await;
}
