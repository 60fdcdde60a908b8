//! Who may hold a connection on a listener, and for how long: the caps of `[limits]` on
//! connections and handshakes (per listener and per source), the idle-connection close, and the
//! rate-limited summary of what was refused.
//!
//! A *source* is the client's IP address, an IPv6 client's /64 (one host is usually given a
//! whole /64, so its addresses are one source). A source over its cap is refused at once (the
//! socket is reset before any TLS byte), never queued behind other sources' work: a flood from
//! one source costs the others nothing but the accept call.
//!
//! Refusals are counted in `kakehashi_listener_refusals_total{listener, reason}` and logged as
//! one WARN line per listener per `[limits] refusal_log_interval_ms`, with counts by reason, the
//! source refused most often and the last handshake failure, instead of a line per socket.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::task::AbortHandle;
use tokio_rustls::server::TlsStream;
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::metrics::{Listener, Metrics};

/// Most distinct sources one summary interval remembers for its "refused most" field; beyond
/// that, refusals are still counted by reason but new sources are not tracked (a flood from
/// many addresses must not grow the map without bound).
pub const SUMMARY_SOURCES_MAX: usize = 1_024;

/// Why a connection was refused or closed by the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The source already holds `max_connections_per_source` connections.
    SourceConnections,
    /// The listener already holds `max_connections` connections.
    Connections,
    /// The source already has `max_handshakes_per_source` handshakes in flight.
    SourceHandshakes,
    /// The listener already has `max_handshakes` handshakes in flight.
    Handshakes,
    /// The TLS handshake did not finish within `tls_handshake_timeout_ms`.
    HandshakeTimeout,
    /// The TLS handshake failed (not TLS, a certificate not recognized, ...).
    HandshakeFailed,
    /// The connection had no request or stream for `idle_connection_timeout_secs`.
    Idle,
    /// A metrics client did not send its request headers within `metrics_header_timeout_ms`.
    HeaderTimeout,
}

impl Reason {
    /// Every reason, in the order of the summary line.
    pub const ALL: [Self; 8] = [
        Self::SourceConnections,
        Self::Connections,
        Self::SourceHandshakes,
        Self::Handshakes,
        Self::HandshakeTimeout,
        Self::HandshakeFailed,
        Self::Idle,
        Self::HeaderTimeout,
    ];

    /// The label value of `kakehashi_listener_refusals_total` and the key in the summary line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceConnections => "source_connections",
            Self::Connections => "connections",
            Self::SourceHandshakes => "source_handshakes",
            Self::Handshakes => "handshakes",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::Idle => "idle",
            Self::HeaderTimeout => "header_timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The key per-source caps count under: an IPv4 address, or an IPv6 address's /64 (an
/// IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a client at `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The caps one listener enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Connections open at once.
    pub connections: usize,
    /// Connections one source may hold.
    pub connections_per_source: usize,
    /// Handshakes in flight at once.
    pub handshakes: usize,
    /// Handshakes one source may have in flight.
    pub handshakes_per_source: usize,
}

#[derive(Debug, Default)]
struct Counts {
    connections: usize,
    handshakes: usize,
}

#[derive(Debug, Default)]
struct State {
    connections: usize,
    handshakes: usize,
    sources: HashMap<Source, Counts>,
}

/// The connection and handshake counts of one listener, by source and in total.
#[derive(Debug)]
pub struct Admission {
    caps: Caps,
    state: Mutex<State>,
    /// Mirrors `state.connections` for the metrics.
    open: Gauge,
}

impl Admission {
    /// Counts for a listener under `caps`; `open` is kept equal to the connections open.
    pub fn new(caps: Caps, open: Gauge) -> Arc<Self> {
        Arc::new(Self {
            caps,
            state: Mutex::new(State::default()),
            open,
        })
    }

    /// The counts; a panic while they were held cannot leave them inconsistent (every update
    /// is one statement), so a poisoned lock is used as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one more connection from `ip`, or says which cap refuses it. The per-source cap
    /// is checked first, so a flooding source is reported as such.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Reason> {
        let source = Source::of(ip);
        let mut state = self.state();
        let held = state.sources.get(&source).map_or(0, |c| c.connections);
        if held >= self.caps.connections_per_source {
            return Err(Reason::SourceConnections);
        }
        if state.connections >= self.caps.connections {
            return Err(Reason::Connections);
        }
        state.connections += 1;
        state.sources.entry(source).or_default().connections += 1;
        self.set_gauge(state.connections);
        Ok(ConnectionPermit {
            admission: Arc::clone(self),
            source,
        })
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.state().connections
    }

    fn set_gauge(&self, connections: usize) {
        self.open
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    admission: Arc<Admission>,
    source: Source,
}

