//! The end-to-end tests, one binary (as ripgrep's `tests/tests.rs`): each module drives the real
//! `kakehashi` binary or real node processes; `tidy` checks the sources themselves.

use std::path::Path;
use std::sync::OnceLock;

use kakehashi_e2e::SharedDemo;

/// `kakehashi cert verify --anchors` against `openssl verify`: the dev PKI, web-PKI chains and
/// the machine's own CA bundle.
mod cert_anchors;
/// Certificate verdicts and inspection through `kakehashi cert`, fixture by fixture.
mod cert_cli;
/// Either node killed with SIGKILL at random under load: no money lost, created or paid twice.
mod chaos;
/// The crates' dependency rules, from `cargo tree`.
mod dependencies;
/// Nodes on PostgreSQL whose primary is killed mid-replay and whose standby is promoted.
mod failover;
/// `kakehashi ledger audit|export` on a ledger written through the library.
mod ledger_cli;
/// `kakehashi devnet --storage postgres://…` and the ledger tools with `--config` on its books.
mod ledger_pg_cli;
/// Latency, resets, black holes and cuts on the relay links: every payment ends consistent.
mod netfault;
/// `kakehashi ledger pair-audit` on the demo's books, tampered books and books after a crash.
mod pair_audit;
/// The devnet demo, its receipts verified offline, and the participant commands.
mod relay_cli;
/// Node processes killed at crash points and restarted: both ledgers end consistent.
mod relay_crash;
/// `kakehashi replay` with the sample transaction file, and `kakehashi bench`.
mod replay_cli;
/// `kakehashi sim`: the devnet's three nodes, its JSON summary and replayed trace hash.
mod sim_cli;
/// What `chaos` and `netfault` share: two node processes, replayed payments, the verdicts.
mod storm;
/// Rules on the source tree: jurisdictions are data, not code.
mod tidy;

/// The one `kakehashi devnet --demo` run of this binary, made by the first test that asks (the
/// others wait for it). Its books live under cargo's temporary directory for tests.
fn shared_demo() -> &'static SharedDemo {
    static DEMO: OnceLock<SharedDemo> = OnceLock::new();
    DEMO.get_or_init(|| SharedDemo::run_in(Path::new(env!("CARGO_TARGET_TMPDIR"))))
}
