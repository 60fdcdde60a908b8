//! The node's listeners over real sockets on 127.0.0.1 with real TLS: a JP node built from the
//! devnet configuration (ports 0) serving trivial Payments and Relay implementations, reached
//! by clients holding the committed SG node identity, no certificate, or a certificate that is
//! not a node's.
//!
//! Refused TLS clients see vague errors ("transport error"), so the tests assert that the call
//! fails and that the server counted the refusal, not the text (ARCHITECTURE.md, "Stack facts").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kakehashi_node::config::{Config, Limits, RelayAddress};
use kakehashi_node::metrics::{Flow, Metrics};
use kakehashi_node::participant::{self, ConnectOptions, ParticipantError};
use kakehashi_node::server::{Addresses, ServeError, bind};
use kakehashi_node::tls::{TlsIdentity, install_crypto_provider, peer_leaf_der, relay_endpoint};
use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::payments_server::Payments;
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::pb::relay_server::Relay;
use kakehashi_proto::pb::{self, Decision};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Everything the node logged, from every test of this binary (tests run in parallel, so
/// each looks only for text its own case produces).
static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();

/// Installs (once) a subscriber that captures log output into [`LOG`].
fn capture_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    Arc::clone(LOG.get_or_init(|| {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        buffer
    }))
}

struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many bytes have been logged so far.
fn log_len() -> usize {
    capture_logs().lock().expect("log lock").len()
}

/// What was logged after the first `from` bytes.
fn logged_since(from: usize) -> String {
    let log = capture_logs();
    let log = log.lock().expect("log lock");
    String::from_utf8_lossy(log.get(from..).unwrap_or_default()).into_owned()
}

/// How long a test waits for the server to record something before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mra() -> Arc<Mra> {
    Arc::new(Mra::load(&repo().join("certs/mra.toml")).expect("certs/mra.toml"))
}

/// A committed chain and key, e.g. `sg/node/tls` or `jp/banks/KKHAJPJ0`.
fn identity(stem: &str) -> TlsIdentity {
    let certs = repo().join("certs");
    TlsIdentity::load(
        &certs.join(format!("{stem}.pem")),
        &certs.join(format!("{stem}.key.pem")),
    )
    .unwrap_or_else(|e| panic!("{stem}: {e}"))
}

// ---- trivial services ----------------------------------------------------------------------

struct TestPayments;

