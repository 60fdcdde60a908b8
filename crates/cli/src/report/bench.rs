//! The report of `kakehashi bench --report FILE`: the key figures, throughput over the run,
//! the SubmitPayment latency histogram and percentiles, the answers, the balance check, the
//! run's settings, the machine and the command line.

use std::time::Duration;

use kakehashi_ops::load::LoadReport;
use kakehashi_ops::load::cpu::CpuSplit;
use kakehashi_ops::load::summary::{Histogram, Timeline};

use super::chart::{self, Bin, Interval, Level};
use super::page::{Cell, Page, Verdict};

/// Most histogram bins.
const BINS_MAX: usize = 50;

/// Fewest histogram bins.
const BINS_MIN: usize = 10;

/// The widths of the intervals throughput is counted in (seconds).
const INTERVAL_WIDTHS: [f64; 10] = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Fewest intervals a throughput chart aims for: a run shorter than this many seconds is
/// counted in fractions of a second.
const INTERVALS_MIN: f64 = 20.0;

/// Most intervals: a run longer than this many seconds is counted in several seconds.
const INTERVALS_MAX: f64 = 600.0;

/// One second, unless the run is too short for [`INTERVALS_MIN`] of them (then the widest
/// fraction that gives that many) or too long for [`INTERVALS_MAX`] (then the narrowest
/// multiple that stays under).
fn interval_width(total_secs: f64) -> f64 {
    if total_secs < INTERVALS_MIN {
        INTERVAL_WIDTHS
            .iter()
            .rev()
            .copied()
            .filter(|w| *w < 1.0)
            .find(|w| total_secs / w >= INTERVALS_MIN)
            .unwrap_or(INTERVAL_WIDTHS[0])
    } else {
        INTERVAL_WIDTHS
            .iter()
            .copied()
            .filter(|w| *w >= 1.0)
            .find(|w| total_secs / w <= INTERVALS_MAX)
            .unwrap_or(INTERVAL_WIDTHS[INTERVAL_WIDTHS.len() - 1])
    }
}

/// Everything the bench report shows.
pub(crate) struct BenchRun<'a> {
    /// The run's outcomes and figures.
    pub(crate) report: &'a LoadReport,
    /// The direction, e.g. `JP → SG`.
    pub(crate) route: String,
    /// The run's settings as the command reports them (payments, concurrency, mode, amount,
    /// data directory).
    pub(crate) settings: Vec<(&'static str, String)>,
    /// Latency percentiles in milliseconds, per measured span (SubmitPayment, quote+submit),
    /// as the command prints them.
    pub(crate) latencies: Vec<(&'static str, [(&'static str, f64); 4])>,
    /// What moved: (debited at the sender, credited at the receiver), with currencies.
    pub(crate) moved: (String, String),
    /// The crypto ceiling in payments/s, measured in the same run (`load::ceiling`); `None`
    /// when the bench could not measure it (no payment settled, so no receipt to size), and
    /// then the throughput chart draws no ceiling line (none is invented).
    pub(crate) crypto_ceiling_per_sec: Option<f64>,
    /// The CPU time per payment split into crypto, storage, TLS and HTTP/2 and the rest
    /// (`load::cpu`); `None` when the bench could not compute it.
    pub(crate) split: Option<&'a CpuSplit>,
    /// Where it ran.
    pub(crate) machine: Machine,
    /// What was run.
    pub(crate) command: String,
    /// When.
    pub(crate) generated: String,
}

/// The machine a bench ran on: the figures measure it, client and nodes together.
pub(crate) struct Machine {
    /// CPUs this process may run on.
    pub(crate) cores: usize,
    /// Logical CPUs /proc/cpuinfo lists, where it exists.
    pub(crate) logical_cpus: Option<usize>,
    /// The CPU model from /proc/cpuinfo, where it says.
    pub(crate) cpu: Option<String>,
    /// The operating system: /etc/os-release's name where there is one, else the target's OS.
    pub(crate) os: String,
    /// The kernel release, where /proc says.
    pub(crate) kernel: Option<String>,
    /// The target architecture.
    pub(crate) arch: &'static str,
}

