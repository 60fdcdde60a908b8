//! A kakehashi node: one jurisdiction's relay between its banks and the nodes of the
//! jurisdictions it has corridors with.
//!
//! It owns the node's TOML configuration and its limits ([`config`]); the settlement engine,
//! both sides of the protocol, which reads its clock and reaches its peers only through the
//! [`Clock`] and [`engine::PeerTransport`] seams ([`engine`]); the payment store beside the
//! ledger ([`store`]); the gRPC services and the three listeners, TLS under the
//! mutual-recognition agreement ([`server`], [`tls`]); the Prometheus metrics ([`metrics`]);
//! start-up, recovery and shutdown ([`node`]); the participant client ([`participant`]); and the
//! crash points of the crash tests ([`fault`]).
//!
//! It builds on `kakehashi-pki` (recognition), `kakehashi-ledger` (the double-entry ledger),
//! `kakehashi-proto` (the wire types) and `kakehashi-protocol` (the wire objects both sides of a
//! payment share). It must not depend on `kakehashi-ops` (the pair audit, replay and load
//! generator are built on this crate's public API, not the other way round) nor on the CLI
//! (`kakehashi`): no argument parsing, output formatting or `anyhow` here.
#![forbid(unsafe_code)]

mod account;
pub mod config;
pub mod engine;
pub mod fault;
mod locks;
pub mod metrics;
pub mod node;
pub mod participant;
pub mod screening;
pub mod server;
mod service;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;

pub use account::AccountKind;
pub use engine::{Clock, SystemClock};
