//! Progress of long commands (`replay`, `bench`) on stderr: an indicatif bar when stderr is a
//! terminal, otherwise a plain line every few seconds (logs and CI output stay readable and a
//! short run prints nothing).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the plain reporter prints: often enough to show a long run is alive, rarely
/// enough not to flood a CI log.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// How often the plain reporter wakes to check whether it is done.
const PLAIN_POLL: Duration = Duration::from_millis(100);

/// A counter of finished items that shows itself on stderr.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
}

impl Progress {
    /// Starts showing progress of `total` items called `unit` (e.g. "payments").
    pub(crate) fn start(total: u64, unit: &'static str, what: &'static str) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let template =
                format!("{what} {{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
            if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            return Self {
                bar: Some(bar),
                done,
                finished,
            };
        }
        let (count, stop) = (Arc::clone(&done), Arc::clone(&finished));
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = started;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(PLAIN_POLL);
                if last.elapsed() >= PLAIN_INTERVAL {
                    last = Instant::now();
                    eprintln!(
                        "{what}: {}/{total} {unit} after {:.0} s",
                        count.load(Ordering::Relaxed),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        Self {
            bar: None,
            done,
            finished,
        }
    }

    /// One more item finished.
    pub(crate) fn inc(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Stops showing progress (clears the bar).
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