impl ConnectionPermit {
    /// The source the connection counts under.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Admits this connection's TLS handshake, or says which cap refuses it.
    pub fn handshake(&self) -> Result<HandshakePermit, Reason> {
        let caps = self.admission.caps;
        let mut state = self.admission.state();
        let running = state.sources.get(&self.source).map_or(0, |c| c.handshakes);
        if running >= caps.handshakes_per_source {
            return Err(Reason::SourceHandshakes);
        }
        if state.handshakes >= caps.handshakes {
            return Err(Reason::Handshakes);
        }
        state.handshakes += 1;
        state.sources.entry(self.source).or_default().handshakes += 1;
        Ok(HandshakePermit {
            admission: Arc::clone(&self.admission),
            source: self.source,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        state.connections = state.connections.saturating_sub(1);
        self.admission.set_gauge(state.connections);
        if let Entry::Occupied(mut entry) = state.sources.entry(self.source) {
            let counts = entry.get_mut();
            counts.connections = counts.connections.saturating_sub(1);
            if counts.connections == 0 && counts.handshakes == 0 {
                entry.remove();
            }
        }
    }
}

/// One handshake in flight; dropping it frees its place.
#[derive(Debug)]
pub struct HandshakePermit {
    admission: Arc<Admission>,
    source: Source,
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        let mut state = self.admission.state();
        state.handshakes = state.handshakes.saturating_sub(1);
        if let Some(counts) = state.sources.get_mut(&self.source) {
            counts.handshakes = counts.handshakes.saturating_sub(1);
        }
    }
}

// ---- the rate-limited refusal log -----------------------------------------------------------

#[derive(Debug, Default)]
struct Interval {
    by_source: HashMap<Source, u64>,
    last_failure: Option<String>,
}

/// Refusals of one listener since its last summary line.
#[derive(Debug)]
pub struct Tally {
    listener: Listener,
    address: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    counts: [AtomicU64; Reason::ALL.len()],
    interval: Mutex<Interval>,
}

/// What one summary line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Refusals by reason, in [`Reason::ALL`] order, zeros included.
    pub counts: Vec<(Reason, u64)>,
    /// The source refused most often, and how often.
    pub top_source: Option<(Source, u64)>,
    /// The last handshake failure's description.
    pub last_failure: Option<String>,
}

impl Summary {
    /// Every refusal of the interval.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

impl Tally {
    /// An empty tally of the refusals of `listener` (bound at `address`, which the summary
    /// line names), also counted in `metrics`.
    pub fn new(
        listener: Listener,
        address: Option<SocketAddr>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        // The series exist from the start, at zero, so the first refusal is an increase.
        for reason in Reason::ALL {
            metrics.listener_refused(listener, reason.as_str(), 0);
        }
        Arc::new(Self {
            listener,
            address,
            metrics,
            counts: Default::default(),
            interval: Mutex::new(Interval::default()),
        })
    }

    fn interval(&self) -> MutexGuard<'_, Interval> {
        self.interval.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one refusal of a client of `source` (when known) for `reason`; `failure`
    /// describes a failed handshake.
    pub fn record(&self, reason: Reason, source: Option<Source>, failure: Option<String>) {
        self.metrics
            .listener_refused(self.listener, reason.as_str(), 1);
        if matches!(reason, Reason::HandshakeTimeout | Reason::HandshakeFailed) {
            self.metrics.tls_refused(self.listener);
        }
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        let mut interval = self.interval();
        if let Some(source) = source {
            let tracked = interval.by_source.len();
            match interval.by_source.get_mut(&source) {
                Some(n) => *n += 1,
                None if tracked < SUMMARY_SOURCES_MAX => {
                    interval.by_source.insert(source, 1);
                }
                None => {}
            }
        }
        if failure.is_some() {
            interval.last_failure = failure;
        }
    }

    /// The refusals since the last call, and resets them; `None` when there were none.
    pub fn take(&self) -> Option<Summary> {
        let counts: Vec<(Reason, u64)> = Reason::ALL
            .iter()
            .map(|&r| (r, self.counts[r.index()].swap(0, Ordering::Relaxed)))
            .collect();
        let interval = std::mem::take(&mut *self.interval());
        let summary = Summary {
            counts,
            top_source: interval
                .by_source
                .into_iter()
                .max_by_key(|&(source, n)| (n, std::cmp::Reverse(source.to_string()))),
            last_failure: interval.last_failure,
        };
        (summary.total() > 0).then_some(summary)
    }

    /// Logs one summary line every `every` while there were refusals, until the task is
    /// aborted.
    pub async fn report_every(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; the first summary covers a whole interval.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Some(summary) = self.take() {
                self.log(&summary, every);
            }
        }
    }

    fn log(&self, summary: &Summary, every: Duration) {
        let by_reason = summary
            .counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        let top = summary
            .top_source
            .map(|(source, n)| format!("{source} ({n})"))
            .unwrap_or_default();
        tracing::warn!(
            listener = self.listener.as_str(),
            address = %self.address.map(|a| a.to_string()).unwrap_or_default(),
            interval_ms = every.as_millis() as u64,
            total = summary.total(),
            by_reason = %by_reason,
            top_source = %top,
            last_failure = summary.last_failure.as_deref().unwrap_or(""),
            "connections refused or closed by the listener"
        );
    }
}

// ---- idle connections ---------------------------------------------------------------------

