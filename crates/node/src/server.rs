//! The node's three listeners, with every limit applied in one place.
//!
//! - **public** (`listen.public`): `kakehashi.v1.Payments`, `grpc.health.v1.Health` and server
//!   reflection in both protocol versions (`grpc.reflection.v1` and `v1alpha`: grpcurl speaks
//!   both, Python's grpcio-reflection only v1alpha). TLS; a client certificate is optional but
//!   must be recognized when presented.
//! - **relay** (`listen.relay`): `kakehashi.v1.Relay` and health, mutual TLS: a peer whose
//!   certificate the node's jurisdiction does not recognize for node TLS under the agreement is
//!   refused at the handshake.
//! - **metrics** (`listen.metrics`): plain HTTP, `GET /metrics` ([`crate::metrics`]).
//!
//! Use is two-step so callers learn the real addresses when configured with port 0:
//! [`bind`] opens the sockets, [`Bound::run`] serves until the shutdown future completes.
//!
//! TLS is terminated here, not by tonic (tonic's `ServerTlsConfig` has no hook for a custom
//! client-certificate verifier): each accepted TCP connection is first admitted under the
//! connection caps (per source and per listener, [`admission`]), then gets its own task that
//! runs the handshake, itself admitted under the handshake caps, under a timeout, and hands the
//! TLS stream to tonic through a bounded channel. A connection over a cap is reset at once,
//! never queued, so a flood from one source does not delay another source's handshake. A
//! refusal, a failed or slow handshake is counted (`kakehashi_listener_refusals_total`, and
//! `kakehashi_tls_refusals_total` for handshakes) and summarized in one log line per listener
//! per interval; it never stops the accept loop. A connection with no request or stream open
//! for `idle_connection_timeout_secs` is closed.
//!
//! Limits from `[limits]`: message size (decoding and encoding, on each service), requests in
//! flight per connection and per listener, request deadline, HTTP/2 streams per connection,
//! HTTP/2 keepalive, TLS handshake deadline, connections and handshakes per source and per
//! listener, idle connections, the metrics listener's connections and header deadline;
//! TCP_NODELAY on every accepted socket. `SubmitPayments` streams end when idle or too old
//! (the service, `stream_idle_timeout_secs`, `max_stream_lifetime_secs`).

pub mod admission;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb::payments_server::{Payments, PaymentsServer};
use kakehashi_proto::pb::relay_server::{Relay, RelayServer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::config::{Config, Limits, Listen};
use crate::metrics::{Listener, Metrics, MetricsLimits, serve_metrics};
use crate::tls::{TlsError, TlsIdentity, public_server_config, relay_server_config};
use admission::{Admission, Caps, Conn, Reason, Registry, Source, Tally, TrackOpen};

/// Completed TLS connections waiting for tonic to pick them up. tonic takes them as fast as
/// it can spawn a task, so the queue stays nearly empty; the bound only applies back-pressure
/// to the handshake tasks if it ever does not.
pub const ACCEPTED_QUEUE_LEN: usize = 64;

/// Pause after a failed `accept` (for example EMFILE, out of file descriptors) before trying
/// again, so the loop does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Open files the node wants for `limits`: a descriptor per connection on the public and the
/// relay listener and on the metrics listener, plus [`FILES_BESIDES_CONNECTIONS`].
pub fn open_files_wanted(limits: &Limits) -> u64 {
    let connections = 2 * limits.connections_max + limits.metrics_connections_max;
    (connections as u64).saturating_add(FILES_BESIDES_CONNECTIONS)
}

/// Descriptors the node uses besides accepted connections: sled's files, peer connections, the
/// listening sockets, the runtime's own; generous, since running out makes `accept` fail.
pub const FILES_BESIDES_CONNECTIONS: u64 = 1_024;

/// Raises the process's open-file soft limit (`RLIMIT_NOFILE`) towards `wanted`, as far as the
/// hard limit allows (many systems start processes at a soft limit of 1,024, too few for the
/// listeners' caps). Returns the soft limit in force afterwards (`None`: unlimited or not
/// known), and never lowers it.
#[cfg(unix)]
pub fn raise_open_files_limit(wanted: u64) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let target = limit.maximum.map_or(wanted, |hard| wanted.min(hard));
    if target <= current {
        return Some(current);
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::warn!(error = %e, current, target, "cannot raise the open-file limit");
            Some(current)
        }
    }
}

