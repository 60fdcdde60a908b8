//! A JP and an SG node as separate `kakehashi node run` processes, for tests that kill, stop and
//! restart them (the in-process [`crate::TestPair`] cannot be killed with SIGKILL): their
//! configurations made from the committed devnet ones (fresh data directories, free ports, the peer's relay at an
//! address of the test's choosing, such as a fault proxy), the processes started, killed with
//! SIGKILL, stopped with SIGTERM and restarted, and their metrics read.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{free_ports, kakehashi_bin, repo_root};

/// The devnet ports a committed configuration names for a node (public, relay, metrics), which
/// [`write_config`] replaces.
fn devnet_base(code: &str) -> u16 {
    if code == "jp" { 7100 } else { 7200 }
}

/// A node's configuration as written for a test, and what the test needs to reach it.
#[derive(Clone, Debug)]
pub struct NodeFiles {
    /// `jp` or `sg`.
    pub code: String,
    /// The configuration file.
    pub config: PathBuf,
    /// Its data directory (ledger and payment store).
    pub data_dir: PathBuf,
    /// The public (Payments API) port.
    pub public: u16,
    /// The relay port (mutual TLS, for the peer).
    pub relay: u16,
    /// The plain-HTTP metrics port.
    pub metrics: u16,
}

impl NodeFiles {
    /// `https://127.0.0.1:PUBLIC`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.public)
    }

    /// The relay listener's address (what a fault proxy forwards to).
    pub fn relay_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.relay))
    }

    /// Where the node's log goes: `<config>.log`, appended to by every start.
    pub fn log(&self) -> PathBuf {
        self.config.with_extension("log")
    }

    /// The last `lines` lines of its log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Writes a configuration for `code` ("jp" or "sg") from the committed devnet one: certificates
/// by absolute path, data under `dir/<code>`, the listeners on `ports` (public, relay,
/// metrics) and the peer's relay at `127.0.0.1:peer_relay`.
pub fn write_config(dir: &Path, code: &str, ports: [u16; 3], peer_relay: u16) -> NodeFiles {
    let repo = repo_root();
    let text = std::fs::read_to_string(repo.join(format!("crates/node/devnet/{code}.toml")))
        .expect("devnet config");
    let own_base = devnet_base(code);
    let peer_base = if code == "jp" {
        devnet_base("sg")
    } else {
        devnet_base("jp")
    };
    let data_dir = dir.join(code);
    let certs = repo.join("certs");
    let text = text
        .replace("../../../certs", &certs.display().to_string())
        .replace(
            &format!("data_dir = \"data/{code}\""),
            &format!("data_dir = \"{}\"", data_dir.display()),
        )
        .replace(
            &format!("127.0.0.1:{}", peer_base + 1),
            &format!("127.0.0.1:{peer_relay}"),
        )
        .replace(
            &format!("127.0.0.1:{own_base}"),
            &format!("127.0.0.1:{}", ports[0]),
        )
        .replace(
            &format!("127.0.0.1:{}", own_base + 1),
            &format!("127.0.0.1:{}", ports[1]),
        )
        .replace(
            &format!("127.0.0.1:{}", own_base + 2),
            &format!("127.0.0.1:{}", ports[2]),
        );
    let config = dir.join(format!("{code}.toml"));
    std::fs::write(&config, text).expect("write config");
    NodeFiles {
        code: code.to_owned(),
        config,
        data_dir,
        public: ports[0],
        relay: ports[1],
        metrics: ports[2],
    }
}

/// Three free ports for a node's listeners (public, relay, metrics).
pub fn node_ports() -> [u16; 3] {
    let base = free_ports(3);
    [base, base + 1, base + 2]
}

/// A `kakehashi node run` process, killed if the test ends (or fails) while it runs.
pub struct NodeProcess {
    child: Child,
}

impl NodeProcess {
    /// Starts `kakehashi node run --config FILE`, logging at `info` to [`NodeFiles::log`],
    /// after `configure` had its say (a crash point, for instance); without the caller's
    /// `KAKEHASHI_LOG` and crash point.
    pub fn spawn(files: &NodeFiles, configure: impl FnOnce(&mut Command)) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(files.log())
            .expect("node log file");
        let mut command = Command::new(kakehashi_bin());
        command
            .args(["node", "run", "--config"])
            .arg(&files.config)
            .env("KAKEHASHI_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove(kakehashi_node::fault::ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        configure(&mut command);
        Self {
            child: command.spawn().expect("start kakehashi node run"),
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll a node process")
    }

    /// Kills it with SIGKILL (what `Child::kill` sends on Unix) and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM (a clean shutdown releases the databases) and waits at most
    /// `patience`; panics if it is still running then.
    pub fn stop(mut self, patience: Duration) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < patience {
            if let Some(status) = self.exited() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node {} did not stop on SIGTERM", self.child.id());
    }

    /// Waits at most `patience` for it to exit by itself (a crash point, say).
    pub fn wait_exit(&mut self, patience: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < patience {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port` now.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Waits until `files`'s node accepts connections on its public, relay and metrics ports, at
/// most `patience`; returns how long that took, or `None` when it did not come up (or
/// exited).
pub fn wait_listening(
    node: &mut NodeProcess,
    files: &NodeFiles,
    patience: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < patience {
        if node.exited().is_some() {
            return None;
        }
        if [files.public, files.relay, files.metrics]
            .into_iter()
            .all(listening)
        {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// The node's whole `GET /metrics` answer (status line, headers and exposition text), or
/// `None` when the node does not answer (down, restarting).
pub fn scrape_metrics(files: &NodeFiles) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, files.metrics));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the sample `name` (a metric without labels, e.g.
/// `kakehashi_payments_in_doubt`) from the node's `GET /metrics`, or `None` when the node does
/// not answer (down, restarting) or has no such sample.
pub fn metric(files: &NodeFiles, name: &str) -> Option<f64> {
    scrape_metrics(files)?.lines().find_map(|line| {
        let (sample, value) = line.split_once(' ')?;
        (sample == name).then(|| value.trim().parse().ok())?
    })
}
