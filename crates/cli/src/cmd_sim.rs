//! `kakehashi sim`: runs the deterministic simulator of the settlement protocol (crates/sim)
//! over a batch of seeds and reports what it injected and what its oracles found.
//!
//! The simulated nodes are those of the configurations given (`--config FILE`, repeated), or
//! of every `*.toml` in `--configs DIR` (default: the devnet's, JP, SG and TH); the simulator
//! derives from them an agreement and corridors under which every pair relays (crates/sim's
//! `setup` module says how and why).
//!
//! Exit codes: 0 when no seed found a violation, 1 otherwise (each violation is printed with
//! its seed and the command that replays it), 2 when the configurations or keys cannot be read
//! (from `main`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kakehashi_sim::{BatchReport, RunReport, Setup, run_batch};

use crate::configs::find_configs;

/// Payments per seed unless `--payments` says otherwise.
const PAYMENTS_DEFAULT: u32 = 40;

#[derive(clap::Args)]
pub(crate) struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed (a failing seed is replayed with `--seed-start SEED --seeds 1`).
    #[arg(long, default_value_t = 0)]
    seed_start: u64,
    /// Payments each seed's workload submits.
    #[arg(long, default_value_t = PAYMENTS_DEFAULT, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    payments: u32,
    /// Run without faults (no crashes, partitions, message or disk faults, clock skew or
    /// hostile peers).
    #[arg(long)]
    no_faults: bool,
    /// Print one JSON object (seeds, payments, faults, violations, trace_hash) instead of
    /// text.
    #[arg(long)]
    json: bool,
    /// A directory whose every `*.toml` is a simulated node's configuration (default:
    /// crates/node/devnet of the checkout). The agreement they name, its authority keys
    /// (`mra-keys/` beside it) and the banks' keys (`<jurisdiction>/banks/` beside it) must be
    /// readable.
    #[arg(long, conflicts_with = "config")]
    configs: Option<PathBuf>,
    /// A simulated node's configuration file; repeat it for each node (instead of
    /// `--configs`).
    #[arg(long)]
    config: Vec<PathBuf>,
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let replay_flags = replay_flags(&args);
    let (setup, from) = if args.config.is_empty() {
        // A given directory is taken as it is (any jurisdictions); without one, the devnet's.
        let dir = match args.configs {
            Some(dir) => dir,
            None => find_configs(None, "--configs DIR")?,
        };
        (Setup::from_dir(&dir), dir.display().to_string())
    } else {
        let names: Vec<String> = args
            .config
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        (Setup::load(&args.config), names.join(", "))
    };
    let setup = setup.with_context(|| format!("cannot set the simulation up from {from}"))?;
    let json = args.json;
    let mut stderr = std::io::stderr().lock();
    if !json {
        let _ = writeln!(
            stderr,
            "simulating {} with a corridor between every pair",
            setup.jurisdictions().join(", ")
        );
    }
    let batch = run_batch(
        &setup,
        args.seed_start,
        args.seeds,
        args.payments,
        !args.no_faults,
        |report: &RunReport| {
            if !json {
                let _ = writeln!(
                    stderr,
                    "seed {:>6}: {:>3} settled, {:>3} rejected, {} violations, trace {}",
                    report.seed,
                    report.settled,
                    report.rejected,
                    report.violations.len(),
                    report.trace_hash.get(..16).unwrap_or_default()
                );
            }
        },
    )
    .with_context(|| format!("cannot set the simulation up from {from}"))?;
    if json {
        println!("{}", to_json(&batch));
    } else {
        print_text(&batch, &replay_flags);
    }
    Ok(if batch.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn to_json(batch: &BatchReport) -> serde_json::Value {
    serde_json::json!({
        "seeds": batch.seeds,
        "payments": batch.payments,
        "submissions": batch.submissions,
        "settled": batch.settled,
        "rejected": batch.rejected,
        "faults": batch.faults,
        "violations": batch
            .violations
            .iter()
            .map(|(seed, violation)| serde_json::json!({"seed": seed, "violation": violation}))
            .collect::<Vec<_>>(),
        "trace_hash": batch.trace_hash,
    })
}

/// The flags besides the seed that a failing seed's replay needs to run the same simulation
/// (a seed's trace depends on its workload size, the fault switch and the configurations).
fn replay_flags(args: &SimArgs) -> String {
    let mut flags = String::new();
    if args.payments != PAYMENTS_DEFAULT {
        flags.push_str(&format!(" --payments {}", args.payments));
    }
    if args.no_faults {
        flags.push_str(" --no-faults");
    }
    if let Some(dir) = &args.configs {
        flags.push_str(&format!(" --configs {}", dir.display()));
    }
    for file in &args.config {
        flags.push_str(&format!(" --config {}", file.display()));
    }
    flags
}

fn print_text(batch: &BatchReport, replay_flags: &str) {
    println!(
        "{} seeds, {} payments ({} submissions): {} settled, {} rejected",
        batch.seeds, batch.payments, batch.submissions, batch.settled, batch.rejected
    );
    let directions: Vec<String> = batch
        .settled_by_direction
        .iter()
        .map(|(direction, count)| format!("{direction} {count}"))
        .collect();
    println!("settled by direction: {}", directions.join(", "));
    let faults: Vec<String> = batch
        .faults
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    println!(
        "faults injected: {}",
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults.join(", ")
        }
    );
    println!("violations: {}", batch.violations.len());
    for (seed, violation) in &batch.violations {
        println!("  seed {seed}: {violation}");
        println!("    replay: kakehashi sim --seed-start {seed} --seeds 1{replay_flags}");
    }
    println!("trace hash: {}", batch.trace_hash);
}
