//! A TCP fault proxy (on 127.0.0.1, or an address the caller gives) for network-fault tests: it
//! forwards bytes between whoever connects to it and one upstream address, and the test
//! decides, while it runs, what the link does: pass, add latency, reset every open connection,
//! black-hole (accept and swallow bytes, answer nothing) or cut (close every connection and
//! refuse new ones), then heal. `examples/fault_proxy.rs` runs one as a process with a fixed
//! schedule of latency and loss, for tests/hosts/run.sh.
//!
//! It only moves bytes: TLS passes through untouched, so the nodes' mutual TLS, certificate
//! checks and server names work exactly as on a direct link (a node checks its peer's
//! certificate against the `server_name` of its `[[peer]]`, not against the address it dials).
//!
//! The proxy runs on a runtime of its own (one worker thread), so that a plain `#[test]` that
//! drives processes synchronously can hold one; dropping it stops its tasks and closes every
//! socket it holds.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Longest the proxy waits for the upstream to accept a connection before it resets the client:
/// a node that is up accepts at once; one that is not refuses at once.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read per chunk.
const CHUNK: usize = 16 * 1024;

/// What the link does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bytes pass as they come.
    Pass,
    /// Every chunk is delivered this long after it was read, in order, in both directions.
    Latency(Duration),
    /// Connections are accepted (and open ones kept), but every byte is swallowed and nothing
    /// is answered, as a route that drops packets. Healing closes the connections that lived
    /// through it: their streams lost bytes and cannot carry on.
    BlackHole,
    /// Every open connection was reset, and new ones are reset as soon as they are accepted.
    Cut,
}

/// Counters since the proxy started, for the test's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Connections reset on accept because the link was cut (or the upstream refused).
    pub refused: u64,
    /// Open connections reset by a fault (`reset`, `cut`, healing a black hole).
    pub reset: u64,
    /// Bytes delivered, both directions.
    pub forwarded: u64,
    /// Bytes swallowed by a black hole.
    pub swallowed: u64,
}

#[derive(Clone, Copy, Debug)]
struct State {
    mode: Mode,
    /// Connections accepted under an older epoch are reset: a fault that breaks every open
    /// connection moves it on.
    epoch: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    reset: AtomicU64,
    forwarded: AtomicU64,
    swallowed: AtomicU64,
}

/// A running proxy: listens on an ephemeral port of 127.0.0.1 (or the address given to
/// [`FaultProxy::start_on`]) and forwards to `upstream`.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream`, passing bytes until told otherwise. The port is
    /// the kernel's choice (the listener holds it from now on, so nothing else can take it).
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream)
    }

    /// Starts a proxy listening on `listen` (port 0: the kernel's choice) in front of
    /// `upstream`, passing bytes until told otherwise.
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (state, watcher) = watch::channel(State {
            mode: Mode::Pass,
            epoch: 0,
        });
        let counters = Arc::new(Counters::default());
        runtime.spawn(accept_loop(
            listener,
            upstream,
            watcher,
            Arc::clone(&counters),
        ));
        Ok(Self {
            addr,
            upstream,
            state,
            counters,
            runtime: Some(runtime),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// What the link does now.
    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Delays every chunk by `delay` from now on (in both directions; zero is [`Mode::Pass`]).
    /// Open connections stay open.
    pub fn latency(&self, delay: Duration) {
        let mode = if delay.is_zero() {
            Mode::Pass
        } else {
            Mode::Latency(delay)
        };
        self.state.send_modify(|state| state.mode = mode);
    }

    /// Resets every open connection once (TCP RST to both ends); the mode stays as it is, so
    /// new connections are served as before.
    pub fn reset(&self) {
        self.state.send_modify(|state| state.epoch += 1);
    }

    /// Swallows every byte from now on and answers nothing, on open and new connections.
    pub fn black_hole(&self) {
        self.state.send_modify(|state| state.mode = Mode::BlackHole);
    }

    /// Resets every open connection and every new one until [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.state.send_modify(|state| {
            state.mode = Mode::Cut;
            state.epoch += 1;
        });
    }

    /// Back to [`Mode::Pass`]. Connections that lived through a black hole are reset: bytes
    /// were lost on them.
    pub fn heal(&self) {
        self.state.send_modify(|state| {
            if state.mode == Mode::BlackHole {
                state.epoch += 1;
            }
            state.mode = Mode::Pass;
        });
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            reset: c.reset.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            swallowed: c.swallowed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Drops every task, and with them every socket, without waiting for them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    loop {
        // An error is out of descriptors or a connection that died in the backlog: keep
        // serving.
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let now = *state.borrow();
        if now.mode == Mode::Cut {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            abort(&client);
            continue;
        }
        tokio::spawn(serve(
            client,
            upstream,
            state.clone(),
            now,
            Arc::clone(&counters),
        ));
    }
}