/// What is going on on one connection: its requests and streams open, and the signal that
/// closes it.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests and streams open (counted from the request's arrival to the end of its
    /// response body).
    open: AtomicUsize,
    /// Requests started so far: an idle period is over when it moves.
    started: AtomicU64,
    /// Woken when `open` changes.
    changed: Notify,
    /// Woken once to close the connection.
    close: Arc<Notify>,
}

/// The [`Activity`] of every open connection of a listener, by the client's address (which
/// tells live connections apart).
#[derive(Debug, Default)]
pub struct Registry {
    connections: Mutex<HashMap<SocketAddr, Arc<Activity>>>,
}

impl Registry {
    fn connections(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<Activity>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts tracking the connection of `peer`, and its watchdog: once nothing has been open
    /// on it for `idle`, it is closed and counted in `tally`.
    pub fn track(
        self: &Arc<Self>,
        peer: SocketAddr,
        idle: Duration,
        tally: Arc<Tally>,
    ) -> Registration {
        let activity = Arc::new(Activity::default());
        self.connections().insert(peer, Arc::clone(&activity));
        let watched = Arc::clone(&activity);
        let watchdog = tokio::spawn(async move {
            close_when_idle(&watched, idle).await;
            tally.record(Reason::Idle, Some(Source::of(peer.ip())), None);
        });
        Registration {
            registry: Arc::clone(self),
            peer,
            activity,
            watchdog: watchdog.abort_handle(),
        }
    }

    /// A request on the connection of `peer` begins; the guard ends it.
    fn begin(&self, peer: SocketAddr) -> Option<OpenGuard> {
        let activity = Arc::clone(self.connections().get(&peer)?);
        activity.open.fetch_add(1, Ordering::SeqCst);
        activity.started.fetch_add(1, Ordering::SeqCst);
        activity.changed.notify_one();
        Some(OpenGuard(activity))
    }
}

/// Waits until nothing has been open on the connection for `idle`, then signals its close.
async fn close_when_idle(activity: &Activity, idle: Duration) {
    loop {
        if activity.open.load(Ordering::SeqCst) > 0 {
            activity.changed.notified().await;
            continue;
        }
        let started = activity.started.load(Ordering::SeqCst);
        tokio::select! {
            () = tokio::time::sleep(idle) => {
                let quiet = activity.open.load(Ordering::SeqCst) == 0
                    && activity.started.load(Ordering::SeqCst) == started;
                if quiet {
                    activity.close.notify_one();
                    return;
                }
            }
            () = activity.changed.notified() => {}
        }
    }
}

/// A request or stream open on a connection; dropping it (the response body ends or is
/// dropped) closes it.
#[derive(Debug)]
struct OpenGuard(Arc<Activity>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// A tracked connection; dropping it stops the tracking and its watchdog.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    watchdog: AbortHandle,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.watchdog.abort();
        let mut connections = self.registry.connections();
        // Only this connection's entry: the address may already belong to a new connection.
        if connections
            .get(&self.peer)
            .is_some_and(|a| Arc::ptr_eq(a, &self.activity))
        {
            connections.remove(&self.peer);
        }
    }
}

/// An established TLS connection handed to tonic, holding its place under the caps and its
/// idle tracking. When the watchdog signals, reads see end of stream, which ends the HTTP/2
/// connection.
pub struct Conn {
    inner: TlsStream<TcpStream>,
    close: Pin<Box<OwnedNotified>>,
    closed: bool,
    _registration: Registration,
    _permit: ConnectionPermit,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("source", &self._permit.source())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// `inner`, counted under `permit` and tracked by `registration`.
    pub fn new(
        inner: TlsStream<TcpStream>,
        permit: ConnectionPermit,
        registration: Registration,
    ) -> Self {
        let close = Box::pin(Arc::clone(&registration.activity.close).notified_owned());
        Self {
            inner,
            close,
            closed: false,
            _registration: registration,
            _permit: permit,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.closed && self.close.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        if self.closed {
            // End of stream: hyper ends the connection.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Conn {
    // The TLS stream's own, so that `Request::peer_certs` finds the client's chain.
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

// ---- the layer that counts requests and streams per connection ----------------------------

/// A tower layer over a listener's services that counts, per connection, the requests and
/// streams open, from the request's arrival to the end of its response body.
#[derive(Clone, Debug)]
pub struct TrackOpen {
    registry: Arc<Registry>,
}

impl TrackOpen {
    /// Counts into `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl<S> tower::Layer<S> for TrackOpen {
    type Service = TrackOpenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackOpenService {
            inner,
            registry: Arc::clone(&self.registry),
        }
    }
}

/// The service of [`TrackOpen`].
#[derive(Clone, Debug)]
pub struct TrackOpenService<S> {
    inner: S,
    registry: Arc<Registry>,
}

impl<S, B, R> tower::Service<http::Request<B>> for TrackOpenService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Tracked<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.get_ref().remote_addr())
            .and_then(|peer| self.registry.begin(peer));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Tracked { body, guard }))
        })
    }
}

/// A response body that keeps its request counted as open until it ends or is dropped.
#[derive(Debug)]
pub struct Tracked<B> {
    body: B,
    guard: Option<OpenGuard>,
}

impl<B> http_body::Body for Tracked<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
