//! `kakehashi replay FILE`: sends the payments of a JSON Lines transaction file (the format is
//! documented in `kakehashi_ops::replay`) to running nodes as their banks would — quote, check
//! the quote under the agreement, sign, submit — and reports each outcome against the line's
//! expectation, with counts by status and reason, throughput and latency.
//!
//! The whole file is validated first (and the banks' keys loaded); a bad line aborts with exit
//! 2 before anything is sent. Lines that share a UETR run one after the other in file order;
//! the others run `--concurrency` at a time. Re-running a file is safe: every line has a fixed
//! UETR (its own, or one derived from its content under a key of the signing bank), the
//! sending node answers a known UETR with DUPL and moves nothing, and replay then asks the node
//! for the earlier payment's status and reports that outcome as "decided by an earlier run" when
//! it is the same payment (same end-to-end id and amount).
//!
//! Exit codes: 0 every line met its expectation (a line without one: was answered, ACSC or
//! RJCT); 1 some line did not (or got no answer, or a receipt did not verify); 2 usage or input
//! error, nothing sent; 3 all decided lines as expected but some payment still PDNG (in doubt;
//! run the file again later to learn the outcome).

mod iso;
mod junit;
mod results;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kakehashi_node::SystemClock;
use kakehashi_ops::replay::send::{self, Connection, Sender};
use kakehashi_ops::replay::{self, Parties, Payment, UetrKey};
use kakehashi_protocol::money;

use crate::client;
use crate::configs::{SG_PORT_OFFSET, find_configs, load_config};
use crate::output::write_stdout;
use crate::payer;
use crate::progress::Progress;
use results::{summary, write_results};

/// Default payments in flight: a few, so a file replays quickly without crowding a laptop's
/// devnet.
const CONCURRENCY_DEFAULT: usize = 4;

/// Most payments in flight: all of them share one HTTP/2 connection per node, and the nodes
/// serve at most 64 concurrent requests per connection (`max_concurrent_requests_per_connection`
/// default); more would only queue.
const CONCURRENCY_MAX: usize = 64;

/// Default `--pending-wait`: the nodes' recovery loop asks the receiver every 2 s, so 10 s
/// covers several rounds.
const PENDING_WAIT_SECS_DEFAULT: u64 = 10;

/// Longest `--pending-wait` accepted: an hour; beyond that, run the file again later.
const PENDING_WAIT_SECS_MAX: u64 = 3_600;

