//! kakehashi's deterministic simulator of the settlement protocol (issue 11), after
//! TigerBeetle's VOPR: nodes, their network, disks and clocks in one thread, every choice
//! (which task runs, when a message arrives, which fault strikes) drawn from one seeded PRNG,
//! so that a seed replays a run exactly.
//!
//! The parts: [`setup`] (the nodes, read once from the configuration files given: by default
//! the devnet's JP, SG and TH; it derives in memory an agreement and corridors under which
//! every pair of them relays, which for the committed files, where every pair already does,
//! changes nothing — its documentation says how and why), [`world`] (one run: workload, faults, oracles),
//! [`executor`] (tasks polled in the order the simulator picks, a node's tasks dropped where
//! they stand when it crashes), [`net`] (messages with delay, loss, duplication, reordering
//! and partitions) and [`disk`] (a node's books in memory, durable exactly when the real
//! ledger's would be, with injected transient failures).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod disk;
pub mod executor;
pub mod net;
pub mod setup;
pub mod world;

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

pub use setup::Setup;
pub use world::{RunOptions, RunReport, SimError, run};

/// What a batch of seeds found.
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    /// Seeds run.
    pub seeds: u64,
    /// Payments the workloads planned.
    pub payments: u64,
    /// Submissions made.
    pub submissions: u64,
    /// Payments that ended settled.
    pub settled: u64,
    /// Payments that ended rejected (recorded).
    pub rejected: u64,
    /// Settled payments by direction ("JP->SG").
    pub settled_by_direction: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Every violation, with its seed.
    pub violations: Vec<(u64, String)>,
    /// SHA-256 over the seeds' trace hashes in order, hex: the same batch gives the same hash.
    pub trace_hash: String,
}

/// Runs `seeds` seeds of `setup`'s nodes from `seed_start`, `payments` payments each, with or
/// without faults, calling `each` after every seed.
pub fn run_batch(
    setup: &Setup,
    seed_start: u64,
    seeds: u64,
    payments: u32,
    faults: bool,
    mut each: impl FnMut(&RunReport),
) -> Result<BatchReport, SimError> {
    let mut batch = BatchReport::default();
    let mut trace = Sha256::new();
    for seed in seed_start..seed_start.saturating_add(seeds) {
        let report = run(
            setup,
            &RunOptions {
                seed,
                payments,
                faults,
                planted: None,
            },
        )?;
        each(&report);
        batch.seeds += 1;
        batch.payments += report.payments;
        batch.submissions += report.submissions;
        batch.settled += report.settled;
        batch.rejected += report.rejected;
        for (direction, count) in &report.settled_by_direction {
            *batch
                .settled_by_direction
                .entry(direction.clone())
                .or_default() += count;
        }
        for (kind, count) in &report.faults {
            *batch.faults.entry(kind.clone()).or_default() += count;
        }
        batch
            .violations
            .extend(report.violations.iter().map(|v| (seed, v.clone())));
        trace.update(report.trace_hash.as_bytes());
    }
    batch.trace_hash = hex::encode(trace.finalize());
    Ok(batch)
}
