//! Where the CPU time of a `kakehashi bench` run goes (issue 14, item 1): the process's CPU time
//! per settled payment split into crypto, storage and fsync, TLS and HTTP/2, and the rest.
//!
//! The four parts are not measured the same way, and [`CpuSplit`] says which is which:
//!
//! - **total** is measured: `CLOCK_PROCESS_CPUTIME_ID` over the run (every thread, user and
//!   system), divided by the settled payments.
//! - **storage** is measured: the CPU time of the threads that do nothing but storage, read
//!   from the kernel's per-thread accounting (`/proc/self/task/<tid>/schedstat`, nanoseconds;
//!   `stat`'s utime + stime in clock ticks where schedstat is missing), found by name
//!   ([`STORAGE_THREAD_PREFIXES`]: the ledger's writer, commit, id-filter and reclaim threads,
//!   sled's I/O pool and log flusher; the payment records ride in the ledger's commit). The
//!   fdatasync itself is kernel time of those threads, so it is included. The nodes await
//!   their ledger changes (the ledger's commit thread completes them), so no runtime thread
//!   waits for a commit; the async runtime's threads, workers and blocking pool alike, count
//!   in the rest, with what little storage work they do themselves (copying a batch into the
//!   ledger's queue, the engine's lookups, reading payment records).
//! - **crypto** is an estimate: the signatures, verifications and digests one payment needs
//!   ([`super::ceiling::PAYMENT_PATH`]) times each one's cost timed in the same process.
//! - **TLS and HTTP/2** is an estimate: the CPU time of one empty gRPC call (a health check)
//!   over a mutual-TLS channel to the same node, calibrated in the same run, times the gRPC
//!   calls one payment makes ([`grpc_calls`]). An empty call carries no payload, so the
//!   encryption of a payment's few kilobytes is not in it; a stream item is counted as a whole
//!   call, which overstates the share when the relay's Prepares go several to a batch (one
//!   HTTP/2 frame and one TLS record for the batch).
//! - **rest** is what is left: total − storage − crypto − TLS and HTTP/2 (tokio scheduling,
//!   protobuf, the engine's own work, allocation, the client's bookkeeping). It is exact
//!   arithmetic over the figures above, so it carries their errors; it can come out negative
//!   when the estimates overshoot, and is then printed as is rather than hidden.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// Name prefixes of the threads that do nothing but storage (Linux keeps 15 bytes of a
/// thread's name).
pub const STORAGE_THREAD_PREFIXES: &[&str] = &["ledger-", "sled-", "log flusher"];

/// The name `kakehashi bench` gives its async runtime's threads (workers and blocking pool),
/// so that a profile or `top -H` tells them from the nodes' storage threads. They count in the
/// rest.
pub const RUNTIME_THREAD_NAME: &str = "bench-runtime";

/// The kernel's clock ticks per second for `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux
/// architecture the workspace builds for).
const USER_HZ: u64 = 100;

/// What a thread does, for the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadClass {
    /// A storage thread ([`STORAGE_THREAD_PREFIXES`]).
    Storage,
    /// Anything else: the runtime's threads (the client, both nodes' gRPC and engines, and the
    /// blocking pool), the main thread, the sampler.
    Other,
}

/// The class of a thread named `name`.
pub fn classify(name: &str) -> ThreadClass {
    if STORAGE_THREAD_PREFIXES.iter().any(|p| name.starts_with(p)) {
        ThreadClass::Storage
    } else {
        ThreadClass::Other
    }
}

/// One thread's name and CPU time so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadTime {
    /// Its name (at most 15 bytes).
    pub name: String,
    /// User and system CPU time since it started.
    pub cpu: Duration,
}

/// Every thread of this process now, by id; empty where /proc is not there.
pub fn threads() -> BTreeMap<u32, ThreadTime> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        // A thread that ended between the listing and the read is skipped.
        let Some(cpu) = thread_cpu(&dir) else {
            continue;
        };
        let name = std::fs::read_to_string(dir.join("comm"))
            .map(|n| n.trim_end().to_owned())
            .unwrap_or_default();
        out.insert(tid, ThreadTime { name, cpu });
    }
    out
}

fn thread_cpu(dir: &Path) -> Option<Duration> {
    if let Ok(schedstat) = std::fs::read_to_string(dir.join("schedstat")) {
        return parse_schedstat(&schedstat);
    }
    parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)
}

/// The first field of a schedstat line: nanoseconds on a CPU.
pub fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// utime + stime of a stat line (fields 14 and 15, after the parenthesised name, which may
/// hold spaces).
pub fn parse_stat(text: &str) -> Option<Duration> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.saturating_add(stime);
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000 / USER_HZ),
    ))
}

