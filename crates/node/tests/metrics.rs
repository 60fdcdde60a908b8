//! The Prometheus endpoint of both nodes after real traffic: one JP→SG payment that settles and
//! one that SG refuses (AC01, unknown creditor account), over real mutual TLS and sled, then a
//! plain HTTP/1.1 GET /metrics on each node's metrics listener.

mod support;

use std::net::SocketAddr;

use kakehashi_proto::v1::{self as pb, TransactionStatus};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use support::*;

/// GET /metrics over a fresh connection; returns the status line and the body.
async fn scrape(addr: SocketAddr) -> (String, String) {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write the request");
    let mut response = String::new();
    sock.read_to_string(&mut response)
        .await
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a header block and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample line that starts with `series` followed by a space, if any.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn assert_sample(node: &str, body: &str, series: &str, expected: f64) {
    assert_eq!(
        sample(body, series),
        Some(expected),
        "{node}: {series} should be {expected} in\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_nodes_expose_settled_and_rejected_payments_latency_and_nothing_in_doubt() {
    let mut p = pair().await;
    let alpha_jp = bank("jp", "KKHAJPJ0");

    let payment =
        |creditor_account: u128, creditor_name: &'static str, quote: pb::Signed| Payment {
            bank: &alpha_jp,
            debtor_account: 1001,
            debtor_name: "Aoki Kenji",
            creditor_bic: "KKHASGS0",
            creditor_account,
            creditor_name,
            quote,
            amount: amount("JPY", "10000"),
        };
    let q = quote(&mut p.jp_client, "SG", &amount("JPY", "10000")).await;
    let settled = submit(
        &mut p.jp_client,
        instruction(&payment(2001, "Tan Wei Ming", q), new_uetr()),
    )
    .await;
    assert_eq!(
        settled.transaction_status(),
        TransactionStatus::Acsc,
        "{settled:?}"
    );
    let q = quote(&mut p.jp_client, "SG", &amount("JPY", "10000")).await;
    let refused = submit(
        &mut p.jp_client,
        instruction(&payment(2999, "Nobody", q), new_uetr()),
    )
    .await;
    assert_eq!(
        refused.transaction_status(),
        TransactionStatus::Rjct,
        "{refused:?}"
    );
    assert_eq!(refused.status_reason_code, "AC01", "{refused:?}");

    let jp_addr = p.jp.metrics_addr.expect("JP serves metrics");
    let sg_addr = p.sg.metrics_addr.expect("SG serves metrics");
    for (node, addr, direction) in [("JP", jp_addr, "outbound"), ("SG", sg_addr, "inbound")] {
        let (status, body) = scrape(addr).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{node}: {status}");
        assert_sample(
            node,
            &body,
            &format!(
                "kakehashi_payments_total{{direction=\"{direction}\",status=\"ACSC\",reason=\"\"}}"
            ),
            1.0,
        );
        assert_sample(
            node,
            &body,
            &format!(
                "kakehashi_payments_total{{direction=\"{direction}\",status=\"RJCT\",reason=\"AC01\"}}"
            ),
            1.0,
        );
        // Both payments were timed, each in the direction this node saw it.
        assert_sample(
            node,
            &body,
            &format!("kakehashi_payment_latency_seconds_count{{direction=\"{direction}\"}}"),
            2.0,
        );
        let sum = sample(
            &body,
            &format!("kakehashi_payment_latency_seconds_sum{{direction=\"{direction}\"}}"),
        )
        .unwrap_or_else(|| panic!("{node}: latency sum missing from\n{body}"));
        assert!(
            sum > 0.0 && sum < 20.0,
            "{node}: two local payments took {sum} s"
        );
        // The largest bucket holds every observation (cumulative buckets, OpenMetrics §Histogram).
        assert_sample(
            node,
            &body,
            &format!(
                "kakehashi_payment_latency_seconds_bucket{{le=\"+Inf\",direction=\"{direction}\"}}"
            ),
            2.0,
        );
        assert_sample(node, &body, "kakehashi_payments_in_doubt", 0.0);
        // The other direction saw nothing: no payment is counted twice or on the wrong node.
        let other = if direction == "outbound" {
            "inbound"
        } else {
            "outbound"
        };
        assert_sample(
            node,
            &body,
            &format!("kakehashi_payment_latency_seconds_count{{direction=\"{other}\"}}"),
            0.0,
        );
        assert!(
            !body.contains(&format!("kakehashi_payments_total{{direction=\"{other}\"")),
            "{node}: no {other} payment was made:\n{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{node}: {body}");
    }
    p.shutdown().await;
}
