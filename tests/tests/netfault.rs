//! Network faults with real processes (issue 11, build item 4): a JP and an SG node as
//! separate `kakehashi node run` processes whose relay links run through a fault proxy each
//! (`kakehashi_e2e::proxy`; each node's `[[peer]]` relay address is the proxy in front of the
//! other's relay listener, and TLS passes through it untouched), `kakehashi replay` sending
//! payments both ways, and a fixed schedule of faults: latency below and beyond the relay
//! timeout, connection resets, a black hole, cuts, then healing. Afterwards the in-doubt count
//! returns to zero (the test prints how long that took) and every payment is final and
//! consistent on both sides (`storm::settle_and_verify`).

use std::time::{Duration, Instant};

use kakehashi_e2e::pair::node_ports;
use kakehashi_e2e::proxy::{FaultProxy, Stats};

use crate::storm::{self, InDoubtWatch, Load, Pair};

/// Payments per direction and round; rounds follow one another while the schedule runs.
const PAYMENTS: usize = 200;

/// How long `replay` waits for a payment in doubt before reporting PDNG (the next run of the
/// round asks again).
const PENDING_WAIT_SECS: u64 = 2;

/// Which relay link a step acts on: the one JP dials (towards SG's relay), the one SG dials,
/// or both.
#[derive(Clone, Copy, Debug)]
enum Link {
    ToSg,
    ToJp,
    Both,
}

/// One step of the schedule.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Let the load run this long under the faults in force.
    Hold(Duration),
    Latency(Link, Duration),
    Reset(Link),
    BlackHole(Link),
    Cut(Link),
    Heal(Link),
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The faults, in order. The nodes' relay timeout is 3 s (devnet configurations): latency of
/// 2.5 s each way, a black hole and a cut all outlast it, so payments go in doubt and recovery
/// has work to do after each.
const SCHEDULE: &[Step] = &[
    Step::Hold(ms(2_000)),
    Step::Latency(Link::Both, ms(300)),
    Step::Hold(ms(3_000)),
    Step::Latency(Link::ToSg, ms(2_500)),
    Step::Hold(ms(5_000)),
    Step::Heal(Link::Both),
    Step::Reset(Link::Both),
    Step::Hold(ms(1_000)),
    Step::Reset(Link::Both),
    Step::Hold(ms(1_000)),
    Step::Reset(Link::ToJp),
    Step::Hold(ms(1_000)),
    Step::BlackHole(Link::ToSg),
    Step::Hold(ms(4_000)),
    Step::Heal(Link::ToSg),
    Step::Cut(Link::ToJp),
    Step::Hold(ms(4_000)),
    Step::Heal(Link::ToJp),
    Step::Hold(ms(1_000)),
    Step::Cut(Link::Both),
    Step::Hold(ms(3_000)),
    Step::Heal(Link::Both),
    Step::Latency(Link::ToJp, ms(4_000)),
    Step::BlackHole(Link::ToSg),
    Step::Hold(ms(5_000)),
    Step::Heal(Link::Both),
];

fn links(proxies: &[FaultProxy; 2], link: Link) -> Vec<&FaultProxy> {
    match link {
        Link::ToSg => vec![&proxies[0]],
        Link::ToJp => vec![&proxies[1]],
        Link::Both => proxies.iter().collect(),
    }
}

fn stats_text(stats: Stats) -> String {
    format!(
        "{} connections ({} refused, {} reset), {} KiB forwarded, {} KiB swallowed",
        stats.accepted,
        stats.refused,
        stats.reset,
        stats.forwarded / 1024,
        stats.swallowed / 1024
    )
}

#[test]
fn payments_under_latency_resets_black_holes_and_cuts_all_end_final_and_consistent() {
    let started = Instant::now();
    let jp_ports = node_ports();
    let sg_ports = node_ports();
    let relay = |ports: [u16; 3]| std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));
    // proxies[0]: JP dials it, it forwards to SG's relay; proxies[1] the other way.
    let proxies = [
        FaultProxy::start(relay(sg_ports)).expect("proxy to SG"),
        FaultProxy::start(relay(jp_ports)).expect("proxy to JP"),
    ];
    let mut pair = Pair::start(
        jp_ports,
        sg_ports,
        proxies[0].addr().port(),
        proxies[1].addr().port(),
    );
    let mut load = Load::start(&pair, "netfault", PAYMENTS, PENDING_WAIT_SECS);
    let mut watch = InDoubtWatch::default();
    let mut timeline = Vec::new();

    for step in SCHEDULE {
        timeline.push(format!(
            "{:>5.1} s  {step:?}",
            started.elapsed().as_secs_f64()
        ));
        match *step {
            Step::Hold(duration) => {
                // Timed on purpose: a fault lasts this long while the load runs under it.
                let until = Instant::now() + duration;
                while Instant::now() < until {
                    pair.check_alive();
                    load.pump(&pair, true);
                    watch.sample(&pair);
                    std::thread::sleep(ms(100));
                }
            }
            Step::Latency(link, delay) => links(&proxies, link)
                .into_iter()
                .for_each(|p| p.latency(delay)),
            Step::Reset(link) => links(&proxies, link)
                .into_iter()
                .for_each(FaultProxy::reset),
            Step::BlackHole(link) => links(&proxies, link)
                .into_iter()
                .for_each(FaultProxy::black_hole),
            Step::Cut(link) => links(&proxies, link).into_iter().for_each(FaultProxy::cut),
            Step::Heal(link) => links(&proxies, link).into_iter().for_each(FaultProxy::heal),
        }
    }
    let healed = Instant::now();

    // Healed: the in-doubt count returns to zero while the runs under way finish.
    let heal = storm::wait_in_doubt_zero(&mut pair, healed);
    while !load.idle() {
        pair.check_alive();
        load.pump(&pair, false);
        watch.sample(&pair);
        std::thread::sleep(ms(50));
    }
    // The figures of the storm first: a failing verdict below shows them too.
    storm::print_storm_report(
        "network faults",
        &[
            ("schedule", format!("\n    {}", timeline.join("\n    "))),
            ("link JP → SG relay", stats_text(proxies[0].stats())),
            ("link SG → JP relay", stats_text(proxies[1].stats())),
            (
                "payments",
                format!(
                    "{} ({} rounds of {PAYMENTS} payments one way, {} replay runs)",
                    load.payments(),
                    load.rounds(),
                    load.runs
                ),
            ),
        ],
        &load,
        &watch,
        heal,
        "the faults",
        "healing",
    );
    storm::settle_verify_and_print(&mut pair, &mut load, started);
    // The faults were felt: payments went in doubt and connections were reset.
    assert!(watch.peak > 0.0, "no payment ever went in doubt");
    assert!(proxies.iter().all(|p| p.stats().reset > 0));
}
