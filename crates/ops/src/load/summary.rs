//! What a run keeps of its payments: counts, latency histograms and answers over time,
//! summarized as each payment ends (issue 14, memory). A run used to keep every payment's
//! outcome until its end, about a hundred bytes each, so a long run's own memory grew with its
//! length and hid whether the nodes' stayed flat; a [`Summary`] grows with nothing but the
//! number of routes, the answers' distinct reasons, the latency range and the run's duration
//! (a few bytes a second).
//!
//! Latency percentiles come from a [`Histogram`] (an HdrHistogram of three significant
//! digits, from the `hdrhistogram` crate), so they carry a stated precision instead of being
//! exact: see [`Histogram::percentile`].

use std::collections::BTreeMap;
use std::time::Duration;

use kakehashi_proto::pb;
use kakehashi_protocol::status::{self, status_name};

use super::PaymentOutcome;

/// Significant decimal digits the histogram keeps: its buckets are at most 2^-10 (0.1%) of
/// their value wide.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in nanoseconds (an HdrHistogram, which resizes to the largest latency
/// seen), with the exact minimum and maximum beside it. Its memory follows the range of the
/// latencies (about 150 KiB up to seconds), whatever the number of samples.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: hdrhistogram::Histogram<u64>,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            // Three significant digits is within what the crate accepts (0 to 5), so creating
            // it cannot fail.
            counts: hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS)
                .expect("3 significant digits is a valid precision"),
            min: 0,
            max: 0,
        }
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        self.counts == other.counts && self.min == other.min && self.max == other.max
    }
}

impl Eq for Histogram {}

impl Histogram {
    /// Counts one sample.
    pub fn record(&mut self, latency: Duration) {
        let value = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        // `record` grows the histogram to the value; a value beyond what it can ever track
        // (centuries) counts in its top bucket instead, the maximum exact beside it.
        // (`saturating_record` alone would not grow it, and would count every latency above
        // the initial range in one bucket.)
        if self.counts.record(value).is_err() {
            self.counts.saturating_record(value);
        }
        self.min = if self.len() == 1 {
            value
        } else {
            self.min.min(value)
        };
        self.max = self.max.max(value);
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &Self) {
        if other.is_empty() {
            return;
        }
        let was_empty = self.is_empty();
        // Adding grows this histogram to the other's range; were that to fail, the samples
        // are added one bucket at a time, saturating like `record`.
        if self.counts.add(&other.counts).is_err() {
            for bucket in other.counts.iter_recorded() {
                let (value, count) = (bucket.value_iterated_to(), bucket.count_at_value());
                if self.counts.record_n(value, count).is_err() {
                    self.counts.saturating_record_n(value, count);
                }
            }
        }
        self.min = if was_empty {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
    }

    /// How many samples it holds.
    pub fn len(&self) -> u64 {
        self.counts.len()
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The smallest sample (exact); zero when empty.
    pub fn min(&self) -> Duration {
        Duration::from_nanos(self.min)
    }

    /// The largest sample (exact); zero when empty.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The nearest-rank percentile `p` (0 to 100), as [`super::percentile`] defines it over
    /// the sorted samples, to a precision of one bucket: never below the exact value and less
    /// than 0.1% of it above, and exact at 0 and 100 (the minimum and the maximum). Zero when
    /// empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        let at = self.counts.value_at_percentile(p.clamp(0.0, 100.0));
        Duration::from_nanos(at.clamp(self.min, self.max))
    }

    /// Every bucket that holds samples, in increasing order: its highest value (within the
    /// samples' range, as [`Self::percentile`] reports it) and its count.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts.iter_recorded().map(|bucket| {
            let at = bucket.value_iterated_to().clamp(self.min, self.max);
            (Duration::from_nanos(at), bucket.count_at_value())
        })
    }
}

/// Slot width of a [`Timeline`] at first: the narrowest interval a report counts throughput
/// in (`report::bench` widths from 50 ms).
pub const FINE_SLOT: Duration = Duration::from_millis(50);

/// Slot width once a run reaches [`COARSE_FROM`]: a report of a run that long counts in whole
/// seconds or more.
pub const COARSE_SLOT: Duration = Duration::from_secs(1);

/// From this time on a [`Timeline`] counts in [`COARSE_SLOT`]s: the report counts a run of 20 s
/// or more in intervals of a whole number of seconds.
pub const COARSE_FROM: Duration = Duration::from_secs(20);

/// Answers counted by when they came, settled apart from the others, in slots of
/// [`FINE_SLOT`] and, once an answer comes at [`COARSE_FROM`] or later, of [`COARSE_SLOT`]:
/// 16 bytes a second of run, whatever the rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    slot: Duration,
    /// (settled, other) per slot, slot `i` from `i × slot`.
    counts: Vec<(u64, u64)>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            slot: FINE_SLOT,
            counts: Vec::new(),
        }
    }
}

