//! A first throughput measure of the relay (issue 4, "Targets"): JP→SG payments through a JP
//! and an SG node started in this process from the devnet configurations, on free loopback
//! ports, with real mutual TLS and real sled ledgers in a temporary directory.
//!
//! ```text
//! cargo run --release -p kakehashi-node --example load -- --payments 2000 --concurrency 64
//! cargo run --release -p kakehashi-node --example load -- --payments 2000 --concurrency 64 --stream
//! ```
//!
//! Every payment is a GetQuote and a SubmitPayment (or one item of the bidirectional
//! SubmitPayments stream with `--stream`); an ACSC answer means the payment is durable on both
//! ledgers. The figures printed: ACSC payments per second (wall clock from the first submission
//! to the last answer), latency percentiles of the submission alone and of quote + submission,
//! the count of answers by status and reason. At the end the balances of every account the run
//! touched are compared with what the settled payments must have moved, and the process exits
//! non-zero on any difference, any reservation left pending, or any payment not ACSC.
//!
//! The client, both nodes and their disks share the machine: the figures are an end-to-end
//! measure of one box, not of a node alone.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use kakehashi_node::money;
use kakehashi_node::node::RunningNode;
use kakehashi_proto::v1 as pb;
use kakehashi_proto::v1::payments_client::PaymentsClient;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use support::{Bank, Payment, amount, bank, client, instruction, new_uetr, start};

/// JPY per payment: small enough that the devnet balances and limits never refuse it, and a
/// whole number of yen whose SGD figure (1000 × 0.0087 × 0.9975 = 8.67825) shows the floor.
const PAYMENT_JPY: u128 = 1_000;

/// Largest number of instructions one SubmitPayments stream has in flight on the node
/// (service.rs `STREAM_CONCURRENCY`); more only queue in the stream.
const STREAM_WINDOW_MAX: usize = 64;

#[derive(Parser, Debug)]
#[command(about = "JP→SG payments through two in-process nodes: throughput, latency, balances")]
struct Args {
    /// Payments to send.
    #[arg(long, default_value_t = 2_000)]
    payments: usize,
    /// Payments in flight at once (participants for unary calls, window for --stream).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Use the bidirectional SubmitPayments stream instead of one SubmitPayment per payment.
    #[arg(long)]
    stream: bool,
    /// Streams to spread the window over with --stream (default: enough that none exceeds
    /// the node's per-stream window of 64).
    #[arg(long)]
    streams: Option<usize>,
    /// After the run, time the signature and certificate checks a payment needs (one call
    /// each, repeated) to show what the nodes' CPU goes to.
    #[arg(long)]
    crypto_costs: bool,
    /// Do not fund the debtor accounts first (the devnet balances cover 2,000 payments of
    /// 1,000 JPY per debtor).
    #[arg(long)]
    no_fund: bool,
}

/// A debtor at JP and the creditor at SG it pays: participant `i` uses route `i % 4`.
struct Route {
    bank: Bank,
    debtor_account: u128,
    debtor_name: &'static str,
    creditor_bic: &'static str,
    creditor_account: u128,
    creditor_name: &'static str,
}

fn routes() -> Vec<Route> {
    let route =
        |bic, debtor_account, debtor_name, creditor_bic, creditor_account, creditor_name| Route {
            bank: bank("jp", bic),
            debtor_account,
            debtor_name,
            creditor_bic,
            creditor_account,
            creditor_name,
        };
    vec![
        route(
            "KKHAJPJ0",
            1001,
            "Aoki Kenji",
            "KKHASGS0",
            2001,
            "Tan Wei Ming",
        ),
        route(
            "KKHAJPJ0",
            1002,
            "Sato Trading KK",
            "KKHASGS0",
            2002,
            "Lim Logistics Pte Ltd",
        ),
        route(
            "KKHBJPJ0",
            1101,
            "Suzuki Yui",
            "KKHBSGS0",
            2101,
            "Nur Aisyah",
        ),
        route(
            "KKHBJPJ0",
            1102,
            "Tanaka Hiroshi",
            "KKHBSGS0",
            2102,
            "Raj Kumar",
        ),
    ]
}

/// JP's corridor account for SG, and SG's liquidity account for JP (devnet configurations).
const JP_CORRIDOR_SG: u128 = 9002;
const SG_LIQUIDITY_JP: u128 = 9103;

