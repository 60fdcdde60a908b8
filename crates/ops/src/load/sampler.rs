//! A sampler beside a `kakehashi bench` run: once a second (and at the start and the end) it
//! reads the process's resident set size (`VmRSS` of `/proc/self/status`) and every thread's
//! CPU time ([`super::cpu::threads`]). It is a plain thread, not a task, so a busy runtime
//! cannot delay it; it wakes on its stop signal at once.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cpu::{self, ThreadLedger};

/// How often the sampler reads.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// What the sampler saw.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// (time since the start, resident bytes), the first at the start and the last at the end.
    pub rss: Vec<(Duration, u64)>,
    /// Every thread's CPU time over the run.
    pub threads: ThreadLedger,
}

impl Samples {
    /// Resident bytes at the start.
    pub fn rss_start(&self) -> Option<u64> {
        self.rss.first().map(|s| s.1)
    }

    /// Resident bytes at the end.
    pub fn rss_end(&self) -> Option<u64> {
        self.rss.last().map(|s| s.1)
    }

    /// The most resident bytes sampled.
    pub fn rss_max(&self) -> Option<u64> {
        self.rss.iter().map(|s| s.1).max()
    }
}

/// How the resident set moved over the second half of a run: whether memory is flat once the
/// run is warm. The first half is the warm-up (caches filling, quotes accumulating until the
/// first ones expire), so a start-to-end difference alone cannot tell a cache that filled from
/// memory that keeps growing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LateGrowth {
    /// The first sample at or after half the run.
    pub half: (Duration, u64),
    /// The least-squares slope of the samples from `half` on, in bytes per second: about zero
    /// when memory is flat, the leak rate when it is not.
    pub bytes_per_sec: f64,
}

/// [`LateGrowth`] of a series of (time since the start, resident bytes); `None` with fewer than
/// two samples in the second half or when they all fall at one instant.
pub fn late_growth(rss: &[(Duration, u64)]) -> Option<LateGrowth> {
    let end = rss.last()?.0;
    let late: Vec<(f64, f64)> = rss
        .iter()
        .filter(|(at, _)| *at >= end / 2)
        .map(|(at, bytes)| (at.as_secs_f64(), *bytes as f64))
        .collect();
    let half = *rss.iter().find(|(at, _)| *at >= end / 2)?;
    if late.len() < 2 {
        return None;
    }
    let n = late.len() as f64;
    let mean_t = late.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_b = late.iter().map(|s| s.1).sum::<f64>() / n;
    let spread: f64 = late.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    if spread <= 0.0 {
        return None;
    }
    let covariance: f64 = late.iter().map(|s| (s.0 - mean_t) * (s.1 - mean_b)).sum();
    Some(LateGrowth {
        half,
        bytes_per_sec: covariance / spread,
    })
}

/// A running sampler; [`Sampler::stop`] takes the last sample and returns them all.
#[derive(Debug)]
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Samples>,
}

impl Sampler {
    /// Takes the first sample on the calling thread (so it is taken before the run starts),
    /// then samples every [`SAMPLE_INTERVAL`] on a thread of its own.
    pub fn start() -> std::io::Result<Self> {
        let started = Instant::now();
        let mut samples = Samples::default();
        sample(&mut samples, started);
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(SAMPLE_INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => sample(&mut samples, started),
                        // Stopped (or the run is gone): the last sample, then the result.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            sample(&mut samples, started);
                            return samples;
                        }
                    }
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Takes the last sample and returns every sample.
    pub fn stop(self) -> Samples {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

fn sample(samples: &mut Samples, started: Instant) {
    if let Some(rss) = rss_bytes() {
        samples.rss.push((started.elapsed(), rss));
    }
    samples.threads.sample(cpu::threads());
}

/// This process's resident set size now, where /proc says.
pub fn rss_bytes() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `VmRSS:` line of a /proc status file, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tkakehashi\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(12_345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn late_growth_is_the_second_half_slope() {
        // Growing in the first half, flat in the second: a cache that filled.
        let filled = [
            (secs(0), 100),
            (secs(1), 300),
            (secs(2), 500),
            (secs(3), 500),
            (secs(4), 500),
        ];
        let growth = late_growth(&filled).expect("enough samples");
        assert_eq!(growth.half, (secs(2), 500));
        assert!(growth.bytes_per_sec.abs() < 1e-9, "{growth:?}");
        // Still growing at 10 bytes a second at the end: a leak.
        let leaking: Vec<_> = (0..=10).map(|t| (secs(t), 1_000 + 10 * t)).collect();
        let growth = late_growth(&leaking).expect("enough samples");
        assert_eq!(growth.half, (secs(5), 1_050));
        assert!((growth.bytes_per_sec - 10.0).abs() < 1e-9, "{growth:?}");
    }

    #[test]
    fn late_growth_needs_two_instants() {
        assert_eq!(late_growth(&[]), None);
        assert_eq!(late_growth(&[(secs(0), 1)]), None);
        assert_eq!(late_growth(&[(secs(0), 1), (secs(0), 2)]), None);
    }

    #[test]
    fn the_sampler_keeps_a_start_and_an_end() {
        let sampler = Sampler::start().expect("a thread");
        let samples = sampler.stop();
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(samples.rss.len() >= 2, "{:?}", samples.rss);
            assert!(samples.rss_start().is_some_and(|b| b > 0));
            assert!(samples.rss_max() >= samples.rss_end());
        }
    }
}
