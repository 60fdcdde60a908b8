//! The simulated network: messages between nodes with delay, loss, duplication, reordering
//! (from the delays) and partitions, every choice drawn from the simulator's PRNG.
//!
//! A message is one gRPC request or answer. Real TCP neither loses nor duplicates bytes, but a
//! relay call can be lost whole (a reset before the answer), answered after its caller gave up
//! (a late answer), or sent again (the sender's retry or recovery asking twice): loss and
//! duplication at the message level are how those look to the protocol.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

/// A node's index in the simulation.
pub type NodeId = usize;

/// Simulated milliseconds.
pub type Millis = u64;

/// How unreliable the network is.
#[derive(Clone, Debug, PartialEq)]
pub struct NetFaults {
    /// Shortest delay of a message.
    pub delay_min: Millis,
    /// Longest ordinary delay.
    pub delay_max: Millis,
    /// Chance that a message gets a long delay instead (up to `long_delay_max`): an answer
    /// that arrives after its caller stopped waiting.
    pub long_delay: f64,
    /// Longest long delay.
    pub long_delay_max: Millis,
    /// Chance that a message is lost.
    pub loss: f64,
    /// Chance that a message is delivered twice (each copy with its own delay).
    pub duplicate: f64,
}

impl NetFaults {
    /// A network that delivers everything once, after `delay_min..=delay_max`.
    pub fn reliable(delay_min: Millis, delay_max: Millis) -> Self {
        Self {
            delay_min,
            delay_max,
            long_delay: 0.0,
            long_delay_max: delay_max,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// What the network did, for the run's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost at random.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Messages that got a long delay.
    pub delayed_long: u64,
    /// Messages dropped because their link was cut when sent or when due.
    pub partitioned: u64,
}

/// A message on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<M> {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The message.
    pub message: M,
}

/// Messages in flight, ordered by delivery time and then by sending order.
#[derive(Debug)]
pub struct Network<M> {
    queue: BTreeMap<(Millis, u64), Packet<M>>,
    seq: u64,
    /// Cut links, both directions stored.
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: NetFaults,
    stats: NetStats,
}

impl<M: Clone> Network<M> {
    /// An empty network with `faults`.
    pub fn new(faults: NetFaults) -> Self {
        Self {
            queue: BTreeMap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            faults,
            stats: NetStats::default(),
        }
    }

    /// Sends `message` from `from` to `to` at `now`.
    pub fn send(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        now: Millis,
        from: NodeId,
        to: NodeId,
        message: M,
    ) {
        self.stats.sent += 1;
        if self.is_cut(from, to) {
            self.stats.partitioned += 1;
            return;
        }
        if rng.random_bool(self.faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if rng.random_bool(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.delay(rng);
            self.seq += 1;
            self.queue.insert(
                (now.saturating_add(delay), self.seq),
                Packet {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
    }

    fn delay(&mut self, rng: &mut Xoshiro256PlusPlus) -> Millis {
        let (min, max) = (
            self.faults.delay_min,
            self.faults.delay_max.max(self.faults.delay_min),
        );
        if rng.random_bool(self.faults.long_delay) {
            self.stats.delayed_long += 1;
            return rng.random_range(max..=self.faults.long_delay_max.max(max));
        }
        rng.random_range(min..=max)
    }

    /// When the next message is due, if any is in flight.
    pub fn next_at(&self) -> Option<Millis> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The earliest message due at or before `now` whose link is not cut (messages due on a
    /// cut link are dropped on the way).
    pub fn deliver_due(&mut self, now: Millis) -> Option<Packet<M>> {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                return None;
            }
            let packet = entry.remove();
            if self.is_cut(packet.from, packet.to) {
                self.stats.partitioned += 1;
                continue;
            }
            self.stats.delivered += 1;
            return Some(packet);
        }
        None
    }

    /// Drops every message in flight to `node`, whose connections died with it (a restarted
    /// process never reads what was sent to the one before). What it sent before it died is
    /// already on the wire and still arrives.
    pub fn drop_node(&mut self, node: NodeId) -> usize {
        let before = self.queue.len();
        self.queue.retain(|_, p| p.to != node);
        before - self.queue.len()
    }

    /// Cuts the link between `a` and `b` both ways.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Heals every cut link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Replaces the fault settings (the simulator calms the network to let a run heal).
    pub fn set_faults(&mut self, faults: NetFaults) {
        self.faults = faults;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn drain(net: &mut Network<u32>, until: Millis) -> Vec<(Millis, u32)> {
        let mut out = Vec::new();
        for now in 0..=until {
            while let Some(p) = net.deliver_due(now) {
                out.push((now, p.message));
            }
        }
        out
    }

    #[test]
    fn a_reliable_network_delivers_each_message_once_within_its_delays() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut net = Network::new(NetFaults::reliable(5, 50));
        for m in 0..100 {
            net.send(&mut rng, 0, 0, 1, m);
        }
        let got = drain(&mut net, 100);
        let mut messages: Vec<u32> = got.iter().map(|(_, m)| *m).collect();
        assert!(got.iter().all(|(at, _)| (5..=50).contains(at)));
        assert_ne!(messages, (0..100).collect::<Vec<_>>(), "delays reorder");
        messages.sort_unstable();
        assert_eq!(messages, (0..100).collect::<Vec<_>>());
        assert_eq!(net.stats().delivered, 100);
    }

    #[test]
    fn loss_and_duplication_happen_at_about_their_rates_and_are_counted() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let faults = NetFaults {
            loss: 0.2,
            duplicate: 0.1,
            ..NetFaults::reliable(1, 10)
        };
        let mut net = Network::new(faults);
        for m in 0..10_000 {
            net.send(&mut rng, 0, 0, 1, m);
        }
        let stats = net.stats();
        assert!((1_700..2_300).contains(&stats.lost), "{stats:?}");
        assert!((600..1_000).contains(&stats.duplicated), "{stats:?}");
        let delivered = drain(&mut net, 10).len() as u64;
        assert_eq!(delivered, 10_000 - stats.lost + stats.duplicated);
    }

    #[test]
    fn a_cut_link_drops_what_is_sent_and_what_falls_due_until_healed() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut net = Network::new(NetFaults::reliable(10, 10));
        net.send(&mut rng, 0, 0, 1, 1);
        net.cut(1, 0);
        net.send(&mut rng, 0, 0, 1, 2);
        net.send(&mut rng, 0, 0, 2, 3);
        assert_eq!(
            drain(&mut net, 20),
            [(10, 3)],
            "only the uncut link delivers"
        );
        net.heal();
        net.send(&mut rng, 20, 1, 0, 4);
        assert_eq!(drain(&mut net, 40), [(30, 4)]);
        assert_eq!(net.stats().partitioned, 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_deliveries() {
        let run = |seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let faults = NetFaults {
                loss: 0.1,
                duplicate: 0.1,
                long_delay: 0.05,
                long_delay_max: 5_000,
                ..NetFaults::reliable(1, 100)
            };
            let mut net = Network::new(faults);
            for m in 0..500 {
                net.send(&mut rng, u64::from(m), 0, 1, m);
            }
            drain(&mut net, 6_000)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn dropping_a_node_forgets_what_was_sent_to_it_but_not_what_it_sent() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let mut net = Network::new(NetFaults::reliable(5, 5));
        net.send(&mut rng, 0, 0, 1, 1);
        net.send(&mut rng, 0, 1, 0, 2);
        net.send(&mut rng, 0, 2, 3, 3);
        assert_eq!(net.drop_node(1), 1);
        assert_eq!(drain(&mut net, 10), [(5, 2), (5, 3)]);
    }
}
