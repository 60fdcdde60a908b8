//! `kakehashi bench`: the relay benchmark. Starts the devnet's JP and SG nodes in this process
//! on free loopback ports (real mutual TLS, real sled ledgers in a fresh temporary directory or
//! `--data-dir`), sends JP→SG payments through the public API (`kakehashi_ops::load`), and
//! prints settled payments per second, SubmitPayment latency percentiles, the answers by
//! status and reason, and whether every balance moved by exactly the settled sums.
//!
//! With `--report FILE` it also writes an HTML report (crate::report): throughput over the run,
//! the latency histogram, the machine and the command line.
//!
//! Exit 0 when every payment settled and the books are exact, 1 otherwise, 2 when the nodes
//! could not start or the options are wrong. The figures measure this machine end to end (the
//! client and both nodes share it); they are not asserted anywhere.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kakehashi_node::config::{
    Config, POSTGRES_POOL_SIZE_DEFAULT, PostgresStorage, Storage, StorageBackend,
};
use kakehashi_ops::load::ceiling::{self, Ceiling, Operation};
use kakehashi_ops::load::cpu::{self, CpuSplit, SplitInputs};
use kakehashi_ops::load::summary::Histogram;
use kakehashi_ops::load::{self, LoadOptions, LoadReport};
use kakehashi_protocol::money;

use crate::client;
use crate::configs::{find_configs, load_config};
use crate::output::write_stdout;
use crate::progress::Progress;
use crate::report;

/// Arguments of `kakehashi bench`.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Payments to send.
    #[arg(
        long,
        default_value_t = 2_000,
        value_name = "N",
        conflicts_with = "duration"
    )]
    payments: usize,
    /// Run for SECS seconds instead of for a count of payments: nothing is sent after them,
    /// what is in flight is still answered.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Send N payments per second on a fixed schedule (open loop; latency counts from when
    /// each was due) instead of as fast as the window allows.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Payments in flight at once (participants with unary calls, the window with --stream).
    #[arg(long, default_value_t = 16, value_name = "C")]
    concurrency: usize,
    /// Use the bidirectional SubmitPayments stream instead of one SubmitPayment per payment.
    #[arg(long)]
    stream: bool,
    /// Streams to spread the window over with --stream (default: one per 64 in flight).
    #[arg(long, value_name = "S", requires = "stream")]
    streams: Option<usize>,
    /// Keep the nodes' ledgers here (DIR/jp, DIR/sg) instead of a fresh temporary directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep both nodes' books in this PostgreSQL database (a URL, e.g.
    /// `postgresql://kakehashi@/books?host=/run/postgresql`) instead of sled: each node in a
    /// schema of its own made for this run (`kakehashi_bench_<pid>_jp`, …) and dropped after it.
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// The devnet configurations (jp.toml, sg.toml; default: crates/node/devnet).
    #[arg(long, value_name = "DIR")]
    configs: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report to FILE: the figures, throughput over the run
    /// and the latency histogram as charts, the machine and the command line.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    // The bench's own runtime: its threads carry a name that tells them from the nodes'
    // storage threads, which the CPU split counts apart (`load::cpu`).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(cpu::RUNTIME_THREAD_NAME)
        .build()
        .context("cannot start the async runtime")?
        .block_on(bench(args))
}

/// `--duration` as a duration.
fn duration(secs: Option<f64>) -> anyhow::Result<Option<Duration>> {
    secs.map(|s| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| anyhow::anyhow!("--duration must be a number of seconds, not {s}"))
    })
    .transpose()
}

/// Puts `configs`' books in schemas of their own in the database at `url`, named for this
/// process (so concurrent runs never share one); returns their options, to drop them after.
fn on_postgres<const N: usize>(
    url: &str,
    configs: [&mut Config; N],
) -> Vec<kakehashi_ledger_pg::Options> {
    configs
        .into_iter()
        .map(|config| {
            let postgres = PostgresStorage {
                url: url.to_owned(),
                schema: format!(
                    "kakehashi_bench_{}_{}",
                    std::process::id(),
                    config.jurisdiction.to_ascii_lowercase()
                ),
                pool_size: POSTGRES_POOL_SIZE_DEFAULT,
            };
            let options = kakehashi_node::node::postgres_options(&postgres);
            config.storage = Storage {
                backend: StorageBackend::Postgres(postgres),
                ..Storage::default()
            };
            options
        })
        .collect()
}