/// What one payment came back with.
struct Outcome {
    route: usize,
    status: pb::TransactionStatus,
    reason: String,
    credited_minor: u128,
    submit: Duration,
    total: Duration,
}

#[derive(Default)]
struct Results {
    outcomes: Vec<Outcome>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.payments == 0 || args.concurrency == 0 {
        bail!("--payments and --concurrency must be at least 1");
    }
    let dir = tempfile::tempdir().context("temporary data directory")?;
    let ports = support::Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    let sg = start("SG", dir.path(), &ports).await;
    let routes = Arc::new(routes());

    if !args.no_fund {
        // Enough that every route could carry every payment.
        let mut operator = client(jp.public_addr, "JP", Some("jp/node/tls")).await;
        let need = (args.payments as u128) * PAYMENT_JPY;
        for route in routes.iter() {
            operator
                .fund_account(pb::FundAccountRequest {
                    account: route.debtor_account.to_string(),
                    amount: Some(amount("JPY", &need.to_string())),
                })
                .await
                .with_context(|| format!("funding {}", route.debtor_account))?;
        }
    }

    let mut jp_view = client(jp.public_addr, "JP", None).await;
    let mut sg_view = client(sg.public_addr, "SG", None).await;
    let jp_before = balances(&mut jp_view).await?;
    let sg_before = balances(&mut sg_view).await?;

    let mode = if args.stream {
        let streams = args
            .streams
            .unwrap_or_else(|| args.concurrency.div_ceil(STREAM_WINDOW_MAX))
            .max(1);
        format!("stream ({streams} stream(s))")
    } else {
        "unary".to_owned()
    };
    println!(
        "JP→SG: {} payments of {PAYMENT_JPY} JPY, concurrency {}, {mode}",
        args.payments, args.concurrency
    );
    let (results, wall) = if args.stream {
        run_stream(&args, &jp, &routes).await?
    } else {
        run_unary(&args, &jp, &routes).await?
    };

    let jp_after = balances(&mut jp_view).await?;
    let sg_after = balances(&mut sg_view).await?;
    let ok = report(&results, wall)
        & check_balances(
            &results,
            &routes,
            (&jp_before, &jp_after),
            (&sg_before, &sg_after),
        );
    if args.crypto_costs {
        crypto_costs(&mut jp_view, &routes[0], (&jp, &sg)).await?;
    }
    jp.shutdown().await.context("JP shutdown")?;
    sg.shutdown().await.context("SG shutdown")?;
    if ok {
        println!("balances: every account moved by exactly the settled sum; nothing pending");
        Ok(())
    } else {
        Err(anyhow!(
            "the run did not settle every payment exactly (see above)"
        ))
    }
}

/// Builds and signs payment `i` after quoting it.
async fn quoted_instruction(
    quotes: &mut PaymentsClient<Channel>,
    route: &Route,
) -> anyhow::Result<pb::Signed> {
    let source = amount("JPY", &PAYMENT_JPY.to_string());
    let quote = quotes
        .get_quote(pb::QuoteRequest {
            counterparty_jurisdiction: "SG".into(),
            source_amount: Some(source.clone()),
        })
        .await
        .context("GetQuote")?
        .into_inner();
    Ok(instruction(
        &Payment {
            bank: &route.bank,
            debtor_account: route.debtor_account,
            debtor_name: route.debtor_name,
            creditor_bic: route.creditor_bic,
            creditor_account: route.creditor_account,
            creditor_name: route.creditor_name,
            quote,
            amount: source,
        },
        new_uetr(),
    ))
}

fn outcome(
    route: usize,
    report: &pb::PaymentStatusReport,
    submit: Duration,
    total: Duration,
) -> Outcome {
    let credited_minor = report
        .credited_amount
        .as_ref()
        .and_then(|a| money::parse_amount(a).ok())
        .map_or(0, |(_, minor)| minor);
    Outcome {
        route,
        status: report.transaction_status(),
        reason: report.status_reason_code.clone(),
        credited_minor,
        submit,
        total,
    }
}

