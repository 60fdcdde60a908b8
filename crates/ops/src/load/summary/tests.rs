use super::*;
use crate::load::{Failure, percentile};

/// A small deterministic generator (xorshift64*), so the samples are the same on every run.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Checks every percentile the bench prints, and more, against the exact nearest rank of the
/// sorted samples: never below it, less than 0.1% of it above, the minimum and maximum exact.
#[track_caller]
fn check_precision(samples: &[Duration]) {
    let mut histogram = Histogram::default();
    for sample in samples {
        histogram.record(*sample);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let precision = 1.0 / 1024.0;
    for p in [
        0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0,
    ] {
        let exact = percentile(&sorted, p);
        let got = histogram.percentile(p);
        assert!(got >= exact, "p{p}: {got:?} below the exact {exact:?}");
        let above = (got - exact).as_nanos() as f64;
        assert!(
            above < precision * exact.as_nanos() as f64 || above == 0.0,
            "p{p}: {got:?} is more than one bucket above the exact {exact:?}"
        );
    }
    assert_eq!(
        histogram.percentile(100.0),
        *sorted.last().expect("samples")
    );
    assert_eq!(histogram.max(), *sorted.last().expect("samples"));
    assert_eq!(histogram.min(), sorted[0]);
    assert_eq!(histogram.len(), samples.len() as u64);
}

#[test]
fn percentiles_are_within_one_bucket_of_the_exact_nearest_rank() {
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    // Latencies as a loaded bench sees them: milliseconds with a long tail.
    let bench: Vec<Duration> = (0..50_000)
        .map(|_| {
            let ms = draw.next() % 40 + 1;
            let tail = if draw.next().is_multiple_of(100) {
                500
            } else {
                1
            };
            Duration::from_micros(ms * tail * 1000 + draw.next() % 1000)
        })
        .collect();
    check_precision(&bench);
    // Spread over every scale from a nanosecond to about an hour.
    let spread: Vec<Duration> = (0..20_000)
        .map(|_| Duration::from_nanos(draw.next() >> (22 + draw.next() % 42)))
        .collect();
    check_precision(&spread);
    // Few samples, repeated values, one sample.
    check_precision(&[Duration::from_millis(3); 7]);
    check_precision(&[Duration::from_nanos(1), Duration::from_secs(1)]);
    check_precision(&[Duration::from_micros(1234)]);
}

#[test]
fn an_empty_histogram_reports_zero() {
    let empty = Histogram::default();
    assert!(empty.is_empty());
    assert_eq!(empty.percentile(50.0), Duration::ZERO);
    assert_eq!(empty.max(), Duration::ZERO);
    assert_eq!(empty.buckets().count(), 0);
}

#[test]
fn merged_histograms_equal_one_that_saw_every_sample() {
    let mut draw = Draw(42);
    let samples: Vec<Duration> = (0..5_000)
        .map(|_| Duration::from_nanos(draw.next() >> 30))
        .collect();
    let mut whole = Histogram::default();
    let mut parts = [Histogram::default(), Histogram::default()];
    for (i, sample) in samples.iter().enumerate() {
        whole.record(*sample);
        parts[i % 2].record(*sample);
    }
    let mut merged = Histogram::default();
    merged.merge(&parts[0]);
    merged.merge(&Histogram::default());
    merged.merge(&parts[1]);
    assert_eq!(merged, whole);
    assert_eq!(whole.buckets().map(|b| b.1).sum::<u64>(), 5_000);
}

#[test]
fn a_histogram_grows_with_the_range_of_latencies_not_their_number() {
    let mut histogram = Histogram::default();
    for i in 0..1_000_000u64 {
        histogram.record(Duration::from_micros(500 + i % 50_000));
    }
    // Up to 50.5 ms: sized for that range (the buckets below 2^26 ns), not for the samples.
    let sized_for_range = {
        let mut h = hdrhistogram::Histogram::<u64>::new(SIGNIFICANT_DIGITS).expect("histogram");
        h.record(1 << 26).expect("in range");
        h.distinct_values()
    };
    assert!(histogram.counts.distinct_values() <= sized_for_range);
    assert_eq!(histogram.len(), 1_000_000);
}

#[test]
fn a_timeline_keeps_every_answer_when_it_turns_coarse() {
    let mut timeline = Timeline::default();
    for i in 0..400u64 {
        timeline.record(Duration::from_millis(i * 50), i % 4 != 0);
    }
    assert_eq!(timeline.slots().0, FINE_SLOT);
    assert_eq!(timeline.slots().1.len(), 400);
    timeline.record(Duration::from_millis(20_500), true);
    let (width, slots) = timeline.slots();
    assert_eq!(width, COARSE_SLOT);
    assert_eq!(slots.len(), 21);
    assert_eq!(slots[0], (15, 5));
    assert_eq!(slots[20], (1, 0));
    let settled: u64 = slots.iter().map(|s| s.0).sum();
    let other: u64 = slots.iter().map(|s| s.1).sum();
    assert_eq!((settled, other), (301, 100));

    // A fine timeline merged into a coarse one counts in the coarse slots.
    let mut fine = Timeline::default();
    fine.record(Duration::from_millis(1_020), false);
    let mut merged = timeline.clone();
    merged.merge(&fine);
    assert_eq!(merged.slots().1[1], (15, 6));
    let mut other_way = fine;
    other_way.merge(&timeline);
    assert_eq!(other_way, merged);
}

fn outcome(
    route: usize,
    status: pb::TransactionStatus,
    failure: Option<Failure>,
) -> PaymentOutcome {
    PaymentOutcome {
        route,
        status,
        reason: if status == pb::TransactionStatus::Rjct {
            "AM04".into()
        } else {
            String::new()
        },
        credited_minor: if status == pb::TransactionStatus::Acsc {
            87
        } else {
            0
        },
        submit: failure.is_none().then(|| Duration::from_millis(4)),
        total: Duration::from_millis(6),
        failure,
        receipt_verified: status == pb::TransactionStatus::Acsc && failure.is_none(),
        answered: Duration::from_millis(100),
    }
}

#[test]
fn a_summary_counts_outcomes_exactly() {
    let acsc = pb::TransactionStatus::Acsc;
    let outcomes = [
        outcome(0, acsc, None),
        outcome(1, acsc, None),
        outcome(1, acsc, None),
        outcome(0, pb::TransactionStatus::Rjct, None),
        outcome(2, acsc, Some(Failure::Receipt)),
        outcome(0, pb::TransactionStatus::Unspecified, Some(Failure::Quote)),
    ];
    let summary = Summary::of(&outcomes);
    assert_eq!(summary.answered, 6);
    assert_eq!(summary.settled, 3);
    assert_eq!(summary.receipts_verified, 3);
    assert_eq!(summary.failed, 2);
    let answers: Vec<(&str, usize)> = summary
        .answers
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        answers,
        [
            ("ACSC", 3),
            ("ERROR quote", 1),
            ("ERROR receipt", 1),
            ("RJCT AM04", 1)
        ]
    );
    // The balance check counts every ACSC answer, a receipt failure included: the money moved.
    let routes: Vec<(usize, (usize, u128))> =
        summary.by_route.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(routes, [(0, (1, 87)), (1, (2, 174)), (2, (1, 87))]);
    assert_eq!(summary.submit.len(), 4);
    assert_eq!(summary.total.len(), 6);

    // Summaries of parts merge into the summary of the whole.
    let mut merged = Summary::of(&outcomes[..2]);
    merged.merge(&Summary::of(&outcomes[2..]));
    assert_eq!(merged.answers, summary.answers);
    assert_eq!(merged.by_route, summary.by_route);
    assert_eq!(merged.submit, summary.submit);
    assert_eq!(merged.total, summary.total);
    assert_eq!(merged.timeline, summary.timeline);
    assert_eq!((merged.answered, merged.settled, merged.failed), (6, 3, 2));
}
