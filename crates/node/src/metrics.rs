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
//! | `kakehashi_listener_refusals_total` | counter | `listener` (public, relay, metrics), `reason` (see below) |
//! | `kakehashi_listener_connections` | gauge | `listener` (public, relay): connections open, TLS established or in handshake |
//! | `kakehashi_relay_requests_total` | counter | `method`, `outcome` |
//! | `kakehashi_receipt_anomalies_total` | counter | `peer`, `kind` (missing, invalid, mismatch) |
//!
//! `kakehashi_receipt_anomalies_total` counts outbound payments a peer answered SETTLED without
//! a receipt that verifies under the agreement and matches the payment. The reservation is
//! posted anyway (the receiver says it credited; voiding would create money on its side), so
//! nothing else shows the anomaly: alert on any increase (`increase(...[15m]) > 0`) and compare
//! the payment with the peer's operator. The series of every configured peer exist from start-up
//! at zero, so the first anomaly is an increase.
//!
//! `kakehashi_listener_refusals_total` counts connections a listener refused or closed, by
//! reason: `source_connections`, `connections`, `source_handshakes`, `handshakes` (over a
//! `[limits]` cap), `handshake_timeout`, `handshake_failed` (also counted in
//! `kakehashi_tls_refusals_total`), `idle` (closed after `idle_connection_timeout_secs`),
//! `header_timeout` (a metrics client too slow to send its request).
//!
//! [`serve_metrics`] answers `GET /metrics` and 404 for every other path. It is plain HTTP:
//! bind it to a loopback or management address. The format follows the request's `Accept`
//! ([`Format::negotiate`]): OpenMetrics 1.0 text when the client asks for
//! `application/openmetrics-text` (Prometheus lists it first), else the Prometheus text format
//! 0.0.4, which plain-text parsers and older scrapers read. The two differ in a few places (see
//! [`to_prometheus_text`]): counters' metadata names carry `_total` in 0.0.4, and 0.0.4 has no
//! `# UNIT`, `# EOF`, exemplars or `_created` samples.
//!
//! Label values come from the node's own code, but a status or reason echoed from a peer must
//! not grow the label space without bound: values that are not short upper-case codes are
//! recorded as `other` ([`LABEL_CODE_CHARS_MAX`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{ACCEPT, CONTENT_TYPE};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::server::admission::{Reason, Source, Tally};

/// The content type of the OpenMetrics text exposition format (OpenMetrics 1.0 §"Overall
/// Structure"); Prometheus negotiates and parses it.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text exposition format, version 0.0.4 (Prometheus
/// "Exposition formats", "Basic info").
pub const CONTENT_TYPE_PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Longest label value kept from a status or reason code: ISO 20022 codes are four characters
/// (ACSC, AM04); anything longer or not [A-Z0-9] is recorded as `other`.
pub const LABEL_CODE_CHARS_MAX: usize = 4;

/// Latency histogram buckets in seconds: from 1 ms (a local rejection) to 10 s (beyond the
/// longest request timeout default), roughly doubling.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// Which way a payment went, seen from this node: the value of the `direction` label. (Named
/// apart from the pair audit's `Flow`, which is a sender–receiver pair of nodes.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Received from a peer node (this node credits).
    Inbound,
    /// Submitted by a participant and relayed to a peer (this node debits).
    Outbound,
}

impl Flow {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Which listener a refusal happened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Payments, client certificate optional.
    Public,
    /// Relay, mutual TLS.
    Relay,
    /// `GET /metrics`, plain HTTP.
    Metrics,
}

impl Listener {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Relay => "relay",
            Self::Metrics => "metrics",
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
struct FlowLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerRefusalLabels {
    listener: &'static str,
    reason: &'static str,
}

/// What was wrong with the receipt of a payment a peer settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptAnomaly {
    /// It did not verify: bad signature, or a signer the agreement does not recognize for
    /// receipts.
    Invalid,
    /// It verified but names another payment, another instruction or another signer
    /// jurisdiction than the peer's.
    Mismatch,
    /// The SETTLED answer carried no receipt.
    Missing,
}

impl ReceiptAnomaly {
    /// Every kind, for the zero series.
    pub const ALL: [Self; 3] = [Self::Invalid, Self::Mismatch, Self::Missing];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Mismatch => "mismatch",
            Self::Missing => "missing",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiptAnomalyLabels {
    peer: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    method: &'static str,
    outcome: String,
}

/// Buckets of `kakehashi_relay_batch_size`: powers of two up to a Prepares batch's maximum.
const RELAY_BATCH_SIZE_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECONDS)
}