/// `concurrency` participants, each on its own TLS connection, each sending its share of the
/// payments one after the other (GetQuote, then SubmitPayment).
async fn run_unary(
    args: &Args,
    jp: &RunningNode,
    routes: &Arc<Vec<Route>>,
) -> anyhow::Result<(Results, Duration)> {
    let mut clients = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        clients.push(client(jp.public_addr, "JP", None).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (participant, mut client) in clients.into_iter().enumerate() {
        let share = (args.payments + args.concurrency - 1 - participant) / args.concurrency;
        let routes = Arc::clone(routes);
        tasks.push(tokio::spawn(async move {
            let route = participant % routes.len();
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                let t0 = Instant::now();
                let signed = quoted_instruction(&mut client, &routes[route]).await?;
                let t1 = Instant::now();
                let report = client
                    .submit_payment(pb::SubmitPaymentRequest {
                        instruction: Some(signed),
                    })
                    .await
                    .context("SubmitPayment")?
                    .into_inner();
                let t2 = Instant::now();
                out.push(outcome(route, &report, t2 - t1, t2 - t0));
            }
            anyhow::Ok(out)
        }));
    }
    let mut results = Results::default();
    for task in tasks {
        results
            .outcomes
            .extend(task.await.context("participant task")??);
    }
    Ok((results, started.elapsed()))
}

/// In flight on one stream: when the quote was asked for, when the instruction was sent, which
/// route, and the window slot it holds.
type InFlight = HashMap<String, (Instant, Instant, usize, OwnedSemaphorePermit)>;

/// `concurrency` payments in flight over `streams` bidirectional streams (round robin); quotes
/// come over one unary connection per stream.
async fn run_stream(
    args: &Args,
    jp: &RunningNode,
    routes: &Arc<Vec<Route>>,
) -> anyhow::Result<(Results, Duration)> {
    let streams = args
        .streams
        .unwrap_or_else(|| args.concurrency.div_ceil(STREAM_WINDOW_MAX))
        .max(1);
    let window = Arc::new(Semaphore::new(args.concurrency));
    let mut senders = Vec::new();
    let mut quoters = Vec::new();
    let mut readers = Vec::new();
    let started = Instant::now();
    for _ in 0..streams {
        let mut submitter = client(jp.public_addr, "JP", None).await;
        quoters.push(client(jp.public_addr, "JP", None).await);
        let (tx, rx) = mpsc::channel::<pb::SubmitPaymentRequest>(args.concurrency);
        let mut answers = submitter
            .submit_payments(ReceiverStream::new(rx))
            .await
            .context("SubmitPayments")?
            .into_inner();
        let in_flight: Arc<Mutex<InFlight>> = Arc::default();
        senders.push((tx, Arc::clone(&in_flight)));
        readers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(answer) = answers.next().await {
                let report = answer.context("SubmitPayments answer")?;
                let t2 = Instant::now();
                let entry = in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&report.uetr);
                let Some((t0, t1, route, permit)) = entry else {
                    bail!("an answer for a UETR not in flight: {report:?}");
                };
                out.push(outcome(route, &report, t2 - t1, t2 - t0));
                drop(permit);
            }
            anyhow::Ok(out)
        }));
    }
    let mut producers = Vec::new();
    for i in 0..args.payments {
        let permit = Arc::clone(&window)
            .acquire_owned()
            .await
            .context("window closed")?;
        let (tx, in_flight) = senders[i % streams].clone();
        let mut quoter = quoters[i % streams].clone();
        let routes = Arc::clone(routes);
        producers.push(tokio::spawn(async move {
            let route = i % routes.len();
            let t0 = Instant::now();
            let signed = quoted_instruction(&mut quoter, &routes[route]).await?;
            let uetr = uetr_of(&signed)?;
            let t1 = Instant::now();
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(uetr, (t0, t1, route, permit));
            tx.send(pb::SubmitPaymentRequest {
                instruction: Some(signed),
            })
            .await
            .map_err(|_| anyhow!("the stream closed early"))?;
            anyhow::Ok(())
        }));
    }
    for producer in producers {
        producer.await.context("producer task")??;
    }
    // Closing every sender ends the request streams; the node then finishes what it accepted
    // and ends each answer stream.
    drop(senders);
    let mut results = Results::default();
    for reader in readers {
        results
            .outcomes
            .extend(reader.await.context("stream reader")??);
    }
    Ok((results, started.elapsed()))
}

/// The UETR an instruction carries (the stream's answers are matched by it).
fn uetr_of(signed: &pb::Signed) -> anyhow::Result<String> {
    pb::CreditTransferInstruction::decode(signed.payload.as_slice())
        .map(|body| body.uetr)
        .context("decoding our own instruction")
}