/// Raising the open-file limit is a Unix notion; elsewhere the limit is left as it is.
#[cfg(not(unix))]
pub fn raise_open_files_limit(_wanted: u64) -> Option<u64> {
    None
}

/// Why the node could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr} ({listener}): {source}; is another node using the port?")]
    Bind {
        /// `public`, `relay` or `metrics`.
        listener: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS could not be set up (identity, agreement, verifier).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The reflection service could not be built from the descriptor set.
    #[error("cannot build server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A gRPC listener stopped with an error.
    #[error("{listener} listener failed: {source}")]
    Transport {
        /// `public` or `relay`.
        listener: &'static str,
        /// tonic's error.
        source: tonic::transport::Error,
    },
    /// The metrics listener stopped with an error.
    #[error("metrics listener failed: {0}")]
    Metrics(std::io::Error),
    /// A listener task panicked or was cancelled.
    #[error("{listener} listener task ended abnormally: {source}")]
    Task {
        /// Which listener.
        listener: &'static str,
        /// The join error.
        source: tokio::task::JoinError,
    },
}

/// The bound addresses of the three listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// Payments + health + reflection.
    pub public: SocketAddr,
    /// Relay + health.
    pub relay: SocketAddr,
    /// GET /metrics.
    pub metrics: SocketAddr,
}

/// What TLS peers are recognized under: the signed agreement, plus CRLs (DER) fresher than
/// the agreement's snapshot (RFC 5280 §6.3), checked on both listeners.
#[derive(Clone, Debug)]
pub struct PeerTrust {
    /// The loaded agreement.
    pub mra: Arc<Mra>,
    /// Extra CRLs, DER.
    pub crls: Vec<Vec<u8>>,
}

impl From<Arc<Mra>> for PeerTrust {
    fn from(mra: Arc<Mra>) -> Self {
        Self {
            mra,
            crls: Vec::new(),
        }
    }
}

/// Open listening sockets, not yet serving.
#[derive(Debug)]
pub struct Bound {
    public: TcpListener,
    relay: TcpListener,
    metrics: TcpListener,
    addresses: Addresses,
}

/// Connections the kernel completes and queues for a listener before the node accepts them
/// (capped by the kernel's `net.core.somaxconn`, 4096 by default since Linux 5.4). tokio's
/// `TcpListener::bind` asks for 1,024; under a connection flood a full queue drops new SYNs,
/// and a legitimate client then waits for its SYN retransmission (1 s), so the queue is as long
/// as the kernel allows.
pub const LISTEN_BACKLOG: u32 = 4_096;

/// A listening socket on `addr`, as `TcpListener::bind` opens it (address reuse on Unix, so a
/// restarted node can bind while old connections linger in TIME_WAIT) but with
/// [`LISTEN_BACKLOG`].
fn listen_socket(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Opens the three listening sockets of `listen` (port 0 picks a free port).
pub async fn bind(listen: &Listen) -> Result<Bound, ServeError> {
    let open = |listener: &'static str, addr: SocketAddr| async move {
        listen_socket(addr).map_err(|source| ServeError::Bind {
            listener,
            addr,
            source,
        })
    };
    let public = open("public", listen.public).await?;
    let relay = open("relay", listen.relay).await?;
    let metrics = open("metrics", listen.metrics).await?;
    let local = |listener: &'static str, socket: &TcpListener, addr: SocketAddr| {
        socket.local_addr().map_err(|source| ServeError::Bind {
            listener,
            addr,
            source,
        })
    };
    let addresses = Addresses {
        public: local("public", &public, listen.public)?,
        relay: local("relay", &relay, listen.relay)?,
        metrics: local("metrics", &metrics, listen.metrics)?,
    };
    Ok(Bound {
        public,
        relay,
        metrics,
        addresses,
    })
}

