//! The flood measurement of issue 12 (item 5): a JP and an SG node as `kakehashi node run`
//! processes (release binaries when run with `--release`), then, from one flooding source
//! address, silent TCP connections that never start TLS (re-opened `--reconnect-ms` after the
//! node closes them, as a flood would) on JP's public and relay listeners and idle `SubmitPayments` streams
//! on its public listener; meanwhile a legitimate client on 127.0.0.1 connects (TCP + TLS) to
//! both listeners and pays JP→SG. Prints connect p50/p99/max and payment latency before and
//! during the flood, what the flood held, and the node's refusal counters.
//!
//! ```text
//! cargo run --release -p kakehashi-e2e --example flood -- \
//!     [--silent 1000] [--streams 500] [--streams-per-connection 100] [--sources 1] \
//!     [--handshakes 200] [--payments 20] [--settle-secs 3] [--reconnect-ms 100] \
//!     [--shared-runtime 0]
//! ```
//!
//! The legitimate client runs on a thread and a runtime of its own (`--shared-runtime 1` puts
//! it on the flood's runtime, queued behind the flood's tasks).
//!
//! `--decoy 1` is the control run: the silent connections go to two decoy listeners of the
//! flood process (on a thread of their own) that accept and reset each connection at once, the
//! least any listener can spend on a refusal, instead of to JP's. The payments are still
//! measured against JP (which holds the idle streams); what they lose then is what the flood's
//! churn costs the shared cores whatever the node does.
//!
//! Every address of 127.0.0.0/8 reaches lo on Linux, so the flood binds its sockets to
//! 127.0.0.2 (and the next addresses with `--sources N`) while the legitimate client keeps
//! 127.0.0.1: the node tells them apart as it would two hosts. `--silent` connections are
//! opened on each of the two listeners. The flood itself holds `2 × silent` sockets at most:
//! raise `ulimit -n` if the machine's soft limit is below that.
//!
//! A measurement, not a test: it asserts nothing and prints the figures (ARCHITECTURE.md,
//! "Listeners", records what it gave).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kakehashi_e2e::pair::{self, NodeFiles, NodeProcess};
use kakehashi_e2e::repo_root;
use kakehashi_node::config::{Limits, RelayAddress};
use kakehashi_node::engine::{Clock as _, SystemClock};
use kakehashi_node::participant::{self, Answer, ConnectOptions, Participant, PaymentRequest};
use kakehashi_node::tls::{TlsIdentity, install_crypto_provider, relay_endpoint};
use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::bank::{Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use tokio::io::AsyncReadExt as _;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Longest a node may take to listen.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Pause before a stream the node ended is opened again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug)]
struct Args {
    silent: usize,
    streams: usize,
    streams_per_connection: usize,
    sources: u8,
    handshakes: usize,
    payments: usize,
    settle: Duration,
    /// Pause before a silent connection the node closed is opened again.
    reconnect: Duration,
    /// The legitimate client shares the flood's runtime instead of having its own.
    shared_runtime: bool,
    /// The silent connections go to a decoy listener instead of JP's (the control run).
    decoy: bool,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            silent: 1_000,
            streams: 500,
            streams_per_connection: 100,
            sources: 1,
            handshakes: 200,
            payments: 20,
            settle: Duration::from_secs(3),
            reconnect: Duration::from_millis(100),
            shared_runtime: false,
            decoy: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
            match flag.as_str() {
                "--silent" => args.silent = number(&value)?,
                "--streams" => args.streams = number(&value)?,
                "--streams-per-connection" => args.streams_per_connection = number(&value)?.max(1),
                "--sources" => {
                    args.sources =
                        u8::try_from(number(&value)?.clamp(1, 200)).map_err(|e| e.to_string())?;
                }
                "--handshakes" => args.handshakes = number(&value)?.max(1),
                "--payments" => args.payments = number(&value)?.max(1),
                "--settle-secs" => args.settle = Duration::from_secs(number(&value)? as u64),
                "--reconnect-ms" => {
                    args.reconnect = Duration::from_millis(number(&value)? as u64);
                }
                "--shared-runtime" => args.shared_runtime = number(&value)? != 0,
                "--decoy" => args.decoy = number(&value)? != 0,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        Ok(args)
    }

