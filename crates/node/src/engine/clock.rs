//! The engine's clock. The engine reads the time only through [`Clock`], handed to it at
//! construction, so that a deterministic simulator can drive the same engine that production
//! runs with a time of its own choosing (TigerBeetle's VOPR drives its replicas the same way).
//! Production passes [`SystemClock`], the one place in the node that reads the wall clock
//! (`crates/node/clippy.toml` bans `SystemTime::now` everywhere else).
//!
//! Elapsed time for latency metrics is measured with `std::time::Instant`, which decides
//! nothing; the deadlines of calls to a peer belong to the peer transport
//! ([`super::PeerTransport`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kakehashi_ledger::Timestamp;
use kakehashi_pki::UnixTime;

/// Where the engine reads the time.
pub trait Clock: Send + Sync {
    /// The time now, as a ledger timestamp (nanoseconds, the time of the transfers and
    /// accounts the engine creates) and as a validation time (whole seconds, for signatures,
    /// chains, quotes, instructions and receipts). Both are readings of the same instant.
    fn now(&self) -> (Timestamp, UnixTime);

    /// Whole seconds since the Unix epoch (0 before it), the time stamped on payment store
    /// records.
    fn unix_secs(&self) -> u64 {
        u64::try_from(self.now().1.0).unwrap_or(0)
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one production reading of the wall clock; everything else takes a Clock"
    )]
    fn now(&self) -> (Timestamp, UnixTime) {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        (Timestamp::from_unix_nanos(nanos), UnixTime(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that stands still, as a simulator's would between its steps.
    struct Fixed(UnixTime);

    impl Clock for Fixed {
        fn now(&self) -> (Timestamp, UnixTime) {
            let nanos = u64::try_from(self.0.0).unwrap_or(0) * 1_000_000_000;
            (Timestamp::from_unix_nanos(nanos), self.0)
        }
    }

    #[test]
    fn unix_secs_follows_now_and_is_zero_before_the_epoch() {
        assert_eq!(Fixed(UnixTime(1_798_761_600)).unix_secs(), 1_798_761_600);
        assert_eq!(Fixed(UnixTime(-1)).unix_secs(), 0);
    }

    #[test]
    fn the_system_clock_reads_both_forms_of_one_instant() {
        let (timestamp, time) = SystemClock.now();
        let secs = timestamp.unix_nanos() / 1_000_000_000;
        assert!(secs.abs_diff(u64::try_from(time.0).expect("after 1970")) <= 1);
        // 2025-01-01T00:00:00Z: the clock is not at the epoch.
        assert!(time.0 > 1_735_689_600);
    }
}
