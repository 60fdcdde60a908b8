//! The node's metrics and the plain-HTTP endpoint that exposes them.
//!
//! Metric families (all prefixed `kakehashi_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `kakehashi_payments_total` | counter | `direction` (outbound, inbound), `status` (ACSC, RJCT, PDNG), `reason` (ISO code or empty) |
//! | `kakehashi_payment_latency_seconds` | histogram | `direction` |
//! | `kakehashi_payments_in_doubt` | gauge | — |
//! | `kakehashi_tls_refusals_total` | counter | `listener` (public, relay) |
//! | `kakehashi_relay_requests_total` | counter | `method`, `outcome` |
//!
//! [`serve_metrics`] answers `GET /metrics` in the OpenMetrics 1.0 text format (which
//! Prometheus scrapes natively) and 404 for every other path. It is plain HTTP: bind it to a
//! loopback or management address.
//!
//! Label values come from the node's own code, but a status or reason echoed from a peer must
//! not grow the label space without bound: values that are not short upper-case codes are
//! recorded as `other` ([`LABEL_CODE_CHARS_MAX`]).

use std::future::Future;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text exposition format (OpenMetrics 1.0 §"Overall
/// Structure"); Prometheus negotiates and parses it.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest label value kept from a status or reason code: ISO 20022 codes are four characters
/// (ACSC, AM04); anything longer or not [A-Z0-9] is recorded as `other`.
pub const LABEL_CODE_CHARS_MAX: usize = 4;

/// Latency histogram buckets in seconds: from 1 ms (a local rejection) to 10 s (beyond the
/// longest request timeout default), roughly doubling.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// Which way a payment went, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from a peer node (this node credits).
    Inbound,
    /// Submitted by a participant and relayed to a peer (this node debits).
    Outbound,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Which listener a TLS refusal happened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Payments, client certificate optional.
    Public,
    /// Relay, mutual TLS.
    Relay,
}

impl Listener {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Relay => "relay",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaymentLabels {
    direction: &'static str,
    status: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    method: &'static str,
    outcome: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

/// The node's metrics. Cheap to share (`Arc<Metrics>`); every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    payments: Family<PaymentLabels, Counter>,
    latency: Family<DirectionLabels, Histogram, fn() -> Histogram>,
    in_doubt: Gauge,
    tls_refusals: Family<ListenerLabels, Counter>,
    relay_requests: Family<RelayLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kakehashi");
        let payments = Family::<PaymentLabels, Counter>::default();
        registry.register(
            "payments",
            "Payments finished, by direction, pacs.002 status and reason code",
            payments.clone(),
        );
        let latency: Family<DirectionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "payment_latency",
            "Time from receiving a payment to its final status on this node",
            Unit::Seconds,
            latency.clone(),
        );
        let in_doubt = Gauge::default();
        registry.register(
            "payments_in_doubt",
            "Outbound payments whose peer decision is not yet known (PDNG)",
            in_doubt.clone(),
        );
        let tls_refusals = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "tls_refusals",
            "TLS handshakes refused or failed, by listener",
            tls_refusals.clone(),
        );
        let relay_requests = Family::<RelayLabels, Counter>::default();
        registry.register(
            "relay_requests",
            "Relay calls this node made to its peers, by method and outcome",
            relay_requests.clone(),
        );
        // Series with a fixed, small label space exist from the start, at zero, so a scraper sees
        // them (and can compute rates) before the first event.
        for listener in [Listener::Public, Listener::Relay] {
            drop(tls_refusals.get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            }));
        }
        for direction in [Direction::Inbound, Direction::Outbound] {
            drop(latency.get_or_create(&DirectionLabels {
                direction: direction.as_str(),
            }));
        }
        Self {
            registry,
            payments,
            latency,
            in_doubt,
            tls_refusals,
            relay_requests,
        }
    }

    /// Counts a finished payment and observes its latency. `status` is ACSC, RJCT or PDNG;
    /// `reason` the ISO reason code, or empty.
    pub fn record_payment(&self, direction: Direction, status: &str, reason: &str, seconds: f64) {
        self.payments
            .get_or_create(&PaymentLabels {
                direction: direction.as_str(),
                status: code_label(status),
                reason: code_label(reason),
            })
            .inc();
        self.latency
            .get_or_create(&DirectionLabels {
                direction: direction.as_str(),
            })
            .observe(seconds);
    }

    /// Sets the number of outbound payments in doubt.
    pub fn set_in_doubt(&self, n: u64) {
        self.in_doubt.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a refused or failed TLS handshake.
    pub fn tls_refused(&self, listener: Listener) {
        self.tls_refusals
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .inc();
    }

    /// Counts a relay call this node made to a peer (the sending side). `method` is the RPC
    /// name (`Prepare`, `GetStatus`); `outcome` the peer's decision (`SETTLED`, `REJECTED`,
    /// `UNKNOWN_FENCED`) or `ERROR` / `TIMEOUT`, kept to [A-Z0-9_] of at most 16 characters (else `other`).
    pub fn relay_request(&self, method: &'static str, outcome: &str) {
        let outcome = if outcome.len() <= 16
            && outcome
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            outcome.to_owned()
        } else {
            "other".to_owned()
        };
        self.relay_requests
            .get_or_create(&RelayLabels { method, outcome })
            .inc();
    }

    /// The exposition text (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder, and
        // a partial exposition is still better than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}