#[tonic::async_trait]
impl Payments for TestPayments {
    async fn get_quote(
        &self,
        _: Request<pb::QuoteRequest>,
    ) -> Result<Response<pb::Signed>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn submit_payment(
        &self,
        _: Request<pb::SubmitPaymentRequest>,
    ) -> Result<Response<pb::PaymentStatusReport>, Status> {
        Err(Status::unimplemented("test"))
    }
    type SubmitPaymentsStream = tokio_stream::Empty<Result<pb::PaymentStatusReport, Status>>;
    async fn submit_payments(
        &self,
        _: Request<tonic::Streaming<pb::SubmitPaymentRequest>>,
    ) -> Result<Response<Self::SubmitPaymentsStream>, Status> {
        Err(Status::unimplemented("test"))
    }
    /// Never answers within a test, so only the server's request timeout ends the call.
    async fn get_payment_status(
        &self,
        _: Request<pb::PaymentStatusRequest>,
    ) -> Result<Response<pb::PaymentStatusReport>, Status> {
        tokio::time::sleep(WAIT * 6).await;
        Err(Status::unimplemented("test"))
    }
    /// Answers with one balance whose name is the hex of the client's leaf certificate (empty
    /// without one), so the test sees what `peer_leaf_der` returned on the public listener.
    async fn get_balances(
        &self,
        request: Request<pb::BalancesRequest>,
    ) -> Result<Response<pb::BalancesResponse>, Status> {
        let leaf = peer_leaf_der(&request).map(hex::encode).unwrap_or_default();
        Ok(Response::new(pb::BalancesResponse {
            balances: vec![pb::AccountBalance {
                name: leaf,
                ..Default::default()
            }],
            next_page_token: String::new(),
        }))
    }
    async fn open_account(
        &self,
        _: Request<pb::OpenAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn fund_account(
        &self,
        _: Request<pb::FundAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn close_account(
        &self,
        _: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn reopen_account(
        &self,
        _: Request<pb::ReopenAccountRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        Err(Status::unimplemented("test"))
    }
    async fn reload_sanctions(
        &self,
        _: Request<pb::ReloadSanctionsRequest>,
    ) -> Result<Response<pb::ReloadSanctionsResponse>, Status> {
        Err(Status::unimplemented("test"))
    }
}

/// Answers every Prepare with UNKNOWN_FENCED and the hex of the client's leaf certificate in
/// the detail, so the test sees what `peer_leaf_der` returned. It has no Prepares stream (as a
/// peer built before it, or with another gRPC stack, may not): UNIMPLEMENTED, counted.
struct TestRelay;

/// Prepares streams TestRelay refused.
static PREPARES_REFUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tonic::async_trait]
impl Relay for TestRelay {
    type PreparesStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::PrepareAnswers, Status>> + Send + 'static>,
    >;

    async fn prepares(
        &self,
        _: Request<tonic::Streaming<pb::PrepareBatch>>,
    ) -> Result<Response<Self::PreparesStream>, Status> {
        PREPARES_REFUSED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(Status::unimplemented("no Prepares stream here"))
    }
    async fn prepare(
        &self,
        request: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::RelayDecision>, Status> {
        let leaf = peer_leaf_der(&request).ok_or_else(|| Status::unauthenticated("no leaf"))?;
        Ok(Response::new(pb::RelayDecision {
            uetr: String::new(),
            decision: Decision::UnknownFenced as i32,
            status_reason_code: String::new(),
            status_reason_detail: hex::encode(leaf),
            receipt: None,
            receiving_jurisdiction: "JP".to_owned(),
        }))
    }
    async fn get_status(
        &self,
        _: Request<pb::RelayStatusRequest>,
    ) -> Result<Response<pb::RelayDecision>, Status> {
        Err(Status::unimplemented("test"))
    }
}

// ---- a running node ------------------------------------------------------------------------

struct Node {
    addresses: Addresses,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    _data: tempfile::TempDir,
}

impl Node {
    /// Starts the devnet node `name` (jp or sg) on ports chosen by the OS.
    async fn start(name: &str) -> Self {
        Self::start_with(name, |_| {}).await
    }

    /// Starts the devnet node `name` after `adjust` changed its limits.
    async fn start_with(name: &str, adjust: impl FnOnce(&mut Limits)) -> Self {
        Self::start_configured(name, |config| adjust(&mut config.limits)).await
    }

    /// Starts the devnet node `name` after `adjust` changed its configuration.
    async fn start_configured(name: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        install_crypto_provider();
        capture_logs();
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = Config::load(&repo().join(format!("crates/node/devnet/{name}.toml")))
            .expect("devnet config")
            .with_ports(0, 0, 0)
            .with_data_dir(data.path());
        adjust(&mut config);
        config.validate().expect("adjusted config is valid");
        let mra = Arc::new(Mra::load(&config.mra).expect("mra"));
        let bound = bind(&config.listen).await.expect("bind");
        let addresses = bound.addresses();
        assert_ne!(addresses.relay.port(), 0);
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&metrics);
        let task = tokio::spawn(async move {
            bound
                .run(&config, mra, TestPayments, TestRelay, served, async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            addresses,
            metrics,
            stop: Some(stop),
            task,
            _data: data,
        }
    }

    /// Stops the node and asserts it shut down cleanly.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("shutdown within the wait")
            .expect("join");
        result.expect("clean shutdown");
    }

    /// Waits until the exposition contains `line`.
    async fn wait_for_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.metrics.encode();
            if text.contains(line) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{line:?} never appeared in\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A relay address for dialling the node's listener at `addr`.
fn address_of(addr: std::net::SocketAddr) -> RelayAddress {
    RelayAddress {
        uri: format!("https://{addr}").parse().expect("uri"),
        server_name: "localhost".to_owned(),
    }
}

/// A channel to `addr` that verifies the server as `relying` would and presents no client
/// certificate.
async fn channel(
    addr: std::net::SocketAddr,
    relying: &str,
) -> Result<Channel, tonic::transport::Error> {
    let verifier = NodeServerCertVerifier::new(mra(), relying).expect("verifier");
    let tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .timeout(WAIT);
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .timeout(WAIT)
        .tls_config_with_verifier(tls, Arc::new(verifier))?
        .connect()
        .await
}

/// A Prepare over `endpoint`; an error when the connection or the call fails.
async fn prepare(endpoint: Endpoint) -> Result<pb::RelayDecision, String> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    RelayClient::new(channel)
        .prepare(pb::PrepareRequest { instruction: None })
        .await
        .map(Response::into_inner)
        .map_err(|e| format!("call: {e}"))
}

fn relay_endpoint_as(stem: &str, relying: &str, addr: std::net::SocketAddr) -> Endpoint {
    relay_endpoint(
        "JP",
        &address_of(addr),
        &identity(stem),
        mra(),
        relying,
        &Limits::default(),
    )
    .expect("endpoint")
}

async fn health(channel: Channel, service: &str) -> Result<i32, Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn sg_node_completes_a_relay_call_over_mutual_tls() {
    let node = Node::start("jp").await;
    let decision = prepare(relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay))
        .await
        .expect("SG node is recognized by JP");
    assert_eq!(decision.decision, Decision::UnknownFenced as i32);
    assert_eq!(decision.receiving_jurisdiction, "JP");
    // The service saw the SG node's leaf through peer_leaf_der.
    assert_eq!(
        decision.status_reason_detail,
        hex::encode(identity("sg/node/tls").leaf_der())
    );
    node.stop().await;
}

/// A peer without the Prepares stream (UNIMPLEMENTED) still gets Prepares from a batching
/// transport, unary, over the same mutual TLS; the stream is not asked for again at once.
#[tokio::test]
async fn a_batching_transport_falls_back_to_unary_for_a_peer_without_the_stream() {
    use kakehashi_node::engine::{GrpcPeer, PeerTransport as _};
    let node = Node::start("jp").await;
    let channel = relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay).connect_lazy();
    let peer = GrpcPeer::batching(RelayClient::new(channel), WAIT, 64 * 1024);
    let refused_before = PREPARES_REFUSED.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        let decision = peer
            .prepare(pb::PrepareRequest { instruction: None })
            .await
            .expect("answered by the unary Prepare");
        assert_eq!(decision.decision, Decision::UnknownFenced as i32);
        assert_eq!(
            decision.status_reason_detail,
            hex::encode(identity("sg/node/tls").leaf_der())
        );
    }
    assert_eq!(
        PREPARES_REFUSED.load(std::sync::atomic::Ordering::SeqCst) - refused_before,
        1,
        "the stream was asked for once, then the peer was called unary"
    );
    node.stop().await;
}