impl Bound {
    /// The addresses actually bound.
    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    /// Serves until `shutdown` completes, then stops accepting, drains open connections and
    /// returns. `trust` is the loaded agreement (the node's jurisdiction must be a party),
    /// optionally with fresher CRLs; an `Arc<Mra>` converts into it. The TLS identity is read
    /// from `config.tls`. Returns the first listener error, if any.
    pub async fn run<P, R>(
        self,
        config: &Config,
        trust: impl Into<PeerTrust>,
        payments: P,
        relay: R,
        metrics: Arc<Metrics>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError>
    where
        P: Payments,
        R: Relay,
    {
        self.run_draining(
            config,
            trust,
            payments,
            relay,
            metrics,
            std::future::pending(),
            shutdown,
        )
        .await
    }

    /// [`Bound::run`] for a node that drains before it stops: once `draining` completes (the
    /// node takes no new payment), health reports `kakehashi.v1.Payments` NOT_SERVING, so
    /// that load balancers send payments elsewhere, while every listener keeps serving until
    /// `shutdown` completes.
    #[allow(
        clippy::too_many_arguments,
        reason = "run's arguments and the one signal it lacks; a struct would only rename them"
    )]
    pub async fn run_draining<P, R>(
        self,
        config: &Config,
        trust: impl Into<PeerTrust>,
        payments: P,
        relay: R,
        metrics: Arc<Metrics>,
        draining: impl Future<Output = ()> + Send + 'static,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError>
    where
        P: Payments,
        R: Relay,
    {
        let (public_tls, relay_tls) = tls_configs(config, trust.into())?;
        let limits = &config.limits;

        let payments = PaymentsServer::new(payments)
            .max_decoding_message_size(limits.message_bytes_max)
            .max_encoding_message_size(limits.message_bytes_max);
        let relay = RelayServer::new(relay)
            .max_decoding_message_size(limits.message_bytes_max)
            .max_encoding_message_size(limits.message_bytes_max);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<PaymentsServer<P>>().await;
        health_reporter.set_serving::<RelayServer<R>>().await;
        let not_serving = tokio::spawn(async move {
            draining.await;
            health_reporter.set_not_serving::<PaymentsServer<P>>().await;
        });
        let health = health
            .max_decoding_message_size(limits.message_bytes_max)
            .max_encoding_message_size(limits.message_bytes_max);
        // Reflection answers carry whole file descriptors, so only requests are bounded by
        // the configured size; answers keep tonic's 4 MiB default.
        let reflection_v1 = reflection()
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .build_v1()?
            .max_decoding_message_size(limits.message_bytes_max);
        let reflection_v1alpha = reflection()
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
            .build_v1alpha()?
            .max_decoding_message_size(limits.message_bytes_max);

        // One shutdown signal fanned out to every listener.
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || stopped(stop_rx.clone());
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let addresses = self.addresses;
        let public_listener =
            TlsListener::new(Listener::Public, addresses.public, limits, &metrics);
        let relay_listener = TlsListener::new(Listener::Relay, addresses.relay, limits, &metrics);
        let metrics_tally = Tally::new(
            Listener::Metrics,
            Some(addresses.metrics),
            Arc::clone(&metrics),
        );
        let log_every = Duration::from_millis(limits.refusal_log_interval_ms);
        let summaries = [
            tokio::spawn(Arc::clone(&public_listener.tally).report_every(log_every)),
            tokio::spawn(Arc::clone(&relay_listener.tally).report_every(log_every)),
            tokio::spawn(Arc::clone(&metrics_tally).report_every(log_every)),
        ];
        let public_registry = Arc::clone(&public_listener.registry);
        let relay_registry = Arc::clone(&relay_listener.registry);
        let public_incoming = public_listener.incoming(self.public, TlsAcceptor::from(public_tls));
        let relay_incoming = relay_listener.incoming(self.relay, TlsAcceptor::from(relay_tls));

        let public_router = server(limits, public_registry)
            .add_service(payments)
            .add_service(health.clone())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let relay_router = server(limits, relay_registry)
            .add_service(relay)
            .add_service(health);

        let public_task =
            tokio::spawn(public_router.serve_with_incoming_shutdown(public_incoming, stopped()));
        let relay_task =
            tokio::spawn(relay_router.serve_with_incoming_shutdown(relay_incoming, stopped()));
        let metrics_limits = MetricsLimits {
            connections_max: limits.metrics_connections_max,
            header_timeout: Duration::from_millis(limits.metrics_header_timeout_ms),
            tally: metrics_tally,
        };
        let metrics_task = tokio::spawn(serve_metrics(
            self.metrics,
            metrics,
            metrics_limits,
            stopped(),
        ));
        tracing::info!(
            jurisdiction = %config.jurisdiction,
            public = %self.addresses.public,
            relay = %self.addresses.relay,
            metrics = %self.addresses.metrics,
            "node listening"
        );

        let (public, relay, metrics) = tokio::join!(public_task, relay_task, metrics_task);
        signal.abort();
        not_serving.abort();
        for summary in summaries {
            summary.abort();
        }
        grpc_outcome("public", public)?;
        grpc_outcome("relay", relay)?;
        metrics
            .map_err(|source| ServeError::Task {
                listener: "metrics",
                source,
            })?
            .map_err(ServeError::Metrics)?;
        Ok(())
    }
}

