//! Sanctions screening through a running pair: variants of a listed name refused RR04 with
//! the matched entry and score, nothing moved on either ledger; a list file reloaded while
//! the node runs (by the embedding's call, the operator's ReloadSanctions RPC and SIGHUP), and
//! a list that does not load leaving the one in force (issue 12, build item 4).

use std::path::Path;
use std::time::Duration;

use kakehashi_node::node::Node;
use kakehashi_node::screening::ListErrorReason;
use kakehashi_proto::codec::REASON_METADATA;
use kakehashi_proto::pb::{self as pb, TransactionStatus};
use tonic::Code;

use crate::support::*;

/// Variants the exact comparison let through (issue 12): a trailing dot, full-width letters, a
/// Cyrillic `С`; and two the new comparison adds (a typo, the words reordered with another
/// legal form).
const VARIANTS: &[&str] = &[
    "Sanctioned Trading Co.",
    "Ｓａｎｃｔｉｏｎｅｄ Ｔｒａｄｉｎｇ Ｃｏ",
    "Sanctioned Trading Сo",
    "Sanctioned Tradng Co",
    "Trading Sanctioned K.K.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_to_a_variant_of_a_listed_name_is_refused_and_moves_nothing() {
    let mut p = pair().await;
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let (jp_before, sg_before) = p.snapshot().await;
    let small = amount("JPY", "1000");
    for name in VARIANTS {
        let q = quote(&mut p.jp_client, "SG", &small).await;
        let signed = instruction(
            &Payment {
                creditor_name: name,
                ..jp_to_sg(&alpha_jp, q, small.clone())
            },
            new_uetr(),
        );
        let report = submit(&mut p.jp_client, signed).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Rjct,
            "{name}: {report:?}"
        );
        assert_eq!(report.status_reason_code, "RR04", "{name}: {report:?}");
        let detail = &report.status_reason_detail;
        assert!(
            detail.contains("\"Sanctioned Trading Co\"") && detail.contains("with score"),
            "{name}: the detail names the entry and the score: {detail}"
        );
    }
    let (jp_after, sg_after) = p.snapshot().await;
    assert_eq!(jp_before, jp_after, "JP ledger unchanged");
    assert_eq!(sg_before, sg_after, "SG ledger unchanged");
    p.shutdown().await;
}

const HEADER: &str = "name,aliases,bic,account,country\n";

fn write_list(path: &Path, rows: &str) {
    std::fs::write(path, format!("{HEADER}{rows}")).expect("write the list file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_list_takes_effect_without_a_restart_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("sanctions.csv");
    write_list(&list, "");
    let ports = Ports::new();
    let mut jp_config = config("JP", dir.path(), &ports);
    jp_config.sanctions.list = Some(list.clone());
    let jp = Node::start(jp_config).await.expect("JP starts");
    let sg = start("SG", dir.path(), &ports).await;
    let mut participant = client(jp.public_addr, "JP", Some("jp/banks/KKHAJPJ0-tls")).await;
    let alpha_jp = bank("jp", "KKHAJPJ0");
    let small = amount("JPY", "1000");
    let mut pay = async |creditor_name: &str| {
        let q = quote(&mut participant, "SG", &small).await;
        let signed = instruction(
            &Payment {
                creditor_name,
                ..jp_to_sg(&alpha_jp, q, small.clone())
            },
            new_uetr(),
        );
        submit(&mut participant, signed).await
    };

    // Not listed yet: settles.
    let report = pay("Orchid Maritime Pte Ltd").await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );

    // Listed by the operator's reload: refused from then on, the detail pointing at the row.
    write_list(&list, "Orchid Maritime Pte Ltd,,,,SG\n");
    let reloaded = jp.reload_sanctions().expect("the new list loads");
    assert_eq!(
        (reloaded.entries, reloaded.generation),
        (2, 2),
        "{reloaded:?}"
    );
    let report = pay("ORCHID MARITIME PTE. LTD.").await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Rjct,
        "{report:?}"
    );
    assert_eq!(report.status_reason_code, "RR04");
    assert!(
        report.status_reason_detail.contains("list row 2"),
        "{report:?}"
    );

    // A list that does not parse: refused with its reason, the list in force unchanged.
    std::fs::write(&list, "name;aliases\nRosneftegaz\n").expect("write");
    let error = jp.reload_sanctions().expect_err("a malformed list");
    assert_eq!(error.reason, ListErrorReason::Malformed, "{error}");
    assert!(error.to_string().starts_with("LIST_MALFORMED"), "{error}");
    assert_eq!(jp.engine().sanctions().generation(), 2);
    // The same through the operator's RPC: FAILED_PRECONDITION with the reason code; and only
    // the operator may ask.
    let mut operator = client(jp.public_addr, "JP", Some("jp/operator")).await;
    let refused = operator
        .reload_sanctions(pb::ReloadSanctionsRequest {})
        .await
        .expect_err("a malformed list");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get(REASON_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("LIST_MALFORMED"),
        "{refused:?}"
    );
    assert!(refused.message().contains("header row"), "{refused:?}");
    let anonymous = client(jp.public_addr, "JP", None)
        .await
        .reload_sanctions(pb::ReloadSanctionsRequest {})
        .await
        .expect_err("not an operator");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert_eq!(jp.engine().sanctions().generation(), 2);
    let report = pay("Orchid Maritime").await;
    assert_eq!(
        report.status_reason_code, "RR04",
        "still listed: {report:?}"
    );
    let report = pay("Rosneftegaz").await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "the refused list is not in force: {report:?}"
    );

    // The operator's RPC puts a good list in force.
    write_list(
        &list,
        "Orchid Maritime Pte Ltd,,,,SG\nVolkov Industrial Holdings Corp,,,,\n",
    );
    let answer = operator
        .reload_sanctions(pb::ReloadSanctionsRequest {})
        .await
        .expect("reloads")
        .into_inner();
    assert_eq!(
        (answer.entries, answer.names, answer.generation),
        (3, 3, 3),
        "{answer:?}"
    );
    let report = pay("Volkov Industrial Holding").await;
    assert_eq!(report.status_reason_code, "RR04", "{report:?}");

    // SIGHUP reloads too: Orchid is taken off the list.
    write_list(&list, "Rosneftegaz,,,,RU\n");
    hang_up_this_process();
    let sanctions = jp.engine().sanctions().clone();
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        while sanctions.generation() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(reloaded.is_ok(), "SIGHUP reloaded the list");
    let report = pay("Orchid Maritime Pte Ltd").await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    let report = pay("Rosneftegas").await;
    assert_eq!(report.status_reason_code, "RR04", "{report:?}");

    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");
}

/// Sends SIGHUP to this test process, as an operator's `kill -HUP` would to a node. Every node
/// started in the process has installed its handler by then (at start), so the signal reloads
/// their lists (the other tests' inline lists reload to the same) and ends nothing.
fn hang_up_this_process() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP: {status}");
}