/// Arguments of `kakehashi replay`.
#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    /// The JSON Lines file: one payment per line (see the README's "Replaying a transaction
    /// file" for the members); or ISO 20022 pacs.008.001.08 messages: a `.xml` file, or a
    /// directory whose `.xml` files are read in name order (docs/iso20022.md).
    file: PathBuf,
    /// A node for a jurisdiction, e.g. `JP=https://127.0.0.1:7100` (repeatable; wins over
    /// configurations).
    #[arg(long = "node", value_name = "CODE=URL")]
    nodes: Vec<String>,
    /// A node configuration whose `listen.public` address serves its jurisdiction
    /// (repeatable), e.g. for `kakehashi node run` pairs.
    #[arg(long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    /// The devnet configurations (jp.toml, sg.toml) for jurisdictions not given otherwise
    /// (default: crates/node/devnet of the checkout).
    #[arg(long, value_name = "DIR")]
    devnet_configs: Option<PathBuf>,
    /// The devnet's `--base-port`: JP at N, SG at N+100.
    #[arg(long, value_name = "N")]
    base_port: Option<u16>,
    /// The mutual-recognition agreement (the nodes' TLS certificates and the quotes and
    /// receipts are checked under it).
    #[arg(long, default_value = "certs/mra.toml", value_name = "FILE")]
    mra: PathBuf,
    /// Where the banks named by `debtor_agent` are: `DIR/<jurisdiction>/banks/<BIC>.pem` and
    /// .key.pem (default: the agreement's directory).
    #[arg(long, value_name = "DIR")]
    certs: Option<PathBuf>,
    /// The name to check the nodes' certificates against (default: each URL's host).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Payments in flight at once (1 to 64).
    #[arg(long, default_value_t = CONCURRENCY_DEFAULT, value_name = "N")]
    concurrency: usize,
    /// Write one JSON result per payment line to this file (JSON Lines, in file order).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Text mixed into derived UETRs: the same file with another seed is a new set of
    /// payments.
    #[arg(long, default_value = "", value_name = "TEXT")]
    seed: String,
    /// How long to keep asking about a payment still PDNG before reporting it as such.
    #[arg(long, default_value_t = PENDING_WAIT_SECS_DEFAULT, value_name = "SECS")]
    pending_wait: u64,
    /// Validate the file (and load the banks' keys) and print what would be sent; send
    /// nothing.
    #[arg(long)]
    check: bool,
    /// Write ISO 20022 pacs.002.001.10 status reports into this directory: one
    /// `<message>.pacs002.xml` per pacs.008 message read (one for a JSON Lines file).
    #[arg(long, value_name = "DIR")]
    pacs002_out: Option<PathBuf>,
    /// Write a JUnit XML report to this file: a test case per payment line, a failure where
    /// the expectation was not met, an error where the outcome is unknown (PDNG, no answer).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(replay(args))
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    check_options(&args)?;
    let mra = Arc::new(client::load_mra(&args.mra)?);
    let parties: Parties = mra
        .jurisdictions()
        .iter()
        .filter_map(|j| Some((j.code.clone(), money::currency(&j.currency)?)))
        .collect();

    // 1. The whole file, before anything is sent.
    let bytes = if args.file.is_dir() {
        None
    } else {
        Some(read_file(&args.file)?)
    };
    let (mut payments, messages) = match bytes {
        Some(bytes) if !iso::is_xml(&args.file, Some(&bytes)) => {
            match replay::parse(&bytes, &parties) {
                Ok(payments) => (payments, Vec::new()),
                Err(errors) => return Ok(input_errors(&args.file, &errors)),
            }
        }
        _ => match iso::read_messages(&args.file, &parties, read_file)? {
            Ok(input) => (input.payments, input.messages),
            Err(errors) => {
                iso::print_errors(&errors);
                return Ok(ExitCode::from(2));
            }
        },
    };
    let certs = match &args.certs {
        Some(dir) => dir.clone(),
        None => args
            .mra
            .parent()
            .map(Path::to_path_buf)
            .context("the agreement path has no directory; pass --certs")?,
    };
    let base = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let loaded = send::load_banks(&payments, &certs, &base, |cert, key| {
        payer::Bank::load(cert, key)
            .map(|bank| bank.identity)
            .map_err(|e| format!("{e:#}"))
    });
    let (banks, bank_of) = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => return Ok(input_errors(&args.file, &errors)),
    };
    // Derived UETRs are keyed with a secret of the bank that signs the line, so that no one
    // else can compute them from the file and take them first.
    let keys: Vec<UetrKey> = banks.iter().map(UetrKey::of).collect();
    replay::key_uetrs(&mut payments, &args.seed, |index| &keys[bank_of[index]]);
    let urls = node_urls(&args, &payments)?;
    let mut header = header(&args, &payments, &urls);
    if args.check {
        let _ = writeln!(header, "\nThe file is valid; --check sent nothing. UETRs:");
        for p in &payments {
            let derived = if p.uetr_derived { " (derived)" } else { "" };
            let _ = writeln!(header, "  line {:>5}  {}{derived}", p.line, p.uetr);
        }
        write_stdout(&header)?;
        return Ok(ExitCode::SUCCESS);
    }
    write_stdout(&header)?;

    // 2. One connection per sending node and debtor agent, shared by every payment that bank
    // sends there, presenting the bank's participant-TLS identity
    // (`<certs>/<cc>/banks/<BIC>-tls.pem`).
    let mut nodes = BTreeMap::new();
    for p in &payments {
        let key = (p.sending.clone(), p.debtor_agent.clone());
        if nodes.contains_key(&key) {
            continue;
        }
        let Some(url) = urls.get(&p.sending) else {
            continue;
        };
        let (cert, tls_key) = client::bank_tls_files(&certs, &p.debtor_agent);
        // A bank without an identity there connects without one; the node then refuses each
        // of its lines (UNAUTHENTICATED), which the results report line by line.
        let identity = client::read_identity(&cert, &tls_key).ok();
        let node = client::connect(
            url,
            Arc::clone(&mra),
            &p.sending,
            args.tls_server_name.as_deref(),
            identity,
        )
        .await?;
        nodes.insert(
            key,
            Connection {
                payments: node.payments,
                url: node.url,
            },
        );
    }
    let progress = Progress::start(
        u64::try_from(payments.len()).unwrap_or(u64::MAX),
        "payments",
        "replay",
    );
    let tick = progress.clone();
    let sender = Arc::new(Sender {
        mra,
        nodes,
        banks,
        pending_wait: Duration::from_secs(args.pending_wait),
        clock: Arc::new(SystemClock),
        on_line: Arc::new(move || tick.inc()),
        describe_error: |url, error| format!("{:#}", payer::pay_error(url, error)),
    });

    // 3. Every line, `--concurrency` at a time.
    let answered: Vec<iso::Answered> = payments.iter().map(iso::Answered::of).collect();
    let started = Instant::now();
    let results = sender.send(payments, bank_of, args.concurrency).await?;
    let wall = started.elapsed();
    progress.finish();

    if let Some(path) = &args.out {
        write_results(path, &results)?;
    }
    let mut out = String::new();
    let code = summary(&mut out, &results, wall);
    if let Some(path) = &args.out {
        let _ = writeln!(out, "Results per line: {}", path.display());
    }
    if let Some(path) = &args.junit {
        let counts = junit::write(path, &args.file, &results, wall)?;
        let _ = writeln!(
            out,
            "JUnit report: {} ({} test(s), {} failure(s), {} error(s))",
            path.display(),
            counts.tests,
            counts.failures,
            counts.errors
        );
    }
    if let Some(dir) = &args.pacs002_out {
        let now = client::now()?;
        let written = iso::write_reports(dir, &args.file, &messages, &answered, &results, now)?;
        for path in written {
            let _ = writeln!(out, "pacs.002 status report: {}", path.display());
        }
    }
    write_stdout(&out)?;
    Ok(code)
}