/// Posted balance and pending debits (minor units) by account.
type Balances = BTreeMap<u128, (u128, u128)>;

/// Posted balance and pending debits (minor units) of every account of a node.
async fn balances(client: &mut PaymentsClient<Channel>) -> anyhow::Result<Balances> {
    let listed = client
        .get_balances(pb::BalancesRequest::default())
        .await
        .context("GetBalances")?
        .into_inner()
        .balances;
    let minor = |a: Option<&pb::ActiveCurrencyAndAmount>| -> anyhow::Result<u128> {
        let a = a.ok_or_else(|| anyhow!("a balance without an amount"))?;
        // The funding account is the only one that goes negative; it is not checked.
        if a.value.starts_with('-') {
            return Ok(0);
        }
        money::parse_amount(a)
            .map(|(_, m)| m)
            .map_err(|r| anyhow!("balance {a:?}: {r}"))
    };
    let mut out = BTreeMap::new();
    for b in listed {
        let id: u128 = b.account.parse().context("account id")?;
        out.insert(
            id,
            (
                minor(b.posted_balance.as_ref())?,
                minor(b.pending_debits.as_ref())?,
            ),
        );
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest value with at least p of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Prints the figures; false when a payment did not settle.
fn report(results: &Results, wall: Duration) -> bool {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for o in &results.outcomes {
        let key = if o.reason.is_empty() {
            status_name(o.status).to_owned()
        } else {
            format!("{} {}", status_name(o.status), o.reason)
        };
        *by_status.entry(key).or_default() += 1;
    }
    let acsc = results
        .outcomes
        .iter()
        .filter(|o| o.status == pb::TransactionStatus::Acsc)
        .count();
    println!(
        "wall {:.2} s, {acsc} ACSC → {:.1} payments/s",
        wall.as_secs_f64(),
        acsc as f64 / wall.as_secs_f64()
    );
    for (name, pick) in [
        (
            "submit",
            (|o: &Outcome| o.submit) as fn(&Outcome) -> Duration,
        ),
        ("quote+submit", |o: &Outcome| o.total),
    ] {
        let mut v: Vec<Duration> = results.outcomes.iter().map(pick).collect();
        v.sort();
        println!(
            "{name:>13} ms: p50 {} p90 {} p99 {} max {}",
            ms(percentile(&v, 50.0)),
            ms(percentile(&v, 90.0)),
            ms(percentile(&v, 99.0)),
            ms(percentile(&v, 100.0)),
        );
    }
    println!("status: {by_status:?}");
    acsc == results.outcomes.len()
}

/// Compares every touched account with what the settled payments must have moved.
fn check_balances(
    results: &Results,
    routes: &[Route],
    jp: (&Balances, &Balances),
    sg: (&Balances, &Balances),
) -> bool {
    let mut debited = vec![0u128; routes.len()];
    let mut credited = vec![0u128; routes.len()];
    for o in results
        .outcomes
        .iter()
        .filter(|o| o.status == pb::TransactionStatus::Acsc)
    {
        debited[o.route] += PAYMENT_JPY;
        credited[o.route] += o.credited_minor;
    }
    let total_debited: u128 = debited.iter().sum();
    let total_credited: u128 = credited.iter().sum();
    let mut ok = true;
    let mut expect =
        |node: &str, before: &Balances, after: &Balances, account: u128, delta: i128| {
            let b = before.get(&account).map_or(0, |x| x.0) as i128;
            let a = after.get(&account).map_or(0, |x| x.0) as i128;
            if a - b != delta {
                eprintln!(
                    "{node} {account}: moved {} minor units, expected {delta}",
                    a - b
                );
                ok = false;
            }
        };
    for (i, route) in routes.iter().enumerate() {
        expect(
            "JP",
            jp.0,
            jp.1,
            route.debtor_account,
            -(debited[i] as i128),
        );
        expect(
            "SG",
            sg.0,
            sg.1,
            route.creditor_account,
            credited[i] as i128,
        );
    }
    expect("JP", jp.0, jp.1, JP_CORRIDOR_SG, total_debited as i128);
    expect("SG", sg.0, sg.1, SG_LIQUIDITY_JP, -(total_credited as i128));
    for (node, after) in [("JP", jp.1), ("SG", sg.1)] {
        for (account, (_, pending)) in after {
            if *pending != 0 {
                eprintln!("{node} {account}: {pending} minor units still reserved");
                ok = false;
            }
        }
    }
    println!(
        "moved: {total_debited} JPY from JP debtors to the SG corridor; {}.{:02} SGD from SG \
         liquidity to creditors",
        total_credited / 100,
        total_credited % 100
    );
    ok
}

/// Repetitions of each timed check in `--crypto-costs`.
const CRYPTO_REPEAT: u32 = 300;

/// Times, per call, the checks the sender (relying party JP) and the receiver (SG) run on one
/// payment: the instruction's signature and chain, the quote's, and the receipt's.
async fn crypto_costs(
    jp: &mut PaymentsClient<Channel>,
    route: &Route,
    nodes: (&RunningNode, &RunningNode),
) -> anyhow::Result<()> {
    use kakehashi_node::{quote, receipt, signed};
    use kakehashi_pki::Purpose;
    use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;

    let instruction = quoted_instruction(jp, route).await?;
    let body = pb::CreditTransferInstruction::decode(instruction.payload.as_slice())
        .context("our own instruction")?;
    let quote = body.quote.clone().context("a quote in the instruction")?;
    let report = jp
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(instruction.clone()),
        })
        .await
        .context("SubmitPayment")?
        .into_inner();
    let receipt = report.receipt.clone().context("a receipt")?;
    // Every store write of a payment rewrites its whole record (JSON, bytes as number arrays).
    let uetr =
        kakehashi_node::instruction::Uetr::parse(&report.uetr).map_err(|r| anyhow!("UETR: {r}"))?;
    let outbound = nodes
        .0
        .engine()
        .store()
        .outbound(&uetr)?
        .context("JP's record")?;
    let inbound = nodes
        .1
        .engine()
        .store()
        .inbound(&uetr)?
        .context("SG's record")?;
    println!(
        "store records: JP outbound {} bytes, SG inbound {} bytes (signed instruction {} bytes)",
        serde_json::to_vec(&outbound)?.len(),
        serde_json::to_vec(&inbound)?.len(),
        instruction.encoded_len()
    );
    // The recovery loop scans every outbound record every 2 s (node.rs RECOVERY_INTERVAL).
    let started = Instant::now();
    let unresolved = nodes.0.engine().store().unresolved_outbound()?;
    println!(
        "JP recovery scan: {:.1} ms for the store as it is now ({} unresolved)",
        started.elapsed().as_secs_f64() * 1e3,
        unresolved.len()
    );
    let mra = support::mra();
    let t = support::now();
    let time = |name: &str, f: &dyn Fn() -> bool| -> anyhow::Result<()> {
        let started = Instant::now();
        for _ in 0..CRYPTO_REPEAT {
            if !f() {
                bail!("{name}: the check failed");
            }
        }
        let per = started.elapsed() / CRYPTO_REPEAT;
        println!("{name:>40}: {:.0} µs", per.as_secs_f64() * 1e6);
        Ok(())
    };
    let key = route.bank.key.verifying_key();
    let message = [SIGNING_DOMAIN_INSTRUCTION, instruction.payload.as_slice()].concat();
    let signature =
        ed25519_dalek::Signature::from_slice(&instruction.signature).context("signature length")?;
    println!("CPU per check ({CRYPTO_REPEAT} calls each, this process, loaded machine):");
    time("Ed25519 verify_strict alone", &|| {
        key.verify_strict(&message, &signature).is_ok()
    })?;
    for relying in ["JP", "SG"] {
        time(
            &format!("instruction signature + chain ({relying})"),
            &|| {
                signed::verify(
                    &instruction,
                    SIGNING_DOMAIN_INSTRUCTION,
                    &mra,
                    relying,
                    Purpose::PaymentSigning,
                    t,
                    &[],
                )
                .is_ok()
            },
        )?;
        time(&format!("quote signature + chain ({relying})"), &|| {
            quote::verify_quote(&quote, &mra, relying, t, 30, &[]).is_ok()
        })?;
    }
    time("receipt signature + chain (JP)", &|| {
        receipt::verify_receipt(&receipt, &mra, "JP", t).is_ok()
    })?;
    Ok(())
}

/// The pacs.002 code of a status (ACSC, RJCT, PDNG).
fn status_name(status: pb::TransactionStatus) -> &'static str {
    let name = status.as_str_name();
    name.strip_prefix("TRANSACTION_STATUS_").unwrap_or(name)
}