/// The CPU time threads used over a run, from samples: the first sample of a thread is its
/// baseline (zero for a thread born during the run), the last its end. A thread that ends
/// during the run keeps the time of its last sample (what it used after is lost: at most one
/// sampling interval).
#[derive(Clone, Debug, Default)]
pub struct ThreadLedger {
    baseline: HashMap<u32, Duration>,
    latest: HashMap<u32, ThreadTime>,
    started: bool,
}

impl ThreadLedger {
    /// Takes a sample: the first one sets the baselines.
    pub fn sample(&mut self, now: BTreeMap<u32, ThreadTime>) {
        for (tid, time) in now {
            if !self.started {
                self.baseline.insert(tid, time.cpu);
            }
            self.latest.insert(tid, time);
        }
        self.started = true;
    }

    /// CPU time per class over the run, and storage time per thread name (digits dropped, so
    /// `sled-io-1` and `sled-io-2` add up as `sled-io-`).
    pub fn by_class(&self) -> (BTreeMap<ThreadClass, Duration>, BTreeMap<String, Duration>) {
        let mut classes = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (tid, time) in &self.latest {
            let used = time
                .cpu
                .saturating_sub(self.baseline.get(tid).copied().unwrap_or_default());
            let class = classify(&time.name);
            *classes.entry(class).or_insert(Duration::ZERO) += used;
            let name = match class {
                ThreadClass::Other => continue,
                ThreadClass::Storage => time.name.trim_end_matches(|c: char| c.is_ascii_digit()),
            };
            *names.entry(name.to_owned()).or_insert(Duration::ZERO) += used;
        }
        (classes, names)
    }
}

/// The gRPC calls one payment makes, by mode: (what, how many, where).
pub fn grpc_calls(stream: bool) -> &'static [(&'static str, u32, &'static str)] {
    if stream {
        &[
            ("GetQuote", 1, "client → sender, Participant::quote"),
            (
                "SubmitPayments item",
                1,
                "client → sender, one request and one answer on an open stream, counted as a call",
            ),
            (
                "Prepares item",
                1,
                "sender → receiver, one instruction of a batch on the Prepares stream, counted as a call",
            ),
        ]
    } else {
        &[
            ("GetQuote", 1, "client → sender, Participant::quote"),
            ("SubmitPayment", 1, "client → sender, participant::submit"),
            (
                "Prepares item",
                1,
                "sender → receiver, one instruction of a batch on the Prepares stream, counted as a call",
            ),
        ]
    }
}

/// The split of the CPU time per settled payment, in microseconds (see the module
/// documentation for how each part is measured or estimated).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuSplit {
    /// Measured: process CPU time over the run per settled payment.
    pub total_us: f64,
    /// Estimated: counted crypto operations × their timed cost.
    pub crypto_us: f64,
    /// Measured: CPU time of the storage threads, per settled payment.
    pub storage_us: f64,
    /// Estimated: CPU per empty gRPC call (calibrated) × the calls a payment makes.
    pub tls_http2_us: f64,
    /// total − the three above.
    pub rest_us: f64,
    /// The calibration: CPU per empty gRPC call.
    pub per_call_us: f64,
    /// gRPC calls per payment.
    pub calls_per_payment: u32,
    /// Storage time per payment by thread name.
    pub storage_threads_us: BTreeMap<String, f64>,
}

