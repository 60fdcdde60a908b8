//! Random kill -9 with real processes (issue 11, build item 3): a JP and an SG node as separate
//! `kakehashi node run` processes on sled, `kakehashi replay` sending payments both ways, and
//! either node killed with SIGKILL at moments a seeded PRNG picks, then restarted at once.
//! Afterwards nothing may be in doubt, every payment must be final and the same however it is
//! asked, a re-run must pay nothing twice, money must be conserved per currency, and the pair
//! audit must be clean (`storm::settle_and_verify`).
//!
//! `KAKEHASHI_CHAOS_SEED` replays a seed's schedule (which node, how long between kills; the
//! interleaving with the payments depends on timing), `KAKEHASHI_CHAOS_KILLS` sets the number
//! of kills (default 10; `just chaos` runs 100) and `KAKEHASHI_CHAOS_PAYMENTS` the payments
//! per direction and round (default: enough for the kills to spread over the run). Rounds
//! follow one another until every kill is done and the nodes took at least 1,000 payments
//! meanwhile (kills go on until then), so the kills always land under load.

use std::time::{Duration, Instant};

use kakehashi_e2e::pair::{SplitMix64, node_ports};

use crate::storm::{self, InDoubtWatch, Load, Pair};

/// The seed of the kill schedule (decimal); default: from the clock, printed.
const SEED_ENV: &str = "KAKEHASHI_CHAOS_SEED";

/// How many kills (default [`KILLS_DEFAULT`]).
const KILLS_ENV: &str = "KAKEHASHI_CHAOS_KILLS";

/// Payments per direction and round.
const PAYMENTS_ENV: &str = "KAKEHASHI_CHAOS_PAYMENTS";

/// Kills in the CI run.
const KILLS_DEFAULT: usize = 10;

/// Fewest payments per direction and round: the first round alone is 1,000 payments.
const PAYMENTS_MIN: usize = 500;

/// Fewest payments the nodes must take while the kills go on. Calls to a node that is down
/// fail at once, so a replay skips many lines while a node restarts (they are sent by a later
/// run); the kills go on beyond their number until this many payments went through them.
const TAKEN_MIN: usize = 1_000;

/// Shortest and longest time between a node being up again and the next kill: short enough
/// that kills land while payments, restarts and recoveries are under way, long enough that
/// payments get through between them.
const KILL_GAP_MIN: Duration = Duration::from_millis(300);
const KILL_GAP_MAX: Duration = Duration::from_millis(3_000);

/// How long `replay` waits for a payment in doubt during the storm before reporting PDNG (the
/// next run of the round asks again).
const PENDING_WAIT_SECS: u64 = 2;

/// How often the in-doubt gauges are sampled for the report.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: give a non-negative integer")),
    )
}

#[test]
fn either_node_killed_at_random_loses_creates_and_duplicates_no_money() {
    let seed = env_number(SEED_ENV).unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() ^ u64::from(now.subsec_nanos()) ^ u64::from(std::process::id())
    });
    let kills_target =
        env_number(KILLS_ENV).map_or(KILLS_DEFAULT, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let lines = env_number(PAYMENTS_ENV).map_or_else(
        || PAYMENTS_MIN.max(kills_target * 5),
        |n| usize::try_from(n).unwrap_or(usize::MAX),
    );
    // Printed first, so that a failure shows it (the harness prints captured output then).
    println!("chaos seed {seed}: at least {kills_target} kills; replay with {SEED_ENV}={seed}");
    let mut rng = SplitMix64::new(seed);
    let started = Instant::now();

    let jp_ports = node_ports();
    let sg_ports = node_ports();
    let mut pair = Pair::start(jp_ports, sg_ports, sg_ports[1], jp_ports[1]);
    let mut load = Load::start(&pair, &format!("chaos-{seed}"), lines, PENDING_WAIT_SECS);
    let mut watch = InDoubtWatch::default();
    let mut restarts = Vec::new();
    let mut killed = [0_usize; 2];
    let mut next_kill = Instant::now() + rng.between(KILL_GAP_MIN, KILL_GAP_MAX);
    let mut sampled = Instant::now();
    let mut last_kill = Instant::now();
    while restarts.len() < kills_target || load.taken() < TAKEN_MIN {
        pair.check_alive();
        load.pump(&pair, true);
        if Instant::now() >= next_kill {
            let node = usize::try_from(rng.below(2)).expect("0 or 1");
            restarts.push(pair.kill_and_restart(node));
            killed[node] += 1;
            last_kill = Instant::now();
            next_kill = last_kill + rng.between(KILL_GAP_MIN, KILL_GAP_MAX);
        }
        if sampled.elapsed() >= SAMPLE_EVERY {
            watch.sample(&pair);
            sampled = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let chaos = started.elapsed();

    // No more kills: the runs under way finish; recovery empties the in-doubt lists.
    let heal = storm::wait_in_doubt_zero(&mut pair, last_kill);
    while !load.idle() {
        pair.check_alive();
        load.pump(&pair, false);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The figures of the storm first: a failing verdict below shows them too.
    storm::print_storm_report(
        &format!("chaos: seed {seed}"),
        &[
            (
                "kills",
                format!(
                    "{} (JP {}, SG {}) in {:.1} s",
                    restarts.len(),
                    killed[0],
                    killed[1],
                    chaos.as_secs_f64()
                ),
            ),
            ("restart (kill → listening)", storm::spread(&restarts)),
            (
                "payments",
                format!(
                    "{} ({} taken by a node during the kills; {} rounds of {lines} \
                     payments one way, {} replay runs, {} could not reach a restarting node)",
                    load.payments(),
                    load.taken(),
                    load.rounds(),
                    load.runs,
                    load.unconnected
                ),
            ),
        ],
        &load,
        &watch,
        heal,
        "the kills",
        "the last kill",
    );
    let verdict = storm::settle_verify_and_print(&mut pair, &mut load, started);
    assert!(restarts.len() >= kills_target);
    assert!(load.taken() >= TAKEN_MIN, "{verdict:?}");
}