impl Machine {
    /// This machine, from the standard library and, on Linux, /proc and /etc/os-release.
    pub(crate) fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
        let os_release = std::fs::read_to_string("/etc/os-release").ok();
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            logical_cpus: cpuinfo.as_deref().map(logical_cpus).filter(|n| *n > 0),
            cpu: cpuinfo.as_deref().and_then(cpu_model),
            os: os_release
                .as_deref()
                .and_then(os_name)
                .unwrap_or_else(|| std::env::consts::OS.to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
            arch: std::env::consts::ARCH,
        }
    }
}

/// The value of the first `key : value` line of /proc/cpuinfo whose key is one of `keys`.
fn cpuinfo_value(cpuinfo: &str, keys: &[&str]) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (keys.contains(&key.trim()) && !value.is_empty()).then(|| value.to_owned())
    })
}

/// The CPU model: x86's `model name`, else what other architectures name it.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo_value(cpuinfo, &["model name"])
        .or_else(|| cpuinfo_value(cpuinfo, &["cpu model", "Hardware", "Model", "cpu"]))
}

fn logical_cpus(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count()
}

/// `PRETTY_NAME` of os-release, unquoted.
fn os_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// The throughput intervals of a run of `wall` whose answers `timeline` counted: equal widths
/// from [`INTERVAL_WIDTHS`], the last one merged into the one before when shorter than half a
/// width (a sliver would show a rate out of few answers). Each width is a whole number of the
/// timeline's slots (50 ms, or a second once the run is 20 s long, when the widths are whole
/// seconds), so every slot falls in one interval.
pub(crate) fn intervals(timeline: &Timeline, wall: Duration) -> (Vec<Interval>, f64) {
    let total = wall.as_secs_f64();
    let width = interval_width(total);
    if total <= 0.0 {
        return (Vec::new(), width);
    }
    let mut count = (total / width).ceil().max(1.0) as usize;
    let last_width = total - (count - 1) as f64 * width;
    if count > 1 && last_width < width / 2.0 {
        count -= 1;
    }
    let mut out: Vec<Interval> = (0..count)
        .map(|i| Interval {
            start: i as f64 * width,
            end: if i + 1 == count {
                total
            } else {
                (i + 1) as f64 * width
            },
            settled: 0,
            other: 0,
        })
        .collect();
    // In whole milliseconds, so that 0.15 s / 0.05 s is 3 and not 2.999...
    let (slot, slots) = timeline.slots();
    let slot_ms = slot.as_millis();
    let width_ms = ((width * 1e3).round() as u128).max(1);
    for (i, (settled, other)) in slots.iter().enumerate() {
        let start_ms = i as u128 * slot_ms;
        let index = usize::try_from(start_ms / width_ms)
            .unwrap_or(usize::MAX)
            .min(count - 1);
        if let Some(interval) = out.get_mut(index) {
            interval.settled += usize::try_from(*settled).unwrap_or(usize::MAX);
            interval.other += usize::try_from(*other).unwrap_or(usize::MAX);
        }
    }
    (out, width)
}

/// Histogram bins over the run's latencies (milliseconds), and how many lie beyond the last
/// bin: the axis ends at the maximum unless a tail stretches it past twice the p99, then at 1.5
/// × p99 so that the body of the distribution stays visible. Each of the histogram's buckets
/// (at most 0.1% of its value wide) goes to the bin of its highest value.
pub(crate) fn latency_bins(latency: &Histogram) -> (Vec<Bin>, usize) {
    if latency.is_empty() {
        return (Vec::new(), 0);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (min, max, p99) = (
        ms(latency.min()),
        ms(latency.max()),
        ms(latency.percentile(99.0)),
    );
    let upper = if max <= 2.0 * p99 { max } else { 1.5 * p99 };
    let lower = 0.0_f64.min(min);
    let upper = if upper > lower { upper } else { lower + 1.0 };
    let samples = usize::try_from(latency.len()).unwrap_or(usize::MAX);
    let bins = (samples / 5).clamp(BINS_MIN, BINS_MAX);
    let width = (upper - lower) / bins as f64;
    let mut out: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            from: lower + i as f64 * width,
            to: lower + (i + 1) as f64 * width,
            count: 0,
        })
        .collect();
    let mut above = 0;
    for (at, count) in latency.buckets() {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let sample = ms(at);
        if sample > upper {
            above += count;
            continue;
        }
        let index = (((sample - lower) / width) as usize).min(bins - 1);
        if let Some(bin) = out.get_mut(index) {
            bin.count += count;
        }
    }
    (out, above)
}

