//! Crash points for the end-to-end crash tests.
//!
//! When the environment variable `KAKEHASHI_CRASH_AT` names a point, the process aborts there,
//! as abruptly as `kill -9` would stop it (no destructors, no flush beyond what is already
//! durable). The tests start a node process with the variable set, drive a payment into the
//! point, restart the node without it and check that both ledgers end consistent. Nothing
//! happens when the variable is unset, which is always the case outside those tests.

/// The sender made the reservation and recorded the payment `Forwarded` (one commit) but has
/// not sent Prepare yet.
pub const SENDER_AFTER_RESERVATION: &str = "sender-after-reservation";
/// The sender got the receiver's decision but has not applied it (post/void) yet.
pub const SENDER_BEFORE_RESOLVE: &str = "sender-before-resolve";
/// The receiver credited the creditor and recorded the decision (one commit) but has not
/// answered.
pub const RECEIVER_AFTER_CREDIT: &str = "receiver-after-credit";

/// The environment variable naming the crash point.
pub const ENV: &str = "KAKEHASHI_CRASH_AT";

/// Aborts the process if `KAKEHASHI_CRASH_AT` is `point`.
pub(crate) fn crash_point(point: &str) {
    if std::env::var(ENV).is_ok_and(|wanted| wanted == point) {
        eprintln!("kakehashi: {ENV}={point}: aborting on purpose (crash test)");
        std::process::abort();
    }
}
