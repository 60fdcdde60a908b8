//! When a `kakehashi bench` run sends its payments: as fast as its window allows (closed loop),
//! or on a fixed schedule (`--rate`, open loop), for a count of payments or until a deadline
//! (`--duration`).
//!
//! The paced mode is open-loop on purpose: payment `k` is due at `k / rate` seconds from the
//! start whatever the relay's latency, as a bank's customers do not wait for each other. A
//! closed loop slows down with the system it measures and hides its slowness. The window (the
//! concurrency) still bounds what is in flight, so a stall cannot pile up unbounded work: a due
//! payment waits for a free slot, and its latency counts from when it was due, not from when
//! it could go (the correction for coordinated omission). A payment more than [`CATCH_UP`]
//! behind its schedule is not sent late in a burst after a stall: its slot is skipped and
//! counted as missed, so the rate never exceeds the one asked by more than what [`CATCH_UP`]
//! of it holds, and a run that could not keep up says so.

use std::time::{Duration, Instant};

/// How far behind its schedule a due payment may still go: more than the 1 ms timer
/// granularity and ordinary scheduling noise, small enough that catching up is no burst.
pub const CATCH_UP: Duration = Duration::from_millis(20);

/// A fixed rate of payments per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    rate: f64,
}

impl Pace {
    /// `rate` payments per second; `None` unless positive and finite.
    pub fn new(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0).then_some(Self { rate })
    }

    /// When slot `slot` is due, from the start.
    pub fn due(&self, slot: u64) -> Duration {
        Duration::from_secs_f64(slot as f64 / self.rate)
    }

    /// The first slot due at or after `at` from the start.
    pub fn first_due_at(&self, at: Duration) -> u64 {
        (at.as_secs_f64() * self.rate).ceil() as u64
    }

    /// The slot to send after `slot` was sent at `elapsed` from the start: the next one, or,
    /// when slots are more than [`CATCH_UP`] behind, the first one that is not.
    pub fn next_after(&self, slot: u64, elapsed: Duration) -> u64 {
        self.first_due_at(elapsed.saturating_sub(CATCH_UP))
            .max(slot.saturating_add(1))
    }
}

/// Hands out the payments of a run: when each is due, until the count or the deadline.
#[derive(Debug)]
pub struct Dispatcher {
    start: Instant,
    pace: Option<Pace>,
    deadline: Option<Instant>,
    limit: u64,
    slot: u64,
    sent: u64,
    missed: u64,
}

impl Dispatcher {
    /// At most `limit` payments from `start`, on `pace` (closed loop without), none due at or
    /// after `deadline`.
    pub fn new(start: Instant, pace: Option<Pace>, deadline: Option<Instant>, limit: u64) -> Self {
        Self {
            start,
            pace,
            deadline,
            limit,
            slot: 0,
            sent: 0,
            missed: 0,
        }
    }

    /// Waits until the next payment is due and returns when it was due; `None` when the run
    /// has sent its count or reached its deadline. In closed loop a payment is due now.
    pub async fn next(&mut self) -> Option<Instant> {
        if self.sent >= self.limit {
            return None;
        }
        let due = match self.pace {
            Some(pace) => self.start + pace.due(self.slot),
            None => Instant::now(),
        };
        if self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        // Only a paced payment waits: tokio's timer rounds up to its next millisecond tick,
        // which would cap a closed loop at a thousand payments a second.
        if self.pace.is_some() && due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        Some(due)
    }

    /// The payment [`Self::next`] returned went out now (it may have waited for the window).
    pub fn sent(&mut self) {
        self.sent += 1;
        match self.pace {
            Some(pace) => {
                let next = pace.next_after(self.slot, self.start.elapsed());
                // Only slots due before the deadline were ever to be sent.
                let end = self.deadline.map_or(next, |d| {
                    pace.first_due_at(d.saturating_duration_since(self.start))
                });
                self.missed += next.min(end).saturating_sub(self.slot + 1);
                self.slot = next;
            }
            None => self.slot += 1,
        }
    }

    /// Whether payments are due on a schedule (then latency counts from when each was due).
    pub fn paced(&self) -> bool {
        self.pace.is_some()
    }

    /// Slots skipped because the run was more than [`CATCH_UP`] behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_due_at_the_rate() {
        let pace = Pace::new(200.0).expect("a rate");
        assert_eq!(pace.due(0), Duration::ZERO);
        assert_eq!(pace.due(200), Duration::from_secs(1));
        assert_eq!(pace.due(1), Duration::from_millis(5));
        assert!(Pace::new(0.0).is_none());
        assert!(Pace::new(-1.0).is_none());
        assert!(Pace::new(f64::NAN).is_none());
        assert!(Pace::new(f64::INFINITY).is_none());
    }

    #[test]
    fn a_slightly_late_slot_catches_up_and_a_stall_skips_without_a_burst() {
        let pace = Pace::new(100.0).expect("a rate");
        // On time, and a few milliseconds late (within CATCH_UP): the next slot follows.
        assert_eq!(pace.next_after(10, Duration::from_millis(100)), 11);
        assert_eq!(pace.next_after(10, Duration::from_millis(115)), 11);
        // Slot 10 went out after a 1 s stall: the slots more than CATCH_UP behind are skipped,
        // so what follows is due within CATCH_UP of now, not a backlog sent at once.
        let next = pace.next_after(10, Duration::from_millis(1_100));
        assert_eq!(next, 108);
        let behind = Duration::from_millis(1_100) - pace.due(next);
        assert!(behind <= CATCH_UP, "{behind:?}");
        // At most what CATCH_UP holds at the rate is ever sent back to back.
        let burst = (CATCH_UP.as_secs_f64() * 100.0).ceil() as u64;
        assert!(pace.due(next + burst) >= Duration::from_millis(1_100));
    }

    #[tokio::test]
    async fn the_dispatcher_stops_at_its_count_and_its_deadline() {
        let start = Instant::now();
        let mut closed = Dispatcher::new(start, None, None, 3);
        let mut n = 0;
        while closed.next().await.is_some() {
            closed.sent();
            n += 1;
        }
        assert_eq!((n, closed.missed()), (3, 0));
        assert!(!closed.paced());

        // 1,000 per second for 50 ms: slot 50 would be due at the deadline, so at most 50 go.
        let pace = Pace::new(1_000.0);
        let mut paced =
            Dispatcher::new(start, pace, Some(start + Duration::from_millis(50)), 1_000);
        let mut due = Vec::new();
        while let Some(at) = paced.next().await {
            assert!(Instant::now() >= at, "never ahead of schedule");
            due.push(at);
            paced.sent();
        }
        assert!(paced.paced());
        assert_eq!(due.len() as u64 + paced.missed(), 50);
        assert!(due.windows(2).all(|w| w[1] > w[0]));
    }
}