/// Closes with a TCP RST rather than a FIN: the peer sees "connection reset", as after a
/// middlebox drops the flow.
fn abort(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// One client connection, from accept to close.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    accepted: State,
    counters: Arc<Counters>,
) {
    let epoch = accepted.epoch;
    if accepted.mode == Mode::BlackHole {
        // Nothing reaches the upstream: swallow until the fault ends, then reset.
        let swallow = async {
            let mut buf = vec![0; CHUNK];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        counters.swallowed.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        };
        tokio::select! {
            () = swallow => {}
            () = epoch_passes(&mut state, epoch) => {
                counters.reset.fetch_add(1, Ordering::Relaxed);
            }
        }
        abort(&client);
        return;
    }
    let Ok(Ok(mut server)) =
        tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
    else {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        abort(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let clean = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = direction(client_read, server_write, state.clone(), &counters);
        let down = direction(server_read, client_write, state.clone(), &counters);
        tokio::select! {
            ended = async { tokio::try_join!(up, down) } => ended.is_ok(),
            () = epoch_passes(&mut state, epoch) => {
                counters.reset.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    };
    if !clean {
        abort(&client);
        abort(&server);
    }
}

/// Returns once the proxy moved past `epoch` (or was dropped).
async fn epoch_passes(state: &mut watch::Receiver<State>, epoch: u64) {
    let _ = state.wait_for(|now| now.epoch != epoch).await;
}

/// Copies `from` to `to` chunk by chunk, each delivered at its read time plus the latency of
/// the moment (FIFO, so order is kept when the latency changes), swallowed in a black hole.
/// Ends when `from` reaches EOF and what was queued is written (then shuts `to` down), or on
/// the first error.
async fn direction(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    state: watch::Receiver<State>,
    counters: &Counters,
) -> io::Result<()> {
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                // Dropping the queue's sender lets the writer finish.
                return Ok::<_, io::Error>(());
            }
            let mode = state.borrow().mode;
            let at = match mode {
                Mode::BlackHole => {
                    counters.swallowed.fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                Mode::Latency(delay) => Instant::now() + delay,
                Mode::Pass | Mode::Cut => Instant::now(),
            };
            if queue.send((at, buf[..n].to_vec())).is_err() {
                return Ok(());
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = queued.recv().await {
            tokio::time::sleep_until(at).await;
            to.write_all(&bytes).await?;
            counters
                .forwarded
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// An upstream that echoes every byte back, on its own thread.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &FaultProxy) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
    }

    fn echo(stream: &mut std::net::TcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut back = vec![0; text.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn passes_delays_resets_cuts_and_heals() {
        let proxy = FaultProxy::start(echo_server()).expect("proxy");
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"hello").expect("echo"), b"hello");

        proxy.latency(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert_eq!(echo(&mut stream, b"slow").expect("echo"), b"slow");
        // Both directions are delayed: at least two delays for a round trip.
        assert!(started.elapsed() >= Duration::from_millis(600));
        proxy.latency(Duration::ZERO);
        assert_eq!(proxy.mode(), Mode::Pass);

        proxy.reset();
        let mut buf = [0; 1];
        // A reset connection reads an error or EOF, never data.
        assert!(matches!(stream.read(&mut buf), Err(_) | Ok(0)));
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"again").expect("echo"), b"again");

        proxy.cut();
        assert!(matches!(stream.read(&mut buf), Err(_) | Ok(0)));
        let mut refused = connect(&proxy);
        assert!(echo(&mut refused, b"x").is_err());
        proxy.heal();
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"healed").expect("echo"), b"healed");

        proxy.black_hole();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        stream.write_all(b"lost").expect("write is accepted");
        let swallowed = stream.read(&mut buf);
        assert!(
            matches!(&swallowed, Err(e) if e.kind() == io::ErrorKind::WouldBlock
                || e.kind() == io::ErrorKind::TimedOut),
            "{swallowed:?}"
        );
        proxy.heal();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert!(matches!(stream.read(&mut buf), Err(_) | Ok(0)));
        let mut stream = connect(&proxy);
        assert_eq!(echo(&mut stream, b"back").expect("echo"), b"back");

        let stats = proxy.stats();
        assert!(stats.reset >= 3, "{stats:?}");
        assert!(stats.refused >= 1, "{stats:?}");
        assert!(stats.swallowed >= 4, "{stats:?}");
    }
}
