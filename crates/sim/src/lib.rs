//! kakehashi's deterministic simulator of the settlement protocol (issue 11), after
//! TigerBeetle's VOPR: nodes, their network, disks and clocks in one thread, every choice
//! (which task runs, when a message arrives, which fault strikes) drawn from one seeded PRNG,
//! so that a seed replays a run exactly.
//!
//! The parts so far: [`executor`] (tasks polled in the order the simulator picks, a node's
//! tasks dropped where they stand when it crashes), [`net`] (messages with delay, loss,
//! duplication, reordering and partitions) and [`disk`] (a node's books in memory, durable
//! exactly when the real ledger's would be, with injected transient failures).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod disk;
pub mod executor;
pub mod net;