/// The node's metrics. Cheap to share (`Arc<Metrics>`); every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    payments: Family<PaymentLabels, Counter>,
    latency: Family<FlowLabels, Histogram, fn() -> Histogram>,
    in_doubt: Gauge,
    tls_refusals: Family<ListenerLabels, Counter>,
    listener_refusals: Family<ListenerRefusalLabels, Counter>,
    listener_connections: Family<ListenerLabels, Gauge>,
    relay_requests: Family<RelayLabels, Counter>,
    receipt_anomalies: Family<ReceiptAnomalyLabels, Counter>,
    relay_batch_size: Histogram,
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
        let latency: Family<FlowLabels, Histogram, fn() -> Histogram> =
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
        let listener_refusals = Family::<ListenerRefusalLabels, Counter>::default();
        registry.register(
            "listener_refusals",
            "Connections a listener refused or closed, by listener and reason",
            listener_refusals.clone(),
        );
        let listener_connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "listener_connections",
            "Connections open on a listener, TLS established or in handshake",
            listener_connections.clone(),
        );
        let relay_requests = Family::<RelayLabels, Counter>::default();
        registry.register(
            "relay_requests",
            "Relay calls this node made to its peers, by method and outcome",
            relay_requests.clone(),
        );
        let receipt_anomalies = Family::<ReceiptAnomalyLabels, Counter>::default();
        registry.register(
            "receipt_anomalies",
            "Outbound payments a peer settled without a valid, matching receipt (the reservation \
             was posted anyway), by peer and kind",
            receipt_anomalies.clone(),
        );
        let relay_batch_size = Histogram::new(RELAY_BATCH_SIZE_BUCKETS);
        registry.register(
            "relay_batch_size",
            "Instructions per batch a peer sent on a Prepares stream (the receiving side)",
            relay_batch_size.clone(),
        );
        // Series with a fixed, small label space exist from the start, at zero, so a scraper sees
        // them (and can compute rates) before the first event.
        for listener in [Listener::Public, Listener::Relay] {
            drop(tls_refusals.get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            }));
            drop(listener_connections.get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            }));
        }
        for flow in [Flow::Inbound, Flow::Outbound] {
            drop(latency.get_or_create(&FlowLabels {
                direction: flow.as_str(),
            }));
        }
        Self {
            registry,
            payments,
            latency,
            in_doubt,
            tls_refusals,
            listener_refusals,
            listener_connections,
            relay_requests,
            receipt_anomalies,
            relay_batch_size,
        }
    }

    /// Observes a batch of `size` instructions received on a Prepares stream.
    pub fn relay_batch(&self, size: usize) {
        self.relay_batch_size.observe(size as f64);
    }

    /// Creates the zero series of `peer` (a configured peer jurisdiction) for the metrics that
    /// have a `peer` label, so that its first event is an increase a rate or alert can see.
    pub fn add_peer(&self, peer: &str) {
        for kind in ReceiptAnomaly::ALL {
            drop(self.receipt_anomalies.get_or_create(&ReceiptAnomalyLabels {
                peer: code_label(peer),
                kind: kind.as_str(),
            }));
        }
    }

    /// Counts a payment `peer` settled without a valid, matching receipt.
    pub fn receipt_anomaly(&self, peer: &str, kind: ReceiptAnomaly) {
        self.receipt_anomalies
            .get_or_create(&ReceiptAnomalyLabels {
                peer: code_label(peer),
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Counts a finished payment and observes its latency. `status` is ACSC, RJCT or PDNG;
    /// `reason` the ISO reason code, or empty.
    pub fn record_payment(&self, flow: Flow, status: &str, reason: &str, seconds: f64) {
        self.payments
            .get_or_create(&PaymentLabels {
                direction: flow.as_str(),
                status: code_label(status),
                reason: code_label(reason),
            })
            .inc();
        self.latency
            .get_or_create(&FlowLabels {
                direction: flow.as_str(),
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

    /// Counts `n` connections `listener` refused or closed for `reason` (a short snake_case
    /// word of the server's own); `n = 0` creates the series at zero.
    pub fn listener_refused(&self, listener: Listener, reason: &'static str, n: u64) {
        self.listener_refusals
            .get_or_create(&ListenerRefusalLabels {
                listener: listener.as_str(),
                reason,
            })
            .inc_by(n);
    }

    /// The gauge of the connections open on `listener`, for the listener to keep up to date.
    pub fn listener_connections(&self, listener: Listener) -> Gauge {
        self.listener_connections
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .clone()
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

    /// The exposition text in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::PrometheusText => to_prometheus_text(&self.encode()),
        }
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

/// The metrics listener's bounds (`[limits] max_metrics_connections`,
/// `metrics_header_timeout_ms`) and where its refusals are counted.
#[derive(Debug)]
pub struct MetricsLimits {
    /// Connections open at once; more are closed at accept.
    pub connections_max: usize,
    /// Time a client has to send a request's headers, from its connection or its previous
    /// response (hyper's `header_read_timeout`).
    pub header_timeout: Duration,
    /// Counts and summarizes the refusals.
    pub tally: Arc<Tally>,
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes; every other path is 404.
/// HTTP/1.1 only, at most `limits.connections_max` connections at once (more are closed at
/// accept), each given `limits.header_timeout` to send a request's headers: a client that
/// opens connections and sends nothing, or a byte at a time, cannot hold the endpoint.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: MetricsLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(exposition))
        .with_state(metrics);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = "metrics", error = %e, "accept failed");
                    tokio::time::sleep(crate::server::ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let source = Source::of(peer.ip());
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            limits.tally.record(Reason::Connections, Some(source), None);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        let tally = Arc::clone(&limits.tally);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    tally.record(Reason::HeaderTimeout, Some(source), None);
                } else {
                    tracing::debug!(listener = "metrics", %peer, error = %e, "connection failed");
                }
            }
            drop(slot);
        });
    }
    // Stop accepting at once; connections finish the request they are serving, idle ones
    // close now.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn exposition(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    headers: axum::http::HeaderMap,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let accept = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [(CONTENT_TYPE, format.content_type())],
        metrics.encode_as(format),
    )
}

