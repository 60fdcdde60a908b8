//! The Prometheus endpoint of both nodes after real traffic: one JP→SG payment that settles and
//! one that SG refuses (AC01, unknown creditor account), over real mutual TLS and sled, then a
//! plain HTTP/1.1 GET /metrics on each node's metrics listener, once with the Accept header
//! Prometheus sends (OpenMetrics) and once without one (the Prometheus text format 0.0.4).

use std::net::SocketAddr;

use kakehashi_proto::pb::TransactionStatus;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::*;

/// What Prometheus sends by default: OpenMetrics first, then the older text formats.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

/// An answer of the metrics listener.
struct Scrape {
    status: String,
    content_type: String,
    body: String,
}

/// GET /metrics over a fresh connection, with `accept` as the Accept header if given.
async fn scrape(addr: SocketAddr, accept: Option<&str>) -> Scrape {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics listener");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n");
    sock.write_all(request.as_bytes())
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
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Scrape {
        status,
        content_type,
        body: body.to_owned(),
    }
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

    let settled = quote_and_submit(
        &mut p.jp_client,
        "SG",
        amount("JPY", "10000"),
        |q, a| jp_to_sg(&alpha_jp, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        settled.transaction_status(),
        TransactionStatus::Acsc,
        "{settled:?}"
    );
    let refused = quote_and_submit(
        &mut p.jp_client,
        "SG",
        amount("JPY", "10000"),
        |q, a| Payment {
            creditor_account: 2999,
            creditor_name: "Nobody",
            ..jp_to_sg(&alpha_jp, q, a)
        },
        new_uetr(),
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
        for accept in [Some(PROMETHEUS_ACCEPT), None] {
            let answer = scrape(addr, accept).await;
            assert!(
                answer.status.starts_with("HTTP/1.1 200"),
                "{node}: {}",
                answer.status
            );
            check_exposition(node, direction, accept.is_some(), &answer);
        }
    }
    p.shutdown().await;
}

/// Checks one node's exposition, in OpenMetrics when `openmetrics` else in the 0.0.4 text
/// format: the same samples in both, and each format's own framing.
fn check_exposition(node: &str, direction: &str, openmetrics: bool, answer: &Scrape) {
    let body = &answer.body;
    assert_sample(
        node,
        body,
        &format!(
            "kakehashi_payments_total{{direction=\"{direction}\",status=\"ACSC\",reason=\"\"}}"
        ),
        1.0,
    );
    assert_sample(
        node,
        body,
        &format!(
            "kakehashi_payments_total{{direction=\"{direction}\",status=\"RJCT\",reason=\"AC01\"}}"
        ),
        1.0,
    );
    // Both payments were timed, each in the direction this node saw it.
    assert_sample(
        node,
        body,
        &format!("kakehashi_payment_latency_seconds_count{{direction=\"{direction}\"}}"),
        2.0,
    );
    let sum = sample(
        body,
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
        body,
        &format!(
            "kakehashi_payment_latency_seconds_bucket{{le=\"+Inf\",direction=\"{direction}\"}}"
        ),
        2.0,
    );
    assert_sample(node, body, "kakehashi_payments_in_doubt", 0.0);
    // The other direction saw nothing: no payment is counted twice or on the wrong node.
    let other = if direction == "outbound" {
        "inbound"
    } else {
        "outbound"
    };
    assert_sample(
        node,
        body,
        &format!("kakehashi_payment_latency_seconds_count{{direction=\"{other}\"}}"),
        0.0,
    );
    assert!(
        !body.contains(&format!("kakehashi_payments_total{{direction=\"{other}\"")),
        "{node}: no {other} payment was made:\n{body}"
    );
    if openmetrics {
        assert!(
            answer
                .content_type
                .starts_with("application/openmetrics-text; version=1.0.0"),
            "{node}: {}",
            answer.content_type
        );
        assert!(body.ends_with("# EOF\n"), "{node}: {body}");
        assert!(
            body.contains("# TYPE kakehashi_payments counter\n"),
            "{node}: {body}"
        );
        assert!(
            body.contains("# UNIT kakehashi_payment_latency_seconds seconds\n"),
            "{node}: {body}"
        );
    } else {
        assert_eq!(
            answer.content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{node}"
        );
        assert!(!body.contains("# EOF"), "{node}: {body}");
        assert!(!body.contains("# UNIT"), "{node}: {body}");
        // 0.0.4 names a counter's metadata after its samples.
        assert!(
            body.contains("# TYPE kakehashi_payments_total counter\n"),
            "{node}: {body}"
        );
        assert!(
            body.contains("# TYPE kakehashi_payment_latency_seconds histogram\n"),
            "{node}: {body}"
        );
    }
}
