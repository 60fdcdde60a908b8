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
mod results;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kakehashi_node::participant::{
    Answer, Participant, PayError, ReceiptError, Refusal, Step, VerifiedReceipt,
};
use kakehashi_ops::load;
use kakehashi_ops::replay::{self, Parties, Payment, UetrKey};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money;
use kakehashi_protocol::receipt::ReceiptFile;
use kakehashi_protocol::status::{self, status_name};
use tonic::transport::Channel;

use crate::client::{self, NodeClient};
use crate::configs::{SG_PORT_OFFSET, find_configs, load_config};
use crate::output::{amount_text, write_stdout};
use crate::payer::{self, Bank};
use crate::progress::Progress;
use results::{LineResult, summary, write_results};

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

/// How often a PDNG payment's status is asked for while waiting.
const PENDING_POLL: Duration = Duration::from_millis(200);

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
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    client::runtime()?.block_on(replay(args))
}

/// What every line task shares.
struct Shared {
    mra: Arc<Mra>,
    /// One connection per sending node and debtor agent, presenting that bank's
    /// participant-TLS identity (a node takes an instruction only from its debtor agent).
    nodes: BTreeMap<(String, String), NodeClient>,
    banks: Vec<Bank>,
    pending_wait: Duration,
    progress: Progress,
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
    let (banks, bank_of) = match load_banks(&payments, &certs, &base) {
        Ok(loaded) => loaded,
        Err(errors) => return Ok(input_errors(&args.file, &errors)),
    };
    // Derived UETRs are keyed with a secret of the bank that signs the line, so that no one
    // else can compute them from the file and take them first.
    let keys: Vec<UetrKey> = banks.iter().map(|b| UetrKey::of(&b.identity)).collect();
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
        nodes.insert(key, node);
    }
    let progress = Progress::start(
        u64::try_from(payments.len()).unwrap_or(u64::MAX),
        "payments",
        "replay",
    );
    let shared = Arc::new(Shared {
        mra,
        nodes,
        banks,
        pending_wait: Duration::from_secs(args.pending_wait),
        progress: progress.clone(),
    });

    // 3. Every line, `--concurrency` at a time.
    let answered: Vec<iso::Answered> = payments.iter().map(iso::Answered::of).collect();
    let started = Instant::now();
    let results = send_lines(&shared, payments, bank_of, args.concurrency).await?;
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
        *routes.entry(route(p)).or_default() += 1;
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