/// The CPU time per payment and its split, and the resident set size over the run.
fn cpu_section(page: &mut Page, run: &BenchRun<'_>) -> anyhow::Result<()> {
    let report = run.report;
    page.heading("CPU per payment");
    match run.split {
        Some(split) => {
            let mut rows: Vec<Vec<Cell>> = split
                .parts()
                .iter()
                .map(|(name, value, how)| {
                    vec![
                        Cell::Text((*name).to_owned()),
                        Cell::Number(format!("{value:.1}")),
                        Cell::Text((*how).to_owned()),
                    ]
                })
                .collect();
            rows.push(vec![
                Cell::Text("total".to_owned()),
                Cell::Number(format!("{:.1}", split.total_us)),
                Cell::Text("measured: process CPU clock over the run".to_owned()),
            ]);
            page.table(&["part", "µs per settled payment", "how"], rows);
            page.paragraph(&format!(
                "TLS and HTTP/2: {:.1} µs of CPU per empty gRPC call over mutual TLS (calibrated \
                 after the run) × {} calls per payment. Storage: {}.",
                split.per_call_us,
                split.calls_per_payment,
                split
                    .storage_threads_us
                    .iter()
                    .map(|(name, value)| format!("{name} {value:.1} µs"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        None => page.paragraph(
            "The split was not computed: nothing settled, or the crypto or the call calibration \
             was not measured.",
        ),
    }
    page.paragraph(&format!(
        "Receipts verified by the client: {} ({} settled); failures: {}.",
        report.receipts_verified(),
        report.settled(),
        report.failed()
    ));
    page.heading("Resident set size");
    if report.rss.is_empty() {
        page.paragraph("Not known: this system has no /proc/self/status.");
        return Ok(());
    }
    let points: Vec<(f64, f64)> = report
        .rss
        .iter()
        .map(|(at, bytes)| (at.as_secs_f64(), *bytes as f64 / (1024.0 * 1024.0)))
        .collect();
    let svg = chart::line(&points, "seconds since the run started", "resident MiB")?;
    let mib = |b: Option<&(Duration, u64)>| b.map_or(0.0, |s| s.1 as f64 / (1024.0 * 1024.0));
    let max = report.rss.iter().map(|s| s.1).max().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    page.chart(
        &svg,
        &format!(
            "VmRSS of the whole process (client and both nodes), sampled every second: start \
             {:.1} MiB, end {:.1} MiB, max {max:.1} MiB.",
            mib(report.rss.first()),
            mib(report.rss.last())
        ),
    );
    Ok(())
}

/// The bench report.
pub(crate) fn bench_html(run: &BenchRun<'_>) -> anyhow::Result<String> {
    let report = run.report;
    let settled = report.settled();
    let answered = report.answered();
    let exact = report.is_exact();
    let mut page = Page::new(
        &format!("kakehashi bench: {}", run.route),
        &format!("Relay benchmark, report made at {}", run.generated),
    );
    let verdict = if exact {
        format!(
            "Every payment settled ({settled} of {answered}) and every balance moved by exactly \
             the settled sums."
        )
    } else if report.balance_problems.is_empty() {
        format!("{settled} of {answered} payments settled; the balances are exact.")
    } else {
        format!("{settled} of {answered} payments settled; the balances are NOT exact.")
    };
    page.banner(Verdict::of(!exact), &verdict);

    let mut tiles = vec![
        (
            format!("{:.1}", report.payments_per_sec()),
            "payments/s (settled, wall time)",
        ),
        (format!("{settled} of {answered}"), "settled"),
        (format!("{:.2} s", report.wall.as_secs_f64()), "wall time"),
    ];
    if let Some((_, figures)) = run.latencies.first() {
        for (name, value) in figures.iter().filter(|(n, _)| *n == "p50" || *n == "p99") {
            tiles.push((
                format!("{value:.1} ms"),
                if *name == "p50" {
                    "SubmitPayment p50"
                } else {
                    "SubmitPayment p99"
                },
            ));
        }
    }
    // The crypto ceiling (issue 14, item 1): shown only when the bench measured it.
    if let Some(ceiling) = run.crypto_ceiling_per_sec {
        tiles.push((format!("{ceiling:.1}"), "crypto ceiling, payments/s"));
    }
    page.tiles(&tiles);

    page.heading("Throughput over the run");
    let (intervals, width) = intervals(&report.summary.timeline, report.wall);
    let mut levels = vec![Level {
        value: report.payments_per_sec(),
        label: format!("mean {:.1} settled payments/s", report.payments_per_sec()),
        limit: false,
    }];
    // The place for the crypto ceiling line: drawn only from a measured figure.
    if let Some(ceiling) = run.crypto_ceiling_per_sec {
        levels.push(Level {
            value: ceiling,
            label: format!("crypto ceiling {ceiling:.1} payments/s"),
            limit: true,
        });
    }
    let svg = chart::throughput(&intervals, &levels)?;
    page.chart(
        &svg,
        &format!(
            "Answers per second in intervals of {width} s, counted when each answer came \
             (from the first submission to the last answer, {:.2} s).",
            report.wall.as_secs_f64()
        ),
    );

    page.heading("SubmitPayment latency");
    let latency = report.submit_latency();
    let (bins, above) = latency_bins(latency);
    let markers: Vec<(String, f64)> = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)]
        .iter()
        .map(|(name, p)| {
            let at = latency.percentile(*p).as_secs_f64() * 1e3;
            (format!("{name} {at:.1} ms"), at)
        })
        .collect();
    let svg = chart::histogram(&bins, "SubmitPayment latency (ms)", &markers)?;
    let beyond = match above {
        0 => String::new(),
        n => format!(
            " {n} slower payments (up to {:.1} ms) lie beyond the axis.",
            latency.max().as_secs_f64() * 1e3
        ),
    };
    page.chart(
        &svg,
        &format!(
            "How many payments took how long from SubmitPayment to its answer, with the \
             percentiles marked.{beyond}"
        ),
    );
    let rows = run
        .latencies
        .iter()
        .map(|(name, figures)| {
            let mut row = vec![Cell::Text((*name).to_owned())];
            row.extend(
                figures
                    .iter()
                    .map(|(_, value)| Cell::Number(format!("{value:.1}"))),
            );
            row
        })
        .collect();
    page.table(
        &["span", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)"],
        rows,
    );

    cpu_section(&mut page, run)?;

    page.heading("Answers and balances");
    page.table(
        &["answer", "payments"],
        report
            .by_status()
            .into_iter()
            .map(|(answer, count)| vec![Cell::Text(answer), Cell::Number(count.to_string())])
            .collect(),
    );
    if report.balance_problems.is_empty() {
        page.paragraph(&format!(
            "Balances exact: every balance moved by exactly the settled sums ({} debited, {} \
             credited); nothing left reserved.",
            run.moved.0, run.moved.1
        ));
    } else {
        page.paragraph("Balances NOT exact:");
        page.table(
            &["problem"],
            report
                .balance_problems
                .iter()
                .map(|p| vec![Cell::Text(p.clone())])
                .collect(),
        );
    }

    page.heading("Run");
    let mut facts: Vec<(&str, Cell)> = run
        .settings
        .iter()
        .map(|(name, value)| (*name, Cell::Text(value.clone())))
        .collect();
    facts.push(("command", Cell::Code(run.command.clone())));
    page.facts(facts);

    page.heading("Machine");
    let machine = &run.machine;
    let mut facts = vec![(
        "cores",
        Cell::Text(match machine.logical_cpus {
            Some(logical) => format!(
                "{} available to the run ({logical} logical CPUs)",
                machine.cores
            ),
            None => format!("{} available to the run", machine.cores),
        }),
    )];
    facts.push((
        "CPU",
        Cell::Text(
            machine
                .cpu
                .clone()
                .unwrap_or_else(|| "not known".to_owned()),
        ),
    ));
    facts.push((
        "OS",
        Cell::Text(format!("{} ({})", machine.os, machine.arch)),
    ));
    if let Some(kernel) = &machine.kernel {
        facts.push(("kernel", Cell::Text(kernel.clone())));
    }
    page.facts(facts);
    page.paragraph(
        "The client and both nodes share this machine: the figures measure it end to end, not \
         a node alone.",
    );
    Ok(page.finish())
}

#[cfg(test)]
mod tests {
    use kakehashi_ops::load::PaymentOutcome;
    use kakehashi_ops::load::summary::Summary;
    use kakehashi_proto::pb::TransactionStatus;

    use super::*;

    fn outcome(status: TransactionStatus, submit_ms: u64, answered_ms: u64) -> PaymentOutcome {
        PaymentOutcome {
            route: 0,
            status,
            reason: if status == TransactionStatus::Rjct {
                "AM04".into()
            } else {
                String::new()
            },
            credited_minor: 0,
            submit: Some(Duration::from_millis(submit_ms)),
            total: Duration::from_millis(submit_ms + 1),
            failure: None,
            receipt_verified: status == TransactionStatus::Acsc,
            answered: Duration::from_millis(answered_ms),
        }
    }

    fn load_report() -> LoadReport {
        let jpy = kakehashi_protocol::money::currency("JPY").expect("JPY");
        let sgd = kakehashi_protocol::money::currency("SGD").expect("SGD");
        let mut outcomes: Vec<PaymentOutcome> = (0..200)
            .map(|i| outcome(TransactionStatus::Acsc, 5 + i % 7, i * 10))
            .collect();
        outcomes.push(outcome(TransactionStatus::Rjct, 3, 1_995));
        LoadReport {
            summary: Summary::of(&outcomes),
            wall: Duration::from_secs(2),
            amount: (jpy, 10_000),
            credited_currency: sgd,
            balance_problems: Vec::new(),
            moved: (2_000_000, 17_400),
            cpu: Duration::from_secs(3),
            sizes: Default::default(),
            paced: false,
            missed_slots: 0,
            rss: vec![
                (Duration::ZERO, 40 << 20),
                (Duration::from_secs(1), 48 << 20),
                (Duration::from_secs(2), 47 << 20),
            ],
            storage_cpu: Default::default(),
            per_call_cpu: None,
        }
    }

    fn run(report: &LoadReport, ceiling: Option<f64>) -> String {
        run_with(report, ceiling, None)
    }

    fn run_with(report: &LoadReport, ceiling: Option<f64>, split: Option<&CpuSplit>) -> String {
        bench_html(&BenchRun {
            report,
            route: "JP → SG".into(),
            settings: vec![
                ("payments", "201".into()),
                ("data directory", "<tmp>".into()),
            ],
            latencies: vec![
                (
                    "SubmitPayment",
                    [("p50", 8.0), ("p90", 10.0), ("p99", 11.0), ("max", 11.0)],
                ),
                (
                    "quote+submit",
                    [("p50", 9.0), ("p90", 11.0), ("p99", 12.0), ("max", 12.0)],
                ),
            ],
            moved: ("2000000 JPY".into(), "174.00 SGD".into()),
            crypto_ceiling_per_sec: ceiling,
            split,
            machine: Machine {
                cores: 2,
                logical_cpus: Some(2),
                cpu: Some("Test CPU <fast>".into()),
                os: "Debian".into(),
                kernel: None,
                arch: "x86_64",
            },
            command: "kakehashi bench --report 'a b.html'".into(),
            generated: "2026-12-07T00:00:00Z".into(),
        })
        .expect("report")
    }

    #[test]
    fn the_report_has_the_figures_charts_and_machine() {
        let report = load_report();
        let html = run(&report, None);
        assert!(
            html.contains("100.0</span><span class=\"label\">payments/s"),
            "{html}"
        );
        assert!(html.contains("200 of 201"), "{html}");
        assert!(html.contains("RJCT AM04"), "{html}");
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "throughput, histogram and RSS"
        );
        assert!(
            html.contains("start 40.0 MiB, end 47.0 MiB, max 48.0 MiB"),
            "{html}"
        );
        assert!(html.contains("Test CPU &lt;fast&gt;"), "{html}");
        assert!(html.contains("&lt;tmp&gt;"), "{html}");
        assert!(
            html.contains("kakehashi bench --report 'a b.html'"),
            "{html}"
        );
        assert!(html.contains("NOT") || html.contains("200 of 201 payments settled"));
        assert!(!html.contains("crypto ceiling"), "no ceiling is invented");
    }

    #[test]
    fn a_measured_ceiling_is_drawn() {
        let report = load_report();
        let html = run(&report, Some(1234.5));
        assert!(html.contains("crypto ceiling 1234.5 payments/s"), "{html}");
    }

    #[test]
    fn the_cpu_split_is_tabled_with_how_each_part_is_obtained() {
        let report = load_report();
        let split = CpuSplit::of(&kakehashi_ops::load::cpu::SplitInputs {
            total: Duration::from_millis(400),
            settled: 200,
            crypto_per_payment: Duration::from_micros(300),
            storage: [("ledger-commit".to_owned(), Duration::from_millis(60))].into(),
            per_call: Duration::from_micros(100),
            calls_per_payment: 3,
        })
        .expect("payments settled");
        let html = run_with(&report, None, Some(&split));
        for expected in [
            "2000.0",
            "300.0",
            "ledger-commit 300.0 µs",
            "1100.0",
            "measured: process CPU clock over the run",
            "estimate: counted operations × timed cost",
        ] {
            assert!(html.contains(expected), "{expected}: {html}");
        }
        assert!(!run(&report, None).contains("ledger-commit"));
    }

    #[test]
    fn intervals_count_every_answer_once() {
        let mut answers = Timeline::default();
        for i in 0..1000 {
            answers.record(Duration::from_millis(i * 3), i % 10 != 0);
        }
        let (intervals, width) = intervals(&answers, Duration::from_millis(3_000));
        assert_eq!(width, 0.1);
        assert_eq!(intervals.len(), 30);
        assert_eq!(intervals.iter().map(|i| i.settled).sum::<usize>(), 900);
        assert_eq!(intervals.iter().map(|i| i.other).sum::<usize>(), 100);
        assert!((intervals.last().expect("some").end - 3.0).abs() < 1e-9);
        // A long run counts per second.
        let (long, width) = intervals_of(120.0);
        assert_eq!((long, width), (120, 1.0));
        // A sliver at the end joins the interval before it.
        let (count, _) = intervals_of(2.01);
        assert_eq!(count, 20);
        assert_eq!(intervals_of(0.0).0, 0);
        // A run past 20 s counts in seconds: every answer still once, in its own second.
        let mut long = Timeline::default();
        for i in 0..1000 {
            long.record(Duration::from_millis(i * 45), true);
        }
        let (seconds, width) = super::intervals(&long, Duration::from_millis(45_000));
        assert_eq!((seconds.len(), width), (45, 1.0));
        assert_eq!(seconds.iter().map(|i| i.settled).sum::<usize>(), 1000);
        assert_eq!(seconds[0].settled, 23, "0 to 990 ms in steps of 45 ms");
    }

    fn intervals_of(secs: f64) -> (usize, f64) {
        let (v, w) = intervals(&Timeline::default(), Duration::from_secs_f64(secs));
        (v.len(), w)
    }

    #[test]
    fn latency_bins_hold_every_sample_or_count_it_beyond() {
        let histogram = |ms: &[u64]| {
            let mut h = Histogram::default();
            for m in ms {
                h.record(Duration::from_millis(*m));
            }
            h
        };
        let mut samples: Vec<u64> = (0..1000).map(|i| i % 100).collect();
        samples.push(10_000);
        let (bins, above) = latency_bins(&histogram(&samples));
        assert_eq!(bins.len(), BINS_MAX);
        assert_eq!(above, 1, "the outlier is beyond the axis");
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 1000);
        assert_eq!(latency_bins(&Histogram::default()), (Vec::new(), 0));
        let (bins, above) = latency_bins(&histogram(&[2, 2]));
        assert_eq!((bins.iter().map(|b| b.count).sum::<usize>(), above), (2, 0));
    }

    #[test]
    fn machine_facts_come_from_proc_and_os_release() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.80GHz\n\nprocessor\t: 1\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Some CPU @ 2.80GHz"));
        assert_eq!(logical_cpus(cpuinfo), 2);
        assert_eq!(
            cpu_model("processor : 0\nHardware : BCM2835\n").as_deref(),
            Some("BCM2835")
        );
        assert_eq!(cpu_model(""), None);
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_name(release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os_name("ID=x\n"), None);
    }
}
