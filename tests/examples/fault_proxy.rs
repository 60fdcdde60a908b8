//! The fault proxy of the network-fault tests (`kakehashi_e2e::proxy`) as a process, for tests
//! that run nodes on hosts of their own (tests/hosts/run.sh): it listens on one address,
//! forwards every connection to one upstream address, delays every chunk by a fixed latency in
//! both directions, and, on a fixed period, loses the link for a while (a black hole: bytes
//! accepted and swallowed, nothing answered; at its end the connections that lived through it
//! are reset, as a flow that lost bytes cannot carry on). Kernel `netem` would do this below
//! TCP; where it is missing, this is the user-space stand-in, placed on a link by naming the
//! proxy's address where the peer's would be.
//!
//! ```text
//! cargo run -p kakehashi-e2e --example fault_proxy -- --listen 127.0.0.2:7301 \
//!     --upstream 10.77.0.3:7301 [--latency-ms 40] [--loss-every-ms 4000] [--loss-ms 400]
//! ```
//!
//! It prints one line when it listens, one per loss window with its counters so far, and runs
//! until SIGTERM or Ctrl-C, when it prints its counters once more and exits 0. TLS passes through untouched: the client still checks the server's
//! certificate against the name it dialled.

use std::net::SocketAddr;
use std::time::Duration;

use kakehashi_e2e::proxy::FaultProxy;

/// How often the counters are printed when no loss is scheduled.
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    latency: Duration,
    /// Period of the loss windows; zero: no loss.
    loss_every: Duration,
    /// Length of each loss window.
    loss: Duration,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut listen = None;
        let mut upstream = None;
        let mut latency = Duration::ZERO;
        let mut loss_every = Duration::ZERO;
        let mut loss = Duration::from_millis(400);
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let address = |v: &str| {
                v.parse::<SocketAddr>()
                    .map_err(|e| format!("{flag} {v}: {e} (give IP:PORT)"))
            };
            let ms = |v: &str| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|e| format!("{flag} {v}: {e}"))
            };
            match flag.as_str() {
                "--listen" => listen = Some(address(&value)?),
                "--upstream" => upstream = Some(address(&value)?),
                "--latency-ms" => latency = ms(&value)?,
                "--loss-every-ms" => loss_every = ms(&value)?,
                "--loss-ms" => loss = ms(&value)?,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        let listen = listen.ok_or("--listen IP:PORT is required")?;
        let upstream = upstream.ok_or("--upstream IP:PORT is required")?;
        if !loss_every.is_zero() && loss >= loss_every {
            return Err(format!(
                "--loss-ms {} must be shorter than --loss-every-ms {}",
                loss.as_millis(),
                loss_every.as_millis()
            ));
        }
        Ok(Self {
            listen,
            upstream,
            latency,
            loss_every,
            loss,
        })
    }
}

fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fault_proxy: {e}");
            std::process::exit(2);
        }
    };
    let proxy = match FaultProxy::start_on(args.listen, args.upstream) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("fault_proxy: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    proxy.latency(args.latency);
    let loss = if args.loss_every.is_zero() {
        "no loss".to_owned()
    } else {
        format!(
            "loss: a {} ms black hole every {} ms",
            args.loss.as_millis(),
            args.loss_every.as_millis()
        )
    };
    println!(
        "fault_proxy: listening on {}, forwarding to {} (latency {} ms each way; {loss})",
        proxy.addr(),
        proxy.upstream(),
        args.latency.as_millis()
    );
    // The schedule runs until SIGTERM or Ctrl-C, on a runtime of its own (the proxy has its
    // own); then the counters are printed once more and the proxy is dropped outside it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fault_proxy: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let ended = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            () = schedule(&proxy, args) => {}
            _ = terminate.recv() => {}
            interrupted = tokio::signal::ctrl_c() => interrupted?,
        }
        Ok::<_, std::io::Error>(())
    });
    if let Err(e) = ended {
        eprintln!("fault_proxy: cannot listen for signals: {e}");
    }
    println!("fault_proxy: stopped; {:?}", proxy.stats());
}

/// Latency throughout; a loss window every `loss_every` (never when zero), with the counters
/// printed after each (every [`REPORT_EVERY`] without loss).
async fn schedule(proxy: &FaultProxy, args: Args) {
    let mut window = 0_u64;
    loop {
        if args.loss_every.is_zero() {
            tokio::time::sleep(REPORT_EVERY).await;
            println!("fault_proxy: {:?}", proxy.stats());
            continue;
        }
        tokio::time::sleep(args.loss_every - args.loss).await;
        window += 1;
        proxy.black_hole();
        tokio::time::sleep(args.loss).await;
        // Healing restores the latency-free mode: put the latency back.
        proxy.heal();
        proxy.latency(args.latency);
        println!(
            "fault_proxy: loss window {window} ({} ms) over; {:?}",
            args.loss.as_millis(),
            proxy.stats()
        );
    }
}