#[tokio::test]
async fn relay_refuses_a_client_without_certificate_and_keeps_accepting() {
    let node = Node::start("jp").await;
    let refused = match channel(node.addresses.relay, "SG").await {
        Ok(ch) => RelayClient::new(ch)
            .prepare(pb::PrepareRequest { instruction: None })
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without certificate must not reach Relay");
    node.wait_for_metric("kakehashi_tls_refusals_total{listener=\"relay\"} 1")
        .await;
    // The failed handshake did not stop the accept loop.
    prepare(relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay))
        .await
        .expect("a recognized peer still gets through");
    node.stop().await;
}

#[tokio::test]
async fn relay_refuses_a_bank_signing_certificate() {
    let node = Node::start("jp").await;
    let result = prepare(relay_endpoint_as(
        "sg/banks/KKHASGS0",
        "SG",
        node.addresses.relay,
    ))
    .await;
    assert!(
        result.is_err(),
        "a payment-signing leaf is not a node certificate: {result:?}"
    );
    node.wait_for_metric("kakehashi_tls_refusals_total{listener=\"relay\"} 1")
        .await;
    node.stop().await;
}

#[tokio::test]
async fn public_listener_serves_health_to_a_client_without_certificate() {
    let node = Node::start("jp").await;
    let ch = channel(node.addresses.public, "JP")
        .await
        .expect("TLS without client cert");
    assert_eq!(
        health(ch.clone(), "kakehashi.v1.Payments")
            .await
            .expect("health"),
        ServingStatus::Serving as i32
    );
    assert_eq!(
        health(ch, "").await.expect("overall health"),
        ServingStatus::Serving as i32
    );
    node.stop().await;
}