impl Timeline {
    /// Counts an answer that came at `at` from the start of the run.
    pub fn record(&mut self, at: Duration, settled: bool) {
        if at >= COARSE_FROM {
            self.coarsen();
        }
        let index = usize::try_from(at.as_nanos() / self.slot.as_nanos()).unwrap_or(usize::MAX);
        // A day (the longest run) is 86,400 slots of a second; an answer beyond ten days is a
        // clock fault, counted in the last slot allowed rather than allocating for it.
        let index = index.min(864_000);
        if self.counts.len() <= index {
            self.counts.resize(index + 1, (0, 0));
        }
        let slot = &mut self.counts[index];
        if settled {
            slot.0 += 1;
        } else {
            slot.1 += 1;
        }
    }

    /// Adds `other`'s answers.
    pub fn merge(&mut self, other: &Self) {
        let mut other = other.clone();
        if self.slot != other.slot {
            self.coarsen();
            other.coarsen();
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), (0, 0));
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
    }

    /// The slot width and the (settled, other) counts per slot, slot `i` from `i × width`.
    pub fn slots(&self) -> (Duration, &[(u64, u64)]) {
        (self.slot, &self.counts)
    }

    /// Merges fine slots into coarse ones (a no-op once coarse).
    fn coarsen(&mut self) {
        if self.slot == COARSE_SLOT {
            return;
        }
        let per = (COARSE_SLOT.as_nanos() / FINE_SLOT.as_nanos()) as usize;
        self.counts = self
            .counts
            .chunks(per)
            .map(|chunk| {
                chunk
                    .iter()
                    .fold((0, 0), |sum, slot| (sum.0 + slot.0, sum.1 + slot.1))
            })
            .collect();
        self.slot = COARSE_SLOT;
    }
}

/// A run's payments, summarized as they end: what a report needs of them, in memory that does
/// not grow with their number.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Payments that ended (answered or failed).
    pub answered: usize,
    /// Settled (ACSC) with a receipt that verified.
    pub settled: usize,
    /// Receipts that verified under the agreement.
    pub receipts_verified: usize,
    /// Payments that failed without a usable answer.
    pub failed: usize,
    /// Answers by status and reason (see [`super::LoadReport::by_status`]).
    pub answers: BTreeMap<String, usize>,
    /// Per route index: payments answered ACSC and the minor units they credited (what the
    /// balance check expects to have moved).
    pub by_route: BTreeMap<usize, (usize, u128)>,
    /// SubmitPayment latencies: every payment that reached SubmitPayment.
    pub submit: Histogram,
    /// Latencies from when each payment was due to its answer or failure: every payment.
    pub total: Histogram,
    /// Answers over time.
    pub timeline: Timeline,
}

impl Summary {
    /// Counts one payment that ended.
    pub fn record(&mut self, outcome: &PaymentOutcome) {
        let acsc = outcome.status == pb::TransactionStatus::Acsc;
        self.answered += 1;
        if acsc && outcome.failure.is_none() {
            self.settled += 1;
        }
        if outcome.receipt_verified {
            self.receipts_verified += 1;
        }
        let key = match outcome.failure {
            Some(failure) => {
                self.failed += 1;
                format!("ERROR {}", failure.name())
            }
            None => status::with_reason(status_name(outcome.status), &outcome.reason),
        };
        *self.answers.entry(key).or_default() += 1;
        if acsc {
            let route = self.by_route.entry(outcome.route).or_default();
            route.0 += 1;
            route.1 = route.1.saturating_add(outcome.credited_minor);
        }
        if let Some(submit) = outcome.submit {
            self.submit.record(submit);
        }
        self.total.record(outcome.total);
        self.timeline.record(outcome.answered, acsc);
    }

    /// Adds `other`'s payments.
    pub fn merge(&mut self, other: &Self) {
        self.answered += other.answered;
        self.settled += other.settled;
        self.receipts_verified += other.receipts_verified;
        self.failed += other.failed;
        for (key, count) in &other.answers {
            *self.answers.entry(key.clone()).or_default() += count;
        }
        for (route, (count, credited)) in &other.by_route {
            let mine = self.by_route.entry(*route).or_default();
            mine.0 += count;
            mine.1 = mine.1.saturating_add(*credited);
        }
        self.submit.merge(&other.submit);
        self.total.merge(&other.total);
        self.timeline.merge(&other.timeline);
    }

    /// The summary of `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a PaymentOutcome>) -> Self {
        let mut summary = Self::default();
        for outcome in outcomes {
            summary.record(outcome);
        }
        summary
    }
}

#[cfg(test)]
mod tests;
