//! The end-to-end tests, one binary (as ripgrep's `tests/tests.rs`): each module drives the real
//! `kakehashi` binary or real node processes.

/// Certificate verdicts and inspection through `kakehashi cert`, fixture by fixture.
mod cert_cli;
/// `kakehashi ledger audit|export` on a ledger written through the library.
mod ledger_cli;
/// `kakehashi ledger pair-audit` on the demo's books, tampered books and books after a crash.
mod pair_audit;
/// The devnet demo, its receipts verified offline, and the participant commands.
mod relay_cli;
/// Node processes killed at crash points and restarted: both ledgers end consistent.
mod relay_crash;
/// `kakehashi replay` with the sample transaction file, and `kakehashi bench`.
mod replay_cli;