/// The TLS configurations of the public and the relay listener: the identity of `config.tls`,
/// clients recognized under `trust`.
fn tls_configs(
    config: &Config,
    trust: PeerTrust,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), ServeError> {
    let PeerTrust { mra, crls } = trust;
    let identity = TlsIdentity::load(&config.tls.cert, &config.tls.key)?;
    let relay_tls = relay_server_config(
        &identity,
        Arc::clone(&mra),
        &config.jurisdiction,
        crls.clone(),
    )?;
    let public_tls = public_server_config(&identity, mra, &config.jurisdiction, crls)?;
    Ok((public_tls, relay_tls))
}

/// Completes when `stop` turns true (or its sender is gone, which also means stop).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// How a gRPC listener's task ended, as the listener's error if it failed.
fn grpc_outcome(
    listener: &'static str,
    ended: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    ended
        .map_err(|source| ServeError::Task { listener, source })?
        .map_err(|source| ServeError::Transport { listener, source })
}

/// Binds and serves in one call (see [`bind`] and [`Bound::run`]).
pub async fn serve<P, R>(
    config: &Config,
    trust: impl Into<PeerTrust>,
    payments: P,
    relay: R,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    P: Payments,
    R: Relay,
{
    bind(&config.listen)
        .await?
        .run(config, trust, payments, relay, metrics, shutdown)
        .await
}

/// The reflection builder for the public listener: the kakehashi descriptors (Payments only
/// is advertised; Relay is not served there) and health's.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kakehashi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(kakehashi_proto::pb::payments_server::SERVICE_NAME)
        .with_service_name("grpc.health.v1.Health")
}

/// A tonic server builder with the configured limits; `registry` counts the requests and
/// streams open on each connection, for the idle-connection close.
fn server(
    limits: &Limits,
    registry: Arc<Registry>,
) -> Server<
    tower::layer::util::Stack<
        TrackOpen,
        tower::layer::util::Stack<
            tower::limit::GlobalConcurrencyLimitLayer,
            tower::layer::util::Identity,
        >,
    >,
> {
    Server::builder()
        .concurrency_limit_per_connection(limits.concurrent_requests_per_connection_max)
        .timeout(Duration::from_millis(limits.request_timeout_ms))
        .max_concurrent_streams(limits.concurrent_streams_max)
        .http2_keepalive_interval(Some(Duration::from_secs(
            limits.http2_keepalive_interval_secs,
        )))
        .http2_keepalive_timeout(Some(Duration::from_secs(
            limits.http2_keepalive_timeout_secs,
        )))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.concurrent_requests_max,
        ))
        .layer(TrackOpen::new(registry))
}

/// A one-line description of a failed handshake. rustls prints a `CertificateError::Other`
/// with its Debug form (for a recognition refusal, the whole verdict); the error inside has a
/// Display that says the same in one sentence.
fn handshake_error(e: &std::io::Error) -> String {
    let certificate_other = e.get_ref().and_then(|inner| match inner.downcast_ref() {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            Some(format!("invalid peer certificate: {}", other.0))
        }
        _ => None,
    });
    certificate_other.unwrap_or_else(|| e.to_string())
}