/// A label value for a status or reason code: the code itself when it is a short upper-case
/// code (or empty), else `other`.
fn code_label(code: &str) -> String {
    if code.len() <= LABEL_CODE_CHARS_MAX
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        code.to_owned()
    } else {
        "other".to_owned()
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes; every other path is 404.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(exposition))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn exposition(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], metrics.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family() {
        let metrics = Metrics::new();
        metrics.record_payment(Direction::Outbound, "RJCT", "AM04", 0.004);
        metrics.set_in_doubt(3);
        metrics.tls_refused(Listener::Relay);
        metrics.relay_request("Prepare", "SETTLED");
        let text = metrics.encode();
        for line in [
            "kakehashi_payments_total{direction=\"outbound\",status=\"RJCT\",reason=\"AM04\"} 1",
            "kakehashi_payment_latency_seconds_count{direction=\"outbound\"} 1",
            "kakehashi_payment_latency_seconds_bucket{le=\"0.005\",direction=\"outbound\"} 1",
            "kakehashi_payments_in_doubt 3",
            "kakehashi_tls_refusals_total{listener=\"relay\"} 1",
            "kakehashi_tls_refusals_total{listener=\"public\"} 0",
            "kakehashi_payment_latency_seconds_count{direction=\"inbound\"} 0",
            "kakehashi_relay_requests_total{method=\"Prepare\",outcome=\"SETTLED\"} 1",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counters_accumulate_per_label_set() {
        let metrics = Metrics::new();
        metrics.record_payment(Direction::Inbound, "ACSC", "", 0.01);
        metrics.record_payment(Direction::Inbound, "ACSC", "", 0.02);
        metrics.record_payment(Direction::Outbound, "ACSC", "", 0.02);
        let text = metrics.encode();
        assert!(
            text.contains(
                "kakehashi_payments_total{direction=\"inbound\",status=\"ACSC\",reason=\"\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kakehashi_payments_total{direction=\"outbound\",status=\"ACSC\",reason=\"\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn unexpected_label_values_collapse_to_other() {
        let metrics = Metrics::new();
        metrics.record_payment(Direction::Inbound, "RJCT", "a reason a peer made up", 0.1);
        metrics.relay_request("GetStatus", "weird\noutcome");
        let text = metrics.encode();
        assert!(text.contains("reason=\"other\""), "{text}");
        assert!(text.contains("outcome=\"other\""), "{text}");
        assert!(!text.contains("made up"), "{text}");
    }

    #[tokio::test]
    async fn endpoint_serves_metrics_and_404s_other_paths() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Arc::new(Metrics::new());
        metrics.set_in_doubt(7);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_metrics(listener, Arc::clone(&metrics), async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            sock.write_all(request.as_bytes()).await.expect("write");
            let mut response = String::new();
            sock.read_to_string(&mut response).await.expect("read");
            response
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{ok}"
        );
        assert!(ok.contains("kakehashi_payments_in_doubt 7"), "{ok}");
        let missing = get("/other").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        stop.send(()).expect("server running");
        server.await.expect("join").expect("clean shutdown");
    }
}