    /// The flooding source addresses: 127.0.0.2 onwards.
    fn sources(&self) -> Vec<IpAddr> {
        (0..self.sources)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n)))
            .collect()
    }
}

/// What the flood holds right now, and how often the node closed it.
#[derive(Debug, Default)]
struct FloodState {
    silent_open: AtomicUsize,
    silent_closed: AtomicU64,
    connect_errors: AtomicU64,
    streams_open: AtomicUsize,
    streams_ended: AtomicU64,
    /// Streams the node refused to open (a stream is opened again after each).
    streams_refused: AtomicU64,
}

#[tokio::main]
async fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("flood: {e}");
            std::process::exit(2);
        }
    };
    install_crypto_provider();
    let dir = tempfile::tempdir().expect("scratch directory");
    let jp_ports = pair::node_ports();
    let sg_ports = pair::node_ports();
    let jp = pair::write_config(dir.path(), "jp", jp_ports, sg_ports[1]);
    let sg = pair::write_config(dir.path(), "sg", sg_ports, jp_ports[1]);
    let mut jp_node = NodeProcess::spawn(&jp, |_| {});
    let mut sg_node = NodeProcess::spawn(&sg, |_| {});
    for (node, files) in [(&mut jp_node, &jp), (&mut sg_node, &sg)] {
        if pair::wait_listening(node, files, START_PATIENCE).is_none() {
            eprintln!("{} did not start:\n{}", files.code, files.log_tail(30));
            std::process::exit(1);
        }
    }
    let mra = Arc::new(Mra::load(&repo_root().join("certs/mra.toml")).expect("certs/mra.toml"));
    let legit = LegitThread::spawn(&jp, Arc::clone(&mra), args);

    println!(
        "flood: JP public {} relay {}; flooding from {} source(s) starting at 127.0.0.2",
        jp.public, jp.relay, args.sources
    );
    println!("\nbefore the flood");
    legit.measure().await;

    let state = Arc::new(FloodState::default());
    let started = Instant::now();
    let stream_tasks = open_streams(&args, &jp, &mra, &state).await;
    let mut silent_tasks = Vec::new();
    let targets = if args.decoy {
        let decoys = spawn_decoys();
        println!("  (control run: the silent connections go to decoy listeners {decoys:?})");
        decoys
    } else {
        [addr(jp.public), addr(jp.relay)]
    };
    for addr in targets {
        for n in 0..args.silent {
            let sources = args.sources();
            let source = sources[n % sources.len()];
            silent_tasks.push(tokio::spawn(hold_silent(
                source,
                addr,
                args.reconnect,
                Arc::clone(&state),
            )));
        }
    }
    tokio::time::sleep(args.settle).await;
    println!(
        "\nduring the flood ({:.1} s in): the flood holds {} silent connections and {} idle \
         streams; the node closed {} silent connections so far ({} connect errors on the \
         flood's side), ended {} streams and refused {}",
        started.elapsed().as_secs_f64(),
        state.silent_open.load(Ordering::Relaxed),
        state.streams_open.load(Ordering::Relaxed),
        state.silent_closed.load(Ordering::Relaxed),
        state.connect_errors.load(Ordering::Relaxed),
        state.streams_ended.load(Ordering::Relaxed),
        state.streams_refused.load(Ordering::Relaxed),
    );
    legit.measure().await;
    println!(
        "\nafter the measurement: the flood holds {} silent connections and {} idle streams",
        state.silent_open.load(Ordering::Relaxed),
        state.streams_open.load(Ordering::Relaxed),
    );
    // One refusal summary interval (10 s by default) after the flood began, so the log shows
    // what an operator reads.
    let interval = Duration::from_millis(Limits::default().refusal_log_interval_ms);
    let wait = (interval + Duration::from_millis(500)).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    print_node_counters(&jp);

    for task in silent_tasks.into_iter().chain(stream_tasks) {
        task.abort();
    }
    jp_node.stop(Duration::from_secs(30));
    sg_node.stop(Duration::from_secs(30));
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Two listeners on a thread of their own that accept each connection and reset it at once.
fn spawn_decoys() -> [SocketAddr; 2] {
    let listeners = [(); 2].map(|()| {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("decoy");
        listener.set_nonblocking(true).expect("decoy nonblocking");
        listener
    });
    let addresses = listeners
        .each_ref()
        .map(|l| l.local_addr().expect("decoy address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the decoys' runtime");
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for listener in listeners {
                let listener = tokio::net::TcpListener::from_std(listener).expect("decoy");
                tasks.push(tokio::spawn(async move {
                    loop {
                        if let Ok((tcp, _)) = listener.accept().await {
                            let _ = tcp.set_zero_linger();
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
    });
    addresses
}

/// One silent connection from `source`, opened again whenever the node closes it.
async fn hold_silent(
    source: IpAddr,
    addr: SocketAddr,
    reconnect: Duration,
    state: Arc<FloodState>,
) {
    loop {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            state.connect_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(reconnect).await;
            continue;
        };
        let connected = match socket.bind(SocketAddr::new(source, 0)) {
            Ok(()) => socket.connect(addr).await,
            Err(e) => Err(e),
        };
        match connected {
            Ok(mut stream) => {
                state.silent_open.fetch_add(1, Ordering::Relaxed);
                let mut byte = [0u8; 1];
                // Sends nothing; waits for the node to close it.
                let _ = stream.read(&mut byte).await;
                state.silent_open.fetch_sub(1, Ordering::Relaxed);
                state.silent_closed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                state.connect_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(reconnect).await;
    }
}

/// Opens `args.streams` idle `SubmitPayments` streams on JP's public listener from the first
/// flooding source, `args.streams_per_connection` per connection; each is opened again when
/// the node ends it. The connections present bank KKHBJPJ0's participant-TLS identity: the
/// node opens a `SubmitPayments` stream only for an authenticated bank, so idle streams are
/// what a bank (or whoever holds its credential) can hold, not an anonymous client.
async fn open_streams(
    args: &Args,
    jp: &NodeFiles,
    mra: &Arc<Mra>,
    state: &Arc<FloodState>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let source = args.sources()[0];
    let certs = repo_root().join("certs");
    let identity = TlsIdentity::load(
        &certs.join("jp/banks/KKHBJPJ0-tls.pem"),
        &certs.join("jp/banks/KKHBJPJ0-tls.key.pem"),
    )
    .expect("bank KKHBJPJ0's TLS identity");
    let mut tasks = Vec::new();
    let connections = args.streams.div_ceil(args.streams_per_connection);
    for c in 0..connections {
        let verifier = NodeServerCertVerifier::new(Arc::clone(mra), "JP").expect("verifier");
        let endpoint = Endpoint::from_shared(jp.url())
            .expect("url")
            .local_address(Some(source))
            .tls_config_with_verifier(
                ClientTlsConfig::new()
                    .domain_name("localhost")
                    .identity(identity.tonic_identity()),
                Arc::new(verifier),
            )
            .expect("tls");
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => {
                eprintln!("flood: stream connection {c} refused: {e}");
                continue;
            }
        };
        let here = args
            .streams_per_connection
            .min(args.streams - c * args.streams_per_connection);
        for _ in 0..here {
            tasks.push(tokio::spawn(hold_stream(
                channel.clone(),
                Arc::clone(state),
            )));
        }
    }
    // Give the streams time to open before the silent flood starts competing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.streams_open.load(Ordering::Relaxed) < args.streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tasks
}

/// One idle `SubmitPayments` stream on `channel`: opened, nothing sent; opened again when the
/// node ends it.
async fn hold_stream(channel: Channel, state: Arc<FloodState>) {
    loop {
        let (input, rx) = tokio::sync::mpsc::channel::<pb::SubmitPaymentRequest>(1);
        let mut client = PaymentsClient::new(channel.clone());
        match client
            .submit_payments(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(response) => {
                state.streams_open.fetch_add(1, Ordering::Relaxed);
                let mut reports = response.into_inner();
                while let Ok(Some(_)) = reports.message().await {}
                state.streams_open.fetch_sub(1, Ordering::Relaxed);
                state.streams_ended.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                state.streams_refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
        drop(input);
    }
}

/// The legitimate client, on a thread and a runtime of its own: in a real flood the attacker's
/// connection churn runs on other machines, so the flood's thousands of tasks must not share a
/// task queue with the client being measured (they still share the machine's cores, as the
/// node does).
struct LegitThread {
    /// Asks for one measurement; the answer says it is printed.
    measure: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
}

impl LegitThread {
    fn spawn(jp: &NodeFiles, mra: Arc<Mra>, args: Args) -> Self {
        let (measure, mut requests) =
            tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        let jp = jp.clone();
        let serve = async move {
            let legit = Legit::new(&jp, mra).await;
            while let Some(done) = requests.recv().await {
                legit.measure(&args).await;
                let _ = done.send(());
            }
        };
        if args.shared_runtime {
            tokio::spawn(serve);
        } else {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the legitimate client's runtime");
                runtime.block_on(serve);
            });
        }
        Self { measure }
    }

    /// Measures and prints the figures.
    async fn measure(&self) {
        let (done, printed) = tokio::sync::oneshot::channel();
        if self.measure.send(done).await.is_err() || printed.await.is_err() {
            eprintln!("flood: the legitimate client stopped");
            std::process::exit(1);
        }
    }
}

/// The legitimate client on 127.0.0.1.
struct Legit {
    url: String,
    relay: SocketAddr,
    mra: Arc<Mra>,
    bank: Bank,
    /// The bank's participant-TLS identity: the node takes a payment only from the connection
    /// of its debtor agent.
    bank_identity: TlsIdentity,
    sg_identity: TlsIdentity,
    client: PaymentsClient<Channel>,
}

impl Legit {
    async fn new(jp: &NodeFiles, mra: Arc<Mra>) -> Self {
        let certs = repo_root().join("certs");
        let bank = Bank::load(
            &certs.join("jp/banks/KKHAJPJ0.pem"),
            &certs.join("jp/banks/KKHAJPJ0.key.pem"),
        )
        .expect("bank");
        let bank_identity = TlsIdentity::load(
            &certs.join("jp/banks/KKHAJPJ0-tls.pem"),
            &certs.join("jp/banks/KKHAJPJ0-tls.key.pem"),
        )
        .expect("bank TLS identity");
        let sg_identity = TlsIdentity::load(
            &certs.join("sg/node/tls.pem"),
            &certs.join("sg/node/tls.key.pem"),
        )
        .expect("SG node identity");
        let url = jp.url();
        let client = connect_public(&url, &mra, &bank_identity)
            .await
            .expect("connect");
        Self {
            url,
            relay: addr(jp.relay),
            mra,
            bank,
            bank_identity,
            sg_identity,
            client,
        }
    }

    /// Connects `args.handshakes` times to each listener, then pays `args.payments` times on
    /// the client's standing connection, and prints the figures.
    async fn measure(&self, args: &Args) {
        for (listener, relay) in [("public", false), ("relay", true)] {
            let mut times = Vec::new();
            let mut failures = 0;
            for _ in 0..args.handshakes {
                let started = Instant::now();
                let ok = if relay {
                    self.connect_relay().await
                } else {
                    connect_public(&self.url, &self.mra, &self.bank_identity)
                        .await
                        .is_ok()
                };
                if ok {
                    times.push(started.elapsed());
                } else {
                    failures += 1;
                }
            }
            println!(
                "  {listener:>6} connect (TCP + TLS), {} tries: {} ({failures} failed)",
                args.handshakes,
                summary(&mut times)
            );
        }
        let mut times = Vec::new();
        let mut not_settled = 0;
        for _ in 0..args.payments {
            let started = Instant::now();
            if self.pay().await {
                times.push(started.elapsed());
            } else {
                not_settled += 1;
            }
        }
        println!(
            "  payment JP→SG (quote, sign, submit, settled with receipt), {} payments: {} \
             ({not_settled} not settled)",
            args.payments,
            summary(&mut times)
        );
    }

    async fn connect_relay(&self) -> bool {
        let address = RelayAddress {
            uri: format!("https://{}", self.relay).parse().expect("uri"),
            server_name: "localhost".to_owned(),
        };
        match relay_endpoint(
            "JP",
            &address,
            &self.sg_identity,
            Arc::clone(&self.mra),
            "SG",
            &Limits::default(),
        ) {
            Ok(endpoint) => endpoint.connect().await.is_ok(),
            Err(_) => false,
        }
    }

    async fn pay(&self) -> bool {
        let Ok(uetr) = Uetr::new_v4(&ring::rand::SystemRandom::new()) else {
            return false;
        };
        let request = PaymentRequest {
            uetr,
            amount: pb::ActiveCurrencyAndAmount {
                currency: "JPY".to_owned(),
                value: "1000".to_owned(),
            },
            counterparty: "SG".to_owned(),
            order: Order {
                debtor_account: 1001,
                debtor_name: "Aoki Kenji".to_owned(),
                creditor_agent_bic: "KKHASGS0".to_owned(),
                creditor_account: 2001,
                creditor_name: "Tan Wei Ming".to_owned(),
                remittance_information: "flood measurement".to_owned(),
            },
            options: InstructionOptions::default(),
        };
        let participant = Participant::new(&*self.mra, "JP");
        let mut client = self.client.clone();
        match participant
            .pay(&mut client, &self.bank, &request, SystemClock.now().1)
            .await
        {
            Ok(paid) => {
                matches!(
                    &paid.answer,
                    Answer::Report(report)
                        if report.transaction_status() == pb::TransactionStatus::Acsc
                ) && matches!(paid.receipt, Ok(Some(_)))
            }
            Err(_) => false,
        }
    }
}

async fn connect_public(
    url: &str,
    mra: &Arc<Mra>,
    identity: &TlsIdentity,
) -> Result<PaymentsClient<Channel>, String> {
    let options = ConnectOptions {
        server_name: Some("localhost".to_owned()),
        identity: Some(identity.tonic_identity()),
        ..ConnectOptions::default()
    };
    participant::connect_with(url, Arc::clone(mra), "JP", &options)
        .await
        .map_err(|e| e.to_string())
}

/// `p50 … p99 … max …` of `times` in milliseconds.
fn summary(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "no success".to_owned();
    }
    times.sort();
    let at = |q: f64| {
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1].as_secs_f64() * 1_000.0
    };
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.50),
        at(0.99),
        at(1.0)
    )
}

/// The JP node's listener counters, from its metrics endpoint.
fn print_node_counters(jp: &NodeFiles) {
    let text = pair::scrape_metrics(jp).unwrap_or_default();
    println!("\nJP node counters:");
    for line in text.lines().filter(|l| {
        (l.starts_with("kakehashi_listener_refusals_total{")
            || l.starts_with("kakehashi_listener_connections{")
            || l.starts_with("kakehashi_tls_refusals_total{"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    let log = std::fs::read_to_string(jp.log()).unwrap_or_default();
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connections refused or closed by the listener"))
        .collect();
    println!(
        "  log: {} lines in all, {} of them refusal summaries{}",
        log.lines().count(),
        summaries.len(),
        summaries
            .first()
            .map(|l| format!("; the first:\n  {l}"))
            .unwrap_or_default()
    );
}