/// An exposition format the endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, `application/openmetrics-text`.
    OpenMetrics,
    /// Prometheus text format 0.0.4, `text/plain`.
    PrometheusText,
}

impl Format {
    /// The format for a request whose `Accept` header values are `accept` (RFC 9110 §12.5.1):
    /// OpenMetrics when the client accepts `application/openmetrics-text` with a weight above
    /// zero and at least the weight it gives `text/plain` (or `text/*`, `*/*`); the Prometheus
    /// text format otherwise, including when there is no `Accept` at all. A wildcard alone does
    /// not select OpenMetrics: a client that names no format gets the older, more widely parsed
    /// one. Prometheus sends `application/openmetrics-text;version=1.0.0;q=0.5,...,
    /// text/plain;version=0.0.4;q=0.2,*/*;q=0.1` (Prometheus "Scrape protocol content
    /// negotiation"), so it gets OpenMetrics.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Self {
        let mut openmetrics = 0.0_f64;
        let mut text = 0.0_f64;
        for range in accept.into_iter().flat_map(|value| value.split(',')) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, value)| value.trim().parse::<f64>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(weight),
                "text/plain" | "text/*" | "*/*" => text = text.max(weight),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
            Self::PrometheusText => CONTENT_TYPE_PROMETHEUS_TEXT,
        }
    }
}

/// Rewrites an OpenMetrics 1.0 text exposition (as `prometheus_client` writes it) into the
/// Prometheus text format 0.0.4. The differences, from the OpenMetrics specification and the
/// Prometheus "Exposition formats" page:
/// - a counter family `x` has samples `x_total`; OpenMetrics names the family `x` in `# HELP`
///   and `# TYPE`, while 0.0.4 expects the sample's name there, so they become `x_total`;
/// - `# UNIT` and the closing `# EOF` do not exist in 0.0.4 and are dropped;
/// - exemplars (`... # {labels} value`) and `_created` samples do not exist in 0.0.4 and are
///   dropped;
/// - `unknown` is `untyped` in 0.0.4; `info` and `stateset` families become gauges (an info
///   family `x` has samples `x_info`); `gaugehistogram` has no 0.0.4 type, so its samples are
///   left untyped;
/// - `# HELP` escapes only backslash and line feed in 0.0.4, so an escaped double quote is
///   unescaped;
/// - sample timestamps are seconds in OpenMetrics and milliseconds in 0.0.4.
///
/// Label values escape the same three characters in both formats and pass unchanged.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    // TYPE lines come after HELP lines, so learn every family's type first.
    let mut types = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            types.insert(name, kind.trim());
        }
    }
    // Counter, histogram and summary families of these names have `_created` samples.
    let created: std::collections::HashSet<String> = types
        .iter()
        .filter(|(_, kind)| matches!(**kind, "counter" | "histogram" | "summary"))
        .map(|(name, _)| format!("{name}_created"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let Some(name) = metadata_name(name, types.get(name).copied()) else {
                continue;
            };
            out.push_str("# HELP ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(&help.replace("\\\"", "\""));
            out.push('\n');
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let Some(renamed) = metadata_name(name, Some(kind.trim())) else {
                continue;
            };
            let kind = match kind.trim() {
                "unknown" => "untyped",
                "info" | "stateset" => "gauge",
                other => other,
            };
            out.push_str("# TYPE ");
            out.push_str(&renamed);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
        } else if line.starts_with('#') || line.is_empty() {
            // Other comments pass; 0.0.4 ignores them too.
            out.push_str(line);
            out.push('\n');
        } else {
            let (series, rest) = split_series(line);
            let name = series.split('{').next().unwrap_or_default();
            if created.contains(name) {
                continue;
            }
            // Drop an exemplar: everything from " # " after the label set.
            let rest = rest.split(" # ").next().unwrap_or_default();
            let mut fields = rest.split_whitespace();
            let value = fields.next().unwrap_or_default();
            out.push_str(series);
            out.push(' ');
            out.push_str(value);
            if let Some(seconds) = fields
                .next()
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|t| t.is_finite())
            {
                // Whole milliseconds: 0.0.4 timestamps are integers.
                out.push(' ');
                out.push_str(&format!("{:.0}", seconds * 1000.0));
            }
            out.push('\n');
        }
    }
    out
}