/// Sends every line and returns the results in file order. Lines sharing a UETR form a chain
/// run in file order; chains run concurrently, `concurrency` at a time.
async fn send_lines(
    shared: &Arc<Shared>,
    payments: Vec<Payment>,
    bank_of: Vec<usize>,
    concurrency: usize,
) -> anyhow::Result<Vec<LineResult>> {
    let chains = chains(&payments);
    let payments = Arc::new(payments);
    let bank_of = Arc::new(bank_of);
    let window = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(chains.len());
    for chain in chains {
        let permit = Arc::clone(&window)
            .acquire_owned()
            .await
            .context("the concurrency window closed")?;
        let (shared, payments, bank_of) = (
            Arc::clone(shared),
            Arc::clone(&payments),
            Arc::clone(&bank_of),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(chain.len());
            for index in chain {
                let payment = &payments[index];
                let bank = &shared.banks[bank_of[index]];
                out.push((index, send_line(&shared, payment, bank).await));
                shared.progress.inc();
            }
            drop(permit);
            out
        }));
    }
    let mut results: Vec<Option<LineResult>> = vec![None; payments.len()];
    for task in tasks {
        for (index, result) in task.await.context("a replay task failed")? {
            results[index] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// The indexes of the lines of each UETR, in file order; chains in order of first appearance.
fn chains(payments: &[Payment]) -> Vec<Vec<usize>> {
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: BTreeMap<Uetr, usize> = BTreeMap::new();
    for (index, p) in payments.iter().enumerate() {
        let chain = *chain_of.entry(p.uetr).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[chain].push(index);
    }
    chains
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

fn route(p: &Payment) -> String {
    format!("{}→{}", p.sending, p.receiving)
}

/// Loads every distinct signing identity the lines use; the index of each line's bank.
fn load_banks(
    payments: &[Payment],
    certs: &Path,
    base: &Path,
) -> Result<(Vec<Bank>, Vec<usize>), Vec<replay::LineError>> {
    let mut banks: Vec<Bank> = Vec::new();
    let mut known: BTreeMap<(PathBuf, PathBuf), usize> = BTreeMap::new();
    let mut bank_of = Vec::with_capacity(payments.len());
    let mut errors = Vec::new();
    for p in payments {
        let (files, member) = match &p.signer {
            Some(s) => ((base.join(&s.cert), base.join(&s.key)), "signer"),
            None => {
                let dir = load::banks_dir(certs, &p.sending);
                (
                    (
                        dir.join(format!("{}.pem", p.debtor_agent)),
                        dir.join(format!("{}.key.pem", p.debtor_agent)),
                    ),
                    "debtor_agent",
                )
            }
        };
        let fail = |detail: String| replay::LineError {
            line: p.line,
            field: Some(member.to_owned()),
            code: kakehashi_protocol::reason::ReasonCode::Ff01,
            detail,
        };
        let index = match known.get(&files) {
            Some(index) => *index,
            None => match Bank::load(&files.0, &files.1) {
                Ok(bank) => {
                    banks.push(bank);
                    known.insert(files.clone(), banks.len() - 1);
                    banks.len() - 1
                }
                Err(e) => {
                    errors.push(fail(format!(
                        "cannot load the bank's signing identity: {e:#}"
                    )));
                    if errors.len() >= replay::ERRORS_MAX {
                        break;
                    }
                    continue;
                }
            },
        };
        if banks[index].bic() != p.debtor_agent {
            errors.push(fail(format!(
                "the signing certificate {} is for {}, not the debtor agent {}",
                files.0.display(),
                banks[index].bic(),
                p.debtor_agent
            )));
            continue;
        }
        bank_of.push(index);
    }
    if errors.is_empty() {
        Ok((banks, bank_of))
    } else {
        Err(errors)
    }
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

/// Sends one line's payment and follows it to an outcome. Never fails: a call that gets no
/// answer before anything was submitted is an ERROR outcome; a submission whose fate is
/// unknown is PDNG.
async fn send_line(shared: &Shared, payment: &Payment, bank: &Bank) -> LineResult {
    let started = Instant::now();
    let mut result = LineResult {
        line: payment.line,
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        route: route(payment),
        expect: payment.expect,
        stage: "quote",
        ..LineResult::default()
    };
    let key = (payment.sending.clone(), payment.debtor_agent.clone());
    let Some(node) = shared.nodes.get(&key) else {
        return errored(result, started, format!("no node for {}", payment.sending));
    };
    let mut node = node.clone();
    let participant = Participant::new(shared.mra.as_ref(), &payment.sending);
    let (direct, mut receipt) =
        match pay_line(&participant, &mut node, payment, bank, &mut result).await {
            Ok(answer) => answer,
            Err(detail) => return errored(result, started, detail),
        };
    let direct_status = (
        status_name(direct.transaction_status()),
        direct.status_reason_code.clone(),
    );
    let mut report = direct.clone();
    // A DUPL refusal whose payment could not be asked about yet: its outcome is unknown.
    let mut dupl_unasked = false;
    // A known UETR: DUPL. If it is this very payment, report its outcome (decided earlier).
    if direct_status.0 == "RJCT" && direct_status.1 == "DUPL" {
        match status(&mut node.payments, payment).await {
            Ok(earlier) if payment.is_same_as(&earlier) => {
                report = earlier;
                receipt = None;
                result.earlier = true;
                result.resubmission_answer =
                    Some(status::with_reason(direct_status.0, &direct_status.1));
            }
            // Another payment holds the UETR: the refusal is the outcome.
            Ok(_) => {}
            // The refusal says nothing of the payment, which may have settled: unknown is
            // PDNG, as for a submission without an answer (issue 11, defect 9), or a bank that
            // read RJCT might pay again.
            Err(asked) => {
                report = dupl_in_doubt(payment, &asked);
                receipt = None;
                dupl_unasked = true;
            }
        }
    }
    if report.transaction_status() == pb::TransactionStatus::Pdng {
        let deadline = Instant::now() + shared.pending_wait;
        while Instant::now() < deadline {
            tokio::time::sleep(PENDING_POLL).await;
            if let Ok(now) = status(&mut node.payments, payment).await {
                if dupl_unasked {
                    dupl_unasked = false;
                    if !payment.is_same_as(&now) {
                        report = direct;
                        break;
                    }
                    result.earlier = true;
                    result.resubmission_answer =
                        Some(status::with_reason(direct_status.0, &direct_status.1));
                }
                report = now;
                receipt = None;
                result.stage = "status";
                if report.transaction_status() != pb::TransactionStatus::Pdng {
                    break;
                }
            }
        }
    }
    result.latency = started.elapsed();
    result.status = status_name(report.transaction_status()).to_owned();
    result.reason = report.status_reason_code.clone();
    result.detail = report.status_reason_detail.clone();
    result.decided_by = report.decided_by.clone();
    result.debited = report
        .interbank_settlement_amount
        .as_ref()
        .map(|a| amount_text(Some(a)));
    result.credited = report
        .credited_amount
        .as_ref()
        .map(|a| amount_text(Some(a)));
    if report.transaction_status() == pb::TransactionStatus::Acsc {
        // The receipt the flow verified, or, for a report asked for since, verified now.
        let verified = match receipt {
            Some(verified) => verified,
            None => match client::now() {
                Ok(now) => participant.verify_receipt(&report, now),
                Err(e) => {
                    result.receipt_problem = Some(format!("{e:#}"));
                    Ok(None)
                }
            },
        };
        keep_receipt(&report, verified, &mut result);
    }
    result.met = match (payment.expect, result.status.as_str()) {
        (_, "PDNG") | (None, _) => None,
        (Some(expect), status) => Some(
            result.receipt_problem.is_none()
                && (expect.is_met_by(status, &result.reason)
                    || (result.earlier && expect.is_met_by(direct_status.0, &direct_status.1))),
        ),
    };
    result
}

fn errored(mut result: LineResult, started: Instant, detail: String) -> LineResult {
    result.latency = started.elapsed();
    result.status = "ERROR".to_owned();
    result.detail = detail;
    result.met = result.expect.map(|_| false);
    result
}

/// What the flow's receipt check found: `None` when the report is not the flow's own.
type ReceiptCheck = Option<Result<Option<VerifiedReceipt>, ReceiptError>>;

/// Pays the line through the participant flow (quote, verify, check, sign, submit, verify the
/// receipt). A refusal with a reason code is a report (RJCT); a submission that got no answer
/// is a report too, asked for or PDNG when asking fails; `Err` is a call that got no answer
/// before anything was submitted or a quote that cannot be trusted (nothing signed).
async fn pay_line(
    participant: &Participant<'_>,
    node: &mut NodeClient,
    payment: &Payment,
    bank: &Bank,
    result: &mut LineResult,
) -> Result<(pb::PaymentStatusReport, ReceiptCheck), String> {
    let now = client::now().map_err(|e| format!("{e:#}"))?;
    let request = replay::request(payment);
    match participant
        .pay(&mut node.payments, &bank.identity, &request, now)
        .await
    {
        Ok(paid) => {
            result.stage = paid.step().as_str();
            match paid.answer {
                Answer::Report(report) => Ok((*report, Some(paid.receipt))),
                Answer::Refused(refusal) => Ok((refused(payment, &refusal), None)),
            }
        }
        Err(PayError::Call {
            step: Step::Submit,
            status: call_status,
        }) => {
            // No answer: the node may still have taken it. Ask before saying anything.
            result.stage = "submit";
            match status(&mut node.payments, payment).await {
                Ok(report) => {
                    result.stage = "status";
                    Ok((report, None))
                }
                Err(asked) => Ok((in_doubt(payment, &call_status, &asked), None)),
            }
        }
        Err(error) => Err(format!("{:#}", payer::pay_error(&node.url, error))),
    }
}

/// A submission that got no answer and whose status could not be learnt either, as a PDNG
/// report: unknown is reported as unknown (issue 11, defect 9). The node may have taken the
/// payment (it may even have settled, its answer lost), and even a status query answered "not
/// found" does not prove otherwise while the node's submission task may still be running. A
/// bank that paid again under a new UETR on a false "nothing was sent" would pay twice.
fn in_doubt(
    payment: &Payment,
    submit: &tonic::Status,
    asked: &tonic::Status,
) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Pdng.into(),
        status_reason_detail: format!(
            "SubmitPayment got no answer ({:?}: {}) and the status query failed ({:?}: {}): \
             the node may have taken the payment; ask again with `kakehashi status {}`, or \
             replay the file again (its UETRs are fixed, so nothing is paid twice)",
            submit.code(),
            submit.message(),
            asked.code(),
            asked.message(),
            payment.uetr
        ),
        interbank_settlement_amount: Some(payment.amount.clone()),
        ..pb::PaymentStatusReport::default()
    }
}

/// A resubmission refused DUPL whose payment's status could not be asked, as a PDNG report:
/// the UETR is known to the node, but whether its payment settled is not.
fn dupl_in_doubt(payment: &Payment, asked: &tonic::Status) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Pdng.into(),
        status_reason_detail: format!(
            "the node answered DUPL (it knows the UETR from an earlier submission) and the \
             status query failed ({:?}: {}): the payment's outcome is unknown; ask again with \
             `kakehashi status {}`, or replay the file again",
            asked.code(),
            asked.message(),
            payment.uetr
        ),
        interbank_settlement_amount: Some(payment.amount.clone()),
        ..pb::PaymentStatusReport::default()
    }
}