/// Closes a connection refused over a cap with a reset (`SO_LINGER` 0) instead of the orderly
/// close. A flooding source re-opens what it is refused thousands of times a second; an
/// orderly close costs each of them a FIN exchange and leaves the node's end in TIME_WAIT for
/// a minute, kernel work on the node's cores that slows everyone else's requests, while a
/// reset frees the socket at once and tells the client in one segment that it was refused.
fn refuse(tcp: tokio::net::TcpStream) {
    // Without the option the socket is still closed, in the orderly way: nothing to report.
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

/// One TLS listener's admission state: its caps, its idle tracking and its refusal tally.
struct TlsListener {
    name: Listener,
    admission: Arc<Admission>,
    registry: Arc<Registry>,
    tally: Arc<Tally>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
}

impl TlsListener {
    fn new(
        name: Listener,
        address: SocketAddr,
        limits: &Limits,
        metrics: &Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            admission: Admission::new(
                Caps {
                    connections: limits.connections_max,
                    connections_per_source: limits.connections_per_source_max,
                    handshakes: limits.handshakes_max,
                    handshakes_per_source: limits.handshakes_per_source_max,
                },
                metrics.listener_connections(name),
            ),
            registry: Arc::new(Registry::default()),
            tally: Tally::new(name, Some(address), Arc::clone(metrics)),
            handshake_timeout: Duration::from_millis(limits.tls_handshake_timeout_ms),
            idle_timeout: Duration::from_secs(limits.idle_connection_timeout_secs),
        })
    }

    /// Accepts TCP connections on `listener`, admits each under the caps, runs each admitted
    /// TLS handshake in its own task under the handshake timeout, and yields the established
    /// connections. Refusals and failures are counted and the loop goes on. The loop ends when
    /// tonic drops the stream (shutdown).
    fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        acceptor: TlsAcceptor,
    ) -> ReceiverStream<Result<Conn, std::io::Error>> {
        let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE_LEN);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    () = tx.closed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // EMFILE and the like: the condition, not a client, is at fault.
                            tracing::warn!(
                                listener = self.name.as_str(),
                                error = %e,
                                "accept failed"
                            );
                            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                            continue;
                        }
                    },
                };
                let source = Source::of(peer.ip());
                // Over a cap: reset at once, before any TLS work.
                let permit = match self.admission.connect(peer.ip()) {
                    Ok(permit) => permit,
                    Err(reason) => {
                        refuse(tcp);
                        self.tally.record(reason, Some(source), None);
                        continue;
                    }
                };
                let handshake = match permit.handshake() {
                    Ok(handshake) => handshake,
                    Err(reason) => {
                        refuse(tcp);
                        self.tally.record(reason, Some(source), None);
                        continue;
                    }
                };
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(
                        listener = self.name.as_str(),
                        %peer,
                        error = %e,
                        "TCP_NODELAY not set"
                    );
                }
                let this = Arc::clone(&self);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(this.handshake_timeout, acceptor.accept(tcp)).await;
                    drop(handshake);
                    match accepted {
                        Ok(Ok(tls)) => {
                            let registration = this.registry.track(
                                peer,
                                this.idle_timeout,
                                Arc::clone(&this.tally),
                            );
                            // A send error means the server is shutting down; the connection
                            // is dropped, which closes it.
                            let _ = tx.send(Ok(Conn::new(tls, permit, registration))).await;
                        }
                        Ok(Err(e)) => {
                            let failure = handshake_error(&e);
                            tracing::debug!(
                                listener = this.name.as_str(),
                                %peer,
                                error = %failure,
                                "TLS handshake failed; connection refused"
                            );
                            this.tally
                                .record(Reason::HandshakeFailed, Some(source), Some(failure));
                        }
                        Err(_) => {
                            tracing::debug!(
                                listener = this.name.as_str(),
                                %peer,
                                "TLS handshake timed out; connection dropped"
                            );
                            this.tally
                                .record(Reason::HandshakeTimeout, Some(source), None);
                        }
                    }
                });
            }
        });
        ReceiverStream::new(rx)
    }
}