/// Refuses options out of range.
fn check_options(args: &ReplayArgs) -> anyhow::Result<()> {
    if !(1..=CONCURRENCY_MAX).contains(&args.concurrency) {
        bail!(
            "--concurrency {}: give 1 to {CONCURRENCY_MAX}",
            args.concurrency
        );
    }
    if args.pending_wait > PENDING_WAIT_SECS_MAX {
        bail!(
            "--pending-wait {}: at most {PENDING_WAIT_SECS_MAX} s",
            args.pending_wait
        );
    }
    Ok(())
}

/// What will be sent where: the payments by route and the node of each sending jurisdiction.
fn header(args: &ReplayArgs, payments: &[Payment], urls: &BTreeMap<String, String>) -> String {
    let mut header = String::new();
    let mut routes: BTreeMap<String, usize> = BTreeMap::new();
    for p in payments {
        *routes.entry(send::route(p)).or_default() += 1;
    }
    let _ = writeln!(
        header,
        "kakehashi replay {}: {} payment(s) ({}), concurrency {}",
        args.file.display(),
        payments.len(),
        routes
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        args.concurrency
    );
    for (code, url) in urls {
        let _ = writeln!(header, "  {code}  {url}");
    }
    header
}

/// Reads the replay file whole, refusing one beyond [`replay::FILE_BYTES_MAX`] before reading.
fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the replay file {}", path.display()))?
        .len();
    if len > replay::FILE_BYTES_MAX {
        bail!(
            "the replay file {} is {len} bytes, more than the {}-byte limit; split it",
            path.display(),
            replay::FILE_BYTES_MAX
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read the replay file {}", path.display()))
}

/// Prints the input errors and returns exit 2.
fn input_errors(file: &Path, errors: &[replay::LineError]) -> ExitCode {
    let mut text = format!(
        "error: {}: {} bad line(s); nothing was sent\n",
        file.display(),
        errors.len()
    );
    for e in errors {
        let _ = writeln!(text, "  {e}");
    }
    if errors.len() >= replay::ERRORS_MAX {
        let _ = writeln!(
            text,
            "  (stopped after {} errors; fix these and run again)",
            replay::ERRORS_MAX
        );
    }
    eprint!("{text}");
    ExitCode::from(2)
}

/// The node URL of every sending jurisdiction the file uses: `--node`, else `--config`, else
/// the devnet configurations (with `--base-port`).
fn node_urls(args: &ReplayArgs, payments: &[Payment]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for text in &args.nodes {
        let (code, url) = text.split_once('=').with_context(|| {
            format!("--node {text}: give CODE=URL, e.g. JP=https://127.0.0.1:7100")
        })?;
        known.insert(code.to_owned(), url.to_owned());
    }
    for path in &args.configs {
        let config = load_config(path)?;
        known
            .entry(config.jurisdiction.clone())
            .or_insert_with(|| public_url(config.listen.public));
    }
    let wanted: Vec<&str> = {
        let mut w: Vec<&str> = payments.iter().map(|p| p.sending.as_str()).collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    if wanted.iter().any(|code| !known.contains_key(*code)) {
        let dir = find_configs(
            args.devnet_configs.as_deref(),
            "the nodes with --node CODE=URL",
        )?;
        for (file, offset) in [("jp.toml", 0), ("sg.toml", SG_PORT_OFFSET)] {
            let config = load_config(&dir.join(file))?;
            let mut addr = config.listen.public;
            if let Some(base) = args.base_port {
                addr.set_port(base.checked_add(offset).with_context(|| {
                    format!("--base-port {base}: the SG port would pass 65535")
                })?);
            }
            known
                .entry(config.jurisdiction.clone())
                .or_insert_with(|| public_url(addr));
        }
    }
    let mut out = BTreeMap::new();
    for code in wanted {
        let url = known.get(code).with_context(|| {
            format!("no node for {code}: pass --node {code}=https://HOST:PORT or --config FILE")
        })?;
        out.insert(code.to_owned(), url.clone());
    }
    Ok(out)
}

/// `https://` and the address, with an unspecified listen address (0.0.0.0, ::) replaced by
/// loopback: the node listens on every interface, this machine reaches it there.
fn public_url(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    format!("https://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(
            public_url("0.0.0.0:7100".parse().unwrap()),
            "https://127.0.0.1:7100"
        );
        assert_eq!(
            public_url("127.0.0.1:7200".parse().unwrap()),
            "https://127.0.0.1:7200"
        );
    }
}