/// The inputs of a split, each over the whole run.
#[derive(Clone, Debug, Default)]
pub struct SplitInputs {
    /// Process CPU time over the run.
    pub total: Duration,
    /// Settled payments.
    pub settled: usize,
    /// Crypto time one payment needs.
    pub crypto_per_payment: Duration,
    /// Storage threads' time over the run, by name.
    pub storage: BTreeMap<String, Duration>,
    /// CPU per empty gRPC call.
    pub per_call: Duration,
    /// gRPC calls per payment.
    pub calls_per_payment: u32,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl CpuSplit {
    /// The split of `inputs`; `None` when nothing settled.
    pub fn of(inputs: &SplitInputs) -> Option<Self> {
        if inputs.settled == 0 {
            return None;
        }
        let n = inputs.settled as f64;
        let total_us = us(inputs.total) / n;
        let storage_threads_us: BTreeMap<String, f64> = inputs
            .storage
            .iter()
            .map(|(name, d)| (name.clone(), us(*d) / n))
            .collect();
        let storage_us = storage_threads_us.values().sum();
        let crypto_us = us(inputs.crypto_per_payment);
        let per_call_us = us(inputs.per_call);
        let tls_http2_us = per_call_us * f64::from(inputs.calls_per_payment);
        Some(Self {
            total_us,
            crypto_us,
            storage_us,
            tls_http2_us,
            rest_us: total_us - crypto_us - storage_us - tls_http2_us,
            per_call_us,
            calls_per_payment: inputs.calls_per_payment,
            storage_threads_us,
        })
    }

    /// The parts in print order: (name, µs per payment, how it is obtained).
    pub fn parts(&self) -> [(&'static str, f64, &'static str); 4] {
        [
            (
                "crypto",
                self.crypto_us,
                "estimate: counted operations × timed cost",
            ),
            (
                "storage+fsync",
                self.storage_us,
                "measured: the ledger's and sled's threads' CPU clocks",
            ),
            (
                "TLS+HTTP/2",
                self.tls_http2_us,
                "estimate: calibrated empty gRPC call × calls per payment",
            ),
            ("rest", self.rest_us, "total − the above"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ms: u64) -> ThreadTime {
        ThreadTime {
            name: name.to_owned(),
            cpu: Duration::from_millis(ms),
        }
    }

    #[test]
    fn threads_are_classified_by_name() {
        assert_eq!(classify("ledger-commit"), ThreadClass::Storage);
        assert_eq!(classify("ledger-writer"), ThreadClass::Storage);
        assert_eq!(classify("sled-io-3"), ThreadClass::Storage);
        assert_eq!(classify("log flusher"), ThreadClass::Storage);
        // The runtime's threads, blocking pool included, are no storage threads: no ledger
        // call waits there for its commit.
        assert_eq!(classify(RUNTIME_THREAD_NAME), ThreadClass::Other);
        assert_eq!(classify("kakehashi"), ThreadClass::Other);
    }

    #[test]
    fn the_ledger_counts_each_thread_from_its_first_sample_and_keeps_ended_ones() {
        let mut ledger = ThreadLedger::default();
        ledger.sample(BTreeMap::from([
            (1, t("ledger-commit", 100)),
            (2, t("main", 50)),
        ]));
        // Thread 3 is born during the run; thread 1 ends after this sample.
        ledger.sample(BTreeMap::from([
            (1, t("ledger-commit", 130)),
            (2, t("main", 80)),
            (3, t("sled-io-0", 7)),
        ]));
        ledger.sample(BTreeMap::from([(2, t("main", 90)), (3, t("sled-io-0", 9))]));
        let (classes, names) = ledger.by_class();
        assert_eq!(classes[&ThreadClass::Storage], Duration::from_millis(39));
        assert_eq!(classes[&ThreadClass::Other], Duration::from_millis(40));
        assert_eq!(names["sled-io-"], Duration::from_millis(9));
        assert_eq!(names["ledger-commit"], Duration::from_millis(30));
    }

    #[test]
    fn the_split_adds_up_to_the_total() {
        let inputs = SplitInputs {
            total: Duration::from_millis(2_000),
            settled: 1_000,
            crypto_per_payment: Duration::from_micros(300),
            storage: BTreeMap::from([
                ("ledger-commit".to_owned(), Duration::from_millis(200)),
                ("sled-io-".to_owned(), Duration::from_millis(100)),
            ]),
            per_call: Duration::from_micros(150),
            calls_per_payment: 3,
        };
        let split = CpuSplit::of(&inputs).expect("payments settled");
        assert!((split.total_us - 2_000.0).abs() < 1e-6);
        assert!((split.storage_us - 300.0).abs() < 1e-6);
        assert!((split.tls_http2_us - 450.0).abs() < 1e-6);
        assert!((split.rest_us - 950.0).abs() < 1e-6);
        let sum: f64 = split.parts().iter().map(|p| p.1).sum();
        assert!((sum - split.total_us).abs() < 1e-6);
        // Overshooting estimates leave a negative rest, shown as is.
        let over = CpuSplit::of(&SplitInputs {
            total: Duration::from_millis(100),
            ..inputs.clone()
        })
        .expect("settled");
        assert!(over.rest_us < 0.0);
        assert!(
            CpuSplit::of(&SplitInputs {
                settled: 0,
                ..inputs
            })
            .is_none()
        );
    }

    #[test]
    fn proc_lines_parse() {
        assert_eq!(
            parse_schedstat("56759052 144590554 181\n"),
            Some(Duration::from_nanos(56_759_052))
        );
        let stat = "24777 (a (b) c) S 24776 24777 24777 0 -1 4194560 5969 61271 0 6 7 4 52 9 20";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(110)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_lists_its_threads_with_their_time() {
        let mut x = 0_u64;
        for i in 0..2_000_000_u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let threads = threads();
        if Path::new("/proc/self/task").exists() {
            assert!(!threads.is_empty());
            assert!(threads.values().any(|t| t.cpu > Duration::ZERO));
        }
    }
}