/// The name a family's `# HELP`/`# TYPE` line carries in 0.0.4, or `None` when the family has
/// no 0.0.4 type (its samples are then untyped and its metadata is dropped).
fn metadata_name(name: &str, kind: Option<&str>) -> Option<String> {
    match kind {
        Some("counter") => Some(format!("{name}_total")),
        Some("info") => Some(format!("{name}_info")),
        Some("gaugehistogram") => None,
        _ => Some(name.to_owned()),
    }
}

/// Splits a sample line into its series (name and label set) and the rest (value, timestamp,
/// exemplar), honouring quotes and escapes inside label values, which may hold spaces or `#`.
fn split_series(line: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut depth = 0_u32;
    for (index, byte) in line.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match byte {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'{' if !in_quotes => depth += 1,
            b'}' if !in_quotes => depth = depth.saturating_sub(1),
            b' ' if !in_quotes && depth == 0 => {
                return (&line[..index], line[index..].trim_start());
            }
            _ => {}
        }
    }
    (line, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus 3 sends by default (its `scrape_protocols` without protobuf).
    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn negotiation_serves_openmetrics_only_to_clients_that_ask_for_it() {
        use Format::{OpenMetrics, PrometheusText};
        for (accept, expected) in [
            (vec![PROMETHEUS_ACCEPT], OpenMetrics),
            (vec!["application/openmetrics-text"], OpenMetrics),
            (
                vec!["Application/OpenMetrics-Text; version=1.0.0"],
                OpenMetrics,
            ),
            (
                vec!["text/html", "application/openmetrics-text;q=0.1"],
                OpenMetrics,
            ),
            (vec![], PrometheusText),
            (vec!["*/*"], PrometheusText),
            (vec!["text/plain"], PrometheusText),
            (vec!["text/plain;version=0.0.4"], PrometheusText),
            (vec!["application/openmetrics-text;q=0"], PrometheusText),
            (
                vec!["application/openmetrics-text;q=0.4, text/plain"],
                PrometheusText,
            ),
            (
                vec!["application/openmetrics-text;q=nonsense"],
                PrometheusText,
            ),
            (vec!["application/json"], PrometheusText),
        ] {
            assert_eq!(Format::negotiate(accept.clone()), expected, "{accept:?}");
        }
        assert_eq!(
            OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            PrometheusText.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples_and_has_no_unit_or_eof() {
        let metrics = Metrics::new();
        metrics.record_payment(Flow::Outbound, "RJCT", "AM04", 0.004);
        metrics.set_in_doubt(3);
        metrics.relay_request("Prepare", "SETTLED");
        let text = metrics.encode_as(Format::PrometheusText);
        for line in [
            "# TYPE kakehashi_payments_total counter",
            "# HELP kakehashi_payments_total Payments finished",
            "# TYPE kakehashi_tls_refusals_total counter",
            "# TYPE kakehashi_relay_requests_total counter",
            "# TYPE kakehashi_payment_latency_seconds histogram",
            "# TYPE kakehashi_payments_in_doubt gauge",
            "kakehashi_payments_total{direction=\"outbound\",status=\"RJCT\",reason=\"AM04\"} 1",
            "kakehashi_payment_latency_seconds_bucket{le=\"+Inf\",direction=\"outbound\"} 1",
            "kakehashi_payments_in_doubt 3",
            "kakehashi_relay_requests_total{method=\"Prepare\",outcome=\"SETTLED\"} 1",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        for absent in ["# EOF", "# UNIT", "# TYPE kakehashi_payments counter"] {
            assert!(!text.contains(absent), "{absent:?} in\n{text}");
        }
        // Every sample of the OpenMetrics exposition is there, unchanged.
        let openmetrics = metrics.encode();
        for sample in openmetrics.lines().filter(|l| !l.starts_with('#')) {
            assert!(text.lines().any(|l| l == sample), "{sample:?} lost");
        }
    }

    #[test]
    fn prometheus_text_drops_what_0_0_4_cannot_say() {
        let openmetrics = "\
# HELP jobs Jobs done, \\\"quoted\\\".
# TYPE jobs counter
jobs_total{kind=\"a # {b} c\"} 3 # {trace_id=\"x\"} 1.0 1700000000.5
jobs_created{kind=\"a # {b} c\"} 1700000000.0
# TYPE mystery unknown
mystery 1 1700000000.25
# TYPE build info
build_info{version=\"1\"} 1
# TYPE queue gaugehistogram
queue_gcount 2
# EOF
";
        let text = to_prometheus_text(openmetrics);
        assert_eq!(
            text,
            "\
# HELP jobs_total Jobs done, \"quoted\".
# TYPE jobs_total counter
jobs_total{kind=\"a # {b} c\"} 3
# TYPE mystery untyped
mystery 1 1700000000250
# TYPE build_info gauge
build_info{version=\"1\"} 1
queue_gcount 2
"
        );
    }

    #[test]
    fn exposition_names_every_family() {
        let metrics = Metrics::new();
        metrics.record_payment(Flow::Outbound, "RJCT", "AM04", 0.004);
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
    fn receipt_anomalies_start_at_zero_per_peer_and_count_by_kind() {
        let metrics = Metrics::new();
        metrics.add_peer("SG");
        let text = metrics.encode();
        for kind in ["invalid", "mismatch", "missing"] {
            let series =
                format!("kakehashi_receipt_anomalies_total{{peer=\"SG\",kind=\"{kind}\"}} 0");
            assert!(text.contains(&series), "{series} missing from\n{text}");
        }
        metrics.receipt_anomaly("SG", ReceiptAnomaly::Invalid);
        metrics.receipt_anomaly("SG", ReceiptAnomaly::Invalid);
        metrics.receipt_anomaly("SG", ReceiptAnomaly::Missing);
        let text = metrics.encode();
        for line in [
            "kakehashi_receipt_anomalies_total{peer=\"SG\",kind=\"invalid\"} 2",
            "kakehashi_receipt_anomalies_total{peer=\"SG\",kind=\"missing\"} 1",
            "kakehashi_receipt_anomalies_total{peer=\"SG\",kind=\"mismatch\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(
            metrics
                .encode_as(Format::PrometheusText)
                .contains("# TYPE kakehashi_receipt_anomalies_total counter"),
            "{text}"
        );
    }

    #[test]
    fn counters_accumulate_per_label_set() {
        let metrics = Metrics::new();
        metrics.record_payment(Flow::Inbound, "ACSC", "", 0.01);
        metrics.record_payment(Flow::Inbound, "ACSC", "", 0.02);
        metrics.record_payment(Flow::Outbound, "ACSC", "", 0.02);
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
        metrics.record_payment(Flow::Inbound, "RJCT", "a reason a peer made up", 0.1);
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
        let limits = MetricsLimits {
            connections_max: 4,
            header_timeout: Duration::from_secs(5),
            tally: Tally::new(Listener::Metrics, None, Arc::clone(&metrics)),
        };
        let server = tokio::spawn(serve_metrics(
            listener,
            Arc::clone(&metrics),
            limits,
            async {
                let _ = stopped.await;
            },
        ));
        let get = |path: &'static str, accept: &'static str| async move {
            let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n");
            sock.write_all(request.as_bytes()).await.expect("write");
            let mut response = String::new();
            sock.read_to_string(&mut response).await.expect("read");
            response
        };
        let ok = get("/metrics", "Accept: application/openmetrics-text\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{ok}"
        );
        assert!(ok.contains("kakehashi_payments_in_doubt 7"), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");
        let plain = get("/metrics", "").await;
        assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
        assert!(
            plain
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{plain}"
        );
        assert!(plain.contains("kakehashi_payments_in_doubt 7"), "{plain}");
        assert!(!plain.contains("# EOF"), "{plain}");
        let missing = get("/other", "").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        stop.send(()).expect("server running");
        server.await.expect("join").expect("clean shutdown");
    }
}