#[tokio::test]
async fn relay_listener_serves_health_to_a_recognized_peer() {
    let node = Node::start("jp").await;
    let ch = relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay)
        .connect()
        .await
        .expect("connect");
    assert_eq!(
        health(ch, "kakehashi.v1.Relay").await.expect("health"),
        ServingStatus::Serving as i32
    );
    node.stop().await;
}

#[tokio::test]
async fn public_listener_refuses_a_presented_certificate_it_does_not_recognize() {
    let node = Node::start("jp").await;
    // A bank's payment-signing certificate presented as TLS client certificate.
    let endpoint = relay_endpoint(
        "JP",
        &address_of(node.addresses.public),
        &identity("jp/banks/KKHAJPJ0"),
        mra(),
        "JP",
        &Limits::default(),
    )
    .expect("endpoint");
    let result = match endpoint.connect().await {
        Ok(ch) => health(ch, "").await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(result.is_err(), "{result:?}");
    node.wait_for_metric("kakehashi_tls_refusals_total{listener=\"public\"} 1")
        .await;
    node.stop().await;
}

/// `participant::connect_with`, the one connect the CLI and the tests use: a recognized node
/// connects with the options applied, and each failure says what went wrong in its own variant.
#[tokio::test]
async fn participant_connect_applies_its_options_and_explains_each_failure() {
    let node = Node::start("jp").await;
    let url = format!("https://{}", node.addresses.public);
    // A JP bank's participant-TLS identity (the JP public listener takes no node certificate).
    let operator = identity("jp/banks/KKHAJPJ0-tls");
    let options = ConnectOptions {
        server_name: Some("localhost".to_owned()),
        identity: Some(operator.tonic_identity()),
        request_timeout: Some(WAIT),
        message_bytes_max: 64 * 1024,
        ..ConnectOptions::default()
    };
    let mut client = participant::connect_with(&url, mra(), "SG", &options)
        .await
        .expect("SG recognizes the JP node");
    // The test service answers with the hex of the client certificate it saw.
    let answer = client
        .get_balances(pb::BalancesRequest::default())
        .await
        .expect("balances")
        .into_inner();
    assert_eq!(answer.balances[0].name, hex::encode(operator.leaf_der()));
    // The message limit applies to answers: the same answer (two hex characters per byte of a
    // certificate of several hundred bytes) is refused under a 256-byte limit.
    let small = ConnectOptions {
        message_bytes_max: 256,
        ..options.clone()
    };
    let mut client = participant::connect_with(&url, mra(), "SG", &small)
        .await
        .expect("connects");
    let refused = client
        .get_balances(pb::BalancesRequest::default())
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");

    // A certificate that does not name the host asked for: refused with the verifier's reason.
    let wrong_name = ConnectOptions {
        server_name: Some("bank.example".to_owned()),
        ..ConnectOptions::default()
    };
    match participant::connect_with(&url, mra(), "SG", &wrong_name).await {
        Err(error @ ParticipantError::Refused { .. }) => {
            let text = error.to_string();
            assert!(text.contains("not recognized by SG: "), "{text}");
            assert!(text.contains("bank.example"), "{text}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A jurisdiction the agreement does not know cannot check anything.
    let unknown = participant::connect_with(&url, mra(), "XX", &options).await;
    assert!(
        matches!(&unknown, Err(ParticipantError::Verifier { relying, .. }) if relying == "XX"),
        "{unknown:?}"
    );
    let address = node.addresses.public;
    node.stop().await;
    // Nothing listens any more: unreachable, with the transport's reason.
    let gone =
        participant::connect_with(&format!("https://{address}"), mra(), "SG", &options).await;
    assert!(
        matches!(&gone, Err(ParticipantError::Unreachable { message, .. }) if !message.is_empty()),
        "{gone:?}"
    );
    let invalid = participant::connect_with("https://bad host", mra(), "SG", &options).await;
    assert!(
        matches!(&invalid, Err(ParticipantError::InvalidUrl { .. })),
        "{invalid:?}"
    );
}

/// The service names listed by reflection, over v1 or v1alpha.
async fn reflected_services(channel: Channel, v1: bool) -> Vec<String> {
    if v1 {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection v1")
            .into_inner();
        match stream
            .message()
            .await
            .expect("answer")
            .and_then(|r| r.message_response)
        {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected answer {other:?}"),
        }
    } else {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection v1alpha")
            .into_inner();
        match stream
            .message()
            .await
            .expect("answer")
            .and_then(|r| r.message_response)
        {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

#[tokio::test]
async fn reflection_lists_payments_over_v1_and_v1alpha() {
    let node = Node::start("jp").await;
    for v1 in [true, false] {
        let ch = channel(node.addresses.public, "JP").await.expect("connect");
        let services = reflected_services(ch, v1).await;
        assert!(
            services.iter().any(|s| s == "kakehashi.v1.Payments"),
            "v1={v1}: {services:?}"
        );
        assert!(
            services.iter().any(|s| s == "grpc.health.v1.Health"),
            "v1={v1}: {services:?}"
        );
        assert!(
            !services.iter().any(|s| s == "kakehashi.v1.Relay"),
            "Relay is not served on the public listener: {services:?}"
        );
    }
    node.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_answers_with_every_family() {
    let node = Node::start("jp").await;
    node.metrics.set_in_doubt(2);
    node.metrics
        .record_payment(Flow::Outbound, "ACSC", "", 0.25);
    node.metrics.relay_request("Prepare", "SETTLED");
    let mut sock = tokio::net::TcpStream::connect(node.addresses.metrics)
        .await
        .expect("connect");
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut response = String::new();
    sock.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for name in [
        "kakehashi_payments_total{direction=\"outbound\",status=\"ACSC\",reason=\"\"} 1",
        "kakehashi_payment_latency_seconds_count{direction=\"outbound\"} 1",
        "kakehashi_payments_in_doubt 2",
        "kakehashi_tls_refusals_total{listener=\"relay\"} 0",
        "kakehashi_relay_requests_total{method=\"Prepare\",outcome=\"SETTLED\"} 1",
    ] {
        assert!(response.contains(name), "{name} missing from\n{response}");
    }
    node.stop().await;
}

/// Node TLS certificates with one defect each (certs/fixtures/node-*, all JP leaves) and the TH
/// node under an agreement without the rows that recognize TH: each is refused at the SG relay
/// handshake, the refusal is counted and its reason logged, and the listener keeps serving.
#[tokio::test]
async fn sg_relay_refuses_expired_revoked_unknown_and_unrecognized_node_certificates() {
    // The committed agreement recognizes TH: SG runs under a copy in which nobody does.
    let agreement = tempfile::tempdir().expect("tempdir");
    let without_th = crate::support::agreement_variant(agreement.path(), |text| {
        crate::support::without_rows_recognizing(&text, "TH")
    });
    let node = Node::start_configured("sg", |config| {
        config.limits.refusal_log_interval_ms = 100;
        config.mra = without_th;
    })
    .await;
    let cases = [
        (
            "fixtures/node-expired/chain",
            "expired at 2026-02-01T00:00:00Z",
        ),
        ("fixtures/node-revoked/chain", "is revoked [RFC 5280 §6.3]"),
        (
            "fixtures/node-unknown-pki/chain",
            "[RFC 5280 §6.1 (path to a trust anchor)]",
        ),
        ("th/node/tls", "no row says SG recognizes TH"),
    ];
    for (n, (stem, rule)) in cases.iter().enumerate() {
        let before = log_len();
        let result = prepare(relay_endpoint_as(stem, "JP", node.addresses.relay)).await;
        assert!(result.is_err(), "{stem} must be refused: {result:?}");
        node.wait_for_metric(&format!(
            "kakehashi_tls_refusals_total{{listener=\"relay\"}} {}",
            n + 1
        ))
        .await;
        let ours = logged_since(before);
        assert!(
            ours.lines()
                .any(|l| l.contains("refused TLS peer certificate") && l.contains(rule)),
            "{stem}: no refusal citing {rule} in\n{ours}"
        );
        // The listener's summary line names the last failure in one sentence too, not with the
        // verdict's Debug dump.
        let address = format!("address={}", node.addresses.relay);
        let summary = wait_for_log(before, |l| {
            l.contains("connections refused or closed by the listener") && l.contains(&address)
        })
        .await;
        assert!(summary.contains("invalid peer certificate: "), "{summary}");
        assert!(summary.contains("handshake_failed=1"), "{summary}");
        assert!(!logged_since(before).contains("RecognitionVerdict {"));
    }
    // Still serving recognized peers.
    prepare(relay_endpoint_as("jp/node/tls", "JP", node.addresses.relay))
        .await
        .expect("the JP node is recognized by SG");
    node.stop().await;
}

#[tokio::test]
async fn public_listener_hands_the_client_leaf_to_the_service_when_one_is_presented() {
    let node = Node::start("jp").await;
    let leaf_seen = |ch: Channel| async move {
        PaymentsClient::new(ch)
            .get_balances(pb::BalancesRequest::default())
            .await
            .expect("balances")
            .into_inner()
            .balances[0]
            .name
            .clone()
    };
    let anonymous = channel(node.addresses.public, "JP").await.expect("connect");
    assert_eq!(leaf_seen(anonymous).await, "", "no certificate, no leaf");
    // The operator presents its own certificate (devnet admin.operator_certs).
    let operator = relay_endpoint(
        "JP",
        &address_of(node.addresses.public),
        &identity("jp/operator"),
        mra(),
        "JP",
        &Limits::default(),
    )
    .expect("endpoint")
    .connect()
    .await
    .expect("connect with the operator certificate");
    assert_eq!(
        leaf_seen(operator).await,
        hex::encode(identity("jp/operator").leaf_der())
    );
    node.stop().await;
}

#[tokio::test]
async fn public_listener_refuses_a_message_larger_than_the_limit() {
    let node = Node::start_with("jp", |l| l.message_bytes_max = 4096).await;
    let ch = channel(node.addresses.public, "JP").await.expect("connect");
    let mut client = PaymentsClient::new(ch);
    let small = pb::BalancesRequest {
        accounts: vec!["1001".to_owned(); 10],
        ..pb::BalancesRequest::default()
    };
    client.get_balances(small).await.expect("under the limit");
    let large = pb::BalancesRequest {
        accounts: vec!["1".repeat(100); 100],
        ..pb::BalancesRequest::default()
    };
    let status = client
        .get_balances(large)
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    node.stop().await;
}

#[tokio::test]
async fn a_request_that_outlives_the_request_timeout_is_cancelled() {
    let node = Node::start_with("jp", |l| {
        l.request_timeout_ms = 300;
        l.relay_timeout_ms = 200;
    })
    .await;
    let ch = channel(node.addresses.public, "JP").await.expect("connect");
    let mut client = PaymentsClient::new(ch);
    let call = client.get_payment_status(pb::PaymentStatusRequest::default());
    let status = tokio::time::timeout(WAIT, call)
        .await
        .expect("the server ends the call, not the test's wait")
        .expect_err("the handler never answers");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    node.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_times_out_without_blocking_other_clients() {
    let node = Node::start_with("jp", |l| l.tls_handshake_timeout_ms = 300).await;
    // A TCP connection that never starts TLS.
    let stalled = tokio::net::TcpStream::connect(node.addresses.relay)
        .await
        .expect("connect");
    // Meanwhile a recognized peer is served.
    prepare(relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay))
        .await
        .expect("served while another handshake is pending");
    node.wait_for_metric("kakehashi_tls_refusals_total{listener=\"relay\"} 1")
        .await;
    drop(stalled);
    node.stop().await;
}

// ---- listeners under abuse (issue 12, item 5) ------------------------------------------------
//
// Every client here is on loopback, so sources are told apart by binding the client socket to
// another address of 127.0.0.0/8 (Linux routes the whole block to lo): a flood from
// 127.0.0.x, the legitimate client from 127.0.0.1. Each test uses its own flood address, so
// the summary lines of tests running in parallel are told apart by their top source.

/// A TCP connection to `addr` from `source` (an address of 127.0.0.0/8) that sends nothing.
async fn silent_from(source: [u8; 4], addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a loopback source address");
    socket.connect(addr).await.expect("connect")
}

/// Whether the server closes `stream` (end of stream or reset) within [`WAIT`] without sending
/// anything.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Whether a connection from `source` to `addr` is reset by the server within [`WAIT`]
/// without anything sent: a refusal over a cap is a reset (`SO_LINGER` 0), not an orderly
/// close, so a flood's refused sockets cost neither side a FIN exchange nor the node a
/// TIME_WAIT entry. On loopback the reset can arrive before the connect is reported complete,
/// which then fails with it.
async fn reset_on_connect(source: [u8; 4], addr: std::net::SocketAddr) -> bool {
    let reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a loopback source address");
    let mut stream = match socket.connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return reset(&e),
    };
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Err(e)) if reset(&e)
    )
}

/// Waits until a line logged after `from` satisfies `wanted`, and returns it.
async fn wait_for_log(from: usize, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = logged_since(from);
        if let Some(line) = log.lines().find(|l| wanted(l)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such line was logged in\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_source_over_its_connection_cap_is_refused_while_another_source_is_served() {
    let node = Node::start_with("jp", |l| {
        l.connections_per_source_max = 4;
        l.handshakes_per_source_max = 4;
        // Only the cap can close the flood's connections within the test's wait.
        l.tls_handshake_timeout_ms = 60_000;
    })
    .await;
    let flood = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(silent_from(flood, node.addresses.relay).await);
    }
    assert!(
        reset_on_connect(flood, node.addresses.relay).await,
        "the fifth connection of the source is reset at once"
    );
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"relay\",reason=\"source_connections\"} 1",
    )
    .await;
    // Another source (127.0.0.1) gets through while the flood holds its connections.
    prepare(relay_endpoint_as("sg/node/tls", "SG", node.addresses.relay))
        .await
        .expect("another source is served");
    for stream in &mut held {
        let mut byte = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte))
                .await
                .is_err(),
            "the connections under the cap are still open"
        );
    }
    node.stop().await;
}

#[tokio::test]
async fn handshakes_over_a_sources_cap_are_refused_at_once_not_queued() {
    let node = Node::start_with("jp", |l| {
        l.handshakes_per_source_max = 2;
        l.tls_handshake_timeout_ms = 60_000;
    })
    .await;
    let flood = [127, 0, 0, 3];
    let _stalled = [
        silent_from(flood, node.addresses.public).await,
        silent_from(flood, node.addresses.public).await,
    ];
    assert!(
        reset_on_connect(flood, node.addresses.public).await,
        "a third handshake of the source is refused (reset), not queued until the timeout"
    );
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"public\",reason=\"source_handshakes\"} 1",
    )
    .await;
    let ch = channel(node.addresses.public, "JP")
        .await
        .expect("another source completes its handshake");
    PaymentsClient::new(ch)
        .get_balances(pb::BalancesRequest::default())
        .await
        .expect("and is served");
    node.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_handshake_timeout() {
    let node = Node::start_with("jp", |l| l.tls_handshake_timeout_ms = 300).await;
    let mut silent = silent_from([127, 0, 0, 4], node.addresses.public).await;
    assert!(
        closed_by_server(&mut silent).await,
        "the server closes a connection that never starts TLS"
    );
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"public\",reason=\"handshake_timeout\"} 1",
    )
    .await;
    node.wait_for_metric("kakehashi_tls_refusals_total{listener=\"public\"} 1")
        .await;
    node.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_not_one_with_a_call_in_progress() {
    let node = Node::start_with("jp", |l| {
        l.idle_connection_timeout_secs = 1;
        l.request_timeout_ms = 3_000;
        l.relay_timeout_ms = 2_000;
    })
    .await;
    let ch = channel(node.addresses.public, "JP").await.expect("connect");
    let mut client = PaymentsClient::new(ch);
    // A call that lasts until the 3 s request timeout: the connection is busy, not idle, for
    // three times the idle timeout, so the call ends with the server's deadline, not with a
    // closed connection.
    let status = client
        .get_payment_status(pb::PaymentStatusRequest::default())
        .await
        .expect_err("the handler never answers");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert!(
        node.metrics
            .encode()
            .contains("kakehashi_listener_refusals_total{listener=\"public\",reason=\"idle\"} 0"),
        "no connection was closed while busy"
    );
    // Then idle: closed, and its place under the caps given back.
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"public\",reason=\"idle\"} 1",
    )
    .await;
    node.wait_for_metric("kakehashi_listener_connections{listener=\"public\"} 0")
        .await;
    // The client reconnects on its next call.
    client
        .get_balances(pb::BalancesRequest::default())
        .await
        .expect("served on a new connection");
    node.stop().await;
}

#[tokio::test]
async fn the_metrics_listener_drops_a_client_slow_to_send_its_headers() {
    let node = Node::start_with("jp", |l| l.metrics_header_timeout_ms = 300).await;
    let mut slow = tokio::net::TcpStream::connect(node.addresses.metrics)
        .await
        .expect("connect");
    slow.write_all(b"GET /metr")
        .await
        .expect("a partial request");
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(WAIT, slow.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the server closed the connection");
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"metrics\",reason=\"header_timeout\"} 1",
    )
    .await;
    node.stop().await;
}

#[tokio::test]
async fn the_metrics_listener_caps_its_connections() {
    let node = Node::start_with("jp", |l| {
        l.metrics_connections_max = 2;
        l.metrics_header_timeout_ms = 60_000;
    })
    .await;
    let _held = [
        silent_from([127, 0, 0, 5], node.addresses.metrics).await,
        silent_from([127, 0, 0, 5], node.addresses.metrics).await,
    ];
    let mut third = silent_from([127, 0, 0, 5], node.addresses.metrics).await;
    assert!(
        closed_by_server(&mut third).await,
        "a connection over the cap is closed at once"
    );
    node.wait_for_metric(
        "kakehashi_listener_refusals_total{listener=\"metrics\",reason=\"connections\"} 1",
    )
    .await;
    node.stop().await;
}

#[tokio::test]
async fn refusals_are_logged_as_one_summary_line_per_interval() {
    let node = Node::start_with("jp", |l| {
        l.connections_per_source_max = 1;
        l.handshakes_per_source_max = 1;
        l.tls_handshake_timeout_ms = 60_000;
        l.refusal_log_interval_ms = 200;
    })
    .await;
    let before = log_len();
    let flood = [127, 0, 0, 6];
    let _held = silent_from(flood, node.addresses.relay).await;
    for _ in 0..3 {
        assert!(
            reset_on_connect(flood, node.addresses.relay).await,
            "over the cap"
        );
    }
    let line = wait_for_log(before, |l| l.contains("top_source=127.0.0.6")).await;
    assert!(
        line.contains("WARN") && line.contains("connections refused or closed by the listener"),
        "{line}"
    );
    assert!(line.contains("listener=\"relay\""), "{line}");
    assert!(
        line.contains(&format!("address={}", node.addresses.relay)),
        "{line}"
    );
    assert!(line.contains("source_connections=3"), "{line}");
    assert!(line.contains("127.0.0.6 (3)"), "{line}");
    let ours = logged_since(before);
    assert_eq!(
        ours.lines().filter(|l| l.contains("127.0.0.6")).count(),
        1,
        "one line for the three refusals, none per socket:\n{ours}"
    );
    node.stop().await;
}
