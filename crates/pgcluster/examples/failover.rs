//! A failover, step by step, with the wall time of each step: a primary started, a
//! synchronous standby made, a row written, the primary SIGKILLed, the standby promoted and
//! written through the multi-host URL. Measures, never asserts (times depend on the machine
//! and its load).
//!
//! `cargo run -p kakehashi-pgcluster --example failover -- [ROUNDS] [DIR]` (1 round; a
//! directory under the system's temporary directory, removed afterwards, by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kakehashi_pgcluster::{Cluster, ClusterOptions, Error, PgBinaries, multi_host_url};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let rounds: u32 = match args.next().map(|rounds| rounds.parse()) {
        None => 1,
        Some(Ok(rounds)) => rounds,
        Some(Err(e)) => {
            eprintln!("ROUNDS: {e}");
            return ExitCode::from(2);
        }
    };
    let binaries = match PgBinaries::find() {
        Ok(binaries) => binaries,
        Err(why) => {
            eprintln!("PostgreSQL not found: {why}");
            return ExitCode::from(2);
        }
    };
    println!(
        "PostgreSQL {} from {}",
        binaries.version(),
        binaries.bindir().display()
    );
    let root = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pgcluster-failover-{}", std::process::id()))
    });
    let mut status = ExitCode::SUCCESS;
    for round in 1..=rounds {
        match failover(&binaries, &root.join(format!("round{round}"))) {
            Ok(steps) => println!("round {round}: {steps}"),
            Err(e) => {
                eprintln!("round {round}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    status
}

/// One failover; returns each step's wall time.
fn failover(binaries: &PgBinaries, dir: &std::path::Path) -> Result<String, Error> {
    // The directory must be passable by the `postgres` user when running as root.
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        action: format!("create {}", dir.display()),
        source: e,
    })?;
    let mut steps = Vec::new();
    let mut step = |name: &str, started: Instant| {
        steps.push(format!("{name} {}", millis(started.elapsed())));
    };
    let started = Instant::now();
    let mut primary = Cluster::start(binaries, &dir.join("primary"), ClusterOptions::default())?;
    step("start", started);
    let started = Instant::now();
    let standby = primary.start_sync_standby(&dir.join("standby"))?;
    step("sync standby", started);
    primary.create_database("ledger")?;
    primary.psql(
        "ledger",
        "CREATE TABLE payment (id int PRIMARY KEY);\nINSERT INTO payment VALUES (1);",
    )?;
    let started = Instant::now();
    primary.kill();
    step("kill -9", started);
    let started = Instant::now();
    standby.promote()?;
    step("promote", started);
    let url = multi_host_url(&[&primary, &standby], "ledger");
    let started = Instant::now();
    let rows = binaries.psql_url(
        &url,
        "INSERT INTO payment VALUES (2);\nSELECT count(*) FROM payment;",
    )?;
    step("reconnect and write", started);
    let started = Instant::now();
    drop(standby);
    drop(primary);
    step("drop", started);
    Ok(format!("{} ({} rows)", steps.join(", "), rows.trim()))
}

fn millis(elapsed: Duration) -> String {
    format!("{} ms", elapsed.as_millis())
}