/// A call refused with a reason code, as a rejection report.
fn refused(payment: &Payment, refusal: &Refusal) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Rjct.into(),
        status_reason_code: refusal.code.clone(),
        // The message repeats the code ("RR04: source_amount: ..."); the report carries it apart.
        status_reason_detail: refusal.detail().to_owned(),
        interbank_settlement_amount: Some(payment.amount.clone()),
        decided_by: payment.sending.clone(),
        ..pb::PaymentStatusReport::default()
    }
}

async fn status(
    node: &mut PaymentsClient<Channel>,
    payment: &Payment,
) -> Result<pb::PaymentStatusReport, tonic::Status> {
    node.get_payment_status(pb::PaymentStatusRequest {
        uetr: payment.uetr.to_string(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Keeps a settled payment's receipt, and what is wrong with it when it did not verify (as
/// the debtor's jurisdiction).
fn keep_receipt(
    report: &pb::PaymentStatusReport,
    verified: Result<Option<VerifiedReceipt>, ReceiptError>,
    result: &mut LineResult,
) {
    if let Err(problem) = verified {
        result.receipt_problem = Some(problem.to_string());
    }
    result.receipt = (report.receipt.clone())
        .and_then(|signed| ReceiptFile::new(signed).ok())
        .and_then(|file| serde_json::from_str(&file.to_json()).ok());
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