/// Drops the schemas of a run (see [`on_postgres`]); a schema that cannot be dropped is named
/// on stderr, for the operator to remove.
async fn drop_schemas(schemas: Option<&[kakehashi_ledger_pg::Options]>) {
    for options in schemas.unwrap_or_default() {
        if let Err(error) = kakehashi_ledger_pg::drop_schema(options).await {
            eprintln!(
                "kakehashi bench: schema {} was left in the database: {error}",
                options.schema
            );
        }
    }
}

async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        payments: args.payments,
        concurrency: args.concurrency,
        stream: args.stream,
        streams: args.streams,
        duration: duration(args.duration)?,
        rate: args.rate,
        ..LoadOptions::default()
    };
    let dir = find_configs(args.configs.as_deref(), "--configs DIR")?;
    let mut sender = load_config(&dir.join("jp.toml"))?;
    let mut receiver = load_config(&dir.join("sg.toml"))?;
    // Every client connection of the run comes from this process, one loopback address: the
    // per-source cap (64 by default, there to keep one address from taking a listener) would
    // refuse the 65th of a run at concurrency 64 plus the operator's connections. The listener's
    // total cap still applies.
    for config in [&mut sender, &mut receiver] {
        config.limits.connections_per_source_max = config.limits.connections_max;
    }
    let mra = Arc::new(client::load_mra(&sender.mra)?);
    let currency = mra
        .jurisdiction(&sender.jurisdiction)
        .map(|j| j.currency.clone())
        .unwrap_or_default();
    let certs = sender
        .mra
        .parent()
        .map(std::path::Path::to_path_buf)
        .context("the agreement path has no directory")?;
    let routes = Arc::new(load::routes(&sender, &receiver, &certs)?);
    let schemas = args
        .storage
        .as_ref()
        .map(|url| on_postgres(url, [&mut sender, &mut receiver]));
    let temporary;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("kakehashi-bench-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            temporary.path().to_owned()
        }
    };
    let pair = load::start_pair(sender, receiver, &data_dir).await;
    let pair = match pair {
        Ok(pair) => pair,
        Err(error) => {
            drop_schemas(schemas.as_deref()).await;
            return Err(error.into());
        }
    };
    let books = match &schemas {
        Some(schemas) => format!(
            "PostgreSQL schemas {}",
            schemas
                .iter()
                .map(|s| s.schema.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        None => format!("sled under {}", data_dir.display()),
    };
    let mode = if options.stream {
        format!(
            "SubmitPayments stream ({} stream(s))",
            options.stream_count()
        )
    } else {
        "unary SubmitPayment".to_owned()
    };
    let how_many = plan(&options);
    if !args.json {
        write_stdout(&format!(
            "kakehashi bench: {how_many}, {}→{}, each {}, through two in-process nodes (mutual \
             TLS, {books}), concurrency {}, {mode}\n",
            pair.sender_config.jurisdiction,
            pair.receiver_config.jurisdiction,
            format_args!("{} {currency}", options.amount),
            options.concurrency
        ))?;
    }
    let progress = Progress::start(
        u64::try_from(options.payment_bound()).unwrap_or(u64::MAX),
        "payments",
        "bench",
    );
    let tick = progress.clone();
    let report = load::run(&pair, routes, mra, &options, Arc::new(move || tick.inc())).await;
    progress.finish();
    let route = format!(
        "{} → {}",
        pair.sender_config.jurisdiction, pair.receiver_config.jurisdiction
    );
    let shutdown = pair.shutdown().await;
    drop_schemas(schemas.as_deref()).await;
    let report = report?;
    shutdown?;
    // Timed right after the run, in this process, on the cores it had; the nodes are stopped,
    // so nothing else of the bench competes with the measurement.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let ceiling = ceiling::measure(&report.sizes, cores);
    let split = split(&report, ceiling.as_ref(), options.stream);
    let text = if args.json {
        let mut value = json(&report, ceiling.as_ref(), split.as_ref(), &options, &mode);
        value["storage"] = serde_json::json!(if schemas.is_some() {
            "postgres"
        } else {
            "sled"
        });
        let mut text = serde_json::to_string_pretty(&value)?;
        text.push('\n');
        text
    } else {
        human(&report, ceiling.as_ref(), split.as_ref(), options.stream)
    };
    write_stdout(&text)?;
    if let Some(path) = &args.report {
        let html = report::bench_html(&report::BenchRun {
            report: &report,
            route,
            settings: vec![
                ("payments", how_many.clone()),
                ("concurrency", options.concurrency.to_string()),
                ("mode", mode.clone()),
                ("amount", format!("{} {currency}", options.amount)),
                ("data directory", data_dir.display().to_string()),
            ],
            latencies: vec![
                ("SubmitPayment", percentiles(report.submit_latency())),
                (total_span(&report), percentiles(report.total_latency())),
            ],
            moved: moved_text(&report),
            crypto_ceiling_per_sec: ceiling.as_ref().and_then(Ceiling::per_second),
            split: split.as_ref(),
            machine: report::Machine::this(),
            command: report::command_line(),
            generated: report::generated_at(),
        })?;
        report::write(path, &html)?;
    }
    Ok(if report.is_exact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the run sends, as the header and the report's settings say it.
fn plan(options: &LoadOptions) -> String {
    let count = match options.duration {
        Some(d) => format!("{} s of payments", d.as_secs_f64()),
        None => format!("{} payment(s)", options.payments),
    };
    match options.rate {
        Some(rate) => format!("{count} at {rate} per second (open loop)"),
        None => count,
    }
}

/// The name of the span from when a payment was due (or started) to its end.
fn total_span(report: &LoadReport) -> &'static str {
    if report.paced {
        "due→answer"
    } else {
        "quote+submit"
    }
}

/// The CPU split of a run (`load::cpu`); `None` when nothing settled or the crypto was not
/// measured.
fn split(report: &LoadReport, ceiling: Option<&Ceiling>, stream: bool) -> Option<CpuSplit> {
    let ceiling = ceiling?;
    CpuSplit::of(&SplitInputs {
        total: report.cpu,
        settled: report.settled(),
        crypto_per_payment: ceiling.per_payment(),
        storage: report.storage_cpu.clone(),
        per_call: report.per_call_cpu?,
        calls_per_payment: cpu::grpc_calls(stream).iter().map(|c| c.1).sum(),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The percentiles the bench prints, from the run's histogram: each within 0.1% above the
/// exact nearest-rank value (`Histogram::percentile`), the maximum exact.
fn percentiles(latency: &Histogram) -> [(&'static str, f64); 4] {
    [
        ("p50", ms(latency.percentile(50.0))),
        ("p90", ms(latency.percentile(90.0))),
        ("p99", ms(latency.percentile(99.0))),
        ("max", ms(latency.max())),
    ]
}

fn moved_text(report: &LoadReport) -> (String, String) {
    let debited = money::format_amount(report.amount.0, report.moved.0);
    let credited = money::format_amount(report.credited_currency, report.moved.1);
    (
        format!("{} {}", debited.value, debited.currency),
        format!("{} {}", credited.value, credited.currency),
    )
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e9).round() / 1e3
}

/// The crypto ceiling's lines: every operation of one payment with where it happens, then the
/// ceiling, the fraction the run achieved and the CPU time per payment.
fn human_ceiling(out: &mut String, report: &LoadReport, ceiling: Option<&Ceiling>) {
    let cpu = report
        .cpu_per_payment()
        .map_or_else(|| "n/a".to_owned(), |d| format!("{:.0} µs", us(d)));
    let _ = writeln!(
        out,
        "cpu            {cpu} per settled payment ({:.2} s user+system over the run, client and \
         both nodes)",
        report.cpu.as_secs_f64()
    );
    let Some(ceiling) = ceiling else {
        let _ = writeln!(
            out,
            "crypto         not measured: no payment settled, so no receipt to size"
        );
        return;
    };
    let _ = writeln!(
        out,
        "crypto         per payment: {} signatures, {} verifications, {} SHA-256 digests",
        ceiling.count(Operation::Sign),
        ceiling.count(Operation::Verify),
        ceiling.count(Operation::Sha256)
    );
    for row in &ceiling.rows {
        let _ = writeln!(
            out,
            "  {:>2} × {:<6} {:<26} {:<8} {:>5} B  {:>7.2} µs  ({})",
            row.op.count,
            row.op.operation.name(),
            row.op.input.name(),
            row.op.place.name(),
            row.bytes,
            us(row.each),
            row.op.site
        );
    }
    let per_second = ceiling.per_second().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "ceiling        {per_second:.0} payments/s ({:.1} µs of crypto per payment on {} \
         core(s)); this run: {}",
        us(ceiling.per_payment()),
        ceiling.cores,
        ceiling
            .fraction(report.payments_per_sec())
            .map_or_else(|| "n/a".to_owned(), |f| format!("{:.1}%", f * 100.0))
    );
}

/// The CPU split's lines (what each part is and how it was obtained).
fn human_split(out: &mut String, split: Option<&CpuSplit>, stream: bool) {
    let Some(split) = split else {
        let _ = writeln!(
            out,
            "cpu split      not available: nothing settled, or the crypto or the call \
             calibration was not measured"
        );
        return;
    };
    let _ = writeln!(out, "cpu split      per settled payment:");
    for (name, value, how) in split.parts() {
        let _ = writeln!(out, "  {name:<14} {value:>8.1} µs  {how}");
        if name == "storage+fsync" {
            for (thread, value) in &split.storage_threads_us {
                let _ = writeln!(out, "    {thread:<16} {value:>6.1} µs");
            }
        }
        if name == "TLS+HTTP/2" {
            let calls: Vec<&str> = cpu::grpc_calls(stream).iter().map(|c| c.0).collect();
            let _ = writeln!(
                out,
                "    {:.1} µs per empty call × {} ({})",
                split.per_call_us,
                split.calls_per_payment,
                calls.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "  {:<14} {:>8.1} µs  measured: process CPU clock over the run",
        "total", split.total_us
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Receipts, failures, the schedule and the resident set size.
fn human_honesty(out: &mut String, report: &LoadReport) {
    let _ = writeln!(
        out,
        "receipts       {} verified by the client under the agreement ({} settled)",
        report.receipts_verified(),
        report.settled()
    );
    let _ = writeln!(
        out,
        "failures       {} (calls without an answer, quotes or receipts that did not verify)",
        report.failed()
    );
    if report.paced {
        let _ = writeln!(
            out,
            "schedule       {} slot(s) missed: skipped because the run was more than {} ms \
             behind its rate",
            report.missed_slots,
            load::pace::CATCH_UP.as_millis()
        );
    }
    let (start, end, max) = rss(report);
    match (start, end, max) {
        (Some(start), Some(end), Some(max)) => {
            let _ = writeln!(
                out,
                "rss            start {:.1} MiB, end {:.1} MiB, max {:.1} MiB ({} samples)",
                mib(start),
                mib(end),
                mib(max),
                report.rss.len()
            );
        }
        _ => {
            let _ = writeln!(out, "rss            not known (no /proc/self/status)");
        }
    }
    if let Some(growth) = load::sampler::late_growth(&report.rss) {
        let _ = writeln!(
            out,
            "rss late       {:.1} MiB at {:.0} s, then {:+.2} MiB/s (least squares over the \
             second half)",
            mib(growth.half.1),
            growth.half.0.as_secs_f64(),
            growth.bytes_per_sec / (1024.0 * 1024.0)
        );
    }
}

/// Resident bytes at the start, at the end and at most.
fn rss(report: &LoadReport) -> (Option<u64>, Option<u64>, Option<u64>) {
    (
        report.rss.first().map(|s| s.1),
        report.rss.last().map(|s| s.1),
        report.rss.iter().map(|s| s.1).max(),
    )
}

fn human(
    report: &LoadReport,
    ceiling: Option<&Ceiling>,
    split: Option<&CpuSplit>,
    stream: bool,
) -> String {
    let mut out = String::new();
    let answers: Vec<String> = report
        .by_status()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(out, "answers        {}", answers.join(", "));
    let _ = writeln!(
        out,
        "settled        {} of {}",
        report.settled(),
        report.answered()
    );
    let _ = writeln!(
        out,
        "throughput     {:.1} payments/s ({} settled in {:.2} s)",
        report.payments_per_sec(),
        report.settled(),
        report.wall.as_secs_f64()
    );
    for (name, latency) in [
        ("SubmitPayment", report.submit_latency()),
        (total_span(report), report.total_latency()),
    ] {
        let figures: Vec<String> = percentiles(latency)
            .iter()
            .map(|(k, v)| format!("{k} {v:.1} ms"))
            .collect();
        let _ = writeln!(out, "{name:<14} {}", figures.join("  "));
    }
    let (debited, credited) = moved_text(report);
    if report.balance_problems.is_empty() {
        let _ = writeln!(
            out,
            "balances       exact: every balance moved by exactly the settled sums ({debited} \
             debited, {credited} credited); nothing left reserved"
        );
    } else {
        let _ = writeln!(out, "balances       NOT exact:");
        for problem in &report.balance_problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    human_ceiling(&mut out, report, ceiling);
    human_split(&mut out, split, stream);
    human_honesty(&mut out, report);
    out
}

fn json(
    report: &LoadReport,
    ceiling: Option<&Ceiling>,
    split: Option<&CpuSplit>,
    options: &LoadOptions,
    mode: &str,
) -> serde_json::Value {
    let figures = |latency: &Histogram| {
        serde_json::Value::Object(
            percentiles(latency)
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
                .collect(),
        )
    };
    let (debited, credited) = moved_text(report);
    let (rss_start, rss_end, rss_max) = rss(report);
    let mut json = serde_json::json!({
        "payments": report.answered(),
        "duration_secs": options.duration.map(|d| d.as_secs_f64()),
        "rate": options.rate,
        "paced": report.paced,
        "missed_slots": report.missed_slots,
        "concurrency": options.concurrency,
        "mode": mode,
        "amount": format!("{} {}", options.amount, report.amount.0.alpha),
        "answers": report.by_status(),
        "settled": report.settled(),
        "receipts_verified": report.receipts_verified(),
        "failed": report.failed(),
        "wall_secs": report.wall.as_secs_f64(),
        "payments_per_sec": report.payments_per_sec(),
        "submit_ms": figures(report.submit_latency()),
        "quote_submit_ms": figures(report.total_latency()),
        "latency_from": if report.paced { "due" } else { "start" },
        "balances_exact": report.balance_problems.is_empty(),
        "balance_problems": report.balance_problems,
        "debited": debited,
        "credited": credited,
        "cpu_secs": report.cpu.as_secs_f64(),
        "cpu_per_payment_us": report.cpu_per_payment().map(us),
        "cpu_split_us": split.map(|s| serde_json::json!({
            "total": s.total_us,
            "crypto": s.crypto_us,
            "storage": s.storage_us,
            "tls_http2": s.tls_http2_us,
            "rest": s.rest_us,
            "per_grpc_call": s.per_call_us,
            "grpc_calls_per_payment": s.calls_per_payment,
            "storage_threads": s.storage_threads_us,
        })),
        "rss_start_bytes": rss_start,
        "rss_end_bytes": rss_end,
        "rss_max_bytes": rss_max,
        "rss_series": report
            .rss
            .iter()
            .map(|(at, bytes)| serde_json::json!([at.as_secs_f64(), bytes]))
            .collect::<Vec<_>>(),
        "crypto_ceiling_per_second": ceiling.and_then(Ceiling::per_second),
        "ceiling_fraction": ceiling.and_then(|c| c.fraction(report.payments_per_sec())),
        "crypto_per_payment_us": ceiling.map(|c| us(c.per_payment())),
        "cores": ceiling.map(|c| c.cores),
        "crypto_operations": ceiling.map(|c| {
            c.rows
                .iter()
                .map(|row| {
                    serde_json::json!({
                        "operation": row.op.operation.name(),
                        "object": row.op.input.name(),
                        "place": row.op.place.name(),
                        "count": row.op.count,
                        "bytes": row.bytes,
                        "each_us": us(row.each),
                        "site": row.op.site,
                    })
                })
                .collect::<Vec<_>>()
        }),
    });
    // Added apart: one more field in the literal above passes `json!`'s recursion limit.
    let late = load::sampler::late_growth(&report.rss);
    json["rss_half_secs"] = serde_json::json!(late.map(|g| g.half.0.as_secs_f64()));
    json["rss_half_bytes"] = serde_json::json!(late.map(|g| g.half.1));
    json["rss_late_growth_bytes_per_sec"] = serde_json::json!(late.map(|g| g.bytes_per_sec));
    json
}
