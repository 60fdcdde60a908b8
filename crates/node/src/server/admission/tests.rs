use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use super::*;
use crate::metrics::{Listener, Metrics};

fn caps() -> Caps {
    Caps {
        connections: 4,
        connections_per_source: 2,
        handshakes: 3,
        handshakes_per_source: 1,
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn a_source_over_its_cap_is_refused_while_another_is_admitted() {
    let admission = Admission::new(caps(), Gauge::default());
    let _a1 = admission.connect(v4(2)).expect("first");
    let _a2 = admission.connect(v4(2)).expect("second");
    assert_eq!(
        admission
            .connect(v4(2))
            .expect_err("third from the same source"),
        Reason::SourceConnections
    );
    let _b1 = admission.connect(v4(1)).expect("another source");
    assert_eq!(admission.connections(), 3);
}

#[test]
fn the_listener_cap_holds_across_sources_and_places_come_back_on_drop() {
    let admission = Admission::new(caps(), Gauge::default());
    let held: Vec<_> = (1..=4)
        .map(|n| admission.connect(v4(n)).expect("under the cap"))
        .collect();
    assert_eq!(
        admission.connect(v4(9)).expect_err("listener full"),
        Reason::Connections
    );
    drop(held);
    assert_eq!(admission.connections(), 0);
    admission.connect(v4(9)).expect("places freed");
}

#[test]
fn handshakes_are_capped_per_source_and_per_listener() {
    let admission = Admission::new(
        Caps {
            connections: 8,
            ..caps()
        },
        Gauge::default(),
    );
    let a = admission.connect(v4(2)).expect("a");
    let a2 = admission.connect(v4(2)).expect("a2");
    let first = a.handshake().expect("first handshake of the source");
    assert_eq!(
        a2.handshake().expect_err("second of the same source"),
        Reason::SourceHandshakes
    );
    drop(first);
    let _again = a2.handshake().expect("the source's place came back");
    let b = admission.connect(v4(3)).expect("b");
    let c = admission.connect(v4(4)).expect("c");
    let _hb = b.handshake().expect("b's");
    let _hc = c.handshake().expect("c's");
    let d = admission.connect(v4(5)).expect("d");
    assert_eq!(
        d.handshake().expect_err("three in flight"),
        Reason::Handshakes
    );
}

#[test]
fn an_ipv6_client_counts_under_its_slash_64_and_a_mapped_ipv4_under_its_ipv4() {
    let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
    let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
    let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
    assert_eq!(Source::of(one), Source::of(other));
    assert_ne!(Source::of(one), Source::of(elsewhere));
    assert_eq!(Source::of(one).to_string(), "2001:db8:1:2::/64");
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
    assert_eq!(
        Source::of(mapped),
        Source::of(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
    );
    assert_ne!(
        Source::of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        Source::of(v4(1))
    );
}

#[test]
fn the_tally_counts_by_reason_names_the_top_source_and_resets() {
    let metrics = Arc::new(Metrics::new());
    let tally = Tally::new(Listener::Public, None, Arc::clone(&metrics));
    assert_eq!(tally.take(), None, "nothing refused, no line");
    let flood = Source::of(v4(2));
    for _ in 0..5 {
        tally.record(Reason::SourceConnections, Some(flood), None);
    }
    tally.record(
        Reason::HandshakeFailed,
        Some(Source::of(v4(3))),
        Some("not TLS".to_owned()),
    );
    let summary = tally.take().expect("refusals");
    assert_eq!(summary.total(), 6);
    assert!(summary.counts.contains(&(Reason::SourceConnections, 5)));
    assert!(summary.counts.contains(&(Reason::HandshakeFailed, 1)));
    assert_eq!(summary.top_source, Some((flood, 5)));
    assert_eq!(summary.last_failure.as_deref(), Some("not TLS"));
    assert_eq!(tally.take(), None, "the next interval starts empty");
    let text = metrics.encode();
    assert!(
        text.contains(
            "kakehashi_listener_refusals_total{listener=\"public\",reason=\"source_connections\"} 5"
        ),
        "{text}"
    );
    assert!(
        text.contains("kakehashi_tls_refusals_total{listener=\"public\"} 1"),
        "a failed handshake is still a TLS refusal: {text}"
    );
}
